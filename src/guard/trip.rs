//! What the guard does with a verdict, as pure functions: where a guard's window may start
//! (a fresh one each time its rollout is enabled again, or after a trip), the content a trip
//! writes (`kill` or `pause`), the evidence a trip records, and the view `GET
//! /v1/rollouts/{key}/guard` shows.
//!
//! No clock is read, nothing is counted, stored, awaited or logged here: the evaluator
//! (`crate::guard::evaluator`) reads the counts and writes through `crate::admin`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::statistics::{GuardState, GuardVerdict};
use crate::rules::model::{Guard, GuardAction, RolloutContent, ScheduleState};
use crate::tally::{Bucket, BucketRange, BUCKET_SECONDS};

/// The actor named in history for the changes a guard makes (SPEC §9).
pub const GUARD_ACTOR: &str = "guard";

/// How long after a count happened it may still be filed in a bucket: the flusher sends what
/// was counted once a second, under the bucket of the moment it sends.
pub const FLUSH_LAG_SECONDS: u64 = 1;

/// One version of a rollout, as far as the guard's window cares: when it was written, by
/// whom, and whether it left the rollout enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionFacts {
    pub at: DateTime<Utc>,
    /// The version created the rollout (no version came before it).
    pub created: bool,
    pub by_guard: bool,
    pub enabled: bool,
}

/// The moment from which a guard counts outcomes, from its rollout's versions (oldest
/// first): the last time the rollout became enabled (created enabled, or enabled again after
/// the kill switch), or the last trip of the guard, whichever came later. Outcomes from
/// before that moment belong to a rollout that people have since changed on purpose (SPEC
/// §9: "outcomes from before that moment are then ignored"). `None`: the versions given do
/// not reach back to such a moment (then only the window limits what is counted).
pub fn watching_since(versions: &[VersionFacts]) -> Option<DateTime<Utc>> {
    let mut was_enabled = match versions.first() {
        Some(first) if first.created => false,
        Some(first) => first.enabled,
        None => return None,
    };
    let mut since = None;
    for version in versions {
        if version.by_guard || (version.enabled && !was_enabled) {
            since = Some(version.at);
        }
        was_enabled = version.enabled;
    }
    since
}

/// The buckets a guard reads at `now`: the last `window_seconds`, starting no earlier than
/// the first whole bucket that began after `since` (plus the flusher's lag), so that no
/// outcome from before `since` is counted. The price: up to 11 s of outcomes right after
/// `since` are not counted either. The range is empty until that first bucket has begun.
pub fn window(
    now: DateTime<Utc>,
    window_seconds: u64,
    since: Option<DateTime<Utc>>,
) -> BucketRange {
    let range = BucketRange::window(now.into(), window_seconds);
    match since {
        Some(since) => range.starting_no_earlier_than(first_bucket_after(since)),
        None => range,
    }
}

/// The first bucket that holds only counts made after `since`.
pub fn first_bucket_after(since: DateTime<Utc>) -> Bucket {
    let seconds = u64::try_from(since.timestamp()).unwrap_or(0);
    // A count made in the second before `since` may be flushed up to a second later.
    let earliest_clean =
        seconds + u64::from(since.timestamp_subsec_nanos() > 0) + FLUSH_LAG_SECONDS;
    Bucket::containing(earliest_clean.div_ceil(BUCKET_SECONDS) * BUCKET_SECONDS)
}

/// The Unix second `seconds` as a time.
fn time_of(seconds: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::try_from(seconds).unwrap_or(i64::MAX), 0).unwrap_or_default()
}

