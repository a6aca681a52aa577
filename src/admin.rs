//! The admin use cases: create, replace, patch, delete and roll back rollouts, mint override
//! cookies, and record enrollments.
//!
//! Every write is checked and compiled first, then committed to the store as one
//! compare-and-set (history and audit included), and only then installed in the in-memory
//! catalog. This module holds the write logic once for every backend; it must not know about
//! HTTP (no status codes, no headers).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::distr::Alphanumeric;
use rand::Rng;
use serde_json::Value;

use crate::catalog::Catalog;
use crate::cookies::CookieSigner;
use crate::guard::trip::{tripped_content, GUARD_ACTOR};
use crate::guard::TripEvidence;
use crate::rules::compile::{is_valid_key, validate_content, MAX_EPOCH};
use crate::rules::model::{Sticky, StickyDraft, SERVER_KEPT};
use crate::rules::schedule::{self, DueStep};
use crate::rules::{Flow, Rollout, RolloutContent, RolloutDraft, ValidationErrors};
use crate::store::{
    Action, AuditPage, Change, ChangeRecord, EnrollmentPage, FieldChange, HistoryEntry,
    RolloutStore, StoreError,
};

/// The rollout that a fresh installation starts with.
pub const DEFAULT_ROLLOUT: &str = "stytch-login";
/// The actor named in history for changes Switchyard makes itself.
pub const SYSTEM_ACTOR: &str = "switchyard";
/// The actor named in history for the steps of a ramp schedule (SPEC §9).
pub const SCHEDULE_ACTOR: &str = "schedule";

/// A schedule step this replica applied: the version it made, and which step it was.
#[derive(Debug, Clone)]
pub struct AppliedStep {
    pub rollout: Rollout,
    pub step: DueStep,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(#[from] ValidationErrors),
    #[error("rollout '{0}' does not exist")]
    NotFound(String),
    #[error("rollout '{0}' already exists")]
    AlreadyExists(String),
    #[error("rollout '{key}' is at version {current}; If-Match asked for {expected}")]
    VersionMismatch {
        key: String,
        expected: String,
        current: u64,
    },
    /// Another replica deleted the key again while this create was on its way (rare; the
    /// create is retried once before this reaches the caller).
    #[error(
        "rollout '{key}' was deleted again, at version {}, while being created; retry",
        last.version
    )]
    Retired {
        key: String,
        last: crate::store::Retired,
    },
    /// The store could not do it (its message, and its source for the error chain).
    #[error(transparent)]
    Unavailable(StoreError),
}

/// `If-Match` as the admin layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match`: last writer wins.
    None,
    /// `If-Match: *`: the rollout must exist.
    Any,
    /// `If-Match: "7"`: the rollout must be at one of these versions.
    Versions(Vec<u64>),
    /// An `If-Match` that names no version of ours; never matches.
    Unmatchable(String),
}

impl Precondition {
    fn check(&self, key: &str, current: u64) -> Result<(), AdminError> {
        let ok = match self {
            Precondition::None | Precondition::Any => true,
            Precondition::Versions(vs) => vs.contains(&current),
            Precondition::Unmatchable(_) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(AdminError::VersionMismatch {
                key: key.to_string(),
                expected: match self {
                    Precondition::Versions(vs) => vs
                        .iter()
                        .map(|v| format!("\"{v}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    Precondition::Unmatchable(raw) => raw.clone(),
                    _ => String::new(),
                },
                current,
            })
        }
    }
}

/// An override cookie minted for a tester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideCookie {
    pub value: String,
    pub expires_at: DateTime<Utc>,
}

/// One change to commit: the rollout as it was (`None` for a create), its new content
/// (`None` for a delete), and who did what.
struct Write<'a> {
    key: &'a str,
    previous: Option<&'a Rollout>,
    /// For a create: the version at which a rollout of this key was deleted, if one was (the
    /// new rollout's version comes after it).
    retired: Option<u64>,
    content: Option<RolloutContent>,
    action: Action,
    restored_version: Option<u64>,
    actor: &'a str,
    /// A guard's trip: what it did and why (kept in the change record).
    evidence: Option<TripEvidence>,
}

