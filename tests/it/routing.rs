//! The probes, and what unknown routes, events and methods get: JSON errors, never HTML.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn healthy_and_ready() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let r = app.get("/-/healthy").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text.trim(), "OK");
    let r = app.get("/-/ready").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"ready": true}));
}

#[tokio::test]
async fn unknown_routes_events_and_methods_get_json_404_and_405() {
    let app = TestApp::builder().manual().spawn_polled().await;
    for path in ["/api/v1/nope", "/definitely/not/here"] {
        app.get(path).await.error(404, "not_found");
    }
    let m = app
        .rollback_by_id("0193c0de-0000-7000-8000-000000000000")
        .await
        .error(404, "not_found");
    assert!(m.contains("0193c0de-0000-7000-8000-000000000000"), "{m}");
    for (method, path) in [
        (Method::GET, "/api/v1/rollback"),
        (Method::DELETE, "/api/v1/rollbacks"),
        (Method::GET, "/api/v1/alertmanager"),
        (Method::POST, "/metrics"),
    ] {
        app.send(method, path, Body::Empty)
            .await
            .error(405, "method_not_allowed");
    }
}
