//! The watchdog: reads the target every poll interval and judges each condition. The judging
//! is a pure step (`Watch::observe`: state and sample in, observation out) so it is tested
//! without I/O; the loop around it does the reading, says what happened and hands a trigger to
//! the executor.

use super::{lock, Engine, EngineError, Requested, RollbackRequest};
use crate::domain::condition::{ConditionSpec, Samples, Status, Trend};
use crate::domain::lifecycle::TriggerType;
use crate::domain::TargetStatus;
use crate::events::{EngineEvent, Poll, TargetOperation};
use crate::target::TargetError;
use chrono::{DateTime, Utc};
use std::sync::Arc;

#[derive(Default)]
pub(super) struct ConditionState {
    samples: Samples,
    pub(super) value: Option<f64>,
    pub(super) status: Option<Status>,
    pub(super) trend: Option<Trend>,
    /// This critical episode already triggered (or was suppressed): act once per episode.
    acted: bool,
}

/// What the watchdog knows of the target and of each condition (in config order).
pub(super) struct Watch {
    pub(super) conditions: Vec<ConditionState>,
    last_status: Option<TargetStatus>,
    pub(super) target_up: bool,
    pub(super) last_error: Option<String>,
    pub(super) last_success: Option<DateTime<Utc>>,
    pub(super) updated_at: Option<DateTime<Utc>>,
}

/// What one sample changed.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Observation {
    /// (condition index, from, to) for each condition whose status moved.
    pub changes: Vec<(usize, Status, Status)>,
    /// A breach line for each condition that newly went critical while armed.
    pub newly_critical: Vec<String>,
    /// Their indices, to count them again if the trigger could not be recorded.
    pub triggered: Vec<usize>,
    /// The target just stopped answering (said once per outage).
    pub target_lost: Option<String>,
}

impl Watch {
    pub(super) fn new(conditions: usize) -> Watch {
        Watch {
            conditions: (0..conditions).map(|_| ConditionState::default()).collect(),
            last_status: None,
            target_up: false,
            last_error: None,
            last_success: None,
            updated_at: None,
        }
    }

    /// The target's last status, while it answers.
    pub(super) fn current(&self) -> Option<&TargetStatus> {
        self.last_status.as_ref().filter(|_| self.target_up)
    }

    /// The last status ever read, even if the target stopped answering since.
    pub(super) fn last_known(&self) -> Option<&TargetStatus> {
        self.last_status.as_ref()
    }

    /// A status read outside the poll (after a switch) replaces the last one.
    pub(super) fn saw(&mut self, status: TargetStatus) {
        self.last_status = Some(status);
    }

    /// A read outside the poll failed: what the target is in is no longer known.
    pub(super) fn lost(&mut self, error: String) {
        self.last_status = None;
        self.target_up = false;
        self.last_error = Some(error);
    }

    /// A trigger that could not be recorded did not happen: those conditions act again on the
    /// next sample that finds them critical.
    pub(super) fn unact(&mut self, conditions: &[usize]) {
        for &i in conditions {
            if let Some(c) = self.conditions.get_mut(i) {
                c.acted = false;
            }
        }
    }

    /// Conditions already critical count as a new episode once the watchdog is re-armed.
    pub(super) fn rearm(&mut self) {
        for c in &mut self.conditions {
            c.acted = false;
        }
    }

