//! Where rollouts, their history, the audit trail and enrollments are kept: one trait,
//! `RolloutStore`, with one implementation per backend.
//!
//! The store is the source of truth for writes (every write is a compare-and-set on the
//! rollout's version that appends history and audit in the same step) but never for
//! decisions: those are answered from memory (`crate::catalog`). A store must not validate
//! rules or know about HTTP.

pub mod dataset;
pub mod embedded;
pub mod file;
pub mod migration;
pub mod redis;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::rules::Rollout;

/// What kind of change a history or audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Updated,
    RolledBack,
    Deleted,
}

/// One field that a change altered, with its value before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

/// Who changed what, when: shared by history and audit entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub rollout: String,
    pub version: u64,
    pub action: Action,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub changes: Vec<FieldChange>,
    /// For rollbacks: the version whose content was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_version: Option<u64>,
    /// For a guard's trip (actor `guard`): what it did and the counts it judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<crate::guard::TripEvidence>,
}

/// One version of a rollout in its history: the record and the full content of that version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub record: ChangeRecord,
    /// Named `snapshot` in JSON: the flattened record already has a `rollout` key, and an
    /// entry with that key twice could not be read back from the store file.
    #[serde(rename = "snapshot")]
    pub rollout: Rollout,
}

/// A write to one rollout, applied atomically: compare the version, store the new version (or
/// delete), append history, append audit.
#[derive(Debug, Clone)]
pub struct Change {
    pub key: String,
    /// `None`: the rollout must not exist yet. `Some(v)`: its current version must be `v`.
    pub expected_version: Option<u64>,
    /// The new version, or `None` to delete the rollout (and its history and enrollments;
    /// the store remembers the delete's version and the deleted rollout's epoch, see
    /// `RolloutStore::retired`).
    pub next: Option<Rollout>,
    pub record: ChangeRecord,
    /// The epoch of the rollout as it was before this change (`None` for a create).
    pub previous_epoch: Option<u64>,
}

impl Change {
    /// What a delete leaves behind for a rollout created again under the same key.
    pub fn retired(&self) -> Option<Retired> {
        self.next.is_none().then(|| Retired {
            version: self.record.version,
            epoch: self.previous_epoch.unwrap_or(1),
        })
    }
}

/// What the store remembers of a deleted rollout, so that one created again under the same key
/// continues after it: its version numbers (an `If-Match` holding a version of the deleted
/// rollout never matches the new one) and its epochs (no cookie of the deleted rollout is
/// honoured by the new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retired {
    /// The version of the delete.
    pub version: u64,
    /// The deleted rollout's epoch.
    pub epoch: u64,
}

impl<'de> Deserialize<'de> for Retired {
    /// `{"version": 3, "epoch": 2}`, or a bare version as files written before epochs were
    /// remembered hold it (epoch 0: unknown until `Dataset::recall_retired_epochs`).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Both { version: u64, epoch: u64 },
            VersionOnly(u64),
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Both { version, epoch } => Retired { version, epoch },
            Form::VersionOnly(version) => Retired { version, epoch: 0 },
        })
    }
}

/// A user key as deciders know an enrollment: its 128-bit XXH3 hash. Membership is all a
/// decision needs, and a million hashes take 16 MB where the keys take several times that;
/// the store keeps the keys themselves (for paging and for restoring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserKeyHash(pub u128);

impl UserKeyHash {
    pub fn of(user_key: &str) -> UserKeyHash {
        UserKeyHash(xxhash_rust::xxh3::xxh3_128(user_key.as_bytes()))
    }
}

/// Everything a replica needs in memory to decide.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub rollouts: Vec<Rollout>,
    /// Per rollout key, the hashes of its enrolled user keys.
    pub enrollments: Vec<(String, Vec<UserKeyHash>)>,
}

impl Loaded {
    pub fn enrollment_count(&self) -> usize {
        self.enrollments.iter().map(|(_, users)| users.len()).sum()
    }
}

/// One page of enrollments, in user-key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrollmentPage {
    pub user_keys: Vec<String>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl EnrollmentPage {
    /// A page from up to `limit + 1` keys read in order: the extra key only tells that more
    /// follow, and the cursor is then the page's last key.
    pub fn from_overfetch(mut user_keys: Vec<String>, limit: usize) -> EnrollmentPage {
        let next_cursor = if user_keys.len() > limit {
            user_keys.truncate(limit);
            user_keys.last().cloned()
        } else {
            None
        };
        EnrollmentPage {
            user_keys,
            next_cursor,
        }
    }
}

/// One page of the audit trail, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub records: Vec<ChangeRecord>,
    /// Pass as `before` to get the older ones; `None` on the page with the oldest.
    pub next_cursor: Option<u64>,
}

