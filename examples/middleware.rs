//! An application's middleware in front of Switchyard: the two routes of a rolling migration.
//!
//! - `GET /login` renders the Stytch or the legacy login page, as `POST /v1/decide` says, and
//!   sets the sticky cookie it is given (so a device keeps its flow through the login).
//! - `GET /account` is a protected page: it sends the request's session to the validator that
//!   `session.action` names — Stytch's or the legacy one — migrates a legacy session when told
//!   to, and sends everyone else to `/login`.
//!
//! The validators and the migration are **stand-ins** (`StandInStytch`, `StandInLegacy`): a real
//! app calls Stytch's `sessions.authenticate` / `sessions.migrate` and its own session store.
//! The stand-in Stytch validator does NOT verify signatures; never copy it.
//!
//! Run: `SWITCHYARD_URL=http://127.0.0.1:8080 SWITCHYARD_TOKEN=$(cat data/admin-token)
//!       STYTCH_PROJECT_ID=project-test-… cargo run --example middleware` (BIND=127.0.0.1:3000).

use std::collections::HashMap;

use actix_web::cookie::Cookie;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

struct Middleware {
    client: reqwest::Client,
    switchyard: String,
    token: String,
    rollout: String,
    stytch: StandInStytch,
    legacy: StandInLegacy,
}

/// Stand-in for Stytch's session check: reads the JWT's claims WITHOUT verifying the signature.
struct StandInStytch {
    project_id: String,
}

impl StandInStytch {
    fn authenticate(&self, token: &str) -> Option<String> {
        let payload = token.split('.').nth(1)?;
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims["iss"] == format!("stytch.com/{}", self.project_id))
            .then(|| claims["sub"].as_str().unwrap_or("").to_string())
    }

    /// Stand-in for `sessions.migrate`: a Stytch session for a user of the legacy system.
    fn migrate(&self, user: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"iss": format!("stytch.com/{}", self.project_id), "sub": user}).to_string(),
        );
        format!("{header}.{claims}.stand-in")
    }
}

/// Stand-in for the legacy session store: opaque session ids → users.
struct StandInLegacy {
    sessions: HashMap<String, String>,
}

impl StandInLegacy {
    fn authenticate(&self, token: &str) -> Option<String> {
        self.sessions.get(token).cloned()
    }
}

fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.cookie(name).map(|c| c.value().to_string())
}

impl Middleware {
    /// Asks Switchyard; the device id cookie keys users who have not logged in yet.
    async fn decide(&self, req: &HttpRequest, session: Option<&str>) -> Result<Value, String> {
        let mut cookies = serde_json::Map::new();
        for name in ["sy_flow", "sy_override"] {
            if let Some(v) = cookie(req, name) {
                cookies.insert(name.into(), v.into());
            }
        }
        let mut body = json!({
            "rollout": self.rollout,
            "device_id": cookie(req, "device_id").unwrap_or_else(|| "new-device".into()),
            "cookies": cookies,
        });
        if let Some(user) = req.uri().query().and_then(|q| q.strip_prefix("user=")) {
            body["user_key"] = user.into();
        }
        if let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            body["ip"] = ip.into();
        }
        if let Some(token) = session {
            body["session_token"] = token.into();
        }
        let response = self
            .client
            .post(format!("{}/v1/decide", self.switchyard))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        response.json().await.map_err(|e| e.to_string())
    }
}

/// Adds the sticky cookie Switchyard asked for, if any.
fn set_sticky(response: &mut actix_web::HttpResponseBuilder, decision: &Value) {
    if let Some(c) = decision["set_cookie"].as_object() {
        let max_age = c["max_age_seconds"].as_i64().unwrap_or(0);
        response.cookie(
            Cookie::build(
                c["name"].as_str().unwrap_or("sy_flow").to_string(),
                c["value"].as_str().unwrap_or("").to_string(),
            )
            .path("/")
            .http_only(true)
            .max_age(actix_web::cookie::time::Duration::seconds(max_age))
            .finish(),
        );
    }
}

async fn login(req: HttpRequest, mw: web::Data<Middleware>) -> HttpResponse {
    let decision = match mw.decide(&req, None).await {
        Ok(d) => d,
        // Switchyard unreachable: fail safe to the legacy flow.
        Err(_) => json!({"flow": "legacy", "reason": "switchyard_unreachable"}),
    };
    let page = if decision["flow"] == "stytch" {
        "stytch_login"
    } else {
        "legacy_login"
    };
    let mut response = HttpResponse::Ok();
    set_sticky(&mut response, &decision);
    response.json(json!({"page": page, "flow": decision["flow"], "reason": decision["reason"]}))
}

async fn account(req: HttpRequest, mw: web::Data<Middleware>) -> HttpResponse {
    let session = cookie(&req, "session");
    let decision = match mw.decide(&req, session.as_deref()).await {
        Ok(d) => d,
        Err(e) => return HttpResponse::BadGateway().json(json!({"error": e})),
    };
    let action = decision["session"]["action"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut response = HttpResponse::Ok();
    set_sticky(&mut response, &decision);
    let token = session.unwrap_or_default();
    let to_login = |mut r: actix_web::HttpResponseBuilder| {
        r.status(actix_web::http::StatusCode::SEE_OTHER)
            .insert_header((header::LOCATION, "/login"))
            .json(json!({"action": action, "redirect": "/login", "flow": decision["flow"]}))
    };
    match action.as_str() {
        "validate_stytch" => match mw.stytch.authenticate(&token) {
            Some(user) => {
                response.json(json!({"action": action, "user": user, "validated_by": "stytch"}))
            }
            None => to_login(response),
        },
        "validate_legacy" => match mw.legacy.authenticate(&token) {
            Some(user) => {
                response.json(json!({"action": action, "user": user, "validated_by": "legacy"}))
            }
            None => to_login(response),
        },
        "migrate_to_stytch" => match mw.legacy.authenticate(&token) {
            Some(user) => {
                let stytch_session = mw.stytch.migrate(&user);
                response.cookie(
                    Cookie::build("session", stytch_session)
                        .path("/")
                        .http_only(true)
                        .finish(),
                );
                response.json(json!({"action": action, "user": user, "validated_by": "legacy", "migrated_to": "stytch"}))
            }
            None => to_login(response),
        },
        // login_stytch, login_legacy: no usable session for this flow.
        _ => to_login(response),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let middleware = web::Data::new(Middleware {
        client: reqwest::Client::new(),
        switchyard: env("SWITCHYARD_URL", "http://127.0.0.1:8080"),
        token: env("SWITCHYARD_TOKEN", ""),
        rollout: env("SWITCHYARD_ROLLOUT", "stytch-login"),
        stytch: StandInStytch {
            project_id: env("STYTCH_PROJECT_ID", "project-test-example"),
        },
        legacy: StandInLegacy {
            sessions: HashMap::from([
                ("legacy-session-alice".to_string(), "alice".to_string()),
                ("legacy-session-bob".to_string(), "bob".to_string()),
            ]),
        },
    });
    let listener = std::net::TcpListener::bind(env("BIND", "127.0.0.1:3000"))?;
    println!(
        "middleware example listening on http://{}",
        listener.local_addr()?
    );
    HttpServer::new(move || {
        App::new()
            .app_data(middleware.clone())
            .route("/login", web::get().to(login))
            .route("/account", web::get().to(account))
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await
}
