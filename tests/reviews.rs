//! Was each trigger right? Reviews, missed degradations, the success rates exported from the
//! durable history, and the incident report, against a real daemon and simulator (and the
//! real binary for the CLI, real headless Chromium for the console).

mod common;

use common::browser::{browser, click, js, type_into, wait_js};
use common::*;
use futures_util::StreamExt;
use rollbackd::domain::lifecycle::{Action, EventStatus, TriggerType};
use rollbackd::domain::review::Verdict;
use rollbackd::simulator::Scenario;
use rollbackd::store::{Event, EventRequest, MissedDegradation, Review, Store, TransitionDetail};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const LONG: Duration = Duration::from_secs(10);

fn auth() -> Options {
    Options {
        auth: true,
        automatic_rollback: false,
        ..Options::default()
    }
}

async fn review(app: &TestApp, id: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    app.post(&format!("/api/v1/rollbacks/{id}/review"), body, token)
        .await
}

/// A manual rollback by the operator; its event.
async fn rollback(app: &TestApp, reason: &str, dry_run: bool) -> (u16, Value) {
    app.post(
        "/api/v1/rollback",
        json!({"reason": reason, "dry_run": dry_run}),
        Some(OPS_TOKEN),
    )
    .await
}

fn error_message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next stream message of `kind`, others skipped.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let msg = tokio::time::timeout(LONG, ws.next())
            .await
            .expect("a stream message in time")
            .expect("the stream is open")
            .expect("a good frame");
        if let WsMessage::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == kind {
                return v["data"].clone();
            }
        }
    }
}

