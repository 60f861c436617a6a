//! `POST /api/v1/rollback`: the validated event it returns, dry runs, the 409s of a rollback
//! that is already done or under way, and bodies it refuses.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_manual_rollback_returns_the_completed_validated_event() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let ev = app.rollback("  drawdown spike on desk 3  ").await.ok();
    assert_eq!(ev["status"], "completed", "{ev}");
    assert_eq!(ev["action"], "rollback");
    assert_eq!(ev["trigger_type"], "manual");
    assert_eq!(ev["source"], "api");
    assert_eq!(ev["reason"], "drawdown spike on desk 3", "trimmed");
    assert_eq!(ev["actor"], "anonymous", "no tokens configured");
    assert_eq!(ev["dry_run"], false);
    assert_eq!(ev["mode_before"], "session_targeted");
    assert_eq!(ev["parameters_before"], adaptive());
    assert_eq!(ev["target_mode"], "universal_cycle_4");
    assert_eq!(ev["target_parameters"], profile());
    assert_eq!(ev["parameters_after"], profile());
    assert_eq!(ev["validation_score"], 100.0);
    assert_eq!(ev["suppressed_reason"], Value::Null);
    assert_eq!(ev["failure_reason"], Value::Null);
    assert_eq!(ev["alert_names"], json!([]));
    assert_eq!(ev["fingerprints"], json!([]));
    assert_eq!(ev["conditions"].as_array().unwrap().len(), 4);
    assert!(ev["duration_ms"].as_u64().is_some(), "{ev}");
    assert!(chrono::DateTime::parse_from_rfc3339(ev["created_at"].as_str().unwrap()).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(ev["finished_at"].as_str().unwrap()).is_ok());

    let sw = app.sim.switches();
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!(sw[0]["event_id"], ev["id"]);
    assert_eq!(sw[0]["mode"], "universal_cycle_4");
    assert_eq!(sw[0]["parameters"], profile());
    assert_eq!(app.sim.status().await["mode"], "universal_cycle_4");

    let s = app.status().await.ok();
    assert_eq!(s["mode"], "universal_cycle_4");
    assert_eq!(s["already_rolled_back"], true);
    assert_eq!(s["last_event"]["id"], ev["id"]);
}

#[tokio::test]
async fn a_dry_run_is_recorded_and_never_touches_the_target() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let r = app.dry_run("rehearsal").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "dry_run");
    assert_eq!(r.json["dry_run"], true);
    assert!(
        r.json["note"]
            .as_str()
            .unwrap()
            .contains("would switch to universal_cycle_4"),
        "{}",
        r.text
    );
    assert!(app.sim.switches().is_empty(), "the simulator saw no switch");
    assert_eq!(app.sim.status().await["mode"], "session_targeted");
    let stored = app.events("status=dry_run").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], r.json["id"]);
    let m = app.metrics().await;
    m.assert("rollback_dry_runs_total", &[], 1.0);
    assert_eq!(
        m.get("rollback_events_total", &[("trigger_type", "manual")]),
        Some(0.0),
        "a dry run is not executed"
    );
}

