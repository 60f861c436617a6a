//! Breach to rollback validated through Prometheus and Alertmanager with the SHIPPED intervals
//! (alerting/prometheus.yml, alerting/rules/, alerting/alertmanager.yml): the daemon's own
//! automatic rollback is off, so the path is scrape -> rule evaluation -> Alertmanager ->
//! webhook -> rollback -> validation. Fresh processes per run (so no Alertmanager group state
//! carries over); loopback only; bounded in runs and time.
//!
//! cargo bench --bench alert_path

#[path = "../tests/it/harness/stack.rs"]
mod stack;
#[path = "../tests/it/harness/wait.rs"]
mod wait;

use rollbackd::engine::Engine;
use rollbackd::simulator::{Scenario, Simulator};
use serde_json::{json, Value};
use stack::{loopback_addr, AlertingStack, Shared, Wiring};
use std::path::Path;
use std::time::{Duration, Instant};
use wait::wait_until;

const RUNS: usize = 7;
const LIMIT: Duration = Duration::from_secs(30);
const WEBHOOK_TOKEN: &str = "webhook-token-for-the-bench-01";

/// A steady simulator on loopback: its URL, the simulator to ask what it applied, its server.
async fn simulator() -> (
    String,
    Simulator,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sim = Simulator::new(Scenario::Steady);
    let app = sim.router();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    (url, sim, server)
}

/// The daemon in this process, guarding `target` (automatic rollback off, the webhook's token
/// configured), its history in `dir`: its URL, the sender that drains it, and the server.
async fn daemon(
    target: &str,
    dir: &Path,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let yaml = format!(
        "storage: {{ path: h.db }}\ntarget: {{ url: \"{target}\", timeout: 500ms }}\nmonitoring: {{ poll_interval: 50ms, automatic_rollback: false }}\nvalidation: {{ stability_window: 1s }}\nauth:\n  tokens:\n    - {{ name: alertmanager, role: webhook, token: \"{WEBHOOK_TOKEN}\" }}\n"
    );
    let cfg = rollbackd::config::from_str(&yaml, dir, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let engine = Engine::start(cfg).await.unwrap();
    let (stop, drained) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rollbackd::http::serve(listener, engine, async move {
        let _ = drained.await;
    }));
    (url, stop, server)
}

async fn one_run() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let (sim_url, sim, sim_server) = simulator().await;
    let (url, stop, server) = daemon(&sim_url, dir.path()).await;
    let stack = AlertingStack::start(Wiring {
        dir: dir.path(),
        daemon: &url,
        webhook_token: WEBHOOK_TOKEN,
        alertmanagers: &[loopback_addr()],
        sinks: &Shared::default(),
        limit: LIMIT,
    })
    .await;
    // Land anywhere in the scrape and evaluation cycles (both 1 s).
    let phase = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(Duration::from_millis(1000 + u64::from(phase))).await;
    let http = reqwest::Client::new();
    let breach = Instant::now();
    let put = http
        .put(format!("{sim_url}/v1/sim/metrics"))
        .json(&json!({"walk_forward_stability": 30.0}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    wait_until("the validated rollback", LIMIT, || async {
        let v: Value = http
            .get(format!("{url}/api/v1/rollbacks?limit=500"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["events"]
            .as_array()?
            .iter()
            .find(|e| e["trigger_type"] == "alertmanager" && e["status"] == "completed")
            .map(|_| ())
    })
    .await;
    let took = breach.elapsed();
    assert_eq!(sim.switches().len(), 1);
    drop(stack);
    // Drained, so no daemon from this run polls during the next.
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the daemon drains within 20s")
        .unwrap()
        .unwrap();
    sim_server.abort();
    took
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut ms: Vec<f64> = (0..RUNS)
        .map(|_| rt.block_on(one_run()).as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    println!("breach -> rollback validated through Prometheus and Alertmanager (shipped intervals), {RUNS} runs");
    println!(
        "  min {:.0} ms  median {:.0} ms  max {:.0} ms",
        ms[0],
        ms[RUNS / 2],
        ms[RUNS - 1]
    );
    println!(
        "  all: {}",
        ms.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
