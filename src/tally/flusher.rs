//! The `Flusher`: every second, takes the counts every rollout's `LiveTally` holds and adds
//! them to the `TallyStore` in one step, filed under the bucket of that moment.
//!
//! Counts that could not be delivered (Redis away) are kept and sent with the next flush,
//! until their bucket is no longer retained. A failed flush is logged once, and its recovery
//! once; the store backend counts its own errors. This module must not be called on the
//! request path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Bucket, BucketCounts, Retention, Tally, TallyStore};
use crate::catalog::Catalog;
use crate::store::StoreError;

/// How often counts are flushed: a replica that dies loses at most this much of them.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

pub struct Flusher {
    catalog: Arc<Catalog>,
    store: Arc<dyn TallyStore>,
    retention: Retention,
    /// Counts taken from the live tallies but not yet delivered, by rollout and bucket.
    unsent: tokio::sync::Mutex<HashMap<(String, Bucket), Tally>>,
    /// Whether the last flush failed (so a long outage is logged once, not every second).
    failing: AtomicBool,
}

impl Flusher {
    pub fn new(catalog: Arc<Catalog>, store: Arc<dyn TallyStore>, retention: Retention) -> Flusher {
        Flusher {
            catalog,
            store,
            retention,
            unsent: tokio::sync::Mutex::new(HashMap::new()),
            failing: AtomicBool::new(false),
        }
    }

    /// Takes every rollout's counts, files them under the bucket holding `now`, and delivers
    /// them with whatever earlier flushes could not deliver (still retained at `now`).
    pub async fn flush(&self, now: SystemTime) -> Result<(), StoreError> {
        let mut unsent = self.unsent.lock().await;
        let bucket = Bucket::at(now);
        for live in self.catalog.all() {
            let taken = live.tally.take();
            if !taken.is_empty() {
                unsent
                    .entry((live.rollout.key.clone(), bucket))
                    .or_default()
                    .merge(&taken);
            }
        }
        unsent.retain(|(_, bucket), _| self.retention.keeps(*bucket, now));
        if unsent.is_empty() {
            return Ok(());
        }
        let batch: Vec<BucketCounts> = unsent
            .iter()
            .map(|((rollout, bucket), tally)| BucketCounts {
                rollout: rollout.clone(),
                bucket: *bucket,
                tally: *tally,
            })
            .collect();
        self.store.add(&batch).await?;
        unsent.clear();
        Ok(())
    }

    /// Flushes every `FLUSH_INTERVAL` until the task is stopped.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(FLUSH_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                self.flush_and_log(SystemTime::now()).await;
            }
        })
    }

    /// One flush, logging a failure when flushes start failing and when they recover.
    pub async fn flush_and_log(&self, now: SystemTime) {
        let result = self.flush(now).await;
        let was_failing = self.failing.swap(result.is_err(), Ordering::Relaxed);
        match result {
            Err(e) if !was_failing => {
                tracing::warn!(error = %e, "cannot deliver outcome and decision counts; keeping them to send again")
            }
            Ok(()) if was_failing => tracing::info!("outcome and decision counts delivered again"),
            _ => {}
        }
    }
}
