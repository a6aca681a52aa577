//! SPEC §2 and §3: the evaluation order step by step (each step beats the later ones), sticky
//! cookies, and the bucketing formula.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// The sticky cookie a decision asks to set, as `(name, value)`.
fn sticky_cookie(decision: &Value) -> (String, String) {
    let set = &decision["set_cookie"];
    assert!(set.is_object(), "expected a cookie to set: {decision}");
    (
        set["name"].as_str().unwrap().to_string(),
        set["value"].as_str().unwrap().to_string(),
    )
}

fn with_cookies(mut request: Value, cookies: &[(&str, &str)]) -> Value {
    let jar: serde_json::Map<String, Value> = cookies
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    request["cookies"] = Value::Object(jar);
    request
}

/// A user key (`prefix-N`) whose bucket under `salt` satisfies `wanted`.
fn key_where(salt: &str, prefix: &str, wanted: impl Fn(u16) -> bool) -> String {
    (0..10_000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|k| wanted(bucket_of(salt, k)))
        .expect("some key has such a bucket")
}

#[tokio::test]
async fn the_kill_switch_beats_an_override_cookie_a_forcing_rule_an_enrollment_and_a_sticky_cookie()
{
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "r",
        100.0,
        json!([{"id": "testers", "when": {"user_keys": ["alice"]}, "then": "stytch"}]),
    ))
    .await;
    assert_eq!(app.enroll("r", "alice").await, StatusCode::CREATED);
    let first = app.decide(json!({"rollout": "r", "user_key": "bob"})).await;
    assert_eq!(first["flow"], "stytch");
    let (sticky_name, sticky_value) = sticky_cookie(&first);
    let override_value = app.mint_override("r", "stytch", 3600).await;

    app.patch_rollout("r", json!({"enabled": false})).await;
    let requests = [
        with_cookies(
            json!({"rollout": "r", "user_key": "alice"}),
            &[
                ("sy_override", &override_value),
                (&sticky_name, &sticky_value),
            ],
        ),
        with_cookies(
            json!({"rollout": "r", "user_key": "bob"}),
            &[("sy_override", &override_value)],
        ),
        json!({"rollout": "r", "user_key": "alice"}),
        with_cookies(
            json!({"rollout": "r", "user_key": "bob"}),
            &[(&sticky_name, &sticky_value)],
        ),
        json!({"rollout": "r", "user_key": "carol"}),
    ];
    for request in requests {
        let d = app.decide(request.clone()).await;
        assert_eq!(d["flow"], "legacy", "{request} → {d}");
        assert_eq!(d["reason"], "disabled", "{request} → {d}");
        assert_eq!(d["rule"], Value::Null);
        assert_eq!(d["set_cookie"], Value::Null);
    }
}

#[tokio::test]
async fn a_valid_override_cookie_beats_a_forcing_rule_an_enrollment_and_a_sticky_cookie() {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "r",
        100.0,
        json!([
            {"id": "ios-legacy", "when": {"platforms": ["ios"]}, "then": "legacy"},
            {"id": "web-stytch", "when": {"platforms": ["web"]}, "then": "stytch"},
        ]),
    ))
    .await;
    let to_stytch = app.mint_override("r", "stytch", 3600).await;
    let to_legacy = app.mint_override("r", "legacy", 3600).await;

    let d = app
        .decide(with_cookies(
            json!({"rollout": "r", "user_key": "u", "platform": "ios"}),
            &[("sy_override", &to_stytch)],
        ))
        .await;
    assert_eq!(
        (d["flow"].as_str(), d["reason"].as_str()),
        (Some("stytch"), Some("override_cookie"))
    );
    assert_eq!(d["rule"], Value::Null);
    let d = app
        .decide(with_cookies(
            json!({"rollout": "r", "user_key": "u", "platform": "web"}),
            &[("sy_override", &to_legacy)],
        ))
        .await;
    assert_eq!(
        (d["flow"].as_str(), d["reason"].as_str()),
        (Some("legacy"), Some("override_cookie"))
    );

    // ...and the later steps: enrollment and a sticky cookie that says stytch.
    let sticky = app.decide(json!({"rollout": "r", "user_key": "v"})).await;
    let (name, value) = sticky_cookie(&sticky);
    assert_eq!(app.enroll("r", "v").await, StatusCode::CREATED);
    let d = app
        .decide(with_cookies(
            json!({"rollout": "r", "user_key": "v"}),
            &[("sy_override", &to_legacy), (&name, &value)],
        ))
        .await;
    assert_eq!(
        (d["flow"].as_str(), d["reason"].as_str()),
        (Some("legacy"), Some("override_cookie"))
    );
}

