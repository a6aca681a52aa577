//! The in-memory catalog that decisions are answered from: every rollout's current version,
//! compiled, and every rollout's enrollments.
//!
//! Readers take lock-free snapshots (`arc_swap`) of the rollouts and of sharded enrollment
//! sets: a decision never waits for a writer or the store. Writers install whole compiled versions; a version
//! older than the one installed is ignored, so late or repeated updates cannot go backwards.
//! Background tasks (the schedule runner) can wait for the rollouts to change
//! (`Catalog::changes`); deciders never do. This module must not talk to the store or know
//! about HTTP.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::metrics::{Metrics, RolloutCounters};
use crate::rules::{compile, CompiledRollout, Rollout, ValidationErrors};
use crate::store::{ChangeListener, Loaded, UserKeyHash};
use crate::tally::{Counter, LiveTally, LoginOutcome};

/// One rollout as deciders see it: the stored form (for the admin API), the compiled form
/// (for evaluation), its pre-resolved counters and its counts not yet flushed.
pub struct LiveRollout {
    pub rollout: Rollout,
    pub compiled: CompiledRollout,
    pub counters: RolloutCounters,
    pub enrollments: Arc<EnrollmentSet>,
    /// Outcomes and decisions counted since the last flush (`crate::tally`); shared by all
    /// versions of the rollout.
    pub tally: Arc<LiveTally>,
}

impl LiveRollout {
    /// Counts a login attempt's outcome: its metric, and the counts the guard reads.
    pub fn count_outcome(&self, flow: crate::rules::Flow, outcome: LoginOutcome) {
        self.counters.outcome(flow, outcome).inc();
        self.tally.count(Counter::outcome(flow, outcome));
    }
}

/// The users of one rollout who signed up through Stytch, as 128-bit hashes of their user
/// keys (the store keeps the keys themselves). The hashes are spread over shards, each an
/// immutable set behind an `ArcSwap`: a lookup is one atomic load and one probe, never a lock;
/// a write copies one shard (1/64 of the set) and swaps it in. A million enrollments take about
/// 30 MB.
pub struct EnrollmentSet {
    shards: Box<[ArcSwap<Shard>]>,
    len: AtomicUsize,
}

/// One shard: the hashes are uniformly random already, so they hash to themselves.
type Shard = HashSet<u128, BuildHasherDefault<IdentityHasher>>;

const SHARDS: usize = 64;

#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128s are hashed here (see `write_u128`); fold anything else.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

impl Default for EnrollmentSet {
    fn default() -> Self {
        EnrollmentSet::from_hashes(&[])
    }
}

impl EnrollmentSet {
    fn hash(user_key: &str) -> u128 {
        UserKeyHash::of(user_key).0
    }

    fn shard_of(hash: u128) -> usize {
        (hash >> 122) as usize % SHARDS
    }

    /// A set of the given hashes, built in one go.
    pub fn from_hashes(hashes: &[UserKeyHash]) -> EnrollmentSet {
        let mut shards: Vec<Shard> = (0..SHARDS)
            .map(|_| Shard::with_capacity_and_hasher(hashes.len() / SHARDS, Default::default()))
            .collect();
        for h in hashes {
            shards[Self::shard_of(h.0)].insert(h.0);
        }
        let len = shards.iter().map(HashSet::len).sum();
        EnrollmentSet {
            shards: shards.into_iter().map(ArcSwap::from_pointee).collect(),
            len: AtomicUsize::new(len),
        }
    }

    pub fn contains(&self, user_key: &str) -> bool {
        let h = Self::hash(user_key);
        self.shards[Self::shard_of(h)].load().contains(&h)
    }

    /// Copies the shard with `change` applied and swaps it in; returns whether it changed.
    fn update(&self, h: u128, change: impl Fn(&mut Shard, u128) -> bool) -> bool {
        let mut changed = false;
        self.shards[Self::shard_of(h)].rcu(|shard| {
            let mut next = Shard::clone(shard);
            changed = change(&mut next, h);
            next
        });
        changed
    }

