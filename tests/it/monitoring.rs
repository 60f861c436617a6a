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
    // `{}` is accepted as a body too.
    let r = ops.post("/api/v1/monitoring/start", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"monitoring_active": true}));
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
