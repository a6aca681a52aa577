//! SPEC §2 and §5: everything survives a restart, and decisions after it are identical; a
//! corrupt store file stops startup, naming the file, and is left as it was; the JSON store
//! file of earlier builds is migrated into the database once.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard::startup::Application;
use switchyard::store::dataset::Dataset;
use switchyard::store::file;

use crate::helpers::*;

/// Everything the API shows about the stored state.
async fn snapshot(app: &TestApp) -> Value {
    let list = app.get_json("/v1/rollouts", READ_TOKEN).await;
    let mut rollouts = serde_json::Map::new();
    for r in list["rollouts"].as_array().unwrap() {
        let key = r["key"].as_str().unwrap();
        let response = app.get(&format!("/v1/rollouts/{key}"), READ_TOKEN).await;
        let etag = response.headers()["etag"].to_str().unwrap().to_string();
        let body: Value = response.json().await.unwrap();
        rollouts.insert(
            key.to_string(),
            json!({
                "etag": etag,
                "rollout": body,
                "history": app.get_json(&format!("/v1/rollouts/{key}/history"), READ_TOKEN).await,
                "enrollments": app
                    .get_json(&format!("/v1/rollouts/{key}/enrollments"), BACKEND_TOKEN)
                    .await,
            }),
        );
    }
    json!({
        "list": list,
        "rollouts": rollouts,
        "audit": app.get_json("/v1/audit", READ_TOKEN).await,
    })
}

async fn decisions(app: &TestApp, requests: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in requests {
        out.push(app.decide(r.clone()).await);
    }
    out
}

