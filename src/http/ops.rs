//! Operations endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::AppState;
use crate::config::Scope;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.catalog.is_ready() {
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
        state
            .tokens
            .authorize::<super::auth::Bearer>(&req, Scope::Read)?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render()))
}

/// The API of SPEC §4, machine-readable (OpenAPI 3.1), kept in `openapi.json` beside this file.
pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, super::APPLICATION_JSON))
        .body(OPENAPI)
}

#[cfg(test)]
mod tests {
    use super::OPENAPI;

    /// Every (pattern, method) that `super::super::configure` registers, as in `src/http/mod.rs`.
    const ROUTES: &[(&str, &str)] = &[
        ("/v1/decide", "post"),
        ("/v1/rollouts", "get"),
        ("/v1/rollouts", "post"),
        ("/v1/rollouts/{key}", "get"),
        ("/v1/rollouts/{key}", "put"),
        ("/v1/rollouts/{key}", "patch"),
        ("/v1/rollouts/{key}", "delete"),
        ("/v1/rollouts/{key}/history", "get"),
        ("/v1/rollouts/{key}/guard", "get"),
        ("/v1/rollouts/{key}/rollback", "post"),
        ("/v1/rollouts/{key}/evaluate", "post"),
        ("/v1/rollouts/{key}/stats", "get"),
        ("/v1/rollouts/{key}/override-cookies", "post"),
        ("/v1/rollouts/{key}/enrollments", "get"),
        ("/v1/rollouts/{key}/enrollments/{user_key}", "put"),
        ("/v1/rollouts/{key}/enrollments/{user_key}", "delete"),
        ("/v1/audit", "get"),
        ("/v1/outcomes", "post"),
        ("/v1/token", "get"),
        ("/ofrep/v1/evaluate/flags/{key}", "post"),
        ("/ofrep/v1/evaluate/flags", "post"),
        ("/v1/forward-auth/{rollout}", "get"),
        ("/v1/forward-auth/{rollout}", "head"),
        ("/v1/forward-auth/{rollout}", "post"),
        ("/v1/forward-auth/{rollout}", "put"),
        ("/v1/forward-auth/{rollout}", "patch"),
        ("/v1/forward-auth/{rollout}", "delete"),
        ("/v1/forward-auth/{rollout}", "options"),
        ("/v1/forward-auth/{rollout}", "trace"),
        ("/v1/forward-auth/{rollout}/{forwarded_path}", "get"),
        ("/v1/forward-auth/{rollout}/{forwarded_path}", "head"),
        ("/v1/forward-auth/{rollout}/{forwarded_path}", "post"),
        ("/v1/forward-auth/{rollout}/{forwarded_path}", "put"),
        ("/v1/forward-auth/{rollout}/{forwarded_path}", "patch"),
        ("/v1/forward-auth/{rollout}/{forwarded_path}", "delete"),
        ("/v1/forward-auth/{rollout}/{forwarded_path}", "options"),
        ("/v1/forward-auth/{rollout}/{forwarded_path}", "trace"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/admin", "get"),
        ("/admin/{file}", "get"),
    ];

    const METHODS: &[&str] = &[
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn document() -> serde_json::Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is valid JSON")
    }

    #[test]
    fn is_openapi_3_1() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["components"]["schemas"]["Error"].is_object());
    }

    #[test]
    fn documents_every_route_and_method() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths is an object");
        for (pattern, method) in ROUTES {
            let item = paths
                .get(*pattern)
                .unwrap_or_else(|| panic!("path {pattern} is not documented"));
            assert!(
                item.get(*method).is_some_and(serde_json::Value::is_object),
                "{} {pattern} is not documented",
                method.to_uppercase()
            );
        }
    }

    #[test]
    fn documents_no_other_route_or_method() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths is an object");
        for (pattern, item) in paths {
            assert!(
                ROUTES.iter().any(|(p, _)| p == pattern),
                "path {pattern} is documented but not routed"
            );
            let item = item.as_object().expect("a path item is an object");
            for method in METHODS.iter().filter(|m| item.contains_key(**m)) {
                assert!(
                    ROUTES.contains(&(pattern.as_str(), *method)),
                    "{} {pattern} is documented but not routed",
                    method.to_uppercase()
                );
            }
        }
    }

    /// The admin page's files are the ones the document lists.
    #[test]
    fn documents_the_admin_page_files() {
        let doc = document();
        let listed = &doc["paths"]["/admin/{file}"]["get"]["parameters"][0]["schema"]["enum"];
        let served: Vec<&str> = crate::http::admin_page::ASSETS
            .iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(listed, &serde_json::json!(served));
    }

    /// The formats the document states as patterns are the service's own
    /// (`crate::rules::formats`, where property tests hold them to the parsers).
    #[test]
    fn documents_the_formats_the_service_checks() {
        use crate::rules::formats;
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let conditions = &schemas["Conditions"]["properties"];
        let documented = [
            (
                &conditions["ip_ranges"]["items"]["pattern"],
                &*formats::IP_RANGE,
            ),
            (
                &conditions["countries"]["items"]["pattern"],
                &*formats::COUNTRY,
            ),
            (
                &conditions["subdivisions"]["items"]["pattern"],
                &*formats::SUBDIVISION,
            ),
            (
                &conditions["app_version"]["pattern"],
                &*formats::VERSION_REQ,
            ),
            (
                &schemas["DecideRequest"]["properties"]["ip"]["pattern"],
                &*formats::IP_ADDRESS,
            ),
        ];
        for (pattern, expected) in documented {
            assert_eq!(pattern.as_str(), Some(expected.as_str()));
        }
    }
}