#[tokio::test]
async fn a_forcing_rule_beats_an_enrollment_and_a_sticky_cookie() {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "r",
        100.0,
        json!([{"id": "ios-legacy", "when": {"platforms": ["ios"]}, "then": "legacy"}]),
    ))
    .await;
    let first = app
        .decide(json!({"rollout": "r", "user_key": "alice"}))
        .await;
    assert_eq!(first["flow"], "stytch");
    let (name, value) = sticky_cookie(&first);
    assert_eq!(app.enroll("r", "alice").await, StatusCode::CREATED);
    let d = app
        .decide(with_cookies(
            json!({"rollout": "r", "user_key": "alice", "platform": "ios"}),
            &[(&name, &value)],
        ))
        .await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(d["reason"], "rule");
    assert_eq!(d["rule"], "ios-legacy");
    // Without the rule's condition, the enrollment decides.
    let d = app
        .decide(with_cookies(
            json!({"rollout": "r", "user_key": "alice", "platform": "web"}),
            &[(&name, &value)],
        ))
        .await;
    assert_eq!(d["reason"], "enrolled");
}

#[tokio::test]
async fn an_enrolled_user_goes_to_stytch_at_zero_percent_until_unenrolled() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 0.0, json!([]))).await;
    let before = app
        .decide(json!({"rollout": "r", "user_key": "alice"}))
        .await;
    assert_eq!(before["flow"], "legacy");
    let (name, legacy_cookie) = sticky_cookie(&before);

    assert_eq!(app.enroll("r", "alice").await, StatusCode::CREATED);
    // On any device, with or without a legacy sticky cookie: the enrollment beats it.
    for request in [
        json!({"rollout": "r", "user_key": "alice"}),
        json!({"rollout": "r", "user_key": "alice", "device_id": "new-phone"}),
        with_cookies(
            json!({"rollout": "r", "user_key": "alice"}),
            &[(&name, &legacy_cookie)],
        ),
    ] {
        let d = app.decide(request).await;
        assert_eq!(d["flow"], "stytch", "{d}");
        assert_eq!(d["reason"], "enrolled", "{d}");
    }
    // Only the user key counts, not a device id that looks like it.
    let d = app
        .decide(json!({"rollout": "r", "device_id": "alice"}))
        .await;
    assert_eq!(d["flow"], "legacy");
    let other = app.decide(json!({"rollout": "r", "user_key": "bob"})).await;
    assert_eq!(other["flow"], "legacy");

    let response = app
        .send(
            reqwest::Method::DELETE,
            "/v1/rollouts/r/enrollments/alice",
            Some(BACKEND_TOKEN),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let after = app
        .decide(json!({"rollout": "r", "user_key": "alice"}))
        .await;
    assert_eq!(after["flow"], "legacy");
    assert_eq!(after["reason"], "percentage");
}

#[tokio::test]
async fn a_device_sent_to_stytch_keeps_stytch_after_the_percentage_is_lowered() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 100.0, json!([]))).await;
    let first = app
        .decide(json!({"rollout": "r", "device_id": "d-1"}))
        .await;
    assert_eq!(first["flow"], "stytch");
    assert_eq!(first["reason"], "percentage");
    let (name, value) = sticky_cookie(&first);
    assert_eq!(name, "sy_r");
    assert_eq!(first["set_cookie"]["max_age_seconds"], 2_592_000);

    app.patch_rollout("r", json!({"percentage": 0})).await;
    let with = app
        .decide(with_cookies(
            json!({"rollout": "r", "device_id": "d-1"}),
            &[(&name, &value)],
        ))
        .await;
    assert_eq!(with["flow"], "stytch");
    assert_eq!(with["reason"], "sticky_cookie");
    assert_eq!(with["set_cookie"], Value::Null);
    // The cookie is what keeps it there, whatever key is sent alongside.
    let after_login = app
        .decide(with_cookies(
            json!({"rollout": "r", "user_key": "alice"}),
            &[(&name, &value)],
        ))
        .await;
    assert_eq!(after_login["reason"], "sticky_cookie");
    let without = app
        .decide(json!({"rollout": "r", "device_id": "d-1"}))
        .await;
    assert_eq!(without["flow"], "legacy");
    assert_eq!(without["reason"], "percentage");
}

