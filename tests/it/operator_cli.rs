//! The command line as an operator uses it: the real `rollbackd` binary as a client of the real
//! daemon (exit codes, pipes, tables, tokens, completions, man page, logs, SIGHUP, rules, the
//! systemd unit).

use crate::harness::files::repo;
use crate::harness::library::TestSim;
use crate::harness::metrics::Metrics;
use crate::harness::wait::wait_until;
use crate::harness::*;
use rollbackd::exit::Exit;
use rollbackd::simulator::Scenario;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const LIMIT: Duration = Duration::from_secs(60);

fn bin() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"));
    c.env_remove("ROLLBACKD_URL")
        .env_remove("ROLLBACKD_TOKEN")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    c
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn expect(&self, exit: Exit, what: &str) {
        assert_eq!(
            self.code,
            Some(i32::from(exit.code())),
            "{what}: expected {exit:?}\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
    }
}

async fn cli(args: &[&str]) -> Run {
    let out = tokio::time::timeout(LIMIT, bin().args(args).output())
        .await
        .expect("the CLI returns in time")
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn auth() -> crate::harness::app::Builder {
    TestApp::builder().auth()
}

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn refusals_exit_with_their_own_codes() {
    let app = auth().scenario(Scenario::Steady).spawn().await;
    let url = app.url.as_str();
    cli(&["status", "--url", url])
        .await
        .expect(Exit::Ok, "status");
    let r = cli(&["rollback", "--reason", "no token", "--url", url]).await;
    r.expect(Exit::Unauthorized, "401");
    assert!(r.stderr.contains("401 unauthorized"), "{}", r.stderr);
    let r = cli(&[
        "rollback",
        "--reason",
        "viewer",
        "--url",
        url,
        "--token",
        VIEWER_TOKEN,
    ])
    .await;
    r.expect(Exit::Unauthorized, "403");
    let r = cli(&[
        "restore",
        "--reason",
        "nothing to undo",
        "--url",
        url,
        "--token",
        ADMIN_TOKEN,
    ])
    .await;
    r.expect(Exit::NotRolledBack, "restore while session_targeted");
    assert!(r.stderr.contains("409 not_rolled_back"), "{}", r.stderr);
    let long = "x".repeat(501);
    let r = cli(&[
        "rollback", "--reason", &long, "--url", url, "--token", OPS_TOKEN,
    ])
    .await;
    r.expect(Exit::Usage, "a reason the daemon refuses (400)");
    let r = cli(&["rollback", "--reason", " ", "--url", url]).await;
    r.expect(Exit::Usage, "a blank reason (clap)");
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let r = cli(&["status", "--url", &dead]).await;
    r.expect(Exit::Unreachable, "nobody listening");
    assert!(r.stderr.contains("cannot reach rollbackd"), "{}", r.stderr);
    assert!(app.events("").await.is_empty(), "nothing was recorded");
}

#[tokio::test]
async fn the_token_file_is_read_and_named_when_it_is_wrong() {
    let app = auth().scenario(Scenario::Steady).spawn().await;
    let url = app.url.as_str();
    let file = app.dir().join("ops.token");
    std::fs::write(&file, format!("{OPS_TOKEN}\n")).unwrap();
    let path = file.to_str().unwrap();
    let r = cli(&["monitoring", "stop", "--url", url, "--token-file", path]).await;
    r.expect(Exit::Ok, "monitoring stop with a token file");
    assert_eq!(
        app.get("/api/v1/status").await.json["monitoring_active"],
        false
    );
    std::fs::write(&file, "\n").unwrap();
    let r = cli(&["monitoring", "start", "--url", url, "--token-file", path]).await;
    r.expect(Exit::Usage, "an empty token file");
    assert!(
        r.stderr.contains(path) && r.stderr.contains("empty"),
        "{}",
        r.stderr
    );
    let missing = app.dir().join("nope.token");
    let r = cli(&[
        "status",
        "--url",
        url,
        "--token-file",
        missing.to_str().unwrap(),
    ])
    .await;
    r.expect(Exit::Usage, "a missing token file");
    assert!(r.stderr.contains("nope.token"), "{}", r.stderr);
}

/// The switch is accepted but never applied: validation fails, the event ends `failed`.
#[tokio::test]
async fn a_rollback_that_ends_failed_exits_1_also_with_json() {
    let app = TestApp::builder()
        .scenario(Scenario::AcceptsButDoesNotApply)
        .spawn()
        .await;
    app.first_poll().await;
    let url = app.url.as_str();
    let r = cli(&["rollback", "--reason", "drill", "--url", url]).await;
    r.expect(Exit::Failed, "a failed rollback");
    assert!(r.stdout.contains("failed"), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("502 target_error: recovery validation failed"),
        "{}",
        r.stderr
    );
    let r = cli(&[
        "rollback",
        "--reason",
        "drill again",
        "--url",
        url,
        "--json",
    ])
    .await;
    r.expect(Exit::Failed, "a failed rollback, --json");
    let v: Value = serde_json::from_str(&r.stdout).expect("--json prints the answer");
    assert_eq!(
        v["error"]["code"], "target_error",
        "the daemon answers 502: {v}"
    );
    assert_eq!(v["event"]["status"], "failed");
}

/// One rollback holds the slow target; a second request meanwhile, the same once it is done,
/// and the restores around it.
#[tokio::test]
async fn in_progress_already_rolled_back_and_restore_have_their_codes() {
    let app = auth().timeout("20s").spawn().await;
    app.first_poll().await;
    app.sim.set_delay_ms(4000).await;
    let url = app.url.clone();
    let first = bin()
        .args([
            "rollback", "--reason", "first", "--url", &url, "--token", OPS_TOKEN,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the first rollback to execute", LIMIT, || async {
        let status = app.get("/api/v1/status").await.json;
        status["in_progress"].is_string().then_some(())
    })
    .await;
    let r = cli(&[
        "rollback", "--reason", "second", "--url", &url, "--token", OPS_TOKEN,
    ])
    .await;
    r.expect(Exit::InProgress, "a rollback while one executes");
    let out = tokio::time::timeout(LIMIT, first.wait_with_output())
        .await
        .expect("the first rollback returns")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.sim.set_delay_ms(0).await;
    let r = cli(&[
        "rollback", "--reason", "third", "--url", &url, "--token", OPS_TOKEN,
    ])
    .await;
    r.expect(Exit::AlreadyRolledBack, "a rollback in universal_cycle_4");
    let r = cli(&[
        "restore",
        "--reason",
        "fixed",
        "--url",
        &url,
        "--token",
        ADMIN_TOKEN,
    ])
    .await;
    r.expect(Exit::Ok, "restore");
    assert!(r.stdout.contains("completed"), "{}", r.stdout);
}

/// The reader goes away before the CLI writes a byte: no panic, no complaint, the outcome's
/// code. The daemon runs on this test's single thread, so it cannot answer before the pipe
/// is closed.
#[tokio::test]
async fn a_closed_stdout_ends_the_cli_quietly() {
    let app = TestApp::builder().scenario(Scenario::Steady).spawn().await;
    app.first_poll().await;
    let url = app.url.as_str();
    for args in [
        vec!["status", "--url", url],
        vec!["triggers", "--url", url, "--json"],
        vec!["history", "--url", url],
    ] {
        let mut child = bin()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = tokio::time::timeout(LIMIT, child.wait_with_output())
            .await
            .expect("the CLI returns in time")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} complained: {stderr}");
    }
}

