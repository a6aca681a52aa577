//! The `RolloutStore` operations on Redis: reads straight from Redis (history, audit and
//! enrollments from the last-known copy while Redis is down) and writes through the Lua
//! scripts.
//!
//! This module must not follow the change stream (see `follower`).

use std::sync::Arc;

use async_trait::async_trait;
use redis::Script;

use super::connection::Conn;
use super::keys::{retired_from_redis, retired_to_redis};
use super::scripts::{COMMIT, ENROLLMENT, STREAM_MAXLEN};
use super::{invalid, unavailable, Inner, RedisStore};
use crate::rules::Rollout;
use crate::store::{
    AuditPage, Change, ChangeListener, ChangeRecord, EnrollmentPage, HistoryEntry, Loaded, Retired,
    RolloutStore, StoreError,
};

impl Inner {
    /// `NotFound` unless the rollout exists.
    async fn require_rollout(&self, conn: &mut Conn, key: &str) -> Result<(), StoreError> {
        // Both in one MULTI (one hash slot): asked one after the other, a restore finishing in
        // between would make a rollout that is there look gone.
        let (dataset, exists): (bool, bool) = redis::pipe()
            .atomic()
            .exists(self.keys.generation())
            .hexists(self.keys.versions(), key)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        if !exists {
            // Not "no such rollout" while Redis is empty and being restored.
            if !dataset {
                return Err(self.dataset_missing());
            }
            return Err(StoreError::NotFound(key.to_string()));
        }
        Ok(())
    }

    /// Reads a list of JSON entries, newest (last) first, skipping any that do not parse.
    async fn newest_first<T: serde::de::DeserializeOwned>(
        &self,
        conn: &mut Conn,
        list: String,
        from: i64,
    ) -> Result<Vec<T>, StoreError> {
        let entries: Vec<String> = redis::cmd("LRANGE")
            .arg(list)
            .arg(from)
            .arg(-1)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        Ok(entries
            .iter()
            .rev()
            .filter_map(|e| serde_json::from_str(e).ok())
            .collect())
    }
}

#[async_trait]
impl RolloutStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn load(&self) -> Result<Loaded, StoreError> {
        let result = self.inner.sync().await;
        self.inner.record("load", &result);
        self.inner
            .set_known_down(matches!(&result, Err(e) if e.is_outage()));
        match result {
            Ok(data) => Ok(data.loaded()),
            Err(e) => {
                let mirror = self.inner.mirror.lock().await;
                if mirror.generation.is_some() || !mirror.rollouts.is_empty() {
                    tracing::warn!(
                        error = %e,
                        copy = %self.inner.options.path.display(),
                        "Redis is unavailable: serving the last-known rules"
                    );
                    Ok(mirror.loaded())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn follow(&self, listener: Arc<dyn ChangeListener>) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(self.inner.clone().save_mirror_forever()),
            tokio::spawn(self.inner.clone().run(listener)),
        ]
    }

    async fn get(&self, key: &str) -> Result<Option<Rollout>, StoreError> {
        let result = async {
            let mut conn = self.inner.request_conn().await?;
            // Both in one MULTI (one hash slot), as in `require_rollout`.
            let (dataset, json): (bool, Option<String>) = redis::pipe()
                .atomic()
                .exists(self.inner.keys.generation())
                .hget(self.inner.keys.rollouts(), key)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if json.is_none() && !dataset {
                // Not "no such rollout" while Redis is empty and being restored.
                return Err(self.inner.dataset_missing());
            }
            json.map(|j| serde_json::from_str(&j).map_err(invalid(format!("rollout '{key}'"))))
                .transpose()
        }
        .await;
        self.inner.record("get", &result);
        result
    }

    async fn retired(&self, key: &str) -> Result<Option<Retired>, StoreError> {
        let result = async {
            let mut conn = self.inner.request_conn().await?;
            let value: Option<String> = redis::cmd("HGET")
                .arg(self.inner.keys.retired())
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            Ok(value.as_deref().and_then(retired_from_redis))
        }
        .await;
        self.inner.record("get", &result);
        let mut retired = result?;
        if let Some(r) = retired.as_mut().filter(|r| r.epoch == 0) {
            // Written before epochs were remembered: the copy recalled it from the audit trail.
            r.epoch = self
                .inner
                .mirror
                .lock()
                .await
                .retired
                .get(key)
                .map_or(1, |known| known.epoch.max(1));
        }
        Ok(retired)
    }

    async fn commit(&self, change: Change) -> Result<(), StoreError> {
        let inner = &self.inner;
        let k = &inner.keys;
        let generation = inner.generation().await.unwrap_or_default();
        let result: Result<Vec<String>, StoreError> = async {
            let mut conn = inner.request_conn().await?;
            let next = change
                .next
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(unavailable)?
                .unwrap_or_default();
            let history = match &change.next {
                Some(rollout) => serde_json::to_string(&HistoryEntry {
                    record: change.record.clone(),
                    rollout: rollout.clone(),
                })
                .map_err(unavailable)?,
                None => String::new(),
            };
            let audit = serde_json::to_string(&change.record).map_err(unavailable)?;
            Script::new(COMMIT)
                .key(k.generation())
                .key(k.rollouts())
                .key(k.versions())
                .key(k.history(&change.key))
                .key(k.audit())
                .key(k.enrollments(&change.key))
                .key(k.events())
                .key(k.retired())
                .arg(&generation)
                .arg(&change.key)
                .arg(
                    change
                        .expected_version
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                )
                .arg(next)
                .arg(change.record.version.to_string())
                .arg(history)
                .arg(audit)
                .arg(STREAM_MAXLEN)
                .arg(
                    change
                        .retired()
                        .map(|r| retired_to_redis(&r))
                        .unwrap_or_default(),
                )
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)
        }
        .await;
        inner.record("commit", &result);
        let reply = result?;
        let outcome = match reply.first().map(String::as_str) {
            Some("ok") => Ok(()),
            Some("exists") => Err(StoreError::AlreadyExists(change.key)),
            Some("missing") => Err(StoreError::NotFound(change.key)),
            Some("retired") => Err(StoreError::Retired {
                last: reply
                    .get(1)
                    .and_then(|v| retired_from_redis(v))
                    .unwrap_or(Retired {
                        version: 0,
                        epoch: 0,
                    }),
                key: change.key,
            }),
            Some("mismatch") => Err(StoreError::VersionMismatch {
                key: change.key,
                expected: change.expected_version.unwrap_or(0),
                current: reply.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
            }),
            Some("empty") => Err(inner.dataset_missing()),
            _ => Err(StoreError::down(
                "the Redis dataset is not the one this replica knows (generation changed); resyncing",
            )),
        };
        inner.note(outcome)
    }

