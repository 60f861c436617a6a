//! Load on the daemon's HTTP surface: the real release binary (`rollbackd serve`) as a child
//! process against the real simulator, driven from this process over loopback with keep-alive
//! connections. Every loop is bounded in count and time. The load generator shares the
//! machine's 2 cores with the daemon, so the numbers are a floor.
//!
//! cargo bench --bench http_load

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{delivery, status_kib, WEBHOOK_TOKEN as TOKEN};

const CONCURRENCY: usize = 32;

struct Report {
    count: usize,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `total` requests from CONCURRENCY workers; `make(i)` builds request i. Bounded by `limit`.
async fn load<F>(total: usize, limit: Duration, make: F) -> Report
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (make, next) = (make.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total || start.elapsed() > limit {
                    break;
                }
                let t = Instant::now();
                let r = make(i).send().await.expect("request");
                assert!(r.status().is_success(), "status {}", r.status());
                let _ = r.bytes().await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize];
    Report {
        count: all.len(),
        per_sec: all.len() as f64 / secs,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = common::simulator();
    let config = common::write_config(
        dir.path(),
        &sim.url,
        "monitoring: { automatic_rollback: false }\n",
    );
    let daemon = common::daemon(&config, std::time::Duration::from_secs(10));
    let pid = daemon.pid();
    let url = daemon.url.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build().unwrap();
        let ready = Instant::now();
        while client.get(format!("{url}/-/ready")).send().await.map(|r| !r.status().is_success()).unwrap_or(true) {
            assert!(ready.elapsed() < Duration::from_secs(10), "the daemon did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = status_kib(pid, "VmRSS:");

        // (a) one already-recorded alert, resent over and over
        let body = delivery("resent-0001", true);
        let r = client.post(format!("{url}/api/v1/alertmanager")).bearer_auth(TOKEN).header("content-type", "application/json").body(body.clone()).send().await.unwrap();
        assert!(r.status().is_success());
        let (c, u, b) = (client.clone(), url.clone(), body.clone());
        let storm = load(100_000, Duration::from_secs(20), move |_| c.post(format!("{u}/api/v1/alertmanager")).bearer_auth(TOKEN).header("content-type", "application/json").body(b.clone())).await;

        // (b) distinct alerts, each durably recorded before its 2xx
        let (c, u) = (client.clone(), url.clone());
        let distinct = load(20_000, Duration::from_secs(20), move |i| {
            c.post(format!("{u}/api/v1/alertmanager")).bearer_auth(TOKEN).header("content-type", "application/json").body(delivery(&format!("distinct-{i:08}"), false))
        })
        .await;
        let peak = status_kib(pid, "VmHWM:");
        let after = status_kib(pid, "VmRSS:");

        // (c) /metrics, one scraper at a time (latency, not throughput)
        let mut lat = Vec::new();
        for _ in 0..2000 {
            let t = Instant::now();
            let r = client.get(format!("{url}/metrics")).send().await.unwrap();
            let _ = r.bytes().await.unwrap();
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        lat.sort_by(f64::total_cmp);
        let m = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];

        let recorded: serde_json::Value = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.map(|t| {
            let v = t.lines().find(|l| l.starts_with("rollback_webhook_alerts_deduplicated_total ")).and_then(|l| l.rsplit(' ').next()).unwrap_or("0").to_string();
            json!(v)
        }).unwrap();

        println!("HTTP surface under load ({CONCURRENCY} keep-alive connections, loopback, 2 cores shared with the load generator)");
        println!("  webhook, resend storm of one recorded alert: {} deliveries, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms (deduplicated counter {recorded})", storm.count, storm.per_sec, storm.p50_ms, storm.p99_ms);
        println!("  webhook, distinct alerts (durable before 2xx): {} deliveries, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms", distinct.count, distinct.per_sec, distinct.p50_ms, distinct.p99_ms);
        println!("  /metrics, sequential: p50 {:.3} ms, p99 {:.3} ms", m(0.5), m(0.99));
        println!("  daemon RSS: idle {:.1} MiB, after load {:.1} MiB, peak {:.1} MiB", idle as f64 / 1024.0, after as f64 / 1024.0, peak as f64 / 1024.0);
    });
    drop(daemon);
    drop(sim);
}
