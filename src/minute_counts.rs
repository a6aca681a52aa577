//! Per-minute counts of one rollout over the last hour, on this replica: decisions by flow and
//! login outcomes by flow and outcome — what `GET /v1/rollouts/{key}/stats` answers and the
//! admin page charts.
//!
//! A count is one lock-free atomic update (no allocation, no clock read of its own: the caller
//! passes the minute), so deciders can count on the request path. Each counter cell carries the
//! minute it counts, so a cell left over from an hour ago reads as zero and is restarted by the
//! first count of its new minute, with no sweeper and no count lost at a minute's edge.
//!
//! This module must not know about HTTP, the store or other replicas: with Redis, each replica
//! has its own counts (the shared time buckets of the guard are the cross-replica source).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

use crate::rules::Flow;

/// How many minutes are kept (and answered): the last hour, this minute included.
pub const MINUTES: usize = 60;

/// How a login attempt ended, as the application reports it (`POST /v1/outcomes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginOutcome {
    Success,
    Failure,
}

impl LoginOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::Failure => "failure",
        }
    }
}

/// A whole minute since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixMinute(pub u64);

impl UnixMinute {
    /// The minute `at` falls in. Measured on the monotonic clock from a wall-clock reading taken
    /// once per process, so that deciders can pass the `Instant` they already took (no second
    /// clock read per decision); a step of the wall clock while running is not followed.
    pub fn of(at: Instant) -> UnixMinute {
        static BASE: OnceLock<(Instant, Duration)> = OnceLock::new();
        let (base_instant, base_unix) = *BASE.get_or_init(|| {
            let unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            (Instant::now(), unix)
        });
        let unix = base_unix + at.saturating_duration_since(base_instant);
        UnixMinute(unix.as_secs() / 60)
    }

    pub fn now() -> UnixMinute {
        UnixMinute::of(Instant::now())
    }

    /// When the minute starts.
    pub fn start(self) -> DateTime<Utc> {
        DateTime::from_timestamp((self.0 * 60) as i64, 0).unwrap_or_default()
    }

    fn slot(self) -> usize {
        (self.0 % MINUTES as u64) as usize
    }
}

/// One thing counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Decision(Flow),
    Outcome(Flow, LoginOutcome),
}

impl Counted {
    fn cell(self) -> usize {
        let flow = match self {
            Counted::Decision(f) | Counted::Outcome(f, _) => f,
        };
        let f = match flow {
            Flow::Stytch => 0,
            Flow::Legacy => 1,
        };
        match self {
            Counted::Decision(_) => f,
            Counted::Outcome(_, LoginOutcome::Success) => 2 + 2 * f,
            Counted::Outcome(_, LoginOutcome::Failure) => 3 + 2 * f,
        }
    }
}

/// A cell is `minute << COUNT_BITS | count`: 28 bits of minute (until the year 2480) and 36 of
/// count (68 billion a minute, where it stops).
const COUNT_BITS: u32 = 36;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const CELLS: usize = 6;

/// The counts of one minute: decisions and outcomes of each flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MinuteTally {
    cells: [u64; CELLS],
}

impl MinuteTally {
    pub fn get(&self, counted: Counted) -> u64 {
        self.cells[counted.cell()]
    }
}

/// The last hour of one rollout, minute by minute.
pub struct MinuteCounts {
    slots: [[AtomicU64; CELLS]; MINUTES],
}