    pub fn insert(&self, user_key: &str) -> bool {
        let added = self.update(Self::hash(user_key), |s, h| s.insert(h));
        if added {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        added
    }

    pub fn remove(&self, user_key: &str) -> bool {
        let removed = self.update(Self::hash(user_key), |s, h| s.remove(&h));
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rollouts by key. Looked up on every decision: hashed with foldhash (seeded per process),
/// not SipHash, which costs more than the rest of the lookup.
type Snapshot = HashMap<Box<str>, Arc<LiveRollout>, foldhash::fast::RandomState>;

/// Gives each catalog an identity for the per-thread caches of [`Catalog::get`].
static CATALOGS: AtomicU64 = AtomicU64::new(0);

/// A worker thread's handle on one catalog's current snapshot: an `arc_swap` cache, which
/// checks the pointer with one plain load and takes a new snapshot only after a change.
type SnapshotCache = arc_swap::Cache<Arc<ArcSwap<Snapshot>>, Arc<Snapshot>>;

/// The catalogs a thread has decided from (one in the service; more in tests, which start
/// several apps in one process). Past this many the list starts over.
const CACHED_CATALOGS: usize = 8;

pub struct Catalog {
    /// This catalog among the process's (never reused).
    id: u64,
    rollouts: Arc<ArcSwap<Snapshot>>,
    /// Enrollment sets outlive rollout versions: they are keyed by rollout key alone.
    enrollments: Mutex<HashMap<Box<str>, Arc<EnrollmentSet>>>,
    /// So do the counts not yet flushed.
    tallies: Mutex<HashMap<Box<str>, Arc<LiveTally>>>,
    /// Serialises writers (installs are rare); readers never take it.
    writer: Mutex<()>,
    /// Rules have been loaded at least once (`/readyz`).
    ready: AtomicBool,
    /// Counts rollout changes (installs, removals, reloads), for tasks that wait for them.
    changes: tokio::sync::watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

impl Catalog {
    pub fn new(metrics: Arc<Metrics>) -> Catalog {
        Catalog {
            id: CATALOGS.fetch_add(1, Ordering::Relaxed),
            rollouts: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            enrollments: Mutex::new(HashMap::new()),
            tallies: Mutex::new(HashMap::new()),
            writer: Mutex::new(()),
            ready: AtomicBool::new(false),
            changes: tokio::sync::watch::Sender::new(0),
            metrics,
        }
    }

    /// A receiver that is told whenever a rollout is installed, removed or reloaded (the
    /// schedule runner waits on it). Deciders never touch it.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Replaces everything with `loaded` (rollouts and enrollments), whatever the versions.
    pub fn replace_all(&self, loaded: Loaded) {
        let mut sets: HashMap<Box<str>, Arc<EnrollmentSet>> = loaded
            .enrollments
            .iter()
            .map(|(key, hashes)| {
                (
                    key.as_str().into(),
                    Arc::new(EnrollmentSet::from_hashes(hashes)),
                )
            })
            .collect();
        let mut next = Snapshot::default();
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let previous = self.rollouts.load();
        for rollout in loaded.rollouts {
            let key = rollout.key.clone();
            let compiled = match compile(&rollout) {
                Ok(c) => c,
                Err(errors) => {
                    tracing::error!(rollout = %key, %errors, "stored rollout is invalid; skipped");
                    continue;
                }
            };
            let enrollments = sets.remove(key.as_str()).unwrap_or_default();
            self.metrics.describe_rollout(
                &key,
                rollout.content.percentage,
                rollout.content.enabled,
                rollout.version,
            );
            self.metrics
                .enrollments
                .with_label_values(&[&key])
                .set(enrollments.len() as i64);
            next.insert(
                key.as_str().into(),
                Arc::new(LiveRollout {
                    counters: self.metrics.rollout_counters(&key, &compiled.rule_ids()),
                    enrollments: enrollments.clone(),
                    tally: self.tally_of(&key),
                    compiled,
                    rollout,
                }),
            );
        }
        for gone in previous.keys().filter(|k| !next.contains_key(*k)) {
            self.metrics.forget_rollout(gone);
        }
        self.tallies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|key, _| next.contains_key(key));
        {
            let mut all = self.enrollments.lock().unwrap_or_else(|e| e.into_inner());
            all.clear();
            for (key, live) in &next {
                all.insert(key.clone(), live.enrollments.clone());
            }
        }
        self.rollouts.store(Arc::new(next));
        self.mark_ready();
        self.changed();
    }

    /// The current version of a rollout. Read through a per-thread cache of the snapshot: on
    /// every decision, one plain load sees whether the rollouts changed (then the cache takes
    /// the new snapshot at once), instead of `arc_swap`'s full load and its atomic writes. A
    /// thread keeps the last snapshot it saw alive until its next decision.
    pub fn get(&self, key: &str) -> Option<Arc<LiveRollout>> {
        use std::cell::RefCell;
        thread_local! {
            static SNAPSHOTS: RefCell<Vec<(u64, SnapshotCache)>> = const { RefCell::new(Vec::new()) };
        }
        SNAPSHOTS.with(|caches| {
            let mut caches = caches.borrow_mut();
            let at = match caches.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    if caches.len() >= CACHED_CATALOGS {
                        caches.clear();
                    }
                    caches.push((self.id, arc_swap::Cache::new(self.rollouts.clone())));
                    caches.len() - 1
                }
            };
            caches[at].1.load().get(key).cloned()
        })
    }

    /// Every rollout, sorted by key.
    pub fn all(&self) -> Vec<Arc<LiveRollout>> {
        let mut all: Vec<_> = self.rollouts.load().values().cloned().collect();
        all.sort_by(|a, b| a.rollout.key.cmp(&b.rollout.key));
        all
    }

    pub fn is_empty(&self) -> bool {
        self.rollouts.load().is_empty()
    }

    fn enrollment_set(&self, key: &str) -> Arc<EnrollmentSet> {
        let mut sets = self.enrollments.lock().unwrap_or_else(|e| e.into_inner());
        sets.entry(key.into()).or_default().clone()
    }

    fn tally_of(&self, key: &str) -> Arc<LiveTally> {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies.entry(key.into()).or_default().clone()
    }

    /// Compiles and installs a rollout version unless a newer one is installed already.
    /// Returns whether it was installed.
    pub fn install(&self, rollout: Rollout) -> Result<bool, ValidationErrors> {
        let compiled = compile(&rollout)?;
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.rollouts.load();
        if let Some(existing) = current.get(rollout.key.as_str()) {
            if existing.rollout.version >= rollout.version {
                return Ok(false);
            }
        }
        let key = rollout.key.clone();
        let live = Arc::new(LiveRollout {
            counters: self.metrics.rollout_counters(&key, &compiled.rule_ids()),
            enrollments: self.enrollment_set(&key),
            tally: self.tally_of(&key),
            compiled,
            rollout,
        });
        self.metrics.describe_rollout(
            &key,
            live.rollout.content.percentage,
            live.rollout.content.enabled,
            live.rollout.version,
        );
        self.metrics
            .enrollments
            .with_label_values(&[&key])
            .set(live.enrollments.len() as i64);
        let mut next: Snapshot = (**current).clone();
        next.insert(key.into(), live);
        self.rollouts.store(Arc::new(next));
        self.changed();
        Ok(true)
    }

    /// Removes a rollout and its enrollments.
    pub fn remove(&self, key: &str) -> bool {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.rollouts.load();
        if !current.contains_key(key) {
            return false;
        }
        let mut next: Snapshot = (**current).clone();
        next.remove(key);
        self.rollouts.store(Arc::new(next));
        self.enrollments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.tallies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.metrics.forget_rollout(key);
        self.changed();
        true
    }

    /// Installs the enrollments of a rollout at load time.
    pub fn load_enrollments(&self, key: &str, hashes: &[UserKeyHash]) {
        let set = Arc::new(EnrollmentSet::from_hashes(hashes));
        let count = set.len();
        self.enrollments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.into(), set.clone());
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.rollouts.load();
        if let Some(live) = current.get(key) {
            let mut next: Snapshot = (**current).clone();
            next.insert(
                key.into(),
                Arc::new(LiveRollout {
                    rollout: live.rollout.clone(),
                    compiled: live.compiled.clone(),
                    counters: live.counters.clone(),
                    enrollments: set,
                    tally: live.tally.clone(),
                }),
            );
            self.rollouts.store(Arc::new(next));
        }
        self.metrics
            .enrollments
            .with_label_values(&[key])
            .set(count as i64);
    }

