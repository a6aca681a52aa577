//! Several replicas on one Redis (and on a Redis Cluster): propagation, concurrent writers,
//! outages, a replica started while Redis is down, and Redis coming back empty. Every Redis
//! here is a real `redis-server` the test starts, stops and flushes itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard::config::Backend;

use crate::helpers::*;
use crate::redis_server::{RedisCluster, RedisServer};

pub async fn replica(url: &str, cluster: bool) -> TestApp {
    replica_with(url, cluster, None).await
}

async fn replica_with(url: &str, cluster: bool, ca: Option<&[u8]>) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = test_settings(dir.path());
    if let Some(ca) = ca {
        let path = dir.path().join("redis-ca.pem");
        std::fs::write(&path, ca).unwrap();
        settings.store.tls_ca_file = Some(path);
    }
    settings.store.backend = Backend::Redis;
    settings.store.url = secrecy::SecretString::from(url.to_string());
    settings.store.cluster = cluster;
    settings.store.path = dir.path().join("last-known.redb");
    spawn_with(settings, dir).await
}

/// Polls `check` until it holds or `within` passes; returns how long it took.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what}: not within {within:?}");
}

async fn flow_of(app: &TestApp, key: &str) -> String {
    app.decide(json!({"rollout": "stytch-login", "user_key": key}))
        .await["flow"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The sum of the samples whose line starts with `line_start` (None when there is none).
pub async fn metric(app: &TestApp, line_start: &str) -> Option<f64> {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(line_start))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

async fn decisions(app: &TestApp, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut d = app
            .decide(json!({"rollout": "stytch-login", "user_key": format!("user-{i}"), "ip": "81.2.69.142"}))
            .await;
        d.as_object_mut().unwrap().remove("set_cookie");
        out.push(d);
    }
    out
}

/// Adds one to the number in `description`, `times` times, retrying on 412.
async fn bump(app: &TestApp, times: u64) {
    for _ in 0..times {
        loop {
            let r = app.get("/v1/rollouts/stytch-login", READ_TOKEN).await;
            let etag = r.headers()["etag"].to_str().unwrap().to_string();
            let body: Value = r.json().await.unwrap();
            let n: u64 = body["description"].as_str().unwrap().parse().unwrap_or(0);
            let r = app
                .client
                .patch(app.url("/v1/rollouts/stytch-login"))
                .bearer_auth(ADMIN_TOKEN)
                .header("If-Match", etag)
                .json(&json!({"description": (n + 1).to_string()}))
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::OK {
                break;
            }
            assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
        }
    }
}

async fn propagation_and_racing_writers(a: &TestApp, b: &TestApp) {
    // A write on A shows in B's decisions.
    assert_eq!(flow_of(b, "alice").await, "legacy");
    a.patch_rollout("stytch-login", json!({"percentage": 100}))
        .await;
    let took = eventually(Duration::from_secs(2), "propagation", || async {
        flow_of(b, "alice").await == "stytch"
    })
    .await;
    println!("propagation A → B took {took:?}");

    // Enrollments reach every replica's memory.
    a.patch_rollout("stytch-login", json!({"percentage": 0}))
        .await;
    assert_eq!(
        a.enroll("stytch-login", "bob@example.com").await,
        StatusCode::CREATED
    );
    eventually(Duration::from_secs(2), "enrollment propagation", || async {
        b.decide(json!({"rollout": "stytch-login", "user_key": "bob@example.com"}))
            .await["reason"]
            == "enrolled"
    })
    .await;

    // Two replicas racing with the same If-Match: exactly one wins.
    let etag = a
        .get("/v1/rollouts/stytch-login", READ_TOKEN)
        .await
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let patch = |app: &TestApp, pct: u32| {
        app.client
            .patch(app.url("/v1/rollouts/stytch-login"))
            .bearer_auth(ADMIN_TOKEN)
            .header("If-Match", etag.clone())
            .json(&json!({"percentage": pct}))
            .send()
    };
    let (ra, rb) = tokio::join!(patch(a, 10), patch(b, 20));
    let mut statuses = [ra.unwrap().status(), rb.unwrap().status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED]);

    // Many read-modify-write loops across both replicas lose nothing.
    let increments: u64 = 10;
    a.patch_rollout("stytch-login", json!({"description": "0"}))
        .await;
    tokio::join!(
        bump(a, increments),
        bump(b, increments),
        bump(a, increments),
        bump(b, increments)
    );
    // Every replica converges on all 40 increments (reads are from memory, a few ms behind).
    for app in [a, b] {
        eventually(Duration::from_secs(2), "no lost update", || async {
            let body: Value = app
                .get("/v1/rollouts/stytch-login", READ_TOKEN)
                .await
                .json()
                .await
                .unwrap();
            body["description"] == json!((4 * increments).to_string())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_redis_share_every_write_and_never_lose_an_update() {
    let redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    let b = replica(&redis.url(), false).await;
    propagation_and_racing_writers(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_a_three_master_cluster_share_every_write() {
    let cluster = RedisCluster::start();
    let a = replica(&cluster.url(), true).await;
    let b = replica(&cluster.url(), true).await;
    propagation_and_racing_writers(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_decisions_continue_unchanged_writes_are_503_and_it_catches_up() {
    let mut redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    let b = replica(&redis.url(), false).await;
    a.patch_rollout(
        "stytch-login",
        json!({"percentage": 50, "rules": [
        {"id": "uk", "when": {"countries": ["GB"]}, "then": {"percentage": 30}}]}),
    )
    .await;
    eventually(Duration::from_secs(2), "propagation", || async {
        b.decide(json!({"rollout": "stytch-login", "user_key": "x"}))
            .await["version"]
            == 2
    })
    .await;
    let before = decisions(&b, 40).await;

    redis.stop();
    assert_eq!(decisions(&b, 40).await, before, "same answers from memory");
    // Once the replica knows Redis is down, a write is refused at once, without waiting on a
    // connect (generous bound: a refused connect with a retry took 150-350 ms).
    eventually(Duration::from_secs(2), "the outage noticed", || async {
        metric(&b, "switchyard_store_up ").await == Some(0.0)
    })
    .await;
    let started = Instant::now();
    let r = b
        .send(
            Method::PATCH,
            "/v1/rollouts/stytch-login",
            Some(ADMIN_TOKEN),
            Some(&json!({"percentage": 60})),
        )
        .await;
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "store_unavailable").await;
    let r = b
        .send(
            Method::PUT,
            "/v1/rollouts/stytch-login/enrollments/carol",
            Some(BACKEND_TOKEN),
            None,
        )
        .await;
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "store_unavailable").await;
    let refused_in = started.elapsed();
    println!("two writes refused in {refused_in:?} while Redis was down");
    assert!(refused_in < Duration::from_millis(100), "{refused_in:?}");
    assert_eq!(
        b.client
            .get(b.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(metric(&b, "switchyard_store_up ").await, Some(0.0));
    assert!(
        metric(&b, "switchyard_store_errors_total")
            .await
            .unwrap_or(0.0)
            > 0.0
    );
    // Each failed write is counted once, by the store, as the operation that failed (the
    // PATCH could not read the current version).
    assert_eq!(
        metric(&b, "switchyard_store_errors_total{op=\"get\"}").await,
        Some(1.0)
    );
    assert_eq!(
        metric(&b, "switchyard_store_errors_total{op=\"enroll\"}").await,
        Some(1.0)
    );
    for op in ["update", "create"] {
        let line = format!("switchyard_store_errors_total{{op=\"{op}\"}}");
        assert!(
            matches!(metric(&b, &line).await, None | Some(0.0)),
            "{op} counted besides commit"
        );
    }
    // History still answers, from the last-known copy; that does not make the store up.
    let r = b.get("/v1/rollouts/stytch-login/history", READ_TOKEN).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = b.get("/v1/audit", READ_TOKEN).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(metric(&b, "switchyard_store_up ").await, Some(0.0));

    // Redis comes back (empty): the replicas reconnect by themselves and restore it.
    redis.restart();
    eventually(Duration::from_secs(15), "reconnect", || async {
        metric(&b, "switchyard_store_up ").await == Some(1.0)
            && metric(&a, "switchyard_store_up ").await == Some(1.0)
    })
    .await;
    eventually(Duration::from_secs(10), "writes work again", || async {
        b.send(
            Method::PATCH,
            "/v1/rollouts/stytch-login",
            Some(ADMIN_TOKEN),
            Some(&json!({"description": "after the outage"})),
        )
        .await
        .status()
            == StatusCode::OK
    })
    .await;
    eventually(Duration::from_secs(2), "A catches up", || async {
        a.decide(json!({"rollout": "stytch-login", "user_key": "x"}))
            .await["version"]
            == 3
    })
    .await;
    let mut after = decisions(&a, 40).await;
    for d in &mut after {
        d["version"] = json!(2);
    }
    assert_eq!(
        after, before,
        "the same users get the same flows after the outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_while_redis_is_down_serves_its_last_known_rules() {
    let mut redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    a.patch_rollout("stytch-login", json!({"percentage": 35}))
        .await;
    assert_eq!(a.enroll("stytch-login", "dora").await, StatusCode::CREATED);
    let before = decisions(&a, 30).await;
    // The last-known copy is written within a second of a change.
    let copy = a.settings.store.path.clone();
    eventually(Duration::from_secs(5), "last-known copy written", || {
        let copy = copy.clone();
        async move {
            // Read as the next start reads it (refused while the replica writes it: retried).
            switchyard::store::file::read_dataset(&copy).is_ok_and(|copy| {
                copy.is_some_and(|c| {
                    c.enrollments
                        .get("stytch-login")
                        .is_some_and(|users| users.contains("dora"))
                        && c.rollouts
                            .get("stytch-login")
                            .is_some_and(|r| r.content.percentage == 35.0)
                })
            })
        }
    })
    .await;
    redis.stop();
    let a = a.restart().await;
    // Serving the last-known copy is not reaching the store.
    assert_eq!(metric(&a, "switchyard_store_up ").await, Some(0.0));
    assert_eq!(
        a.client
            .get(a.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(decisions(&a, 30).await, before);
    assert_eq!(
        a.decide(json!({"rollout": "stytch-login", "user_key": "dora"}))
            .await["reason"],
        "enrolled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_coming_back_empty_is_restored_from_the_last_known_copy_and_counted() {
    let redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    let b = replica(&redis.url(), false).await;
    a.create_rollout(json!({"key": "mobile", "percentage": 20, "sticky": {"cookie_name": "sy_m"}}))
        .await;
    a.patch_rollout("mobile", json!({"percentage": 25})).await;
    assert_eq!(a.enroll("mobile", "erin").await, StatusCode::CREATED);
    // A rollout deleted through the API stays deleted, and is no reason to restore anything.
    a.create_rollout(json!({"key": "doomed", "sticky": {"enabled": false}}))
        .await;
    assert_eq!(a.delete_rollout("doomed").await, StatusCode::NO_CONTENT);
    eventually(Duration::from_secs(2), "B sees the deletion", || async {
        b.get("/v1/rollouts/doomed", READ_TOKEN).await.status() == StatusCode::NOT_FOUND
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // let the copies be written

    assert!(redis.cmd("FLUSHALL").contains("OK"));
    eventually(Duration::from_secs(10), "restored", || async {
        redis.cmd("HGET {switchyard}:versions mobile").contains('2')
    })
    .await;
    eventually(Duration::from_secs(5), "counted", || async {
        metric(&a, "switchyard_store_restores_total")
            .await
            .unwrap_or(0.0)
            + metric(&b, "switchyard_store_restores_total")
                .await
                .unwrap_or(0.0)
            == 1.0
    })
    .await;
    let history: Value = b
        .get("/v1/rollouts/mobile/history", READ_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["history"].as_array().unwrap().len(), 2);
    let audit: Value = b.get("/v1/audit", READ_TOKEN).await.json().await.unwrap();
    assert!(audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "deleted"));
    let page: Value = b
        .get("/v1/rollouts/mobile/enrollments", BACKEND_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["user_keys"], json!(["erin"]));
    assert_eq!(
        b.get("/v1/rollouts/doomed", READ_TOKEN).await.status(),
        StatusCode::NOT_FOUND
    );
    // And writes go on.
    a.patch_rollout("mobile", json!({"percentage": 30})).await;
    // The deleted key's version (its delete was version 2) was restored too: created again,
    // it continues from there.
    assert!(redis.cmd("HGET {switchyard}:retired doomed").contains('2'));
    let again = b
        .create_rollout(json!({"key": "doomed", "sticky": {"enabled": false}}))
        .await;
    assert_eq!(again["version"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_redis_works_and_a_wrong_password_is_a_clear_unready_state() {
    let redis = RedisServer::start_with(vec!["--requirepass".into(), "s3cret-pass".into()]);
    let good = replica(
        &format!("redis://:s3cret-pass@127.0.0.1:{}", redis.port),
        false,
    )
    .await;
    good.patch_rollout("stytch-login", json!({"percentage": 5}))
        .await;

    let bad = replica(&format!("redis://:wrong@127.0.0.1:{}", redis.port), false).await;
    let r = bad.client.get(bad.url("/readyz")).send().await.unwrap();
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "not_ready").await;
    assert_eq!(metric(&bad, "switchyard_store_up ").await, Some(0.0));
    let text = bad
        .client
        .get(bad.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("s3cret") && !text.contains("wrong@"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_reach_redis_over_tls_with_a_private_ca() {
    let (redis, ca) = RedisServer::start_tls();
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let a = replica_with(&url, false, Some(&ca)).await;
    let b = replica_with(&url, false, Some(&ca)).await;
    a.patch_rollout("stytch-login", json!({"percentage": 100}))
        .await;
    eventually(Duration::from_secs(2), "propagation over TLS", || async {
        flow_of(&b, "alice").await == "stytch"
    })
    .await;
    // Without the CA, the server's certificate is not trusted: not ready, never a crash.
    let untrusting = replica(&url, false).await;
    let r = untrusting
        .client
        .get(untrusting.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "not_ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_from_the_embedded_store_to_redis_uploads_everything() {
    let redis = RedisServer::start();
    let embedded = spawn_app().await;
    embedded
        .create_rollout(
            json!({"key": "web", "percentage": 15, "sticky": {"cookie_name": "sy_web"}}),
        )
        .await;
    assert_eq!(embedded.enroll("web", "frank").await, StatusCode::CREATED);
    let before = decisions(&embedded, 20).await;
    embedded.stop().await;

    // The same file becomes the Redis replica's last-known copy: Redis is empty, so it is
    // uploaded, history, audit and enrollments included.
    let mut settings = embedded.settings.clone();
    settings.store.backend = Backend::Redis;
    settings.store.url = secrecy::SecretString::from(redis.url());
    let replica = spawn_with(settings, embedded.dir.clone()).await;
    assert_eq!(decisions(&replica, 20).await, before);
    assert!(redis.cmd("HGET {switchyard}:versions web").contains('1'));
    let history: Value = replica
        .get("/v1/rollouts/web/history", READ_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["history"].as_array().unwrap().len(), 1);
    assert_eq!(
        replica
            .decide(json!({"rollout": "web", "user_key": "frank"}))
            .await["reason"],
        "enrolled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_replica_started_before_redis_becomes_ready_when_redis_arrives() {
    let port = crate::redis_server::free_port();
    let app = replica(&format!("redis://127.0.0.1:{port}"), false).await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "not_ready").await;
    // Decisions cannot be made without rules: the rollout is unknown for now.
    let r = app
        .post(
            "/v1/decide",
            DECIDE_TOKEN,
            &json!({"rollout": "stytch-login", "user_key": "a"}),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    let _redis = RedisServer::start_on_port(port);
    eventually(
        Duration::from_secs(15),
        "ready with the default rollout",
        || async {
            app.client
                .get(app.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status()
                == StatusCode::OK
                && app
                    .get("/v1/rollouts/stytch-login", READ_TOKEN)
                    .await
                    .status()
                    == StatusCode::OK
        },
    )
    .await;
    assert_eq!(flow_of(&app, "a").await, "legacy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_long_outage_a_replica_is_back_within_a_second_of_redis_returning() {
    let mut redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    let b = replica(&redis.url(), false).await;
    a.patch_rollout("stytch-login", json!({"percentage": 40}))
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // the last-known copies are saved
    redis.stop();
    // Long enough for a backoff doubling without a low cap to have grown past a second.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    redis.restart();
    let back = |app: &TestApp| {
        let (client, url) = (app.client.clone(), app.url("/metrics"));
        async move {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                let text = client.get(&url).send().await.unwrap().text().await.unwrap();
                if text.lines().any(|l| l == "switchyard_store_up 1") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            started.elapsed()
        }
    };
    let (took_a, took_b) = tokio::join!(back(&a), back(&b));
    println!("replicas back {took_a:?} and {took_b:?} after Redis returned");
    for took in [took_a, took_b] {
        assert!(
            took <= Duration::from_secs(1),
            "back {took:?} after Redis returned"
        );
    }
    eventually(Duration::from_secs(1), "writes work again", || async {
        b.send(
            Method::PATCH,
            "/v1/rollouts/stytch-login",
            Some(ADMIN_TOKEN),
            Some(&json!({"percentage": 45})),
        )
        .await
        .status()
            == StatusCode::OK
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_empty_and_being_restored_writes_are_503_never_not_found() {
    let redis = RedisServer::start();
    let a = replica(&redis.url(), false).await;
    let b = replica(&redis.url(), false).await;
    a.patch_rollout("stytch-login", json!({"percentage": 40}))
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // the last-known copies are saved

    assert!(redis.cmd("FLUSHALL").contains("OK"));
    // Until a replica has restored Redis, the rollout is not gone: writes are 503 and reads
    // answer from the last-known copy.
    let mut refused = Vec::new();
    let started = Instant::now();
    loop {
        let r = b
            .send(
                Method::PATCH,
                "/v1/rollouts/stytch-login",
                Some(ADMIN_TOKEN),
                Some(&json!({"percentage": 45})),
            )
            .await;
        if r.status() == StatusCode::OK {
            break;
        }
        refused.push(assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "store_unavailable").await);
        let history = b.get("/v1/rollouts/stytch-login/history", READ_TOKEN).await;
        assert_eq!(history.status(), StatusCode::OK);
        let history: Value = history.json().await.unwrap();
        assert_eq!(history["history"].as_array().unwrap().len(), 2);
        let audit: Value = b.get("/v1/audit", READ_TOKEN).await.json().await.unwrap();
        assert_eq!(audit["audit"].as_array().unwrap().len(), 2);
        // (The refused write woke the follower: Redis may be restored by now.)
        let r = b.enroll("stytch-login", "gina").await;
        assert!(
            matches!(
                r,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::CREATED | StatusCode::OK
            ),
            "{r}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "not restored");
    }
    println!(
        "restored and writable {:?} after the FLUSHALL; {} writes refused before: {}",
        started.elapsed(),
        refused.len(),
        refused
            .first()
            .map_or(String::new(), |r| r["error"]["message"].to_string())
    );
    assert!(redis
        .cmd("HGET {switchyard}:versions stytch-login")
        .contains('3'));
}
