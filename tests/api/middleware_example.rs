//! Drives `examples/middleware.rs` (a real actix-web app) against the real service, once for
//! each `session.action` of SPEC §8.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect::Policy, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const PROJECT: &str = "project-test-example";

/// The example's binary, built on demand (a lone `cargo test --test api` does not build it).
fn example_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let binary = profile_dir.join("examples/middleware");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--example", "middleware"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the example failed");
    binary
}

struct Example {
    child: Child,
    url: String,
    client: reqwest::Client,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    fn start(app: &TestApp) -> Example {
        let mut child = Command::new(example_binary())
            .env("SWITCHYARD_URL", &app.address)
            .env("SWITCHYARD_TOKEN", DECIDE_TOKEN)
            .env("STYTCH_PROJECT_ID", PROJECT)
            .env("BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the example runs");
        let line = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .next()
            .unwrap()
            .unwrap();
        let url = line.rsplit(' ').next().unwrap().to_string();
        Example {
            child,
            url,
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// GET a path with these cookies; returns status, body and Set-Cookie headers.
    async fn get(&self, path: &str, cookies: &str) -> (StatusCode, Value, Vec<String>) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .header(COOKIE, cookies)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let set: Vec<String> = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        if status == StatusCode::SEE_OTHER {
            assert_eq!(r.headers()[LOCATION], "/login");
        }
        (status, r.json().await.unwrap(), set)
    }
}

fn stytch_jwt(project: &str, user: &str) -> String {
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.sig",
        b64(json!({"alg": "RS256"})),
        b64(json!({"iss": format!("stytch.com/{project}"), "sub": user}))
    )
}

async fn spawn_service() -> TestApp {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    settings.stytch.project_id = Some(PROJECT.into());
    settings.legacy.opaque_tokens = true;
    spawn_with(settings, dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middleware_example_routes_every_session_action_to_the_right_place() {
    let app = spawn_service().await;
    let example = Example::start(&app);

    // At 0 %: the legacy login page, a sticky cookie to keep the device there.
    let (status, body, set) = example.get("/login", "device_id=dev-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["page"], "legacy_login");
    assert!(
        set.iter()
            .any(|c| c.starts_with("sy_flow=s1.stytch-login.")),
        "{set:?}"
    );

    // login_legacy: no session on the legacy flow → to the login page.
    let (status, body, _) = example.get("/account", "device_id=dev-1").await;
    assert_eq!(
        (status, body["action"].as_str()),
        (StatusCode::SEE_OTHER, Some("login_legacy"))
    );

    // validate_legacy: a legacy session on the legacy flow → the legacy validator.
    let (status, body, _) = example
        .get("/account", "device_id=dev-1; session=legacy-session-alice")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["action"].as_str(), body["validated_by"].as_str()),
        (Some("validate_legacy"), Some("legacy"))
    );

    // validate_stytch: a Stytch session stays valid even on the legacy flow.
    let jwt = stytch_jwt(PROJECT, "user-live-1");
    let (status, body, _) = example
        .get("/account", &format!("device_id=dev-1; session={jwt}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["action"].as_str(), body["validated_by"].as_str()),
        (Some("validate_stytch"), Some("stytch"))
    );

    // Everyone to Stytch, legacy sessions rejected: login_stytch.
    app.patch_rollout(
        "stytch-login",
        json!({"percentage": 100, "legacy_sessions": "reject"}),
    )
    .await;
    let (status, body, _) = example
        .get("/account", "device_id=dev-2; session=legacy-session-alice")
        .await;
    assert_eq!(
        (status, body["action"].as_str()),
        (StatusCode::SEE_OTHER, Some("login_stytch"))
    );
    let (_, body, _) = example.get("/login", "device_id=dev-2").await;
    assert_eq!(body["page"], "stytch_login");
    // A session of another Stytch project is foreign: log in again.
    let other = stytch_jwt("project-test-someone-else", "x");
    let (status, body, _) = example
        .get("/account", &format!("device_id=dev-2; session={other}"))
        .await;
    assert_eq!(
        (status, body["action"].as_str()),
        (StatusCode::SEE_OTHER, Some("login_stytch"))
    );

    // honor: the legacy session is validated by the legacy validator.
    app.patch_rollout("stytch-login", json!({"legacy_sessions": "honor"}))
        .await;
    let (status, body, _) = example
        .get("/account", "device_id=dev-2; session=legacy-session-bob")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["action"].as_str(), body["validated_by"].as_str()),
        (Some("validate_legacy"), Some("legacy"))
    );

    // migrate_to_stytch: the legacy session is exchanged for a Stytch one, then validated as such.
    app.patch_rollout("stytch-login", json!({"legacy_sessions": "migrate"}))
        .await;
    let (status, body, set) = example
        .get("/account", "device_id=dev-2; session=legacy-session-bob")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["action"].as_str(), body["migrated_to"].as_str()),
        (Some("migrate_to_stytch"), Some("stytch"))
    );
    let new_session = set
        .iter()
        .find_map(|c| c.strip_prefix("session="))
        .and_then(|c| c.split(';').next())
        .expect("a Stytch session cookie")
        .to_string();
    let (status, body, _) = example
        .get(
            "/account",
            &format!("device_id=dev-2; session={new_session}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["action"].as_str(), body["user"].as_str()),
        (Some("validate_stytch"), Some("bob"))
    );
}
