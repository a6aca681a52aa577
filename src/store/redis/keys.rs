//! The key layout of the Redis store, and how values are encoded in it.
//!
//! # Key layout
//!
//! Every key carries the hash tag `{<prefix>}`, so all of them — and so all keys of one
//! rollout — live in one Redis Cluster hash slot. That lets one Lua script update a rollout,
//! its history, the audit trail and the change stream atomically, on a single Redis or a
//! cluster alike. The data is small (rules) except enrollments, which are one sorted set per
//! rollout.
//!
//! | key                                 | type   | holds                                        |
//! |-------------------------------------|--------|----------------------------------------------|
//! | `{p}:generation`                    | string | id of this dataset; absent = Redis lost data |
//! | `{p}:rollouts`                      | hash   | rollout key → current version (JSON)         |
//! | `{p}:versions`                      | hash   | rollout key → current version number         |
//! | `{p}:history:<key>`                 | list   | every version of one rollout, oldest first   |
//! | `{p}:audit`                         | list   | every change to every rollout, oldest first  |
//! | `{p}:enrollments:<key>`             | zset   | enrolled user keys (score 0, ordered by key) |
//! | `{p}:retired`                       | hash   | deleted key → `<delete version>:<its epoch>` |
//! | `{p}:events`                        | stream | one entry per change: `kind`, `key`, `user`  |
//! | `{p}:restore-lock`                  | string | held by the replica restoring an empty Redis |
//! | `{p}:tally:<key>:<start>`           | hash   | counts of one rollout in the 10-second bucket|
//! |                                     |        | starting at Unix time `<start>`, summed over |
//! |                                     |        | every replica (`Counter::field` → count);    |
//! |                                     |        | expires after the retention                  |
//!
//! The tally keys are not part of the dataset: they are not in the last-known copy, a dump
//! or a restore (a Redis that lost them only makes the guard wait for fresh counts).
//!
//! This module only names keys and encodes values; it must not talk to Redis.

use crate::store::Retired;
use crate::tally::Bucket;

/// Key names, all under the hash tag `{prefix}`.
pub(super) struct Keys {
    tag: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            tag: format!("{{{prefix}}}"),
        }
    }
    pub(super) fn generation(&self) -> String {
        format!("{}:generation", self.tag)
    }
    pub(super) fn rollouts(&self) -> String {
        format!("{}:rollouts", self.tag)
    }
    pub(super) fn versions(&self) -> String {
        format!("{}:versions", self.tag)
    }
    pub(super) fn history(&self, key: &str) -> String {
        format!("{}:history:{key}", self.tag)
    }
    pub(super) fn audit(&self) -> String {
        format!("{}:audit", self.tag)
    }
    pub(super) fn retired(&self) -> String {
        format!("{}:retired", self.tag)
    }
    pub(super) fn enrollments(&self, key: &str) -> String {
        format!("{}:enrollments:{key}", self.tag)
    }
    pub(super) fn events(&self) -> String {
        format!("{}:events", self.tag)
    }
    pub(super) fn restore_lock(&self) -> String {
        format!("{}:restore-lock", self.tag)
    }
    pub(super) fn tally(&self, key: &str, bucket: Bucket) -> String {
        format!("{}:tally:{key}:{}", self.tag, bucket.start_seconds())
    }
}

/// A deleted rollout as `{p}:retired` holds it: `<delete version>:<epoch>` (a bare version,
/// as written before epochs were remembered, reads with epoch 0, unknown).
pub(super) fn retired_to_redis(retired: &Retired) -> String {
    format!("{}:{}", retired.version, retired.epoch)
}

pub(super) fn retired_from_redis(value: &str) -> Option<Retired> {
    let (version, epoch) = value.split_once(':').unwrap_or((value, "0"));
    Some(Retired {
        version: version.parse().ok()?,
        epoch: epoch.parse().ok()?,
    })
}
