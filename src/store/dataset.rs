//! Everything a store holds, as one value: rollouts, their history, the audit trail and
//! enrollments. The embedded store keeps one in a file; the Redis store keeps one as its
//! last-known copy (and restores Redis from it when Redis comes back empty).
//!
//! Pure data and the one compare-and-set rule every backend follows; no I/O except
//! `read`/`write_atomically` of the file form.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    Action, AuditPage, Change, ChangeRecord, EnrollmentPage, HistoryEntry, Loaded, Retired,
    StoreError, UserKeyHash,
};
use crate::rules::Rollout;

/// The file format version this build reads and writes.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub format: u32,
    /// For the Redis store: the generation of the Redis dataset this copy came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    pub rollouts: BTreeMap<String, Rollout>,
    /// Oldest first.
    pub history: BTreeMap<String, Vec<HistoryEntry>>,
    /// Oldest first.
    pub audit: Vec<ChangeRecord>,
    pub enrollments: BTreeMap<String, UserKeys>,
    /// Each deleted rollout's delete version and epoch: a rollout created again under the
    /// same key continues after both, so that neither an `If-Match` nor a cookie of the
    /// deleted one ever counts for the new one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retired: BTreeMap<String, Retired>,
}

/// The enrolled user keys of one rollout: sorted, unique, one allocation each (a million take
/// about 48 MB, against about 93 MB in a `BTreeSet<String>`). Inserting shifts the tail, which
/// costs less than the file write that follows it. In JSON: an array of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserKeys(Vec<Box<str>>);

impl UserKeys {
    fn position(&self, user_key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|k| (**k).cmp(user_key))
    }

    pub fn insert(&mut self, user_key: &str) -> bool {
        match self.position(user_key) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, user_key.into());
                true
            }
        }
    }

    pub fn remove(&mut self, user_key: &str) -> bool {
        match self.position(user_key) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    pub fn contains(&self, user_key: &str) -> bool {
        self.position(user_key).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|k| &**k)
    }

    /// Up to `limit` keys sorting after `cursor` (and one more, if there is one).
    fn after(&self, cursor: Option<&str>, limit: usize) -> Vec<String> {
        let start = match cursor {
            Some(c) => match self.position(c) {
                Ok(i) => i + 1,
                Err(i) => i,
            },
            None => 0,
        };
        self.0[start.min(self.0.len())..]
            .iter()
            .take(limit + 1)
            .map(|k| k.to_string())
            .collect()
    }
}

impl FromIterator<String> for UserKeys {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        let mut keys: Vec<Box<str>> = iter.into_iter().map(String::into_boxed_str).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.shrink_to_fit();
        UserKeys(keys)
    }
}

impl Serialize for UserKeys {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for UserKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut keys = Vec::<Box<str>>::deserialize(deserializer)?;
        keys.sort_unstable();
        keys.dedup();
        keys.shrink_to_fit();
        Ok(UserKeys(keys))
    }
}

