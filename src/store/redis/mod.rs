//! The Redis store: one rule set shared by many replicas, surviving Redis trouble.
//!
//! Every key carries the hash tag `{<prefix>}` (see `keys` for the layout), so one Lua script
//! updates a rollout, its history, the audit trail and the change stream atomically, on a
//! single Redis or a cluster alike.
//!
//! # Replication
//!
//! Writes are Lua scripts: compare the version (and the generation), write, append history
//! and audit, and add an event to `{p}:events` — one atomic step. Every replica follows the
//! stream with a blocking `XREAD` on its own connection (changes show within milliseconds)
//! and checks `{p}:versions` and `{p}:generation` every two seconds (a lost or trimmed event
//! is caught within seconds). On every (re)connect it reloads everything.
//!
//! # Trouble
//!
//! Each replica keeps its last-known copy of everything in `store.path` (the embedded file
//! format). Redis down: decisions continue from memory, writes fail (`Unavailable`, 503),
//! reads of history/audit/enrollments answer from the copy, and the replica reconnects with
//! backoff. Started while Redis is down: it serves from the copy. Redis back *empty* (no
//! `{p}:generation`, unlike "every rollout deleted"): one replica, holding the restore lock,
//! writes its copy back, logs it and counts it in `switchyard_store_restores_total`.
//!
//! # Where things are
//!
//! - `keys`: the key layout and how values are encoded in it;
//! - `connection`: connecting to a single Redis or a cluster;
//! - `scripts`: the Lua scripts of writes;
//! - `snapshot`: the whole dataset read out of Redis, and written back into an empty one;
//! - `follower`: the background task that follows the change stream, resyncs and restores;
//! - `last_known`: the last-known copy on disk (read at open, saved when it changed);
//! - `operations`: the `RolloutStore` operations themselves;
//! - `tally`: the `TallyStore` of outcome and decision counts (shared 10-second buckets).
//!
//! This module must not validate rules or know about HTTP; it tells a `ChangeListener`.

mod connection;
mod follower;
mod keys;
mod last_known;
mod operations;
mod scripts;
mod snapshot;
mod tally;

use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::dataset::Dataset;
use super::StoreError;
use crate::metrics::Metrics;
use crate::tally::Retention;
use connection::Conn;
use keys::Keys;

pub use connection::redact_url;

/// How the Redis store connects.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://` or `rediss://`, with a password if needed; for a cluster, any node (a
    /// comma-separated list is accepted).
    pub url: String,
    pub cluster: bool,
    pub prefix: String,
    /// The last-known copy.
    pub path: PathBuf,
    pub timeout: Duration,
    /// PEM of a private CA for `rediss://` (none: the system's roots).
    pub tls_ca: Option<Vec<u8>>,
    /// How long outcome and decision counts are kept (see `tally`).
    pub tally_retention: Retention,
}

struct Inner {
    options: RedisOptions,
    keys: Keys,
    /// Commands; `None` until the first successful connection.
    conn: tokio::sync::Mutex<Option<Conn>>,
    /// The last-known copy, with the generation it came from.
    mirror: tokio::sync::Mutex<Dataset>,
    mirror_dirty: Notify,
    /// Asked for by a write that found the dataset changed under it.
    resync: Notify,
    metrics: Arc<Metrics>,
    /// Highest stream id applied.
    last_event: StdMutex<String>,
    /// Whether a sync has succeeded (the listener has what Redis had at `last_event`).
    synced: std::sync::atomic::AtomicBool,
    /// Set when the follower (or the load at startup) failed to reach Redis, cleared when a
    /// sync succeeds: while set, requests answer `Unavailable` at once instead of waiting on
    /// a connect that is refused.
    known_down: std::sync::atomic::AtomicBool,
}

pub struct RedisStore {
    inner: Arc<Inner>,
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::unavailable(e)
}

/// A value read from Redis that is not what this build wrote there.
fn invalid(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::InvalidData { what, source }
}

impl RedisStore {
    /// Creates the store (no connection yet) with its last-known copy, if any.
    pub fn new(options: RedisOptions, metrics: Arc<Metrics>) -> Result<RedisStore, StoreError> {
        // `rediss://` needs a TLS crypto provider; several may be compiled in, so pick one.
        // (An error only means one is installed already.)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mirror = last_known::read(&options.path)?;
        let keys = Keys::new(&options.prefix);
        Ok(RedisStore {
            inner: Arc::new(Inner {
                options,
                keys,
                conn: tokio::sync::Mutex::new(None),
                mirror: tokio::sync::Mutex::new(mirror),
                mirror_dirty: Notify::new(),
                resync: Notify::new(),
                metrics,
                last_event: StdMutex::new("0-0".into()),
                synced: std::sync::atomic::AtomicBool::new(false),
                known_down: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    pub fn description(&self) -> String {
        format!(
            "redis{}, {} (last-known copy {})",
            if self.inner.options.cluster {
                " cluster"
            } else {
                ""
            },
            redact_url(&self.inner.options.url),
            self.inner.options.path.display()
        )
    }
}

impl Inner {
    fn record(&self, op: &str, result: &Result<impl Sized, StoreError>) {
        match result {
            Err(e) if e.is_outage() => {
                self.metrics.store_reached(op, false);
                tracing::warn!(op, error = %e, "redis operation failed");
            }
            _ => self.metrics.store_reached(op, true),
        }
    }

    /// Notes whether Redis is known to be down (see `known_down`).
    fn set_known_down(&self, down: bool) {
        self.known_down
            .store(down, std::sync::atomic::Ordering::Release);
    }

    async fn generation(&self) -> Option<String> {
        self.mirror.lock().await.generation.clone()
    }

    /// Redis holds no dataset (restarted empty, or flushed) and is being restored, by this
    /// replica's follower (woken now) or another's. Every request answers `Unavailable` — a
    /// write 503, a read from the last-known copy — never "no such rollout".
    fn dataset_missing(&self) -> StoreError {
        self.resync.notify_one();
        StoreError::down(
            "Redis lost its data (restarted empty or flushed) and is being restored from a last-known copy",
        )
    }

    /// `dataset_missing` unless Redis holds a dataset (`{p}:generation`).
    async fn require_dataset(&self, conn: &mut Conn) -> Result<(), StoreError> {
        let exists: bool = redis::cmd("EXISTS")
            .arg(self.keys.generation())
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        if exists {
            Ok(())
        } else {
            Err(self.dataset_missing())
        }
    }

    fn note(&self, result: Result<(), StoreError>) -> Result<(), StoreError> {
        if let Err(StoreError::Unavailable { reason, .. }) = &result {
            if reason.contains("generation") {
                self.resync.notify_one();
            }
        }
        result
    }
}
