//! The watchdog against a misbehaving trading system: a breach rolls back to exactly the
//! profile and validates; a switch that does not land, sick agents, a flaky, slow or absent
//! target end as they must; episodes, suppression and arming.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_breach_rolls_back_to_exactly_the_profile_validates_and_persists() {
    let app = TestApp::builder().spawn_polled().await;
    assert!(
        app.events("").await.is_empty(),
        "a healthy target is left alone"
    );

    app.sim.set_metrics(json!({"max_drawdown": 5.0})).await; // exactly the threshold: >= breaches
    let event = app.wait_final().await;
    assert_eq!(event["status"], "completed", "{event}");
    assert_eq!(event["trigger_type"], "watchdog");
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .starts_with("max_drawdown 5 >= 5 (critical)"),
        "{event}"
    );
    assert_eq!(event["target_parameters"], profile());
    assert_eq!(event["parameters_after"], profile());
    assert_eq!(event["parameters_before"], adaptive());
    assert_eq!(event["mode_before"], "session_targeted");
    // Still critical right after the switch: the lingering drawdown costs 15, passing at 85.
    assert_eq!(event["validation_score"], 85.0);
    let snap = condition(&event, "max_drawdown");
    assert_eq!(snap["value"], 5.0);
    assert_eq!(snap["status"], "critical");

    let switches = app.sim.switches();
    assert_eq!(switches.len(), 1, "exactly one switch reached the target");
    assert_eq!(switches[0]["mode"], "universal_cycle_4");
    assert_eq!(switches[0]["parameters"]["confidence_threshold"], 0.55);
    assert_eq!(switches[0]["parameters"]["risk_reward_ratio"], 1.8);
    assert_eq!(switches[0]["event_id"], event["id"]);
    assert_eq!(app.sim.status().await["mode"], "universal_cycle_4");

    let id = event["id"].as_str().unwrap();
    let full = app.rollback_by_id(id).await.json;
    assert_eq!(
        pluck(&full["transitions"], "status"),
        ["pending", "executing", "validating", "completed"]
    );
    let initial = &full["validations"].as_array().unwrap().last().unwrap();
    assert_eq!(initial["kind"], "initial");
    assert_eq!(initial["passed"], true);

    // The stability watch (1 s here) records its outcome once drawdown is healed.
    app.sim.set_metrics(json!({"max_drawdown": 1.0})).await;
    let stability = app.wait_stability(id).await;
    assert_eq!(stability["passed"], true, "{stability}");

    let m = app.metrics().await;
    m.assert(
        "rollback_events_total",
        &[("trigger_type", "watchdog")],
        1.0,
    );
    m.assert("rollback_outcomes_total", &[("status", "completed")], 1.0);
    m.assert("rollback_execution_time_seconds_count", &[], 1.0);
    m.assert("rollback_mode", &[("mode", "universal_cycle_4")], 1.0);
    let last = [
        ("event_id", id),
        ("trigger_type", "watchdog"),
        ("status", "completed"),
    ];
    m.assert("rollback_last_event_info", &last, 1.0);
    let history = app.history();
    let _stopped = app.stop().await;

    // Straight from the file: the history is on disk, not only in the daemon's memory.
    assert_eq!(history.transitions(id).len(), 4);
}

#[tokio::test]
async fn accepts_but_does_not_apply_fails_the_validation_and_says_why() {
    let app = TestApp::builder()
        .scenario(Scenario::AcceptsButDoesNotApply)
        .spawn_polled()
        .await;
    app.sim
        .set_metrics(json!({"walk_forward_stability": 39.9}))
        .await;
    let event = app.wait_final().await;
    assert_eq!(event["status"], "failed", "never a silent success: {event}");
    let why = event["failure_reason"].as_str().unwrap();
    assert!(
        why.contains("recovery validation failed (score 35 < 85)"),
        "{why}"
    );
    assert!(
        why.contains("mode is session_targeted, expected universal_cycle_4"),
        "{why}"
    );
    assert!(
        why.contains("confidence_threshold is 0.62, expected 0.55"),
        "{why}"
    );
    // The outcome is counted just after it is durable (and visible in the history).
    let failed = [("status", "failed")];
    wait_until("the failed outcome counted", LONG, || async {
        let n = app.metric("rollback_outcomes_total", &failed).await?;
        (n == 1.0).then_some(())
    })
    .await;
    let m = app.metrics().await;
    m.assert("recovery_validation_score", &[], 35.0);
    m.assert(
        "recovery_validations_total",
        &[("kind", "initial"), ("result", "fail")],
        1.0,
    );
}

#[tokio::test]
async fn agents_down_fail_the_validation() {
    let app = TestApp::builder()
        .scenario(Scenario::AgentsDown)
        .manual()
        .spawn()
        .await;
    let event = app.rollback("test").await.failed();
    assert!(
        event["failure_reason"]
            .as_str()
            .unwrap()
            .contains("6 of 8 expected agents healthy"),
        "{event}"
    );
    assert_eq!(event["validation_score"], 80.0);
}

#[tokio::test]
async fn a_flaky_target_is_retried_to_success() {
    // Polls are slow here so they do not take the failing turns of the simulator's "every
    // second request fails" counter away from the switch and its read-back.
    let app = TestApp::builder()
        .scenario(Scenario::Flaky)
        .manual()
        .poll_interval("10s")
        .spawn()
        .await;
    let event = app.rollback("flaky").await.ok();
    assert_eq!(event["status"], "completed", "{event}");
    assert_eq!(app.sim.switches().len(), 1);
}