#[tokio::test]
async fn output_is_readable_and_json_is_the_answer_unchanged() {
    let app = TestApp::builder().scenario(Scenario::Steady).spawn().await;
    app.first_poll().await;
    let url = app.url.as_str();
    let r = cli(&["history", "--url", url]).await;
    r.expect(Exit::Ok, "history");
    assert_eq!(r.stdout, "no rollbacks recorded\n");
    app.sim
        .set_metrics(json!({"walk_forward_stability": 72.123456789}))
        .await;
    wait_until("the new value", LIMIT, || async {
        let t = app.get("/api/v1/triggers").await.json;
        let wfs = t["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["condition"] == "walk_forward_stability")?
            .clone();
        (wfs["value"] == json!(72.123456789)).then_some(())
    })
    .await;
    let r = cli(&["triggers", "--url", url]).await;
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("walk_forward_stability"))
        .unwrap();
    assert_eq!(
        line.split_whitespace().nth(1),
        Some("72.12"),
        "{}",
        r.stdout
    );
    let r = cli(&["status", "--url", url, "--json"]).await;
    let raw = app.status().await.text;
    let keys = |s: &str| {
        let v: Value = serde_json::from_str(s).unwrap();
        v.as_object().unwrap().keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(keys(&r.stdout), keys(&raw));
    let at = |s: &str, k: &str| s.find(&format!("\"{k}\"")).unwrap();
    assert!(
        at(&r.stdout, "mode") < at(&r.stdout, "version"),
        "the daemon's key order"
    );
}

async fn help(args: &[&str]) -> String {
    let r = cli(args).await;
    r.expect(Exit::Ok, &format!("{args:?}"));
    r.stdout
}

#[tokio::test]
async fn help_lists_the_exit_codes_and_the_allowed_values() {
    for cmd in [
        vec!["--help"],
        vec!["rollback", "--help"],
        vec!["restore", "--help"],
    ] {
        let text = help(&cmd).await;
        for e in Exit::ALL {
            assert!(
                text.contains(&format!("{:>2}  {}", e.code(), e.meaning())),
                "{cmd:?} lacks exit code {}:\n{text}",
                e.code()
            );
        }
    }
    let serve = help(&["serve", "--help"]).await;
    for needle in ["RUST_LOG", "--log.level", "--log.format", "logfmt", "json"] {
        assert!(
            serve.contains(needle),
            "serve --help lacks {needle}:\n{serve}"
        );
    }
    let history = help(&["history", "--help"]).await;
    for needle in ["dry_run", "suppressed", "alertmanager", "watchdog"] {
        assert!(history.contains(needle), "history --help lacks {needle}");
    }
    let sim = help(&["simulate", "--help"]).await;
    assert!(sim.contains("accepts-but-does-not-apply"), "{sim}");
    let restore = help(&["restore", "--help"]).await;
    assert!(
        restore.contains("--dry-run") && restore.contains("--token-file"),
        "{restore}"
    );
}

/// README and docs/api.md carry the same table as the code.
#[test]
fn the_docs_list_every_exit_code() {
    for doc in ["README.md", "docs/api.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        for e in Exit::ALL {
            assert!(
                text.contains(&format!("| {} | {} |", e.code(), e.meaning())),
                "{doc} lacks the row for exit code {}",
                e.code()
            );
        }
    }
}

