//! Issue 10: defaults that work for a new user, and inputs that would quietly do harm —
//! default cookie names, cookies of a deleted rollout, epochs going down, `null` in a merge
//! patch, country codes that are not ISO, bare app versions, and messages in the API's words.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

async fn send_json(app: &TestApp, method: Method, path: &str, body: Value) -> reqwest::Response {
    app.send(method, path, Some(ADMIN_TOKEN), Some(&body)).await
}

async fn rollback_r(app: &TestApp, version: Value) -> reqwest::Response {
    let body = json!({ "version": version });
    send_json(app, Method::POST, "/v1/rollouts/r/rollback", body).await
}

/// The `details` of a 422, as (field, message) pairs.
async fn invalid(response: reqwest::Response) -> Vec<(String, String)> {
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap().to_string(),
                d["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_rollout_created_with_nothing_but_its_key_gets_its_own_cookie_name() {
    let app = spawn_app().await;
    // A fresh installation has stytch-login with its cookie.
    let default = app.get_json("/v1/rollouts/stytch-login", ADMIN_TOKEN).await;
    assert_eq!(default["sticky"]["cookie_name"], "sy_flow");
    for key in ["mobile", "web"] {
        let created = app.create_rollout(json!({"key": key})).await;
        assert_eq!(created["sticky"]["cookie_name"], format!("sy_{key}"));
        assert_eq!(created["sticky"]["enabled"], true);
    }
    // Sticky given without a name: the default name too.
    let created = app
        .create_rollout(json!({"key": "tv", "sticky": {"max_age_seconds": 60}}))
        .await;
    assert_eq!(created["sticky"]["cookie_name"], "sy_tv");
    // The longest key still gives a valid name.
    let long = "k".repeat(64);
    let created = app.create_rollout(json!({ "key": long })).await;
    assert_eq!(created["sticky"]["cookie_name"], format!("sy_{long}"));
}

#[tokio::test]
async fn a_put_without_sticky_keeps_the_cookie_name_and_clashes_with_nobody() {
    let app = spawn_app().await;
    app.create_rollout(json!({"key": "mobile"})).await;
    // The default rollout, PUT without sticky, keeps its own name too.
    for (key, cookie, percentage) in [
        ("mobile", "sy_mobile", 5.0),
        ("stytch-login", "sy_flow", 1.0),
    ] {
        let put = send_json(
            &app,
            Method::PUT,
            &format!("/v1/rollouts/{key}"),
            json!({ "percentage": percentage }),
        )
        .await;
        assert_eq!(put.status(), StatusCode::OK);
        let put: Value = put.json().await.unwrap();
        assert_eq!(put["sticky"]["cookie_name"], cookie);
        assert_eq!(put["percentage"], percentage);
    }
}

#[tokio::test]
async fn a_rollout_created_again_honours_none_of_the_deleted_ones_cookies() {
    let app = spawn_app().await;
    let first = app
        .create_rollout(json!({"key": "ov", "percentage": 100}))
        .await;
    assert_eq!(first["epoch"], 1);
    let decided = app
        .decide(json!({"rollout": "ov", "device_id": "d-1"}))
        .await;
    assert_eq!(decided["flow"], "stytch");
    let sticky = decided["set_cookie"]["value"].as_str().unwrap().to_string();
    let over = app.mint_override("ov", "stytch", 3600).await;
    let deleted = app
        .send(Method::DELETE, "/v1/rollouts/ov", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let again = app.create_rollout(json!({"key": "ov"})).await;
    assert_eq!(again["epoch"], 2, "one epoch above the deleted one");
    assert_eq!(again["percentage"], 0.0);
    for cookies in [json!({"sy_ov": sticky}), json!({"sy_override": over})] {
        let d = app
            .decide(json!({"rollout": "ov", "device_id": "d-1", "cookies": cookies}))
            .await;
        assert_eq!(d["flow"], "legacy", "{cookies}: {d}");
        assert_eq!(d["reason"], "percentage", "{cookies}: {d}");
    }

    // Asking for the deleted one's epoch again is refused; a higher one is taken.
    app.send(Method::DELETE, "/v1/rollouts/ov", Some(ADMIN_TOKEN), None)
        .await;
    let refused = send_json(
        &app,
        Method::POST,
        "/v1/rollouts",
        json!({"key": "ov", "epoch": 2}),
    )
    .await;
    let details = invalid(refused).await;
    assert_eq!(details[0].0, "epoch");
    assert!(details[0].1.contains("at least 3"), "{details:?}");
    let taken = app.create_rollout(json!({"key": "ov", "epoch": 9})).await;
    assert_eq!(taken["epoch"], 9);

    // It survives a restart (the store remembers the epoch beside the delete's version).
    app.send(Method::DELETE, "/v1/rollouts/ov", Some(ADMIN_TOKEN), None)
        .await;
    let app = app.restart().await;
    let again = app.create_rollout(json!({"key": "ov"})).await;
    assert_eq!(again["epoch"], 10);
}

#[tokio::test]
async fn the_epoch_never_goes_down() {
    let app = spawn_app().await;
    app.create_rollout(json!({"key": "r", "percentage": 100}))
        .await;
    let d = app.decide(json!({"rollout": "r", "device_id": "d"})).await;
    let cookie = d["set_cookie"]["value"].as_str().unwrap().to_string();
    app.patch_rollout("r", json!({"epoch": 2, "percentage": 0}))
        .await;
    for (method, body) in [
        (Method::PATCH, json!({"epoch": 1})),
        (Method::PUT, json!({"epoch": 1})),
    ] {
        let refused = send_json(&app, method.clone(), "/v1/rollouts/r", body).await;
        let details = invalid(refused).await;
        assert_eq!(details[0].0, "epoch", "{method}");
        assert!(details[0].1.contains("epoch 2"), "{details:?}");
    }
    // A rollback to version 1 brings back its percentage, not its epoch.
    let rolled = rollback_r(&app, json!(1)).await;
    assert_eq!(rolled.status(), StatusCode::OK);
    let rolled: Value = rolled.json().await.unwrap();
    assert_eq!(rolled["percentage"], 100.0);
    assert_eq!(rolled["epoch"], 2);
    // So the cookie the bump voided stays void.
    app.patch_rollout("r", json!({"percentage": 0})).await;
    let d = app
        .decide(json!({"rollout": "r", "device_id": "d", "cookies": {"sy_r": cookie}}))
        .await;
    assert_eq!(d["flow"], "legacy");
}

#[tokio::test]
async fn null_in_a_merge_patch_is_refused_except_for_description() {
    let app = spawn_app().await;
    app.create_rollout(json!({"key": "r", "description": "to remove"}))
        .await;
    app.patch_rollout("r", json!({"enabled": false})).await;
    for (patch, field) in [
        (json!({"enabled": null}), "enabled"),
        (json!({"percentage": null}), "percentage"),
        (json!({"rules": null}), "rules"),
        (
            json!({"sticky": {"cookie_name": null}}),
            "sticky.cookie_name",
        ),
        (json!({"epoch": null}), "epoch"),
    ] {
        let refused = send_json(&app, Method::PATCH, "/v1/rollouts/r", patch.clone()).await;
        let details = invalid(refused).await;
        assert_eq!(details[0].0, field, "{patch}");
        assert!(details[0].1.contains("null"), "{details:?}");
    }
    let r = app.get_json("/v1/rollouts/r", ADMIN_TOKEN).await;
    assert_eq!(r["enabled"], false, "the kill switch held");
    assert_eq!(r["version"], 2);
    let removed = app.patch_rollout("r", json!({"description": null})).await;
    assert_eq!(removed["description"], "");
    // In a create or a replace, null is no value either.
    let refused = send_json(
        &app,
        Method::POST,
        "/v1/rollouts",
        json!({"key": "n", "enabled": null}),
    )
    .await;
    assert_eq!(invalid(refused).await[0].0, "enabled");
    let refused = send_json(
        &app,
        Method::PUT,
        "/v1/rollouts/r",
        json!({"rules": [{"id": "a", "when": {"countries": null, "platforms": ["ios"]}, "then": "stytch"}]}),
    )
    .await;
    assert_eq!(invalid(refused).await[0].0, "rules[0].when.countries");
    // Server-kept members are ignored whatever they hold, but are not null either (as
    // openapi.json says), in a create, a replace and a merge patch alike.
    for (method, path) in [
        (Method::POST, "/v1/rollouts"),
        (Method::PUT, "/v1/rollouts/r"),
        (Method::PATCH, "/v1/rollouts/r"),
    ] {
        for member in ["version", "updated_at", "updated_by"] {
            let mut body = json!({"key": "r2"});
            if method != Method::POST {
                body = json!({});
            }
            body[member] = Value::Null;
            let refused = send_json(&app, method.clone(), path, body).await;
            let details = invalid(refused).await;
            assert_eq!(details[0].0, member, "{method} {member}");
            assert!(details[0].1.contains("null"), "{details:?}");
        }
    }
    let ignored = send_json(
        &app,
        Method::PATCH,
        "/v1/rollouts/r",
        json!({"version": [null], "updated_by": {"a": null}, "updated_at": false}),
    )
    .await;
    assert_eq!(
        ignored.status(),
        StatusCode::OK,
        "ignored members are ignored"
    );
}

#[tokio::test]
async fn country_codes_must_be_assigned_iso_codes() {
    let app = spawn_app().await;
    let refused = send_json(
        &app,
        Method::POST,
        "/v1/rollouts",
        rollout(
            "r",
            0.0,
            json!([{"id": "uk", "when": {"countries": ["GB", "UK"], "subdivisions": ["UK-ENG"]}, "then": "stytch"}]),
        ),
    )
    .await;
    let details = invalid(refused).await;
    assert_eq!(
        details.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
        [
            "rules[0].when.countries[1]",
            "rules[0].when.subdivisions[0]"
        ]
    );
    for (_, message) in &details {
        assert!(
            message.contains("'UK'") || message.contains("'UK-ENG'"),
            "{message}"
        );
        assert!(message.contains("GB"), "{message}");
    }
    for bad in ["XX", "XK", "ZZ"] {
        let refused = send_json(
            &app,
            Method::POST,
            "/v1/rollouts",
            rollout(
                "r",
                0.0,
                json!([{"id": "c", "when": {"countries": [bad]}, "then": "stytch"}]),
            ),
        )
        .await;
        assert_eq!(invalid(refused).await[0].0, "rules[0].when.countries[0]");
    }
    app.create_rollout(rollout(
        "r",
        0.0,
        json!([
            {"id": "ok", "when": {"countries": ["gb", "SS"]}, "then": "stytch"},
            {"id": "eng", "when": {"subdivisions": ["GB-ENG"]}, "then": "stytch"},
        ]),
    ))
    .await;
    let d = app
        .decide(json!({"rollout": "r", "user_key": "u", "country": "GB"}))
        .await;
    assert_eq!(d["flow"], "stytch");
}

#[tokio::test]
async fn a_bare_app_version_means_exactly_that_version() {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "r",
        0.0,
        json!([{"id": "exact", "when": {"app_version": "5.2.0"}, "then": "stytch"}]),
    ))
    .await;
    for (version, flow) in [
        ("5.2.0", "stytch"),
        ("5.9.1", "legacy"),
        ("5.2.1", "legacy"),
        ("6.0.0", "legacy"),
    ] {
        let d = app
            .decide(json!({"rollout": "r", "user_key": "u", "app_version": version}))
            .await;
        assert_eq!(d["flow"], flow, "{version}");
    }
}

