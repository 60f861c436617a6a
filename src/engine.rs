//! The engine: polls the target, judges the conditions, executes rollbacks one at a time,
//! validates them, watches their stability, and tells everyone (store, metrics, stream).
//! The HTTP layer and the CLI are thin wrappers over the methods here.

use crate::alertmanager::Payload;
use crate::config::Config;
use crate::domain::condition::{ConditionSpec, Samples, Status, Trend};
use crate::domain::lifecycle::{
    Action, Decision, EventStatus, Guard, SuppressReason, TriggerType, MODE_SESSION_TARGETED,
    MODE_UNIVERSAL_CYCLE_4,
};
use crate::domain::validation::{self, Outcome};
use crate::domain::{SwitchRequest, TargetStatus};
use crate::metrics::Metrics;
use crate::store::{
    AlertRecord, ConditionSnapshot, EventView, NewEvent, Store, StoreError, TransitionDetail,
    ValidationKind, ValidationRun,
};
use crate::target::TargetClient;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error("rollback {0} is in progress; wait for it to finish")]
    InProgress(String),
    #[error("the trading system is already in {mode}; restore it first")]
    AlreadyRolledBack { mode: String },
    #[error("the trading system is not rolled back (mode {mode}); nothing to restore")]
    NotRolledBack { mode: String },
    #[error("rollbackd is shutting down")]
    ShuttingDown,
}

/// Who asks for a rollback, and why.
#[derive(Clone, Debug)]
pub struct RollbackRequest {
    pub trigger_type: TriggerType,
    pub source: String,
    pub reason: String,
    pub actor: String,
    pub dry_run: bool,
    pub alert_names: Vec<String>,
    pub fingerprints: Vec<String>,
}

