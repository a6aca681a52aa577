//! The schedule runner: a background task that applies the steps of every active ramp schedule
//! at their times (SPEC §9), on every backend.
//!
//! It learns what is due from the in-memory catalog (no store access until a step is due) and
//! applies a step through the admin use case (`Admin::apply_due_step`): an ordinary versioned
//! write by the actor `schedule`, decided on the store's current version and committed with a
//! compare-and-set on it, so with several replicas a step is applied once. It wakes at the next
//! step's time, at least every [`MAX_SLEEP`], and whenever the catalog changes. The pure
//! decision (which step is due) is `rules::schedule`'s; this module must not touch the decide
//! path, HTTP, or the store directly.

use crate::background::Stoppable;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::admin::{Admin, AdminError, AppliedStep};
use crate::catalog::Catalog;
use crate::metrics::Metrics;

/// The longest the runner sleeps, so that a step is applied well within a second of its time
/// even when the wall clock moves under the timer, or a change arrives unannounced.
pub const MAX_SLEEP: Duration = Duration::from_millis(250);

/// How long a rollout is left alone after its step could not be written (store unavailable).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How long a rollout is left alone when its step cannot be applied at all (content invalid:
/// not expected, since stored rollouts are validated; retried in case a change fixes it).
const RETRY_AFTER_REFUSAL: Duration = Duration::from_secs(60);

/// Starts the runner.
pub fn spawn(admin: Arc<Admin>, catalog: Arc<Catalog>, metrics: Arc<Metrics>) -> Stoppable {
    Stoppable::spawn("schedule runner", |stopped| {
        ScheduleRunner {
            admin,
            catalog,
            metrics,
            stopped,
            left_alone_until: HashMap::new(),
        }
        .run()
    })
}

struct ScheduleRunner {
    admin: Arc<Admin>,
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    stopped: watch::Receiver<bool>,
    /// Rollouts whose last attempt failed, and until when they are left alone.
    left_alone_until: HashMap<String, Instant>,
}

impl ScheduleRunner {
    async fn run(mut self) {
        let mut changes = self.catalog.changes();
        tracing::debug!("schedule runner started");
        while !*self.stopped.borrow() {
            let wake = self.apply_what_is_due().await;
            if *self.stopped.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = changes.changed() => {}
                _ = self.stopped.changed() => {}
            }
        }
        tracing::debug!("schedule runner stopped");
    }

    /// Applies every step due now; returns when to look again.
    async fn apply_what_is_due(&mut self) -> Instant {
        let mut wake = Instant::now() + MAX_SLEEP;
        let now = Utc::now();
        self.left_alone_until
            .retain(|_, until| *until > Instant::now());
        for live in self.catalog.all() {
            if *self.stopped.borrow() {
                break;
            }
            let Some(schedule) = &live.rollout.content.schedule else {
                continue;
            };
            let key = live.rollout.key.as_str();
            if schedule.due(now).is_none() {
                if let Some(at) = schedule.next_at() {
                    wake = wake.min(instant_of(at, now));
                }
                continue;
            }
            if let Some(until) = self.left_alone_until.get(key) {
                wake = wake.min(*until);
                continue;
            }
            match self.admin.apply_due_step(key, now).await {
                Ok(Some(applied)) => self.applied(&applied),
                Ok(None) => {}
                Err(e) => self.failed(key, e),
            }
        }
        wake
    }

    fn applied(&self, applied: &AppliedStep) {
        let rollout = &applied.rollout;
        let steps = rollout
            .content
            .schedule
            .as_ref()
            .map_or(0, |s| s.steps.len());
        self.metrics.schedule_step_applied(&rollout.key);
        tracing::info!(
            rollout = %rollout.key,
            step = applied.step.index + 1,
            of = steps,
            percentage = rollout.content.percentage,
            version = rollout.version,
            "schedule step applied"
        );
        if applied.step.passed_over > 0 {
            tracing::warn!(
                rollout = %rollout.key,
                passed_over = applied.step.passed_over,
                applied = applied.step.index + 1,
                "earlier schedule steps came due while no replica applied them; only the latest was applied"
            );
        }
    }

    fn failed(&mut self, key: &str, error: AdminError) {
        let pause = match &error {
            // Another write (another replica's step, or a person's change) came first: look
            // again at once, on the version that won.
            AdminError::VersionMismatch { .. } => {
                tracing::debug!(rollout = key, error = %error, "schedule step lost a race; looking again");
                return;
            }
            // Deleted meanwhile: nothing to do.
            AdminError::NotFound(_) => return,
            AdminError::Invalid(_) => {
                tracing::error!(rollout = key, error = %error, "schedule step cannot be applied");
                RETRY_AFTER_REFUSAL
            }
            _ => {
                tracing::warn!(rollout = key, error = %error, "schedule step not applied; retrying");
                RETRY_AFTER_FAILURE
            }
        };
        self.left_alone_until
            .insert(key.to_string(), Instant::now() + pause);
    }
}

/// The monotonic instant at which the wall-clock time `at` comes (now, when it has).
fn instant_of(at: DateTime<Utc>, now: DateTime<Utc>) -> Instant {
    Instant::now() + (at - now).to_std().unwrap_or(Duration::ZERO)
}
