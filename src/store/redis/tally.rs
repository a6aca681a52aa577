//! The `TallyStore` on Redis: every replica adds its counts to shared hashes, one per rollout
//! and 10-second bucket (`{p}:tally:<key>:<start>`, see `keys`), which expire after the
//! retention. A flush is one `MULTI` (`HINCRBY` each count, `EXPIREAT` each key); a read is
//! one `MULTI` of `HMGET`s. Every key carries the store's hash tag, so on a cluster both go
//! to one node in one round trip.
//!
//! This module must not follow the change stream or touch the dataset's keys.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{unavailable, RedisStore};
use crate::store::StoreError;
use crate::tally::{Bucket, BucketCounts, BucketRange, Counter, Tally, TallyStore};

#[async_trait]
impl TallyStore for RedisStore {
    async fn add(&self, counts: &[BucketCounts]) -> Result<(), StoreError> {
        let inner = &self.inner;
        let result = async {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for c in counts {
                let key = inner.keys.tally(&c.rollout, c.bucket);
                for counter in Counter::ALL {
                    let n = c.tally.get(counter);
                    if n > 0 {
                        pipe.hincr(&key, counter.field(), n).ignore();
                    }
                }
                let expiry = inner.options.tally_retention.expiry_of(c.bucket);
                pipe.expire_at(&key, i64::try_from(expiry).unwrap_or(i64::MAX))
                    .ignore();
            }
            let mut conn = inner.request_conn().await?;
            pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
        }
        .await;
        inner.record("tally_add", &result);
        result
    }

    async fn read(
        &self,
        rollout: &str,
        range: BucketRange,
    ) -> Result<Vec<(Bucket, Tally)>, StoreError> {
        let inner = &self.inner;
        let range = inner.options.tally_retention.clip(range, SystemTime::now());
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let result = async {
            let mut pipe = redis::pipe();
            pipe.atomic();
            let fields = Counter::ALL.map(Counter::field);
            for bucket in range.iter() {
                pipe.hmget(inner.keys.tally(rollout, bucket), &fields[..]);
            }
            let mut conn = inner.request_conn().await?;
            let rows: Vec<Vec<Option<u64>>> =
                pipe.query_async(&mut conn).await.map_err(unavailable)?;
            Ok(range
                .iter()
                .zip(rows)
                .filter_map(|(bucket, row)| {
                    let mut tally = Tally::default();
                    for (counter, n) in Counter::ALL.into_iter().zip(row) {
                        tally.add(counter, n.unwrap_or(0));
                    }
                    (!tally.is_empty()).then_some((bucket, tally))
                })
                .collect())
        }
        .await;
        inner.record("tally_read", &result);
        result
    }
}
