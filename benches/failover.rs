//! Failover: two replicas on one PostgreSQL (Debian's server, started unprivileged in a
//! temporary directory on a free loopback port); the leader is killed with SIGKILL, and the
//! time from the kill until the standby says it leads (`rollbackd_leader 1` on its /metrics,
//! polled every 10 ms) is taken. The killed replica is started again as the new standby, and
//! so on. Two rounds: the leader killed while idle, and killed during a rollback (its switch
//! has reached the target, which holds its answer), where the time until the standby has
//! finished the interrupted event is taken too. Real binaries, loopback only, bounded in
//! kills and time.
//!
//! cargo bench --bench failover            (FAILOVER_KILLS=20 by default, each round)

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

/// The event's status on `url`, when it answers.
async fn event_status(http: &reqwest::Client, url: &str, id: &str) -> Option<String> {
    let v: serde_json::Value = http
        .get(format!("{url}/api/v1/rollbacks/{id}"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["status"].as_str().map(str::to_owned)
}

async fn set_delay(http: &reqwest::Client, sim_url: &str, ms: u64) {
    let r = http
        .put(format!("{sim_url}/v1/sim/scenario"))
        .json(&serde_json::json!({"scenario": "steady", "delay_ms": ms}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "the simulator took the delay");
}

/// Times of one kill: until the standby leads, and (mid-rollback) until it finished the event.
struct Kill {
    leads_ms: f64,
    finished_ms: Option<f64>,
}

async fn run(kills: usize, mid_rollback: bool) -> Vec<Kill> {
    let pg = postgres::Postgres::start();
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}", sim_listener.local_addr().unwrap());
    let sim = rollbackd::simulator::Simulator::new(rollbackd::simulator::Scenario::Steady);
    let app = sim.router();
    let sim_server = tokio::spawn(async move { axum::serve(sim_listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rollbackd.yaml");
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\n{}target: {{ url: \"{sim_url}\", timeout: 5s }}\nmonitoring: {{ poll_interval: 100ms, automatic_rollback: false }}\nlimits: {{ write_requests_per_minute: 0 }}\n",
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
        let mut interrupted = None;
        if mid_rollback {
            // The target holds its answers, so the leader dies with the switch applied and
            // unanswered.
            let before = sim.switches().len();
            set_delay(&http, &sim_url, 1500).await;
            let ask = http
                .post(format!("{}/api/v1/rollback", leader.url))
                .json(&serde_json::json!({"reason": "failover bench"}))
                .send();
            let asked = tokio::spawn(ask);
            let t = Instant::now();
            let id = loop {
                if let Some(s) = sim.switches().get(before) {
                    break s.event_id.clone();
                }
                assert!(t.elapsed() < LIMIT, "the switch never reached the target");
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            interrupted = Some((id, asked));
        }
        let death = Instant::now();
        leader.child.start_kill().unwrap();
        let _ = leader.child.wait().await;
        if mid_rollback {
            set_delay(&http, &sim_url, 0).await;
        }
        wait_leader(&http, &standby).await;
        let leads_ms = death.elapsed().as_secs_f64() * 1000.0;
        let finished_ms = match interrupted {
            None => None,
            Some((id, asked)) => {
                asked.abort();
                loop {
                    let st = event_status(&http, &standby.url, &id).await;
                    if matches!(st.as_deref(), Some("completed" | "failed")) {
                        break;
                    }
                    assert!(
                        death.elapsed() < LIMIT,
                        "the interrupted event was never finished"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let done = death.elapsed().as_secs_f64() * 1000.0;
                // Back to the session profile for the next round.
                let r = http
                    .post(format!("{}/api/v1/restore", standby.url))
                    .json(&serde_json::json!({"reason": "failover bench: next round"}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "restore: {}", r.status());
                Some(done)
            }
        };
        ms.push(Kill {
            leads_ms,
            finished_ms,
        });
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
    let idle = rt.block_on(run(kills, false));
    report(
        &format!("idle leader killed (SIGKILL) -> standby leads, two replicas on PostgreSQL, {kills} kills"),
        idle.iter().map(|k| k.leads_ms).collect(),
    );
    let busy = rt.block_on(run(kills, true));
    report(
        &format!("leader killed mid-rollback -> standby leads, {kills} kills"),
        busy.iter().map(|k| k.leads_ms).collect(),
    );
    report(
        "leader killed mid-rollback -> standby finished the interrupted event",
        busy.iter().filter_map(|k| k.finished_ms).collect(),
    );
}

fn report(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!("{what}");
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