#[tokio::test]
async fn completions_and_the_man_page_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    let bash = help(&["completions", "bash"]).await;
    assert!(
        bash.contains("rollbackd") && bash.contains("--token-file"),
        "{bash}"
    );
    let file = dir.path().join("rollbackd.bash");
    std::fs::write(&file, &bash).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let text = help(&["completions", shell]).await;
        assert!(text.contains("render-rules"), "{shell}: {text}");
    }
    let man = help(&["man"]).await;
    assert!(
        man.starts_with(".ie") || man.contains(".TH rollbackd"),
        "{man}"
    );
    let page = dir.path().join("rollbackd.1");
    std::fs::write(&page, &man).unwrap();
    let out = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "groff warns: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("render-rules"));
}

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStderr>>;

/// Starts `serve` with `flags` in `dir`; returns it, its stderr, and the first line that
/// mentions `rollbackd serving`.
async fn serve(dir: &Path, flags: &[&str]) -> (tokio::process::Child, Lines, String) {
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = next_line_with(&mut lines, "rollbackd serving").await;
    (child, lines, line)
}

async fn next_line_with(lines: &mut Lines, needle: &str) -> String {
    tokio::time::timeout(LIMIT, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.contains(needle) {
                return l;
            }
        }
        panic!("stderr ended without a line containing {needle:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no line containing {needle:?} in time"))
}

async fn serving_line(dir: &Path, flags: &[&str]) -> String {
    let (mut child, _, line) = serve(dir, flags).await;
    child.kill().await.unwrap();
    line
}

