//! The client's pure parts: request bodies, the token file, judging answers, and rendering
//! (snapshots on fixed JSON with a fixed clock and zone).

use super::format::Clock;
use super::*;
use crate::cli::Cli;
use chrono::FixedOffset;
use clap::Parser;

fn clock() -> Clock {
    Clock {
        now: "2026-11-23T10:06:15Z".parse().unwrap(),
        offset: Some(FixedOffset::east_opt(3600).unwrap()),
    }
}

fn parse(args: &[&str]) -> Command {
    Cli::try_parse_from([&["rollbackd"], args].concat())
        .unwrap()
        .command
}

fn request(args: &[&str]) -> Request {
    request_for(&parse(args)).unwrap().0
}

#[test]
fn restore_dry_run_sends_dry_run_true_and_a_plain_restore_does_not() {
    let r = request(&["restore", "--reason", "fixed", "--dry-run"]);
    assert_eq!(
        (r.method, r.path.as_str()),
        (Method::POST, "/api/v1/restore")
    );
    assert_eq!(r.body, Some(json!({"reason": "fixed", "dry_run": true})));
    assert_eq!(r.kind, Kind::Plan);
    let r = request(&["restore", "--reason", "fixed"]);
    assert_eq!(r.body, Some(json!({"reason": "fixed"})));
    assert_eq!(r.kind, Kind::Event);
}

#[test]
fn rollback_history_and_monitoring_requests() {
    let r = request(&["rollback", "--reason", "spike", "--dry-run"]);
    assert_eq!(r.body, Some(json!({"reason": "spike", "dry_run": true})));
    let r = request(&["history", "--status", "failed", "--limit", "5"]);
    assert_eq!(r.path, "/api/v1/rollbacks");
    assert_eq!(
        r.query,
        vec![("limit", "5".to_owned()), ("status", "failed".to_owned())]
    );
    assert_eq!(r.kind, Kind::History { filtered: true });
    let r = request(&["monitoring", "stop"]);
    assert_eq!(r.path, "/api/v1/monitoring/stop");
    assert_eq!(r.kind, Kind::Monitoring { active: false });
    assert!(request_for(&parse(&["man"])).is_none());
}

#[test]
fn history_filters_refuse_values_outside_the_life_cycle() {
    let err = Cli::try_parse_from(["rollbackd", "history", "--status", "done"]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("dry_run"), "{err}");
    let err = Cli::try_parse_from(["rollbackd", "history", "--trigger-type", "cron"]).unwrap_err();
    assert!(err.to_string().contains("alertmanager"), "{err}");
}

#[test]
fn the_token_file_is_read_trimmed_and_named_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ops.token");
    std::fs::write(&good, "s3cret-token\n").unwrap();
    assert_eq!(read_token(&good).unwrap(), "s3cret-token");
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, " \n").unwrap();
    let err = read_token(&empty).unwrap_err();
    assert!(
        err.contains("empty.token") && err.contains("empty"),
        "{err}"
    );
    let err = read_token(&dir.path().join("missing.token")).unwrap_err();
    assert!(
        err.contains("cannot read the token file") && err.contains("missing.token"),
        "{err}"
    );
    let args = match parse(&[
        "status",
        "--token",
        "flag",
        "--token-file",
        good.to_str().unwrap(),
    ]) {
        Command::Status { client } => client,
        other => panic!("{other:?}"),
    };
    assert_eq!(token(&args).unwrap().as_deref(), Some("s3cret-token"));
}

#[test]
fn an_event_succeeds_only_when_completed_and_says_why_otherwise() {
    let failed = json!({"id": "e1", "action": "rollback", "status": "failed", "failure_reason": "target refused the switch: 503"});
    let (exit, why) = judge(Kind::Event, &failed);
    assert_eq!(exit, Exit::Failed);
    assert_eq!(
        why.unwrap(),
        "the rollback ended failed: target refused the switch: 503 (event e1)"
    );
    let suppressed = json!({"id": "e2", "action": "rollback", "status": "suppressed", "suppressed_reason": "cooldown"});
    let (exit, why) = judge(Kind::Event, &suppressed);
    assert_eq!(exit, Exit::Cooldown);
    assert!(why.unwrap().contains("suppressed (cooldown)"));
    assert_eq!(
        judge(Kind::Event, &json!({"status": "completed"})).0,
        Exit::Ok
    );
    assert_eq!(judge(Kind::Plan, &json!({"steps": ["switch"]})).0, Exit::Ok);
    assert_eq!(judge(Kind::Plan, &failed).0, Exit::Failed);
    let m = json!({"monitoring_active": true});
    assert_eq!(judge(Kind::Monitoring { active: true }, &m).0, Exit::Ok);
    assert_eq!(
        judge(Kind::Monitoring { active: false }, &m).0,
        Exit::Failed
    );
}

