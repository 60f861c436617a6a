//! The executor: one rollback or restore at a time. It asks the guard, records the event
//! durably before the target is touched, switches the target, validates, and records the
//! verdict; `record_verdict` is the one place an event gets its final status, whether the
//! execution ran to its end, failed on the way, or was interrupted and finished at start.

use super::{lock, Engine, EngineError};
use crate::domain::lifecycle::{
    Action, Approval, Arming, Decision, EventStatus, Guard, Policy, SuppressReason, TriggerType,
    MODE_SESSION_TARGETED,
};
use crate::domain::SwitchRequest;
use crate::events::{EngineEvent, TargetOperation};
use crate::store::{
    held_detail, Event, EventQuery, EventRequest, StoreError, TransitionDetail, ValidationKind,
};
use chrono::Utc;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

/// What the executor owns: the guard that admits one execution at a time, and the latest
/// event (for the status page).
pub(super) struct Execution {
    pub(super) guard: Guard,
    pub(super) last_event: Option<Event>,
}

impl Execution {
    pub(super) fn new(rollback_mode: &str, arming: Arming) -> Execution {
        Execution {
            guard: Guard::new(rollback_mode, arming),
            last_event: None,
        }
    }
}

/// Who asks for a rollback, and why. Serialized into a proposal's audit record, so any
/// replica can answer it (docs/ha.md).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RollbackRequest {
    pub trigger_type: TriggerType,
    pub source: String,
    pub reason: String,
    pub actor: String,
    pub dry_run: bool,
    pub alert_names: Vec<String>,
    pub fingerprints: Vec<String>,
    /// Who stands behind an automatic trigger (confirm mode); `None` for a fresh one.
    pub approval: Approval,
}

/// What became of a request.
pub enum Requested {
    /// Executing in the background; the handle yields the event once validated (or failed).
    Started {
        event: Event,
        done: JoinHandle<Result<Event, StoreError>>,
    },
    Suppressed {
        event: Event,
        reason: SuppressReason,
    },
    DryRun {
        event: Event,
    },
    /// Confirm mode: an operator decides (or the timeout does); nothing recorded as an event yet.
    Proposed(crate::views::ProposalView),
}

/// A rollback request with the guard's decision, before it is recorded.
pub(super) struct Proposal {
    pub event: Event,
    pub detail: TransitionDetail,
    pub decision: Decision,
}

/// How an execution ended, before it is recorded.
pub(super) struct Verdict {
    pub status: EventStatus,
    pub failure_reason: Option<String>,
    pub note: Option<String>,
    pub validation_score: Option<f64>,
    pub parameters_after: Option<BTreeMap<String, Value>>,
    pub duration_ms: Option<u64>,
}

impl Verdict {
    /// Completed when there is no failure, failed with it otherwise.
    pub(super) fn new(failure: Option<String>) -> Verdict {
        Verdict {
            status: match failure {
                None => EventStatus::Completed,
                Some(_) => EventStatus::Failed,
            },
            failure_reason: failure,
            note: None,
            validation_score: None,
            parameters_after: None,
            duration_ms: None,
        }
    }

    pub(super) fn failed(why: String) -> Verdict {
        Verdict::new(Some(why))
    }
}

