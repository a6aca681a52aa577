//! `GET /v1/rollouts/{key}/guard`: what the rollout's guard saw last (SPEC §9) — its state,
//! the counts and rates of both flows, the bound, and when it looked. Read from the views the
//! guard evaluator keeps; nothing is computed or stored here.

use actix_web::{web, HttpResponse};

use super::auth::{Authorized, ReadScope};
use super::error::ApiError;
use super::path::Path;
use super::AppState;

pub async fn get(
    _: Authorized<ReadScope>,
    state: web::Data<AppState>,
    key: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rollout = state.admin.get(&key)?;
    Ok(HttpResponse::Ok().json(state.guards.get(&rollout)))
}
