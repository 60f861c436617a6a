//! Proving it before it is needed: drills run the whole rollback path without changing the
//! trading system, notification tests confirm from Alertmanager's own counters that people
//! would be told, and direct notices tell Alertmanager at once when a rollback executes, fails
//! or is held by a freeze (the Prometheus rule stays the backstop; the same labels make them
//! one notification). Each drill and test is stored in the audit log (kinds `drill` and
//! `notification_test`) with every step's result and timing, said as an `EngineEvent`, and run
//! on a schedule when the config asks.

use super::{Engine, EngineError};
use crate::domain::lifecycle::EventStatus;
use crate::domain::target_status::CAP_MODE_DRY_RUN;
use crate::domain::validation;
use crate::domain::{SwitchRequest, TargetStatus};
use crate::events::EngineEvent;
use crate::notify::{Counters, MemberResult, OutAlert};
use crate::store::{AuditQuery, AuditRecord, Event};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How one step of a drill or a test ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    Passed,
    Failed,
    /// The trading system does not support it: reported, not held against rollbackd.
    Unsupported,
    /// Not configured (no Alertmanager), so not tried.
    Skipped,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillStep {
    pub name: String,
    pub result: StepResult,
    pub detail: String,
    pub duration_ms: u64,
}

/// One parameter the rollback would change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParameterChange {
    pub name: String,
    pub from: Option<f64>,
    pub to: f64,
}

/// A drill, as stored and answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// Every step that ran passed (unsupported and skipped ones aside).
    pub passed: bool,
    pub steps: Vec<DrillStep>,
    pub mode_from: Option<String>,
    pub mode_to: String,
    pub parameter_changes: Vec<ParameterChange>,
    pub validation_score: Option<f64>,
    /// Each Alertmanager's answer to the drill notification.
    pub notified: Vec<MemberResult>,
    pub duration_ms: u64,
}

/// One channel's verdict in a notification test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelResult {
    pub channel: String,
    pub result: StepResult,
    pub detail: String,
}

/// A notification test, as stored and answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotificationTestReport {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub passed: bool,
    pub channels: Vec<ChannelResult>,
    pub posted: Vec<MemberResult>,
    pub duration_ms: u64,
}

/// How often the schedule is looked at.
const SCHEDULE_TICK: Duration = Duration::from_secs(30);

struct Timer(Instant);

