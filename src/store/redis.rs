//! The Redis store: one rule set shared by many replicas, surviving Redis trouble.
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
//! This module must not validate rules or know about HTTP; it tells a `ChangeListener`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use tokio::sync::Notify;

use super::dataset::{Dataset, UserKeys};
use super::file;
use super::{
    AuditPage, Change, ChangeListener, ChangeRecord, EnrollmentPage, HistoryEntry, Loaded, Retired,
    RolloutStore, StoreError,
};
use crate::metrics::Metrics;
use crate::rules::Rollout;

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
}

const STREAM_MAXLEN: &str = "100000";
const CHECK_EVERY: Duration = Duration::from_secs(2);
const BLOCK_MS: &str = "500";

/// A connection to a single Redis or to a cluster, used the same way.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Key names, all under the hash tag `{prefix}`.
struct Keys {
    tag: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            tag: format!("{{{prefix}}}"),
        }
    }
    fn generation(&self) -> String {
        format!("{}:generation", self.tag)
    }
    fn rollouts(&self) -> String {
        format!("{}:rollouts", self.tag)
    }
    fn versions(&self) -> String {
        format!("{}:versions", self.tag)
    }
    fn history(&self, key: &str) -> String {
        format!("{}:history:{key}", self.tag)
    }
    fn audit(&self) -> String {
        format!("{}:audit", self.tag)
    }
    fn retired(&self) -> String {
        format!("{}:retired", self.tag)
    }
    fn enrollments(&self, key: &str) -> String {
        format!("{}:enrollments:{key}", self.tag)
    }
    fn events(&self) -> String {
        format!("{}:events", self.tag)
    }
    fn restore_lock(&self) -> String {
        format!("{}:restore-lock", self.tag)
    }
}

const COMMIT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'generation'} end
local cur = redis.call('HGET', KEYS[3], ARGV[2])
if ARGV[3] == '' then
  if cur then return {'exists'} end
  local last = redis.call('HGET', KEYS[8], ARGV[2])
  if last and tonumber(ARGV[5]) <= tonumber(string.match(last, '^%d+')) then return {'retired', last} end
else
  if not cur then return {'missing'} end
  if cur ~= ARGV[3] then return {'mismatch', cur} end
end
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('DEL', KEYS[4], KEYS[6])
  redis.call('HSET', KEYS[8], ARGV[2], ARGV[9])
else
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
  redis.call('RPUSH', KEYS[4], ARGV[6])
  redis.call('HDEL', KEYS[8], ARGV[2])
end
redis.call('RPUSH', KEYS[5], ARGV[7])
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[8], '*', 'kind', 'rollout', 'key', ARGV[2])
return {'ok'}
"#;

const ENROLLMENT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'generation' end
if not redis.call('HGET', KEYS[2], ARGV[2]) then return 'missing' end
local n
if ARGV[4] == 'enroll' then
  n = redis.call('ZADD', KEYS[3], 0, ARGV[3])
else
  n = redis.call('ZREM', KEYS[3], ARGV[3])
end
if n == 1 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'kind', ARGV[4], 'key', ARGV[2], 'user', ARGV[3])
  return 'changed'
end
return 'same'
"#;

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

/// Hides the password of a Redis URL, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// A deleted rollout as `{p}:retired` holds it: `<delete version>:<epoch>` (a bare version,
/// as written before epochs were remembered, reads with epoch 0, unknown).
fn retired_to_redis(retired: &Retired) -> String {
    format!("{}:{}", retired.version, retired.epoch)
}

fn retired_from_redis(value: &str) -> Option<Retired> {
    let (version, epoch) = value.split_once(':').unwrap_or((value, "0"));
    Some(Retired {
        version: version.parse().ok()?,
        epoch: epoch.parse().ok()?,
    })
}

