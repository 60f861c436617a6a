//! `POST /api/v1/monitoring/{start,stop}`: arming and disarming the watchdog, for operators.

use crate::harness::*;
use serde_json::json;

#[tokio::test]
async fn monitoring_stop_and_start_show_in_status_and_the_metric() {
    let app = TestApp::builder().manual().auth().spawn_polled().await;
    let ops = app.with_token(OPS_TOKEN);
    for (action, active) in [("stop", false), ("start", true), ("stop", false)] {
        let r = ops.monitoring(action).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json, json!({"monitoring_active": active}));
        assert_eq!(app.status().await.json["monitoring_active"], active);
        app.metrics()
            .await
            .assert("rollback_monitoring_active", &[], active as u8 as f64);
    }
    // A reason is recorded when given.
    let r = ops
        .post(
            "/api/v1/monitoring/start",
            &json!({"reason": "after the release"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"monitoring_active": true}));
    let audit = app.get("/api/v1/audit?kind=arm").await.ok();
    assert_eq!(audit["records"][0]["reason"], "after the release");
    app.with_token(VIEWER_TOKEN)
        .monitoring("stop")
        .await
        .error(403, "forbidden");
    app.monitoring("stop").await.error(401, "unauthorized");
    assert_eq!(
        app.engine_status()["monitoring_active"],
        true,
        "refused requests change nothing"
    );
}

/// With no tokens configured (the default), a "simple" cross-origin POST (no body, or a form
/// body, which a browser sends without a preflight) must not disarm the watchdog.
#[tokio::test]
async fn a_bodyless_or_form_post_cannot_disarm_the_watchdog() {
    let app = TestApp::builder().spawn_polled().await;
    let stop = "/api/v1/monitoring/stop";
    app.send(reqwest::Method::POST, stop, Body::Empty)
        .await
        .error(415, "unsupported_media_type");
    app.send(
        reqwest::Method::POST,
        stop,
        Body::Raw(
            Some("application/x-www-form-urlencoded"),
            b"reason=csrf".to_vec(),
        ),
    )
    .await
    .error(415, "unsupported_media_type");
    assert_eq!(app.status().await.json["monitoring_active"], true);
    assert!(app.get("/api/v1/audit").await.ok()["records"]
        .as_array()
        .unwrap()
        .is_empty());
}
