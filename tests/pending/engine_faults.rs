//! Faults the engine must survive without losing a trigger or contradicting the target: a
//! history that refuses writes (made to fail by an SQLite trigger, then mended), a switch
//! whose answer is lost, a delivery during shutdown. Real daemon, real simulator, real SQLite.

mod common;

use common::*;
use rollbackd::simulator::Scenario;
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);

fn manual() -> Options {
    Options {
        automatic_rollback: false,
        ..Default::default()
    }
}

/// A firing `action="rollback"` delivery of one alert, as Alertmanager posts it.
fn delivery(fingerprint: &str) -> Value {
    json!({
        "receiver": "rollbackd-webhook", "status": "firing", "version": "4",
        "groupKey": "{}:{alertname=\"MaxDrawdownCritical\"}", "truncatedAlerts": 0,
        "groupLabels": {"alertname": "MaxDrawdownCritical"},
        "commonLabels": {"alertname": "MaxDrawdownCritical", "action": "rollback"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager-0:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "MaxDrawdownCritical", "action": "rollback", "severity": "critical"},
            "annotations": {"summary": "drawdown over the critical threshold"},
            "startsAt": "2026-11-23T10:04:12.358412877Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint,
        }],
    })
}

/// The history file, opened beside the daemon to break and mend it.
fn history(e: &Env) -> rusqlite::Connection {
    rusqlite::Connection::open(e.dir.path().join("history.db")).unwrap()
}

fn refuse(db: &rusqlite::Connection, name: &str, table: &str, when: &str) {
    db.execute_batch(&format!(
        "CREATE TRIGGER {name} BEFORE INSERT ON {table} {when} BEGIN SELECT RAISE(ABORT, 'disk full'); END;"
    ))
    .unwrap();
}

fn mend(db: &rusqlite::Connection, name: &str) {
    db.execute_batch(&format!("DROP TRIGGER {name};")).unwrap();
}

fn count(db: &rusqlite::Connection, table: &str) -> i64 {
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// The alert and its rollback event go in together: when the event cannot be stored, the
/// delivery is refused whole (so Alertmanager retries), and the retry acts.
#[tokio::test]
async fn a_delivery_whose_rollback_cannot_be_recorded_is_refused_and_its_retry_acts() {
    let e = spawn(Scenario::Steady, &manual()).await;
    e.app.first_poll().await;
    let db = history(&e);
    refuse(&db, "fail_events", "rollback_events", "");
    let d = delivery("2200000000000001");
    let (code, body) = e.app.post("/api/v1/alertmanager", d.clone(), None).await;
    assert_eq!(code, 503, "a 2xx here would lose the rollback: {body}");
    assert_eq!(count(&db, "webhook_alerts"), 0, "nothing half-written");
    mend(&db, "fail_events");
    let (code, body) = e.app.post("/api/v1/alertmanager", d, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["rollback_requested"], json!(["MaxDrawdownCritical"]));
    let event = wait_final(&e.app).await;
    assert_eq!(event["status"], "completed", "{event}");
    assert_eq!(event["trigger_type"], "alertmanager");
}

/// While draining, a delivery is refused whole (the HTTP layer answers 503 `not_ready`, when it
/// still answers at all): nothing is recorded as seen, so the retry acts elsewhere or later.
#[tokio::test]
async fn a_delivery_during_shutdown_is_refused_and_left_for_the_retry() {
    let e = spawn(Scenario::Steady, &manual()).await;
    e.app.first_poll().await;
    e.app.engine.shutdown_token().cancel();
    let payload =
        rollbackd::alertmanager::parse(delivery("2200000000000002").to_string().as_bytes())
            .unwrap();
    let refused = e.app.engine.receive_alerts(payload).await.unwrap_err();
    assert!(
        matches!(refused, rollbackd::engine::EngineError::ShuttingDown),
        "{refused}"
    );
    assert_eq!(count(&history(&e), "webhook_alerts"), 0);
}

/// A condition that turns critical while the history refuses writes is acted on once the disk
/// is back, and readiness returns without waiting for some other write.
#[tokio::test]
async fn a_breach_during_a_storage_outage_rolls_back_once_the_disk_is_back() {
    let e = spawn(Scenario::Steady, &Options::default()).await;
    e.app.first_poll().await;
    let db = history(&e);
    refuse(&db, "fail_events", "rollback_events", "");
    e.sim
        .put("/v1/sim/metrics", json!({"max_drawdown": 6.0}))
        .await;
    wait_for("the breach seen", LONG, || async {
        let (_, t) = e.app.get("/api/v1/triggers").await;
        (t["triggers_detected"] == json!(["max_drawdown"])).then_some(())
    })
    .await;
    // Several polls find it critical while every record attempt fails.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(e.app.events().await.is_empty());
    mend(&db, "fail_events");
    let event = wait_final(&e.app).await;
    assert_eq!(event["status"], "completed", "{event}");
    assert_eq!(event["trigger_type"], "watchdog");
}

/// The target applied the switch but its answer was lost: the read-back decides, and the
/// history agrees with the target.
#[tokio::test]
async fn a_switch_whose_answer_was_lost_is_judged_by_reading_the_target_back() {
    let e = spawn(Scenario::LosesSwitchAnswers, &manual()).await;
    e.app.first_poll().await;
    let (code, event) = e
        .app
        .post("/api/v1/rollback", json!({"reason": "lost answer"}), None)
        .await;
    assert_eq!(code, 200, "{event}");
    assert_eq!(event["status"], "completed");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("the read-back confirmed it applied"),
        "{event}"
    );
    assert_eq!(e.sim.status().await["mode"], "universal_cycle_4");
}