/// What became of a request.
pub enum Requested {
    /// Executing in the background; the handle yields the event once validated (or failed).
    Started {
        event: EventView,
        done: JoinHandle<EventView>,
    },
    Suppressed {
        event: EventView,
        reason: SuppressReason,
    },
    DryRun {
        event: EventView,
    },
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum StreamMessage {
    Status(Box<StatusView>),
    TriggerUpdate(Box<TriggersView>),
    RollbackEvent(Box<EventView>),
    Validation(Box<ValidationRun>),
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AgentsView {
    pub healthy: u32,
    pub expected: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TargetView {
    pub url: String,
    pub up: bool,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StatusView {
    pub mode: String,
    pub rollback_ready: bool,
    pub already_rolled_back: bool,
    pub monitoring_active: bool,
    pub automatic_rollback: bool,
    pub in_progress: Option<String>,
    pub last_event: Option<EventView>,
    pub agents: AgentsView,
    pub target: TargetView,
    pub environment: String,
    pub cooldown_remaining_seconds: f64,
    pub stability_watch_active: bool,
    pub storage_ok: bool,
    pub version: &'static str,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConditionView {
    pub condition: String,
    pub value: Option<f64>,
    pub operator: &'static str,
    pub warning_threshold: f64,
    pub critical_threshold: f64,
    pub status: Status,
    pub trend: Trend,
    pub description: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TriggersView {
    pub environment: String,
    pub triggers_detected: Vec<String>,
    pub conditions: Vec<ConditionView>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// What a webhook delivery amounted to.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WebhookOutcome {
    pub accepted: usize,
    pub rollback_requested: Vec<String>,
    pub deduplicated: usize,
}

#[derive(Default)]
struct ConditionState {
    samples: Samples,
    value: Option<f64>,
    status: Option<Status>,
    trend: Option<Trend>,
    /// This critical episode already triggered (or was suppressed): act once per episode.
    acted: bool,
}

struct State {
    guard: Guard,
    monitoring_active: bool,
    conditions: Vec<ConditionState>,
    last_status: Option<TargetStatus>,
    target_up: bool,
    last_error: Option<String>,
    last_success: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    last_event: Option<EventView>,
    stability: Option<CancellationToken>,
}

struct Inner {
    config: Config,
    store: Store,
    target: TargetClient,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    stream: broadcast::Sender<StreamMessage>,
    seen_alerts: Mutex<HashSet<(String, String, String)>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    clock: Instant,
}

/// The guard's clock starts far from zero so a cooldown can be restored from before start.
const CLOCK_BASE_MS: u64 = 1 << 40;
/// The in-memory resend filter holds at most this many alert keys. It only answers resends
/// fast; the store's unique key is the authority, so forgetting is always safe.
const SEEN_ALERTS_CAP: usize = 100_000;
/// Subscribers that fall this many messages behind are dropped.
pub const STREAM_CAPACITY: usize = 256;

#[derive(Clone)]
pub struct Engine(Arc<Inner>);

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl Engine {
    /// Opens the history, finishes what a crash interrupted, and starts the watchdog.
    pub async fn start(config: Config) -> anyhow::Result<Engine> {
        use anyhow::Context;
        let store =
            Store::open(&config.storage_path).with_context(|| "opening the rollback history")?;
        let metrics = Arc::new(Metrics::new(&config));
        let target = TargetClient::new(&config.target);
        let (stream, _) = broadcast::channel(STREAM_CAPACITY);
        let seen: HashSet<_> = store
            .alert_keys(SEEN_ALERTS_CAP)
            .await?
            .into_iter()
            .collect();
        let state = State {
            guard: Guard::default(),
            monitoring_active: config.monitoring.active_on_start,
            conditions: config
                .conditions
                .iter()
                .map(|_| ConditionState::default())
                .collect(),
            last_status: None,
            target_up: false,
            last_error: None,
            last_success: None,
            updated_at: None,
            last_event: None,
            stability: None,
        };
        let engine = Engine(Arc::new(Inner {
            config,
            store,
            target,
            metrics,
            state: Mutex::new(state),
            stream,
            seen_alerts: Mutex::new(seen),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            clock: Instant::now(),
        }));
        engine
            .recover()
            .await
            .context("finishing rollbacks a previous run left unfinished")?;
        if let Some(last) = engine.0.store.last_executed().await? {
            let age = (Utc::now() - last.event.created_at)
                .num_milliseconds()
                .max(0) as u64;
            engine
                .lock()
                .guard
                .set_last_execution_ms(engine.now_ms().saturating_sub(age));
            engine.0.metrics.set_last_event(
                &last.event.id,
                last.event.trigger_type.as_str(),
                last.status.as_str(),
                unix(last.event.created_at),
            );
        }
        let latest = engine
            .0
            .store
            .list_events(crate::store::EventQuery {
                limit: 1,
                ..Default::default()
            })
            .await?;
        engine.lock().last_event = latest.into_iter().next();
        engine.refresh_gauges();
        let e = engine.clone();
        engine.0.tasks.spawn(async move { e.poll_loop().await });
        Ok(engine)
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StreamMessage> {
        self.0.stream.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        CLOCK_BASE_MS + self.0.clock.elapsed().as_millis() as u64
    }

    fn publish(&self, msg: StreamMessage) {
        // No subscribers is fine; a lagging one is dropped by its own reader.
        let _ = self.0.stream.send(msg);
    }

    /// Ready for `/-/ready`: storage writable and the watchdog alive.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.0.store.is_healthy() {
            return Err("history storage failed its last write".into());
        }
        if self.0.shutdown.is_cancelled() {
            return Err("shutting down".into());
        }
        Ok(())
    }

    pub fn status(&self) -> StatusView {
        let s = self.lock();
        self.status_of(&s)
    }

    fn status_of(&self, s: &State) -> StatusView {
        let cfg = &self.0.config;
        let mode = s
            .last_status
            .as_ref()
            .map(|t| t.mode.clone())
            .unwrap_or_else(|| "unknown".into());
        let storage_ok = self.0.store.is_healthy();
        StatusView {
            rollback_ready: storage_ok && s.target_up && s.guard.in_progress().is_none(),
            already_rolled_back: mode == cfg.profile.mode,
            mode,
            monitoring_active: s.monitoring_active,
            automatic_rollback: cfg.monitoring.automatic_rollback,
            in_progress: s.guard.in_progress().map(str::to_owned),
            last_event: s.last_event.clone(),
            agents: AgentsView {
                healthy: s
                    .last_status
                    .as_ref()
                    .filter(|_| s.target_up)
                    .map(TargetStatus::healthy_agents)
                    .unwrap_or(0),
                expected: cfg.agents_expected,
            },
            target: TargetView {
                url: cfg.target.url.clone(),
                up: s.target_up,
                last_success: s.last_success,
                last_error: s.last_error.clone(),
            },
            environment: cfg.environment.clone().unwrap_or_else(|| "default".into()),
            cooldown_remaining_seconds: s
                .guard
                .cooldown_remaining_ms(self.now_ms(), cfg.cooldown.as_millis() as u64)
                as f64
                / 1000.0,
            stability_watch_active: s.stability.is_some(),
            storage_ok,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    pub fn triggers(&self) -> TriggersView {
        let s = self.lock();
        self.triggers_of(&s)
    }

    fn triggers_of(&self, s: &State) -> TriggersView {
        let cfg = &self.0.config;
        let conditions: Vec<ConditionView> = cfg
            .conditions
            .iter()
            .zip(&s.conditions)
            .map(|(spec, c)| ConditionView {
                condition: spec.name.clone(),
                value: c.value,
                operator: spec.operator.as_str(),
                warning_threshold: spec.warning,
                critical_threshold: spec.critical,
                status: c.status.unwrap_or(Status::Unknown),
                trend: c.trend.unwrap_or(Trend::Steady),
                description: spec.description.clone(),
            })
            .collect();
        TriggersView {
            environment: cfg.environment.clone().unwrap_or_else(|| "default".into()),
            triggers_detected: conditions
                .iter()
                .filter(|c| c.status == Status::Critical)
                .map(|c| c.condition.clone())
                .collect(),
            conditions,
            updated_at: s.updated_at,
        }
    }

    /// Sets the gauges that derive from state (readiness, cooldown, in progress).
    fn refresh_gauges(&self) {
        let s = self.lock();
        let st = self.status_of(&s);
        let m = &self.0.metrics;
        m.system_ready.set(st.rollback_ready as i64);
        m.in_progress.set(st.in_progress.is_some() as i64);
        m.target_up.set(st.target.up as i64);
        m.monitoring_active.set(st.monitoring_active as i64);
        m.cooldown_remaining.set(st.cooldown_remaining_seconds);
        m.stability_watch_active
            .set(st.stability_watch_active as i64);
    }

    pub fn set_monitoring(&self, active: bool) -> bool {
        {
            let mut s = self.lock();
            if active && !s.monitoring_active {
                // Conditions already critical count again once the watchdog is re-armed.
                for c in &mut s.conditions {
                    c.acted = false;
                }
            }
            s.monitoring_active = active;
        }
        tracing::info!(active, "monitoring switched");
        self.refresh_gauges();
        self.publish(StreamMessage::Status(Box::new(self.status())));
        active
    }

    // ---- the watchdog --------------------------------------------------------------------

    async fn poll_loop(self) {
        let mut tick = tokio::time::interval(self.0.config.monitoring.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.0.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let result = self.0.target.status().await;
            self.0.metrics.count_target_call("status", result.is_ok());
            if let Some(request) = self.observe(result) {
                match self.request_rollback(request).await {
                    Ok(Requested::Started { event, .. }) => {
                        tracing::warn!(event_id = %event.event.id, reason = %event.event.reason, "watchdog started a rollback")
                    }
                    Ok(Requested::Suppressed { reason, .. }) => {
                        tracing::info!(reason = reason.as_str(), "watchdog trigger suppressed")
                    }
                    Ok(Requested::DryRun { .. }) => {}
                    Err(e) => tracing::error!(error = %e, "watchdog could not record its trigger"),
                }
            }
        }
    }

    /// Takes one poll result into the state; returns a watchdog request when a condition
    /// newly went critical while the watchdog is armed.
    fn observe(
        &self,
        result: Result<TargetStatus, crate::target::TargetError>,
    ) -> Option<RollbackRequest> {
        let cfg = &self.0.config;
        let m = &self.0.metrics;
        let now = Utc::now();
        let mut s = self.lock();
        let mut newly_critical: Vec<String> = Vec::new();
        match result {
            Ok(status) => {
                s.target_up = true;
                s.last_error = None;
                s.last_success = Some(now);
                m.target_last_success.set(unix(now));
                m.agents_healthy.set(status.healthy_agents() as i64);
                m.set_mode(Some(&status.mode));
                s.last_status = Some(status);
            }
            Err(e) => {
                if s.target_up || s.last_error.is_none() {
                    tracing::warn!(error = %e, "target status unavailable; conditions unknown");
                }
                s.target_up = false;
                s.last_error = Some(e.to_string());
                m.agents_healthy.set(0);
                m.set_mode(None);
            }
        }
        let status = if s.target_up {
            s.last_status.clone()
        } else {
            None
        };
        let armed = s.monitoring_active && cfg.monitoring.automatic_rollback;
        for (spec, c) in cfg.conditions.iter().zip(s.conditions.iter_mut()) {
            let value = status.as_ref().and_then(|t| t.metric(&spec.name));
            let new = spec.evaluate(value);
            if new != c.status.unwrap_or(Status::Unknown)
                && matches!(new, Status::Warning | Status::Critical)
            {
                m.count_breach(&spec.name, new);
            }
            c.samples.push(value);
            c.value = value;
            c.status = Some(new);
            c.trend = Some(c.samples.trend(spec));
            m.set_condition(&spec.name, value, new);
            if new != Status::Critical {
                c.acted = false;
            } else if armed && !c.acted {
                c.acted = true;
                newly_critical.push(describe_breach(spec, value));
            }
        }
        s.updated_at = Some(now);
        let triggers = self.triggers_of(&s);
        drop(s);
        self.refresh_gauges();
        self.publish(StreamMessage::TriggerUpdate(Box::new(triggers)));
        (!newly_critical.is_empty()).then(|| RollbackRequest {
            trigger_type: TriggerType::Watchdog,
            source: "watchdog".into(),
            reason: newly_critical.join("; "),
            actor: "rollbackd".into(),
            dry_run: false,
            alert_names: vec![],
            fingerprints: vec![],
        })
    }

    // ---- rollbacks -----------------------------------------------------------------------

    fn snapshot(&self, s: &State) -> Vec<ConditionSnapshot> {
        self.0
            .config
            .conditions
            .iter()
            .zip(&s.conditions)
            .map(|(spec, c)| ConditionSnapshot {
                condition: spec.name.clone(),
                value: c.value,
                status: c.status.unwrap_or(Status::Unknown),
                warning_threshold: spec.warning,
                critical_threshold: spec.critical,
            })
            .collect()
    }

    fn new_event(
        &self,
        s: &State,
        action: Action,
        req: &RollbackRequest,
        target_mode: &str,
        target_parameters: BTreeMap<String, f64>,
    ) -> NewEvent {
        NewEvent {
            id: uuid::Uuid::now_v7().to_string(),
            action,
            trigger_type: req.trigger_type,
            source: req.source.clone(),
            reason: req.reason.clone(),
            actor: req.actor.clone(),
            dry_run: req.dry_run,
            alert_names: req.alert_names.clone(),
            fingerprints: req.fingerprints.clone(),
            conditions: self.snapshot(s),
            mode_before: s.last_status.as_ref().map(|t| t.mode.clone()),
            parameters_before: s.last_status.as_ref().map(|t| t.parameters.clone()),
            target_mode: target_mode.into(),
            target_parameters,
            created_at: Utc::now(),
        }
    }

    /// Decides, records durably, then (if admitted) executes in the background.
    pub async fn request_rollback(&self, req: RollbackRequest) -> Result<Requested, EngineError> {
        if self.0.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        let profile = self.0.config.profile.clone();
        let (event, decision) = {
            let mut s = self.lock();
            let event = self.new_event(
                &s,
                Action::Rollback,
                &req,
                &profile.mode,
                profile.parameters.clone(),
            );
            let mode = s.last_status.as_ref().map(|t| t.mode.clone());
            let cooldown = self.0.config.cooldown.as_millis() as u64;
            let now = self.now_ms();
            let decision = s.guard.decide_rollback(
                &event.id,
                req.trigger_type,
                req.dry_run,
                mode.as_deref(),
                now,
                cooldown,
            );
            (event, decision)
        };
        let (status, detail) = match decision {
            Decision::Execute => (EventStatus::Pending, TransitionDetail::default()),
            Decision::Suppress(r) => (
                EventStatus::Suppressed,
                TransitionDetail {
                    suppressed_reason: Some(r.as_str().into()),
                    ..Default::default()
                },
            ),
            Decision::DryRun { would_suppress } => {
                let note = match would_suppress {
                    None => format!(
                        "dry run: would switch to {} with {}",
                        profile.mode,
                        format_params(&profile.parameters)
                    ),
                    Some(r) => format!("dry run: would be suppressed ({})", r.as_str()),
                };
                (
                    EventStatus::DryRun,
                    TransitionDetail {
                        note: Some(note),
                        ..Default::default()
                    },
                )
            }
        };
        let view = self.record_new(event, status, detail).await?;
        match decision {
            Decision::Execute => {
                let e = self.clone();
                let event = view.clone();
                let done = self.0.tasks.spawn(async move { e.execute(event).await });
                Ok(Requested::Started { event: view, done })
            }
            Decision::Suppress(reason) => {
                self.0
                    .metrics
                    .suppressed
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: reason.as_str().into(),
                    })
                    .inc();
                Ok(Requested::Suppressed {
                    event: view,
                    reason,
                })
            }
            Decision::DryRun { .. } => {
                self.0.metrics.dry_runs.inc();
                Ok(Requested::DryRun { event: view })
            }
        }
    }

    /// Stores a new event durably and announces it. If the store refuses, the execution slot
    /// the event may hold is freed: nothing unrecorded ever runs.
    async fn record_new(
        &self,
        event: NewEvent,
        status: EventStatus,
        detail: TransitionDetail,
    ) -> Result<EventView, EngineError> {
        let id = event.id.clone();
        if let Err(e) = self.0.store.insert_event(event, status, detail).await {
            self.lock().guard.finish(&id);
            self.refresh_gauges();
            return Err(e.into());
        }
        let view = self
            .0
            .store
            .get_event(&id)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("event {id} vanished after insert")))?;
        self.note_event(&view);
        Ok(view)
    }

    /// Keeps the latest event for the status page and tells the stream.
    fn note_event(&self, view: &EventView) {
        self.lock().last_event = Some(view.clone());
        self.refresh_gauges();
        self.publish(StreamMessage::RollbackEvent(Box::new(view.clone())));
        self.publish(StreamMessage::Status(Box::new(self.status())));
    }

    /// Moves an event on in the store and tells everyone; returns the new view.
    async fn advance(
        &self,
        id: &str,
        status: EventStatus,
        detail: TransitionDetail,
    ) -> Result<EventView, StoreError> {
        self.0.store.transition(id, status, detail).await?;
        let view = self
            .0
            .store
            .get_event(id)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("event {id} vanished")))?;
        self.note_event(&view);
        Ok(view)
    }

