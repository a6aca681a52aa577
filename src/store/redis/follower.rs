//! The background follower of each replica: reads the change stream, tells the listener,
//! checks every few seconds that it is in step, and on every (re)connect resyncs — restoring
//! an empty Redis from the last-known copy.
//!
//! This module must not serve requests; writes and reads are in `operations`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection::Conn;
use super::keys::retired_from_redis;
use super::{unavailable, Inner};
use crate::rules::Rollout;
use crate::store::dataset::Dataset;
use crate::store::{ChangeListener, StoreError};

const CHECK_EVERY: Duration = Duration::from_secs(2);
const BLOCK_MS: &str = "500";
/// The wait before reconnecting after a failure, doubled on each failure in a row...
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// ...up to this: a replica is back within this (plus one refused connect) of Redis returning.
const RECONNECT_AT_MOST: Duration = Duration::from_millis(250);

/// A stream entry: `kind` is `rollout`, `enroll`, `unenroll` or `restored`.
struct Event {
    id: String,
    kind: String,
    key: String,
    user: String,
}

type XReadReply = Option<Vec<(String, Vec<(String, Vec<String>)>)>>;

fn event_from(id: String, fields: Vec<String>) -> Event {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    Event {
        id,
        kind: map.remove("kind").unwrap_or_default(),
        key: map.remove("key").unwrap_or_default(),
        user: map.remove("user").unwrap_or_default(),
    }
}

impl Inner {
    /// Brings the last-known copy in line with Redis, restoring Redis from the copy when Redis
    /// came back empty. Returns the dataset now in force.
    pub(super) async fn sync(&self) -> Result<Dataset, StoreError> {
        let mut conn = self.conn().await?;
        loop {
            let generation: Option<String> = redis::cmd("GET")
                .arg(self.keys.generation())
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            match generation {
                Some(generation) => {
                    let head = self.stream_head(&mut conn).await?;
                    let data = self.dump(&mut conn, generation.clone()).await?;
                    {
                        let mut mirror = self.mirror.lock().await;
                        if let Some(known) = &mirror.generation {
                            if known != &generation {
                                tracing::warn!(
                                    "Redis holds another dataset than the last-known copy; following Redis"
                                );
                            }
                        }
                        *mirror = data.clone();
                    }
                    *self.last_event.lock().unwrap_or_else(|e| e.into_inner()) = head;
                    self.synced
                        .store(true, std::sync::atomic::Ordering::Release);
                    self.mirror_dirty.notify_one();
                    self.metrics
                        .last_sync
                        .set(chrono::Utc::now().timestamp() as f64);
                    return Ok(data);
                }
                None => {
                    let mirror = self.mirror.lock().await.clone();
                    let has_history = mirror.generation.is_some() || !mirror.audit.is_empty();
                    if has_history {
                        self.restore(&mut conn, mirror).await?;
                    } else {
                        let fresh = uuid::Uuid::new_v4().to_string();
                        let _: Option<String> = redis::cmd("SET")
                            .arg(self.keys.generation())
                            .arg(&fresh)
                            .arg("NX")
                            .query_async(&mut conn)
                            .await
                            .map_err(unavailable)?;
                    }
                    // Loop: read the dataset now in force.
                }
            }
        }
    }

    /// Applies one stream event to the copy and the listener.
    async fn apply(
        &self,
        conn: &mut Conn,
        event: &Event,
        listener: &dyn ChangeListener,
    ) -> Result<bool, StoreError> {
        match event.kind.as_str() {
            "rollout" => {
                let k = &self.keys;
                let json: Option<String> = redis::cmd("HGET")
                    .arg(k.rollouts())
                    .arg(&event.key)
                    .query_async(conn)
                    .await
                    .map_err(unavailable)?;
                let history: Vec<String> = redis::cmd("LRANGE")
                    .arg(k.history(&event.key))
                    .arg(0)
                    .arg(-1)
                    .query_async(conn)
                    .await
                    .map_err(unavailable)?;
                let retired: Option<String> = redis::cmd("HGET")
                    .arg(k.retired())
                    .arg(&event.key)
                    .query_async(conn)
                    .await
                    .map_err(unavailable)?;
                let mut mirror = self.mirror.lock().await;
                match retired.as_deref().and_then(retired_from_redis) {
                    Some(retired) => mirror.retired.insert(event.key.clone(), retired),
                    None => mirror.retired.remove(&event.key),
                };
                let audit: Vec<String> = redis::cmd("LRANGE")
                    .arg(k.audit())
                    .arg(mirror.audit.len())
                    .arg(-1)
                    .query_async(conn)
                    .await
                    .map_err(unavailable)?;
                mirror
                    .audit
                    .extend(audit.iter().filter_map(|a| serde_json::from_str(a).ok()));
                match json.and_then(|j| serde_json::from_str::<Rollout>(&j).ok()) {
                    Some(rollout) => {
                        mirror.history.insert(
                            event.key.clone(),
                            history
                                .iter()
                                .filter_map(|h| serde_json::from_str(h).ok())
                                .collect(),
                        );
                        mirror.rollouts.insert(event.key.clone(), rollout.clone());
                        listener.rollout_changed(rollout);
                    }
                    None => {
                        mirror.rollouts.remove(&event.key);
                        mirror.history.remove(&event.key);
                        mirror.enrollments.remove(&event.key);
                        listener.rollout_removed(&event.key);
                    }
                }
            }
            "enroll" => {
                self.mirror.lock().await.enroll(&event.key, &event.user);
                listener.enrolled(&event.key, &event.user);
            }
            "unenroll" => {
                self.mirror.lock().await.unenroll(&event.key, &event.user);
                listener.unenrolled(&event.key, &event.user);
            }
            "restored" => return Ok(false),
            _ => {}
        }
        self.mirror_dirty.notify_one();
        Ok(true)
    }

