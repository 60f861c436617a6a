//! The webhook's resend storm against the daemon's own `/-/healthy`, side by side with `wrk`
//! in one run: the release binary (`rollbackd serve` against `rollbackd simulate`) is started
//! once, one delivery is recorded, then rounds of `wrk` alternate between the two paths (same
//! connections, threads and duration). The daemon's RSS is sampled every 50 ms during the
//! rounds. Then `STREAM_CLIENTS` WebSocket clients open `GET /api/v1/stream` at once and the
//! daemon's RSS is read with all of them connected.
//!
//! cargo bench --bench wrk_compare
//!
//! Knobs (env): WRK_ROUNDS (3), WRK_SECS (10), WRK_CONNECTIONS (64), WRK_THREADS (2),
//! STREAM_CLIENTS (1000), WRK (the wrk binary, `wrk`), ROLLBACKD_BENCH_BIN (another build).
//! wrk shares the machine's cores with the daemon: compare the two paths, not machines.

mod common;

use common::{env_or, mib, rss_kib, status_kib, WEBHOOK_TOKEN};
use futures_util::StreamExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct WrkRun {
    per_sec: f64,
    requests: f64,
    p99_ms: f64,
    bad: u64,
}

/// One wrk run; `script` set for the webhook. Panics when wrk fails to run.
fn wrk(url: &str, script: Option<(&str, &str)>, secs: u64, conns: u32, threads: u32) -> WrkRun {
    let wrk = std::env::var("WRK").unwrap_or_else(|_| "wrk".into());
    let mut cmd = Command::new(wrk);
    cmd.args([
        format!("-t{threads}"),
        format!("-c{conns}"),
        format!("-d{secs}s"),
        "--latency".into(),
        // wrk's own timeout: a stuck request is counted, not waited for.
        "--timeout".into(),
        "5s".into(),
    ]);
    if let Some((body, token)) = script {
        cmd.arg("-s")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/benches/wrk/webhook.lua"
            ))
            .env("WRK_BODY_FILE", body)
            .env("WRK_TOKEN", token);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "wrk failed: {text}");
    let num_after = |prefix: &str| -> Option<f64> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| {
                let (n, scale) = if let Some(n) = v.strip_suffix("ms") {
                    (n, 1.0)
                } else if let Some(n) = v.strip_suffix("us") {
                    (n, 0.001)
                } else if let Some(n) = v.strip_suffix('s') {
                    (n, 1000.0)
                } else {
                    (v, 1.0)
                };
                n.parse::<f64>().ok().map(|x| x * scale)
            })
    };
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    let per_sec = num_after("Requests/sec:").unwrap_or_else(|| panic!("no Requests/sec in {text}"));
    let p99_ms = num_after("99%").unwrap_or(f64::NAN);
    let bad = num_after("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64
        + text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Socket errors:"))
            .map(|rest| {
                rest.split(',')
                    .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
    WrkRun {
        per_sec,
        requests,
        p99_ms,
        bad,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = env_or("WRK_ROUNDS", 3);
    let secs: u64 = env_or("WRK_SECS", 10);
    let conns: u32 = env_or("WRK_CONNECTIONS", 64);
    let threads: u32 = env_or("WRK_THREADS", 2);
    let clients: usize = env_or("STREAM_CLIENTS", 1000);

    let dir = tempfile::tempdir().unwrap();
    let sim = common::simulator();
    let config = common::write_config(
        dir.path(),
        &sim.url,
        &format!(
            "monitoring: {{ automatic_rollback: false }}\nlimits: {{ max_connections: {}, max_stream_subscribers: {} }}\n",
            (clients + conns as usize + 64).max(256),
            clients.max(1)
        ),
    );
    let daemon = common::daemon(&config, Duration::from_secs(10));
    let pid = daemon.pid();
    let url = daemon.url.clone();
    let body_file = dir.path().join("delivery.json");
    let body = common::delivery("resent-0001", true);
    std::fs::write(&body_file, &body).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    rt.block_on(async {
        common::wait_ready(&client, &url, Duration::from_secs(10)).await;
        let r = client
            .post(format!("{url}/api/v1/alertmanager"))
            .bearer_auth(WEBHOOK_TOKEN)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "the first delivery: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let idle = rss_kib(pid);

    // Peak RSS while wrk runs, sampled (VmHWM also counts start-up and is read at the end).
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let hook = format!("{url}/api/v1/alertmanager");
    let healthy = format!("{url}/-/healthy");
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    // The daemon's CPU time per answered request: steadier than req/s when other work shares
    // the cores.
    let cpu_per_req = |run: &dyn Fn() -> WrkRun| {
        let before = common::cpu_us(pid);
        let r = run();
        let used = common::cpu_us(pid) - before;
        let per = used as f64 / r.requests;
        (r, per)
    };
    println!(
        "wrk, {conns} connections, {threads} threads, {secs} s per run, {rounds} rounds (2 cores shared with wrk)"
    );
    println!(
        "{:>5}  {:>14}  {:>7}  {:>8}  {:>14}  {:>7}  {:>8}  {:>6}  {:>9}",
        "round",
        "webhook req/s",
        "p99 ms",
        "CPU us",
        "healthy req/s",
        "p99 ms",
        "CPU us",
        "ratio",
        "CPU ratio"
    );
    for round in 1..=rounds {
        let (w, w_cpu) = cpu_per_req(&|| {
            wrk(
                &hook,
                Some((body_file.to_str().unwrap(), WEBHOOK_TOKEN)),
                secs,
                conns,
                threads,
            )
        });
        let (h, h_cpu) = cpu_per_req(&|| wrk(&healthy, None, secs, conns, threads));
        assert_eq!(w.bad, 0, "the webhook answered errors under load");
        assert_eq!(h.bad, 0, "/-/healthy answered errors under load");
        let ratio = w.per_sec / h.per_sec;
        ratios.push(ratio);
        cpu_ratios.push(h_cpu / w_cpu);
        println!(
            "{round:>5}  {:>14.0}  {:>7.2}  {:>8.1}  {:>14.0}  {:>7.2}  {:>8.1}  {:>4.0} %  {:>7.0} %",
            w.per_sec,
            w.p99_ms,
            w_cpu,
            h.per_sec,
            h.p99_ms,
            h_cpu,
            ratio * 100.0,
            h_cpu / w_cpu * 100.0
        );
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    ratios.sort_by(f64::total_cmp);
    cpu_ratios.sort_by(f64::total_cmp);
    if ratios.is_empty() {
        ratios.push(f64::NAN);
        cpu_ratios.push(f64::NAN);
    }
    println!(
        "daemon CPU per request, healthy / webhook: median {:.0} %",
        common::pct(&cpu_ratios, 0.5) * 100.0
    );
    println!(
        "webhook / healthy: median {:.0} % (min {:.0} %, max {:.0} %; goal >= 80 %)",
        common::pct(&ratios, 0.5) * 100.0,
        ratios[0] * 100.0,
        ratios[ratios.len() - 1] * 100.0
    );
    println!(
        "daemon RSS: idle {:.1} MiB, peak under wrk {:.1} MiB (goal <= 30 MiB), VmHWM {:.1} MiB",
        mib(idle),
        mib(peak.load(Ordering::Relaxed)),
        mib(status_kib(pid, "VmHWM:"))
    );

    if clients > 0 {
        let before = rss_kib(pid);
        let ws = format!("{}/api/v1/stream", url.replacen("http", "ws", 1));
        rt.block_on(async {
            let start = Instant::now();
            let mut sockets = Vec::with_capacity(clients);
            // Opened 100 at a time (the accept backlog), each read up to its hello.
            for chunk in (0..clients).collect::<Vec<_>>().chunks(100) {
                let opened = futures_util::future::join_all(chunk.iter().map(|_| {
                    let ws = ws.clone();
                    async move {
                        let (mut s, _) = tokio_tungstenite::connect_async(ws).await.expect("stream opens");
                        for _ in 0..2 {
                            let m = tokio::time::timeout(Duration::from_secs(10), s.next()).await;
                            assert!(matches!(m, Ok(Some(Ok(_)))), "hello message: {m:?}");
                        }
                        s
                    }
                }))
                .await;
                sockets.extend(opened);
                assert!(start.elapsed() < Duration::from_secs(120), "opening streams took too long");
            }
            // Keep reading (the watchdog's polls are broadcast) while the daemon settles.
            let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
            let readers: Vec<_> = sockets
                .into_iter()
                .map(|mut s| {
                    let mut stop = stop_tx.subscribe();
                    tokio::spawn(async move {
                        loop {
                            tokio::select! {
                                _ = stop.recv() => break,
                                m = s.next() => if !matches!(m, Some(Ok(_))) { break },
                            }
                        }
                        let _ = s.close(None).await;
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_secs(3)).await;
            let with = rss_kib(pid);
            let metrics = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
            let open = metrics
                .lines()
                .find(|l| l.starts_with("rollbackd_http_stream_subscribers "))
                .and_then(|l| l.rsplit(' ').next())
                .unwrap_or("?")
                .to_string();
            let _ = stop_tx.send(());
            for r in readers {
                let _ = tokio::time::timeout(Duration::from_secs(10), r).await;
            }
            println!(
                "{clients} stream clients (open per /metrics: {open}): daemon RSS {:.1} MiB with all connected ({:.1} before: {:.1} KiB a client; goal <= 64 MiB in all)",
                mib(with),
                mib(before),
                (with.saturating_sub(before)) as f64 / clients as f64
            );
        });
    }
    drop(daemon);
    drop(sim);
}
