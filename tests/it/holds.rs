//! Holds against a real daemon and simulator: freezes (news events), maintenance windows,
//! regimes, the automation modes (auto, confirm, observe) and two-person restore.

use crate::harness::binary::cli;
use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);

fn holds_yaml() -> &'static str {
    "regimes:\n  high_volatility: { max_drawdown.critical_threshold: 6.5, max_drawdown.warning_threshold: 5.0 }\n  low_volatility: { walk_forward_stability.critical_threshold: 35.0, walk_forward_stability.warning_threshold: 45.0 }\n"
}

/// The newest event matching `pick`, waited for (bounded).
async fn wait_event(app: &TestApp, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
    wait_until(what, LONG, || async {
        app.events("").await.into_iter().find(|e| pick(e))
    })
    .await
}

/// Waits until the watchdog sees `condition` in `status`.
async fn wait_condition(app: &TestApp, name: &str, status: &str) {
    wait_until(&format!("{name} {status}"), LONG, || async {
        let t = app.engine_triggers();
        (condition(&t, name)["status"] == status).then_some(())
    })
    .await;
}

/// A hold started: 201 and its answer.
async fn started(app: &TestApp, path: &str, body: Value) -> Value {
    let r = app.post(path, &body).await;
    assert_eq!(r.status, 201, "{path}: {}", r.text);
    r.json
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    let v = app.get("/api/v1/audit?limit=100").await.ok();
    v["records"]
        .as_array()
        .or_else(|| v["audit"].as_array())
        .expect("audit records")
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_breach_during_a_freeze_is_suppressed_by_name_and_after_expiry_the_next_breach_rolls_back(
) {
    let app = TestApp::builder().spawn_polled().await;
    let w = app
        .post(
            "/api/v1/freeze",
            &json!({"duration": "3s", "reason": "CPI release", "name": "cpi"}),
        )
        .await;
    assert_eq!(w.status, 201, "{}", w.text);
    assert_eq!(w.json["freeze"]["name"], "cpi");
    assert_eq!(app.metric("rollback_freeze_active", &[]).await, Some(1.0));
    assert!(
        app.metric("rollback_freeze_end_timestamp_seconds", &[])
            .await
            .unwrap()
            > 0.0
    );
    assert_eq!(app.status().await.ok()["holds"]["freeze"]["name"], "cpi");

    app.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    let e = wait_event(&app, "a suppressed trigger", |e| {
        e["status"] == "suppressed"
    })
    .await;
    assert_eq!(e["trigger_type"], "watchdog");
    assert_eq!(e["suppressed_reason"], "freeze", "{e}");
    let note = e["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("freeze cpi") && note.contains("CPI release"),
        "{e}"
    );
    assert!(
        app.sim.switches().is_empty(),
        "a freeze never touches the target"
    );
    let m = app.metrics().await;
    m.assert("rollback_suppressed_total", &[("reason", "freeze")], 1.0);
    m.assert("rollback_freeze_active", &[], 1.0);

    // Healed, the freeze runs out (recorded), and the next breach acts.
    app.sim.set_metrics(json!({"max_drawdown": 1.0})).await;
    wait_condition(&app, "max_drawdown", "ok").await;
    wait_until("the freeze to expire", LONG, || async {
        (app.metric("rollback_freeze_active", &[]).await == Some(0.0)).then_some(())
    })
    .await;
    let kinds = audit_kinds(&app).await;
    assert!(kinds.contains(&"freeze.start".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"freeze.expired".to_string()), "{kinds:?}");
    app.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    let done = app.wait_final().await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(app.sim.switches().len(), 1);
}

#[tokio::test]
async fn a_manual_rollback_during_a_freeze_executes_and_the_webhook_path_is_held() {
    let app = TestApp::builder().manual().spawn_polled().await;
    started(
        &app,
        "/api/v1/freeze",
        json!({"duration": "1h", "reason": "FOMC"}),
    )
    .await;
    let d = delivery(alert("MaxDrawdownCritical", "firing", "f1", true));
    app.webhook(&d).await.ok();
    let e = wait_event(&app, "the held alert", |e| {
        e["trigger_type"] == "alertmanager"
    })
    .await;
    assert_eq!(e["status"], "suppressed");
    assert_eq!(e["suppressed_reason"], "freeze");
    assert!(app.sim.switches().is_empty());

    let done = app.rollback("a person decided").await.ok();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(app.sim.switches().len(), 1);
    let ended = app
        .post("/api/v1/freeze/end", &json!({"reason": "FOMC over"}))
        .await
        .ok();
    assert_eq!(ended["ended"]["name"], "freeze");
    assert_eq!(app.metric("rollback_freeze_active", &[]).await, Some(0.0));
    let again = app
        .post("/api/v1/freeze/end", &json!({"reason": "twice"}))
        .await;
    again.error(409, "not_active");
}

#[tokio::test]
async fn a_regime_moves_the_decision_at_its_exact_boundary_and_the_exported_threshold() {
    let app = TestApp::builder()
        .append_yaml(holds_yaml())
        .spawn_polled()
        .await;
    let critical = [("condition_type", "max_drawdown"), ("severity", "critical")];
    assert_eq!(
        app.metric("trigger_condition_threshold", &critical).await,
        Some(5.0)
    );
    let set = app
        .post(
            "/api/v1/regime",
            &json!({"name": "high_volatility", "duration": "8h", "reason": "FOMC week"}),
        )
        .await
        .ok();
    assert_eq!(set["regime"]["name"], "high_volatility");
    let m = app.metrics().await;
    m.assert("trigger_condition_threshold", &critical, 6.5);
    m.assert(
        "rollback_regime_active",
        &[("regime", "high_volatility")],
        1.0,
    );
    m.assert(
        "rollback_regime_active",
        &[("regime", "low_volatility")],
        0.0,
    );

    // Just below the regime's threshold: a warning, nothing acts.
    app.sim.set_metrics(json!({"max_drawdown": 6.49})).await;
    wait_condition(&app, "max_drawdown", "warning").await;
    assert!(
        app.events("").await.is_empty(),
        "6.49 < 6.5 does not trigger"
    );
    // At it: the operator is >=, so it rolls back.
    app.sim.set_metrics(json!({"max_drawdown": 6.5})).await;
    let done = app.wait_final().await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        done["reason"].as_str().unwrap().contains(">= 6.5"),
        "{done}"
    );

    app.post("/api/v1/regime/clear", &json!({"reason": "calm again"}))
        .await
        .ok();
    let m = app.metrics().await;
    m.assert("trigger_condition_threshold", &critical, 5.0);
    m.assert(
        "rollback_regime_active",
        &[("regime", "high_volatility")],
        0.0,
    );
}

