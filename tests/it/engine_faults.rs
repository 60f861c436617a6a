//! Faults the engine must survive without losing a trigger or contradicting the target: a
//! history that refuses writes (made to fail by an SQLite trigger, then mended), a switch whose
//! answer is lost, a delivery during shutdown, a restart inside the stability window, a
//! wall-clock step. Real daemon, real simulator, real SQLite.

use crate::harness::library::seed_rollback_before_a_clock_step;
use crate::harness::wait::wait_until;
use crate::harness::*;
use rollbackd::simulator::Scenario;
use serde_json::json;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);

/// Makes inserts into `table` fail (as a full disk would) until `mend`.
fn refuse(db: &rusqlite::Connection, name: &str, table: &str, when: &str) {
    db.execute_batch(&format!(
        "CREATE TRIGGER {name} BEFORE INSERT ON {table} {when} BEGIN SELECT RAISE(ABORT, 'disk full'); END;"
    ))
    .unwrap();
}

fn mend(db: &rusqlite::Connection, name: &str) {
    db.execute_batch(&format!("DROP TRIGGER {name};")).unwrap();
}

fn rollback_alert(fingerprint: &str) -> serde_json::Value {
    delivery(alert("MaxDrawdownCritical", "firing", fingerprint, true))
}

/// The alert and its rollback event go in together: when the event cannot be stored, the
/// delivery is refused whole (so Alertmanager retries), and the retry acts.
#[tokio::test]
async fn a_delivery_whose_rollback_cannot_be_recorded_is_refused_and_its_retry_acts() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let db = app.history().open();
    refuse(&db, "fail_events", "rollback_events", "");
    let d = rollback_alert("2200000000000001");
    let r = app.webhook(&d).await;
    assert_eq!(
        r.status, 503,
        "a 2xx here would lose the rollback: {}",
        r.text
    );
    assert!(
        app.history().webhook_alerts().is_empty(),
        "nothing half-written"
    );
    mend(&db, "fail_events");
    let r = app.webhook(&d).await.ok();
    assert_eq!(r["rollback_requested"], json!(["MaxDrawdownCritical"]));
    let event = app.wait_final().await;
    assert_eq!(event["status"], "completed", "{event}");
    assert_eq!(event["trigger_type"], "alertmanager");
}

/// While draining, a delivery is refused whole (the HTTP layer answers 503 `not_ready`, when it
/// still answers at all): nothing is recorded as seen, so the retry acts elsewhere or later.
#[tokio::test]
async fn a_delivery_during_shutdown_is_refused_and_left_for_the_retry() {
    let app = TestApp::builder().manual().spawn_polled().await;
    assert!(
        app.deliver_while_draining(&rollback_alert("2200000000000002"))
            .await
    );
    assert!(app.history().webhook_alerts().is_empty());
}

/// A condition that turns critical while the history refuses writes is acted on once the disk
/// is back.
#[tokio::test]
async fn a_breach_during_a_storage_outage_rolls_back_once_the_disk_is_back() {
    let app = TestApp::builder().spawn_polled().await;
    let db = app.history().open();
    refuse(&db, "fail_events", "rollback_events", "");
    app.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    wait_until("the breach seen", LONG, || async {
        let t = app.triggers().await.json;
        (t["triggers_detected"] == json!(["max_drawdown"])).then_some(())
    })
    .await;
    // Several polls find it critical while every record attempt fails.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.events("").await.is_empty());
    mend(&db, "fail_events");
    let event = app.wait_final().await;
    assert_eq!(event["status"], "completed", "{event}");
    assert_eq!(event["trigger_type"], "watchdog");
}

/// The target applied the switch but its answer was lost: the read-back decides, and the
/// history agrees with the target.
#[tokio::test]
async fn a_switch_whose_answer_was_lost_is_judged_by_reading_the_target_back() {
    let app = TestApp::builder()
        .scenario(Scenario::LosesSwitchAnswers)
        .manual()
        .spawn_polled()
        .await;
    let event = app.rollback("lost answer").await.ok();
    assert_eq!(event["status"], "completed");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("the read-back confirmed it applied"),
        "{event}"
    );
    assert_eq!(app.sim.status().await["mode"], "universal_cycle_4");
}

/// The switch ran but the history refused its outcome: the caller hears so at once, the slot
/// stays held (the history still says it runs), and the outcome is recorded when the disk is
/// back.
#[tokio::test]
async fn an_outcome_the_history_refused_keeps_the_slot_until_it_is_recorded() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let db = app.history().open();
    refuse(
        &db,
        "fail_done",
        "rollback_transitions",
        "WHEN NEW.status IN ('completed', 'failed')",
    );
    let msg = app
        .rollback("disk trouble")
        .await
        .error(503, "storage_unavailable");
    assert!(msg.contains("holds the execution slot"), "{msg}");
    let s = app.status().await.json;
    assert!(s["in_progress"].is_string(), "the slot stays held: {s}");
    let r = app.rollback("again").await;
    assert_eq!(r.status, 409, "nothing else runs meanwhile: {}", r.text);
    mend(&db, "fail_done");
    let event = wait_until("the outcome recorded", LONG, || async {
        app.events("status=completed")
            .await
            .into_iter()
            .find(|ev| ev["reason"] == "disk trouble")
    })
    .await;
    assert_eq!(event["mode_before"], "session_targeted");
    wait_until("the slot freed", LONG, || async {
        app.status().await.json["in_progress"]
            .is_null()
            .then_some(())
    })
    .await;
}