    async fn execute(self, event: EventView) -> EventView {
        let started = Instant::now();
        let id = event.event.id.clone();
        let result = self.execute_steps(&event, started).await;
        self.lock().guard.finish(&id);
        let view = match result {
            Ok(v) => v,
            Err(e) => {
                // The history could not take a transition: leave the event for the start-up
                // recovery rather than claim an outcome that was never stored.
                tracing::error!(event_id = %id, error = %e, "rollback could not be recorded to the end; it will be re-validated at next start");
                self.0
                    .store
                    .get_event(&id)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(event)
            }
        };
        self.refresh_gauges();
        self.publish(StreamMessage::Status(Box::new(self.status())));
        view
    }

    async fn execute_steps(
        &self,
        event: &EventView,
        started: Instant,
    ) -> Result<EventView, StoreError> {
        let m = &self.0.metrics;
        let id = event.event.id.as_str();
        let action = event.event.action;
        self.cancel_stability_watch();
        self.advance(id, EventStatus::Executing, TransitionDetail::default())
            .await?;
        if action == Action::Rollback {
            m.events
                .get_or_create(&crate::metrics::TriggerLabel {
                    trigger_type: event.event.trigger_type.as_str().into(),
                })
                .inc();
            m.set_last_event(
                id,
                event.event.trigger_type.as_str(),
                "executing",
                unix(event.event.created_at),
            );
        }
        let req = SwitchRequest {
            mode: event.event.target_mode.clone(),
            parameters: event.event.target_parameters.clone(),
            event_id: id.into(),
            reason: event.event.reason.clone(),
        };
        let switched = self.0.target.switch(&req).await;
        m.count_target_call("switch", switched.is_ok());
        if let Err(e) = switched {
            return self
                .finish(event, started, Err(format!("switch failed: {e}")), None)
                .await;
        }
        self.advance(id, EventStatus::Validating, TransitionDetail::default())
            .await?;
        let observed = self.0.target.status_with_retries().await;
        m.count_target_call("status", observed.is_ok());
        if let Ok(st) = &observed {
            let mut s = self.lock();
            m.set_mode(Some(&st.mode));
            s.last_status = Some(st.clone());
        }
        let outcome = self.validate(event, observed.as_ref().ok()).await;
        let run = self
            .store_validation(event, ValidationKind::Initial, &outcome, None)
            .await?;
        let verdict = match (&observed, action) {
            (Err(e), _) => Err(format!("could not read the status back: {e}")),
            (Ok(_), _) if outcome.passed => Ok(()),
            (Ok(_), Action::Rollback) => Err(format!(
                "recovery validation failed (score {} < {}): {}",
                outcome.score,
                outcome.pass_score,
                outcome.failures()
            )),
            (Ok(_), Action::Restore) => {
                Err(format!("restore not confirmed: {}", outcome.failures()))
            }
        };
        let after = observed.ok().map(|s| s.parameters);
        let view = self
            .finish(event, started, verdict, Some((run.score, after)))
            .await?;
        if view.status == EventStatus::Completed && action == Action::Rollback {
            self.start_stability_watch(view.clone());
        }
        Ok(view)
    }

