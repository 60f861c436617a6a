//! Failover: two replicas on one PostgreSQL (Debian's server, started unprivileged in a
//! temporary directory on a free loopback port); the leader is killed with SIGKILL, and the
//! time from the kill until the standby says it leads (`rollbackd_leader 1` on its /metrics,
//! polled every 10 ms) is taken. The killed replica is started again as the new standby, and
//! so on. Real binaries, loopback only, bounded in kills and time.
//!
//! cargo bench --bench failover            (FAILOVER_KILLS=20 by default)

#[path = "../tests/it/harness/postgres.rs"]
#[allow(dead_code)]
mod postgres;
#[path = "../tests/it/harness/stack.rs"]
#[allow(dead_code)]
mod stack;
#[path = "../tests/it/harness/wait.rs"]
#[allow(dead_code)]
mod wait;

use std::process::Stdio;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

struct Replica {
    url: String,
    child: tokio::process::Child,
}

async fn leads(http: &reqwest::Client, url: &str) -> Option<bool> {
    let text = http
        .get(format!("{url}/metrics"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("rollbackd_leader "))
        .map(|v| v.trim() == "1")
}

async fn start(config: &std::path::Path, http: &reqwest::Client) -> Replica {
    let listen = stack::loopback_addr();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &listen])
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let started = Instant::now();
    loop {
        let ready = http.get(format!("{url}/-/ready")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(started.elapsed() < LIMIT, "a replica did not get ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Replica { url, child }
}

async fn wait_leader(http: &reqwest::Client, r: &Replica) -> Duration {
    let t = Instant::now();
    loop {
        if leads(http, &r.url).await == Some(true) {
            return t.elapsed();
        }
        assert!(t.elapsed() < LIMIT, "no replica took the lead");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run(kills: usize) -> Vec<f64> {
    let pg = postgres::Postgres::start();
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}", sim_listener.local_addr().unwrap());
    let sim = rollbackd::simulator::Simulator::new(rollbackd::simulator::Scenario::Steady);
    let app = sim.router();
    let sim_server = tokio::spawn(async move { axum::serve(sim_listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rollbackd.yaml");
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\n{}target: {{ url: \"{sim_url}\", timeout: 500ms }}\nmonitoring: {{ poll_interval: 100ms, automatic_rollback: false }}\n",
        pg.storage_yaml()
    );
    std::fs::write(&config, yaml).unwrap();
    let http = reqwest::Client::new();
    let mut leader = start(&config, &http).await;
    wait_leader(&http, &leader).await;
    let mut standby = start(&config, &http).await;
    let mut ms = Vec::with_capacity(kills);
    for _ in 0..kills {
        assert_eq!(leads(&http, &standby.url).await, Some(false));
        let death = Instant::now();
        leader.child.start_kill().unwrap();
        let _ = leader.child.wait().await;
        wait_leader(&http, &standby).await;
        ms.push(death.elapsed().as_secs_f64() * 1000.0);
        std::mem::swap(&mut leader, &mut standby);
        standby = start(&config, &http).await;
    }
    drop(leader);
    drop(standby);
    sim_server.abort();
    ms
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let kills: usize = std::env::var("FAILOVER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(1, 200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut ms = rt.block_on(run(kills));
    ms.sort_by(f64::total_cmp);
    println!("leader killed (SIGKILL) -> standby leads, two replicas on PostgreSQL, {kills} kills");
    println!(
        "  min {:.0} ms  median {:.0} ms  p90 {:.0} ms  max {:.0} ms",
        ms[0],
        ms[ms.len() / 2],
        ms[(ms.len() * 9 / 10).min(ms.len() - 1)],
        ms[ms.len() - 1]
    );
    println!(
        "  all: {}",
        ms.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
