//! Forward-auth (SPEC §11) at the HTTP level: every input header, trusted and untrusted peers,
//! the answer's headers and its one cookie, new devices, unknown rollouts and tokens. (Real
//! proxies in front of the service: `proxies.rs`.)

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard::config::{OptionalHeaderName, ProxyRange, Settings};

use crate::helpers::*;

const PATH: &str = "/v1/forward-auth";

/// What a forward-auth answer says.
#[derive(Debug)]
pub struct Routed {
    pub status: StatusCode,
    pub flow: Option<String>,
    pub reason: Option<String>,
    pub rule: Option<String>,
    pub session_action: Option<String>,
    pub version: Option<String>,
    /// Every `Set-Cookie` line.
    pub set_cookies: Vec<String>,
    pub body: Vec<u8>,
}

impl Routed {
    /// The value of the one cookie set, if any (`name=value; …` → value).
    pub fn cookie_value(&self) -> Option<String> {
        assert!(self.set_cookies.len() <= 1, "{:?}", self.set_cookies);
        self.set_cookies.first().map(|line| {
            let pair = line.split(';').next().unwrap();
            pair.split_once('=').unwrap().1.to_string()
        })
    }

    /// The bucket a sticky cookie value carries (`s1.<rollout>.<epoch>.<bucket>.<0|1>.<sig>`).
    pub fn cookie_bucket(&self) -> Option<u16> {
        self.cookie_value()
            .map(|v| v.split('.').nth(3).unwrap().parse().unwrap())
    }
}

impl TestApp {
    /// A forward-auth request with the decide token in `X-Switchyard-Token` and more headers.
    pub async fn forward_auth(&self, rollout: &str, headers: &[(&str, &str)]) -> Routed {
        let mut all = vec![("X-Switchyard-Token", DECIDE_TOKEN)];
        all.extend_from_slice(headers);
        self.forward_auth_raw(Method::GET, rollout, &all).await
    }

    pub async fn forward_auth_raw(
        &self,
        method: Method,
        rollout: &str,
        headers: &[(&str, &str)],
    ) -> Routed {
        let response = self
            .raw(method, &format!("{PATH}/{rollout}"), None, headers, None)
            .await;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        Routed {
            status: response.status(),
            flow: header("x-switchyard-flow"),
            reason: header("x-switchyard-reason"),
            rule: header("x-switchyard-rule"),
            session_action: header("x-switchyard-session-action"),
            version: header("x-switchyard-version"),
            set_cookies: response
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }
}

async fn app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    configure(&mut settings);
    spawn_with(settings, dir).await
}

fn ranges(list: &[&str]) -> Vec<ProxyRange> {
    list.iter().map(|r| ProxyRange::parse(r).unwrap()).collect()
}

fn header(name: &str) -> OptionalHeaderName {
    OptionalHeaderName::parse(name).unwrap()
}

fn jwt(iss: &str) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"iss": iss, "sub": "user-1"}).to_string())
    )
}

#[tokio::test]
async fn an_answer_is_200_with_an_empty_body_the_decision_in_headers_and_one_cookie() {
    let app = spawn_app().await;
    let created = app.create_rollout(rollout("web", 100.0, json!([]))).await;
    let routed = app.forward_auth("web", &[]).await;
    assert_eq!(routed.status, StatusCode::OK);
    assert!(routed.body.is_empty(), "{:?}", routed.body);
    assert_eq!(routed.flow.as_deref(), Some("stytch"));
    assert_eq!(routed.reason.as_deref(), Some("percentage"));
    assert_eq!(routed.rule, None);
    assert_eq!(routed.session_action.as_deref(), Some("login_stytch"));
    assert_eq!(
        routed.version.as_deref(),
        Some(created["version"].to_string().as_str())
    );
    assert_eq!(routed.set_cookies.len(), 1, "{:?}", routed.set_cookies);
    let line = &routed.set_cookies[0];
    let mut parts = line.split("; ");
    let (name, value) = parts.next().unwrap().split_once('=').unwrap();
    assert_eq!(name, "sy_web");
    assert!(value.starts_with("s1.web.1."), "{line}");
    let attributes: Vec<&str> = parts.collect();
    assert_eq!(
        attributes,
        [
            "Path=/",
            "Max-Age=2592000",
            "HttpOnly",
            "SameSite=Lax",
            "Secure"
        ],
        "{line}"
    );
}