    async fn finish(
        &self,
        event: &EventView,
        started: Instant,
        verdict: Result<(), String>,
        validated: Option<(f64, Option<BTreeMap<String, Value>>)>,
    ) -> Result<EventView, StoreError> {
        let m = &self.0.metrics;
        let elapsed = started.elapsed();
        let has_score = validated.is_some();
        let (score, after) = validated.unwrap_or((0.0, None));
        let (status, failure_reason) = match verdict {
            Ok(()) => (EventStatus::Completed, None),
            Err(why) => (EventStatus::Failed, Some(why)),
        };
        let detail = TransitionDetail {
            failure_reason: failure_reason.clone(),
            parameters_after: after,
            duration_ms: Some(elapsed.as_millis() as u64),
            validation_score: has_score.then_some(score),
            ..Default::default()
        };
        let view = self.advance(&event.event.id, status, detail).await?;
        if event.event.action == Action::Rollback {
            m.execution_time.observe(elapsed.as_secs_f64());
            m.outcomes
                .get_or_create(&crate::metrics::StatusLabel {
                    status: status.as_str().into(),
                })
                .inc();
            m.set_last_event(
                &event.event.id,
                event.event.trigger_type.as_str(),
                status.as_str(),
                unix(event.event.created_at),
            );
        }
        match &failure_reason {
            None => {
                tracing::info!(event_id = %event.event.id, action = event.event.action.as_str(), ms = elapsed.as_millis() as u64, score, "completed")
            }
            Some(why) => {
                tracing::error!(event_id = %event.event.id, action = event.event.action.as_str(), ms = elapsed.as_millis() as u64, reason = %why, "failed")
            }
        }
        Ok(view)
    }

