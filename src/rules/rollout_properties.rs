//! Property tests of rollout JSON → compiled rollout: no JSON value and no text makes reading,
//! validating or compiling a rollout panic; every valid rollout generated from the documented
//! formats compiles, and survives a JSON round trip unchanged.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::compile::{compile, validate_content, MAX_EPOCH};
use super::formats;
use super::model::{
    Conditions, Guard, GuardAction, Outcome, Rule, Schedule, ScheduleState, ScheduleStep, Sticky,
};
use super::{BasisPoints, Flow, LegacySessions, Rollout, RolloutContent, RolloutDraft};

const CASES: u32 = 1000;

/// Any JSON value, with the rollout's member names often enough to go past the first check.
fn any_json() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("key".to_string()),
        Just("percentage".to_string()),
        Just("rules".to_string()),
        Just("when".to_string()),
        Just("then".to_string()),
        Just("id".to_string()),
        Just("sticky".to_string()),
        Just("epoch".to_string()),
        Just("ip_ranges".to_string()),
        Just("countries".to_string()),
        Just("subdivisions".to_string()),
        Just("app_version".to_string()),
        Just("schedule".to_string()),
        Just("steps".to_string()),
        Just("at".to_string()),
        Just("state".to_string()),
        Just("guard".to_string()),
        "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::from),
        "[0-9./:a-fA-F<>=^~*, -]{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(name.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn strings_of(pattern: &str) -> impl Strategy<Value = String> {
    let inner = pattern.trim_start_matches('^').trim_end_matches('$');
    proptest::string::string_regex(inner).unwrap()
}

fn list_of(pattern: &str) -> impl Strategy<Value = Option<Vec<String>>> {
    prop::option::of(prop::collection::vec(strings_of(pattern), 1..4))
}

fn percentage() -> impl Strategy<Value = f64> {
    (0u16..=10_000).prop_map(|bp| f64::from(bp) / 100.0)
}

fn valid_conditions() -> impl Strategy<Value = Conditions> {
    (
        list_of(&formats::IP_RANGE),
        list_of(&formats::COUNTRY),
        prop::option::of(prop::collection::vec(
            "(AF|AN|AS|EU|NA|OC|SA|eu|Na)".prop_map(String::from),
            1..3,
        )),
        list_of(&formats::SUBDIVISION),
        prop::option::of(prop::collection::vec("[a-z]{1,10}", 1..3)),
        prop::option::of(strings_of(&formats::VERSION_REQ)),
        prop::option::of(prop::collection::vec(".{1,20}", 1..3)),
    )
        .prop_map(
            |(
                ip_ranges,
                countries,
                continents,
                subdivisions,
                platforms,
                app_version,
                user_keys,
            )| {
                Conditions {
                    ip_ranges,
                    countries,
                    continents,
                    subdivisions,
                    platforms,
                    app_version,
                    user_keys,
                }
            },
        )
        .prop_filter("a rule needs a condition", |c| *c != Conditions::default())
}

/// A schedule as the service keeps it: 1 to 5 steps in increasing time order, and a state
/// that fits how many have applied.
fn valid_schedule() -> impl Strategy<Value = Schedule> {
    prop::collection::vec((1i64..10_000_000, percentage()), 1..6)
        .prop_flat_map(|steps| {
            let len = steps.len();
            (Just(steps), 0..=len, any::<bool>())
        })
        .prop_map(|(steps, applied_steps, paused)| {
            let mut at = 1_700_000_000i64;
            let steps: Vec<ScheduleStep> = steps
                .into_iter()
                .map(|(gap, percentage)| {
                    at += gap;
                    ScheduleStep {
                        at: chrono::DateTime::from_timestamp(at, 0).unwrap(),
                        percentage,
                    }
                })
                .collect();
            let state = match (paused, applied_steps == steps.len()) {
                (true, _) => ScheduleState::Paused,
                (false, true) => ScheduleState::Done,
                (false, false) => ScheduleState::Active,
            };
            Schedule {
                state,
                steps,
                applied_steps,
            }
        })
}

fn valid_guard() -> impl Strategy<Value = Guard> {
    (
        any::<bool>(),
        10u64..=86_400,
        1u64..=1_000_000_000,
        1u16..=10_000,
        800u16..=999,
        prop_oneof![Just(GuardAction::Kill), Just(GuardAction::Pause)],
    )
        .prop_map(
            |(enabled, window_seconds, min_attempts, increase, confidence, action)| Guard {
                enabled,
                window_seconds,
                min_attempts,
                max_failure_rate_increase: f64::from(increase) / 100.0,
                confidence: f64::from(confidence) / 1000.0,
                action,
            },
        )
}

