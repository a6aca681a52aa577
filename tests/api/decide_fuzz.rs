//! The decide endpoint under arbitrary bodies (a property test over HTTP): every answer is a
//! 200 or a 4xx, and every 4xx has the SPEC §4 error shape. The parser alone is fuzzed with
//! more cases in `src/http/decide.rs`; here the whole handler runs, rollout lookup, cookies,
//! sessions and all.

use proptest::prelude::*;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

/// Bodies near a valid decide request, and arbitrary bytes.
fn decide_body() -> impl Strategy<Value = Vec<u8>> {
    let member = prop_oneof![
        Just("rollout"),
        Just("user_key"),
        Just("device_id"),
        Just("ip"),
        Just("country"),
        Just("platform"),
        Just("app_version"),
        Just("session_token"),
        Just("cookies"),
    ];
    let value = prop_oneof![
        Just("\"stytch-login\"".to_string()),
        Just("null".to_string()),
        Just("{\"sy_flow\":\"s1.stytch-login.1.42.1.x\",\"sy_override\":\"o1..\"}".to_string()),
        "\"[0-9a-fA-F:.]{0,20}\"",
        "\"[A-Za-z]{0,3}\"",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    let structured = prop::collection::vec((member, value), 0..8).prop_map(|pairs| {
        let mut members = vec!["\"rollout\":\"stytch-login\"".to_string()];
        members.extend(pairs.iter().map(|(m, v)| format!("\"{m}\":{v}")));
        format!("{{{}}}", members.join(",")).into_bytes()
    });
    prop_oneof![4 => structured, 1 => any::<Vec<u8>>()]
}

#[test]
fn every_decide_body_gets_a_200_or_a_4xx_in_the_error_shape() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(spawn_app());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    runner
        .run(&decide_body(), |body| {
            let (status, answer) = runtime.block_on(async {
                let response = app
                    .raw(
                        Method::POST,
                        "/v1/decide",
                        Some(DECIDE_TOKEN),
                        &[("content-type", "application/json")],
                        Some(body.clone()),
                    )
                    .await;
                let status = response.status();
                (status, response.json::<Value>().await)
            });
            let answer =
                answer.map_err(|e| TestCaseError::fail(format!("{status}: not JSON: {e}")))?;
            if status.is_success() {
                prop_assert_eq!(status.as_u16(), 200);
                prop_assert!(answer["flow"].is_string(), "{}", answer);
            } else {
                prop_assert!(
                    status.is_client_error(),
                    "{} for {:?}",
                    status,
                    String::from_utf8_lossy(&body)
                );
                let error = &answer["error"];
                prop_assert!(
                    error["code"].is_string() && error["message"].is_string(),
                    "{}",
                    answer
                );
                prop_assert!(error["details"].is_array(), "{}", answer);
            }
            Ok(())
        })
        .unwrap();
}