impl Timer {
    fn start() -> Timer {
        Timer(Instant::now())
    }
    fn ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

fn step(name: &str, t: &Timer, result: StepResult, detail: impl Into<String>) -> DrillStep {
    DrillStep {
        name: name.into(),
        result,
        detail: detail.into(),
        duration_ms: t.ms(),
    }
}

/// The status a switch to `mode` with `parameters` would leave, as rollbackd plans it.
fn planned(current: &TargetStatus, mode: &str, parameters: &BTreeMap<String, f64>) -> TargetStatus {
    let mut s = current.clone();
    s.mode = mode.into();
    s.parameters = parameters
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    s
}

impl Engine {
    /// Runs a drill: read, evaluate, plan, check the switch on the target without applying
    /// it, score the validation on the planned state, tell Alertmanager it was a drill.
    pub async fn drill(&self, actor: &str) -> Result<DrillReport, EngineError> {
        let whole = Timer::start();
        let cfg = self.config();
        let profile = &cfg.profile;
        let mut steps = Vec::new();
        let t = Timer::start();
        let current = match self.0.target.status().await {
            Ok(s) => {
                steps.push(step(
                    "read_target",
                    &t,
                    StepResult::Passed,
                    format!(
                        "mode {}, {} of {} agents healthy",
                        s.mode,
                        s.healthy_agents(),
                        s.agents.len()
                    ),
                ));
                Some(s)
            }
            Err(e) => {
                steps.push(step("read_target", &t, StepResult::Failed, e.to_string()));
                None
            }
        };
        let mut changes = Vec::new();
        let mut score = None;
        if let Some(current) = &current {
            let t = Timer::start();
            let judged: Vec<String> = cfg
                .conditions
                .iter()
                .map(|c| {
                    let v = current.metric(&c.name);
                    let shown = v.map_or("unknown".to_string(), |v| format!("{v}"));
                    format!("{} {shown} {}", c.name, c.evaluate(v).as_str())
                })
                .collect();
            steps.push(step(
                "evaluate_conditions",
                &t,
                StepResult::Passed,
                judged.join("; "),
            ));

            let t = Timer::start();
            changes = profile
                .parameters
                .iter()
                .filter(|(k, v)| current.parameter(k).is_none_or(|c| (c - **v).abs() > 1e-9))
                .map(|(k, v)| ParameterChange {
                    name: k.clone(),
                    from: current.parameter(k),
                    to: *v,
                })
                .collect();
            let plan = if current.mode == profile.mode {
                format!(
                    "already in {}: a trigger now would be suppressed (already_rolled_back)",
                    profile.mode
                )
            } else {
                format!(
                    "switch {} -> {}, {} parameter(s) change",
                    current.mode,
                    profile.mode,
                    changes.len()
                )
            };
            steps.push(step("plan", &t, StepResult::Passed, plan));

            let t = Timer::start();
            let req = SwitchRequest {
                mode: profile.mode.clone(),
                parameters: profile.parameters.clone(),
                event_id: format!("drill-{}", uuid::Uuid::now_v7()),
                reason: "drill: nothing is applied".into(),
                dry_run: true,
            };
            let (observed, check) = if !current.capabilities.iter().any(|c| c == CAP_MODE_DRY_RUN) {
                let detail = format!("the trading system does not list {CAP_MODE_DRY_RUN} in its status: nothing was sent; validation is scored on rollbackd's own plan");
                (
                    planned(current, &profile.mode, &profile.parameters),
                    step("target_check", &t, StepResult::Unsupported, detail),
                )
            } else {
                match self.0.target.check_switch(&req).await {
                    Ok(s) => {
                        let detail = format!("the trading system accepts the switch to {} (dry run, nothing applied)", s.mode);
                        (s, step("target_check", &t, StepResult::Passed, detail))
                    }
                    Err(e) => (
                        planned(current, &profile.mode, &profile.parameters),
                        step("target_check", &t, StepResult::Failed, e.to_string()),
                    ),
                }
            };
            steps.push(check);

            let t = Timer::start();
            let input = validation::Input {
                expected_mode: &profile.mode,
                expected_parameters: &profile.parameters,
                expected_agents: cfg.agents_expected,
                observed: Some(&observed),
                event_logged: true,
                conditions: &cfg.conditions,
            };
            let outcome = validation::score(&input, cfg.validation.pass_score);
            score = Some(outcome.score);
            let (result, detail) = if outcome.passed {
                (
                    StepResult::Passed,
                    format!("{}/100 on the planned state", outcome.score),
                )
            } else {
                (
                    StepResult::Failed,
                    format!(
                        "{}/100 on the planned state: {}",
                        outcome.score,
                        outcome.failures()
                    ),
                )
            };
            steps.push(step("validation", &t, result, detail));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let ran_ok = steps.iter().all(|s| s.result != StepResult::Failed);
        let t = Timer::start();
        let notified = if self.0.alertmanager.is_configured() {
            let alert = drill_alert(&id, ran_ok, &steps);
            let r = self.0.alertmanager.post(&[alert]).await;
            let ok = r.iter().all(|m| m.ok);
            let detail = r
                .iter()
                .map(|m| format!("{}: {}", m.url, m.error.as_deref().unwrap_or("accepted")))
                .collect::<Vec<_>>()
                .join("; ");
            let result = if ok {
                StepResult::Passed
            } else {
                StepResult::Failed
            };
            steps.push(step("notify", &t, result, detail));
            r
        } else {
            steps.push(step(
                "notify",
                &t,
                StepResult::Skipped,
                "alertmanager.urls is not set",
            ));
            vec![]
        };
        let report = DrillReport {
            id,
            at: Utc::now(),
            actor: actor.into(),
            passed: steps.iter().all(|s| s.result != StepResult::Failed),
            steps,
            mode_from: current.map(|c| c.mode),
            mode_to: profile.mode.clone(),
            parameter_changes: changes,
            validation_score: score,
            notified,
            duration_ms: whole.ms(),
        };
        self.store_operation("drill", actor, &report).await?;
        tracing::info!(id = %report.id, passed = report.passed, "drill recorded");
        self.emit(EngineEvent::DrillRecorded(Arc::new(report.clone())));
        Ok(report)
    }

    async fn store_operation(
        &self,
        kind: &str,
        actor: &str,
        what: &impl Serialize,
    ) -> Result<(), EngineError> {
        let record = AuditRecord {
            id: 0,
            at: Utc::now(),
            kind: kind.into(),
            actor: actor.into(),
            reason: kind.replace('_', " "),
            from: Value::Null,
            to: json!(what),
        };
        self.0.store.record_audit(record).await?;
        Ok(())
    }

    /// The newest stored reports of `kind`.
    pub async fn operations<T: for<'de> Deserialize<'de>>(
        &self,
        kind: &str,
        limit: u32,
    ) -> Result<Vec<T>, EngineError> {
        let q = AuditQuery {
            limit,
            before: None,
            kind: Some(kind.into()),
        };
        let records = self.0.store.list_audit(q).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| serde_json::from_value(r.to).ok())
            .collect())
    }

