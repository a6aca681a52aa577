//! Bench-only: the smallest actix-web server that does what a decide request must do at the
//! HTTP level, so `bench/load.sh` can compare Switchyard against it in the same run.
//!
//! Same actix-web (this crate's dependency, same features), same worker setting, one route
//! `POST /v1/decide` that checks `Authorization: Bearer <token>` (a plain string compare),
//! parses a JSON body with the decide request's field names (borrowing from it), computes a
//! bucket with xxh3 (per-request work, no rules) and answers a JSON body of the same shape and
//! size as Switchyard's decide response. Nothing else: no metrics, no middleware, no GeoIP,
//! no cookie verification. `POST /ofrep/v1/evaluate/flags/{key}` does the same with an OFREP
//! body (`{"context": ...}`) and answers in the shape of Switchyard's OFREP evaluation.
//! `/v1/forward-auth/{key}` (routed by prefix, any method, as Switchyard's) does it from the
//! headers a proxy forwards (`X-Switchyard-Token`
//! compared as a plain string, the user key from `X-User-Key`, else a random device id, the
//! sticky cookie's presence in `Cookie`) and answers in headers as Switchyard's forward-auth
//! does (flow, reason, session action, version, one `Set-Cookie` for a new device).
//!
//! ```sh
//! cargo build --release --example baseline_server
//! target/release/examples/baseline_server <port> [workers] [token]
//! ```
//! Binds 127.0.0.1:<port>; `workers` defaults to 1; `token` to `bench-decide-token`.

use std::borrow::Cow;
use std::collections::HashMap;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

/// Same field names as Switchyard's decide request.
#[derive(Deserialize)]
#[allow(dead_code)]
struct DecideRequest<'a> {
    #[serde(borrow)]
    rollout: Cow<'a, str>,
    #[serde(borrow, default)]
    user_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    device_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    platform: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    app_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session_token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cookies: HashMap<Cow<'a, str>, Cow<'a, str>>,
}

/// Same field names as Switchyard's OFREP evaluation context.
#[derive(Deserialize)]
#[allow(dead_code)]
struct OfrepContext<'a> {
    #[serde(borrow, default, rename = "targetingKey")]
    targeting_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    device_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    platform: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    app_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session_token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cookies: HashMap<Cow<'a, str>, Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OfrepRequest<'a> {
    #[serde(borrow)]
    context: OfrepContext<'a>,
}

/// Same shape as Switchyard's OFREP evaluation.
#[derive(Serialize)]
struct OfrepEvaluation<'a> {
    key: &'a str,
    value: &'static str,
    variant: &'static str,
    reason: &'static str,
    metadata: OfrepMetadata<'a>,
}

#[derive(Serialize)]
struct OfrepMetadata<'a> {
    reason: &'static str,
    bucket: u16,
    version: u64,
    session_action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    set_cookie_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    set_cookie_value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    set_cookie_max_age: Option<u64>,
}

#[derive(Serialize)]
struct SetCookieBody<'a> {
    name: &'a str,
    value: &'a str,
    max_age_seconds: u64,
}

#[derive(Serialize)]
struct SessionBody {
    source: &'static str,
    action: &'static str,
}

/// Same shape as Switchyard's decide response.
#[derive(Serialize)]
struct DecideResponse<'a> {
    rollout: &'a str,
    flow: &'static str,
    reason: &'static str,
    rule: Option<&'a str>,
    bucket: u16,
    version: u64,
    set_cookie: Option<SetCookieBody<'a>>,
    session: SessionBody,
}

struct State {
    /// `Bearer <token>`, compared as a plain string.
    expected_authorization: String,
    /// The token alone (forward-auth's `X-Switchyard-Token`).
    expected_token: String,
}

const SALT: &str = "bench-salt-0001";
const COOKIE_NAME: &str = "sy_bench";
const MAX_AGE: u64 = 30 * 24 * 3600;

fn error(status: actix_web::http::StatusCode, code: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(format!(
            "{{\"error\":{{\"code\":\"{code}\",\"message\":\"{code}\",\"details\":[]}}}}"
        ))
}

fn authorized(req: &HttpRequest, state: &State) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == state.expected_authorization.as_bytes())
}

/// The per-request work both routes do: SPEC §2's bucket and, without a cookie, a cookie value
/// of the same length as a signed sticky cookie (43-character signature).
struct Answer {
    bucket: u16,
    stytch: bool,
    cookie_value: Option<String>,
}

fn answer(rollout: &str, key: &str, has_cookie: bool) -> Answer {
    let mut input = Vec::with_capacity(SALT.len() + 1 + key.len());
    input.extend_from_slice(SALT.as_bytes());
    input.push(b':');
    input.extend_from_slice(key.as_bytes());
    let h = xxh3_64(&input);
    let bucket = ((u128::from(h) * 10_000) >> 64) as u16;
    let stytch = bucket < 2500;
    let cookie_value = (!has_cookie).then(|| {
        let sig = xxh3_128(&input);
        format!(
            "s1.{rollout}.1.{bucket}.{}.{:032x}{:011x}",
            u8::from(stytch),
            sig,
            h >> 20
        )
    });
    Answer {
        bucket,
        stytch,
        cookie_value,
    }
}

