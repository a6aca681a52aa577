//! The embedded store: everything in one JSON file, rewritten atomically on each write
//! (temp file, fsync, rename, fsync of the directory). For one machine and no setup.
//!
//! The whole file is held in memory behind one async mutex; writers queue on it, deciders
//! never touch it. A write that cannot be saved is undone in memory and reported as
//! `Unavailable`, so memory and disk never disagree. A file that exists but cannot be read or
//! parsed stops startup: it is never silently replaced.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{Change, ChangeRecord, EnrollmentPage, HistoryEntry, Loaded, RolloutStore, StoreError};
use crate::rules::Rollout;

const FORMAT: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Data {
    format: u32,
    rollouts: BTreeMap<String, Rollout>,
    /// Oldest first.
    history: BTreeMap<String, Vec<HistoryEntry>>,
    /// Oldest first.
    audit: Vec<ChangeRecord>,
    enrollments: BTreeMap<String, BTreeSet<String>>,
}

pub struct EmbeddedStore {
    path: PathBuf,
    data: Mutex<Data>,
}

impl EmbeddedStore {
    /// Opens the file at `path`; a missing file is an empty store (created on the first write).
    pub fn open(path: impl Into<PathBuf>) -> Result<EmbeddedStore, StoreError> {
        let path = path.into();
        let data = match std::fs::read(&path) {
            Ok(bytes) => {
                let data: Data =
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
                data
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Data {
                format: FORMAT,
                ..Data::default()
            },
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Ok(EmbeddedStore {
            path,
            data: Mutex::new(data),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn save(&self, data: &Data) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(data).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot write {}: {e}", self.path.display()))
            })
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file, whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
        let mut file = std::fs::File::create(&tmp)?;
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

/// What a change replaced, so it can be put back if saving fails.
struct Undo {
    key: String,
    rollout: Option<Rollout>,
    history: Option<Vec<HistoryEntry>>,
    enrollments: Option<BTreeSet<String>>,
    audit_len: usize,
}

impl Undo {
    fn capture(data: &Data, key: &str) -> Undo {
        Undo {
            key: key.to_string(),
            rollout: data.rollouts.get(key).cloned(),
            history: data.history.get(key).cloned(),
            enrollments: data.enrollments.get(key).cloned(),
            audit_len: data.audit.len(),
        }
    }

    fn restore(self, data: &mut Data) {
        fn put<T>(map: &mut BTreeMap<String, T>, key: &str, value: Option<T>) {
            match value {
                Some(v) => map.insert(key.to_string(), v),
                None => map.remove(key),
            };
        }
        put(&mut data.rollouts, &self.key, self.rollout);
        put(&mut data.history, &self.key, self.history);
        put(&mut data.enrollments, &self.key, self.enrollments);
        data.audit.truncate(self.audit_len);
    }
}

#[async_trait]
impl RolloutStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn load(&self) -> Result<Loaded, StoreError> {
        let data = self.data.lock().await;
        Ok(Loaded {
            rollouts: data.rollouts.values().cloned().collect(),
            enrollments: data
                .enrollments
                .iter()
                .flat_map(|(k, users)| users.iter().map(move |u| (k.clone(), u.clone())))
                .collect(),
        })
    }

    async fn commit(&self, change: Change) -> Result<(), StoreError> {
        let mut data = self.data.lock().await;
        let current = data.rollouts.get(&change.key).map(|r| r.version);
        match (change.expected_version, current) {
            (None, Some(_)) => return Err(StoreError::AlreadyExists(change.key)),
            (Some(_), None) => return Err(StoreError::NotFound(change.key)),
            (Some(expected), Some(current)) if expected != current => {
                return Err(StoreError::VersionMismatch {
                    key: change.key,
                    expected,
                    current,
                })
            }
            _ => {}
        }
        let undo = Undo::capture(&data, &change.key);
        match change.next {
            Some(next) => {
                data.history
                    .entry(change.key.clone())
                    .or_default()
                    .push(HistoryEntry {
                        record: change.record.clone(),
                        rollout: next.clone(),
                    });
                data.rollouts.insert(change.key.clone(), next);
            }
            None => {
                data.rollouts.remove(&change.key);
                data.history.remove(&change.key);
                data.enrollments.remove(&change.key);
            }
        }
        data.audit.push(change.record);
        if let Err(e) = self.save(&data).await {
            undo.restore(&mut data);
            return Err(e);
        }
        Ok(())
    }

    async fn history(&self, key: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let data = self.data.lock().await;
        if !data.rollouts.contains_key(key) {
            return Err(StoreError::NotFound(key.to_string()));
        }
        Ok(data
            .history
            .get(key)
            .map(|h| h.iter().rev().cloned().collect())
            .unwrap_or_default())
    }

    async fn audit(&self, limit: usize) -> Result<Vec<ChangeRecord>, StoreError> {
        let data = self.data.lock().await;
        Ok(data.audit.iter().rev().take(limit).cloned().collect())
    }

    async fn enroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError> {
        let mut data = self.data.lock().await;
        if !data.rollouts.contains_key(key) {
            return Err(StoreError::NotFound(key.to_string()));
        }
        let added = data
            .enrollments
            .entry(key.to_string())
            .or_default()
            .insert(user_key.to_string());
        if added {
            if let Err(e) = self.save(&data).await {
                if let Some(set) = data.enrollments.get_mut(key) {
                    set.remove(user_key);
                }
                return Err(e);
            }
        }
        Ok(added)
    }

    async fn unenroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError> {
        let mut data = self.data.lock().await;
        if !data.rollouts.contains_key(key) {
            return Err(StoreError::NotFound(key.to_string()));
        }
        let removed = data
            .enrollments
            .get_mut(key)
            .is_some_and(|set| set.remove(user_key));
        if removed {
            if let Err(e) = self.save(&data).await {
                data.enrollments
                    .entry(key.to_string())
                    .or_default()
                    .insert(user_key.to_string());
                return Err(e);
            }
        }
        Ok(removed)
    }

    async fn enrollments(
        &self,
        key: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EnrollmentPage, StoreError> {
        use std::ops::Bound;
        let data = self.data.lock().await;
        if !data.rollouts.contains_key(key) {
            return Err(StoreError::NotFound(key.to_string()));
        }
        let Some(set) = data.enrollments.get(key) else {
            return Ok(EnrollmentPage {
                user_keys: Vec::new(),
                next_cursor: None,
            });
        };
        let lower = match cursor {
            Some(c) => Bound::Excluded(c.to_string()),
            None => Bound::Unbounded,
        };
        let mut user_keys: Vec<String> = set
            .range((lower, Bound::Unbounded))
            .take(limit + 1)
            .cloned()
            .collect();
        let next_cursor = if user_keys.len() > limit {
            user_keys.truncate(limit);
            user_keys.last().cloned()
        } else {
            None
        };
        Ok(EnrollmentPage {
            user_keys,
            next_cursor,
        })
    }
}
