//! Arming each automatic path, the emergency disarm-all, the audit of both, the config reload
//! (`POST /-/reload`) and the restore's dry run and cooldown note.

use crate::harness::api::{Api, Reply};
use crate::harness::wait::wait_until;
use crate::harness::*;
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);

async fn arm(api: &Api, path: &str, armed: bool, reason: &str) -> Reply {
    api.post(
        "/api/v1/automation",
        &json!({"path": path, "armed": armed, "reason": reason}),
    )
    .await
}

#[tokio::test]
async fn a_disarmed_alertmanager_path_records_the_trigger_as_suppressed_and_a_person_still_acts() {
    let app = TestApp::builder().auth().spawn_polled().await;
    let ops = app.with_token(OPS_TOKEN);
    let viewer = app.with_token(VIEWER_TOKEN);
    arm(&viewer, "alertmanager", false, "not mine")
        .await
        .error(403, "forbidden");
    let msg = arm(&ops, "everything", false, "typo")
        .await
        .error(400, "invalid_request");
    assert!(msg.contains("watchdog or alertmanager"), "{msg}");
    let a = arm(&ops, "alertmanager", false, "CPI release").await.ok();
    assert_eq!(
        a["alertmanager"],
        json!({"configured": true, "armed": false, "acts": false})
    );
    assert_eq!(a["watchdog"]["acts"], true);
    assert_eq!(a["manual_only"], false);
    let s = app.status().await.json;
    assert_eq!(s["automation"], a, "the status names each path");
    let m = app.metrics().await;
    m.assert(
        "rollback_automatic_path_armed",
        &[("path", "alertmanager")],
        0.0,
    );
    m.assert(
        "rollback_automatic_path_armed",
        &[("path", "watchdog")],
        1.0,
    );

    let d = delivery(alert(
        "MaxDrawdownCritical",
        "firing",
        "3300000000000001",
        true,
    ));
    let r = app.with_token(WEBHOOK_TOKEN).webhook(&d).await.ok();
    assert_eq!(r["rollback_requested"], json!(["MaxDrawdownCritical"]));
    let suppressed = wait_until("the suppressed trigger", LONG, || async {
        app.events("status=suppressed").await.into_iter().next()
    })
    .await;
    assert_eq!(suppressed["suppressed_reason"], "disarmed");
    assert_eq!(suppressed["trigger_type"], "alertmanager");
    assert!(app.sim.switches().is_empty(), "nothing executed");
    let m = app.metrics().await;
    m.assert("rollback_suppressed_total", &[("reason", "disarmed")], 1.0);

    let audit = app.get("/api/v1/audit?kind=disarm").await.ok();
    let rec = &audit["records"][0];
    assert_eq!(rec["actor"], "ops");
    assert_eq!(rec["reason"], "CPI release");
    assert_eq!(rec["from"]["alertmanager"]["armed"], true);
    assert_eq!(rec["to"]["alertmanager"]["armed"], false);

    let e = ops.rollback("a person decides").await.ok();
    assert_eq!(e["status"], "completed", "{e}");
}

#[tokio::test]
async fn disarm_all_is_one_recorded_change_and_the_status_says_manual_only() {
    let app = TestApp::builder().auth().spawn_polled().await;
    let ops = app.with_token(OPS_TOKEN);
    ops.post("/api/v1/automation/disarm-all", &json!({}))
        .await
        .error(400, "invalid_request");
    let a = ops
        .post(
            "/api/v1/automation/disarm-all",
            &json!({"reason": "runaway desk"}),
        )
        .await
        .ok();
    assert_eq!(a["manual_only"], true);
    assert_eq!(a["watchdog"]["armed"], false);
    assert_eq!(a["alertmanager"]["armed"], false);
    let s = app.status().await.json;
    assert_eq!(s["monitoring_active"], false);
    assert_eq!(s["automation"]["manual_only"], true);
    let m = app.metrics().await;
    for path in ["watchdog", "alertmanager"] {
        m.assert("rollback_automatic_path_armed", &[("path", path)], 0.0);
    }
    m.assert("rollback_monitoring_active", &[], 0.0);
    let audit = app.get("/api/v1/audit").await.ok();
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "one record for the whole switch: {audit}");
    assert_eq!(records[0]["kind"], "disarm_all");
    assert_eq!(records[0]["actor"], "ops");

    // Re-arming the watchdog is recorded too, and names who did it.
    ops.monitoring("start").await.ok();
    let audit = app.get("/api/v1/audit?kind=arm").await.ok();
    assert_eq!(audit["records"][0]["actor"], "ops");
    assert_eq!(audit["records"][0]["to"]["watchdog"]["armed"], true);
    let s = app.status().await.json;
    assert_eq!(s["automation"]["manual_only"], false);
}