    /// Records an enrollment in memory (after the store has it).
    pub fn enroll(&self, key: &str, user_key: &str) {
        let set = self.enrollment_set(key);
        set.insert(user_key);
        self.metrics
            .enrollments
            .with_label_values(&[key])
            .set(set.len() as i64);
    }

    pub fn unenroll(&self, key: &str, user_key: &str) {
        let set = self.enrollment_set(key);
        set.remove(user_key);
        self.metrics
            .enrollments
            .with_label_values(&[key])
            .set(set.len() as i64);
    }
}

impl ChangeListener for Catalog {
    fn rollout_changed(&self, rollout: Rollout) {
        let key = rollout.key.clone();
        if let Err(errors) = self.install(rollout) {
            tracing::error!(rollout = %key, %errors, "stored rollout is invalid; kept the previous version");
        }
    }

    fn rollout_removed(&self, key: &str) {
        self.remove(key);
    }

    fn enrolled(&self, key: &str, user_key: &str) {
        self.enroll(key, user_key);
    }

    fn unenrolled(&self, key: &str, user_key: &str) {
        self.unenroll(key, user_key);
    }

    fn replace_all(&self, loaded: Loaded) {
        Catalog::replace_all(self, loaded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_sets_answer_membership_and_count() {
        let set = EnrollmentSet::from_hashes(&[UserKeyHash::of("a"), UserKeyHash::of("b")]);
        assert!(set.contains("a") && set.contains("b") && !set.contains("c"));
        assert_eq!(set.len(), 2);
        assert!(set.insert("c"));
        assert!(!set.insert("c"));
        assert!(set.remove("a"));
        assert!(!set.remove("a"));
        assert!(!set.contains("a") && set.contains("c"));
        assert_eq!(set.len(), 2);
        let many: Vec<UserKeyHash> = (0..10_000)
            .map(|i| UserKeyHash::of(&format!("u{i}")))
            .collect();
        let set = EnrollmentSet::from_hashes(&many);
        assert_eq!(set.len(), 10_000);
        assert!((0..10_000).all(|i| set.contains(&format!("u{i}"))));
        assert!(!set.contains("u10000"));
    }
}
