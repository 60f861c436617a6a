//! `rollbackd demo`: the daemon and a degrading simulator in one process. The watchdog sees
//! walk-forward stability slide into warning, then critical, rolls back for real, validates,
//! and watches stability for a few seconds. Everything is printed as it happens.

/// A line on stdout; a reader that went away (`rollbackd demo | head`) only ends the
/// printing, never the demo (`println!` would panic on the closed pipe).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = crate::output::print(&format!("{}\n", format_args!($($arg)*)));
    }};
}

use crate::config;
use crate::domain::condition::Status;
use crate::engine::{Engine, StreamMessage};
use crate::simulator::{Scenario, Simulator};
use crate::store::{Event, ValidationRun};
use crate::views::TriggersView;
use anyhow::Context;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// The demo gives up if nothing has completed by then.
const DEMO_LIMIT: Duration = Duration::from_secs(90);

pub async fn run(
    listen: SocketAddr,
    keep_running: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("rollbackd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let sim_addr = start_simulator().await?;
    let cfg = config::from_str(&demo_config(listen, sim_addr), &dir, None)?;
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

    print_banner(sim_addr, addr, &history);
    let mut progress = Progress::new();
    tokio::pin!(shutdown);
    progress.watch(&mut rx, shutdown.as_mut()).await;
    print_history(&engine, addr, &history).await?;
    if keep_running {
        say!("serving on http://{addr}/ until Ctrl-C");
        shutdown.await;
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(if progress.rollback_ok && progress.stable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The degrading simulator on a free local port, served in the background.
async fn start_simulator() -> anyhow::Result<SocketAddr> {
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim_addr = sim_listener.local_addr()?;
    let sim = Simulator::new(Scenario::Degrading);
    let sim_app = sim.router();
    tokio::spawn(async move { axum::serve(sim_listener, sim_app).await });
    Ok(sim_addr)
}

/// A fast-paced config: quick polls and a short stability window, so the story fits a minute.
fn demo_config(listen: SocketAddr, sim_addr: SocketAddr) -> String {
    format!(
        r#"
listen: "{listen}"
storage: {{ path: history.db }}
target: {{ url: "http://{sim_addr}", timeout: 1s }}
monitoring: {{ active_on_start: true, poll_interval: 250ms, automatic_rollback: true }}
cooldown: 1m
validation: {{ pass_score: 85, stability_window: 5s, stability_interval: 500ms }}
"#
    )
}

fn print_banner(sim_addr: SocketAddr, addr: SocketAddr, history: &Path) {
    say!("rollbackd demo");
    say!("  trading-system simulator  http://{sim_addr}  (scenario: degrading)");
    say!("  daemon and console        http://{addr}/");
    say!("  history (SQLite)          {}", history.display());
    say!("  thresholds                walk_forward_stability warning < 50, critical < 40 (seed defaults)");
    say!("");
}

async fn print_history(engine: &Engine, addr: SocketAddr, history: &Path) -> anyhow::Result<()> {
    let events = engine
        .store()
        .list_events(crate::store::EventQuery {
            limit: 100,
            ..Default::default()
        })
        .await?;
    say!("");
    say!(
        "history: {} event(s) stored durably in {}",
        events.len(),
        history.display()
    );
    say!("  browse: rollbackd history --url http://{addr}   (while running)   or: sqlite3 {} 'select * from rollback_transitions'", history.display());
    Ok(())
}

/// What the demo has seen so far; each message is printed as it arrives.
struct Progress {
    started: Instant,
    /// Each condition's last status, so only changes are printed.
    last: HashMap<String, Status>,
    rollback_ok: bool,
    stable: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            started: Instant::now(),
            last: HashMap::new(),
            rollback_ok: false,
            stable: false,
        }
    }

    /// Prints the stream until the stability check reports, shutdown, or [`DEMO_LIMIT`].
    async fn watch<F: Future<Output = ()>>(
        &mut self,
        rx: &mut broadcast::Receiver<StreamMessage>,
        mut shutdown: Pin<&mut F>,
    ) {
        let deadline = tokio::time::sleep(DEMO_LIMIT);
        tokio::pin!(deadline);
        loop {
            let msg = tokio::select! {
                _ = &mut shutdown => break,
                _ = &mut deadline => {
                    say!("{} no rollback completed within {}s; giving up", self.t(), DEMO_LIMIT.as_secs());
                    break;
                }
                m = rx.recv() => m,
            };
            let Ok(msg) = msg else { continue };
            match msg {
                StreamMessage::TriggerUpdate(tr) => self.show_triggers(&tr),
                StreamMessage::RollbackEvent(e) => self.show_event(&e),
                StreamMessage::Validation(v) => {
                    if self.show_validation(&v) {
                        break;
                    }
                }
                StreamMessage::Status(_)
                | StreamMessage::Review(_)
                | StreamMessage::MissedDegradation(_)
                | StreamMessage::Holds(_) => {}
            }
        }
    }

    /// The time since the demo started, as a line prefix.
    fn t(&self) -> String {
        format!("[{:>5.1}s]", self.started.elapsed().as_secs_f64())
    }

    /// A line per condition whose status changed (the first sight only when not ok).
    fn show_triggers(&mut self, tr: &TriggersView) {
        for c in &tr.conditions {
            if self.last.get(&c.condition) != Some(&c.status) {
                if self.last.contains_key(&c.condition) || c.status != Status::Ok {
                    let v = c
                        .value
                        .map(|v| format!("{v:.2}"))
                        .unwrap_or_else(|| "?".into());
                    say!(
                        "{} {:<23} {:>7}  {:<8} (warning {} {}, critical {} {}) trend {}",
                        self.t(),
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
                self.last.insert(c.condition.clone(), c.status);
            }
        }
    }

    fn show_event(&mut self, e: &Event) {
        let t = self.t();
        let short = &e.id[e.id.len().saturating_sub(8)..];
        match e.status.as_str() {
            "completed" => {
                self.rollback_ok = e.request.action == crate::domain::Action::Rollback;
                say!(
                    "{t} rollback …{short} COMPLETED: executed in {} ms, validation score {}/100, parameters now {}",
                    e.duration_ms.unwrap_or(0),
                    e.validation_score.unwrap_or(0.0),
                    serde_json::to_string(&e.parameters_after).unwrap_or_default()
                );
            }
            "failed" => say!(
                "{t} rollback …{short} FAILED: {}",
                e.failure_reason.clone().unwrap_or_default()
            ),
            "pending" => say!(
                "{t} rollback …{short} requested by {} ({}): {}",
                e.request.trigger_type.as_str(),
                e.request.actor,
                e.request.reason
            ),
            other => say!("{t} rollback …{short} {other}"),
        }
    }

    /// Prints a validation run and its checks; true once the stability check has reported.
    fn show_validation(&mut self, v: &ValidationRun) -> bool {
        say!(
            "{} validation ({}) score {}/100 {}{}",
            self.t(),
            v.kind.as_str(),
            v.score,
            if v.passed { "PASS" } else { "FAIL" },
            v.note
                .as_ref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
        for c in v.checks.iter() {
            say!(
                "           {} {:<22} {}",
                if c.passed { "✔" } else { "✘" },
                c.name,
                c.detail
            );
        }
        if v.kind == crate::store::ValidationKind::Stability {
            self.stable = v.passed;
            return true;
        }
        false
    }
}
