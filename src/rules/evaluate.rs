//! The evaluation order of SPEC §3: one pure function from a compiled rollout and a subject to
//! a `Decision`. It cannot fail, does no I/O and does not allocate. Cookies arrive here already
//! verified (see `crate::cookies`); this module never sees a signature.

use std::net::IpAddr;

use semver::Version;

use super::bucket::bucket_of;
use super::compile::{CompiledRollout, CompiledRule, Condition, RuleAction};
use super::location::Location;
use super::model::Flow;

/// What a valid sticky cookie says about a device: its place in line, and whether it has
/// already been sent to Stytch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StickyState {
    pub bucket: u16,
    pub stytch: bool,
}

/// The request as evaluation sees it. `user_key` or `device_id` is always present (the
/// caller rejects requests with neither).
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub user_key: Option<&'a str>,
    pub device_id: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub location: Location,
    pub platform: Option<&'a str>,
    pub app_version: Option<&'a str>,
    /// The flow of a valid override cookie for this rollout and epoch.
    pub override_flow: Option<Flow>,
    /// A valid sticky cookie for this rollout and epoch.
    pub sticky: Option<StickyState>,
}

impl Subject<'_> {
    /// The bucketing key: the user key if given, else the device id.
    pub fn key(&self) -> &str {
        self.user_key.or(self.device_id).unwrap_or("")
    }
}

/// Why a decision came out as it did (the `reason` of the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Disabled,
    OverrideCookie,
    Rule,
    Enrolled,
    StickyCookie,
    Percentage,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Disabled,
        Reason::OverrideCookie,
        Reason::Rule,
        Reason::Enrolled,
        Reason::StickyCookie,
        Reason::Percentage,
    ];

    /// Whether a decision can give `flow` for this reason (SPEC §3): the kill switch only
    /// sends to legacy; enrollments and sticky cookies only send to Stytch.
    pub fn can_give(self, flow: Flow) -> bool {
        !matches!(
            (self, flow),
            (Reason::Disabled, Flow::Stytch)
                | (Reason::Enrolled, Flow::Legacy)
                | (Reason::StickyCookie, Flow::Legacy)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Disabled => "disabled",
            Reason::OverrideCookie => "override_cookie",
            Reason::Rule => "rule",
            Reason::Enrolled => "enrolled",
            Reason::StickyCookie => "sticky_cookie",
            Reason::Percentage => "percentage",
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'r> {
    pub flow: Flow,
    pub reason: Reason,
    /// The forcing rule that decided, or the segment rule whose percentage was used.
    pub rule: Option<&'r str>,
    /// That rule's position in the rollout's rules.
    pub rule_index: Option<usize>,
    /// The device's bucket: the sticky cookie's when valid, else the key's.
    pub bucket: u16,
    /// A sticky cookie to (re)issue, when the rollout is sticky and the device needs one.
    pub issue_sticky: Option<StickyState>,
}

/// Decides a flow for `subject` under `rollout`, following SPEC §3 step by step.
/// `is_enrolled` is asked only when the evaluation reaches step 4 and a user key was given.
pub fn decide<'r>(
    rollout: &'r CompiledRollout,
    subject: &Subject<'_>,
    is_enrolled: impl FnOnce(&str) -> bool,
) -> Decision<'r> {
    let bucket = match subject.sticky {
        Some(state) => state.bucket,
        None => bucket_of(&rollout.salt, subject.key()),
    };
    let settle = |flow, reason, rule: Option<(usize, &'r str)>| Decision {
        flow,
        reason,
        rule: rule.map(|(_, id)| id),
        rule_index: rule.map(|(i, _)| i),
        bucket,
        issue_sticky: None,
    };

    // 1. Kill switch.
    if !rollout.enabled {
        return settle(Flow::Legacy, Reason::Disabled, None);
    }
    // 2. Override cookie.
    if let Some(flow) = subject.override_flow {
        return settle(flow, Reason::OverrideCookie, None);
    }
    // 3. First matching rule: a forcing rule decides; a segment sets the percentage.
    let mut percentage = rollout.percentage;
    let mut segment = None;
    let mut version = ParsedVersion::NotYet;
    for (index, rule) in rollout.rules.iter().enumerate() {
        if matches(rule, subject, &mut version) {
            match rule.action {
                RuleAction::Force(flow) => {
                    return settle(flow, Reason::Rule, Some((index, &rule.id)))
                }
                RuleAction::Segment(share) => {
                    percentage = share;
                    segment = Some((index, &*rule.id));
                }
            }
            break;
        }
    }
    // 4. Enrolled users already signed up through Stytch.
    if let Some(user_key) = subject.user_key {
        if is_enrolled(user_key) {
            return settle(Flow::Stytch, Reason::Enrolled, segment);
        }
    }
    // 5. A device once sent to Stytch stays there.
    if let Some(StickyState { stytch: true, .. }) = subject.sticky {
        return settle(Flow::Stytch, Reason::StickyCookie, segment);
    }
    // 6. The bucket against the percentage.
    let flow = if percentage.admits(bucket) {
        Flow::Stytch
    } else {
        Flow::Legacy
    };
    let issue_sticky = rollout.sticky.as_ref().and_then(|_| {
        let first_time_in_stytch = flow == Flow::Stytch;
        (subject.sticky.is_none() || first_time_in_stytch).then_some(StickyState {
            bucket,
            stytch: flow == Flow::Stytch,
        })
    });
    Decision {
        issue_sticky,
        ..settle(flow, Reason::Percentage, segment)
    }
}