/// A restart inside the stability window resumes the watch for what is left, and the
/// validation gauges start from the last run instead of NaN (which would page
/// RecoveryValidationMissing after every restart).
#[tokio::test]
async fn a_restart_inside_the_stability_window_resumes_the_watch_and_the_score() {
    let builder = || TestApp::builder().manual().stability_window("3s");
    let app = builder().spawn_polled().await;
    let event = app.rollback("before a restart").await.ok();
    let id = event["id"].as_str().unwrap().to_string();
    assert_eq!(app.status().await.json["stability_watch_active"], true);
    let app = app.stop().await.restart(builder()).await;
    let s = app.status().await.json;
    assert_eq!(s["stability_watch_active"], true, "resumed: {s}");
    app.metrics()
        .await
        .assert("recovery_validation_score", &[], 100.0);
    let run = app.wait_stability(&id).await;
    assert_eq!(run["passed"], true, "{run}");
}

/// The cooldown after a restart counts on the boot clock: a wall clock that stepped forward
/// (the last rollback an hour back by the wall clock, 10 s back by the boot clock) does not
/// cancel it.
#[tokio::test]
async fn a_wall_clock_step_at_start_does_not_cancel_the_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    seed_rollback_before_a_clock_step(
        &dir.path().join("history.db"),
        "before-step",
        Duration::from_secs(3600),
        Duration::from_secs(10),
    )
    .await;
    let app = TestApp::builder().history(dir).spawn().await;
    let left = app.status().await.json["cooldown_remaining_seconds"]
        .as_f64()
        .unwrap();
    assert!(
        (800.0..=900.0).contains(&left),
        "15 min cooldown, 10 s of it gone by the boot clock, not an hour by the wall clock: {left}"
    );
}

/// A confirm-mode proposal whose time ran out while the history refused the record stays
/// open and proceeds once the disk is back (it used to be dropped: a kill switch that
/// silently did nothing).
#[tokio::test]
async fn a_proposal_whose_expiry_cannot_be_recorded_proceeds_once_the_disk_is_back() {
    let app = TestApp::builder()
        .append_yaml("automation: { mode: confirm, confirm_timeout: 1s, on_timeout: proceed }\n")
        .spawn_polled()
        .await;
    app.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    wait_until("a proposal", LONG, || async {
        (app.proposals().await?.len() == 1).then_some(())
    })
    .await;
    let db = app.history().open();
    refuse(
        &db,
        "fail_expiry",
        "audit_log",
        "WHEN NEW.kind = 'proposal.proceeded'",
    );
    // Past the deadline, several ticks try to record the expiry and fail.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(app.events("").await.is_empty(), "nothing ran unrecorded");
    let h = app.get("/api/v1/holds").await.json;
    assert_eq!(
        h["proposals"].as_array().map(Vec::len),
        Some(1),
        "the proposal is still open: {h}"
    );
    mend(&db, "fail_expiry");
    let event = app.wait_final().await;
    assert_eq!(event["status"], "completed", "{event}");
    assert!(
        event["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no answer in time"),
        "{event}"
    );
    assert_eq!(app.sim.switches().len(), 1);
}

/// A two-person restore request whose expiry cannot be recorded is not approvable and is
/// recorded as expired once the disk is back.
#[tokio::test]
async fn a_restore_request_whose_expiry_cannot_be_recorded_is_recorded_once_the_disk_is_back() {
    let app = TestApp::builder()
        .manual()
        .auth()
        .append_yaml("automation: { restore_approval: two_person, restore_approval_timeout: 1s }\n")
        .spawn_polled()
        .await;
    app.with_token(OPS_TOKEN).rollback("bad fills").await.ok();
    let db = app.history().open();
    refuse(
        &db,
        "fail_expiry",
        "audit_log",
        "WHEN NEW.kind = 'restore.expired'",
    );
    let asked = app.with_token(ADMIN_TOKEN).restore("market calm").await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    let id = asked.json["restore_request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    app.with_token(SECOND_ADMIN_TOKEN)
        .post(
            &format!("/api/v1/restore/requests/{id}/approve"),
            &json!({}),
        )
        .await
        .error(404, "not_found");
    assert_eq!(app.sim.status().await["mode"], "universal_cycle_4");
    mend(&db, "fail_expiry");
    wait_until("the expiry to be recorded", LONG, || async {
        let v = app.get("/api/v1/audit?limit=50").await.json;
        v["records"]
            .as_array()?
            .iter()
            .any(|r| r["kind"] == "restore.expired")
            .then_some(())
    })
    .await;
    let h = app.get("/api/v1/holds").await.json;
    assert_eq!(h["restore_requests"], json!([]), "{h}");
}
