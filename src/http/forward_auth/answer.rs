//! A forward-auth answer (SPEC §11): always 200 with an empty body, the decision in
//! `X-Switchyard-*` headers and at most one `Set-Cookie` (nginx 1.22 passes on only the
//! first). Pure shaping: nothing here decides, counts or logs.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::decider::Decided;
use crate::rules::{Flow, Reason};
use crate::sessions::SessionAction;

pub const FLOW: HeaderName = HeaderName::from_static("x-switchyard-flow");
pub const REASON: HeaderName = HeaderName::from_static("x-switchyard-reason");
pub const RULE: HeaderName = HeaderName::from_static("x-switchyard-rule");
pub const SESSION_ACTION: HeaderName = HeaderName::from_static("x-switchyard-session-action");
pub const VERSION: HeaderName = HeaderName::from_static("x-switchyard-version");

/// The reason of the answer for a rollout that does not exist.
pub const UNKNOWN_ROLLOUT: &str = "unknown_rollout";

/// The answer for a decision. `secure`: whether the cookie carries `Secure`.
pub fn decided(decided: &Decided, secure: bool) -> HttpResponse {
    let mut response = HttpResponse::new(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(FLOW, flow_value(decided.flow));
    headers.insert(REASON, reason_value(decided.reason));
    headers.insert(SESSION_ACTION, session_action_value(decided.session_action));
    headers.insert(VERSION, version_value(decided.live.rollout.version));
    // Rule ids are letters, digits and `_ - .` (validated), always a valid header value.
    if let Some(rule) = decided
        .rule_id()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        headers.insert(RULE, rule);
    }
    if let Some(cookie) = &decided.set_cookie {
        let line = set_cookie_line(
            decided.cookie_name(),
            &cookie.value,
            cookie.max_age_seconds,
            secure,
        );
        // A cookie name is an RFC 6265 token and a value is the signer's `[A-Za-z0-9._-]`.
        if let Ok(value) = HeaderValue::from_maybe_shared(actix_web::web::Bytes::from(line)) {
            headers.insert(header::SET_COOKIE, value);
        }
    }
    response
}

/// The answer for a rollout that does not exist: legacy, so that a typo in a proxy's
/// configuration never takes a site down.
pub fn unknown_rollout(session_action: SessionAction) -> HttpResponse {
    let mut response = HttpResponse::new(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(FLOW, flow_value(Flow::Legacy));
    headers.insert(REASON, HeaderValue::from_static(UNKNOWN_ROLLOUT));
    headers.insert(SESSION_ACTION, session_action_value(session_action));
    response
}

// The values of the answer's fixed headers, made once at compile time (a `from_static` at run
// time checks every byte again); `the_fixed_values_are_the_names_the_spec_uses` holds them to
// the names `as_str` gives.

fn flow_value(flow: Flow) -> HeaderValue {
    const STYTCH: HeaderValue = HeaderValue::from_static("stytch");
    const LEGACY: HeaderValue = HeaderValue::from_static("legacy");
    match flow {
        Flow::Stytch => STYTCH,
        Flow::Legacy => LEGACY,
    }
}

fn reason_value(reason: Reason) -> HeaderValue {
    const DISABLED: HeaderValue = HeaderValue::from_static("disabled");
    const OVERRIDE_COOKIE: HeaderValue = HeaderValue::from_static("override_cookie");
    const RULE: HeaderValue = HeaderValue::from_static("rule");
    const ENROLLED: HeaderValue = HeaderValue::from_static("enrolled");
    const STICKY_COOKIE: HeaderValue = HeaderValue::from_static("sticky_cookie");
    const PERCENTAGE: HeaderValue = HeaderValue::from_static("percentage");
    match reason {
        Reason::Disabled => DISABLED,
        Reason::OverrideCookie => OVERRIDE_COOKIE,
        Reason::Rule => RULE,
        Reason::Enrolled => ENROLLED,
        Reason::StickyCookie => STICKY_COOKIE,
        Reason::Percentage => PERCENTAGE,
    }
}

fn session_action_value(action: SessionAction) -> HeaderValue {
    const VALIDATE_STYTCH: HeaderValue = HeaderValue::from_static("validate_stytch");
    const VALIDATE_LEGACY: HeaderValue = HeaderValue::from_static("validate_legacy");
    const MIGRATE_TO_STYTCH: HeaderValue = HeaderValue::from_static("migrate_to_stytch");
    const LOGIN_STYTCH: HeaderValue = HeaderValue::from_static("login_stytch");
    const LOGIN_LEGACY: HeaderValue = HeaderValue::from_static("login_legacy");
    match action {
        SessionAction::ValidateStytch => VALIDATE_STYTCH,
        SessionAction::ValidateLegacy => VALIDATE_LEGACY,
        SessionAction::MigrateToStytch => MIGRATE_TO_STYTCH,
        SessionAction::LoginStytch => LOGIN_STYTCH,
        SessionAction::LoginLegacy => LOGIN_LEGACY,
    }
}

/// A version number as a header value; the worker's last few are kept (a rollout's version
/// changes only on an admin write), so that an answer does not format and allocate one.
fn version_value(version: u64) -> HeaderValue {
    use std::cell::RefCell;
    const SLOTS: usize = 16;
    thread_local! {
        static RECENT: RefCell<[Option<(u64, HeaderValue)>; SLOTS]> =
            const { RefCell::new([const { None }; SLOTS]) };
    }
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        let slot = &mut recent[version as usize % SLOTS];
        match slot {
            Some((v, value)) if *v == version => value.clone(),
            _ => {
                let value = HeaderValue::from(version);
                *slot = Some((version, value.clone()));
                value
            }
        }
    })
}

/// `name=value; Path=/; Max-Age=N; HttpOnly; SameSite=Lax[; Secure]`, in one allocation.
fn set_cookie_line(name: &str, value: &str, max_age_seconds: u64, secure: bool) -> String {
    let mut max_age = itoa::Buffer::new();
    let max_age = max_age.format(max_age_seconds);
    let mut line = String::with_capacity(name.len() + value.len() + max_age.len() + 56);
    line.push_str(name);
    line.push('=');
    line.push_str(value);
    line.push_str("; Path=/; Max-Age=");
    line.push_str(max_age);
    line.push_str("; HttpOnly; SameSite=Lax");
    if secure {
        line.push_str("; Secure");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_values_are_the_names_the_spec_uses() {
        for flow in [Flow::Stytch, Flow::Legacy] {
            assert_eq!(flow_value(flow), flow.as_str());
        }
        for reason in Reason::ALL {
            assert_eq!(reason_value(reason), reason.as_str());
        }
        for action in SessionAction::ALL {
            assert_eq!(session_action_value(action), action.as_str());
        }
        for version in [0, 1, 17, 33, 1, 17, u64::MAX] {
            assert_eq!(version_value(version), version.to_string().as_str());
        }
    }

    #[test]
    fn the_cookie_line_has_every_attribute_and_secure_only_when_asked() {
        assert_eq!(
            set_cookie_line("sy_flow", "s1.a.1.42.0.sig", 2_592_000, true),
            "sy_flow=s1.a.1.42.0.sig; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            set_cookie_line("sy_flow", "v", 60, false),
            "sy_flow=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
    }
}