/// The content a trip writes: `kill` turns the kill switch on (an active schedule is paused
/// by that, as by any kill); `pause` pauses the schedule and sets the percentage to that of
/// the step before the last applied one (0 before the first, and 0 without a schedule).
pub fn tripped_content(content: &RolloutContent, action: GuardAction) -> RolloutContent {
    let mut next = content.clone();
    match action {
        GuardAction::Kill => next.enabled = false,
        GuardAction::Pause => {
            next.percentage = content
                .schedule
                .as_ref()
                .map_or(0.0, |s| s.percentage_before_last_applied());
            if let Some(schedule) = next.schedule.as_mut() {
                schedule.state = ScheduleState::Paused;
            }
        }
    }
    next
}

/// Everything a guard judged from: the counts of both flows over the buckets it read, both
/// failure rates, the bound and the limits. A trip's history and audit entry carries it, and
/// `GET /v1/rollouts/{key}/guard` shows it (flat, one member per number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardEvidence {
    pub stytch_attempts: u64,
    pub stytch_failures: u64,
    /// In percent; `null` without attempts.
    pub stytch_failure_rate_percent: Option<f64>,
    pub legacy_attempts: u64,
    pub legacy_failures: u64,
    pub legacy_failure_rate_percent: Option<f64>,
    /// The one-sided lower confidence bound of (Stytch − legacy failure rate), in percentage
    /// points; `null` while a flow has fewer than `min_attempts`.
    pub increase_lower_bound_points: Option<f64>,
    pub max_failure_rate_increase: f64,
    pub confidence: f64,
    pub min_attempts: u64,
    pub window_seconds: u64,
    /// The counts are those of `window_start ≤ t < window_end` (10-second buckets).
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
}

impl GuardEvidence {
    pub fn of(verdict: &GuardVerdict, guard: &Guard, range: BucketRange) -> GuardEvidence {
        GuardEvidence {
            stytch_attempts: verdict.stytch.attempts,
            stytch_failures: verdict.stytch.failures,
            stytch_failure_rate_percent: verdict.stytch.failure_rate_percent,
            legacy_attempts: verdict.legacy.attempts,
            legacy_failures: verdict.legacy.failures,
            legacy_failure_rate_percent: verdict.legacy.failure_rate_percent,
            increase_lower_bound_points: verdict.increase_lower_bound_points,
            max_failure_rate_increase: verdict.max_failure_rate_increase,
            confidence: verdict.confidence,
            min_attempts: guard.min_attempts,
            window_seconds: guard.window_seconds,
            window_start: time_of(range.first.start_seconds()),
            window_end: time_of(range.last.end_seconds().max(range.first.start_seconds())),
        }
    }
}

/// What a trip did, recorded in the change record of the version it wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TripEvidence {
    pub action: GuardAction,
    #[serde(flatten)]
    pub evidence: GuardEvidence,
}

impl TripEvidence {
    /// One line a person can act on, e.g. "Switchyard guard killed rollout stytch-login:
    /// Stytch login failures 15.0 % vs legacy 2.0 % (lower bound +9.4 pp > 2.0 pp) — version 7".
    pub fn text(&self, rollout: &str, version: u64) -> String {
        let e = &self.evidence;
        let rate = |r: Option<f64>| r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.1} %"));
        let did = match self.action {
            GuardAction::Kill => "killed",
            GuardAction::Pause => "paused",
        };
        format!(
            "Switchyard guard {did} rollout {rollout}: Stytch login failures {} vs legacy {} \
             ({} of {} vs {} of {} attempts; lower bound {:+.1} pp > {:.1} pp at {} % confidence) \
             — version {version}",
            rate(e.stytch_failure_rate_percent),
            rate(e.legacy_failure_rate_percent),
            e.stytch_failures,
            e.stytch_attempts,
            e.legacy_failures,
            e.legacy_attempts,
            e.increase_lower_bound_points.unwrap_or(f64::NAN),
            e.max_failure_rate_increase,
            (e.confidence * 1000.0).round() / 10.0,
        )
    }
}

/// Where a guard stands, as `GET /v1/rollouts/{key}/guard` and `switchyard_guard_state` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewState {
    Watching,
    InsufficientData,
    /// The guard tripped and wrote the rollout's current version; it waits for a person.
    Tripped,
    /// No guard, a disabled guard, or a rollout whose kill switch a person turned on.
    Off,
}

