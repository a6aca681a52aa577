//! The rollout as admins write it and the store keeps it: plain serde data, no behaviour.
//!
//! A `Rollout` here has passed validation (`compile`) before anyone stores it; evaluation never
//! reads this form, it reads `CompiledRollout`. Nothing here knows about HTTP or storage.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which login a user goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    Stytch,
    Legacy,
}

impl Flow {
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Stytch => "stytch",
            Flow::Legacy => "legacy",
        }
    }

    pub fn parse(text: &str) -> Option<Flow> {
        match text {
            "stytch" => Some(Flow::Stytch),
            "legacy" => Some(Flow::Legacy),
            _ => None,
        }
    }
}

/// What a user sent to Stytch with a legacy session gets told to do (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacySessions {
    #[default]
    Reject,
    Honor,
    Migrate,
}

/// Sticky-cookie settings of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sticky {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "Sticky::default_cookie_name")]
    pub cookie_name: String,
    #[serde(default = "Sticky::default_max_age", deserialize_with = "whole::u64")]
    pub max_age_seconds: u64,
}

impl Sticky {
    pub const DEFAULT_COOKIE_NAME: &'static str = "sy_flow";
    pub const DEFAULT_MAX_AGE_SECONDS: u64 = 30 * 24 * 3600;

    fn default_cookie_name() -> String {
        Self::DEFAULT_COOKIE_NAME.to_string()
    }

    fn default_max_age() -> u64 {
        Self::DEFAULT_MAX_AGE_SECONDS
    }
}

impl Default for Sticky {
    fn default() -> Self {
        Sticky {
            enabled: true,
            cookie_name: Self::default_cookie_name(),
            max_age_seconds: Self::DEFAULT_MAX_AGE_SECONDS,
        }
    }
}

fn default_true() -> bool {
    true
}

/// The conditions of a rule: all present ones must hold; a list holds when any element matches.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_ranges: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub countries: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub continents: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub subdivisions: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub platforms: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub app_version: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_keys: Option<Vec<String>>,
}

/// What a matching rule does: force a flow, or roll its segment out at its own percentage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Force(Flow),
    Segment { percentage: f64 },
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Segment {
            percentage: f64,
        }
        match self {
            Outcome::Force(flow) => flow.serialize(serializer),
            Outcome::Segment { percentage } => Segment {
                percentage: *percentage,
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const EXPECTED: &str = r#"expected "stytch", "legacy" or {"percentage": N}"#;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Flow::parse(&text)
                .map(Outcome::Force)
                .ok_or_else(|| D::Error::custom(format!("unknown flow '{text}', {EXPECTED}"))),
            serde_json::Value::Object(map) => {
                if map.len() != 1 {
                    return Err(D::Error::custom(EXPECTED));
                }
                match map.get("percentage").and_then(serde_json::Value::as_f64) {
                    Some(percentage) => Ok(Outcome::Segment { percentage }),
                    None => Err(D::Error::custom(EXPECTED)),
                }
            }
            _ => Err(D::Error::custom(EXPECTED)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub when: Conditions,
    pub then: Outcome,
}

/// Where a ramp schedule stands (SPEC §9). Admins set `active` or `paused`; the service sets
/// `done` once the last step has applied, and pauses an active schedule when a write changes
/// the percentage or turns the kill switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleState {
    Active,
    Paused,
    Done,
}

/// One planned step of a ramp: at `at`, the rollout's percentage becomes `percentage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleStep {
    #[serde(deserialize_with = "rfc3339::time")]
    pub at: DateTime<Utc>,
    pub percentage: f64,
}

/// A planned ramp: steps in strictly increasing time order, and how far it has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub state: ScheduleState,
    pub steps: Vec<ScheduleStep>,
    /// Kept by the service: the first `applied_steps` steps are behind the schedule (applied,
    /// or passed over because a later step's time had come too when it was applied). Admins
    /// cannot set it; what they send is ignored.
    #[serde(default)]
    pub applied_steps: usize,
}

/// What a guard does when it trips (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    /// Turn the kill switch on (`enabled: false`): everyone back to legacy.
    #[default]
    Kill,
    /// Pause the schedule and set the percentage back to the previous step's.
    Pause,
}

/// The automatic brake on login failures (SPEC §9). Every member may be left out on input and
/// takes the default of SPEC §9's example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The window over which the two flows' failure rates are compared, in seconds.
    #[serde(default = "Guard::default_window", deserialize_with = "whole::u64")]
    pub window_seconds: u64,
    /// Fewer attempts than this in either flow is not evidence of anything.
    #[serde(
        default = "Guard::default_min_attempts",
        deserialize_with = "whole::u64"
    )]
    pub min_attempts: u64,
    /// Trip when the lower confidence bound of (Stytch − legacy failure rate) exceeds this, in
    /// percentage points.
    #[serde(default = "Guard::default_max_increase")]
    pub max_failure_rate_increase: f64,
    /// The one-sided confidence of that bound.
    #[serde(default = "Guard::default_confidence")]
    pub confidence: f64,
    #[serde(default)]
    pub action: GuardAction,
}