#[tokio::test]
async fn a_maintenance_window_lets_a_six_of_eight_validation_pass() {
    let app = TestApp::builder()
        .scenario(Scenario::AgentsDown)
        .manual()
        .spawn_polled()
        .await;
    let w = app
        .post(
            "/api/v1/maintenance",
            &json!({"duration": "1h", "reason": "patching two hosts", "expected_healthy_agents": 6}),
        )
        .await;
    assert_eq!(w.status, 201, "{}", w.text);
    let m = app.metrics().await;
    m.assert("rollback_agents_expected", &[], 6.0);
    m.assert("rollback_maintenance_active", &[], 1.0);
    let done = app.rollback("during maintenance").await.ok();
    assert_eq!(done["status"], "completed", "{done}");
    let id = done["id"].as_str().unwrap();
    let full = app.rollback_by_id(id).await.ok();
    let run = &full["validations"][0];
    let agents = run["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "agents")
        .unwrap()
        .clone();
    assert!(
        agents["detail"]
            .as_str()
            .unwrap()
            .contains("6 of 6 expected"),
        "{agents}"
    );
    app.post("/api/v1/maintenance/end", &json!({"reason": "done"}))
        .await
        .ok();
    assert_eq!(app.metric("rollback_agents_expected", &[]).await, Some(8.0));
}

#[tokio::test]
async fn an_active_freeze_and_regime_survive_a_restart_and_one_that_ran_out_meanwhile_is_recorded()
{
    let builder = || TestApp::builder().manual().append_yaml(holds_yaml());
    let app = builder().spawn_polled().await;
    started(
        &app,
        "/api/v1/freeze",
        json!({"duration": "1h", "reason": "NFP", "name": "nfp"}),
    )
    .await;
    app.post(
        "/api/v1/regime",
        &json!({"name": "low_volatility", "reason": "summer"}),
    )
    .await
    .ok();
    let app = app.stop().await.restart(builder()).await;
    let h = app.get("/api/v1/holds").await.ok();
    assert_eq!(h["freeze"]["name"], "nfp", "{h}");
    assert_eq!(h["regime"]["name"], "low_volatility", "{h}");
    assert_eq!(app.metric("rollback_freeze_active", &[]).await, Some(1.0));
    let wfs = [
        ("condition_type", "walk_forward_stability"),
        ("severity", "critical"),
    ];
    assert_eq!(
        app.metric("trigger_condition_threshold", &wfs).await,
        Some(35.0)
    );

    // A short one that runs out while the daemon is down.
    started(
        &app,
        "/api/v1/freeze",
        json!({"duration": "1s", "reason": "short", "name": "blip"}),
    )
    .await;
    let stopped = app.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let app = stopped.restart(builder()).await;
    let h = app.get("/api/v1/holds").await.ok();
    assert!(h["freeze"].is_null(), "{h}");
    let v = app.get("/api/v1/audit?kind=freeze.expired").await.ok();
    let text = v.to_string();
    assert!(text.contains("expired while rollbackd was down"), "{text}");
    assert!(text.contains("blip"), "{text}");
}

#[tokio::test]
async fn bad_holds_are_refused_naming_what_was_wrong() {
    let app = TestApp::builder()
        .manual()
        .append_yaml(holds_yaml())
        .spawn()
        .await;
    let cases = [
        ("/api/v1/freeze", json!({"duration": "45m"}), "reason"),
        (
            "/api/v1/freeze",
            json!({"reason": "CPI"}),
            "duration: an expiry is required",
        ),
        (
            "/api/v1/freeze",
            json!({"duration": "5h", "reason": "CPI"}),
            "longer than the maximum 4h",
        ),
        (
            "/api/v1/freeze",
            json!({"duration": "soon", "reason": "CPI"}),
            "duration: invalid duration",
        ),
        (
            "/api/v1/maintenance",
            json!({"duration": "1h", "reason": "x"}),
            "expected_healthy_agents",
        ),
        (
            "/api/v1/maintenance",
            json!({"duration": "1h", "reason": "x", "expected_healthy_agents": 9}),
            "more than agents.expected",
        ),
        (
            "/api/v1/regime",
            json!({"name": "sideways", "reason": "x"}),
            "unknown regime \"sideways\"; expected one of high_volatility, low_volatility",
        ),
        (
            "/api/v1/automation/mode",
            json!({"mode": "yolo", "reason": "x"}),
            "mode: unknown mode",
        ),
        (
            "/api/v1/freeze",
            json!({"duration": "1h", "reason": "x", "until": "later"}),
            "unknown field",
        ),
    ];
    for (path, body, words) in cases {
        let r = app.post(path, &body).await;
        let msg = r.error(400, "invalid_request");
        assert!(msg.contains(words), "{path} {body}: {msg}");
    }
    app.post("/api/v1/regime/clear", &json!({"reason": "none"}))
        .await
        .error(409, "not_active");
    assert!(
        app.get("/api/v1/holds").await.ok()["freeze"].is_null(),
        "nothing half-written"
    );

    // The CLI: a clear message and a non-zero exit.
    let url = app.url.clone();
    let o = cli(
        &["freeze", "--for", "5h", "--reason", "CPI", "--url", &url],
        None,
    )
    .await;
    assert!(!o.ok(), "{o:?}");
    assert!(
        o.stderr.contains("longer than the maximum 4h"),
        "{}",
        o.stderr
    );
    let o = cli(&["freeze", "--for", "45m", "--url", &url], None).await;
    assert_eq!(
        o.code,
        Some(2),
        "a missing --reason is a usage error: {o:?}"
    );
    let o = cli(
        &[
            "freeze", "--for", "45m", "--reason", "CPI", "--name", "cpi", "--url", &url,
        ],
        None,
    )
    .await;
    assert!(o.ok(), "{o:?}");
    let o = cli(&["holds", "--url", &url], None).await;
    o.assert_printed(&["freeze", "cpi", "CPI"]);

    // A malformed cron in the config: check-config names the key and exits non-zero.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rollbackd.yaml");
    std::fs::write(
        &file,
        "freezes:\n  windows:\n    - { name: release, cron: \"61 21 * * FRI\", duration: 30m }\n",
    )
    .unwrap();
    let o = crate::harness::binary::run_rollbackd(&["check-config", file.to_str().unwrap()]);
    assert!(!o.ok(), "{o:?}");
    assert!(o.stderr.contains("freezes.windows[0].cron"), "{}", o.stderr);
}

async fn confirm_app(on_timeout: &str, timeout: &str) -> TestApp {
    let yaml = format!(
        "automation: {{ mode: confirm, confirm_timeout: {timeout}, on_timeout: {on_timeout} }}\n"
    );
    let app = TestApp::builder().append_yaml(&yaml).spawn_polled().await;
    app.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    app
}

async fn wait_proposal(app: &TestApp) -> Value {
    wait_until("a proposal", LONG, || async {
        app.proposals().await?.first().cloned()
    })
    .await
}

#[tokio::test]
async fn confirm_mode_waits_for_an_answer_approved_rejected_or_timed_out() {
    // Approved: executes as a person's decision.
    let app = confirm_app("proceed", "10m").await;
    let p = wait_proposal(&app).await;
    assert_eq!(
        app.metric("rollback_proposals_pending", &[]).await,
        Some(1.0)
    );
    assert!(
        app.sim.switches().is_empty(),
        "nothing acts before an answer"
    );
    assert!(
        app.events("").await.is_empty(),
        "a proposal is not an event yet"
    );
    let id = p["id"].as_str().unwrap();
    let done = app
        .post(
            &format!("/api/v1/proposals/{id}/approve"),
            &json!({"reason": "looks real"}),
        )
        .await
        .ok();
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .contains("approved by anonymous: looks real"),
        "{done}"
    );
    assert_eq!(app.sim.switches().len(), 1);
    assert_eq!(
        app.metric("rollback_proposals_pending", &[]).await,
        Some(0.0)
    );
    app.post(&format!("/api/v1/proposals/{id}/approve"), &json!({}))
        .await
        .error(404, "not_found");

    // Rejected: recorded as suppressed, the target untouched.
    let app = confirm_app("proceed", "10m").await;
    let id = wait_proposal(&app).await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/proposals/{id}/reject");
    app.post(&path, &json!({}))
        .await
        .error(400, "invalid_request");
    let e = app
        .post(&path, &json!({"reason": "stale data feed"}))
        .await
        .ok();
    assert_eq!(e["status"], "suppressed");
    assert_eq!(e["suppressed_reason"], "rejected");
    assert!(
        e["note"].as_str().unwrap().contains("stale data feed"),
        "{e}"
    );
    assert!(app.sim.switches().is_empty());

    // Unanswered, proceed (the default): it executes.
    let app = confirm_app("proceed", "1s").await;
    wait_proposal(&app).await;
    let done = app.wait_final().await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        done["reason"].as_str().unwrap().contains("proceeded"),
        "{done}"
    );

    // Unanswered, lapse: recorded as suppressed.
    let app = confirm_app("lapse", "1s").await;
    wait_proposal(&app).await;
    let e = wait_event(&app, "the lapsed proposal", |e| e["status"] == "suppressed").await;
    assert_eq!(e["suppressed_reason"], "lapsed", "{e}");
    assert!(app.sim.switches().is_empty());
}