#[tokio::test]
async fn the_sticky_cookies_bucket_stands_in_for_the_key_when_the_key_changes() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 50.0, json!([]))).await;
    let salt = "salt-r";

    // Before login the device is legacy; the user key alone would be stytch.
    let device = key_where(salt, "device", |b| b >= 5000);
    let user = key_where(salt, "user", |b| b < 5000);
    let before = app
        .decide(json!({"rollout": "r", "device_id": device}))
        .await;
    assert_eq!(before["flow"], "legacy");
    assert_eq!(before["bucket"], bucket_of(salt, &device));
    let (name, value) = sticky_cookie(&before);
    let after = app
        .decide(with_cookies(
            json!({"rollout": "r", "user_key": user, "device_id": device}),
            &[(&name, &value)],
        ))
        .await;
    assert_eq!(
        after["flow"], "legacy",
        "not flipped in the middle of a login"
    );
    assert_eq!(after["reason"], "percentage");
    assert_eq!(after["bucket"], bucket_of(salt, &device));
    assert_eq!(after["set_cookie"], Value::Null);
    let no_cookie = app.decide(json!({"rollout": "r", "user_key": user})).await;
    assert_eq!(no_cookie["flow"], "stytch");

    // The other way round: a device sent to Stytch stays there when a legacy user logs in.
    let device = key_where(salt, "device", |b| b < 5000);
    let user = key_where(salt, "user", |b| b >= 5000);
    let before = app
        .decide(json!({"rollout": "r", "device_id": device}))
        .await;
    assert_eq!(before["flow"], "stytch");
    let (name, value) = sticky_cookie(&before);
    let after = app
        .decide(with_cookies(
            json!({"rollout": "r", "user_key": user}),
            &[(&name, &value)],
        ))
        .await;
    assert_eq!(after["flow"], "stytch");
    assert_eq!(after["reason"], "sticky_cookie");
    assert_eq!(after["bucket"], bucket_of(salt, &device));
}

#[tokio::test]
async fn ramping_up_moves_a_legacy_cookie_forward_by_the_cookies_bucket() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 10.0, json!([]))).await;
    let salt = "salt-r";
    let device = key_where(salt, "device", |b| (3000..4000).contains(&b));
    let user = key_where(salt, "user", |b| b >= 9000);
    let first = app
        .decide(json!({"rollout": "r", "device_id": device}))
        .await;
    assert_eq!(first["flow"], "legacy");
    let (name, legacy_cookie) = sticky_cookie(&first);

    app.patch_rollout("r", json!({"percentage": 40})).await;
    let ramped = app
        .decide(with_cookies(
            json!({"rollout": "r", "user_key": user}),
            &[(&name, &legacy_cookie)],
        ))
        .await;
    assert_eq!(ramped["flow"], "stytch", "the cookie's bucket < 40 %");
    assert_eq!(ramped["reason"], "percentage");
    let (_, stytch_cookie) = sticky_cookie(&ramped);
    assert_ne!(stytch_cookie, legacy_cookie);

    app.patch_rollout("r", json!({"percentage": 0})).await;
    let kept = app
        .decide(with_cookies(
            json!({"rollout": "r", "user_key": user}),
            &[(&name, &stytch_cookie)],
        ))
        .await;
    assert_eq!(kept["flow"], "stytch");
    assert_eq!(kept["reason"], "sticky_cookie");
}

#[tokio::test]
async fn bumping_the_epoch_invalidates_old_sticky_cookies() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 100.0, json!([]))).await;
    let first = app.decide(json!({"rollout": "r", "device_id": "d"})).await;
    let (name, value) = sticky_cookie(&first);
    app.patch_rollout("r", json!({"percentage": 0})).await;
    let sticky = app
        .decide(with_cookies(
            json!({"rollout": "r", "device_id": "d"}),
            &[(&name, &value)],
        ))
        .await;
    assert_eq!(sticky["reason"], "sticky_cookie");

    let patched = app.patch_rollout("r", json!({"epoch": 2})).await;
    assert_eq!(patched["epoch"], 2);
    let fresh = app
        .decide(with_cookies(
            json!({"rollout": "r", "device_id": "d"}),
            &[(&name, &value)],
        ))
        .await;
    assert_eq!(fresh["flow"], "legacy");
    assert_eq!(fresh["reason"], "percentage");
    // The old cookie is invalid now, so a new one is issued.
    let (_, new_value) = sticky_cookie(&fresh);
    assert_ne!(new_value, value);
    let again = app
        .decide(with_cookies(
            json!({"rollout": "r", "device_id": "d"}),
            &[(&name, &new_value)],
        ))
        .await;
    assert_eq!(again["flow"], "legacy");
    assert_eq!(again["set_cookie"], Value::Null);
}

