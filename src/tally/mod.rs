//! Counting what happens to each rollout over time — login outcomes (`POST /v1/outcomes`) and
//! decisions, by flow — in 10-second buckets that every replica adds its counts to, so the
//! guard (SPEC §9) can judge the last `window_seconds` across all replicas and the admin page
//! can show counts per minute.
//!
//! # How counts travel
//!
//! 1. On the request path a count is one relaxed atomic add to the rollout's `LiveTally`
//!    (held by its `LiveRollout`): no lock, no clock, no allocation, no store.
//! 2. Every second the `Flusher` takes what every `LiveTally` holds, files it under the
//!    bucket of that moment, and adds it to the `TallyStore` in one step (with Redis: one
//!    `MULTI` round trip for every rollout and bucket). Counts it could not deliver are kept
//!    and sent with the next flush, for as long as their bucket is retained.
//! 3. Readers (the guard) ask the `TallyStore` for a rollout's buckets in a `BucketRange`:
//!    what every replica has flushed.
//!
//! A replica that dies loses what it counted since its last flush: at most a second. One
//! that is stopped flushes once more first.
//!
//! # Why 10-second buckets
//!
//! Guard windows are minutes long (600 s by default, at most `guards.max_window_seconds`) and
//! the guard looks every 10 s; the admin page wants minutes. Ten-second buckets keep a
//! window's read to 60 keys (360 for an hour) instead of 600, and the keys in Redis ten times
//! fewer, while the window's edge is still exact to 10 s. A count is filed under the bucket of
//! the flush that carried it, at most a second after it happened.
//!
//! This module must not know about HTTP, and nothing in it may be called on the request path
//! but `LiveTally::count`.

pub mod flusher;
pub mod live;
pub mod memory;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::guard::FlowOutcomes;
use crate::rules::Flow;
use crate::store::StoreError;

pub use flusher::Flusher;
pub use live::LiveTally;
pub use memory::MemoryTallies;

/// How a login attempt ended, as the application reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginOutcome {
    Success,
    Failure,
}

impl LoginOutcome {
    pub const ALL: [LoginOutcome; 2] = [LoginOutcome::Success, LoginOutcome::Failure];

    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::Failure => "failure",
        }
    }
}

/// One of the six things counted per rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    StytchSuccess,
    StytchFailure,
    LegacySuccess,
    LegacyFailure,
    StytchDecision,
    LegacyDecision,
}

impl Counter {
    pub const ALL: [Counter; 6] = [
        Counter::StytchSuccess,
        Counter::StytchFailure,
        Counter::LegacySuccess,
        Counter::LegacyFailure,
        Counter::StytchDecision,
        Counter::LegacyDecision,
    ];

    pub fn outcome(flow: Flow, outcome: LoginOutcome) -> Counter {
        match (flow, outcome) {
            (Flow::Stytch, LoginOutcome::Success) => Counter::StytchSuccess,
            (Flow::Stytch, LoginOutcome::Failure) => Counter::StytchFailure,
            (Flow::Legacy, LoginOutcome::Success) => Counter::LegacySuccess,
            (Flow::Legacy, LoginOutcome::Failure) => Counter::LegacyFailure,
        }
    }

    pub fn decision(flow: Flow) -> Counter {
        match flow {
            Flow::Stytch => Counter::StytchDecision,
            Flow::Legacy => Counter::LegacyDecision,
        }
    }

    /// Its position in a `Tally` (and in a `LiveTally`).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name where a store keeps it by name (a Redis hash field).
    pub fn field(self) -> &'static str {
        match self {
            Counter::StytchSuccess => "stytch:success",
            Counter::StytchFailure => "stytch:failure",
            Counter::LegacySuccess => "legacy:success",
            Counter::LegacyFailure => "legacy:failure",
            Counter::StytchDecision => "stytch:decision",
            Counter::LegacyDecision => "legacy:decision",
        }
    }
}

/// The six counts of one rollout over some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally([u64; 6]);

impl Tally {
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter.index()]
    }

    pub fn add(&mut self, counter: Counter, n: u64) {
        let slot = &mut self.0[counter.index()];
        *slot = slot.saturating_add(n);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Tally) {
        for counter in Counter::ALL {
            self.add(counter, other.get(counter));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|n| *n == 0)
    }

    /// How the login attempts of `flow` ended.
    pub fn outcomes(&self, flow: Flow) -> FlowOutcomes {
        FlowOutcomes {
            successes: self.get(Counter::outcome(flow, LoginOutcome::Success)),
            failures: self.get(Counter::outcome(flow, LoginOutcome::Failure)),
        }
    }

    /// How many requests were sent to `flow`.
    pub fn decisions(&self, flow: Flow) -> u64 {
        self.get(Counter::decision(flow))
    }
}