    async fn history(&self, key: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let result = async {
            let mut conn = self.inner.request_conn().await?;
            self.inner.require_rollout(&mut conn, key).await?;
            self.inner
                .newest_first(&mut conn, self.inner.keys.history(key), 0)
                .await
        }
        .await;
        self.inner.record("history", &result);
        match result {
            Err(e) if e.is_outage() => self.inner.mirror.lock().await.history_of(key),
            other => other,
        }
    }

    async fn audit(&self, before: Option<u64>, limit: usize) -> Result<AuditPage, StoreError> {
        let result = async {
            let mut conn = self.inner.request_conn().await?;
            // An empty trail while Redis is being restored is not the trail.
            self.inner.require_dataset(&mut conn).await?;
            // The list only grows at its end, so a record's index is its cursor.
            let len: u64 = redis::cmd("LLEN")
                .arg(self.inner.keys.audit())
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let window = AuditPage::window(len, before, limit);
            let entries: Vec<String> = if window.is_empty() {
                Vec::new()
            } else {
                redis::cmd("LRANGE")
                    .arg(self.inner.keys.audit())
                    .arg(window.start)
                    .arg(window.end - 1)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?
            };
            let records: Vec<ChangeRecord> = entries
                .iter()
                .filter_map(|e| serde_json::from_str(e).ok())
                .collect();
            Ok(AuditPage::new(window, records.into_iter()))
        }
        .await;
        self.inner.record("audit", &result);
        match result {
            Err(e) if e.is_outage() => Ok(self.inner.mirror.lock().await.audit_page(before, limit)),
            other => other,
        }
    }

    async fn enroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError> {
        self.enrollment(key, user_key, "enroll").await
    }

    async fn unenroll(&self, key: &str, user_key: &str) -> Result<bool, StoreError> {
        self.enrollment(key, user_key, "unenroll").await
    }

    async fn enrollments(
        &self,
        key: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EnrollmentPage, StoreError> {
        let result = async {
            let mut conn = self.inner.request_conn().await?;
            self.inner.require_rollout(&mut conn, key).await?;
            let min = cursor.map_or_else(|| "-".to_string(), |c| format!("({c}"));
            let user_keys: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(self.inner.keys.enrollments(key))
                .arg(min)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(limit + 1)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            Ok(EnrollmentPage::from_overfetch(user_keys, limit))
        }
        .await;
        self.inner.record("enrollments", &result);
        match result {
            Err(e) if e.is_outage() => self
                .inner
                .mirror
                .lock()
                .await
                .enrollment_page(key, cursor, limit),
            other => other,
        }
    }
}

impl RedisStore {
    async fn enrollment(&self, key: &str, user_key: &str, op: &str) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let k = &inner.keys;
        let generation = inner.generation().await.unwrap_or_default();
        let result: Result<String, StoreError> = async {
            let mut conn = inner.request_conn().await?;
            Script::new(ENROLLMENT)
                .key(k.generation())
                .key(k.versions())
                .key(k.enrollments(key))
                .key(k.events())
                .arg(&generation)
                .arg(key)
                .arg(user_key)
                .arg(op)
                .arg(STREAM_MAXLEN)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)
        }
        .await;
        inner.record(op, &result);
        match result?.as_str() {
            "changed" => Ok(true),
            "same" => Ok(false),
            "missing" => Err(StoreError::NotFound(key.to_string())),
            "empty" => Err(inner.dataset_missing()),
            _ => inner
                .note(Err(StoreError::down(
                    "the Redis dataset is not the one this replica knows (generation changed); resyncing",
                )))
                .map(|()| false),
        }
    }
}