/// The request's app version, parsed at most once per evaluation.
enum ParsedVersion {
    NotYet,
    Parsed(Option<Version>),
}

impl ParsedVersion {
    fn get(&mut self, text: Option<&str>) -> Option<&Version> {
        if let ParsedVersion::NotYet = self {
            *self = ParsedVersion::Parsed(text.and_then(parse_app_version));
        }
        match self {
            ParsedVersion::Parsed(v) => v.as_ref(),
            ParsedVersion::NotYet => None,
        }
    }
}

/// Semver, leniently: `5`, `5.1` and a leading `v` are accepted as `5.0.0`, `5.1.0`.
pub fn parse_app_version(text: &str) -> Option<Version> {
    let text = text.trim();
    let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
    if let Ok(v) = Version::parse(text) {
        return Some(v);
    }
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Version::new(major, minor, 0))
}

fn matches(rule: &CompiledRule, subject: &Subject<'_>, version: &mut ParsedVersion) -> bool {
    rule.conditions.iter().all(|condition| match condition {
        Condition::IpRanges(table) => subject.ip.is_some_and(|ip| table.contains(ip)),
        Condition::Countries(codes) => subject.location.country.is_some_and(|c| codes.contains(&c)),
        Condition::Continents(codes) => subject
            .location
            .continent
            .is_some_and(|c| codes.contains(&c)),
        Condition::Subdivisions(codes) => {
            subject.location.subdivisions().any(|s| codes.contains(&s))
        }
        Condition::Platforms(names) => subject
            .platform
            .is_some_and(|p| names.iter().any(|n| n.eq_ignore_ascii_case(p))),
        Condition::AppVersion(req) => version
            .get(subject.app_version)
            .is_some_and(|v| req.matches(v)),
        Condition::UserKeys(keys) => subject.user_key.is_some_and(|k| keys.contains(k)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::compile::compile;
    use crate::rules::model::{Rollout, RolloutContent, Sticky};
    use crate::rules::{Code, LegacySessions};

    fn rollout(percentage: f64, rules: serde_json::Value) -> CompiledRollout {
        compile(&Rollout {
            key: "r".into(),
            content: RolloutContent {
                description: String::new(),
                enabled: true,
                percentage,
                salt: "s".into(),
                rules: serde_json::from_value(rules).unwrap(),
                sticky: Sticky::default(),
                epoch: 1,
                legacy_sessions: LegacySessions::Reject,
                schedule: None,
                guard: None,
            },
            version: 1,
            updated_at: chrono::Utc::now(),
            updated_by: "t".into(),
        })
        .unwrap()
    }

    fn subject(key: &str) -> Subject<'_> {
        Subject {
            user_key: Some(key),
            ..Subject::default()
        }
    }

    #[test]
    fn the_kill_switch_beats_everything() {
        let mut r = rollout(
            100.0,
            serde_json::json!([{"id": "all", "when": {"user_keys": ["u"]}, "then": "stytch"}]),
        );
        r.enabled = false;
        let s = Subject {
            override_flow: Some(Flow::Stytch),
            sticky: Some(StickyState {
                bucket: 0,
                stytch: true,
            }),
            ..subject("u")
        };
        let d = decide(&r, &s, |_| true);
        assert_eq!(
            (d.flow, d.reason, d.issue_sticky),
            (Flow::Legacy, Reason::Disabled, None)
        );
    }

    #[test]
    fn each_step_beats_the_later_ones() {
        let r = rollout(
            0.0,
            serde_json::json!([
                {"id": "force", "when": {"platforms": ["ios"]}, "then": "legacy"},
                {"id": "seg", "when": {"platforms": ["web"]}, "then": {"percentage": 100}}
            ]),
        );
        let ios = Subject {
            platform: Some("IOS"),
            ..subject("u")
        };
        // An override cookie beats a forcing rule.
        let d = decide(
            &r,
            &Subject {
                override_flow: Some(Flow::Stytch),
                ..ios
            },
            |_| true,
        );
        assert_eq!((d.flow, d.reason), (Flow::Stytch, Reason::OverrideCookie));
        // A forcing rule beats enrollment.
        let d = decide(&r, &ios, |_| true);
        assert_eq!(
            (d.flow, d.reason, d.rule),
            (Flow::Legacy, Reason::Rule, Some("force"))
        );
        // Enrollment beats the percentage, and only for user keys.
        let d = decide(&r, &subject("u"), |k| k == "u");
        assert_eq!((d.flow, d.reason), (Flow::Stytch, Reason::Enrolled));
        let device = Subject {
            device_id: Some("u"),
            ..Subject::default()
        };
        assert_eq!(decide(&r, &device, |_| true).reason, Reason::Percentage);
        // A sticky cookie that met Stytch beats a lowered percentage.
        let sticky = Subject {
            sticky: Some(StickyState {
                bucket: 9999,
                stytch: true,
            }),
            ..subject("v")
        };
        let d = decide(&r, &sticky, |_| false);
        assert_eq!(
            (d.flow, d.reason, d.bucket, d.issue_sticky),
            (Flow::Stytch, Reason::StickyCookie, 9999, None)
        );
        // A segment sets the percentage and keeps its id.
        let web = Subject {
            platform: Some("web"),
            ..subject("v")
        };
        let d = decide(&r, &web, |_| false);
        assert_eq!(
            (d.flow, d.reason, d.rule),
            (Flow::Stytch, Reason::Percentage, Some("seg"))
        );
    }

    #[test]
    fn a_sticky_cookie_is_issued_when_missing_or_on_first_stytch() {
        let r = rollout(50.0, serde_json::json!([]));
        let low = Subject {
            sticky: Some(StickyState {
                bucket: 10,
                stytch: false,
            }),
            ..subject("k")
        };
        let d = decide(&r, &low, |_| false);
        assert_eq!(
            d.issue_sticky,
            Some(StickyState {
                bucket: 10,
                stytch: true
            })
        );
        let high = Subject {
            sticky: Some(StickyState {
                bucket: 9000,
                stytch: false,
            }),
            ..subject("k")
        };
        assert_eq!(decide(&r, &high, |_| false).issue_sticky, None);
        let fresh = decide(&r, &subject("k"), |_| false);
        assert_eq!(fresh.issue_sticky.map(|s| s.bucket), Some(fresh.bucket));
    }

    #[test]
    fn the_cookie_bucket_stands_in_for_the_key() {
        let r = rollout(50.0, serde_json::json!([]));
        let before = decide(
            &r,
            &Subject {
                device_id: Some("device-1"),
                user_key: None,
                ..Subject::default()
            },
            |_| false,
        );
        let cookie = before.issue_sticky.unwrap();
        let after = decide(
            &r,
            &Subject {
                sticky: Some(cookie),
                ..subject("alice@example.com")
            },
            |_| false,
        );
        assert_eq!((after.flow, after.bucket), (before.flow, before.bucket));
    }

    #[test]
    fn geo_conditions_do_not_hold_when_the_location_is_unknown() {
        let r = rollout(
            0.0,
            serde_json::json!([{"id": "gb", "when": {"countries": ["GB"]}, "then": "stytch"}]),
        );
        assert!(r.needs_location);
        assert_eq!(
            decide(&r, &subject("k"), |_| false).reason,
            Reason::Percentage
        );
        let mut s = subject("k");
        s.location.country = Code::new("GB");
        assert_eq!(decide(&r, &s, |_| false).reason, Reason::Rule);
    }

    #[test]
    fn app_versions_are_read_leniently_but_garbage_never_matches() {
        assert_eq!(parse_app_version("5.1"), Some(Version::new(5, 1, 0)));
        assert_eq!(parse_app_version("v5"), Some(Version::new(5, 0, 0)));
        assert_eq!(
            parse_app_version("5.1.0-beta.1").map(|v| v.pre.is_empty()),
            Some(false)
        );
        assert_eq!(parse_app_version("five"), None);
        assert_eq!(parse_app_version("1.2.3.4"), None);
        let r = rollout(
            0.0,
            serde_json::json!([{"id": "old", "when": {"app_version": "<5.2.0"}, "then": "stytch"}]),
        );
        let with = |v| Subject {
            app_version: Some(v),
            ..subject("k")
        };
        assert_eq!(decide(&r, &with("5.1.9"), |_| false).reason, Reason::Rule);
        assert_eq!(
            decide(&r, &with("5.2.0"), |_| false).reason,
            Reason::Percentage
        );
        assert_eq!(
            decide(&r, &with("garbage"), |_| false).reason,
            Reason::Percentage
        );
    }
}
