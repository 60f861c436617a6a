//! Drills and notification tests against the real daemon and simulator: the whole path runs,
//! the trading system is left exactly as it was, and what ran is stored and exported.

use crate::harness::binary::cli;
use crate::harness::*;
use serde_json::{json, Value};

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {report}"))
}

#[tokio::test]
async fn a_drill_runs_every_step_and_leaves_the_trading_system_untouched() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let before = app.sim.status().await;
    let r = app.post("/api/v1/drills", &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let d = r.json;
    assert_eq!(d["passed"], true, "{d}");
    let names: Vec<&str> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "read_target",
            "evaluate_conditions",
            "plan",
            "target_check",
            "validation",
            "notify"
        ]
    );
    assert_eq!(step(&d, "target_check")["result"], "passed", "{d}");
    assert_eq!(step(&d, "validation")["result"], "passed", "{d}");
    assert_eq!(
        step(&d, "notify")["result"],
        "skipped",
        "no Alertmanager configured"
    );
    assert_eq!(d["mode_from"], "session_targeted");
    assert_eq!(d["mode_to"], "universal_cycle_4");
    assert_eq!(d["parameter_changes"].as_array().unwrap().len(), 2, "{d}");
    assert_eq!(d["validation_score"], 100.0);

    // The dry-run switch changed nothing and was not recorded as applied.
    assert!(app.sim.switches().is_empty());
    let after = app.sim.status().await;
    assert_eq!(after["mode"], before["mode"]);
    assert_eq!(after["parameters"], before["parameters"]);
    assert!(
        app.events("").await.is_empty(),
        "a drill is not a rollback event"
    );

    let listed = app.get("/api/v1/drills").await.ok();
    assert_eq!(listed["drills"][0]["id"], d["id"]);
    let m = app.metrics().await;
    m.assert("rollback_drill_last_success", &[], 1.0);
    assert!(m.get("rollback_drill_last_timestamp_seconds", &[]).unwrap() > 0.0);
    assert!(m
        .get(
            "rollback_drill_step_duration_seconds",
            &[("step", "target_check")]
        )
        .is_some());

    let o = cli(&["drill", "--url", &app.url], None).await;
    assert!(o.ok(), "{o:?}");
    o.assert_printed(&["drill", "PASSED", "target_check", "validation"]);
}

#[tokio::test]
async fn a_target_without_the_dry_run_switch_is_reported_as_such_not_as_a_failure() {
    let app = TestApp::builder()
        .scenario(Scenario::WithoutDryRun)
        .manual()
        .spawn_polled()
        .await;
    let d = app.post("/api/v1/drills", &json!({})).await.json;
    let check = step(&d, "target_check");
    assert_eq!(check["result"], "unsupported", "{d}");
    assert!(
        check["detail"].as_str().unwrap().contains("mode_dry_run"),
        "{check}"
    );
    assert_eq!(
        d["passed"], true,
        "an older target is not rollbackd's failure: {d}"
    );
    assert!(app.sim.switches().is_empty());
    assert_eq!(app.sim.status().await["mode"], "session_targeted");
}

#[tokio::test]
async fn a_drill_that_finds_a_problem_is_stored_as_failed_and_the_cli_says_so() {
    // Two of eight agents down: the planned state would not validate.
    let app = TestApp::builder()
        .scenario(Scenario::AgentsDown)
        .manual()
        .spawn_polled()
        .await;
    let d = app.post("/api/v1/drills", &json!({})).await.json;
    assert_eq!(d["passed"], false, "{d}");
    let v = step(&d, "validation");
    assert_eq!(v["result"], "failed");
    assert!(v["detail"].as_str().unwrap().contains("6 of 8"), "{v}");
    assert_eq!(
        app.metric("rollback_drill_last_success", &[]).await,
        Some(0.0)
    );
    let o = cli(&["drill", "--url", &app.url], None).await;
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(app.sim.switches().is_empty());
}

#[tokio::test]
async fn a_notification_test_without_alertmanager_is_refused_clearly() {
    let app = TestApp::builder().manual().spawn().await;
    let msg = app
        .post("/api/v1/notification-tests", &json!({}))
        .await
        .error(400, "invalid_request");
    assert!(msg.contains("alertmanager.urls"), "{msg}");
    let o = cli(&["notify-test", "--url", &app.url], None).await;
    assert!(!o.ok(), "{o:?}");
}
