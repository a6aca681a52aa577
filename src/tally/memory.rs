//! `MemoryTallies`: the `TallyStore` of the embedded store — one replica, so the shared
//! buckets are simply this process's memory, kept for the retention and then dropped.
//!
//! Only the flusher and readers (the guard, the admin API) use it, never the request path;
//! its lock is theirs alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{Bucket, BucketCounts, BucketRange, Retention, Tally, TallyStore};
use crate::store::StoreError;

/// Every rollout's buckets, in memory.
pub struct MemoryTallies {
    retention: Retention,
    buckets: Mutex<HashMap<String, BTreeMap<Bucket, Tally>>>,
}

impl MemoryTallies {
    pub fn new(retention: Retention) -> MemoryTallies {
        MemoryTallies {
            retention,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<Bucket, Tally>>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl TallyStore for MemoryTallies {
    async fn add(&self, counts: &[BucketCounts]) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let retention = self.retention;
        let mut all = self.lock();
        for c in counts.iter().filter(|c| retention.keeps(c.bucket, now)) {
            all.entry(c.rollout.clone())
                .or_default()
                .entry(c.bucket)
                .or_default()
                .merge(&c.tally);
        }
        // Whatever has expired goes now, as Redis would drop it.
        all.retain(|_, buckets| {
            buckets.retain(|bucket, _| retention.keeps(*bucket, now));
            !buckets.is_empty()
        });
        Ok(())
    }

    async fn read(
        &self,
        rollout: &str,
        range: BucketRange,
    ) -> Result<Vec<(Bucket, Tally)>, StoreError> {
        let range = self.retention.clip(range, SystemTime::now());
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let all = self.lock();
        Ok(all
            .get(rollout)
            .map(|buckets| {
                buckets
                    .range(range.first..=range.last)
                    .filter(|(_, tally)| !tally.is_empty())
                    .map(|(bucket, tally)| (*bucket, *tally))
                    .collect()
            })
            .unwrap_or_default())
    }
}
