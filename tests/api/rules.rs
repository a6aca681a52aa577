//! SPEC §1: every rule condition decides as specified, through `POST /v1/decide`.

use serde_json::{json, Value};

use crate::helpers::*;

/// A rollout at 0 % whose only rule forces `stytch` when `when` holds.
async fn app_with_condition(when: Value) -> TestApp {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "r",
        0.0,
        json!([{"id": "the-rule", "when": when, "then": "stytch"}]),
    ))
    .await;
    app
}

/// Whether the rule holds for a request with these extra fields.
async fn holds(app: &TestApp, extra: Value) -> bool {
    let mut request = json!({"rollout": "r", "user_key": "someone"});
    for (k, v) in extra.as_object().expect("an object") {
        request[k] = v.clone();
    }
    let decision = app.decide(request).await;
    match decision["reason"].as_str() {
        Some("rule") => {
            assert_eq!(decision["rule"], "the-rule");
            assert_eq!(decision["flow"], "stytch");
            true
        }
        Some("percentage") => {
            assert_eq!(decision["flow"], "legacy");
            assert_eq!(decision["rule"], Value::Null);
            false
        }
        other => panic!("unexpected reason {other:?}: {decision}"),
    }
}

#[tokio::test]
async fn ip_ranges_match_ipv4_and_ipv6_cidrs_and_single_addresses() {
    let app = app_with_condition(
        json!({"ip_ranges": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]}),
    )
    .await;
    assert!(holds(&app, json!({"ip": "203.0.113.9"})).await);
    assert!(holds(&app, json!({"ip": "203.0.113.255"})).await);
    assert!(!holds(&app, json!({"ip": "203.0.114.1"})).await);
    assert!(holds(&app, json!({"ip": "2001:db8:1234::1"})).await);
    assert!(!holds(&app, json!({"ip": "2001:db9::1"})).await);
    assert!(holds(&app, json!({"ip": "198.51.100.7"})).await);
    assert!(!holds(&app, json!({"ip": "198.51.100.8"})).await);
    assert!(!holds(&app, json!({})).await, "no IP never matches");
}

#[tokio::test]
async fn an_ipv4_mapped_ipv6_request_address_matches_an_ipv4_range() {
    let app = app_with_condition(json!({"ip_ranges": ["203.0.113.0/24"]})).await;
    assert!(holds(&app, json!({"ip": "::ffff:203.0.113.9"})).await);
    assert!(!holds(&app, json!({"ip": "::ffff:203.0.114.9"})).await);
}

#[tokio::test]
async fn countries_come_from_the_geoip_database() {
    let gb = app_with_condition(json!({"countries": ["GB"]})).await;
    assert!(holds(&gb, json!({"ip": "81.2.69.142"})).await);
    assert!(holds(&gb, json!({"ip": "::ffff:81.2.69.142"})).await);
    assert!(!holds(&gb, json!({"ip": "216.160.83.56"})).await);
    assert!(!holds(&gb, json!({"ip": "89.160.20.112"})).await);

    let us = app_with_condition(json!({"countries": ["US"]})).await;
    assert!(holds(&us, json!({"ip": "216.160.83.56"})).await);
    let se = app_with_condition(json!({"countries": ["se"]})).await;
    assert!(holds(&se, json!({"ip": "89.160.20.112"})).await);
}

#[tokio::test]
async fn a_geo_condition_does_not_hold_when_the_location_is_unknown() {
    let app = app_with_condition(json!({"countries": ["US", "GB", "SE", "AU"]})).await;
    // Found in the database, but the record has no country.
    assert!(!holds(&app, json!({"ip": "214.1.1.1"})).await);
    // Not in the database at all.
    assert!(!holds(&app, json!({"ip": "8.8.8.8"})).await);
    // No address.
    assert!(!holds(&app, json!({})).await);

    let continents = app_with_condition(json!({"continents": ["EU", "NA", "OC"]})).await;
    assert!(!holds(&continents, json!({"ip": "214.1.1.1"})).await);
    assert!(!holds(&continents, json!({"ip": "8.8.8.8"})).await);
    let subdivisions = app_with_condition(json!({"subdivisions": ["US-WA"]})).await;
    assert!(!holds(&subdivisions, json!({"ip": "8.8.8.8"})).await);
}

#[tokio::test]
async fn the_callers_country_wins_over_geoip() {
    let app = app_with_condition(json!({"countries": ["SE"]})).await;
    // GeoIP says GB, the caller says SE.
    assert!(holds(&app, json!({"ip": "81.2.69.142", "country": "SE"})).await);
    assert!(holds(&app, json!({"country": "se"})).await);
    // GeoIP says SE, the caller says GB.
    assert!(!holds(&app, json!({"ip": "89.160.20.112", "country": "GB"})).await);
}

