//! The decide use case: find the rollout in memory, locate the request, check its cookies,
//! evaluate, and say which cookie to set and what to do with the session.
//!
//! Everything here runs from memory: it must never await, touch the store or take a lock a
//! writer holds. Cookie values, tokens and user keys are never logged.
//!
//! A decision is counted here and only here (metrics and the per-minute counts); a *trial*
//! (the admin page's "try a decision", `POST /v1/rollouts/{key}/evaluate`) is the very same
//! evaluation with nothing counted.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::catalog::{Catalog, LiveRollout};
use crate::cookies::CookieSigner;
use crate::geo::{locate, GeoIp};
use crate::metrics::Metrics;
use crate::rules::{self, Flow, Reason, Subject};
use crate::sessions::{action_for, Classifier, SessionAction, SessionSource};
use crate::tally::Counter;

/// The name of the override cookie minted for testers.
pub const OVERRIDE_COOKIE: &str = "sy_override";

/// The cookies a request carries, by name.
pub trait CookieJar {
    fn cookie(&self, name: &str) -> Option<&str>;
}

impl<T: CookieJar + ?Sized> CookieJar for &T {
    fn cookie(&self, name: &str) -> Option<&str> {
        (**self).cookie(name)
    }
}

impl CookieJar for () {
    fn cookie(&self, _: &str) -> Option<&str> {
        None
    }
}

impl<K: std::borrow::Borrow<str> + std::hash::Hash + Eq, V: AsRef<str>> CookieJar
    for std::collections::HashMap<K, V>
{
    fn cookie(&self, name: &str) -> Option<&str> {
        self.get(name).map(AsRef::as_ref)
    }
}

/// One decide request, borrowed from the wire.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecideInput<'a, J> {
    pub rollout: &'a str,
    pub user_key: Option<&'a str>,
    pub device_id: Option<&'a str>,
    pub ip: Option<IpAddr>,
    /// The caller's own idea of the country (wins over GeoIP).
    pub country: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub app_version: Option<&'a str>,
    pub session_token: Option<&'a str>,
    pub cookies: J,
}

/// A cookie the middleware should set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    pub value: String,
    pub max_age_seconds: u64,
}

/// The answer, holding the rollout version it was made with.
pub struct Decided {
    pub live: Arc<LiveRollout>,
    pub flow: Flow,
    pub reason: Reason,
    /// The index of that rule in `live.compiled.rules` (see [`Decided::rule_id`]).
    pub rule: Option<usize>,
    pub bucket: u16,
    pub set_cookie: Option<SetCookie>,
    pub session_source: SessionSource,
    pub session_action: SessionAction,
}

impl Decided {
    /// The id of the rule that decided, or whose segment percentage was used.
    pub fn rule_id(&self) -> Option<&str> {
        self.rule
            .and_then(|i| self.live.compiled.rules.get(i))
            .map(|r| &*r.id)
    }

    /// The sticky cookie's name (the one `set_cookie` is for).
    pub fn cookie_name(&self) -> &str {
        self.live
            .compiled
            .sticky
            .as_ref()
            .map_or("", |s| &s.cookie_name)
    }
}

/// Whether a decision counts: a real one is counted in the metrics (decisions, rule matches,
/// rejected cookies, duration) and the per-minute counts; a trial is counted nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    Counted,
    Trial,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecideError {
    #[error("rollout '{0}' does not exist")]
    UnknownRollout(String),
    #[error("give user_key or device_id")]
    MissingKey,
}

pub struct Decider {
    catalog: Arc<Catalog>,
    geo: Arc<GeoIp>,
    signer: CookieSigner,
    classifier: Classifier,
    metrics: Arc<Metrics>,
    /// Times each decision for the duration histogram: the CPU's time-stamp counter where it
    /// is stable (two reads ~20 ns, against ~50 ns for two `Instant::now()` in this VM), the
    /// monotonic clock elsewhere.
    clock: quanta::Clock,
}

impl Decider {
    pub fn new(
        catalog: Arc<Catalog>,
        geo: Arc<GeoIp>,
        signer: CookieSigner,
        classifier: Classifier,
        metrics: Arc<Metrics>,
    ) -> Decider {
        Decider {
            catalog,
            geo,
            signer,
            classifier,
            metrics,
            clock: quanta::Clock::new(),
        }
    }

    /// Decides `input.rollout` for one request.
    pub fn decide<J: CookieJar>(&self, input: &DecideInput<'_, J>) -> Result<Decided, DecideError> {
        self.decide_one(input, Counting::Counted)
    }

    /// What [`Decider::decide`] would answer for `input`, counted nowhere: for people trying
    /// the rules out, whose trials are not traffic.
    pub fn decide_trial<J: CookieJar>(
        &self,
        input: &DecideInput<'_, J>,
    ) -> Result<Decided, DecideError> {
        self.decide_one(input, Counting::Trial)
    }

