//! Soak: the release binary (`rollbackd serve` against `rollbackd simulate`) under a mixed load
//! for `SOAK_SECS`, its RSS and open descriptors sampled from /proc every `SOAK_SAMPLE_SECS`.
//! The load: the watchdog polling the simulator every 250 ms; Alertmanager deliveries (resends
//! of one recorded delivery, and a trickle of new alerts, each recorded); reads of
//! `/api/v1/status`, `/api/v1/rollbacks`, `/api/v1/triggers` and `/metrics`; WebSocket clients
//! of `/api/v1/stream` that stay 2-10 s and reconnect; manual rollbacks and restores with the
//! operator and admin tokens; and short-lived connections to `/-/healthy`. Every loop is
//! bounded in count and time.
//!
//! cargo bench --bench soak                    # 2 minutes
//! SOAK_SECS=3600 cargo bench --bench soak     # the 1 h run
//!
//! Knobs (env): SOAK_SECS (120), SOAK_SAMPLE_SECS (5), SOAK_WARMUP_SECS (a fifth of the run,
//! at most 60), SOAK_STREAMS (16), ROLLBACKD_BENCH_BIN (another build).
//!
//! The verdict: the time after the warm-up is cut in thirds, and the median allocated memory
//! (`RssAnon`) of the last third is held against that of the first; "memory flat after
//! warm-up" when it grew by at most 10 % or 2 MiB, whichever is larger (the same is shown for
//! the whole RSS, which also counts the binary's pages as they are first run). Descriptors: the largest count of the last third against the
//! largest before it (streams and short connections come and go).

mod common;

