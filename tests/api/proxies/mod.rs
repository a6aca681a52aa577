//! Real proxies in front of the service (SPEC §11): nginx (`nginx.rs`) and Traefik
//! (`traefik.rs`), each started by the test on a free port with the shipped example
//! configuration (only its ports changed), in front of tiny upstreams that answer which one
//! they are. A browser-like client keeps each device's cookies.
//!
//! A proxy that is not installed fails its test with a message saying how to get it
//! (scripts/test.sh installs both).

mod nginx;
mod traefik;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::{Client, StatusCode};

/// A tiny upstream: answers every request with `<name> flow=<X-Switchyard-Flow>
/// action=<X-Switchyard-Session-Action> token=<X-Switchyard-Token>`, the headers the proxy
/// forwarded (`-` for one that is absent).
pub struct Upstream {
    pub port: u16,
    handle: actix_web::dev::ServerHandle,
}

impl Upstream {
    pub async fn start(name: &'static str) -> Upstream {
        let server = HttpServer::new(move || {
            App::new().default_service(web::to(move |req: HttpRequest| {
                let header = |n: &str| {
                    req.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string()
                };
                let body = format!(
                    "{name} flow={} action={} token={}",
                    header("x-switchyard-flow"),
                    header("x-switchyard-session-action"),
                    header("x-switchyard-token")
                );
                async move { HttpResponse::Ok().body(body) }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("an upstream binds");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Upstream { port, handle }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// The three upstreams of the examples: the Stytch login, the legacy login, the application.
pub struct Upstreams {
    pub stytch: Upstream,
    pub legacy: Upstream,
    pub app: Upstream,
}

impl Upstreams {
    pub async fn start() -> Upstreams {
        Upstreams {
            stytch: Upstream::start("stytch-login").await,
            legacy: Upstream::start("legacy-login").await,
            app: Upstream::start("app").await,
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then let go for the proxy to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A program on PATH or in `extra` (the first that exists).
pub fn find_program(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain(extra.iter().cloned())
        .find(|p| p.is_file())
}

/// Waits until `port` accepts connections, or `alive` says the process is gone, or 10 s.
pub async fn wait_for_port(port: u16, mut alive: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Err(why) = alive() {
            panic!("the proxy stopped before listening on {port}: {why}");
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One browser: keeps its cookies as a browser does on a plain-HTTP origin (a `Secure`
/// cookie is not kept; `Max-Age=0` removes one) and sends them back. `headers` go with every
/// request (say, the address a load balancer in front of the proxy forwards).
pub struct Browser {
    client: Client,
    cookies: BTreeMap<String, String>,
    headers: Vec<(String, String)>,
}

impl Browser {
    pub fn new(client: &Client) -> Browser {
        Browser {
            client: client.clone(),
            cookies: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Browser {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// GETs `url`; the body (the upstream's answer).
    pub async fn visit(&mut self, url: &str) -> String {
        let mut request = self.client.get(url);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request = request.header("Cookie", jar.join("; "));
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("the proxy answers");
        let status = response.status();
        for line in response.headers().get_all("set-cookie") {
            self.keep(line.to_str().expect("a cookie line is text"));
        }
        let body = response.text().await.expect("a text body");
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        body
    }

    fn keep(&mut self, line: &str) {
        let mut parts = line.split(';').map(str::trim);
        let (name, value) = parts
            .next()
            .and_then(|pair| pair.split_once('='))
            .expect("name=value");
        let attributes: Vec<String> = parts.map(str::to_ascii_lowercase).collect();
        if attributes.iter().any(|a| a == "secure") {
            return;
        }
        if attributes.iter().any(|a| a == "max-age=0") {
            self.cookies.remove(name);
        } else {
            self.cookies.insert(name.into(), value.into());
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }
}

/// Which login upstream a body comes from (`stytch` or `legacy`), checking that the proxy
/// told it the same flow.
pub fn login_flow(body: &str) -> &'static str {
    if body.starts_with("stytch-login flow=stytch ") {
        "stytch"
    } else if body.starts_with("legacy-login flow=legacy ") {
        "legacy"
    } else {
        panic!("not a login upstream's answer, or the flow header disagrees: {body}")
    }
}

/// What the routing checks saw, printed for the record (`--nocapture`).
#[derive(Debug, Default)]
pub struct Observed {
    pub stytch_at_30: usize,
    pub repeat_visits: usize,
    pub stytch_at_60: usize,
    pub moved_forward: usize,
    /// The kill switch's PATCH, sent to answered (every proxied answer after it was legacy).
    pub kill_switch_ms: u128,
    /// From the PATCH sent to the first proxied answer after it (legacy).
    pub first_legacy_after_kill_ms: u128,
    pub office_stytch: usize,
    pub elsewhere_legacy: usize,
}

/// Whether `count` of `n` is within 4 standard deviations of the share `p` (a false alarm
/// about once in 15,000 runs).
fn near_share(count: usize, n: usize, p: f64) -> bool {
    let expected = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (count as f64 - expected).abs() <= 4.0 * sd
}

/// The routing checks of issue 12 through a proxy whose `/login` is at `login_url`, in front
/// of `app` (whose rollout `stytch-login` the proxy asks about): the Stytch share of `devices`
/// new devices near 30 %, every device on the same upstream on repeat visits, a ramp to 60 %
/// that moves devices forward only, the kill switch sending all to legacy at once, and an IP
/// rule routing by the client address that a load balancer in front of the proxy forwards in
/// `client_address_header`.
pub async fn check_routing(
    app: &crate::helpers::TestApp,
    login_url: &str,
    devices: usize,
    client_address_header: &str,
) -> Observed {
    use serde_json::json;
    let client = Client::new();
    let mut observed = Observed::default();
    app.patch_rollout("stytch-login", json!({"percentage": 30}))
        .await;

    let mut browsers: Vec<Browser> = (0..devices).map(|_| Browser::new(&client)).collect();
    let mut flows = Vec::with_capacity(devices);
    for browser in &mut browsers {
        let flow = login_flow(&browser.visit(login_url).await);
        assert!(
            browser.cookie("sy_flow").is_some(),
            "a new device gets the sticky cookie through the proxy"
        );
        flows.push(flow);
    }
    observed.stytch_at_30 = flows.iter().filter(|f| **f == "stytch").count();
    assert!(
        near_share(observed.stytch_at_30, devices, 0.3),
        "{} of {devices} devices on Stytch at 30 %",
        observed.stytch_at_30
    );

    for _ in 0..2 {
        for (browser, flow) in browsers.iter_mut().zip(&flows) {
            assert_eq!(login_flow(&browser.visit(login_url).await), *flow);
            observed.repeat_visits += 1;
        }
    }

    app.patch_rollout("stytch-login", json!({"percentage": 60}))
        .await;
    for (browser, flow) in browsers.iter_mut().zip(flows.iter_mut()) {
        let now = login_flow(&browser.visit(login_url).await);
        assert!(
            !(*flow == "stytch" && now == "legacy"),
            "a ramp-up moved a device back to legacy"
        );
        if *flow == "legacy" && now == "stytch" {
            observed.moved_forward += 1;
        }
        *flow = now;
        // And it stays where it is now.
        assert_eq!(login_flow(&browser.visit(login_url).await), now);
    }
    observed.stytch_at_60 = flows.iter().filter(|f| **f == "stytch").count();
    assert!(
        near_share(observed.stytch_at_60, devices, 0.6),
        "{} of {devices} devices on Stytch at 60 %",
        observed.stytch_at_60
    );

    let killed = Instant::now();
    app.patch_rollout("stytch-login", json!({"enabled": false}))
        .await;
    observed.kill_switch_ms = killed.elapsed().as_millis();
    for browser in &mut browsers {
        assert_eq!(login_flow(&browser.visit(login_url).await), "legacy");
        if observed.first_legacy_after_kill_ms == 0 {
            observed.first_legacy_after_kill_ms = killed.elapsed().as_millis();
        }
    }
    assert!(
        observed.kill_switch_ms < 1000,
        "the kill switch took {} ms",
        observed.kill_switch_ms
    );

    app.patch_rollout(
        "stytch-login",
        json!({"enabled": true, "percentage": 0, "rules": [
            {"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"}]}),
    )
    .await;
    for i in 0..20 {
        let mut office = Browser::new(&client)
            .with_header(client_address_header, &format!("203.0.113.{}", i + 1));
        if login_flow(&office.visit(login_url).await) == "stytch" {
            observed.office_stytch += 1;
        }
        let mut elsewhere = Browser::new(&client)
            .with_header(client_address_header, &format!("198.51.100.{}", i + 1));
        if login_flow(&elsewhere.visit(login_url).await) == "legacy" {
            observed.elsewhere_legacy += 1;
        }
    }
    assert_eq!(
        (observed.office_stytch, observed.elsewhere_legacy),
        (20, 20),
        "the office rule routes by the forwarded client address"
    );
    observed
}
