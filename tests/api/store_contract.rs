//! One set of contract tests for `RolloutStore`, run on every backend: the embedded file,
//! a single real `redis-server`, and a real 3-master Redis Cluster.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use switchyard::metrics::Metrics;
use switchyard::rules::Rollout;
use switchyard::store::embedded::EmbeddedStore;
use switchyard::store::redis::{RedisOptions, RedisStore};
use switchyard::store::{
    Action, AuditPage, Change, ChangeRecord, Retired, RolloutStore, StoreError,
};

use crate::redis_server::{RedisCluster, RedisServer};

/// A store under test, with whatever keeps its backend alive.
struct Subject {
    store: Arc<dyn RolloutStore>,
    _dir: tempfile::TempDir,
    _servers: Option<Box<dyn std::any::Any>>,
}

fn embedded() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("store.json")).unwrap();
    Subject {
        store: Arc::new(store),
        _dir: dir,
        _servers: None,
    }
}

async fn redis_on(url: String, cluster: bool, servers: Box<dyn std::any::Any>) -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = RedisStore::new(
        RedisOptions {
            url,
            cluster,
            prefix: "contract".into(),
            path: dir.path().join("last-known.json"),
            timeout: Duration::from_secs(2),
            tls_ca: None,
            tally_retention: switchyard::tally::Retention::for_windows_of(Duration::from_secs(
                3600,
            )),
        },
        Arc::new(Metrics::new()),
    )
    .unwrap();
    store.load().await.expect("redis reachable");
    Subject {
        store: Arc::new(store),
        _dir: dir,
        _servers: Some(servers),
    }
}

async fn redis() -> Subject {
    let server = RedisServer::start();
    redis_on(server.url(), false, Box::new(server)).await
}

async fn redis_cluster() -> Subject {
    let cluster = RedisCluster::start();
    redis_on(cluster.url(), true, Box::new(cluster)).await
}

fn rollout(key: &str, version: u64, percentage: f64) -> Rollout {
    serde_json::from_value(json!({
        "key": key, "description": "", "enabled": true, "percentage": percentage,
        "salt": "s", "rules": [], "sticky": {"enabled": true, "cookie_name": format!("c_{key}"), "max_age_seconds": 60},
        "epoch": 1, "legacy_sessions": "reject", "version": version,
        "updated_at": Utc::now(), "updated_by": "contract"
    }))
    .unwrap()
}

fn change(key: &str, expected: Option<u64>, next: Option<Rollout>, action: Action) -> Change {
    let version = next.as_ref().map_or(expected.unwrap_or(0), |r| r.version);
    Change {
        key: key.into(),
        expected_version: expected,
        next,
        record: ChangeRecord {
            rollout: key.into(),
            version,
            action,
            actor: "contract".into(),
            at: Utc::now(),
            changes: Vec::new(),
            restored_version: None,
            evidence: None,
        },
        previous_epoch: expected.map(|_| 1),
    }
}

async fn create(store: &dyn RolloutStore, key: &str) {
    store
        .commit(change(
            key,
            None,
            Some(rollout(key, 1, 0.0)),
            Action::Created,
        ))
        .await
        .unwrap();
}

/// Updates `key` from version 1 to version 2.
async fn update_to_2(store: &dyn RolloutStore, key: &str, percentage: f64) {
    store
        .commit(change(
            key,
            Some(1),
            Some(rollout(key, 2, percentage)),
            Action::Updated,
        ))
        .await
        .unwrap();
}

async fn creates_reads_and_refuses_duplicates(s: Subject) {
    let store = s.store.as_ref();
    assert_eq!(store.get("a").await.unwrap(), None);
    create(store, "a").await;
    assert_eq!(store.get("a").await.unwrap().unwrap().version, 1);
    let again = store
        .commit(change(
            "a",
            None,
            Some(rollout("a", 1, 0.0)),
            Action::Created,
        ))
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists(_))),
        "{again:?}"
    );
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.rollouts.len(), 1);
}

async fn writes_compare_and_set_the_version(s: Subject) {
    let store = s.store.clone();
    create(store.as_ref(), "a").await;
    update_to_2(store.as_ref(), "a", 10.0).await;
    let stale = store
        .commit(change(
            "a",
            Some(1),
            Some(rollout("a", 2, 20.0)),
            Action::Updated,
        ))
        .await;
    assert!(
        matches!(stale, Err(StoreError::VersionMismatch { current: 2, .. })),
        "{stale:?}"
    );
    let missing = store
        .commit(change(
            "nope",
            Some(1),
            Some(rollout("nope", 2, 0.0)),
            Action::Updated,
        ))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    // Ten writers racing from the same version: exactly one wins.
    let racers = (0..10).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .commit(change(
                    "a",
                    Some(2),
                    Some(rollout("a", 3, f64::from(i))),
                    Action::Updated,
                ))
                .await
                .is_ok()
        })
    });
    let wins = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
    assert_eq!(store.get("a").await.unwrap().unwrap().version, 3);
}