#[tokio::test]
async fn observe_mode_records_what_would_be_done_and_never_touches_the_target() {
    let app = TestApp::builder()
        .append_yaml("automation: { mode: observe }\n")
        .spawn_polled()
        .await;
    assert_eq!(
        app.metric("rollback_automation_mode", &[("mode", "observe")])
            .await,
        Some(1.0)
    );
    app.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    let e = wait_event(&app, "the observed trigger", |e| {
        e["trigger_type"] == "watchdog"
    })
    .await;
    assert_eq!(e["status"], "dry_run", "{e}");
    assert!(
        e["note"]
            .as_str()
            .unwrap()
            .starts_with("observe mode: would switch to universal_cycle_4"),
        "{e}"
    );
    let d = delivery(alert("MaxDrawdownCritical", "firing", "o1", true));
    app.webhook(&d).await.ok();
    let e = wait_event(&app, "the observed alert", |e| {
        e["trigger_type"] == "alertmanager"
    })
    .await;
    assert_eq!(e["status"], "dry_run", "{e}");
    assert!(
        app.sim.switches().is_empty(),
        "observe never touches the target"
    );
    assert_eq!(app.sim.status().await["mode"], "session_targeted");

    // Switched to auto at runtime: the condition still critical acts as a new episode.
    app.post(
        "/api/v1/automation/mode",
        &json!({"mode": "auto", "reason": "seen enough"}),
    )
    .await
    .ok();
    let done = app.wait_final().await;
    assert_eq!(done["status"], "completed", "{done}");
}