    /// Posts a test alert to Alertmanager and waits until its own counters say, per channel,
    /// whether the notification went out.
    pub async fn notification_test(
        &self,
        actor: &str,
        only: Option<Vec<String>>,
    ) -> Result<NotificationTestReport, EngineError> {
        let whole = Timer::start();
        if !self.0.alertmanager.is_configured() {
            return Err(EngineError::Rejected(
                "alertmanager.urls is not set: there is no Alertmanager to test".into(),
            ));
        }
        let cfg = self.config();
        let channels = match only {
            Some(asked) => {
                checked_channels(&asked).map_err(EngineError::Rejected)?;
                asked
            }
            // Checked at load: known, never empty, each once.
            None => cfg.notification_tests.channels.clone(),
        };
        let before = self.am_counters().await;
        let id = uuid::Uuid::now_v7().to_string();
        let mut labels = BTreeMap::from([
            (
                "alertname".to_string(),
                "RollbackNotificationTest".to_string(),
            ),
            ("severity".into(), "info".into()),
            ("service".into(), "rollbackd".into()),
            ("test_id".into(), id.clone()),
        ]);
        labels.insert("channels".into(), channels.join(","));
        let now = Utc::now();
        let alert = OutAlert {
            labels,
            annotations: BTreeMap::from([
                ("summary".to_string(), "TEST: rollbackd notification test, no action needed".to_string()),
                ("description".into(), format!("A test of the notification channels ({}) asked by {actor}. Nothing happened to the trading system.", channels.join(", "))),
            ]),
            starts_at: now,
            ends_at: Some(now + chrono::Duration::minutes(5)),
            generator_url: String::new(),
        };
        let posted = self.0.alertmanager.post(&[alert]).await;
        let deadline = Instant::now() + cfg.notification_tests.wait;
        let mut results: BTreeMap<String, ChannelResult> = BTreeMap::new();
        loop {
            let now_counters = self.am_counters().await;
            for c in &channels {
                if results.contains_key(c) {
                    continue;
                }
                let (s0, f0) = before.get(c).copied().unwrap_or_default();
                let (s1, f1) = now_counters.get(c).copied().unwrap_or_default();
                let (sent, failed) = (s1 - s0, f1 - f0);
                if sent > failed && sent > 0.0 {
                    results.insert(
                        c.clone(),
                        ChannelResult {
                            channel: c.clone(),
                            result: StepResult::Passed,
                            detail: format!("{sent} notification(s) sent, {failed} failed"),
                        },
                    );
                } else if failed > 0.0 {
                    results.insert(c.clone(), ChannelResult { channel: c.clone(), result: StepResult::Failed, detail: format!("Alertmanager counted {failed} failed notification(s) and none delivered") });
                }
            }
            if results.len() == channels.len()
                || Instant::now() >= deadline
                || self.0.shutdown.is_cancelled()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let channel_results: Vec<ChannelResult> = channels
            .iter()
            .map(|c| {
                results.remove(c).unwrap_or_else(|| ChannelResult {
                    channel: c.clone(),
                    result: StepResult::Failed,
                    detail: format!("no notification attempt counted within {}: is the channel routed for RollbackNotificationTest?", humantime::format_duration(cfg.notification_tests.wait)),
                })
            })
            .collect();
        let report = NotificationTestReport {
            id,
            at: Utc::now(),
            actor: actor.into(),
            passed: posted.iter().any(|m| m.ok)
                && channel_results
                    .iter()
                    .all(|c| c.result == StepResult::Passed),
            channels: channel_results,
            posted,
            duration_ms: whole.ms(),
        };
        self.store_operation("notification_test", actor, &report)
            .await?;
        tracing::info!(id = %report.id, passed = report.passed, "notification test recorded");
        self.emit(EngineEvent::NotificationTested(Arc::new(report.clone())));
        Ok(report)
    }

    /// Every member's counters, summed (in a cluster one member sends each notification).
    async fn am_counters(&self) -> Counters {
        let mut sum = Counters::new();
        for url in self.0.alertmanager.urls() {
            match self.0.alertmanager.counters(url).await {
                Ok(c) => {
                    for (k, (s, f)) in c {
                        let e = sum.entry(k).or_insert((0.0, 0.0));
                        e.0 += s;
                        e.1 += f;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Alertmanager counters unreadable"),
            }
        }
        sum
    }

    /// Tells Alertmanager at once about an executed, failed or frozen rollback; never waits
    /// the engine: the post runs in the background, bounded by `alertmanager.timeout`.
    pub(super) fn notify_direct(&self, event: &Event) {
        let cfg = self.config();
        if !cfg.alertmanager.direct_notify || !self.0.alertmanager.is_configured() {
            return;
        }
        let alerts = direct_alerts(event);
        if alerts.is_empty() {
            return;
        }
        let e = self.clone();
        self.0.tasks.spawn(async move {
            for m in e.0.alertmanager.post(&alerts).await {
                if let Some(err) = m.error {
                    tracing::warn!(error = %err, "direct notice to Alertmanager failed; the Prometheus rule remains");
                }
            }
        });
    }

    /// Runs drills and notification tests when the config's schedule says they are due.
    pub(super) async fn schedule_loop(&self) {
        let mut tick = tokio::time::interval(SCHEDULE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.0.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !self.0.store.is_leader() {
                // With replicas, only the leader runs the schedule.
                continue;
            }
            let cfg = self.config();
            if let Some(every) = cfg.drills.every {
                if self.due("drill", every).await {
                    if let Err(e) = self.drill("schedule").await {
                        tracing::error!(error = %e, "scheduled drill could not be recorded");
                    }
                }
            }
            if let Some(every) = cfg.notification_tests.every {
                if self.0.alertmanager.is_configured() && self.due("notification_test", every).await
                {
                    if let Err(e) = self.notification_test("schedule", None).await {
                        tracing::error!(error = %e, "scheduled notification test could not be recorded");
                    }
                }
            }
        }
    }

    async fn due(&self, kind: &str, every: Duration) -> bool {
        let q = AuditQuery {
            limit: 1,
            before: None,
            kind: Some(kind.into()),
        };
        match self.0.store.list_audit(q).await {
            Ok(r) => r
                .first()
                .is_none_or(|last| (Utc::now() - last.at).to_std().unwrap_or_default() >= every),
            Err(_) => false,
        }
    }

    /// The latest drill and notification test at start, for the metrics.
    pub(super) async fn resume_operations(&self) -> Result<(), EngineError> {
        if let Some(d) = self
            .operations::<DrillReport>("drill", 1)
            .await?
            .into_iter()
            .next()
        {
            self.emit(EngineEvent::DrillRecorded(Arc::new(d)));
        }
        if let Some(n) = self
            .operations::<NotificationTestReport>("notification_test", 1)
            .await?
            .into_iter()
            .next()
        {
            self.emit(EngineEvent::NotificationTested(Arc::new(n)));
        }
        Ok(())
    }
}

/// The channels a notification test judges: at least one, each known, none twice (a test of
/// no channel would pass having proved nothing, and a repeated one could never be judged).
/// The message names the field and the channel.
fn checked_channels(channels: &[String]) -> Result<(), String> {
    use crate::config::ChannelProblem;
    let known = crate::config::CHANNELS.join(", ");
    match crate::config::channel_problem(channels) {
        None => Ok(()),
        Some(ChannelProblem::Empty) => Err(format!(
            "channels: name at least one channel; expected some of {known}"
        )),
        Some(ChannelProblem::Unknown(i)) => Err(format!(
            "channels: unknown channel {:?}; expected one of {known}",
            channels[i]
        )),
        Some(ChannelProblem::Twice(i)) => {
            Err(format!("channels: {:?} is listed twice", channels[i]))
        }
    }
}

fn drill_alert(id: &str, ok: bool, steps: &[DrillStep]) -> OutAlert {
    let now = Utc::now();
    let summary: Vec<String> = steps
        .iter()
        .map(|s| format!("{} {:?} ({} ms)", s.name, s.result, s.duration_ms).to_lowercase())
        .collect();
    OutAlert {
        labels: BTreeMap::from([
            ("alertname".to_string(), "RollbackDrill".to_string()),
            ("severity".into(), "info".into()),
            ("service".into(), "rollbackd".into()),
            ("drill".into(), "true".into()),
            ("drill_id".into(), id.into()),
        ]),
        annotations: BTreeMap::from([
            (
                "summary".to_string(),
                format!(
                    "DRILL ({}): rollback path tested, nothing was changed",
                    if ok { "passed" } else { "FAILED" }
                ),
            ),
            (
                "description".into(),
                format!(
                    "This is a drill. The trading system was not switched. Steps: {}",
                    summary.join(", ")
                ),
            ),
        ]),
        starts_at: now,
        ends_at: Some(now + chrono::Duration::minutes(5)),
        generator_url: String::new(),
    }
}

/// The alerts to post for this event: its own, and at its end the `executing` one resolved, so
/// a page never lists a state the rollback has left.
fn direct_alerts(event: &Event) -> Vec<OutAlert> {
    let Some(alert) = direct_alert(event) else {
        return vec![];
    };
    let mut out = vec![];
    if matches!(event.status, EventStatus::Completed | EventStatus::Failed) {
        let mut executing = alert.clone();
        executing
            .labels
            .insert("status".into(), EventStatus::Executing.as_str().into());
        executing.ends_at = Some(Utc::now());
        out.push(executing);
    }
    out.push(alert);
    out
}

/// The alert Prometheus would raise for this event, with the same labels, so Alertmanager
/// folds both into one notification.
fn direct_alert(event: &Event) -> Option<OutAlert> {
    let frozen = event.status == EventStatus::Suppressed
        && event.suppressed_reason.as_deref() == Some("freeze");
    let executed = matches!(
        event.status,
        EventStatus::Executing | EventStatus::Completed | EventStatus::Failed
    ) && event.request.action == crate::domain::Action::Rollback;
    if !frozen && !executed {
        return None;
    }
    let alertname = if frozen {
        "RollbackCriticalDuringFreeze"
    } else {
        "EmergencyRollbackTriggered"
    };
    let now = Utc::now();
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), alertname.to_string()),
        ("severity".into(), "critical".into()),
        ("team".into(), "trading-ops".into()),
        ("service".into(), "rollbackd".into()),
        ("event_id".into(), event.id.clone()),
        (
            "trigger_type".into(),
            event.request.trigger_type.as_str().into(),
        ),
        ("status".into(), event.status.as_str().into()),
    ]);
    if frozen {
        // The rule's own routing label: Alertmanager sends notify="primary" to the primary
        // contacts on every channel; without it the notice would go by severity instead.
        labels.insert("notify".into(), "primary".into());
    }
    let summary = if frozen {
        format!(
            "A critical trigger was held by a freeze - a person must decide now - Event ID: {}",
            event.id
        )
    } else {
        format!(
            "🚨 EMERGENCY: Trading system rolled back to Cycle 4 - Event ID: {}",
            event.id
        )
    };
    Some(OutAlert {
        labels,
        annotations: BTreeMap::from([
            ("summary".to_string(), summary),
            (
                "description".into(),
                format!(
                    "rollbackd: {} (trigger: {}), status {}. {}",
                    event.request.reason,
                    event.request.trigger_type.as_str(),
                    event.status,
                    event.note.clone().unwrap_or_default()
                ),
            ),
            ("source".into(), "rollbackd direct notice".into()),
        ]),
        starts_at: event.created_at,
        ends_at: Some(now + chrono::Duration::minutes(10)),
        generator_url: String::new(),
    })
}