/// The switch ran but the history refused its outcome: the caller hears so at once, the slot
/// stays held (the history still says it runs), and the outcome is recorded when the disk is
/// back.
#[tokio::test]
async fn an_outcome_the_history_refused_keeps_the_slot_until_it_is_recorded() {
    let e = spawn(Scenario::Steady, &manual()).await;
    e.app.first_poll().await;
    let db = history(&e);
    refuse(
        &db,
        "fail_done",
        "rollback_transitions",
        "WHEN NEW.status IN ('completed', 'failed')",
    );
    let (code, body) = e
        .app
        .post("/api/v1/rollback", json!({"reason": "disk trouble"}), None)
        .await;
    assert_eq!(code, 503, "never 200 for an outcome not recorded: {body}");
    assert_eq!(body["error"]["code"], "storage_unavailable");
    let (_, status) = e.app.get("/api/v1/status").await;
    assert!(
        status["in_progress"].is_string(),
        "the slot stays held: {status}"
    );
    let (code, _) = e
        .app
        .post("/api/v1/rollback", json!({"reason": "again"}), None)
        .await;
    assert_eq!(code, 409, "nothing else runs meanwhile");
    mend(&db, "fail_done");
    let event = wait_for("the outcome recorded", LONG, || async {
        e.app
            .events()
            .await
            .into_iter()
            .find(|ev| ev["reason"] == "disk trouble" && ev["status"] == "completed")
    })
    .await;
    assert_eq!(event["mode_before"], "session_targeted");
    wait_for("the slot freed", LONG, || async {
        let (_, s) = e.app.get("/api/v1/status").await;
        s["in_progress"].is_null().then_some(())
    })
    .await;
}

/// A restart inside the stability window resumes the watch for what is left, and the
/// validation gauges start from the last run instead of NaN (which would page
/// RecoveryValidationMissing after every restart).
#[tokio::test]
async fn a_restart_inside_the_stability_window_resumes_the_watch_and_the_score() {
    let o = Options {
        automatic_rollback: false,
        stability_window: "3s",
        ..Default::default()
    };
    let Env { app, sim, dir } = spawn(Scenario::Steady, &o).await;
    app.first_poll().await;
    let (code, event) = app
        .post(
            "/api/v1/rollback",
            json!({"reason": "before a restart"}),
            None,
        )
        .await;
    assert_eq!(code, 200, "{event}");
    let id = event["id"].as_str().unwrap().to_string();
    let (_, s) = app.get("/api/v1/status").await;
    assert_eq!(s["stability_watch_active"], true);
    app.stop().await;

    let app = TestApp::start(&sim.url, dir.path(), &o).await;
    let (_, s) = app.get("/api/v1/status").await;
    assert_eq!(s["stability_watch_active"], true, "resumed: {s}");
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "recovery_validation_score"),
        Some(100.0),
        "not NaN after a restart"
    );
    let run = wait_for("the resumed watch's outcome", LONG, || async {
        let (_, v) = app.get(&format!("/api/v1/validations?event_id={id}")).await;
        v["validations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "stability")
            .cloned()
    })
    .await;
    assert_eq!(run["passed"], true, "{run}");
}

/// The cooldown after a restart counts on the boot clock: a wall clock that stepped forward
/// (here: the last rollback's wall time an hour back, 10 s back on the boot clock) does not
/// cancel it.
#[tokio::test]
async fn a_wall_clock_step_at_start_does_not_cancel_the_cooldown() {
    use rollbackd::domain::{Action, EventStatus, TriggerType};
    let sim = TestSim::spawn(Scenario::Steady).await;
    let dir = tempfile::tempdir().unwrap();
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap();
    let up: f64 = uptime.split_whitespace().next().unwrap().parse().unwrap();
    {
        let store = rollbackd::store::Store::open(&dir.path().join("history.db")).unwrap();
        let request = rollbackd::store::EventRequest {
            action: Action::Rollback,
            trigger_type: TriggerType::Watchdog,
            source: "watchdog".into(),
            reason: "before the clock step".into(),
            actor: "rollbackd".into(),
            dry_run: false,
            alert_names: vec![],
            fingerprints: vec![],
            conditions: vec![],
            mode_before: Some("session_targeted".into()),
            parameters_before: None,
            target_mode: "universal_cycle_4".into(),
            target_parameters: Default::default(),
        };
        let mut ev = rollbackd::store::Event::new(
            "before-step".into(),
            request,
            chrono::Utc::now() - chrono::Duration::hours(1),
            EventStatus::Pending,
        );
        ev.clock = Some(rollbackd::store::ClockMark {
            boot_id: boot_id.trim().into(),
            since_boot_ms: ((up - 10.0) * 1000.0) as u64,
        });
        store.insert_event(&ev, Default::default()).await.unwrap();
        for s in [
            EventStatus::Executing,
            EventStatus::Validating,
            EventStatus::Completed,
        ] {
            store
                .transition("before-step", s, Default::default())
                .await
                .unwrap();
        }
    }
    let app = TestApp::start(&sim.url, dir.path(), &Options::default()).await;
    let (_, s) = app.get("/api/v1/status").await;
    let left = s["cooldown_remaining_seconds"].as_f64().unwrap();
    assert!(
        (800.0..=900.0).contains(&left),
        "15 min cooldown, 10 s of it gone by the boot clock, not an hour by the wall clock: {left}"
    );
}
