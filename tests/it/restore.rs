//! `POST /api/v1/restore`: admins only, back to session_targeted with the adaptive parameters,
//! and 409 when there is nothing to restore.

use crate::harness::*;

#[tokio::test]
async fn restore_needs_admin_returns_to_session_targeted_and_409_when_not_rolled_back() {
    let app = TestApp::builder().manual().auth().spawn_polled().await;
    let (admin, ops) = (app.with_token(ADMIN_TOKEN), app.with_token(OPS_TOKEN));
    let msg = admin
        .restore("all clear")
        .await
        .error(409, "not_rolled_back");
    assert!(msg.contains("session_targeted"), "{msg}");

    let r = ops.rollback("spike").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let msg = ops.restore("all clear").await.error(403, "forbidden");
    assert!(msg.contains("admin"), "{msg}");
    let r = admin.restore("all clear").await.ok();
    assert_eq!(r["action"], "restore");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["actor"], "boss");
    assert_eq!(r["target_mode"], "session_targeted");
    assert_eq!(
        r["target_parameters"],
        adaptive(),
        "the adaptive parameters come back"
    );
    let sim = app.sim.status().await;
    assert_eq!(sim["mode"], "session_targeted");
    assert_eq!(sim["parameters"], adaptive());
    assert_eq!(app.status().await.json["mode"], "session_targeted");
    admin.restore("again").await.error(409, "not_rolled_back");

    // A second cycle restores the adaptive parameters again.
    assert_eq!(admin.rollback("spike 2").await.status, 200);
    let r = admin.restore("clear 2").await.ok();
    assert_eq!(r["target_parameters"], adaptive());
    assert_eq!(
        app.metric("rollback_events_total", &[("trigger_type", "manual")])
            .await,
        Some(2.0),
        "restores are not rollbacks"
    );
}
