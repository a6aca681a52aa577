//! SPEC §4: every error status with its JSON error body, and never a 500 for bad input.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const JSON: (&str, &str) = ("content-type", "application/json");

/// The one `details` entry of a 422 body, after checking the message names the field too.
fn single_detail(body: &Value) -> (String, String) {
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 1, "{body}");
    let field = details[0]["field"].as_str().unwrap().to_string();
    let message = details[0]["message"].as_str().unwrap().to_string();
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&field),
        "the message names the field: {body}"
    );
    (field, message)
}

async fn create_raw(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/v1/rollouts", ADMIN_TOKEN, &body).await
}

/// Creates `body` and expects a 422 whose single detail is on `field`; returns the message.
async fn invalid_on(app: &TestApp, body: Value, field: &str) -> String {
    let response = create_raw(app, body.clone()).await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let (got, message) = single_detail(&error);
    assert_eq!(got, field, "{body} → {error}");
    message
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for (method, path, token) in [
        (Method::POST, "/v1/decide", DECIDE_TOKEN),
        (Method::POST, "/v1/rollouts", ADMIN_TOKEN),
        (Method::PATCH, "/v1/rollouts/stytch-login", ADMIN_TOKEN),
        (Method::PUT, "/v1/rollouts/stytch-login", ADMIN_TOKEN),
        (Method::POST, "/v1/outcomes", BACKEND_TOKEN),
    ] {
        let bodies: [&[u8]; 6] = [
            b"{\"rollout\": ",
            b"{not json}",
            b"",
            b"{\"a\": 1} trailing",
            b"{\"colour\": \"red\", \"rollout\": ",
            b"{\"percentage\": \"ten\",",
        ];
        for body in bodies {
            let response = app
                .raw(
                    method.clone(),
                    path,
                    Some(token),
                    &[JSON],
                    Some(body.to_vec()),
                )
                .await;
            let status = response.status();
            let text = response.text().await.unwrap();
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{method} {path} {:?} → {text}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_401_with_www_authenticate() {
    let app = spawn_app().await;
    let decide = json!({"rollout": "stytch-login", "user_key": "u"});
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Option<&str>, Headers); 4] = [
        (None, &[]),
        (Some("not-a-token"), &[]),
        (None, &[("authorization", "Basic YWRtaW46YWRtaW4=")]),
        (None, &[("authorization", "Bearer ")]),
    ];
    for (token, headers) in cases {
        for (method, path) in [
            (Method::POST, "/v1/decide"),
            (Method::GET, "/v1/rollouts"),
            (Method::POST, "/v1/rollouts"),
            (Method::GET, "/v1/audit"),
            (Method::PUT, "/v1/rollouts/stytch-login/enrollments/u"),
        ] {
            let mut all_headers = headers.to_vec();
            all_headers.push(JSON);
            let response = app
                .raw(
                    method,
                    path,
                    token,
                    &all_headers,
                    Some(decide.to_string().into_bytes()),
                )
                .await;
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer"),
                "{path}"
            );
            assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
}

#[tokio::test]
async fn a_token_without_the_scope_is_403() {
    let app = spawn_app().await;
    let forbidden = [
        app.post("/v1/rollouts", READ_TOKEN, &json!({"key": "x"}))
            .await,
        app.get("/v1/rollouts", DECIDE_TOKEN).await,
        app.get("/v1/rollouts/stytch-login", BACKEND_TOKEN).await,
        app.post(
            "/v1/decide",
            ADMIN_TOKEN,
            &json!({"rollout": "stytch-login", "user_key": "u"}),
        )
        .await,
        app.send(
            Method::PATCH,
            "/v1/rollouts/stytch-login",
            Some(READ_TOKEN),
            Some(&json!({"percentage": 5})),
        )
        .await,
        app.send(
            Method::DELETE,
            "/v1/rollouts/stytch-login",
            Some(READ_TOKEN),
            None,
        )
        .await,
        app.send(
            Method::PUT,
            "/v1/rollouts/stytch-login/enrollments/u",
            Some(DECIDE_TOKEN),
            None,
        )
        .await,
        app.post(
            "/v1/outcomes",
            DECIDE_TOKEN,
            &json!({"rollout": "stytch-login", "flow": "stytch", "outcome": "success"}),
        )
        .await,
        app.post(
            "/v1/rollouts/stytch-login/override-cookies",
            READ_TOKEN,
            &json!({"flow": "stytch"}),
        )
        .await,
    ];
    for response in forbidden {
        assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    // Nothing changed.
    let rollout = app.get_json("/v1/rollouts/stytch-login", READ_TOKEN).await;
    assert_eq!(rollout["version"], 1);
}

#[tokio::test]
async fn an_unknown_rollout_or_route_is_404() {
    let app = spawn_app().await;
    let responses = [
        app.get("/v1/rollouts/nope", READ_TOKEN).await,
        app.get("/v1/rollouts/nope/history", READ_TOKEN).await,
        app.send(Method::DELETE, "/v1/rollouts/nope", Some(ADMIN_TOKEN), None)
            .await,
        app.send(
            Method::PATCH,
            "/v1/rollouts/nope",
            Some(ADMIN_TOKEN),
            Some(&json!({})),
        )
        .await,
        app.send(
            Method::PUT,
            "/v1/rollouts/nope",
            Some(ADMIN_TOKEN),
            Some(&json!({})),
        )
        .await,
        app.post(
            "/v1/rollouts/nope/rollback",
            ADMIN_TOKEN,
            &json!({"version": 1}),
        )
        .await,
        app.post(
            "/v1/rollouts/nope/override-cookies",
            ADMIN_TOKEN,
            &json!({"flow": "stytch"}),
        )
        .await,
        app.send(
            Method::PUT,
            "/v1/rollouts/nope/enrollments/u",
            Some(BACKEND_TOKEN),
            None,
        )
        .await,
        app.get("/v1/rollouts/nope/enrollments", BACKEND_TOKEN)
            .await,
        app.post(
            "/v1/decide",
            DECIDE_TOKEN,
            &json!({"rollout": "nope", "user_key": "u"}),
        )
        .await,
        app.get("/v1/nothing-here", ADMIN_TOKEN).await,
        app.raw(Method::GET, "/", None, &[], None).await,
        app.raw(
            Method::POST,
            "/v2/decide",
            None,
            &[JSON],
            Some(b"{}".to_vec()),
        )
        .await,
    ];
    for response in responses {
        let url = response.url().to_string();
        let body = assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_wrong_method_is_405() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/v1/decide"),
        (Method::DELETE, "/v1/rollouts"),
        (Method::POST, "/v1/rollouts/stytch-login"),
        (Method::GET, "/v1/rollouts/stytch-login/rollback"),
        (Method::POST, "/healthz"),
        (Method::DELETE, "/metrics"),
    ] {
        let response = app
            .raw(method.clone(), path, Some(ADMIN_TOKEN), &[], None)
            .await;
        assert_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
    }
}

#[tokio::test]
async fn creating_an_existing_key_is_409() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 10.0, json!([]))).await;
    let again = create_raw(&app, rollout("r", 20.0, json!([]))).await;
    assert_error(again, StatusCode::CONFLICT, "already_exists").await;
    let existing = create_raw(&app, json!({"key": "stytch-login"})).await;
    assert_error(existing, StatusCode::CONFLICT, "already_exists").await;
    let kept = app.get_json("/v1/rollouts/r", READ_TOKEN).await;
    assert_eq!(kept["percentage"], 10.0);
    assert_eq!(kept["version"], 1);
}

