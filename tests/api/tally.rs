//! Outcome and decision counting end to end: login outcomes reported over HTTP and decisions
//! made over HTTP by real replicas, read back through the library (`AppState::tallies`, as
//! the guard reads them; there is no HTTP endpoint for them yet) — on the embedded store and
//! on a real `redis-server` shared by two replicas.

use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use serde_json::json;
use switchyard::guard::{Confidence, GuardLimits, GuardState, GuardVerdict};
use switchyard::rules::Flow;
use switchyard::tally::{BucketRange, Tally};

use crate::helpers::*;
use crate::redis_server::RedisServer;
use crate::replicas::replica;

/// Reports `n` login attempts of `flow` that ended with `outcome`.
async fn report(app: &TestApp, flow: &str, outcome: &str, n: u64) {
    for _ in 0..n {
        let r = app
            .post(
                "/v1/outcomes",
                BACKEND_TOKEN,
                &json!({"rollout": "stytch-login", "flow": flow, "outcome": outcome}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
}

/// Reports attempts of both flows: `(failures, successes)` for Stytch, then for legacy.
async fn report_attempts(app: &TestApp, stytch: (u64, u64), legacy: (u64, u64)) {
    report(app, "stytch", "failure", stytch.0).await;
    report(app, "stytch", "success", stytch.1).await;
    report(app, "legacy", "failure", legacy.0).await;
    report(app, "legacy", "success", legacy.1).await;
}

/// What `app` sees of every replica's counts of `stytch-login` over the last ten minutes
/// (an error while the store is away).
async fn last_ten_minutes(app: &TestApp) -> Result<Tally, switchyard::store::StoreError> {
    app.tallies
        .sum("stytch-login", BucketRange::window(SystemTime::now(), 600))
        .await
}

/// Waits (up to `within`) until `app` sees counts that `done` accepts; returns the last it
/// saw and how long it took. A read that fails (Redis away) is tried again.
async fn counts_when(
    app: &TestApp,
    within: Duration,
    done: impl Fn(&Tally) -> bool,
) -> (Tally, Duration) {
    let started = Instant::now();
    loop {
        let seen = last_ten_minutes(app).await;
        let timed_out = started.elapsed() > within;
        match seen {
            Ok(seen) if done(&seen) || timed_out => return (seen, started.elapsed()),
            Err(e) if timed_out => panic!("counts unreadable for {within:?}: {e}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn spec_limits() -> GuardLimits {
    GuardLimits {
        min_attempts: 200,
        max_failure_rate_increase: 2.0,
        confidence: Confidence::new(0.95).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_reported_half_to_each_of_two_replicas_on_redis_add_up_in_the_guards_view() {
    let redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    let b = replica(&redis.url(), false).await;
    // SPEC §9's example: 300 legacy attempts failing 2 % (6), 300 Stytch failing 15 % (45),
    // each replica getting half of them.
    report_attempts(&a, (23, 127), (3, 147)).await;
    report_attempts(&b, (22, 128), (3, 147)).await;
    for i in 0..10 {
        a.decide(json!({"rollout": "stytch-login", "user_key": format!("a{i}")}))
            .await;
        b.decide(json!({"rollout": "stytch-login", "user_key": format!("b{i}")}))
            .await;
    }
    let complete =
        |t: &Tally| t.outcomes(Flow::Stytch).attempts() == 300 && t.decisions(Flow::Legacy) == 20;
    for (name, app) in [("a", &a), ("b", &b)] {
        let (seen, took) = counts_when(app, Duration::from_secs(5), complete).await;
        println!("replica {name} saw every replica's counts {took:?} after the last report");
        assert_eq!(seen.outcomes(Flow::Stytch).failures, 45, "{seen:?}");
        assert_eq!(seen.outcomes(Flow::Stytch).attempts(), 300);
        assert_eq!(seen.outcomes(Flow::Legacy).failures, 6);
        assert_eq!(seen.outcomes(Flow::Legacy).attempts(), 300);
        // The rollout is at 0 %: every decision went to legacy.
        assert_eq!(seen.decisions(Flow::Legacy), 20);
        assert_eq!(seen.decisions(Flow::Stytch), 0);
        assert!(took < Duration::from_secs(3), "{took:?}");
        // Together the replicas' counts trip the guard; either half alone is too few.
        let verdict = GuardVerdict::of(
            seen.outcomes(Flow::Stytch),
            seen.outcomes(Flow::Legacy),
            &spec_limits(),
        );
        assert_eq!(verdict.state, GuardState::Tripped);
        assert!(verdict.increase_lower_bound_points.unwrap() > 9.0);
    }
    let half = |failures, successes| switchyard::guard::FlowOutcomes {
        successes,
        failures,
    };
    let one_replica = GuardVerdict::of(half(23, 127), half(3, 147), &spec_limits());
    assert_eq!(one_replica.state, GuardState::InsufficientData);
}

#[tokio::test]
async fn on_the_embedded_store_outcomes_and_decisions_are_counted_in_memory() {
    let app = spawn_app().await;
    report_attempts(&app, (2, 8), (1, 4)).await;
    for i in 0..7 {
        app.decide(json!({"rollout": "stytch-login", "user_key": format!("u{i}")}))
            .await;
    }
    // A report for a rollout that does not exist is refused and counted nowhere.
    let r = app
        .post(
            "/v1/outcomes",
            BACKEND_TOKEN,
            &json!({"rollout": "no-such-rollout", "flow": "stytch", "outcome": "failure"}),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let (seen, took) = counts_when(&app, Duration::from_secs(5), |t| {
        t.decisions(Flow::Legacy) == 7
    })
    .await;
    println!("counted {took:?} after the last decision");
    assert_eq!(seen.outcomes(Flow::Stytch).failures, 2);
    assert_eq!(seen.outcomes(Flow::Stytch).attempts(), 10);
    assert_eq!(seen.outcomes(Flow::Legacy).failures, 1);
    assert_eq!(seen.outcomes(Flow::Legacy).attempts(), 5);
    assert_eq!(seen.decisions(Flow::Legacy), 7);
    let unknown = app
        .tallies
        .sum(
            "no-such-rollout",
            BucketRange::window(SystemTime::now(), 600),
        )
        .await
        .unwrap();
    assert!(unknown.is_empty());
    // The metric counts the same reports.
    let samples = app.metrics().await;
    let failures = metric(
        &samples,
        "switchyard_login_outcomes_total",
        &[("flow", "stytch"), ("outcome", "failure")],
    );
    assert_eq!(failures, Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_made_while_redis_is_down_are_delivered_when_it_is_back() {
    let mut redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    report(&a, "stytch", "failure", 5).await;
    let (seen, _) = counts_when(&a, Duration::from_secs(5), |t| {
        t.outcomes(Flow::Stytch).failures == 5
    })
    .await;
    assert_eq!(seen.outcomes(Flow::Stytch).failures, 5);

    redis.stop();
    report(&a, "stytch", "failure", 7).await;
    report(&a, "legacy", "success", 3).await;
    // Flushes fail for a few seconds; the counts wait.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Redis comes back empty (the first five are gone with it); the waiting counts arrive.
    redis.restart();
    let (seen, took) = counts_when(&a, Duration::from_secs(15), |t| {
        t.outcomes(Flow::Stytch).failures == 7
    })
    .await;
    println!("delivered {took:?} after Redis came back");
    assert_eq!(seen.outcomes(Flow::Stytch).failures, 7, "{seen:?}");
    assert_eq!(seen.outcomes(Flow::Legacy).successes, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_is_stopped_delivers_its_last_counts_first() {
    let redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    let b = replica(&redis.url(), false).await;
    report(&a, "legacy", "failure", 4).await;
    // Stopped at once: its periodic flush is stopped with it, so only the last flush on the
    // way out can deliver these.
    a.stop().await;
    let (seen, took) = counts_when(&b, Duration::from_secs(5), |t| {
        t.outcomes(Flow::Legacy).failures == 4
    })
    .await;
    println!("the stopped replica's counts were visible {took:?} after it stopped");
    assert_eq!(seen.outcomes(Flow::Legacy).failures, 4, "{seen:?}");
}

#[tokio::test]
async fn each_flush_files_what_was_counted_since_the_last_under_its_own_bucket() {
    use std::sync::Arc;
    use switchyard::catalog::Catalog;
    use switchyard::metrics::Metrics;
    use switchyard::tally::{
        Bucket, Counter, Flusher, LoginOutcome, MemoryTallies, Retention, TallyStore,
    };

    let catalog = Arc::new(Catalog::new(Arc::new(Metrics::new())));
    let rollout = serde_json::from_value(json!({
        "key": "login", "description": "", "enabled": true, "percentage": 0.0,
        "salt": "s", "rules": [], "sticky": {"enabled": false, "cookie_name": "sy_login", "max_age_seconds": 60},
        "epoch": 1, "legacy_sessions": "reject", "version": 1,
        "updated_at": "2026-11-30T00:00:00Z", "updated_by": "test"
    }))
    .unwrap();
    catalog.install(rollout).unwrap();
    let retention = Retention::for_windows_of(Duration::from_secs(3600));
    let tallies = Arc::new(MemoryTallies::new(retention));
    let flusher = Flusher::new(catalog.clone(), tallies.clone(), retention);
    let live = catalog.get("login").unwrap();
    let now = SystemTime::now();

    live.count_outcome(Flow::Stytch, LoginOutcome::Failure);
    live.count_outcome(Flow::Stytch, LoginOutcome::Failure);
    flusher.flush(now).await.unwrap();
    live.count_outcome(Flow::Legacy, LoginOutcome::Success);
    live.tally.count(Counter::decision(Flow::Stytch));
    let later = now + Duration::from_secs(20);
    flusher.flush(later).await.unwrap();
    // Nothing new: nothing sent, nothing changed.
    flusher.flush(later).await.unwrap();

    let read = tallies
        .read("login", BucketRange::since(now, later))
        .await
        .unwrap();
    let buckets: Vec<Bucket> = read.iter().map(|(b, _)| *b).collect();
    assert_eq!(buckets, vec![Bucket::at(now), Bucket::at(later)]);
    assert_eq!(read[0].1.outcomes(Flow::Stytch).failures, 2);
    assert_eq!(read[0].1.outcomes(Flow::Legacy).attempts(), 0);
    assert_eq!(read[1].1.outcomes(Flow::Legacy).successes, 1);
    assert_eq!(read[1].1.decisions(Flow::Stytch), 1);
    assert_eq!(read[1].1.outcomes(Flow::Stytch).failures, 0);
}
