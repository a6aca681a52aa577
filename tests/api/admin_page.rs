//! The admin page's server side (SPEC §12): the page and its files with their security
//! headers, "try a decision" (`POST /v1/rollouts/{key}/evaluate`), the per-minute stats the
//! charts read, and `GET /v1/token`. The page itself is driven in a real browser by
//! tests/browser/run.sh.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const FILES: [(&str, &str); 4] = [
    ("/admin", "text/html; charset=utf-8"),
    ("/admin/app.js", "text/javascript; charset=utf-8"),
    ("/admin/app.css", "text/css; charset=utf-8"),
    ("/admin/favicon.svg", "image/svg+xml"),
];

#[tokio::test]
async fn the_page_and_its_files_are_served_without_a_token_under_a_strict_policy() {
    let app = spawn_app().await;
    let mut total = 0;
    for (path, content_type) in FILES {
        let response = app.raw(Method::GET, path, None, &[], None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp} lacks {directive}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        total += response.bytes().await.unwrap().len();
    }
    assert!(total < 200 * 1024, "the whole page is {total} bytes");
}

#[tokio::test]
async fn the_page_loads_its_script_and_style_from_this_origin() {
    let app = spawn_app().await;
    let html = app
        .raw(Method::GET, "/admin", None, &[], None)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<script type="module" src="/admin/app.js"></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/admin/app.css">"#));
}

#[tokio::test]
async fn a_file_the_page_does_not_have_is_404_in_the_error_shape() {
    let app = spawn_app().await;
    for path in [
        "/admin/app.ts",
        "/admin/..%2Fopenapi.json",
        "/admin/index.html",
    ] {
        let response = app.raw(Method::GET, path, None, &[], None).await;
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let slash = app.raw(Method::GET, "/admin/", None, &[], None).await;
    let body = assert_error(slash, StatusCode::NOT_FOUND, "not_found").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("did you mean /admin?"),
        "{body}"
    );
}

fn evaluate_path(key: &str) -> String {
    format!("/v1/rollouts/{key}/evaluate")
}

/// `POST /v1/rollouts/{key}/evaluate` with a token; the status and the body.
async fn evaluate(app: &TestApp, key: &str, token: &str, body: &Value) -> (StatusCode, Value) {
    let response = app.post(&evaluate_path(key), token, body).await;
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

/// The sum of every sample of `name` whose labels include `rollout="<key>"`.
fn total(samples: &[Sample], name: &str, key: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && s.labels.iter().any(|(k, v)| k == "rollout" && v == key))
        .map(|s| s.value)
        .sum()
}

const COUNTED: [&str; 3] = [
    "switchyard_decisions_total",
    "switchyard_rule_matches_total",
    "switchyard_cookies_rejected_total",
];

#[tokio::test]
async fn a_trial_answers_exactly_what_decide_answers_and_counts_nothing() {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "web",
        30.0,
        json!([
            {"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"},
            {"id": "uk-half", "when": {"countries": ["GB"]}, "then": {"percentage": 50}},
        ]),
    ))
    .await;
    let sticky = app
        .decide(json!({"rollout": "web", "device_id": "d-1"}))
        .await["set_cookie"]["value"]
        .as_str()
        .expect("a sticky cookie")
        .to_string();
    let inputs = [
        json!({"user_key": "alice@example.com"}),
        json!({"device_id": "d-81f2", "platform": "ios", "app_version": "5.1.0"}),
        json!({"user_key": "bob", "ip": "203.0.113.9"}),
        json!({"user_key": "carol", "country": "GB"}),
        json!({"user_key": "dave", "cookies": {"sy_web": sticky}}),
        json!({"user_key": "erin", "cookies": {"sy_web": "forged", "sy_override": "forged"}}),
        json!({"device_id": "d-9", "session_token": "opaque-legacy-session"}),
    ];
    let before = app.metrics().await;
    let stats_before = app.get_json("/v1/rollouts/web/stats", READ_TOKEN).await;
    let mut trials = Vec::new();
    for input in &inputs {
        let (status, trial) = evaluate(&app, "web", READ_TOKEN, input).await;
        assert_eq!(status, StatusCode::OK, "{input}: {trial}");
        trials.push(trial);
    }
    let after = app.metrics().await;
    for name in COUNTED {
        assert_eq!(
            total(&before, name, "web"),
            total(&after, name, "web"),
            "{name} counted a trial"
        );
    }
    assert_eq!(
        app.get_json("/v1/rollouts/web/stats", READ_TOKEN).await,
        stats_before,
        "a trial is not in the stats"
    );
    let mut decided = 0.0;
    for (input, trial) in inputs.iter().zip(&trials) {
        let mut body = input.clone();
        body["rollout"] = json!("web");
        assert_eq!(&app.decide(body).await, trial, "{input}");
        decided += 1.0;
    }
    let counted = app.metrics().await;
    assert_eq!(
        total(&counted, "switchyard_decisions_total", "web"),
        total(&before, "switchyard_decisions_total", "web") + decided
    );
    assert!(
        total(&counted, "switchyard_cookies_rejected_total", "web")
            > total(&before, "switchyard_cookies_rejected_total", "web"),
        "the forged cookies of the real decision are counted"
    );
}