#[tokio::test]
async fn an_if_match_that_does_not_match_is_412_on_every_write() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 10.0, json!([]))).await;
    app.patch_rollout("r", json!({"percentage": 20})).await; // version 2
    let full = rollout("r", 30.0, json!([]));
    for stale in ["\"1\"", "\"3\"", "\"banana\"", "W/\"1\""] {
        let responses = [
            app.send_if_match(Method::PUT, "/v1/rollouts/r", stale, Some(&full))
                .await,
            app.send_if_match(
                Method::PATCH,
                "/v1/rollouts/r",
                stale,
                Some(&json!({"percentage": 40})),
            )
            .await,
            app.send_if_match(Method::DELETE, "/v1/rollouts/r", stale, None)
                .await,
            app.send_if_match(
                Method::POST,
                "/v1/rollouts/r/rollback",
                stale,
                Some(&json!({"version": 1})),
            )
            .await,
        ];
        for response in responses {
            assert_error(
                response,
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
            )
            .await;
        }
    }
    let current = app.get_json("/v1/rollouts/r", READ_TOKEN).await;
    assert_eq!(current["version"], 2);
    assert_eq!(current["percentage"], 20.0);
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_413() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    settings.server.max_body_bytes = 1024;
    let app = spawn_with(settings, dir).await;
    let big = "x".repeat(1100);
    let responses = [
        app.post(
            "/v1/decide",
            DECIDE_TOKEN,
            &json!({"rollout": "stytch-login", "user_key": big}),
        )
        .await,
        app.post(
            "/v1/rollouts",
            ADMIN_TOKEN,
            &json!({"key": "r", "description": big}),
        )
        .await,
        app.send(
            Method::PATCH,
            "/v1/rollouts/stytch-login",
            Some(ADMIN_TOKEN),
            Some(&json!({"description": big})),
        )
        .await,
    ];
    for response in responses {
        assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    }
    // Just under the limit is fine.
    let small = "x".repeat(400);
    let d = app
        .decide(json!({"rollout": "stytch-login", "user_key": small}))
        .await;
    assert_eq!(d["flow"], "legacy");
}