#[tokio::test]
async fn continents_come_from_the_geoip_database() {
    let eu = app_with_condition(json!({"continents": ["EU"]})).await;
    assert!(holds(&eu, json!({"ip": "81.2.69.142"})).await);
    assert!(holds(&eu, json!({"ip": "89.160.20.112"})).await);
    assert!(!holds(&eu, json!({"ip": "216.160.83.56"})).await);
    let na = app_with_condition(json!({"continents": ["NA"]})).await;
    assert!(holds(&na, json!({"ip": "216.160.83.56"})).await);
    // The caller's country brings its continent.
    assert!(holds(&na, json!({"country": "US"})).await);
    assert!(!holds(&na, json!({"ip": "216.160.83.56", "country": "GB"})).await);
}

#[tokio::test]
async fn subdivisions_are_country_dash_subdivision_codes() {
    let eng = app_with_condition(json!({"subdivisions": ["GB-ENG"]})).await;
    assert!(holds(&eng, json!({"ip": "81.2.69.142"})).await);
    assert!(holds(&eng, json!({"ip": "::ffff:81.2.69.142"})).await);
    assert!(!holds(&eng, json!({"ip": "216.160.83.56"})).await);
    let wa = app_with_condition(json!({"subdivisions": ["US-CA", "US-WA"]})).await;
    assert!(holds(&wa, json!({"ip": "216.160.83.56"})).await);
    assert!(!holds(&wa, json!({"ip": "81.2.69.142"})).await);
}

#[tokio::test]
async fn platforms_match_case_insensitively() {
    let app = app_with_condition(json!({"platforms": ["iOS", "android"]})).await;
    assert!(holds(&app, json!({"platform": "ios"})).await);
    assert!(holds(&app, json!({"platform": "IOS"})).await);
    assert!(holds(&app, json!({"platform": "Android"})).await);
    assert!(!holds(&app, json!({"platform": "web"})).await);
    assert!(!holds(&app, json!({})).await);
}

#[tokio::test]
async fn app_version_is_a_semver_requirement_and_an_unparseable_version_does_not_match() {
    let app = app_with_condition(json!({"app_version": "<5.2.0"})).await;
    assert!(holds(&app, json!({"app_version": "5.1.0"})).await);
    assert!(holds(&app, json!({"app_version": "4.9.12"})).await);
    assert!(!holds(&app, json!({"app_version": "5.2.0"})).await);
    assert!(!holds(&app, json!({"app_version": "6.0.0"})).await);
    assert!(!holds(&app, json!({"app_version": "banana"})).await);
    assert!(!holds(&app, json!({"app_version": ""})).await);
    assert!(!holds(&app, json!({})).await);
}

#[tokio::test]
async fn user_keys_match_exactly() {
    let app = app_with_condition(json!({"user_keys": ["tester@example.com"]})).await;
    let decide = |user_key: &'static str| {
        app.decide(json!({"rollout": "r", "user_key": user_key, "device_id": "d-1"}))
    };
    let tester = decide("tester@example.com").await;
    assert_eq!(tester["reason"], "rule");
    assert_eq!(tester["flow"], "stytch");
    for other in [
        "Tester@example.com",
        "tester@example.co",
        "tester@example.com ",
    ] {
        assert_eq!(decide(other).await["reason"], "percentage", "{other}");
    }
    // A device id is not a user key.
    let by_device = app
        .decide(json!({"rollout": "r", "device_id": "tester@example.com"}))
        .await;
    assert_eq!(by_device["reason"], "percentage");
}

#[tokio::test]
async fn a_when_with_two_conditions_needs_both() {
    let app = app_with_condition(json!({"platforms": ["ios"], "app_version": "<5.2.0"})).await;
    assert!(holds(&app, json!({"platform": "ios", "app_version": "5.1.0"})).await);
    assert!(!holds(&app, json!({"platform": "ios", "app_version": "5.2.0"})).await);
    assert!(!holds(&app, json!({"platform": "android", "app_version": "5.1.0"})).await);
    assert!(!holds(&app, json!({"platform": "ios"})).await);
}

#[tokio::test]
async fn a_forcing_rule_decides_its_flow_with_reason_rule_and_its_id() {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "r",
        100.0,
        json!([{"id": "old-ios", "when": {"platforms": ["ios"]}, "then": "legacy"}]),
    ))
    .await;
    let forced = app
        .decide(json!({"rollout": "r", "user_key": "u1", "platform": "ios"}))
        .await;
    assert_eq!(forced["flow"], "legacy");
    assert_eq!(forced["reason"], "rule");
    assert_eq!(forced["rule"], "old-ios");
    let not_forced = app
        .decide(json!({"rollout": "r", "user_key": "u1", "platform": "web"}))
        .await;
    assert_eq!(not_forced["flow"], "stytch");
    assert_eq!(not_forced["reason"], "percentage");
    assert_eq!(not_forced["rule"], Value::Null);
}

