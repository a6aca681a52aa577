//! One set of contract tests for `TallyStore` — where every replica's outcome and decision
//! counts add up — run on each backend: the embedded store's memory, a real `redis-server`,
//! and a real 3-master Redis Cluster.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use switchyard::metrics::Metrics;
use switchyard::rules::Flow;
use switchyard::store::redis::{RedisOptions, RedisStore};
use switchyard::store::RolloutStore;
use switchyard::tally::{
    Bucket, BucketCounts, BucketRange, Counter, LoginOutcome, MemoryTallies, Retention, Tally,
    TallyStore,
};

use crate::redis_server::{RedisCluster, RedisServer};

/// The retention every subject keeps counts for: windows of up to an hour.
fn retention() -> Retention {
    Retention::for_windows_of(Duration::from_secs(3600))
}

/// A backend under test: two replicas' views of it (the same one for the single-replica
/// memory store), and whatever keeps it alive.
struct Subject {
    first: Arc<dyn TallyStore>,
    second: Arc<dyn TallyStore>,
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

fn memory() -> Subject {
    let store = Arc::new(MemoryTallies::new(retention()));
    Subject {
        first: store.clone(),
        second: store,
        _keep: Vec::new(),
    }
}

async fn redis_replica(url: &str, cluster: bool) -> (Arc<RedisStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedisStore::new(
        RedisOptions {
            url: url.to_string(),
            cluster,
            prefix: "contract".into(),
            path: dir.path().join("last-known.redb"),
            timeout: Duration::from_secs(2),
            tls_ca: None,
            tally_retention: retention(),
        },
        Arc::new(Metrics::new()),
    )
    .unwrap();
    store.load().await.expect("redis reachable");
    (Arc::new(store), dir)
}

async fn redis_subject(
    url: String,
    cluster: bool,
    servers: Box<dyn std::any::Any + Send>,
) -> Subject {
    let (first, dir1) = redis_replica(&url, cluster).await;
    let (second, dir2) = redis_replica(&url, cluster).await;
    Subject {
        first,
        second,
        _keep: vec![servers, Box::new(dir1), Box::new(dir2)],
    }
}

async fn redis() -> Subject {
    let server = RedisServer::start();
    redis_subject(server.url(), false, Box::new(server)).await
}

async fn redis_cluster() -> Subject {
    let cluster = RedisCluster::start();
    redis_subject(cluster.url(), true, Box::new(cluster)).await
}

fn tally(counts: &[(Counter, u64)]) -> Tally {
    let mut t = Tally::default();
    for (counter, n) in counts {
        t.add(*counter, *n);
    }
    t
}

fn counts(rollout: &str, bucket: Bucket, tally: Tally) -> BucketCounts {
    BucketCounts {
        rollout: rollout.into(),
        bucket,
        tally,
    }
}

const STYTCH_FAILURE: Counter = Counter::StytchFailure;
const STYTCH_SUCCESS: Counter = Counter::StytchSuccess;
const LEGACY_FAILURE: Counter = Counter::LegacyFailure;
const LEGACY_SUCCESS: Counter = Counter::LegacySuccess;

async fn counts_read_back_per_bucket_and_per_rollout(s: Subject) {
    let now = SystemTime::now();
    let current = Bucket::at(now);
    let earlier = current.before(3);
    let a = tally(&[
        (STYTCH_FAILURE, 2),
        (STYTCH_SUCCESS, 40),
        (Counter::StytchDecision, 50),
    ]);
    let b = tally(&[
        (LEGACY_FAILURE, 1),
        (LEGACY_SUCCESS, 9),
        (Counter::LegacyDecision, 12),
    ]);
    s.first
        .add(&[
            counts("login", earlier, a),
            counts("login", current, b),
            counts("other", current, a),
        ])
        .await
        .unwrap();
    let window = BucketRange::window(now, 600);
    assert_eq!(
        s.first.read("login", window).await.unwrap(),
        vec![(earlier, a), (current, b)]
    );
    let sum = s.first.sum("login", window).await.unwrap();
    assert_eq!(sum.outcomes(Flow::Stytch).attempts(), 42);
    assert_eq!(sum.outcomes(Flow::Stytch).failures, 2);
    assert_eq!(sum.outcomes(Flow::Legacy).attempts(), 10);
    assert_eq!(sum.decisions(Flow::Stytch), 50);
    assert_eq!(sum.decisions(Flow::Legacy), 12);
    assert_eq!(s.first.sum("other", window).await.unwrap(), a);
    // A window that starts after the earlier bucket leaves it out.
    let recent = window.starting_no_earlier_than(current);
    assert_eq!(s.first.sum("login", recent).await.unwrap(), b);
    // Adding again adds.
    s.first.add(&[counts("login", current, b)]).await.unwrap();
    let twice = s.first.sum("login", recent).await.unwrap();
    assert_eq!(twice.outcomes(Flow::Legacy).failures, 2);
    assert_eq!(twice.decisions(Flow::Legacy), 24);
}

async fn two_replicas_adding_at_once_add_up(s: Subject) {
    let now = SystemTime::now();
    let bucket = Bucket::at(now);
    let one = tally(&[
        (STYTCH_FAILURE, 1),
        (LEGACY_SUCCESS, 3),
        (Counter::StytchDecision, 1),
    ]);
    let adders = (0..40).map(|i| {
        let store = if i % 2 == 0 {
            s.first.clone()
        } else {
            s.second.clone()
        };
        tokio::spawn(async move { store.add(&[counts("login", bucket, one)]).await })
    });
    for result in futures_util::future::join_all(adders).await {
        result.unwrap().unwrap();
    }
    let window = BucketRange::window(now, 60);
    for view in [&s.first, &s.second] {
        let sum = view.sum("login", window).await.unwrap();
        assert_eq!(sum.get(STYTCH_FAILURE), 40);
        assert_eq!(sum.get(LEGACY_SUCCESS), 120);
        assert_eq!(sum.decisions(Flow::Stytch), 40);
        assert_eq!(sum.outcomes(Flow::Legacy).failures, 0);
    }
}

async fn buckets_older_than_the_retention_are_gone(s: Subject) {
    let now = SystemTime::now();
    let current = Bucket::at(now);
    // Half an hour ago is kept; two hours ago is past the hour and a minute kept.
    let kept = Bucket::at(now - Duration::from_secs(1800));
    let expired = Bucket::at(now - Duration::from_secs(7200));
    let one = tally(&[(Counter::outcome(Flow::Stytch, LoginOutcome::Failure), 1)]);
    s.first
        .add(&[
            counts("login", kept, one),
            counts("login", expired, one),
            counts("login", current, one),
        ])
        .await
        .unwrap();
    let all_day = BucketRange::window(now, 86_400);
    let read = s.first.read("login", all_day).await.unwrap();
    assert_eq!(read, vec![(kept, one), (current, one)]);
    let only_expired = BucketRange {
        first: expired,
        last: expired,
    };
    assert!(s
        .first
        .read("login", only_expired)
        .await
        .unwrap()
        .is_empty());
}

async fn nothing_counted_reads_as_nothing(s: Subject) {
    let window = BucketRange::window(SystemTime::now(), 600);
    assert!(s
        .first
        .read("never-counted", window)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .second
        .sum("never-counted", window)
        .await
        .unwrap()
        .is_empty());
    // An empty flush is no error.
    s.first.add(&[]).await.unwrap();
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod on_memory {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::memory()).await;
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
    counts_read_back_per_bucket_and_per_rollout,
    two_replicas_adding_at_once_add_up,
    buckets_older_than_the_retention_are_gone,
    nothing_counted_reads_as_nothing,
);

/// The Redis layout itself: one hash per rollout and bucket, under the store's hash tag, with
/// only the counts that are not zero, expiring when the retention says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_bucket_is_one_hash_in_the_stores_slot_that_expires_after_the_retention() {
    let server = RedisServer::start();
    let (store, _dir) = redis_replica(&server.url(), false).await;
    let now = SystemTime::now();
    let bucket = Bucket::at(now);
    store
        .add(&[counts(
            "login",
            bucket,
            tally(&[(STYTCH_FAILURE, 3), (Counter::LegacyDecision, 7)]),
        )])
        .await
        .unwrap();
    let key = format!("{{contract}}:tally:login:{}", bucket.start_seconds());
    let fields = server.cmd(&format!("HGETALL {key}"));
    assert!(
        fields.contains("stytch:failure") && fields.contains("legacy:decision"),
        "{fields}"
    );
    assert!(
        !fields.contains("stytch:success"),
        "zero counts are not written: {fields}"
    );
    let ttl: u64 = server
        .cmd(&format!("TTL {key}"))
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    let expected = retention().expiry_of(bucket)
        - now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
    assert!(
        ttl <= expected && ttl + 5 >= expected,
        "TTL {ttl}, expected about {expected}"
    );
    assert!(ttl > 3600, "kept for the whole hour window: {ttl}");
    // (That every key of a flush shares one slot is what lets the cluster subject's MULTI
    // succeed at all: keys of two slots would fail it with CROSSSLOT.)
}
