//! Operations endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document.

use std::sync::atomic::Ordering;

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::AppState;
use crate::config::Scope;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.ready.load(Ordering::Acquire) {
        Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
    } else {
        Err(ApiError::NotReady("rules are not loaded yet".into()))
    }
}

pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.metrics_require_token {
        state.tokens.authorize(&req, Scope::Read)?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render()))
}

/// The API of SPEC §4, machine-readable (OpenAPI 3.1), kept in `openapi.json` beside this file.
pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(OPENAPI)
}
