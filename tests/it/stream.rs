//! The live stream: state first, then a rollback's progress; subscribers never hold the engine
//! up, one that stops reading is cut off, and a drain closes with a close frame.

use crate::harness::*;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const LONG: Duration = Duration::from_secs(8);

#[tokio::test]
async fn stream_sends_state_first_then_rollback_progress_and_the_validation() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let mut ws = app.stream().await;
    let first = ws.next_json().await;
    assert_eq!(first["type"], "status", "{first}");
    assert_eq!(first["data"]["mode"], "session_targeted");
    let second = ws.next_json().await;
    assert_eq!(second["type"], "trigger_update", "{second}");
    assert_eq!(second["data"]["conditions"].as_array().unwrap().len(), 4);

    let r = app.rollback("watched live").await.ok();
    let id = r["id"].as_str().unwrap();
    let mut statuses = Vec::new();
    let mut validation = None;
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline
        && (statuses.last().map(String::as_str) != Some("completed") || validation.is_none())
    {
        let m = ws.next_json().await;
        match m["type"].as_str().unwrap() {
            "rollback_event" if m["data"]["id"] == id => {
                statuses.push(m["data"]["status"].as_str().unwrap().to_string())
            }
            "validation" if m["data"]["event_id"] == id => validation = Some(m["data"].clone()),
            "status" | "trigger_update" | "rollback_event" | "validation" => {}
            other => panic!("unknown message type {other}"),
        }
    }
    assert_eq!(
        statuses,
        ["pending", "executing", "validating", "completed"]
    );
    let v = validation.expect("a validation message");
    assert_eq!(v["kind"], "initial");
    assert_eq!(v["score"], 100.0);
}

/// A missed degradation an operator records is one `missed_degradation` message, the record
/// exactly as stored and answered.
#[tokio::test]
async fn stream_sends_a_recorded_missed_degradation_as_it_was_stored() {
    let app = TestApp::builder().manual().auth().spawn_polled().await;
    let mut ws = app.stream().await;
    assert_eq!(ws.next_json().await["type"], "status");
    let now = chrono::Utc::now();
    let body = serde_json::json!({
        "from": (now - chrono::Duration::hours(3)).to_rfc3339(),
        "to": (now - chrono::Duration::hours(2)).to_rfc3339(),
        "conditions": ["max_drawdown", "consecutive_losses"],
        "note": "losses piled up between polls, below the thresholds",
    });
    let r = app.with_token(OPS_TOKEN).missed(&body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let streamed = ws.next_of("missed_degradation").await;
    assert_eq!(streamed, r.json, "the stream carries the stored record");
    assert_eq!(streamed["recorded_by"], "ops");
    assert_eq!(
        streamed["conditions"],
        serde_json::json!(["max_drawdown", "consecutive_losses"])
    );
    let listed = app.list_missed("").await.ok();
    assert_eq!(
        listed["missed_degradations"][0]["id"], streamed["id"],
        "{listed}"
    );
}

/// A freeze started and ended is a `holds` message each time, with the window or without it.
#[tokio::test]
async fn stream_sends_a_holds_message_when_a_freeze_starts_and_ends() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let mut ws = app.stream().await;
    assert_eq!(ws.next_json().await["type"], "status");
    let r = app
        .post(
            "/api/v1/freeze",
            &serde_json::json!({"duration": "30m", "reason": "CPI release", "name": "cpi"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let holds = next_of(&mut ws, "holds").await;
    assert_eq!(holds["data"]["freeze"]["name"], "cpi", "{holds}");
    assert_eq!(holds["data"]["freeze"]["reason"], "CPI release", "{holds}");
    assert_eq!(holds["data"]["automation_mode"], "auto", "{holds}");
    let r = app
        .post(
            "/api/v1/freeze/end",
            &serde_json::json!({"reason": "released early"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let holds = next_of(&mut ws, "holds").await;
    assert!(holds["data"]["freeze"].is_null(), "{holds}");
}

/// The next message of `kind`, skipping the periodic ones (bounded).
async fn next_of(ws: &mut crate::harness::stream::Stream, kind: &str) -> serde_json::Value {
    let deadline = Instant::now() + LONG;
    loop {
        assert!(Instant::now() < deadline, "no {kind} message");
        let m = ws.next_json().await;
        if m["type"] == kind {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_idle_subscribers_do_not_hold_up_a_rollback() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let _idle_1 = app.stream().await;
    let _idle_2 = app.stream().await;
    let r = tokio::time::timeout(Duration::from_secs(3), app.rollback("with idle watchers"))
        .await
        .expect("the rollback is not held up by subscribers that never read");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "completed");
    // The engine keeps polling and publishing while they sit there.
    let before = app.engine_triggers()["updated_at"].clone();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_ne!(app.engine_triggers()["updated_at"], before);
}

/// A subscriber that stops reading while the engine keeps publishing is cut off (lagged behind
/// the broadcast, or its send timed out) instead of being buffered for without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_a_subscriber_that_stops_reading_is_disconnected() {
    let app = TestApp::builder().manual().spawn_polled().await;
    // A tiny receive window so the daemon's writes back up quickly.
    let mut ws = app.stream_with_recv_buffer(4096).await;

    // Each dry run publishes its event and the status; far more than the stream's buffer.
    const DRY_RUNS: usize = 1500;
    let reason = "x".repeat(480);
    let (a, reason) = (&app, reason.as_str());
    futures_util::stream::iter(0..DRY_RUNS)
        .for_each_concurrent(16, |_| async move {
            let r = a.dry_run(reason).await;
            assert_eq!(r.status, 200, "the engine keeps answering");
        })
        .await;

    // Now read what was delivered: the stream ends before it has everything.
    let mut events = 0;
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(frame) = ws.next_frame().await {
            match frame {
                Ok(Message::Text(t)) if t.as_str().contains("\"rollback_event\"") => events += 1,
                Ok(Message::Close(f)) => return format!("closed: {f:?}"),
                Ok(_) => {}
                Err(err) => return format!("error: {err}"),
            }
        }
        "ended".to_owned()
    })
    .await
    .expect("the slow subscriber is disconnected, not kept");
    assert!(
        events < DRY_RUNS,
        "{events} of {DRY_RUNS} events reached a client that did not read ({ended})"
    );
    eprintln!("slow subscriber: {events} of {DRY_RUNS} events, then {ended}");
}

#[tokio::test]
async fn stream_closes_with_a_close_frame_when_the_daemon_drains() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let mut ws = app.stream().await;
    assert_eq!(ws.next_json().await["type"], "status");
    let stop = tokio::spawn(app.stop());
    let deadline = Instant::now() + LONG;
    let code = loop {
        assert!(Instant::now() < deadline, "no close frame");
        match tokio::time::timeout(LONG, ws.next_frame())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(Message::Close(None))) => panic!("a close frame without a code"),
            Some(Ok(_)) => continue,
            other => panic!("the stream ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(code, 1001, "going away");
    tokio::time::timeout(LONG, stop)
        .await
        .expect("drained")
        .unwrap();
}
