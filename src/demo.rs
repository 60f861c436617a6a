//! `rollbackd demo`: the daemon and a degrading simulator in one process. The watchdog sees
//! walk-forward stability slide into warning, then critical, rolls back for real, validates,
//! and watches stability for a few seconds. Everything is printed as it happens.

use crate::config;
use crate::domain::condition::Status;
use crate::engine::{Engine, StreamMessage};
use crate::simulator::{Scenario, Simulator};
use anyhow::Context;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The demo gives up if nothing has completed by then.
const DEMO_LIMIT: Duration = Duration::from_secs(90);

pub async fn run(
    listen: SocketAddr,
    keep_running: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("rollbackd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim_addr = sim_listener.local_addr()?;
    let sim = Simulator::new(Scenario::Degrading);
    let sim_app = sim.router();
    tokio::spawn(async move { axum::serve(sim_listener, sim_app).await });

    let yaml = format!(
        r#"
listen: "{listen}"
storage: {{ path: history.db }}
target: {{ url: "http://{sim_addr}", timeout: 1s }}
monitoring: {{ active_on_start: true, poll_interval: 250ms, automatic_rollback: true }}
cooldown: 1m
validation: {{ pass_score: 85, stability_window: 5s, stability_interval: 500ms }}
"#
    );
    let cfg = config::from_str(&yaml, &dir, None)?;
    let history = cfg.storage_path.clone();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let engine = Engine::start(cfg).await?;
    let mut rx = engine.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(listener, engine.clone(), async move {
        let _ = stop_rx.await;
    }));

    println!("rollbackd demo");
    println!("  trading-system simulator  http://{sim_addr}  (scenario: degrading)");
    println!("  daemon and console        http://{addr}/");
    println!("  history (SQLite)          {}", history.display());
    println!("  thresholds                walk_forward_stability warning < 50, critical < 40 (seed defaults)");
    println!();

    let started = Instant::now();
    let t = || format!("[{:>5.1}s]", started.elapsed().as_secs_f64());
    let mut last: HashMap<String, Status> = HashMap::new();
    let mut rollback_ok = false;
    let mut stable = false;
    tokio::pin!(shutdown);
    let deadline = tokio::time::sleep(DEMO_LIMIT);
    tokio::pin!(deadline);
    loop {
        let msg = tokio::select! {
            _ = &mut shutdown => break,
            _ = &mut deadline => {
                println!("{} no rollback completed within {}s; giving up", t(), DEMO_LIMIT.as_secs());
                break;
            }
            m = rx.recv() => m,
        };
        let Ok(msg) = msg else { continue };
        match msg {
            StreamMessage::TriggerUpdate(tr) => {
                for c in &tr.conditions {
                    if last.get(&c.condition) != Some(&c.status) {
                        if last.contains_key(&c.condition) || c.status != Status::Ok {
                            let v = c
                                .value
                                .map(|v| format!("{v:.2}"))
                                .unwrap_or_else(|| "?".into());
                            println!(
                                "{} {:<23} {:>7}  {:<8} (warning {} {}, critical {} {}) trend {}",
                                t(),
                                c.condition,
                                v,
                                c.status.as_str().to_uppercase(),
                                c.operator,
                                c.warning_threshold,
                                c.operator,
                                c.critical_threshold,
                                format!("{:?}", c.trend).to_lowercase()
                            );
                        }
                        last.insert(c.condition.clone(), c.status);
                    }
                }
            }
            StreamMessage::RollbackEvent(e) => {
                let short = &e.id[e.id.len().saturating_sub(8)..];
                match e.status.as_str() {
                    "completed" => {
                        rollback_ok = e.request.action == crate::domain::Action::Rollback;
                        println!(
                            "{} rollback …{short} COMPLETED: executed in {} ms, validation score {}/100, parameters now {}",
                            t(),
                            e.duration_ms.unwrap_or(0),
                            e.validation_score.unwrap_or(0.0),
                            serde_json::to_string(&e.parameters_after).unwrap_or_default()
                        );
                    }
                    "failed" => println!(
                        "{} rollback …{short} FAILED: {}",
                        t(),
                        e.failure_reason.clone().unwrap_or_default()
                    ),
                    "pending" => println!(
                        "{} rollback …{short} requested by {} ({}): {}",
                        t(),
                        e.request.trigger_type.as_str(),
                        e.request.actor,
                        e.request.reason
                    ),
                    other => println!("{} rollback …{short} {other}", t()),
                }
            }
            StreamMessage::Validation(v) => {
                println!(
                    "{} validation ({}) score {}/100 {}{}",
                    t(),
                    v.kind.as_str(),
                    v.score,
                    if v.passed { "PASS" } else { "FAIL" },
                    v.note
                        .as_ref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                );
                for c in v.checks.iter() {
                    println!(
                        "           {} {:<22} {}",
                        if c.passed { "✔" } else { "✘" },
                        c.name,
                        c.detail
                    );
                }
                if v.kind == crate::store::ValidationKind::Stability {
                    stable = v.passed;
                    break;
                }
            }
            StreamMessage::Status(_)
            | StreamMessage::Review(_)
            | StreamMessage::MissedDegradation(_) => {}
        }
    }

    let events = engine
        .store()
        .list_events(crate::store::EventQuery {
            limit: 100,
            ..Default::default()
        })
        .await?;
    println!();
    println!(
        "history: {} event(s) stored durably in {}",
        events.len(),
        history.display()
    );
    println!("  browse: rollbackd history --url http://{addr}   (while running)   or: sqlite3 {} 'select * from rollback_transitions'", history.display());
    if keep_running {
        println!("serving on http://{addr}/ until Ctrl-C");
        shutdown.await;
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(if rollback_ok && stable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
