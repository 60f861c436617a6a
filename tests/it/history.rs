//! The history routes: rollbacks newest first, paged and filtered; one event with its
//! transitions and validations; validations paged; bad queries refused.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

fn ids_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn history_pages_newest_first_and_filters() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = app.dry_run(&format!("rehearsal {i}")).await.ok();
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let middle = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = app.rollback("real").await.ok();
    ids.push(r["id"].as_str().unwrap().to_string());
    assert_eq!(app.rollback("again").await.status, 409);
    let suppressed = app.events("status=suppressed").await;
    ids.push(suppressed[0]["id"].as_str().unwrap().to_string());
    ids.reverse(); // newest first

    assert_eq!(ids_of(&app.events("").await), ids, "newest first");

    // Follow next_before through pages of 2.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    for _ in 0..10 {
        let page = app.rollbacks(&query).await.ok();
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        seen.extend(ids_of(events));
        match page["next_before"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), events.last().and_then(|e| e["id"].as_str()));
                query = format!("limit=2&before={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ids, "paging visits every event once, in order");
    let page = app.rollbacks("limit=50").await.json;
    assert_eq!(
        page["next_before"],
        Value::Null,
        "no next page when all fit"
    );
    let page = app.rollbacks("").await.json;
    assert_eq!(
        page["events"].as_array().unwrap().len(),
        7,
        "default limit 50"
    );

    let a = &app;
    let ids_where = |query: String| async move { ids_of(&a.events(&query).await) };
    assert_eq!(ids_where("status=dry_run".into()).await, ids[2..].to_vec());
    assert_eq!(
        ids_where("status=completed".into()).await,
        vec![ids[1].clone()]
    );
    assert_eq!(
        ids_where("status=suppressed".into()).await,
        vec![ids[0].clone()]
    );
    assert_eq!(app.events("trigger_type=manual").await.len(), 7);
    assert!(app.events("trigger_type=watchdog").await.is_empty());
    assert!(app.events("trigger_type=alertmanager").await.is_empty());
    let m = middle.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(ids_where(format!("since={m}")).await, ids[..2].to_vec());
    assert_eq!(ids_where(format!("until={m}")).await, ids[2..].to_vec());
    assert_eq!(
        ids_where(format!("until={m}&status=dry_run&limit=2")).await,
        ids[2..4].to_vec()
    );
    // An offset written with +00:00 (percent-encoded) means the same instant.
    let plus = middle.format("%Y-%m-%dT%H:%M:%S%.3f%%2B00:00").to_string();
    assert_eq!(ids_where(format!("since={plus}")).await, ids[..2].to_vec());
    assert_eq!(
        ids_where(format!("before={}", ids[1])).await,
        ids[2..].to_vec()
    );
}

#[tokio::test]
async fn history_rejects_bad_queries_with_400() {
    let app = TestApp::builder().manual().spawn_polled().await;
    for (q, needle) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("sort=asc", "sort"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("trigger_type=cron", "trigger_type"),
        ("status=done", "status"),
        ("before=no-such-event", "before"),
    ] {
        let m = app.rollbacks(q).await.error(400, "invalid_request");
        assert!(m.contains(needle), "{q}: {m}");
    }
    for (q, needle) in [
        ("limit=0", "limit"),
        ("before=abc", "before"),
        ("kind=initial", "kind"),
    ] {
        let m = app.validations(q).await.error(400, "invalid_request");
        assert!(m.contains(needle), "{q}: {m}");
    }
}

#[tokio::test]
async fn an_event_shows_its_transitions_and_validations_and_validations_page() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let r = app.rollback("for the record").await.ok();
    let id = r["id"].as_str().unwrap().to_string();
    // The stability watch (1 s window in tests) adds a second validation.
    let of_event = format!("event_id={id}");
    let runs = wait_until(
        "the stability validation",
        Duration::from_secs(8),
        || async {
            let v = app.validations(&of_event).await.json;
            let runs = v["validations"].as_array()?.clone();
            (runs.len() == 2).then_some(runs)
        },
    )
    .await;
    assert_eq!(runs[0]["kind"], "stability", "newest first: {runs:?}");
    assert_eq!(runs[1]["kind"], "initial");
    for run in &runs {
        assert_eq!(run["event_id"], id.as_str());
        assert_eq!(run["passed"], true, "{run}");
        assert_eq!(run["pass_score"], 85.0);
        assert!(run["id"].as_i64().is_some());
        assert!(run["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"].is_string()
                && c["weight"].is_number()
                && c["passed"].is_boolean()
                && c["detail"].is_string()));
    }
    assert_eq!(runs[1]["score"], 100.0);
    assert!(
        runs[0]["note"].as_str().unwrap().contains("stable"),
        "{}",
        runs[0]
    );

    let ev = app.rollback_by_id(&id).await.ok();
    assert_eq!(
        pluck(&ev["transitions"], "status"),
        ["pending", "executing", "validating", "completed"]
    );
    assert!(ev["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["at"].is_string()));
    let kinds = pluck(&ev["validations"], "kind");
    assert_eq!(kinds.len(), 2, "{ev}");
    assert!(kinds.contains(&"initial") && kinds.contains(&"stability"));
    // The list does not carry them.
    let listed = &app.events("").await[0];
    assert!(
        listed.get("transitions").is_none() && listed.get("validations").is_none(),
        "{listed}"
    );

    // Paging validations: limit, before, next_before.
    let v = app.validations("limit=1").await.json;
    let first = &v["validations"].as_array().unwrap()[0];
    assert_eq!(first["id"], runs[0]["id"]);
    assert_eq!(v["next_before"], runs[0]["id"]);
    let v = app
        .validations(&format!("limit=1&before={}", v["next_before"]))
        .await
        .json;
    assert_eq!(v["validations"].as_array().unwrap()[0]["id"], runs[1]["id"]);
    let v = app
        .validations(&format!("before={}", runs[1]["id"]))
        .await
        .json;
    assert_eq!(v["validations"], json!([]));
    assert_eq!(v["next_before"], Value::Null);
    let v = app.validations("event_id=someone-else").await.json;
    assert_eq!(v["validations"], json!([]));
}