#[tokio::test]
async fn shape_errors_speak_the_apis_language() {
    let app = spawn_app().await;
    let refused = send_json(
        &app,
        Method::POST,
        "/v1/rollouts",
        json!({"key": "r", "percentage": "ten"}),
    )
    .await;
    let details = invalid(refused).await;
    assert_eq!(
        details,
        [(
            "percentage".to_string(),
            "percentage must be a number from 0 to 100".to_string()
        )]
    );
    app.create_rollout(json!({"key": "r"})).await;
    for (patch, field, words) in [
        (
            json!({"enabled": "yes"}),
            "enabled",
            "enabled must be true or false",
        ),
        (
            json!({"epoch": "2"}),
            "epoch",
            "epoch must be a whole number",
        ),
        (
            json!({"epoch": 2.5}),
            "epoch",
            "epoch must be a whole number",
        ),
        (
            json!({"legacy_sessions": "keep"}),
            "legacy_sessions",
            "legacy_sessions must be one of",
        ),
    ] {
        let refused = send_json(&app, Method::PATCH, "/v1/rollouts/r", patch.clone()).await;
        let details = invalid(refused).await;
        assert_eq!(details[0].0, field, "{patch}");
        assert!(details[0].1.starts_with(words), "{patch}: {details:?}");
        for implementation in ["f64", "u64", "expected", "`"] {
            assert!(!details[0].1.contains(implementation), "{details:?}");
        }
    }
    // A whole number written as a float is a whole number (JSON Schema's integer).
    let r = app
        .patch_rollout(
            "r",
            json!({"epoch": 3.0, "sticky": {"max_age_seconds": 60.0}}),
        )
        .await;
    assert_eq!(r["epoch"], 3);
    assert_eq!(r["sticky"]["max_age_seconds"], 60);
    let rolled = rollback_r(&app, json!(1.0)).await;
    assert_eq!(rolled.status(), StatusCode::OK);
    let minted = send_json(
        &app,
        Method::POST,
        "/v1/rollouts/r/override-cookies",
        json!({"flow": "stytch", "ttl_seconds": 60.0}),
    )
    .await;
    assert_eq!(minted.status(), StatusCode::CREATED);
    // Query parameters are named by themselves.
    for (path, token) in [
        ("/v1/audit?limit=abc", ADMIN_TOKEN),
        ("/v1/rollouts/r/enrollments?limit=abc", BACKEND_TOKEN),
    ] {
        let refused = app.get(path, token).await;
        let details = invalid(refused).await;
        assert_eq!(details[0].0, "limit", "{path}");
        assert!(details[0].1.starts_with("limit must be"), "{details:?}");
    }
}

