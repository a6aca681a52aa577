//! `POST /v1/decide`: parse the request (borrowing from the body), call the decider, write the
//! answer. Thin on purpose; the logic is in `crate::decider`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::{Authorized, DecideScope};
use super::body::{parse, JsonBytes};
use super::error::ApiError;
use super::AppState;
use crate::decider::DecideInput;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideRequest<'a> {
    #[serde(borrow)]
    rollout: Cow<'a, str>,
    #[serde(borrow, default)]
    user_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    device_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    platform: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    app_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session_token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cookies: HashMap<Cow<'a, str>, Cow<'a, str>>,
}

#[derive(Serialize)]
struct SetCookieBody<'a> {
    name: &'a str,
    value: &'a str,
    max_age_seconds: u64,
}

#[derive(Serialize)]
struct SessionBody {
    source: &'static str,
    action: &'static str,
}

#[derive(Serialize)]
struct DecideResponse<'a> {
    rollout: &'a str,
    flow: &'static str,
    reason: &'static str,
    rule: Option<&'a str>,
    bucket: u16,
    version: u64,
    set_cookie: Option<SetCookieBody<'a>>,
    session: SessionBody,
}

const MAX_KEY_BYTES: usize = 512;

fn check_len(field: &str, value: &Option<Cow<'_, str>>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.len() > MAX_KEY_BYTES => Err(ApiError::invalid(
            field,
            format!("longer than {MAX_KEY_BYTES} bytes"),
        )),
        _ => Ok(()),
    }
}

pub async fn decide(
    _caller: Authorized<DecideScope>,
    state: web::Data<AppState>,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    let request: DecideRequest = parse(&body.0)?;
    check_len("user_key", &request.user_key)?;
    check_len("device_id", &request.device_id)?;
    let ip = match request
        .ip
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(text) => Some(
            text.parse::<IpAddr>()
                .map_err(|_| ApiError::invalid("ip", format!("invalid IP address '{text}'")))?,
        ),
        None => None,
    };
    let country = request.country.as_deref().filter(|c| !c.is_empty());
    if let Some(c) = country {
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ApiError::invalid(
                "country",
                format!("invalid country '{c}': expected an ISO 3166-1 alpha-2 code"),
            ));
        }
    }
    let input = DecideInput {
        rollout: &request.rollout,
        user_key: request.user_key.as_deref(),
        device_id: request.device_id.as_deref(),
        ip,
        country,
        platform: request.platform.as_deref(),
        app_version: request.app_version.as_deref(),
        session_token: request.session_token.as_deref(),
        cookies: &request.cookies,
    };
    let decided = state.decider.decide(&input)?;
    let response = DecideResponse {
        rollout: &decided.live.rollout.key,
        flow: decided.flow.as_str(),
        reason: decided.reason.as_str(),
        rule: decided.rule.as_deref(),
        bucket: decided.bucket,
        version: decided.live.rollout.version,
        set_cookie: decided.set_cookie.as_ref().map(|c| SetCookieBody {
            name: decided.cookie_name(),
            value: &c.value,
            max_age_seconds: c.max_age_seconds,
        }),
        session: SessionBody {
            source: decided.session_source.as_str(),
            action: decided.session_action.as_str(),
        },
    };
    Ok(HttpResponse::Ok().json(response))
}
