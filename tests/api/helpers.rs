//! `spawn_app`: the real application on a random port, with its own data folder, and a client
//! that speaks HTTP to it.

use std::path::{Path, PathBuf};

use reqwest::{Client, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use switchyard::config::{Scope, Settings, TokenSettings};
use switchyard::startup::Application;

pub const ADMIN_TOKEN: &str = "admin-token-0123456789";
pub const READ_TOKEN: &str = "read-token-0123456789";
pub const DECIDE_TOKEN: &str = "decide-token-0123456789";
pub const BACKEND_TOKEN: &str = "backend-token-0123456789";
pub const COOKIE_SECRET: &str = "integration-test-cookie-secret-0123456789";

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub settings: Settings,
    handle: actix_web::dev::ServerHandle,
    /// Keeps the data folder alive for the test's duration.
    pub dir: std::sync::Arc<tempfile::TempDir>,
}

fn token(name: &str, token: &str, scopes: &[Scope]) -> TokenSettings {
    TokenSettings {
        name: name.into(),
        token: SecretString::from(token.to_string()),
        scopes: scopes.to_vec(),
    }
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Settings for a test: random port, a fresh data folder, the GeoIP2 City test database.
pub fn test_settings(dir: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.store.path = dir.join("switchyard.json");
    settings.geoip.database = Some(repo_path("geoip/GeoIP2-City-Test.mmdb"));
    settings.cookies.secret = Some(SecretString::from(COOKIE_SECRET.to_string()));
    settings.tokens = vec![
        token("admin-bot", ADMIN_TOKEN, &[Scope::Admin]),
        token("reader", READ_TOKEN, &[Scope::Read]),
        token("middleware", DECIDE_TOKEN, &[Scope::Decide]),
        token("backend", BACKEND_TOKEN, &[Scope::Enroll, Scope::Report]),
    ];
    settings
}

pub async fn spawn_app() -> TestApp {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let settings = test_settings(dir.path());
    spawn_with(settings, dir).await
}

pub async fn spawn_with(settings: Settings, dir: std::sync::Arc<tempfile::TempDir>) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("the application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: Client::new(),
        settings,
        handle,
        dir,
    }
}

impl TestApp {
    /// Stops this instance and starts a new one on the same data folder and settings.
    pub async fn restart(self) -> TestApp {
        self.handle.stop(true).await;
        spawn_with(self.settings.clone(), self.dir.clone()).await
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.send(reqwest::Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.send(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn decide(&self, body: Value) -> Value {
        let response = self.post("/v1/decide", DECIDE_TOKEN, &body).await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(status, StatusCode::OK, "decide failed: {body}");
        body
    }

    pub async fn create_rollout(&self, body: Value) -> Value {
        let response = self.post("/v1/rollouts", ADMIN_TOKEN, &body).await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(status, StatusCode::CREATED, "create failed: {body}");
        body
    }

    pub async fn patch_rollout(&self, key: &str, patch: Value) -> Value {
        let response = self
            .send(
                reqwest::Method::PATCH,
                &format!("/v1/rollouts/{key}"),
                Some(ADMIN_TOKEN),
                Some(&patch),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(status, StatusCode::OK, "patch failed: {body}");
        body
    }
}

/// Asserts a SPEC §4 error body with this status and code; returns the body.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert_eq!(body["error"]["code"], json!(code), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["details"].is_array(), "{body}");
    body
}
