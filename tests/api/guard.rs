//! The guard of SPEC §9 end to end, in real time (`guards.interval_seconds = 1`): outcomes
//! reported over HTTP, a trip written as a version by `guard` with its evidence, the metric,
//! a webhook received by a real local HTTP server, `GET /v1/rollouts/{key}/guard`, `pause`
//! with sticky devices kept on Stytch, a fresh window after re-enabling, two replicas on a
//! real Redis tripping once, and a failing webhook that blocks nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard::config::{Backend, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::*;
use crate::redis_server::{free_port, RedisServer};
use crate::replicas::{eventually, metric};

/// A real HTTP server on a free local port that records every JSON body POSTed to it and
/// answers with the statuses it is given, in order (200 once they run out).
struct WebhookReceiver {
    url: String,
    received: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl WebhookReceiver {
    async fn start(statuses: Vec<u16>) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/guard", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(statuses.into_iter()));
        let seen = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                let statuses = statuses.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let body = loop {
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    let (name, value) = l.split_once(':')?;
                                    name.eq_ignore_ascii_case("content-length")
                                        .then(|| value.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if body.len() >= length {
                                assert!(head.starts_with("POST /hooks/guard HTTP/1.1"), "{head}");
                                break body[..length].to_string();
                            }
                        }
                    };
                    let status = statuses.lock().unwrap().next().unwrap_or(200);
                    seen.lock()
                        .unwrap()
                        .push((Instant::now(), serde_json::from_str(&body).expect("JSON")));
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        WebhookReceiver { url, received }
    }

    fn bodies(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// Test settings with guards judged every second and this webhook.
fn guard_settings(dir: &std::path::Path, webhook: Option<&str>) -> Settings {
    let mut settings = test_settings(dir);
    settings.guards.interval_seconds = 1;
    settings.guards.webhook_url = webhook.map(str::to_string);
    settings
}

async fn spawn_guarded(webhook: Option<&str>) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let settings = guard_settings(dir.path(), webhook);
    spawn_with(settings, dir).await
}

/// A replica on `url` with guards judged every second.
async fn guarded_replica(url: &str) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = guard_settings(dir.path(), None);
    settings.store.backend = Backend::Redis;
    settings.store.url = secrecy::SecretString::from(url.to_string());
    settings.store.path = dir.path().join("last-known.redb");
    spawn_with(settings, dir).await
}

/// A rollout `key` at `percentage` with a guard: SPEC §9's example with `action`, but 300
/// attempts per flow at least — so that a guard judging while the 300 + 300 reports of a test
/// are still arriving cannot trip before the last one: the evidence is then exactly what was
/// reported, and the time from the last report to the trip is the guard's reaction time.
fn guarded(key: &str, percentage: f64, action: &str) -> Value {
    let mut body = rollout(key, percentage, json!([]));
    body["guard"] = json!({"window_seconds": 600, "min_attempts": 300,
                           "max_failure_rate_increase": 2.0, "confidence": 0.95,
                           "action": action});
    body
}