#[tokio::test]
async fn set_cookie_is_present_without_a_cookie_with_an_invalid_one_and_on_first_sending_to_stytch()
{
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 0.0, json!([]))).await;
    // No cookie: one is set, even for legacy.
    let none = app.decide(json!({"rollout": "r", "device_id": "d"})).await;
    assert_eq!(none["flow"], "legacy");
    let (name, legacy_cookie) = sticky_cookie(&none);
    // An invalid cookie: a new one is set.
    let invalid = app
        .decide(with_cookies(
            json!({"rollout": "r", "device_id": "d"}),
            &[(&name, "not-a-cookie")],
        ))
        .await;
    assert_eq!(invalid["flow"], "legacy");
    let (_, reissued) = sticky_cookie(&invalid);
    assert_eq!(
        reissued, legacy_cookie,
        "same bucket, same state, same signature"
    );
    // A valid legacy cookie that stays legacy: nothing to set.
    let stays = app
        .decide(with_cookies(
            json!({"rollout": "r", "device_id": "d"}),
            &[(&name, &legacy_cookie)],
        ))
        .await;
    assert_eq!(stays["flow"], "legacy");
    assert_eq!(stays["set_cookie"], Value::Null);
    // Sent to Stytch for the first time: a new cookie that remembers it.
    app.patch_rollout("r", json!({"percentage": 100})).await;
    let first_time = app
        .decide(with_cookies(
            json!({"rollout": "r", "device_id": "d"}),
            &[(&name, &legacy_cookie)],
        ))
        .await;
    assert_eq!(first_time["flow"], "stytch");
    let (_, stytch_cookie) = sticky_cookie(&first_time);
    assert_ne!(stytch_cookie, legacy_cookie);
    // Already in Stytch with a valid cookie: nothing to set.
    let again = app
        .decide(with_cookies(
            json!({"rollout": "r", "device_id": "d"}),
            &[(&name, &stytch_cookie)],
        ))
        .await;
    assert_eq!(again["reason"], "sticky_cookie");
    assert_eq!(again["set_cookie"], Value::Null);
}

#[tokio::test]
async fn set_cookie_is_null_when_sticky_is_disabled() {
    let app = spawn_app().await;
    let mut body = rollout("r", 100.0, json!([]));
    body["sticky"] = json!({"enabled": false, "cookie_name": "sy_r"});
    app.create_rollout(body).await;
    let d = app.decide(json!({"rollout": "r", "device_id": "d"})).await;
    assert_eq!(d["flow"], "stytch");
    assert_eq!(d["set_cookie"], Value::Null);
    app.patch_rollout("r", json!({"percentage": 0})).await;
    let d = app.decide(json!({"rollout": "r", "device_id": "d"})).await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(d["set_cookie"], Value::Null);

    // A cookie minted while sticky was on is not honoured once it is off.
    app.patch_rollout(
        "r",
        json!({"sticky": {"enabled": true, "cookie_name": "sy_r"}, "percentage": 100}),
    )
    .await;
    let d = app.decide(json!({"rollout": "r", "device_id": "d"})).await;
    let (name, value) = sticky_cookie(&d);
    app.patch_rollout(
        "r",
        json!({"sticky": {"enabled": false, "cookie_name": "sy_r"}, "percentage": 0}),
    )
    .await;
    let d = app
        .decide(with_cookies(
            json!({"rollout": "r", "device_id": "d"}),
            &[(&name, &value)],
        ))
        .await;
    assert_eq!(d["flow"], "legacy");
    assert_eq!(d["reason"], "percentage");
    assert_eq!(d["set_cookie"], Value::Null);
}

