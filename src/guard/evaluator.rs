//! The guard evaluator: a background task that, every `guards.interval_seconds`, judges each
//! guarded rollout (SPEC §9) and trips the guard when Stytch logins fail too often.
//!
//! For each rollout in the catalog whose guard is on and that is enabled, it reads the
//! window's counts of every replica from the `TallyStore` — the last `window_seconds`,
//! starting no earlier than the moment the rollout was last enabled or the guard last tripped
//! (`trip::watching_since`, found in the rollout's history once per version, so it survives
//! restarts and is the same on every replica) — and judges them (`GuardVerdict::of`). A
//! `tripped` verdict becomes one versioned write through `Admin::trip_guard` (actor `guard`,
//! compare-and-set on the judged version: with several replicas the trip happens once), a
//! WARN line, `switchyard_guard_trips_total`, and a webhook notice sent in the background.
//!
//! It keeps what each guard saw last in `GuardViews` (what `GET /v1/rollouts/{key}/guard`
//! shows) and sets `switchyard_guard_state`. It must not touch the decide path, HTTP, or the
//! store but through `Admin`.

use crate::background::Stoppable;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::statistics::{Confidence, GuardLimits, GuardState, GuardVerdict};
use super::trip::{self, GuardEvidence, TripEvidence, VersionFacts, ViewState, GUARD_ACTOR};
use super::webhook::{TripNotice, Webhook};
use crate::admin::{Admin, AdminError};
use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::rules::model::{Guard, GuardAction};
use crate::rules::{Flow, Rollout};
use crate::store::Action;
use crate::tally::TallyStore;

/// What a guard saw last: `GET /v1/rollouts/{key}/guard`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardView {
    pub rollout: String,
    /// The rollout's version the guard looked at.
    pub version: u64,
    pub state: ViewState,
    /// What a trip does (`kill` or `pause`); `null` without a guard.
    pub action: Option<GuardAction>,
    /// When this replica last judged the guard; `null` before its first look.
    pub evaluated_at: Option<DateTime<Utc>>,
    /// When the guard tripped, while `state` is `tripped`.
    pub tripped_at: Option<DateTime<Utc>>,
    /// The counts, rates and bound it judged (a tripped guard: those of its trip); absent
    /// while it is off or has not looked yet.
    #[serde(flatten)]
    pub evidence: Option<GuardEvidence>,
}

impl GuardView {
    /// The view of a rollout no evaluation has looked at yet.
    pub fn before_first_look(rollout: &Rollout) -> GuardView {
        let content = &rollout.content;
        let state = match trip::stance(content, &rollout.updated_by) {
            ViewState::Watching => ViewState::InsufficientData,
            other => other,
        };
        GuardView {
            rollout: rollout.key.clone(),
            version: rollout.version,
            state,
            action: content.guard.as_ref().map(|g| g.action),
            evaluated_at: None,
            tripped_at: None,
            evidence: None,
        }
    }
}

/// The views of every guard, shared with the HTTP handlers (read) and the evaluator (write,
/// once per interval). Deciders never touch it.
#[derive(Default)]
pub struct GuardViews(RwLock<HashMap<String, GuardView>>);

impl GuardViews {
    pub fn new() -> GuardViews {
        GuardViews::default()
    }

    /// What the guard of `rollout` saw last, if it has looked at this version or a later one.
    pub fn get(&self, rollout: &Rollout) -> GuardView {
        let views = self.0.read().unwrap_or_else(|e| e.into_inner());
        match views.get(&rollout.key) {
            Some(view) if view.version >= rollout.version => view.clone(),
            _ => GuardView::before_first_look(rollout),
        }
    }

    fn set(&self, view: GuardView) {
        let mut views = self.0.write().unwrap_or_else(|e| e.into_inner());
        views.insert(view.rollout.clone(), view);
    }

