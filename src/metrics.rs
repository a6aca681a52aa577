//! The Prometheus metrics of SPEC §6, owned by one `Metrics` struct with its own registry.
//!
//! Labels take only bounded values (rollout keys, flows, reasons, routes, status codes):
//! never a user key, IP, token or cookie.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::cookies::Rejection;
use crate::rules::{Flow, Reason};
use crate::tally::LoginOutcome;

pub struct Metrics {
    registry: Registry,
    pub decisions: IntCounterVec,
    pub decision_duration: Histogram,
    pub http_requests: IntCounterVec,
    pub rollout_percentage: GaugeVec,
    pub rollout_enabled: IntGaugeVec,
    pub rollout_version: IntGaugeVec,
    pub cookies_rejected: IntCounterVec,
    pub store_up: IntGauge,
    pub store_errors: IntCounterVec,
    pub store_restores: IntCounter,
    pub last_sync: Gauge,
    pub enrollments: IntGaugeVec,
    pub login_outcomes: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub rule_matches: IntCounterVec,
    /// Counted by the schedule runner alone (`schedule_step_applied`).
    schedule_steps_applied: IntCounterVec,
    pub forward_auth_unknown_rollout: IntCounter,
    /// Counted by the guard evaluator alone (`guard_tripped`).
    guard_trips: IntCounterVec,
    /// Set by the guard evaluator alone (`guard_state`).
    guard_states: IntGaugeVec,
}

/// The `action` label values of `switchyard_guard_trips_total`.
const GUARD_ACTIONS: [&str; 2] = ["kill", "pause"];

/// Every store operation that can fail, so their error counters exist from the start.
pub const STORE_OPS: [&str; 16] = [
    "load",
    "get",
    "commit",
    "create",
    "update",
    "delete",
    "history",
    "audit",
    "enroll",
    "unenroll",
    "enrollments",
    "sync",
    "follow",
    "probe",
    "tally_add",
    "tally_read",
];

/// Counters of one rollout, resolved once when the rollout is installed so that deciding
/// does no label lookup.
#[derive(Clone)]
pub struct RolloutCounters {
    decisions: [[IntCounter; Reason::ALL.len()]; 2],
    rejected: [IntCounter; Rejection::ALL.len()],
    /// Login outcomes, by flow then outcome.
    outcomes: [[IntCounter; LoginOutcome::ALL.len()]; 2],
    /// One per rule, in rule order.
    rules: Vec<IntCounter>,
}

impl RolloutCounters {
    pub fn decision(&self, flow: Flow, reason: Reason) -> &IntCounter {
        debug_assert!(reason.can_give(flow), "{flow:?} for {reason:?}");
        let f = match flow {
            Flow::Stytch => 0,
            Flow::Legacy => 1,
        };
        let r = Reason::ALL.iter().position(|x| *x == reason).unwrap_or(0);
        &self.decisions[f][r]
    }

    pub fn outcome(&self, flow: Flow, outcome: LoginOutcome) -> &IntCounter {
        let f = match flow {
            Flow::Stytch => 0,
            Flow::Legacy => 1,
        };
        let o = match outcome {
            LoginOutcome::Success => 0,
            LoginOutcome::Failure => 1,
        };
        &self.outcomes[f][o]
    }

    /// The counter of the rule at `index` (in the rollout's rule order).
    pub fn rule(&self, index: usize) -> Option<&IntCounter> {
        self.rules.get(index)
    }

