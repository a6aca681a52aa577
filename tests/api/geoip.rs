//! The GeoIP database is swapped while the service runs.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_geoip_file_on_disk_changes_decisions_without_a_restart() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let database = dir.path().join("geo.mmdb");
    // 214.0.1.1 is in the City test database only (Melbourne, AU).
    std::fs::copy(repo_path("geoip/GeoIP2-Country-Test.mmdb"), &database).unwrap();
    let mut settings = test_settings(dir.path());
    settings.geoip.database = Some(database.clone());
    settings.geoip.reload_interval_seconds = 1;
    let app = spawn_with(settings, dir.clone()).await;
    app.patch_rollout(
        "stytch-login",
        json!({"rules": [{"id": "au", "when": {"countries": ["AU"]}, "then": "stytch"}]}),
    )
    .await;
    let ask = || app.decide(json!({"rollout": "stytch-login", "user_key": "k", "ip": "214.0.1.1"}));
    assert_eq!(ask().await["reason"], "percentage");

    // Replace it the safe way: write beside, then rename over.
    let staged = dir.path().join("geo.mmdb.new");
    std::fs::copy(repo_path("geoip/GeoIP2-City-Test.mmdb"), &staged).unwrap();
    std::fs::rename(&staged, &database).unwrap();
    let started = Instant::now();
    loop {
        let d = ask().await;
        if d["reason"] == "rule" {
            assert_eq!(d["rule"], "au");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new database was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A broken file does not take the service down: the last good database keeps answering.
    std::fs::write(&staged, b"not a database").unwrap();
    std::fs::rename(&staged, &database).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ask().await["reason"], "rule");
}
