//! Was each trigger right? Reviews, missed degradations, the success rates exported from the
//! durable history, and the incident report, against a real daemon and simulator (and the
//! real binary for the CLI, real headless Chromium for the console).

use crate::harness::api::Reply;
use crate::harness::app::Builder;
use crate::harness::binary::cli;
use crate::harness::browser::{browser, click, js, type_into, wait_js};
use crate::harness::dashboards::{all_panels, dashboard_exprs, load_dashboard};
use crate::harness::files::{read, repo};
use crate::harness::library::{seed_reviewed_history, shipped_rule_files};
use crate::harness::metrics::Metrics;
use crate::harness::*;
use rollbackd::domain::review::{Comparison, Measure, CRITERIA};
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);

/// Tokens on, automatic rollback off.
fn auth() -> Builder {
    TestApp::builder().auth().manual()
}

/// The message of a 400 `invalid_request` answer.
#[track_caller]
fn bad_request(r: &Reply) -> String {
    r.error(400, "invalid_request")
}

#[tokio::test]
async fn a_review_is_streamed_superseded_by_a_later_one_and_both_stay_readable() {
    let app = auth().spawn_polled().await;
    let ops = app.with_token(OPS_TOKEN);
    let boss = app.with_token(ADMIN_TOKEN);
    let event = ops.rollback("drawdown spike on desk 3").await.ok();
    let id = event["id"].as_str().unwrap().to_owned();
    assert_eq!(event["review"], Value::Null, "unreviewed at first");
    let mut ws = app.stream().await;

    let r = ops
        .review(
            &id,
            &json!({"verdict": "false_positive", "note": "looked like a bad tick"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.json;
    assert_eq!(
        first["reviewer"], "ops",
        "the reviewer is the token's actor"
    );
    assert_eq!(first["supersedes"], Value::Null);
    let streamed = ws.next_of("review").await;
    assert_eq!(streamed["id"], first["id"]);
    assert_eq!(streamed["event_id"], id.as_str());

    let r = boss
        .review(
            &id,
            &json!({"verdict": "true_positive", "note": "real: desk 3 lost 5.2 %",
                    "ticket_url": "https://tickets.example.org/INC-42"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let second = r.json;
    assert_eq!(second["reviewer"], "boss");
    assert_eq!(second["supersedes"], first["id"]);
    assert_eq!(ws.next_of("review").await["id"], second["id"]);

    let full = app.rollback_by_id(&id).await.ok();
    assert_eq!(
        full["review"]["id"], second["id"],
        "the latest review counts"
    );
    let all = full["reviews"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{full}");
    assert_eq!(all[0]["verdict"], "false_positive");
    assert_eq!(all[0]["superseded_by"], second["id"]);
    assert_eq!(all[1]["ticket_url"], "https://tickets.example.org/INC-42");
    let listed = app.reviews("").await.ok();
    assert_eq!(listed["reviews"].as_array().unwrap().len(), 2);
    let current = app.reviews("current=true").await.ok();
    assert_eq!(current["reviews"][0]["id"], second["id"]);
    assert_eq!(current["reviews"].as_array().unwrap().len(), 1);
    let fp = app.reviews("verdict=false_positive").await.ok();
    assert_eq!(fp["reviews"][0]["id"], first["id"]);
    assert_eq!(app.events("unreviewed=true").await, Vec::<Value>::new());

    // Roles: viewers, Alertmanager and strangers cannot review.
    let drill = json!({"verdict": "drill"});
    for token in [VIEWER_TOKEN, WEBHOOK_TOKEN] {
        app.with_token(token)
            .review(&id, &drill)
            .await
            .error(403, "forbidden");
    }
    app.review(&id, &drill).await.error(401, "unauthorized");
    app.with_token("not-a-token-at-all-000000")
        .review(&id, &drill)
        .await
        .error(401, "unauthorized");
    let after = app.reviews("").await.ok();
    assert_eq!(after["reviews"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_field_and_nothing_is_written() {
    // More than the default ten writes at once by ops: most are refused, all are counted.
    let app = auth()
        .timeout("5s")
        .append_yaml("limits: { write_burst: 50 }\n")
        .spawn_polled()
        .await;
    let ops = app.with_token(OPS_TOKEN);
    let done = ops.rollback("for the bad input").await.ok();
    let id = done["id"].as_str().unwrap().to_owned();
    let bad = |body: Value| {
        let (ops, id) = (&ops, &id);
        async move { bad_request(&ops.review(id, &body).await) }
    };
    assert_eq!(
        bad(json!({"verdict": "maybe"})).await,
        "verdict \"maybe\" is not allowed; expected one of true_positive, false_positive, drill"
    );
    let m = bad(json!({"verdict": "false_positive"})).await;
    assert!(
        m.starts_with("note is required for a false_positive"),
        "{m}"
    );
    assert_eq!(
        bad(json!({"verdict": "true_positive", "note": "x".repeat(2001)})).await,
        "note is 2001 characters; at most 2000"
    );
    let m = bad(json!({"verdict": "drill", "ticket_url": "INC-42"})).await;
    assert!(m.starts_with("ticket_url \"INC-42\""), "{m}");
    let m = bad(json!({"verdict": "drill", "reviewer": "someone else"})).await;
    assert!(m.contains("reviewer"), "{m}");
    let m = ops
        .review("no-such-event", &json!({"verdict": "drill"}))
        .await
        .error(404, "not_found");
    assert_eq!(m, "no rollback event with id \"no-such-event\"");

    // A restore is no trigger.
    let restored = app.with_token(ADMIN_TOKEN).restore("back").await.ok();
    let restore_id = restored["id"].as_str().unwrap();
    let m = bad_request(
        &ops.review(restore_id, &json!({"verdict": "true_positive"}))
            .await,
    );
    assert!(m.contains("only rollbacks are reviewed"), "{m}");

    // A rollback still running: 409, and accepted once it has finished.
    app.sim.set_delay_ms(1500).await;
    let slow = {
        let ops = ops.clone();
        tokio::spawn(async move { ops.rollback("slow one").await.status })
    };
    let running = wait_until("a rollback in flight", LONG, || async {
        app.events("").await.into_iter().find(|e| {
            e["reason"] == "slow one"
                && matches!(
                    e["status"].as_str(),
                    Some("pending" | "executing" | "validating")
                )
        })
    })
    .await;
    let running_id = running["id"].as_str().unwrap();
    let tp = json!({"verdict": "true_positive"});
    let m = ops
        .review(running_id, &tp)
        .await
        .error(409, "rollback_in_progress");
    assert!(m.contains("review it once it has finished"), "{m}");
    let finished = tokio::time::timeout(LONG, slow)
        .await
        .expect("the slow rollback finishes in time")
        .unwrap();
    assert_eq!(finished, 200);
    let r = ops.review(running_id, &tp).await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Missed degradations: a range in the future or reversed, unknown conditions, no note.
    let now = chrono::Utc::now();
    let t = |mins: i64| (now + chrono::Duration::minutes(mins)).to_rfc3339();
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
        let m = bad_request(&ops.missed(&body).await);
        assert!(m.starts_with(starts), "{body}: {m}");
    }
    app.with_token(VIEWER_TOKEN)
        .missed(&json!({"from": t(-30), "to": t(-10), "conditions": ["max_drawdown"], "note": "n"}))
        .await
        .error(403, "forbidden");
    // Nothing half-written: one review (of the finished slow one), no missed degradation.
    let reviews = app.reviews("").await.ok();
    assert_eq!(reviews["reviews"].as_array().unwrap().len(), 1, "{reviews}");
    let m = app.list_missed("").await.ok();
    assert_eq!(m["missed_degradations"], json!([]));
    assert_eq!(
        bad_request(&app.rollbacks("unreviewed=maybe").await),
        "unreviewed \"maybe\" must be true or false"
    );
}

// ---- the rates from a seeded history ------------------------------------------------------

/// The value of `name{window}`; NaN stays NaN.
#[track_caller]
fn rate(m: &Metrics, name: &str, window: &str) -> f64 {
    series(m, name, &[("window", window)])
}

/// The value of one series, which must be there; NaN stays NaN.
#[track_caller]
fn series(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.get(name, labels)
        .unwrap_or_else(|| panic!("no series {name}{labels:?} in:\n{}", m.text))
}

/// The exact values a seeded history gives, checked on one scrape.
fn assert_seeded_rates(m: &Metrics, d_created: f64) {
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
            let labels = [("window", w), ("verdict", verdict)];
            let v = series(m, "rollback_trigger_episodes", &labels);
            close(v, want, &format!("rollback_trigger_episodes{labels:?}"));
        }
    }
    for name in [
        "rollback_incident_response_seconds",
        "rollback_recovery_seconds",
    ] {
        for stat in ["median", "max"] {
            let v = series(m, name, &[("window", "30d"), ("stat", stat)]);
            assert!(
                v.is_finite() && (0.0..60.0).contains(&v),
                "{name} 30d {stat} = {v}"
            );
        }
    }
    close(
        series(m, "rollback_unreviewed_oldest_timestamp_seconds", &[]),
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
    let ops = app.with_token(OPS_TOKEN);
    let boss = app.with_token(ADMIN_TOKEN);
    let a = ops.rollback("A: drawdown spike").await.ok();
    let r = ops.rollback("B: again while rolled back").await;
    assert_eq!(r.status, 409, "{}", r.text);
    let b = app
        .events("status=suppressed")
        .await
        .into_iter()
        .find(|e| e["reason"] == "B: again while rolled back")
        .expect("B recorded as suppressed");
    let c = ops.dry_run("C: monthly drill").await.ok();
    boss.restore("fixed").await.ok();
    let d = ops.rollback("D: drawdown again").await.ok();
    for (event, body, api) in [
        (
            &a,
            json!({"verdict": "false_positive", "note": "first look"}),
            &ops,
        ),
        (
            &a,
            json!({"verdict": "true_positive", "note": "confirmed real"}),
            &boss,
        ),
        (
            &b,
            json!({"verdict": "false_positive", "note": "condition kept breaching on Cycle 4"}),
            &ops,
        ),
        (&c, json!({"verdict": "drill"}), &ops),
    ] {
        let r = api.review(event["id"].as_str().unwrap(), &body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let now = chrono::Utc::now();
    let r = ops
        .missed(
            &json!({"from": (now - chrono::Duration::hours(3)).to_rfc3339(),
                        "to": (now - chrono::Duration::hours(2)).to_rfc3339(),
                        "conditions": ["max_drawdown", "consecutive_losses"],
                        "note": "losses piled up below the thresholds"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["recorded_by"], "ops");
    d
}

/// The line of `metric` in a report's `success_metrics`.
#[track_caller]
fn metric_line(report: &Value, metric: &str) -> Value {
    report["success_metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["metric"] == metric)
        .unwrap_or_else(|| panic!("no {metric} in {report}"))
        .clone()
}

#[tokio::test]
async fn no_reviews_yet_is_no_data_on_metrics_and_in_the_report() {
    let app = auth().spawn_polled().await;
    app.with_token(OPS_TOKEN).rollback("unreviewed").await.ok();
    let m = wait_until("the rates to count the rollback", LONG, || async {
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
    let report = app.report("since=7d").await.ok();
    let fp = metric_line(&report, "false_positive_rate");
    assert_eq!(
        (&fp["value"], &fp["limit_met"]),
        (&Value::Null, &Value::Null),
        "{fp}"
    );
    assert_eq!(fp["basis"], "no reviewed triggers in the period");
}

#[tokio::test]
async fn rates_are_exact_from_a_seeded_history_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    seed_reviewed_history(&dir.path().join("history.db")).await;
    let app = auth().history(dir).spawn().await;
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
    assert!(series(&m, "rollback_unreviewed_oldest_timestamp_seconds", &[]).is_nan());
    app.first_poll().await;
    let d = live_episodes(&app).await;
    // The missed degradation's answer came after the rates were computed again.
    assert_seeded_rates(&app.metrics().await, unix(&d));

    let app = app.stop().await.restart(auth()).await;
    assert_seeded_rates(&app.metrics().await, unix(&d));

    // The report over the same history: 5 episodes in 30 d, 4 in 7 d.
    let r = app.report("since=30d").await.ok();
    assert_eq!(r["format_version"], 1);
    assert_eq!(
        r["summary"],
        json!({"episodes": 5, "executed": 2, "suppressed": 2, "dry_runs": 1,
               "verdicts": {"true_positive": 1, "false_positive": 2, "drill": 1, "unreviewed": 1},
               "missed_degradations": 2})
    );
    let fp = metric_line(&r, "false_positive_rate");
    assert!(
        (fp["value"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9,
        "{fp}"
    );
    assert_eq!(
        (&fp["limit"], &fp["target"], &fp["limit_met"]),
        (&json!(0.05), &json!(0.02), &json!(false))
    );
    assert_eq!(metric_line(&r, "documentation_compliance")["value"], 0.5);
    assert_eq!(
        metric_line(&r, "recovery_validation_success")["limit_met"],
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
    assert_eq!(
        pluck(&last["timeline"], "status"),
        ["pending", "executing", "validating", "completed"]
    );
    assert!(last["response_seconds"].as_f64().unwrap() >= 0.0);
    assert!(last["execution_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(r["missed_degradations"].as_array().unwrap().len(), 2);
    let week = app.report("since=7d").await.ok();
    assert_eq!(week["summary"]["episodes"], 4);

    let md = app.report("since=30d&format=md").await;
    assert_eq!(md.status, 200, "{}", md.text);
    let ct = md.header("content-type").unwrap_or("");
    assert!(ct.starts_with("text/markdown"), "{ct}");
    let md = md.text;
    assert!(md.starts_with("# rollbackd incident report\n"), "{md}");
    assert!(
        md.contains("| False positive rate | 66.7 % | < 5 % | < 2 % | NOT met | NOT met |"),
        "{md}"
    );
    assert!(md.contains("- Review: **not reviewed yet**"), "{md}");
    let csv = app.report("since=30d&format=csv").await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    let ct = csv.header("content-type").unwrap_or("");
    assert!(ct.starts_with("text/csv"), "{ct}");
    assert_eq!(
        csv.text
            .split("\r\n")
            .filter(|l| l.starts_with("old-fp,"))
            .count(),
        1,
        "{}",
        csv.text
    );
    for (q, field) in [
        ("since=3x", "since \"3x\""),
        ("format=pdf", "format \"pdf\""),
        ("until=2020-01-01T00:00:00Z", "since "),
    ] {
        let m = bad_request(&app.report(q).await);
        assert!(m.starts_with(field), "{q}: {m}");
    }
    app.stop().await;
}

/// What changes from run to run, replaced by its kind: times (`[time]`), generated event ids
/// (`[uuid]`), measured durations (`[seconds]`, `[ms]`), and the counts inside texts built from
/// them (the stability watch's looks, a median). Everything else is kept.
fn redacted(v: &Value) -> Value {
    fn text(key: &str, s: &str) -> Value {
        if s.parse::<chrono::DateTime<chrono::Utc>>().is_ok() {
            return json!("[time]");
        }
        if uuid::Uuid::parse_str(s).is_ok() {
            return json!("[uuid]");
        }
        let counted = |s: &str, before: &str, after: &str| -> String {
            match s.split_once(before) {
                Some((head, tail)) => match tail.split_once(after) {
                    Some((_, rest)) => format!("{head}{before}[n]{after}{rest}"),
                    None => s.to_string(),
                },
                None => s.to_string(),
            }
        };
        match key {
            "note" if s.starts_with("stable through") => json!(counted(s, "(", " looks")),
            "basis" => json!(counted(s, "median ", " s")),
            _ => json!(s),
        }
    }
    fn walk(key: &str, v: &Value, seconds_line: bool) -> Value {
        match v {
            Value::Object(m) => {
                let seconds = m.get("unit") == Some(&json!("seconds"));
                Value::Object(
                    m.iter()
                        .map(|(k, v)| (k.clone(), walk(k, v, seconds)))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(|v| walk(key, v, false)).collect()),
            Value::String(s) => text(key, s),
            Value::Number(_) if key.ends_with("_seconds") => json!("[seconds]"),
            Value::Number(_) if key.ends_with("_ms") => json!("[ms]"),
            Value::Number(_) if seconds_line && key == "value" => json!("[seconds]"),
            other => other.clone(),
        }
    }
    walk("", v, false)
}

/// The report's JSON shape is documented as stable (docs/api.md, "Report"): over a seeded
/// history plus a completed, reviewed rollback and a dry run, every key and every value that
/// does not vary from run to run is locked by the snapshot.
#[tokio::test]
async fn the_json_report_keeps_its_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    seed_reviewed_history(&dir.path().join("history.db")).await;
    let app = auth().history(dir).spawn_polled().await;
    let ops = app.with_token(OPS_TOKEN);
    let a = ops.rollback("drawdown spike on desk 3").await.ok();
    let id = a["id"].as_str().unwrap();
    app.wait_stability(id).await;
    let r = ops
        .review(
            id,
            &json!({"verdict": "true_positive", "note": "real: desk 3 lost 5.2 %",
                    "ticket_url": "https://tickets.example.org/INC-42"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let c = ops.dry_run("monthly drill").await.ok();
    let r = ops
        .review(c["id"].as_str().unwrap(), &json!({"verdict": "drill"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let report = app.report("since=30d").await.ok();
    insta::assert_json_snapshot!("report_json", redacted(&report));
}

// ---- the CLI on the real binary -------------------------------------------------------------

#[tokio::test]
async fn the_cli_reviews_lists_the_unreviewed_records_a_miss_and_reports() {
    let app = auth().spawn_polled().await;
    let e = app.with_token(OPS_TOKEN).rollback("via the CLI").await.ok();
    let id = e["id"].as_str().unwrap();
    let url = app.url.as_str();
    let r = cli(&["history", "--unreviewed", "--url", url], None).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(id), "{}", r.stdout);

    let review = |verdict: &'static str, note: Option<&'static str>| {
        let mut args = vec!["review", id, "--verdict", verdict];
        if let Some(n) = note {
            args.extend(["--note", n]);
        }
        args.extend(["--url", url]);
        args
    };
    let r = cli(&review("true_positive", Some("real")), Some(VIEWER_TOKEN)).await;
    assert_eq!(r.code, Some(3), "a viewer cannot review: {}", r.stderr);
    let r = cli(&review("false_positive", None), Some(OPS_TOKEN)).await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("note is required for a false_positive"),
        "{}",
        r.stderr
    );
    let mut args = review("true_positive", Some("real drawdown"));
    args.extend(["--ticket", "https://tickets.example.org/INC-9"]);
    let r = cli(&args, Some(OPS_TOKEN)).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("verdict   true_positive") && r.stdout.contains("reviewer  ops"),
        "{}",
        r.stdout
    );
    let r = cli(
        &["review", "nope", "--verdict", "drill", "--url", url],
        Some(OPS_TOKEN),
    )
    .await;
    assert_eq!(r.code, Some(2), "404 is a usage error: {}", r.stderr);
    let r = cli(&["history", "--unreviewed", "--url", url], None).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "no rollbacks recorded that match the filters\n");

    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(2)).to_rfc3339();
    let to = (now - chrono::Duration::hours(1)).to_rfc3339();
    let (from, to) = (from.as_str(), to.as_str());
    let missed = |condition: &'static str, note: &'static str| {
        vec![
            "missed",
            "--from",
            from,
            "--to",
            to,
            "--condition",
            condition,
            "--note",
            note,
            "--url",
            url,
        ]
    };
    let r = cli(&missed("max_drawdwn", "n"), Some(OPS_TOKEN)).await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("conditions: \"max_drawdwn\" is not a configured condition"),
        "{}",
        r.stderr
    );
    let r = cli(&missed("max_drawdown", "slow bleed"), Some(OPS_TOKEN)).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("conditions          max_drawdown"),
        "{}",
        r.stdout
    );

    let r = cli(&["report", "--since", "7d", "--url", url], None).await;
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
    let r = cli(&["report", "--format", "csv", "--url", url], None).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.starts_with("event_id,created_at,kind"),
        "{}",
        r.stdout
    );
    let r = cli(&["report", "--json", "--url", url], None).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.json()["summary"]["verdicts"]["true_positive"], 1);
}

// ---- the console in real Chromium -----------------------------------------------------------

/// The history row of event `id` in the console, as a JavaScript expression.
fn row(id: &str) -> String {
    format!("document.querySelector('#history .history-item[data-event-id=\"{id}\"]')")
}

#[tokio::test]
async fn the_console_reviews_a_history_row_and_shows_the_unreviewed_count() {
    let app = auth().spawn_polled().await;
    let ops = app.with_token(OPS_TOKEN);
    let first = ops.dry_run("first, reviewed from the console").await.ok();
    let second = ops.dry_run("second, reviewed elsewhere").await.ok();
    let script = app.get("/console/reviews.js").await;
    assert_eq!(script.status, 200, "{}", script.text);
    let ct = script.header("content-type").unwrap_or("");
    assert!(ct.starts_with("text/javascript"), "{ct}");
    let html = app.get("/").await;
    assert_eq!(html.status, 200);
    assert!(html
        .text
        .contains("<script src=\"/console/reviews.js\" defer></script>"));
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
    let first_row = row(first["id"].as_str().unwrap());
    let second_row = row(second["id"].as_str().unwrap());
    wait_js(
        c,
        "a review control on the row",
        &format!("{first_row}.querySelector('.review-control select')"),
    )
    .await;
    // A false positive needs a note: the control says so and sends nothing.
    js(c, &format!("(() => {{ const r = {first_row}; r.querySelector('.review-control select').value = 'false_positive'; r.querySelector('.review-control button').click(); return true; }})()")).await;
    wait_js(
        c,
        "the note asked for",
        &format!("{first_row}.querySelector('.review-message').textContent.includes('note')"),
    )
    .await;
    assert_eq!(app.reviews("").await.ok()["reviews"], json!([]));
    js(c, &format!("(() => {{ const r = {first_row}; r.querySelector('.review-control input').value = '<b>not</b> a real spike'; r.querySelector('.review-control button').click(); return true; }})()")).await;
    wait_js(
        c,
        "the verdict on the row",
        &format!(
            "{first_row}.querySelector('.review-verdict').textContent.includes('false_positive')"
        ),
    )
    .await;
    wait_js(
        c,
        "one unreviewed left",
        "document.getElementById('unreviewed-count').textContent === '1'",
    )
    .await;
    let reviews = app.reviews("").await.ok();
    assert_eq!(reviews["reviews"][0]["reviewer"], "ops");
    assert_eq!(reviews["reviews"][0]["note"], "<b>not</b> a real spike");
    assert_eq!(
        js(c, "document.querySelectorAll('#history b').length").await,
        0,
        "notes stay text"
    );
    // A review made elsewhere arrives over the stream.
    let r = app
        .with_token(ADMIN_TOKEN)
        .review(second["id"].as_str().unwrap(), &json!({"verdict": "drill"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    wait_js(
        c,
        "the streamed verdict",
        &format!("{second_row}.querySelector('.review-verdict').textContent.includes('drill')"),
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
            p["type"] == "row"
                && p["title"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Trigger tuning"))
        })
        .expect("a Trigger tuning row");
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
    assert!(
        rules.contains("expr: (time() - rollback_unreviewed_oldest_timestamp_seconds) > 86400"),
        "reviews.yml lacks the unreviewed alert"
    );
    // One reading of the seed's bounds: each rate alert fires exactly when the report judges
    // its limit NOT met, so its comparison is the complement of the criterion's, at the same
    // bound (at the bound itself both say "not met").
    for (measure, series) in [
        (
            Measure::FalsePositiveRate,
            "rollback_false_positive_rate{window=\"30d\"}",
        ),
        (
            Measure::RecoveryValidationSuccess,
            "recovery_validation_success_rate{window=\"30d\"}",
        ),
    ] {
        let c = CRITERIA.iter().find(|c| c.measure == measure).unwrap();
        let not_met = match c.comparison {
            Comparison::Below => ">=",
            Comparison::Above => "<=",
            Comparison::AtLeast => "<",
        };
        let expr = format!("expr: {series} {not_met} {:.2}", c.limit);
        assert!(rules.contains(&expr), "reviews.yml lacks {expr}");
        assert!(
            !c.comparison.met(c.limit, c.limit),
            "{measure:?} at its bound"
        );
    }
    assert!(
        shipped_rule_files().contains(&"reviews.yml"),
        "render-rules ships it"
    );
}

/// The colour a Grafana threshold list gives `value`: the last step at or below it.
fn colour_at(panel: &serde_json::Value, value: f64) -> String {
    let steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no thresholds", panel["title"]));
    steps
        .iter()
        .rfind(|s| s["value"].as_f64().is_none_or(|at| value >= at))
        .and_then(|s| s["color"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The SLO panels colour a value as the report judges it: red when the limit is not met,
/// green when the target is (or the limit, without a target), yellow between. Both are strict,
/// so a value exactly at a bound takes the worse colour.
#[test]
fn the_slo_panels_colour_each_value_as_the_report_judges_it() {
    let d = load_dashboard(&repo().join("grafana/dashboards/rollback-slos.json"));
    let panels = all_panels(&d);
    let shown = [
        (Measure::FalsePositiveRate, "False positive rate (30 d)"),
        (
            Measure::FalsePositiveRate,
            "False positive rate, 7 d and 30 d",
        ),
        (Measure::TruePositiveRate, "True positive rate (30 d)"),
        (
            Measure::RecoveryValidationSuccess,
            "Recovery validation success (30 d)",
        ),
        (Measure::RecoveryValidationSuccess, "Validation success"),
        (
            Measure::RecoveryValidationSuccess,
            "Validation success by kind",
        ),
        (
            Measure::RecoveryValidationSuccess,
            "Validation success, 24 h sliding window",
        ),
        (
            Measure::IncidentResponseTime,
            "Incident response, longest (30 d)",
        ),
        (Measure::RecoveryTime, "Recovery time, longest (30 d)"),
        (
            Measure::DocumentationCompliance,
            "Documentation compliance (30 d)",
        ),
        (Measure::RollbackExecutionTime, "p50 execution time"),
        (Measure::RollbackExecutionTime, "p95 execution time"),
        (
            Measure::RollbackExecutionTime,
            "Execution time, 1 h sliding window",
        ),
    ];
    for (measure, title) in shown {
        let panel = panels
            .iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"));
        let c = CRITERIA.iter().find(|c| c.measure == measure).unwrap();
        let bounds = [Some(c.limit), c.target].into_iter().flatten();
        let near = |b: f64| [b * 0.999, b, b * 1.000001, b * 1.001];
        for v in bounds.flat_map(near) {
            let judged = if !c.comparison.met(v, c.limit) {
                "red"
            } else if c.target.is_none_or(|t| c.comparison.met(v, t)) {
                "green"
            } else {
                "yellow"
            };
            assert_eq!(colour_at(panel, v), judged, "{title:?} at {v}");
        }
    }
}
