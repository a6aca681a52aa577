//! `dashboards/`: the Grafana dashboard and the Prometheus alert rules, checked against a real
//! Prometheus server (Debian's `prometheus` package; scripts/test.sh unpacks it into
//! target/tools/bin) that scrapes a running Switchyard. Every PromQL expression of the
//! dashboard and of the alert rules must parse and return data.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const DASHBOARD: &str = "dashboards/switchyard.json";
const ALERTS: &str = "dashboards/alerts.yml";
const ALERT_TESTS: &str = "dashboards/alerts_test.yml";

/// Values given to Grafana's template variables before an expression is sent to Prometheus.
const VARIABLES: &[(&str, &str)] = &[
    ("__rate_interval", "1m"),
    ("__interval", "15s"),
    ("__interval_ms", "15000"),
    ("__range", "5m"),
    ("__range_s", "300"),
    ("__range_ms", "300000"),
    ("rollout", ".*"),
    ("instance", ".*"),
];

/// Multi-value variables (with "All" = `.*`): usable only as `label=~"$name"`.
const MULTI_VALUE: &[&str] = &["rollout", "instance"];

/// Every metric of SPEC §6 (and the restores, rule and forward-auth counters), each of which the
/// dashboard shows.
const METRICS: &[&str] = &[
    "switchyard_decisions_total",
    "switchyard_decision_duration_seconds",
    "switchyard_http_requests_total",
    "switchyard_rollout_percentage",
    "switchyard_rollout_enabled",
    "switchyard_rollout_version",
    "switchyard_cookies_rejected_total",
    "switchyard_store_up",
    "switchyard_store_errors_total",
    "switchyard_store_restores_total",
    "switchyard_last_sync_timestamp_seconds",
    "switchyard_enrollments",
    "switchyard_login_outcomes_total",
    "switchyard_build_info",
    "switchyard_rule_matches_total",
    "switchyard_schedule_steps_applied_total",
    "switchyard_forward_auth_unknown_rollout_total",
    "switchyard_guard_trips_total",
    "switchyard_guard_state",
];

// ------------------------------------------------------------------------------------------
// Tools

/// `prometheus` or `promtool`: on PATH, else in target/tools/bin (where scripts/test.sh puts
/// them).
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain(std::iter::once(repo_path("target/tools/bin").join(name)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is neither on PATH nor in target/tools/bin: run scripts/test.sh, which \
                 unpacks it from Debian's `prometheus` package"
            )
        })
}

fn promtool(args: &[&str]) -> Output {
    Command::new(tool("promtool"))
        .args(args)
        .current_dir(repo_path(""))
        .output()
        .expect("promtool runs")
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ------------------------------------------------------------------------------------------
// Extracting the expressions

/// One PromQL expression and where it comes from.
#[derive(Debug, Clone)]
struct Expression {
    origin: String,
    expr: String,
}

/// Every `expr` anywhere in the dashboard (panel targets, nested rows, annotations), as written.
fn dashboard_exprs(dashboard: &Value) -> Vec<Expression> {
    fn walk(value: &Value, origin: &str, out: &mut Vec<Expression>) {
        match value {
            Value::Object(map) => {
                let here = match (map.get("title"), map.get("name"), map.get("refId")) {
                    (Some(Value::String(t)), _, _) => format!("{origin} / {t}"),
                    (_, Some(Value::String(n)), _) => format!("{origin} / {n}"),
                    (_, _, Some(Value::String(r))) => format!("{origin} [{r}]"),
                    _ => origin.to_string(),
                };
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr", Value::String(expr)) => out.push(Expression {
                            origin: here.clone(),
                            expr: expr.clone(),
                        }),
                        _ => walk(v, &here, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, origin, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, "dashboard", &mut out);
    out
}

/// The `label_values(selector, label)` queries of the dashboard's query variables.
fn variable_queries(dashboard: &Value) -> Vec<(String, String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let query = match &v["query"] {
                Value::String(q) => q.clone(),
                other => other["query"].as_str().expect("a query").to_string(),
            };
            let inner = query
                .trim()
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| {
                    panic!("variable {}: not label_values(...): {query}", v["name"])
                });
            let (selector, label) = inner
                .rsplit_once(',')
                .expect("label_values(selector, label)");
            (
                v["name"].as_str().unwrap().to_string(),
                selector.trim().to_string(),
                label.trim().to_string(),
            )
        })
        .collect()
}

