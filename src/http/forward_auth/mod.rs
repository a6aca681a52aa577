//! Forward-auth (SPEC §11): `/v1/forward-auth/{rollout}`, any method, for nginx
//! `auth_request`, Traefik `ForwardAuth` and Envoy `ext_authz`, so that a proxy routes each
//! request by the decision with no application code.
//!
//! A thin handler over the decide use case (`crate::decider::Decider`): the forwarded
//! request's headers are read as a decide request (`request`, `client`), checked by the same
//! `SentInput::check` as `POST /v1/decide`, decided (and counted) by the decider, and
//! answered in headers (`answer`). No evaluation of its own, no store, no lock: it answers
//! from memory as decide does. Cookie values, tokens, user keys and addresses are never
//! logged.

mod answer;
mod client;
mod request;

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header::HeaderName;
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::{Authorized, DecideScope, SwitchyardToken};
use super::decide::FieldNames;
use super::error::ApiError;
use super::AppState;
use crate::config::{ForwardAuthSettings, LegacySettings};
use crate::decider::DecideError;
use crate::metrics::Metrics;
use crate::rules::compile::IpTable;
use request::{DeviceId, Forwarded};

/// Where forward-auth is served: `/v1/forward-auth/{rollout}`, and any path after the key.
pub const PREFIX: &str = "/v1/forward-auth";
/// The route label of every forward-auth answer (`switchyard_http_requests_total`).
pub const ROUTE: &str = "/v1/forward-auth/{rollout}";

/// Whether `path` is served by forward-auth (as the routing table's prefix matches it).
pub fn is_under(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The forward-auth settings, ready to use: the trusted proxies as a lookup table, the
/// configured header and cookie names.
pub struct ForwardAuth {
    trusted_proxies: IpTable,
    country_header: Option<HeaderName>,
    user_key_header: Option<HeaderName>,
    legacy_session_cookie: Option<Box<str>>,
    secure_cookies: bool,
}

impl ForwardAuth {
    pub fn new(settings: &ForwardAuthSettings, legacy: &LegacySettings) -> ForwardAuth {
        let session_cookie = legacy.session_cookie.trim();
        ForwardAuth {
            trusted_proxies: IpTable::from_networks(
                settings.trusted_proxies.iter().map(|range| range.0),
            ),
            country_header: settings.country_header.0.clone(),
            user_key_header: settings.user_key_header.0.clone(),
            legacy_session_cookie: (!session_cookie.is_empty()).then(|| session_cookie.into()),
            secure_cookies: settings.secure_cookies,
        }
    }
}

/// Where the forward-auth inputs' problems would be named (they are left out instead, see
/// `request`; `check` sees only values it takes).
const FORWARDED_NAMES: FieldNames = FieldNames {
    user_key: "forward_auth.user_key_header",
    device_id: "device id",
    ip: "X-Forwarded-For",
    country: "forward_auth.country_header",
};

/// `/v1/forward-auth/{rollout}`, any method: 200 with the decision in headers; for a rollout
/// that does not exist, 200 with flow `legacy` and reason `unknown_rollout`. Only a missing
/// or wrong token is refused (401/403).
pub async fn forward_auth(
    _caller: Authorized<DecideScope, SwitchyardToken>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // A key that is not a rollout's (empty, or not UTF-8 once decoded) is an unknown rollout,
    // never an error.
    let rollout = request::rollout_key(req.path());
    let settings = &state.forward_auth;
    let forwarded = Forwarded::read(&req, settings);
    let device = forwarded.user_key.is_none().then(DeviceId::random);
    let mut input = forwarded
        .sent_input(&rollout, device.as_ref())
        .check(&FORWARDED_NAMES)?;
    input.ip = forwarded.client_ip;
    match state.decider.decide(&input) {
        Ok(decided) => Ok(answer::decided(&decided, settings.secure_cookies)),
        Err(DecideError::UnknownRollout(_)) => {
            unknown_rollout_seen(&state.metrics, &rollout);
            Ok(answer::unknown_rollout(
                state.decider.legacy_session_action(input.session_token),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Counts a request for a rollout that does not exist and says so in the log: at WARN at
/// most once a second (a misconfigured proxy asks on every request), else at DEBUG.
fn unknown_rollout_seen(metrics: &Metrics, rollout: &str) {
    static LAST_WARNED: AtomicU64 = AtomicU64::new(0);
    metrics.forward_auth_unknown_rollout.inc();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_WARNED.load(Ordering::Relaxed);
    if now > last
        && LAST_WARNED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            rollout = ?rollout,
            "forward-auth for a rollout that does not exist: answered legacy (check the rollout key in the proxy's configuration)"
        );
    } else {
        tracing::debug!(rollout = ?rollout, "forward-auth for a rollout that does not exist");
    }
}
