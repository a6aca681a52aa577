//! SPEC §4: the rollout administration API, enrollments, outcomes and operations endpoints.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

fn etag(response: &reqwest::Response) -> String {
    response.headers()["etag"].to_str().unwrap().to_string()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("an RFC 3339 time: {value}"))
}

async fn patch_with(
    app: &TestApp,
    key: &str,
    content_type: &str,
    patch: Value,
) -> reqwest::Response {
    app.raw(
        Method::PATCH,
        &format!("/v1/rollouts/{key}"),
        Some(ADMIN_TOKEN),
        &[("content-type", content_type)],
        Some(patch.to_string().into_bytes()),
    )
    .await
}

#[tokio::test]
async fn create_answers_201_with_location_etag_and_the_stored_rollout() {
    let app = spawn_app().await;
    let started = Utc::now();
    let response = app
        .post(
            "/v1/rollouts",
            ADMIN_TOKEN,
            &json!({
                "key": "web-login",
                "description": "Move web login to Stytch",
                "percentage": 25.0,
                "salt": "3f1c8a",
                "rules": [
                    {"id": "office", "when": {"ip_ranges": ["203.0.113.0/24", "2001:db8::/32"]}, "then": "stytch"},
                    {"id": "old-ios", "when": {"platforms": ["ios"], "app_version": "<5.2.0"}, "then": "legacy"},
                    {"id": "uk-half", "when": {"countries": ["GB"]}, "then": {"percentage": 50}},
                ],
                "sticky": {"enabled": true, "cookie_name": "sy_web", "max_age_seconds": 3600},
                "legacy_sessions": "migrate",
            }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/v1/rollouts/web-login");
    assert_eq!(etag(&response), "\"1\"");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["key"], "web-login");
    assert_eq!(body["description"], "Move web login to Stytch");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["percentage"], 25.0);
    assert_eq!(body["salt"], "3f1c8a");
    assert_eq!(body["rules"].as_array().unwrap().len(), 3);
    assert_eq!(body["rules"][2]["then"], json!({"percentage": 50.0}));
    assert_eq!(
        body["sticky"],
        json!({"enabled": true, "cookie_name": "sy_web", "max_age_seconds": 3600})
    );
    assert_eq!(body["epoch"], 1);
    assert_eq!(body["legacy_sessions"], "migrate");
    assert_eq!(body["version"], 1);
    assert_eq!(body["updated_by"], "admin-bot");
    assert!(time(&body["updated_at"]) >= started - chrono::Duration::seconds(1));

    // Defaults: enabled, 0 %, a random salt, sticky on, epoch 1, legacy sessions rejected.
    let mut minimal = json!({"key": "minimal", "sticky": {"cookie_name": "sy_min"}});
    let created = app.create_rollout(minimal.take()).await;
    assert_eq!(created["enabled"], true);
    assert_eq!(created["percentage"], 0.0);
    assert!(created["salt"].as_str().unwrap().len() >= 6);
    assert_eq!(created["sticky"]["enabled"], true);
    assert_eq!(created["epoch"], 1);
    assert_eq!(created["legacy_sessions"], "reject");
    let other = app
        .create_rollout(json!({"key": "minimal-2", "sticky": {"cookie_name": "sy_min2"}}))
        .await;
    assert_ne!(other["salt"], created["salt"], "salts are random");
}

#[tokio::test]
async fn get_answers_the_rollout_with_its_version_as_etag() {
    let app = spawn_app().await;
    let created = app.create_rollout(rollout("r", 10.0, json!([]))).await;
    let response = app.get("/v1/rollouts/r", READ_TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), "\"1\"");
    assert_eq!(response.json::<Value>().await.unwrap(), created);
    app.patch_rollout("r", json!({"percentage": 11})).await;
    let response = app.get("/v1/rollouts/r", ADMIN_TOKEN).await;
    assert_eq!(etag(&response), "\"2\"");
    assert_eq!(response.json::<Value>().await.unwrap()["version"], 2);
}

