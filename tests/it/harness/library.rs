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

    /// Every switch the trading system applied, oldest first, read over its own API
    /// (`GET /v1/sim/switches`) as another process would.
    pub async fn switches_over_http(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/v1/sim/switches", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["switches"]
            .as_array()
            .unwrap_or_else(|| panic!("no switches list: {v}"))
            .clone()
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

/// Where a store suite runs: an SQLite file or a PostgreSQL database.
#[derive(Clone)]
pub enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Backend {
    /// Opens the history (for PostgreSQL: a new replica's connection and session).
    pub async fn open(&self) -> Store {
        match self {
            Backend::Sqlite(path) => Store::open(path).unwrap(),
            Backend::Postgres(url) => Store::connect_postgres(&rollbackd::store::PostgresConfig {
                url: url.clone(),
                pool_size: 16,
                statement_timeout: Duration::from_secs(5),
            })
            .await
            .unwrap(),
        }
    }

    /// Runs one statement straight against the database, outside rollbackd.
    async fn raw(&self, sql: &str) -> Result<(), String> {
        match self {
            Backend::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .execute(sql, [])
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Backend::Postgres(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                let driver = tokio::spawn(conn);
                let r = client.batch_execute(sql).await.map_err(|e| {
                    e.as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| e.to_string())
                });
                drop(client);
                let _ = driver.await;
                r
            }
        }
    }
}

fn suite_event(id: &str, status: EventStatus) -> Event {
    Event::new(
        id.into(),
        rollback_request(TriggerType::Manual, "suite"),
        chrono::Utc::now(),
        status,
    )
}

fn suite_alert(fp: &str, status: &str) -> rollbackd::store::AlertRecord {
    rollbackd::store::AlertRecord {
        fingerprint: fp.into(),
        starts_at: "2026-11-23T10:00:00Z".into(),
        status: status.into(),
        alertname: "X".into(),
        labels: Default::default(),
        requests_rollback: true,
        received_at: chrono::Utc::now(),
    }
}

/// The store suite, the same checks on every backend. Each panics on the first difference.
pub mod suite {
    use super::*;
    use rollbackd::store::{EventQuery, StoreError};