async fn history_and_audit_are_newest_first_and_deletes_keep_their_audit(s: Subject) {
    let store = s.store.as_ref();
    create(store, "a").await;
    create(store, "b").await;
    update_to_2(store, "a", 5.0).await;
    let history = store.history("a").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|h| h.rollout.version)
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(history[0].record.action, Action::Updated);
    store.enroll("b", "u1").await.unwrap();
    store
        .commit(change("b", Some(1), None, Action::Deleted))
        .await
        .unwrap();
    assert_eq!(store.get("b").await.unwrap(), None);
    assert!(matches!(
        store.history("b").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.enrollments("b", None, 10).await,
        Err(StoreError::NotFound(_))
    ));
    let audit = store.audit(None, 10).await.unwrap();
    assert_eq!(audit.next_cursor, None);
    let seen: Vec<(String, Action)> = audit
        .records
        .iter()
        .map(|r| (r.rollout.clone(), r.action))
        .collect();
    assert_eq!(
        seen,
        [
            ("b".to_string(), Action::Deleted),
            ("a".to_string(), Action::Updated),
            ("b".to_string(), Action::Created),
            ("a".to_string(), Action::Created),
        ]
    );
    // Pages of 3, newest first: the cursor continues where the page ended.
    let first = store.audit(None, 3).await.unwrap();
    assert_eq!(first.records, audit.records[..3]);
    let cursor = first.next_cursor.expect("more pages");
    let second = store.audit(Some(cursor), 3).await.unwrap();
    assert_eq!(second.records, audit.records[3..]);
    assert_eq!(second.next_cursor, None);
    // A cursor stays valid while changes are added: it names a place in the trail.
    create(store, "c").await;
    assert_eq!(
        store.audit(Some(cursor), 3).await.unwrap().records,
        audit.records[3..]
    );
    assert_eq!(store.audit(None, 1).await.unwrap().records[0].rollout, "c");
    assert_eq!(
        store.audit(Some(0), 3).await.unwrap(),
        AuditPage {
            records: Vec::new(),
            next_cursor: None
        }
    );
}

async fn a_deleted_key_continues_its_version_numbers(s: Subject) {
    let store = s.store.as_ref();
    assert_eq!(store.retired("a").await.unwrap(), None);
    create(store, "a").await;
    update_to_2(store, "a", 5.0).await;
    let mut delete = change("a", Some(2), None, Action::Deleted);
    delete.record.version = 3;
    delete.previous_epoch = Some(7);
    store.commit(delete).await.unwrap();
    let retired = Retired {
        version: 3,
        epoch: 7,
    };
    assert_eq!(store.retired("a").await.unwrap(), Some(retired));
    assert_eq!(store.retired("never").await.unwrap(), None);
    for stale in [1, 3] {
        let refused = store
            .commit(change(
                "a",
                None,
                Some(rollout("a", stale, 0.0)),
                Action::Created,
            ))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Retired { last, .. }) if last == retired),
            "a create at version {stale} after a delete at 3: {refused:?}"
        );
    }
    assert_eq!(store.get("a").await.unwrap(), None);
    store
        .commit(change(
            "a",
            None,
            Some(rollout("a", 4, 0.0)),
            Action::Created,
        ))
        .await
        .unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().version, 4);
    assert_eq!(store.retired("a").await.unwrap(), None);
    let history = store.history("a").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].record.version, 4);
}

async fn enrollments_are_idempotent_and_page_in_key_order(s: Subject) {
    let store = s.store.as_ref();
    create(store, "a").await;
    assert!(matches!(
        store.enroll("nope", "u").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.enroll("a", "u00").await.unwrap());
    assert!(!store.enroll("a", "u00").await.unwrap());
    assert!(store.unenroll("a", "u00").await.unwrap());
    assert!(!store.unenroll("a", "u00").await.unwrap());
    let mut keys: Vec<String> = (0..25)
        .map(|i| format!("user-{i:02}@example.com"))
        .collect();
    keys.push("ünïcode@example.com".into());
    keys.push("Zed".into());
    for k in &keys {
        assert!(store.enroll("a", k).await.unwrap());
    }
    keys.sort();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.enrollments("a", cursor.as_deref(), 10).await.unwrap();
        pages += 1;
        seen.extend(page.user_keys);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, keys);
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.enrollment_count(), keys.len());
}

async fn a_schedule_and_a_guard_survive_every_read(s: Subject) {
    let store = s.store.as_ref();
    let mut planned = rollout("planned", 1, 5.0);
    planned.content = serde_json::from_value(json!({
        "description": "", "enabled": true, "percentage": 5.0, "salt": "s", "rules": [],
        "sticky": {"enabled": true, "cookie_name": "c_planned", "max_age_seconds": 60},
        "epoch": 1, "legacy_sessions": "reject",
        "schedule": {"state": "active", "applied_steps": 1, "steps": [
            {"at": "2026-12-01T09:00:00Z", "percentage": 5.0},
            {"at": "2026-12-02T09:00:00.250Z", "percentage": 33.33}]},
        "guard": {"enabled": true, "window_seconds": 900, "min_attempts": 150,
                  "max_failure_rate_increase": 1.5, "confidence": 0.99, "action": "pause"}
    }))
    .unwrap();
    assert!(planned.content.schedule.is_some() && planned.content.guard.is_some());
    store
        .commit(change(
            "planned",
            None,
            Some(planned.clone()),
            Action::Created,
        ))
        .await
        .unwrap();
    assert_eq!(store.get("planned").await.unwrap().as_ref(), Some(&planned));
    let loaded = store.load().await.unwrap();
    assert_eq!(loaded.rollouts, [planned.clone()]);
    let history = store.history("planned").await.unwrap();
    assert_eq!(history[0].rollout, planned);
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod on_embedded {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::embedded()).await;
            })*
        }
        mod on_redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(super::redis().await).await;
            })*
        }
        mod on_redis_cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(super::redis_cluster().await).await;
            })*
        }
    };
}

contract!(
    creates_reads_and_refuses_duplicates,
    writes_compare_and_set_the_version,
    history_and_audit_are_newest_first_and_deletes_keep_their_audit,
    a_deleted_key_continues_its_version_numbers,
    enrollments_are_idempotent_and_page_in_key_order,
    a_schedule_and_a_guard_survive_every_read,
);
