//! SPEC §3: a forged, expired or foreign cookie is ignored (decide still answers 200) and
//! counted in `switchyard_cookies_rejected_total{rollout,reason}`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const REJECTED: &str = "switchyard_cookies_rejected_total";

async fn rejected(app: &TestApp, rollout: &str, reason: &str) -> f64 {
    metric(
        &app.metrics().await,
        REJECTED,
        &[("rollout", rollout), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// Every rejection count of a rollout, in the order malformed, bad_signature, other_rollout,
/// other_epoch, expired.
async fn all_rejected(app: &TestApp, rollout: &str) -> [f64; 5] {
    let samples = app.metrics().await;
    [
        "malformed",
        "bad_signature",
        "other_rollout",
        "other_epoch",
        "expired",
    ]
    .map(|reason| {
        metric(
            &samples,
            REJECTED,
            &[("rollout", rollout), ("reason", reason)],
        )
        .unwrap_or(0.0)
    })
}

async fn decide_with(app: &TestApp, rollout: &str, cookies: Value) -> Value {
    app.decide(json!({"rollout": rollout, "device_id": "device-1", "cookies": cookies}))
        .await
}

/// Flips the sticky cookie's "sent to Stytch" flag without re-signing it.
fn tamper(value: &str) -> String {
    let mut parts: Vec<&str> = value.split('.').collect();
    let flag = parts.len() - 2;
    parts[flag] = if parts[flag] == "0" { "1" } else { "0" };
    parts.join(".")
}

/// Changes one character of the signature (keeping it valid base64url).
fn flip_signature_char(value: &str) -> String {
    let (payload, sig) = value.rsplit_once('.').unwrap();
    let mut chars: Vec<char> = sig.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    format!("{payload}.{}", chars.into_iter().collect::<String>())
}

#[tokio::test]
async fn a_valid_sticky_cookie_is_honoured_and_not_counted() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 100.0, json!([]))).await;
    let first = decide_with(&app, "r", json!({})).await;
    let cookie = first["set_cookie"]["value"].as_str().unwrap().to_string();
    app.patch_rollout("r", json!({"percentage": 0})).await;
    let d = decide_with(&app, "r", json!({"sy_r": cookie})).await;
    assert_eq!(d["reason"], "sticky_cookie");
    assert_eq!(all_rejected(&app, "r").await, [0.0; 5]);
}

#[tokio::test]
async fn a_tampered_sticky_cookie_is_ignored_and_counted_as_bad_signature() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 0.0, json!([]))).await;
    let first = decide_with(&app, "r", json!({})).await;
    assert_eq!(first["flow"], "legacy");
    let cookie = first["set_cookie"]["value"].as_str().unwrap().to_string();
    // Claiming to have been sent to Stytch does not make it so.
    let forged = tamper(&cookie);
    assert_ne!(forged, cookie);
    let d = decide_with(&app, "r", json!({"sy_r": forged})).await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(d["reason"], "percentage");
    assert!(d["set_cookie"].is_object(), "an invalid cookie is replaced");
    let d = decide_with(&app, "r", json!({"sy_r": flip_signature_char(&cookie)})).await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(all_rejected(&app, "r").await, [0.0, 2.0, 0.0, 0.0, 0.0]);
}

#[tokio::test]
async fn a_tampered_override_cookie_is_ignored_and_counted_as_bad_signature() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 0.0, json!([]))).await;
    let legacy = app.mint_override("r", "legacy", 3600).await;
    let forged = legacy.replacen(".legacy.", ".stytch.", 1);
    assert_ne!(forged, legacy);
    let d = decide_with(&app, "r", json!({"sy_override": forged})).await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(d["reason"], "percentage");
    assert_eq!(rejected(&app, "r", "bad_signature").await, 1.0);
}

#[tokio::test]
async fn an_expired_override_cookie_is_ignored_and_counted_as_expired() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 0.0, json!([]))).await;
    let short = app.mint_override("r", "stytch", 1).await;
    let long = app.mint_override("r", "stytch", 3600).await;
    // A cookie lives at least its ttl, to the whole second: 1 s may last up to 2 s.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let d = decide_with(&app, "r", json!({"sy_override": short})).await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(d["reason"], "percentage");
    assert_eq!(rejected(&app, "r", "expired").await, 1.0);
    let d = decide_with(&app, "r", json!({"sy_override": long})).await;
    assert_eq!(d["flow"], "stytch");
    assert_eq!(d["reason"], "override_cookie");
    assert_eq!(all_rejected(&app, "r").await, [0.0, 0.0, 0.0, 0.0, 1.0]);
}

