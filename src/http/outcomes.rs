//! `POST /v1/outcomes`: the app reports how a login attempt ended, so the two flows' success
//! rates can be compared. Only counters change (the metric and the rollout's per-minute
//! counts, in memory); nothing is stored.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::{Authorized, ReportScope};
use super::body::Json;
use super::error::ApiError;
use super::AppState;
use crate::admin::AdminError;
use crate::minute_counts::{Counted, LoginOutcome, UnixMinute};
use crate::rules::Flow;

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
    // Only known rollouts become label values, so the label set stays bounded.
    let live = state
        .catalog
        .get(&report.rollout)
        .ok_or_else(|| AdminError::NotFound(report.rollout.clone()))?;
    state
        .metrics
        .login_outcomes
        .with_label_values(&[
            report.rollout.as_str(),
            report.flow.as_str(),
            report.outcome.as_str(),
        ])
        .inc();
    live.minutes.count(
        Counted::Outcome(report.flow, report.outcome),
        UnixMinute::now(),
    );
    Ok(HttpResponse::Accepted().json(serde_json::json!({"accepted": true})))
}