    /// Scores what the target reports against what the event asked for.
    async fn validate(&self, event: &EventView, observed: Option<&TargetStatus>) -> Outcome {
        let cfg = &self.0.config;
        let logged = self
            .0
            .store
            .event_exists(&event.event.id)
            .await
            .unwrap_or(false);
        let no_conditions: [ConditionSpec; 0] = [];
        let restore = event.event.action == Action::Restore;
        validation::score(
            &validation::Input {
                expected_mode: &event.event.target_mode,
                expected_parameters: &event.event.target_parameters,
                expected_agents: cfg.agents_expected,
                observed,
                event_logged: logged,
                // A restore hands control back; conditions are the adaptive mode's business.
                conditions: if restore {
                    &no_conditions
                } else {
                    &cfg.conditions
                },
            },
            cfg.validation.pass_score,
        )
    }

    async fn store_validation(
        &self,
        event: &EventView,
        kind: ValidationKind,
        outcome: &Outcome,
        note: Option<String>,
    ) -> Result<ValidationRun, StoreError> {
        let mut run = ValidationRun {
            id: 0,
            event_id: event.event.id.clone(),
            kind,
            at: Utc::now(),
            score: outcome.score,
            passed: outcome.passed,
            pass_score: outcome.pass_score,
            checks: outcome.checks.clone(),
            note,
        };
        run.id = self.0.store.insert_validation(run.clone()).await?;
        if event.event.action == Action::Rollback {
            self.0
                .metrics
                .count_validation(kind.as_str(), run.passed, run.score, unix(run.at));
        }
        self.publish(StreamMessage::Validation(Box::new(run.clone())));
        Ok(run)
    }

