//! SPEC §6: the metric names are part of the contract; label values are bounded (never a user
//! key, IP or token).

use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// Traffic that touches every metric: decisions of several reasons, a rejected cookie, an
/// enrollment, an outcome, admin writes and errors.
async fn busy_app() -> TestApp {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "web",
        12.5,
        json!([{"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"}]),
    ))
    .await;
    assert_eq!(
        app.enroll("web", "alice@example.com").await,
        StatusCode::CREATED
    );
    for request in [
        json!({"rollout": "web", "user_key": "alice@example.com", "ip": "198.51.100.77"}),
        json!({"rollout": "web", "user_key": "bob@example.com", "ip": "203.0.113.9"}),
        json!({"rollout": "web", "device_id": "device-secret-123", "cookies": {"sy_web": "forged"}}),
        json!({"rollout": "stytch-login", "user_key": "carol@example.com", "ip": "2001:db8::42"}),
    ] {
        app.decide(request).await;
    }
    app.post(
        "/v1/outcomes",
        BACKEND_TOKEN,
        &json!({"rollout": "web", "flow": "stytch", "outcome": "success"}),
    )
    .await;
    app.get("/v1/rollouts/dave-secret-key", READ_TOKEN).await;
    app.get("/v1/nowhere/eve@example.com", READ_TOKEN).await;
    app.send(
        Method::DELETE,
        "/v1/rollouts/web/enrollments/frank@example.com",
        Some(BACKEND_TOKEN),
        None,
    )
    .await;
    app
}