#[tokio::test]
async fn the_store_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.create_rollout(json!({"key": "r"})).await;
    assert_eq!(
        app.enroll("r", "alice@example.com").await,
        StatusCode::CREATED
    );
    let path = app.dir.path().join("switchyard.redb");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", path.display());
}

#[tokio::test]
async fn only_decision_series_that_can_happen_are_exported() {
    let app = spawn_app().await;
    app.create_rollout(json!({"key": "r"})).await;
    let samples = app.metrics().await;
    let series = |flow: &str, reason: &str| {
        metric(
            &samples,
            "switchyard_decisions_total",
            &[("rollout", "r"), ("flow", flow), ("reason", reason)],
        )
    };
    for (flow, reason) in [
        ("stytch", "disabled"),
        ("legacy", "enrolled"),
        ("legacy", "sticky_cookie"),
    ] {
        assert_eq!(series(flow, reason), None, "{flow}/{reason}");
    }
    for (flow, reason) in [
        ("legacy", "disabled"),
        ("stytch", "enrolled"),
        ("stytch", "sticky_cookie"),
        ("stytch", "override_cookie"),
        ("legacy", "override_cookie"),
        ("stytch", "rule"),
        ("legacy", "rule"),
        ("stytch", "percentage"),
        ("legacy", "percentage"),
    ] {
        assert_eq!(series(flow, reason), Some(0.0), "{flow}/{reason}");
    }
}
