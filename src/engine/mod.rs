//! The engine: polls the target, judges the conditions, executes rollbacks one at a time,
//! validates them, watches their stability, and says what happened as `EngineEvent`s that the
//! metrics apply and the stream projects. The HTTP layer and the CLI use the methods here.
//!
//! One file per role (docs/architecture.md draws them):
//! - `watchdog`: the poll loop and its pure observation step;
//! - `arming`: which automatic paths may act, changed at runtime and recorded;
//! - `executor`: decide, record, execute, record the verdict (rollbacks and restores);
//! - `verify`: recovery validation against the target, stored;
//! - `stability`: the stability watch after a rollback;
//! - `recovery`: events a crash left unfinished, finished at start;
//! - `intake`: Alertmanager deliveries and their resend filter;
//! - `views`: the status and triggers views built from the state;
//! - `reload`: a new config file taken in while running;
//! - `reviews`: reviews of trigger episodes, missed degradations, the success rates and the
//!   incident report read from the history.
//!
//! The state is split by owner, each lock guarding one thing and never held across another
//! lock or an `.await`: the watchdog's view of the target (`watch`), the executor's guard and
//! latest event (`execution`), the stability watch's slot (`stability`), the intake's filter.

mod arming;
mod executor;
mod holds;
mod intake;
mod operations;
mod recovery;
mod reload;
mod replicas;
mod reviews;
mod stability;
mod verify;
mod views;
mod watchdog;

pub use crate::views::StreamMessage;
pub use executor::{Requested, RollbackRequest};
pub use holds::WindowAsk;
pub use operations::{DrillReport, NotificationTestReport, StepResult};
pub use reload::{ReloadError, Reloaded};
pub use reviews::RATES_EVERY;

use crate::alertmanager::Payload;
use crate::config::Config;
use crate::domain::lifecycle::{Arming, PathState};
use crate::domain::review::InputError;
use crate::events::{EngineEvent, Rejection};
use crate::metrics::{Metrics, Probe};
use crate::store::{ClockMark, EventQuery, Store, StoreError};
use crate::target::TargetClient;
use crate::views::{StatusView, TriggersView, WebhookOutcome};
use arc_swap::ArcSwap;
use executor::Execution;
use intake::ResendFilter;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use watchdog::Watch;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error("rollback {0} is in progress; wait for it to finish")]
    InProgress(String),
    #[error("the trading system is not rolled back (mode {mode}); nothing to restore")]
    NotRolledBack { mode: String },
    #[error("rollbackd is shutting down")]
    ShuttingDown,
    /// A review or a missed degradation the domain refused; the message names the field.
    #[error(transparent)]
    Invalid(#[from] InputError),
    /// A hold, mode or approval request refused; the message starts with the field.
    #[error("{0}")]
    Rejected(String),
    /// Nothing of that kind is in force to end.
    #[error("{0}")]
    NotActive(String),
    #[error("{0}")]
    NotFound(String),
    /// Two-person restore: the requester cannot approve their own request.
    #[error("{0}")]
    SecondPersonRequired(String),
}

/// Why `/-/ready` says no.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("history storage failed its last write")]
    StorageFailed,
    #[error("the history's database cannot be reached")]
    DatabaseUnreachable,
    #[error("shutting down")]
    ShuttingDown,
}

/// Where this machine's boot clock stands: `/proc/uptime` counts from boot (suspend included)
/// and does not step with the wall clock. `None` where it cannot be read.
pub(super) fn clock_mark() -> Option<ClockMark> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    Some(ClockMark {
        boot_id: boot_id.trim().to_owned(),
        since_boot_ms: (secs * 1000.0) as u64,
    })
}

/// How long ago `event` was created: on the boot clock when both marks are of this boot (a
/// wall-clock step at start cannot cancel a cooldown), else by the wall clock.
fn age_ms(
    event: &crate::store::Event,
    now: chrono::DateTime<chrono::Utc>,
    here: Option<&ClockMark>,
) -> u64 {
    match (&event.clock, here) {
        (Some(then), Some(now_mark)) if then.boot_id == now_mark.boot_id => {
            now_mark.since_boot_ms.saturating_sub(then.since_boot_ms)
        }
        _ => (now - event.created_at).num_milliseconds().max(0) as u64,
    }
}

/// Subscribers that fall this many messages behind are dropped.
pub const STREAM_CAPACITY: usize = 256;