impl RedisStore {
    /// Creates the store (no connection yet) with its last-known copy, if any.
    pub fn new(options: RedisOptions, metrics: Arc<Metrics>) -> Result<RedisStore, StoreError> {
        // `rediss://` needs a TLS crypto provider; several may be compiled in, so pick one.
        // (An error only means one is installed already.)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mirror = file::read_dataset(&options.path)?.unwrap_or_else(Dataset::empty);
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
    /// A new connection; `response_timeout` bounds each command (longer for blocking reads).
    async fn connect(&self, response_timeout: Duration) -> Result<Conn, StoreError> {
        let url = self.options.url.clone();
        let timeout = self.options.timeout;
        let conn = if self.options.cluster {
            let nodes: Vec<String> = url.split(',').map(|s| s.trim().to_string()).collect();
            let mut builder = ClusterClientBuilder::new(nodes);
            if let Some(ca) = &self.options.tls_ca {
                builder = builder.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                });
            }
            let client = builder
                .connection_timeout(timeout)
                .response_timeout(response_timeout)
                .retries(1)
                .build()
                .map_err(unavailable)?;
            Conn::Cluster(
                tokio::time::timeout(timeout * 3, client.get_async_connection())
                    .await
                    .map_err(|_| StoreError::down("timed out connecting to the cluster"))?
                    .map_err(unavailable)?,
            )
        } else {
            let client = match &self.options.tls_ca {
                Some(ca) => redis::Client::build_with_tls(
                    url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca.clone()),
                    },
                ),
                None => redis::Client::open(url.as_str()),
            }
            .map_err(unavailable)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(response_timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(2));
            Conn::Single(
                tokio::time::timeout(
                    timeout * 3,
                    ConnectionManager::new_with_config(client, config),
                )
                .await
                .map_err(|_| StoreError::down("timed out connecting"))?
                .map_err(unavailable)?,
            )
        };
        Ok(conn)
    }

    /// A connection for commands, connecting on first use.
    async fn conn(&self) -> Result<Conn, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self.connect(self.options.timeout).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// A separate connection for the blocking stream reads.
    async fn reader(&self) -> Result<Conn, StoreError> {
        self.connect(self.options.timeout + Duration::from_secs(5))
            .await
    }

    fn record(&self, op: &str, result: &Result<impl Sized, StoreError>) {
        match result {
            Err(e) if e.is_outage() => {
                self.metrics.store_reached(op, false);
                tracing::warn!(op, error = %e, "redis operation failed");
            }
            _ => self.metrics.store_reached(op, true),
        }
    }

    async fn generation(&self) -> Option<String> {
        self.mirror.lock().await.generation.clone()
    }

    /// Everything Redis holds, read key by key.
    async fn dump(&self, conn: &mut Conn, generation: String) -> Result<Dataset, StoreError> {
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

    /// `NotFound` unless the rollout exists.
    async fn require_rollout(&self, conn: &mut Conn, key: &str) -> Result<(), StoreError> {
        let exists: bool = redis::cmd("HEXISTS")
            .arg(self.keys.versions())
            .arg(key)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        if exists {
            Ok(())
        } else {
            Err(StoreError::NotFound(key.to_string()))
        }
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

    /// The id of the newest stream entry ("0-0" when empty).
    async fn stream_head(&self, conn: &mut Conn) -> Result<String, StoreError> {
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

    /// Brings the last-known copy in line with Redis, restoring Redis from the copy when Redis
    /// came back empty. Returns the dataset now in force.
    async fn sync(&self) -> Result<Dataset, StoreError> {
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

    /// Writes the last-known copy back into an empty Redis.
    async fn restore(&self, conn: &mut Conn, mirror: Dataset) -> Result<(), StoreError> {
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

    /// Saves the last-known copy when it changed, at most twice a second.
    async fn save_mirror_forever(self: Arc<Self>) {
        loop {
            self.mirror_dirty.notified().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let copy = self.mirror.lock().await.clone();
            let path = self.options.path.clone();
            let result =
                tokio::task::spawn_blocking(move || file::write_dataset(&path, &copy)).await;
            if let Err(e) = result.map_err(unavailable).and_then(|saved| saved) {
                tracing::error!(path = %self.options.path.display(), error = %e, "cannot write the last-known copy");
            }
        }
    }

    async fn run(self: Arc<Self>, listener: Arc<dyn ChangeListener>) {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        loop {
            let result = async {
                // At startup the store was loaded already — unless Redis was away then.
                let loaded_at_start =
                    first && self.synced.load(std::sync::atomic::Ordering::Acquire);
                if !loaded_at_start {
                    let data = self.sync().await?;
                    listener.replace_all(data.loaded());
                }
                first = false;
                self.follow_once(listener.as_ref()).await
            }
            .await;
            match result {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    self.metrics.store_reached("sync", false);
                    // Drop the command connection so the next attempt reconnects cleanly.
                    *self.conn.lock().await = None;
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "lost Redis; retrying");
                    first = false;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
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

#[async_trait]
impl RolloutStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn load(&self) -> Result<Loaded, StoreError> {
        let result = self.inner.sync().await;
        self.inner.record("load", &result);
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
            let mut conn = self.inner.conn().await?;
            let json: Option<String> = redis::cmd("HGET")
                .arg(self.inner.keys.rollouts())
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            json.map(|j| serde_json::from_str(&j).map_err(invalid(format!("rollout '{key}'"))))
                .transpose()
        }
        .await;
        self.inner.record("get", &result);
        result
    }

    async fn retired(&self, key: &str) -> Result<Option<Retired>, StoreError> {
        let result = async {
            let mut conn = self.inner.conn().await?;
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
            let mut conn = inner.conn().await?;
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
            _ => Err(StoreError::down(
                "the Redis dataset is not the one this replica knows (generation changed); resyncing",
            )),
        };
        inner.note(outcome)
    }

    async fn history(&self, key: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let result = async {
            let mut conn = self.inner.conn().await?;
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
            let mut conn = self.inner.conn().await?;
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
            let mut conn = self.inner.conn().await?;
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
            let mut conn = inner.conn().await?;
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
            _ => inner
                .note(Err(StoreError::down(
                    "the Redis dataset is not the one this replica knows (generation changed); resyncing",
                )))
                .map(|()| false),
        }
    }
}