use common::{env_or, fd_count, mib, rss_kib, ADMIN_TOKEN, OPERATOR_TOKEN, WEBHOOK_TOKEN};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers by loop and status code.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<(&'static str, String), u64>>);

impl Tally {
    fn add(&self, what: &'static str, outcome: impl ToString) {
        *self
            .0
            .lock()
            .unwrap()
            .entry((what, outcome.to_string()))
            .or_default() += 1;
    }
}

struct Sample {
    at: f64,
    rss: u64,
    /// What the daemon allocated (heap, stacks): `RssAnon`. The rest of `rss` is mostly the
    /// binary's own pages, mapped from the file as code paths are first run (at most its size)
    /// and dropped by the kernel when memory is short, so a leak shows here.
    anon: u64,
    /// Of `anon`, what SQLite holds (`rollbackd_sqlite_memory_bytes`, KiB): mostly its page
    /// caches, which fill up to their stated size as the history grows and then stay.
    sqlite: u64,
    fds: usize,
    requests: u64,
}

/// The daemon's `rollbackd_sqlite_memory_bytes`, in KiB, read with a plain blocking request
/// so the sampler thread needs no runtime; 0 when it cannot be read.
fn sqlite_kib(addr: &str) -> u64 {
    use std::io::{Read, Write};
    let read = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    };
    read()
        .ok()
        .and_then(|body| {
            body.lines()
                .find_map(|l| l.strip_prefix("rollbackd_sqlite_memory_bytes "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map(|bytes| (bytes / 1024.0) as u64)
        .unwrap_or(0)
}

/// Runs `step(i)` every `every` until `deadline`, at most `max` times.
async fn every<F, Fut>(every: Duration, deadline: Instant, max: u64, mut step: F)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..max {
        tick.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        step(i).await;
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = env_or("SOAK_SECS", 120);
    let sample_secs: u64 = env_or("SOAK_SAMPLE_SECS", 5);
    let warmup: u64 = env_or("SOAK_WARMUP_SECS", (secs / 5).min(60));
    let streams: usize = env_or("SOAK_STREAMS", 16);
    let run = Duration::from_secs(secs);

    let dir = tempfile::tempdir().unwrap();
    let sim = common::simulator();
    let config = common::write_config(
        dir.path(),
        &sim.url,
        &format!(
            "monitoring: {{ poll_interval: 250ms, automatic_rollback: false }}\ncooldown: 1s\nlimits: {{ max_stream_subscribers: {}, write_requests_per_minute: 600, write_burst: 20 }}\n",
            streams.max(1) * 2
        ),
    );
    let daemon = common::daemon(&config, Duration::from_secs(10));
    let pid = daemon.pid();
    let url = daemon.url.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    let requests = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let started = Instant::now();

    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        common::wait_ready(&client, &url, Duration::from_secs(10)).await;
        let deadline = Instant::now() + run;
        let resend = common::delivery("soak-resent", false);
        let r = client
            .post(format!("{url}/api/v1/alertmanager"))
            .bearer_auth(WEBHOOK_TOKEN)
            .header("content-type", "application/json")
            .body(resend.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());

        let sampling = Arc::new(AtomicBool::new(true));
        let addr = url.trim_start_matches("http://").to_string();
        let sampler = {
            let (samples, requests, sampling) =
                (samples.clone(), requests.clone(), sampling.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut next = Duration::ZERO;
                while sampling.load(Ordering::Relaxed) {
                    if start.elapsed() >= next {
                        samples.lock().unwrap().push(Sample {
                            at: start.elapsed().as_secs_f64(),
                            rss: rss_kib(pid),
                            anon: common::status_kib(pid, "RssAnon:"),
                            sqlite: sqlite_kib(&addr),
                            fds: fd_count(pid),
                            requests: requests.load(Ordering::Relaxed),
                        });
                        next += Duration::from_secs(sample_secs);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };

        let mut tasks = Vec::new();
        let max = |per_sec: u64| secs * per_sec * 2 + 10;
        // One recorded delivery, resent (4 senders, about 400 a second in all).
        for _ in 0..4 {
            let (c, u, b, t, n) = (
                client.clone(),
                url.clone(),
                resend.clone(),
                tally.clone(),
                requests.clone(),
            );
            tasks.push(tokio::spawn(every(
                Duration::from_millis(10),
                deadline,
                max(100),
                move |_| {
                    let (c, u, b, t, n) = (c.clone(), u.clone(), b.clone(), t.clone(), n.clone());
                    async move {
                        let r = c
                            .post(format!("{u}/api/v1/alertmanager"))
                            .bearer_auth(WEBHOOK_TOKEN)
                            .header("content-type", "application/json")
                            .body(b)
                            .send()
                            .await;
                        n.fetch_add(1, Ordering::Relaxed);
                        t.add(
                            "webhook resend",
                            r.map(|r| r.status().as_u16().to_string())
                                .unwrap_or_else(|e| format!("error {e}")),
                        );
                    }
                },
            )));
        }
        // New alerts, each recorded before its answer (5 a second).
        {
            let (c, u, t, n) = (client.clone(), url.clone(), tally.clone(), requests.clone());
            tasks.push(tokio::spawn(every(
                Duration::from_millis(200),
                deadline,
                max(5),
                move |i| {
                    let (c, u, t, n) = (c.clone(), u.clone(), t.clone(), n.clone());
                    async move {
                        let body = common::delivery(&format!("soak-new-{i:08}"), false);
                        let r = c
                            .post(format!("{u}/api/v1/alertmanager"))
                            .bearer_auth(WEBHOOK_TOKEN)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await;
                        n.fetch_add(1, Ordering::Relaxed);
                        t.add(
                            "webhook new alert",
                            r.map(|r| r.status().as_u16().to_string())
                                .unwrap_or_else(|e| format!("error {e}")),
                        );
                    }
                },
            )));
        }
        // Reads (2 readers, 50 a second each, cycling through the read routes).
        for _ in 0..2 {
            let (c, u, t, n) = (client.clone(), url.clone(), tally.clone(), requests.clone());
            tasks.push(tokio::spawn(every(
                Duration::from_millis(20),
                deadline,
                max(50),
                move |i| {
                    let (c, u, t, n) = (c.clone(), u.clone(), t.clone(), n.clone());
                    async move {
                        let path = [
                            "/api/v1/status",
                            "/api/v1/rollbacks?limit=50",
                            "/metrics",
                            "/api/v1/triggers",
                        ][(i % 4) as usize];
                        let r = c.get(format!("{u}{path}")).send().await;
                        let r = match r {
                            Ok(r) => {
                                let s = r.status().as_u16().to_string();
                                let _ = r.bytes().await;
                                s
                            }
                            Err(e) => format!("error {e}"),
                        };
                        n.fetch_add(1, Ordering::Relaxed);
                        t.add("reads", r);
                    }
                },
            )));
        }
        // A manual rollback, then a restore, every 3 seconds.
        {
            let (c, u, t, n) = (client.clone(), url.clone(), tally.clone(), requests.clone());
            tasks.push(tokio::spawn(every(
                Duration::from_millis(1500),
                deadline,
                max(1),
                move |i| {
                    let (c, u, t, n) = (c.clone(), u.clone(), t.clone(), n.clone());
                    async move {
                        let (path, token, what) = if i % 2 == 0 {
                            ("rollback", OPERATOR_TOKEN, "rollback")
                        } else {
                            ("restore", ADMIN_TOKEN, "restore")
                        };
                        let r = c
                            .post(format!("{u}/api/v1/{path}"))
                            .bearer_auth(token)
                            .json(&serde_json::json!({"reason": "soak"}))
                            .send()
                            .await;
                        n.fetch_add(1, Ordering::Relaxed);
                        t.add(
                            what,
                            r.map(|r| r.status().as_u16().to_string())
                                .unwrap_or_else(|e| format!("error {e}")),
                        );
                    }
                },
            )));
        }
        // Short-lived connections: a new client (and socket) for every request.
        {
            let (u, t, n) = (url.clone(), tally.clone(), requests.clone());
            tasks.push(tokio::spawn(every(
                Duration::from_millis(50),
                deadline,
                max(20),
                move |_| {
                    let (u, t, n) = (u.clone(), t.clone(), n.clone());
                    async move {
                        let c = reqwest::Client::builder()
                            .pool_max_idle_per_host(0)
                            .timeout(Duration::from_secs(10))
                            .build()
                            .unwrap();
                        let r = c.get(format!("{u}/-/healthy")).send().await;
                        n.fetch_add(1, Ordering::Relaxed);
                        t.add(
                            "new connection",
                            r.map(|r| r.status().as_u16().to_string())
                                .unwrap_or_else(|e| format!("error {e}")),
                        );
                    }
                },
            )));
        }
        // Stream clients: each stays 2-10 s, reading, then closes and reconnects.
        let ws = format!("{}/api/v1/stream", url.replacen("http", "ws", 1));
        for k in 0..streams {
            let (ws, t, n) = (ws.clone(), tally.clone(), requests.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline && i < secs {
                    i += 1;
                    let stay = Duration::from_secs(2 + (k as u64 * 7 + i * 3) % 9);
                    n.fetch_add(1, Ordering::Relaxed);
                    let opened = tokio::time::timeout(
                        Duration::from_secs(10),
                        tokio_tungstenite::connect_async(ws.clone()),
                    )
                    .await;
                    let Ok(Ok((mut s, _))) = opened else {
                        t.add("stream", "connect failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    };
                    let until = Instant::now() + stay;
                    let mut got = 0u64;
                    while Instant::now() < until.min(deadline) {
                        match tokio::time::timeout_at(until.min(deadline).into(), s.next()).await {
                            Ok(Some(Ok(_))) => got += 1,
                            Ok(_) => break,
                            Err(_) => break,
                        }
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(2), s.close(None)).await;
                    t.add(
                        "stream",
                        if got >= 2 {
                            "session with messages"
                        } else {
                            "session without messages"
                        },
                    );
                }
            }));
        }
        for task in tasks {
            let _ = tokio::time::timeout(run + Duration::from_secs(30), task).await;
        }
        sampling.store(false, Ordering::Relaxed);
        sampler.join().unwrap();
        let ready = client
            .get(format!("{url}/-/ready"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        println!("after the run: /-/ready {ready:?}");
    });

    let samples = samples.lock().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "soak: {secs} s of mixed load ({streams} stream clients), a sample every {sample_secs} s, warm-up {warmup} s (2 cores shared with the load)"
    );
    println!(
        "{:>7}  {:>9}  {:>9}  {:>10}  {:>5}  {:>10}",
        "t (s)", "RSS MiB", "anon MiB", "SQLite MiB", "fds", "requests"
    );
    for s in samples.iter() {
        println!(
            "{:>7.0}  {:>9.1}  {:>9.1}  {:>10.1}  {:>5}  {:>10}",
            s.at,
            mib(s.rss),
            mib(s.anon),
            mib(s.sqlite),
            s.fds,
            s.requests
        );
    }
    println!("answers:");
    for ((what, outcome), n) in tally.0.lock().unwrap().iter() {
        println!("  {what:<18} {outcome:<26} {n}");
    }
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= warmup as f64).collect();
    let total = samples.last().map(|s| s.at).unwrap_or(elapsed);
    let last_third: Vec<&&Sample> = after.iter().filter(|s| s.at >= total * 2.0 / 3.0).collect();
    let earlier: Vec<&&Sample> = after.iter().filter(|s| s.at < total * 2.0 / 3.0).collect();
    if after.len() < 9 || last_third.is_empty() || earlier.is_empty() {
        println!("verdict: too few samples after the warm-up (run longer or sample more often)");
        return;
    }
    // The level (median) of the last third of the time after the warm-up against that of its
    // first third: medians, so one sample caught mid-burst (streams connecting, a rates
    // refresh) does not decide it; the most is shown too.
    let span = (total - warmup as f64) / 3.0;
    let third = |n: f64| -> Vec<&Sample> {
        let from = warmup as f64 + n * span;
        after
            .iter()
            .copied()
            .filter(|s| s.at >= from && (n == 2.0 || s.at < from + span))
            .collect()
    };
    let (early, middle, late) = (third(0.0), third(1.0), third(2.0));
    let growth = |of: fn(&Sample) -> u64, what: &str| {
        let median = |v: &[&Sample]| {
            let mut v: Vec<u64> = v.iter().map(|s| of(s)).collect();
            v.sort_unstable();
            v.get(v.len() / 2).copied().unwrap_or(0)
        };
        let (from, mid, to) = (median(&early), median(&middle), median(&late));
        let most = late.iter().map(|s| of(s)).max().unwrap_or(0);
        let (grew, allowed) = (to.saturating_sub(from), (from / 10).max(2048));
        println!(
            "{what}: median {:.1} MiB in the first third after the warm-up, {:.1} in the second, {:.1} in the last (the most {:.1}): +{:.1} MiB (allowed +{:.1})",
            mib(from),
            mib(mid),
            mib(to),
            mib(most),
            mib(grew),
            mib(allowed)
        );
        grew <= allowed
    };
    let rss_flat = growth(|s| s.rss, "RSS");
    let anon_flat = growth(|s| s.anon, "allocated (RssAnon)");
    growth(|s| s.sqlite, "of it SQLite's");
    let flat = growth(
        |s| s.anon.saturating_sub(s.sqlite),
        "allocated outside SQLite",
    );
    // SQLite's part is bounded by its stated page caches (two connections) plus schemas and
    // statements; over that it would be a growth of its own.
    let page_cache = rollbackd::store::SQLITE_PAGE_CACHE_KIB as u64;
    let sqlite_bound = 2 * page_cache + 2048;
    let sqlite_most = samples.iter().map(|s| s.sqlite).max().unwrap_or(0);
    let sqlite_ok = sqlite_most <= sqlite_bound;
    println!(
        "SQLite: at most {:.1} MiB (bound {:.1}: two page caches of {:.1} and 2 MiB for schemas and statements)",
        mib(sqlite_most),
        mib(sqlite_bound),
        mib(page_cache)
    );
    let fd_last = last_third.iter().map(|s| s.fds).max().unwrap();
    let fd_before = earlier.iter().map(|s| s.fds).max().unwrap();
    println!("fds: at most {fd_before} before the last third, at most {fd_last} in it");
    println!(
        "verdict: {}; {}",
        match (flat && sqlite_ok, anon_flat, rss_flat) {
            (true, true, true) => "memory flat after warm-up",
            (true, true, false) =>
                "allocated memory flat after warm-up (RSS grew by the binary's pages)",
            (true, false, _) =>
                "memory flat after warm-up outside SQLite's page caches, which filled within their bound",
            (false, _, _) => "MEMORY GREW after warm-up",
        },
        if fd_last <= fd_before + 2 {
            "descriptors flat"
        } else {
            "DESCRIPTORS GREW"
        }
    );
    drop(daemon);
    drop(sim);
}
