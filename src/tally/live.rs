//! `LiveTally`: the counts of one rollout since the last flush, added to on the request path.
//!
//! Counting is one relaxed atomic add — no lock, clock, allocation or store — so the decide
//! path can count every decision. Only the flusher takes the counts out.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Counter, Tally};

/// One rollout's counts not yet flushed. It outlives the rollout's versions (like its
/// enrollments), so a version change loses no count.
#[derive(Debug, Default)]
pub struct LiveTally {
    cells: [AtomicU64; 6],
}

impl LiveTally {
    /// Counts one `counter`.
    pub fn count(&self, counter: Counter) {
        self.cells[counter.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes every count made since the last `take`, leaving zero: each count is taken once,
    /// however counting and taking interleave.
    pub fn take(&self) -> Tally {
        let mut tally = Tally::default();
        for counter in Counter::ALL {
            tally.add(
                counter,
                self.cells[counter.index()].swap(0, Ordering::Relaxed),
            );
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Flow;
    use crate::tally::LoginOutcome;

    #[test]
    fn counts_are_taken_once_even_while_threads_keep_counting() {
        let live = std::sync::Arc::new(LiveTally::default());
        let failure = Counter::outcome(Flow::Stytch, LoginOutcome::Failure);
        let decision = Counter::decision(Flow::Legacy);
        let counters: Vec<_> = (0..4)
            .map(|_| {
                let live = live.clone();
                std::thread::spawn(move || {
                    for _ in 0..50_000 {
                        live.count(failure);
                        live.count(decision);
                    }
                })
            })
            .collect();
        let mut taken = Tally::default();
        while counters.iter().any(|c| !c.is_finished()) {
            taken.merge(&live.take());
        }
        for c in counters {
            c.join().unwrap();
        }
        taken.merge(&live.take());
        assert_eq!(taken.get(failure), 200_000);
        assert_eq!(taken.get(decision), 200_000);
        assert_eq!(taken.outcomes(Flow::Legacy).attempts(), 0);
        assert!(live.take().is_empty());
    }
}
