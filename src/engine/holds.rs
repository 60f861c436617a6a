//! Holds at runtime: freeze and maintenance windows, regimes, the automation mode, proposals
//! awaiting an operator (confirm mode) and restores awaiting a second person. Every start,
//! end, expiry and change is recorded in the audit log before it takes effect, said as an
//! `EngineEvent`, and read back at start so an ad hoc window or regime survives a restart (one
//! that expired while the daemon was down is recorded as expired).
//!
//! The thresholds and the expected agents the rest of the engine reads are the *effective*
//! config: the loaded one (`base`) with the regime's preset and the maintenance window's agent
//! count laid over it, swapped in whole whenever a hold changes.

use super::executor::{Requested, RollbackRequest};
use super::{lock, Engine, EngineError};
use crate::config::Config;
use crate::domain::holds::{
    check_request, AutomationMode, Change, Holds, OnTimeout, Regime, Window, WindowKind,
};
use crate::domain::lifecycle::{
    Action, Approval, EventStatus, SuppressReason, MODE_SESSION_TARGETED,
};
use crate::events::EngineEvent;
use crate::store::{AuditQuery, AuditRecord, Event, TransitionDetail};
use crate::views::{HoldsView, ProposalView, RestoreRequestView, UpcomingWindow};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How often windows, expiries and proposal deadlines are checked.
const TICK: Duration = Duration::from_millis(250);

/// An automatic trigger waiting for an answer.
struct Pending {
    view: ProposalView,
    request: RollbackRequest,
}

/// What the holds owner keeps (one lock, never held across an `.await`).
pub(super) struct HoldState {
    holds: Holds,
    mode: AutomationMode,
    proposals: Vec<Pending>,
    restores: Vec<RestoreRequestView>,
    /// Proposals and restore requests this replica has taken to answer, until the history
    /// says they are answered: reading the others' changes back never reopens one.
    answering: std::collections::HashSet<String>,
}

impl HoldState {
    /// Proposals whose answer could not be recorded: open again, first in line.
    fn reopen_proposals(&mut self, ps: impl IntoIterator<Item = Pending>) {
        let ps: Vec<Pending> = ps.into_iter().collect();
        for p in &ps {
            self.answering.remove(&p.view.id);
        }
        self.proposals.splice(0..0, ps);
    }

    /// Restore requests whose answer or expiry could not be recorded: listed again.
    fn reopen_restores(&mut self, rs: impl IntoIterator<Item = RestoreRequestView>) {
        for r in rs {
            self.answering.remove(&r.id);
            self.restores.push(r);
        }
    }

    pub(super) fn new(config: &Config) -> HoldState {
        let mut scheduled = config.freezes.scheduled.clone();
        scheduled.extend(config.maintenance.scheduled.iter().cloned());
        HoldState {
            holds: Holds::new(scheduled),
            mode: config.automation.mode,
            proposals: vec![],
            restores: vec![],
            answering: Default::default(),
        }
    }
}

/// An operator's ad hoc window.
#[derive(Clone, Debug)]
pub struct WindowAsk {
    pub kind: WindowKind,
    pub name: Option<String>,
    pub duration: Option<Duration>,
    pub reason: String,
    pub expected_healthy_agents: Option<u32>,
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::Rejected(msg.into())
}

fn check_reason(reason: &str) -> Result<(), EngineError> {
    if reason.trim().is_empty() {
        return Err(invalid("reason: a reason is required"));
    }
    Ok(())
}

/// `base` with the regime and the maintenance window laid over it.
fn effective(base: &Config, regime: Option<&Regime>, maintenance: Option<&Window>) -> Arc<Config> {
    let mut cfg = match regime.map(|r| base.with_regime(&r.name)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            // Only a reload that removed the preset gets here; the base thresholds stand.
            tracing::error!(error = %e, "regime not applied");
            base.clone()
        }
        None => base.clone(),
    };
    if let Some(n) = maintenance.and_then(|w| w.expected_healthy_agents) {
        cfg.agents_expected = n;
    }
    Arc::new(cfg)
}

