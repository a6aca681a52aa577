//! SPEC §8: decide classifies the session a request carries and says what to do with it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;

fn jwt(iss: &str) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(json!({"iss": iss, "sub": "user-1"}).to_string())
    )
}

async fn session_app() -> TestApp {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    settings.stytch.project_id = Some("project-live-abc".into());
    settings.stytch.issuers = vec!["https://login.example.com".into()];
    settings.legacy.issuers = vec!["https://auth.example.com".into()];
    settings.legacy.opaque_tokens = true;
    let app = spawn_with(settings, dir).await;
    for (key, percentage, policy) in [
        ("stytch-reject", 100.0, "reject"),
        ("stytch-honor", 100.0, "honor"),
        ("stytch-migrate", 100.0, "migrate"),
        ("legacy-migrate", 0.0, "migrate"),
    ] {
        let mut body = rollout(key, percentage, json!([]));
        body["legacy_sessions"] = json!(policy);
        app.create_rollout(body).await;
    }
    app
}

async fn session_of(app: &TestApp, rollout: &str, token: Option<&str>) -> (String, String) {
    let mut request = json!({"rollout": rollout, "user_key": "u"});
    if let Some(t) = token {
        request["session_token"] = json!(t);
    }
    let d: Value = app.decide(request).await;
    (
        d["session"]["source"].as_str().unwrap().to_string(),
        d["session"]["action"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn session_tokens_are_classified_by_issuer() {
    let app = session_app().await;
    let stytch = jwt("stytch.com/project-live-abc");
    let custom = jwt("https://login.example.com");
    let legacy = jwt("https://auth.example.com");
    let foreign = jwt("stytch.com/project-test-abc");
    let unknown = jwt("https://elsewhere.example");
    for (token, source) in [
        (None, "none"),
        (Some(""), "none"),
        (Some(stytch.as_str()), "stytch"),
        (Some(custom.as_str()), "stytch"),
        (Some(legacy.as_str()), "legacy"),
        (Some("an-opaque-session-id"), "legacy"),
        (Some(foreign.as_str()), "foreign"),
        (Some(unknown.as_str()), "unknown"),
    ] {
        assert_eq!(
            session_of(&app, "stytch-reject", token).await.0,
            source,
            "{token:?}"
        );
    }
}

#[tokio::test]
async fn the_action_follows_the_table_of_section_8() {
    let app = session_app().await;
    let stytch = jwt("stytch.com/project-live-abc");
    let legacy = jwt("https://auth.example.com");
    let foreign = jwt("stytch.com/project-test-abc");
    let unknown = jwt("https://elsewhere.example");
    let cases: [(&str, Option<&str>, &str); 14] = [
        ("stytch-reject", Some(&stytch), "validate_stytch"),
        ("stytch-reject", Some(&legacy), "login_stytch"),
        ("stytch-honor", Some(&legacy), "validate_legacy"),
        ("stytch-migrate", Some(&legacy), "migrate_to_stytch"),
        ("stytch-migrate", Some("opaque"), "migrate_to_stytch"),
        ("stytch-reject", None, "login_stytch"),
        ("stytch-honor", Some(&unknown), "login_stytch"),
        ("stytch-migrate", Some(&foreign), "login_stytch"),
        ("legacy-migrate", Some(&stytch), "validate_stytch"),
        ("legacy-migrate", Some(&legacy), "validate_legacy"),
        ("legacy-migrate", Some("opaque"), "validate_legacy"),
        ("legacy-migrate", None, "login_legacy"),
        ("legacy-migrate", Some(&unknown), "login_legacy"),
        ("legacy-migrate", Some(&foreign), "login_legacy"),
    ];
    for (rollout, token, action) in cases {
        assert_eq!(
            session_of(&app, rollout, token).await.1,
            action,
            "{rollout} {token:?}"
        );
    }
}

#[tokio::test]
async fn malformed_session_tokens_are_classified_never_an_error() {
    let app = session_app().await;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
    for token in [
        format!("{header}.!!!.x"),
        format!("{header}.{}.x", URL_SAFE_NO_PAD.encode("not json")),
        format!(
            "{header}.{}.x",
            URL_SAFE_NO_PAD.encode(r#"{"sub":"no issuer"}"#)
        ),
        "a.b.c".to_string(),
        "x".repeat(500),
    ] {
        let (source, _) = session_of(&app, "stytch-reject", Some(&token)).await;
        assert!(
            ["unknown", "legacy"].contains(&source.as_str()),
            "{token}: {source}"
        );
    }
}