impl Guard {
    pub const DEFAULT_WINDOW_SECONDS: u64 = 600;
    pub const DEFAULT_MIN_ATTEMPTS: u64 = 200;
    pub const DEFAULT_MAX_FAILURE_RATE_INCREASE: f64 = 2.0;
    pub const DEFAULT_CONFIDENCE: f64 = 0.95;

    fn default_window() -> u64 {
        Self::DEFAULT_WINDOW_SECONDS
    }

    fn default_min_attempts() -> u64 {
        Self::DEFAULT_MIN_ATTEMPTS
    }

    fn default_max_increase() -> f64 {
        Self::DEFAULT_MAX_FAILURE_RATE_INCREASE
    }

    fn default_confidence() -> f64 {
        Self::DEFAULT_CONFIDENCE
    }
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            enabled: true,
            window_seconds: Self::DEFAULT_WINDOW_SECONDS,
            min_attempts: Self::DEFAULT_MIN_ATTEMPTS,
            max_failure_rate_increase: Self::DEFAULT_MAX_FAILURE_RATE_INCREASE,
            confidence: Self::DEFAULT_CONFIDENCE,
            action: GuardAction::Kill,
        }
    }
}

/// The editable content of a rollout: everything an admin sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutContent {
    pub description: String,
    pub enabled: bool,
    pub percentage: f64,
    pub salt: String,
    pub rules: Vec<Rule>,
    pub sticky: Sticky,
    pub epoch: u64,
    pub legacy_sessions: LegacySessions,
    /// A planned ramp (SPEC §9); a rollout without one behaves as if there were none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// The automatic brake on login failures (SPEC §9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
}

/// One version of a rollout, as stored and as shown by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub key: String,
    #[serde(flatten)]
    pub content: RolloutContent,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// Sticky-cookie settings as an admin submits them: every member may be left out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickyDraft {
    #[serde(default, deserialize_with = "present")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub cookie_name: Option<String>,
    #[serde(default, deserialize_with = "whole::option_u64")]
    pub max_age_seconds: Option<u64>,
}

/// A schedule as an admin submits it: `steps` is required, `state` defaults to `active`, and
/// `applied_steps` (kept by the service) may be sent back as fetched and is ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDraft {
    #[serde(default, deserialize_with = "present")]
    pub state: Option<ScheduleState>,
    pub steps: Vec<ScheduleStep>,
    #[serde(default, rename = "applied_steps", deserialize_with = "present")]
    pub _applied_steps: Option<ServerKept>,
}

/// What an admin submits to create or replace a rollout. Server-kept fields (`version`,
/// `updated_at`, `updated_by`) are accepted so a fetched rollout can be sent back as is, and
/// ignored. Missing editable fields take their defaults (or, for `salt`, `epoch` and the
/// sticky cookie's name, the current value).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutDraft {
    #[serde(default, deserialize_with = "present")]
    pub key: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub percentage: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub salt: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub rules: Option<Vec<Rule>>,
    #[serde(default, deserialize_with = "present")]
    pub sticky: Option<StickyDraft>,
    #[serde(default, deserialize_with = "whole::option_u64")]
    pub epoch: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub legacy_sessions: Option<LegacySessions>,
    #[serde(default, deserialize_with = "present")]
    pub schedule: Option<ScheduleDraft>,
    #[serde(default, deserialize_with = "present")]
    pub guard: Option<Guard>,
    #[serde(default, rename = "version", deserialize_with = "present")]
    pub _version: Option<ServerKept>,
    #[serde(default, rename = "updated_at", deserialize_with = "present")]
    pub _updated_at: Option<ServerKept>,
    #[serde(default, rename = "updated_by", deserialize_with = "present")]
    pub _updated_by: Option<ServerKept>,
}

/// The members of a rollout the server keeps (`version`, `updated_at`, `updated_by`): a draft
/// may carry them back as fetched, and they are ignored.
pub const SERVER_KEPT: [&str; 3] = ["version", "updated_at", "updated_by"];

/// Why a server-kept member may not be `null`, in the API's words.
pub const SERVER_KEPT_NULL: &str =
    "must not be null: it is kept by the server and ignored here; leave it out or send it as fetched";

/// A server-kept member sent back: any value but `null` (which is no value, as everywhere but
/// `description`), and ignored.
#[derive(Debug, Clone, Copy)]
pub struct ServerKept;

impl<'de> Deserialize<'de> for ServerKept {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Option::<serde::de::IgnoredAny>::deserialize(deserializer)? {
            Some(_) => Ok(ServerKept),
            None => Err(serde::de::Error::custom(SERVER_KEPT_NULL)),
        }
    }
}

/// A member that may be left out but, when present, must not be `null` (SPEC §4: only
/// `description` can be removed): `null` is then refused with the member's own type error.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// The sticky cookie name a rollout gets when none is given: `sy_<key>` (SPEC §1), so that
/// a rollout created with nothing but its key never clashes with another's cookie.
pub fn default_cookie_name(key: &str) -> String {
    format!("sy_{key}")
}

