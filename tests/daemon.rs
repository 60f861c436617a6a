//! The rollback engine end to end: a real simulator and a real daemon on 127.0.0.1:0, real
//! SQLite on disk, and for the crash test the real binary killed with SIGKILL.

mod common;

use common::*;
use rollbackd::simulator::Scenario;
use serde_json::{json, Value};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);

fn condition<'a>(triggers: &'a Value, name: &str) -> &'a Value {
    triggers["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition"] == name)
        .unwrap()
}

#[tokio::test]
async fn a_breach_rolls_back_to_exactly_the_profile_validates_and_persists() {
    let Env { app, sim, dir } = spawn(Scenario::Steady, &Options::default()).await;
    app.first_poll().await;
    assert!(
        app.events().await.is_empty(),
        "a healthy target is left alone"
    );

    sim.put("/v1/sim/metrics", json!({"max_drawdown": 5.0}))
        .await; // exactly the threshold: >= breaches
    let event = wait_final(&app).await;
    assert_eq!(event["status"], "completed", "{event}");
    assert_eq!(event["trigger_type"], "watchdog");
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .starts_with("max_drawdown 5 >= 5 (critical)"),
        "{event}"
    );
    assert_eq!(
        event["target_parameters"],
        json!({"confidence_threshold": 0.55, "risk_reward_ratio": 1.8})
    );
    assert_eq!(
        event["parameters_after"],
        json!({"confidence_threshold": 0.55, "risk_reward_ratio": 1.8})
    );
    assert_eq!(
        event["parameters_before"],
        json!({"confidence_threshold": 0.62, "risk_reward_ratio": 2.1})
    );
    assert_eq!(event["mode_before"], "session_targeted");
    // Still critical right after the switch: the lingering drawdown costs 15, passing at 85.
    assert_eq!(event["validation_score"], 85.0);
    let snap = event["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition"] == "max_drawdown")
        .unwrap();
    assert_eq!(snap["value"], 5.0);
    assert_eq!(snap["status"], "critical");

    let switches = sim.sim.switches();
    assert_eq!(switches.len(), 1, "exactly one switch reached the target");
    assert_eq!(switches[0].mode, "universal_cycle_4");
    assert_eq!(
        switches[0].parameters.get("confidence_threshold"),
        Some(&0.55)
    );
    assert_eq!(switches[0].parameters.get("risk_reward_ratio"), Some(&1.8));
    assert_eq!(switches[0].event_id, event["id"].as_str().unwrap());
    assert_eq!(sim.status().await["mode"], "universal_cycle_4");

    let id = event["id"].as_str().unwrap();
    let (_, full) = app.get(&format!("/api/v1/rollbacks/{id}")).await;
    let statuses: Vec<&str> = full["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["pending", "executing", "validating", "completed"]
    );
    let initial = &full["validations"].as_array().unwrap().last().unwrap();
    assert_eq!(initial["kind"], "initial");
    assert_eq!(initial["passed"], true);

    // The stability watch (1 s here) records its outcome once drawdown is healed.
    sim.put("/v1/sim/metrics", json!({"max_drawdown": 1.0}))
        .await;
    let stability = wait_for("the stability outcome", LONG, || async {
        let (_, v) = app.get(&format!("/api/v1/validations?event_id={id}")).await;
        v["validations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "stability")
            .cloned()
    })
    .await;
    assert_eq!(stability["passed"], true, "{stability}");

    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "rollback_events_total{trigger_type=\"watchdog\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "rollback_outcomes_total{status=\"completed\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "rollback_execution_time_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "rollback_mode{mode=\"universal_cycle_4\"}"),
        Some(1.0)
    );
    assert!(m.contains(&format!("rollback_last_event_info{{event_id=\"{id}\",trigger_type=\"watchdog\",status=\"completed\"}} 1")));
    app.stop().await;

    // Straight from the file: the history is on disk, not only in the daemon's memory.
    let conn = rusqlite::Connection::open(dir.path().join("history.db")).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM rollback_transitions WHERE event_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 4);
}