#[tokio::test]
async fn a_segment_rule_replaces_the_rollouts_percentage_for_its_users() {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "low",
        0.0,
        json!([{"id": "uk-all", "when": {"countries": ["GB"]}, "then": {"percentage": 100}}]),
    ))
    .await;
    app.create_rollout(rollout(
        "high",
        100.0,
        json!([{"id": "uk-none", "when": {"countries": ["GB"]}, "then": {"percentage": 0}}]),
    ))
    .await;
    for i in 0..20 {
        let user = format!("user-{i}");
        let uk = app
            .decide(json!({"rollout": "low", "user_key": user, "ip": "81.2.69.142"}))
            .await;
        assert_eq!(uk["flow"], "stytch", "{uk}");
        assert_eq!(uk["reason"], "percentage");
        assert_eq!(uk["rule"], "uk-all");
        let elsewhere = app
            .decide(json!({"rollout": "low", "user_key": user, "ip": "216.160.83.56"}))
            .await;
        assert_eq!(elsewhere["flow"], "legacy");
        assert_eq!(elsewhere["reason"], "percentage");
        assert_eq!(elsewhere["rule"], Value::Null);

        let uk = app
            .decide(json!({"rollout": "high", "user_key": user, "country": "GB"}))
            .await;
        assert_eq!(uk["flow"], "legacy", "{uk}");
        assert_eq!(uk["reason"], "percentage");
        assert_eq!(uk["rule"], "uk-none");
        let elsewhere = app
            .decide(json!({"rollout": "high", "user_key": user, "country": "US"}))
            .await;
        assert_eq!(elsewhere["flow"], "stytch");
        assert_eq!(elsewhere["rule"], Value::Null);
    }
}

#[tokio::test]
async fn a_segment_at_a_partial_percentage_uses_the_bucket() {
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "r",
        0.0,
        json!([{"id": "half", "when": {"platforms": ["web"]}, "then": {"percentage": 50}}]),
    ))
    .await;
    for i in 0..40 {
        let user = format!("user-{i}");
        let d = app
            .decide(json!({"rollout": "r", "user_key": user, "platform": "web"}))
            .await;
        let expected = if bucket_of("salt-r", &user) < 5000 {
            "stytch"
        } else {
            "legacy"
        };
        assert_eq!(d["flow"], expected, "{d}");
        assert_eq!(d["rule"], "half");
    }
}

#[tokio::test]
async fn the_first_matching_rule_wins() {
    let rules_a = json!([
        {"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"},
        {"id": "ios", "when": {"platforms": ["ios"]}, "then": "legacy"},
    ]);
    let rules_b = json!([
        {"id": "ios", "when": {"platforms": ["ios"]}, "then": "legacy"},
        {"id": "office", "when": {"ip_ranges": ["203.0.113.0/24"]}, "then": "stytch"},
    ]);
    let app = spawn_app().await;
    app.create_rollout(rollout("a", 50.0, rules_a)).await;
    app.create_rollout(rollout("b", 50.0, rules_b)).await;
    let both = json!({"user_key": "u", "ip": "203.0.113.5", "platform": "ios"});
    let mut request = both.clone();
    request["rollout"] = json!("a");
    let a = app.decide(request.clone()).await;
    assert_eq!(
        (a["flow"].as_str(), a["rule"].as_str()),
        (Some("stytch"), Some("office"))
    );
    request["rollout"] = json!("b");
    let b = app.decide(request).await;
    assert_eq!(
        (b["flow"].as_str(), b["rule"].as_str()),
        (Some("legacy"), Some("ios"))
    );

    // A segment that matches first stops the search: a later forcing rule is not reached.
    let app = spawn_app().await;
    app.create_rollout(rollout(
        "c",
        0.0,
        json!([
            {"id": "seg", "when": {"platforms": ["ios"]}, "then": {"percentage": 0}},
            {"id": "force", "when": {"platforms": ["ios"]}, "then": "stytch"},
        ]),
    ))
    .await;
    let c = app
        .decide(json!({"rollout": "c", "user_key": "u", "platform": "ios"}))
        .await;
    assert_eq!(c["flow"], "legacy");
    assert_eq!(c["reason"], "percentage");
    assert_eq!(c["rule"], "seg");
}
