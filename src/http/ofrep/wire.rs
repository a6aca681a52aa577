//! OFREP's wire shapes (the protocol's `service/openapi.yaml`, SPEC §10) and their mapping to
//! and from the decide use case: the evaluation context → a decide input, a decision → an
//! evaluation. Pure data mapping: no I/O, no evaluation of its own.

use serde::{Deserialize, Serialize};

use super::super::decide::{Cookies, FieldNames, SentInput, Text};
use crate::decider::Decided;
use crate::rules::Reason;

/// The body of both evaluation routes: `{"context": {...}}`. A body without `context` has an
/// empty one (the Python provider sends `{}` when the application gives no context).
#[derive(Deserialize)]
pub struct EvaluationRequest<'a> {
    #[serde(borrow, default)]
    pub context: Option<Context<'a>>,
}

/// The evaluation context members Switchyard reads; any other member is accepted and ignored
/// (OFREP's context allows additional properties). `targetingKey` is the user key; the rest
/// carry the names of `POST /v1/decide`'s members.
#[derive(Deserialize, Default)]
pub struct Context<'a> {
    #[serde(borrow, default, rename = "targetingKey")]
    pub targeting_key: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub device_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub ip: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub country: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub platform: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub app_version: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub session_token: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub cookies: Option<Cookies<'a>>,
}

/// The context members' names, for errors (`context.ip: invalid IP address 'x'`).
pub const CONTEXT_NAMES: FieldNames = FieldNames {
    user_key: "context.targetingKey",
    device_id: "context.device_id",
    ip: "context.ip",
    country: "context.country",
};

static NO_COOKIES: Cookies<'static> = Cookies(Vec::new());

impl<'a> Context<'a> {
    /// The decide request this context stands for, for `rollout` (unchecked).
    pub fn sent_input<'c>(&'c self, rollout: &'c str) -> SentInput<'c, &'c Cookies<'a>> {
        SentInput {
            rollout,
            user_key: self.targeting_key.as_deref(),
            device_id: self.device_id.as_deref(),
            ip: self.ip.as_deref(),
            country: self.country.as_deref(),
            platform: self.platform.as_deref(),
            app_version: self.app_version.as_deref(),
            session_token: self.session_token.as_deref(),
            cookies: self.cookies.as_ref().unwrap_or(&NO_COOKIES),
        }
    }
}

/// One flag's successful evaluation (`evaluationSuccess`, a string flag).
#[derive(Serialize)]
pub struct Evaluation<'a> {
    pub key: &'a str,
    /// The flow, `"stytch"` or `"legacy"`.
    pub value: &'static str,
    /// The flow again: every evaluation has a variant.
    pub variant: &'static str,
    pub reason: &'static str,
    pub metadata: Metadata<'a>,
}

/// The decision's details, flat (OFREP metadata values are strings, numbers or booleans; an
/// absent rule or cookie is left out rather than `null`).
#[derive(Serialize)]
pub struct Metadata<'a> {
    /// Switchyard's own reason (`percentage`, `rule`, …).
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    pub bucket: u16,
    pub version: u64,
    pub session_action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_cookie_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_cookie_value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_cookie_max_age: Option<u64>,
}

/// The bulk answer (`bulkEvaluationSuccess`): every rollout, sorted by key.
#[derive(Serialize)]
pub struct BulkEvaluation<'a> {
    pub flags: Vec<Evaluation<'a>>,
}

/// An OFREP failure body: `evaluationFailure` / `flagNotFound` (with `key`) for one flag,
/// `bulkEvaluationFailure` (without) for the bulk route.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    pub error_code: &'static str,
    pub error_details: String,
}

/// SPEC §10's reasons: the kill switch is `DISABLED`, the percentage step `SPLIT`, anything
/// that targeted this request (override cookie, rule, enrollment, sticky cookie)
/// `TARGETING_MATCH`.
pub fn ofrep_reason(reason: Reason) -> &'static str {
    match reason {
        Reason::Disabled => "DISABLED",
        Reason::OverrideCookie | Reason::Rule | Reason::Enrolled | Reason::StickyCookie => {
            "TARGETING_MATCH"
        }
        Reason::Percentage => "SPLIT",
    }
}

impl<'a> Evaluation<'a> {
    pub fn of(decided: &'a Decided) -> Evaluation<'a> {
        let flow = decided.flow.as_str();
        let cookie = decided.set_cookie.as_ref();
        Evaluation {
            key: &decided.live.rollout.key,
            value: flow,
            variant: flow,
            reason: ofrep_reason(decided.reason),
            metadata: Metadata {
                reason: decided.reason.as_str(),
                rule: decided.rule_id(),
                bucket: decided.bucket,
                version: decided.live.rollout.version,
                session_action: decided.session_action.as_str(),
                set_cookie_name: cookie.map(|_| decided.cookie_name()),
                set_cookie_value: cookie.map(|c| c.value.as_str()),
                set_cookie_max_age: cookie.map(|c| c.max_age_seconds),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::CookieJar;

    #[test]
    fn every_reason_maps_to_an_ofrep_reason() {
        let mapped: Vec<_> = Reason::ALL.iter().map(|r| ofrep_reason(*r)).collect();
        assert_eq!(
            mapped,
            [
                "DISABLED",
                "TARGETING_MATCH",
                "TARGETING_MATCH",
                "TARGETING_MATCH",
                "TARGETING_MATCH",
                "SPLIT"
            ]
        );
    }

    #[test]
    fn the_context_maps_to_the_decide_members_and_ignores_the_rest() {
        let body = br#"{"context":{"targetingKey":"alice","device_id":"d-1","ip":"203.0.113.9",
            "country":"GB","platform":"ios","app_version":"5.1.0","session_token":"t",
            "cookies":{"sy_flow":"v"},"email":"alice@example.com","plan":{"tier":3}}}"#;
        let request: EvaluationRequest = serde_json::from_slice(body).unwrap();
        let context = request.context.unwrap();
        let sent = context.sent_input("stytch-login");
        assert_eq!(sent.rollout, "stytch-login");
        assert_eq!(sent.user_key, Some("alice"));
        assert_eq!(sent.device_id, Some("d-1"));
        assert_eq!(sent.ip, Some("203.0.113.9"));
        assert_eq!(sent.country, Some("GB"));
        assert_eq!(sent.platform, Some("ios"));
        assert_eq!(sent.app_version, Some("5.1.0"));
        assert_eq!(sent.session_token, Some("t"));
        assert_eq!(sent.cookies.cookie("sy_flow"), Some("v"));
    }

    #[test]
    fn a_body_without_context_has_an_empty_one() {
        let request: EvaluationRequest = serde_json::from_slice(b"{}").unwrap();
        assert!(request.context.is_none());
        let context = Context::default();
        let sent = context.sent_input("r");
        assert_eq!(sent.user_key, None);
        assert_eq!(sent.cookies.cookie("sy_flow"), None);
    }
}