impl ViewState {
    /// The value of `switchyard_guard_state`.
    pub fn gauge(self) -> i64 {
        match self {
            ViewState::Watching => 0,
            ViewState::InsufficientData => 1,
            ViewState::Tripped => 2,
            ViewState::Off => 3,
        }
    }
}

impl From<GuardState> for ViewState {
    fn from(state: GuardState) -> ViewState {
        match state {
            GuardState::Watching => ViewState::Watching,
            GuardState::InsufficientData => ViewState::InsufficientData,
            GuardState::Tripped => ViewState::Tripped,
        }
    }
}

/// What a guard does with its rollout's current version, before reading any count: watch
/// it (the rollout is enabled and its guard on), leave it (off), or nothing more (the guard
/// wrote this version: it tripped and waits for a person).
pub fn stance(content: &RolloutContent, updated_by: &str) -> ViewState {
    match &content.guard {
        Some(guard) if guard.enabled => {
            if updated_by == GUARD_ACTOR {
                ViewState::Tripped
            } else if content.enabled {
                ViewState::Watching
            } else {
                ViewState::Off
            }
        }
        _ => ViewState::Off,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::{LegacySessions, Schedule, ScheduleStep, Sticky};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn version(seconds: i64, created: bool, by_guard: bool, enabled: bool) -> VersionFacts {
        VersionFacts {
            at: at(seconds),
            created,
            by_guard,
            enabled,
        }
    }

    fn content(percentage: f64, schedule: Option<Schedule>) -> RolloutContent {
        RolloutContent {
            description: String::new(),
            enabled: true,
            percentage,
            salt: "s".into(),
            rules: Vec::new(),
            sticky: Sticky::default(),
            epoch: 1,
            legacy_sessions: LegacySessions::Reject,
            schedule,
            guard: Some(Guard::default()),
        }
    }

    #[test]
    fn a_guard_watches_from_the_last_time_its_rollout_was_enabled_or_it_tripped() {
        // Created enabled, changed, killed by a person, enabled again, changed.
        let versions = [
            version(0, true, false, true),
            version(10, false, false, true),
            version(20, false, false, false),
            version(30, false, false, true),
            version(40, false, false, true),
        ];
        assert_eq!(watching_since(&versions), Some(at(30)));
        // Created enabled: from the creation.
        assert_eq!(watching_since(&versions[..2]), Some(at(0)));
        // Killed and not enabled again: still the last time it was.
        assert_eq!(watching_since(&versions[..3]), Some(at(0)));
        // A trip (here a pause, which leaves it enabled), then a person's change.
        let paused = [
            version(0, true, false, true),
            version(50, false, true, true),
            version(60, false, false, true),
        ];
        assert_eq!(watching_since(&paused), Some(at(50)));
        // Created disabled and never enabled: no moment.
        assert_eq!(watching_since(&[version(0, true, false, false)]), None);
        // A history that does not reach back to the creation, enabled all along: no moment.
        assert_eq!(watching_since(&[version(5, false, false, true)]), None);
        assert_eq!(watching_since(&[]), None);
    }

    #[test]
    fn a_window_after_a_re_enable_starts_at_the_first_whole_bucket_past_the_flush_lag() {
        // Enabled at …:03.5: counts flushed up to …:04.5 may hold older ones; the bucket
        // starting at …:10 holds none.
        let since = at(3) + chrono::Duration::milliseconds(500);
        assert_eq!(first_bucket_after(since).start_seconds(), 1_800_000_010);
        // Enabled at …:08.5: …:09.5 may still carry older counts into bucket …:00, and …:10
        // is clean.
        assert_eq!(
            first_bucket_after(at(8) + chrono::Duration::milliseconds(500)).start_seconds(),
            1_800_000_010
        );
        // Enabled at …:09.2: a count of …:09.1 may be flushed at …:10.1, into bucket …:10.
        assert_eq!(
            first_bucket_after(at(9) + chrono::Duration::milliseconds(200)).start_seconds(),
            1_800_000_020
        );
        // The window of 600 s at …:15 after that …:03.5 enable: one bucket.
        let range = window(at(15), 600, Some(since));
        assert_eq!(range.len(), 1);
        // Right after the enable: nothing yet.
        assert!(window(at(5), 600, Some(since)).is_empty());
        // Long after: the whole window.
        assert_eq!(window(at(10_000), 600, Some(since)).len(), 60);
        assert_eq!(window(at(10_000), 600, None).len(), 60);
    }

    #[test]
    fn kill_turns_the_kill_switch_on_and_pause_goes_back_one_step_and_pauses() {
        let steps = [(5.0, 10), (10.0, 20), (25.0, 30)]
            .map(|(percentage, s)| ScheduleStep {
                at: at(s),
                percentage,
            })
            .to_vec();
        let schedule = |applied_steps| Schedule {
            state: ScheduleState::Active,
            steps: steps.clone(),
            applied_steps,
        };
        let at_25 = content(25.0, Some(schedule(3)));
        let killed = tripped_content(&at_25, GuardAction::Kill);
        assert!(!killed.enabled);
        assert_eq!(killed.percentage, 25.0);

        let paused = tripped_content(&at_25, GuardAction::Pause);
        assert!(paused.enabled);
        assert_eq!(paused.percentage, 10.0);
        let s = paused.schedule.unwrap();
        assert_eq!((s.state, s.applied_steps), (ScheduleState::Paused, 3));

        // After the first step: back to 0.
        let at_5 = content(5.0, Some(schedule(1)));
        assert_eq!(tripped_content(&at_5, GuardAction::Pause).percentage, 0.0);
        // No schedule: back to 0 as well.
        let manual = content(40.0, None);
        let paused = tripped_content(&manual, GuardAction::Pause);
        assert_eq!((paused.percentage, paused.schedule), (0.0, None));
    }

    #[test]
    fn a_guard_that_wrote_the_current_version_has_tripped_and_one_on_a_killed_rollout_is_off() {
        let mut c = content(10.0, None);
        assert_eq!(stance(&c, "admin"), ViewState::Watching);
        assert_eq!(stance(&c, GUARD_ACTOR), ViewState::Tripped);
        c.enabled = false;
        assert_eq!(stance(&c, "admin"), ViewState::Off);
        assert_eq!(stance(&c, GUARD_ACTOR), ViewState::Tripped);
        c.guard.as_mut().unwrap().enabled = false;
        assert_eq!(stance(&c, GUARD_ACTOR), ViewState::Off);
        c.guard = None;
        assert_eq!(stance(&c, "admin"), ViewState::Off);
    }

    #[test]
    fn the_text_of_a_trip_names_the_rollout_the_rates_the_bound_and_the_version() {
        let trip = TripEvidence {
            action: GuardAction::Kill,
            evidence: GuardEvidence {
                stytch_attempts: 300,
                stytch_failures: 45,
                stytch_failure_rate_percent: Some(15.0),
                legacy_attempts: 300,
                legacy_failures: 6,
                legacy_failure_rate_percent: Some(2.0),
                increase_lower_bound_points: Some(9.4),
                max_failure_rate_increase: 2.0,
                confidence: 0.95,
                min_attempts: 200,
                window_seconds: 600,
                window_start: at(0),
                window_end: at(600),
            },
        };
        assert_eq!(
            trip.text("stytch-login", 7),
            "Switchyard guard killed rollout stytch-login: Stytch login failures 15.0 % vs \
             legacy 2.0 % (45 of 300 vs 6 of 300 attempts; lower bound +9.4 pp > 2.0 pp at 95 % \
             confidence) — version 7"
        );
    }
}