impl Default for MinuteCounts {
    fn default() -> Self {
        MinuteCounts {
            slots: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl MinuteCounts {
    /// Counts one `counted` in `minute`.
    pub fn count(&self, counted: Counted, minute: UnixMinute) {
        let cell = &self.slots[minute.slot()][counted.cell()];
        let stamp = minute.0 << COUNT_BITS;
        let mut current = cell.load(Ordering::Relaxed);
        loop {
            let next = if current >> COUNT_BITS == minute.0 {
                if current & COUNT_MASK == COUNT_MASK {
                    return;
                }
                current + 1
            } else if current >> COUNT_BITS > minute.0 {
                // The cell already counts a later minute: this count arrived over an hour late.
                return;
            } else {
                stamp | 1
            };
            match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The counts of `minute`: zero when its cells hold another minute's.
    pub fn minute(&self, minute: UnixMinute) -> MinuteTally {
        let mut tally = MinuteTally::default();
        for (i, cell) in self.slots[minute.slot()].iter().enumerate() {
            let value = cell.load(Ordering::Relaxed);
            if value >> COUNT_BITS == minute.0 {
                tally.cells[i] = value & COUNT_MASK;
            }
        }
        tally
    }

    /// The last [`MINUTES`] minutes up to `now` (included), oldest first.
    pub fn last_hour(&self, now: UnixMinute) -> Vec<(UnixMinute, MinuteTally)> {
        (0..MINUTES as u64)
            .rev()
            .map(|ago| UnixMinute(now.0.saturating_sub(ago)))
            .map(|m| (m, self.minute(m)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Flow::{Legacy, Stytch};
    use LoginOutcome::{Failure, Success};

    const NOW: UnixMinute = UnixMinute(29_500_000);

    #[test]
    fn each_thing_is_counted_in_its_own_cell_and_minute() {
        let counts = MinuteCounts::default();
        let all = [
            Counted::Decision(Stytch),
            Counted::Decision(Legacy),
            Counted::Outcome(Stytch, Success),
            Counted::Outcome(Stytch, Failure),
            Counted::Outcome(Legacy, Success),
            Counted::Outcome(Legacy, Failure),
        ];
        for (n, what) in all.iter().enumerate() {
            for _ in 0..=n {
                counts.count(*what, NOW);
            }
        }
        counts.count(Counted::Decision(Stytch), UnixMinute(NOW.0 - 1));
        let tally = counts.minute(NOW);
        for (n, what) in all.iter().enumerate() {
            assert_eq!(tally.get(*what), n as u64 + 1, "{what:?}");
        }
        assert_eq!(
            counts
                .minute(UnixMinute(NOW.0 - 1))
                .get(Counted::Decision(Stytch)),
            1
        );
    }

    #[test]
    fn the_last_hour_is_sixty_minutes_oldest_first_ending_now() {
        let counts = MinuteCounts::default();
        counts.count(Counted::Decision(Legacy), UnixMinute(NOW.0 - 59));
        counts.count(Counted::Decision(Legacy), NOW);
        let hour = counts.last_hour(NOW);
        assert_eq!(hour.len(), MINUTES);
        assert_eq!(hour[0].0, UnixMinute(NOW.0 - 59));
        assert_eq!(hour[59].0, NOW);
        assert!(hour.windows(2).all(|w| w[1].0 .0 == w[0].0 .0 + 1));
        assert_eq!(hour[0].1.get(Counted::Decision(Legacy)), 1);
        assert_eq!(hour[59].1.get(Counted::Decision(Legacy)), 1);
        assert!(hour[1..59]
            .iter()
            .all(|(_, t)| *t == MinuteTally::default()));
    }

    #[test]
    fn a_minute_an_hour_old_reads_as_zero_and_its_slot_starts_afresh() {
        let counts = MinuteCounts::default();
        for _ in 0..5 {
            counts.count(Counted::Decision(Stytch), NOW);
        }
        let an_hour_later = UnixMinute(NOW.0 + MINUTES as u64);
        assert_eq!(counts.minute(an_hour_later), MinuteTally::default());
        assert_eq!(
            counts.last_hour(an_hour_later)[0].1,
            MinuteTally::default(),
            "the minute an hour ago is out of the window"
        );
        counts.count(Counted::Decision(Stytch), an_hour_later);
        assert_eq!(
            counts.minute(an_hour_later).get(Counted::Decision(Stytch)),
            1
        );
        assert_eq!(counts.minute(NOW), MinuteTally::default());
    }

    #[test]
    fn a_count_more_than_an_hour_late_does_not_overwrite_a_newer_minute() {
        let counts = MinuteCounts::default();
        let later = UnixMinute(NOW.0 + MINUTES as u64);
        counts.count(Counted::Decision(Stytch), later);
        counts.count(Counted::Decision(Stytch), NOW);
        assert_eq!(counts.minute(later).get(Counted::Decision(Stytch)), 1);
        assert_eq!(counts.minute(NOW), MinuteTally::default());
    }

    #[test]
    fn counts_from_many_threads_at_once_are_all_kept() {
        let counts = std::sync::Arc::new(MinuteCounts::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counts = counts.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counts.count(Counted::Outcome(Legacy, Failure), NOW);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            counts.minute(NOW).get(Counted::Outcome(Legacy, Failure)),
            40_000
        );
    }

    #[test]
    fn a_minute_starts_on_its_first_second() {
        assert_eq!(
            UnixMinute(29_500_000).start().to_rfc3339(),
            "2026-02-02T02:40:00+00:00"
        );
        let now = UnixMinute::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60;
        assert!(now.0.abs_diff(wall) <= 1, "{now:?} against {wall}");
    }
}