struct Inner {
    /// The effective config: `base` with the holds in force laid over it (see `holds`).
    config: ArcSwap<Config>,
    /// The config as loaded (swapped whole by a reload).
    base: ArcSwap<Config>,
    /// Windows, the regime, the automation mode, what awaits an answer.
    hold: Mutex<holds::HoldState>,
    /// Every member of the Alertmanager pair (drills, notification tests, direct notices).
    alertmanager: crate::notify::AlertmanagerClient,
    store: Store,
    target: TargetClient,
    metrics: Arc<Metrics>,
    stream: broadcast::Sender<StreamMessage>,
    watch: Mutex<Watch>,
    execution: Mutex<Execution>,
    /// The running stability watch: its cancel token and the event it watches.
    stability: Mutex<Option<(CancellationToken, String)>>,
    /// The event another replica runs, as the shared history last said (PostgreSQL).
    remote_slot: Mutex<Option<String>>,
    resend: ResendFilter,
    /// Wakes the rates loop: something that changes the rates happened.
    rates_due: tokio::sync::Notify,
    /// One rates computation at a time (held across the history reads, nothing else).
    rates_lock: tokio::sync::Mutex<()>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    clock: Instant,
}

#[derive(Clone)]
pub struct Engine(Arc<Inner>);

/// Each path is configured by its key (`monitoring.automatic_rollback` for the watchdog,
/// `monitoring.alertmanager_rollback`); the watchdog starts armed when monitoring is active on
/// start, the Alertmanager path armed.
fn initial_arming(config: &Config) -> Arming {
    Arming {
        watchdog: PathState {
            configured: config.monitoring.automatic_rollback,
            armed: config.monitoring.active_on_start,
        },
        alertmanager: PathState {
            configured: config.monitoring.alertmanager_rollback,
            armed: true,
        },
    }
}