impl FromIterator<Tally> for Tally {
    fn from_iter<I: IntoIterator<Item = Tally>>(tallies: I) -> Tally {
        let mut sum = Tally::default();
        for t in tallies {
            sum.merge(&t);
        }
        sum
    }
}

/// The length of a bucket.
pub const BUCKET_SECONDS: u64 = 10;

/// The span of `GET /v1/rollouts/{key}/stats`: the last hour, minute by minute. Counts are
/// kept at least this long whatever the longest guard window.
pub const STATS_SECONDS: u64 = 3600;

/// Ten seconds of time: the `n`th bucket holds Unix times `10n ≤ t < 10(n + 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket(u64);

impl Bucket {
    /// The bucket holding the Unix time `seconds`.
    pub fn containing(seconds: u64) -> Bucket {
        Bucket(seconds / BUCKET_SECONDS)
    }

    /// The bucket holding `time` (before 1970: the first).
    pub fn at(time: SystemTime) -> Bucket {
        Bucket::containing(time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    /// Its first second, in Unix time.
    pub fn start_seconds(self) -> u64 {
        self.0 * BUCKET_SECONDS
    }

    /// The first second after it, in Unix time.
    pub fn end_seconds(self) -> u64 {
        self.start_seconds() + BUCKET_SECONDS
    }

    /// The bucket `n` before this one (the first one at most).
    pub fn before(self, n: u64) -> Bucket {
        Bucket(self.0.saturating_sub(n))
    }
}

/// Consecutive buckets, `first` to `last`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRange {
    pub first: Bucket,
    pub last: Bucket,
}

impl BucketRange {
    /// The window of the last `seconds` up to `now`: the bucket holding `now` and those
    /// before it, ⌈seconds / 10⌉ in all (at least one). It holds between `seconds − 10` and
    /// `seconds` of counts, never older ones.
    pub fn window(now: SystemTime, seconds: u64) -> BucketRange {
        let last = Bucket::at(now);
        let buckets = seconds.div_ceil(BUCKET_SECONDS).max(1);
        BucketRange {
            first: last.before(buckets - 1),
            last,
        }
    }

    /// The buckets from the one holding `since` to the one holding `now`.
    pub fn since(since: SystemTime, now: SystemTime) -> BucketRange {
        BucketRange {
            first: Bucket::at(since),
            last: Bucket::at(now),
        }
    }

    /// The later of two ranges' starts (a window that must not reach back before a moment,
    /// such as the rollout being re-enabled), ending at this range's end.
    pub fn starting_no_earlier_than(self, first: Bucket) -> BucketRange {
        BucketRange {
            first: self.first.max(first),
            last: self.last,
        }
    }

    /// The buckets, oldest first (none when `first` is after `last`).
    pub fn iter(self) -> impl Iterator<Item = Bucket> {
        (self.first.0..=self.last.0).map(Bucket)
    }

    pub fn len(self) -> u64 {
        (self.last.0 + 1).saturating_sub(self.first.0)
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// How long buckets are kept: the longest guard window, and a minute more (for clocks that
/// differ between replicas and Redis, and for a window's partial first bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(Duration);

impl Retention {
    /// What is kept beyond the longest window.
    pub const MARGIN: Duration = Duration::from_secs(60);

    /// Enough to read windows of up to `longest_window`.
    pub fn for_windows_of(longest_window: Duration) -> Retention {
        Retention(longest_window + Self::MARGIN)
    }

    pub fn duration(self) -> Duration {
        self.0
    }

    /// The Unix time after which `bucket` is dropped.
    pub fn expiry_of(self, bucket: Bucket) -> u64 {
        bucket.end_seconds() + self.0.as_secs()
    }

    /// Whether `bucket` is still kept at `now`.
    pub fn keeps(self, bucket: Bucket, now: SystemTime) -> bool {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.expiry_of(bucket) > now
    }

    /// `range` without the buckets no longer kept at `now` (so a read never asks for more
    /// buckets than are kept).
    pub fn clip(self, range: BucketRange, now: SystemTime) -> BucketRange {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // The newest bucket already dropped ends at or before `now − retention`.
        let first_kept = match now.checked_sub(self.0.as_secs() + BUCKET_SECONDS) {
            Some(dropped_from) => Bucket(Bucket::containing(dropped_from).0 + 1),
            None => Bucket(0),
        };
        range.starting_no_earlier_than(first_kept)
    }
}

/// Counts of one rollout in one bucket, as a flush delivers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketCounts {
    pub rollout: String,
    pub bucket: Bucket,
    pub tally: Tally,
}

/// Where every replica's counts are added up: one implementation per store backend (the
/// embedded store keeps them in memory, Redis in shared buckets that expire).
#[async_trait]
pub trait TallyStore: Send + Sync + 'static {
    /// Adds `counts` to the shared buckets, all in one step: every count is added, or none.
    async fn add(&self, counts: &[BucketCounts]) -> Result<(), StoreError>;

