//! What a ramp schedule does next, as pure functions of the rollout and the time given: which
//! step is due now, the content once it has applied, when the next one comes, and how a
//! person's write leaves the schedule (paused by a manual percentage change or the kill
//! switch, `done` once nothing is left).
//!
//! No clock is read here (the caller passes `now`), nothing is stored or awaited: the runner
//! (`crate::schedule_runner`) and the admin use cases (`crate::admin`) decide with these.

use chrono::{DateTime, Utc};

use super::model::{RolloutContent, Schedule, ScheduleState, ScheduleStep};

/// A step whose time has come and that the schedule has not applied yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueStep {
    /// Its index in `steps`.
    pub index: usize,
    /// Earlier steps whose time had also come and that this one supersedes (a time that passed
    /// while no replica ran, or while the schedule was paused): they are never applied.
    pub passed_over: usize,
}

impl Schedule {
    /// The step to apply at `now`: the latest one whose time has come among those not behind
    /// the schedule yet — only while the schedule is active.
    pub fn due(&self, now: DateTime<Utc>) -> Option<DueStep> {
        if self.state != ScheduleState::Active {
            return None;
        }
        let come = self.steps.partition_point(|step| step.at <= now);
        (come > self.applied_steps).then(|| DueStep {
            index: come - 1,
            passed_over: come - 1 - self.applied_steps,
        })
    }

    /// When the next step is due, while the schedule is active and has one left.
    pub fn next_at(&self) -> Option<DateTime<Utc>> {
        if self.state != ScheduleState::Active {
            return None;
        }
        self.steps.get(self.applied_steps).map(|step| step.at)
    }

    /// The percentage of the step before the last applied one (0 before the first): where a
    /// guard's `pause` sets the rollout back to.
    pub fn percentage_before_last_applied(&self) -> f64 {
        self.applied_steps
            .checked_sub(2)
            .and_then(|i| self.steps.get(i))
            .map_or(0.0, |step| step.percentage)
    }
}

/// The content once step `due` has applied: its percentage, the schedule moved past it, and
/// `done` when it was the last step. Nothing else changes.
pub fn apply(content: &RolloutContent, due: DueStep) -> RolloutContent {
    let mut next = content.clone();
    if let Some(schedule) = next.schedule.as_mut() {
        if let Some(step) = schedule.steps.get(due.index) {
            next.percentage = step.percentage;
            schedule.applied_steps = due.index + 1;
            if schedule.applied_steps == schedule.steps.len() {
                schedule.state = ScheduleState::Done;
            }
        }
    }
    next
}

/// How many of `steps` are behind the schedule after an admin's write: the applied steps of
/// `current` that `steps` keeps unchanged, from the first (a changed step, and every one after
/// it, is pending again).
pub fn carried_progress(current: Option<&Schedule>, steps: &[ScheduleStep]) -> usize {
    let Some(current) = current else {
        return 0;
    };
    current
        .steps
        .iter()
        .zip(steps)
        .take(current.applied_steps)
        .take_while(|(before, after)| before == after)
        .count()
}