    /// Takes one sample in. `armed` is whether a new critical episode may trigger.
    pub(super) fn observe(
        &mut self,
        specs: &[ConditionSpec],
        sample: Result<TargetStatus, String>,
        armed: bool,
        now: DateTime<Utc>,
    ) -> Observation {
        let mut obs = Observation::default();
        match sample {
            Ok(status) => {
                self.target_up = true;
                self.last_error = None;
                self.last_success = Some(now);
                self.last_status = Some(status);
            }
            Err(e) => {
                if self.target_up || self.last_error.is_none() {
                    obs.target_lost = Some(e.clone());
                }
                self.target_up = false;
                self.last_error = Some(e);
            }
        }
        let status = self.current().cloned();
        for (i, (spec, c)) in specs.iter().zip(self.conditions.iter_mut()).enumerate() {
            let value = status.as_ref().and_then(|t| t.metric(&spec.name));
            let old = c.status.unwrap_or(Status::Unknown);
            let new = spec.evaluate(value);
            if new != old {
                obs.changes.push((i, old, new));
            }
            c.samples.push(value);
            c.value = value;
            c.status = Some(new);
            c.trend = Some(c.samples.trend(spec));
            if new != Status::Critical {
                c.acted = false;
            } else if armed && !c.acted {
                c.acted = true;
                obs.newly_critical.push(describe_breach(spec, value));
                obs.triggered.push(i);
            }
        }
        self.updated_at = Some(now);
        obs
    }
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

impl Engine {
    pub(super) async fn poll_loop(self) {
        let mut tick = tokio::time::interval(self.config().monitoring.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.0.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !self.0.store.is_healthy() {
                // Readiness and the next trigger need to know as soon as the disk is back.
                let _ = self.0.store.probe().await;
            }
            let result = self.0.target.status().await;
            self.emit(EngineEvent::TargetCalled {
                operation: TargetOperation::Status,
                ok: result.is_ok(),
            });
            if let Some((request, triggered)) = self.take_sample(result) {
                // A follower watches (its metrics and triggers stay live) but only the leader
                // acts; the episode stays open so whoever leads next acts on it. Without a
                // database no replica leads: no record, no rollback (docs/ha.md).
                if !self.0.store.is_leader() {
                    tracing::warn!(reason = %request.reason, "critical breach seen; this replica does not lead, the leader acts");
                    lock(&self.0.watch).unact(&triggered);
                } else if !self.trigger(request).await {
                    lock(&self.0.watch).unact(&triggered);
                }
            }
        }
    }

    /// Takes one poll result in; returns a watchdog request when a condition newly went
    /// critical while the watchdog is armed.
    fn take_sample(
        &self,
        result: Result<TargetStatus, TargetError>,
    ) -> Option<(RollbackRequest, Vec<usize>)> {
        let cfg = self.config();
        let armed = self.arming().watchdog.acts();
        let now = Utc::now();
        let (obs, poll) = {
            let mut w = lock(&self.0.watch);
            let sample = result.map_err(|e| e.to_string());
            let obs = w.observe(&cfg.conditions, sample, armed, now);
            let current = w.current();
            let poll = Poll {
                target_up: w.target_up,
                mode: current.map(|t| t.mode.clone()),
                agents_healthy: current.map(TargetStatus::healthy_agents).unwrap_or(0),
                at: now,
                triggers: self.triggers_view(&w),
            };
            (obs, poll)
        };
        if let Some(e) = &obs.target_lost {
            tracing::warn!(error = %e, "target status unavailable; conditions unknown");
        }
        for (i, from, to) in obs.changes {
            self.emit(EngineEvent::ConditionChanged {
                condition: cfg.conditions[i].name.clone(),
                from,
                to,
            });
        }
        self.emit(EngineEvent::Polled(Arc::new(poll)));
        let request = RollbackRequest {
            trigger_type: TriggerType::Watchdog,
            source: "watchdog".into(),
            reason: obs.newly_critical.join("; "),
            actor: "rollbackd".into(),
            dry_run: false,
            alert_names: vec![],
            fingerprints: vec![],
            approval: Default::default(),
        };
        (!obs.triggered.is_empty()).then_some((request, obs.triggered))
    }