fn format_params(p: &BTreeMap<String, f64>) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Engine {
    /// A new event for `req`, with the conditions and the target as the watchdog sees them now.
    pub(super) fn new_event(
        &self,
        action: Action,
        req: &RollbackRequest,
        target_mode: &str,
        target_parameters: BTreeMap<String, f64>,
        status: EventStatus,
    ) -> Event {
        let w = lock(&self.0.watch);
        let before = w.last_known();
        let request = EventRequest {
            action,
            trigger_type: req.trigger_type,
            source: req.source.clone(),
            reason: req.reason.clone(),
            actor: req.actor.clone(),
            dry_run: req.dry_run,
            alert_names: req.alert_names.clone(),
            fingerprints: req.fingerprints.clone(),
            conditions: self.snapshot(&w),
            mode_before: before.map(|t| t.mode.clone()),
            parameters_before: before.map(|t| t.parameters.clone()),
            target_mode: target_mode.into(),
            target_parameters,
        };
        let mut event = Event::new(
            uuid::Uuid::now_v7().to_string(),
            request,
            Utc::now(),
            status,
        );
        event.clock = super::clock_mark();
        event
    }

    /// The guard's decision for `req`, and what to record with it.
    fn decide(&self, event: &Event, req: &RollbackRequest) -> (Decision, TransitionDetail) {
        let cfg = self.config();
        let profile = &cfg.profile;
        let current = lock(&self.0.watch).last_known().map(|t| t.mode.clone());
        let (mode, freeze) = self.policy_now();
        let policy = Policy {
            mode,
            freeze: freeze.as_ref().map(|w| w.name.as_str()),
            approval: req.approval,
        };
        let decision = self.execution().guard.decide(
            &event.id,
            req.trigger_type,
            req.dry_run,
            current.as_deref(),
            self.now_ms(),
            cfg.cooldown.as_millis() as u64,
            policy,
        );
        let would_switch = || {
            format!(
                "would switch to {} with {}",
                profile.mode,
                format_params(&profile.parameters)
            )
        };
        let detail = match decision {
            Decision::Execute | Decision::Propose => TransitionDetail::default(),
            Decision::Suppress(r) => TransitionDetail {
                suppressed_reason: Some(r.as_str().into()),
                note: freeze.filter(|_| r == SuppressReason::Freeze).map(|w| {
                    format!(
                        "freeze {} holds automatic triggers until {} ({})",
                        w.name,
                        w.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        w.reason
                    )
                }),
                ..Default::default()
            },
            Decision::Observe => TransitionDetail {
                note: Some(format!(
                    "observe mode: {}; nothing was sent",
                    would_switch()
                )),
                ..Default::default()
            },
            Decision::DryRun { would_suppress } => TransitionDetail {
                note: Some(match would_suppress {
                    None => format!("dry run: {}", would_switch()),
                    Some(r) => format!("dry run: would be suppressed ({})", r.as_str()),
                }),
                ..Default::default()
            },
        };
        (decision, detail)
    }

    /// Decides, records durably, then (if admitted) executes in the background.
    pub async fn request_rollback(&self, req: RollbackRequest) -> Result<Requested, EngineError> {
        if self.0.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        let p = self.propose(&req);
        if p.decision == Decision::Propose {
            return Ok(Requested::Proposed(self.open_proposal(req).await?));
        }
        let event = self.record_new(p.event, p.detail).await?;
        Ok(self.carry_out(event, p.decision))
    }

    /// The event for a rollback request with the guard's decision in it, not yet recorded. An
    /// `Execute` holds the execution slot: record it (or release the slot) next.
    pub(super) fn propose(&self, req: &RollbackRequest) -> Proposal {
        let cfg = self.config();
        let profile = &cfg.profile;
        let mut event = self.new_event(
            Action::Rollback,
            req,
            &profile.mode,
            profile.parameters.clone(),
            EventStatus::Pending,
        );
        let (decision, detail) = self.decide(&event, req);
        event.status = match decision {
            Decision::Execute | Decision::Propose => EventStatus::Pending,
            Decision::Suppress(_) => EventStatus::Suppressed,
            Decision::DryRun { .. } | Decision::Observe => EventStatus::DryRun,
        };
        Proposal {
            event,
            detail,
            decision,
        }
    }

    /// After the proposal's event is durable: executes it in the background when admitted.
    pub(super) fn carry_out(&self, event: Event, decision: Decision) -> Requested {
        match decision {
            // The database refused the slot (another replica executes): recorded as suppressed.
            Decision::Execute if event.status != EventStatus::Pending => Requested::Suppressed {
                event,
                reason: SuppressReason::InProgress,
            },
            Decision::Execute => {
                let e = self.clone();
                let pending = event.clone();
                let done = self.0.tasks.spawn(async move { e.execute(pending).await });
                Requested::Started { event, done }
            }
            Decision::Suppress(reason) => Requested::Suppressed { event, reason },
            Decision::DryRun { .. } | Decision::Observe => Requested::DryRun { event },
            Decision::Propose => unreachable!("a proposal is answered before anything is recorded"),
        }
    }

    /// Returns the trading system to `session_targeted`: always a deliberate human action. A
    /// dry run records what it would send and touches nothing.
    pub async fn restore(
        &self,
        reason: String,
        actor: String,
        dry_run: bool,
    ) -> Result<Event, EngineError> {
        if self.0.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        let parameters = self.adaptive_parameters().await?;
        let req = RollbackRequest {
            trigger_type: TriggerType::Manual,
            source: "restore".into(),
            reason,
            actor,
            dry_run,
            alert_names: vec![],
            fingerprints: vec![],
            approval: Approval::None,
        };
        let mode = lock(&self.0.watch)
            .last_known()
            .map(|t| t.mode.clone())
            .unwrap_or_else(|| "unknown".into());
        if mode == MODE_SESSION_TARGETED {
            return Err(EngineError::NotRolledBack { mode });
        }
        if dry_run {
            return self.restore_plan(&req, parameters).await;
        }
        let event = self.new_event(
            Action::Restore,
            &req,
            MODE_SESSION_TARGETED,
            parameters,
            EventStatus::Pending,
        );
        if self.execution().guard.begin_restore(&event.id).is_err() {
            let holder = self
                .execution()
                .guard
                .in_progress()
                .unwrap_or_default()
                .to_owned();
            return Err(EngineError::InProgress(holder));
        }
        let event = self.record_new(event, TransitionDetail::default()).await?;
        if event.status != EventStatus::Pending {
            let holder = lock(&self.0.remote_slot).clone().unwrap_or_default();
            return Err(EngineError::InProgress(holder));
        }
        let e = self.clone();
        let done = self.0.tasks.spawn(async move { e.execute(event).await });
        Ok(done.await.map_err(|_| EngineError::ShuttingDown)??)
    }

    /// Says how long automatic triggers stay held after a restore: the last rollback's
    /// cooldown keeps running, and an operator should know before the next alert arrives.
    fn cooldown_note(&self) -> Option<String> {
        let ms = self
            .execution()
            .guard
            .cooldown_remaining_ms(self.now_ms(), self.config().cooldown.as_millis() as u64);
        (ms > 0).then(|| {
            let left = std::time::Duration::from_secs(ms.div_ceil(1000));
            format!(
                "automatic triggers stay held by the cooldown for {} more (watchdog and Alertmanager rollbacks are recorded as suppressed until then; a manual rollback still executes)",
                humantime::format_duration(left)
            )
        })
    }

    /// Records what a restore would send, and whether the cooldown would still hold automatic
    /// triggers afterwards.
    async fn restore_plan(
        &self,
        req: &RollbackRequest,
        parameters: BTreeMap<String, f64>,
    ) -> Result<Event, EngineError> {
        let cooldown_ms = self
            .execution()
            .guard
            .cooldown_remaining_ms(self.now_ms(), self.config().cooldown.as_millis() as u64);
        let mut note = format!(
            "dry run: would switch to {MODE_SESSION_TARGETED} with {}",
            if parameters.is_empty() {
                "no parameters".to_string()
            } else {
                format_params(&parameters)
            }
        );
        if cooldown_ms > 0 {
            let left = std::time::Duration::from_secs(cooldown_ms.div_ceil(1000));
            note.push_str(&format!(
                "; automatic triggers stay held by the cooldown for {}",
                humantime::format_duration(left)
            ));
        }
        let event = self.new_event(
            Action::Restore,
            req,
            MODE_SESSION_TARGETED,
            parameters,
            EventStatus::DryRun,
        );
        let detail = TransitionDetail {
            note: Some(note),
            ..Default::default()
        };
        self.record_new(event, detail).await
    }

    /// The parameters the adaptive mode had before the last completed rollback.
    async fn adaptive_parameters(&self) -> Result<BTreeMap<String, f64>, StoreError> {
        let previous = self
            .0
            .store
            .list_events(EventQuery {
                limit: 1,
                status: Some(EventStatus::Completed),
                ..Default::default()
            })
            .await?;
        Ok(previous
            .iter()
            .find(|e| e.request.action == Action::Rollback)
            .and_then(|e| e.request.parameters_before.as_ref())
            .map(|p| {
                p.iter()
                    .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Stores a new event durably and says so. If the store refuses, the execution slot the
    /// event may hold is freed: nothing unrecorded ever runs.
    pub(super) async fn record_new(
        &self,
        event: Event,
        detail: TransitionDetail,
    ) -> Result<Event, EngineError> {
        match self.0.store.insert_event(&event, detail).await {
            Err(e) => {
                self.withdraw_slot(&event.id);
                Err(e.into())
            }
            Ok(None) => Ok(self.announce(event).await),
            Ok(Some(holder)) => {
                // Another replica's event holds the execution slot: recorded as suppressed.
                self.withdraw_slot(&event.id);
                let at = event.created_at;
                let event = event.at(EventStatus::Suppressed, at, held_detail(&holder));
                *lock(&self.0.remote_slot) = Some(holder);
                Ok(self.announce(event).await)
            }
        }
    }

    /// Says that a new event is durable. The stored copy is read back for its transitions; if
    /// that read fails, the event as recorded stands in (it is durable either way).
    pub(super) async fn announce(&self, event: Event) -> Event {
        let stored = self.reread(&event.id).await.unwrap_or(event);
        self.execution().last_event = Some(stored.clone());
        self.emit(EngineEvent::Recorded(Arc::new(stored.clone())));
        self.notify_direct(&stored);
        stored
    }

    async fn reread(&self, id: &str) -> Result<Event, StoreError> {
        self.0
            .store
            .get_event(id)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("event {id} vanished after a write")))
    }

    /// Moves an event on in the store and says so; returns the new event.
    pub(super) async fn advance(
        &self,
        id: &str,
        status: EventStatus,
        detail: TransitionDetail,
    ) -> Result<Event, StoreError> {
        self.0.store.transition(id, status, detail).await?;
        let event = self.reread(id).await?;
        self.execution().last_event = Some(event.clone());
        self.emit(EngineEvent::Transitioned(Arc::new(event.clone())));
        self.notify_direct(&event);
        Ok(event)
    }

    /// Takes back the slot an unrecorded event was admitted to: nothing ran, no cooldown.
    pub(super) fn withdraw_slot(&self, id: &str) {
        self.free_slot(id, Guard::withdraw);
    }

    /// Frees the execution slot if `id` holds it (a stale id changes nothing).
    pub(super) fn release_slot(&self, id: &str) {
        self.free_slot(id, Guard::finish);
    }

    fn free_slot(&self, id: &str, free: fn(&mut Guard, &str)) {
        let held = {
            let mut x = self.execution();
            let held = x.guard.in_progress() == Some(id);
            free(&mut x.guard, id);
            held
        };
        if held {
            self.emit(EngineEvent::SlotReleased {
                event_id: id.to_owned(),
            });
        }
    }

    /// Runs an admitted execution to its recorded verdict. If the history refuses a step, the
    /// slot stays held (the history says the event still runs, so nothing else may) while
    /// `finish_unrecorded` keeps trying to record an outcome; the caller learns of the failure
    /// at once.
    async fn execute(self, event: Event) -> Result<Event, StoreError> {
        let id = event.id.clone();
        match self.execute_steps(&event, Instant::now()).await {
            Ok(v) => {
                self.release_slot(&id);
                Ok(v)
            }
            Err(e) => {
                tracing::error!(event_id = %id, error = %e, "the outcome could not be recorded; keeping the execution slot and retrying");
                let engine = self.clone();
                self.0.tasks.spawn(engine.finish_unrecorded(id));
                Err(e)
            }
        }
    }

    /// Records an outcome for an execution whose history stopped taking writes, as start-up
    /// recovery would (re-validated against the target), retrying with back-off; then frees the
    /// slot. A stop first leaves the event to the next start.
    async fn finish_unrecorded(self, id: String) {
        let mut wait = std::time::Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = self.0.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let done = match self.reread(&id).await {
                Ok(e) if e.status.is_terminal() => true,
                Ok(e) => self.recover_one(e).await.is_ok(),
                Err(_) => false,
            };
            if done {
                tracing::warn!(event_id = %id, "the outcome is recorded; execution slot free");
                self.release_slot(&id);
                return;
            }
            wait = (wait * 2).min(std::time::Duration::from_secs(5));
        }
    }

    async fn execute_steps(&self, event: &Event, started: Instant) -> Result<Event, StoreError> {
        let id = event.id.as_str();
        let action = event.request.action;
        self.cancel_stability_watch();
        self.advance(id, EventStatus::Executing, TransitionDetail::default())
            .await?;
        let req = SwitchRequest {
            mode: event.request.target_mode.clone(),
            parameters: event.request.target_parameters.clone(),
            event_id: id.into(),
            reason: event.request.reason.clone(),
            dry_run: false,
        };
        let switched = self.0.target.switch(&req).await;
        self.emit(EngineEvent::TargetCalled {
            operation: TargetOperation::Switch,
            ok: switched.is_ok(),
        });
        // Whatever the switch answered (a timeout or an unreadable answer may hide a switch
        // that was applied), the target is read back and judged: history never contradicts it.
        self.advance(id, EventStatus::Validating, TransitionDetail::default())
            .await?;
        let observed = self.read_back().await;
        let outcome = self.validate(event, observed.as_ref().ok()).await;
        let run = self
            .store_validation(event, ValidationKind::Initial, &outcome, None)
            .await?;
        let failure = match (&switched, &observed, action) {
            (Err(e), Ok(_), _) if outcome.passed => {
                tracing::warn!(event_id = id, error = %e, "the switch's answer was lost; the read-back shows it applied");
                None
            }
            (Err(e), _, _) => Some(format!("switch failed: {e}")),
            (Ok(_), Err(e), _) => Some(format!("could not read the status back: {e}")),
            (Ok(_), Ok(_), _) if outcome.passed => None,
            (Ok(_), Ok(_), Action::Rollback) => Some(format!(
                "recovery validation failed (score {} < {}): {}",
                outcome.score,
                outcome.pass_score,
                outcome.failures()
            )),
            (Ok(_), Ok(_), Action::Restore) => {
                Some(format!("restore not confirmed: {}", outcome.failures()))
            }
        };
        let note = match (&switched, failure.is_none()) {
            (Err(e), true) => Some(format!(
                "the switch's answer was lost ({e}); the read-back confirmed it applied"
            )),
            (Ok(_), true) if action == Action::Restore => self.cooldown_note(),
            _ => None,
        };
        let verdict = Verdict {
            note,
            validation_score: Some(run.score),
            parameters_after: observed.ok().map(|s| s.parameters),
            duration_ms: Some(started.elapsed().as_millis() as u64),
            ..Verdict::new(failure)
        };
        let view = self.record_verdict(event, verdict).await?;
        if view.status == EventStatus::Completed
            && action == Action::Rollback
            && self.0.store.is_leader()
        {
            let window = self.config().validation.stability_window;
            self.start_stability_watch(view.clone(), window);
        }
        Ok(view)
    }

    /// Reads the target after a switch. What it says replaces the watchdog's last view; a
    /// failed read leaves the mode unknown rather than stale.
    async fn read_back(&self) -> Result<crate::domain::TargetStatus, crate::target::TargetError> {
        let observed = self.0.target.status_with_retries().await;
        self.emit(EngineEvent::TargetCalled {
            operation: TargetOperation::Status,
            ok: observed.is_ok(),
        });
        match &observed {
            Ok(st) => {
                lock(&self.0.watch).saw(st.clone());
                self.emit(EngineEvent::ModeSeen(st.mode.clone()));
            }
            Err(e) => {
                lock(&self.0.watch).lost(e.to_string());
                self.emit(EngineEvent::ModeSeen("unknown".into()));
            }
        }
        observed
    }

    /// Gives an event its final status, durably, and logs it.
    pub(super) async fn record_verdict(
        &self,
        event: &Event,
        v: Verdict,
    ) -> Result<Event, StoreError> {
        let detail = TransitionDetail {
            failure_reason: v.failure_reason.clone(),
            parameters_after: v.parameters_after,
            duration_ms: v.duration_ms,
            validation_score: v.validation_score,
            note: v.note,
            ..Default::default()
        };
        let view = self.advance(&event.id, v.status, detail).await?;
        let action = event.request.action.as_str();
        match &v.failure_reason {
            None => {
                tracing::info!(event_id = %event.id, action, ms = v.duration_ms, score = v.validation_score, "completed")
            }
            Some(why) => {
                tracing::error!(event_id = %event.id, action, ms = v.duration_ms, reason = %why, "failed")
            }
        }
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// A target that reports `mode` and accepts every switch.
    async fn target_in(mode: &str) -> MockServer {
        let server = MockServer::start().await;
        let status = serde_json::json!({"mode": mode, "parameters": {}, "agents": [],
            "metrics": {"walk_forward_stability": 70.0}});
        Mock::given(method("GET"))
            .and(path("/v1/status"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&status))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/v1/mode"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&status))
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn a_target_already_in_the_configured_profile_mode_is_not_rolled_back_again() {
        let target = target_in("conservative_profile").await;
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "target: {{ url: \"{}\", timeout: 1s }}\nmonitoring: {{ poll_interval: 50ms }}\n\
             rollback_profile: {{ mode: conservative_profile, parameters: {{ confidence_threshold: 0.6 }} }}\n",
            target.uri()
        );
        let mut config = crate::config::from_str(&yaml, dir.path(), None).unwrap();
        config.storage_path = dir.path().join("history.db");
        let engine = Engine::start(config).await.unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while engine.status().mode != "conservative_profile" {
            assert!(
                Instant::now() < deadline,
                "the watchdog never read the target"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let req = RollbackRequest {
            trigger_type: TriggerType::Manual,
            source: "test".into(),
            reason: "again".into(),
            actor: "ops".into(),
            dry_run: false,
            alert_names: vec![],
            fingerprints: vec![],
            approval: Approval::None,
        };
        match engine.request_rollback(req).await.unwrap() {
            Requested::Suppressed { reason, event } => {
                assert_eq!(reason, SuppressReason::AlreadyRolledBack);
                assert_eq!(event.status, EventStatus::Suppressed);
            }
            Requested::Started { .. } => {
                panic!("rolled back a target already in the profile's mode")
            }
            Requested::DryRun { .. } => panic!("not a dry run"),
            Requested::Proposed(_) => panic!("a manual rollback is never a proposal"),
        }
        engine.shutdown(std::time::Duration::from_secs(2)).await;
    }
}