#[tokio::test]
async fn a_two_person_restore_refuses_the_same_actor_and_runs_on_a_second_admin() {
    let app = TestApp::builder()
        .manual()
        .auth()
        .append_yaml("automation: { restore_approval: two_person }\n")
        .spawn_polled()
        .await;
    let ops = app.with_token(OPS_TOKEN);
    ops.rollback("bad fills").await.ok();
    let boss = app.with_token(ADMIN_TOKEN);
    let asked = boss.restore("market calm").await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    let id = asked.json["restore_request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.sim.status().await["mode"],
        "universal_cycle_4",
        "nothing restored yet"
    );
    assert_eq!(
        app.metric("rollback_restore_requests_pending", &[]).await,
        Some(1.0)
    );
    let path = format!("/api/v1/restore/requests/{id}/approve");
    boss.post(&path, &json!({}))
        .await
        .error(403, "second_person_required");
    ops.post(&path, &json!({})).await.error(403, "forbidden");
    let chief = app.with_token(SECOND_ADMIN_TOKEN);
    let done = chief.post(&path, &json!({"reason": "agreed"})).await.ok();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["actor"], "chief");
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .contains("requested by boss"),
        "{done}"
    );
    assert_eq!(app.sim.status().await["mode"], "session_targeted");
    chief.post(&path, &json!({})).await.error(404, "not_found");
}

