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
const GET_ROUTES: [(&str, Option<&str>); 14] = [
    ("/healthz", None),
    ("/readyz", None),
    ("/metrics", None),
    ("/openapi.json", None),
    ("/v1/rollouts", Some(READ_TOKEN)),
    ("/v1/rollouts/stytch-login", Some(READ_TOKEN)),
    ("/v1/rollouts/stytch-login/history", Some(READ_TOKEN)),
    ("/v1/rollouts/stytch-login/enrollments", Some(BACKEND_TOKEN)),
    ("/v1/audit", Some(READ_TOKEN)),
    ("/v1/rollouts/stytch-login/stats", Some(READ_TOKEN)),
    ("/v1/token", Some(READ_TOKEN)),
    ("/admin", None),
    ("/admin/app.js", None),
    ("/admin/app.css", None),
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
const ALLOWED: [(&str, &str, Method); 15] = [
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
    (
        "/ofrep/v1/evaluate/flags/stytch-login",
        "POST, OPTIONS",
        Method::GET,
    ),
    ("/ofrep/v1/evaluate/flags", "POST, OPTIONS", Method::PUT),
    ("/healthz", "GET, HEAD, OPTIONS", Method::POST),
    ("/metrics", "GET, HEAD, OPTIONS", Method::DELETE),
    (
        "/v1/rollouts/stytch-login/evaluate",
        "POST, OPTIONS",
        Method::GET,
    ),
    (
        "/v1/rollouts/stytch-login/stats",
        "GET, HEAD, OPTIONS",
        Method::POST,
    ),
    ("/admin", "GET, HEAD, OPTIONS", Method::POST),
    ("/admin/app.js", "GET, HEAD, OPTIONS", Method::PUT),
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
async fn the_forward_auth_path_takes_every_method_so_it_has_no_405_nor_allow() {
    let app = spawn_app().await;
    let path = "/v1/forward-auth/stytch-login";
    let token = [("X-Switchyard-Token", DECIDE_TOKEN)];
    for method in [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ] {
        let response = app.raw(method.clone(), path, None, &token, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        assert_eq!(response.headers().get("allow"), None, "{method} {path}");
        assert_eq!(
            response.headers()["x-switchyard-flow"],
            "legacy",
            "{method} {path}"
        );
    }
    // A path that only begins like it is not it.
    for other in ["/v1/forward-authx/stytch-login", "/v1/forward-auths"] {
        let response = app.raw(Method::GET, other, None, &token, None).await;
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    // The route is counted under its pattern, never the raw path.
    let text = app.metrics_text().await;
    assert!(
        text.contains(
            "switchyard_http_requests_total{route=\"/v1/forward-auth/{rollout}\",status=\"200\"} 8"
        ),
        "{text}"
    );
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

/// An app that gives a request one second to arrive.
async fn spawn_impatient_app() -> TestApp {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = test_settings(dir.path());
    settings.server.request_timeout_seconds = 1;
    spawn_with(settings, dir).await
}

/// What came back on a connection left unfinished, and when the server closed it.
struct Unfinished {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    closed_after: std::time::Duration,
}

impl Unfinished {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` and then nothing more; reads until the server closes the connection (at
/// most 10 s).
async fn send_and_stall(app: &TestApp, request: &[u8]) -> Unfinished {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .expect("connected");
    let sent = std::time::Instant::now();
    stream.write_all(request).await.expect("request written");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server closes the connection within 10 s")
    .expect("read");
    let closed_after = sent.elapsed();
    let text = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("an answer: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Unfinished {
        status,
        headers,
        body: body.as_bytes().to_vec(),
        closed_after,
    }
}

/// A request head for `path` with the admin token and JSON content type, and `framing`.
fn head_of(method: &str, path: &str, token: &str, framing: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n{framing}\r\n"
    )
}

/// Asserts the SPEC §4 408 with the connection closed within the timeout (1 s) and the
/// server's 1 s linger for unread bodies, with some slack.
fn assert_timed_out(what: &str, answer: &Unfinished) {
    assert_eq!(answer.status, 408, "{what}");
    assert_eq!(answer.header("connection"), Some("close"), "{what}");
    let body: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|_| panic!("{what}: a JSON body: {:?}", answer.body));
    assert_eq!(body["error"]["code"], "request_timeout", "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
    assert!(body["error"]["details"].is_array(), "{what}: {body}");
    assert!(
        answer.closed_after >= std::time::Duration::from_millis(900)
            && answer.closed_after < std::time::Duration::from_secs(4),
        "{what}: closed after {:?}",
        answer.closed_after
    );
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_408_and_the_connection_is_closed() {
    let app = spawn_impatient_app().await;
    for (method, path, token) in [
        ("POST", "/v1/rollouts", ADMIN_TOKEN),
        ("POST", "/v1/decide", DECIDE_TOKEN),
        ("PATCH", "/v1/rollouts/stytch-login", ADMIN_TOKEN),
        ("POST", "/v1/outcomes", BACKEND_TOKEN),
    ] {
        let request = head_of(method, path, token, "Content-Length: 100\r\n") + "{\"key\": \"x";
        let answer = send_and_stall(&app, request.as_bytes()).await;
        assert_timed_out(&format!("{method} {path}"), &answer);
    }
    let samples = app.metrics().await;
    for route in ["/v1/rollouts", "/v1/decide", "/v1/outcomes"] {
        assert_eq!(
            metric(
                &samples,
                "switchyard_http_requests_total",
                &[("route", route), ("status", "408")]
            ),
            Some(1.0),
            "{route}"
        );
    }
}

#[tokio::test]
async fn a_chunk_shorter_than_its_size_is_408_and_the_connection_is_closed() {
    let app = spawn_impatient_app().await;
    // A first chunk in full, then one that announces 0x64 = 100 bytes and sends 10.
    let request = head_of(
        "POST",
        "/v1/rollouts",
        ADMIN_TOKEN,
        "Transfer-Encoding: chunked\r\n",
    ) + "5\r\n{\"key\r\n64\r\n\": \"x\", \"pe";
    let answer = send_and_stall(&app, request.as_bytes()).await;
    assert_timed_out("chunked", &answer);
}

#[tokio::test]
async fn an_unfinished_body_that_is_not_read_does_not_hold_the_connection() {
    let app = spawn_impatient_app().await;
    for framing in [
        "Content-Length: 100\r\n\r\n{\"a\"",
        "Transfer-Encoding: chunked\r\n\r\n64\r\n{\"a\"",
    ] {
        for (method, path, token, status) in [
            (
                "PUT",
                "/v1/rollouts/stytch-login/enrollments/alice",
                BACKEND_TOKEN,
                200,
            ),
            ("POST", "/v1/rollouts", "not-a-token-0123456789", 401),
            ("POST", "/v1/nothing-here", ADMIN_TOKEN, 404),
            ("DELETE", "/v1/decide", ADMIN_TOKEN, 405),
        ] {
            app.enroll("stytch-login", "alice").await;
            let (head, rest) = framing.split_once("\r\n\r\n").unwrap();
            let request = head_of(method, path, token, &format!("{head}\r\n")) + rest;
            let answer = send_and_stall(&app, request.as_bytes()).await;
            let what = format!("{method} {path} {head}");
            assert_eq!(answer.status, status, "{what}");
            assert_eq!(answer.header("connection"), Some("close"), "{what}");
            assert!(
                answer.closed_after < std::time::Duration::from_secs(3),
                "{what}: closed after {:?}",
                answer.closed_after
            );
        }
    }
}

#[tokio::test]
async fn many_half_sent_requests_at_once_are_all_answered_408_and_closed() {
    let app = spawn_impatient_app().await;
    let request = head_of(
        "POST",
        "/v1/decide",
        DECIDE_TOKEN,
        "Content-Length: 100\r\n",
    ) + "{";
    let answers =
        futures_util::future::join_all((0..100).map(|_| send_and_stall(&app, request.as_bytes())))
            .await;
    for answer in &answers {
        assert_timed_out("one of 100", answer);
    }
}

/// The head is actix's to time (`client_request_timeout`, set from the same setting): its 408
/// comes before any of our code runs, so it has no error body and is not counted (README).
#[tokio::test]
async fn a_head_that_never_finishes_is_408_and_the_connection_is_closed_in_time() {
    let app = spawn_impatient_app().await;
    let answer = send_and_stall(
        &app,
        b"POST /v1/decide HTTP/1.1\r\nHost: test\r\nContent-Ty",
    )
    .await;
    assert_eq!(answer.status, 408);
    assert!(
        answer.closed_after >= std::time::Duration::from_millis(900)
            && answer.closed_after < std::time::Duration::from_secs(3),
        "closed after {:?}",
        answer.closed_after
    );
}