#[tokio::test]
async fn a_trial_is_checked_as_decide_is_and_needs_a_read_token() {
    let app = spawn_app().await;
    let path = evaluate_path("stytch-login");
    let (status, body) = evaluate(&app, "stytch-login", READ_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "missing_key", "{body}");
    let response = app
        .post(
            &path,
            READ_TOKEN,
            &json!({"user_key": "a", "ip": "10.0.0.300"}),
        )
        .await;
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "ip", "{body}");
    // The rollout is the path's: a body naming one is refused, not silently ignored.
    let response = app
        .post(
            &path,
            READ_TOKEN,
            &json!({"rollout": "other", "user_key": "a"}),
        )
        .await;
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rollout"),
        "{body}"
    );
    let response = app
        .post(
            &evaluate_path("nope"),
            READ_TOKEN,
            &json!({"user_key": "a"}),
        )
        .await;
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .post(&path, DECIDE_TOKEN, &json!({"user_key": "a"}))
        .await;
    assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    let response = app
        .send(Method::POST, &path, None, Some(&json!({"user_key": "a"})))
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    for token in [READ_TOKEN, ADMIN_TOKEN] {
        let (status, body) = evaluate(&app, "stytch-login", token, &json!({"user_key": "a"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["rollout"], "stytch-login");
    }
}

/// Every minute of a stats answer summed: (decisions stytch, legacy; outcomes stytch success,
/// failure; legacy success, failure).
fn summed(stats: &Value) -> [u64; 6] {
    let mut sums = [0; 6];
    for minute in stats["minutes"].as_array().unwrap() {
        let paths = [
            &minute["decisions"]["stytch"],
            &minute["decisions"]["legacy"],
            &minute["outcomes"]["stytch"]["success"],
            &minute["outcomes"]["stytch"]["failure"],
            &minute["outcomes"]["legacy"]["success"],
            &minute["outcomes"]["legacy"]["failure"],
        ];
        for (sum, value) in sums.iter_mut().zip(paths) {
            *sum += value.as_u64().expect("a count");
        }
    }
    sums
}

#[tokio::test]
async fn stats_count_each_rollouts_decisions_and_outcomes_per_flow_minute_by_minute() {
    let app = spawn_app().await;
    app.create_rollout(rollout("all-in", 100.0, json!([])))
        .await;
    for i in 0..3 {
        app.decide(json!({"rollout": "all-in", "user_key": format!("u{i}")}))
            .await;
    }
    // A new version keeps the rollout's counts.
    app.patch_rollout("all-in", json!({"enabled": false})).await;
    for i in 0..2 {
        app.decide(json!({"rollout": "all-in", "user_key": format!("u{i}")}))
            .await;
    }
    for (flow, outcome) in [
        ("stytch", "success"),
        ("stytch", "success"),
        ("stytch", "failure"),
        ("legacy", "success"),
    ] {
        let response = app
            .post(
                "/v1/outcomes",
                BACKEND_TOKEN,
                &json!({"rollout": "all-in", "flow": flow, "outcome": outcome}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    // Counts reach the shared buckets with the next flush (every second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let stats = loop {
        let stats = app.get_json("/v1/rollouts/all-in/stats", READ_TOKEN).await;
        if summed(&stats) == [3, 2, 2, 1, 1, 0] || std::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(stats["rollout"], "all-in");
    assert_eq!(summed(&stats), [3, 2, 2, 1, 1, 0], "{stats}");

    let minutes = stats["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let starts: Vec<chrono::DateTime<chrono::Utc>> = minutes
        .iter()
        .map(|m| m["start"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        starts.iter().all(|s| s.timestamp() % 60 == 0),
        "whole minutes"
    );
    assert!(
        starts.windows(2).all(|w| (w[1] - w[0]).num_seconds() == 60),
        "one a minute, oldest first"
    );
    let now = chrono::Utc::now();
    assert!((now - starts[59]).num_seconds() < 120, "ends now");
    assert!(minutes[59]["start"].as_str().unwrap().ends_with(":00Z"));

    let other = app
        .get_json("/v1/rollouts/stytch-login/stats", READ_TOKEN)
        .await;
    assert_eq!(
        summed(&other),
        [0; 6],
        "another rollout's counts are its own"
    );
    let unknown = app.get("/v1/rollouts/nope/stats", READ_TOKEN).await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let decide_only = app.get("/v1/rollouts/all-in/stats", DECIDE_TOKEN).await;
    assert_error(decide_only, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn the_token_endpoint_names_the_token_and_what_it_may_do() {
    let app = spawn_app().await;
    for (token, name, scopes) in [
        (ADMIN_TOKEN, "admin-bot", json!(["read", "admin"])),
        (READ_TOKEN, "reader", json!(["read"])),
        (DECIDE_TOKEN, "middleware", json!(["decide"])),
        (BACKEND_TOKEN, "backend", json!(["enroll", "report"])),
    ] {
        let info = app.get_json("/v1/token", token).await;
        assert_eq!(info, json!({"name": name, "scopes": scopes}));
    }
    let unknown = app.get("/v1/token", "not-a-token-0123456789").await;
    assert_error(unknown, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let none = app.raw(Method::GET, "/v1/token", None, &[], None).await;
    assert_error(none, StatusCode::UNAUTHORIZED, "unauthorized").await;
}