#[tokio::test]
async fn a_target_slower_than_the_timeout_ends_failed_with_the_reason() {
    // 1.5 s per answer; the timeout is 500 ms
    let app = TestApp::builder()
        .scenario(Scenario::Slow)
        .manual()
        .poll_interval("5s")
        .spawn()
        .await;
    let event = app.rollback("slow").await.failed();
    assert!(
        event["failure_reason"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{event}"
    );
}

#[tokio::test]
async fn a_down_target_means_unknown_and_no_rollback() {
    let app = TestApp::builder().unreachable_target().spawn().await;
    let failed_polls = [("operation", "status"), ("result", "error")];
    wait_until("several failed polls", LONG, || async {
        let n = app
            .metric("rollback_target_requests_total", &failed_polls)
            .await?;
        (n >= 5.0).then_some(())
    })
    .await;
    let t = app.triggers().await.json;
    for c in t["conditions"].as_array().unwrap() {
        assert_eq!(c["status"], "unknown", "{c}");
        assert_eq!(c["value"], Value::Null);
    }
    assert_eq!(t["triggers_detected"], json!([]));
    let s = app.status().await.json;
    assert_eq!(s["target"]["up"], false);
    assert_eq!(s["rollback_ready"], false);
    assert_eq!(s["mode"], "unknown");
    assert!(
        s["target"]["last_error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{s}"
    );
    assert!(
        app.events("").await.is_empty(),
        "no rollback on missing data"
    );
    let m = app.metrics().await;
    m.assert("rollback_target_up", &[], 0.0);
    m.assert("rollback_system_ready", &[], 0.0);
    let wfs = [("condition_type", "walk_forward_stability")];
    m.assert("trigger_condition_status", &wfs, -1.0);
    assert!(m
        .text
        .contains("trigger_condition_value{condition_type=\"walk_forward_stability\"} NaN"));

    // An operator may still try; the failure is recorded with the reason, never a success.
    let e = app.rollback("manual while down").await.failed();
    assert!(
        e["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("switch failed: target unreachable"),
        "{e}"
    );
}

/// Ends the current critical episode of consecutive losses (seen back at ok), then starts a
/// new one at `losses`.
async fn new_losses_episode(app: &TestApp, losses: u32) {
    app.sim.set_metrics(json!({"consecutive_losses": 0})).await;
    wait_until("losses back to ok", LONG, || async {
        (app.engine_triggers()["triggers_detected"] == json!([])).then_some(())
    })
    .await;
    app.sim
        .set_metrics(json!({"consecutive_losses": losses}))
        .await;
}

/// The first event whose `suppressed_reason` is `reason`, waited for.
async fn suppressed_for(app: &TestApp, reason: &str) -> Value {
    wait_until(&format!("a {reason} suppression"), LONG, || async {
        app.events("")
            .await
            .into_iter()
            .find(|e| e["suppressed_reason"] == reason)
    })
    .await
}

#[tokio::test]
async fn suppression_is_recorded_for_already_rolled_back_and_cooldown() {
    let app = TestApp::builder().auth().spawn_polled().await;
    app.sim.set_metrics(json!({"consecutive_losses": 5})).await;
    assert_eq!(app.wait_final().await["status"], "completed");

    // A new critical episode while in universal_cycle_4: recorded, not executed.
    new_losses_episode(&app, 7).await;
    let sup = suppressed_for(&app, "already_rolled_back").await;
    assert_eq!(sup["status"], "suppressed");
    assert_eq!(sup["trigger_type"], "watchdog");

    // The episode triggers once: many more polls while still critical add nothing.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.events("").await.len(), 2);

    // A human restores; the same episode is not re-triggered, a new one meets the cooldown.
    let r = app
        .with_token(ADMIN_TOKEN)
        .restore("root cause fixed")
        .await
        .ok();
    assert_eq!(r["action"], "restore");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["actor"], "boss");
    assert_eq!(app.sim.status().await["mode"], "session_targeted");
    assert_eq!(
        app.sim.status().await["parameters"],
        adaptive(),
        "the adaptive parameters come back"
    );
    new_losses_episode(&app, 9).await;
    let cd = suppressed_for(&app, "cooldown").await;
    assert_eq!(cd["status"], "suppressed");
    assert_eq!(
        app.sim.switches().len(),
        2,
        "one rollback and one restore reached the target"
    );
    let m = app.metrics().await;
    m.assert(
        "rollback_suppressed_total",
        &[("reason", "already_rolled_back")],
        1.0,
    );
    m.assert("rollback_suppressed_total", &[("reason", "cooldown")], 1.0);
    m.assert(
        "rollback_events_total",
        &[("trigger_type", "watchdog")],
        1.0,
    );
}

#[tokio::test]
async fn without_automatic_rollback_the_watchdog_only_watches() {
    let app = TestApp::builder().manual().spawn().await;
    app.sim
        .set_metrics(json!({"walk_forward_stability": 12.0}))
        .await;
    wait_until("critical seen", LONG, || async {
        (app.engine_triggers()["triggers_detected"] == json!(["walk_forward_stability"]))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.events("").await.is_empty());
    let m = app.metrics().await;
    let wfs = [("condition_type", "walk_forward_stability")];
    m.assert("trigger_conditions_active", &wfs, 1.0);
    let critical = [
        ("condition_type", "walk_forward_stability"),
        ("severity", "critical"),
    ];
    m.assert("trigger_condition_breach_total", &critical, 1.0);
}

#[tokio::test]
async fn arming_the_watchdog_acts_on_a_condition_already_critical() {
    let app = TestApp::builder().inactive().spawn().await;
    app.sim
        .set_metrics(json!({"overfitting_score": 0.51}))
        .await;
    wait_until("critical seen", LONG, || async {
        (app.engine_triggers()["triggers_detected"] != json!([])).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.events("").await.is_empty(), "monitoring is off");
    let r = app.post("/api/v1/monitoring/start", &json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(app.wait_final().await["status"], "completed");
}