/// The schedule a person's (or the guard's) write leaves, from the content as it was and as
/// the write asks: an active schedule is paused by a change of the percentage or by the kill
/// switch (so the next step never undoes an emergency change), and an active schedule with
/// no step left is `done`.
pub fn settle_write(current: Option<&RolloutContent>, next: &mut RolloutContent) {
    let percentage = next.percentage;
    let enabled = next.enabled;
    let Some(schedule) = next.schedule.as_mut() else {
        return;
    };
    if let Some(current) = current {
        let was_active = current
            .schedule
            .as_ref()
            .is_some_and(|s| s.state == ScheduleState::Active);
        let percentage_changed = percentage != current.percentage;
        let killed = current.enabled && !enabled;
        if was_active && schedule.state == ScheduleState::Active && (percentage_changed || killed) {
            schedule.state = ScheduleState::Paused;
        }
    }
    if schedule.state == ScheduleState::Active
        && !schedule.steps.is_empty()
        && schedule.applied_steps >= schedule.steps.len()
    {
        schedule.state = ScheduleState::Done;
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::rules::model::{LegacySessions, Sticky};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn schedule(state: ScheduleState, steps: &[(i64, f64)], applied_steps: usize) -> Schedule {
        Schedule {
            state,
            steps: steps
                .iter()
                .map(|&(t, percentage)| ScheduleStep {
                    at: at(t),
                    percentage,
                })
                .collect(),
            applied_steps,
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
            guard: None,
        }
    }

    const RAMP: [(i64, f64); 3] = [(0, 5.0), (10, 10.0), (20, 25.0)];

    #[test]
    fn nothing_is_due_before_the_first_step() {
        let s = schedule(ScheduleState::Active, &RAMP, 0);
        assert_eq!(s.due(at(-1)), None);
        assert_eq!(s.next_at(), Some(at(0)));
    }

    #[test]
    fn a_step_is_due_from_its_time_on() {
        let s = schedule(ScheduleState::Active, &RAMP, 0);
        let due = DueStep {
            index: 0,
            passed_over: 0,
        };
        assert_eq!(s.due(at(0)), Some(due));
        assert_eq!(s.due(at(9)), Some(due));
    }

    #[test]
    fn an_applied_step_is_not_due_again() {
        let s = schedule(ScheduleState::Active, &RAMP, 1);
        assert_eq!(s.due(at(9)), None);
        assert_eq!(s.next_at(), Some(at(10)));
        assert_eq!(
            s.due(at(10)),
            Some(DueStep {
                index: 1,
                passed_over: 0
            })
        );
    }

    #[test]
    fn only_the_latest_of_several_missed_steps_is_due() {
        let s = schedule(ScheduleState::Active, &RAMP, 0);
        assert_eq!(
            s.due(at(25)),
            Some(DueStep {
                index: 2,
                passed_over: 2
            })
        );
        let s = schedule(ScheduleState::Active, &RAMP, 1);
        assert_eq!(
            s.due(at(20) + Duration::days(400)),
            Some(DueStep {
                index: 2,
                passed_over: 1
            })
        );
    }

    #[test]
    fn a_paused_or_done_schedule_has_nothing_due_and_no_next_time() {
        for state in [ScheduleState::Paused, ScheduleState::Done] {
            let s = schedule(state, &RAMP, 1);
            assert_eq!(s.due(at(100)), None, "{state:?}");
            assert_eq!(s.next_at(), None, "{state:?}");
        }
        let finished = schedule(ScheduleState::Active, &RAMP, 3);
        assert_eq!(finished.due(at(100)), None);
        assert_eq!(finished.next_at(), None);
    }

    #[test]
    fn applying_a_step_sets_its_percentage_and_moves_the_schedule_past_it() {
        let before = content(0.0, Some(schedule(ScheduleState::Active, &RAMP, 0)));
        let due = before.schedule.as_ref().unwrap().due(at(12)).unwrap();
        let after = apply(&before, due);
        assert_eq!(after.percentage, 10.0);
        let s = after.schedule.as_ref().unwrap();
        assert_eq!((s.applied_steps, s.state), (2, ScheduleState::Active));
        assert_eq!(
            RolloutContent {
                percentage: before.percentage,
                schedule: before.schedule.clone(),
                ..after.clone()
            },
            before,
            "nothing but the percentage and the schedule changes"
        );
    }

    #[test]
    fn the_last_step_makes_the_schedule_done() {
        let before = content(10.0, Some(schedule(ScheduleState::Active, &RAMP, 2)));
        let after = apply(
            &before,
            before.schedule.as_ref().unwrap().due(at(20)).unwrap(),
        );
        assert_eq!(after.percentage, 25.0);
        let s = after.schedule.unwrap();
        assert_eq!((s.applied_steps, s.state), (3, ScheduleState::Done));
    }

    #[test]
    fn a_guard_pause_goes_back_to_the_step_before_the_last_applied() {
        assert_eq!(
            schedule(ScheduleState::Active, &RAMP, 0).percentage_before_last_applied(),
            0.0
        );
        assert_eq!(
            schedule(ScheduleState::Active, &RAMP, 1).percentage_before_last_applied(),
            0.0
        );
        assert_eq!(
            schedule(ScheduleState::Active, &RAMP, 3).percentage_before_last_applied(),
            10.0
        );
    }

    #[test]
    fn unchanged_applied_steps_keep_their_progress_and_a_changed_one_is_pending_again() {
        let current = schedule(ScheduleState::Active, &RAMP, 2);
        let same = current.steps.clone();
        assert_eq!(carried_progress(Some(&current), &same), 2);
        // A later step added, or a pending one moved: the applied ones stay applied.
        let mut longer = same.clone();
        longer.push(ScheduleStep {
            at: at(30),
            percentage: 50.0,
        });
        assert_eq!(carried_progress(Some(&current), &longer), 2);
        // The second (applied) step changed: it and everything after it are pending again.
        let mut moved = same.clone();
        moved[1].at = at(11);
        assert_eq!(carried_progress(Some(&current), &moved), 1);
        assert_eq!(carried_progress(None, &same), 0);
        assert_eq!(carried_progress(Some(&current), &[]), 0);
    }

    #[test]
    fn a_manual_percentage_change_pauses_an_active_schedule() {
        let current = content(5.0, Some(schedule(ScheduleState::Active, &RAMP, 1)));
        let mut next = current.clone();
        next.percentage = 7.0;
        settle_write(Some(&current), &mut next);
        assert_eq!(next.schedule.unwrap().state, ScheduleState::Paused);
    }

    #[test]
    fn the_kill_switch_pauses_an_active_schedule() {
        let current = content(5.0, Some(schedule(ScheduleState::Active, &RAMP, 1)));
        let mut next = current.clone();
        next.enabled = false;
        settle_write(Some(&current), &mut next);
        assert_eq!(next.schedule.unwrap().state, ScheduleState::Paused);
    }

    #[test]
    fn other_changes_leave_an_active_schedule_active() {
        let current = content(5.0, Some(schedule(ScheduleState::Active, &RAMP, 1)));
        let mut next = current.clone();
        next.description = "ramping".into();
        next.enabled = true;
        settle_write(Some(&current), &mut next);
        assert_eq!(next.schedule.unwrap().state, ScheduleState::Active);
    }

    #[test]
    fn a_schedule_added_or_resumed_with_a_new_percentage_is_not_paused() {
        let mut current = content(5.0, None);
        let mut next = content(7.0, Some(schedule(ScheduleState::Active, &RAMP, 0)));
        settle_write(Some(&current), &mut next);
        assert_eq!(next.schedule.as_ref().unwrap().state, ScheduleState::Active);
        current.schedule = Some(schedule(ScheduleState::Paused, &RAMP, 0));
        next.percentage = 8.0;
        settle_write(Some(&current), &mut next);
        assert_eq!(next.schedule.unwrap().state, ScheduleState::Active);
    }

    #[test]
    fn an_active_schedule_with_every_step_behind_it_is_done() {
        let current = content(25.0, Some(schedule(ScheduleState::Done, &RAMP, 3)));
        let mut next = current.clone();
        next.schedule.as_mut().unwrap().state = ScheduleState::Active;
        settle_write(Some(&current), &mut next);
        assert_eq!(next.schedule.unwrap().state, ScheduleState::Done);
        // Paused stays paused: the admin asked for it.
        let mut next = current.clone();
        next.schedule.as_mut().unwrap().state = ScheduleState::Paused;
        settle_write(Some(&current), &mut next);
        assert_eq!(next.schedule.unwrap().state, ScheduleState::Paused);
    }
}
