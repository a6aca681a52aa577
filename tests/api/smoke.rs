use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_fresh_installation_has_the_default_rollout_at_zero_percent() {
    let app = spawn_app().await;
    let response = app.get("/v1/rollouts/stytch-login", READ_TOKEN).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["percentage"], json!(0.0));
    let decision = app
        .decide(json!({"rollout": "stytch-login", "user_key": "alice@example.com"}))
        .await;
    assert_eq!(decision["flow"], "legacy");
    assert_eq!(decision["reason"], "percentage");
}