#[tokio::test]
async fn secure_cookies_off_leaves_secure_out_of_the_cookie() {
    let app = app_with(|s| s.forward_auth.secure_cookies = false).await;
    app.create_rollout(rollout("web", 100.0, json!([]))).await;
    let routed = app.forward_auth("web", &[]).await;
    assert_eq!(routed.set_cookies.len(), 1);
    assert!(
        routed.set_cookies[0].ends_with("; HttpOnly; SameSite=Lax"),
        "{:?}",
        routed.set_cookies
    );
}

#[tokio::test]
async fn every_method_is_decided_as_proxies_ask_with_their_own() {
    let app = spawn_app().await;
    app.create_rollout(rollout("web", 100.0, json!([]))).await;
    let token = [("X-Switchyard-Token", DECIDE_TOKEN)];
    for method in [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::from_bytes(b"PROPFIND").unwrap(),
    ] {
        let routed = app.forward_auth_raw(method.clone(), "web", &token).await;
        assert_eq!(routed.status, StatusCode::OK, "{method}");
        assert_eq!(routed.flow.as_deref(), Some("stytch"), "{method}");
        assert_eq!(routed.reason.as_deref(), Some("percentage"), "{method}");
        assert!(routed.body.is_empty(), "{method}");
        // Without the token, every method is refused alike.
        let refused = app.forward_auth_raw(method.clone(), "web", &[]).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{method}");
        assert_eq!(refused.flow, None, "{method}");
    }
}

#[tokio::test]
async fn the_token_is_read_from_x_switchyard_token_alone() {
    let app = spawn_app().await;
    let path = format!("{PATH}/stytch-login");
    let missing = app.raw(Method::GET, &path, None, &[], None).await;
    let body = assert_error(missing, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        body["error"]["message"],
        "missing or unknown X-Switchyard-Token header"
    );
    // A bearer token is the client's own (a proxy forwards Authorization): never ours.
    let bearer = app
        .raw(Method::GET, &path, Some(DECIDE_TOKEN), &[], None)
        .await;
    assert_error(bearer, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let wrong = app
        .raw(
            Method::GET,
            &path,
            None,
            &[("X-Switchyard-Token", "not-a-token-0123456789")],
            None,
        )
        .await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    for other_scope in [READ_TOKEN, ADMIN_TOKEN, BACKEND_TOKEN] {
        let refused = app
            .raw(
                Method::GET,
                &path,
                None,
                &[("X-Switchyard-Token", other_scope)],
                None,
            )
            .await;
        let body = assert_error(refused, StatusCode::FORBIDDEN, "forbidden").await;
        assert_eq!(
            body["error"]["message"],
            "this token lacks the 'decide' scope"
        );
    }
    let routed = app.forward_auth("stytch-login", &[]).await;
    assert_eq!(routed.status, StatusCode::OK);
    assert_eq!(routed.flow.as_deref(), Some("legacy"));
}

#[tokio::test]
async fn a_new_device_gets_a_random_id_whose_bucket_its_cookie_carries_from_then_on() {
    let app = spawn_app().await;
    app.create_rollout(rollout("web", 50.0, json!([]))).await;
    let mut flows = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let first = app.forward_auth("web", &[]).await;
        let flow = first.flow.clone().unwrap();
        let bucket = first.cookie_bucket().expect("a new device gets a cookie");
        assert_eq!(flow == "stytch", bucket < 5000, "{first:?}");
        *flows.entry(flow.clone()).or_insert(0) += 1;

        // The same browser again, with its cookie: the same flow, and no new cookie unless it
        // is sent to Stytch for the first time (it is not: it was already).
        let cookie = format!("sy_web={}", first.cookie_value().unwrap());
        for _ in 0..2 {
            let again = app.forward_auth("web", &[("Cookie", &cookie)]).await;
            assert_eq!(again.flow.as_deref(), Some(flow.as_str()), "{again:?}");
            let expected = if flow == "stytch" {
                "sticky_cookie"
            } else {
                "percentage"
            };
            assert_eq!(again.reason.as_deref(), Some(expected));
            assert!(again.set_cookies.is_empty(), "{again:?}");
        }
    }
    // Random ids: both flows occur among 40 new devices at 50 % (all alike: 2^-39).
    assert_eq!(flows.len(), 2, "{flows:?}");
}

