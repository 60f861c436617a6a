//! Drills and notification tests against the real daemon and simulator: the whole path runs,
//! the trading system is left exactly as it was, and what ran is stored and exported.

use crate::harness::binary::cli;
use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);

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

    // The dry-run switch reached the trading system (it answered the check with the planned
    // mode), changed nothing and was not recorded as applied: its own API says so.
    assert!(
        step(&d, "target_check")["detail"]
            .as_str()
            .unwrap()
            .contains("accepts the switch to universal_cycle_4"),
        "{d}"
    );
    assert_eq!(app.sim.switches_over_http().await, Vec::<Value>::new());
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
    assert_eq!(app.sim.switches_over_http().await, Vec::<Value>::new());

    // The same route lists a switch that was applied: its empty list above is a witness.
    let r = app.rollback("after the drills").await.ok();
    let applied = app.sim.switches_over_http().await;
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(applied[0]["event_id"], r["id"]);
    assert_eq!(applied[0]["mode"], "universal_cycle_4");
}

/// `drills.every` may not be shorter than an hour, so no test waits for a period to pass:
/// with no drill in the history yet one is due, and the schedule's first look (at start) runs
/// it. It is stored as the schedule's own, and nothing is applied to the trading system.
#[tokio::test]
async fn a_drill_schedule_on_a_history_without_drills_runs_one_at_once_and_stores_it() {
    let app = TestApp::builder()
        .manual()
        .append_yaml("drills: { every: 30d }\n")
        .spawn_polled()
        .await;
    let drills = wait_until("the scheduled drill", LONG, || async {
        let v = app.get("/api/v1/drills").await.ok();
        let d = v["drills"].as_array().unwrap().clone();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(drills.len(), 1, "{drills:?}");
    let d = &drills[0];
    assert_eq!(d["actor"], "schedule", "{d}");
    assert_eq!(d["passed"], true, "{d}");
    assert_eq!(step(d, "target_check")["result"], "passed", "{d}");
    assert_eq!(app.sim.switches_over_http().await, Vec::<Value>::new());
    assert_eq!(app.sim.status().await["mode"], "session_targeted");
    let m = app.metrics().await;
    m.assert("rollback_drill_last_success", &[], 1.0);
    let at: chrono::DateTime<chrono::Utc> = d["at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        m.get("rollback_drill_last_timestamp_seconds", &[]),
        Some(at.timestamp_millis() as f64 / 1000.0),
        "the metric is the stored drill's time"
    );
}

/// Both schedules with Alertmanager down (its address is a closed port): the scheduled drill
/// and the scheduled notification test still run at once on an empty history, and each is
/// stored as failed, naming the Alertmanager that did not answer.
#[tokio::test]
async fn scheduled_drills_and_notification_tests_with_alertmanager_down_are_stored_as_failed() {
    let down = crate::harness::stack::loopback_addr();
    let yaml = format!(
        "alertmanager: {{ urls: [\"http://{down}\"], timeout: 200ms }}\ndrills: {{ every: 30d }}\nnotification_tests: {{ every: 7d, wait: 1s, channels: [email, slack] }}\n"
    );
    let app = TestApp::builder()
        .manual()
        .append_yaml(&yaml)
        .spawn_polled()
        .await;
    let test = wait_until("the scheduled notification test", LONG, || async {
        let v = app.get("/api/v1/notification-tests").await.ok();
        v["notification_tests"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(test["actor"], "schedule", "{test}");
    assert_eq!(test["passed"], false, "{test}");
    assert_eq!(pluck(&test["channels"], "channel"), ["email", "slack"]);
    assert_eq!(pluck(&test["channels"], "result"), ["failed", "failed"]);
    assert_eq!(test["posted"][0]["ok"], false, "{test}");
    assert_eq!(test["posted"][0]["url"], format!("http://{down}"), "{test}");

    let drills = app.get("/api/v1/drills").await.ok();
    let d = &drills["drills"][0];
    assert_eq!(d["actor"], "schedule", "{drills}");
    assert_eq!(d["passed"], false, "{d}");
    let notify = step(d, "notify");
    assert_eq!(notify["result"], "failed", "{d}");
    assert!(
        notify["detail"].as_str().unwrap().contains(&down),
        "{notify}"
    );
    assert_eq!(step(d, "target_check")["result"], "passed", "{d}");
    assert_eq!(app.sim.switches_over_http().await, Vec::<Value>::new());

    let m = app.metrics().await;
    m.assert("rollback_drill_last_success", &[], 0.0);
    for c in ["email", "slack"] {
        m.assert(
            "rollback_notification_test_last_success",
            &[("channel", c)],
            0.0,
        );
    }
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
