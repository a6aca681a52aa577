//! The `switchyard` binary itself: layered configuration, `check-config`, the live-environment
//! refusals of SPEC §7, and logs that never hold a secret.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::redis_server::RedisServer;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const GOOD_SECRET: &str = "f3a9c1e07b2d4c6e8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d";
const ADMIN: &str = "admin-token-for-cli-tests-0123";

/// A command for the binary in `dir`, with a clean environment of Switchyard variables.
fn switchyard(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("SWITCHYARD") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn live_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("live.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
bind = "127.0.0.1:0"
[store]
path = "{data}/switchyard.redb"
[cookies]
secret = "{GOOD_SECRET}"
[stytch]
project_id = "project-live-1234"
[[tokens]]
name = "deploy-bot"
token = "{ADMIN}"
scopes = ["admin", "decide"]
{extra}
"#,
            data = dir.display()
        ),
    )
    .unwrap();
    path
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Starts the binary and waits for its "listening on" line; returns the child and base URL.
fn start(cmd: Command) -> (Child, String) {
    let (child, url, _) = start_logged(cmd);
    (child, url)
}

/// [`start`], also returning every line the binary wrote to stdout before it listened.
fn start_logged(mut cmd: Command) -> (Child, String, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut before = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap().to_string();
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, url, before);
        }
        before.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("switchyard did not start");
}

#[test]
fn each_live_refusal_names_its_problem_and_exits_non_zero() {
    let cases: [(&str, &str, &str); 8] = [
        (
            "stytch.project_id",
            "SWITCHYARD__STYTCH__PROJECT_ID",
            "project-test-5678",
        ),
        (
            "stytch.public_token",
            "SWITCHYARD__STYTCH__PUBLIC_TOKEN",
            "public-token-test-abcdef",
        ),
        (
            "stytch.secret",
            "SWITCHYARD__STYTCH__SECRET",
            "secret-test-abcdef",
        ),
        (
            "cookies.secret",
            "SWITCHYARD__COOKIES__SECRET",
            "too-short-secret",
        ),
        (
            "cookies.secret",
            "SWITCHYARD__COOKIES__SECRET",
            "changeme-changeme-changeme-changeme",
        ),
        (
            "cookies.secret",
            "SWITCHYARD__COOKIES__SECRET",
            "the same secret on every replica, at least 32 bytes",
        ),
        (
            "stytch.issuers[0]",
            "SWITCHYARD__STYTCH__ISSUERS",
            "stytch.com/project-test-5678",
        ),
        ("tokens[0].token", "SWITCHYARD__TOKENS", ""),
    ];
    for (setting, var, value) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = if var == "SWITCHYARD__TOKENS" {
            // A placeholder token from the documentation.
            let path = live_config(dir.path(), "");
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace(ADMIN, "a long random string");
            std::fs::write(&path, text).unwrap();
            path
        } else {
            live_config(dir.path(), "")
        };
        let mut cmd = switchyard(dir.path());
        cmd.env("SWITCHYARD_ENV", "live")
            .arg("--config")
            .arg(&config);
        if var == "SWITCHYARD__STYTCH__ISSUERS" {
            let text = std::fs::read_to_string(&config)
                .unwrap()
                .replace("[stytch]", &format!("[stytch]\nissuers = [\"{value}\"]"));
            std::fs::write(&config, text).unwrap();
        } else if var != "SWITCHYARD__TOKENS" {
            cmd.env(var, value);
        }
        let out = cmd.output().unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{setting}: {text}");
        assert!(text.contains("refusing to start"), "{setting}: {text}");
        assert!(
            text.contains(&format!("error: {setting}:")),
            "{setting}: {text}"
        );
        if !value.is_empty() && setting == "cookies.secret" {
            assert!(
                !text.contains(value),
                "the secret itself is never printed: {text}"
            );
        }
    }
    // Missing cookie secret, and no admin token.
    let dir = tempfile::tempdir().unwrap();
    let config = live_config(dir.path(), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("secret = \"{GOOD_SECRET}\""), "")
        .replace("\"admin\", ", "");
    std::fs::write(&config, text).unwrap();
    let out = switchyard(dir.path())
        .env("SWITCHYARD_ENV", "live")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("error: cookies.secret: missing"), "{text}");
    assert!(
        text.contains("error: tokens: no token has the admin scope"),
        "{text}"
    );
}

