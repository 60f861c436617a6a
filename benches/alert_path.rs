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
use rollbackd::simulator::Scenario;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RUNS: usize = 7;
const LIMIT: Duration = Duration::from_secs(30);

async fn one_run() -> Duration {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sinks: Shared = Default::default();
    let http_sink = http_sink(sinks.clone()).await;
    let smtp = smtp_sink(sinks).await;
    let sim = TestSim::spawn(Scenario::Steady).await;
    let app_dir = dir.join("daemon");
    std::fs::create_dir(&app_dir).unwrap();
    let app = TestApp::start(
        &sim.url,
        &app_dir,
        &Options {
            automatic_rollback: false,
            auth: true,
            ..Default::default()
        },
    )
    .await;
    let am_addr = format!("127.0.0.1:{}", free_port());
    let am_config = render_alertmanager(dir, &app.url, &http_sink, &smtp);
    std::fs::create_dir(dir.join("am")).unwrap();
    let _am = start(
        "alertmanager",
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_config.display()),
            format!("--storage.path={}", dir.join("am").display()),
            format!("--web.listen-address={am_addr}"),
            "--cluster.listen-address=".into(),
        ],
        dir,
    );
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let prom_config = render_prometheus(
        dir,
        app.url.trim_start_matches("http://"),
        &prom_addr,
        std::slice::from_ref(&am_addr),
    );
    let _prom = start(
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", prom_config.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address={prom_addr}"),
        ],
        dir,
    );
    let http = reqwest::Client::new();
    let prom = format!("http://{prom_addr}");
    wait_for(
        "Prometheus to scrape rollbackd and find Alertmanager",
        LIMIT,
        || async {
            let up: Value = http
                .get(format!("{prom}/api/v1/query"))
                .query(&[("query", "up{job=\"rollbackd\"} == 1")])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let am: Value = http
                .get(format!("{prom}/api/v1/query"))
                .query(&[(
                    "query",
                    "prometheus_notifications_alertmanagers_discovered == 1",
                )])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (!up["data"]["result"].as_array()?.is_empty()
                && !am["data"]["result"].as_array()?.is_empty())
            .then_some(())
        },
    )
    .await;
    // Land anywhere in the scrape and evaluation cycles.
    tokio::time::sleep(Duration::from_millis(
        1000 + (Instant::now().elapsed().subsec_nanos() as u64 % 1000),
    ))
    .await;
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