    pub fn rejected(&self, rejection: Rejection) -> &IntCounter {
        let r = Rejection::ALL
            .iter()
            .position(|x| *x == rejection)
            .unwrap_or(0);
        &self.rejected[r]
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let decisions = IntCounterVec::new(
            opts(
                "switchyard_decisions_total",
                "Decisions made, by rollout, flow and reason.",
            ),
            &["rollout", "flow", "reason"],
        )
        .expect("valid metric");
        let decision_duration = Histogram::with_opts(
            HistogramOpts::new(
                "switchyard_decision_duration_seconds",
                "Time to decide one request inside the service (lookup, cookies, evaluation), in seconds.",
            )
            .buckets(vec![
                0.000_000_5,
                0.000_001,
                0.000_002_5,
                0.000_005,
                0.000_01,
                0.000_025,
                0.000_05,
                0.000_1,
                0.000_25,
                0.000_5,
                0.001,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
            ]),
        )
        .expect("valid metric");
        let http_requests = IntCounterVec::new(
            opts(
                "switchyard_http_requests_total",
                "HTTP requests answered, by route pattern and status code.",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let rollout_percentage = GaugeVec::new(
            opts(
                "switchyard_rollout_percentage",
                "Configured share of users sent to Stytch, in percent (0-100).",
            ),
            &["rollout"],
        )
        .expect("valid metric");
        let rollout_enabled = IntGaugeVec::new(
            opts(
                "switchyard_rollout_enabled",
                "1 when the rollout is enabled, 0 when its kill switch is on.",
            ),
            &["rollout"],
        )
        .expect("valid metric");
        let rollout_version = IntGaugeVec::new(
            opts(
                "switchyard_rollout_version",
                "Version of the rollout this replica decides with.",
            ),
            &["rollout"],
        )
        .expect("valid metric");
        let cookies_rejected = IntCounterVec::new(
            opts(
                "switchyard_cookies_rejected_total",
                "Sticky and override cookies ignored, by rollout and reason.",
            ),
            &["rollout", "reason"],
        )
        .expect("valid metric");
        let store_up = IntGauge::new(
            "switchyard_store_up",
            "1 when the store answered its last operation, 0 when it is unavailable.",
        )
        .expect("valid metric");
        let store_errors = IntCounterVec::new(
            opts(
                "switchyard_store_errors_total",
                "Store operations that failed, by operation.",
            ),
            &["op"],
        )
        .expect("valid metric");
        let store_restores = IntCounter::new(
            "switchyard_store_restores_total",
            "Times this replica found Redis empty and restored it from its last-known copy.",
        )
        .expect("valid metric");
        let last_sync = Gauge::new(
            "switchyard_last_sync_timestamp_seconds",
            "Unix time at which this replica last brought its rules in line with the store.",
        )
        .expect("valid metric");
        let enrollments = IntGaugeVec::new(
            opts(
                "switchyard_enrollments",
                "Users recorded as signed up through Stytch, by rollout.",
            ),
            &["rollout"],
        )
        .expect("valid metric");
        let login_outcomes = IntCounterVec::new(
            opts(
                "switchyard_login_outcomes_total",
                "Login attempts reported by the application, by rollout, flow and outcome.",
            ),
            &["rollout", "flow", "outcome"],
        )
        .expect("valid metric");
        let rule_matches = IntCounterVec::new(
            opts(
                "switchyard_rule_matches_total",
                "Decisions in which a rule matched (a forcing rule decided, or a segment set the percentage), by rollout and rule id.",
            ),
            &["rollout", "rule"],
        )
        .expect("valid metric");
        let schedule_steps_applied = IntCounterVec::new(
            opts(
                "switchyard_schedule_steps_applied_total",
                "Schedule steps this replica applied (each one a new version by the actor `schedule`), by rollout.",
            ),
            &["rollout"],
        )
        .expect("valid metric");
        let forward_auth_unknown_rollout = IntCounter::new(
            "switchyard_forward_auth_unknown_rollout_total",
            "Forward-auth requests for a rollout that does not exist (answered legacy, reason unknown_rollout): a proxy configuration names the wrong rollout.",
        )
        .expect("valid metric");
        let guard_trips = IntCounterVec::new(
            opts(
                "switchyard_guard_trips_total",
                "Guard trips this replica wrote (each one a new version by the actor `guard`), by rollout and action (kill, pause).",
            ),
            &["rollout", "action"],
        )
        .expect("valid metric");
        let guard_states = IntGaugeVec::new(
            opts(
                "switchyard_guard_state",
                "Where each rollout's guard stands: 0 watching, 1 insufficient data, 2 tripped, 3 off.",
            ),
            &["rollout"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            opts(
                "switchyard_build_info",
                "Always 1; the version label names the running build.",
            ),
            &["version"],
        )
        .expect("valid metric");
        for c in [
            Box::new(decisions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(decision_duration.clone()),
            Box::new(http_requests.clone()),
            Box::new(rollout_percentage.clone()),
            Box::new(rollout_enabled.clone()),
            Box::new(rollout_version.clone()),
            Box::new(cookies_rejected.clone()),
            Box::new(store_up.clone()),
            Box::new(store_errors.clone()),
            Box::new(store_restores.clone()),
            Box::new(last_sync.clone()),
            Box::new(enrollments.clone()),
            Box::new(login_outcomes.clone()),
            Box::new(build_info.clone()),
            Box::new(rule_matches.clone()),
            Box::new(schedule_steps_applied.clone()),
            Box::new(forward_auth_unknown_rollout.clone()),
            Box::new(guard_trips.clone()),
            Box::new(guard_states.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            registry,
            decisions,
            decision_duration,
            http_requests,
            rollout_percentage,
            rollout_enabled,
            rollout_version,
            cookies_rejected,
            store_up,
            store_errors,
            store_restores,
            last_sync,
            enrollments,
            login_outcomes,
            build_info,
            rule_matches,
            schedule_steps_applied,
            forward_auth_unknown_rollout,
            guard_trips,
            guard_states,
        }
        .with_store_errors_at_zero()
    }

    fn with_store_errors_at_zero(self) -> Self {
        for op in STORE_OPS {
            self.store_errors.with_label_values(&[op]);
        }
        self
    }

    /// Resolves (and so exports at zero) every counter of one rollout: decisions, rejected
    /// cookies, login outcomes, schedule steps applied and one per rule (`rule_ids`, in rule order). Rule series of
    /// rules the rollout no longer has are dropped.
    pub fn rollout_counters(&self, rollout: &str, rule_ids: &[&str]) -> RolloutCounters {
        let outcomes = [Flow::Stytch, Flow::Legacy].map(|flow| {
            LoginOutcome::ALL.map(|outcome| {
                self.login_outcomes
                    .with_label_values(&[rollout, flow.as_str(), outcome.as_str()])
            })
        });
        self.forget_rules(rollout, |rule| !rule_ids.contains(&rule));
        self.schedule_steps_applied.with_label_values(&[rollout]);
        let rules = rule_ids
            .iter()
            .map(|id| self.rule_matches.with_label_values(&[rollout, id]))
            .collect();
        // Only series a decision can produce are exported (at zero until it does); the
        // others get a counter of their own that no registry holds.
        let decisions = [Flow::Stytch, Flow::Legacy].map(|flow| {
            Reason::ALL.map(|reason| {
                if reason.can_give(flow) {
                    self.decisions
                        .with_label_values(&[rollout, flow.as_str(), reason.as_str()])
                } else {
                    IntCounter::new("switchyard_impossible_decisions", "never exported")
                        .expect("a valid counter")
                }
            })
        });
        let rejected = Rejection::ALL.map(|reason| {
            self.cookies_rejected
                .with_label_values(&[rollout, reason.as_str()])
        });
        RolloutCounters {
            decisions,
            rejected,
            outcomes,
            rules,
        }
    }

    /// Sets the gauges that describe a rollout's current version.
    pub fn describe_rollout(&self, rollout: &str, percent: f64, enabled: bool, version: u64) {
        self.rollout_percentage
            .with_label_values(&[rollout])
            .set(percent);
        self.rollout_enabled
            .with_label_values(&[rollout])
            .set(i64::from(enabled));
        self.rollout_version
            .with_label_values(&[rollout])
            .set(i64::try_from(version).unwrap_or(i64::MAX));
    }

    /// Drops the rule series of `rollout` whose rule id `gone` says is gone.
    fn forget_rules(&self, rollout: &str, gone: impl Fn(&str) -> bool) {
        use prometheus::core::Collector;
        let families = self.rule_matches.collect();
        for metric in families.iter().flat_map(|f| f.get_metric()) {
            let label = |name: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_string())
            };
            if let (Some(r), Some(rule)) = (label("rollout"), label("rule")) {
                if r == rollout && gone(&rule) {
                    let _ = self.rule_matches.remove_label_values(&[rollout, &rule]);
                }
            }
        }
    }

    /// Drops every series labelled with a deleted rollout.
    pub fn forget_rollout(&self, rollout: &str) {
        self.forget_rules(rollout, |_| true);
        let _ = self.rollout_percentage.remove_label_values(&[rollout]);
        let _ = self.rollout_enabled.remove_label_values(&[rollout]);
        let _ = self.rollout_version.remove_label_values(&[rollout]);
        let _ = self.enrollments.remove_label_values(&[rollout]);
        let _ = self.schedule_steps_applied.remove_label_values(&[rollout]);
        let _ = self.guard_states.remove_label_values(&[rollout]);
        for action in GUARD_ACTIONS {
            let _ = self.guard_trips.remove_label_values(&[rollout, action]);
        }
        for flow in [Flow::Stytch, Flow::Legacy] {
            for reason in Reason::ALL {
                let _ =
                    self.decisions
                        .remove_label_values(&[rollout, flow.as_str(), reason.as_str()]);
            }
            for outcome in LoginOutcome::ALL {
                let _ = self.login_outcomes.remove_label_values(&[
                    rollout,
                    flow.as_str(),
                    outcome.as_str(),
                ]);
            }
        }
        for reason in Rejection::ALL {
            let _ = self
                .cookies_rejected
                .remove_label_values(&[rollout, reason.as_str()]);
        }
    }

    /// Counts one schedule step applied by this replica to `rollout`.
    pub fn schedule_step_applied(&self, rollout: &str) {
        self.schedule_steps_applied
            .with_label_values(&[rollout])
            .inc();
    }

    /// Counts one trip this replica wrote to `rollout` (`action`: `kill` or `pause`).
    pub fn guard_tripped(&self, rollout: &str, action: &str) {
        self.guard_trips.with_label_values(&[rollout, action]).inc();
    }

    /// Sets where `rollout`'s guard stands (0 watching … 3 off); the trip counters of a
    /// guarded rollout are exported from the first time, at zero.
    pub fn guard_state(&self, rollout: &str, state: i64) {
        self.guard_states.with_label_values(&[rollout]).set(state);
        for action in GUARD_ACTIONS {
            self.guard_trips.with_label_values(&[rollout, action]);
        }
    }

    /// Records whether a store operation reached the store.
    pub fn store_reached(&self, op: &str, reached: bool) {
        if reached {
            self.store_up.set(1);
        } else {
            self.store_up.set(0);
            self.store_errors.with_label_values(&[op]).inc();
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
