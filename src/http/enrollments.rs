//! Enrollments: the app records that a user signed up through Stytch (so they are sent to
//! Stytch on every device), removes it, and pages through them. Idempotent.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::{Authorized, EnrollScope};
use super::error::ApiError;
use super::path::Path;
use super::query::Query;
use super::AppState;

#[derive(Serialize)]
struct Enrollment<'a> {
    rollout: &'a str,
    user_key: &'a str,
    enrolled: bool,
}

pub async fn put(
    _: Authorized<EnrollScope>,
    state: web::Data<AppState>,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (key, user_key) = path.into_inner();
    let added = state.admin.enroll(&key, &user_key).await?;
    let mut response = if added {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(Enrollment {
        rollout: &key,
        user_key: &user_key,
        enrolled: true,
    }))
}

pub async fn delete(
    _: Authorized<EnrollScope>,
    state: web::Data<AppState>,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (key, user_key) = path.into_inner();
    state.admin.unenroll(&key, &user_key).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    cursor: Option<String>,
    #[serde(default = "PageQuery::default_limit")]
    limit: usize,
}

impl PageQuery {
    fn default_limit() -> usize {
        100
    }
}

#[derive(Serialize)]
struct Page<'a> {
    rollout: &'a str,
    user_keys: Vec<String>,
    next_cursor: Option<String>,
}

pub async fn list(
    _: Authorized<EnrollScope>,
    state: web::Data<AppState>,
    key: Path<String>,
    query: Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    if !(1..=1000).contains(&query.limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let page = state
        .admin
        .enrollments(&key, query.cursor.as_deref(), query.limit)
        .await?;
    Ok(HttpResponse::Ok().json(Page {
        rollout: &key,
        user_keys: page.user_keys,
        next_cursor: page.next_cursor,
    }))
}