fn status_json() -> Value {
    json!({"mode": "universal_cycle_4", "rollback_ready": true, "already_rolled_back": true,
        "monitoring_active": true, "automatic_rollback": true, "in_progress": null,
        "last_event": {"id": "0193c2a0-0000-7000-8000-000000000001", "action": "rollback",
                       "status": "completed", "created_at": "2026-11-23T10:03:12.120Z"},
        "agents": {"healthy": 8, "expected": 8},
        "target": {"url": "http://127.0.0.1:9101", "up": true, "last_success": "2026-11-23T10:06:14.2Z", "last_error": null},
        "environment": "production", "cooldown_remaining_seconds": 899.944,
        "stability_watch_active": true, "storage_ok": true, "version": "0.1.0"})
}

fn triggers_json() -> Value {
    json!({"environment": "production", "triggers_detected": ["walk_forward_stability"],
        "conditions": [
          {"condition": "walk_forward_stability", "value": 39.450475100000006, "operator": "<",
           "warning_threshold": 50.0, "critical_threshold": 40.0, "status": "critical", "trend": "falling"},
          {"condition": "overfitting_score", "value": 0.21000000000000002, "operator": ">",
           "warning_threshold": 0.4, "critical_threshold": 0.5, "status": "ok", "trend": "rising"},
          {"condition": "consecutive_losses", "value": 1.0, "operator": ">=",
           "warning_threshold": 4.0, "critical_threshold": 5.0, "status": "ok", "trend": "steady"},
          {"condition": "max_drawdown", "value": null, "operator": ">=",
           "warning_threshold": 3.5, "critical_threshold": 5.0, "status": "unknown", "trend": "steady"}],
        "updated_at": "2026-11-23T10:06:14Z"})
}

fn event_json(status: &str) -> Value {
    json!({"id": "0193c2a0-0000-7000-8000-000000000001", "action": "rollback", "trigger_type": "manual",
        "source": "api", "reason": "drawdown spike", "actor": "ops", "dry_run": false,
        "status": status, "suppressed_reason": null,
        "failure_reason": if status == "failed" { json!("target refused the switch: 503 Service Unavailable") } else { Value::Null },
        "mode_before": "session_targeted",
        "target_mode": "universal_cycle_4",
        "target_parameters": {"confidence_threshold": 0.55, "risk_reward_ratio": 1.8},
        "created_at": "2026-11-23T10:03:12Z", "duration_ms": 1234,
        "validation_score": if status == "completed" { json!(100.0) } else { Value::Null }, "note": null})
}

fn history_json() -> Value {
    let mut suppressed = event_json("suppressed");
    suppressed["id"] = json!("0193c2a0-0000-7000-8000-000000000002");
    suppressed["trigger_type"] = json!("watchdog");
    suppressed["actor"] = json!("rollbackd");
    suppressed["suppressed_reason"] = json!("cooldown");
    suppressed["duration_ms"] = Value::Null;
    suppressed["created_at"] = json!("2026-11-23T10:05:00Z");
    let mut old = event_json("completed");
    old["validation_score"] = json!(87.50000001);
    old["created_at"] = json!("2026-11-20T16:00:00Z");
    old["duration_ms"] = json!(65_000);
    json!({"events": [suppressed, event_json("failed"), old], "next_before": null})
}

#[test]
fn status_renders_ages_and_durations() {
    insta::assert_snapshot!(render::status(&status_json(), &clock()));
}

#[test]
fn triggers_render_values_rounded_to_their_meaning() {
    let out = render::triggers(&triggers_json(), &clock());
    assert!(!out.contains("39.450475"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn history_renders_a_table_and_says_when_empty() {
    insta::assert_snapshot!(render::history(&history_json(), &clock(), false));
    let empty = json!({"events": [], "next_before": null});
    assert_eq!(
        render::history(&empty, &clock(), false),
        "no rollbacks recorded\n"
    );
    assert_eq!(
        render::history(&empty, &clock(), true),
        "no rollbacks recorded that match the filters\n"
    );
}

#[test]
fn events_render_completed_and_failed() {
    insta::assert_snapshot!(
        "event_completed",
        render::event(&event_json("completed"), &clock())
    );
    insta::assert_snapshot!(
        "event_failed",
        render::event(&event_json("failed"), &clock())
    );
}

#[test]
fn a_restore_plan_of_any_shape_renders_as_lines() {
    let plan = json!({"dry_run": true, "mode_before": "universal_cycle_4", "target_mode": "session_targeted",
        "target_parameters": {"confidence_threshold": 0.62}});
    insta::assert_snapshot!(render::plan_or_event(&plan, &clock()));
}