    /// Logs what became of an automatic trigger.
    pub(super) fn log_requested(&self, who: &str, requested: &Result<Requested, EngineError>) {
        match requested {
            Ok(Requested::Started { event, .. }) => {
                tracing::warn!(event_id = %event.id, reason = %event.request.reason, trigger = who, "rollback started")
            }
            Ok(Requested::Suppressed { reason, .. }) => {
                tracing::info!(
                    reason = reason.as_str(),
                    trigger = who,
                    "trigger suppressed"
                )
            }
            Ok(Requested::DryRun { .. }) => {}
            Ok(Requested::Proposed(p)) => {
                tracing::warn!(proposal = %p.id, trigger = who, "rollback proposed; awaiting an operator")
            }
            Err(e) => tracing::error!(error = %e, trigger = who, "trigger could not be recorded"),
        }
    }

    /// Hands an automatic trigger to the executor; true when it was recorded.
    pub(super) async fn trigger(&self, request: RollbackRequest) -> bool {
        let who = request.trigger_type.as_str();
        let result = self.request_rollback(request).await;
        self.log_requested(who, &result);
        result.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defaults;
    use std::collections::BTreeMap;

    fn status(stability: f64) -> TargetStatus {
        TargetStatus {
            mode: "session_targeted".into(),
            parameters: BTreeMap::new(),
            agents: vec![],
            metrics: BTreeMap::from([
                ("walk_forward_stability".into(), stability.into()),
                ("overfitting_score".into(), 0.1.into()),
                ("consecutive_losses".into(), 0.into()),
                ("max_drawdown".into(), 1.0.into()),
            ]),
            capabilities: vec![],
        }
    }

    fn watch() -> (Watch, Vec<ConditionSpec>) {
        let specs = defaults(None).unwrap().conditions;
        (Watch::new(specs.len()), specs)
    }

    #[test]
    fn a_critical_episode_triggers_once_while_armed() {
        let (mut w, specs) = watch();
        let now = Utc::now();
        let first = w.observe(&specs, Ok(status(72.0)), true, now);
        assert!(first.newly_critical.is_empty());
        assert_eq!(first.changes.len(), specs.len(), "unknown -> ok for each");
        let breach = w.observe(&specs, Ok(status(39.5)), true, now);
        assert_eq!(
            breach.newly_critical,
            vec!["walk_forward_stability 39.5 < 40 (critical)".to_string()]
        );
        assert_eq!(breach.changes, vec![(0, Status::Ok, Status::Critical)]);
        let again = w.observe(&specs, Ok(status(30.0)), true, now);
        assert!(again.newly_critical.is_empty(), "same episode");
        w.unact(&breach.triggered);
        let retried = w.observe(&specs, Ok(status(30.0)), true, now);
        assert_eq!(
            retried.triggered,
            vec![0],
            "an unrecorded trigger acts again"
        );
        assert!(again.changes.is_empty());
        w.observe(&specs, Ok(status(45.0)), true, now);
        let next = w.observe(&specs, Ok(status(39.0)), true, now);
        assert_eq!(next.newly_critical.len(), 1, "a new episode after recovery");
    }

    #[test]
    fn disarmed_it_watches_without_triggering_until_rearmed() {
        let (mut w, specs) = watch();
        let now = Utc::now();
        let o = w.observe(&specs, Ok(status(10.0)), false, now);
        assert!(o.newly_critical.is_empty());
        assert_eq!(w.conditions[0].status, Some(Status::Critical));
        w.rearm();
        let o = w.observe(&specs, Ok(status(10.0)), true, now);
        assert_eq!(o.newly_critical.len(), 1);
    }

    #[test]
    fn an_unreadable_target_makes_every_condition_unknown_and_is_said_once() {
        let (mut w, specs) = watch();
        let now = Utc::now();
        w.observe(&specs, Ok(status(10.0)), false, now);
        let lost = w.observe(&specs, Err("down".into()), true, now);
        assert_eq!(lost.target_lost.as_deref(), Some("down"));
        assert!(lost.newly_critical.is_empty(), "unknown never triggers");
        assert!(w
            .conditions
            .iter()
            .all(|c| c.status == Some(Status::Unknown)));
        assert!(w.current().is_none());
        assert!(w.last_known().is_some());
        let still = w.observe(&specs, Err("down".into()), true, now);
        assert_eq!(still.target_lost, None);
    }
}
