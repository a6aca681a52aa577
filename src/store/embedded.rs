//! The embedded store: everything in one local database file (`super::file`, redb), for one
//! machine and no setup. A JSON store file of an earlier build is migrated on first start
//! (`super::migration`).
//!
//! Nothing but the database is kept here: reads come from the file (through redb's cache),
//! writes are one transaction each, committed with fsync before they return. Deciders never
//! touch it; they load once from `load()`. A file that exists but cannot be read stops
//! startup: it is never silently replaced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use super::file::StoreFile;
use super::migration;
use super::{
    AuditPage, Change, EnrollmentPage, HistoryEntry, Loaded, Retired, RolloutStore, StoreError,
};
use crate::metrics::Metrics;
use crate::rules::Rollout;

pub struct EmbeddedStore {
    file: Arc<StoreFile>,
    /// Where writes are recorded (`switchyard_store_up`, `switchyard_store_errors_total`).
    metrics: Option<Arc<Metrics>>,
}

impl EmbeddedStore {
    /// Opens the database at `path` (migrating a JSON store file first, see
    /// `super::migration`); a missing file is an empty store, created on the first write.
    pub fn open(path: impl Into<PathBuf>) -> Result<EmbeddedStore, StoreError> {
        let path = path.into();
        Ok(EmbeddedStore {
            file: Arc::new(migration::open_migrating(&path)?),
            metrics: None,
        })
    }

    /// Records every write (and every probe) in `metrics`, and the load at startup (what
    /// `switchyard_store_up` starts from). Other reads are not recorded: a read that works says
    /// nothing about whether the disk takes writes.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> EmbeddedStore {
        self.metrics = Some(metrics);
        self
    }

    /// Records whether a write reached the disk (an answer such as "version mismatch" did).
    fn record<T>(&self, op: &str, result: &Result<T, StoreError>) {
        if let Some(metrics) = &self.metrics {
            let reached = !matches!(result, Err(e) if e.is_outage());
            metrics.store_reached(op, reached);
        }
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Whether the store can still save: creates, syncs and removes a probe file beside the
    /// database file. (A failed write leaves the database as it was; this tells when writing
    /// works again.)
    pub async fn probe(&self) -> Result<(), StoreError> {
        let result = self.try_probe().await;
        self.record("probe", &result);
        result
    }

    async fn try_probe(&self) -> Result<(), StoreError> {
        let path = self.path().to_path_buf();
        let dir = match path.parent() {
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
            reason: format!("cannot write beside {}: {e}", path.display()),
            source: Some(Box::new(e)),
        })
    }

    /// Runs `f` on the database on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StoreFile) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || f(&file))
            .await
            .map_err(StoreError::unavailable)?
    }

    /// A write, recorded as `op`.
    async fn write<T: Send + 'static>(
        &self,
        op: &str,
        f: impl FnOnce(&StoreFile) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let result = self.run(f).await;
        self.record(op, &result);
        result
    }
}

#[async_trait]
impl RolloutStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn load(&self) -> Result<Loaded, StoreError> {
        let result = self.run(|file| file.load()).await;
        self.record("load", &result);
        result
    }

    async fn get(&self, key: &str) -> Result<Option<Rollout>, StoreError> {
        let key = key.to_string();
        self.run(move |file| file.get(&key)).await
    }

    async fn retired(&self, key: &str) -> Result<Option<Retired>, StoreError> {
        let key = key.to_string();
        self.run(move |file| file.retired(&key)).await
    }

    async fn commit(&self, change: Change) -> Result<(), StoreError> {
        self.write("commit", move |file| file.commit(change)).await
    }

    async fn history(&self, key: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let key = key.to_string();
        self.run(move |file| file.history(&key)).await
    }

    async fn audit(&self, before: Option<u64>, limit: usize) -> Result<AuditPage, StoreError> {
        self.run(move |file| file.audit(before, limit)).await
    }

    async fn enroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError> {
        let (key, user_key) = (key.to_string(), user_key.to_string());
        self.write("enroll", move |file| {
            file.set_enrolled(&key, &user_key, true)
        })
        .await
    }

    async fn unenroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError> {
        let (key, user_key) = (key.to_string(), user_key.to_string());
        self.write("unenroll", move |file| {
            file.set_enrolled(&key, &user_key, false)
        })
        .await
    }

    async fn enrollments(
        &self,
        key: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EnrollmentPage, StoreError> {
        let key = key.to_string();
        let cursor = cursor.map(str::to_string);
        self.run(move |file| file.enrollments(&key, cursor.as_deref(), limit))
            .await
    }
}