#[tokio::test]
async fn a_ramp_up_moves_a_returning_device_forward_and_its_cookie_remembers_it() {
    let app = spawn_app().await;
    app.create_rollout(rollout("web", 0.0, json!([]))).await;
    let first = app.forward_auth("web", &[]).await;
    assert_eq!(first.flow.as_deref(), Some("legacy"));
    let bucket = first.cookie_bucket().unwrap();
    let cookie = format!("sy_web={}", first.cookie_value().unwrap());
    // Raised just above the device's bucket: Stytch, with a new cookie that says so.
    let percentage = f64::from(bucket + 1) / 100.0;
    app.patch_rollout("web", json!({ "percentage": percentage }))
        .await;
    let moved = app.forward_auth("web", &[("Cookie", &cookie)]).await;
    assert_eq!(moved.flow.as_deref(), Some("stytch"));
    assert_eq!(moved.cookie_bucket(), Some(bucket));
    let cookie = format!("sy_web={}", moved.cookie_value().unwrap());
    // Lowered again: a device once sent to Stytch stays there.
    app.patch_rollout("web", json!({"percentage": 0})).await;
    let kept = app.forward_auth("web", &[("Cookie", &cookie)]).await;
    assert_eq!(kept.flow.as_deref(), Some("stytch"));
    assert_eq!(kept.reason.as_deref(), Some("sticky_cookie"));
    // The kill switch sends it back.
    app.patch_rollout("web", json!({"enabled": false})).await;
    let killed = app.forward_auth("web", &[("Cookie", &cookie)]).await;
    assert_eq!(killed.flow.as_deref(), Some("legacy"));
    assert_eq!(killed.reason.as_deref(), Some("disabled"));
    assert!(killed.set_cookies.is_empty());
}

#[tokio::test]
async fn the_user_key_header_buckets_by_user_key_when_configured_and_is_ignored_otherwise() {
    let app = app_with(|s| s.forward_auth.user_key_header = header("X-User-Key")).await;
    app.create_rollout(rollout("web", 50.0, json!([]))).await;
    for i in 0..30 {
        let user = format!("user-{i}@example.com");
        let routed = app.forward_auth("web", &[("X-User-Key", &user)]).await;
        let expected = if bucket_of("salt-web", &user) < 5000 {
            "stytch"
        } else {
            "legacy"
        };
        assert_eq!(routed.flow.as_deref(), Some(expected), "{user}");
        assert_eq!(
            routed.cookie_bucket(),
            Some(bucket_of("salt-web", &user)),
            "{user}"
        );
    }
    // An enrolled user goes to Stytch whatever its bucket.
    let legacy_user = (0..)
        .map(|i| format!("someone-{i}"))
        .find(|u| bucket_of("salt-web", u) >= 5000)
        .unwrap();
    assert_eq!(app.enroll("web", &legacy_user).await, StatusCode::CREATED);
    let routed = app
        .forward_auth("web", &[("X-User-Key", &legacy_user)])
        .await;
    assert_eq!(
        (routed.flow.as_deref(), routed.reason.as_deref()),
        (Some("stytch"), Some("enrolled"))
    );
    // A key longer than decide takes is left out: the request is a new device's, still 200.
    let long = "k".repeat(513);
    let routed = app.forward_auth("web", &[("X-User-Key", &long)]).await;
    assert_eq!(routed.status, StatusCode::OK);
    assert_eq!(routed.reason.as_deref(), Some("percentage"));

    // Not configured: the header is not read.
    let plain = spawn_app().await;
    plain.create_rollout(rollout("web", 50.0, json!([]))).await;
    plain.enroll("web", &legacy_user).await;
    let routed = plain
        .forward_auth("web", &[("X-User-Key", &legacy_user)])
        .await;
    assert_eq!(routed.reason.as_deref(), Some("percentage"));
}