#[tokio::test]
async fn list_answers_every_rollout_sorted_by_key() {
    let app = spawn_app().await;
    for key in ["zeta", "alpha", "mid"] {
        app.create_rollout(rollout(key, 5.0, json!([]))).await;
    }
    let list = app.get_json("/v1/rollouts", READ_TOKEN).await;
    let keys: Vec<&str> = list["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["alpha", "mid", "stytch-login", "zeta"]);
    assert_eq!(list["rollouts"][0]["percentage"], 5.0);
}

#[tokio::test]
async fn put_replaces_the_whole_content_but_keeps_the_salt() {
    let app = spawn_app().await;
    let mut body = rollout(
        "r",
        10.0,
        json!([{"id": "ios", "when": {"platforms": ["ios"]}, "then": "legacy"}]),
    );
    body["description"] = json!("first");
    body.as_object_mut().unwrap().remove("salt");
    let created = app.create_rollout(body).await;
    let salt = created["salt"].clone();

    let response = app
        .send(
            Method::PUT,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&json!({"key": "r", "percentage": 40, "sticky": {"cookie_name": "sy_r"}})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), "\"2\"");
    let replaced: Value = response.json().await.unwrap();
    assert_eq!(replaced["salt"], salt);
    assert_eq!(replaced["percentage"], 40.0);
    assert_eq!(replaced["description"], "", "left out: back to the default");
    assert_eq!(
        replaced["rules"],
        json!([]),
        "left out: back to the default"
    );
    assert_eq!(replaced["version"], 2);

    // A fetched rollout can be sent back as is (server-kept fields are ignored).
    let mut fetched = app.get_json("/v1/rollouts/r", READ_TOKEN).await;
    fetched["description"] = json!("round trip");
    fetched["version"] = json!(99);
    fetched["updated_by"] = json!("someone else");
    let response = app
        .send(
            Method::PUT,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&fetched),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let put: Value = response.json().await.unwrap();
    assert_eq!(put["version"], 3);
    assert_eq!(put["updated_by"], "admin-bot");
    assert_eq!(put["description"], "round trip");

    // Sending the same content again is no change and makes no version.
    let same = app
        .send(Method::PUT, "/v1/rollouts/r", Some(ADMIN_TOKEN), Some(&put))
        .await;
    assert_eq!(same.status(), StatusCode::OK);
    assert_eq!(etag(&same), "\"3\"");

    // The salt can be changed on purpose.
    let mut resalted = put.clone();
    resalted["salt"] = json!("fresh-salt");
    let response = app
        .send(
            Method::PUT,
            "/v1/rollouts/r",
            Some(ADMIN_TOKEN),
            Some(&resalted),
        )
        .await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["salt"],
        "fresh-salt"
    );
}