async fn decide(req: HttpRequest, state: web::Data<State>, body: Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    if !authorized(&req, &state) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let request: DecideRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => return error(StatusCode::BAD_REQUEST, "malformed_json"),
    };
    let Some(key) = request.user_key.as_deref().or(request.device_id.as_deref()) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "missing_key");
    };
    let has_cookie = request.cookies.contains_key(COOKIE_NAME);
    let Answer {
        bucket,
        stytch,
        cookie_value,
    } = answer(&request.rollout, key, has_cookie);
    let response = DecideResponse {
        rollout: &request.rollout,
        flow: if stytch { "stytch" } else { "legacy" },
        reason: if has_cookie {
            "sticky_cookie"
        } else {
            "percentage"
        },
        rule: None,
        bucket,
        version: 2,
        set_cookie: cookie_value.as_deref().map(|value| SetCookieBody {
            name: COOKIE_NAME,
            value,
            max_age_seconds: MAX_AGE,
        }),
        session: SessionBody {
            source: if request.session_token.is_some() {
                "legacy"
            } else {
                "none"
            },
            action: if stytch {
                "login_stytch"
            } else {
                "login_legacy"
            },
        },
    };
    HttpResponse::Ok().json(response)
}

async fn ofrep(req: HttpRequest, state: web::Data<State>, body: Bytes) -> HttpResponse {
    use actix_web::http::StatusCode;
    if !authorized(&req, &state) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let flag = req.match_info().get("key").unwrap_or_default();
    let request: OfrepRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => return error(StatusCode::BAD_REQUEST, "PARSE_ERROR"),
    };
    let context = &request.context;
    let Some(key) = context
        .targeting_key
        .as_deref()
        .or(context.device_id.as_deref())
    else {
        return error(StatusCode::BAD_REQUEST, "TARGETING_KEY_MISSING");
    };
    let has_cookie = context.cookies.contains_key(COOKIE_NAME);
    let Answer {
        bucket,
        stytch,
        cookie_value,
    } = answer(flag, key, has_cookie);
    let flow = if stytch { "stytch" } else { "legacy" };
    HttpResponse::Ok().json(OfrepEvaluation {
        key: flag,
        value: flow,
        variant: flow,
        reason: if has_cookie {
            "TARGETING_MATCH"
        } else {
            "SPLIT"
        },
        metadata: OfrepMetadata {
            reason: if has_cookie {
                "sticky_cookie"
            } else {
                "percentage"
            },
            bucket,
            version: 2,
            session_action: if stytch {
                "login_stytch"
            } else {
                "login_legacy"
            },
            set_cookie_name: cookie_value.as_ref().map(|_| COOKIE_NAME),
            set_cookie_value: cookie_value.as_deref(),
            set_cookie_max_age: cookie_value.as_ref().map(|_| MAX_AGE),
        },
    })
}

async fn forward_auth(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    use actix_web::http::StatusCode;
    let headers = req.headers();
    if headers
        .get("x-switchyard-token")
        .is_none_or(|v| v.as_bytes() != state.expected_token.as_bytes())
    {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // Routed by prefix, as Switchyard's forward-auth is: the key is the path's next segment.
    let flag = req
        .path()
        .strip_prefix("/v1/forward-auth/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let device;
    let key = match headers.get("x-user-key").and_then(|v| v.to_str().ok()) {
        Some(user) => user,
        None => {
            device = format!("{:032x}", rand::random::<u128>());
            &device
        }
    };
    let has_cookie = headers
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(';')
                .any(|pair| pair.trim_start().starts_with("sy_bench="))
        });
    let Answer {
        bucket: _,
        stytch,
        cookie_value,
    } = answer(flag, key, has_cookie);
    let mut response = HttpResponse::Ok();
    response
        .insert_header((
            "x-switchyard-flow",
            if stytch { "stytch" } else { "legacy" },
        ))
        .insert_header((
            "x-switchyard-reason",
            if has_cookie {
                "sticky_cookie"
            } else {
                "percentage"
            },
        ))
        .insert_header((
            "x-switchyard-session-action",
            if stytch {
                "login_stytch"
            } else {
                "login_legacy"
            },
        ))
        .insert_header(("x-switchyard-version", 2u64));
    if let Some(value) = cookie_value {
        response.insert_header((
            header::SET_COOKIE,
            format!(
                "{COOKIE_NAME}={value}; Path=/; Max-Age={MAX_AGE}; HttpOnly; SameSite=Lax; Secure"
            ),
        ));
    }
    response.finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: baseline_server <port> [workers] [token]";
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other(usage))?;
    let workers: usize = match args.next() {
        Some(w) => w.parse().map_err(|_| std::io::Error::other(usage))?,
        None => 1,
    };
    let token = args.next().unwrap_or_else(|| "bench-decide-token".into());
    let state = web::Data::new(State {
        expected_authorization: format!("Bearer {token}"),
        expected_token: token,
    });
    println!("baseline_server listening on http://127.0.0.1:{port} ({workers} workers)");
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/v1/decide", web::post().to(decide))
            .route("/ofrep/v1/evaluate/flags/{key}", web::post().to(ofrep))
            .service(web::scope("/v1/forward-auth").default_service(web::to(forward_auth)))
    })
    .workers(workers.max(1))
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