/// systemd's ExecReload sends SIGHUP: the daemon re-reads its config file. New thresholds show
/// on /metrics at once; a file with a mistake is refused, logged, and the running config kept.
#[tokio::test]
async fn sighup_reloads_the_config_and_a_bad_file_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let sim = TestSim::spawn(Scenario::Steady).await;
    let config = dir.path().join("rollbackd.yaml");
    let yaml = TestApp::builder().yaml(&sim.url);
    std::fs::write(&config, &yaml).unwrap();
    let flags = ["--config", config.to_str().unwrap()];
    let (mut child, mut lines, line) = serve(dir.path(), &flags).await;
    let addr = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line}"))
        .to_owned();
    let threshold = |text: &str| {
        Metrics {
            text: text.to_string(),
        }
        .get(
            "trigger_condition_threshold",
            &[("condition_type", "max_drawdown"), ("severity", "critical")],
        )
    };
    let scrape = || async {
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(threshold(&scrape().await), Some(5.0));
    let hup = || crate::harness::binary::signal(&child, "HUP");
    std::fs::write(
        &config,
        format!("{yaml}trigger_conditions:\n  max_drawdown:\n    critical_threshold: 6.5\n    warning_threshold: 4.0\n"),
    )
    .unwrap();
    hup();
    next_line_with(&mut lines, "config reloaded").await;
    assert_eq!(threshold(&scrape().await), Some(6.5));

    std::fs::write(&config, format!("{yaml}cooldown: soon\n")).unwrap();
    hup();
    let refused = next_line_with(&mut lines, "config reload refused").await;
    assert!(
        refused.contains("cooldown"),
        "the mistake is named: {refused}"
    );
    assert_eq!(
        threshold(&scrape().await),
        Some(6.5),
        "the running config is kept"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended the daemon"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn serve_logs_json_or_logfmt_without_escape_codes_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let line = serving_line(dir.path(), &["--log.format", "json"]).await;
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "INFO", "{line}");
    assert_eq!(v["message"], "rollbackd serving", "{line}");
    assert!(
        v["addr"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
    let line = serving_line(dir.path(), &["--log.level", "info"]).await;
    assert!(!line.contains('\x1b'), "escape codes in a pipe: {line:?}");
    assert!(line.starts_with("ts="), "{line}");
    for pair in [
        "level=info",
        "target=rollbackd",
        "msg=\"rollbackd serving\"",
        "addr=127.0.0.1:",
    ] {
        assert!(line.contains(pair), "{pair} missing: {line}");
    }
}

fn promtool_check(files: &[PathBuf]) {
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .args(files)
        .output()
        .expect("promtool (Debian package prometheus) is installed");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn render_rules_puts_runbook_links_under_the_given_base() {
    let base = "https://wiki.example.org/ops/rollbackd-runbook";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerting");
    let r = cli(&[
        "render-rules",
        "--runbook-base-url",
        base,
        "--out",
        out.to_str().unwrap(),
    ])
    .await;
    r.expect(Exit::Ok, "render-rules --out");
    let rules: Vec<PathBuf> = rollbackd::rules::RULE_FILES
        .iter()
        .map(|(f, _)| out.join("rules").join(f))
        .collect();
    assert!(rules.iter().any(|f| f.ends_with("holds.yml")), "{rules:?}");
    promtool_check(&rules);
    for f in &rules {
        let text = std::fs::read_to_string(f).unwrap();
        let urls: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("runbook_url: "))
            .collect();
        assert!(!urls.is_empty());
        assert!(
            urls.iter().all(|u| u.starts_with(&format!("\"{base}#"))),
            "{urls:?}"
        );
    }
    let tmpl = std::fs::read_to_string(out.join("templates/rollbackd.tmpl")).unwrap();
    assert!(tmpl.contains(&format!(
        "{{{{ define \"rollbackd.runbook_url\" }}}}{base}{{{{ end }}}}"
    )));

    let r = cli(&["render-rules", "--runbook-base-url", base]).await;
    r.expect(Exit::Ok, "render-rules to stdout");
    let single = dir.path().join("all.yml");
    std::fs::write(&single, &r.stdout).unwrap();
    promtool_check(&[single]);
    let r = cli(&["render-rules"]).await;
    assert!(
        r.stdout.contains(rollbackd::rules::DEFAULT_RUNBOOK_BASE),
        "the default base"
    );

    let r = cli(&[
        "render-rules",
        "--runbook-base-url",
        "https://x/runbook#top",
    ])
    .await;
    r.expect(Exit::Usage, "a base with an anchor");
    assert!(r.stderr.contains("--runbook-base-url"), "{}", r.stderr);
}

/// The shipped rules keep passing promtool's own unit tests with the default base.
#[test]
fn shipped_rules_pass_promtool_test_rules() {
    let tests: Vec<PathBuf> = std::fs::read_dir(repo().join("alerting/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    let out = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .args(&tests)
        .current_dir(repo().join("alerting"))
        .output()
        .expect("promtool (Debian package prometheus) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The sample unit's hardening, key by key, and `systemd-analyze verify` on it (with this
/// build's binary in ExecStart, which verify requires to exist).
#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(repo().join("deploy/rollbackd.service")).unwrap();
    let keys: Vec<(String, String)> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';', '[']))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {l}"));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let value = |k: &str| {
        keys.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("the unit lacks {k}="))
    };
    assert_eq!(value("NoNewPrivileges"), "yes");
    assert_eq!(value("ProtectSystem"), "strict");
    assert_eq!(value("ProtectHome"), "yes");
    assert_eq!(value("PrivateTmp"), "yes");
    assert_eq!(value("StateDirectory"), "rollbackd");
    assert_eq!(value("CapabilityBoundingSet"), "");
    assert_eq!(value("RestrictAddressFamilies"), "AF_INET AF_INET6 AF_UNIX");
    assert_eq!(value("SystemCallFilter"), "@system-service");
    assert_eq!(value("Restart"), "on-failure");
    assert!(value("ExecReload").contains("SIGHUP"));
    assert!(value("ReadWritePaths").contains("/var/lib/rollbackd"));
    assert!(value("DynamicUser") == "yes" || keys.iter().any(|(k, _)| k == "User"));
    assert!(value("ExecStart").contains("serve --config /etc/rollbackd/rollbackd.yaml"));

    let dir = tempfile::tempdir().unwrap();
    let installed = unit.replace("/usr/local/bin/rollbackd", env!("CARGO_BIN_EXE_rollbackd"));
    let path = dir.path().join("rollbackd.service");
    std::fs::write(&path, installed).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("rollbackd.service:"),
        "warnings on the unit: {stderr}"
    );
}