#[tokio::test]
async fn patch_is_a_json_merge_patch_under_both_content_types() {
    let app = spawn_app().await;
    let mut body = rollout(
        "r",
        10.0,
        json!([{"id": "ios", "when": {"platforms": ["ios"]}, "then": "legacy"}]),
    );
    body["description"] = json!("before");
    body["sticky"]["max_age_seconds"] = json!(3600);
    app.create_rollout(body).await;

    let response = patch_with(
        &app,
        "r",
        "application/merge-patch+json",
        json!({"percentage": 20, "sticky": {"max_age_seconds": 60}}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), "\"2\"");
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["percentage"], 20.0);
    assert_eq!(patched["description"], "before", "untouched fields stay");
    assert_eq!(patched["salt"], "salt-r");
    assert_eq!(patched["rules"][0]["id"], "ios");
    assert_eq!(
        patched["sticky"],
        json!({"enabled": true, "cookie_name": "sy_r", "max_age_seconds": 60}),
        "objects merge"
    );

    let response = patch_with(
        &app,
        "r",
        "application/json",
        json!({"description": null, "rules": [{"id": "web", "when": {"platforms": ["web"]}, "then": "stytch"}]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["description"], "", "null removes a field");
    assert_eq!(
        patched["rules"],
        json!([{"id": "web", "when": {"platforms": ["web"]}, "then": "stytch"}]),
        "arrays are replaced"
    );
    assert_eq!(patched["version"], 3);
    assert_eq!(patched["percentage"], 20.0);

    let decision = app
        .decide(json!({"rollout": "r", "user_key": "u", "platform": "web"}))
        .await;
    assert_eq!(decision["rule"], "web");
    assert_eq!(decision["version"], 3);
}

#[tokio::test]
async fn writes_with_a_matching_if_match_succeed() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 10.0, json!([]))).await;
    let response = app
        .send_if_match(
            Method::PATCH,
            "/v1/rollouts/r",
            "\"1\"",
            Some(&json!({"percentage": 20})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), "\"2\"");
    let response = app
        .send_if_match(
            Method::PUT,
            "/v1/rollouts/r",
            "\"2\"",
            Some(&rollout("r", 30.0, json!([]))),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), "\"3\"");
    let response = app
        .send_if_match(
            Method::POST,
            "/v1/rollouts/r/rollback",
            "\"3\"",
            Some(&json!({"version": 1})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), "\"4\"");
    let response = app
        .send_if_match(
            Method::PATCH,
            "/v1/rollouts/r",
            "*",
            Some(&json!({"percentage": 50})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .send_if_match(
            Method::PATCH,
            "/v1/rollouts/r",
            "\"1\", \"5\"",
            Some(&json!({"percentage": 60})),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "any listed version matches"
    );
    let response = app
        .send_if_match(Method::DELETE, "/v1/rollouts/r", "\"6\"", None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn delete_answers_204_and_the_rollout_is_gone() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 100.0, json!([]))).await;
    assert_eq!(app.enroll("r", "alice").await, StatusCode::CREATED);
    let response = app
        .send(Method::DELETE, "/v1/rollouts/r", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.text().await.unwrap().is_empty());
    assert_error(
        app.get("/v1/rollouts/r", READ_TOKEN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.post(
            "/v1/decide",
            DECIDE_TOKEN,
            &json!({"rollout": "r", "user_key": "alice"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let again = app
        .send(Method::DELETE, "/v1/rollouts/r", Some(ADMIN_TOKEN), None)
        .await;
    assert_error(again, StatusCode::NOT_FOUND, "not_found").await;
    let list = app.get_json("/v1/rollouts", READ_TOKEN).await;
    assert_eq!(list["rollouts"].as_array().unwrap().len(), 1);
    // The deletion is in the audit trail.
    let audit = app.get_json("/v1/audit", READ_TOKEN).await;
    assert_eq!(audit["audit"][0]["rollout"], "r");
    assert_eq!(audit["audit"][0]["action"], "deleted");
    assert_eq!(audit["audit"][0]["actor"], "admin-bot");
}

#[tokio::test]
async fn a_rollout_created_again_under_a_deleted_key_continues_its_versions() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 0.0, json!([]))).await;
    assert_eq!(
        app.patch_rollout("r", json!({"percentage": 10})).await["version"],
        2
    );
    let deleted = app
        .send_if_match(Method::DELETE, "/v1/rollouts/r", "\"2\"", None)
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    // The delete was version 3, so the new rollout is version 4: an admin still holding
    // `"1"` or `"2"` of the deleted one cannot overwrite it.
    let created = app.create_rollout(rollout("r", 50.0, json!([]))).await;
    assert_eq!(created["version"], 4);
    let current = app.get("/v1/rollouts/r", READ_TOKEN).await;
    assert_eq!(etag(&current), "\"4\"");
    for stale in ["\"1\"", "\"2\"", "\"3\""] {
        let response = app
            .send_if_match(
                Method::PATCH,
                "/v1/rollouts/r",
                stale,
                Some(&json!({"percentage": 100})),
            )
            .await;
        assert_error(
            response,
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
        )
        .await;
    }
    assert_eq!(
        app.get_json("/v1/rollouts/r", READ_TOKEN).await["percentage"],
        50.0
    );
    let history = app.get_json("/v1/rollouts/r/history", READ_TOKEN).await;
    let versions: Vec<&Value> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["version"])
        .collect();
    assert_eq!(versions, [&json!(4)]);
    let audit = app.get_json("/v1/audit", READ_TOKEN).await;
    let trail: Vec<(Value, Value)> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rollout"] == "r")
        .map(|r| (r["action"].clone(), r["version"].clone()))
        .collect();
    assert_eq!(
        trail,
        [
            (json!("created"), json!(4)),
            (json!("deleted"), json!(3)),
            (json!("updated"), json!(2)),
            (json!("created"), json!(1)),
        ]
    );
    // The numbering survives a restart: delete again (version 5), restart, create: 6.
    let deleted = app
        .send(Method::DELETE, "/v1/rollouts/r", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let app = app.restart().await;
    assert_eq!(
        app.create_rollout(rollout("r", 0.0, json!([]))).await["version"],
        6
    );
}

#[tokio::test]
async fn history_lists_every_version_newest_first_with_actor_time_and_changes() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 10.0, json!([]))).await;
    app.patch_rollout("r", json!({"percentage": 20})).await;
    app.patch_rollout("r", json!({"description": "wider", "enabled": false}))
        .await;

    let history = app.get_json("/v1/rollouts/r/history", READ_TOKEN).await;
    assert_eq!(history["rollout"], "r");
    let entries = history["history"].as_array().unwrap();
    let versions: Vec<u64> = entries
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2, 1]);
    for entry in entries {
        assert_eq!(entry["actor"], "admin-bot");
    }
    let times: Vec<DateTime<Utc>> = entries.iter().map(|e| time(&e["at"])).collect();
    assert!(times[0] >= times[1] && times[1] >= times[2]);
    assert_eq!(entries[0]["action"], "updated");
    assert_eq!(entries[2]["action"], "created");
    assert_eq!(
        entries[1]["changes"],
        json!([{"field": "percentage", "from": 10.0, "to": 20.0}])
    );
    let fields: Vec<&str> = entries[0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["description", "enabled"]);
    // The history readable by another reader, and the system's own creation of the default.
    let default = app
        .get_json("/v1/rollouts/stytch-login/history", ADMIN_TOKEN)
        .await;
    assert_eq!(default["history"].as_array().unwrap().len(), 1);
    assert_eq!(default["history"][0]["actor"], "switchyard");
}