#[tokio::test]
async fn a_restart_keeps_the_history_and_the_cooldown() {
    let Env { app, sim, dir } = spawn(Scenario::Steady, &Options::default()).await;
    let (code, first) = app
        .post("/api/v1/rollback", json!({"reason": "drill"}), None)
        .await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(first["status"], "completed");
    app.stop().await;

    let app = TestApp::start(&sim.url, dir.path(), &Options::default()).await;
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], first["id"]);
    assert_eq!(events[0]["status"], "completed");
    let status = app.engine.status();
    assert!(
        status.cooldown_remaining_seconds > 800.0,
        "the cooldown survives a restart: {}",
        status.cooldown_remaining_seconds
    );
    assert_eq!(status.last_event.unwrap().id, first["id"].as_str().unwrap());
    let (_, v) = app.get("/api/v1/validations").await;
    assert_eq!(v["validations"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn accepts_but_does_not_apply_fails_the_validation_and_says_why() {
    let Env {
        app,
        sim,
        dir: _dir,
    } = spawn(Scenario::AcceptsButDoesNotApply, &Options::default()).await;
    app.first_poll().await;
    sim.put("/v1/sim/metrics", json!({"walk_forward_stability": 39.9}))
        .await;
    let event = wait_final(&app).await;
    assert_eq!(event["status"], "failed", "never a silent success: {event}");
    let why = event["failure_reason"].as_str().unwrap();
    assert!(
        why.contains("recovery validation failed (score 35 < 85)"),
        "{why}"
    );
    assert!(
        why.contains("mode is session_targeted, expected universal_cycle_4"),
        "{why}"
    );
    assert!(
        why.contains("confidence_threshold is 0.62, expected 0.55"),
        "{why}"
    );
    // The outcome is counted just after it is durable (and visible in the history).
    let m = wait_for(
        "the failed outcome counted",
        Duration::from_secs(5),
        || async {
            let m = app.metrics().await;
            (metric(&m, "rollback_outcomes_total{status=\"failed\"}") == Some(1.0)).then_some(m)
        },
    )
    .await;
    assert_eq!(metric(&m, "recovery_validation_score"), Some(35.0));
    assert_eq!(
        metric(
            &m,
            "recovery_validations_total{kind=\"initial\",result=\"fail\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn agents_down_fail_the_validation() {
    let Env {
        app,
        sim: _sim,
        dir: _dir,
    } = spawn(
        Scenario::AgentsDown,
        &Options {
            automatic_rollback: false,
            ..Default::default()
        },
    )
    .await;
    let (code, body) = app
        .post("/api/v1/rollback", json!({"reason": "test"}), None)
        .await;
    assert_eq!(code, 502, "a failed rollback is not a 200: {body}");
    assert_eq!(body["error"]["code"], "target_error");
    let event = &body["event"];
    assert_eq!(event["status"], "failed");
    assert!(
        event["failure_reason"]
            .as_str()
            .unwrap()
            .contains("6 of 8 expected agents healthy"),
        "{event}"
    );
    assert_eq!(event["validation_score"], 80.0);
}

#[tokio::test]
async fn a_flaky_target_is_retried_to_success() {
    // Polls are slow here so they do not take the failing turns of the simulator's "every
    // second request fails" counter away from the switch and its read-back.
    let Env {
        app,
        sim,
        dir: _dir,
    } = spawn(
        Scenario::Flaky,
        &Options {
            automatic_rollback: false,
            poll_interval: "10s",
            ..Default::default()
        },
    )
    .await;
    let (code, event) = app
        .post("/api/v1/rollback", json!({"reason": "flaky"}), None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(event["status"], "completed", "{event}");
    assert_eq!(sim.sim.switches().len(), 1);
}

#[tokio::test]
async fn a_target_slower_than_the_timeout_ends_failed_with_the_reason() {
    let Env {
        app,
        sim: _sim,
        dir: _dir,
    } = spawn(
        Scenario::Slow,
        &Options {
            automatic_rollback: false,
            poll_interval: "5s",
            ..Default::default()
        },
    )
    .await; // 1.5 s per answer; the timeout is 500 ms
    let (code, body) = app
        .post("/api/v1/rollback", json!({"reason": "slow"}), None)
        .await;
    assert_eq!(code, 502, "{body}");
    assert_eq!(body["error"]["code"], "target_error");
    let event = &body["event"];
    assert_eq!(event["status"], "failed", "{event}");
    assert_eq!(body["error"]["message"], event["failure_reason"]);
    assert!(
        event["failure_reason"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{event}"
    );
}

#[tokio::test]
async fn a_down_target_means_unknown_and_no_rollback() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&url, dir.path(), &Options::default()).await;
    wait_for("several failed polls", LONG, || async {
        let m = app.metrics().await;
        (metric(
            &m,
            "rollback_target_requests_total{operation=\"status\",result=\"error\"}",
        )? >= 5.0)
            .then_some(())
    })
    .await;
    let (_, t) = app.get("/api/v1/triggers").await;
    for c in t["conditions"].as_array().unwrap() {
        assert_eq!(c["status"], "unknown", "{c}");
        assert_eq!(c["value"], Value::Null);
    }
    assert_eq!(t["triggers_detected"], json!([]));
    let (_, s) = app.get("/api/v1/status").await;
    assert_eq!(s["target"]["up"], false);
    assert_eq!(s["rollback_ready"], false);
    assert_eq!(s["mode"], "unknown");
    assert!(
        s["target"]["last_error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{s}"
    );
    assert!(app.events().await.is_empty(), "no rollback on missing data");
    let m = app.metrics().await;
    assert_eq!(metric(&m, "rollback_target_up"), Some(0.0));
    assert_eq!(metric(&m, "rollback_system_ready"), Some(0.0));
    assert_eq!(
        metric(
            &m,
            "trigger_condition_status{condition_type=\"walk_forward_stability\"}"
        ),
        Some(-1.0)
    );
    assert!(m.contains("trigger_condition_value{condition_type=\"walk_forward_stability\"} NaN"));

    // An operator may still try; the failure is recorded with the reason, never a success.
    let (code, e) = app
        .post(
            "/api/v1/rollback",
            json!({"reason": "manual while down"}),
            None,
        )
        .await;
    assert_eq!(code, 502, "{e}");
    assert_eq!(e["error"]["code"], "target_error");
    let e = &e["event"];
    assert_eq!(e["status"], "failed");
    assert!(
        e["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("switch failed: target unreachable"),
        "{e}"
    );
}

/// Ends the current critical episode of consecutive losses (seen back at ok), then starts a
/// new one at `losses`.
async fn new_losses_episode(sim: &TestSim, app: &TestApp, losses: u32) {
    sim.put("/v1/sim/metrics", json!({"consecutive_losses": 0}))
        .await;
    wait_for("losses back to ok", LONG, || async {
        (app.engine.triggers().triggers_detected.is_empty()).then_some(())
    })
    .await;
    sim.put("/v1/sim/metrics", json!({"consecutive_losses": losses}))
        .await;
}

#[tokio::test]
async fn suppression_is_recorded_for_already_rolled_back_and_cooldown() {
    let Env {
        app,
        sim,
        dir: _dir,
    } = spawn(
        Scenario::Steady,
        &Options {
            auth: true,
            ..Default::default()
        },
    )
    .await;
    app.first_poll().await;
    sim.put("/v1/sim/metrics", json!({"consecutive_losses": 5}))
        .await;
    assert_eq!(wait_final(&app).await["status"], "completed");

    // A new critical episode while in universal_cycle_4: recorded, not executed.
    new_losses_episode(&sim, &app, 7).await;
    let sup = wait_for("an already_rolled_back suppression", LONG, || async {
        app.events()
            .await
            .into_iter()
            .find(|e| e["suppressed_reason"] == "already_rolled_back")
    })
    .await;
    assert_eq!(sup["status"], "suppressed");
    assert_eq!(sup["trigger_type"], "watchdog");

    // The episode triggers once: many more polls while still critical add nothing.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.events().await.len(), 2);

    // A human restores; the same episode is not re-triggered, a new one meets the cooldown.
    let (code, r) = app
        .post(
            "/api/v1/restore",
            json!({"reason": "root cause fixed"}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["action"], "restore");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["actor"], "boss");
    assert_eq!(sim.status().await["mode"], "session_targeted");
    assert_eq!(
        sim.status().await["parameters"],
        json!({"confidence_threshold": 0.62, "risk_reward_ratio": 2.1}),
        "the adaptive parameters come back"
    );
    new_losses_episode(&sim, &app, 9).await;
    let cd = wait_for("a cooldown suppression", LONG, || async {
        app.events()
            .await
            .into_iter()
            .find(|e| e["suppressed_reason"] == "cooldown")
    })
    .await;
    assert_eq!(cd["status"], "suppressed");
    assert_eq!(
        sim.sim.switches().len(),
        2,
        "one rollback and one restore reached the target"
    );
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "rollback_suppressed_total{reason=\"already_rolled_back\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "rollback_suppressed_total{reason=\"cooldown\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "rollback_events_total{trigger_type=\"watchdog\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn without_automatic_rollback_the_watchdog_only_watches() {
    let Env {
        app,
        sim,
        dir: _dir,
    } = spawn(
        Scenario::Steady,
        &Options {
            automatic_rollback: false,
            ..Default::default()
        },
    )
    .await;
    sim.put("/v1/sim/metrics", json!({"walk_forward_stability": 12.0}))
        .await;
    wait_for("critical seen", LONG, || async {
        (app.engine.triggers().triggers_detected == ["walk_forward_stability"]).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.events().await.is_empty());
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            "trigger_conditions_active{condition_type=\"walk_forward_stability\"}"
        ),
        Some(1.0)
    );
    assert_eq!(metric(&m, "trigger_condition_breach_total{condition_type=\"walk_forward_stability\",severity=\"critical\"}"), Some(1.0));
}

#[tokio::test]
async fn arming_the_watchdog_acts_on_a_condition_already_critical() {
    let Env {
        app,
        sim,
        dir: _dir,
    } = spawn(
        Scenario::Steady,
        &Options {
            active_on_start: false,
            ..Default::default()
        },
    )
    .await;
    sim.put("/v1/sim/metrics", json!({"overfitting_score": 0.51}))
        .await;
    wait_for("critical seen", LONG, || async {
        (!app.engine.triggers().triggers_detected.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.events().await.is_empty(), "monitoring is off");
    let (code, _) = app.post("/api/v1/monitoring/start", json!({}), None).await;
    assert_eq!(code, 200);
    assert_eq!(wait_final(&app).await["status"], "completed");
}

#[tokio::test]
async fn environment_overrides_change_the_effective_thresholds() {
    let sim = TestSim::spawn(Scenario::Steady).await;
    let seed = rollbackd::config::SEED_THRESHOLDS.to_string();
    for (env, wfs_critical, losses_critical) in [("staging", 30.0, 5.0), ("production", 40.0, 6.0)]
    {
        let dir = tempfile::tempdir().unwrap();
        let o = Options {
            environment: Some(env),
            automatic_rollback: false,
            extra_yaml: seed.clone(),
            ..Default::default()
        };
        let app = TestApp::start(&sim.url, dir.path(), &o).await;
        sim.put(
            "/v1/sim/metrics",
            json!({"walk_forward_stability": 35.0, "consecutive_losses": 5}),
        )
        .await;
        let t = wait_for("a poll", LONG, || async {
            let (_, t) = app.get("/api/v1/triggers").await;
            (condition(&t, "walk_forward_stability")["value"] == 35.0).then_some(t)
        })
        .await;
        assert_eq!(t["environment"], env);
        assert_eq!(
            condition(&t, "walk_forward_stability")["critical_threshold"],
            wfs_critical
        );
        assert_eq!(
            condition(&t, "consecutive_losses")["critical_threshold"],
            losses_critical
        );
        let (wfs, losses) = if env == "staging" {
            ("warning", "critical")
        } else {
            ("critical", "warning")
        };
        assert_eq!(
            condition(&t, "walk_forward_stability")["status"],
            wfs,
            "{env}"
        );
        assert_eq!(
            condition(&t, "consecutive_losses")["status"],
            losses,
            "{env}"
        );
        let m = app.metrics().await;
        assert_eq!(metric(&m, "trigger_condition_threshold{condition_type=\"walk_forward_stability\",severity=\"critical\"}"), Some(wfs_critical));
        assert!(m.contains(&format!(
            "rollbackd_environment_info{{environment=\"{env}\"}} 1"
        )));
        app.stop().await;
    }
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
}

#[test]
fn check_config_prints_effective_thresholds_and_refuses_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("rollbackd.yaml");
    std::fs::write(
        dir.path().join("trigger_thresholds.yaml"),
        rollbackd::config::SEED_THRESHOLDS,
    )
    .unwrap();
    std::fs::write(
        &good,
        "thresholds_file: trigger_thresholds.yaml\nenvironment: production\n",
    )
    .unwrap();
    let out = bin().arg("check-config").arg(&good).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("environment: production"), "{text}");
    let losses = text
        .lines()
        .find(|l| l.trim_start().starts_with("consecutive_losses"))
        .unwrap();
    assert_eq!(
        losses.split_whitespace().collect::<Vec<_>>(),
        ["consecutive_losses", ">=", "4", "6"]
    );
    let out = bin()
        .args(["check-config", "--environment", "staging"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let wfs = text
        .lines()
        .find(|l| l.trim_start().starts_with("walk_forward_stability"))
        .unwrap();
    assert_eq!(
        wfs.split_whitespace().collect::<Vec<_>>(),
        ["walk_forward_stability", "<", "50", "30"]
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "monitoring:\n  poll_interval: soon\n").unwrap();
    let out = bin().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("bad.yaml: monitoring.poll_interval: invalid duration \"soon\""),
        "{err}"
    );
    let out = bin()
        .args(["check-config", "--environment", "qa"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains(
        "environment: \"qa\" is not defined under environments (defined: production, staging)"
    ));
    let out = bin()
        .arg("check-config")
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The real `rollbackd serve` binary on a fixed free port, so it can be killed and started
/// again at the same address.
struct BinaryDaemon {
    config: std::path::PathBuf,
    listen: String,
    url: String,
}

impl BinaryDaemon {
    fn configure(dir: &std::path::Path, target: &str, o: &Options) -> BinaryDaemon {
        let config = dir.join("rollbackd.yaml");
        std::fs::write(&config, config_yaml(target, o)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        BinaryDaemon {
            config,
            listen: format!("127.0.0.1:{port}"),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Starts it and waits until `/-/ready` answers 200.
    async fn start(&self) -> tokio::process::Child {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(["--listen", &self.listen])
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        wait_for("the daemon to listen", LONG, || {
            let (http, url) = (http.clone(), self.url.clone());
            async move {
                http.get(format!("{url}/-/ready"))
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
        child
    }
}

/// A crash between "executing" and completion: the real daemon is killed with SIGKILL while
/// the (slow) target holds the switch, then started again on the same history.
#[tokio::test]
async fn a_crash_mid_rollback_is_recovered_at_the_next_start() {
    let sim = TestSim::spawn(Scenario::Steady).await;
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        automatic_rollback: false,
        timeout: "5s",
        ..Default::default()
    };
    let bin = BinaryDaemon::configure(dir.path(), &sim.url, &o);
    let url = bin.url.clone();
    let http = reqwest::Client::new();
    let mut child = bin.start().await;
    sim.put("/v1/sim/scenario", json!({"delay_ms": 3000})).await;
    let req = http
        .post(format!("{url}/api/v1/rollback"))
        .json(&json!({"reason": "crash drill"}))
        .send();
    let pending = tokio::spawn(req);
    let id = wait_for("the switch to reach the target", LONG, || async {
        sim.sim.switches().first().map(|s| s.event_id.clone())
    })
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert!(
        pending.await.unwrap().is_err(),
        "the client saw the daemon die"
    );

    // On disk: the event stopped at executing.
    {
        let conn = rusqlite::Connection::open(dir.path().join("history.db")).unwrap();
        let last: String = conn.query_row("SELECT status FROM rollback_transitions WHERE event_id = ?1 ORDER BY seq DESC LIMIT 1", [&id], |r| r.get(0)).unwrap();
        assert_eq!(last, "executing");
    }
    sim.put("/v1/sim/scenario", json!({"delay_ms": 0})).await;
    let mut child = bin.start().await;
    let e: Value = http
        .get(format!("{url}/api/v1/rollbacks/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["status"], "completed", "{e}");
    assert_eq!(e["note"], "interrupted, then confirmed at start-up");
    let kinds: Vec<&str> = e["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["recovered"]);
    let statuses: Vec<&str> = e["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["pending", "executing", "validating", "completed"]
    );
    assert_eq!(
        sim.sim.switches().len(),
        1,
        "recovery re-validates; it does not switch again"
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn an_interrupted_switch_that_never_landed_is_marked_failed() {
    let sim = TestSim::spawn(Scenario::Steady).await;
    let dir = tempfile::tempdir().unwrap();
    // Leave an event at "executing" as a crash would, with the target never switched.
    {
        let store = rollbackd::store::Store::open(&dir.path().join("history.db")).unwrap();
        let request = rollbackd::store::EventRequest {
            action: rollbackd::domain::Action::Rollback,
            trigger_type: rollbackd::domain::TriggerType::Manual,
            source: "api".into(),
            reason: "crash".into(),
            actor: "ops".into(),
            dry_run: false,
            alert_names: vec![],
            fingerprints: vec![],
            conditions: vec![],
            mode_before: Some("session_targeted".into()),
            parameters_before: None,
            target_mode: "universal_cycle_4".into(),
            target_parameters: [
                ("confidence_threshold".to_string(), 0.55),
                ("risk_reward_ratio".to_string(), 1.8),
            ]
            .into(),
        };
        let ev = rollbackd::store::Event::new(
            "interrupted-1".into(),
            request,
            chrono::Utc::now(),
            rollbackd::domain::EventStatus::Pending,
        );
        store.insert_event(&ev, Default::default()).await.unwrap();
        store
            .transition(
                "interrupted-1",
                rollbackd::domain::EventStatus::Executing,
                Default::default(),
            )
            .await
            .unwrap();
    }
    let app = TestApp::start(
        &sim.url,
        dir.path(),
        &Options {
            automatic_rollback: false,
            ..Default::default()
        },
    )
    .await;
    let (_, e) = app.get("/api/v1/rollbacks/interrupted-1").await;
    assert_eq!(e["status"], "failed");
    assert!(
        e["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("interrupted: mode is session_targeted"),
        "{e}"
    );
    assert_eq!(app.engine.status().in_progress, None);
}

/// SIGTERM drains: the real binary finishes the rollback in flight, then exits 0.
#[tokio::test]
async fn sigterm_lets_the_rollback_in_flight_finish() {
    let sim = TestSim::spawn(Scenario::Steady).await;
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        automatic_rollback: false,
        timeout: "5s",
        ..Default::default()
    };
    let bin = BinaryDaemon::configure(dir.path(), &sim.url, &o);
    let url = bin.url.clone();
    let http = reqwest::Client::new();
    let mut child = bin.start().await;
    sim.put("/v1/sim/scenario", json!({"delay_ms": 1000})).await;
    let pending = tokio::spawn(
        http.post(format!("{url}/api/v1/rollback"))
            .json(&json!({"reason": "drain drill"}))
            .send(),
    );
    wait_for("the switch to reach the target", LONG, || async {
        sim.sim.switches().first().map(|_| ())
    })
    .await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("drained within 20 s")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let answer = pending
        .await
        .unwrap()
        .expect("the in-flight request was answered before the exit");
    let e: Value = answer.json().await.unwrap();
    assert_eq!(e["status"], "completed", "{e}");
    let conn = rusqlite::Connection::open(dir.path().join("history.db")).unwrap();
    let last: String = conn
        .query_row(
            "SELECT status FROM rollback_transitions ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(last, "completed");
}
