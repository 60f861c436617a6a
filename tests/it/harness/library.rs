//! The one file that names rollbackd's library: the simulator, the engine with its HTTP server,
//! the store and the configuration. Everything else in the tests speaks HTTP or JSON, so a
//! change inside the library is followed here and nowhere else.

use rollbackd::domain::review::Verdict;
use rollbackd::domain::{Action, EventStatus, Status, TriggerType};
use rollbackd::engine::Engine;
use rollbackd::simulator::Simulator;
use rollbackd::store::{
    ConditionSnapshot, Event, EventRequest, MissedDegradation, Review, Store, TransitionDetail,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use rollbackd::simulator::Scenario;

/// The seed's trigger thresholds with their environment overrides, as YAML.
pub const SEED_THRESHOLDS: &str = rollbackd::config::SEED_THRESHOLDS;

/// Asks a server to shut down gracefully: when fired, or when dropped.
struct Shutdown(Option<oneshot::Sender<()>>);

impl Shutdown {
    /// The signal and what the server awaits to begin its shutdown.
    fn new() -> (
        Shutdown,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (tx, rx) = oneshot::channel::<()>();
        (Shutdown(Some(tx)), async move {
            let _ = rx.await;
        })
    }

    fn fire(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.fire();
    }
}

/// The simulated trading system on 127.0.0.1:0, stopped when dropped.
pub struct TestSim {
    pub url: String,
    sim: Simulator,
    shutdown: Shutdown,
}

impl TestSim {
    pub async fn spawn(scenario: Scenario) -> TestSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sim = Simulator::new(scenario);
        let app = sim.router();
        let (shutdown, signal) = Shutdown::new();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
        });
        TestSim { url, sim, shutdown }
    }

    /// The trading system goes away: it stops answering (gracefully, as when dropped).
    pub fn stop(&mut self) {
        self.shutdown.fire();
    }

    /// Every switch the trading system applied, oldest first, as JSON
    /// (`event_id`, `mode`, `parameters`, `reason`).
    pub fn switches(&self) -> Vec<Value> {
        self.sim
            .switches()
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect()
    }

    /// Sets the health values it serves from now on, e.g. `{"max_drawdown": 5.5}`.
    pub async fn set_metrics(&self, values: Value) {
        self.put("/v1/sim/metrics", values).await;
    }

    /// Switches the simulator's scenario (kebab-case name, as `--scenario` takes it).
    pub async fn set_scenario(&self, scenario: &str) {
        self.put(
            "/v1/sim/scenario",
            serde_json::json!({ "scenario": scenario }),
        )
        .await;
    }

    /// Makes every answer take `ms` milliseconds.
    pub async fn set_delay_ms(&self, ms: u64) {
        self.put("/v1/sim/scenario", serde_json::json!({ "delay_ms": ms }))
            .await;
    }

    /// What the trading system reports over its own API (`mode`, `parameters`, ...).
    pub async fn status(&self) -> Value {
        reqwest::get(format!("{}/v1/status", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn put(&self, path: &str, body: Value) {
        let r = reqwest::Client::new()
            .put(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "simulator refused {path}: {}",
            r.status()
        );
    }
}

/// The daemon in this process: the engine and its HTTP server on the configured listener.
/// Dropping it asks the server to drain; `stop` waits for the drain.
pub struct Daemon {
    pub url: String,
    engine: Engine,
    shutdown: Shutdown,
    server: JoinHandle<std::io::Result<()>>,
}

impl Daemon {
    /// Loads `config` (for `environment`) as `rollbackd serve` would and starts serving it.
    pub async fn start(config: &Path, environment: Option<&str>) -> Daemon {
        let cfg = rollbackd::config::load(config, environment).unwrap();
        let listener = tokio::net::TcpListener::bind(cfg.listen).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let engine = Engine::start(cfg).await.unwrap();
        let (shutdown, signal) = Shutdown::new();
        let server = tokio::spawn(rollbackd::http::serve(listener, engine.clone(), signal));
        Daemon {
            url,
            engine,
            shutdown,
            server,
        }
    }

    /// The engine's status as the status route renders it, read without HTTP.
    pub fn status(&self) -> Value {
        serde_json::to_value(self.engine.status()).unwrap()
    }

    /// The engine's trigger view as the triggers route renders it, read without HTTP.
    pub fn triggers(&self) -> Value {
        serde_json::to_value(self.engine.triggers()).unwrap()
    }

    /// Starts the drain in the engine and hands it `delivery` directly: true when the engine
    /// refuses it as shutting down.
    pub async fn deliver_while_draining(&self, delivery: &Value) -> bool {
        self.engine.shutdown_token().cancel();
        let payload = rollbackd::alertmanager::parse(delivery.to_string().as_bytes()).unwrap();
        matches!(
            self.engine.receive_alerts(payload).await,
            Err(rollbackd::engine::EngineError::ShuttingDown)
        )
    }

    /// How many times the listener applied limit `l`.
    pub fn limited(&self, l: rollbackd::metrics::http::Limit) -> u64 {
        self.engine.metrics().http.limited_count(l)
    }

    /// Drains like SIGTERM does and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.fire();
        tokio::time::timeout(Duration::from_secs(20), self.server)
            .await
            .expect("the daemon drains within 20s")
            .unwrap()
            .unwrap();
    }
}

/// What the tests check of a loaded configuration.
pub struct LoadedConfig {
    pub listen: String,
    pub target_url: String,
    pub storage_path: PathBuf,
    pub tokens: usize,
}

/// Loads configuration text as the daemon would, paths relative to `base`.
pub fn load_config(
    text: &str,
    base: &Path,
    environment: Option<&str>,
) -> Result<LoadedConfig, String> {
    let c = rollbackd::config::from_str(text, base, environment).map_err(|e| e.to_string())?;
    Ok(LoadedConfig {
        listen: c.listen.to_string(),
        target_url: c.target.url,
        storage_path: c.storage_path,
        tokens: c.auth.tokens.len(),
    })
}

/// Leaves rollback `id` at `executing` in the history at `db`, the target never switched, as
/// a crash between the two would.
pub async fn seed_interrupted_rollback(db: &Path, id: &str) {
    let store = Store::open(db).unwrap();
    let mut request = rollback_request(TriggerType::Manual, "crash");
    request.target_parameters = [
        ("confidence_threshold".to_string(), 0.55),
        ("risk_reward_ratio".to_string(), 1.8),
    ]
    .into();
    let ev = Event::new(id.into(), request, chrono::Utc::now(), EventStatus::Pending);
    store.insert_event(&ev, Default::default()).await.unwrap();
    store
        .transition(id, EventStatus::Executing, Default::default())
        .await
        .unwrap();
}

/// Leaves a completed watchdog rollback `id` in the history at `db`, created `wall_age` ago by
/// the wall clock but `boot_age` ago by this machine's boot clock (a wall-clock step between).
pub async fn seed_rollback_before_a_clock_step(
    db: &Path,
    id: &str,
    wall_age: Duration,
    boot_age: Duration,
) {
    let store = Store::open(db).unwrap();
    let request = rollback_request(TriggerType::Watchdog, "before the clock step");
    let created = chrono::Utc::now() - chrono::Duration::from_std(wall_age).unwrap();
    let mut ev = Event::new(id.into(), request, created, EventStatus::Pending);
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap();
    let up: f64 = uptime.split_whitespace().next().unwrap().parse().unwrap();
    ev.clock = Some(rollbackd::store::ClockMark {
        boot_id: boot_id.trim().into(),
        since_boot_ms: ((up - boot_age.as_secs_f64()) * 1000.0) as u64,
    });
    store.insert_event(&ev, Default::default()).await.unwrap();
    for s in [
        EventStatus::Executing,
        EventStatus::Validating,
        EventStatus::Completed,
    ] {
        store.transition(id, s, Default::default()).await.unwrap();
    }
}

/// Seeds the history at `db` before a daemon opens it: `old-fp`, a watchdog rollback
/// suppressed 10 days ago (`already_rolled_back`) and reviewed by ops as a false positive, and
/// a degradation of `walk_forward_stability` missed 12 days ago.
pub async fn seed_reviewed_history(db: &Path) {
    let store = Store::open(db).unwrap();
    let at = chrono::Utc::now() - chrono::Duration::days(10);
    let mut request = rollback_request(
        TriggerType::Watchdog,
        "overfitting_score 0.52 > 0.5 (critical)",
    );
    request.actor = "rollbackd".into();
    request.mode_before = Some("universal_cycle_4".into());
    let event = Event::new("old-fp".into(), request, at, EventStatus::Suppressed);
    let detail = TransitionDetail {
        suppressed_reason: Some("already_rolled_back".into()),
        ..Default::default()
    };
    store.insert_event(&event, detail).await.unwrap();
    store
        .record_review(Review {
            id: 0,
            event_id: "old-fp".into(),
            verdict: Verdict::FalsePositive,
            note: Some("a stale overfitting sample".into()),
            ticket_url: None,
            reviewer: "ops".into(),
            reviewed_at: at,
            supersedes: None,
            superseded_by: None,
        })
        .await
        .unwrap();
    let from = chrono::Utc::now() - chrono::Duration::days(12);
    store
        .record_missed(MissedDegradation {
            id: 0,
            from,
            to: from + chrono::Duration::minutes(40),
            conditions: vec!["walk_forward_stability".into()],
            note: "stability sagged between polls".into(),
            recorded_by: "ops".into(),
            recorded_at: from + chrono::Duration::hours(2),
        })
        .await
        .unwrap();
}

/// A reviewed watchdog trigger of one condition, for a seeded history.
pub struct SeededReview {
    pub id: &'static str,
    pub at: chrono::DateTime<chrono::Utc>,
    pub condition: &'static str,
    pub value: f64,
    /// `true_positive`, `false_positive` or `drill`.
    pub verdict: &'static str,
}

/// Seeds the history at `db` before a daemon opens it: each of `reviews` as a watchdog rollback
/// suppressed (`cooldown`) at its time with its condition critical in the snapshot, reviewed
/// by ops; and each of `missed` (from, to, condition) as a missed degradation.
pub async fn seed_tuning_history(
    db: &Path,
    reviews: &[SeededReview],
    missed: &[(
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
        &str,
    )],
) {
    let store = Store::open(db).unwrap();
    for r in reviews {
        let mut request = rollback_request(
            TriggerType::Watchdog,
            &format!("{} {} (critical)", r.condition, r.value),
        );
        request.actor = "rollbackd".into();
        request.conditions = vec![ConditionSnapshot {
            condition: r.condition.into(),
            value: Some(r.value),
            status: Status::Critical,
            warning_threshold: 0.0,
            critical_threshold: 0.0,
        }];
        let event = Event::new(r.id.into(), request, r.at, EventStatus::Suppressed);
        let detail = TransitionDetail {
            suppressed_reason: Some("cooldown".into()),
            ..Default::default()
        };
        store.insert_event(&event, detail).await.unwrap();
        store
            .record_review(Review {
                id: 0,
                event_id: r.id.into(),
                verdict: Verdict::parse(r.verdict).unwrap(),
                note: Some("seeded for the tuning replay".into()),
                ticket_url: None,
                reviewer: "ops".into(),
                reviewed_at: r.at,
                supersedes: None,
                superseded_by: None,
            })
            .await
            .unwrap();
    }
    for (from, to, condition) in missed {
        store
            .record_missed(MissedDegradation {
                id: 0,
                from: *from,
                to: *to,
                conditions: vec![(*condition).into()],
                note: "seeded for the tuning replay".into(),
                recorded_by: "ops".into(),
                recorded_at: *to,
            })
            .await
            .unwrap();
    }
}

/// The file names of the alert rules the binary ships (`render-rules` writes them).
pub fn shipped_rule_files() -> Vec<&'static str> {
    rollbackd::rules::RULE_FILES
        .iter()
        .map(|(name, _)| *name)
        .collect()
}

/// A rollback to the profile asked for by `trigger`, from `session_targeted`.
fn rollback_request(trigger_type: TriggerType, reason: &str) -> EventRequest {
    EventRequest {
        action: Action::Rollback,
        trigger_type,
        source: trigger_type.as_str().into(),
        reason: reason.into(),
        actor: "ops".into(),
        dry_run: false,
        alert_names: vec![],
        fingerprints: vec![],
        conditions: vec![],
        mode_before: Some("session_targeted".into()),
        parameters_before: None,
        target_mode: "universal_cycle_4".into(),
        target_parameters: Default::default(),
    }
}
