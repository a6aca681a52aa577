//! The edges of HTTP itself: path segments that are not UTF-8, HEAD and OPTIONS, `Allow` on
//! 405, trailing slashes, and requests that are never finished (408).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_path_segment_that_is_not_utf8_is_400_naming_it_and_nothing_is_stored() {
    let app = spawn_app().await;
    for (method, path, token, name) in [
        (
            Method::PUT,
            "/v1/rollouts/stytch-login/enrollments/%ff%fe",
            BACKEND_TOKEN,
            "user_key",
        ),
        (
            Method::PUT,
            "/v1/rollouts/stytch-login/enrollments/%fe%ff",
            BACKEND_TOKEN,
            "user_key",
        ),
        (
            Method::DELETE,
            "/v1/rollouts/stytch-login/enrollments/a%C3",
            BACKEND_TOKEN,
            "user_key",
        ),
        (Method::GET, "/v1/rollouts/%FF%FE", READ_TOKEN, "key"),
        (Method::DELETE, "/v1/rollouts/%FF", ADMIN_TOKEN, "key"),
        (Method::GET, "/v1/rollouts/%ff/history", READ_TOKEN, "key"),
        (
            Method::GET,
            "/v1/rollouts/%ff/enrollments",
            BACKEND_TOKEN,
            "key",
        ),
        (
            Method::PUT,
            "/v1/rollouts/%ff/enrollments/alice",
            BACKEND_TOKEN,
            "key",
        ),
    ] {
        let response = app.send(method.clone(), path, Some(token), None).await;
        let body = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{name} in the path is not valid UTF-8")),
            "{method} {path}: {body}"
        );
    }
    let page = app
        .get_json("/v1/rollouts/stytch-login/enrollments", BACKEND_TOKEN)
        .await;
    assert_eq!(page["user_keys"], serde_json::json!([]), "{page}");
    // Valid UTF-8, percent-encoded, is still a key like any other.
    assert_eq!(
        app.enroll("stytch-login", "%C3%A9t%C3%A9").await,
        StatusCode::CREATED
    );
    let page: Value = app
        .get_json("/v1/rollouts/stytch-login/enrollments", BACKEND_TOKEN)
        .await;
    assert_eq!(page["user_keys"], serde_json::json!(["été"]), "{page}");
}