#[tokio::test]
async fn a_body_that_is_not_json_by_content_type_is_415() {
    let app = spawn_app().await;
    let body = json!({"rollout": "stytch-login", "user_key": "u"}).to_string();
    for headers in [
        vec![],
        vec![("content-type", "text/plain")],
        vec![("content-type", "application/x-www-form-urlencoded")],
        vec![("content-type", "application/xml")],
    ] {
        let response = app
            .raw(
                Method::POST,
                "/v1/decide",
                Some(DECIDE_TOKEN),
                &headers,
                Some(body.clone().into_bytes()),
            )
            .await;
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
        let response = app
            .raw(
                Method::PATCH,
                "/v1/rollouts/stytch-login",
                Some(ADMIN_TOKEN),
                &headers,
                Some(b"{\"percentage\": 5}".to_vec()),
            )
            .await;
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    // A charset parameter is fine.
    let response = app
        .raw(
            Method::POST,
            "/v1/decide",
            Some(DECIDE_TOKEN),
            &[("content-type", "application/json; charset=utf-8")],
            Some(body.into_bytes()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn validation_errors_are_422_with_the_exact_field_path() {
    let app = spawn_app().await;
    let with_rules = |rules: Value| rollout("r", 10.0, rules);

    let message = invalid_on(
        &app,
        with_rules(json!([
            {"id": "ok", "when": {"platforms": ["web"]}, "then": "stytch"},
            {"id": "nets", "when": {"ip_ranges": ["10.0.0.0/8", "10.0.0.0/33"]}, "then": "stytch"},
        ])),
        "rules[1].when.ip_ranges[1]",
    )
    .await;
    assert_eq!(message, "invalid CIDR '10.0.0.0/33'");
    // The example of SPEC §4, to the letter.
    let response = create_raw(
        &app,
        with_rules(json!([{"id": "a", "when": {"ip_ranges": ["10.0.0.0/8", "10.0.0.0/33"]}, "then": "stytch"}])),
    )
    .await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        error,
        json!({"error": {
            "code": "validation_failed",
            "message": "rules[0].when.ip_ranges[1]: invalid CIDR '10.0.0.0/33'",
            "details": [{"field": "rules[0].when.ip_ranges[1]", "message": "invalid CIDR '10.0.0.0/33'"}],
        }})
    );
    invalid_on(&app, rollout("r", 12.345, json!([])), "percentage").await;
    invalid_on(&app, rollout("r", 101.0, json!([])), "percentage").await;
    invalid_on(&app, rollout("r", -1.0, json!([])), "percentage").await;
    invalid_on(&app, rollout("Bad Key", 10.0, json!([])), "key").await;
    invalid_on(&app, rollout("-starts-with-dash", 10.0, json!([])), "key").await;
    invalid_on(&app, rollout(&"k".repeat(65), 10.0, json!([])), "key").await;
    let mut bad_salt = rollout("r", 10.0, json!([]));
    bad_salt["salt"] = json!("no spaces allowed");
    invalid_on(&app, bad_salt, "salt").await;
    invalid_on(
        &app,
        with_rules(json!([{"id": "c", "when": {"countries": ["GB", "GBR"]}, "then": "stytch"}])),
        "rules[0].when.countries[1]",
    )
    .await;
    invalid_on(
        &app,
        with_rules(json!([{"id": "c", "when": {"continents": ["XX"]}, "then": "stytch"}])),
        "rules[0].when.continents[0]",
    )
    .await;
    invalid_on(
        &app,
        with_rules(
            json!([{"id": "s", "when": {"subdivisions": ["GB-ENG", "ENGLAND"]}, "then": "stytch"}]),
        ),
        "rules[0].when.subdivisions[1]",
    )
    .await;
    invalid_on(
        &app,
        // A rule without `then`: the missing field is named, not its parent.
        with_rules(json!([{"id": "v", "when": {"platforms": ["ios"]}}])),
        "rules[0].then",
    )
    .await;
    invalid_on(
        &app,
        with_rules(json!([{"id": "v", "when": {"app_version": "<<5.x.y"}, "then": "legacy"}])),
        "rules[0].when.app_version",
    )
    .await;
    invalid_on(
        &app,
        with_rules(json!([
            {"id": "dup", "when": {"platforms": ["ios"]}, "then": "legacy"},
            {"id": "dup", "when": {"platforms": ["web"]}, "then": "stytch"},
        ])),
        "rules[1].id",
    )
    .await;
    invalid_on(
        &app,
        with_rules(json!([{"id": "e", "when": {"countries": []}, "then": "stytch"}])),
        "rules[0].when.countries",
    )
    .await;
    invalid_on(
        &app,
        with_rules(json!([{"id": "e", "when": {}, "then": "stytch"}])),
        "rules[0].when",
    )
    .await;
    invalid_on(
        &app,
        with_rules(
            json!([{"id": "seg", "when": {"platforms": ["ios"]}, "then": {"percentage": 150}}]),
        ),
        "rules[0].then.percentage",
    )
    .await;
    invalid_on(
        &app,
        with_rules(json!([{"id": "f", "when": {"platforms": ["ios"]}, "then": "sideways"}])),
        "rules[0].then",
    )
    .await;
    // Unknown fields, at the top and inside a rule.
    let mut unknown = rollout("r", 10.0, json!([]));
    unknown["colour"] = json!("red");
    let message = invalid_on(&app, unknown, "colour").await;
    assert!(message.contains("colour"), "{message}");
    invalid_on(
        &app,
        with_rules(json!([{"id": "u", "when": {"platform": ["ios"]}, "then": "stytch"}])),
        "rules[0].when.platform",
    )
    .await;
    // Wrong types.
    let mut wrong = rollout("r", 10.0, json!([]));
    wrong["percentage"] = json!("ten");
    invalid_on(&app, wrong, "percentage").await;
    let mut wrong = rollout("r", 10.0, json!([]));
    wrong["enabled"] = json!("yes");
    invalid_on(&app, wrong, "enabled").await;
    invalid_on(
        &app,
        with_rules(json!([{"id": "t", "when": {"platforms": "ios"}, "then": "stytch"}])),
        "rules[0].when.platforms",
    )
    .await;
    // Nothing was created.
    let list = app.get_json("/v1/rollouts", READ_TOKEN).await;
    assert_eq!(list["rollouts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn every_problem_of_a_rollout_is_reported_at_once() {
    let app = spawn_app().await;
    let mut body = rollout(
        "r",
        12.345,
        json!([
            {"id": "a", "when": {"ip_ranges": ["10.0.0.0/33"], "countries": ["GBR"]}, "then": "stytch"},
        ]),
    );
    body["salt"] = json!("bad salt");
    let response = create_raw(&app, body).await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = error["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "percentage",
            "salt",
            "rules[0].when.ip_ranges[0]",
            "rules[0].when.countries[0]"
        ]
    );
}

#[tokio::test]
async fn patch_and_put_validate_like_create() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 10.0, json!([]))).await;
    // Two rollouts cannot share a sticky cookie, nor use the override cookie's name.
    for name in ["sy_flow", "sy_override", "bad name"] {
        let response = app
            .send(
                Method::PATCH,
                "/v1/rollouts/r",
                Some(ADMIN_TOKEN),
                Some(&json!({"sticky": {"cookie_name": name}})),
            )
            .await;
        let error = assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(single_detail(&error).0, "sticky.cookie_name", "{name}");
    }
    let response = app
        .send(
            Method::PATCH,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&json!({"percentage": 101})),
        )
        .await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(single_detail(&error).0, "percentage");
    let response = app
        .send(
            Method::PATCH,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&json!({"rules": [{"id": "x", "when": {"ip_ranges": ["1.2.3.4/40"]}, "then": "stytch"}]})),
        )
        .await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(single_detail(&error).0, "rules[0].when.ip_ranges[0]");
    let response = app
        .send(
            Method::PATCH,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&json!({"key": "renamed"})),
        )
        .await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(single_detail(&error).0, "key");
    let response = app
        .send(
            Method::PATCH,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&json!([1, 2])),
        )
        .await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let response = app
        .send(
            Method::PUT,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&json!({"key": "r", "percentage": 12.345, "sticky": {"cookie_name": "sy_r"}})),
        )
        .await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(single_detail(&error).0, "percentage");
    let response = app
        .send(
            Method::PUT,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&json!({"key": "other", "sticky": {"cookie_name": "sy_r"}})),
        )
        .await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(single_detail(&error).0, "key");
    let current = app.get_json("/v1/rollouts/r", READ_TOKEN).await;
    assert_eq!(current["version"], 1);
}

