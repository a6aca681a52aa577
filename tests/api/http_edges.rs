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

/// Every GET route, with a token that may read it.
const GET_ROUTES: [(&str, Option<&str>); 9] = [
    ("/healthz", None),
    ("/readyz", None),
    ("/metrics", None),
    ("/openapi.json", None),
    ("/v1/rollouts", Some(READ_TOKEN)),
    ("/v1/rollouts/stytch-login", Some(READ_TOKEN)),
    ("/v1/rollouts/stytch-login/history", Some(READ_TOKEN)),
    ("/v1/rollouts/stytch-login/enrollments", Some(BACKEND_TOKEN)),
    ("/v1/audit", Some(READ_TOKEN)),
];

#[tokio::test]
async fn every_get_route_answers_head_with_the_status_and_headers_of_get_and_no_body() {
    let app = spawn_app().await;
    for (path, token) in GET_ROUTES {
        let get = app.raw(Method::GET, path, token, &[], None).await;
        let head = app.raw(Method::HEAD, path, token, &[], None).await;
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        for name in ["content-type", "etag"] {
            assert_eq!(
                head.headers().get(name),
                get.headers().get(name),
                "HEAD {path}: {name}"
            );
        }
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");
        // Without a token HEAD is refused as GET is.
        if token.is_some() {
            let head = app.raw(Method::HEAD, path, None, &[], None).await;
            assert_eq!(head.status(), StatusCode::UNAUTHORIZED, "HEAD {path}");
        }
    }
    // On the wire, as a load balancer probes: the head and nothing after it.
    let answer = raw_exchange(
        &app,
        b"HEAD /healthz HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "a HEAD answer has no body: {text:?}"
    );
}

/// Each path's methods as `Allow` lists them, and a method it does not take.
const ALLOWED: [(&str, &str, Method); 9] = [
    ("/v1/decide", "POST, OPTIONS", Method::GET),
    ("/v1/rollouts", "GET, HEAD, POST, OPTIONS", Method::DELETE),
    (
        "/v1/rollouts/stytch-login",
        "GET, HEAD, PUT, PATCH, DELETE, OPTIONS",
        Method::POST,
    ),
    (
        "/v1/rollouts/stytch-login/rollback",
        "POST, OPTIONS",
        Method::HEAD,
    ),
    (
        "/v1/rollouts/stytch-login/enrollments",
        "GET, HEAD, OPTIONS",
        Method::PUT,
    ),
    (
        "/v1/rollouts/stytch-login/enrollments/alice",
        "PUT, DELETE, OPTIONS",
        Method::GET,
    ),
    ("/v1/outcomes", "POST, OPTIONS", Method::PATCH),
    ("/healthz", "GET, HEAD, OPTIONS", Method::POST),
    ("/metrics", "GET, HEAD, OPTIONS", Method::DELETE),
];

#[tokio::test]
async fn options_answers_allow_and_every_405_carries_the_same_allow() {
    let app = spawn_app().await;
    for (path, allow, other) in ALLOWED {
        let options = app.raw(Method::OPTIONS, path, None, &[], None).await;
        assert_eq!(options.status(), StatusCode::NO_CONTENT, "OPTIONS {path}");
        assert_eq!(options.headers()["allow"], allow, "OPTIONS {path}");

        let response = app
            .raw(other.clone(), path, Some(ADMIN_TOKEN), &[], None)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{other} {path}"
        );
        assert_eq!(response.headers()["allow"], allow, "{other} {path}");
        if other != Method::HEAD {
            let body = assert_error(
                response,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            )
            .await;
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(allow), "{other} {path}: {body}");
        }
    }
}

#[tokio::test]
async fn a_trailing_slash_is_404_naming_the_path_without_it() {
    let app = spawn_app().await;
    for (path, meant) in [
        ("/v1/rollouts/", Some("/v1/rollouts")),
        (
            "/v1/rollouts/stytch-login/",
            Some("/v1/rollouts/stytch-login"),
        ),
        ("/healthz/", Some("/healthz")),
        ("/v1/decide//", Some("/v1/decide")),
        ("/v1/nothing-here/", None),
    ] {
        let response = app
            .raw(Method::GET, path, Some(READ_TOKEN), &[], None)
            .await;
        let body = assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
        let message = body["error"]["message"].as_str().unwrap();
        match meant {
            Some(meant) => assert!(
                message.ends_with(&format!("did you mean {meant}?")),
                "{path}: {body}"
            ),
            None => assert!(!message.contains("did you mean"), "{path}: {body}"),
        }
    }
}

/// Writes `request` on a new connection and reads until the server closes it.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .expect("connected");
    stream.write_all(request).await.expect("request written");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server closes the connection")
    .expect("read");
    answer
}