    // ---- restore -------------------------------------------------------------------------

    /// Returns the trading system to `session_targeted`: always a deliberate human action.
    pub async fn restore(&self, reason: String, actor: String) -> Result<EventView, EngineError> {
        if self.0.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        // Hand back the parameters the adaptive mode had before the last completed rollback.
        let previous = self
            .0
            .store
            .list_events(crate::store::EventQuery {
                limit: 1,
                status: Some(EventStatus::Completed),
                ..Default::default()
            })
            .await?;
        let parameters: BTreeMap<String, f64> = previous
            .iter()
            .find(|e| e.event.action == Action::Rollback)
            .and_then(|e| e.event.parameters_before.as_ref())
            .map(|p| {
                p.iter()
                    .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                    .collect()
            })
            .unwrap_or_default();
        let req = RollbackRequest {
            trigger_type: TriggerType::Manual,
            source: "restore".into(),
            reason,
            actor,
            dry_run: false,
            alert_names: vec![],
            fingerprints: vec![],
        };
        let event = {
            let mut s = self.lock();
            let mode = s
                .last_status
                .as_ref()
                .map(|t| t.mode.clone())
                .unwrap_or_else(|| "unknown".into());
            if mode == MODE_SESSION_TARGETED {
                return Err(EngineError::NotRolledBack { mode });
            }
            let event =
                self.new_event(&s, Action::Restore, &req, MODE_SESSION_TARGETED, parameters);
            if s.guard.begin_restore(&event.id).is_err() {
                return Err(EngineError::InProgress(
                    s.guard.in_progress().unwrap_or_default().to_owned(),
                ));
            }
            event
        };
        let view = self
            .record_new(event, EventStatus::Pending, TransitionDetail::default())
            .await?;
        let e = self.clone();
        let done = self.0.tasks.spawn(async move { e.execute(view).await });
        done.await.map_err(|_| EngineError::ShuttingDown)
    }

    // ---- stability watch -----------------------------------------------------------------

    fn cancel_stability_watch(&self) {
        if let Some(t) = self.lock().stability.take() {
            t.cancel();
        }
        self.refresh_gauges();
    }

    fn start_stability_watch(&self, event: EventView) {
        let token = self.0.shutdown.child_token();
        self.lock().stability = Some(token.clone());
        self.refresh_gauges();
        let e = self.clone();
        self.0
            .tasks
            .spawn(async move { e.stability_watch(event, token).await });
    }