    /// Events move only forward through the life cycle, page newest first, and survive a
    /// reopen; unfinished ones are found again.
    pub async fn life_cycle(b: &Backend) {
        let none = TransitionDetail::default;
        {
            let s = b.open().await;
            assert_eq!(
                s.insert_event(&suite_event("a", EventStatus::Pending), none())
                    .await
                    .unwrap(),
                None
            );
            s.transition("a", EventStatus::Executing, none())
                .await
                .unwrap();
            let bad = s
                .transition("a", EventStatus::Completed, none())
                .await
                .unwrap_err();
            assert!(
                bad.to_string()
                    .contains("cannot move from executing to completed"),
                "{bad}"
            );
            s.transition("a", EventStatus::Validating, none())
                .await
                .unwrap();
            let done = TransitionDetail {
                validation_score: Some(100.0),
                ..none()
            };
            s.transition("a", EventStatus::Completed, done)
                .await
                .unwrap();
            assert!(s
                .transition("a", EventStatus::Failed, none())
                .await
                .is_err());
            let cooldown = TransitionDetail {
                suppressed_reason: Some("cooldown".into()),
                ..none()
            };
            s.insert_event(&suite_event("b", EventStatus::Suppressed), cooldown)
                .await
                .unwrap();
            s.insert_event(&suite_event("c", EventStatus::Pending), none())
                .await
                .unwrap();
            s.close();
        }
        let s = b.open().await;
        let a = s.get_event("a").await.unwrap().unwrap();
        assert_eq!(a.status, EventStatus::Completed);
        assert_eq!(a.validation_score, Some(100.0));
        assert_eq!(a.transitions.as_ref().unwrap().len(), 4);
        let all = s
            .list_events(EventQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a"]);
        let page = s
            .list_events(EventQuery {
                limit: 10,
                before: Some("b".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert!(matches!(
            s.list_events(EventQuery {
                limit: 1,
                before: Some("nope".into()),
                ..Default::default()
            })
            .await,
            Err(StoreError::UnknownCursor(_))
        ));
        let unfinished = s.unfinished_events().await.unwrap();
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].id, "c");
        assert_eq!(s.last_executed().await.unwrap().unwrap().id, "c");
        assert_eq!(s.in_flight().await.unwrap().as_deref(), Some("c"));
        // A new replica (or a restart) finds it orphaned once its owner is gone.
        let orphans = wait_for_orphans(&s, 1).await;
        assert_eq!(orphans[0].id, "c");
        assert!(s.adopt("c").await.unwrap());
        s.transition("c", EventStatus::Failed, none())
            .await
            .unwrap();
        assert_eq!(s.in_flight().await.unwrap(), None);
        s.close();
    }

    async fn wait_for_orphans(s: &Store, n: usize) -> Vec<Event> {
        super::super::wait::wait_until(
            "the unfinished events to be found orphaned",
            Duration::from_secs(10),
            || async {
                let v = s.orphaned_events().await.unwrap();
                (v.len() == n).then_some(v)
            },
        )
        .await
    }

    /// The database itself refuses to change or delete a history record.
    pub async fn append_only(b: &Backend) {
        let s = b.open().await;
        s.insert_event(
            &suite_event("a", EventStatus::Suppressed),
            TransitionDetail::default(),
        )
        .await
        .unwrap();
        s.record_delivery(vec![suite_alert("f", "firing")], None)
            .await
            .unwrap();
        s.record_audit(rollbackd::store::AuditRecord {
            id: 0,
            at: chrono::Utc::now(),
            kind: "arming".into(),
            actor: "ops".into(),
            reason: "suite".into(),
            from: Value::Null,
            to: Value::Null,
        })
        .await
        .unwrap();
        for sql in [
            "UPDATE rollback_events SET body = '{}'",
            "DELETE FROM rollback_events",
            "UPDATE rollback_transitions SET status = 'completed'",
            "DELETE FROM rollback_transitions",
            "DELETE FROM webhook_alerts",
            "UPDATE webhook_alerts SET status = 'x'",
            "UPDATE audit_log SET kind = 'x'",
            "DELETE FROM audit_log",
        ] {
            let e = b.raw(sql).await.unwrap_err();
            assert!(e.contains("append-only"), "{sql}: {e}");
        }
        if let Backend::Postgres(_) = b {
            let e = b.raw("TRUNCATE rollback_events CASCADE").await.unwrap_err();
            assert!(e.contains("append-only"), "TRUNCATE: {e}");
        }
        assert!(s.get_event("a").await.unwrap().is_some());
        s.close();
    }

    /// Concurrent deliveries of one alert: one is new, and only it records its rollback event.
    pub async fn deduplicates_deliveries(b: &Backend) {
        let s = b.open().await;
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let ev = suite_event(&format!("ev{i}"), EventStatus::Pending);
                s.record_delivery(
                    vec![suite_alert("f1", "firing")],
                    Some((&ev, TransitionDetail::default())),
                )
                .await
                .unwrap()
            }));
        }
        let mut new = 0;
        let mut recorded = 0;
        for t in tasks {
            let d = t.await.unwrap();
            new += d.new[0] as u32;
            recorded += d.event_recorded as u32;
        }
        assert_eq!((new, recorded), (1, 1), "one of 50 deliveries is new");
        let events = s
            .list_events(EventQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 1);
        let d = s
            .record_delivery(
                vec![suite_alert("f1", "resolved"), suite_alert("f2", "firing")],
                None,
            )
            .await
            .unwrap();
        assert_eq!(d.new, vec![true, true]);
        assert_eq!(s.alert_keys(10).await.unwrap().len(), 3);
        s.close();
    }

    /// Many pending events at once: the database admits exactly one to the execution slot; the
    /// others are recorded as suppressed (in_progress) naming it. Its end frees the slot.
    pub async fn one_in_flight(b: &Backend) {
        let s = b.open().await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("p{i}");
                let held = s
                    .insert_event(
                        &suite_event(&id, EventStatus::Pending),
                        TransitionDetail::default(),
                    )
                    .await
                    .unwrap();
                (id, held)
            }));
        }
        let mut admitted = Vec::new();
        let mut holders = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (id, None) => admitted.push(id),
                (_, Some(h)) => holders.push(h),
            }
        }
        assert_eq!(admitted.len(), 1, "exactly one admitted: {admitted:?}");
        assert!(holders.iter().all(|h| *h == admitted[0]));
        let suppressed = s
            .list_events(EventQuery {
                limit: 100,
                status: Some(EventStatus::Suppressed),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(suppressed.len(), 39);
        assert!(suppressed
            .iter()
            .all(|e| e.suppressed_reason.as_deref() == Some("in_progress")));
        let winner = &admitted[0];
        s.transition(winner, EventStatus::Executing, Default::default())
            .await
            .unwrap();
        s.transition(winner, EventStatus::Failed, Default::default())
            .await
            .unwrap();
        assert_eq!(
            s.insert_event(
                &suite_event("next", EventStatus::Pending),
                TransitionDetail::default()
            )
            .await
            .unwrap(),
            None,
            "the slot is free again"
        );
        s.close();
    }

    /// A later review supersedes an earlier one; both stay.
    pub async fn reviews(b: &Backend) {
        let s = b.open().await;
        s.insert_event(
            &suite_event("done", EventStatus::Suppressed),
            TransitionDetail::default(),
        )
        .await
        .unwrap();
        let review = |verdict, reviewer: &str| Review {
            id: 0,
            event_id: "done".into(),
            verdict,
            note: None,
            ticket_url: None,
            reviewer: reviewer.into(),
            reviewed_at: chrono::Utc::now(),
            supersedes: None,
            superseded_by: None,
        };
        let first = s
            .record_review(review(Verdict::TruePositive, "ops"))
            .await
            .unwrap();
        let second = s
            .record_review(review(Verdict::FalsePositive, "boss"))
            .await
            .unwrap();
        assert_eq!(second.supersedes, Some(first.id));
        let done = s.get_event("done").await.unwrap().unwrap();
        assert_eq!(done.review.unwrap().id, second.id);
        let all = done.reviews.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].superseded_by, Some(second.id));
        let current = s
            .list_reviews(rollbackd::store::ReviewQuery {
                limit: 10,
                current_only: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(current.len(), 1);
        let e = s
            .record_review(Review {
                event_id: "nope".into(),
                ..review(Verdict::Drill, "ops")
            })
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "no rollback event with id \"nope\"");
        s.close();
    }

    /// PostgreSQL's fencing: an event adopted from a lost replica cannot be moved by it again,
    /// and a live owner's event is nobody's to adopt.
    pub async fn fencing(url: &str) {
        let b = Backend::Postgres(url.into());
        let a = b.open().await;
        let other = b.open().await;
        a.insert_event(
            &suite_event("x", EventStatus::Pending),
            TransitionDetail::default(),
        )
        .await
        .unwrap();
        wait_until_connected(&a).await;
        assert!(other.orphaned_events().await.unwrap().is_empty());
        assert!(!other.adopt("x").await.unwrap(), "its owner lives");
        // The owner's process goes; its session's locks go with it.
        let stale = a.clone();
        a.close();
        wait_for_orphans(&other, 1).await;
        assert!(other.adopt("x").await.unwrap());
        let _ = stale;
        let again = b.open().await;
        let refused = again
            .transition("x", EventStatus::Executing, Default::default())
            .await
            .unwrap_err();
        assert!(matches!(refused, StoreError::NotOwner { .. }), "{refused}");
        other
            .transition("x", EventStatus::Failed, Default::default())
            .await
            .unwrap();
        assert_eq!(other.in_flight().await.unwrap(), None);
        other.close();
        again.close();
    }

    async fn wait_until_connected(s: &Store) {
        super::super::wait::wait_until("the session", Duration::from_secs(10), || async {
            s.is_reachable().then_some(())
        })
        .await;
    }
}