async fn guard_view(app: &TestApp, key: &str) -> Value {
    app.get_json(&format!("/v1/rollouts/{key}/guard"), READ_TOKEN)
        .await
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// Waits until the guard of `key` counts what is reported from now on: it has looked, and
/// its window (which starts at the first whole 10-second bucket after the rollout was
/// enabled) has begun.
async fn wait_until_counting(app: &TestApp, key: &str) {
    eventually(Duration::from_secs(5), "the guard's first look", || async {
        guard_view(app, key).await["window_start"].is_string()
    })
    .await;
    let start = time(&guard_view(app, key).await["window_start"]);
    let wait = (start - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    assert!(wait <= Duration::from_secs(12), "window starts in {wait:?}");
    tokio::time::sleep(wait + Duration::from_millis(50)).await;
}

/// Reports `attempts` login attempts of `flow` for `key`, `failures` of them failed, to the
/// given replicas in turn.
async fn report(apps: &[&TestApp], key: &str, flow: &str, attempts: usize, failures: usize) {
    for i in 0..attempts {
        let app = apps[i % apps.len()];
        // Failures spread through the attempts.
        let failed = i * failures / attempts != (i + 1) * failures / attempts;
        let outcome = if failed { "failure" } else { "success" };
        let response = app
            .post(
                "/v1/outcomes",
                BACKEND_TOKEN,
                &json!({"rollout": key, "flow": flow, "outcome": outcome}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
}

/// The history entries written by the guard, oldest first.
async fn guard_entries(app: &TestApp, key: &str) -> Vec<Value> {
    let history = app
        .get_json(&format!("/v1/rollouts/{key}/history"), READ_TOKEN)
        .await;
    let mut entries: Vec<Value> = history["history"]
        .as_array()
        .expect("a history list")
        .iter()
        .filter(|e| e["actor"] == "guard")
        .cloned()
        .collect();
    entries.reverse();
    entries
}

async fn reason_for(app: &TestApp, key: &str, user: &str) -> String {
    app.decide(json!({"rollout": key, "user_key": user})).await["reason"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A user key whose bucket (under `salt`) lies in `range`.
fn user_in(salt: &str, range: std::ops::Range<u16>) -> String {
    (0..)
        .map(|i| format!("user-{i}"))
        .find(|key| range.contains(&bucket_of(salt, key)))
        .expect("some key falls in every range")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stytch_failing_at_15_percent_against_2_kills_the_rollout_within_two_intervals() {
    let receiver = WebhookReceiver::start(Vec::new()).await;
    let app = spawn_guarded(Some(&receiver.url)).await;
    app.create_rollout(guarded("login", 100.0, "kill")).await;
    wait_until_counting(&app, "login").await;
    assert_eq!(reason_for(&app, "login", "someone").await, "percentage");

    report(&[&app], "login", "legacy", 300, 6).await;
    report(&[&app], "login", "stytch", 300, 45).await;
    let last_report = Instant::now();
    let took = eventually(
        Duration::from_secs(4),
        "the kill reaches decide",
        || async { reason_for(&app, "login", "someone").await == "disabled" },
    )
    .await;
    println!(
        "trip visible in decide {} ms after the last report",
        took.as_millis()
    );
    assert!(
        last_report.elapsed() >= took && took < Duration::from_millis(2500),
        "killed {took:?} after the last report (interval 1 s, flush 1 s)"
    );
    // Everyone, at once.
    for i in 0..20 {
        let user = format!("user-{i}");
        let decision = app
            .decide(json!({"rollout": "login", "user_key": user}))
            .await;
        assert_eq!(
            (decision["flow"].as_str(), decision["reason"].as_str()),
            (Some("legacy"), Some("disabled"))
        );
    }

    let entries = guard_entries(&app, "login").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["snapshot"]["enabled"], false);
    assert_eq!(entry["changes"][0]["field"], "enabled");
    let evidence = &entry["evidence"];
    assert_eq!(evidence["action"], "kill");
    assert_eq!(evidence["stytch_attempts"], 300);
    assert_eq!(evidence["stytch_failures"], 45);
    assert_eq!(evidence["legacy_attempts"], 300);
    assert_eq!(evidence["legacy_failures"], 6);
    assert_eq!(evidence["stytch_failure_rate_percent"], 15.0);
    assert_eq!(evidence["legacy_failure_rate_percent"], 2.0);
    let bound = evidence["increase_lower_bound_points"].as_f64().unwrap();
    assert!(bound > 2.0 && bound < 13.0, "{bound}");
    assert_eq!(evidence["max_failure_rate_increase"], 2.0);
    assert_eq!(evidence["confidence"], 0.95);
    // The audit trail carries the same record.
    let audit = app.get_json("/v1/audit", READ_TOKEN).await;
    let audited = audit["audit"]
        .as_array()
        .expect("audit entries")
        .iter()
        .find(|e| e["actor"] == "guard")
        .cloned()
        .expect("the trip is audited");
    assert_eq!(audited["evidence"], *evidence);

    assert_eq!(
        metric(
            &app,
            "switchyard_guard_trips_total{action=\"kill\",rollout=\"login\"}"
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        metric(&app, "switchyard_guard_state{rollout=\"login\"}").await,
        Some(2.0)
    );

    let view = guard_view(&app, "login").await;
    assert_eq!(view["state"], "tripped");
    assert_eq!(view["version"], entry["version"]);
    assert_eq!(view["stytch_failures"], 45);
    assert_eq!(
        view["increase_lower_bound_points"],
        evidence["increase_lower_bound_points"]
    );
    assert!(view["tripped_at"].is_string() && view["evaluated_at"].is_string());

    eventually(Duration::from_secs(3), "the webhook is called", || async {
        !receiver.bodies().is_empty()
    })
    .await;
    let notice = &receiver.bodies()[0];
    let text = notice["text"].as_str().expect("a text line");
    println!("webhook text: {text}");
    assert!(
        text.starts_with(
            "Switchyard guard killed rollout login: Stytch login failures 15.0 % vs legacy 2.0 %"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("version {}", entry["version"])),
        "{text}"
    );
    assert_eq!(notice["rollout"], "login");
    assert_eq!(notice["action"], "kill");
    assert_eq!(notice["version"], entry["version"]);
    assert_eq!(notice["evidence"], *evidence);
    // The guard waits for a person: still one trip, one notice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(guard_entries(&app, "login").await.len(), 1);
    assert_eq!(receiver.bodies().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_failure_rates_and_too_few_attempts_never_trip() {
    let app = spawn_guarded(None).await;
    app.create_rollout(guarded("equal", 50.0, "kill")).await;
    app.create_rollout(guarded("few", 50.0, "kill")).await;
    wait_until_counting(&app, "equal").await;
    wait_until_counting(&app, "few").await;
    // 5 % each, 400 attempts each.
    report(&[&app], "equal", "legacy", 400, 20).await;
    report(&[&app], "equal", "stytch", 400, 20).await;
    // Half of Stytch's 150 attempts fail, none of legacy's 150: but 150 < min_attempts (300).
    report(&[&app], "few", "legacy", 150, 0).await;
    report(&[&app], "few", "stytch", 150, 75).await;
    // Four intervals after the counts are flushed.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    for key in ["equal", "few"] {
        assert!(guard_entries(&app, key).await.is_empty(), "{key} tripped");
        assert_eq!(
            reason_for(&app, key, &user_in(&format!("salt-{key}"), 0..100)).await,
            "percentage"
        );
        assert_eq!(
            metric(
                &app,
                &format!("switchyard_guard_trips_total{{action=\"kill\",rollout=\"{key}\"}}")
            )
            .await,
            Some(0.0)
        );
    }
    let equal = guard_view(&app, "equal").await;
    assert_eq!(equal["state"], "watching");
    assert_eq!(
        (
            equal["stytch_attempts"].as_u64(),
            equal["legacy_attempts"].as_u64()
        ),
        (Some(400), Some(400))
    );
    let bound = equal["increase_lower_bound_points"].as_f64().unwrap();
    assert!(bound < 0.0, "{bound}");
    assert_eq!(
        metric(&app, "switchyard_guard_state{rollout=\"equal\"}").await,
        Some(0.0)
    );
    let few = guard_view(&app, "few").await;
    assert_eq!(few["state"], "insufficient_data");
    assert_eq!(few["stytch_failures"], 75);
    assert!(few["increase_lower_bound_points"].is_null());
    assert_eq!(
        metric(&app, "switchyard_guard_state{rollout=\"few\"}").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_goes_back_one_step_and_devices_that_met_stytch_stay_there() {
    let app = spawn_guarded(None).await;
    let salt = "salt-paused";
    let start = Utc::now();
    let at = |s: i64| {
        (start + chrono::Duration::milliseconds(s)).to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    let mut body = guarded("paused", 0.0, "pause");
    body["schedule"] = json!({"steps": [{"at": at(300), "percentage": 10},
                                        {"at": at(800), "percentage": 25},
                                        {"at": at(3_600_000), "percentage": 50}]});
    app.create_rollout(body).await;
    eventually(Duration::from_secs(3), "two steps applied", || async {
        app.get_json("/v1/rollouts/paused", READ_TOKEN).await["percentage"] == 25.0
    })
    .await;
    // A device between 10 % and 25 % meets Stytch now (sticky cookie); a user there enrolls.
    let device_user = user_in(salt, 1000..2500);
    let met = app
        .decide(json!({"rollout": "paused", "user_key": device_user}))
        .await;
    assert_eq!(met["flow"], "stytch");
    let cookie = met["set_cookie"]["value"]
        .as_str()
        .expect("a sticky cookie")
        .to_string();
    let enrolled_user = user_in(salt, 1500..2500);
    assert_eq!(
        app.enroll("paused", &enrolled_user).await,
        StatusCode::CREATED
    );

    wait_until_counting(&app, "paused").await;
    report(&[&app], "paused", "legacy", 300, 6).await;
    report(&[&app], "paused", "stytch", 300, 60).await;
    eventually(Duration::from_secs(4), "the pause", || async {
        app.get_json("/v1/rollouts/paused", READ_TOKEN).await["percentage"] == 10.0
    })
    .await;
    let now = app.get_json("/v1/rollouts/paused", READ_TOKEN).await;
    assert_eq!(now["enabled"], true);
    assert_eq!(now["updated_by"], "guard");
    assert_eq!(now["schedule"]["state"], "paused");
    assert_eq!(now["schedule"]["applied_steps"], 2);
    let entries = guard_entries(&app, "paused").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["evidence"]["action"], "pause");
    assert_eq!(
        metric(
            &app,
            "switchyard_guard_trips_total{action=\"pause\",rollout=\"paused\"}"
        )
        .await,
        Some(1.0)
    );
    assert_eq!(guard_view(&app, "paused").await["state"], "tripped");

    // SPEC §3: the device that met Stytch keeps it, the enrolled user too; the same user
    // on a new device (no cookie) is back at the percentage, now legacy.
    let sticky = app
        .decide(
            json!({"rollout": "paused", "user_key": device_user, "cookies": {"sy_paused": cookie}}),
        )
        .await;
    assert_eq!(
        (sticky["flow"].as_str(), sticky["reason"].as_str()),
        (Some("stytch"), Some("sticky_cookie"))
    );
    let enrolled = app
        .decide(json!({"rollout": "paused", "user_key": enrolled_user}))
        .await;
    assert_eq!(
        (enrolled["flow"].as_str(), enrolled["reason"].as_str()),
        (Some("stytch"), Some("enrolled"))
    );
    let fresh = app
        .decide(json!({"rollout": "paused", "user_key": device_user}))
        .await;
    assert_eq!(
        (fresh["flow"].as_str(), fresh["reason"].as_str()),
        (Some("legacy"), Some("percentage"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_enabling_a_killed_rollout_starts_a_fresh_window_and_old_failures_are_ignored() {
    let app = spawn_guarded(None).await;
    app.create_rollout(guarded("again", 100.0, "kill")).await;
    wait_until_counting(&app, "again").await;
    report(&[&app], "again", "legacy", 300, 6).await;
    report(&[&app], "again", "stytch", 300, 45).await;
    eventually(Duration::from_secs(4), "the kill", || async {
        reason_for(&app, "again", "someone").await == "disabled"
    })
    .await;

    let enabled = app.patch_rollout("again", json!({"enabled": true})).await;
    assert_eq!(enabled["updated_by"], "admin-bot");
    // Four intervals: the failures before the re-enable are still within 600 s, and ignored.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(guard_entries(&app, "again").await.len(), 1);
    assert_eq!(reason_for(&app, "again", "someone").await, "percentage");
    let view = guard_view(&app, "again").await;
    assert_eq!(view["state"], "insufficient_data");
    assert!(
        time(&view["window_start"]) > time(&enabled["updated_at"]),
        "{view} after {}",
        enabled["updated_at"]
    );

    // New failures in the fresh window trip it again.
    wait_until_counting(&app, "again").await;
    let view = guard_view(&app, "again").await;
    assert_eq!(view["stytch_attempts"], 0, "{view}");
    report(&[&app], "again", "legacy", 300, 6).await;
    report(&[&app], "again", "stytch", 300, 45).await;
    eventually(Duration::from_secs(4), "the second kill", || async {
        reason_for(&app, "again", "someone").await == "disabled"
    })
    .await;
    let entries = guard_entries(&app, "again").await;
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[1]["evidence"]["stytch_attempts"], 300,
        "only the fresh window's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_redis_add_up_outcomes_reported_half_to_each_and_trip_once() {
    let redis = RedisServer::start();
    let a = guarded_replica(&redis.url()).await;
    let b = guarded_replica(&redis.url()).await;
    a.create_rollout(guarded("shared", 100.0, "kill")).await;
    eventually(Duration::from_secs(3), "b sees the rollout", || async {
        b.get("/v1/rollouts/shared", READ_TOKEN).await.status() == StatusCode::OK
    })
    .await;
    wait_until_counting(&a, "shared").await;
    wait_until_counting(&b, "shared").await;
    // Half to each replica: neither has the 300 attempts of a flow the guard needs by itself.
    report(&[&a, &b], "shared", "legacy", 300, 6).await;
    report(&[&a, &b], "shared", "stytch", 300, 45).await;
    for app in [&a, &b] {
        eventually(
            Duration::from_secs(4),
            "the kill on every replica",
            || async { reason_for(app, "shared", "someone").await == "disabled" },
        )
        .await;
    }
    // Both replicas judge every second; give them a few more looks.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let entries = guard_entries(&a, "shared").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["evidence"]["stytch_attempts"], 300);
    assert_eq!(entries[0]["evidence"]["legacy_attempts"], 300);
    assert_eq!(entries[0]["evidence"]["stytch_failures"], 45);
    let trips = |app| async move {
        metric(
            app,
            "switchyard_guard_trips_total{action=\"kill\",rollout=\"shared\"}",
        )
        .await
        .unwrap_or(0.0)
    };
    assert_eq!(trips(&a).await + trips(&b).await, 1.0);
    for app in [&a, &b] {
        let view = guard_view(app, "shared").await;
        assert_eq!(view["state"], "tripped", "{view}");
        assert_eq!(view["stytch_attempts"], 300, "{view}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_in_the_background_and_blocks_nothing() {
    // Answers 500 twice, then 200.
    let receiver = WebhookReceiver::start(vec![500, 500]).await;
    let app = spawn_guarded(Some(&receiver.url)).await;
    app.create_rollout(guarded("hooked", 100.0, "kill")).await;
    // Nobody listens on this one.
    let closed = spawn_guarded(Some(&format!("http://127.0.0.1:{}/hook", free_port()))).await;
    closed
        .create_rollout(guarded("unheard", 100.0, "kill"))
        .await;
    wait_until_counting(&app, "hooked").await;
    wait_until_counting(&closed, "unheard").await;
    for (app, key) in [(&app, "hooked"), (&closed, "unheard")] {
        report(&[app], key, "legacy", 300, 6).await;
        report(&[app], key, "stytch", 300, 45).await;
    }
    let tripped = Instant::now();
    for (app, key) in [(&app, "hooked"), (&closed, "unheard")] {
        eventually(Duration::from_secs(4), "the kill", || async {
            reason_for(app, key, "someone").await == "disabled"
        })
        .await;
        // The service answers as ever while the webhook fails.
        assert_eq!(guard_view(app, key).await["state"], "tripped");
        let write = app
            .send(
                Method::PATCH,
                &format!("/v1/rollouts/{key}"),
                Some(ADMIN_TOKEN),
                Some(&json!({"description": "seen"})),
            )
            .await;
        assert_eq!(write.status(), StatusCode::OK);
    }
    // 1 s, then 2 s of backoff: the third attempt succeeds.
    eventually(Duration::from_secs(8), "three attempts", || async {
        receiver.bodies().len() >= 3
    })
    .await;
    let times: Vec<Instant> = receiver
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| *t)
        .collect();
    println!(
        "webhook attempts at +{:?}, +{:?}, +{:?} after the trip",
        times[0] - tripped.min(times[0]),
        times[1] - tripped.min(times[1]),
        times[2] - tripped.min(times[2])
    );
    assert!(times[1] - times[0] >= Duration::from_millis(900));
    assert!(times[2] - times[1] >= Duration::from_millis(1900));
    let bodies = receiver.bodies();
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "the same notice each time"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.bodies().len(), 3, "no attempt after one succeeded");
}

#[tokio::test]
async fn the_guard_of_an_unknown_rollout_is_404_and_one_without_a_guard_is_off() {
    let app = spawn_guarded(None).await;
    let response = app.get("/v1/rollouts/nope/guard", READ_TOKEN).await;
    let body = assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("nope"),
        "{body}"
    );
    app.create_rollout(rollout("plain", 10.0, json!([]))).await;
    let view = guard_view(&app, "plain").await;
    assert_eq!(view["state"], "off");
    assert!(view["action"].is_null());
    let response = app.get("/v1/rollouts/plain/guard", DECIDE_TOKEN).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}