#[tokio::test]
async fn decisions_are_deterministic() {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "r",
        37.5,
        json!([{"id": "half-uk", "when": {"countries": ["GB"]}, "then": {"percentage": 50}}]),
    ))
    .await;
    for i in 0..50 {
        let request = json!({
            "rollout": "r", "user_key": format!("user-{i}"), "device_id": format!("d-{i}"),
            "ip": if i % 2 == 0 { "81.2.69.142" } else { "216.160.83.56" }, "platform": "web",
        });
        let first = app.decide(request.clone()).await;
        let second = app.decide(request).await;
        assert_eq!(first, second);
    }
}

#[tokio::test]
async fn the_bucket_is_the_spec_formula() {
    let app = spawn_app().await;
    let mut body = rollout("r", 0.0, json!([]));
    body["salt"] = json!("3f1c8a");
    app.create_rollout(body).await;
    let mut body = rollout("golden", 0.0, json!([]));
    body["salt"] = json!("salt-golden");
    app.create_rollout(body).await;

    // Golden vectors, computed with an independent XXH3 implementation (Python `xxhash`).
    let long_key = "k".repeat(300);
    let golden: [(&str, &str, u16); 6] = [
        ("r", "alice@example.com", 9074),
        ("r", "bob@example.com", 4029),
        ("r", "d-81f2", 8539),
        ("r", &long_key, 4637),
        ("golden", "user-1", 2989),
        ("golden", "ünïcödé@example.com", 728),
    ];
    for (rollout, key, bucket) in golden {
        let d = app
            .decide(json!({"rollout": rollout, "user_key": key}))
            .await;
        assert_eq!(d["bucket"], bucket, "{rollout} {key}");
        let by_device = app
            .decide(json!({"rollout": rollout, "device_id": key}))
            .await;
        assert_eq!(by_device["bucket"], bucket, "{rollout} {key} as device id");
    }

    // The user key wins over the device id; the formula holds for many keys.
    for i in 0..200 {
        let user = format!("user-{i}@example.com");
        let d = app
            .decide(json!({"rollout": "r", "user_key": user, "device_id": format!("dev-{i}")}))
            .await;
        assert_eq!(d["bucket"], bucket_of("3f1c8a", &user), "{user}");
    }

    // stytch ⇔ bucket < basis points, at the edges of two-decimal percentages.
    app.patch_rollout("r", json!({"percentage": 90.74})).await;
    let d = app
        .decide(json!({"rollout": "r", "user_key": "alice@example.com"}))
        .await;
    assert_eq!(d["flow"], "legacy", "bucket 9074 is not < 9074");
    app.patch_rollout("r", json!({"percentage": 90.75})).await;
    let d = app
        .decide(json!({"rollout": "r", "user_key": "alice@example.com"}))
        .await;
    assert_eq!(d["flow"], "stytch", "bucket 9074 < 9075");
}

#[tokio::test]
async fn raising_the_percentage_never_moves_a_user_back_to_legacy() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 0.0, json!([]))).await;
    let keys: Vec<String> = (0..300).map(|i| format!("user-{i}")).collect();
    let mut in_stytch = vec![false; keys.len()];
    let mut previous_count = 0;
    for percentage in [0.0, 1.5, 10.0, 25.0, 33.33, 50.0, 75.0, 99.99, 100.0] {
        app.patch_rollout("r", json!({"percentage": percentage}))
            .await;
        let mut count = 0;
        for (i, key) in keys.iter().enumerate() {
            let d = app.decide(json!({"rollout": "r", "user_key": key})).await;
            let stytch = d["flow"] == "stytch";
            assert!(
                stytch || !in_stytch[i],
                "{key} moved back to legacy at {percentage} %"
            );
            in_stytch[i] = stytch;
            count += usize::from(stytch);
        }
        assert!(count >= previous_count);
        previous_count = count;
    }
    assert_eq!(previous_count, keys.len());
}

#[tokio::test]
async fn the_share_of_stytch_is_within_noise_of_the_percentage() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 25.0, json!([]))).await;
    let n = 2000;
    let mut stytch = 0;
    for i in 0..n {
        let d = app
            .decide(json!({"rollout": "r", "user_key": format!("user-{i}@example.com")}))
            .await;
        stytch += usize::from(d["flow"] == "stytch");
    }
    // Binomial standard deviation: sqrt(2000 · 0.25 · 0.75) ≈ 19.4; allow four of them.
    let expected = n / 4;
    assert!(
        stytch.abs_diff(expected) <= 78,
        "{stytch} of {n} in stytch at 25 %"
    );
}

