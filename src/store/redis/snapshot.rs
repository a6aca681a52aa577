//! The whole dataset in and out of Redis: read key by key into a `Dataset` (on every
//! (re)connect), and written back into a Redis that came back empty (the restore).
//!
//! This module must not decide when to restore (see `follower`); it only moves data.

use std::collections::BTreeMap;
use std::time::Duration;

use super::connection::Conn;
use super::keys::{retired_from_redis, retired_to_redis};
use super::{invalid, unavailable, Inner};
use crate::rules::Rollout;
use crate::store::dataset::{Dataset, UserKeys};
use crate::store::{HistoryEntry, StoreError};

impl Inner {
    /// Everything Redis holds, read key by key.
    pub(super) async fn dump(
        &self,
        conn: &mut Conn,
        generation: String,
    ) -> Result<Dataset, StoreError> {
        let k = &self.keys;
        let rollouts: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(k.rollouts())
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        let mut data = Dataset::empty();
        data.generation = Some(generation);
        for (key, json) in rollouts {
            let rollout: Rollout =
                serde_json::from_str(&json).map_err(invalid(format!("rollout '{key}'")))?;
            let history: Vec<String> = redis::cmd("LRANGE")
                .arg(k.history(&key))
                .arg(0)
                .arg(-1)
                .query_async(conn)
                .await
                .map_err(unavailable)?;
            let history = history
                .iter()
                .filter_map(|h| serde_json::from_str::<HistoryEntry>(h).ok())
                .collect();
            let users: Vec<String> = redis::cmd("ZRANGE")
                .arg(k.enrollments(&key))
                .arg(0)
                .arg(-1)
                .query_async(conn)
                .await
                .map_err(unavailable)?;
            data.history.insert(key.clone(), history);
            if !users.is_empty() {
                data.enrollments
                    .insert(key.clone(), users.into_iter().collect::<UserKeys>());
            }
            data.rollouts.insert(key, rollout);
        }
        let audit: Vec<String> = redis::cmd("LRANGE")
            .arg(k.audit())
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        data.audit = audit
            .iter()
            .filter_map(|a| serde_json::from_str(a).ok())
            .collect();
        let retired: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(k.retired())
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        data.retired = retired
            .into_iter()
            .filter_map(|(key, value)| Some((key, retired_from_redis(&value)?)))
            .collect();
        data.recall_retired_epochs();
        Ok(data)
    }

    /// The id of the newest stream entry ("0-0" when empty).
    pub(super) async fn stream_head(&self, conn: &mut Conn) -> Result<String, StoreError> {
        let newest: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        Ok(newest
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_string(), |(id, _)| id))
    }

    /// Writes the last-known copy back into an empty Redis.
    pub(super) async fn restore(&self, conn: &mut Conn, mirror: Dataset) -> Result<(), StoreError> {
        let k = &self.keys;
        let me = uuid::Uuid::new_v4().to_string();
        let locked: Option<String> = redis::cmd("SET")
            .arg(k.restore_lock())
            .arg(&me)
            .arg("NX")
            .arg("PX")
            .arg(60_000)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        if locked.is_none() {
            // Another replica is restoring; wait for it.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(());
        }
        let generation = mirror
            .generation
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut pipe = redis::pipe();
        for (key, rollout) in &mirror.rollouts {
            pipe.hset(
                k.rollouts(),
                key,
                serde_json::to_string(rollout).map_err(unavailable)?,
            )
            .ignore();
            pipe.hset(k.versions(), key, rollout.version.to_string())
                .ignore();
            pipe.del(k.history(key)).ignore();
            for entry in mirror.history.get(key).into_iter().flatten() {
                pipe.rpush(
                    k.history(key),
                    serde_json::to_string(entry).map_err(unavailable)?,
                )
                .ignore();
            }
        }
        pipe.del(k.audit()).ignore();
        for record in &mirror.audit {
            pipe.rpush(
                k.audit(),
                serde_json::to_string(record).map_err(unavailable)?,
            )
            .ignore();
        }
        pipe.del(k.retired()).ignore();
        for (key, retired) in &mirror.retired {
            pipe.hset(k.retired(), key, retired_to_redis(retired))
                .ignore();
        }
        let _: () = pipe.query_async(conn).await.map_err(unavailable)?;
        let mut enrolled = 0usize;
        for (key, users) in &mirror.enrollments {
            let users: Vec<&str> = users.iter().collect();
            for chunk in users.chunks(10_000) {
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(k.enrollments(key));
                for user in chunk {
                    cmd.arg(0).arg(*user);
                }
                let _: i64 = cmd.query_async(conn).await.map_err(unavailable)?;
                enrolled += chunk.len();
            }
        }
        let _: () = redis::cmd("SET")
            .arg(k.generation())
            .arg(&generation)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        let _: String = redis::cmd("XADD")
            .arg(k.events())
            .arg("*")
            .arg("kind")
            .arg("restored")
            .arg("key")
            .arg("")
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        let _: i64 = redis::cmd("DEL")
            .arg(k.restore_lock())
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        self.metrics.store_restores.inc();
        tracing::warn!(
            rollouts = mirror.rollouts.len(),
            enrollments = enrolled,
            audit_entries = mirror.audit.len(),
            copy = %self.options.path.display(),
            "Redis came back empty: restored it from the last-known copy"
        );
        Ok(())
    }
}
