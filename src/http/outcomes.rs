//! `POST /v1/outcomes`: the app reports how a login attempt ended, so the two flows' success
//! rates can be compared. Only counters change; nothing is stored.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::{Authorized, ReportScope};
use super::body::Json;
use super::error::ApiError;
use super::AppState;
use crate::rules::Flow;

#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeReport {
    rollout: String,
    flow: Flow,
    outcome: Outcome,
}

pub async fn report(
    _: Authorized<ReportScope>,
    state: web::Data<AppState>,
    Json(report): Json<OutcomeReport>,
) -> Result<HttpResponse, ApiError> {
    // Only known rollouts become label values, so the label set stays bounded.
    state.admin.get(&report.rollout)?;
    state
        .metrics
        .login_outcomes
        .with_label_values(&[
            report.rollout.as_str(),
            report.flow.as_str(),
            report.outcome.as_str(),
        ])
        .inc();
    Ok(HttpResponse::Accepted().json(serde_json::json!({"accepted": true})))
}