#[test]
fn a_sound_live_configuration_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = live_config(dir.path(), "");
    let mut cmd = switchyard(dir.path());
    cmd.env("SWITCHYARD_ENV", "live")
        .arg("--config")
        .arg(&config);
    let (mut child, url) = start(cmd);
    let health = blocking_get(&format!("{url}/healthz"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(health.contains("ok"), "{health}");
    assert!(
        !dir.path().join("admin-token").exists(),
        "no admin token is generated in live"
    );
}

#[test]
fn check_config_prints_the_effective_configuration_redacted_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = live_config(dir.path(), "");
    let out = switchyard(dir.path())
        .env("SWITCHYARD_ENV", "live")
        .env(
            "SWITCHYARD__STORE__URL",
            "redis://:hunter2-redis-pass@10.0.0.5:6379",
        )
        .args(["--config"])
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("# SWITCHYARD_ENV = live"), "{text}");
    assert!(text.contains("no problems found"), "{text}");
    assert!(
        text.contains("project_id = \"project-live-1234\""),
        "{text}"
    );
    assert!(text.contains("redis://***@10.0.0.5:6379"), "{text}");
    for secret in [GOOD_SECRET, ADMIN, "hunter2-redis-pass"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }

    let out = switchyard(dir.path())
        .env("SWITCHYARD_ENV", "live")
        .env("SWITCHYARD__STYTCH__PROJECT_ID", "project-test-1")
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("error: stytch.project_id:"), "{text}");

    std::fs::write(dir.path().join("broken.toml"), "[server\nbind = ").unwrap();
    let out = switchyard(dir.path())
        .args(["--config", "broken.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
}

#[test]
fn configuration_is_layered_from_defaults_files_env_file_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("config")).unwrap();
    std::fs::write(
        d.join("config/default.toml"),
        "[server]\nmax_body_bytes = 1000\n[store]\nprefix = \"from-default\"\n[log]\nlevel = \"warn\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("config/test.toml"),
        "[store]\nprefix = \"from-test\"\ntimeout_ms = 250\n",
    )
    .unwrap();
    std::fs::write(
        d.join("config/live.toml"),
        "[store]\nprefix = \"from-live\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("extra.toml"),
        "[store]\nprefix = \"from-file\"\ncluster = true\n",
    )
    .unwrap();
    std::fs::write(d.join(".env-test"), "SWITCHYARD__LOG__LEVEL=debug\n").unwrap();
    std::fs::write(d.join(".env-live"), "SWITCHYARD__LOG__LEVEL=error\n").unwrap();
    let check = |cmd: &mut Command| output_text(&cmd.arg("check-config").output().unwrap());

    let text = check(&mut switchyard(d));
    assert!(text.contains("max_body_bytes = 1000"), "{text}");
    assert!(text.contains("prefix = \"from-test\""), "{text}");
    assert!(text.contains("timeout_ms = 250"), "{text}");
    assert!(
        text.contains("level = \"debug\""),
        ".env-test is read: {text}"
    );

    let text = check(switchyard(d).arg("--config").arg("extra.toml"));
    assert!(
        text.contains("prefix = \"from-file\"") && text.contains("cluster = true"),
        "{text}"
    );
    let text = check(switchyard(d).env("SWITCHYARD_CONFIG", "extra.toml"));
    assert!(text.contains("prefix = \"from-file\""), "{text}");

    let text = check(
        switchyard(d)
            .arg("--config")
            .arg("extra.toml")
            .env("SWITCHYARD__STORE__PREFIX", "from-variable"),
    );
    assert!(text.contains("prefix = \"from-variable\""), "{text}");

    let text = check(switchyard(d).env("SWITCHYARD_ENV", "live"));
    assert!(text.contains("prefix = \"from-live\""), "{text}");
    assert!(
        text.contains("level = \"error\""),
        ".env-live, not .env-test: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_never_contain_a_token_a_jwt_the_cookie_secret_or_a_redis_password() {
    use base64::Engine;
    let mut redis =
        RedisServer::start_with(vec!["--requirepass".into(), "redis-pass-7f3e9a".into()]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
bind = "127.0.0.1:0"
[store]
backend = "redis"
url = "redis://:redis-pass-7f3e9a@127.0.0.1:{port}"
path = "{data}/copy.json"
[cookies]
secret = "{GOOD_SECRET}"
[stytch]
project_id = "project-test-1234"
[[tokens]]
name = "everything"
token = "{ADMIN}"
scopes = ["admin", "decide", "enroll", "report", "read"]
"#,
            port = redis.port,
            data = dir.path().display()
        ),
    )
    .unwrap();
    let mut cmd = switchyard(dir.path());
    cmd.arg("--config")
        .arg(&config)
        .env("RUST_LOG", "trace,h2=info,hyper=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for stream in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                logs.lock().unwrap().push_str(&line);
                logs.lock().unwrap().push('\n');
            }
        });
    }
    let url = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let text = logs.lock().unwrap().clone();
        if let Some(rest) = text.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let jwt = format!(
        "{}.{}.c2lnbmF0dXJlLXNlY3JldA",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"iss":"stytch.com/project-test-1234","sub":"user-test-jwt-subject"}"#)
    );
    let client = reqwest::Client::new();
    let decide = |body: serde_json::Value| {
        client
            .post(format!("{url}/v1/decide"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };
    let first: serde_json::Value =
        decide(json!({"rollout": "stytch-login", "user_key": "u1", "session_token": jwt}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(first["session"]["source"], "stytch");
    let cookie = first["set_cookie"]["value"].as_str().unwrap().to_string();
    decide(json!({"rollout": "stytch-login", "user_key": "u1", "cookies": {"sy_flow": cookie}}))
        .await
        .unwrap();
    decide(json!({"rollout": "stytch-login", "user_key": "u1", "session_token": "opaque-legacy-session-9d8c"}))
        .await
        .unwrap();
    client
        .patch(format!("{url}/v1/rollouts/stytch-login"))
        .bearer_auth(ADMIN)
        .json(&json!({"percentage": 10}))
        .send()
        .await
        .unwrap();
    client
        .get(format!("{url}/v1/rollouts"))
        .bearer_auth("wrong-token-but-long-enough-1234")
        .send()
        .await
        .unwrap();
    // Redis goes away: error logs too must stay clean.
    redis.stop();
    decide(json!({"rollout": "stytch-login", "user_key": "u1"}))
        .await
        .unwrap();
    client
        .patch(format!("{url}/v1/rollouts/stytch-login"))
        .bearer_auth(ADMIN)
        .json(&json!({"percentage": 20}))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let _ = child.kill();
    let _ = child.wait();
    let text = logs.lock().unwrap().clone();
    assert!(
        text.contains("DEBUG") || text.contains("TRACE"),
        "debug logging was on: {text}"
    );
    assert!(text.contains("lost Redis"), "the outage was logged: {text}");
    for secret in [
        ADMIN,
        GOOD_SECRET,
        "redis-pass-7f3e9a",
        jwt.as_str(),
        "user-test-jwt-subject",
        "opaque-legacy-session-9d8c",
        "wrong-token-but-long-enough-1234",
        cookie.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} appears in the logs");
    }
}

/// A tiny blocking GET over a std socket, for tests that run no async runtime.
fn blocking_get(url: &str) -> String {
    blocking_get_with_token(url, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_has_an_id_and_admin_changes_are_json_log_lines_with_actor_rollout_and_version(
) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = switchyard(dir.path());
    cmd.env("SWITCHYARD__SERVER__BIND", "127.0.0.1:0")
        .env("SWITCHYARD__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().unwrap();
    {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }
    let url = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let found = lines.lock().unwrap().iter().find_map(|l| {
            l.split("listening on ")
                .nth(1)
                .map(|r| r.split_whitespace().next().unwrap().to_string())
        });
        if let Some(url) = found {
            break url;
        }
    };
    let token = std::fs::read_to_string(dir.path().join("data/admin-token")).unwrap();
    let client = ::reqwest::Client::new();
    let r = client
        .patch(format!("{url}/v1/rollouts/stytch-login"))
        .bearer_auth(token.trim())
        .header("X-Request-Id", "req-from-the-caller-42")
        .json(&json!({"percentage": 12.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-from-the-caller-42");
    let mut made = std::collections::HashSet::new();
    for _ in 0..3 {
        let r = client.get(format!("{url}/healthz")).send().await.unwrap();
        made.insert(r.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    assert_eq!(
        made.len(),
        3,
        "a new id is made for each request without one: {made:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = child.kill();
    let _ = child.wait();
    let lines = lines.lock().unwrap().clone();
    let change = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "rollout changed" && v["fields"]["version"] == 2)
        .unwrap_or_else(|| panic!("no JSON line for the change: {lines:#?}"));
    assert_eq!(change["fields"]["actor"], "local-admin");
    assert_eq!(change["fields"]["rollout"], "stytch-login");
    assert_eq!(
        change["span"]["request_id"], "req-from-the-caller-42",
        "{change}"
    );
}

#[test]
fn config_is_accepted_before_or_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extra.toml"),
        "[store]\nprefix = \"from-the-file\"\n",
    )
    .unwrap();
    for args in [
        ["--config", "extra.toml", "check-config"],
        ["check-config", "--config", "extra.toml"],
    ] {
        let out = switchyard(dir.path()).args(args).output().unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {text}");
        assert!(
            text.contains("prefix = \"from-the-file\""),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn healthcheck_exits_0_for_a_running_service_and_refuses_https_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = switchyard(dir.path());
    cmd.env("SWITCHYARD__SERVER__BIND", "127.0.0.1:0");
    let (mut child, url) = start(cmd);
    let healthy = switchyard(dir.path())
        .args(["healthcheck", "--url", &format!("{url}/healthz")])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(healthy.status.code(), Some(0), "{}", output_text(&healthy));

    let out = switchyard(dir.path())
        .args(["healthcheck", "--url", "https://localhost/healthz"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("https:// is not supported"), "{text}");
}

#[test]
fn list_settings_and_tokens_come_from_json_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = json!([
        {"name": "from-env-admin", "token": ADMIN, "scopes": ["admin"]},
        {"name": "from-env-middleware", "token": "middleware-token-0123456789", "scopes": ["decide"]},
    ])
    .to_string();
    let out = switchyard(dir.path())
        .env(
            "SWITCHYARD__LEGACY__ISSUERS",
            r#"["https://legacy.example"]"#,
        )
        .env(
            "SWITCHYARD__STYTCH__ISSUERS",
            r#"["https://login.example", "https://auth.example"]"#,
        )
        .env("SWITCHYARD__TOKENS", &tokens)
        .arg("check-config")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(r#"issuers = ["https://legacy.example"]"#),
        "{text}"
    );
    assert!(
        text.contains(r#"issuers = ["https://login.example", "https://auth.example"]"#),
        "{text}"
    );
    assert!(text.contains("name = \"from-env-middleware\""), "{text}");
    assert!(!text.contains(ADMIN), "{text}");

    for (variable, value) in [
        ("SWITCHYARD__LEGACY__ISSUERS", "https://legacy.example"),
        (
            "SWITCHYARD__TOKENS",
            r#"[{"name":"x","token":"half-a-secret"#,
        ),
    ] {
        let out = switchyard(dir.path())
            .env(variable, value)
            .arg("check-config")
            .output()
            .unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{variable}: {text}");
        assert!(
            text.contains(&format!("{variable} is not")) && text.contains("JSON array"),
            "{variable}: {text}"
        );
        assert!(!text.contains("half-a-secret"), "{text}");
    }

    // A container with no file at all: the tokens and the cookie secret from variables.
    let mut cmd = switchyard(dir.path());
    cmd.env("SWITCHYARD__SERVER__BIND", "127.0.0.1:0")
        .env("SWITCHYARD__COOKIES__SECRET", GOOD_SECRET)
        .env("SWITCHYARD__TOKENS", &tokens);
    let (mut child, url) = start(cmd);
    let rollouts = blocking_get_with_token(&format!("{url}/v1/rollouts"), Some(ADMIN));
    let _ = child.kill();
    let _ = child.wait();
    assert!(rollouts.starts_with("HTTP/1.0 200"), "{rollouts}");
    assert!(rollouts.contains("stytch-login"), "{rollouts}");
    for generated in ["data/admin-token", "data/cookie-secret"] {
        assert!(!dir.path().join(generated).exists(), "{generated} written");
    }
}

/// [`blocking_get`], with a bearer token when one is given.
fn blocking_get_with_token(url: &str, token: Option<&str>) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, String::from("/")), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n{auth}\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// Runs a start that must fail; one that starts after all is killed and reported, not awaited.
fn failed_start(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("it started: {}", output_text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The names of the entries of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_start_that_fails_on_geoip_or_a_taken_port_leaves_nothing_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let cases = [
        (
            "missing GeoIP file",
            vec![
                ("SWITCHYARD__SERVER__BIND", "127.0.0.1:0".to_string()),
                ("SWITCHYARD__GEOIP__DATABASE", "missing.mmdb".to_string()),
            ],
            "cannot read GeoIP database missing.mmdb".to_string(),
        ),
        (
            "port taken",
            vec![("SWITCHYARD__SERVER__BIND", taken_addr.clone())],
            format!("cannot listen on {taken_addr}"),
        ),
    ];
    for (case, vars, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = failed_start(switchyard(dir.path()).envs(vars));
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{case}: {text}");
        assert!(text.contains(&message), "{case}: {text}");
        assert_eq!(entries(dir.path()), Vec::<String>::new(), "{case}: {text}");
    }

    // A file that is not a MaxMind database: refused, and still no data folder.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("geo.mmdb"), "not a database").unwrap();
    let out = failed_start(
        switchyard(dir.path())
            .env("SWITCHYARD__SERVER__BIND", "127.0.0.1:0")
            .env("SWITCHYARD__GEOIP__DATABASE", "geo.mmdb"),
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("invalid GeoIP database geo.mmdb"), "{text}");
    assert_eq!(entries(dir.path()), ["geo.mmdb"], "{text}");
    drop(taken);
}

#[test]
fn check_config_reports_a_missing_geoip_file_and_an_address_it_cannot_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec![
                ("SWITCHYARD__SERVER__BIND", "127.0.0.1:0".to_string()),
                ("SWITCHYARD__GEOIP__DATABASE", "missing.mmdb".to_string()),
            ],
            "error: geoip.database: cannot read GeoIP database missing.mmdb".to_string(),
        ),
        (
            vec![("SWITCHYARD__SERVER__BIND", taken_addr.clone())],
            format!("error: server.bind: cannot listen on {taken_addr}"),
        ),
        (
            // TEST-NET-1: an address of no interface here.
            vec![("SWITCHYARD__SERVER__BIND", "192.0.2.1:8080".to_string())],
            "error: server.bind: cannot listen on 192.0.2.1:8080".to_string(),
        ),
        (
            vec![("SWITCHYARD__SERVER__BIND", "localhost-8080".to_string())],
            "error: server.bind: 'localhost-8080' is not an address".to_string(),
        ),
    ];
    for (vars, message) in cases {
        let out = switchyard(dir.path())
            .envs(vars)
            .arg("check-config")
            .output()
            .unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{message}: {text}");
        assert!(text.contains(&message), "{message}: {text}");
    }
    let out = switchyard(dir.path())
        .env("SWITCHYARD__SERVER__BIND", "127.0.0.1:0")
        .env(
            "SWITCHYARD__GEOIP__DATABASE",
            crate::helpers::repo_path("geoip/GeoIP2-Country-Test.mmdb"),
        )
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(
        entries(dir.path()),
        Vec::<String>::new(),
        "check-config writes nothing"
    );
    drop(taken);
}

#[test]
fn a_generated_secret_read_back_from_disk_is_checked_like_a_configured_one() {
    for (file, rule) in [
        ("admin-token", "must be at least 16 characters"),
        ("cookie-secret", "must be at least 32 bytes"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data").join(file), "abc\n").unwrap();
        let out =
            failed_start(switchyard(dir.path()).env("SWITCHYARD__SERVER__BIND", "127.0.0.1:0"));
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {text}");
        assert!(
            text.contains(&format!("data/{file}: {rule}")),
            "{file}: {text}"
        );
        assert!(!text.contains("abc"), "the secret is not shown: {text}");
        assert_eq!(
            entries(&dir.path().join("data")),
            [file],
            "nothing else is written: {text}"
        );

        let out = switchyard(dir.path())
            .env("SWITCHYARD__SERVER__BIND", "127.0.0.1:0")
            .arg("check-config")
            .output()
            .unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {text}");
        assert!(
            text.contains(&format!("data/{file}: {rule}")),
            "{file}: {text}"
        );
    }
}

#[test]
fn regenerating_a_lost_cookie_secret_warns_that_existing_cookies_are_void() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let mut cmd = switchyard(dir.path());
        cmd.env("SWITCHYARD__SERVER__BIND", "127.0.0.1:0")
            .env("NO_COLOR", "1");
        let (mut child, _, lines) = start_logged(cmd);
        let _ = child.kill();
        let _ = child.wait();
        lines.join("\n")
    };
    let first = run();
    assert!(
        !first.contains("void"),
        "a first start has no cookies to void: {first}"
    );
    let secret = dir.path().join("data/cookie-secret");
    let old = std::fs::read_to_string(&secret).unwrap();
    std::fs::remove_file(&secret).unwrap();
    let second = run();
    let warning = second
        .lines()
        .find(|l| l.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning: {second}"));
    assert!(
        warning.contains("every existing sticky and override cookie is now void"),
        "{warning}"
    );
    assert!(warning.contains("data/cookie-secret"), "{warning}");
    assert_ne!(std::fs::read_to_string(&secret).unwrap(), old);
}

/// Writes that the binary answered with a 2xx: enrolled user keys, and patched versions with
/// their percentage.
#[derive(Default)]
struct Answered {
    enrolled: Vec<String>,
    patched: Vec<(u64, f64)>,
}

/// Writes until the service stops answering: enrollments when `patches` is false, else
/// percentage patches of the default rollout. Records each write answered with a 2xx.
async fn write_until_refused(
    url: String,
    writer: usize,
    patches: bool,
    answered: std::sync::Arc<std::sync::Mutex<Answered>>,
) {
    let client = reqwest::Client::new();
    for n in 0.. {
        let request = if patches {
            client
                .patch(format!("{url}/v1/rollouts/stytch-login"))
                .json(&json!({"percentage": n % 100}))
        } else {
            client.put(format!(
                "{url}/v1/rollouts/stytch-login/enrollments/user-{writer}-{n}"
            ))
        };
        let Ok(response) = request.bearer_auth(ADMIN).send().await else {
            return;
        };
        assert!(response.status().is_success(), "{}", response.status());
        let body: serde_json::Value = if patches {
            let Ok(body) = response.json().await else {
                return;
            };
            body
        } else {
            serde_json::Value::Null
        };
        let mut answered = answered.lock().unwrap();
        if patches {
            answered
                .patched
                .push((body["version"].as_u64().unwrap(), f64::from(n % 100)));
        } else {
            answered.enrolled.push(format!("user-{writer}-{n}"));
        }
    }
}

/// SPEC §5: a `kill -9` in the middle of a stream of writes loses none that were answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_in_the_middle_of_a_stream_of_writes_loses_no_answered_write() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = json!([
        {"name": "ops", "token": ADMIN, "scopes": ["admin", "enroll", "read"]},
    ])
    .to_string();
    let service = || {
        let mut cmd = switchyard(dir.path());
        cmd.env("SWITCHYARD__SERVER__BIND", "127.0.0.1:0")
            .env("SWITCHYARD__COOKIES__SECRET", GOOD_SECRET)
            .env("SWITCHYARD__TOKENS", &tokens)
            .env("SWITCHYARD__STORE__PATH", "kept/store.redb");
        start(cmd)
    };
    let (mut child, url) = service();
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Answered::default()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            tokio::spawn(write_until_refused(
                url.clone(),
                writer,
                writer == 0,
                answered.clone(),
            ))
        })
        .collect();
    // SIGKILL while all four writers have requests in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while answered.lock().unwrap().enrolled.len() < 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "too few writes answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    assert!(!answered.patched.is_empty());

    let (mut child, url) = service();
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(format!("{url}{path}")).bearer_auth(ADMIN);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let mut enrolled = std::collections::HashSet::new();
    let mut cursor = String::new();
    loop {
        let page = get(format!(
            "/v1/rollouts/stytch-login/enrollments?limit=1000{cursor}"
        ))
        .await;
        for user in page["user_keys"].as_array().unwrap() {
            enrolled.insert(user.as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let history = get("/v1/rollouts/stytch-login/history".into()).await;
    let versions: std::collections::HashMap<u64, f64> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["version"].as_u64().unwrap(),
                entry["snapshot"]["percentage"].as_f64().unwrap(),
            )
        })
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let lost: Vec<&String> = answered
        .enrolled
        .iter()
        .filter(|u| !enrolled.contains(*u))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered enrollments lost, among them {:?}",
        lost.len(),
        answered.enrolled.len(),
        &lost[..lost.len().min(10)]
    );
    for (version, percentage) in &answered.patched {
        assert_eq!(
            versions.get(version),
            Some(percentage),
            "answered patch to version {version} kept"
        );
    }
    // For the record (`--nocapture`): how much was in flight and found again.
    println!(
        "kill -9: {} answered enrollments and {} answered patches, all found after the restart \
         ({} enrollments in the file)",
        answered.enrolled.len(),
        answered.patched.len(),
        enrolled.len()
    );
}