#[tokio::test]
async fn every_metric_of_the_spec_is_exported_with_its_type() {
    let app = busy_app().await;
    let text = app.metrics_text().await;
    for (name, kind) in [
        ("switchyard_decisions_total", "counter"),
        ("switchyard_decision_duration_seconds", "histogram"),
        ("switchyard_http_requests_total", "counter"),
        ("switchyard_rollout_percentage", "gauge"),
        ("switchyard_rollout_enabled", "gauge"),
        ("switchyard_rollout_version", "gauge"),
        ("switchyard_cookies_rejected_total", "counter"),
        ("switchyard_store_up", "gauge"),
        ("switchyard_last_sync_timestamp_seconds", "gauge"),
        ("switchyard_enrollments", "gauge"),
        ("switchyard_login_outcomes_total", "counter"),
        ("switchyard_build_info", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} ({kind}) is missing:\n{text}"
        );
    }
    // `switchyard_store_errors_total{op}` has no series until a store operation fails (see
    // errors::a_store_that_cannot_save_answers_503_and_decisions_keep_working).
    let samples = parse_metrics(&text);
    let labels_of = |name: &str| -> Vec<Vec<String>> {
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| {
                let mut names: Vec<String> = s.labels.iter().map(|(k, _)| k.clone()).collect();
                names.sort();
                names
            })
            .collect()
    };
    for (name, labels) in [
        (
            "switchyard_decisions_total",
            vec!["flow", "reason", "rollout"],
        ),
        ("switchyard_http_requests_total", vec!["route", "status"]),
        ("switchyard_rollout_percentage", vec!["rollout"]),
        ("switchyard_rollout_enabled", vec!["rollout"]),
        ("switchyard_rollout_version", vec!["rollout"]),
        (
            "switchyard_cookies_rejected_total",
            vec!["reason", "rollout"],
        ),
        ("switchyard_store_up", vec![]),
        ("switchyard_last_sync_timestamp_seconds", vec![]),
        ("switchyard_enrollments", vec!["rollout"]),
        (
            "switchyard_login_outcomes_total",
            vec!["flow", "outcome", "rollout"],
        ),
        ("switchyard_build_info", vec!["version"]),
    ] {
        let seen = labels_of(name);
        assert!(!seen.is_empty(), "{name} has no series");
        for set in seen {
            assert_eq!(set, labels, "{name}");
        }
    }
    assert_eq!(
        metric(
            &samples,
            "switchyard_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(metric(&samples, "switchyard_store_up", &[]), Some(1.0));
    let synced = metric(&samples, "switchyard_last_sync_timestamp_seconds", &[]).unwrap();
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(
        (now - 300.0..=now + 5.0).contains(&synced),
        "{synced} vs {now}"
    );
    let count = metric(&samples, "switchyard_decision_duration_seconds_count", &[]).unwrap();
    assert_eq!(count, 4.0);
    assert!(metric(&samples, "switchyard_decision_duration_seconds_sum", &[]).unwrap() > 0.0);
    assert_eq!(
        metric(
            &samples,
            "switchyard_decision_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(4.0)
    );
}

#[tokio::test]
async fn decisions_are_counted_by_rollout_flow_and_reason() {
    let app = busy_app().await;
    let samples = app.metrics().await;
    let decisions = |rollout, flow, reason| {
        metric(
            &samples,
            "switchyard_decisions_total",
            &[("rollout", rollout), ("flow", flow), ("reason", reason)],
        )
    };
    assert_eq!(decisions("web", "stytch", "enrolled"), Some(1.0));
    assert_eq!(decisions("web", "stytch", "rule"), Some(1.0));
    assert_eq!(decisions("stytch-login", "legacy", "percentage"), Some(1.0));
    let device_bucket = bucket_of("salt-web", "device-secret-123");
    let device_flow = if device_bucket < 1250 {
        "stytch"
    } else {
        "legacy"
    };
    assert_eq!(decisions("web", device_flow, "percentage"), Some(1.0));
    assert_eq!(decisions("web", "legacy", "disabled").unwrap_or(0.0), 0.0);
    assert_eq!(
        metric(
            &samples,
            "switchyard_cookies_rejected_total",
            &[("rollout", "web"), ("reason", "malformed")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn http_requests_are_labelled_with_the_route_pattern_never_the_raw_path() {
    let app = busy_app().await;
    let samples = app.metrics().await;
    let requests = |route, status| {
        metric(
            &samples,
            "switchyard_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/v1/decide", "200"), Some(4.0));
    assert_eq!(requests("/v1/rollouts", "201"), Some(1.0));
    assert_eq!(requests("/v1/rollouts/{key}", "404"), Some(1.0));
    assert_eq!(
        requests("/v1/rollouts/{key}/enrollments/{user_key}", "201"),
        Some(1.0)
    );
    assert_eq!(
        requests("/v1/rollouts/{key}/enrollments/{user_key}", "204"),
        Some(1.0)
    );
    assert_eq!(requests("/v1/outcomes", "202"), Some(1.0));
    for sample in samples
        .iter()
        .filter(|s| s.name == "switchyard_http_requests_total")
    {
        let route = &sample.labels.iter().find(|(k, _)| k == "route").unwrap().1;
        const ROUTES: [&str; 21] = [
            "/v1/decide",
            "/v1/rollouts",
            "/v1/rollouts/{key}",
            "/v1/rollouts/{key}/history",
            "/v1/rollouts/{key}/guard",
            "/v1/rollouts/{key}/rollback",
            "/v1/rollouts/{key}/override-cookies",
            "/v1/rollouts/{key}/enrollments",
            "/v1/rollouts/{key}/enrollments/{user_key}",
            "/v1/audit",
            "/v1/outcomes",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/v1/rollouts/{key}/evaluate",
            "/v1/rollouts/{key}/stats",
            "/v1/token",
            "/admin",
            "/admin/{file}",
            "unmatched",
        ];
        assert!(ROUTES.contains(&route.as_str()), "route label {route}");
    }
}

#[tokio::test]
async fn no_label_value_holds_a_user_key_an_ip_or_a_token() {
    let app = busy_app().await;
    let samples = app.metrics().await;
    let sent = [
        "alice",
        "bob",
        "carol",
        "dave",
        "eve",
        "frank",
        "@example.com",
        "device-secret",
        "198.51.100",
        "203.0.113",
        "2001:db8",
        "forged",
        ADMIN_TOKEN,
        READ_TOKEN,
        DECIDE_TOKEN,
        BACKEND_TOKEN,
        "token",
    ];
    for sample in &samples {
        for (name, value) in &sample.labels {
            for s in sent {
                assert!(
                    !value.contains(s),
                    "{}{{{name}=\"{value}\"}} holds something a client sent",
                    sample.name
                );
            }
        }
    }
    // The label values of the bounded labels are from their known sets.
    for sample in &samples {
        for (name, value) in &sample.labels {
            let allowed: &[&str] = match name.as_str() {
                "rollout" => &["web", "stytch-login"],
                "flow" => &["stytch", "legacy"],
                "reason" if sample.name == "switchyard_decisions_total" => &[
                    "disabled",
                    "override_cookie",
                    "rule",
                    "enrolled",
                    "sticky_cookie",
                    "percentage",
                ],
                "reason" => &[
                    "malformed",
                    "bad_signature",
                    "other_rollout",
                    "other_epoch",
                    "expired",
                ],
                "outcome" => &["success", "failure"],
                _ => continue,
            };
            assert!(
                allowed.contains(&value.as_str()),
                "{}: {name}={value}",
                sample.name
            );
        }
    }
}

#[tokio::test]
async fn rollout_gauges_follow_every_change() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 12.5, json!([]))).await;
    let gauges = |samples: &[Sample]| {
        [
            "switchyard_rollout_percentage",
            "switchyard_rollout_enabled",
            "switchyard_rollout_version",
            "switchyard_enrollments",
        ]
        .map(|name| metric(samples, name, &[("rollout", "r")]))
    };
    assert_eq!(
        gauges(&app.metrics().await),
        [Some(12.5), Some(1.0), Some(1.0), Some(0.0)]
    );
    app.patch_rollout("r", json!({"percentage": 99.99, "enabled": false}))
        .await;
    for user in ["u1", "u2", "u3"] {
        assert_eq!(app.enroll("r", user).await, StatusCode::CREATED);
    }
    app.enroll("r", "u1").await;
    assert_eq!(
        gauges(&app.metrics().await),
        [Some(99.99), Some(0.0), Some(2.0), Some(3.0)]
    );
    app.send(
        Method::DELETE,
        "/v1/rollouts/r/enrollments/u2",
        Some(BACKEND_TOKEN),
        None,
    )
    .await;
    assert_eq!(gauges(&app.metrics().await)[3], Some(2.0));
    // Gauges come back after a restart, enrollments included.
    let app = app.restart().await;
    assert_eq!(
        gauges(&app.metrics().await),
        [Some(99.99), Some(0.0), Some(2.0), Some(2.0)]
    );
    // A deleted rollout's series go away.
    app.send(Method::DELETE, "/v1/rollouts/r", Some(ADMIN_TOKEN), None)
        .await;
    let samples = app.metrics().await;
    assert_eq!(gauges(&samples), [None; 4]);
    assert!(
        !samples
            .iter()
            .any(|s| s.labels.iter().any(|(k, v)| k == "rollout" && v == "r")),
        "a deleted rollout leaves no series"
    );
}

/// `promtool` from `$PROMTOOL`, else from `PATH`.
fn promtool() -> Option<String> {
    if let Ok(path) = std::env::var("PROMTOOL") {
        return Some(path);
    }
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found.then(|| "promtool".to_string())
}

#[tokio::test]
async fn the_metrics_pass_promtool_check_metrics() {
    let Some(promtool) = promtool() else {
        println!(
            "NOTE: promtool is not on PATH (nor in $PROMTOOL); skipping `promtool check metrics`"
        );
        return;
    };
    let app = busy_app().await;
    let text = app.metrics_text().await;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn an_unknown_route_is_counted_as_unmatched() {
    let app = spawn_app().await;
    app.get("/v1/users/grace@example.com/secrets", READ_TOKEN)
        .await;
    app.raw(Method::GET, "/v1/decide", None, &[], None).await;
    let samples = app.metrics().await;
    assert_eq!(
        metric(
            &samples,
            "switchyard_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &samples,
            "switchyard_http_requests_total",
            &[("route", "/v1/decide"), ("status", "405")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn rule_matches_are_counted_by_rule_and_counters_exist_at_zero_from_the_start() {
    let app = spawn_app().await;
    let samples = app.metrics().await;
    for op in ["commit", "update", "enroll", "sync"] {
        assert_eq!(
            metric(&samples, "switchyard_store_errors_total", &[("op", op)]),
            Some(0.0),
            "{op}"
        );
    }
    for flow in ["stytch", "legacy"] {
        for outcome in ["success", "failure"] {
            assert_eq!(
                metric(
                    &samples,
                    "switchyard_login_outcomes_total",
                    &[
                        ("rollout", "stytch-login"),
                        ("flow", flow),
                        ("outcome", outcome)
                    ]
                ),
                Some(0.0)
            );
        }
    }
    app.patch_rollout(
        "stytch-login",
        json!({"rules": [
            {"id": "office", "when": {"ip_ranges": ["10.0.0.0/8"]}, "then": "stytch"},
            {"id": "uk-half", "when": {"countries": ["GB"]}, "then": {"percentage": 50}}
        ]}),
    )
    .await;
    for _ in 0..3 {
        app.decide(json!({"rollout": "stytch-login", "user_key": "a", "ip": "10.1.2.3"}))
            .await;
    }
    app.decide(json!({"rollout": "stytch-login", "user_key": "b", "country": "GB"}))
        .await;
    app.decide(json!({"rollout": "stytch-login", "user_key": "c"}))
        .await;
    let samples = app.metrics().await;
    let rule = |id: &str| {
        metric(
            &samples,
            "switchyard_rule_matches_total",
            &[("rollout", "stytch-login"), ("rule", id)],
        )
    };
    assert_eq!((rule("office"), rule("uk-half")), (Some(3.0), Some(1.0)));
    // A rule that is removed takes its series with it.
    app.patch_rollout("stytch-login", json!({"rules": []}))
        .await;
    let samples = app.metrics().await;
    assert_eq!(
        metric(
            &samples,
            "switchyard_rule_matches_total",
            &[("rollout", "stytch-login"), ("rule", "office")]
        ),
        None
    );
}
