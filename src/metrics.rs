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
}

/// Counters of one rollout, resolved once when the rollout is installed so that deciding
/// does no label lookup.
#[derive(Clone)]
pub struct RolloutCounters {
    decisions: [[IntCounter; Reason::ALL.len()]; 2],
    rejected: [IntCounter; Rejection::ALL.len()],
}

impl RolloutCounters {
    pub fn decision(&self, flow: Flow, reason: Reason) -> &IntCounter {
        let f = match flow {
            Flow::Stytch => 0,
            Flow::Legacy => 1,
        };
        let r = Reason::ALL.iter().position(|x| *x == reason).unwrap_or(0);
        &self.decisions[f][r]
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
        }
    }

    /// Resolves (and so exports at zero) every counter of one rollout.
    pub fn rollout_counters(&self, rollout: &str) -> RolloutCounters {
        let decisions = [Flow::Stytch, Flow::Legacy].map(|flow| {
            Reason::ALL.map(|reason| {
                self.decisions
                    .with_label_values(&[rollout, flow.as_str(), reason.as_str()])
            })
        });
        let rejected = Rejection::ALL.map(|reason| {
            self.cookies_rejected
                .with_label_values(&[rollout, reason.as_str()])
        });
        RolloutCounters {
            decisions,
            rejected,
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

    /// Drops every series labelled with a deleted rollout.
    pub fn forget_rollout(&self, rollout: &str) {
        let _ = self.rollout_percentage.remove_label_values(&[rollout]);
        let _ = self.rollout_enabled.remove_label_values(&[rollout]);
        let _ = self.rollout_version.remove_label_values(&[rollout]);
        let _ = self.enrollments.remove_label_values(&[rollout]);
        for flow in [Flow::Stytch, Flow::Legacy] {
            for reason in Reason::ALL {
                let _ =
                    self.decisions
                        .remove_label_values(&[rollout, flow.as_str(), reason.as_str()]);
            }
            for outcome in ["success", "failure"] {
                let _ = self
                    .login_outcomes
                    .remove_label_values(&[rollout, flow.as_str(), outcome]);
            }
        }
        for reason in Rejection::ALL {
            let _ = self
                .cookies_rejected
                .remove_label_values(&[rollout, reason.as_str()]);
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