#[tokio::test]
async fn a_second_rollback_is_409_already_rolled_back_and_recorded_as_suppressed() {
    let app = TestApp::builder().manual().spawn_polled().await;
    assert_eq!(app.rollback("first").await.status, 200);
    let msg = app
        .rollback("second")
        .await
        .error(409, "already_rolled_back");
    let suppressed = app.events("status=suppressed").await;
    assert_eq!(suppressed.len(), 1, "{suppressed:?}");
    assert_eq!(suppressed[0]["suppressed_reason"], "already_rolled_back");
    assert_eq!(suppressed[0]["reason"], "second");
    let id = suppressed[0]["id"].as_str().unwrap();
    assert!(
        msg.contains(id),
        "the message names the suppressed event: {msg}"
    );
    assert_eq!(app.sim.switches().len(), 1, "no second switch");
    let m = app.metrics().await;
    m.assert(
        "rollback_suppressed_total",
        &[("reason", "already_rolled_back")],
        1.0,
    );
    m.assert("rollback_events_total", &[("trigger_type", "manual")], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rollbacks_execute_once_and_the_other_is_409_in_progress() {
    let app = TestApp::builder().manual().slow_target(1500).spawn().await;
    let started = Instant::now();
    let (a, b) = tokio::join!(app.rollback("desk A"), app.rollback("desk B"));
    let (ok, conflict) = if a.status == 200 { (a, b) } else { (b, a) };
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["status"], "completed", "{}", ok.text);
    let msg = conflict.error(409, "rollback_in_progress");
    assert!(
        msg.contains(ok.json["id"].as_str().unwrap()),
        "names the executing event: {msg}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the target really was slow"
    );
    let suppressed = app.events("status=suppressed").await;
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0]["suppressed_reason"], "in_progress");
    assert_eq!(app.sim.switches().len(), 1);
    app.metrics().await.assert(
        "rollback_suppressed_total",
        &[("reason", "in_progress")],
        1.0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_is_visible_in_status_and_metrics_while_a_rollback_executes() {
    let app = TestApp::builder().manual().slow_target(1000).spawn().await;
    let (r, seen) = tokio::join!(app.rollback("slow one"), async {
        wait_until(
            "in_progress in the status",
            Duration::from_secs(8),
            || async {
                let s = app.status().await.json;
                s["in_progress"]
                    .as_str()
                    .map(|id| (id.to_string(), s["rollback_ready"].clone()))
            },
        )
        .await
    });
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(seen.0, r.json["id"].as_str().unwrap());
    assert_eq!(seen.1, false, "not ready while one executes");
    assert_eq!(app.status().await.json["in_progress"], Value::Null);
}

#[tokio::test]
async fn bad_bodies_get_400_415_413_in_the_error_shape() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let a = &app;
    let post = |body: Value| async move { a.post("/api/v1/rollback", &body).await };
    let raw = |ct: Option<&'static str>, bytes: &[u8]| {
        let body = Body::Raw(ct, bytes.to_vec());
        async move { a.send(Method::POST, "/api/v1/rollback", body).await }
    };
    let json = Some("application/json");

    let m = post(json!({})).await.error(400, "invalid_request");
    assert!(m.contains("reason"), "{m}");
    let m = post(json!({"reason": "   \n\t"}))
        .await
        .error(400, "invalid_request");
    assert!(m.contains("reason"), "{m}");
    post(json!({"reason": ""}))
        .await
        .error(400, "invalid_request");
    let m = post(json!({"reason": "x".repeat(501)}))
        .await
        .error(400, "invalid_request");
    assert!(m.contains("500"), "{m}");
    let r = post(json!({"reason": "y".repeat(500), "dry_run": true})).await;
    assert_eq!(r.status, 200, "500 characters are fine: {}", r.text);
    // 500 characters counted as characters, not bytes.
    let r = post(json!({"reason": "é".repeat(500), "dry_run": true})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = post(json!({"reason": "x", "force": true}))
        .await
        .error(400, "invalid_request");
    assert!(
        m.contains("force"),
        "the message names the unknown field: {m}"
    );
    let m = post(json!({"reason": "x", "dry_run": "yes"}))
        .await
        .error(400, "invalid_request");
    assert!(m.contains("dry_run"), "{m}");
    let m = post(json!({"reason": 7}))
        .await
        .error(400, "invalid_request");
    assert!(m.contains("reason"), "{m}");
    raw(json, b"{\"reason\": ")
        .await
        .error(400, "invalid_request");
    raw(json, b"[1,2]").await.error(400, "invalid_request");
    raw(json, b"").await.error(400, "invalid_request");
    raw(Some("text/plain"), b"{\"reason\":\"x\"}")
        .await
        .error(415, "unsupported_media_type");
    raw(None, b"{\"reason\":\"x\"}")
        .await
        .error(415, "unsupported_media_type");
    let charset = json!({"reason": "charset ok", "dry_run": true}).to_string();
    let r = raw(Some("application/json; charset=utf-8"), charset.as_bytes()).await;
    assert_eq!(r.status, 200, "a charset parameter is fine: {}", r.text);
    let big = json!({"reason": "x", "pad": "p".repeat(100 * 1024)}).to_string();
    raw(json, big.as_bytes())
        .await
        .error(413, "payload_too_large");
    let m = app
        .post("/api/v1/restore", &json!({"reason": "x", "extra": 1}))
        .await
        .error(400, "invalid_request");
    assert!(m.contains("extra"), "{m}");
    app.restore(" ").await.error(400, "invalid_request");

    assert!(app.sim.switches().is_empty(), "nothing reached the target");
    assert_eq!(
        app.events("").await.len(),
        3,
        "only the three good dry runs were recorded"
    );
}
