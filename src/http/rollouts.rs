//! Rollout administration: list, create, read, replace, patch, delete, history, rollback,
//! override cookies and the audit trail. Each handler extracts, calls `crate::admin` once,
//! and shapes the answer (status, `ETag`, `Location`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::{AdminScope, Authorized, ReadScope};
use super::body::{Json, JsonBytes};
use super::error::ApiError;
use super::path::Path;
use super::query::Query;
use super::AppState;
use crate::admin::Precondition;
use crate::rules::{Flow, Rollout, RolloutDraft};
use crate::store::{ChangeRecord, HistoryEntry};

fn etag(version: u64) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

fn with_etag(mut response: actix_web::HttpResponseBuilder, rollout: &Rollout) -> HttpResponse {
    response.insert_header(etag(rollout.version)).json(rollout)
}

/// `If-Match` → a precondition. Weak tags (`W/"7"`) compare like strong ones.
pub fn precondition(req: &HttpRequest) -> Precondition {
    let values: Vec<&str> = req
        .headers()
        .get_all(header::IF_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Precondition::None;
    }
    if values.contains(&"*") {
        return Precondition::Any;
    }
    let versions: Option<Vec<u64>> = values
        .iter()
        .map(|v| {
            v.trim_start_matches("W/")
                .trim_matches('"')
                .parse::<u64>()
                .ok()
        })
        .collect();
    match versions {
        Some(vs) => Precondition::Versions(vs),
        None => Precondition::Unmatchable(values.join(", ")),
    }
}

#[derive(Serialize)]
struct RolloutList {
    rollouts: Vec<Rollout>,
}

pub async fn list(_: Authorized<ReadScope>, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(RolloutList {
        rollouts: state.admin.list(),
    })
}

pub async fn create(
    caller: Authorized<AdminScope>,
    state: web::Data<AppState>,
    Json(draft): Json<RolloutDraft>,
) -> Result<HttpResponse, ApiError> {
    let rollout = state.admin.create(draft, &caller.actor).await?;
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, format!("/v1/rollouts/{}", rollout.key)));
    Ok(with_etag(response, &rollout))
}

pub async fn get(
    _: Authorized<ReadScope>,
    state: web::Data<AppState>,
    key: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rollout = state.admin.get(&key)?;
    Ok(with_etag(HttpResponse::Ok(), &rollout))
}

pub async fn replace(
    caller: Authorized<AdminScope>,
    req: HttpRequest,
    state: web::Data<AppState>,
    key: Path<String>,
    Json(draft): Json<RolloutDraft>,
) -> Result<HttpResponse, ApiError> {
    let rollout = state
        .admin
        .replace(&key, draft, &precondition(&req), &caller.actor)
        .await?;
    Ok(with_etag(HttpResponse::Ok(), &rollout))
}

pub async fn patch(
    caller: Authorized<AdminScope>,
    req: HttpRequest,
    state: web::Data<AppState>,
    key: Path<String>,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    let patch: serde_json::Value = super::body::parse(&body.0)?;
    let rollout = state
        .admin
        .patch(&key, &patch, &precondition(&req), &caller.actor)
        .await?;
    Ok(with_etag(HttpResponse::Ok(), &rollout))
}

pub async fn delete(
    caller: Authorized<AdminScope>,
    req: HttpRequest,
    state: web::Data<AppState>,
    key: Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .admin
        .delete(&key, &precondition(&req), &caller.actor)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
struct HistoryList {
    rollout: String,
    history: Vec<HistoryEntry>,
}

pub async fn history(
    _: Authorized<ReadScope>,
    state: web::Data<AppState>,
    key: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let history = state.admin.history(&key).await?;
    Ok(HttpResponse::Ok().json(HistoryList {
        rollout: key.into_inner(),
        history,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    #[serde(deserialize_with = "crate::rules::model::whole::u64")]
    version: u64,
}

pub async fn rollback(
    caller: Authorized<AdminScope>,
    req: HttpRequest,
    state: web::Data<AppState>,
    key: Path<String>,
    Json(body): Json<RollbackRequest>,
) -> Result<HttpResponse, ApiError> {
    let rollout = state
        .admin
        .rollback(&key, body.version, &precondition(&req), &caller.actor)
        .await?;
    Ok(with_etag(HttpResponse::Ok(), &rollout))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    flow: Flow,
    #[serde(
        default = "OverrideRequest::default_ttl",
        deserialize_with = "crate::rules::model::whole::u64"
    )]
    ttl_seconds: u64,
}

impl OverrideRequest {
    fn default_ttl() -> u64 {
        86_400
    }
}

#[derive(Serialize)]
struct OverrideResponse<'a> {
    name: &'a str,
    value: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

pub async fn override_cookie(
    _: Authorized<AdminScope>,
    state: web::Data<AppState>,
    key: Path<String>,
    Json(body): Json<OverrideRequest>,
) -> Result<HttpResponse, ApiError> {
    let cookie = state
        .admin
        .override_cookie(&key, body.flow, body.ttl_seconds)?;
    Ok(HttpResponse::Created().json(OverrideResponse {
        name: crate::decider::OVERRIDE_COOKIE,
        value: cookie.value,
        expires_at: cookie.expires_at,
    }))
}

/// `GET /v1/audit`: every change without parameters (SPEC §4); `limit` pages it and
/// `cursor` (a page's `next_cursor`) continues with older changes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct AuditList {
    audit: Vec<ChangeRecord>,
    next_cursor: Option<String>,
}

/// An audit cursor as openapi.json documents it, `^[0-9]{1,19}$` (every such number fits a
/// u64; `+5` or 20 digits, which `u64::from_str` would also read or refuse by value, are not
/// cursors).
fn parse_audit_cursor(text: &str) -> Option<u64> {
    let digits = (1..=19).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

pub async fn audit(
    _: Authorized<ReadScope>,
    state: web::Data<AppState>,
    query: Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match query.limit {
        None => usize::MAX,
        Some(limit) if (1..=10_000).contains(&limit) => limit,
        Some(_) => return Err(ApiError::invalid("limit", "must be between 1 and 10000")),
    };
    let before = match query.cursor.as_deref() {
        None => None,
        Some(text) => Some(parse_audit_cursor(text).ok_or_else(|| {
            ApiError::invalid(
                "cursor",
                format!("invalid cursor '{text}': pass a next_cursor"),
            )
        })?),
    };
    let page = state.admin.audit(before, limit).await?;
    Ok(HttpResponse::Ok().json(AuditList {
        audit: page.records,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_audit_cursor;

    #[test]
    fn an_audit_cursor_is_what_the_document_says() {
        assert_eq!(parse_audit_cursor("0"), Some(0));
        assert_eq!(
            parse_audit_cursor("9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in ["", "+5", "-1", " 5", "5 ", "1.0", "10000000000000000000"] {
            assert_eq!(parse_audit_cursor(bad), None, "{bad:?}");
        }
    }
}