/// Replaces Grafana's template variables (`$name`, `${name}`, `${name:format}`) by the
/// `VARIABLES`; an unknown variable, or a multi-value one used other than as `=~"$name"`, fails.
fn substitute(expr: &str) -> String {
    assert!(
        !expr.contains("[["),
        "deprecated [[variable]] syntax in {expr}"
    );
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').expect("${ is closed");
            let name = braced[..end].split(':').next().unwrap_or_default();
            (name, end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let value = VARIABLES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("unknown template variable ${name} in {expr}"))
            .1;
        if MULTI_VALUE.contains(&name) {
            assert!(
                out.ends_with("=~\""),
                "${name} takes several values: use it as label=~\"${name}\" in {expr}"
            );
        }
        out.push_str(value);
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// One alerting rule of alerts.yml: its name and expression.
#[derive(Debug)]
struct AlertRule {
    name: String,
    expr: String,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The `alert:` names and `expr:` values of a rules file, read line by line: inline, quoted and
/// block (`|`, `>`) scalars.
fn alert_rules(yaml: &str) -> Vec<AlertRule> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut rules = Vec::new();
    let mut name = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start().trim_start_matches("- ");
        if let Some(n) = trimmed.strip_prefix("alert:") {
            name = Some(n.trim().trim_matches(['"', '\'']).to_string());
        } else if let Some(value) = trimmed.strip_prefix("expr:") {
            let key_indent = indent_of(line);
            let value = value.trim();
            let mut continuation = Vec::new();
            while i + 1 < lines.len()
                && (lines[i + 1].trim().is_empty() || indent_of(lines[i + 1]) > key_indent)
            {
                i += 1;
                continuation.push(lines[i].trim());
            }
            let expr = if value.starts_with('|') || value.starts_with('>') {
                continuation.join("\n")
            } else if value.starts_with('"') {
                serde_json::from_str::<String>(value).expect("a double-quoted expr")
            } else if let Some(single) = value.strip_prefix('\'') {
                single.trim_end_matches('\'').replace("''", "'")
            } else {
                std::iter::once(value)
                    .chain(continuation)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            rules.push(AlertRule {
                name: name.take().expect("an expr belongs to an alert"),
                expr: expr.trim().to_string(),
            });
        }
        i += 1;
    }
    rules
}

/// A rules file without its `annotations:` blocks.
fn without_annotations(yaml: &str) -> String {
    let mut out = Vec::new();
    let mut skipping: Option<usize> = None;
    for line in yaml.lines() {
        if let Some(indent) = skipping {
            if line.trim().is_empty() || indent_of(line) > indent {
                continue;
            }
            skipping = None;
        }
        if line.trim_start().starts_with("annotations:") {
            skipping = Some(indent_of(line));
            continue;
        }
        out.push(line);
    }
    out.join("\n") + "\n"
}

// ------------------------------------------------------------------------------------------
// Taking PromQL apart (enough of it for the alert rules)

/// Splits `expr` at the binary operators found outside parentheses, brackets, braces and
/// strings; `ops` are tried longest first. Returns the operands (at least one).
fn split_top_level(expr: &str, ops: &[&str]) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut start = 0;
    let mut i = 0;
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' | b'\'' | b'`' => quote = Some(c),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ if depth == 0 => {
                let found = ops.iter().find(|op| {
                    let op = op.as_bytes();
                    bytes[i..].starts_with(op)
                        && (!word(op[0])
                            || ((i == 0 || !word(bytes[i - 1]))
                                && bytes.get(i + op.len()).is_none_or(|b| !word(*b))))
                });
                if let Some(op) = found {
                    parts.push(expr[start..i].to_string());
                    i += op.len();
                    start = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(expr[start..].to_string());
    parts
}

/// Drops the modifiers that follow a binary operator (`bool`, `on (..)`, `ignoring (..)`,
/// `group_left (..)`, `group_right (..)`) from the start of its right operand.
fn strip_modifiers(operand: &str) -> String {
    let mut rest = operand.trim_start();
    loop {
        let keyword = ["bool", "on", "ignoring", "group_left", "group_right"]
            .into_iter()
            .find(|k| {
                rest.starts_with(k)
                    && !rest[k.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            });
        let Some(keyword) = keyword else { break };
        rest = rest[keyword.len()..].trim_start();
        if rest.starts_with('(') {
            let close = rest.find(')').expect("modifier labels are closed");
            rest = rest[close + 1..].trim_start();
        }
    }
    rest.trim().to_string()
}

/// `expr` without parentheses that enclose all of it.
fn unwrap_parens(expr: &str) -> &str {
    let t = expr.trim();
    if !t.starts_with('(') {
        return t;
    }
    // Where the first parenthesis closes (strings skipped).
    let mut depth = 0;
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in t.char_indices() {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return if i == t.len() - 1 {
                        unwrap_parens(&t[1..i])
                    } else {
                        t
                    };
                }
            }
            _ => {}
        }
    }
    t
}

