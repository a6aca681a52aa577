//! The HTTP API of SPEC §4: one routing table (`configure`) used by the binary and the tests,
//! thin handlers, one error type. Handlers must not hold business logic: they extract, call
//! the decider or the admin service once, and shape the answer.

pub mod auth;
pub mod body;
pub mod decide;
pub mod enrollments;
pub mod error;
pub mod ops;
pub mod outcomes;
pub mod path;
pub mod rollouts;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, Route};

use crate::admin::Admin;
use crate::catalog::Catalog;
use crate::decider::Decider;
use crate::metrics::Metrics;
use auth::Tokens;
use error::ApiError;

/// Everything handlers share, registered once as `web::Data<AppState>`.
pub struct AppState {
    pub decider: Decider,
    pub admin: Admin,
    pub metrics: Arc<Metrics>,
    pub tokens: Tokens,
    /// The in-memory rules (`/readyz` asks whether they are loaded).
    pub catalog: Arc<Catalog>,
    pub metrics_require_token: bool,
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}

/// A resource whose route label (for metrics) is its pattern, answering 405 for other methods.
fn resource(pattern: &'static str, routes: Vec<Route>) -> actix_web::Resource {
    routes.into_iter().fold(
        web::resource(pattern)
            .name(pattern)
            .default_service(web::to(method_not_allowed)),
        |r, route| r.route(route),
    )
}

/// The routing table of SPEC §4.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| ApiError::invalid("query", err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| ApiError::invalid("path", err.to_string()).into()),
    )
    .service(resource("/v1/decide", vec![web::post().to(decide::decide)]))
    .service(resource(
        "/v1/rollouts",
        vec![
            web::get().to(rollouts::list),
            web::post().to(rollouts::create),
        ],
    ))
    .service(resource(
        "/v1/rollouts/{key}",
        vec![
            web::get().to(rollouts::get),
            web::put().to(rollouts::replace),
            web::patch().to(rollouts::patch),
            web::delete().to(rollouts::delete),
        ],
    ))
    .service(resource(
        "/v1/rollouts/{key}/history",
        vec![web::get().to(rollouts::history)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/rollback",
        vec![web::post().to(rollouts::rollback)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/override-cookies",
        vec![web::post().to(rollouts::override_cookie)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/enrollments",
        vec![web::get().to(enrollments::list)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/enrollments/{user_key}",
        vec![
            web::put().to(enrollments::put),
            web::delete().to(enrollments::delete),
        ],
    ))
    .service(resource("/v1/audit", vec![web::get().to(rollouts::audit)]))
    .service(resource(
        "/v1/outcomes",
        vec![web::post().to(outcomes::report)],
    ))
    .service(resource("/healthz", vec![web::get().to(ops::healthz)]))
    .service(resource("/readyz", vec![web::get().to(ops::readyz)]))
    .service(resource("/metrics", vec![web::get().to(ops::metrics)]))
    .service(resource("/openapi.json", vec![web::get().to(ops::openapi)]))
    .default_service(web::to(not_found));
}

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// A caller's request id if it is sane (1–128 visible ASCII characters), else a new one:
/// a random per-process prefix and a counter (unique without a system call per request).
fn request_id(req: &ServiceRequest) -> HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    if let Some(given) = req.headers().get(REQUEST_ID).filter(|v| {
        !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic)
    }) {
        return given.clone();
    }
    let prefix = *PREFIX.get_or_init(rand::random::<u32>);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // `pppppppp-nnnnnnnnnnnn` in hex, written without a format string.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [b'-'; 21];
    for i in 0..8 {
        id[i] = HEX[((prefix >> (28 - 4 * i)) & 0xf) as usize];
    }
    for i in 0..12 {
        id[9 + i] = HEX[((n >> (44 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Counts one answer. Each worker thread keeps the counters it has used, so the hot path does
/// no label lookup (route names live as long as the app; a new app starts a fresh cache).
fn count_answer(metrics: &Arc<Metrics>, route: &str, status: u16) {
    use std::cell::RefCell;
    use std::collections::HashMap;
    type Key = (usize, usize, usize, u16);
    thread_local! {
        static COUNTERS: RefCell<HashMap<Key, prometheus::IntCounter>> = RefCell::new(HashMap::new());
    }
    let key = (
        Arc::as_ptr(metrics) as usize,
        route.as_ptr() as usize,
        route.len(),
        status,
    );
    COUNTERS.with(|counters| {
        let mut counters = counters.borrow_mut();
        if counters.len() > 4096 {
            counters.clear();
        }
        counters
            .entry(key)
            .or_insert_with(|| {
                let status = actix_web::http::StatusCode::from_u16(status)
                    .map_or_else(|_| status.to_string(), |s| s.as_str().to_string());
                metrics.http_requests.with_label_values(&[route, &status])
            })
            .inc();
    });
}

/// Whether a request is on a hot path (decisions, outcome reports, reads): its span is at
/// DEBUG level, so that at the default INFO level it costs nothing.
fn is_hot(req: &ServiceRequest) -> bool {
    let method = req.method();
    method == actix_web::http::Method::GET
        || method == actix_web::http::Method::HEAD
        || matches!(req.path(), "/v1/decide" | "/v1/outcomes")
}

/// Gives every request an id (from `X-Request-Id`, or made) that the response echoes and that
/// every log line of an admin request carries, and counts every answer in
/// `switchyard_http_requests_total{route,status}` — the route is the matched pattern, never the
/// raw path (which may hold user keys).
pub async fn observe_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use tracing::Instrument;
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let id = request_id(&req);
    let id_text = id.to_str().unwrap_or("-");
    let span = if is_hot(&req) {
        tracing::debug_span!("request", request_id = id_text, method = %req.method())
    } else {
        tracing::info_span!("request", request_id = id_text, method = %req.method())
    };
    let mut response = next.call(req).instrument(span.clone()).await?;
    let route = response.request().match_name().unwrap_or("unmatched");
    let status = response.status();
    span.in_scope(|| tracing::debug!(route, status = status.as_u16(), "answered"));
    if let Some(metrics) = metrics {
        count_answer(&metrics, route, status.as_u16());
    }
    response
        .headers_mut()
        .insert(HeaderName::from_static(REQUEST_ID), id);
    Ok(response)
}
