//! A forward-auth answer (SPEC §11): always 200 with an empty body, the decision in
//! `X-Switchyard-*` headers and at most one `Set-Cookie` (nginx 1.22 passes on only the
//! first). Pure shaping: nothing here decides, counts or logs.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::HttpResponse;

use crate::decider::Decided;
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
    let mut response = HttpResponse::Ok();
    response
        .insert_header((FLOW, HeaderValue::from_static(decided.flow.as_str())))
        .insert_header((REASON, HeaderValue::from_static(decided.reason.as_str())))
        .insert_header((
            SESSION_ACTION,
            HeaderValue::from_static(decided.session_action.as_str()),
        ))
        .insert_header((VERSION, HeaderValue::from(decided.live.rollout.version)));
    // Rule ids are letters, digits and `_ - .` (validated), always a valid header value.
    if let Some(rule) = decided
        .rule_id()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        response.insert_header((RULE, rule));
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
            response.insert_header((header::SET_COOKIE, value));
        }
    }
    response.finish()
}

/// The answer for a rollout that does not exist: legacy, so that a typo in a proxy's
/// configuration never takes a site down.
pub fn unknown_rollout(session_action: SessionAction) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((FLOW, HeaderValue::from_static("legacy")))
        .insert_header((REASON, HeaderValue::from_static(UNKNOWN_ROLLOUT)))
        .insert_header((
            SESSION_ACTION,
            HeaderValue::from_static(session_action.as_str()),
        ))
        .finish()
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