#[tokio::test]
async fn a_cookie_of_another_rollout_is_ignored_and_counted_as_other_rollout() {
    let app = spawn_app().await;
    app.create_rollout(rollout("web", 100.0, json!([]))).await;
    app.create_rollout(rollout("mobile", 0.0, json!([]))).await;
    let web = decide_with(&app, "web", json!({})).await;
    let web_sticky = web["set_cookie"]["value"].as_str().unwrap().to_string();
    let web_override = app.mint_override("web", "stytch", 3600).await;

    // The web cookie sent under the mobile rollout's cookie name, and web's override cookie.
    let d = decide_with(&app, "mobile", json!({"sy_mobile": web_sticky})).await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(d["reason"], "percentage");
    let d = decide_with(&app, "mobile", json!({"sy_override": web_override})).await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(d["reason"], "percentage");
    assert_eq!(
        all_rejected(&app, "mobile").await,
        [0.0, 0.0, 2.0, 0.0, 0.0]
    );
    assert_eq!(all_rejected(&app, "web").await, [0.0; 5]);
}

#[tokio::test]
async fn a_cookie_of_another_epoch_is_ignored_and_counted_as_other_epoch() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 100.0, json!([]))).await;
    let first = decide_with(&app, "r", json!({})).await;
    let sticky = first["set_cookie"]["value"].as_str().unwrap().to_string();
    let over = app.mint_override("r", "stytch", 3600).await;
    app.patch_rollout("r", json!({"percentage": 0, "epoch": 2}))
        .await;
    let d = decide_with(&app, "r", json!({"sy_r": sticky, "sy_override": over})).await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(d["reason"], "percentage");
    assert_eq!(all_rejected(&app, "r").await, [0.0, 0.0, 0.0, 2.0, 0.0]);
}

#[tokio::test]
async fn garbage_cookies_are_ignored_and_counted_as_malformed() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 0.0, json!([]))).await;
    let long = "z".repeat(600);
    let garbage = [
        "",
        "garbage",
        "a.b",
        "s1.r.1.2.1.!!!!",
        "o1.r.1.stytch",
        long.as_str(),
        "🍪.🍪",
    ];
    for value in garbage {
        let d = decide_with(&app, "r", json!({"sy_r": value, "sy_override": value})).await;
        assert_eq!(d["flow"], "legacy", "{value}");
        assert_eq!(d["reason"], "percentage", "{value}");
    }
    let counted = all_rejected(&app, "r").await;
    assert_eq!(counted, [2.0 * garbage.len() as f64, 0.0, 0.0, 0.0, 0.0]);
}

#[tokio::test]
async fn a_sticky_cookie_is_not_an_override_cookie_nor_the_other_way_round() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 100.0, json!([]))).await;
    let first = decide_with(&app, "r", json!({})).await;
    let sticky = first["set_cookie"]["value"].as_str().unwrap().to_string();
    let over = app.mint_override("r", "stytch", 3600).await;
    app.patch_rollout("r", json!({"percentage": 0})).await;
    let d = decide_with(&app, "r", json!({"sy_override": sticky, "sy_r": over})).await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(d["reason"], "percentage");
    assert_eq!(rejected(&app, "r", "malformed").await, 2.0);
}

#[tokio::test]
async fn a_cookie_signed_with_another_secret_is_counted_as_bad_signature() {
    // The same rollout on two installations with different cookie secrets.
    let one = spawn_app().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    settings.cookies.secret = Some("another-secret-for-another-installation".to_string().into());
    let two = spawn_with(settings, dir).await;
    for app in [&one, &two] {
        app.create_rollout(rollout("r", 100.0, json!([]))).await;
    }
    let first = decide_with(&one, "r", json!({})).await;
    let sticky = first["set_cookie"]["value"].as_str().unwrap().to_string();
    let over = one.mint_override("r", "stytch", 3600).await;
    two.patch_rollout("r", json!({"percentage": 0})).await;
    let d = decide_with(&two, "r", json!({"sy_r": sticky, "sy_override": over})).await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(all_rejected(&two, "r").await, [0.0, 2.0, 0.0, 0.0, 0.0]);
}