/// A rollout at 0 % whose office network goes to Stytch.
async fn office_rollout(app: &TestApp) {
    app.create_rollout(rollout(
        "web",
        0.0,
        json!([{"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"}]),
    ))
    .await;
}

async fn flow_from(app: &TestApp, headers: &[(&str, &str)]) -> String {
    let routed = app.forward_auth("web", headers).await;
    assert_eq!(routed.status, StatusCode::OK);
    routed.flow.unwrap()
}

#[tokio::test]
async fn the_client_is_the_rightmost_forwarded_address_that_is_not_a_trusted_proxy() {
    // The test client connects from 127.0.0.1: a trusted proxy by default (loopback).
    let app = spawn_app().await;
    office_rollout(&app).await;
    let xff = |v: &'static str| [("X-Forwarded-For", v)];
    assert_eq!(flow_from(&app, &xff("203.0.113.9")).await, "stytch");
    // The nearest hop that is not a proxy is the client, whatever is left of it.
    assert_eq!(
        flow_from(&app, &xff("203.0.113.9, 198.51.100.7")).await,
        "legacy"
    );
    assert_eq!(
        flow_from(&app, &xff("198.51.100.7, 203.0.113.9, 127.0.0.1")).await,
        "stytch"
    );
    assert_eq!(
        flow_from(&app, &xff("198.51.100.7, 203.0.113.9, ::1")).await,
        "stytch"
    );
    // Two headers are one chain, in order.
    let two = [
        ("X-Forwarded-For", "198.51.100.7"),
        ("X-Forwarded-For", "203.0.113.9"),
    ];
    assert_eq!(flow_from(&app, &two).await, "stytch");
    // The rule says which rule decided.
    let routed = app.forward_auth("web", &xff("203.0.113.9")).await;
    assert_eq!(routed.rule.as_deref(), Some("office"));
    assert_eq!(routed.reason.as_deref(), Some("rule"));
    // Not an address: not believed (the proxy's own hop, loopback, is the client).
    assert_eq!(
        flow_from(&app, &xff("203.0.113.9, unknown")).await,
        "legacy"
    );
}

#[tokio::test]
async fn x_real_ip_counts_only_without_x_forwarded_for() {
    let app = spawn_app().await;
    office_rollout(&app).await;
    assert_eq!(
        flow_from(&app, &[("X-Real-IP", "203.0.113.9")]).await,
        "stytch"
    );
    assert_eq!(
        flow_from(
            &app,
            &[
                ("X-Real-IP", "203.0.113.9"),
                ("X-Forwarded-For", "198.51.100.7")
            ]
        )
        .await,
        "legacy"
    );
    assert_eq!(
        flow_from(
            &app,
            &[
                ("X-Real-IP", "198.51.100.7"),
                ("X-Forwarded-For", "203.0.113.9")
            ]
        )
        .await,
        "stytch"
    );
}