    /// The counts of `rollout` in each bucket of `range` still kept, oldest first, summed
    /// over every replica (a bucket with no counts is left out).
    async fn read(
        &self,
        rollout: &str,
        range: BucketRange,
    ) -> Result<Vec<(Bucket, Tally)>, StoreError>;

    /// The counts of `rollout` over `range`, summed over every replica.
    async fn sum(&self, rollout: &str, range: BucketRange) -> Result<Tally, StoreError> {
        Ok(self
            .read(rollout, range)
            .await?
            .into_iter()
            .map(|(_, tally)| tally)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_bucket_holds_ten_seconds_starting_at_a_multiple_of_ten() {
        assert_eq!(Bucket::containing(1_000), Bucket::containing(1_009));
        assert_ne!(Bucket::containing(1_009), Bucket::containing(1_010));
        let b = Bucket::at(at(1_234));
        assert_eq!((b.start_seconds(), b.end_seconds()), (1_230, 1_240));
        assert_eq!(
            Bucket::at(UNIX_EPOCH - Duration::from_secs(5)),
            Bucket::containing(0)
        );
    }

    #[test]
    fn a_window_is_the_current_bucket_and_those_before_it_never_older_than_the_window() {
        let w = BucketRange::window(at(1_005), 600);
        assert_eq!(w.len(), 60);
        assert_eq!(w.last.start_seconds(), 1_000);
        assert_eq!(w.first.start_seconds(), 410);
        // A window shorter than a bucket is the current bucket; a ragged one rounds up.
        assert_eq!(BucketRange::window(at(1_005), 1).len(), 1);
        assert_eq!(BucketRange::window(at(1_005), 0).len(), 1);
        assert_eq!(BucketRange::window(at(1_005), 15).len(), 2);
        // Near the epoch it starts at the first bucket.
        assert_eq!(BucketRange::window(at(25), 600).len(), 3);
        let later = w.starting_no_earlier_than(Bucket::containing(950));
        assert_eq!(later.len(), 6);
        assert_eq!(later.iter().count(), 6);
        let none = w.starting_no_earlier_than(Bucket::containing(2_000));
        assert!(none.is_empty());
        assert_eq!(none.iter().count(), 0);
        assert_eq!(BucketRange::since(at(990), at(1_005)).len(), 2);
    }

    #[test]
    fn retention_keeps_the_longest_window_and_a_minute_and_clips_reads_to_it() {
        let r = Retention::for_windows_of(Duration::from_secs(3_600));
        let b = Bucket::containing(10_000);
        assert_eq!(r.expiry_of(b), 10_010 + 3_660);
        assert!(r.keeps(b, at(13_669)));
        assert!(!r.keeps(b, at(13_670)));
        let asked = BucketRange::window(at(100_000), 86_400);
        let clipped = r.clip(asked, at(100_000));
        assert_eq!(clipped.last, asked.last);
        assert!(clipped.iter().all(|b| r.keeps(b, at(100_000))));
        assert!(!r.keeps(clipped.first.before(1), at(100_000)));
        assert_eq!(clipped.len(), 367);
        let window = BucketRange::window(at(100_005), 3_600);
        assert_eq!(r.clip(window, at(100_005)), window);
        let near_the_epoch = BucketRange::window(at(5), 600);
        assert_eq!(r.clip(near_the_epoch, at(5)), near_the_epoch);
    }

    #[test]
    fn a_tally_adds_up_and_gives_each_flows_outcomes_and_decisions() {
        let mut t = Tally::default();
        assert!(t.is_empty());
        t.add(Counter::outcome(Flow::Stytch, LoginOutcome::Failure), 3);
        t.add(Counter::outcome(Flow::Stytch, LoginOutcome::Success), 7);
        t.add(Counter::decision(Flow::Legacy), 5);
        let sum: Tally = [t, t].into_iter().collect();
        assert_eq!(sum.outcomes(Flow::Stytch).attempts(), 20);
        assert_eq!(sum.outcomes(Flow::Stytch).failures, 6);
        assert_eq!(sum.outcomes(Flow::Legacy).attempts(), 0);
        assert_eq!(sum.decisions(Flow::Legacy), 10);
        assert_eq!(sum.decisions(Flow::Stytch), 0);
        let fields: std::collections::HashSet<_> = Counter::ALL.iter().map(|c| c.field()).collect();
        assert_eq!(fields.len(), 6);
        assert!(Counter::ALL.iter().enumerate().all(|(i, c)| c.index() == i));
    }
}
