//! The daemon as a process: a restart keeps history and cooldown, a drain (in process or by
//! SIGTERM to the real binary) finishes the rollback in flight, a SIGKILL mid-rollback is
//! recovered at the next start; environment overrides and `check-config`.

use crate::harness::binary::{run_rollbackd, signal, BinaryDaemon, Out};
use crate::harness::library::{seed_interrupted_rollback, SEED_THRESHOLDS};
use crate::harness::*;
use serde_json::json;
use std::ffi::OsStr;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_restart_keeps_the_history_and_the_cooldown() {
    let app = TestApp::builder().spawn().await;
    let first = app.rollback("drill").await.ok();
    assert_eq!(first["status"], "completed");
    let app = app.stop().await.restart(TestApp::builder()).await;

    let events = app.events("").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], first["id"]);
    assert_eq!(events[0]["status"], "completed");
    let status = app.engine_status();
    let cooldown = status["cooldown_remaining_seconds"].as_f64().unwrap();
    assert!(
        cooldown > 800.0,
        "the cooldown survives a restart: {cooldown}"
    );
    assert_eq!(status["last_event"]["id"], first["id"]);
    let v = app.validations("").await.json;
    assert_eq!(v["validations"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_in_flight_finishes_during_the_drain() {
    let app = TestApp::builder().manual().slow_target(1000).spawn().await;
    let api = app.api();
    let request = tokio::spawn(async move { api.rollback("just before the deploy").await });
    let id = wait_until(
        "the rollback to execute",
        Duration::from_secs(8),
        || async {
            app.engine_status()["in_progress"]
                .as_str()
                .map(str::to_string)
        },
    )
    .await;
    let stopped = app.stop().await;
    let r = request.await.unwrap();
    assert_eq!(
        r.status, 200,
        "the in-flight request is answered: {}",
        r.text
    );
    assert_eq!(r.json["status"], "completed", "{}", r.text);
    assert_eq!(r.json["id"], id.as_str());

    // The same history, reopened: completed during the drain, not left for recovery.
    stopped.sim.set_delay_ms(0).await;
    let app = stopped.restart(TestApp::builder().manual()).await;
    let ev = app.rollback_by_id(&id).await.ok();
    assert_eq!(ev["status"], "completed", "{ev}");
    assert_eq!(
        pluck(&ev["transitions"], "status"),
        ["pending", "executing", "validating", "completed"]
    );
    let kinds = pluck(&ev["validations"], "kind");
    assert!(
        kinds.contains(&"initial") && !kinds.contains(&"recovered"),
        "{kinds:?}"
    );
    assert_eq!(app.sim.switches().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn environment_overrides_change_the_effective_thresholds() {
    for (env, wfs_critical, losses_critical) in [("staging", 30.0, 5.0), ("production", 40.0, 6.0)]
    {
        let app = TestApp::builder()
            .environment(env)
            .manual()
            .append_yaml(SEED_THRESHOLDS)
            .spawn()
            .await;
        app.sim
            .set_metrics(json!({"walk_forward_stability": 35.0, "consecutive_losses": 5}))
            .await;
        let t = wait_until("a poll", LONG, || async {
            let t = app.triggers().await.json;
            (condition(&t, "walk_forward_stability")["value"] == 35.0).then_some(t)
        })
        .await;
        assert_eq!(t["environment"], env);
        let (wfs, losses) = (
            condition(&t, "walk_forward_stability"),
            condition(&t, "consecutive_losses"),
        );
        assert_eq!(wfs["critical_threshold"], wfs_critical);
        assert_eq!(losses["critical_threshold"], losses_critical);
        let (wfs_status, losses_status) = if env == "staging" {
            ("warning", "critical")
        } else {
            ("critical", "warning")
        };
        assert_eq!(wfs["status"], wfs_status, "{env}");
        assert_eq!(losses["status"], losses_status, "{env}");
        let m = app.metrics().await;
        let critical = [
            ("condition_type", "walk_forward_stability"),
            ("severity", "critical"),
        ];
        m.assert("trigger_condition_threshold", &critical, wfs_critical);
        m.assert("rollbackd_environment_info", &[("environment", env)], 1.0);
        app.stop().await;
    }
}

/// `check-config` with `args` on `file`.
fn check_config(args: &[&str], file: &std::path::Path) -> Out {
    let mut all = vec![OsStr::new("check-config")];
    all.extend(args.iter().map(OsStr::new));
    all.push(file.as_os_str());
    run_rollbackd(&all)
}

/// The words of the line for `condition` in `check-config`'s table.
fn row<'a>(text: &'a str, condition: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.trim_start().starts_with(condition))
        .unwrap_or_else(|| panic!("no {condition} in {text}"))
        .split_whitespace()
        .collect()
}

#[test]
fn check_config_prints_effective_thresholds_and_refuses_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("rollbackd.yaml");
    std::fs::write(dir.path().join("trigger_thresholds.yaml"), SEED_THRESHOLDS).unwrap();
    std::fs::write(
        &good,
        "thresholds_file: trigger_thresholds.yaml\nenvironment: production\n",
    )
    .unwrap();
    let out = check_config(&[], &good);
    assert!(out.ok(), "{}", out.stderr);
    assert!(
        out.stdout.contains("environment: production"),
        "{}",
        out.stdout
    );
    assert_eq!(
        row(&out.stdout, "consecutive_losses"),
        ["consecutive_losses", ">=", "4", "6"]
    );
    let out = check_config(&["--environment", "staging"], &good);
    assert_eq!(
        row(&out.stdout, "walk_forward_stability"),
        ["walk_forward_stability", "<", "50", "30"]
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "monitoring:\n  poll_interval: soon\n").unwrap();
    let out = check_config(&[], &bad);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("bad.yaml: monitoring.poll_interval: invalid duration \"soon\""),
        "{}",
        out.stderr
    );
    let out = check_config(&["--environment", "qa"], &good);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains(
        "environment: \"qa\" is not defined under environments (defined: production, staging)"
    ));
    assert_eq!(
        check_config(&[], &dir.path().join("missing.yaml")).code,
        Some(2)
    );
}