impl AuditPage {
    /// The positions, in a trail of `len` records kept oldest first (a record's position is
    /// its cursor), of the page of at most `limit` records that ends before `before`.
    pub fn window(len: u64, before: Option<u64>, limit: usize) -> std::ops::Range<u64> {
        let end = before.map_or(len, |b| b.min(len));
        end.saturating_sub(limit as u64)..end
    }

    /// The page made of the records of `window`, given oldest first as the trail keeps them.
    pub fn new(
        window: std::ops::Range<u64>,
        oldest_first: impl DoubleEndedIterator<Item = ChangeRecord>,
    ) -> AuditPage {
        AuditPage {
            records: oldest_first.rev().collect(),
            next_cursor: (window.start > 0).then_some(window.start),
        }
    }

    /// The page of `trail` (oldest first) that ends before `before`, newest first.
    pub fn of(trail: &[ChangeRecord], before: Option<u64>, limit: usize) -> AuditPage {
        let window = AuditPage::window(trail.len() as u64, before, limit);
        let records = trail[window.start as usize..window.end as usize]
            .iter()
            .cloned();
        AuditPage::new(window, records)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rollout '{0}' already exists")]
    AlreadyExists(String),
    #[error("rollout '{0}' does not exist")]
    NotFound(String),
    #[error("rollout '{key}' is at version {current}, not {expected}")]
    VersionMismatch {
        key: String,
        expected: u64,
        current: u64,
    },
    /// A create whose version is not above the version at which a rollout of the same key was
    /// deleted (another replica deleted it again meanwhile).
    #[error("rollout '{key}' was deleted at version {}; a new one must come after it", last.version)]
    Retired { key: String, last: Retired },
    /// The store could not be reached, or could not save: an outage. Writes answer 503.
    #[error("the store is unavailable: {reason}")]
    Unavailable {
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The store was reached but holds something this build cannot read (not an outage).
    #[error("the store holds {what} that cannot be read: {source}")]
    InvalidData {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the store file {path} is corrupt: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// The database file exists but cannot be opened as one (corrupt, or another process
    /// holds it).
    #[error("cannot open the store database {path}: {source}")]
    Database {
        path: String,
        #[source]
        source: redb::Error,
    },
    #[error("cannot access the store file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// An outage with nothing more to say than `reason`.
    pub fn down(reason: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            reason: reason.into(),
            source: None,
        }
    }

    /// An outage caused by `source`.
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Unavailable {
            reason: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// Whether the store could not be reached or could not save (as opposed to an answer it
    /// gave, such as "no such rollout", or data it holds that cannot be read).
    pub fn is_outage(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::Io { .. })
    }
}

/// Who hears about changes other replicas made (the in-memory catalog). A backend that is
/// shared between replicas (Redis) calls it; the embedded store never needs to.
pub trait ChangeListener: Send + Sync + 'static {
    /// The current version of a rollout, as the store has it now.
    fn rollout_changed(&self, rollout: Rollout);
    fn rollout_removed(&self, key: &str);
    fn enrolled(&self, key: &str, user_key: &str);
    fn unenrolled(&self, key: &str, user_key: &str);
    /// Everything, replacing what the listener had (after a reconnect or a restore).
    fn replace_all(&self, loaded: Loaded);
}

#[async_trait]
pub trait RolloutStore: Send + Sync + 'static {
    /// A short name for logs and metrics (`embedded`, `redis`).
    fn backend(&self) -> &'static str;

    /// Everything needed to decide: all rollouts and all enrollments.
    async fn load(&self) -> Result<Loaded, StoreError>;

    /// Starts following changes made elsewhere (other replicas), if this backend is shared;
    /// returns the background tasks it started.
    fn follow(
        &self,
        _listener: std::sync::Arc<dyn ChangeListener>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        Vec::new()
    }

    /// The current version of one rollout, read from the store itself (not a cache).
    async fn get(&self, key: &str) -> Result<Option<Rollout>, StoreError>;

    /// What is left of the rollout `key` if it was ever deleted: a rollout created again under
    /// that key takes the next version and an epoch above the deleted one's.
    async fn retired(&self, key: &str) -> Result<Option<Retired>, StoreError>;

    /// Applies one change atomically (see [`Change`]).
    async fn commit(&self, change: Change) -> Result<(), StoreError>;

    /// Every version of a rollout, newest first.
    async fn history(&self, key: &str) -> Result<Vec<HistoryEntry>, StoreError>;

    /// Changes to every rollout, newest first: at most `limit` of those older than the
    /// cursor `before` (all when `None`).
    async fn audit(&self, before: Option<u64>, limit: usize) -> Result<AuditPage, StoreError>;

    /// Records that `user_key` signed up through Stytch. `Ok(true)` when it is new.
    async fn enroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError>;

    /// Removes an enrollment. `Ok(true)` when there was one.
    async fn unenroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError>;

    /// Enrollments of a rollout whose user keys sort after `cursor`.
    async fn enrollments(
        &self,
        key: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EnrollmentPage, StoreError>;
}