#[tokio::test]
async fn a_review_is_streamed_superseded_by_a_later_one_and_both_stay_readable() {
    let Env {
        app,
        sim: _sim,
        dir: _dir,
    } = spawn(Scenario::Steady, &auth()).await;
    app.first_poll().await;
    let (code, event) = rollback(&app, "drawdown spike on desk 3", false).await;
    assert_eq!(code, 200, "{event}");
    let id = event["id"].as_str().unwrap().to_owned();
    assert_eq!(event["review"], Value::Null, "unreviewed at first");
    let url = format!("{}/api/v1/stream", app.url.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();

    let (code, first) = review(
        &app,
        &id,
        json!({"verdict": "false_positive", "note": "looked like a bad tick"}),
        Some(OPS_TOKEN),
    )
    .await;
    assert_eq!(code, 201, "{first}");
    assert_eq!(
        first["reviewer"], "ops",
        "the reviewer is the token's actor"
    );
    assert_eq!(first["supersedes"], Value::Null);
    let streamed = next_of(&mut ws, "review").await;
    assert_eq!(streamed["id"], first["id"]);
    assert_eq!(streamed["event_id"], id.as_str());

    let (code, second) = review(
        &app,
        &id,
        json!({"verdict": "true_positive", "note": "real: desk 3 lost 5.2 %",
               "ticket_url": "https://tickets.example.org/INC-42"}),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(code, 201, "{second}");
    assert_eq!(second["reviewer"], "boss");
    assert_eq!(second["supersedes"], first["id"]);
    assert_eq!(next_of(&mut ws, "review").await["id"], second["id"]);

    let (_, full) = app.get(&format!("/api/v1/rollbacks/{id}")).await;
    assert_eq!(
        full["review"]["id"], second["id"],
        "the latest review counts"
    );
    let all = full["reviews"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{full}");
    assert_eq!(all[0]["verdict"], "false_positive");
    assert_eq!(all[0]["superseded_by"], second["id"]);
    assert_eq!(all[1]["ticket_url"], "https://tickets.example.org/INC-42");
    let (_, listed) = app.get("/api/v1/reviews").await;
    assert_eq!(listed["reviews"].as_array().unwrap().len(), 2);
    let (_, current) = app.get("/api/v1/reviews?current=true").await;
    assert_eq!(current["reviews"][0]["id"], second["id"]);
    assert_eq!(current["reviews"].as_array().unwrap().len(), 1);
    let (_, fp) = app.get("/api/v1/reviews?verdict=false_positive").await;
    assert_eq!(fp["reviews"][0]["id"], first["id"]);
    let (_, events) = app.get("/api/v1/rollbacks?unreviewed=true").await;
    assert_eq!(events["events"], json!([]));

    // Roles: viewers, Alertmanager and strangers cannot review.
    for (token, want) in [
        (Some(VIEWER_TOKEN), 403),
        (Some(WEBHOOK_TOKEN), 403),
        (None, 401),
        (Some("not-a-token-at-all-000000"), 401),
    ] {
        let (code, v) = review(&app, &id, json!({"verdict": "drill"}), token).await;
        assert_eq!(code, want, "{token:?}: {v}");
    }
    let (_, after) = app.get("/api/v1/reviews").await;
    assert_eq!(after["reviews"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_field_and_nothing_is_written() {
    let opts = Options {
        timeout: "5s",
        ..auth()
    };
    let Env {
        app,
        sim,
        dir: _dir,
    } = spawn(Scenario::Steady, &opts).await;
    app.first_poll().await;
    let (_, done) = rollback(&app, "for the bad input", false).await;
    let id = done["id"].as_str().unwrap().to_owned();
    let bad = |body: Value| {
        let app = &app;
        let id = id.clone();
        async move { review(app, &id, body, Some(OPS_TOKEN)).await }
    };
    let (code, v) = bad(json!({"verdict": "maybe"})).await;
    assert_eq!(code, 400);
    assert_eq!(
        error_message(&v),
        "verdict \"maybe\" is not allowed; expected one of true_positive, false_positive, drill"
    );
    let (code, v) = bad(json!({"verdict": "false_positive"})).await;
    assert_eq!(code, 400);
    assert!(
        error_message(&v).starts_with("note is required for a false_positive"),
        "{v}"
    );
    let (code, v) = bad(json!({"verdict": "true_positive", "note": "x".repeat(2001)})).await;
    assert_eq!(
        (code, error_message(&v)),
        (400, "note is 2001 characters; at most 2000")
    );
    let (code, v) = bad(json!({"verdict": "drill", "ticket_url": "INC-42"})).await;
    assert_eq!(code, 400);
    assert!(
        error_message(&v).starts_with("ticket_url \"INC-42\""),
        "{v}"
    );
    let (code, v) = bad(json!({"verdict": "drill", "reviewer": "someone else"})).await;
    assert_eq!(code, 400);
    assert!(error_message(&v).contains("reviewer"), "{v}");
    let (code, v) = review(
        &app,
        "no-such-event",
        json!({"verdict": "drill"}),
        Some(OPS_TOKEN),
    )
    .await;
    assert_eq!(code, 404, "{v}");
    assert_eq!(
        error_message(&v),
        "no rollback event with id \"no-such-event\""
    );

    // A restore is no trigger.
    let (code, restored) = app
        .post(
            "/api/v1/restore",
            json!({"reason": "back"}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(code, 200, "{restored}");
    let restore_id = restored["id"].as_str().unwrap();
    let (code, v) = review(
        &app,
        restore_id,
        json!({"verdict": "true_positive"}),
        Some(OPS_TOKEN),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        error_message(&v).contains("only rollbacks are reviewed"),
        "{v}"
    );

    // A rollback still running: 409, and accepted once it has finished.
    sim.put(
        "/v1/sim/scenario",
        json!({"scenario": "slow", "delay_ms": 1500}),
    )
    .await;
    let slow = {
        let (url, http) = (app.url.clone(), app.http.clone());
        tokio::spawn(async move {
            http.post(format!("{url}/api/v1/rollback"))
                .bearer_auth(OPS_TOKEN)
                .json(&json!({"reason": "slow one"}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let running = wait_for("a rollback in flight", LONG, || async {
        app.events().await.into_iter().find(|e| {
            e["reason"] == "slow one"
                && matches!(
                    e["status"].as_str(),
                    Some("pending" | "executing" | "validating")
                )
        })
    })
    .await;
    let running_id = running["id"].as_str().unwrap();
    let (code, v) = review(
        &app,
        running_id,
        json!({"verdict": "true_positive"}),
        Some(OPS_TOKEN),
    )
    .await;
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["error"]["code"], "rollback_in_progress");
    assert!(
        error_message(&v).contains("review it once it has finished"),
        "{v}"
    );
    assert_eq!(slow.await.unwrap(), 200);
    let (code, v) = review(
        &app,
        running_id,
        json!({"verdict": "true_positive"}),
        Some(OPS_TOKEN),
    )
    .await;
    assert_eq!(code, 201, "{v}");

    // Missed degradations: a range in the future or reversed, unknown conditions, no note.
    let now = chrono::Utc::now();
    let t = |mins: i64| (now + chrono::Duration::minutes(mins)).to_rfc3339();
    let missed = |body: Value| {
        let app = &app;
        async move { app.post("/api/v1/missed", body, Some(OPS_TOKEN)).await }
    };
    for (body, starts) in [
        (
            json!({"from": t(-30), "to": t(30), "conditions": ["max_drawdown"], "note": "n"}),
            "to ",
        ),
        (
            json!({"from": t(-10), "to": t(-30), "conditions": ["max_drawdown"], "note": "n"}),
            "from ",
        ),
        (
            json!({"from": t(-30), "to": t(-10), "conditions": ["drawdown"], "note": "n"}),
            "conditions: \"drawdown\"",
        ),
        (
            json!({"from": t(-30), "to": t(-10), "conditions": [], "note": "n"}),
            "conditions must",
        ),
        (
            json!({"from": t(-30), "to": t(-10), "conditions": ["max_drawdown"]}),
            "note is required",
        ),
        (
            json!({"from": "yesterday", "to": t(-10), "conditions": ["max_drawdown"], "note": "n"}),
            "from \"yesterday\"",
        ),
    ] {
        let (code, v) = missed(body.clone()).await;
        assert_eq!(code, 400, "{body}: {v}");
        assert!(error_message(&v).starts_with(starts), "{body}: {v}");
    }
    let (code, _) = app
        .post(
            "/api/v1/missed",
            json!({"from": t(-30), "to": t(-10), "conditions": ["max_drawdown"], "note": "n"}),
            Some(VIEWER_TOKEN),
        )
        .await;
    assert_eq!(code, 403);
    // Nothing half-written: one review (of the finished slow one), no missed degradation.
    let (_, reviews) = app.get("/api/v1/reviews").await;
    assert_eq!(reviews["reviews"].as_array().unwrap().len(), 1, "{reviews}");
    let (_, m) = app.get("/api/v1/missed").await;
    assert_eq!(m["missed_degradations"], json!([]));
    let (code, v) = app.get("/api/v1/rollbacks?unreviewed=maybe").await;
    assert_eq!(code, 400);
    assert_eq!(
        error_message(&v),
        "unreviewed \"maybe\" must be true or false"
    );
}

// ---- the rates from a seeded history ------------------------------------------------------

/// Seeds the history before the daemon opens it: a suppressed trigger 10 days ago reviewed as
/// a false positive, and a degradation missed 12 days ago.
async fn seed_old_history(dir: &Path) {
    let store = Store::open(&dir.join("history.db")).unwrap();
    let at = chrono::Utc::now() - chrono::Duration::days(10);
    let request = EventRequest {
        action: Action::Rollback,
        trigger_type: TriggerType::Watchdog,
        source: "watchdog".into(),
        reason: "overfitting_score 0.52 > 0.5 (critical)".into(),
        actor: "rollbackd".into(),
        dry_run: false,
        alert_names: vec![],
        fingerprints: vec![],
        conditions: vec![],
        mode_before: Some("universal_cycle_4".into()),
        parameters_before: None,
        target_mode: "universal_cycle_4".into(),
        target_parameters: BTreeMap::new(),
    };
    let event = Event::new("old-fp".into(), request, at, EventStatus::Suppressed);
    let detail = TransitionDetail {
        suppressed_reason: Some("already_rolled_back".into()),
        ..Default::default()
    };
    store.insert_event(&event, detail).await.unwrap();
    store
        .record_review(Review {
            id: 0,
            event_id: "old-fp".into(),
            verdict: Verdict::FalsePositive,
            note: Some("a stale overfitting sample".into()),
            ticket_url: None,
            reviewer: "ops".into(),
            reviewed_at: at,
            supersedes: None,
            superseded_by: None,
        })
        .await
        .unwrap();
    let from = chrono::Utc::now() - chrono::Duration::days(12);
    store
        .record_missed(MissedDegradation {
            id: 0,
            from,
            to: from + chrono::Duration::minutes(40),
            conditions: vec!["walk_forward_stability".into()],
            note: "stability sagged between polls".into(),
            recorded_by: "ops".into(),
            recorded_at: from + chrono::Duration::hours(2),
        })
        .await
        .unwrap();
}

/// The value of one series; NaN stays NaN.
fn gauge(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or_else(|| panic!("no series {series}"))
}

fn rate(text: &str, name: &str, window: &str) -> f64 {
    gauge(text, &format!("{name}{{window=\"{window}\"}}"))
}

/// The exact values a seeded history gives, checked on one scrape.
fn assert_seeded_rates(m: &str, d_created: f64) {
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-9, "{what}: {a} != {b}");
    // 7 d: A true positive (after a false positive), B false positive, C drill, D unreviewed,
    // one degradation missed 3 h ago.
    close(rate(m, "rollback_false_positive_rate", "7d"), 0.5, "fp 7d");
    close(rate(m, "rollback_true_positive_rate", "7d"), 0.5, "tp 7d");
    close(
        rate(m, "recovery_validation_success_rate", "7d"),
        1.0,
        "validation 7d",
    );
    close(
        rate(m, "rollback_documentation_compliance_ratio", "7d"),
        0.5,
        "documented 7d",
    );
    close(
        rate(m, "rollback_unreviewed_executed", "7d"),
        1.0,
        "unreviewed 7d",
    );
    close(
        rate(m, "rollback_missed_degradations", "7d"),
        1.0,
        "missed 7d",
    );
    // 30 d adds the seeded false positive and the seeded missed degradation.
    close(
        rate(m, "rollback_false_positive_rate", "30d"),
        2.0 / 3.0,
        "fp 30d",
    );
    close(
        rate(m, "rollback_true_positive_rate", "30d"),
        1.0 / 3.0,
        "tp 30d",
    );
    close(
        rate(m, "rollback_missed_degradations", "30d"),
        2.0,
        "missed 30d",
    );
    for (verdict, want7, want30) in [
        ("true_positive", 1.0, 1.0),
        ("false_positive", 1.0, 2.0),
        ("drill", 1.0, 1.0),
        ("unreviewed", 1.0, 1.0),
    ] {
        for (w, want) in [("7d", want7), ("30d", want30)] {
            let s = format!("rollback_trigger_episodes{{window=\"{w}\",verdict=\"{verdict}\"}}");
            close(gauge(m, &s), want, &s);
        }
    }
    for name in [
        "rollback_incident_response_seconds",
        "rollback_recovery_seconds",
    ] {
        for stat in ["median", "max"] {
            let s = format!("{name}{{window=\"30d\",stat=\"{stat}\"}}");
            let v = gauge(m, &s);
            assert!(v.is_finite() && (0.0..60.0).contains(&v), "{s} = {v}");
        }
    }
    close(
        gauge(m, "rollback_unreviewed_oldest_timestamp_seconds"),
        d_created,
        "oldest unreviewed",
    );
}

/// Unix seconds of an event's `created_at`, as the metrics carry it.
fn unix(event: &Value) -> f64 {
    let t: chrono::DateTime<chrono::Utc> = event["created_at"].as_str().unwrap().parse().unwrap();
    t.timestamp_millis() as f64 / 1000.0
}

/// A, B, C, D as `assert_seeded_rates` describes them; returns D.
async fn live_episodes(app: &TestApp) -> Value {
    let (code, a) = rollback(app, "A: drawdown spike", false).await;
    assert_eq!(code, 200, "{a}");
    let (code, b) = rollback(app, "B: again while rolled back", false).await;
    assert_eq!(code, 409, "{b}");
    let b = app
        .events()
        .await
        .into_iter()
        .find(|e| e["status"] == "suppressed")
        .unwrap();
    let (code, c) = rollback(app, "C: monthly drill", true).await;
    assert_eq!(code, 200, "{c}");
    let (code, r) = app
        .post(
            "/api/v1/restore",
            json!({"reason": "fixed"}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(code, 200, "{r}");
    let (code, d) = rollback(app, "D: drawdown again", false).await;
    assert_eq!(code, 200, "{d}");
    for (id, body, token) in [
        (
            &a,
            json!({"verdict": "false_positive", "note": "first look"}),
            OPS_TOKEN,
        ),
        (
            &a,
            json!({"verdict": "true_positive", "note": "confirmed real"}),
            ADMIN_TOKEN,
        ),
        (
            &b,
            json!({"verdict": "false_positive", "note": "condition kept breaching on Cycle 4"}),
            OPS_TOKEN,
        ),
        (&c, json!({"verdict": "drill"}), OPS_TOKEN),
    ] {
        let (code, v) = review(app, id["id"].as_str().unwrap(), body, Some(token)).await;
        assert_eq!(code, 201, "{v}");
    }
    let now = chrono::Utc::now();
    let (code, v) = app
        .post(
            "/api/v1/missed",
            json!({"from": (now - chrono::Duration::hours(3)).to_rfc3339(),
                   "to": (now - chrono::Duration::hours(2)).to_rfc3339(),
                   "conditions": ["max_drawdown", "consecutive_losses"],
                   "note": "losses piled up below the thresholds"}),
            Some(OPS_TOKEN),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["recorded_by"], "ops");
    d
}

#[tokio::test]
async fn no_reviews_yet_is_no_data_on_metrics_and_in_the_report() {
    let Env {
        app,
        sim: _sim,
        dir: _dir,
    } = spawn(Scenario::Steady, &auth()).await;
    app.first_poll().await;
    let (code, _) = rollback(&app, "unreviewed", false).await;
    assert_eq!(code, 200);
    let m = wait_for("the rates to count the rollback", LONG, || async {
        let m = app.metrics().await;
        (rate(&m, "rollback_unreviewed_executed", "7d") == 1.0).then_some(m)
    })
    .await;
    for w in ["7d", "30d"] {
        for name in [
            "rollback_false_positive_rate",
            "rollback_true_positive_rate",
        ] {
            assert!(
                rate(&m, name, w).is_nan(),
                "{name} {w} is no data, not 0 or 1"
            );
        }
        assert_eq!(rate(&m, "rollback_documentation_compliance_ratio", w), 0.0);
        assert_eq!(rate(&m, "recovery_validation_success_rate", w), 1.0);
    }
    let (_, report) = app.get("/api/v1/report?since=7d").await;
    let fp = report["success_metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["metric"] == "false_positive_rate")
        .unwrap();
    assert_eq!(
        (&fp["value"], &fp["limit_met"]),
        (&Value::Null, &Value::Null),
        "{fp}"
    );
    assert_eq!(fp["basis"], "no reviewed triggers in the period");
}

#[tokio::test]
async fn rates_are_exact_from_a_seeded_history_and_survive_a_restart() {
    let sim = TestSim::spawn(Scenario::Steady).await;
    let dir = tempfile::tempdir().unwrap();
    seed_old_history(dir.path()).await;
    let app = TestApp::start(&sim.url, dir.path(), &auth()).await;
    let m = app.metrics().await;
    assert_eq!(
        rate(&m, "rollback_false_positive_rate", "30d"),
        1.0,
        "the seeded history, on the first scrape"
    );
    assert!(
        rate(&m, "rollback_false_positive_rate", "7d").is_nan(),
        "10 days ago is not in 7 d"
    );
    assert_eq!(
        rate(&m, "rollback_true_positive_rate", "30d"),
        0.0,
        "one missed, none caught"
    );
    assert!(gauge(&m, "rollback_unreviewed_oldest_timestamp_seconds").is_nan());
    app.first_poll().await;
    let d = live_episodes(&app).await;
    // The missed degradation's answer came after the rates were computed again.
    assert_seeded_rates(&app.metrics().await, unix(&d));
    app.stop().await;

    let app = TestApp::start(&sim.url, dir.path(), &auth()).await;
    assert_seeded_rates(&app.metrics().await, unix(&d));

    // The report over the same history: 5 episodes in 30 d, 4 in 7 d.
    let (code, r) = app.get_as("/api/v1/report?since=30d", None).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["format_version"], 1);
    assert_eq!(
        r["summary"],
        json!({"episodes": 5, "executed": 2, "suppressed": 2, "dry_runs": 1,
               "verdicts": {"true_positive": 1, "false_positive": 2, "drill": 1, "unreviewed": 1},
               "missed_degradations": 2})
    );
    let metric_line = |key: &str| {
        r["success_metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["metric"] == key)
            .unwrap()
            .clone()
    };
    let fp = metric_line("false_positive_rate");
    assert!((fp["value"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        (&fp["limit"], &fp["target"], &fp["limit_met"]),
        (&json!(0.05), &json!(0.02), &json!(false))
    );
    assert_eq!(metric_line("documentation_compliance")["value"], 0.5);
    assert_eq!(
        metric_line("recovery_validation_success")["limit_met"],
        true
    );
    let incidents = r["incidents"].as_array().unwrap();
    assert_eq!(incidents[0]["event_id"], "old-fp");
    let a = &incidents[1];
    assert_eq!(a["review"]["verdict"], "true_positive");
    assert_eq!(a["review"]["reviewer"], "boss");
    assert_eq!(a["superseded_reviews"], 1);
    assert_eq!(a["actor"], "ops");
    assert_eq!(a["validation"]["passed"], true);
    assert_eq!(
        a["conditions"].as_array().unwrap().len(),
        4,
        "values vs thresholds at trigger time"
    );
    let last = &incidents[4];
    assert_eq!(last["event_id"], d["id"]);
    assert_eq!(last["review"], Value::Null);
    let steps: Vec<&str> = last["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["pending", "executing", "validating", "completed"]);
    assert!(last["response_seconds"].as_f64().unwrap() >= 0.0);
    assert!(last["execution_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(r["missed_degradations"].as_array().unwrap().len(), 2);
    let (_, week) = app.get("/api/v1/report?since=7d").await;
    assert_eq!(week["summary"]["episodes"], 4);

    let resp = app
        .http
        .get(format!("{}/api/v1/report?since=30d&format=md", app.url))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    let md = resp.text().await.unwrap();
    assert!(md.starts_with("# rollbackd incident report\n"), "{md}");
    assert!(
        md.contains("| False positive rate | 66.7 % | < 5 % | < 2 % | NOT met | NOT met |"),
        "{md}"
    );
    assert!(md.contains("- Review: **not reviewed yet**"), "{md}");
    let resp = app
        .http
        .get(format!("{}/api/v1/report?since=30d&format=csv", app.url))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = resp.text().await.unwrap();
    assert_eq!(
        csv.split("\r\n")
            .filter(|l| l.starts_with("old-fp,"))
            .count(),
        1,
        "{csv}"
    );
    for (q, field) in [
        ("since=3x", "since \"3x\""),
        ("format=pdf", "format \"pdf\""),
        ("until=2020-01-01T00:00:00Z", "since "),
    ] {
        let (code, v) = app.get(&format!("/api/v1/report?{q}")).await;
        assert_eq!(code, 400, "{q}: {v}");
        assert!(error_message(&v).starts_with(field), "{q}: {v}");
    }
    app.stop().await;
}

// ---- the CLI on the real binary -------------------------------------------------------------

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn cli(args: &[&str]) -> Run {
    let out = tokio::time::timeout(
        LONG,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
            .args(args)
            .env_remove("ROLLBACKD_TOKEN")
            .env_remove("ROLLBACKD_URL")
            .output(),
    )
    .await
    .expect("the CLI returns in time")
    .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn the_cli_reviews_lists_the_unreviewed_records_a_miss_and_reports() {
    let Env {
        app,
        sim: _sim,
        dir: _dir,
    } = spawn(Scenario::Steady, &auth()).await;
    app.first_poll().await;
    let (_, e) = rollback(&app, "via the CLI", false).await;
    let id = e["id"].as_str().unwrap();
    let url = app.url.as_str();
    let r = cli(&["history", "--unreviewed", "--url", url]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(id), "{}", r.stdout);

    let r = cli(&[
        "review",
        id,
        "--verdict",
        "true_positive",
        "--note",
        "real",
        "--url",
        url,
        "--token",
        VIEWER_TOKEN,
    ])
    .await;
    assert_eq!(r.code, Some(3), "a viewer cannot review: {}", r.stderr);
    let r = cli(&[
        "review",
        id,
        "--verdict",
        "false_positive",
        "--url",
        url,
        "--token",
        OPS_TOKEN,
    ])
    .await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("note is required for a false_positive"),
        "{}",
        r.stderr
    );
    let r = cli(&[
        "review",
        id,
        "--verdict",
        "true_positive",
        "--note",
        "real drawdown",
        "--ticket",
        "https://tickets.example.org/INC-9",
        "--url",
        url,
        "--token",
        OPS_TOKEN,
    ])
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("verdict   true_positive") && r.stdout.contains("reviewer  ops"),
        "{}",
        r.stdout
    );
    let r = cli(&[
        "review",
        "nope",
        "--verdict",
        "drill",
        "--url",
        url,
        "--token",
        OPS_TOKEN,
    ])
    .await;
    assert_eq!(r.code, Some(2), "404 is a usage error: {}", r.stderr);
    let r = cli(&["history", "--unreviewed", "--url", url]).await;
    assert_eq!(r.code, Some(0));
    assert_eq!(r.stdout, "no rollbacks recorded that match the filters\n");

    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(2)).to_rfc3339();
    let to = (now - chrono::Duration::hours(1)).to_rfc3339();
    let r = cli(&[
        "missed",
        "--from",
        &from,
        "--to",
        &to,
        "--condition",
        "max_drawdwn",
        "--note",
        "n",
        "--url",
        url,
        "--token",
        OPS_TOKEN,
    ])
    .await;
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("conditions: \"max_drawdwn\" is not a configured condition"),
        "{}",
        r.stderr
    );
    let r = cli(&[
        "missed",
        "--from",
        &from,
        "--to",
        &to,
        "--condition",
        "max_drawdown",
        "--note",
        "slow bleed",
        "--url",
        url,
        "--token",
        OPS_TOKEN,
    ])
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("conditions          max_drawdown"),
        "{}",
        r.stdout
    );

    let r = cli(&["report", "--since", "7d", "--url", url]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.starts_with("# rollbackd incident report"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("| True positive rate | 50 % | > 95 % | - | NOT met | - |"),
        "{}",
        r.stdout
    );
    let r = cli(&["report", "--format", "csv", "--url", url]).await;
    assert!(
        r.stdout.starts_with("event_id,created_at,kind"),
        "{}",
        r.stdout
    );
    let r = cli(&["report", "--json", "--url", url]).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["summary"]["verdicts"]["true_positive"], 1);
}

// ---- the console in real Chromium -----------------------------------------------------------

#[tokio::test]
async fn the_console_reviews_a_history_row_and_shows_the_unreviewed_count() {
    let Env {
        app,
        sim: _sim,
        dir: _dir,
    } = spawn(Scenario::Steady, &auth()).await;
    app.first_poll().await;
    let (_, first) = rollback(&app, "first, reviewed from the console", true).await;
    let (_, second) = rollback(&app, "second, reviewed elsewhere", true).await;
    let js_file = reqwest::get(format!("{}/console/reviews.js", app.url))
        .await
        .unwrap();
    assert!(js_file.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let html = reqwest::get(format!("{}/", app.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<script src=\"/console/reviews.js\" defer></script>"));
    let b = browser().await;
    let c = &b.client;
    c.goto(&format!("{}/", app.url)).await.unwrap();
    type_into(c, "token", OPS_TOKEN).await;
    click(c, "save-token").await;
    wait_js(
        c,
        "two unreviewed",
        "document.getElementById('unreviewed-count').textContent === '2'",
    )
    .await;
    let row = |id: &str| {
        format!("document.querySelector('#history .history-item[data-event-id=\"{id}\"]')")
    };
    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();
    wait_js(
        c,
        "a review control on the row",
        &format!("{}.querySelector('.review-control select')", row(first_id)),
    )
    .await;
    // A false positive needs a note: the control says so and sends nothing.
    js(c, &format!("(() => {{ const r = {}; r.querySelector('.review-control select').value = 'false_positive'; r.querySelector('.review-control button').click(); return true; }})()", row(first_id))).await;
    wait_js(
        c,
        "the note asked for",
        &format!(
            "{}.querySelector('.review-message').textContent.includes('note')",
            row(first_id)
        ),
    )
    .await;
    let (_, none) = app.get("/api/v1/reviews").await;
    assert_eq!(none["reviews"], json!([]));
    js(c, &format!("(() => {{ const r = {}; r.querySelector('.review-control input').value = '<b>not</b> a real spike'; r.querySelector('.review-control button').click(); return true; }})()", row(first_id))).await;
    wait_js(
        c,
        "the verdict on the row",
        &format!(
            "{}.querySelector('.review-verdict').textContent.includes('false_positive')",
            row(first_id)
        ),
    )
    .await;
    wait_js(
        c,
        "one unreviewed left",
        "document.getElementById('unreviewed-count').textContent === '1'",
    )
    .await;
    let (_, reviews) = app.get("/api/v1/reviews").await;
    assert_eq!(reviews["reviews"][0]["reviewer"], "ops");
    assert_eq!(reviews["reviews"][0]["note"], "<b>not</b> a real spike");
    assert_eq!(
        js(c, "document.querySelectorAll('#history b').length").await,
        0,
        "notes stay text"
    );
    // A review made elsewhere arrives over the stream.
    let (code, _) = review(
        &app,
        second_id,
        json!({"verdict": "drill"}),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(code, 201);
    wait_js(
        c,
        "the streamed verdict",
        &format!(
            "{}.querySelector('.review-verdict').textContent.includes('drill')",
            row(second_id)
        ),
    )
    .await;
    wait_js(
        c,
        "none unreviewed",
        "document.getElementById('unreviewed-count').textContent === '0'",
    )
    .await;
    b.client.close().await.unwrap();
}

// ---- the shipped files read the new series -------------------------------------------------

#[test]
fn the_slo_dashboard_and_the_alerts_read_the_review_rates() {
    use common::files::{all_panels, dashboard_exprs, load_dashboard, read, repo};
    let path = repo().join("grafana/dashboards/rollback-slos.json");
    let d = load_dashboard(&path);
    let exprs: Vec<String> = dashboard_exprs(&path).into_iter().map(|e| e.expr).collect();
    for series in [
        "rollback_false_positive_rate{instance=~\"$instance\", window=\"30d\"}",
        "rollback_false_positive_rate{instance=~\"$instance\", window=\"7d\"}",
        "rollback_true_positive_rate{instance=~\"$instance\", window=\"30d\"}",
        "recovery_validation_success_rate{instance=~\"$instance\", window=\"30d\"}",
        "rollback_incident_response_seconds{instance=~\"$instance\", window=\"30d\", stat=\"max\"}",
        "rollback_recovery_seconds{instance=~\"$instance\", window=\"30d\", stat=\"max\"}",
        "rollback_documentation_compliance_ratio{instance=~\"$instance\", window=\"30d\"}",
        "rollback_trigger_episodes{instance=~\"$instance\", window=\"30d\"}",
        "rollback_unreviewed_executed{instance=~\"$instance\", window=\"30d\"}",
    ] {
        assert!(
            exprs.iter().any(|e| e == series),
            "the SLO dashboard does not show {series}"
        );
    }
    // The false-positive row starts with the rate from reviews, coloured at 2 % and 5 %.
    let panels = all_panels(&d);
    let row = panels
        .iter()
        .position(|p| {
            p["type"] == "row" && p["title"].as_str().unwrap().starts_with("Trigger tuning")
        })
        .unwrap();
    let first = panels[row + 1];
    assert!(
        first["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .starts_with("rollback_false_positive_rate"),
        "{first}"
    );
    let steps: Vec<f64> = first["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["value"].as_f64())
        .collect();
    assert_eq!(steps, [0.02, 0.05]);
    let rules = read("alerting/rules/reviews.yml");
    for expr in [
        "rollback_false_positive_rate{window=\"30d\"} > 0.05",
        "(time() - rollback_unreviewed_oldest_timestamp_seconds) > 86400",
        "recovery_validation_success_rate{window=\"30d\"} < 0.90",
    ] {
        assert!(
            rules.contains(&format!("expr: {expr}")),
            "reviews.yml lacks {expr}"
        );
    }
    assert!(
        rollbackd::rules::RULE_FILES
            .iter()
            .any(|(name, _)| *name == "reviews.yml"),
        "render-rules ships it"
    );
}
