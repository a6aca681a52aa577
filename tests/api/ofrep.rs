//! OpenFeature remote evaluation (SPEC §10) at the protocol level: each evaluation says what
//! `POST /v1/decide` says for the same input, errors have OFREP's codes, the bulk answer's
//! `ETag` follows the answer, and a decision is counted once. (The real SDKs are run against
//! the service by tests/clients/run.sh.)

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const SINGLE: &str = "/ofrep/v1/evaluate/flags";

impl TestApp {
    /// An OFREP request with the decide token as a bearer token and extra headers.
    async fn ofrep(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Response {
        let body = serde_json::to_vec(body).unwrap();
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.raw(Method::POST, path, Some(DECIDE_TOKEN), &all, Some(body))
            .await
    }

    async fn evaluate(&self, key: &str, context: Value) -> (StatusCode, Value) {
        let response = self
            .ofrep(
                &format!("{SINGLE}/{key}"),
                &json!({"context": context}),
                &[],
            )
            .await;
        let status = response.status();
        (status, response.json().await.expect("JSON"))
    }
}

/// The decide request a context stands for (SPEC §10): other context members are ignored.
fn decide_body(key: &str, context: &Value) -> Value {
    let mut body = context.as_object().unwrap().clone();
    body.remove("extra");
    if let Some(user) = body.remove("targetingKey") {
        body.insert("user_key".into(), user);
    }
    body.insert("rollout".into(), json!(key));
    Value::Object(body)
}

/// The OFREP evaluation of a decide answer.
fn evaluation_of(decided: &Value) -> Value {
    let reason = match decided["reason"].as_str().unwrap() {
        "disabled" => "DISABLED",
        "percentage" => "SPLIT",
        _ => "TARGETING_MATCH",
    };
    let mut metadata = json!({
        "reason": decided["reason"], "bucket": decided["bucket"], "version": decided["version"],
        "session_action": decided["session"]["action"],
    });
    if !decided["rule"].is_null() {
        metadata["rule"] = decided["rule"].clone();
    }
    if let Some(cookie) = decided["set_cookie"].as_object() {
        metadata["set_cookie_name"] = cookie["name"].clone();
        metadata["set_cookie_value"] = cookie["value"].clone();
        metadata["set_cookie_max_age"] = cookie["max_age_seconds"].clone();
    }
    json!({"key": decided["rollout"], "value": decided["flow"], "variant": decided["flow"],
           "reason": reason, "metadata": metadata})
}

#[tokio::test]
async fn an_evaluation_says_what_decide_says_for_the_same_input_at_every_step() {
    let app = spawn_app().await;
    let key = "web";
    app.create_rollout(rollout(
        key,
        30.0,
        json!([{"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"},
               {"id": "old-ios", "when": {"platforms": ["ios"], "app_version": "<5.2.0"}, "then": "legacy"}]),
    ))
    .await;
    assert_eq!(
        app.enroll(key, "enrolled@example.com").await,
        StatusCode::CREATED
    );
    let tester = app.mint_override(key, "stytch", 3600).await;
    let first = app
        .decide(json!({"rollout": key, "device_id": "d-1"}))
        .await;
    let sticky = first["set_cookie"]["value"].as_str().unwrap().to_string();

    let contexts = [
        json!({"targetingKey": "alice", "ip": "203.0.113.9", "extra": {"nested": [1, 2]}}),
        json!({"targetingKey": "bob", "platform": "ios", "app_version": "5.1.0", "country": "GB"}),
        json!({"targetingKey": "enrolled@example.com", "session_token": "opaque"}),
        json!({"targetingKey": "carol", "cookies": {"sy_override": tester}}),
        json!({"device_id": "d-1", "cookies": {"sy_web": sticky}}),
        json!({"targetingKey": "dave", "ip": "2001:db8::7", "country": "US"}),
    ];
    let mut reasons = Vec::new();
    for context in &contexts {
        let (status, evaluation) = app.evaluate(key, context.clone()).await;
        let decided = app.decide(decide_body(key, context)).await;
        assert_eq!(status, StatusCode::OK, "{context}: {evaluation}");
        assert_eq!(evaluation, evaluation_of(&decided), "{context}");
        reasons.push(decided["reason"].as_str().unwrap().to_string());
    }
    for step in ["rule", "enrolled", "override_cookie", "percentage"] {
        assert!(reasons.iter().any(|r| r == step), "{step} in {reasons:?}");
    }

    app.patch_rollout(key, json!({"enabled": false})).await;
    let (_, evaluation) = app.evaluate(key, contexts[0].clone()).await;
    assert_eq!(evaluation["reason"], "DISABLED");
    assert_eq!(evaluation["value"], "legacy");
    assert_eq!(evaluation["metadata"]["version"], 2);
}

#[tokio::test]
async fn errors_have_ofrep_codes_and_name_the_flag() {
    let app = spawn_app().await;
    let path = format!("{SINGLE}/stytch-login");
    let cases: [(&[u8], StatusCode, &str, &str); 8] = [
        (
            br#"{"context": {"targetingKey": "a", "ip": "10.0.0.300"}}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_CONTEXT",
            "context.ip",
        ),
        (
            br#"{"context": {"targetingKey": "a", "country": "Britain"}}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_CONTEXT",
            "context.country",
        ),
        (
            br#"{"context": {"targetingKey": 7}}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_CONTEXT",
            "context.targetingKey",
        ),
        (
            br#"{"context": {"targetingKey": "a", "cookies": ["x"]}}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_CONTEXT",
            "context.cookies",
        ),
        (
            br#"{"context": {"country": "GB"}}"#,
            StatusCode::BAD_REQUEST,
            "TARGETING_KEY_MISSING",
            "targetingKey",
        ),
        (
            br#"{}"#,
            StatusCode::BAD_REQUEST,
            "TARGETING_KEY_MISSING",
            "targetingKey",
        ),
        (
            br#"{"context": "alice"}"#,
            StatusCode::BAD_REQUEST,
            "PARSE_ERROR",
            "context",
        ),
        (
            br#"{"context": {"#,
            StatusCode::BAD_REQUEST,
            "PARSE_ERROR",
            "JSON",
        ),
    ];
    for (body, status, code, mentions) in cases {
        let text = String::from_utf8_lossy(body);
        for (path, key) in [(path.as_str(), Some("stytch-login")), (SINGLE, None)] {
            let response = app
                .raw(
                    Method::POST,
                    path,
                    Some(DECIDE_TOKEN),
                    &[("content-type", "application/json")],
                    Some(body.to_vec()),
                )
                .await;
            assert_eq!(response.status(), status, "{path} {text}");
            let failure: Value = response.json().await.unwrap();
            assert_eq!(failure["errorCode"], code, "{path} {text}: {failure}");
            assert_eq!(
                failure.get("key").and_then(Value::as_str),
                key,
                "{path} {text}: {failure}"
            );
            let details = failure["errorDetails"].as_str().unwrap();
            assert!(details.contains(mentions), "{path} {text}: {failure}");
        }
    }

    let (status, failure) = app
        .evaluate("no-such-rollout", json!({"targetingKey": "a"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        failure,
        json!({"key": "no-such-rollout", "errorCode": "FLAG_NOT_FOUND",
               "errorDetails": "flag 'no-such-rollout' does not exist (flag keys are rollout keys)"})
    );
}

#[tokio::test]
async fn the_token_comes_as_a_bearer_token_or_an_api_key_with_the_decide_scope() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&json!({"context": {"targetingKey": "a"}})).unwrap();
    let json = ("content-type", "application/json");
    for path in [format!("{SINGLE}/stytch-login"), SINGLE.to_string()] {
        let send = |token: Option<&'static str>, headers: Vec<(&'static str, &'static str)>| {
            let (app, path, body) = (&app, path.clone(), body.clone());
            async move {
                app.raw(Method::POST, &path, token, &headers, Some(body))
                    .await
            }
        };
        assert_eq!(
            send(None, vec![json, ("x-api-key", DECIDE_TOKEN)])
                .await
                .status(),
            StatusCode::OK,
            "{path}"
        );
        assert_eq!(
            send(Some(DECIDE_TOKEN), vec![json]).await.status(),
            StatusCode::OK,
            "{path}"
        );
        assert_error(
            send(None, vec![json]).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
        assert_error(
            send(None, vec![json, ("x-api-key", "wrong")]).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
        assert_error(
            send(None, vec![json, ("x-api-key", READ_TOKEN)]).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_error(
            send(Some(READ_TOKEN), vec![json]).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        // Not JSON: the SPEC §4 answer (OFREP defines no body for it).
        assert_error(
            send(Some(DECIDE_TOKEN), vec![("content-type", "text/plain")]).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
}

/// A bulk evaluation for alice in GB: status, ETag and body.
async fn bulk(app: &TestApp, if_none_match: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    let context = json!({"context": {"targetingKey": "alice", "country": "GB"}});
    let headers: Vec<(&str, &str)> = if_none_match
        .map(|t| ("if-none-match", t))
        .into_iter()
        .collect();
    let response = app.ofrep(SINGLE, &context, &headers).await;
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_string();
    (status, etag, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn the_bulk_answer_is_every_rollout_as_decide_says_with_an_etag_that_follows_it() {
    let app = spawn_app().await;
    app.create_rollout(rollout("web", 0.0, json!([]))).await;
    let (status, etag, body) = bulk(&app, None).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let flags = answer["flags"].as_array().unwrap();
    let keys: Vec<_> = flags.iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["stytch-login", "web"]);
    for flag in flags {
        let key = flag["key"].as_str().unwrap();
        let decided = app
            .decide(json!({"rollout": key, "user_key": "alice", "country": "GB"}))
            .await;
        assert_eq!(flag, &evaluation_of(&decided), "{key}");
    }

    // The same request again: the same ETag; sent back, 304 with the ETag and no body.
    assert_eq!(bulk(&app, None).await.1, etag);
    let (status, same, body) = bulk(&app, Some(&etag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(same, etag);
    assert!(body.is_empty());
    assert_eq!(bulk(&app, Some("\"other\"")).await.0, StatusCode::OK);

    // Each change of the answer gives a new ETag, which is then stable: a new version of one
    // rollout, an enrollment (no new version), a new rollout.
    let mut seen = vec![etag];
    for change in 0..3 {
        match change {
            0 => drop(app.patch_rollout("web", json!({"percentage": 100})).await),
            1 => assert_eq!(
                app.enroll("stytch-login", "alice").await,
                StatusCode::CREATED
            ),
            _ => drop(app.create_rollout(rollout("mobile", 50.0, json!([]))).await),
        }
        let (status, now, _) = bulk(&app, Some(seen.last().unwrap())).await;
        assert_eq!(status, StatusCode::OK, "change {change}");
        assert!(!seen.contains(&now), "change {change}: {now} in {seen:?}");
        assert_eq!(
            bulk(&app, Some(&now)).await.0,
            StatusCode::NOT_MODIFIED,
            "change {change}"
        );
        seen.push(now);
    }
}

#[tokio::test]
async fn each_evaluation_is_one_decision_in_the_metrics() {
    let app = spawn_app().await;
    app.create_rollout(rollout("web", 100.0, json!([]))).await;
    let decisions = |samples: &[Sample], key: &str| {
        metric(
            samples,
            "switchyard_decisions_total",
            &[
                ("rollout", key),
                ("flow", "stytch"),
                ("reason", "percentage"),
            ],
        )
        .unwrap_or(0.0)
    };
    let before = app.metrics().await;
    assert_eq!(
        app.evaluate("web", json!({"targetingKey": "a"})).await.0,
        StatusCode::OK
    );
    assert_eq!(bulk(&app, None).await.0, StatusCode::OK);
    let after = app.metrics().await;
    assert_eq!(decisions(&after, "web") - decisions(&before, "web"), 2.0);
    for (route, status) in [
        ("/ofrep/v1/evaluate/flags/{key}", "200"),
        ("/ofrep/v1/evaluate/flags", "200"),
    ] {
        let count = metric(
            &after,
            "switchyard_http_requests_total",
            &[("route", route), ("status", status)],
        );
        assert_eq!(count, Some(1.0), "{route}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_both_routes_with_both_token_schemes() {
    let app = spawn_app().await;
    let doc: Value = app
        .raw(Method::GET, "/openapi.json", None, &[], None)
        .await
        .json()
        .await
        .unwrap();
    for path in ["/ofrep/v1/evaluate/flags/{key}", "/ofrep/v1/evaluate/flags"] {
        let post = &doc["paths"][path]["post"];
        assert_eq!(post["x-required-scope"], "decide", "{path}");
        assert_eq!(
            post["security"],
            json!([{"bearerAuth": ["decide"]}, {"apiKeyAuth": ["decide"]}]),
            "{path}"
        );
        for status in ["200", "400", "401", "403"] {
            assert!(post["responses"][status].is_object(), "{path} {status}");
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["apiKeyAuth"]["name"],
        "X-API-Key"
    );
    assert_eq!(
        doc["paths"]["/ofrep/v1/evaluate/flags"]["post"]["responses"]["304"]["description"]
            .as_str()
            .map(|d| d.starts_with("Not modified")),
        Some(true)
    );
}