    /// Re-validates from the watchdog's view of the target through the stability window; the
    /// first failing look ends it as failed, reaching the end records a pass.
    async fn stability_watch(self, event: EventView, token: CancellationToken) {
        let cfg = &self.0.config;
        let window = cfg.validation.stability_window;
        let deadline = Instant::now() + window;
        let mut lowest = 100.0f64;
        let mut looks = 0u32;
        let result: Option<(Outcome, String)> = loop {
            let wait = cfg
                .validation
                .stability_interval
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = token.cancelled() => break None,
                _ = tokio::time::sleep(wait) => {}
            }
            let observed = {
                let s = self.lock();
                s.last_status.clone().filter(|_| s.target_up)
            };
            let outcome = self.validate(&event, observed.as_ref()).await;
            looks += 1;
            lowest = lowest.min(outcome.score);
            if !outcome.passed {
                let note = format!(
                    "stability lost after {}: {}",
                    humantime::format_duration(Duration::from_secs(
                        window.as_secs().saturating_sub(
                            deadline.saturating_duration_since(Instant::now()).as_secs()
                        )
                    )),
                    outcome.failures()
                );
                break Some((outcome, note));
            }
            if Instant::now() >= deadline {
                let note = format!(
                    "stable through {} ({looks} looks, lowest score {lowest})",
                    humantime::format_duration(window)
                );
                let mut o = outcome;
                o.score = lowest;
                o.passed = lowest >= o.pass_score;
                break Some((o, note));
            }
        };
        {
            let mut s = self.lock();
            // A cancelled token means the slot was already taken by whoever cancelled it.
            if !token.is_cancelled() {
                s.stability = None;
            }
        }
        self.refresh_gauges();
        if let Some((outcome, note)) = result {
            match self
                .store_validation(
                    &event,
                    ValidationKind::Stability,
                    &outcome,
                    Some(note.clone()),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(event_id = %event.event.id, passed = outcome.passed, %note, "stability watch ended")
                }
                Err(e) => {
                    tracing::error!(event_id = %event.event.id, error = %e, "stability outcome could not be stored")
                }
            }
        }
        self.publish(StreamMessage::Status(Box::new(self.status())));
    }

    // ---- recovery at start ---------------------------------------------------------------

    /// Finishes events a crash left open: re-validated against the target and completed, or
    /// marked failed "interrupted".
    async fn recover(&self) -> Result<(), StoreError> {
        for event in self.0.store.unfinished_events().await? {
            let id = event.event.id.clone();
            tracing::warn!(event_id = %id, status = %event.status, "found an unfinished event from a previous run");
            if event.status == EventStatus::Pending {
                let detail = TransitionDetail {
                    failure_reason: Some("interrupted before the target was touched".into()),
                    ..Default::default()
                };
                self.0
                    .store
                    .transition(&id, EventStatus::Failed, detail)
                    .await?;
                continue;
            }
            if event.status == EventStatus::Executing {
                let note = TransitionDetail {
                    note: Some("re-validating after restart".into()),
                    ..Default::default()
                };
                self.0
                    .store
                    .transition(&id, EventStatus::Validating, note)
                    .await?;
            }
            let observed = self.0.target.status_with_retries().await;
            let outcome = self.validate(&event, observed.as_ref().ok()).await;
            let run = self
                .store_validation(
                    &event,
                    ValidationKind::Recovered,
                    &outcome,
                    Some("re-validated at start-up after an interruption".into()),
                )
                .await?;
            let (status, failure_reason, note) = match &observed {
                Err(e) => (
                    EventStatus::Failed,
                    Some(format!(
                        "interrupted; the target could not be read at start-up: {e}"
                    )),
                    None,
                ),
                Ok(_) if outcome.passed => (
                    EventStatus::Completed,
                    None,
                    Some("interrupted, then confirmed at start-up".to_string()),
                ),
                Ok(_) => (
                    EventStatus::Failed,
                    Some(format!("interrupted: {}", outcome.failures())),
                    None,
                ),
            };
            let detail = TransitionDetail {
                failure_reason,
                note,
                validation_score: Some(run.score),
                parameters_after: observed.ok().map(|s| s.parameters),
                ..Default::default()
            };
            self.0.store.transition(&id, status, detail).await?;
            if event.event.action == Action::Rollback {
                self.0
                    .metrics
                    .outcomes
                    .get_or_create(&crate::metrics::StatusLabel {
                        status: status.as_str().into(),
                    })
                    .inc();
            }
            tracing::warn!(event_id = %id, status = %status, "unfinished event resolved");
        }
        Ok(())
    }

    // ---- Alertmanager --------------------------------------------------------------------

    /// Records a delivery durably, then asks for a rollback in the background for each new
    /// firing alert labelled `action="rollback"`. Resends and HA duplicates are answered from
    /// memory when already recorded, and by the store's unique key when two race.
    pub async fn receive_alerts(&self, payload: Payload) -> Result<WebhookOutcome, EngineError> {
        let m = &self.0.metrics;
        if payload.truncated_alerts > 0 {
            m.webhook_truncated.inc_by(payload.truncated_alerts);
        }
        for a in &payload.alerts {
            m.webhook_alerts
                .get_or_create(&crate::metrics::StatusLabel {
                    status: a.status.clone(),
                })
                .inc();
        }
        let fresh: Vec<&crate::alertmanager::Alert> = {
            let seen = self.0.seen_alerts.lock().unwrap_or_else(|p| p.into_inner());
            payload
                .alerts
                .iter()
                .filter(|a| !seen.contains(&a.key()))
                .collect()
        };
        let already = payload.alerts.len() - fresh.len();
        let now = Utc::now();
        let records: Vec<AlertRecord> = fresh
            .iter()
            .map(|a| AlertRecord {
                fingerprint: a.fingerprint.clone(),
                starts_at: a.starts_at.clone(),
                status: a.status.clone(),
                alertname: a.alertname().into(),
                labels: a.labels.clone(),
                requests_rollback: a.requests_rollback(),
                received_at: now,
            })
            .collect();
        let flags = if records.is_empty() {
            vec![]
        } else {
            self.0.store.record_alerts(records).await?
        };
        let mut new_rollback_alerts = Vec::new();
        {
            let mut seen = self.0.seen_alerts.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() + fresh.len() > SEEN_ALERTS_CAP {
                seen.clear();
            }
            for (a, is_new) in fresh.iter().zip(&flags) {
                seen.insert(a.key());
                if *is_new && a.requests_rollback() {
                    new_rollback_alerts.push(*a);
                }
            }
        }
        let dup_rollback = payload
            .alerts
            .iter()
            .filter(|a| a.requests_rollback())
            .count()
            - new_rollback_alerts.len();
        m.webhook_deduplicated.inc_by(dup_rollback as u64);
        let outcome = WebhookOutcome {
            accepted: payload.alerts.len(),
            rollback_requested: new_rollback_alerts
                .iter()
                .map(|a| a.alertname().to_string())
                .collect(),
            deduplicated: already + flags.iter().filter(|n| !**n).count(),
        };
        if !new_rollback_alerts.is_empty() {
            let names: Vec<String> = new_rollback_alerts
                .iter()
                .map(|a| a.alertname().to_string())
                .collect();
            let summaries: Vec<String> = new_rollback_alerts
                .iter()
                .map(|a| {
                    a.annotations
                        .get("summary")
                        .cloned()
                        .unwrap_or_else(|| a.alertname().to_string())
                })
                .collect();
            let req = RollbackRequest {
                trigger_type: TriggerType::Alertmanager,
                source: format!(
                    "alertmanager receiver {}",
                    if payload.receiver.is_empty() {
                        "?"
                    } else {
                        &payload.receiver
                    }
                ),
                reason: summaries.join("; "),
                actor: "alertmanager".into(),
                dry_run: false,
                alert_names: names,
                fingerprints: new_rollback_alerts
                    .iter()
                    .map(|a| a.fingerprint.clone())
                    .collect(),
            };
            let e = self.clone();
            self.0.tasks.spawn(async move {
                match e.request_rollback(req).await {
                    Ok(Requested::Started { event, .. }) => tracing::warn!(event_id = %event.event.id, "Alertmanager started a rollback"),
                    Ok(Requested::Suppressed { reason, .. }) => tracing::info!(reason = reason.as_str(), "Alertmanager rollback suppressed"),
                    Ok(Requested::DryRun { .. }) => {}
                    Err(err) => tracing::error!(error = %err, "Alertmanager rollback could not be recorded"),
                }
            });
        }
        Ok(outcome)
    }

    // ---- shutdown ------------------------------------------------------------------------

    /// Stops the watchdog and waits (bounded) for an in-flight rollback to finish or be
    /// recorded; what does not finish in time is resolved at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.0.shutdown.cancel();
        self.0.tasks.close();
        if tokio::time::timeout(grace, self.0.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown grace ran out with work in flight; it will be re-validated at next start"
            );
        }
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.0.shutdown.clone()
    }
}

fn format_params(p: &BTreeMap<String, f64>) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_breach(spec: &ConditionSpec, value: Option<f64>) -> String {
    // Four decimals is enough to read; the exact value is in the event's condition snapshot.
    let v = value
        .map(|v| ((v * 10_000.0).round() / 10_000.0).to_string())
        .unwrap_or_else(|| "?".into());
    format!(
        "{} {v} {} {} (critical)",
        spec.name, spec.operator, spec.critical
    )
}

/// The mode a rollback aims at, for messages.
pub const ROLLBACK_MODE: &str = MODE_UNIVERSAL_CYCLE_4;