#[tokio::test]
async fn the_config_can_switch_the_alertmanager_path_off() {
    let app = TestApp::builder()
        .append_yaml("environments:\n  production: {}\n")
        .spawn_polled()
        .await;
    let path = app.dir().join("rollbackd.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        "automatic_rollback: true }",
        "automatic_rollback: true, alertmanager_rollback: false }",
    );
    std::fs::write(&path, yaml).unwrap();
    app.post("/-/reload", &json!({})).await.ok();
    let s = app.status().await.json;
    assert_eq!(
        s["automation"]["alertmanager"],
        json!({"configured": false, "armed": true, "acts": false})
    );
}

#[tokio::test]
async fn a_reload_takes_new_thresholds_and_tokens_and_refuses_a_bad_file() {
    let app = TestApp::builder().auth().spawn_polled().await;
    let admin = app.with_token(ADMIN_TOKEN);
    app.with_token(OPS_TOKEN)
        .post("/-/reload", &json!({}))
        .await
        .error(403, "forbidden");
    let path = app.dir().join("rollbackd.yaml");
    let original = std::fs::read_to_string(&path).unwrap();
    let critical = [("condition_type", "max_drawdown"), ("severity", "critical")];
    app.metrics()
        .await
        .assert("trigger_condition_threshold", &critical, 5.0);

    const NEW_OPS: &str = "operator-token-rotated-000001";
    let rotated = original.replace(OPS_TOKEN, NEW_OPS)
        + "trigger_conditions:\n  max_drawdown: { critical_threshold: 6.5, warning_threshold: 4.0 }\n";
    std::fs::write(&path, &rotated).unwrap();
    let r = admin.post("/-/reload", &json!({})).await.ok();
    assert_eq!(r["needs_restart"], json!([]));
    app.metrics()
        .await
        .assert("trigger_condition_threshold", &critical, 6.5);
    app.with_token(OPS_TOKEN)
        .dry_run("old token")
        .await
        .error(401, "unauthorized");
    app.with_token(NEW_OPS).dry_run("new token").await.ok();

    std::fs::write(&path, format!("{rotated}cooldown: soon\n")).unwrap();
    let msg = admin
        .post("/-/reload", &json!({}))
        .await
        .error(400, "invalid_request");
    assert!(
        msg.contains("cooldown") && msg.contains("running config is kept"),
        "{msg}"
    );
    app.metrics()
        .await
        .assert("trigger_condition_threshold", &critical, 6.5);
    app.with_token(NEW_OPS).dry_run("still in force").await.ok();
}

#[tokio::test]
async fn a_restore_dry_run_touches_nothing_and_a_restore_names_the_cooldown_left() {
    let app = TestApp::builder().manual().auth().spawn_polled().await;
    let admin = app.with_token(ADMIN_TOKEN);
    app.with_token(OPS_TOKEN).rollback("spike").await.ok();
    let plan = admin
        .post(
            "/api/v1/restore",
            &json!({"reason": "check first", "dry_run": true}),
        )
        .await
        .ok();
    assert_eq!(plan["action"], "restore");
    assert_eq!(plan["status"], "dry_run");
    let note = plan["note"].as_str().unwrap();
    assert!(note.contains("would switch to session_targeted"), "{note}");
    assert!(note.contains("cooldown"), "{note}");
    assert_eq!(
        app.sim.status().await["mode"],
        "universal_cycle_4",
        "untouched"
    );

    let done = admin.restore("all clear").await.ok();
    assert_eq!(done["status"], "completed");
    let note = done["note"].as_str().unwrap();
    assert!(
        note.contains("automatic triggers stay held by the cooldown for"),
        "{note}"
    );
}