/// The series an alert condition is made of: the operands of its top-level `or`, `and`,
/// `unless` and comparisons, numbers left out. Each must return data on a healthy service
/// even when the condition (rightly) does not hold.
fn condition_operands(expr: &str) -> Vec<String> {
    let expr = unwrap_parens(expr);
    for ops in [
        &["or"][..],
        &["and", "unless"][..],
        &["==", "!=", ">=", "<=", ">", "<"][..],
    ] {
        let parts = split_top_level(expr, ops);
        if parts.len() > 1 {
            return parts
                .iter()
                .map(|p| strip_modifiers(p))
                .flat_map(|p| condition_operands(&p))
                .collect();
        }
    }
    if expr.parse::<f64>().is_ok() {
        Vec::new()
    } else {
        vec![expr.to_string()]
    }
}

// ------------------------------------------------------------------------------------------
// A real Prometheus

/// A Prometheus server on a free port with its own storage, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    client: Client,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Outcome of an instant query: Prometheus's status, the number of samples, and how many of
/// them are finite numbers.
#[derive(Debug)]
struct Answer {
    ok: bool,
    samples: usize,
    finite: usize,
    body: Value,
}

impl Answer {
    fn has_data(&self) -> bool {
        self.ok && self.finite > 0
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (host:port) every second, with `rules` loaded and
    /// evaluated every second; waits until it is ready.
    async fn start(target: &str, rules: &Path) -> Prometheus {
        let binary = tool("prometheus");
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let config = dir.path().join("prometheus.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                     rule_files:\n  - {rules:?}\n\
                     scrape_configs:\n  - job_name: switchyard\n    static_configs:\n      - targets: [{target:?}]\n",
                ),
            )
            .expect("config written");
            let log = dir.path().join("prometheus.log");
            let port = free_port();
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("prometheus starts");
            let mut server = Prometheus {
                child,
                url: format!("http://127.0.0.1:{port}"),
                client: Client::new(),
                log,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if server.child.try_wait().expect("child status").is_some() {
                    // Most likely the port was taken in the meantime: try another one.
                    last_log = server.log_text();
                    break;
                }
                let ready = server
                    .client
                    .get(format!("{}/-/ready", server.url))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK);
                if ready {
                    return server;
                }
                assert!(
                    Instant::now() < deadline,
                    "Prometheus not ready after 30 s:\n{}",
                    server.log_text()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("Prometheus did not start:\n{last_log}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.url), params)
            .expect("a valid URL");
        let response = self
            .client
            .get(url)
            .send()
            .await
            .expect("Prometheus answers");
        response.json().await.expect("Prometheus answers JSON")
    }

    /// An instant query, now.
    async fn query(&self, expr: &str) -> Answer {
        let body = self.get("/api/v1/query", &[("query", expr)]).await;
        let ok = body["status"] == "success";
        let values: Vec<&Value> = match body["data"]["resultType"].as_str() {
            Some("vector") => body["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| &s["value"][1])
                .collect(),
            Some("matrix") => body["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["values"].as_array().into_iter().flatten())
                .map(|v| &v[1])
                .collect(),
            Some("scalar") => vec![&body["data"]["result"][1]],
            _ => Vec::new(),
        };
        let finite = values
            .iter()
            .filter_map(|v| v.as_str()?.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .count();
        Answer {
            ok,
            samples: values.len(),
            finite,
            body,
        }
    }

    /// The first value of an instant query, if any.
    async fn value(&self, expr: &str) -> Option<f64> {
        let answer = self.query(expr).await;
        answer.body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }

    /// Waits until `expr`'s first value satisfies `done`.
    async fn wait_for(&self, what: &str, expr: &str, done: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = self.value(expr).await.filter(|v| done(*v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({expr}):\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many times the app has been scraped.
    async fn scrapes(&self) -> f64 {
        self.value(r#"count_over_time(up{job="switchyard"}[10m])"#)
            .await
            .unwrap_or(0.0)
    }
}

// ------------------------------------------------------------------------------------------
// Traffic

/// One round of traffic touching every decision reason, several rejected cookies, and login
/// outcomes of both flows.
async fn round(app: &TestApp, n: usize, override_cookie: &str, mobile_cookie: &str) {
    let mut stytch_cookie = None;
    for d in 0..20 {
        let answer = app
            .decide(json!({"rollout": "web", "device_id": format!("device-{n}-{d}")}))
            .await;
        if answer["flow"] == "stytch" && stytch_cookie.is_none() {
            stytch_cookie = answer["set_cookie"]["value"].as_str().map(String::from);
        }
    }
    let sticky = stytch_cookie.expect("at 50 %, one device in 20 goes to Stytch");
    let mut tampered = sticky.clone();
    let last = tampered.pop().expect("a non-empty cookie");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for (body, reason) in [
        (
            json!({"rollout": "web", "user_key": "alice@example.com"}),
            "enrolled",
        ),
        (
            json!({"rollout": "web", "user_key": "bob", "ip": "203.0.113.9"}),
            "rule",
        ),
        (
            json!({"rollout": "web", "device_id": "d", "cookies": {"sy_web": sticky}}),
            "sticky_cookie",
        ),
        (
            json!({"rollout": "web", "device_id": "d", "cookies": {"sy_override": override_cookie}}),
            "override_cookie",
        ),
    ] {
        let answer = app.decide(body).await;
        assert_eq!(answer["reason"], reason, "{answer}");
    }
    for cookie in ["forged", tampered.as_str(), mobile_cookie] {
        app.decide(json!({"rollout": "web", "device_id": "d", "cookies": {"sy_web": cookie}}))
            .await;
    }
    app.decide(json!({"rollout": "mobile", "device_id": format!("m-{n}")}))
        .await;
    for (flow, outcome, times) in [
        ("stytch", "success", 3),
        ("stytch", "failure", 1),
        ("legacy", "success", 4),
        ("legacy", "failure", 1),
    ] {
        for _ in 0..times {
            let response = app
                .post(
                    "/v1/outcomes",
                    BACKEND_TOKEN,
                    &json!({"rollout": "web", "flow": flow, "outcome": outcome}),
                )
                .await;
            assert!(response.status().is_success(), "{}", response.status());
        }
    }
}

// ------------------------------------------------------------------------------------------
// Tests

#[test]
fn the_alert_rules_pass_promtool_check_rules() {
    assert_success(
        &promtool(&["check", "rules", ALERTS]),
        "promtool check rules",
    );
}

#[test]
fn the_alert_rules_fire_as_their_unit_tests_expect() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = std::fs::read_to_string(repo_path(ALERTS)).unwrap();
    std::fs::write(dir.path().join("alerts.yml"), without_annotations(&alerts)).unwrap();
    let tests = dir.path().join("alerts_test.yml");
    std::fs::copy(repo_path(ALERT_TESTS), &tests).unwrap();
    assert_success(
        &promtool(&["test", "rules", tests.to_str().unwrap()]),
        "promtool test rules",
    );
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_description_that_says_what_to_do() {
    let yaml = std::fs::read_to_string(repo_path(ALERTS)).unwrap();
    let rules = alert_rules(&yaml);
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "SwitchyardStoreDown",
            "SwitchyardReplicaBehind",
            "SwitchyardReplicaSyncStale",
            "SwitchyardStytchLoginFailuresAboveLegacy",
            "SwitchyardDecideLatencyHigh",
            "SwitchyardRejectedCookiesBurst",
            "SwitchyardForwardAuthUnknownRollout",
            "SwitchyardGuardTripped",
        ]
    );
    // Each rule's block, from its `- alert:` line to the next one.
    let blocks: Vec<&str> = yaml.split("- alert:").skip(1).collect();
    assert_eq!(blocks.len(), rules.len());
    for (rule, block) in rules.iter().zip(blocks) {
        for needle in [
            "severity:",
            "summary:",
            "description:",
            "What to do:",
            "for:",
        ] {
            assert!(block.contains(needle), "{}: no {needle}", rule.name);
        }
        assert!(
            block.contains("severity: critical") || block.contains("severity: warning"),
            "{}: severity is critical or warning",
            rule.name
        );
    }
}

#[test]
fn the_dashboard_is_an_importable_grafana_dashboard() {
    let text = std::fs::read_to_string(repo_path(DASHBOARD)).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    assert!(
        dashboard["id"].is_null(),
        "no fixed id: Grafana assigns one on import"
    );

    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    let datasource = variable("datasource");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    for name in ["rollout", "instance"] {
        let v = variable(name);
        assert_eq!(v["type"], "query", "${name}");
        assert_eq!(v["multi"], true, "${name}");
        assert_eq!(v["includeAll"], true, "${name}");
        assert_eq!(v["allValue"], ".*", "${name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "${name}");
    }
    assert!(variable("rollout")["query"]
        .as_str()
        .unwrap()
        .starts_with("label_values(switchyard_rollout_version"));

    // Every panel, rows' nested ones included.
    let mut panels = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        panels.push(p);
        panels.extend(p["panels"].as_array().into_iter().flatten());
    }
    let mut ids = BTreeSet::new();
    let mut boxes = Vec::new();
    for p in &panels {
        let title = p["title"].as_str().expect("a title");
        assert!(ids.insert(p["id"].as_u64().expect("an id")), "{title}: id");
        assert!(
            p["description"].as_str().is_some_and(|d| d.len() > 20),
            "{title}: no description"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24 && w > 0 && h > 0, "{title}: gridPos");
        for (other, (ox, oy, ow, oh)) in &boxes {
            assert!(
                x >= ox + ow || ox >= &(x + w) || y >= oy + oh || oy >= &(y + h),
                "{title} overlaps {other}"
            );
        }
        boxes.push((title, (x, y, w, h)));
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            assert!(t["expr"].is_string(), "{title}: a target without expr");
            assert!(refs.insert(t["refId"].as_str().unwrap()), "{title}: refId");
        }
    }

    let annotations = dashboard["annotations"]["list"].as_array().unwrap();
    assert!(annotations.iter().any(|a| {
        a["datasource"]["uid"] == "${datasource}"
            && a["expr"]
                .as_str()
                .is_some_and(|e| e.contains("changes(switchyard_rollout_version"))
    }));

    let exprs = dashboard_exprs(&dashboard);
    for metric in METRICS {
        assert!(
            exprs.iter().any(|e| e.expr.contains(metric)),
            "{metric} is on no panel"
        );
    }
    for e in &exprs {
        substitute(&e.expr); // every variable is known and well used
    }
}

#[test]
fn the_promql_helpers_take_alert_conditions_apart() {
    assert_eq!(
        condition_operands("switchyard_store_up == 0"),
        ["switchyard_store_up"]
    );
    assert_eq!(
        condition_operands("a < on (job, rollout) group_left max by (job, rollout) (a)"),
        ["a", "max by (job, rollout) (a)"]
    );
    assert_eq!(
        condition_operands("(x / y) > 1.5 * (z or 0 * w) + 0.05 and sum(v) >= 50"),
        ["x / y", "1.5 * (z or 0 * w) + 0.05", "sum(v)"]
    );
    assert_eq!(
        condition_operands(r#"rate(m{a="x>y", b=~"and|or"}[5m]) > bool 1"#),
        [r#"rate(m{a="x>y", b=~"and|or"}[5m])"#]
    );
    assert_eq!(condition_operands("(a) / (b)"), ["(a) / (b)"]);
    assert_eq!(
        substitute(r#"rate(m{rollout=~"$rollout", instance=~"${instance}"}[$__rate_interval])"#),
        r#"rate(m{rollout=~".*", instance=~".*"}[1m])"#
    );
    let yaml = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 1m\n      - alert: B\n        expr: |\n          a\n            > 1\n        labels: {}\n      - alert: C\n        expr: \"b > 2\"\n";
    let rules = alert_rules(yaml);
    let got: Vec<(&str, &str)> = rules
        .iter()
        .map(|r| (r.name.as_str(), r.expr.as_str()))
        .collect();
    assert_eq!(got, [("A", "up == 0"), ("B", "a\n> 1"), ("C", "b > 2")]);
}

/// The whole chain: Switchyard serves traffic, a real Prometheus scrapes it and evaluates the
/// alert rules, and every expression of the dashboard and of the rules returns data.
#[tokio::test]
async fn every_promql_expression_returns_data_from_a_real_prometheus() {
    let started = Instant::now();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(dir.path());
    let store_folder = dir.path().join("store");
    settings.store.path = store_folder.join("switchyard.redb");
    // Guards judge every second, so the trip below comes at once.
    settings.guards.interval_seconds = 1;
    let app = spawn_with(settings, dir).await;

    app.create_rollout(rollout(
        "web",
        50.0,
        json!([{"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"}]),
    ))
    .await;
    app.create_rollout(rollout("mobile", 100.0, json!([])))
        .await;
    // A guarded rollout: its guard trips near the end (the trips annotation, panel and alert
    // need an increase, after Prometheus has seen the counter at zero).
    let mut guarded = rollout("guarded", 100.0, json!([]));
    guarded["guard"] = json!({"min_attempts": 200});
    app.create_rollout(guarded).await;
    assert_eq!(
        app.enroll("web", "alice@example.com").await,
        StatusCode::CREATED
    );
    let override_cookie = app.mint_override("web", "stytch", 3600).await;
    let mobile = app
        .decide(json!({"rollout": "mobile", "device_id": "m"}))
        .await;
    let mobile_cookie = mobile["set_cookie"]["value"].as_str().unwrap().to_string();

    let target = app.address.trim_start_matches("http://");
    let prometheus = Prometheus::start(target, &repo_path(ALERTS)).await;
    prometheus
        .wait_for(
            "a first scrape of the rollouts",
            r#"switchyard_rollout_version{rollout="web"}"#,
            |v| v >= 1.0,
        )
        .await;

    // A ramp schedule whose step applies after Prometheus has seen its counter at zero (the
    // schedule-step annotation and panel need an increase).
    let mut ramped = rollout("ramped", 0.0, json!([]));
    let step_at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    ramped["schedule"] = json!({"steps": [{"at": step_at.to_rfc3339(), "percentage": 20}]});
    app.create_rollout(ramped).await;

    // Traffic over several scrapes, with rollout changes in between (annotations).
    for n in 0..2 {
        round(&app, n, &override_cookie, &mobile_cookie).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    app.patch_rollout("web", json!({"percentage": 60})).await;
    app.patch_rollout("mobile", json!({"enabled": false})).await;
    for n in 2..4 {
        round(&app, n, &override_cookie, &mobile_cookie).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }

    // A store outage, and its end: store errors get a series, store_up goes 0 then 1 again.
    let outage_start = unix_now() - 1.0;
    std::fs::remove_dir_all(&store_folder).unwrap();
    std::fs::write(&store_folder, b"in the way").unwrap();
    let response = app
        .send(
            reqwest::Method::PATCH,
            "/v1/rollouts/web",
            Some(ADMIN_TOKEN),
            Some(&json!({"percentage": 50})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::remove_file(&store_folder).unwrap();
    std::fs::create_dir(&store_folder).unwrap();
    app.patch_rollout("web", json!({"percentage": 50})).await;
    round(&app, 4, &override_cookie, &mobile_cookie).await;

    prometheus
        .wait_for(
            "the guard's trip counter at zero",
            r#"switchyard_guard_trips_total{rollout="guarded", action="kill"}"#,
            |v| v == 0.0,
        )
        .await;
    // Its window starts at the first whole 10-second bucket after the rollout was created.
    let view = app.get_json("/v1/rollouts/guarded/guard", READ_TOKEN).await;
    if let Some(start) = view["window_start"].as_str() {
        let start = chrono::DateTime::parse_from_rfc3339(start).unwrap();
        let wait = (start.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
    }
    for (flow, failures) in [("legacy", 6), ("stytch", 45)] {
        for i in 0..300 {
            let outcome = if i < failures { "failure" } else { "success" };
            let body = json!({"rollout": "guarded", "flow": flow, "outcome": outcome});
            let response = app.post("/v1/outcomes", BACKEND_TOKEN, &body).await;
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
    }
    prometheus
        .wait_for(
            "the guard's trip",
            r#"switchyard_guard_trips_total{rollout="guarded", action="kill"}"#,
            |v| v >= 1.0,
        )
        .await;
    prometheus
        .wait_for(
            "the schedule step",
            r#"switchyard_schedule_steps_applied_total{rollout="ramped"}"#,
            |v| v >= 1.0,
        )
        .await;

    // Enough scrapes after the last change for every rate() to have two points, and the
    // rules evaluated on them.
    let scraped = prometheus.scrapes().await;
    prometheus
        .wait_for(
            "three more scrapes",
            r#"count_over_time(up{job="switchyard"}[10m])"#,
            |v| v >= scraped + 3.0,
        )
        .await;
    prometheus
        .wait_for(
            "the store errors' series",
            "count_over_time(switchyard_store_errors_total[10m])",
            |v| v >= 2.0,
        )
        .await;

    // The outage was seen: SwitchyardStoreDown's whole condition held while it lasted.
    let store_down = &alert_rules(&std::fs::read_to_string(repo_path(ALERTS)).unwrap())[0];
    assert_eq!(store_down.name, "SwitchyardStoreDown");
    let during = prometheus
        .get(
            "/api/v1/query_range",
            &[
                ("query", store_down.expr.as_str()),
                ("start", &format!("{outage_start:.3}")),
                ("end", &format!("{:.3}", unix_now())),
                ("step", "0.5"),
            ],
        )
        .await;
    assert!(
        during["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "the store outage was not seen by {}: {during}",
        store_down.expr
    );

    // Prometheus loaded every rule of the file, and evaluated each without error.
    let yaml = std::fs::read_to_string(repo_path(ALERTS)).unwrap();
    let rules = alert_rules(&yaml);
    let deadline = Instant::now() + Duration::from_secs(20);
    let loaded = loop {
        let body = prometheus.get("/api/v1/rules", &[]).await;
        let loaded: Vec<Value> = body["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        if loaded.iter().all(|r| r["health"] == "ok") {
            break loaded;
        }
        assert!(Instant::now() < deadline, "rules not evaluated: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let loaded_names: Vec<&str> = loaded.iter().filter_map(|r| r["name"].as_str()).collect();
    let file_names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        loaded_names, file_names,
        "the expressions read from {ALERTS} are the rules Prometheus loaded"
    );

    // The dashboard: every expression, variables substituted, must return data as it is.
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_path(DASHBOARD)).unwrap()).unwrap();
    let mut failures = Vec::new();
    let mut report = Vec::new();
    let mut checked = 0;
    let mut with_data = 0;
    for e in dashboard_exprs(&dashboard) {
        let expr = substitute(&e.expr);
        let answer = prometheus.query(&expr).await;
        checked += 1;
        if answer.has_data() {
            with_data += 1;
        } else {
            failures.push(format!("{}: {expr}\n  → {}", e.origin, answer.body));
        }
        report.push(format!(
            "  {:<5} {:>3} series  {}",
            if answer.has_data() { "data" } else { "EMPTY" },
            answer.samples,
            e.origin
        ));
    }
    for (name, selector, label) in variable_queries(&dashboard) {
        let selector = substitute(&selector);
        let answer = prometheus.query(&selector).await;
        checked += 1;
        let labelled = answer.body["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["metric"][&label].is_string());
        if answer.has_data() && labelled {
            with_data += 1;
        } else {
            failures.push(format!(
                "${name}: label_values({selector}, {label})\n  → {}",
                answer.body
            ));
        }
        report.push(format!(
            "  {:<5} {:>3} series  ${name} (label_values)",
            if labelled { "data" } else { "EMPTY" },
            answer.samples
        ));
    }

    // The alert rules: the whole condition must parse; it holds on no healthy service, so it is
    // its operands (the series it compares) that must return data.
    for rule in &rules {
        let answer = prometheus.query(&rule.expr).await;
        checked += 1;
        if answer.ok {
            with_data += usize::from(answer.has_data());
        } else {
            failures.push(format!("{}: {}\n  → {}", rule.name, rule.expr, answer.body));
        }
        report.push(format!(
            "  {:<5} {:>3} series  alert {} (whole condition)",
            if answer.ok { "parse" } else { "ERROR" },
            answer.samples,
            rule.name
        ));
        for operand in condition_operands(&rule.expr) {
            let answer = prometheus.query(&operand).await;
            checked += 1;
            if answer.has_data() {
                with_data += 1;
            } else {
                failures.push(format!(
                    "{} (operand): {operand}\n  → {}",
                    rule.name, answer.body
                ));
            }
            report.push(format!(
                "  {:<5} {:>3} series  alert {} operand: {}",
                if answer.has_data() { "data" } else { "EMPTY" },
                answer.samples,
                rule.name,
                operand.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
    }
    println!(
        "{checked} PromQL expressions checked, {with_data} returned data, in {:.1} s:\n{}",
        started.elapsed().as_secs_f64(),
        report.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} expression(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