#[tokio::test]
async fn two_rollouts_with_different_salts_bucket_independently() {
    let app = spawn_app().await;
    app.create_rollout(rollout("web", 50.0, json!([]))).await;
    app.create_rollout(rollout("mobile", 50.0, json!([]))).await;
    let n = 1000;
    let (mut both, mut same_bucket, mut web_count, mut mobile_count) = (0, 0, 0, 0);
    for i in 0..n {
        let key = format!("user-{i}");
        let web = app.decide(json!({"rollout": "web", "user_key": key})).await;
        let mobile = app
            .decide(json!({"rollout": "mobile", "user_key": key}))
            .await;
        let (w, m) = (web["flow"] == "stytch", mobile["flow"] == "stytch");
        web_count += usize::from(w);
        mobile_count += usize::from(m);
        both += usize::from(w && m);
        same_bucket += usize::from(web["bucket"] == mobile["bucket"]);
    }
    // Independent halves: about a quarter in both (sd ≈ 13.7), buckets rarely equal.
    assert!(web_count.abs_diff(n / 2) <= 70 && mobile_count.abs_diff(n / 2) <= 70);
    assert!(
        both.abs_diff(n / 4) <= 60,
        "{both} of {n} in stytch in both rollouts"
    );
    assert!(
        same_bucket <= 5,
        "{same_bucket} keys share a bucket across salts"
    );

    // Changing the salt on purpose reshuffles everyone.
    let before: Vec<Value> = buckets_of(&app, "web", 200).await;
    app.patch_rollout("web", json!({"salt": "a-new-salt"}))
        .await;
    let after: Vec<Value> = buckets_of(&app, "web", 200).await;
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(
        moved > 150,
        "only {moved} of 200 buckets changed with the salt"
    );
}

async fn buckets_of(app: &TestApp, rollout: &str, n: usize) -> Vec<Value> {
    let mut buckets = Vec::with_capacity(n);
    for i in 0..n {
        let d = app
            .decide(json!({"rollout": rollout, "user_key": format!("user-{i}")}))
            .await;
        buckets.push(d["bucket"].clone());
    }
    buckets
}

#[tokio::test]
async fn editing_a_rollout_keeps_its_salt_so_users_keep_their_buckets() {
    let app = spawn_app().await;
    let mut body = rollout("r", 30.0, json!([]));
    body.as_object_mut().unwrap().remove("salt");
    let created = app.create_rollout(body).await;
    let salt = created["salt"].as_str().unwrap().to_string();
    assert!(!salt.is_empty());
    let before = buckets_of(&app, "r", 50).await;
    app.patch_rollout("r", json!({"percentage": 31, "description": "edited"}))
        .await;
    let response = app
        .send(
            reqwest::Method::PUT,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&json!({"percentage": 32, "sticky": {"cookie_name": "sy_r"}})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let after = buckets_of(&app, "r", 50).await;
    assert_eq!(before, after);
    for (i, b) in after.iter().enumerate() {
        assert_eq!(*b, json!(bucket_of(&salt, &format!("user-{i}"))));
    }
}

#[tokio::test]
async fn two_replicas_with_the_same_rollout_decide_alike() {
    let (one, two) = (spawn_app().await, spawn_app().await);
    let body = rollout(
        "r",
        42.42,
        json!([{"id": "uk", "when": {"countries": ["GB"]}, "then": {"percentage": 80}}]),
    );
    one.create_rollout(body.clone()).await;
    two.create_rollout(body).await;
    for i in 0..100 {
        let request = json!({
            "rollout": "r", "device_id": format!("d-{i}"),
            "ip": if i % 3 == 0 { "81.2.69.142" } else { "89.160.20.112" },
        });
        let a = one.decide(request.clone()).await;
        let b = two.decide(request).await;
        assert_eq!(
            a, b,
            "the same inputs give the same answer, cookie included"
        );
        // Each replica honours the other's sticky cookie.
        let (name, value) = sticky_cookie(&a);
        let with = with_cookies(
            json!({"rollout": "r", "user_key": "someone"}),
            &[(&name, &value)],
        );
        let (a, b) = (one.decide(with.clone()).await, two.decide(with).await);
        assert_eq!(a, b);
        assert_ne!(a["flow"], Value::Null);
    }
}
