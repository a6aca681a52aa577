//! `POST /v1/outcomes`: the app reports how a login attempt ended, so the two flows' failure
//! rates can be compared (by people on the dashboards, by the guard across replicas). Only
//! counters change, in memory: nothing is written to the store on the request path.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::{Authorized, ReportScope};
use super::body::Json;
use super::error::ApiError;
use super::AppState;
use crate::admin::AdminError;
use crate::rules::Flow;
use crate::tally::LoginOutcome;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeReport {
    rollout: String,
    flow: Flow,
    outcome: LoginOutcome,
}

pub async fn report(
    _: Authorized<ReportScope>,
    state: web::Data<AppState>,
    Json(report): Json<OutcomeReport>,
) -> Result<HttpResponse, ApiError> {
    // Only known rollouts are counted, so the label set stays bounded.
    let live = state
        .catalog
        .get(&report.rollout)
        .ok_or(AdminError::NotFound(report.rollout))?;
    live.count_outcome(report.flow, report.outcome);
    Ok(HttpResponse::Accepted().json(serde_json::json!({"accepted": true})))
}
