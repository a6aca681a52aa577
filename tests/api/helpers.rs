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
    /// Every replica's outcome and decision counts, as the guard reads them (no HTTP endpoint
    /// shows them yet). Holds no file open: embedded, they live in memory.
    pub tallies: std::sync::Arc<dyn switchyard::tally::TallyStore>,
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
    // Many apps run at once (one per test): keep each one's thread count small.
    settings.server.workers = Some(2);
    settings.store.path = dir.join("switchyard.redb");
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
    let tallies = app.state.tallies.clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: Client::new(),
        settings,
        handle,
        tallies,
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

    /// The port the service listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the address ends with the port")
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
        self.send(reqwest::Method::GET, path, Some(token), None)
            .await
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

/// The bucket of SPEC §2, computed independently of the service.
pub fn bucket_of(salt: &str, key: &str) -> u16 {
    let h = xxhash_rust::xxh3::xxh3_64(format!("{salt}:{key}").as_bytes());
    ((u128::from(h) * 10_000) >> 64) as u16
}

/// A rollout body with sticky cookies on under a cookie name unique to `key`.
pub fn rollout(key: &str, percentage: f64, rules: Value) -> Value {
    json!({
        "key": key,
        "percentage": percentage,
        "salt": format!("salt-{key}"),
        "rules": rules,
        "sticky": {"enabled": true, "cookie_name": format!("sy_{key}")},
    })
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the sample lines of a Prometheus text exposition (comments are skipped).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels end with }");
                    (name, parse_labels(inner))
                }
                None => (series, Vec::new()),
            };
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().expect("a numeric sample value"),
            }
        })
        .collect()
}

fn parse_labels(inner: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.push((name.trim_start_matches(',').to_string(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// The value of the sample `name` whose labels include all of `labels`, if any.
pub fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
}

impl TestApp {
    /// `GET /metrics` as text.
    pub async fn metrics_text(&self) -> String {
        let response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("text")
    }

    pub async fn metrics(&self) -> Vec<Sample> {
        parse_metrics(&self.metrics_text().await)
    }

    /// `GET` with a token, expecting 200 and JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let response = self.get(path, token).await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(status, StatusCode::OK, "GET {path} failed: {body}");
        body
    }

    /// A request with any method, headers and raw body.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        req.send().await.expect("request sent")
    }

    /// A JSON request with an `If-Match` header.
    pub async fn send_if_match(
        &self,
        method: reqwest::Method,
        path: &str,
        if_match: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("If-Match", if_match);
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("request sent")
    }

    /// Mints an override cookie; returns its value.
    pub async fn mint_override(&self, key: &str, flow: &str, ttl_seconds: u64) -> String {
        let response = self
            .post(
                &format!("/v1/rollouts/{key}/override-cookies"),
                ADMIN_TOKEN,
                &json!({"flow": flow, "ttl_seconds": ttl_seconds}),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert!(status.is_success(), "minting failed: {body}");
        body["value"].as_str().expect("a cookie value").to_string()
    }

    /// Records an enrollment; returns the status.
    /// Deletes a rollout with the admin token; the answer's status.
    pub async fn delete_rollout(&self, key: &str) -> StatusCode {
        self.send(
            reqwest::Method::DELETE,
            &format!("/v1/rollouts/{key}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await
        .status()
    }

    pub async fn enroll(&self, key: &str, user_key: &str) -> StatusCode {
        self.send(
            reqwest::Method::PUT,
            &format!("/v1/rollouts/{key}/enrollments/{user_key}"),
            Some(BACKEND_TOKEN),
            None,
        )
        .await
        .status()
    }
}