/// The compare of compare-and-set, the one rule every backend follows: `change` may apply to a
/// rollout now at version `current` (`None`: there is none) whose key was last deleted as
/// `retired`.
pub fn check_change(
    change: &Change,
    current: Option<u64>,
    retired: Option<Retired>,
) -> Result<(), StoreError> {
    match (change.expected_version, current) {
        (None, Some(_)) => Err(StoreError::AlreadyExists(change.key.clone())),
        (Some(_), None) => Err(StoreError::NotFound(change.key.clone())),
        (Some(expected), Some(current)) if expected != current => {
            Err(StoreError::VersionMismatch {
                key: change.key.clone(),
                expected,
                current,
            })
        }
        (None, None) => match retired {
            Some(last) if change.record.version <= last.version => Err(StoreError::Retired {
                key: change.key.clone(),
                last,
            }),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// What a change replaced, so it can be put back if saving fails.
pub struct Undo {
    key: String,
    rollout: Option<Rollout>,
    history: Option<Vec<HistoryEntry>>,
    enrollments: Option<UserKeys>,
    retired: Option<Retired>,
    audit_len: usize,
}

impl Undo {
    pub fn restore(self, data: &mut Dataset) {
        fn put<T>(map: &mut BTreeMap<String, T>, key: &str, value: Option<T>) {
            match value {
                Some(v) => map.insert(key.to_string(), v),
                None => map.remove(key),
            };
        }
        put(&mut data.rollouts, &self.key, self.rollout);
        put(&mut data.history, &self.key, self.history);
        put(&mut data.enrollments, &self.key, self.enrollments);
        put(&mut data.retired, &self.key, self.retired);
        data.audit.truncate(self.audit_len);
    }
}

impl Dataset {
    pub fn empty() -> Dataset {
        Dataset {
            format: FORMAT,
            ..Dataset::default()
        }
    }

    /// Reads the file at `path`; `Ok(None)` when there is none. A file that exists but cannot
    /// be read or parsed is an error naming it.
    pub fn read(path: &Path) -> Result<Option<Dataset>, StoreError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let mut data: Dataset =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                path: path.display().to_string(),
                source,
            })?;
        if data.format != FORMAT {
            return Err(StoreError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(format!(
                    "unsupported format {} (this build reads format {FORMAT})",
                    data.format
                )),
            });
        }
        data.recall_retired_epochs();
        Ok(Some(data))
    }

    /// Fills in the epoch of deletes recorded before epochs were remembered (0 = unknown),
    /// from the delete's audit record (its changes show the epoch the rollout had).
    pub fn recall_retired_epochs(&mut self) {
        for (key, retired) in self.retired.iter_mut().filter(|(_, r)| r.epoch == 0) {
            retired.epoch = self
                .audit
                .iter()
                .rev()
                .filter(|a| a.rollout == *key && a.action == Action::Deleted)
                .find(|a| a.version == retired.version)
                .and_then(|a| a.changes.iter().find(|c| c.field == "epoch"))
                .and_then(|c| c.from.as_u64())
                .unwrap_or(1);
        }
    }

    /// Writes `bytes` to `path` so that a crash leaves either the old or the new file, whole:
    /// temp file, fsync, rename, fsync of the folder.
    pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "switchyard.json".into());
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let result = (|| {
            // Readable by its owner only: it holds user keys (e-mail addresses).
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            std::fs::File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(StoreError::unavailable)
    }

    pub fn loaded(&self) -> Loaded {
        Loaded {
            rollouts: self.rollouts.values().cloned().collect(),
            enrollments: self
                .enrollments
                .iter()
                .map(|(k, users)| (k.clone(), users.iter().map(UserKeyHash::of).collect()))
                .collect(),
        }
    }

    /// Checks the change's expected version against this dataset (the compare of
    /// compare-and-set).
    pub fn check(&self, change: &Change) -> Result<(), StoreError> {
        check_change(
            change,
            self.rollouts.get(&change.key).map(|r| r.version),
            self.retired.get(&change.key).copied(),
        )
    }

    /// Compare-and-set: applies `change` if its expected version holds; returns how to undo it.
    pub fn apply(&mut self, change: Change) -> Result<Undo, StoreError> {
        self.check(&change)?;
        let undo = Undo {
            key: change.key.clone(),
            rollout: self.rollouts.get(&change.key).cloned(),
            history: self.history.get(&change.key).cloned(),
            enrollments: self.enrollments.get(&change.key).cloned(),
            retired: self.retired.get(&change.key).copied(),
            audit_len: self.audit.len(),
        };
        match change.next {
            Some(next) => {
                self.retired.remove(&change.key);
                self.history
                    .entry(change.key.clone())
                    .or_default()
                    .push(HistoryEntry {
                        record: change.record.clone(),
                        rollout: next.clone(),
                    });
                self.rollouts.insert(change.key.clone(), next);
            }
            None => {
                self.rollouts.remove(&change.key);
                self.history.remove(&change.key);
                self.enrollments.remove(&change.key);
                if let Some(retired) = change.retired() {
                    self.retired.insert(change.key.clone(), retired);
                }
            }
        }
        self.audit.push(change.record);
        Ok(undo)
    }

    pub fn history_of(&self, key: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        if !self.rollouts.contains_key(key) {
            return Err(StoreError::NotFound(key.to_string()));
        }
        Ok(self
            .history
            .get(key)
            .map(|h| h.iter().rev().cloned().collect())
            .unwrap_or_default())
    }

    pub fn audit_page(&self, before: Option<u64>, limit: usize) -> AuditPage {
        AuditPage::of(&self.audit, before, limit)
    }

    pub fn enroll(&mut self, key: &str, user_key: &str) -> bool {
        self.enrollments
            .entry(key.to_string())
            .or_default()
            .insert(user_key)
    }

    pub fn unenroll(&mut self, key: &str, user_key: &str) -> bool {
        self.enrollments
            .get_mut(key)
            .is_some_and(|set| set.remove(user_key))
    }

    pub fn enrollment_page(
        &self,
        key: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EnrollmentPage, StoreError> {
        if !self.rollouts.contains_key(key) {
            return Err(StoreError::NotFound(key.to_string()));
        }
        let keys = self
            .enrollments
            .get(key)
            .map_or_else(Vec::new, |set| set.after(cursor, limit));
        Ok(EnrollmentPage::from_overfetch(keys, limit))
    }
}
