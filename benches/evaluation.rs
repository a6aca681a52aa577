//! Criterion benches for the decide path's pure parts: evaluation (simple; 10 rules with
//! 1,000 CIDRs; the same with a GeoIP lookup), cookie signing and verification, session
//! classification. `baseline/xxh3_of_key` is the reference to report ratios against: it is
//! the one hash every decision must do anyway.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use switchyard::cookies::CookieSigner;
use switchyard::geo::{locate, GeoIp};
use switchyard::rules::model::{RolloutContent, Sticky};
use switchyard::rules::{
    compile, decide, CompiledRollout, LegacySessions, Rollout, StickyState, Subject,
};
use switchyard::sessions::Classifier;

fn rollout(percentage: f64, rules: serde_json::Value) -> CompiledRollout {
    compile(&Rollout {
        key: "stytch-login".into(),
        content: RolloutContent {
            description: String::new(),
            enabled: true,
            percentage,
            salt: "3f1c8a".into(),
            rules: serde_json::from_value(rules).expect("rules"),
            sticky: Sticky::default(),
            epoch: 1,
            legacy_sessions: LegacySessions::Reject,
            schedule: None,
            guard: None,
        },
        version: 1,
        updated_at: chrono::Utc::now(),
        updated_by: "bench".into(),
    })
    .expect("valid rollout")
}

/// 10 rules of every kind, one with 1,000 CIDRs; the benched subject matches none of them, so
/// every rule is evaluated.
fn ten_rules() -> CompiledRollout {
    let cidrs: Vec<String> = (0..1000u32)
        .map(|i| {
            let a = 11 + (i / 250) as u8;
            let b = (i % 250) as u8;
            format!("{a}.{b}.{}.0/24", (i * 7 % 250) as u8)
        })
        .collect();
    let testers: Vec<String> = (0..100)
        .map(|i| format!("tester-{i}@example.com"))
        .collect();
    rollout(
        25.0,
        json!([
            {"id": "offices", "when": {"ip_ranges": cidrs}, "then": "stytch"},
            {"id": "testers", "when": {"user_keys": testers}, "then": "stytch"},
            {"id": "old-ios", "when": {"platforms": ["ios"], "app_version": "<5.2.0"}, "then": "legacy"},
            {"id": "android", "when": {"platforms": ["android"]}, "then": "legacy"},
            {"id": "de", "when": {"countries": ["DE", "AT", "CH"]}, "then": "legacy"},
            {"id": "oceania", "when": {"continents": ["OC"]}, "then": {"percentage": 5}},
            {"id": "california", "when": {"subdivisions": ["US-CA"]}, "then": {"percentage": 10}},
            {"id": "beta", "when": {"app_version": ">=9.0.0"}, "then": "stytch"},
            {"id": "v6-lab", "when": {"ip_ranges": ["2001:db8::/32"]}, "then": "stytch"},
            {"id": "uk-half", "when": {"countries": ["GB"], "platforms": ["web"]}, "then": {"percentage": 50}}
        ]),
    )
}

fn benches(c: &mut Criterion) {
    let simple = rollout(25.0, json!([]));
    let complex = ten_rules();
    let ip = IpAddr::V4(Ipv4Addr::new(89, 160, 20, 112)); // SE in the test database
    let geo =
        GeoIp::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/GeoIP2-City-Test.mmdb"))
            .expect("test database");
    let subject = Subject {
        user_key: Some("alice@example.com"),
        ip: Some(ip),
        platform: Some("web"),
        app_version: Some("5.3.1"),
        ..Subject::default()
    };

    c.bench_function("baseline/xxh3_of_key", |b| {
        b.iter(|| xxhash_rust::xxh3::xxh3_64(black_box(b"3f1c8a:alice@example.com")))
    });
    c.bench_function("evaluate/simple", |b| {
        b.iter(|| decide(black_box(&simple), black_box(&subject), |_| false))
    });
    c.bench_function("evaluate/10_rules_1000_cidrs", |b| {
        b.iter(|| decide(black_box(&complex), black_box(&subject), |_| false))
    });
    // 5,376 distinct addresses that the test database knows (202.196.224.0/20 PH,
    // 175.16.199.0/24 CN, 214.78.120.0/22 US-CA): more than the per-thread lookup cache holds,
    // so every lookup walks the database — the worst case.
    let known: Vec<IpAddr> = (0..4096u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0xCAC4_E000 + i)))
        .chain((0..256u32).map(|i| IpAddr::V4(Ipv4Addr::from(0xAF10_C700 + i))))
        .chain((0..1024u32).map(|i| IpAddr::V4(Ipv4Addr::from(0xD64E_7800 + i))))
        .collect();
    let mut at = 0usize;
    c.bench_function("evaluate/10_rules_1000_cidrs_with_geoip", |b| {
        b.iter(|| {
            at = (at + 1) % known.len();
            let located = Subject {
                ip: Some(known[at]),
                location: locate(&geo, Some(known[at]), None),
                ..subject
            };
            decide(black_box(&complex), black_box(&located), |_| false)
        })
    });
    c.bench_function(
        "evaluate/10_rules_1000_cidrs_with_geoip_repeat_caller",
        |b| {
            b.iter(|| {
                let located = Subject {
                    location: locate(&geo, subject.ip, None),
                    ..subject
                };
                decide(black_box(&complex), black_box(&located), |_| false)
            })
        },
    );
    // A repeat caller is answered from the per-thread cache; 16,384 distinct addresses (more
    // than the cache holds) walk the database every time.
    c.bench_function("geoip/lookup_repeat_caller", |b| {
        b.iter(|| geo.lookup(black_box(ip)))
    });
    let mut next = 0usize;
    c.bench_function("geoip/lookup_distinct_callers", |b| {
        b.iter(|| {
            next = (next + 1) % known.len();
            geo.lookup(black_box(known[next]))
        })
    });

    let signer = CookieSigner::new(b"a benchmark secret of at least 32 bytes");
    let state = StickyState {
        bucket: 1234,
        stytch: true,
    };
    let cookie = signer.sign_sticky("stytch-login", 1, state);
    c.bench_function("cookies/sign_sticky", |b| {
        b.iter(|| signer.sign_sticky(black_box("stytch-login"), 1, black_box(state)))
    });
    c.bench_function("cookies/verify_sticky", |b| {
        b.iter(|| signer.verify_sticky(black_box(&cookie), "stytch-login", 1))
    });

    let classifier = Classifier::new(
        Some("project-live-abc"),
        &[],
        &["https://auth.example.com".into()],
        true,
    );
    let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdHl0Y2guY29tL3Byb2plY3QtbGl2ZS1hYmMiLCJzdWIiOiJ1c2VyLWxpdmUtMTIzIiwiZXhwIjoxOTAwMDAwMDAwfQ.c2lnbmF0dXJl";
    c.bench_function("sessions/classify_jwt", |b| {
        b.iter(|| classifier.classify(black_box(Some(jwt))))
    });
    c.bench_function("sessions/classify_opaque", |b| {
        b.iter(|| classifier.classify(black_box(Some("8f14e45fceea167a5a36dedd4bea2543"))))
    });
}

criterion_group!(evaluation, benches);
criterion_main!(evaluation);