fn valid_rollout() -> impl Strategy<Value = Rollout> {
    let outcome = prop_oneof![
        Just(Outcome::Force(Flow::Stytch)),
        Just(Outcome::Force(Flow::Legacy)),
        percentage().prop_map(|percentage| Outcome::Segment { percentage }),
    ];
    let rules = prop::collection::vec((valid_conditions(), outcome), 0..4).prop_map(|rules| {
        rules
            .into_iter()
            .enumerate()
            .map(|(i, (when, then))| Rule {
                id: format!("rule-{i}"),
                when,
                then,
            })
            .collect::<Vec<_>>()
    });
    (
        "[a-z0-9][a-z0-9_-]{0,63}",
        ".{0,40}",
        any::<bool>(),
        percentage(),
        "[A-Za-z0-9_-]{1,64}",
        rules,
        (
            any::<bool>(),
            "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}",
            1u64..=34_560_000,
        ),
        1..=MAX_EPOCH,
        prop_oneof![
            Just(LegacySessions::Reject),
            Just(LegacySessions::Honor),
            Just(LegacySessions::Migrate)
        ],
        1u64..1_000_000,
        (
            prop::option::of(valid_schedule()),
            prop::option::of(valid_guard()),
        ),
    )
        .prop_map(
            |(
                key,
                description,
                enabled,
                percentage,
                salt,
                rules,
                sticky,
                epoch,
                legacy,
                version,
                (schedule, guard),
            )| {
                Rollout {
                    key,
                    content: RolloutContent {
                        description,
                        enabled,
                        percentage,
                        salt,
                        rules,
                        sticky: Sticky {
                            enabled: sticky.0,
                            cookie_name: sticky.1,
                            max_age_seconds: sticky.2,
                        },
                        epoch,
                        legacy_sessions: legacy,
                        schedule,
                        guard,
                    },
                    version,
                    updated_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                    updated_by: "deploy-bot".into(),
                }
            },
        )
}

/// Reads `value` as an admin's draft and, when it has the right shape, validates and compiles
/// it as a create would. Only answers, never a panic.
fn read_and_compile(value: Value) {
    let Ok(draft) = serde_json::from_value::<RolloutDraft>(value) else {
        return;
    };
    let key = draft.key.clone().unwrap_or_else(|| "k".into());
    let content = draft.into_content(&key, None, || "salt".into());
    let _ = validate_content(&content);
    let _ = compile(&Rollout {
        key,
        content,
        version: 1,
        updated_at: chrono::Utc::now(),
        updated_by: "t".into(),
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn no_json_value_makes_reading_or_compiling_a_rollout_panic(value in any_json()) {
        read_and_compile(value.clone());
        // The same value as a rule list, and as one rule's conditions.
        read_and_compile(json!({"key": "k", "rules": [value.clone()]}));
        read_and_compile(json!({"key": "k", "rules": [{"id": "r", "when": value, "then": "stytch"}]}));
        // The same value as a schedule, a step, and a guard.
        read_and_compile(json!({"key": "k", "schedule": value.clone()}));
        read_and_compile(json!({"key": "k", "schedule": {"steps": [value.clone()]}}));
        read_and_compile(json!({"key": "k", "guard": value}));
    }

    #[test]
    fn no_text_makes_reading_a_rollout_panic(text in any::<String>()) {
        let _ = serde_json::from_str::<RolloutDraft>(&text);
        let _ = serde_json::from_str::<Rollout>(&text);
        read_and_compile(json!({"key": "k", "rules": [{"id": "r", "when": {
            "ip_ranges": [text], "countries": [text], "subdivisions": [text],
            "continents": [text], "app_version": text}, "then": "stytch"}]}));
        read_and_compile(json!({"key": "k", "schedule": {"steps": [{"at": text, "percentage": 5}]}}));
    }

    #[test]
    fn valid_rollouts_compile_and_round_trip(rollout in valid_rollout()) {
        let compiled = compile(&rollout);
        prop_assert!(compiled.is_ok(), "{:?}", compiled.err());
        let compiled = compiled.unwrap();
        prop_assert_eq!(compiled.rules.len(), rollout.content.rules.len());
        prop_assert_eq!(
            Some(compiled.percentage),
            BasisPoints::from_percent(rollout.content.percentage)
        );
        let text = serde_json::to_string(&rollout).unwrap();
        let back: Rollout = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &rollout);
        // What an admin sends back as fetched is the same content again (a schedule's progress
        // is the service's: it carries over from the rollout as it is).
        let draft: RolloutDraft = serde_json::from_str(&text).unwrap();
        let content = draft.into_content(
            &rollout.key,
            Some(&rollout.content),
            || unreachable!("salt is given"),
        );
        prop_assert_eq!(&content, &rollout.content);
    }
}