/// A crash between "executing" and completion: the real daemon is killed with SIGKILL while
/// the (slow) target holds the switch, then started again on the same history.
#[tokio::test]
async fn a_crash_mid_rollback_is_recovered_at_the_next_start() {
    let bin = BinaryDaemon::configure().await;
    let mut child = bin.start().await;
    let (pending, id) = bin.rollback_in_flight(3000, "crash drill").await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert!(
        pending.await.unwrap().is_err(),
        "the client saw the daemon die"
    );

    // On disk: the event stopped at executing.
    assert_eq!(
        bin.history().transitions(&id).last().map(String::as_str),
        Some("executing")
    );
    bin.sim.set_delay_ms(0).await;
    let mut child = bin.start().await;
    let e = bin.api.rollback_by_id(&id).await.json;
    assert_eq!(e["status"], "completed", "{e}");
    assert_eq!(e["note"], "interrupted, then confirmed at start-up");
    assert_eq!(pluck(&e["validations"], "kind"), ["recovered"]);
    assert_eq!(
        pluck(&e["transitions"], "status"),
        ["pending", "executing", "validating", "completed"]
    );
    assert_eq!(
        bin.sim.switches().len(),
        1,
        "recovery re-validates; it does not switch again"
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn an_interrupted_switch_that_never_landed_is_marked_failed() {
    // Leave an event at "executing" as a crash would, with the target never switched.
    let dir = tempfile::tempdir().unwrap();
    seed_interrupted_rollback(&dir.path().join("history.db"), "interrupted-1").await;
    let app = TestApp::builder().manual().history(dir).spawn().await;
    let e = app.rollback_by_id("interrupted-1").await.json;
    assert_eq!(e["status"], "failed");
    assert!(
        e["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("interrupted: mode is session_targeted"),
        "{e}"
    );
    assert_eq!(app.engine_status()["in_progress"], serde_json::Value::Null);
}

/// A log that cannot be written (the collector reading stderr died) costs the log lines,
/// never the daemon: a rollback still completes and SIGTERM still drains and exits 0. Before
/// the fix, the logger's fallback report of the failed write panicked the task that logged,
/// and the task that turns SIGTERM into the drain was one of them: the daemon never stopped.
#[tokio::test]
async fn a_log_reader_gone_loses_lines_not_rollbacks_or_the_drain() {
    let bin = BinaryDaemon::configure().await;
    let mut child = bin.start_with_log_reader_gone().await;
    let done = bin.api.rollback("the log shipper is down").await.ok();
    assert_eq!(done["status"], "completed", "{done}");
    sigterm_ends_with_exit_0(&mut child, "although its log cannot be written").await;
}

/// SQLite serves its page caches from one block the daemon gives it at start: its part of the
/// memory is there from the first scrape instead of creeping up a page at a time between the
/// daemon's short-lived buffers, where glibc kept the heap around each cached page (the
/// soak's memory rose for an hour). Before: about 0.4 MB at start.
#[tokio::test]
async fn sqlite_takes_its_page_block_at_start() {
    let bin = BinaryDaemon::configure().await;
    let mut child = bin.start().await;
    let m = bin.api.metrics().await;
    let sqlite = m
        .get("rollbackd_sqlite_memory_bytes", &[])
        .expect("rollbackd_sqlite_memory_bytes");
    // Two connections (the writer and the reader), each with a cache of PAGE_CACHE_KIB.
    let caches = 2.0 * rollbackd::store::SQLITE_PAGE_CACHE_KIB as f64 * 1024.0;
    assert!(
        sqlite >= caches,
        "SQLite holds {sqlite} bytes at start, the two caches are {caches}"
    );
    sigterm_ends_with_exit_0(&mut child, "after the scrape").await;
}

/// SIGTERM drains: the real binary finishes the rollback in flight, then exits 0.
#[tokio::test]
async fn sigterm_lets_the_rollback_in_flight_finish() {
    let bin = BinaryDaemon::configure().await;
    let mut child = bin.start().await;
    let (pending, _) = bin.rollback_in_flight(1000, "drain drill").await;
    sigterm_ends_with_exit_0(&mut child, "with a rollback in flight").await;
    let answer = pending
        .await
        .unwrap()
        .expect("the in-flight request was answered before the exit");
    assert_eq!(answer.json["status"], "completed", "{}", answer.text);
    assert_eq!(
        bin.history().last_transition().as_deref(),
        Some("completed")
    );
}

/// `rollbackd demo`, the README's first command, as a newcomer runs it: the real binary rolls
/// back, validates, watches stability and exits 0, with the history stored.
#[tokio::test]
async fn the_demo_rolls_back_validates_and_exits_0() {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
            .arg("demo")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the demo ends within 90 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {}: {stdout}", out.status);
    for line in [
        "CRITICAL",
        "COMPLETED",
        "validation (stability) score 100/100 PASS",
        "history: 1 event(s) stored durably",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
}

/// `rollbackd demo | head -2`: the reader goes away after two lines; the demo still finishes
/// and exits 0 instead of panicking on the closed pipe (it printed with `println!`: exit 101).
#[tokio::test]
async fn the_demo_piped_into_head_finishes_quietly() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .arg("demo")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        lines
            .next_line()
            .await
            .unwrap()
            .expect("the demo prints its banner");
    }
    drop(lines);
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the demo ends within 90 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "exit {}: {stderr}", out.status);
}

/// Sends SIGTERM to the real binary and waits (20 s at most) for it to exit 0.
async fn sigterm_ends_with_exit_0(child: &mut tokio::process::Child, case: &str) {
    signal(child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap_or_else(|_| panic!("SIGTERM did not end the daemon within 20 s {case}"))
        .unwrap();
    assert!(status.success(), "exit status {status} {case}");
}