#[tokio::test]
async fn a_spoofed_forwarded_address_or_country_from_an_untrusted_peer_is_ignored() {
    // 127.0.0.1 is not among these proxies: the test client is an untrusted peer.
    let app = app_with(|s| {
        s.forward_auth.trusted_proxies = ranges(&["10.0.0.0/8", "2001:db8::/32"]);
        s.forward_auth.country_header = header("CF-IPCountry");
    })
    .await;
    app.create_rollout(rollout(
        "web",
        0.0,
        json!([{"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"},
               {"id": "uk", "when": {"countries": ["GB"]}, "then": "stytch"},
               {"id": "loopback", "when": {"ip_ranges": ["127.0.0.1"]}, "then": "legacy"}]),
    ))
    .await;
    for headers in [
        &[("X-Forwarded-For", "203.0.113.9")][..],
        &[("X-Real-IP", "203.0.113.9")],
        &[("CF-IPCountry", "GB")],
        &[("X-Forwarded-For", "10.0.0.1, 203.0.113.9")],
    ] {
        let routed = app.forward_auth("web", headers).await;
        assert_eq!(routed.status, StatusCode::OK);
        // The peer's own address decided.
        assert_eq!(
            (routed.flow.as_deref(), routed.rule.as_deref()),
            (Some("legacy"), Some("loopback")),
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn the_country_header_is_read_from_a_trusted_proxy_when_configured() {
    let app = app_with(|s| s.forward_auth.country_header = header("CF-IPCountry")).await;
    app.create_rollout(rollout(
        "web",
        0.0,
        json!([{"id": "uk", "when": {"countries": ["GB"]}, "then": "stytch"},
               {"id": "europe", "when": {"continents": ["EU"]}, "then": {"percentage": 100}}]),
    ))
    .await;
    let routed = app.forward_auth("web", &[("CF-IPCountry", "GB")]).await;
    assert_eq!(
        (routed.flow.as_deref(), routed.rule.as_deref()),
        (Some("stytch"), Some("uk"))
    );
    let routed = app.forward_auth("web", &[("CF-IPCountry", "fr")]).await;
    assert_eq!(
        (routed.flow.as_deref(), routed.rule.as_deref()),
        (Some("stytch"), Some("europe"))
    );
    // What is not a country code (Cloudflare's T1 for Tor, XX for unknown) is no country:
    // still a 200.
    for odd in ["T1", "XX", "GBR", ""] {
        let routed = app.forward_auth("web", &[("CF-IPCountry", odd)]).await;
        assert_eq!(routed.status, StatusCode::OK, "{odd}");
        assert_eq!(routed.flow.as_deref(), Some("legacy"), "{odd}");
    }
    // Without the setting the header is not read.
    let plain = spawn_app().await;
    plain
        .create_rollout(rollout(
            "web",
            0.0,
            json!([{"id": "uk", "when": {"countries": ["GB"]}, "then": "stytch"}]),
        ))
        .await;
    assert_eq!(flow_from(&plain, &[("CF-IPCountry", "GB")]).await, "legacy");
    // The GeoIP database locates the forwarded address (81.2.69.142 is GB in the test
    // database).
    assert_eq!(
        flow_from(&plain, &[("X-Forwarded-For", "81.2.69.142")]).await,
        "stytch"
    );
}

#[tokio::test]
async fn platform_and_app_version_come_from_their_headers() {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "web",
        100.0,
        json!([{"id": "old-ios", "when": {"platforms": ["ios"], "app_version": "<5.2.0"}, "then": "legacy"}]),
    ))
    .await;
    let old = app
        .forward_auth(
            "web",
            &[("X-App-Platform", "iOS"), ("X-App-Version", "5.1.0")],
        )
        .await;
    assert_eq!(
        (old.flow.as_deref(), old.rule.as_deref()),
        (Some("legacy"), Some("old-ios"))
    );
    assert!(old.set_cookies.is_empty(), "a forcing rule sets no cookie");
    for headers in [
        &[("X-App-Platform", "ios"), ("X-App-Version", "5.2.0")][..],
        &[("X-App-Platform", "android"), ("X-App-Version", "5.1.0")],
        &[("X-App-Version", "5.1.0")],
    ] {
        let routed = app.forward_auth("web", headers).await;
        assert_eq!(routed.flow.as_deref(), Some("stytch"), "{headers:?}");
        assert_eq!(routed.rule, None);
    }
}

#[tokio::test]
async fn the_session_comes_from_the_stytch_cookies_the_legacy_cookie_or_a_bearer_token() {
    let app = app_with(|s| {
        s.stytch.project_id = Some("project-live-abc".into());
        s.legacy.issuers = vec!["https://auth.example.com".into()];
        s.legacy.session_cookie = "app_session".into();
    })
    .await;
    app.create_rollout(rollout("to-legacy", 0.0, json!([])))
        .await;
    let stytch_jwt = jwt("stytch.com/project-live-abc");
    let legacy_jwt = jwt("https://auth.example.com");
    /// What is sent, the headers, the session action expected.
    type Case<'a> = (String, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        ("nothing".into(), vec![], "login_legacy"),
        (
            "stytch_session_jwt".into(),
            vec![("Cookie", format!("stytch_session_jwt={stytch_jwt}"))],
            "validate_stytch",
        ),
        (
            "stytch_session (opaque, a Stytch session token)".into(),
            vec![("Cookie", "stytch_session=opaque-stytch-token".to_string())],
            // Opaque tokens are legacy by default (legacy.opaque_tokens): SPEC §8.
            "validate_legacy",
        ),
        (
            "the legacy session cookie".into(),
            vec![("Cookie", format!("a=b; app_session={legacy_jwt}"))],
            "validate_legacy",
        ),
        (
            "the Stytch cookie before the legacy one".into(),
            vec![(
                "Cookie",
                format!("app_session={legacy_jwt}; stytch_session_jwt={stytch_jwt}"),
            )],
            "validate_stytch",
        ),
        (
            "Authorization: Bearer".into(),
            vec![("Authorization", format!("Bearer {stytch_jwt}"))],
            "validate_stytch",
        ),
        (
            "a cookie before Authorization".into(),
            vec![
                ("Authorization", format!("Bearer {stytch_jwt}")),
                ("Cookie", format!("app_session={legacy_jwt}")),
            ],
            "validate_legacy",
        ),
        (
            "another cookie name is no session".into(),
            vec![("Cookie", format!("session={legacy_jwt}"))],
            "login_legacy",
        ),
    ];
    for (what, headers, action) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let routed = app.forward_auth("to-legacy", &headers).await;
        assert_eq!(routed.session_action.as_deref(), Some(action), "{what}");
    }
}