    fn decide_one<J: CookieJar>(
        &self,
        input: &DecideInput<'_, J>,
        counting: Counting,
    ) -> Result<Decided, DecideError> {
        let started = self.clock.raw();
        let (user_key, device_id) = keys_of(input)?;
        let live = self
            .catalog
            .get(input.rollout)
            .ok_or_else(|| DecideError::UnknownRollout(input.rollout.to_string()))?;
        Ok(self.decide_live(live, input, user_key, device_id, started, counting))
    }

    /// Decides every rollout for one request (`input.rollout` is not read), sorted by key:
    /// each is one decision, counted as `decide` counts it.
    pub fn decide_all<J: CookieJar>(
        &self,
        input: &DecideInput<'_, J>,
    ) -> Result<Vec<Decided>, DecideError> {
        let (user_key, device_id) = keys_of(input)?;
        Ok(self
            .catalog
            .all()
            .into_iter()
            .map(|live| {
                self.decide_live(
                    live,
                    input,
                    user_key,
                    device_id,
                    self.clock.raw(),
                    Counting::Counted,
                )
            })
            .collect())
    }

    fn decide_live<J: CookieJar>(
        &self,
        live: Arc<LiveRollout>,
        input: &DecideInput<'_, J>,
        user_key: Option<&str>,
        device_id: Option<&str>,
        started: u64,
        counting: Counting,
    ) -> Decided {
        let rollout = &live.compiled;
        let counted = counting == Counting::Counted;

        let location = if rollout.needs_location {
            locate(&self.geo, input.ip, input.country)
        } else {
            rules::Location::UNKNOWN
        };
        let override_flow = input.cookies.cookie(OVERRIDE_COOKIE).and_then(|value| {
            let now = unix_now();
            self.signer
                .verify_override(value, &rollout.key, rollout.epoch, now)
                .map_err(|why| {
                    if counted {
                        live.counters.rejected(why).inc();
                    }
                })
                .ok()
        });
        let sticky = rollout.sticky.as_ref().and_then(|policy| {
            let value = input.cookies.cookie(&policy.cookie_name)?;
            self.signer
                .verify_sticky(value, &rollout.key, rollout.epoch)
                .map_err(|why| {
                    if counted {
                        live.counters.rejected(why).inc();
                    }
                })
                .ok()
        });
        let subject = Subject {
            user_key,
            device_id,
            ip: input.ip,
            location,
            platform: input.platform,
            app_version: input.app_version,
            override_flow,
            sticky,
        };
        let decision = rules::decide(rollout, &subject, |user| live.enrollments.contains(user));
        let set_cookie =
            decision
                .issue_sticky
                .zip(rollout.sticky.as_ref())
                .map(|(state, policy)| SetCookie {
                    value: self.signer.sign_sticky(&rollout.key, rollout.epoch, state),
                    max_age_seconds: policy.max_age_seconds,
                });
        let session_source = self.classifier.classify(input.session_token);
        let session_action = action_for(decision.flow, session_source, rollout.legacy_sessions);

        if counted {
            live.counters.decision(decision.flow, decision.reason).inc();
            live.tally.count(Counter::decision(decision.flow));
            if let Some(rule) = decision.rule_index.and_then(|i| live.counters.rule(i)) {
                rule.inc();
            }
            self.metrics
                .decision_duration
                .observe(self.clock.delta(started, self.clock.raw()).as_secs_f64());
        }
        Decided {
            flow: decision.flow,
            reason: decision.reason,
            rule: decision.rule_index,
            bucket: decision.bucket,
            set_cookie,
            session_source,
            session_action,
            live,
        }
    }

    /// What to do with a session when no rollout decided and the request goes to legacy
    /// (forward-auth's answer for a rollout that does not exist): SPEC §8's legacy row.
    pub fn legacy_session_action(&self, session_token: Option<&str>) -> SessionAction {
        let source = self.classifier.classify(session_token);
        action_for(Flow::Legacy, source, rules::LegacySessions::default())
    }

    pub fn signer(&self) -> &CookieSigner {
        &self.signer
    }
}

/// The request's user key and device id, empty ones left out; at least one must be given.
fn keys_of<'a, J>(
    input: &DecideInput<'a, J>,
) -> Result<(Option<&'a str>, Option<&'a str>), DecideError> {
    let user_key = input.user_key.filter(|k| !k.is_empty());
    let device_id = input.device_id.filter(|k| !k.is_empty());
    if user_key.is_none() && device_id.is_none() {
        return Err(DecideError::MissingKey);
    }
    Ok((user_key, device_id))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
