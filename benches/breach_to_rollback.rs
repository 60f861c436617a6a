//! Breach to rollback validated, through the watchdog path: the time from the simulator serving
//! a critical sample to the rollback applied on the target and validated, at a 100 ms poll.
//! Also the daemon's idle RSS, read from the real binary. Loopback only, bounded in count and time.
//!
//! cargo bench --bench breach_to_rollback

use rollbackd::engine::{Engine, StreamMessage};
use rollbackd::simulator::{Scenario, Simulator};
use std::time::{Duration, Instant};

const RUNS: usize = 30;
const PER_RUN_LIMIT: Duration = Duration::from_secs(5);

async fn one_run() -> (Duration, u64) {
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}", sim_listener.local_addr().unwrap());
    let sim = Simulator::new(Scenario::Steady);
    let app = sim.router();
    let sim_task = tokio::spawn(async move { axum::serve(sim_listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "storage: {{ path: h.db }}\ntarget: {{ url: \"{sim_url}\", timeout: 1s }}\nmonitoring: {{ poll_interval: 100ms }}\nvalidation: {{ stability_window: 1h }}\n"
    );
    let cfg = rollbackd::config::from_str(&yaml, dir.path(), None).unwrap();
    let engine = Engine::start(cfg).await.unwrap();
    let mut rx = engine.subscribe();
    // Let the watchdog settle on a healthy target first.
    let settle = Instant::now();
    while !engine.status().target.up {
        assert!(settle.elapsed() < PER_RUN_LIMIT, "the target never came up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Land anywhere in the poll cycle: the phase is what makes the spread.
    tokio::time::sleep(Duration::from_millis(100 + phase_ms())).await;
    let http = reqwest::Client::new();
    let resp = http
        .put(format!("{sim_url}/v1/sim/metrics"))
        .json(&serde_json::json!({"walk_forward_stability": 30.0}))
        .send()
        .await
        .unwrap();
    // From here on the simulator serves the critical sample.
    let served = Instant::now();
    assert!(resp.status().is_success());
    let deadline = tokio::time::sleep(PER_RUN_LIMIT);
    tokio::pin!(deadline);
    let (elapsed, exec_ms) = loop {
        tokio::select! {
            _ = &mut deadline => panic!("no validated rollback within {PER_RUN_LIMIT:?}"),
            m = rx.recv() => {
                if let Ok(StreamMessage::RollbackEvent(e)) = m {
                    if e.status == rollbackd::domain::EventStatus::Completed {
                        break (served.elapsed(), e.duration_ms.unwrap_or(0));
                    }
                    assert_ne!(e.status, rollbackd::domain::EventStatus::Failed, "{:?}", e.failure_reason);
                }
            }
        }
    };
    assert_eq!(sim.switches().len(), 1);
    engine.shutdown(Duration::from_secs(2)).await;
    sim_task.abort();
    (elapsed, exec_ms)
}

/// 0..100 ms, different each run.
fn phase_ms() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos.wrapping_mul(6364136223846793005) >> 33) % 100
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn idle_rss_kib() -> Option<u64> {
    let dir = tempfile::tempdir().ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    std::fs::write(
        dir.path().join("c.yaml"),
        format!("listen: \"127.0.0.1:{port}\"\nstorage: {{ path: h.db }}\n"),
    )
    .ok()?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args(["serve", "--config"])
        .arg(dir.path().join("c.yaml"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    // Ten seconds of idling: polls to a target that is not there, no scrapes.
    std::thread::sleep(Duration::from_secs(10));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok();
    let _ = child.kill();
    let _ = child.wait();
    status?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks; there is nothing to list
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut totals = Vec::new();
    let mut execs = Vec::new();
    for _ in 0..RUNS {
        let (t, exec) = rt.block_on(one_run());
        totals.push(t.as_secs_f64() * 1000.0);
        execs.push(exec as f64);
    }
    totals.sort_by(f64::total_cmp);
    execs.sort_by(f64::total_cmp);
    println!("breach to rollback validated, watchdog at 100 ms poll, {RUNS} runs");
    println!(
        "  served critical -> completed: min {:.1} ms  p50 {:.1} ms  p90 {:.1} ms  max {:.1} ms",
        totals[0],
        percentile(&totals, 0.5),
        percentile(&totals, 0.9),
        totals[totals.len() - 1]
    );
    println!(
        "  decision -> completed (rollback_execution_time): p50 {:.1} ms  max {:.1} ms",
        percentile(&execs, 0.5),
        execs[execs.len() - 1]
    );
    match idle_rss_kib() {
        Some(kib) => println!(
            "  idle RSS of `rollbackd serve` after 10 s: {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("  idle RSS: could not be read"),
    }
}