#[tokio::test]
async fn an_override_cookie_in_the_cookie_header_is_honoured() {
    let app = spawn_app().await;
    app.create_rollout(rollout("web", 0.0, json!([]))).await;
    let value = app.mint_override("web", "stytch", 3600).await;
    let routed = app
        .forward_auth("web", &[("Cookie", &format!("sy_override={value}"))])
        .await;
    assert_eq!(
        (routed.flow.as_deref(), routed.reason.as_deref()),
        (Some("stytch"), Some("override_cookie"))
    );
}

#[tokio::test]
async fn an_unknown_rollout_is_legacy_with_reason_unknown_rollout_and_is_counted() {
    let app = spawn_app().await;
    let before = metric(
        &app.metrics().await,
        "switchyard_forward_auth_unknown_rollout_total",
        &[],
    )
    .expect("exported from the start");
    assert_eq!(before, 0.0);
    for key in ["stytch-logn", "NOT%20A%20KEY", "%ff%fe"] {
        let routed = app.forward_auth(key, &[]).await;
        assert_eq!(routed.status, StatusCode::OK, "{key}");
        assert_eq!(routed.flow.as_deref(), Some("legacy"), "{key}");
        assert_eq!(routed.reason.as_deref(), Some("unknown_rollout"), "{key}");
        assert_eq!(routed.session_action.as_deref(), Some("login_legacy"));
        assert_eq!(routed.version, None);
        assert!(routed.set_cookies.is_empty());
        assert!(routed.body.is_empty());
    }
    let samples = app.metrics().await;
    assert_eq!(
        metric(
            &samples,
            "switchyard_forward_auth_unknown_rollout_total",
            &[]
        ),
        Some(3.0)
    );
    // Not a decision of any rollout.
    assert!(samples
        .iter()
        .all(|s| s.name != "switchyard_decisions_total"
            || s.labels.iter().all(|(_, v)| v != "stytch-logn")));
}