#[tokio::test]
async fn rollback_makes_a_new_version_with_the_earlier_content() {
    let app = spawn_app().await;
    let v1 = app
        .create_rollout(rollout(
            "r",
            10.0,
            json!([{"id": "ios", "when": {"platforms": ["ios"]}, "then": "legacy"}]),
        ))
        .await;
    app.patch_rollout("r", json!({"percentage": 100, "rules": []}))
        .await;
    app.patch_rollout("r", json!({"description": "oops"})).await;

    let response = app
        .post(
            "/v1/rollouts/r/rollback",
            ADMIN_TOKEN,
            &json!({"version": 1}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(etag(&response), "\"4\"");
    let rolled: Value = response.json().await.unwrap();
    assert_eq!(rolled["version"], 4);
    for field in [
        "description",
        "enabled",
        "percentage",
        "salt",
        "rules",
        "sticky",
        "epoch",
        "legacy_sessions",
    ] {
        assert_eq!(rolled[field], v1[field], "{field}");
    }
    let history = app.get_json("/v1/rollouts/r/history", READ_TOKEN).await;
    let newest = &history["history"][0];
    assert_eq!(newest["version"], 4);
    assert_eq!(newest["action"], "rolled_back");
    assert_eq!(newest["restored_version"], 1);
    assert_eq!(history["history"].as_array().unwrap().len(), 4);
    let d = app
        .decide(json!({"rollout": "r", "user_key": "u", "platform": "ios"}))
        .await;
    assert_eq!(d["rule"], "ios");
    assert_eq!(d["version"], 4);
}

#[tokio::test]
async fn audit_lists_every_change_to_every_rollout_newest_first() {
    let app = spawn_app().await;
    app.create_rollout(rollout("a", 10.0, json!([]))).await;
    app.create_rollout(rollout("b", 10.0, json!([]))).await;
    app.patch_rollout("a", json!({"percentage": 30})).await;
    app.send(Method::DELETE, "/v1/rollouts/b", Some(ADMIN_TOKEN), None)
        .await;

    let audit = app.get_json("/v1/audit", READ_TOKEN).await;
    let entries = audit["audit"].as_array().unwrap();
    let seen: Vec<(String, u64, String)> = entries
        .iter()
        .map(|e| {
            (
                e["rollout"].as_str().unwrap().to_string(),
                e["version"].as_u64().unwrap(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("b", 2, "deleted"),
        ("a", 2, "updated"),
        ("b", 1, "created"),
        ("a", 1, "created"),
        ("stytch-login", 1, "created"),
    ]
    .map(|(k, v, a)| (k.to_string(), v, a.to_string()));
    assert_eq!(seen, expected);
    assert_eq!(entries[1]["actor"], "admin-bot");
    assert_eq!(entries[4]["actor"], "switchyard");
    let times: Vec<DateTime<Utc>> = entries.iter().map(|e| time(&e["at"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));

    assert_eq!(audit["next_cursor"], Value::Null);

    let limited = app.get_json("/v1/audit?limit=2", READ_TOKEN).await;
    assert_eq!(limited["audit"].as_array().unwrap().len(), 2);
    assert_eq!(limited["audit"][0], entries[0]);
}

#[tokio::test]
async fn the_whole_audit_trail_comes_without_parameters_and_pages_with_a_cursor() {
    let app = spawn_app().await;
    app.create_rollout(rollout("a", 0.0, json!([]))).await;
    for step in 1..=149 {
        app.patch_rollout("a", json!({"percentage": f64::from(step) / 2.0}))
            .await;
    }
    // 151 changes: the default rollout, the create and 149 updates — all of them at once.
    let everything = app.get_json("/v1/audit", READ_TOKEN).await;
    let all = everything["audit"].as_array().unwrap().clone();
    assert_eq!(all.len(), 151);
    assert_eq!(all[0]["version"], 150);
    assert_eq!(all[150]["rollout"], "stytch-login");
    assert_eq!(everything["next_cursor"], Value::Null);
    // Pages of 40 walk the same trail, and a change made meanwhile does not shift them.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?limit=40&cursor={c}"),
            None => "/v1/audit?limit=40".to_string(),
        };
        let page = app.get_json(&path, READ_TOKEN).await;
        pages += 1;
        if pages == 2 {
            app.patch_rollout("a", json!({"percentage": 99})).await;
        }
        paged.extend(page["audit"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(paged, all);
}

#[tokio::test]
async fn an_override_cookie_has_a_name_a_value_and_an_expiry() {
    let app = spawn_app().await;
    let before = Utc::now();
    let response = app
        .post(
            "/v1/rollouts/stytch-login/override-cookies",
            ADMIN_TOKEN,
            &json!({"flow": "stytch", "ttl_seconds": 86400}),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    assert_eq!(body["name"], "sy_override");
    assert!(!body["value"].as_str().unwrap().is_empty());
    let expires = time(&body["expires_at"]);
    let expected = before + chrono::Duration::seconds(86400);
    assert!(
        (expires - expected).num_seconds().abs() <= 5,
        "{expires} vs {expected}"
    );
    let d = app
        .decide(json!({"rollout": "stytch-login", "user_key": "tester", "cookies": {"sy_override": body["value"]}}))
        .await;
    assert_eq!(d["flow"], "stytch");
    assert_eq!(d["reason"], "override_cookie");
    // The ttl defaults to a day.
    let response = app
        .post(
            "/v1/rollouts/stytch-login/override-cookies",
            ADMIN_TOKEN,
            &json!({"flow": "legacy"}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert!((time(&body["expires_at"]) - expected).num_seconds().abs() <= 5);
}

#[tokio::test]
async fn enrollments_are_idempotent_puts_and_deletes() {
    let app = spawn_app().await;
    let app = &app;
    let put = |user: &'static str| async move {
        app.send(
            Method::PUT,
            &format!("/v1/rollouts/stytch-login/enrollments/{user}"),
            Some(BACKEND_TOKEN),
            None,
        )
        .await
    };
    let first = put("alice@example.com").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(
        first.json::<Value>().await.unwrap(),
        json!({"rollout": "stytch-login", "user_key": "alice@example.com", "enrolled": true})
    );
    let second = put("alice@example.com").await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.json::<Value>().await.unwrap()["enrolled"], true);

    let list = app
        .get_json("/v1/rollouts/stytch-login/enrollments", BACKEND_TOKEN)
        .await;
    assert_eq!(
        list,
        json!({"rollout": "stytch-login", "user_keys": ["alice@example.com"], "next_cursor": null})
    );

    let delete = || {
        app.send(
            Method::DELETE,
            "/v1/rollouts/stytch-login/enrollments/alice@example.com",
            Some(BACKEND_TOKEN),
            None,
        )
    };
    assert_eq!(delete().await.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        delete().await.status(),
        StatusCode::NO_CONTENT,
        "idempotent"
    );
    let list = app
        .get_json("/v1/rollouts/stytch-login/enrollments", BACKEND_TOKEN)
        .await;
    assert_eq!(list["user_keys"], json!([]));
    let d = app
        .decide(json!({"rollout": "stytch-login", "user_key": "alice@example.com"}))
        .await;
    assert_eq!(d["flow"], "legacy");
}

#[tokio::test]
async fn enrollments_page_with_cursor_and_limit() {
    let app = spawn_app().await;
    let mut expected: Vec<String> = (0..25)
        .map(|i| format!("user-{i:02}@example.com"))
        .collect();
    for user in expected.iter().rev() {
        assert_eq!(app.enroll("stytch-login", user).await, StatusCode::CREATED);
    }
    expected.sort();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/rollouts/stytch-login/enrollments?limit=10&cursor={c}"),
            None => "/v1/rollouts/stytch-login/enrollments?limit=10".to_string(),
        };
        let page = app.get_json(&path, BACKEND_TOKEN).await;
        assert_eq!(page["rollout"], "stytch-login");
        let keys = page["user_keys"].as_array().unwrap();
        pages += 1;
        assert_eq!(
            keys.len(),
            if pages < 3 { 10 } else { 5 },
            "page {pages}: {page}"
        );
        seen.extend(keys.iter().map(|k| k.as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
    let all = app
        .get_json("/v1/rollouts/stytch-login/enrollments", BACKEND_TOKEN)
        .await;
    assert_eq!(all["user_keys"].as_array().unwrap().len(), 25);
    assert_eq!(all["next_cursor"], Value::Null);
}

#[tokio::test]
async fn outcomes_are_accepted_and_counted() {
    let app = spawn_app().await;
    for (flow, outcome) in [
        ("stytch", "success"),
        ("stytch", "success"),
        ("legacy", "failure"),
    ] {
        let response = app
            .post(
                "/v1/outcomes",
                BACKEND_TOKEN,
                &json!({"rollout": "stytch-login", "flow": flow, "outcome": outcome}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let samples = app.metrics().await;
    let count = |flow, outcome| {
        metric(
            &samples,
            "switchyard_login_outcomes_total",
            &[
                ("rollout", "stytch-login"),
                ("flow", flow),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(count("stytch", "success"), Some(2.0));
    assert_eq!(count("legacy", "failure"), Some(1.0));
    assert_eq!(count("stytch", "failure").unwrap_or(0.0), 0.0);

    let unknown = app
        .post(
            "/v1/outcomes",
            BACKEND_TOKEN,
            &json!({"rollout": "nope", "flow": "stytch", "outcome": "success"}),
        )
        .await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let bad = app
        .post(
            "/v1/outcomes",
            BACKEND_TOKEN,
            &json!({"rollout": "stytch-login", "flow": "stytch", "outcome": "meh"}),
        )
        .await;
    let body = assert_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["error"]["details"][0]["field"], "outcome");
    let bad_flow = app
        .post(
            "/v1/outcomes",
            BACKEND_TOKEN,
            &json!({"rollout": "stytch-login", "flow": "okta", "outcome": "success"}),
        )
        .await;
    assert_error(
        bad_flow,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    // Nothing about the unknown rollout became a label.
    assert!(!app.metrics_text().await.contains("\"nope\""));
}

#[tokio::test]
async fn health_readiness_and_openapi_need_no_token() {
    let app = spawn_app().await;
    let health = app.raw(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.raw(Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let metrics = app.raw(Method::GET, "/metrics", None, &[], None).await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let openapi = app.raw(Method::GET, "/openapi.json", None, &[], None).await;
    assert_eq!(openapi.status(), StatusCode::OK);
    assert!(openapi.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = openapi.json().await.expect("the OpenAPI document is JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"].is_object());
}

#[tokio::test]
async fn metrics_can_be_put_behind_a_read_token() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    settings.metrics.require_token = true;
    let app = spawn_with(settings, dir).await;
    let anonymous = app.raw(Method::GET, "/metrics", None, &[], None).await;
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let read = app.get("/metrics", READ_TOKEN).await;
    assert_eq!(read.status(), StatusCode::OK);
    let health = app.raw(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn of_two_writers_with_the_same_if_match_exactly_one_wins() {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 10.0, json!([]))).await;
    let tag = etag(&app.get("/v1/rollouts/r", READ_TOKEN).await);
    let (to_20, to_30) = (json!({"percentage": 20}), json!({"percentage": 30}));
    let (a, b) = tokio::join!(
        app.send_if_match(Method::PATCH, "/v1/rollouts/r", &tag, Some(&to_20)),
        app.send_if_match(Method::PATCH, "/v1/rollouts/r", &tag, Some(&to_30)),
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED]);
    let winner = if a.status() == StatusCode::OK {
        20.0
    } else {
        30.0
    };
    let current = app.get_json("/v1/rollouts/r", READ_TOKEN).await;
    assert_eq!(current["version"], 2);
    assert_eq!(current["percentage"], winner);
}

#[tokio::test]
async fn concurrent_read_modify_write_loops_lose_no_update() {
    let app = spawn_app().await;
    let mut body = rollout("r", 10.0, json!([]));
    body["description"] = json!("0");
    app.create_rollout(body).await;
    const WRITERS: usize = 20;
    const EACH: usize = 3;

    let writer = || async {
        let mut conflicts = 0;
        for _ in 0..EACH {
            loop {
                let response = app.get("/v1/rollouts/r", ADMIN_TOKEN).await;
                let tag = etag(&response);
                let current: Value = response.json().await.unwrap();
                let n: usize = current["description"].as_str().unwrap().parse().unwrap();
                let response = app
                    .send_if_match(
                        Method::PATCH,
                        "/v1/rollouts/r",
                        &tag,
                        Some(&json!({"description": (n + 1).to_string()})),
                    )
                    .await;
                match response.status() {
                    StatusCode::OK => break,
                    StatusCode::PRECONDITION_FAILED => conflicts += 1,
                    other => panic!("unexpected {other}"),
                }
            }
        }
        conflicts
    };
    let conflicts: usize = futures_util::future::join_all((0..WRITERS).map(|_| writer()))
        .await
        .into_iter()
        .sum();
    let current = app.get_json("/v1/rollouts/r", READ_TOKEN).await;
    assert_eq!(current["description"], (WRITERS * EACH).to_string());
    assert_eq!(current["version"], (WRITERS * EACH + 1) as u64);
    let history = app.get_json("/v1/rollouts/r/history", READ_TOKEN).await;
    assert_eq!(
        history["history"].as_array().unwrap().len(),
        WRITERS * EACH + 1
    );
    println!("{conflicts} conflicts were retried");
}

#[tokio::test]
async fn enrollment_user_keys_are_percent_decoded_from_the_path() {
    let app = spawn_app().await;
    for encoded in [
        "alice%40example.com",
        "bob%2Bx%40example.com",
        "carol%2Fslash",
        "dave%20space",
    ] {
        assert_eq!(
            app.enroll("stytch-login", encoded).await,
            StatusCode::CREATED,
            "{encoded}"
        );
    }
    let keys = [
        "alice@example.com",
        "bob+x@example.com",
        "carol/slash",
        "dave space",
    ];
    for user in keys {
        let d = app
            .decide(json!({"rollout": "stytch-login", "user_key": user}))
            .await;
        assert_eq!(d["reason"], "enrolled", "{user}");
    }
    // Paging with a percent-encoded cursor holding a `+`.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/v1/rollouts/stytch-login/enrollments?limit=1&cursor={}",
                percent_encode(c)
            ),
            None => "/v1/rollouts/stytch-login/enrollments?limit=1".to_string(),
        };
        let page = app.get_json(&path, BACKEND_TOKEN).await;
        seen.extend(
            page["user_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(seen.len() <= keys.len(), "paging does not end: {seen:?}");
    }
    assert_eq!(seen, keys);
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
