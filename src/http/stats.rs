//! `GET /v1/rollouts/{key}/stats` (scope `read`): a rollout's decisions per flow and login
//! outcomes per flow and outcome, minute by minute over the last hour, oldest first — what the
//! admin page charts (SPEC §12).
//!
//! The counts are this replica's (`crate::minute_counts`, kept beside the rollout in the
//! catalog). This handler only shapes them: switching its source to counts shared across
//! replicas changes where `minutes` comes from, not the answer.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::auth::{Authorized, ReadScope};
use super::error::ApiError;
use super::path::Path;
use super::AppState;
use crate::admin::AdminError;
use crate::minute_counts::{Counted, LoginOutcome, MinuteTally, UnixMinute};
use crate::rules::Flow;

#[derive(Serialize)]
struct Stats<'a> {
    rollout: &'a str,
    minutes: Vec<Minute>,
}

#[derive(Serialize)]
struct Minute {
    start: DateTime<Utc>,
    decisions: PerFlow<u64>,
    outcomes: PerFlow<Outcomes>,
}

#[derive(Serialize)]
struct PerFlow<T> {
    stytch: T,
    legacy: T,
}

#[derive(Serialize)]
struct Outcomes {
    success: u64,
    failure: u64,
}

impl Minute {
    fn of(start: UnixMinute, tally: &MinuteTally) -> Minute {
        let outcomes = |flow| Outcomes {
            success: tally.get(Counted::Outcome(flow, LoginOutcome::Success)),
            failure: tally.get(Counted::Outcome(flow, LoginOutcome::Failure)),
        };
        Minute {
            start: start.start(),
            decisions: PerFlow {
                stytch: tally.get(Counted::Decision(Flow::Stytch)),
                legacy: tally.get(Counted::Decision(Flow::Legacy)),
            },
            outcomes: PerFlow {
                stytch: outcomes(Flow::Stytch),
                legacy: outcomes(Flow::Legacy),
            },
        }
    }
}

pub async fn stats(
    _: Authorized<ReadScope>,
    state: web::Data<AppState>,
    key: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let live = state
        .catalog
        .get(&key)
        .ok_or_else(|| AdminError::NotFound(key.to_string()))?;
    let minutes = live
        .minutes
        .last_hour(UnixMinute::now())
        .iter()
        .map(|(start, tally)| Minute::of(*start, tally))
        .collect();
    Ok(HttpResponse::Ok().json(Stats {
        rollout: &key,
        minutes,
    }))
}
