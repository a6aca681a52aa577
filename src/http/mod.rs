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
pub mod observe;
pub mod ofrep;
pub mod ops;
pub mod outcomes;
pub mod path;
pub mod query;
pub mod rollouts;
pub mod stats;
pub mod token_info;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::http::Method;
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

/// `Content-Type: application/json`, made at compile time (no parsing per answer).
pub const APPLICATION_JSON: header::HeaderValue =
    header::HeaderValue::from_static("application/json");

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
