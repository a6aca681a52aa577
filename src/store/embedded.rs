//! The embedded store: everything in one JSON file, rewritten atomically on each write
//! (temp file, fsync, rename, fsync of the directory). For one machine and no setup.
//!
//! The whole dataset is held in memory behind one async mutex; writers queue on it, deciders
//! never touch it. A write that cannot be saved is undone in memory and reported as
//! `Unavailable`, so memory and disk never disagree. A file that exists but cannot be read or
//! parsed stops startup: it is never silently replaced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::dataset::Dataset;
use super::{
    AuditPage, Change, EnrollmentPage, HistoryEntry, Loaded, Retired, RolloutStore, StoreError,
};
use crate::metrics::Metrics;
use crate::rules::Rollout;

pub struct EmbeddedStore {
    path: PathBuf,
    data: Mutex<Dataset>,
    /// Where saves are recorded (`switchyard_store_up`, `switchyard_store_errors_total`).
    metrics: Option<Arc<Metrics>>,
}

impl EmbeddedStore {
    /// Opens the file at `path`; a missing file is an empty store (created on the first write).
    pub fn open(path: impl Into<PathBuf>) -> Result<EmbeddedStore, StoreError> {
        let path = path.into();
        let data = Dataset::read(&path)?.unwrap_or_else(Dataset::empty);
        Ok(EmbeddedStore {
            path,
            data: Mutex::new(data),
            metrics: None,
        })
    }

    /// Records every save (and every probe) in `metrics`, and the load at startup (the file
    /// was read at open). Reads are answered from memory and say nothing about the disk, so
    /// they are not recorded.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> EmbeddedStore {
        self.metrics = Some(metrics);
        self
    }

    fn record(&self, op: &str, result: &Result<(), StoreError>) {
        if let Some(metrics) = &self.metrics {
            metrics.store_reached(op, result.is_ok());
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store can still save: creates, syncs and removes a probe file beside the
    /// store file. (A failed write leaves memory and disk as they were; this tells when
    /// writing works again.)
    pub async fn probe(&self) -> Result<(), StoreError> {
        let result = self.try_probe().await;
        self.record("probe", &result);
        result
    }

    async fn try_probe(&self) -> Result<(), StoreError> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let probe = dir.join(format!(".switchyard-probe-{}", std::process::id()));
        tokio::task::spawn_blocking(move || {
            std::fs::File::create(&probe)?.sync_all()?;
            std::fs::remove_file(&probe)
        })
        .await
        .map_err(StoreError::unavailable)?
        .map_err(|e| StoreError::Unavailable {
            reason: format!("cannot write beside {}: {e}", self.path.display()),
            source: Some(Box::new(e)),
        })
    }

    /// Enrolls (or unenrolls) a user and saves; undone in memory if saving fails. `Ok(true)`
    /// when something changed.
    async fn set_enrolled(
        &self,
        key: &str,
        user_key: &str,
        enrolled: bool,
    ) -> Result<bool, StoreError> {
        let mut data = self.data.lock().await;
        if !data.rollouts.contains_key(key) {
            return Err(StoreError::NotFound(key.to_string()));
        }
        let apply = |data: &mut Dataset, enroll: bool| {
            if enroll {
                data.enroll(key, user_key)
            } else {
                data.unenroll(key, user_key)
            }
        };
        let changed = apply(&mut data, enrolled);
        if changed {
            if let Err(e) = self
                .save(if enrolled { "enroll" } else { "unenroll" }, &data)
                .await
            {
                apply(&mut data, !enrolled);
                return Err(e);
            }
        }
        Ok(changed)
    }

    /// Writes the dataset; records whether it could (as `op`).
    async fn save(&self, op: &str, data: &Dataset) -> Result<(), StoreError> {
        let result = self.write(data).await;
        self.record(op, &result);
        result
    }

    async fn write(&self, data: &Dataset) -> Result<(), StoreError> {
        let bytes = data.to_bytes()?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || Dataset::write_atomically(&path, &bytes))
            .await
            .map_err(StoreError::unavailable)?
            .map_err(|e| StoreError::Unavailable {
                reason: format!("cannot write {}: {e}", self.path.display()),
                source: Some(Box::new(e)),
            })
    }
}

#[async_trait]
impl RolloutStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn load(&self) -> Result<Loaded, StoreError> {
        // The file was read when the store was opened (or does not exist yet): the store is up.
        self.record("load", &Ok(()));
        Ok(self.data.lock().await.loaded())
    }

    async fn get(&self, key: &str) -> Result<Option<Rollout>, StoreError> {
        Ok(self.data.lock().await.rollouts.get(key).cloned())
    }

    async fn retired(&self, key: &str) -> Result<Option<Retired>, StoreError> {
        Ok(self.data.lock().await.retired.get(key).copied())
    }

    async fn commit(&self, change: Change) -> Result<(), StoreError> {
        let mut data = self.data.lock().await;
        let undo = data.apply(change)?;
        if let Err(e) = self.save("commit", &data).await {
            undo.restore(&mut data);
            return Err(e);
        }
        Ok(())
    }

    async fn history(&self, key: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.data.lock().await.history_of(key)
    }

    async fn audit(&self, before: Option<u64>, limit: usize) -> Result<AuditPage, StoreError> {
        Ok(self.data.lock().await.audit_page(before, limit))
    }

    async fn enroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError> {
        self.set_enrolled(key, user_key, true).await
    }

    async fn unenroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError> {
        self.set_enrolled(key, user_key, false).await
    }

    async fn enrollments(
        &self,
        key: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EnrollmentPage, StoreError> {
        self.data.lock().await.enrollment_page(key, cursor, limit)
    }
}