#[tokio::test]
async fn a_forward_auth_decision_is_the_one_decide_makes_and_is_counted_once() {
    let app = app_with(|s| {
        s.forward_auth.user_key_header = header("X-User-Key");
        s.forward_auth.country_header = header("X-Country");
    })
    .await;
    app.create_rollout(rollout(
        "web",
        30.0,
        json!([{"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"},
               {"id": "fr", "when": {"countries": ["FR"]}, "then": {"percentage": 80}},
               {"id": "old-ios", "when": {"platforms": ["ios"], "app_version": "<5.2.0"}, "then": "legacy"}]),
    ))
    .await;
    let count = |samples: &[Sample]| -> f64 {
        samples
            .iter()
            .filter(|s| {
                s.name == "switchyard_decisions_total"
                    && s.labels.iter().any(|(k, v)| k == "rollout" && v == "web")
            })
            .map(|s| s.value)
            .sum()
    };
    let before = count(&app.metrics().await);
    let mut asked = 0.0;
    for i in 0..24 {
        let user = format!("user-{i}");
        let (ip, country, platform, version) = match i % 4 {
            0 => ("203.0.113.9", "", "web", "1.0.0"),
            1 => ("198.51.100.7", "FR", "web", "1.0.0"),
            2 => ("198.51.100.7", "", "ios", "5.1.0"),
            _ => ("198.51.100.7", "", "android", "9.0.0"),
        };
        let decided = app
            .decide(
                json!({"rollout": "web", "user_key": user, "ip": ip, "country": country,
                           "platform": platform, "app_version": version}),
            )
            .await;
        let routed = app
            .forward_auth(
                "web",
                &[
                    ("X-User-Key", &user),
                    ("X-Forwarded-For", ip),
                    ("X-Country", country),
                    ("X-App-Platform", platform),
                    ("X-App-Version", version),
                ],
            )
            .await;
        asked += 2.0;
        let same = |field: &Value, header: &Option<String>| {
            assert_eq!(field.as_str(), header.as_deref(), "{decided} {routed:?}");
        };
        same(&decided["flow"], &routed.flow);
        same(&decided["reason"], &routed.reason);
        same(&decided["rule"], &routed.rule);
        same(&decided["session"]["action"], &routed.session_action);
        assert_eq!(
            Some(decided["version"].to_string()),
            routed.version,
            "{decided}"
        );
        assert_eq!(
            decided["set_cookie"]["value"].as_str().map(str::to_string),
            routed.cookie_value(),
            "{decided}"
        );
    }
    assert_eq!(count(&app.metrics().await) - before, asked);
}

#[test]
fn trusted_proxies_and_header_names_are_read_with_clear_errors() {
    assert_eq!(
        ProxyRange::parse("10.0.0.0/33").unwrap_err(),
        "'10.0.0.0/33' is not an IP address or CIDR range"
    );
    assert!(ProxyRange::parse("192.168.1.10").is_ok());
    assert!(ProxyRange::parse("fd00::/8").is_ok());
    assert_eq!(
        OptionalHeaderName::parse("CF IPCountry").unwrap_err(),
        "'CF IPCountry' is not a header name"
    );
    assert_eq!(OptionalHeaderName::parse("").unwrap().0, None);
    let defaults = Settings::default().forward_auth;
    assert_eq!(
        defaults.trusted_proxies,
        ranges(&["127.0.0.0/8", "::1/128"])
    );
    assert!(defaults.secure_cookies);
    assert_eq!(defaults.country_header.0, None);
    assert_eq!(defaults.user_key_header.0, None);
}

#[tokio::test]
async fn a_path_after_the_rollout_key_is_not_read_as_envoy_appends_the_checked_path() {
    let app = spawn_app().await;
    app.create_rollout(rollout("web", 100.0, json!([]))).await;
    for tail in ["login", "", "account/settings", "a%2Fb"] {
        let routed = app.forward_auth(&format!("web/{tail}"), &[]).await;
        assert_eq!(routed.status, StatusCode::OK, "{tail}");
        assert_eq!(routed.flow.as_deref(), Some("stytch"), "{tail}");
        assert_eq!(routed.reason.as_deref(), Some("percentage"), "{tail}");
    }
    let routed = app.forward_auth("nope/login", &[]).await;
    assert_eq!(routed.reason.as_deref(), Some("unknown_rollout"));
}
