//! What the process benches share: the release binary started as `rollbackd simulate` and
//! `rollbackd serve` (both on 127.0.0.1:0, the bound address read from their log), the
//! daemon's RSS and open descriptors from /proc, and Alertmanager deliveries.
//!
//! Each bench uses part of it.
#![allow(dead_code)]

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WEBHOOK_TOKEN: &str = "webhook-token-for-benchmarks-01";
pub const OPERATOR_TOKEN: &str = "operator-token-for-benchmarks-01";
pub const ADMIN_TOKEN: &str = "admin-token-for-benchmarks-0001";

/// The binary under test: `ROLLBACKD_BENCH_BIN` runs the same load against another build (an
/// older commit, say), so two versions can be compared side by side on the same machine.
pub fn bin() -> String {
    std::env::var("ROLLBACKD_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_rollbackd").to_string())
}

/// An env var as a number, or `default`.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `rollbackd` child process, killed when dropped.
pub struct Proc {
    pub child: Child,
    /// `http://127.0.0.1:<port>`, as the process logged it.
    pub url: String,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `bin args...` and waits (bounded) for the log line with `marker` and its `addr=`;
/// stderr is drained afterwards so the child never blocks on it.
pub fn spawn_logged(args: &[&str], marker: &str, within: Duration) -> Proc {
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the rollbackd binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent && line.contains(&wanted) {
                let addr = line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("addr="))
                    .map(str::to_string);
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    let addr = rx
        .recv_timeout(within)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{args:?} did not log {marker:?} with its address in time"));
    Proc {
        child,
        url: format!("http://{addr}"),
    }
}

pub fn simulator() -> Proc {
    spawn_logged(
        &["simulate", "--listen", "127.0.0.1:0"],
        "simulator serving",
        Duration::from_secs(10),
    )
}

/// The config of a benchmarked daemon: three tokens, the history in `dir`, listening on
/// 127.0.0.1:0; `extra` is appended (top-level YAML keys not set here).
pub fn write_config(dir: &Path, target: &str, extra: &str) -> PathBuf {
    let path = dir.join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: \"127.0.0.1:0\"\nstorage: {{ path: {} }}\ntarget: {{ url: \"{target}\" }}\nauth:\n  tokens:\n    - {{ name: am, role: webhook, token: \"{WEBHOOK_TOKEN}\" }}\n    - {{ name: ops, role: operator, token: \"{OPERATOR_TOKEN}\" }}\n    - {{ name: boss, role: admin, token: \"{ADMIN_TOKEN}\" }}\n{extra}",
            dir.join("h.db").display()
        ),
    )
    .unwrap();
    path
}

/// `rollbackd serve --config <config>`, returned once it logged its address (within `within`).
pub fn daemon(config: &Path, within: Duration) -> Proc {
    spawn_logged(
        &["serve", "--config", config.to_str().unwrap()],
        "rollbackd serving",
        within,
    )
}

/// Waits (bounded) until `/-/ready` answers 200.
pub async fn wait_ready(client: &reqwest::Client, url: &str, within: Duration) {
    let start = Instant::now();
    while client
        .get(format!("{url}/-/ready"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(start.elapsed() < within, "the daemon did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A field of /proc/<pid>/status in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// CPU time (user + system) `pid` has used, in microseconds (clock ticks of 10 ms).
pub fn cpu_us(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) * 10_000
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// An Alertmanager (version 4) delivery of one firing alert; `action` labels it
/// `action="rollback"`.
pub fn delivery(fingerprint: &str, action: bool) -> String {
    let mut labels = json!({"alertname": "WalkForwardStabilityCritical", "condition_type": "walk_forward_stability", "severity": "critical"});
    if action {
        labels["action"] = json!("rollback");
    }
    json!({"version": "4", "groupKey": format!("{{}}:{{fp=\"{fingerprint}\"}}"), "truncatedAlerts": 0, "status": "firing",
           "receiver": "rollbackd-webhook", "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {},
           "externalURL": "http://alertmanager:9093",
           "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "bench"},
                       "startsAt": "2026-11-23T10:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
                       "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}]})
    .to_string()
}

/// The value at quantile `p` of sorted `v`.
pub fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}