pub struct Admin {
    store: Arc<dyn RolloutStore>,
    catalog: Arc<Catalog>,
    signer: CookieSigner,
    /// One admin write at a time on this replica; the store's compare-and-set covers others.
    writer: tokio::sync::Mutex<()>,
    /// The longest guard window this deployment keeps counts for (`guards.max_window_seconds`).
    max_guard_window_seconds: u64,
}

fn random_salt() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect()
}

fn field_error(field: &str, message: impl Into<String>) -> AdminError {
    AdminError::Invalid(ValidationErrors::single(field, message))
}

/// The top-level fields that differ between two contents.
pub fn diff(before: Option<&RolloutContent>, after: Option<&RolloutContent>) -> Vec<FieldChange> {
    let as_map = |c: Option<&RolloutContent>| match c.map(serde_json::to_value) {
        Some(Ok(Value::Object(m))) => m,
        _ => serde_json::Map::new(),
    };
    let (before, after) = (as_map(before), as_map(after));
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter_map(|field| {
            let from = before.get(field).cloned().unwrap_or(Value::Null);
            let to = after.get(field).cloned().unwrap_or(Value::Null);
            (from != to).then(|| FieldChange {
                field: field.clone(),
                from,
                to,
            })
        })
        .collect()
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(changes) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(map) = target {
                for (k, v) in changes {
                    if v.is_null() {
                        map.remove(k);
                    } else {
                        merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The epoch of a rollout created again under a key whose rollout was deleted: one above the
/// deleted one's unless the draft asks for a higher one (a lower or equal one would honour
/// the deleted rollout's cookies, and is refused).
fn epoch_after_delete(
    key: &str,
    epoch: u64,
    given: bool,
    last: crate::store::Retired,
) -> Result<u64, AdminError> {
    let least = last.epoch.saturating_add(1);
    match (given, epoch >= least) {
        _ if least > MAX_EPOCH => Err(field_error(
            "epoch",
            format!(
                "must be at least {least}: a rollout '{key}' was deleted at epoch {}, the largest \
                 there is ({MAX_EPOCH}), so this key cannot be used again; choose another key",
                last.epoch
            ),
        )),
        (_, true) => Ok(epoch),
        (false, false) => Ok(least),
        (true, false) => Err(field_error(
            "epoch",
            format!(
                "must be at least {least}: a rollout '{key}' was deleted at epoch {}, and its \
                 cookies must not count for the new one",
                last.epoch
            ),
        )),
    }
}

/// In a merge patch `null` removes a member, and only `description` may be removed (SPEC §4):
/// a script with an unset variable must not reset a kill switch to its default.
fn refuse_nulls(patch: &Value) -> Result<(), AdminError> {
    fn walk(path: &str, value: &Value, problems: &mut Vec<crate::rules::FieldError>) {
        match value {
            Value::Null if path != "description" => problems.push(crate::rules::FieldError {
                field: path.to_string(),
                message: "must not be null: only description can be removed; send the value \
                          you want instead"
                    .to_string(),
            }),
            Value::Object(map) => {
                for (k, v) in map {
                    let at = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    // A server-kept member (a schedule's progress too) is ignored whatever it
                    // holds, but is not null.
                    let server_kept = (path.is_empty() && SERVER_KEPT.contains(&k.as_str()))
                        || at == "schedule.applied_steps";
                    if server_kept && !v.is_null() {
                        continue;
                    }
                    walk(&at, v, problems);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{path}[{i}]"), v, problems);
                }
            }
            _ => {}
        }
    }
    let mut problems = Vec::new();
    walk("", patch, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AdminError::Invalid(ValidationErrors(problems)))
    }
}

impl Admin {
    pub fn new(store: Arc<dyn RolloutStore>, catalog: Arc<Catalog>, signer: CookieSigner) -> Admin {
        Admin {
            store,
            catalog,
            signer,
            writer: tokio::sync::Mutex::new(()),
            max_guard_window_seconds: *crate::rules::compile::GUARD_WINDOW_SECONDS.end(),
        }
    }

    /// Refuses guard windows longer than `seconds`: login outcomes are kept only that long
    /// (`guards.max_window_seconds`), so a longer window would never see its start.
    pub fn with_max_guard_window(mut self, seconds: u64) -> Admin {
        self.max_guard_window_seconds = seconds;
        self
    }

    /// The checks a write meets beyond the content's own validity: a guard's window within
    /// what this deployment keeps counts for.
    fn check_guard_window(&self, content: &RolloutContent) -> Result<(), AdminError> {
        let max = self.max_guard_window_seconds;
        match &content.guard {
            Some(guard) if guard.window_seconds > max => Err(field_error(
                "guard.window_seconds",
                format!(
                    "must be at most {max}: login outcomes are kept for guards.max_window_seconds \
                     ({max} s); raise that setting to look further back"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Maps a store error. (The store itself records whether it was reached, in
    /// `switchyard_store_up` and `switchyard_store_errors_total`: once, where it happened.)
    fn store_error(&self, op: &str, e: StoreError) -> AdminError {
        match e {
            StoreError::AlreadyExists(k) => AdminError::AlreadyExists(k),
            StoreError::NotFound(k) => AdminError::NotFound(k),
            StoreError::VersionMismatch {
                key,
                expected,
                current,
            } => AdminError::VersionMismatch {
                key,
                expected: format!("\"{expected}\""),
                current,
            },
            StoreError::Retired { key, last } => AdminError::Retired { key, last },
            other => {
                tracing::error!(op, error = %other, "store operation failed");
                AdminError::Unavailable(other)
            }
        }
    }

    pub fn list(&self) -> Vec<Rollout> {
        self.catalog
            .all()
            .into_iter()
            .map(|l| l.rollout.clone())
            .collect()
    }

    pub fn get(&self, key: &str) -> Result<Rollout, AdminError> {
        self.catalog
            .get(key)
            .map(|l| l.rollout.clone())
            .ok_or_else(|| AdminError::NotFound(key.to_string()))
    }

    /// The rollout's current version as the store has it (the source of truth for writes; the
    /// in-memory copy may lag behind another replica's write by a few milliseconds).
    async fn current(&self, key: &str) -> Result<Rollout, AdminError> {
        let current = self
            .store
            .get(key)
            .await
            .map_err(|e| self.store_error("get", e))?;
        let current = current.ok_or_else(|| AdminError::NotFound(key.to_string()))?;
        // Catch the in-memory copy up if it lags (ignored when it is as new).
        let _ = self.catalog.install(current.clone());
        Ok(current)
    }

    /// A cookie name must not be shared with another rollout, or the two would fight over it.
    fn check_cookie_name(&self, key: &str, content: &RolloutContent) -> Result<(), AdminError> {
        if !content.sticky.enabled {
            return Ok(());
        }
        let name = &content.sticky.cookie_name;
        if name == crate::decider::OVERRIDE_COOKIE {
            return Err(field_error(
                "sticky.cookie_name",
                format!("'{name}' is the override cookie's name"),
            ));
        }
        for other in self.catalog.all() {
            let c = &other.rollout.content.sticky;
            if other.rollout.key != key && c.enabled && &c.cookie_name == name {
                return Err(field_error(
                    "sticky.cookie_name",
                    format!(
                        "cookie '{name}' is already used by rollout '{}'; choose another name",
                        other.rollout.key
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn commit(&self, write: Write<'_>) -> Result<Option<Rollout>, AdminError> {
        let Write {
            key,
            previous,
            retired,
            content,
            action,
            restored_version,
            actor,
            evidence,
        } = write;
        let op = match action {
            Action::Created => "create",
            Action::Updated | Action::RolledBack => "update",
            Action::Deleted => "delete",
        };
        let expected_version = previous.map(|r| r.version);
        let previous_epoch = previous.map(|r| r.content.epoch);
        let previous = previous.map(|r| &r.content);
        let version = expected_version.or(retired).map_or(1, |v| v + 1);
        let at = Utc::now();
        let record = ChangeRecord {
            rollout: key.to_string(),
            version,
            action,
            actor: actor.to_string(),
            at,
            changes: diff(previous, content.as_ref()),
            restored_version,
            evidence,
        };
        let next = content.map(|content| Rollout {
            key: key.to_string(),
            content,
            version,
            updated_at: at,
            updated_by: actor.to_string(),
        });
        let change = Change {
            key: key.to_string(),
            expected_version,
            next: next.clone(),
            record,
            previous_epoch,
        };
        self.store
            .commit(change)
            .await
            .map_err(|e| self.store_error(op, e))?;
        match &next {
            Some(rollout) => {
                self.catalog.install(rollout.clone())?;
            }
            None => {
                self.catalog.remove(key);
            }
        }
        tracing::info!(
            rollout = key,
            version,
            actor,
            action = ?action,
            "rollout changed"
        );
        Ok(next)
    }

    pub async fn create(&self, draft: RolloutDraft, actor: &str) -> Result<Rollout, AdminError> {
        let key = draft
            .key
            .clone()
            .ok_or_else(|| field_error("key", "required"))?;
        if !is_valid_key(&key) {
            return Err(field_error(
                "key",
                format!("invalid key '{key}': expected ^[a-z0-9][a-z0-9_-]{{0,63}}$"),
            ));
        }
        let epoch_given = draft.epoch.is_some();
        let mut content = draft.into_content(&key, None, random_salt);
        schedule::settle_write(None, &mut content);
        validate_content(&content)?;
        self.check_guard_window(&content)?;
        let _writer = self.writer.lock().await;
        if self.catalog.get(&key).is_some() {
            return Err(AdminError::AlreadyExists(key));
        }
        self.check_cookie_name(&key, &content)?;
        // A key used before continues its version numbers and its epochs. If another replica
        // deletes the key again between this read and the commit, the store refuses and says
        // where to continue from: one more try from there.
        let mut retired = self
            .store
            .retired(&key)
            .await
            .map_err(|e| self.store_error("create", e))?;
        loop {
            if let Some(last) = retired {
                content.epoch = epoch_after_delete(&key, content.epoch, epoch_given, last)?;
            }
            let write = Write {
                key: &key,
                previous: None,
                retired: retired.map(|r| r.version),
                content: Some(content.clone()),
                action: Action::Created,
                restored_version: None,
                actor,
                evidence: None,
            };
            match self.commit(write).await {
                Err(AdminError::Retired { last, .. }) if retired != Some(last) => {
                    retired = Some(last)
                }
                other => return other.map(|c| c.expect("a create yields a rollout")),
            }
        }
    }

    /// Replaces the editable content (PUT). Unchanged content makes no new version.
    pub async fn replace(
        &self,
        key: &str,
        draft: RolloutDraft,
        precondition: &Precondition,
        actor: &str,
    ) -> Result<Rollout, AdminError> {
        if let Some(body_key) = &draft.key {
            if body_key != key {
                return Err(field_error(
                    "key",
                    format!("is immutable: the path names '{key}', the body '{body_key}'"),
                ));
            }
        }
        let _writer = self.writer.lock().await;
        let current = self.current(key).await?;
        precondition.check(key, current.version)?;
        let content = draft.into_content(key, Some(&current.content), random_salt);
        self.update(key, current, content, Action::Updated, None, actor)
            .await
    }

    /// Applies a JSON merge patch (PATCH) to the current rollout.
    pub async fn patch(
        &self,
        key: &str,
        patch: &Value,
        precondition: &Precondition,
        actor: &str,
    ) -> Result<Rollout, AdminError> {
        if !patch.is_object() {
            return Err(field_error("body", "a merge patch must be a JSON object"));
        }
        refuse_nulls(patch)?;
        let _writer = self.writer.lock().await;
        let current = self.current(key).await?;
        precondition.check(key, current.version)?;
        let mut doc =
            serde_json::to_value(&current).map_err(|e| field_error("body", e.to_string()))?;
        merge_patch(&mut doc, patch);
        let draft: RolloutDraft = serde_path_to_error::deserialize(doc).map_err(|e| {
            let path = e.path().to_string();
            let error = e.into_inner();
            // A missing member is named itself (`schedule.steps`), as a create names it.
            let field = crate::rules::wording::field_of(&path, &error, "body");
            let message = crate::rules::wording::explain(&field, &error);
            field_error(&field, message)
        })?;
        if draft.key.as_deref() != Some(key) {
            return Err(field_error("key", "is immutable"));
        }
        let content = draft.into_content(key, Some(&current.content), random_salt);
        self.update(key, current, content, Action::Updated, None, actor)
            .await
    }

    /// A person's (or the guard's) change: an active schedule is paused by a change of the
    /// percentage or the kill switch, and is `done` with no step left (SPEC §9).
    async fn update(
        &self,
        key: &str,
        current: Rollout,
        mut content: RolloutContent,
        action: Action,
        restored_version: Option<u64>,
        actor: &str,
    ) -> Result<Rollout, AdminError> {
        schedule::settle_write(Some(&current.content), &mut content);
        validate_content(&content)?;
        if content.guard != current.content.guard {
            self.check_guard_window(&content)?;
        }
        if content.epoch < current.content.epoch {
            return Err(field_error(
                "epoch",
                format!(
                    "cannot go down: rollout '{key}' is at epoch {}, and a lower epoch would \
                     honour again the cookies that a bump voided",
                    current.content.epoch
                ),
            ));
        }
        self.check_cookie_name(key, &content)?;
        if content == current.content {
            return Ok(current);
        }
        let updated = self
            .commit(Write {
                key,
                previous: Some(&current),
                retired: None,
                content: Some(content),
                action,
                restored_version,
                actor,
                evidence: None,
            })
            .await?;
        Ok(updated.expect("an update yields a rollout"))
    }

    pub async fn delete(
        &self,
        key: &str,
        precondition: &Precondition,
        actor: &str,
    ) -> Result<(), AdminError> {
        let _writer = self.writer.lock().await;
        let current = self.current(key).await?;
        precondition.check(key, current.version)?;
        self.commit(Write {
            key,
            previous: Some(&current),
            retired: None,
            content: None,
            action: Action::Deleted,
            restored_version: None,
            actor,
            evidence: None,
        })
        .await?;
        Ok(())
    }

    /// A new version whose content is `version`'s.
    pub async fn rollback(
        &self,
        key: &str,
        version: u64,
        precondition: &Precondition,
        actor: &str,
    ) -> Result<Rollout, AdminError> {
        let _writer = self.writer.lock().await;
        let current = self.current(key).await?;
        precondition.check(key, current.version)?;
        let history = self.history(key).await?;
        let target = history
            .into_iter()
            .find(|h| h.rollout.version == version)
            .ok_or_else(|| {
                field_error(
                    "version",
                    format!("rollout '{key}' has no version {version}"),
                )
            })?;
        // The rules, percentage and the rest come back; the epoch does not go down (that would
        // honour again the cookies a bump voided).
        let mut content = target.rollout.content;
        content.epoch = content.epoch.max(current.content.epoch);
        if content == current.content {
            return Ok(current);
        }
        self.update(
            key,
            current,
            content,
            Action::RolledBack,
            Some(version),
            actor,
        )
        .await
    }

    /// Applies the step of `key`'s schedule that is due at `now`, if one is, as an ordinary
    /// versioned write by [`SCHEDULE_ACTOR`]. The decision is made on the version the store
    /// holds and committed with a compare-and-set on it, so when several replicas try at the
    /// same instant one applies the step and the others get `VersionMismatch` (and, reading
    /// again, find nothing due). `Ok(None)`: nothing was due.
    pub async fn apply_due_step(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AppliedStep>, AdminError> {
        let _writer = self.writer.lock().await;
        let current = self.current(key).await?;
        let Some(step) = current.content.schedule.as_ref().and_then(|s| s.due(now)) else {
            return Ok(None);
        };
        let content = schedule::apply(&current.content, step);
        validate_content(&content)?;
        let rollout = self
            .commit(Write {
                key,
                previous: Some(&current),
                retired: None,
                content: Some(content),
                action: Action::Updated,
                restored_version: None,
                actor: SCHEDULE_ACTOR,
                evidence: None,
            })
            .await?
            .expect("an update yields a rollout");
        Ok(Some(AppliedStep { rollout, step }))
    }

    /// A guard's trip: its action (`rules` of `guard::trip::tripped_content`) written as one
    /// version by [`GUARD_ACTOR`], with the evidence in its change record — only if the
    /// rollout is still at `judged_version`, the version the guard judged. The write is a
    /// compare-and-set on that version, so when several replicas trip at once one writes and
    /// the others get `Ok(None)` (or `VersionMismatch`, when another write came between the
    /// read and the commit): reading again, they find the trip done. A trip that changes
    /// nothing (a `pause` at the step it would go back to) is still written, so that the
    /// evidence is kept and the guard waits for a person.
    pub async fn trip_guard(
        &self,
        key: &str,
        judged_version: u64,
        trip: TripEvidence,
    ) -> Result<Option<Rollout>, AdminError> {
        let _writer = self.writer.lock().await;
        let current = self.current(key).await?;
        if current.version != judged_version {
            return Ok(None);
        }
        let mut content = tripped_content(&current.content, trip.action);
        schedule::settle_write(Some(&current.content), &mut content);
        validate_content(&content)?;
        let rollout = self
            .commit(Write {
                key,
                previous: Some(&current),
                retired: None,
                content: Some(content),
                action: Action::Updated,
                restored_version: None,
                actor: GUARD_ACTOR,
                evidence: Some(trip),
            })
            .await?
            .expect("an update yields a rollout");
        Ok(Some(rollout))
    }

    pub async fn history(&self, key: &str) -> Result<Vec<HistoryEntry>, AdminError> {
        let h = self
            .store
            .history(key)
            .await
            .map_err(|e| self.store_error("history", e))?;
        Ok(h)
    }

    pub async fn audit(&self, before: Option<u64>, limit: usize) -> Result<AuditPage, AdminError> {
        let a = self
            .store
            .audit(before, limit)
            .await
            .map_err(|e| self.store_error("audit", e))?;
        Ok(a)
    }

    pub fn override_cookie(
        &self,
        key: &str,
        flow: Flow,
        ttl_seconds: u64,
    ) -> Result<OverrideCookie, AdminError> {
        const MAX_TTL: u64 = 30 * 24 * 3600;
        if ttl_seconds == 0 || ttl_seconds > MAX_TTL {
            return Err(field_error(
                "ttl_seconds",
                format!("must be between 1 and {MAX_TTL} (30 days)"),
            ));
        }
        let live = self
            .catalog
            .get(key)
            .ok_or_else(|| AdminError::NotFound(key.to_string()))?;
        // Whole seconds, rounded up: the cookie carries unix seconds and lives at least `ttl`.
        let now = Utc::now();
        let start = now.timestamp() + i64::from(now.timestamp_subsec_nanos() > 0);
        let expires_at = chrono::DateTime::from_timestamp(start + ttl_seconds as i64, 0)
            .unwrap_or(now + chrono::Duration::seconds(ttl_seconds as i64));
        let value =
            self.signer
                .sign_override(key, live.compiled.epoch, flow, expires_at.timestamp());
        Ok(OverrideCookie { value, expires_at })
    }

    fn check_user_key(user_key: &str) -> Result<(), AdminError> {
        if user_key.is_empty() || user_key.len() > 512 {
            Err(field_error("user_key", "must be 1 to 512 bytes"))
        } else {
            Ok(())
        }
    }

    pub async fn enroll(&self, key: &str, user_key: &str) -> Result<bool, AdminError> {
        self.set_enrolled(key, user_key, true).await
    }

    pub async fn unenroll(&self, key: &str, user_key: &str) -> Result<bool, AdminError> {
        self.set_enrolled(key, user_key, false).await
    }

    /// Records the change in the store, then in memory. `Ok(true)` when something changed.
    async fn set_enrolled(
        &self,
        key: &str,
        user_key: &str,
        enrolled: bool,
    ) -> Result<bool, AdminError> {
        Self::check_user_key(user_key)?;
        if self.catalog.get(key).is_none() {
            return Err(AdminError::NotFound(key.to_string()));
        }
        let op = if enrolled { "enroll" } else { "unenroll" };
        let result = if enrolled {
            self.store.enroll(key, user_key).await
        } else {
            self.store.unenroll(key, user_key).await
        };
        let changed = result.map_err(|e| self.store_error(op, e))?;
        if enrolled {
            self.catalog.enroll(key, user_key);
        } else {
            self.catalog.unenroll(key, user_key);
        }
        Ok(changed)
    }

    pub async fn enrollments(
        &self,
        key: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EnrollmentPage, AdminError> {
        let page = self
            .store
            .enrollments(key, cursor, limit)
            .await
            .map_err(|e| self.store_error("enrollments", e))?;
        Ok(page)
    }

    /// A fresh installation gets `stytch-login` at 0 %, so there is something to ramp.
    pub async fn ensure_default_rollout(&self) -> Result<Option<Rollout>, AdminError> {
        if !self.catalog.is_empty() {
            return Ok(None);
        }
        let draft = RolloutDraft {
            key: Some(DEFAULT_ROLLOUT.to_string()),
            description: Some("Move login to Stytch".to_string()),
            enabled: Some(true),
            percentage: Some(0.0),
            sticky: Some(StickyDraft {
                cookie_name: Some(Sticky::DEFAULT_COOKIE_NAME.to_string()),
                ..StickyDraft::default()
            }),
            ..RolloutDraft::default()
        };
        match self.create(draft, SYSTEM_ACTOR).await {
            Ok(created) => Ok(Some(created)),
            // Another replica created it first.
            Err(AdminError::AlreadyExists(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::metrics::Metrics;
    use crate::store::embedded::EmbeddedStore;
    use crate::store::{Loaded, RolloutStore};

    /// A real embedded store whose `retired` answers as if it had been read just
    /// before another replica deleted the key again: it never knows of a delete.
    struct ReadBeforeTheDelete(EmbeddedStore);

    #[async_trait]
    impl RolloutStore for ReadBeforeTheDelete {
        fn backend(&self) -> &'static str {
            self.0.backend()
        }
        async fn load(&self) -> Result<Loaded, StoreError> {
            self.0.load().await
        }
        async fn get(&self, key: &str) -> Result<Option<Rollout>, StoreError> {
            self.0.get(key).await
        }
        async fn retired(&self, _key: &str) -> Result<Option<crate::store::Retired>, StoreError> {
            Ok(None)
        }
        async fn commit(&self, change: Change) -> Result<(), StoreError> {
            self.0.commit(change).await
        }
        async fn history(&self, key: &str) -> Result<Vec<HistoryEntry>, StoreError> {
            self.0.history(key).await
        }
        async fn audit(&self, before: Option<u64>, limit: usize) -> Result<AuditPage, StoreError> {
            self.0.audit(before, limit).await
        }
        async fn enroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError> {
            self.0.enroll(key, user_key).await
        }
        async fn unenroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError> {
            self.0.unenroll(key, user_key).await
        }
        async fn enrollments(
            &self,
            key: &str,
            cursor: Option<&str>,
            limit: usize,
        ) -> Result<EnrollmentPage, StoreError> {
            self.0.enrollments(key, cursor, limit).await
        }
    }

    #[tokio::test]
    async fn a_key_deleted_at_the_largest_epoch_cannot_be_created_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path().join("switchyard.redb")).unwrap());
        let metrics = Arc::new(Metrics::new());
        let admin = Admin::new(
            store.clone(),
            Arc::new(Catalog::new(metrics.clone())),
            CookieSigner::new(&[7; 32]),
        );
        let draft = |body| serde_json::from_value::<RolloutDraft>(body).unwrap();
        admin
            .create(draft(json!({"key": "r", "epoch": MAX_EPOCH})), "t")
            .await
            .unwrap();
        admin.delete("r", &Precondition::None, "t").await.unwrap();
        let refused = admin.create(draft(json!({"key": "r"})), "t").await;
        let Err(AdminError::Invalid(errors)) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(errors.0[0].field, "epoch");
        assert!(
            errors.0[0].message.contains("cannot be used again"),
            "{errors}"
        );
        // Nothing was stored: an epoch past the largest would make the rollout unreadable.
        assert_eq!(store.get("r").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_create_that_missed_a_delete_continues_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("switchyard.redb")).unwrap();
        let metrics = Arc::new(Metrics::new());
        let admin = Admin::new(
            Arc::new(ReadBeforeTheDelete(store)),
            Arc::new(Catalog::new(metrics.clone())),
            CookieSigner::new(&[7; 32]),
        );
        let draft = || serde_json::from_value::<RolloutDraft>(json!({"key": "r"})).unwrap();
        assert_eq!(admin.create(draft(), "t").await.unwrap().version, 1);
        admin.delete("r", &Precondition::None, "t").await.unwrap();
        // The delete was version 2; the store refuses a create at 1 and says so.
        assert_eq!(admin.create(draft(), "t").await.unwrap().version, 3);
    }
}
