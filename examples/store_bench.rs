//! Bench-only: the embedded store's database with many enrollments (`bench/store.sh`,
//! `bench/load.sh`'s memory step). Not part of the service.
//!
//! ```text
//! store_bench enroll PATH ROLLOUT N   add N enrollments (user-0000000@example.com …) to ROLLOUT
//!                                     in one transaction; an empty store first gets the default
//!                                     rollout, as a first start would
//! store_bench measure PATH ROLLOUT W  start-up (open + load + catalog), then W enrollments one
//!                                     by one (each committed with fsync), with VmRSS around them
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::admin::Admin;
use switchyard::catalog::Catalog;
use switchyard::cookies::CookieSigner;
use switchyard::metrics::Metrics;
use switchyard::store::embedded::EmbeddedStore;
use switchyard::store::migration;
use switchyard::store::RolloutStore;

/// A line of /proc/self/status, in kB.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

async fn enroll(path: &str, rollout: &str, n: u64) {
    {
        let store = Arc::new(EmbeddedStore::open(path).expect("store opens"));
        let catalog = Arc::new(Catalog::new(Arc::new(Metrics::new())));
        for r in store.load().await.expect("store loads").rollouts {
            catalog.install(r).expect("stored rollouts are valid");
        }
        Admin::new(
            store,
            catalog,
            CookieSigner::new(b"bench-only cookie secret, 32 bytes+"),
        )
        .ensure_default_rollout()
        .await
        .expect("default rollout");
    }
    let started = Instant::now();
    let file = migration::open_migrating(path.as_ref()).expect("store opens");
    let added = file
        .enroll_all(rollout, (0..n).map(|i| format!("user-{i:07}@example.com")))
        .expect("enrollments written");
    println!(
        "enrolled added={added} seconds={:.2}",
        started.elapsed().as_secs_f64()
    );
}

async fn measure(path: &str, rollout: &str, writes: usize) {
    let rss_before = status_kb("VmRSS:");
    let started = Instant::now();
    let store = EmbeddedStore::open(path).expect("store opens");
    let loaded = store.load().await.expect("store loads");
    let catalog = Catalog::new(Arc::new(Metrics::new()));
    let enrollments = loaded.enrollment_count();
    for r in loaded.rollouts {
        catalog.install(r).expect("stored rollouts are valid");
    }
    for (key, hashes) in &loaded.enrollments {
        catalog.load_enrollments(key, hashes);
    }
    drop(loaded.enrollments);
    let startup = started.elapsed();
    let rss_loaded = status_kb("VmRSS:");
    let mut times = Vec::with_capacity(writes);
    for i in 0..writes {
        let user = format!("measure-{}-{i:05}@example.com", std::process::id());
        let t = Instant::now();
        assert!(store.enroll(rollout, &user).await.expect("enrolled"));
        times.push(t.elapsed());
    }
    let first = times.first().copied().unwrap_or_default();
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "measure enrollments={enrollments} startup_ms={} rss_kb_before={rss_before} rss_kb_loaded={rss_loaded} \
         enroll_first_ms={} enroll_median_ms={} enroll_p90_ms={} enroll_max_ms={} rss_kb_after={} hwm_kb={} \
         file_bytes={}",
        ms(startup),
        ms(first),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(1.0)),
        status_kb("VmRSS:"),
        status_kb("VmHWM:"),
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["enroll", path, rollout, n] => enroll(path, rollout, n.parse().expect("N")).await,
        ["measure", path, rollout, w] => measure(path, rollout, w.parse().expect("W")).await,
        _ => {
            eprintln!("usage: store_bench enroll PATH ROLLOUT N | measure PATH ROLLOUT WRITES");
            std::process::exit(2);
        }
    }
}