#[tokio::test]
async fn decide_without_user_key_or_device_id_is_422_missing_key() {
    let app = spawn_app().await;
    for body in [
        json!({"rollout": "stytch-login"}),
        json!({"rollout": "stytch-login", "user_key": ""}),
        json!({"rollout": "stytch-login", "user_key": null, "device_id": ""}),
        json!({"rollout": "stytch-login", "ip": "81.2.69.142", "platform": "web"}),
    ] {
        let response = app.post("/v1/decide", DECIDE_TOKEN, &body).await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "missing_key").await;
    }
}

#[tokio::test]
async fn decide_rejects_well_formed_but_invalid_input_with_422() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"user_key": "u"}), "rollout"),
        (
            json!({"rollout": "stytch-login", "user_key": "u", "ip": "300.1.1.1"}),
            "ip",
        ),
        (
            json!({"rollout": "stytch-login", "user_key": "u", "country": "GBR"}),
            "country",
        ),
        (
            json!({"rollout": "stytch-login", "user_key": 42}),
            "user_key",
        ),
        (
            json!({"rollout": "stytch-login", "user_key": "u", "colour": "red"}),
            "colour",
        ),
        (
            json!({"rollout": "stytch-login", "user_key": "k".repeat(513)}),
            "user_key",
        ),
        (
            json!({"rollout": "stytch-login", "user_key": "u", "cookies": {"a": 1}}),
            "cookies.a",
        ),
    ] {
        let response = app.post("/v1/decide", DECIDE_TOKEN, &body).await;
        let error = assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(single_detail(&error).0, field, "{body}");
    }
}

