//! The Alertmanager webhook with real Alertmanager 0.25 payloads: one rollback per alert
//! however often and from however many Alertmanagers it comes, each alert judged on its own
//! labels, every delivery recorded, bad ones refused and counted.

use crate::harness::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn webhook_a_firing_rollback_alert_rolls_back_once_resends_and_ha_duplicates_do_not() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let fp = "9c3e1f0a7b5d2e48";
    let firing = alert("WalkForwardStabilityCritical", "firing", fp, true);
    let first = delivery(firing.clone());
    let r = app.webhook(&first).await.ok();
    assert_eq!(
        r,
        json!({"accepted": 1, "rollback_requested": ["WalkForwardStabilityCritical"], "deduplicated": 0})
    );
    let ev = app.wait_completed().await;
    assert_eq!(ev["trigger_type"], "alertmanager");
    assert_eq!(ev["alert_names"], json!(["WalkForwardStabilityCritical"]));
    assert_eq!(ev["fingerprints"], json!([fp]));
    assert_eq!(ev["actor"], "alertmanager");
    assert!(
        ev["source"].as_str().unwrap().contains("rollbackd-webhook"),
        "{ev}"
    );
    assert!(
        ev["reason"]
            .as_str()
            .unwrap()
            .contains("known-good profile"),
        "the summary is the reason: {ev}"
    );
    assert_eq!(ev["parameters_after"], profile());

    // Alertmanager resends the same group on repeat_interval.
    let r = app.webhook(&first).await.ok();
    assert_eq!(
        r,
        json!({"accepted": 1, "rollback_requested": [], "deduplicated": 1})
    );
    // The HA peer sends the same alert: other receiver name, group key and URL.
    let peer = group(
        "rollbackd-webhook-dr",
        AM_2,
        &["alertname", "severity"],
        vec![firing],
    );
    assert_ne!(peer["groupKey"], first["groupKey"]);
    let r = app.webhook(&peer).await.ok();
    assert_eq!(r["rollback_requested"], json!([]));
    assert_eq!(r["deduplicated"], 1);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = app.events("").await;
    assert_eq!(
        events.len(),
        1,
        "one event, not even a suppressed duplicate: {events:?}"
    );
    assert_eq!(app.sim.switches().len(), 1);
    let m = app.metrics().await;
    m.assert(
        "rollback_events_total",
        &[("trigger_type", "alertmanager")],
        1.0,
    );
    m.assert("rollback_webhook_alerts_deduplicated_total", &[], 2.0);
    m.assert(
        "rollback_webhook_alerts_received_total",
        &[("status", "firing")],
        3.0,
    );
    assert_eq!(app.history().webhook_alerts().len(), 1, "recorded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_a_storm_of_50_concurrent_deliveries_rolls_back_exactly_once() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let d = delivery(alert(
        "MaxDrawdownCritical",
        "firing",
        "4d2a90c1e6f3b857",
        true,
    ));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (api, d) = (app.api(), d.clone());
            tokio::spawn(async move { api.webhook(&d).await })
        })
        .collect();
    let mut requested = 0;
    for t in tasks {
        let v = t.await.unwrap().ok();
        requested += v["rollback_requested"].as_array().unwrap().len();
    }
    assert_eq!(requested, 1, "exactly one delivery asked for the rollback");
    let ev = app.wait_completed().await;
    assert_eq!(ev["alert_names"], json!(["MaxDrawdownCritical"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.events("").await.len(), 1, "one event in total");
    assert_eq!(app.sim.switches().len(), 1, "one switch on the target");
    let m = app.metrics().await;
    m.assert("rollback_webhook_alerts_deduplicated_total", &[], 49.0);
    m.assert(
        "rollback_events_total",
        &[("trigger_type", "alertmanager")],
        1.0,
    );
}

#[tokio::test]
async fn webhook_each_alert_is_judged_on_its_own_labels() {
    let app = TestApp::builder().manual().spawn_polled().await;
    // Two alerts in one group (grouped by service), only one labelled action="rollback".
    let d = group(
        "rollbackd-webhook",
        AM_1,
        &["service"],
        vec![
            alert(
                "RollbackTriggerConditionsMet",
                "firing",
                "aa00000000000001",
                false,
            ),
            alert(
                "OverfittingScoreCritical",
                "firing",
                "aa00000000000002",
                true,
            ),
        ],
    );
    assert!(
        d["commonLabels"].get("action").is_none(),
        "commonLabels lack `action`"
    );
    assert_eq!(d["groupLabels"], json!({"service": "trading-system"}));
    let r = app.webhook(&d).await.ok();
    assert_eq!(
        r,
        json!({"accepted": 2, "rollback_requested": ["OverfittingScoreCritical"], "deduplicated": 0})
    );
    let ev = app.wait_completed().await;
    assert_eq!(
        ev["alert_names"],
        json!(["OverfittingScoreCritical"]),
        "only the labelled alert is named"
    );
    assert_eq!(ev["fingerprints"], json!(["aa00000000000002"]));
    assert_eq!(app.history().webhook_alerts().len(), 2, "both are recorded");
}

#[tokio::test]
async fn webhook_common_labels_with_action_do_not_matter_without_it_on_the_alert() {
    let app = TestApp::builder().manual().spawn_polled().await;
    // A hand-made group claiming action=rollback in commonLabels, with no alert labelled so.
    let mut d = delivery(alert(
        "RollbackTriggerConditionsMet",
        "firing",
        "bb00000000000001",
        false,
    ));
    d["commonLabels"]["action"] = json!("rollback");
    d["groupLabels"]["action"] = json!("rollback");
    let r = app.webhook(&d).await.ok();
    assert_eq!(r["rollback_requested"], json!([]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.events("").await.is_empty());
    assert!(app.sim.switches().is_empty());
}

#[tokio::test]
async fn webhook_a_resolved_only_group_is_recorded_and_undoes_nothing() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let fp = "cc00000000000001";
    let firing = delivery(alert("MaxDrawdownCritical", "firing", fp, true));
    assert_eq!(app.webhook(&firing).await.status, 200);
    app.wait_completed().await;
    let resolved = delivery(alert("MaxDrawdownCritical", "resolved", fp, true));
    assert_eq!(resolved["status"], "resolved");
    let r = app.webhook(&resolved).await.ok();
    assert_eq!(
        r,
        json!({"accepted": 1, "rollback_requested": [], "deduplicated": 0})
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = app.events("").await;
    assert_eq!(events.len(), 1, "no restore, no new event: {events:?}");
    assert_eq!(app.sim.switches().len(), 1);
    assert_eq!(
        app.sim.status().await["mode"],
        "universal_cycle_4",
        "still rolled back"
    );
    let rows = app.history().webhook_alerts();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[1],
        (fp.to_string(), STARTS.to_string(), "resolved".to_string())
    );
    app.metrics().await.assert(
        "rollback_webhook_alerts_received_total",
        &[("status", "resolved")],
        1.0,
    );

    // A resolved-only group on a fresh system: recorded, nothing happens.
    let other = delivery(alert(
        "ConsecutiveLossesCritical",
        "resolved",
        "cc00000000000002",
        true,
    ));
    assert_eq!(app.webhook(&other).await.status, 200);
    assert_eq!(app.history().webhook_alerts().len(), 3);
    assert_eq!(app.events("").await.len(), 1);
}

#[tokio::test]
async fn webhook_a_firing_alert_while_rolled_back_is_recorded_as_suppressed() {
    let app = TestApp::builder().manual().spawn_polled().await;
    assert_eq!(app.rollback("by hand first").await.status, 200);
    let d = delivery(alert(
        "WalkForwardStabilityCritical",
        "firing",
        "dd00000000000001",
        true,
    ));
    assert_eq!(app.webhook(&d).await.status, 200);
    let long = Duration::from_secs(8);
    let ev = wait_until("the suppressed alertmanager event", long, || async {
        app.events("status=suppressed").await.into_iter().next()
    })
    .await;
    assert_eq!(ev["trigger_type"], "alertmanager");
    assert_eq!(ev["suppressed_reason"], "already_rolled_back");
    assert_eq!(ev["alert_names"], json!(["WalkForwardStabilityCritical"]));
    assert_eq!(app.sim.switches().len(), 1);
    // The counter moves just after the event is durable, so a scrape may be a moment behind.
    let m = wait_until("the suppression counted", long, || async {
        let m = app.metrics().await;
        let n = m.get(
            "rollback_suppressed_total",
            &[("reason", "already_rolled_back")],
        );
        (n == Some(1.0)).then_some(m)
    })
    .await;
    m.assert(
        "rollback_events_total",
        &[("trigger_type", "alertmanager")],
        0.0,
    );
}

#[tokio::test]
async fn webhook_rejects_bad_deliveries_and_counts_them_by_reason() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let good = delivery(alert(
        "MaxDrawdownCritical",
        "firing",
        "ee00000000000001",
        true,
    ));

    app.webhook_bytes(b"{\"version\": \"4\", \"alerts\": [".to_vec())
        .await
        .error(400, "invalid_request");
    let mut v3 = good.clone();
    v3["version"] = json!("3");
    let m = app.webhook(&v3).await.error(400, "invalid_request");
    assert!(m.contains("version"), "{m}");
    let mut no_alerts = good.clone();
    no_alerts.as_object_mut().unwrap().remove("alerts");
    let m = app.webhook(&no_alerts).await.error(400, "invalid_request");
    assert!(m.contains("alerts"), "{m}");
    let mut bad_status = good.clone();
    bad_status["alerts"][0]["status"] = json!("pending");
    app.webhook(&bad_status).await.error(400, "invalid_request");

    // Over 1 MiB: 413. Under it (but far over the API's 64 KiB): accepted.
    let mut huge = good.clone();
    huge["commonAnnotations"]["description"] = json!("d".repeat(1024 * 1024));
    app.webhook(&huge).await.error(413, "payload_too_large");
    let mut large = delivery(alert("Noise", "firing", "ee00000000000002", false));
    large["commonAnnotations"]["description"] = json!("d".repeat(512 * 1024));
    let r = app.webhook(&large).await;
    assert_eq!(
        r.status, 200,
        "512 KiB is within the webhook's 1 MiB: {}",
        r.text
    );

    let text = Body::Raw(Some("text/plain"), good.to_string().into_bytes());
    app.send(Method::POST, "/api/v1/alertmanager", text)
        .await
        .error(415, "unsupported_media_type");

    let m = app.metrics().await;
    let rejected = |reason: &str| {
        m.get(
            "rollback_webhook_requests_rejected_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(
        rejected("malformed"),
        Some(4.0),
        "bad JSON, no alerts, bad status, text/plain"
    );
    assert_eq!(rejected("version"), Some(1.0));
    assert_eq!(rejected("too_large"), Some(1.0));
    assert_eq!(rejected("unauthorized"), Some(0.0));
    assert_eq!(rejected("storage"), Some(0.0));
    assert!(app.events("").await.is_empty(), "nothing rejected acted");
    assert_eq!(
        app.history().webhook_alerts().len(),
        1,
        "only the large valid delivery was recorded"
    );
}

#[tokio::test]
async fn webhook_needs_a_webhook_role_and_takes_the_token_from_its_file() {
    let app = TestApp::builder().manual().auth().spawn_polled().await;
    let d = delivery(alert(
        "MaxDrawdownCritical",
        "firing",
        "ff00000000000001",
        true,
    ));
    app.webhook(&d).await.error(401, "unauthorized");
    app.with_token(VIEWER_TOKEN)
        .webhook(&d)
        .await
        .error(403, "forbidden");
    app.metrics().await.assert(
        "rollback_webhook_requests_rejected_total",
        &[("reason", "unauthorized")],
        2.0,
    );
    assert!(std::fs::read_to_string(app.dir().join("webhook.token"))
        .unwrap()
        .contains(WEBHOOK_TOKEN));
    let r = app.with_token(WEBHOOK_TOKEN).webhook(&d).await;
    assert_eq!(
        r.status, 200,
        "the token read from token_file is accepted: {}",
        r.text
    );
    let ev = app.wait_completed().await;
    assert_eq!(ev["trigger_type"], "alertmanager");
}

#[tokio::test]
async fn webhook_a_storage_failure_is_5xx_so_alertmanager_retries_and_the_retry_acts() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let db = app.history().open();
    db.execute_batch("CREATE TRIGGER fail_alerts BEFORE INSERT ON webhook_alerts BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;")
        .unwrap();
    let d = delivery(alert(
        "MaxDrawdownCritical",
        "firing",
        "1100000000000001",
        true,
    ));
    let r = app.webhook(&d).await;
    assert!(
        (500..600).contains(&r.status),
        "5xx so Alertmanager retries: {} {}",
        r.status,
        r.text
    );
    r.error(503, "storage_unavailable");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        app.events("").await.is_empty(),
        "nothing acted on an unrecorded delivery"
    );
    assert!(app.sim.switches().is_empty());
    app.metrics().await.assert(
        "rollback_webhook_requests_rejected_total",
        &[("reason", "storage")],
        1.0,
    );

    // The disk recovers; Alertmanager's retry is recorded and acted on.
    db.execute_batch("DROP TRIGGER fail_alerts;").unwrap();
    let r = app.webhook(&d).await.ok();
    assert_eq!(
        r["rollback_requested"],
        json!(["MaxDrawdownCritical"]),
        "the failed attempt did not count as seen"
    );
    let ev = app.wait_completed().await;
    assert_eq!(ev["fingerprints"], json!(["1100000000000001"]));
}

#[tokio::test]
async fn webhook_truncated_alerts_are_counted() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let mut d = delivery(alert("Noise", "firing", "2200000000000001", false));
    d["truncatedAlerts"] = json!(3);
    let r = app.webhook(&d).await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.metrics()
        .await
        .assert("rollback_webhook_truncated_alerts_total", &[], 3.0);
    assert_eq!(app.webhook(&d).await.status, 200);
    app.metrics()
        .await
        .assert("rollback_webhook_truncated_alerts_total", &[], 6.0);
}