/// A time `secs` from now, as the config writes it (RFC 3339, UTC).
fn utc_in(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn scheduled_freeze_and_maintenance_windows_from_the_config_start_hold_and_end_on_time() {
    // Both windows start a few seconds after the daemon and end a few seconds later.
    let (start, end) = (utc_in(4), utc_in(9));
    let yaml = format!(
        "freezes:\n  windows:\n    - {{ name: fomc, start: \"{start}\", end: \"{end}\" }}\n\
         maintenance:\n  windows:\n    - {{ name: patch, start: \"{start}\", end: \"{end}\", expected_healthy_agents: 6 }}\n"
    );
    let app = TestApp::builder().append_yaml(&yaml).spawn_polled().await;
    let h = app.get("/api/v1/holds").await.ok();
    assert!(h["freeze"].is_null(), "not yet: {h}");
    let upcoming: Vec<&str> = h["upcoming"]
        .as_array()
        .expect("upcoming windows")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert!(
        upcoming.contains(&"fomc") && upcoming.contains(&"patch"),
        "{h}"
    );
    assert_eq!(app.metric("rollback_freeze_active", &[]).await, Some(0.0));

    wait_until("the scheduled freeze to start", LONG, || async {
        (app.metric("rollback_freeze_active", &[]).await == Some(1.0)).then_some(())
    })
    .await;
    let s = app.status().await.ok();
    assert_eq!(s["holds"]["freeze"]["name"], "fomc", "{s}");
    assert_eq!(s["holds"]["maintenance"]["name"], "patch", "{s}");
    assert_eq!(app.metric("rollback_agents_expected", &[]).await, Some(6.0));
    // `rollbackd status` names both windows while they hold.
    let url = app.url.clone();
    let o = cli(&["status", "--url", &url], None).await;
    o.assert_printed(&["fomc until", "patch until", "6 healthy agents expected"]);

    // A breach inside the scheduled freeze is held, by the window's name.
    app.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    let e = wait_event(&app, "a suppressed trigger", |e| {
        e["status"] == "suppressed"
    })
    .await;
    assert_eq!(e["suppressed_reason"], "freeze", "{e}");
    assert!(
        e["note"].as_str().unwrap_or_default().contains("fomc"),
        "{e}"
    );
    assert!(app.sim.switches().is_empty());

    // The windows end on time, recorded; the expected agents come back.
    app.sim.set_metrics(json!({"max_drawdown": 1.0})).await;
    wait_until("the scheduled windows to end", LONG, || async {
        (app.metric("rollback_freeze_active", &[]).await == Some(0.0)).then_some(())
    })
    .await;
    assert_eq!(app.metric("rollback_agents_expected", &[]).await, Some(8.0));
    let kinds = audit_kinds(&app).await;
    for k in [
        "freeze.scheduled_start",
        "freeze.scheduled_end",
        "maintenance.scheduled_start",
        "maintenance.scheduled_end",
    ] {
        assert!(kinds.contains(&k.to_string()), "{k} in {kinds:?}");
    }
    // After the window, the next breach rolls back.
    wait_condition(&app, "max_drawdown", "ok").await;
    app.sim.set_metrics(json!({"max_drawdown": 6.0})).await;
    let done = app.wait_final().await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(app.sim.switches().len(), 1);
}

#[tokio::test]
async fn holds_are_an_operators_to_change_and_anyones_with_a_token_to_read() {
    let app = TestApp::builder()
        .auth()
        .append_yaml(holds_yaml())
        .spawn()
        .await;
    let viewer = app.with_token(VIEWER_TOKEN);
    let anonymous = app.api();
    for (path, body) in [
        (
            "/api/v1/freeze",
            json!({"duration": "30m", "reason": "CPI release"}),
        ),
        ("/api/v1/freeze/end", json!({"reason": "released"})),
        (
            "/api/v1/maintenance",
            json!({"duration": "1h", "reason": "patch", "expected_healthy_agents": 6}),
        ),
        (
            "/api/v1/regime",
            json!({"name": "high_volatility", "reason": "FOMC week"}),
        ),
        ("/api/v1/regime/clear", json!({"reason": "calm"})),
        (
            "/api/v1/automation/mode",
            json!({"mode": "observe", "reason": "shadow week"}),
        ),
    ] {
        let r = viewer.post(path, &body).await;
        assert_eq!(r.status, 403, "a viewer on {path}: {}", r.text);
        let r = anonymous.post(path, &body).await;
        assert_eq!(r.status, 401, "no token on {path}: {}", r.text);
    }
    assert!(app.get("/api/v1/holds").await.json["freeze"].is_null());
    // The operator's freeze is what the viewer reads, with the operator's name on it.
    let ops = app.with_token(OPS_TOKEN);
    let r = ops
        .post(
            "/api/v1/freeze",
            &json!({"duration": "30m", "reason": "CPI release", "name": "cpi"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let h = viewer.get("/api/v1/holds").await.ok();
    assert_eq!(h["freeze"]["name"], "cpi", "{h}");
    assert_eq!(h["freeze"]["actor"], "ops", "{h}");
}
