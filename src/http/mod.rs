//! The HTTP API of SPEC §4: one routing table (`configure`) used by the binary and the tests,
//! thin handlers, one error type. Handlers must not hold business logic: they extract, call
//! the decider or the admin service once, and shape the answer.

pub mod admin_page;
pub mod auth;
pub mod body;
pub mod decide;
pub mod enrollments;
pub mod error;
pub mod evaluate;
pub mod forward_auth;
pub mod guards;
pub mod header_text;
pub mod ofrep;
pub mod ops;
pub mod outcomes;
pub mod path;
pub mod query;
pub mod rollouts;
pub mod stats;
pub mod token_info;

use std::sync::Arc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{
    guard, web, FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder, Route, Scope,
};

use crate::admin::Admin;
use crate::catalog::Catalog;
use crate::decider::Decider;
use crate::guard::GuardViews;
use crate::metrics::Metrics;
use crate::tally::TallyStore;
use auth::Tokens;
use error::ApiError;

/// Everything handlers share, registered once as `web::Data<AppState>`.
pub struct AppState {
    pub decider: Decider,
    pub admin: Arc<Admin>,
    pub metrics: Arc<Metrics>,
    pub tokens: Tokens,
    /// The in-memory rules (`/readyz` asks whether they are loaded).
    pub catalog: Arc<Catalog>,
    /// Outcome and decision counts of every replica, by rollout and 10-second bucket.
    pub tallies: Arc<dyn TallyStore>,
    /// What each guard saw last (kept by the guard evaluator).
    pub guards: Arc<GuardViews>,
    pub metrics_require_token: bool,
    /// Forward-auth's trusted proxies and header names (SPEC §11).
    pub forward_auth: forward_auth::ForwardAuth,
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let path = req.path();
    let mut message = format!("no route for {} {path}", req.method());
    // A trailing slash is not served: say which path is (SPEC §4 has none with one).
    let trimmed = path.trim_end_matches('/');
    if trimmed.len() < path.len() && req.resource_map().has_resource(trimmed) {
        message.push_str(&format!("; did you mean {trimmed}?"));
    }
    Err(ApiError::NotFound(message))
}

/// The methods of one path as the `Allow` header lists them: its own, HEAD beside GET, and
/// OPTIONS.
fn allow_header(methods: &[Method]) -> String {
    let mut allow: Vec<&str> = Vec::with_capacity(methods.len() + 2);
    for method in methods {
        allow.push(method.as_str());
        if method == Method::GET {
            allow.push(Method::HEAD.as_str());
        }
    }
    allow.push(Method::OPTIONS.as_str());
    allow.join(", ")
}

/// One method of a path and its handler, for [`resource`]. A GET handler answers HEAD too
/// (actix sends a HEAD answer's status and headers without the body).
fn on<F, Args>(method: Method, handler: F) -> (Method, Route)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let route = if method == Method::GET {
        web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
    } else {
        web::route().method(method.clone())
    };
    (method, route.to(handler))
}

/// A path of the routing table with its methods: the one place that knows them. OPTIONS
/// answers 204 with `Allow`; any other method is 405 with the same `Allow`. The route label
/// (for metrics) is the pattern.
fn resource<const N: usize>(pattern: &'static str, routes: [(Method, Route); N]) -> Resource {
    let methods: Vec<Method> = routes.iter().map(|(m, _)| m.clone()).collect();
    let allow = allow_header(&methods);
    let options = {
        let allow = allow.clone();
        web::route().method(Method::OPTIONS).to(move || {
            let response = HttpResponse::NoContent()
                .insert_header((header::ALLOW, allow.clone()))
                .finish();
            async move { response }
        })
    };
    let not_allowed = web::to(move |req: HttpRequest| {
        let error = ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow: allow.clone(),
        };
        async move { Err::<HttpResponse, _>(error) }
    });
    // The path's own methods first, OPTIONS after them: actix checks each route's method guard
    // in order, and a decide request should meet its own first.
    routes
        .into_iter()
        .fold(
            web::resource(pattern)
                .name(pattern)
                .default_service(not_allowed),
            |r, (_, route)| r.route(route),
        )
        .route(options)
}

/// Every path under `prefix`, any method, to one handler, matched by a plain prefix compare
/// (no regular expression: actix tries a parameterised pattern as a regex, ~11,000
/// instructions a try under callgrind). For forward-auth: a proxy asks with the method of the
/// request it checks, OPTIONS included, so there is no `Allow` and no 405; and Envoy appends
/// the checked request's path after the rollout key. The handler reads its parameter from the
/// path itself, and the route is counted under [`forward_auth::ROUTE`].
fn any_method_under<F, Args>(prefix: &'static str, handler: F) -> Scope
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::scope(prefix).default_service(web::to(handler))
}