    /// Whether Redis still holds our generation and the versions we have.
    async fn in_step(&self, conn: &mut Conn) -> Result<bool, StoreError> {
        let generation: Option<String> = redis::cmd("GET")
            .arg(self.keys.generation())
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        if generation != self.generation().await {
            return Ok(false);
        }
        let versions: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.versions())
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        let mirror = self.mirror.lock().await;
        let ours: BTreeMap<String, String> = mirror
            .rollouts
            .iter()
            .map(|(k, r)| (k.clone(), r.version.to_string()))
            .collect();
        Ok(versions == ours)
    }

    /// Follows the stream until something goes wrong or a full resync is needed.
    async fn follow_once(&self, listener: &dyn ChangeListener) -> Result<(), StoreError> {
        let mut reader = self.reader().await?;
        let mut conn = self.conn().await?;
        let mut last_check = Instant::now();
        loop {
            let from = self
                .last_event
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let mut xread = redis::cmd("XREAD");
            xread
                .arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(self.keys.events())
                .arg(&from);
            let reply: XReadReply = tokio::select! {
                r = xread.query_async(&mut reader) => r.map_err(unavailable)?,
                () = self.resync.notified() => return Ok(()),
            };
            for (_, entries) in reply.unwrap_or_default() {
                for (id, fields) in entries {
                    let event = event_from(id, fields);
                    if !self.apply(&mut conn, &event, listener).await? {
                        return Ok(());
                    }
                    *self.last_event.lock().unwrap_or_else(|e| e.into_inner()) = event.id;
                }
            }
            self.metrics.store_reached("follow", true);
            self.metrics
                .last_sync
                .set(chrono::Utc::now().timestamp() as f64);
            if last_check.elapsed() >= CHECK_EVERY {
                last_check = Instant::now();
                if !self.in_step(&mut conn).await? {
                    tracing::info!("replica out of step with Redis; reloading");
                    return Ok(());
                }
            }
        }
    }

    /// Follows Redis forever: syncs, follows the stream, and after any failure waits and
    /// starts again — 0.1 s, doubling to at most `RECONNECT_AT_MOST`, so that a replica is
    /// back within a fraction of a second of Redis returning, however long it was away, while
    /// a Redis that is down gets only a few (cheap, refused) connects a second.
    pub(super) async fn run(self: Arc<Self>, listener: Arc<dyn ChangeListener>) {
        let mut backoff = RECONNECT_FIRST;
        let mut first = true;
        loop {
            let result = async {
                // At startup the store was loaded already — unless Redis was away then.
                let loaded_at_start =
                    first && self.synced.load(std::sync::atomic::Ordering::Acquire);
                if !loaded_at_start {
                    let data = self.sync().await?;
                    // Back: say so now, not after the first blocking read of the stream.
                    self.metrics.store_reached("sync", true);
                    self.set_known_down(false);
                    listener.replace_all(data.loaded());
                }
                first = false;
                self.follow_once(listener.as_ref()).await
            }
            .await;
            match result {
                Ok(()) => backoff = RECONNECT_FIRST,
                Err(e) => {
                    self.metrics.store_reached("sync", false);
                    // Requests now answer 503 at once, until the next sync succeeds.
                    self.set_known_down(true);
                    // Drop the command connection so the next attempt reconnects cleanly.
                    *self.conn.lock().await = None;
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "lost Redis; retrying");
                    first = false;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RECONNECT_AT_MOST);
                }
            }
        }
    }
}
