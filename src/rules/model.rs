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
    #[serde(default = "Sticky::default_max_age")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_ranges: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub countries: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continents: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdivisions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// What an admin submits to create or replace a rollout. Server-kept fields (`version`,
/// `updated_at`, `updated_by`) are accepted so a fetched rollout can be sent back as is, and
/// ignored. Missing editable fields take their defaults (or, for `salt` and `epoch`, the
/// current value).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutDraft {
    pub key: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub percentage: Option<f64>,
    pub salt: Option<String>,
    pub rules: Option<Vec<Rule>>,
    pub sticky: Option<Sticky>,
    pub epoch: Option<u64>,
    pub legacy_sessions: Option<LegacySessions>,
    #[serde(default, rename = "version")]
    pub _version: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    pub _updated_at: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "updated_by")]
    pub _updated_by: Option<serde::de::IgnoredAny>,
}

impl RolloutDraft {
    /// The content this draft describes. `current` supplies salt and epoch when the draft
    /// leaves them out; `new_salt` is used when neither has one.
    pub fn into_content(
        self,
        current: Option<&RolloutContent>,
        new_salt: impl FnOnce() -> String,
    ) -> RolloutContent {
        RolloutContent {
            description: self.description.unwrap_or_default(),
            enabled: self.enabled.unwrap_or(true),
            percentage: self.percentage.unwrap_or(0.0),
            salt: self
                .salt
                .or_else(|| current.map(|c| c.salt.clone()))
                .unwrap_or_else(new_salt),
            rules: self.rules.unwrap_or_default(),
            sticky: self.sticky.unwrap_or_default(),
            epoch: self.epoch.or(current.map(|c| c.epoch)).unwrap_or(1),
            legacy_sessions: self.legacy_sessions.unwrap_or_default(),
        }
    }
}