    fn keep_only(&self, keys: &[&str]) {
        let mut views = self.0.write().unwrap_or_else(|e| e.into_inner());
        views.retain(|key, _| keys.contains(&key.as_str()));
    }
}

/// What the evaluator needs.
pub struct GuardEvaluator {
    pub admin: Arc<Admin>,
    pub catalog: Arc<Catalog>,
    pub tallies: Arc<dyn TallyStore>,
    pub metrics: Arc<Metrics>,
    pub views: Arc<GuardViews>,
    pub interval: Duration,
    pub webhook: Option<Webhook>,
}

/// What the evaluator learned from a rollout's history, for one version.
struct VersionNotes {
    version: u64,
    /// `trip::watching_since` of the history up to this version.
    since: Option<DateTime<Utc>>,
    /// When this version is a trip: when, and its evidence.
    trip: Option<(DateTime<Utc>, Option<GuardEvidence>)>,
}

impl GuardEvaluator {
    /// Starts the evaluator: it looks at once, then every `interval`.
    pub fn spawn(self) -> Stoppable {
        Stoppable::spawn("guard evaluator", |stopped| self.run(stopped))
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut notes: HashMap<String, VersionNotes> = HashMap::new();
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::debug!(interval = ?self.interval, "guard evaluator started");
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopped.changed() => {}
            }
            if *stopped.borrow() {
                break;
            }
            self.evaluate_all(&mut notes, &stopped).await;
        }
        tracing::debug!("guard evaluator stopped");
    }

    /// Judges every guarded rollout once.
    async fn evaluate_all(
        &self,
        notes: &mut HashMap<String, VersionNotes>,
        stopped: &watch::Receiver<bool>,
    ) {
        let all = self.catalog.all();
        let keys: Vec<&str> = all.iter().map(|l| l.rollout.key.as_str()).collect();
        notes.retain(|key, _| keys.contains(&key.as_str()));
        self.views.keep_only(&keys);
        for live in &all {
            if *stopped.borrow() {
                break;
            }
            let rollout = &live.rollout;
            if let Some(view) = self.evaluate(rollout, notes).await {
                self.metrics.guard_state(&rollout.key, view.state.gauge());
                self.views.set(view);
            }
        }
    }

    /// Judges one rollout; its new view (`None`: it could not be judged this time).
    async fn evaluate(
        &self,
        rollout: &Rollout,
        notes: &mut HashMap<String, VersionNotes>,
    ) -> Option<GuardView> {
        let now = Utc::now();
        let key = rollout.key.as_str();
        let mut view = GuardView::before_first_look(rollout);
        view.evaluated_at = Some(now);
        let stance = trip::stance(&rollout.content, &rollout.updated_by);
        let Some(guard) = rollout
            .content
            .guard
            .as_ref()
            .filter(|_| stance != ViewState::Off)
        else {
            return Some(view);
        };
        let noted = self.notes_of(rollout, notes).await?;
        if stance == ViewState::Tripped {
            view.state = ViewState::Tripped;
            if let Some((at, evidence)) = &noted.trip {
                view.tripped_at = Some(*at);
                view.evidence = evidence.clone();
            }
            return Some(view);
        }
        let Some(confidence) = Confidence::new(guard.confidence) else {
            tracing::error!(
                rollout = key,
                confidence = guard.confidence,
                "guard confidence out of range; not judged"
            );
            return None;
        };
        let range = trip::window(now, guard.window_seconds, noted.since);
        let tally = match self.tallies.sum(key, range).await {
            Ok(tally) => tally,
            Err(e) => {
                tracing::warn!(rollout = key, error = %e, "cannot read the guard's counts; trying again next interval");
                return None;
            }
        };
        let limits = GuardLimits {
            min_attempts: guard.min_attempts,
            max_failure_rate_increase: guard.max_failure_rate_increase,
            confidence,
        };
        let verdict = GuardVerdict::of(
            tally.outcomes(Flow::Stytch),
            tally.outcomes(Flow::Legacy),
            &limits,
        );
        let evidence = GuardEvidence::of(&verdict, guard, range);
        view.state = verdict.state.into();
        view.evidence = Some(evidence.clone());
        if verdict.state == GuardState::Tripped {
            match self.trip(rollout, guard, evidence).await {
                Some(written) => {
                    view.version = written.version;
                    view.tripped_at = Some(written.updated_at);
                }
                // Not written by this replica: the next look finds out what happened.
                None => return None,
            }
        }
        Some(view)
    }

    /// Writes the trip; the version written (`None`: another write came first, or the store
    /// could not take it — both looked at again next interval).
    async fn trip(
        &self,
        rollout: &Rollout,
        guard: &Guard,
        evidence: GuardEvidence,
    ) -> Option<Rollout> {
        let key = rollout.key.as_str();
        let trip = TripEvidence {
            action: guard.action,
            evidence,
        };
        match self
            .admin
            .trip_guard(key, rollout.version, trip.clone())
            .await
        {
            Ok(Some(written)) => {
                let action = match guard.action {
                    GuardAction::Kill => "kill",
                    GuardAction::Pause => "pause",
                };
                self.metrics.guard_tripped(key, action);
                let notice = TripNotice::new(key, written.version, trip);
                tracing::warn!(
                    rollout = key,
                    action,
                    version = written.version,
                    stytch_attempts = notice.evidence.evidence.stytch_attempts,
                    stytch_failures = notice.evidence.evidence.stytch_failures,
                    legacy_attempts = notice.evidence.evidence.legacy_attempts,
                    legacy_failures = notice.evidence.evidence.legacy_failures,
                    bound_points = notice.evidence.evidence.increase_lower_bound_points,
                    limit_points = notice.evidence.evidence.max_failure_rate_increase,
                    "{}",
                    notice.text
                );
                if let Some(webhook) = &self.webhook {
                    webhook.notify(notice);
                }
                Some(written)
            }
            Ok(None) | Err(AdminError::VersionMismatch { .. }) | Err(AdminError::NotFound(_)) => {
                tracing::debug!(
                    rollout = key,
                    "another write came before the guard's trip; looking again next interval"
                );
                None
            }
            Err(e) => {
                tracing::warn!(rollout = key, error = %e, "guard tripped but could not write; trying again next interval");
                None
            }
        }
    }

    /// What the history says about the rollout's current version (read once per version).
    async fn notes_of<'n>(
        &self,
        rollout: &Rollout,
        notes: &'n mut HashMap<String, VersionNotes>,
    ) -> Option<&'n VersionNotes> {
        let key = rollout.key.as_str();
        let fresh = notes.get(key).is_some_and(|n| n.version == rollout.version);
        if !fresh {
            let history = match self.admin.history(key).await {
                Ok(history) => history,
                Err(e) => {
                    tracing::warn!(rollout = key, error = %e, "cannot read the rollout's history for its guard; trying again next interval");
                    return None;
                }
            };
            // Newest first in the store; up to the version judged, oldest first here.
            let mut entries: Vec<_> = history
                .into_iter()
                .filter(|h| h.record.version <= rollout.version)
                .collect();
            entries.sort_by_key(|h| h.record.version);
            let facts: Vec<VersionFacts> = entries
                .iter()
                .map(|h| VersionFacts {
                    at: h.record.at,
                    created: h.record.action == Action::Created,
                    by_guard: h.record.actor == GUARD_ACTOR,
                    enabled: h.rollout.content.enabled,
                })
                .collect();
            let trip = entries
                .last()
                .filter(|h| h.record.version == rollout.version && h.record.actor == GUARD_ACTOR)
                .map(|h| (h.record.at, h.record.evidence.clone().map(|e| e.evidence)));
            notes.insert(
                key.to_string(),
                VersionNotes {
                    version: rollout.version,
                    since: trip::watching_since(&facts),
                    trip,
                },
            );
        }
        notes.get(key)
    }
}
