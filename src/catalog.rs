//! The in-memory catalog that decisions are answered from: every rollout's current version,
//! compiled, and every rollout's enrollments.
//!
//! Readers take a lock-free snapshot (`arc_swap`) and a lock-free set (`papaya`): a decision
//! never waits for a writer or the store. Writers install whole compiled versions; a version
//! older than the one installed is ignored, so late or repeated updates cannot go backwards.
//! This module must not talk to the store or know about HTTP.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::metrics::{Metrics, RolloutCounters};
use crate::rules::{compile, CompiledRollout, Rollout, ValidationErrors};
use crate::store::{ChangeListener, Loaded, UserKeyHash};

/// One rollout as deciders see it: the stored form (for the admin API), the compiled form
/// (for evaluation) and its pre-resolved counters.
pub struct LiveRollout {
    pub rollout: Rollout,
    pub compiled: CompiledRollout,
    pub counters: RolloutCounters,
    pub enrollments: Arc<EnrollmentSet>,
}

/// The users of one rollout who signed up through Stytch. Kept as 128-bit hashes of the user
/// keys (the store keeps the keys themselves), so membership is one lock-free lookup and a
/// million enrollments take tens of megabytes.
#[derive(Default)]
pub struct EnrollmentSet {
    hashes: papaya::HashSet<u128>,
}

impl EnrollmentSet {
    fn hash(user_key: &str) -> u128 {
        UserKeyHash::of(user_key).0
    }

    /// A set of the given hashes, built in one go.
    pub fn from_hashes(hashes: &[UserKeyHash]) -> EnrollmentSet {
        let set = EnrollmentSet {
            hashes: papaya::HashSet::with_capacity(hashes.len()),
        };
        {
            let pinned = set.hashes.pin();
            for h in hashes {
                pinned.insert(h.0);
            }
        }
        set
    }

    pub fn contains(&self, user_key: &str) -> bool {
        self.hashes.pin().contains(&Self::hash(user_key))
    }

    pub fn insert(&self, user_key: &str) -> bool {
        self.hashes.pin().insert(Self::hash(user_key))
    }

    pub fn remove(&self, user_key: &str) -> bool {
        self.hashes.pin().remove(&Self::hash(user_key))
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type Snapshot = HashMap<Box<str>, Arc<LiveRollout>>;

pub struct Catalog {
    rollouts: ArcSwap<Snapshot>,
    /// Enrollment sets outlive rollout versions: they are keyed by rollout key alone.
    enrollments: Mutex<HashMap<Box<str>, Arc<EnrollmentSet>>>,
    /// Serialises writers (installs are rare); readers never take it.
    writer: Mutex<()>,
    /// Rules have been loaded at least once (`/readyz`).
    ready: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Catalog {
    pub fn new(metrics: Arc<Metrics>) -> Catalog {
        Catalog {
            rollouts: ArcSwap::from_pointee(HashMap::new()),
            enrollments: Mutex::new(HashMap::new()),
            writer: Mutex::new(()),
            ready: AtomicBool::new(false),
            metrics,
        }
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
        let mut next: Snapshot = HashMap::new();
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
                    compiled,
                    rollout,
                }),
            );
        }
        for gone in previous.keys().filter(|k| !next.contains_key(*k)) {
            self.metrics.forget_rollout(gone);
        }
        {
            let mut all = self.enrollments.lock().unwrap_or_else(|e| e.into_inner());
            all.clear();
            for (key, live) in &next {
                all.insert(key.clone(), live.enrollments.clone());
            }
        }
        self.rollouts.store(Arc::new(next));
        self.mark_ready();
    }

    /// The current version of a rollout.
    pub fn get(&self, key: &str) -> Option<Arc<LiveRollout>> {
        self.rollouts.load().get(key).cloned()
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
        self.metrics.forget_rollout(key);
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
