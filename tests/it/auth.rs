//! Bearer tokens and roles: 401 and 403 before anything is judged or done, the actor is the
//! token's name, and reads that need a token when configured so.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

#[tokio::test]
async fn auth_401_403_and_the_actor_is_the_token_name() {
    let app = TestApp::builder().manual().auth().spawn_polled().await;
    let r = app.rollback("no token").await;
    r.error(401, "unauthorized");
    let www = r
        .header("www-authenticate")
        .expect("WWW-Authenticate on 401");
    assert!(www.starts_with("Bearer"), "{www:?}");
    let r = app
        .with_token("not-a-configured-token-000")
        .rollback("bad token")
        .await;
    r.error(401, "unauthorized");
    assert!(r.header("www-authenticate").is_some());
    let body = Body::Raw(Some("application/json"), b"{\"reason\":\"x\"}".to_vec());
    app.send(Method::POST, "/api/v1/rollback", body)
        .await
        .error(401, "unauthorized");
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/rollback", app.url))
        .json(&json!({"reason": "basic"}))
        .basic_auth("ops", Some(OPS_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "only bearer tokens");

    let m = app
        .with_token(VIEWER_TOKEN)
        .rollback("viewer tries")
        .await
        .error(403, "forbidden");
    assert!(m.contains("viewer"), "{m}");
    app.with_token(WEBHOOK_TOKEN)
        .rollback("webhook tries")
        .await
        .error(403, "forbidden");
    assert!(app.sim.switches().is_empty());
    assert!(
        app.events("").await.is_empty(),
        "refused requests leave no event"
    );

    let ops = app.with_token(OPS_TOKEN);
    let r = ops.dry_run("ops rehearses").await.ok();
    assert_eq!(r["actor"], "ops");
    let r = ops.rollback("ops acts").await.ok();
    assert_eq!(r["actor"], "ops");
    let ev = app.rollback_by_id(r["id"].as_str().unwrap()).await.json;
    assert_eq!(ev["actor"], "ops", "the actor is stored");
    // Reads stay open by default.
    assert_eq!(app.status().await.status, 200);
    assert_eq!(app.rollbacks("").await.status, 200);
}

#[tokio::test]
async fn auth_is_checked_before_the_body_is_judged() {
    let app = TestApp::builder().manual().auth().spawn_polled().await;
    let body = Body::Raw(Some("text/plain"), b"hello".to_vec());
    app.send(Method::POST, "/api/v1/rollback", body)
        .await
        .error(401, "unauthorized");
    let body = Body::Raw(Some("application/json"), b"{not json".to_vec());
    app.send(Method::POST, "/api/v1/rollback", body)
        .await
        .error(401, "unauthorized");
    app.with_token(OPS_TOKEN)
        .post("/api/v1/restore", &json!({"unknown": 1}))
        .await
        .error(403, "forbidden");
    app.with_token(VIEWER_TOKEN)
        .rollback("")
        .await
        .error(403, "forbidden");
}

#[tokio::test]
async fn auth_protected_reads_need_a_token() {
    let app = TestApp::builder()
        .manual()
        .read_requires_token()
        .spawn_polled()
        .await;
    for path in [
        "/api/v1/status",
        "/api/v1/triggers",
        "/api/v1/rollbacks",
        "/api/v1/validations",
    ] {
        app.get(path).await.error(401, "unauthorized");
        for t in [VIEWER_TOKEN, OPS_TOKEN, ADMIN_TOKEN] {
            assert_eq!(app.with_token(t).get(path).await.status, 200, "{path}");
        }
        app.with_token(WEBHOOK_TOKEN)
            .get(path)
            .await
            .error(403, "forbidden");
    }
    app.rollback_by_id("x").await.error(401, "unauthorized");
    // The stream refuses too (before the upgrade).
    match app.try_stream().await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 401),
        Err(other) => panic!("expected 401 for the stream, got {other:?}"),
        Ok(_) => panic!("expected 401 for the stream, got an upgrade"),
    }
    let mut ws = app
        .with_token(VIEWER_TOKEN)
        .try_stream()
        .await
        .expect("access_token works for browsers");
    assert_eq!(ws.next_json().await["type"], "status");
    // Liveness, readiness and metrics stay open for probes and Prometheus.
    assert_eq!(app.get("/-/ready").await.status, 200);
    assert_eq!(app.get("/metrics").await.status, 200);
}