/// The routing table of SPEC §4, §10, §11 and §12.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use Method as M;
    cfg.app_data(
        web::PathConfig::default()
            .error_handler(|err, _| ApiError::invalid("path", err.to_string()).into()),
    )
    // The hot paths first: actix tries resources in order, and each pattern with a parameter
    // is a regular expression tried on the way.
    .service(resource("/v1/decide", [on(M::POST, decide::decide)]))
    // `/v1/forward-auth/{rollout}` and `/v1/forward-auth/{rollout}/{forwarded_path}`.
    .service(any_method_under(
        forward_auth::PREFIX,
        forward_auth::forward_auth,
    ))
    .service(resource(
        "/ofrep/v1/evaluate/flags/{key}",
        [on(M::POST, ofrep::evaluate_flag)],
    ))
    .service(resource(
        "/ofrep/v1/evaluate/flags",
        [on(M::POST, ofrep::evaluate_flags)],
    ))
    .service(resource(
        "/v1/rollouts",
        [on(M::GET, rollouts::list), on(M::POST, rollouts::create)],
    ))
    .service(resource(
        "/v1/rollouts/{key}",
        [
            on(M::GET, rollouts::get),
            on(M::PUT, rollouts::replace),
            on(M::PATCH, rollouts::patch),
            on(M::DELETE, rollouts::delete),
        ],
    ))
    .service(resource(
        "/v1/rollouts/{key}/history",
        [on(M::GET, rollouts::history)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/guard",
        [on(M::GET, guards::get)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/rollback",
        [on(M::POST, rollouts::rollback)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/evaluate",
        [on(M::POST, evaluate::evaluate)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/stats",
        [on(M::GET, stats::stats)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/override-cookies",
        [on(M::POST, rollouts::override_cookie)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/enrollments",
        [on(M::GET, enrollments::list)],
    ))
    .service(resource(
        "/v1/rollouts/{key}/enrollments/{user_key}",
        [
            on(M::PUT, enrollments::put),
            on(M::DELETE, enrollments::delete),
        ],
    ))
    .service(resource("/v1/audit", [on(M::GET, rollouts::audit)]))
    .service(resource("/v1/outcomes", [on(M::POST, outcomes::report)]))
    .service(resource("/v1/token", [on(M::GET, token_info::describe)]))
    .service(resource("/admin", [on(M::GET, admin_page::page)]))
    .service(resource("/admin/{file}", [on(M::GET, admin_page::asset)]))
    .service(resource("/healthz", [on(M::GET, ops::healthz)]))
    .service(resource("/readyz", [on(M::GET, ops::readyz)]))
    .service(resource("/metrics", [on(M::GET, ops::metrics)]))
    .service(resource("/openapi.json", [on(M::GET, ops::openapi)]))
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
/// no label lookup (route names live as long as the app; a new app starts a fresh cache). The
/// cache is a short list searched in order, each hit moved one place up: a worker sees a few
/// dozen (route, status) pairs at most and the hot ones end up first, cheaper than hashing.
fn count_answer(metrics: &Arc<Metrics>, route: &str, status: u16) {
    use std::cell::RefCell;
    type Key = (usize, usize, usize, u16);
    /// More pairs than this means something is churning: start over rather than grow.
    const MAX_CACHED: usize = 256;
    thread_local! {
        static COUNTERS: RefCell<Vec<(Key, prometheus::IntCounter)>> = const { RefCell::new(Vec::new()) };
    }
    let key = (
        Arc::as_ptr(metrics) as usize,
        route.as_ptr() as usize,
        route.len(),
        status,
    );
    COUNTERS.with(|counters| {
        let mut counters = counters.borrow_mut();
        if let Some(i) = counters.iter().position(|(k, _)| *k == key) {
            counters[i].1.inc();
            if i > 0 {
                counters.swap(i, i - 1);
            }
            return;
        }
        if counters.len() >= MAX_CACHED {
            counters.clear();
        }
        let status_text = actix_web::http::StatusCode::from_u16(status)
            .map_or_else(|_| status.to_string(), |s| s.as_str().to_string());
        let counter = metrics
            .http_requests
            .with_label_values(&[route, &status_text]);
        counter.inc();
        counters.push((key, counter));
    });
}

fn is_hot(req: &ServiceRequest) -> bool {
    let method = req.method();
    method == actix_web::http::Method::GET
        || method == actix_web::http::Method::HEAD
        || matches!(req.path(), "/v1/decide" | "/v1/outcomes")
        || req.path().starts_with("/ofrep/")
        || forward_auth::is_under(req.path())
}

/// Gives every request an id (from `X-Request-Id`, or made) that the response echoes and that
/// every log line of an admin request carries, and counts every answer in
/// `switchyard_http_requests_total{route,status}` — the route is the matched pattern, never the
/// raw path (which may hold user keys). A chunked body is held until the answer is written,
/// so that an unfinished one ends its connection ([`body::HeldPayload`]).
pub async fn observe_requests(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
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
    let held = body::HeldPayload::of_chunked(&mut req);
    let mut response = next.call(req).instrument(span.clone()).await?;
    let route = response
        .request()
        .match_name()
        .or_else(|| {
            forward_auth::is_under(response.request().path()).then_some(forward_auth::ROUTE)
        })
        .unwrap_or("unmatched");
    let status = response.status();
    span.in_scope(|| tracing::debug!(route, status = status.as_u16(), "answered"));
    if let Some(metrics) = metrics {
        count_answer(&metrics, route, status.as_u16());
    }
    response
        .headers_mut()
        .insert(HeaderName::from_static(REQUEST_ID), id);
    Ok(match held {
        None => response.map_into_left_body(),
        Some(held) => response.map_body(|_, body| {
            EitherBody::right(BoxBody::new(held.until_written(BoxBody::new(body))))
        }),
    })
}