#[tokio::test]
async fn other_bad_input_is_422_never_500() {
    let app = spawn_app().await;
    let cases = [
        app.post(
            "/v1/rollouts/stytch-login/rollback",
            ADMIN_TOKEN,
            &json!({"version": 99}),
        )
        .await,
        app.post(
            "/v1/rollouts/stytch-login/rollback",
            ADMIN_TOKEN,
            &json!({"version": "one"}),
        )
        .await,
        app.post(
            "/v1/rollouts/stytch-login/override-cookies",
            ADMIN_TOKEN,
            &json!({"flow": "sideways"}),
        )
        .await,
        app.post(
            "/v1/rollouts/stytch-login/override-cookies",
            ADMIN_TOKEN,
            &json!({"flow": "stytch", "ttl_seconds": 0}),
        )
        .await,
        app.post(
            "/v1/outcomes",
            BACKEND_TOKEN,
            &json!({"rollout": "stytch-login", "flow": "stytch", "outcome": "maybe"}),
        )
        .await,
        app.get("/v1/audit?limit=0", READ_TOKEN).await,
        app.get("/v1/audit?limit=many", READ_TOKEN).await,
        app.get("/v1/audit?limit=10001", READ_TOKEN).await,
        app.get("/v1/audit?cursor=yesterday", READ_TOKEN).await,
        app.get(
            "/v1/rollouts/stytch-login/enrollments?limit=0",
            BACKEND_TOKEN,
        )
        .await,
        app.get(
            "/v1/rollouts/stytch-login/enrollments?bogus=1",
            BACKEND_TOKEN,
        )
        .await,
        app.post("/v1/rollouts", ADMIN_TOKEN, &json!("a string"))
            .await,
        app.post("/v1/rollouts", ADMIN_TOKEN, &json!({})).await,
    ];
    for response in cases {
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
}

#[tokio::test]
async fn no_bad_input_is_ever_a_500() {
    let app = spawn_app().await;
    let bodies: [&[u8]; 10] = [
        b"",
        b"null",
        b"[]",
        b"\"\"",
        b"{\"rollout\": null}",
        b"{\"rollout\": \"stytch-login\", \"user_key\": \"\\ud800\"}",
        b"{\"key\": \"r\", \"rules\": [{\"id\": \"x\", \"when\": {\"ip_ranges\": [\"::/200\"]}, \"then\": {}}]}",
        b"{\"percentage\": 1e400}",
        b"\xff\xfe\x00",
        b"{\"rules\": [null]}",
    ];
    let targets = [
        (Method::POST, "/v1/decide", DECIDE_TOKEN),
        (Method::POST, "/v1/rollouts", ADMIN_TOKEN),
        (Method::PUT, "/v1/rollouts/stytch-login", ADMIN_TOKEN),
        (Method::PATCH, "/v1/rollouts/stytch-login", ADMIN_TOKEN),
        (
            Method::POST,
            "/v1/rollouts/stytch-login/rollback",
            ADMIN_TOKEN,
        ),
        (
            Method::POST,
            "/v1/rollouts/stytch-login/override-cookies",
            ADMIN_TOKEN,
        ),
        (Method::POST, "/v1/outcomes", BACKEND_TOKEN),
    ];
    for (method, path, token) in targets {
        for body in bodies {
            let response = app
                .raw(
                    method.clone(),
                    path,
                    Some(token),
                    &[JSON],
                    Some(body.to_vec()),
                )
                .await;
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(
                !status.is_server_error(),
                "{method} {path} {:?} → {status} {text}",
                String::from_utf8_lossy(body)
            );
            if !status.is_success() {
                let parsed: Value = serde_json::from_str(&text).expect("error bodies are JSON");
                assert!(parsed["error"]["code"].is_string(), "{text}");
            }
        }
    }
    // Odd paths and headers.
    let odd = [
        app.get("/v1/rollouts/%FF%FE", READ_TOKEN).await,
        app.get(&format!("/v1/rollouts/{}", "k".repeat(5000)), READ_TOKEN)
            .await,
        app.send(
            Method::PUT,
            "/v1/rollouts/stytch-login/enrollments/%00",
            Some(BACKEND_TOKEN),
            None,
        )
        .await,
        app.raw(
            Method::PATCH,
            "/v1/rollouts/stytch-login",
            Some(ADMIN_TOKEN),
            &[JSON, ("if-match", "junk, \"1\" garbage, *")],
            Some(b"{}".to_vec()),
        )
        .await,
    ];
    for response in odd {
        assert!(
            !response.status().is_server_error(),
            "{}",
            response.status()
        );
    }
}

#[tokio::test]
async fn a_store_that_cannot_save_answers_503_and_decisions_keep_working() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    let folder = dir.path().join("store");
    settings.store.path = folder.join("switchyard.redb");
    let app = spawn_with(settings, dir).await;
    app.create_rollout(rollout("r", 100.0, json!([]))).await;

    // The store's folder becomes a plain file: nothing can be written there any more.
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::write(&folder, b"in the way").unwrap();
    let response = app
        .send(
            Method::PATCH,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&json!({"percentage": 0})),
        )
        .await;
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    )
    .await;
    let response = app
        .post("/v1/rollouts", ADMIN_TOKEN, &rollout("s", 1.0, json!([])))
        .await;
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    )
    .await;
    let response = app
        .send(
            Method::PUT,
            "/v1/rollouts/r/enrollments/alice",
            Some(BACKEND_TOKEN),
            None,
        )
        .await;
    assert_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    )
    .await;

    // Nothing half-happened, and deciding goes on from memory.
    let current = app.get_json("/v1/rollouts/r", READ_TOKEN).await;
    assert_eq!(
        (current["version"].as_u64(), current["percentage"].as_f64()),
        (Some(1), Some(100.0))
    );
    assert_error(
        app.get("/v1/rollouts/s", READ_TOKEN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let d = app
        .decide(json!({"rollout": "r", "user_key": "alice"}))
        .await;
    assert_eq!(
        (d["flow"].as_str(), d["reason"].as_str()),
        (Some("stytch"), Some("percentage"))
    );

    // Reads (from the open database) say nothing about whether the disk takes writes: the
    // gauge stays down until a save succeeds again.
    app.get_json("/v1/rollouts/r/history", READ_TOKEN).await;
    app.get_json("/v1/audit", READ_TOKEN).await;
    let samples = app.metrics().await;
    assert_eq!(metric(&samples, "switchyard_store_up", &[]), Some(0.0));
    // Each failed save is counted once, by the store, under its own operation.
    let errors = |op: &str| metric(&samples, "switchyard_store_errors_total", &[("op", op)]);
    assert_eq!(errors("commit"), Some(2.0), "the PATCH and the create");
    assert_eq!(errors("enroll"), Some(1.0));
    for op in ["update", "create", "get", "history", "audit"] {
        assert!(
            matches!(errors(op), None | Some(0.0)),
            "{op}: {:?}",
            errors(op)
        );
    }

    // Once the store can be written again, writes succeed and the store is up.
    std::fs::remove_file(&folder).unwrap();
    app.patch_rollout("r", json!({"percentage": 0})).await;
    let samples = app.metrics().await;
    assert_eq!(metric(&samples, "switchyard_store_up", &[]), Some(1.0));
    let app = app.restart().await;
    let current = app.get_json("/v1/rollouts/r", READ_TOKEN).await;
    assert_eq!(
        (current["version"].as_u64(), current["percentage"].as_f64()),
        (Some(2), Some(0.0))
    );
}