impl RolloutDraft {
    /// The content this draft describes for the rollout `key`. `current` supplies salt,
    /// epoch and the cookie name when the draft leaves them out (changing any of them would
    /// void cookies or reshuffle users); `new_salt` is used when neither has one. A schedule's
    /// progress (`applied_steps`) is the service's: it carries over from `current` for the
    /// steps that are unchanged, and is never taken from the draft.
    pub fn into_content(
        self,
        key: &str,
        current: Option<&RolloutContent>,
        new_salt: impl FnOnce() -> String,
    ) -> RolloutContent {
        let sticky = self.sticky.unwrap_or_default();
        RolloutContent {
            description: self.description.unwrap_or_default(),
            enabled: self.enabled.unwrap_or(true),
            percentage: self.percentage.unwrap_or(0.0),
            salt: self
                .salt
                .or_else(|| current.map(|c| c.salt.clone()))
                .unwrap_or_else(new_salt),
            rules: self.rules.unwrap_or_default(),
            sticky: Sticky {
                enabled: sticky.enabled.unwrap_or(true),
                cookie_name: sticky
                    .cookie_name
                    .or_else(|| current.map(|c| c.sticky.cookie_name.clone()))
                    .unwrap_or_else(|| default_cookie_name(key)),
                max_age_seconds: sticky
                    .max_age_seconds
                    .unwrap_or(Sticky::DEFAULT_MAX_AGE_SECONDS),
            },
            epoch: self.epoch.or(current.map(|c| c.epoch)).unwrap_or(1),
            legacy_sessions: self.legacy_sessions.unwrap_or_default(),
            schedule: self.schedule.map(|draft| {
                let applied_steps = super::schedule::carried_progress(
                    current.and_then(|c| c.schedule.as_ref()),
                    &draft.steps,
                );
                Schedule {
                    state: draft.state.unwrap_or(ScheduleState::Active),
                    steps: draft.steps,
                    applied_steps,
                }
            }),
            guard: self.guard,
        }
    }
}

/// RFC 3339 times, strictly: `2026-12-01T09:00:00Z` or with an offset (`+01:00`), never the
/// space-separated form chrono's own reader also takes.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer};

    /// What a time must look like, in the API's words.
    pub const EXPECTED: &str =
        "must be an RFC 3339 date and time such as 2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00";

    /// Reads `text` as an RFC 3339 date-time (`T` or `t` between date and time).
    pub fn parse(text: &str) -> Option<DateTime<Utc>> {
        if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
            return None;
        }
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    pub fn time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let text =
            String::deserialize(deserializer).map_err(|_| serde::de::Error::custom(EXPECTED))?;
        parse(&text).ok_or_else(|| serde::de::Error::custom(EXPECTED))
    }
}

/// Whole numbers as JSON Schema counts them: `3` and `3.0` alike (a client that writes every
/// number as a float must not be refused), never `3.5` or a negative number.
pub mod whole {
    use serde::{Deserialize, Deserializer};

    /// The largest whole number a JSON float carries exactly.
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(u64),
        Float(f64),
    }

    pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        use serde::de::Error;
        match Number::deserialize(deserializer)
            .map_err(|_| D::Error::custom("expected a whole number"))?
        {
            Number::Int(n) => Ok(n),
            Number::Float(f) if f.fract() == 0.0 && (0.0..=MAX_EXACT).contains(&f) => Ok(f as u64),
            Number::Float(_) => Err(D::Error::custom("expected a whole number")),
        }
    }

    pub fn option_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        u64(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_rfc_3339_and_kept_in_utc() {
        let utc = |text: &str| rfc3339::parse(text).map(|t| t.to_rfc3339());
        assert_eq!(
            utc("2026-12-01T10:00:00+01:00").as_deref(),
            Some("2026-12-01T09:00:00+00:00")
        );
        for ok in [
            "2026-12-01T09:00:00Z",
            "2026-12-01t09:00:00z",
            "2026-12-01T09:00:00.5-05:30",
        ] {
            assert!(rfc3339::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "2026-12-01 09:00:00Z",
            "2026-12-01",
            "2026-12-01T09:00:00",
            "2026-13-01T09:00:00Z",
            "tomorrow",
            "",
        ] {
            assert!(rfc3339::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_large_whole_number_written_as_a_float_is_read_exactly() {
        #[derive(Deserialize)]
        struct N {
            #[serde(deserialize_with = "whole::u64")]
            n: u64,
        }
        // Between 2^50 and 2^53 a float's step is below 1: it must be parsed exactly.
        for n in [2_125_793_648_195_605u64, 9_007_199_254_740_991] {
            let read: N = serde_json::from_str(&format!(r#"{{"n": {n}.0}}"#)).unwrap();
            assert_eq!(read.n, n);
        }
    }

    #[test]
    fn a_guard_left_empty_takes_the_spec_examples_values() {
        let guard: Guard = serde_json::from_str("{}").unwrap();
        assert_eq!(guard, Guard::default());
        assert_eq!(
            serde_json::to_value(&guard).unwrap(),
            serde_json::json!({"enabled": true, "window_seconds": 600, "min_attempts": 200,
                               "max_failure_rate_increase": 2.0, "confidence": 0.95,
                               "action": "kill"})
        );
    }
}
