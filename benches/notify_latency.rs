//! Execution to people: from a manual rollback's request until the first page (the SMS sink)
//! carries its event id, through the SHIPPED Prometheus rules and Alertmanager routes, with
//! rollbackd's direct notice to Alertmanager off (the rule alone: scrape, evaluation, then
//! Alertmanager) and on (rollbackd posts the alert itself when the rollback executes). Fresh
//! processes per run; loopback only; bounded in runs and time.
//!
//! cargo bench --bench notify_latency

#[path = "../tests/it/harness/stack.rs"]
mod stack;
#[path = "../tests/it/harness/wait.rs"]
mod wait;

use rollbackd::engine::Engine;
use rollbackd::simulator::{Scenario, Simulator};
use serde_json::json;
use stack::{loopback_addr, AlertingStack, Shared, Wiring};
use std::path::Path;
use std::time::{Duration, Instant};
use wait::wait_until;

const RUNS: usize = 5;
const LIMIT: Duration = Duration::from_secs(40);
const WEBHOOK_TOKEN: &str = "webhook-token-for-the-bench-01";

async fn simulator() -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Simulator::new(Scenario::Steady).router();
    (
        url,
        tokio::spawn(async move { axum::serve(listener, app).await }),
    )
}

async fn daemon(
    target: &str,
    alertmanager: &str,
    direct: bool,
    dir: &Path,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let yaml = format!(
        "storage: {{ path: h.db }}\ntarget: {{ url: \"{target}\", timeout: 500ms }}\nmonitoring: {{ poll_interval: 50ms, automatic_rollback: false }}\nvalidation: {{ stability_window: 1s }}\nalertmanager: {{ urls: [\"http://{alertmanager}\"], direct_notify: {direct} }}\n"
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

async fn one_run(direct: bool) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let (sim_url, sim_server) = simulator().await;
    let am = loopback_addr();
    let (url, stop, server) = daemon(&sim_url, &am, direct, dir.path()).await;
    let sinks = Shared::default();
    let stack = AlertingStack::start(Wiring {
        dir: dir.path(),
        daemon: &url,
        webhook_token: WEBHOOK_TOKEN,
        alertmanagers: std::slice::from_ref(&am),
        sinks: &sinks,
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
    let asked = Instant::now();
    let event: serde_json::Value = http
        .post(format!("{url}/api/v1/rollback"))
        .json(&json!({"reason": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = event["id"].as_str().unwrap().to_owned();
    wait_until("the page carrying the event id", LIMIT, || async {
        let s = sinks.lock().unwrap();
        s.http
            .iter()
            .any(|(path, body)| path.starts_with("/sns") && body.contains(&id))
            .then_some(())
    })
    .await;
    let took = asked.elapsed();
    drop(stack);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), server).await;
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
    println!("manual rollback -> first SMS page with its event id (shipped rules and routes), {RUNS} runs each");
    for direct in [false, true] {
        let mut ms: Vec<f64> = (0..RUNS)
            .map(|_| rt.block_on(one_run(direct)).as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let how = if direct {
            "direct notice on "
        } else {
            "rule only         "
        };
        println!(
            "  {how} min {:.0} ms  median {:.0} ms  max {:.0} ms  (all: {})",
            ms[0],
            ms[RUNS / 2],
            ms[RUNS - 1],
            ms.iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
