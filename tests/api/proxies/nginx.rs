//! A real nginx (Debian's package: `apt-get install -y nginx`, which scripts/test.sh does)
//! started on a free port with `examples/nginx/switchyard.conf`, only its ports changed, in
//! front of the service and three tiny upstreams.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use reqwest::Client;
use secrecy::SecretString;
use serde_json::json;
use switchyard::config::{Scope, TokenSettings};

use super::{
    check_routing, find_program, free_port, login_flow, wait_for_port, Browser, Upstreams,
};
use crate::helpers::*;

const EXAMPLE: &str = "examples/nginx/switchyard.conf";
/// The proxy's own token (scope decide), written into switchyard-token.conf.
const PROXY_TOKEN: &str = "nginx-proxy-token-0123456789";

/// nginx running in the foreground in its own folder (config, pid, logs, temp files).
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Nginx {
    fn binary() -> PathBuf {
        find_program("nginx", &[PathBuf::from("/usr/sbin/nginx")]).unwrap_or_else(|| {
            panic!(
                "nginx is not installed: `apt-get install -y nginx` (scripts/test.sh installs it; \
                 the tests start their own instance, never the system service)"
            )
        })
    }

    /// The example with its addresses replaced by the test's: exactly what the README shows
    /// otherwise.
    fn site(switchyard: u16, upstreams: &Upstreams, port: u16) -> String {
        let example = std::fs::read_to_string(repo_path(EXAMPLE)).expect("the example exists");
        let mut site = example.clone();
        for (from, to) in [
            (
                "listen 8000;".to_string(),
                format!("listen 127.0.0.1:{port};"),
            ),
            ("127.0.0.1:8080".into(), format!("127.0.0.1:{switchyard}")),
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
        ] {
            assert!(site.contains(&from), "{EXAMPLE} has no '{from}'");
            site = site.replace(&from, &to);
        }
        site
    }

    async fn start(site: &str) -> Nginx {
        let binary = Nginx::binary();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("switchyard.conf"), site).unwrap();
        std::fs::write(
            dir.path().join("switchyard-token.conf"),
            format!("proxy_set_header X-Switchyard-Token \"{PROXY_TOKEN}\";\n"),
        )
        .unwrap();
        // The main configuration a Debian nginx.conf would be, with every path in the folder.
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp/body;\n\
                 proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n\
                 uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
                 include switchyard.conf;\n}}\n"
            ),
        )
        .unwrap();
        let port = site_port(site);
        let child = Command::new(binary)
            .args(["-p", &format!("{d}/"), "-c", &format!("{d}/nginx.conf")])
            .args(["-e", &format!("{d}/error.log")])
            .args(["-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx { child, dir, port };
        let log = nginx.dir.path().join("error.log");
        let child = &mut nginx.child;
        wait_for_port(port, || match child.try_wait() {
            Ok(Some(status)) => Err(format!("{status}: {}", read(&log))),
            _ => Ok(()),
        })
        .await;
        nginx
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn version() -> String {
        let output = Command::new(Nginx::binary()).arg("-v").output().unwrap();
        String::from_utf8_lossy(&output.stderr).trim().to_string()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn site_port(site: &str) -> u16 {
    site.lines()
        .find_map(|l| l.trim().strip_prefix("listen 127.0.0.1:"))
        .and_then(|rest| rest.trim_end_matches(';').parse().ok())
        .expect("a listen line")
}

/// The service as the README runs it behind nginx over plain HTTP: defaults, the proxy's
/// token, and cookies without `Secure`.
async fn service() -> TestApp {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    settings.tokens.push(TokenSettings {
        name: "nginx".into(),
        token: SecretString::from(PROXY_TOKEN.to_string()),
        scopes: vec![Scope::Decide],
    });
    settings.forward_auth.secure_cookies = false;
    spawn_with(settings, dir).await
}

#[tokio::test]
async fn nginx_routes_login_by_the_decision_keeps_devices_in_place_and_obeys_the_kill_switch() {
    let app = service().await;
    let upstreams = Upstreams::start().await;
    let nginx = Nginx::start(&Nginx::site(app.port(), &upstreams, free_port())).await;

    // A load balancer in front of nginx, on loopback (a trusted proxy), forwards the client's
    // address; nginx appends its own peer's.
    let observed = check_routing(&app, &nginx.url("/login"), 200, "X-Forwarded-For").await;
    eprintln!("{}: {observed:?}", Nginx::version());

    // Everything else goes to the application with the flow and the session action.
    let mut browser = Browser::new(&Client::new());
    let body = browser.visit(&nginx.url("/account")).await;
    assert_eq!(body, "app flow=legacy action=login_legacy token=-");
}

#[tokio::test]
async fn nginx_falls_back_to_the_legacy_login_when_switchyard_is_away() {
    let app = service().await;
    app.patch_rollout("stytch-login", json!({"percentage": 100}))
        .await;
    let upstreams = Upstreams::start().await;
    let nginx = Nginx::start(&Nginx::site(app.port(), &upstreams, free_port())).await;
    let mut browser = Browser::new(&Client::new());
    assert_eq!(
        login_flow(&browser.visit(&nginx.url("/login")).await),
        "stytch"
    );
    app.stop().await;
    let mut browser = Browser::new(&Client::new());
    assert_eq!(
        login_flow(&browser.visit(&nginx.url("/login")).await),
        "legacy"
    );
    let body = browser.visit(&nginx.url("/account")).await;
    assert_eq!(body, "app flow=legacy action=- token=-");
}