/// A poisoned lock still holds consistent state here (every critical section is a few
/// assignments), so it is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Opens the history, finishes what a crash interrupted, and starts the watchdog.
    pub async fn start(config: Config) -> anyhow::Result<Engine> {
        use anyhow::Context;
        let store = match &config.postgres {
            None => {
                Store::open(&config.storage_path).with_context(|| "opening the rollback history")?
            }
            Some(pg) => Store::connect_postgres(pg)
                .await
                .with_context(|| "connecting to the rollback history on PostgreSQL")?,
        };
        let resend = ResendFilter::warm(&store).await?;
        let (stream, _) = broadcast::channel(STREAM_CAPACITY);
        let engine = Engine(Arc::new(Inner {
            metrics: Arc::new(Metrics::new(&config)),
            target: TargetClient::new(&config.target),
            watch: Mutex::new(Watch::new(config.conditions.len())),
            execution: Mutex::new(Execution::new(
                &config.profile.mode,
                initial_arming(&config),
            )),
            stability: Mutex::new(None),
            remote_slot: Mutex::new(None),
            hold: Mutex::new(holds::HoldState::new(&config)),
            alertmanager: crate::notify::AlertmanagerClient::new(
                &config.alertmanager.urls,
                config.alertmanager.timeout,
            ),
            base: ArcSwap::from_pointee(config.clone()),
            config: ArcSwap::from_pointee(config),
            store,
            stream,
            resend,
            rates_due: tokio::sync::Notify::new(),
            rates_lock: tokio::sync::Mutex::new(()),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            clock: Instant::now(),
        }));
        let weak = Arc::downgrade(&engine.0);
        engine.0.metrics.set_probe(move || {
            weak.upgrade()
                .map(|inner| Engine(inner).probe())
                .unwrap_or_default()
        });
        engine.emit(EngineEvent::ArmingChanged(engine.arming()));
        // With PostgreSQL, crash recovery is the leader's, once it leads (see `replicas`).
        if engine.0.store.leadership().is_none() {
            engine
                .recover()
                .await
                .context("finishing rollbacks a previous run left unfinished")?;
        }
        engine.resume().await?;
        engine
            .resume_holds()
            .await
            .context("reading back the freezes, windows and regime in force")?;
        if engine.0.store.notices().is_some() {
            // A replica joins the set as it is: arming, holds and proposals from the history.
            engine.follow().await;
        }
        engine.refresh_rates().await;
        engine.resume_operations().await?;
        let e = engine.clone();
        engine.0.tasks.spawn(async move { e.poll_loop().await });
        let e = engine.clone();
        engine.0.tasks.spawn(async move { e.rates_loop().await });
        let e = engine.clone();
        engine.0.tasks.spawn(async move { e.hold_loop().await });
        let e = engine.clone();
        engine.0.tasks.spawn(async move { e.schedule_loop().await });
        engine.start_replica_loops();
        Ok(engine)
    }

    /// Picks up the cooldown and the latest event from the history.
    async fn resume(&self) -> Result<(), StoreError> {
        let last = self.0.store.last_executed().await?;
        if let Some(last) = &last {
            let age = age_ms(last, chrono::Utc::now(), clock_mark().as_ref());
            let at = self.now_ms().saturating_sub(age);
            self.execution().guard.set_last_execution_ms(at);
        }
        let latest = self
            .0
            .store
            .list_events(EventQuery {
                limit: 1,
                ..Default::default()
            })
            .await?;
        self.execution().last_event = latest.into_iter().next();
        let runs = match &last {
            Some(e) => {
                let q = crate::store::ValidationQuery {
                    limit: 1000,
                    before: None,
                    event_id: Some(e.id.clone()),
                };
                self.0.store.list_validations(q).await?
            }
            None => vec![],
        };
        if let (Some(e), true) = (&last, self.0.store.is_leader()) {
            self.resume_stability_watch(e, &runs);
        }
        self.emit(EngineEvent::Resumed {
            last_executed: last.map(Arc::new),
            last_validation: runs.into_iter().next().map(Arc::new),
        });
        Ok(())
    }

    /// The config in force (a reload swaps it).
    pub fn config(&self) -> Arc<Config> {
        self.0.config.load_full()
    }

    /// The metrics this engine's events are applied to.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.0.metrics.clone()
    }

    /// The history this engine records to.
    pub fn store(&self) -> Store {
        self.0.store.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StreamMessage> {
        self.0.stream.subscribe()
    }

    fn now_ms(&self) -> u64 {
        // Far from zero, so a cooldown restored from before the start still fits.
        const CLOCK_BASE_MS: u64 = 1 << 40;
        CLOCK_BASE_MS + self.0.clock.elapsed().as_millis() as u64
    }

    /// Says what happened: metrics first (so `/metrics` is exact when a caller is answered),
    /// then the stream, whose messages are built only when someone listens.
    fn emit(&self, event: EngineEvent) {
        self.0.metrics.apply(&event);
        if event.changes_rates() {
            self.0.rates_due.notify_one();
        }
        if self.0.stream.receiver_count() == 0 {
            return;
        }
        for msg in event.stream_messages(|| self.status()) {
            // A subscriber that lags is dropped by its own reader.
            let _ = self.0.stream.send(msg);
        }
    }

    /// Ready for `/-/ready`: storage writable and not shutting down.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if !self.0.store.is_reachable() {
            return Err(NotReady::DatabaseUnreachable);
        }
        if !self.0.store.is_healthy() {
            return Err(NotReady::StorageFailed);
        }
        if self.0.shutdown.is_cancelled() {
            return Err(NotReady::ShuttingDown);
        }
        Ok(())
    }

    fn probe(&self) -> Probe {
        let s = self.status_view();
        Probe {
            rollback_ready: s.rollback_ready,
            cooldown_remaining_seconds: s.cooldown_remaining_seconds,
            leader: self.0.store.is_leader(),
            database_up: self.0.store.is_reachable(),
        }
    }

    pub fn status(&self) -> StatusView {
        self.status_view()
    }

    pub fn triggers(&self) -> TriggersView {
        self.triggers_view(&lock(&self.0.watch))
    }

    /// Records durably, then asks for rollbacks in the background (see `intake`).
    pub async fn receive_alerts(&self, payload: Payload) -> Result<WebhookOutcome, EngineError> {
        self.intake(payload).await
    }

    /// A delivery answered before, sent again byte for byte: answered from memory, or `None`
    /// when it must be parsed and given to [`Engine::receive_delivery`].
    pub fn receive_resend(&self, body: &[u8]) -> Option<Result<WebhookOutcome, EngineError>> {
        self.intake_resend(body)
    }

    /// [`Engine::receive_alerts`] for `payload`, parsed from `body`, which is remembered so
    /// that the same bytes sent again are answered by [`Engine::receive_resend`].
    pub async fn receive_delivery(
        &self,
        body: &[u8],
        payload: Payload,
    ) -> Result<WebhookOutcome, EngineError> {
        self.intake_body(body, payload).await
    }

    /// Counts a delivery the HTTP layer refused before it reached the engine.
    pub fn reject_delivery(&self, why: Rejection) {
        self.emit(EngineEvent::DeliveryRejected(why));
    }

    fn execution(&self) -> MutexGuard<'_, Execution> {
        lock(&self.0.execution)
    }

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
        // Releases the leadership at once, so a standby takes over without waiting.
        self.0.store.close();
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.0.shutdown.clone()
    }
}
