//! `POST /v1/rollouts/{key}/evaluate` (scope `read`): "try a decision" for the admin page
//! (SPEC §12). It takes a decide body without `rollout` (the path names it), checks it as
//! decide does (`SentInput::check`), decides through the same `Decider` and writes the same
//! answer — only nothing is counted (`Decider::decide_trial`): trials are not traffic.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::{Authorized, ReadScope};
use super::body::{parse, JsonBytes};
use super::decide::{answer, Cookies, FieldNames, SentInput, Text};
use super::error::ApiError;
use super::path::Path;
use super::AppState;

/// A decide body without `rollout`, borrowed from the request's bytes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest<'a> {
    #[serde(borrow, default)]
    pub user_key: Option<Text<'a>>,
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
    pub cookies: Cookies<'a>,
}

pub async fn evaluate(
    _: Authorized<ReadScope>,
    state: web::Data<AppState>,
    key: Path<String>,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    let request: EvaluateRequest = parse(&body.0)?;
    let input = SentInput {
        rollout: &key,
        user_key: request.user_key.as_deref(),
        device_id: request.device_id.as_deref(),
        ip: request.ip.as_deref(),
        country: request.country.as_deref(),
        platform: request.platform.as_deref(),
        app_version: request.app_version.as_deref(),
        session_token: request.session_token.as_deref(),
        cookies: &request.cookies,
    }
    .check(&FieldNames::DECIDE)?;
    let decided = state.decider.decide_trial(&input)?;
    Ok(answer(&decided))
}