impl Engine {
    fn hold(&self) -> std::sync::MutexGuard<'_, HoldState> {
        lock(&self.0.hold)
    }

    /// The automation mode and the freeze in force now.
    pub(super) fn policy_now(&self) -> (AutomationMode, Option<Window>) {
        let h = self.hold();
        (h.mode, h.holds.active(WindowKind::Freeze, Utc::now()))
    }

    pub fn holds(&self) -> HoldsView {
        let now = Utc::now();
        let h = self.hold();
        let mut upcoming: Vec<UpcomingWindow> = h
            .holds
            .scheduled
            .iter()
            .filter_map(|s| {
                s.next_start(now).map(|start| UpcomingWindow {
                    kind: s.kind,
                    name: s.name.clone(),
                    start,
                })
            })
            .collect();
        upcoming.sort_by_key(|u| u.start);
        HoldsView {
            automation_mode: h.mode,
            freeze: h.holds.active(WindowKind::Freeze, now),
            maintenance: h.holds.active(WindowKind::Maintenance, now),
            regime: h.holds.regime(now).cloned(),
            regimes: self.0.base.load().regimes.keys().cloned().collect(),
            upcoming,
            proposals: h.proposals.iter().map(|p| p.view.clone()).collect(),
            restore_requests: h.restores.clone(),
        }
    }

    /// Swaps in the effective config for the holds in force and says so.
    pub(super) fn apply_holds(&self) {
        let now = Utc::now();
        let base = self.0.base.load_full();
        let cfg = {
            let h = self.hold();
            let maintenance = h.holds.active(WindowKind::Maintenance, now);
            effective(&base, h.holds.regime(now), maintenance.as_ref())
        };
        self.0.config.store(cfg.clone());
        self.emit(EngineEvent::ConfigReloaded(cfg));
        self.emit(EngineEvent::HoldsChanged(Arc::new(self.holds())));
    }

    async fn audit(
        &self,
        kind: &str,
        actor: &str,
        reason: &str,
        from: Value,
        to: Value,
    ) -> Result<(), EngineError> {
        let record = AuditRecord {
            id: 0,
            at: Utc::now(),
            kind: kind.into(),
            actor: actor.into(),
            reason: reason.into(),
            from,
            to,
        };
        self.0.store.record_audit(record).await?;
        tracing::warn!(kind, actor, reason, "hold changed");
        Ok(())
    }

    /// Starts (or replaces) the ad hoc window of `ask.kind`, for at most the configured maximum.
    pub async fn start_window(&self, ask: WindowAsk, actor: &str) -> Result<Window, EngineError> {
        let cfg = self.0.base.load_full();
        let section = match ask.kind {
            WindowKind::Freeze => &cfg.freezes,
            WindowKind::Maintenance => &cfg.maintenance,
        };
        let d = check_request(&ask.reason, ask.duration, section.max_duration).map_err(invalid)?;
        let expected = match (ask.kind, ask.expected_healthy_agents) {
            (WindowKind::Maintenance, None) => {
                return Err(invalid(
                    "expected_healthy_agents: a maintenance window says how many healthy agents to expect",
                ))
            }
            (WindowKind::Maintenance, Some(n)) if n > cfg.agents_expected => {
                return Err(invalid(format!(
                    "expected_healthy_agents: {n} is more than agents.expected ({})",
                    cfg.agents_expected
                )))
            }
            (WindowKind::Freeze, Some(_)) => {
                return Err(invalid(
                    "expected_healthy_agents: only a maintenance window changes the expected agents",
                ))
            }
            (_, n) => n,
        };
        let name = ask.name.unwrap_or_else(|| ask.kind.as_str().to_owned());
        if name.trim().is_empty() || name.len() > 64 {
            return Err(invalid("name: expected 1 to 64 characters"));
        }
        let start = Utc::now();
        let w = Window {
            kind: ask.kind,
            name,
            start,
            end: start + chrono::Duration::from_std(d).expect("bounded by the maximum"),
            actor: actor.into(),
            reason: ask.reason.trim().into(),
            expected_healthy_agents: expected,
        };
        let before = self.hold().holds.adhoc(ask.kind).cloned();
        let kind = format!("{}.start", ask.kind);
        self.audit(&kind, actor, &w.reason, json!(before), json!(w))
            .await?;
        {
            let mut h = self.hold();
            h.holds.start(w.clone());
            h.holds.mark_seen(&w);
        }
        self.apply_holds();
        Ok(w)
    }

    /// Ends the operator's window of `kind` now.
    pub async fn end_window(
        &self,
        kind: WindowKind,
        actor: &str,
        reason: &str,
    ) -> Result<Window, EngineError> {
        check_reason(reason)?;
        let now = Utc::now();
        let Some(w) = self
            .hold()
            .holds
            .adhoc(kind)
            .filter(|w| w.holds_at(now))
            .cloned()
        else {
            return Err(EngineError::NotActive(format!(
                "no ad hoc {kind} is in force (a scheduled window ends on its own)"
            )));
        };
        self.audit(&format!("{kind}.end"), actor, reason, json!(w), Value::Null)
            .await?;
        {
            let mut h = self.hold();
            h.holds.end(kind);
            h.holds.forget_seen(kind);
        }
        self.apply_holds();
        Ok(w)
    }

    /// Lays the regime `name` over the thresholds, until `duration` is over or it is cleared.
    pub async fn set_regime(
        &self,
        name: &str,
        duration: Option<Duration>,
        actor: &str,
        reason: &str,
    ) -> Result<Regime, EngineError> {
        check_reason(reason)?;
        self.0
            .base
            .load()
            .with_regime(name)
            .map_err(|e| invalid(format!("name: {e}")))?;
        if duration.is_some_and(|d| d.is_zero() || d > Duration::from_secs(30 * 86400)) {
            return Err(invalid("duration: expected more than 0s and at most 30d"));
        }
        let now = Utc::now();
        let r = Regime {
            name: name.into(),
            since: now,
            until: duration.map(|d| now + chrono::Duration::from_std(d).expect("at most 30d")),
            actor: actor.into(),
            reason: reason.trim().into(),
        };
        let before = self.hold().holds.regime(now).cloned();
        self.audit("regime.set", actor, reason, json!(before), json!(r))
            .await?;
        self.hold().holds.set_regime(Some(r.clone()));
        self.apply_holds();
        Ok(r)
    }

    pub async fn clear_regime(&self, actor: &str, reason: &str) -> Result<Regime, EngineError> {
        check_reason(reason)?;
        let Some(r) = self.hold().holds.regime(Utc::now()).cloned() else {
            return Err(EngineError::NotActive("no regime is in force".into()));
        };
        self.audit("regime.clear", actor, reason, json!(r), Value::Null)
            .await?;
        self.hold().holds.set_regime(None);
        self.apply_holds();
        Ok(r)
    }

    /// Switches how automatic triggers are carried out. Leaving confirm mode answers nothing:
    /// proposals already open keep their deadline.
    pub async fn set_mode(
        &self,
        mode: AutomationMode,
        actor: &str,
        reason: &str,
    ) -> Result<AutomationMode, EngineError> {
        check_reason(reason)?;
        let before = self.hold().mode;
        let config_mode = self.0.base.load().automation.mode;
        self.audit(
            "automation.mode",
            actor,
            reason,
            json!(before),
            json!({"mode": mode, "config_mode": config_mode}),
        )
        .await?;
        self.hold().mode = mode;
        if before == AutomationMode::Observe && mode != AutomationMode::Observe {
            // Conditions already critical count as a new episode once the engine may act.
            lock(&self.0.watch).rearm();
        }
        self.apply_holds();
        Ok(mode)
    }

    /// Confirm mode: an automatic trigger waits for an operator. While one waits, further
    /// automatic triggers join it rather than open another.
    pub(super) async fn open_proposal(
        &self,
        request: RollbackRequest,
    ) -> Result<ProposalView, EngineError> {
        if let Some(p) = self.hold().proposals.first() {
            return Ok(p.view.clone());
        }
        let cfg = self.config();
        let now = Utc::now();
        let view = ProposalView {
            id: uuid::Uuid::now_v7().to_string(),
            trigger_type: request.trigger_type,
            source: request.source.clone(),
            reason: request.reason.clone(),
            alert_names: request.alert_names.clone(),
            created_at: now,
            deadline: now
                + chrono::Duration::from_std(cfg.automation.confirm_timeout).expect("at most 24h"),
            on_timeout: cfg.automation.on_timeout,
        };
        // The request goes with the proposal, so another replica can answer it or let it
        // run out (the leader does).
        let mut record = json!(view);
        record["request"] = json!(request);
        self.audit(
            "proposal.created",
            &request.actor,
            &request.reason,
            Value::Null,
            record,
        )
        .await?;
        self.hold().proposals.push(Pending {
            view: view.clone(),
            request,
        });
        tracing::warn!(proposal = %view.id, "automatic rollback proposed; awaiting an operator");
        self.emit(EngineEvent::HoldsChanged(Arc::new(self.holds())));
        Ok(view)
    }

    fn take_proposal(&self, id: &str) -> Result<Pending, EngineError> {
        let mut h = self.hold();
        let i = h
            .proposals
            .iter()
            .position(|p| p.view.id == id)
            .ok_or_else(|| EngineError::NotFound(format!("no open proposal {id}")))?;
        let p = h.proposals.remove(i);
        h.answering.insert(p.view.id.clone());
        Ok(p)
    }

    /// An operator answers a proposal: approved, it is judged as a person's request; rejected,
    /// it is recorded as suppressed (`rejected`).
    pub async fn answer_proposal(
        &self,
        id: &str,
        approve: bool,
        actor: &str,
        reason: &str,
    ) -> Result<Requested, EngineError> {
        if !approve {
            check_reason(reason)?;
        }
        let p = self.take_proposal(id)?;
        let kind = if approve {
            "proposal.approved"
        } else {
            "proposal.rejected"
        };
        if let Err(e) = self
            .audit(kind, actor, reason, json!(p.view), Value::Null)
            .await
        {
            self.hold().reopen_proposals([p]);
            return Err(e);
        }
        self.emit(EngineEvent::HoldsChanged(Arc::new(self.holds())));
        let mut request = p.request;
        request.actor = actor.into();
        let words = if reason.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", reason.trim())
        };
        if approve {
            request.approval = Approval::Person;
            request.reason = format!("{} (approved by {actor}{words})", request.reason);
            self.request_rollback(request).await
        } else {
            let note = format!("proposal rejected by {actor}{words}");
            let event = self
                .record_unexecuted(&request, SuppressReason::Rejected, note)
                .await?;
            Ok(Requested::Suppressed {
                event,
                reason: SuppressReason::Rejected,
            })
        }
    }

    /// Records an automatic trigger that will not execute, with why.
    async fn record_unexecuted(
        &self,
        request: &RollbackRequest,
        reason: SuppressReason,
        note: String,
    ) -> Result<Event, EngineError> {
        let cfg = self.config();
        let event = self.new_event(
            Action::Rollback,
            request,
            &cfg.profile.mode,
            cfg.profile.parameters.clone(),
            EventStatus::Suppressed,
        );
        let detail = TransitionDetail {
            suppressed_reason: Some(reason.as_str().into()),
            note: Some(note),
            ..Default::default()
        };
        self.record_new(event, detail).await
    }

    /// Two-person restore: the request waits for another admin.
    pub async fn ask_restore(
        &self,
        reason: &str,
        actor: &str,
    ) -> Result<RestoreRequestView, EngineError> {
        check_reason(reason)?;
        let mode = lock(&self.0.watch)
            .last_known()
            .map(|t| t.mode.clone())
            .unwrap_or_else(|| "unknown".into());
        if mode == MODE_SESSION_TARGETED {
            return Err(EngineError::NotRolledBack { mode });
        }
        let now = Utc::now();
        let timeout = self.config().automation.restore_approval_timeout;
        let view = RestoreRequestView {
            id: uuid::Uuid::now_v7().to_string(),
            requested_by: actor.into(),
            reason: reason.trim().into(),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(timeout).expect("at most 24h"),
        };
        self.audit("restore.requested", actor, reason, Value::Null, json!(view))
            .await?;
        self.hold().restores.push(view.clone());
        self.emit(EngineEvent::HoldsChanged(Arc::new(self.holds())));
        Ok(view)
    }

    /// A second admin approves a restore request; the requester cannot.
    pub async fn approve_restore(
        &self,
        id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<Event, EngineError> {
        let ask = {
            let mut h = self.hold();
            let i =
                h.restores.iter().position(|r| r.id == id).ok_or_else(|| {
                    EngineError::NotFound(format!("no open restore request {id}"))
                })?;
            if h.restores[i].expires_at <= Utc::now() {
                return Err(EngineError::NotFound(format!(
                    "restore request {id} expired; ask again"
                )));
            }
            if h.restores[i].requested_by == actor {
                return Err(EngineError::SecondPersonRequired(format!(
                    "{actor} asked for this restore; another admin must approve it"
                )));
            }
            let ask = h.restores.remove(i);
            h.answering.insert(ask.id.clone());
            ask
        };
        if let Err(e) = self
            .audit("restore.approved", actor, reason, json!(ask), Value::Null)
            .await
        {
            self.hold().reopen_restores([ask]);
            return Err(e);
        }
        self.emit(EngineEvent::HoldsChanged(Arc::new(self.holds())));
        let why = format!(
            "{} (requested by {}, approved by {actor})",
            ask.reason, ask.requested_by
        );
        self.restore(why, actor.into(), false).await
    }

    /// Windows starting and ending, expiries, and proposals and restore requests whose time
    /// ran out.
    pub(super) async fn hold_loop(&self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.0.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.hold_tick(Utc::now()).await {
                tracing::error!(error = %e, "holds could not be recorded; trying again");
            }
        }
    }

    async fn hold_tick(&self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let changes = self.hold().holds.tick(now);
        // Every replica applies its schedules; only the leader records them and answers
        // what ran out.
        let leads = self.0.store.is_leader();
        for c in changes.iter().filter(|_| leads) {
            let (kind, from, to, reason) = match c {
                Change::Started(w) => (
                    format!("{}.scheduled_start", w.kind),
                    Value::Null,
                    json!(w),
                    w.reason.clone(),
                ),
                Change::Ended(w) if w.is_scheduled() => (
                    format!("{}.scheduled_end", w.kind),
                    json!(w),
                    Value::Null,
                    w.reason.clone(),
                ),
                Change::Ended(w) => (
                    format!("{}.expired", w.kind),
                    json!(w),
                    Value::Null,
                    format!("expired: {}", w.reason),
                ),
                Change::RegimeExpired(r) => (
                    "regime.expired".into(),
                    json!(r),
                    Value::Null,
                    format!("expired: {}", r.reason),
                ),
            };
            self.audit(&kind, "rollbackd", &reason, from, to).await?;
        }
        if !changes.is_empty() {
            self.apply_holds();
        }
        if !leads {
            return Ok(());
        }
        self.expire_proposals(now).await?;
        self.expire_restores(now).await
    }

    async fn expire_proposals(&self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let due: Vec<Pending> = {
            let mut h = self.hold();
            let (due, keep) = std::mem::take(&mut h.proposals)
                .into_iter()
                .partition(|p| p.view.deadline <= now);
            h.proposals = keep;
            h.answering.extend(due.iter().map(|p| p.view.id.clone()));
            due
        };
        let mut due = due.into_iter();
        while let Some(p) = due.next() {
            self.emit(EngineEvent::HoldsChanged(Arc::new(self.holds())));
            let (kind, why) = match p.view.on_timeout {
                OnTimeout::Proceed => (
                    "proposal.proceeded",
                    "no answer in time; the config says proceed",
                ),
                OnTimeout::Lapse => (
                    "proposal.lapsed",
                    "no answer in time; the config says lapse",
                ),
            };
            if let Err(e) = self
                .audit(kind, "rollbackd", why, json!(p.view), Value::Null)
                .await
            {
                // Not recorded, so not answered: this one and the rest wait for the next tick.
                self.hold().reopen_proposals(std::iter::once(p).chain(due));
                return Err(e);
            }
            let mut request = p.request;
            match p.view.on_timeout {
                OnTimeout::Proceed => {
                    request.approval = Approval::Timeout;
                    request.reason = format!("{} (no answer in time: proceeded)", request.reason);
                    let result = self.request_rollback(request).await;
                    self.log_requested("confirm timeout", &result);
                }
                OnTimeout::Lapse => {
                    let note = "proposal lapsed: no answer in time".to_string();
                    self.record_unexecuted(&request, SuppressReason::Lapsed, note)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn expire_restores(&self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let due: Vec<RestoreRequestView> = {
            let mut h = self.hold();
            let (due, keep) = std::mem::take(&mut h.restores)
                .into_iter()
                .partition(|r| r.expires_at <= now);
            h.restores = keep;
            h.answering.extend(due.iter().map(|r| r.id.clone()));
            due
        };
        let mut due = due.into_iter();
        while let Some(r) = due.next() {
            let why = "no second person approved in time";
            if let Err(e) = self
                .audit("restore.expired", "rollbackd", why, json!(r), Value::Null)
                .await
            {
                // Not recorded: it stays listed (it can no longer be approved: it expired)
                // until the expiry is.
                self.hold().reopen_restores(std::iter::once(r).chain(due));
                return Err(e);
            }
            self.emit(EngineEvent::HoldsChanged(Arc::new(self.holds())));
        }
        Ok(())
    }

    /// The newest audit record among `kinds`.
    pub(super) async fn latest_of(
        &self,
        kinds: &[impl AsRef<str>],
    ) -> Result<Option<AuditRecord>, EngineError> {
        let mut best: Option<AuditRecord> = None;
        for kind in kinds {
            let q = AuditQuery {
                limit: 1,
                before: None,
                kind: Some(kind.as_ref().to_owned()),
            };
            if let Some(r) = self.0.store.list_audit(q).await?.into_iter().next() {
                if best.as_ref().is_none_or(|b| r.id > b.id) {
                    best = Some(r);
                }
            }
        }
        Ok(best)
    }

    /// Reads back the ad hoc windows, the regime and the runtime mode from the history.
    pub(super) async fn resume_holds(&self) -> Result<(), EngineError> {
        let now = Utc::now();
        for kind in WindowKind::ALL {
            let Some(w) = self.last_started_window(kind).await? else {
                continue;
            };
            if w.end > now {
                tracing::warn!(kind = %kind, name = %w.name, until = %w.end, "ad hoc window resumed");
                let mut h = self.hold();
                h.holds.start(w.clone());
                h.holds.mark_seen(&w);
            } else {
                let reason = format!("expired while rollbackd was down: {}", w.reason);
                self.audit(
                    &format!("{kind}.expired"),
                    "rollbackd",
                    &reason,
                    json!(w),
                    Value::Null,
                )
                .await?;
            }
        }
        if let Some(r) = self.last_set_regime().await? {
            let known = self.0.base.load().regimes.contains_key(&r.name);
            if r.until.is_some_and(|u| u <= now) {
                let reason = format!("expired while rollbackd was down: {}", r.reason);
                self.audit(
                    "regime.expired",
                    "rollbackd",
                    &reason,
                    json!(r),
                    Value::Null,
                )
                .await?;
            } else if !known {
                let reason = format!("the config no longer defines regime {}", r.name);
                self.audit("regime.clear", "rollbackd", &reason, json!(r), Value::Null)
                    .await?;
            } else {
                self.hold().holds.set_regime(Some(r));
            }
        }
        if let Some(m) = self.recorded_mode().await? {
            self.hold().mode = m;
        }
        // What was in force at the stop is in force again; scheduled windows are reported
        // at the first tick.
        self.apply_holds();
        Ok(())
    }

    /// The runtime mode in the history, if it still holds: a runtime choice holds until the
    /// config's own mode changes.
    async fn recorded_mode(&self) -> Result<Option<AutomationMode>, EngineError> {
        let Some(last) = self.latest_of(&["automation.mode"]).await? else {
            return Ok(None);
        };
        let config_mode = self.0.base.load().automation.mode;
        let recorded_config = last.to["config_mode"]
            .as_str()
            .and_then(AutomationMode::parse);
        let runtime = last.to["mode"].as_str().and_then(AutomationMode::parse);
        Ok(runtime.filter(|_| recorded_config == Some(config_mode)))
    }

    /// The ad hoc window of `kind` the history last started, unless an end or an expiry
    /// followed it; whether it still holds is the caller's to judge.
    async fn last_started_window(&self, kind: WindowKind) -> Result<Option<Window>, EngineError> {
        let start = format!("{kind}.start");
        let kinds = [
            start.clone(),
            format!("{kind}.end"),
            format!("{kind}.expired"),
        ];
        Ok(self
            .latest_of(&kinds)
            .await?
            .filter(|r| r.kind == start)
            .and_then(|r| serde_json::from_value(r.to).ok()))
    }

    /// The regime the history last set, unless a clear or an expiry followed it.
    async fn last_set_regime(&self) -> Result<Option<Regime>, EngineError> {
        Ok(self
            .latest_of(&["regime.set", "regime.clear", "regime.expired"])
            .await?
            .filter(|r| r.kind == "regime.set")
            .and_then(|r| serde_json::from_value(r.to).ok()))
    }

    /// The records of `opened` that none of `closing` has answered yet (matched on the
    /// opened record's `to.id` and the closing record's `from.id`), oldest first.
    async fn still_open(
        &self,
        opened: &str,
        closing: &[&str],
    ) -> Result<Vec<AuditRecord>, EngineError> {
        let recent = |kind: &str| AuditQuery {
            limit: 100,
            before: None,
            kind: Some(kind.to_owned()),
        };
        let mut answered = std::collections::HashSet::new();
        for kind in closing {
            for r in self.0.store.list_audit(recent(kind)).await? {
                if let Some(id) = r.from["id"].as_str() {
                    answered.insert(id.to_owned());
                }
            }
        }
        let mut open: Vec<AuditRecord> = self
            .0
            .store
            .list_audit(recent(opened))
            .await?
            .into_iter()
            .filter(|r| r.to["id"].as_str().is_some_and(|id| !answered.contains(id)))
            .collect();
        open.reverse();
        Ok(open)
    }

    /// Another replica changed a hold: the ad hoc windows, the regime, the mode, the open
    /// proposals and the restore requests are read back from the shared history, so every
    /// replica decides alike whichever one a trigger reaches. Nothing is recorded here: the
    /// replica that made the change did that.
    pub(super) async fn follow_holds(&self) -> Result<(), EngineError> {
        let now = Utc::now();
        let mut windows = Vec::new();
        for kind in WindowKind::ALL {
            let w = self.last_started_window(kind).await?;
            windows.push((kind, w.filter(|w| w.end > now)));
        }
        let known = |r: &Regime| self.0.base.load().regimes.contains_key(&r.name);
        let regime = self
            .last_set_regime()
            .await?
            .filter(|r| r.until.is_none_or(|u| u > now) && known(r));
        let mode = self.recorded_mode().await?;
        let proposals: Vec<Pending> = self
            .still_open(
                "proposal.created",
                &[
                    "proposal.approved",
                    "proposal.rejected",
                    "proposal.proceeded",
                    "proposal.lapsed",
                ],
            )
            .await?
            .into_iter()
            .filter_map(|r| {
                let request = serde_json::from_value(r.to["request"].clone()).ok()?;
                let view = serde_json::from_value(r.to).ok()?;
                Some(Pending { view, request })
            })
            .collect();
        let restores: Vec<RestoreRequestView> = self
            .still_open(
                "restore.requested",
                &["restore.approved", "restore.expired"],
            )
            .await?
            .into_iter()
            .filter_map(|r| serde_json::from_value(r.to).ok())
            .collect();
        let config_mode = self.0.base.load().automation.mode;
        let was_observing = {
            let mut h = self.hold();
            for (kind, w) in windows {
                match w {
                    Some(w) if h.holds.adhoc(kind) != Some(&w) => {
                        h.holds.start(w.clone());
                        h.holds.mark_seen(&w);
                    }
                    Some(_) => {}
                    None => {
                        if h.holds.end(kind).is_some() {
                            h.holds.forget_seen(kind);
                        }
                    }
                }
            }
            h.holds.set_regime(regime);
            // What this replica is answering stays answered here; once the history no
            // longer shows it open, it is forgotten.
            let open: std::collections::HashSet<String> = proposals
                .iter()
                .map(|p| p.view.id.clone())
                .chain(restores.iter().map(|r| r.id.clone()))
                .collect();
            h.answering.retain(|id| open.contains(id));
            h.proposals = proposals
                .into_iter()
                .filter(|p| !h.answering.contains(&p.view.id))
                .collect();
            h.restores = restores
                .into_iter()
                .filter(|r| !h.answering.contains(&r.id))
                .collect();
            let before = h.mode;
            h.mode = mode.unwrap_or(config_mode);
            before == AutomationMode::Observe && h.mode != AutomationMode::Observe
        };
        if was_observing {
            lock(&self.0.watch).rearm();
        }
        self.apply_holds();
        Ok(())
    }

    /// A reload's scheduled windows replace the old ones.
    pub(super) fn reschedule(&self, config: &Config) {
        let fresh = HoldState::new(config);
        self.hold().holds.scheduled = fresh.holds.scheduled;
    }

    /// Whether a restore needs a second person.
    pub fn restore_needs_second_person(&self) -> bool {
        self.config().automation.restore_two_person
    }
}
