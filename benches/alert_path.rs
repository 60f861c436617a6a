//! Breach to rollback validated through Prometheus and Alertmanager with the SHIPPED intervals
//! (alerting/prometheus.yml, alerting/rules/, alerting/alertmanager.yml): the daemon's own
//! automatic rollback is off, so the path is scrape -> rule evaluation -> Alertmanager ->
//! webhook -> rollback -> validation. Fresh processes per run (so no Alertmanager group state
//! carries over); loopback only; bounded in runs and time.
//!
//! cargo bench --bench alert_path

#[path = "../tests/common/mod.rs"]
mod common;

use common::stack::*;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const RUNS: usize = 7;
const LIMIT: Duration = Duration::from_secs(30);

async fn one_run() -> Duration {
    let stack = AlertLoop::start(1, LIMIT).await;
    // Land anywhere in the scrape and evaluation cycles (both 1 s).
    let phase = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(Duration::from_millis(1000 + u64::from(phase))).await;
    let AlertLoop { sim, app, .. } = &stack;
    let breach = Instant::now();
    sim.put("/v1/sim/metrics", json!({"walk_forward_stability": 30.0}))
        .await;
    wait_for("the validated rollback", LIMIT, || async {
        app.events()
            .await
            .into_iter()
            .find(|e| e["trigger_type"] == "alertmanager" && e["status"] == "completed")
            .map(|_| ())
    })
    .await;
    let took = breach.elapsed();
    assert_eq!(sim.sim.switches().len(), 1);
    // Drained, so no daemon from this run polls during the next.
    let AlertLoop { app, .. } = stack;
    app.stop().await;
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