#[tokio::test]
async fn after_a_restart_every_rollout_version_history_entry_enrollment_and_decision_is_identical()
{
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "web",
        100.0,
        json!([
            {"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"},
            {"id": "old-ios", "when": {"platforms": ["ios"], "app_version": "<5.2.0"}, "then": "legacy"},
            {"id": "uk-half", "when": {"countries": ["GB"]}, "then": {"percentage": 50}},
        ]),
    ))
    .await;
    app.create_rollout(rollout("mobile", 33.33, json!([])))
        .await;
    // Sticky cookies minted at 100 %, before the percentage goes down.
    let mut sticky = Vec::new();
    for i in 0..10 {
        let d = app
            .decide(json!({"rollout": "web", "device_id": format!("d-{i}")}))
            .await;
        sticky.push(d["set_cookie"]["value"].as_str().unwrap().to_string());
    }
    app.patch_rollout("web", json!({"percentage": 12.5})).await;
    app.patch_rollout("web", json!({"description": "narrowed"}))
        .await;
    app.patch_rollout("mobile", json!({"percentage": 20})).await;
    let rolled = app
        .post(
            "/v1/rollouts/mobile/rollback",
            ADMIN_TOKEN,
            &json!({"version": 1}),
        )
        .await;
    assert_eq!(rolled.status(), StatusCode::OK);
    app.patch_rollout("mobile", json!({"epoch": 3, "percentage": 40}))
        .await;
    for user in ["alice", "bob", "carol"] {
        assert_eq!(app.enroll("web", user).await, StatusCode::CREATED);
    }
    assert_eq!(app.enroll("mobile", "dave").await, StatusCode::CREATED);
    app.send(
        Method::DELETE,
        "/v1/rollouts/web/enrollments/bob",
        Some(BACKEND_TOKEN),
        None,
    )
    .await;
    let override_cookie = app.mint_override("web", "legacy", 3600).await;

    let mut requests = Vec::new();
    const IPS: [&str; 3] = ["81.2.69.142", "203.0.113.9", "216.160.83.56"];
    const PLATFORMS: [&str; 2] = ["ios", "web"];
    for i in 0..60 {
        requests.push(json!({
            "rollout": if i % 2 == 0 { "web" } else { "mobile" },
            "user_key": format!("user-{i}"),
            "ip": IPS[i % 3],
            "platform": PLATFORMS[i % 2],
            "app_version": "5.1.0",
        }));
    }
    for (i, cookie) in sticky.iter().enumerate() {
        requests.push(
            json!({"rollout": "web", "device_id": format!("d-{i}"), "cookies": {"sy_web": cookie}}),
        );
    }
    for user in ["alice", "bob", "carol", "dave"] {
        requests.push(json!({"rollout": "web", "user_key": user}));
        requests.push(json!({"rollout": "mobile", "user_key": user}));
    }
    requests.push(json!({"rollout": "web", "user_key": "tester", "cookies": {"sy_override": override_cookie}}));

    let before_state = snapshot(&app).await;
    let before = decisions(&app, &requests).await;
    // The setup did what it meant to: sticky cookies and enrollments and the override decide.
    assert!(before.iter().any(|d| d["reason"] == "sticky_cookie"));
    assert!(before.iter().any(|d| d["reason"] == "enrolled"));
    assert!(before.iter().any(|d| d["reason"] == "override_cookie"));
    assert_eq!(
        before_state["rollouts"]["web"]["enrollments"]["user_keys"],
        json!(["alice", "carol"])
    );

    let app = app.restart().await;
    assert_eq!(snapshot(&app).await, before_state);
    assert_eq!(decisions(&app, &requests).await, before);

    // And again, after a change made by the restarted instance.
    app.patch_rollout("mobile", json!({"percentage": 41})).await;
    let changed_state = snapshot(&app).await;
    let app = app.restart().await;
    assert_eq!(snapshot(&app).await, changed_state);
    let history = app
        .get_json("/v1/rollouts/mobile/history", READ_TOKEN)
        .await;
    assert_eq!(history["history"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_deleted_rollout_stays_deleted_after_a_restart() {
    let app = spawn_app().await;
    app.create_rollout(rollout("gone", 50.0, json!([]))).await;
    assert_eq!(app.enroll("gone", "alice").await, StatusCode::CREATED);
    let response = app
        .send(Method::DELETE, "/v1/rollouts/gone", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let app = app.restart().await;
    assert_error(
        app.get("/v1/rollouts/gone", READ_TOKEN).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let default = app.get_json("/v1/rollouts/stytch-login", READ_TOKEN).await;
    assert_eq!(
        default["version"], 1,
        "the default rollout is not created twice"
    );
}

/// Starts on a store file holding `contents`, which must be refused: the error names the file,
/// and the file is left as it was with nothing written beside it.
async fn assert_startup_refuses(contents: &[u8]) -> String {
    assert_startup_refuses_as(contents, |bytes| bytes == contents).await
}

/// [`assert_startup_refuses`], `unchanged` telling whether the file's bytes after the start
/// still hold what they held.
async fn assert_startup_refuses_as(contents: &[u8], unchanged: impl Fn(&[u8]) -> bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path());
    let path = settings.store.path.clone();
    std::fs::write(&path, contents).unwrap();
    let error = match Application::build(settings).await {
        Ok(_) => panic!(
            "startup accepted {:?}",
            String::from_utf8_lossy(&contents[..contents.len().min(200)])
        ),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains(&path.display().to_string()),
        "the error names the file: {error}"
    );
    assert!(
        unchanged(&std::fs::read(&path).unwrap()),
        "the file is left untouched"
    );
    assert_eq!(
        entries(dir.path()),
        ["switchyard.redb"],
        "nothing else is written"
    );
    error
}

/// The names of the entries of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The bytes of a real database file holding one rollout.
async fn a_database_file() -> Vec<u8> {
    let app = spawn_app().await;
    app.create_rollout(rollout("r", 10.0, json!([]))).await;
    app.stop().await;
    std::fs::read(&app.settings.store.path).unwrap()
}

#[tokio::test]
async fn a_corrupt_database_file_stops_startup_naming_the_file_and_is_left_untouched() {
    let whole = a_database_file().await;
    // Cut short, as a copy interrupted half-way would leave it.
    let error = assert_startup_refuses(&whole[..whole.len() / 2]).await;
    assert!(error.contains("corrupted"), "{error}");
    // Pages overwritten: every byte after the header page garbled.
    let mut garbled = whole.clone();
    for (i, byte) in garbled.iter_mut().enumerate().skip(4096) {
        *byte = (i % 251) as u8;
    }
    let error = assert_startup_refuses(&garbled).await;
    assert!(error.contains("corrupted"), "{error}");
}

#[tokio::test]
async fn a_store_file_that_is_neither_a_database_nor_a_json_store_stops_startup() {
    // Not a database: read as the JSON store file of an earlier build, which must parse.
    assert_startup_refuses(b"this is not JSON").await;
    assert_startup_refuses(b"").await;
    assert_startup_refuses(b"{\"format\": 1, \"rollouts\": 7}").await;
    assert_startup_refuses(&[0xff, 0xfe, 0x00, 0x01]).await;
    let mut old = Dataset::empty();
    old.format = 99;
    let error = assert_startup_refuses(&old.to_bytes().unwrap()).await;
    assert!(error.contains("unsupported format 99"), "{error}");
}

#[tokio::test]
async fn a_store_file_holding_an_invalid_rollout_stops_startup_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("valid.redb");
    std::fs::write(&path, a_database_file().await).unwrap();
    let data = file::read_dataset(&path).unwrap().unwrap();
    let text = String::from_utf8(data.to_bytes().unwrap()).unwrap();
    let broken = text.replace("\"percentage\":10.0", "\"percentage\":12.345");
    assert_ne!(broken, text);
    let broken: Dataset = serde_json::from_str(&broken).unwrap();
    let path = dir.path().join("broken.redb");
    file::write_dataset(&path, &broken).unwrap();
    // An open database may have its header rewritten (open, then closed cleanly): what it
    // holds must stay the same.
    let holds_the_broken_rollout = |bytes: &[u8]| {
        let copy = dir.path().join("after.redb");
        std::fs::write(&copy, bytes).unwrap();
        file::read_dataset(&copy).unwrap() == Some(broken.clone())
    };
    let error =
        assert_startup_refuses_as(&std::fs::read(&path).unwrap(), holds_the_broken_rollout).await;
    assert!(
        error.contains("'r'") && error.contains("percentage"),
        "{error}"
    );
}

/// Fills a store with something of everything: versions, a rollback, a delete, enrollments.
async fn fill(app: &TestApp) {
    app.create_rollout(rollout("web", 20.0, json!([]))).await;
    app.patch_rollout("web", json!({"percentage": 30})).await;
    let rolled = app
        .post(
            "/v1/rollouts/web/rollback",
            ADMIN_TOKEN,
            &json!({"version": 1}),
        )
        .await;
    assert_eq!(rolled.status(), StatusCode::OK);
    app.create_rollout(rollout("gone", 5.0, json!([]))).await;
    assert_eq!(app.enroll("gone", "zoe").await, StatusCode::CREATED);
    let deleted = app
        .send(Method::DELETE, "/v1/rollouts/gone", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    for user in ["alice", "bob", "carol@example.com"] {
        assert_eq!(app.enroll("web", user).await, StatusCode::CREATED);
    }
}

/// A JSON store file as earlier builds wrote it, holding what a filled store holds; and the
/// API's view of that store.
async fn an_old_json_store() -> (Vec<u8>, Value) {
    let app = spawn_app().await;
    fill(&app).await;
    let seen = snapshot(&app).await;
    app.stop().await;
    let data = file::read_dataset(&app.settings.store.path)
        .unwrap()
        .unwrap();
    assert_eq!(
        (data.rollouts.len(), data.audit.len(), data.retired.len()),
        (2, 6, 1),
        "the default rollout and web; six changes; gone deleted"
    );
    (data.to_bytes().unwrap(), seen)
}

#[tokio::test]
async fn a_json_store_file_beside_a_missing_database_is_migrated_once_and_kept_as_bak() {
    let (old, seen) = an_old_json_store().await;
    // A data folder as an earlier build left it: the JSON file under the old default name,
    // beside where the database goes.
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("switchyard.json"), &old).unwrap();
    let settings = test_settings(dir.path());
    let migrated = spawn_with(settings.clone(), dir.clone()).await;
    assert_eq!(snapshot(&migrated).await, seen);
    migrated.stop().await;
    assert_eq!(
        entries(dir.path()),
        ["switchyard.json.bak", "switchyard.redb"]
    );
    assert!(std::fs::read(dir.path().join("switchyard.json.bak")).unwrap() == old);
    // Everything, counted: the database holds what the JSON file held.
    let imported = file::read_dataset(&settings.store.path).unwrap().unwrap();
    let expected: Dataset = serde_json::from_slice(&old).unwrap();
    assert_eq!(imported, expected);

    // A second start does not migrate again, even with a JSON file back under the old name.
    std::fs::write(dir.path().join("switchyard.json"), &old).unwrap();
    let app = spawn_with(settings.clone(), dir.clone()).await;
    app.patch_rollout("web", json!({"percentage": 40})).await;
    let changed = snapshot(&app).await;
    let app = app.restart().await;
    assert_eq!(snapshot(&app).await, changed);
    assert!(std::fs::read(dir.path().join("switchyard.json")).unwrap() == old);
}

#[tokio::test]
async fn a_store_path_naming_a_json_store_file_is_migrated_in_place() {
    use std::os::unix::fs::PermissionsExt;
    let (old, seen) = an_old_json_store().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    settings.store.path = dir.path().join("rules.json");
    std::fs::write(&settings.store.path, &old).unwrap();
    let app = spawn_with(settings.clone(), dir.clone()).await;
    assert_eq!(snapshot(&app).await, seen);
    app.stop().await;
    assert_eq!(entries(dir.path()), ["rules.json", "rules.json.bak"]);
    assert!(std::fs::read(dir.path().join("rules.json.bak")).unwrap() == old);
    let path = &settings.store.path;
    assert_eq!(file::Content::of(path).unwrap(), file::Content::Database);
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
