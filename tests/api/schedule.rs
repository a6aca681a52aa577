//! Ramp schedules (SPEC §9) end to end, in real time: steps applied at their times as versions
//! by `schedule`, paused by a kill or a manual percentage change, a missed step applied at the
//! next start, a step applied once by two replicas on a real Redis, and validation with field
//! paths. Steps are 1–2 s apart so each test runs in a few seconds.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::redis_server::RedisServer;
use crate::replicas::{eventually, metric, replica};

/// `now` plus `seconds`, as the RFC 3339 text a schedule step takes.
fn time_in(now: DateTime<Utc>, seconds: f64) -> String {
    (now + chrono::Duration::milliseconds((seconds * 1000.0) as i64))
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// A rollout `key` at 0 % with sticky cookies under its own name and this schedule.
fn scheduled(key: &str, steps: &[(String, f64)]) -> Value {
    let mut body = rollout(key, 0.0, json!([]));
    body["schedule"] = json!({
        "steps": steps.iter().map(|(at, p)| json!({"at": at, "percentage": p})).collect::<Vec<_>>()
    });
    body
}

async fn get_rollout(app: &TestApp, key: &str) -> Value {
    app.get_json(&format!("/v1/rollouts/{key}"), READ_TOKEN)
        .await
}

/// The history entries written by the schedule, oldest first.
async fn schedule_entries(app: &TestApp, key: &str) -> Vec<Value> {
    let history = app
        .get_json(&format!("/v1/rollouts/{key}/history"), READ_TOKEN)
        .await;
    let mut entries: Vec<Value> = history["history"]
        .as_array()
        .expect("a history list")
        .iter()
        .filter(|e| e["actor"] == "schedule")
        .cloned()
        .collect();
    entries.reverse();
    entries
}

/// A user key whose bucket (under `salt`) lies in `range`.
fn user_in(salt: &str, range: std::ops::Range<u16>) -> String {
    (0..)
        .map(|i| format!("user-{i}"))
        .find(|key| range.contains(&bucket_of(salt, key)))
        .expect("some key falls in every range")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_two_seconds_apart_ramps_5_10_25_in_order_and_is_then_done() {
    let app = spawn_app().await;
    let salt = "salt-ramp";
    // One user per share: stytch from 5 %, from 10 %, from 25 %, and never.
    let users = [
        user_in(salt, 0..500),
        user_in(salt, 500..1000),
        user_in(salt, 1000..2500),
        user_in(salt, 2500..10_000),
    ];
    let start = Utc::now();
    let plan = [(1.0, 5.0), (3.0, 10.0), (5.0, 25.0)];
    let steps: Vec<(String, f64)> = plan.iter().map(|&(s, p)| (time_in(start, s), p)).collect();
    let created = app.create_rollout(scheduled("ramp", &steps)).await;
    assert_eq!(created["schedule"]["state"], "active");
    assert_eq!(created["schedule"]["applied_steps"], 0);
    assert_eq!(created["percentage"], 0.0);

    for (i, &(_, percentage)) in plan.iter().enumerate() {
        let step_at = parse_time(&json!(steps[i].0));
        // The first user this step sends to Stytch gets there once the step has applied.
        let newcomer = &users[i];
        eventually(
            Duration::from_secs(4),
            "the step reaches decide",
            || async {
                app.decide(json!({"rollout": "ramp", "user_key": newcomer}))
                    .await["flow"]
                    == "stytch"
            },
        )
        .await;
        let seen_at = Utc::now();
        assert!(
            seen_at - step_at < chrono::Duration::milliseconds(1500),
            "step {i} seen in decide {} ms after its time",
            (seen_at - step_at).num_milliseconds()
        );
        // Every user decides by this step's percentage, at the version it made.
        let version = 2 + i as u64;
        for (j, user) in users.iter().enumerate() {
            let decision = app
                .decide(json!({"rollout": "ramp", "user_key": user}))
                .await;
            let expected = if j <= i { "stytch" } else { "legacy" };
            assert_eq!(decision["flow"], expected, "user {j} after step {i}");
            assert_eq!(decision["version"], version, "user {j} after step {i}");
        }
        let now = get_rollout(&app, "ramp").await;
        assert_eq!(now["percentage"], percentage);
        assert_eq!(now["updated_by"], "schedule");
    }

    let done = get_rollout(&app, "ramp").await;
    assert_eq!(done["schedule"]["state"], "done");
    assert_eq!(done["schedule"]["applied_steps"], 3);
    let entries = schedule_entries(&app, "ramp").await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["version"], 2 + i as u64);
        assert_eq!(entry["action"], "updated");
        assert_eq!(entry["snapshot"]["percentage"], plan[i].1);
        let late = parse_time(&entry["at"]) - parse_time(&json!(steps[i].0));
        println!(
            "step {i} applied {} ms after its time",
            late.num_milliseconds()
        );
        assert!(
            late >= chrono::Duration::zero() && late < chrono::Duration::seconds(1),
            "step {i} applied {} ms after its time",
            late.num_milliseconds()
        );
        let changed: Vec<&str> = entry["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        assert_eq!(changed, ["percentage", "schedule"]);
    }
    assert_eq!(
        metric(
            &app,
            "switchyard_schedule_steps_applied_total{rollout=\"ramp\"}"
        )
        .await,
        Some(3.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_pauses_a_schedule_and_no_later_step_applies() {
    let app = spawn_app().await;
    let start = Utc::now();
    let steps = [(time_in(start, 1.0), 5.0), (time_in(start, 2.5), 10.0)];
    app.create_rollout(scheduled("killed", &steps)).await;
    eventually(Duration::from_secs(3), "the first step", || async {
        get_rollout(&app, "killed").await["percentage"] == 5.0
    })
    .await;

    let answer = app.patch_rollout("killed", json!({"enabled": false})).await;
    assert_eq!(answer["schedule"]["state"], "paused");
    assert_eq!(answer["updated_by"], "admin-bot");

    // Well past the second step's time: nothing more applied.
    tokio::time::sleep_until(tokio::time::Instant::now() + until(&steps[1].0, 1.5)).await;
    let after = get_rollout(&app, "killed").await;
    assert_eq!(after["percentage"], 5.0);
    assert_eq!(after["enabled"], false);
    assert_eq!(after["schedule"]["state"], "paused");
    assert_eq!(after["schedule"]["applied_steps"], 1);
    assert_eq!(schedule_entries(&app, "killed").await.len(), 1);
    assert_eq!(
        app.decide(json!({"rollout": "killed", "user_key": "anyone"}))
            .await["reason"],
        "disabled"
    );
}

/// How long from now until `margin` seconds after the time `at`.
fn until(at: &str, margin: f64) -> Duration {
    let target = parse_time(&json!(at)) + chrono::Duration::milliseconds((margin * 1000.0) as i64);
    (target - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_percentage_change_pauses_a_schedule_and_resuming_applies_the_step_that_came_due()
{
    let app = spawn_app().await;
    let start = Utc::now();
    let steps = [(time_in(start, 1.5), 10.0), (time_in(start, 60.0), 50.0)];
    app.create_rollout(scheduled("manual", &steps)).await;

    let answer = app.patch_rollout("manual", json!({"percentage": 7})).await;
    assert_eq!(answer["percentage"], 7.0);
    assert_eq!(answer["schedule"]["state"], "paused");

    tokio::time::sleep(until(&steps[0].0, 1.2)).await;
    let after = get_rollout(&app, "manual").await;
    assert_eq!(after["percentage"], 7.0, "the emergency change stands");
    assert_eq!(after["schedule"]["applied_steps"], 0);
    assert!(schedule_entries(&app, "manual").await.is_empty());

    // Resumed, the step whose time has passed applies at once; the next one waits its time.
    let resumed = app
        .patch_rollout("manual", json!({"schedule": {"state": "active"}}))
        .await;
    assert_eq!(resumed["schedule"]["state"], "active");
    eventually(
        Duration::from_secs(1),
        "the due step after resuming",
        || async { get_rollout(&app, "manual").await["percentage"] == 10.0 },
    )
    .await;
    let now = get_rollout(&app, "manual").await;
    assert_eq!(now["schedule"]["applied_steps"], 1);
    assert_eq!(now["schedule"]["state"], "active");
    assert_eq!(schedule_entries(&app, "manual").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_missed_while_no_replica_ran_apply_at_the_next_start_only_the_latest() {
    let app = spawn_app().await;
    let start = Utc::now();
    let steps = [
        (time_in(start, 2.0), 5.0),
        (time_in(start, 2.5), 10.0),
        (time_in(start, 3.0), 25.0),
    ];
    app.create_rollout(scheduled("missed", &steps)).await;
    let (settings, dir) = (app.settings.clone(), app.dir.clone());
    app.stop().await;
    assert!(
        Utc::now() < parse_time(&json!(steps[0].0)),
        "stopped before the first step"
    );

    tokio::time::sleep(until(&steps[2].0, 0.5)).await;
    let app = spawn_with(settings, dir).await;
    eventually(Duration::from_secs(1), "the latest missed step", || async {
        get_rollout(&app, "missed").await["percentage"] == 25.0
    })
    .await;
    let entries = schedule_entries(&app, "missed").await;
    assert_eq!(
        entries.len(),
        1,
        "only the latest step is applied: {entries:?}"
    );
    assert_eq!(entries[0]["version"], 2);
    let after = get_rollout(&app, "missed").await;
    assert_eq!(after["schedule"]["state"], "done");
    assert_eq!(after["schedule"]["applied_steps"], 3);
    assert_eq!(
        metric(
            &app,
            "switchyard_schedule_steps_applied_total{rollout=\"missed\"}"
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_redis_apply_each_step_due_at_the_same_instant_exactly_once() {
    let redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    let b = replica(&redis.url(), false).await;
    let start = Utc::now();
    let steps = [(time_in(start, 1.5), 10.0), (time_in(start, 2.5), 20.0)];
    let keys = ["race-a", "race-b", "race-c", "race-d", "race-e"];
    for key in keys {
        a.create_rollout(scheduled(key, &steps)).await;
    }
    // Both replicas know every schedule before its first step is due.
    eventually(Duration::from_secs(1), "B sees the schedules", || async {
        b.get_json("/v1/rollouts", READ_TOKEN).await["rollouts"]
            .as_array()
            .unwrap()
            .len()
            == keys.len() + 1
    })
    .await;
    assert!(Utc::now() < parse_time(&json!(steps[0].0)));

    for key in keys {
        for app in [&a, &b] {
            eventually(Duration::from_secs(4), "done on both replicas", || async {
                get_rollout(app, key).await["schedule"]["state"] == "done"
            })
            .await;
        }
        let entries = schedule_entries(&a, key).await;
        let percentages: Vec<&Value> = entries
            .iter()
            .map(|e| &e["snapshot"]["percentage"])
            .collect();
        assert_eq!(
            percentages,
            [&json!(10.0), &json!(20.0)],
            "{key}: {entries:?}"
        );
        assert_eq!(get_rollout(&b, key).await["version"], 3, "{key}");
    }
    let steps_applied = "switchyard_schedule_steps_applied_total";
    let on_a = metric(&a, steps_applied).await.unwrap_or(0.0);
    let on_b = metric(&b, steps_applied).await.unwrap_or(0.0);
    println!("steps applied: {on_a} by A, {on_b} by B");
    assert_eq!(on_a + on_b, (keys.len() * steps.len()) as f64);
}

#[tokio::test]
async fn schedule_and_guard_problems_are_named_by_their_field_path() {
    let app = spawn_app().await;
    let problems = |body: Value| {
        let app = &app;
        async move {
            let response = app.post("/v1/rollouts", ADMIN_TOKEN, &body).await;
            let body = assert_error(
                response,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            )
            .await;
            body["error"]["details"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["field"].as_str().unwrap().to_string(),
                        d["message"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };

    // Every problem of a schedule and a guard at once, each at its path.
    let found = problems(json!({"key": "bad", "schedule": {"steps": [
            {"at": "2026-12-02T09:00:00Z", "percentage": 5},
            {"at": "2026-12-01T09:00:00Z", "percentage": 100.5},
            {"at": "2026-12-01T09:00:00Z", "percentage": 10}]},
        "guard": {"window_seconds": 5, "min_attempts": 0, "max_failure_rate_increase": 0,
                  "confidence": 0.5}}))
    .await;
    let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "schedule.steps[1].at",
            "schedule.steps[1].percentage",
            "schedule.steps[2].at",
            "guard.window_seconds",
            "guard.min_attempts",
            "guard.max_failure_rate_increase",
            "guard.confidence",
        ],
        "{found:?}"
    );
    assert!(
        found[0]
            .1
            .starts_with("must be later than steps[0].at (2026-12-02T09:00:00Z)"),
        "{found:?}"
    );

    // Shapes, in the API's words.
    for (body, field, message) in [
        (
            json!({"key": "bad", "schedule": {"steps": [{"at": "tomorrow", "percentage": 5}]}}),
            "schedule.steps[0].at",
            "at must be an RFC 3339 date and time such as 2026-12-01T09:00:00Z",
        ),
        (
            json!({"key": "bad", "schedule": {"steps": [{"at": "2026-12-01 09:00:00Z", "percentage": 5}]}}),
            "schedule.steps[0].at",
            "at must be an RFC 3339 date and time such as 2026-12-01T09:00:00Z",
        ),
        (
            json!({"key": "bad", "schedule": {"steps": [{"at": "2026-12-01T09:00:00Z", "percentage": "5"}]}}),
            "schedule.steps[0].percentage",
            "percentage must be a number from 0 to 100",
        ),
        (
            json!({"key": "bad", "schedule": {"state": "running", "steps": []}}),
            "schedule.state",
            "state must be \"active\" or \"paused\" (\"done\" is set by the service)",
        ),
        (
            json!({"key": "bad", "schedule": {"state": "active"}}),
            "schedule.steps",
            "required",
        ),
        (
            json!({"key": "bad", "guard": {"action": "stop"}}),
            "guard.action",
            "action must be \"kill\" or \"pause\"",
        ),
        (
            json!({"key": "bad", "guard": {"threshold": 2}}),
            "guard.threshold",
            "unknown member 'threshold', expected one of 'enabled', 'window_seconds', 'min_attempts', 'max_failure_rate_increase', 'confidence', 'action'",
        ),
    ] {
        assert_eq!(
            problems(body.clone()).await,
            [(field.to_string(), message.to_string())],
            "{body}"
        );
    }

    // A guard looks back no further than the deployment keeps counts (default an hour).
    let long = problems(json!({"key": "bad", "guard": {"window_seconds": 7200}})).await;
    assert_eq!(long.len(), 1);
    assert_eq!(long[0].0, "guard.window_seconds");
    assert!(
        long[0].1.starts_with(
            "must be at most 3600: login outcomes are kept for guards.max_window_seconds"
        ),
        "{long:?}"
    );

    // Rules across the schedule: at least one step, at most 100; `done` is the service's.
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"at": format!("2030-01-01T00:{:02}:{:02}Z", i / 60, i % 60), "percentage": 1}))
        .collect();
    assert_eq!(
        problems(json!({"key": "bad", "schedule": {"steps": many}})).await,
        [(
            "schedule.steps".to_string(),
            "more than 100 steps".to_string()
        )]
    );
    let none = problems(json!({"key": "bad", "schedule": {"steps": []}})).await;
    assert_eq!(none.len(), 1);
    assert_eq!(none[0].0, "schedule.steps");
    let done = problems(
        json!({"key": "bad", "schedule": {"state": "done", "steps": [
        {"at": "2030-01-01T00:00:00Z", "percentage": 5}]}}),
    )
    .await;
    assert_eq!(done[0].0, "schedule.state");
    assert!(
        done[0]
            .1
            .starts_with("cannot be \"done\" with 1 of 1 steps pending"),
        "{done:?}"
    );

    // In a merge patch, `null` removes nothing but the description.
    app.create_rollout(json!({"key": "fine", "guard": {}}))
        .await;
    for patch in [
        json!({"schedule": null}),
        json!({"guard": null}),
        json!({"guard": {"confidence": null}}),
    ] {
        let response = app
            .send(
                Method::PATCH,
                "/v1/rollouts/fine",
                Some(ADMIN_TOKEN),
                Some(&patch),
            )
            .await;
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    // A schedule patched onto a rollout without one needs its steps.
    let response = app
        .send(
            Method::PATCH,
            "/v1/rollouts/fine",
            Some(ADMIN_TOKEN),
            Some(&json!({"schedule": {"state": "paused"}})),
        )
        .await;
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["error"]["details"][0]["field"], "schedule.steps");
}

#[tokio::test]
async fn rollouts_created_with_every_default_have_no_schedule_or_guard() {
    let app = spawn_app().await;
    for key in ["first", "second", "third"] {
        let created = app.create_rollout(json!({"key": key})).await;
        let members = created.as_object().unwrap();
        assert!(!members.contains_key("schedule"), "{created}");
        assert!(!members.contains_key("guard"), "{created}");
        assert_eq!(created["sticky"]["cookie_name"], format!("sy_{key}"));
    }
}

#[tokio::test]
async fn a_guard_takes_the_spec_examples_values_for_what_it_leaves_out() {
    let app = spawn_app().await;
    let created = app
        .create_rollout(json!({"key": "guarded", "guard": {"action": "pause"}}))
        .await;
    assert_eq!(
        created["guard"],
        json!({"enabled": true, "window_seconds": 600, "min_attempts": 200,
               "max_failure_rate_increase": 2.0, "confidence": 0.95, "action": "pause"})
    );
    // Merged: members given replace the current ones; the history names the change.
    let patched = app
        .patch_rollout("guarded", json!({"guard": {"min_attempts": 500.0}}))
        .await;
    assert_eq!(patched["guard"]["min_attempts"], 500);
    assert_eq!(patched["guard"]["action"], "pause");
    let history = app
        .get_json("/v1/rollouts/guarded/history", READ_TOKEN)
        .await;
    let change = &history["history"][0]["changes"][0];
    assert_eq!(change["field"], "guard");
    assert_eq!(change["from"]["min_attempts"], 200);
    assert_eq!(change["to"]["min_attempts"], 500);
}

#[tokio::test]
async fn the_applied_steps_are_the_services_and_what_an_admin_sends_is_ignored() {
    let app = spawn_app().await;
    let past = "2020-01-01T00:00:00Z";
    let future = "2099-01-01T00:00:00Z";
    let mut body = rollout("progress", 0.0, json!([]));
    body["schedule"] = json!({"steps": [{"at": past, "percentage": 5}, {"at": future, "percentage": 50}],
                              "applied_steps": 2});
    let created = app.create_rollout(body).await;
    assert_eq!(created["schedule"]["applied_steps"], 0, "ignored on create");
    // The step whose time has passed applies at once.
    eventually(Duration::from_secs(1), "the past step", || async {
        get_rollout(&app, "progress").await["schedule"]["applied_steps"] == 1
    })
    .await;

    // Sent back as fetched (or with any other count), a replace keeps the service's count.
    let mut fetched = get_rollout(&app, "progress").await;
    let version = fetched["version"].clone();
    fetched["schedule"]["applied_steps"] = json!(0);
    let response = app
        .send(
            Method::PUT,
            "/v1/rollouts/progress",
            Some(ADMIN_TOKEN),
            Some(&fetched),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let replaced: Value = response.json().await.unwrap();
    assert_eq!(replaced["schedule"]["applied_steps"], 1);
    assert_eq!(
        replaced["version"], version,
        "nothing changed: no new version"
    );
    for ignored in [json!(2), json!([null, null]), json!("all")] {
        let patched = app
            .patch_rollout("progress", json!({"schedule": {"applied_steps": ignored}}))
            .await;
        assert_eq!(patched["schedule"]["applied_steps"], 1);
        assert_eq!(patched["version"], version);
    }

    // A changed step is pending again; the unchanged applied one stays applied.
    let patched = app
        .patch_rollout(
            "progress",
            json!({"schedule": {"steps": [{"at": past, "percentage": 5}, {"at": "2098-01-01T00:00:00Z", "percentage": 50}]}}),
        )
        .await;
    assert_eq!(patched["schedule"]["applied_steps"], 1);
    assert_eq!(patched["schedule"]["state"], "active");
    // A replace without a schedule removes it.
    let mut without = get_rollout(&app, "progress").await;
    without.as_object_mut().unwrap().remove("schedule");
    let response = app
        .send(
            Method::PUT,
            "/v1/rollouts/progress",
            Some(ADMIN_TOKEN),
            Some(&without),
        )
        .await;
    let replaced: Value = response.json().await.unwrap();
    assert!(replaced.get("schedule").is_none(), "{replaced}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_and_a_guard_survive_a_redis_restore_and_the_last_known_copy() {
    let mut redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    let mut body = rollout("kept", 0.0, json!([]));
    body["schedule"] = json!({"state": "paused", "steps": [
        {"at": "2099-01-01T09:00:00Z", "percentage": 5}, {"at": "2099-01-02T09:00:00+01:00", "percentage": 25}]});
    body["guard"] = json!({"window_seconds": 300, "confidence": 0.99, "action": "pause"});
    let created = a.create_rollout(body).await;
    assert_eq!(
        created["schedule"]["steps"][1]["at"],
        "2099-01-02T08:00:00Z"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await; // let the copy be written

    // Redis comes back empty: restored from A's last-known copy, schedule and guard included.
    assert!(redis.cmd("FLUSHALL").contains("OK"));
    eventually(Duration::from_secs(10), "restored", || async {
        redis
            .cmd("HGET {switchyard}:rollouts kept")
            .contains("schedule")
    })
    .await;
    let b = replica(&redis.url(), false).await;
    let from_redis = get_rollout(&b, "kept").await;
    assert_eq!(from_redis["schedule"], created["schedule"]);
    assert_eq!(from_redis["guard"], created["guard"]);

    // Redis away: a restarted replica serves its last-known copy, schedule and guard included.
    redis.stop();
    let a = a.restart().await;
    let from_copy = get_rollout(&a, "kept").await;
    assert_eq!(from_copy["schedule"], created["schedule"]);
    assert_eq!(from_copy["guard"], created["guard"]);
}
