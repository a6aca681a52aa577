//! Criterion benches of the decide path's JSON handling: decoding a realistic decide request
//! into a borrowed struct (as `src/http/decide.rs` does) and encoding a decide response, with
//! in-run baselines to report ratios against:
//!
//! - `baseline/decode_value`: `serde_json::from_slice` into a `serde_json::Value` (the generic
//!   parse every JSON service pays at least once);
//! - `baseline/decode_ignored_any`: a syntax-only pass over the same bytes (the floor);
//! - `baseline/encode_value`: `serde_json::to_vec` of the same response held as a `Value`.
//!
//! `decode/borrowed_struct` is the struct alone through `serde_json::from_slice`;
//! `decode/switchyard_parse` is the production entry point `switchyard::http::body::parse`
//! (since 1b4aa4a a plain `from_slice` with the path-tracking parser only to explain an error;
//! before, serde_path_to_error on every request at twice the cost), so the two show what the
//! wrapper costs. The request and response types are the service's own
//! (`switchyard::http::decide`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use switchyard::http::decide::{DecideRequest, DecideResponse, SessionBody, SetCookieBody};

/// A decide request as bench/load.sh sends it (one with every field and a sticky cookie).
const REQUEST: &str = r#"{"rollout":"bench-login","user_key":"user-0004711@example.com","device_id":"d-4f2a9c71e03b","ip":"81.2.69.142","platform":"web","app_version":"5.3.1","session_token":"8f14e45fceea167a5a36dedd4bea2543","cookies":{"sy_bench":"s1.bench-login.1.1234.0.Zx3vQk2b9mN4pL7sT1wY8cE5aR6uH0jD2fG9kM3nB4q"}}"#;

/// A minimal decide request (rollout and key only).
const REQUEST_MINIMAL: &str = r#"{"rollout":"bench-login","device_id":"d-4f2a9c71e03b"}"#;

const COOKIE: &str = "s1.bench-login.1.1234.0.Zx3vQk2b9mN4pL7sT1wY8cE5aR6uH0jD2fG9kM3nB4q";

fn response(with_cookie: bool) -> DecideResponse<'static> {
    DecideResponse {
        rollout: "bench-login",
        flow: "legacy",
        reason: "percentage",
        rule: None,
        bucket: 1234,
        version: 2,
        set_cookie: with_cookie.then_some(SetCookieBody {
            name: "sy_bench",
            value: COOKIE,
            max_age_seconds: 2_592_000,
        }),
        session: SessionBody {
            source: "legacy",
            action: "login_legacy",
        },
    }
}

fn benches(c: &mut Criterion) {
    let request = REQUEST.as_bytes();
    let minimal = REQUEST_MINIMAL.as_bytes();
    let parsed: DecideRequest = switchyard::http::body::parse(request).expect("valid request");
    assert_eq!(parsed.cookies.0.len(), 1);

    let mut decode = c.benchmark_group("decode");
    decode.bench_function("baseline/decode_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(request)).unwrap())
    });
    decode.bench_function("baseline/decode_ignored_any", |b| {
        b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(request)).unwrap())
    });
    decode.bench_function("borrowed_struct", |b| {
        b.iter(|| serde_json::from_slice::<DecideRequest>(black_box(request)).unwrap())
    });
    decode.bench_function("switchyard_parse", |b| {
        b.iter(|| switchyard::http::body::parse::<DecideRequest>(black_box(request)).unwrap())
    });
    decode.bench_function("borrowed_struct_minimal", |b| {
        b.iter(|| serde_json::from_slice::<DecideRequest>(black_box(minimal)).unwrap())
    });
    decode.bench_function("switchyard_parse_minimal", |b| {
        b.iter(|| switchyard::http::body::parse::<DecideRequest>(black_box(minimal)).unwrap())
    });
    decode.finish();

    let with_cookie = response(true);
    let without_cookie = response(false);
    let as_value = serde_json::to_value(&with_cookie).expect("value");
    let mut encode = c.benchmark_group("encode");
    encode.bench_function("baseline/encode_value", |b| {
        b.iter(|| serde_json::to_vec(black_box(&as_value)).unwrap())
    });
    encode.bench_function("response_with_set_cookie", |b| {
        b.iter(|| serde_json::to_vec(black_box(&with_cookie)).unwrap())
    });
    encode.bench_function("response_without_set_cookie", |b| {
        b.iter(|| serde_json::to_vec(black_box(&without_cookie)).unwrap())
    });
    // What actix's `HttpResponse::json` does: to_string, then into the body.
    encode.bench_function("response_to_string", |b| {
        b.iter(|| serde_json::to_string(black_box(&with_cookie)).unwrap())
    });
    encode.finish();
}

criterion_group!(wire, benches);
criterion_main!(wire);
