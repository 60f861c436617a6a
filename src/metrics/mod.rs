//! Everything rollbackd exports on `/metrics` (see docs/metrics.md), registered once. The
//! engine never sets a metric: it emits `EngineEvent`s and `apply` turns each into counts and
//! gauges here, the only code that knows the label sets. Two values that depend on the clock
//! and on several owners (readiness, cooldown left) are read from a probe at scrape time, so
//! they are exact whenever Prometheus looks. Counters are registered without `_total`; the
//! encoder appends it.

pub mod http;
mod process;

use crate::config::Config;
use crate::domain::condition::Status;
use crate::domain::lifecycle::{
    Action, Arming, AutomaticPath, EventStatus, SuppressReason, TriggerType, MODE_SESSION_TARGETED,
    MODE_UNIVERSAL_CYCLE_4,
};
use crate::domain::review::{Durations, Rates, Ratio, Verdict, Window};
use crate::events::{EngineEvent, Poll, Rejection, SuccessRates, TargetOperation};
use crate::store::{Event, ValidationKind, ValidationRun};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabel {
    condition_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThresholdLabel {
    condition_type: String,
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabel {
    trigger_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetCallLabel {
    operation: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ValidationLabel {
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LastEventLabel {
    event_id: String,
    trigger_type: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabel {
    path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegimeLabel {
    regime: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabel {
    step: String,
}

/// The operating loop: the last drill and the last notification test.
struct OperationGauges {
    drill_last: FGauge,
    drill_success: Gauge,
    drill_step_seconds: Family<StepLabel, FGauge>,
    test_last: FGauge,
    test_success: Family<ChannelLabel, Gauge>,
}

/// What holds the guard now (freezes, maintenance, the regime, the mode).
struct HoldGauges {
    freeze_active: Gauge,
    freeze_end: FGauge,
    maintenance_active: Gauge,
    maintenance_end: FGauge,
    regime_active: Family<RegimeLabel, Gauge>,
    automation_mode: Family<ModeLabel, Gauge>,
    proposals_pending: Gauge,
    restore_requests_pending: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WindowLabel {
    window: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WindowStatLabel {
    window: String,
    stat: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WindowVerdictLabel {
    window: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvironmentLabel {
    environment: String,
}

/// The execution-time buckets: 10 ms to 30 s, the seed's limit.
const EXECUTION_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

const MODES: [&str; 3] = [MODE_SESSION_TARGETED, MODE_UNIVERSAL_CYCLE_4, "unknown"];

/// What is read from the engine at scrape time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Probe {
    pub rollback_ready: bool,
    pub cooldown_remaining_seconds: f64,
    /// This replica leads (always with SQLite: one replica).
    pub leader: bool,
    /// The history's database answers (always with SQLite: a local file).
    pub database_up: bool,
}

type ProbeFn = Box<dyn Fn() -> Probe + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    probe: Arc<OnceLock<ProbeFn>>,
    events: Family<TriggerLabel, Counter>,
    conditions_active: Family<ConditionLabel, Gauge>,
    validation_score: FGauge,
    execution_time: Histogram,
    condition_value: Family<ConditionLabel, FGauge>,
    condition_threshold: Family<ThresholdLabel, FGauge>,
    condition_status: Family<ConditionLabel, Gauge>,
    condition_breaches: Family<ThresholdLabel, Counter>,
    monitoring_active: Gauge,
    automatic_enabled: Gauge,
    path_armed: Family<PathLabel, Gauge>,
    in_progress: Gauge,
    mode: Family<ModeLabel, Gauge>,
    target_up: Gauge,
    target_last_success: FGauge,
    target_requests: Family<TargetCallLabel, Counter>,
    agents_healthy: Gauge,
    agents_expected: Gauge,
    suppressed: Family<ReasonLabel, Counter>,
    dry_runs: Counter,
    outcomes: Family<StatusLabel, Counter>,
    last_event_timestamp: FGauge,
    last_event_info: Family<LastEventLabel, Gauge>,
    validations: Family<ValidationLabel, Counter>,
    validation_last_timestamp: FGauge,
    validation_pass_score: FGauge,
    stability_watch_active: Gauge,
    webhook_alerts: Family<StatusLabel, Counter>,
    webhook_firing: Counter,
    webhook_resolved: Counter,
    webhook_deduplicated: Counter,
    webhook_rejected: Family<ReasonLabel, Counter>,
    webhook_truncated: Counter,
    leadership_changes: Counter,
    /// The listener's counts (connections, streams, limits).
    pub http: http::HttpMetrics,
    rates: RateGauges,
    holds: HoldGauges,
    operations: OperationGauges,
}

/// The success rates read from the history, per window (see `domain::review`).
struct RateGauges {
    false_positive: Family<WindowLabel, FGauge>,
    true_positive: Family<WindowLabel, FGauge>,
    validation_success: Family<WindowLabel, FGauge>,
    documentation: Family<WindowLabel, FGauge>,
    unreviewed_executed: Family<WindowLabel, Gauge>,
    missed: Family<WindowLabel, Gauge>,
    episodes: Family<WindowVerdictLabel, Gauge>,
    response: Family<WindowStatLabel, FGauge>,
    recovery: Family<WindowStatLabel, FGauge>,
    oldest_unreviewed: FGauge,
    updated: FGauge,
}

/// The verdict label values: every verdict, and `unreviewed`.
const VERDICT_LABELS: [Option<Verdict>; 4] = [
    Some(Verdict::TruePositive),
    Some(Verdict::FalsePositive),
    Some(Verdict::Drill),
    None,
];

fn unix(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl Metrics {
    pub fn new(config: &Config) -> Metrics {
        let mut r = Registry::default();
        let mut m = Metrics::register(&mut r);
        // No data yet is NaN, never a time in 1970.
        for g in [
            &m.operations.drill_last,
            &m.operations.test_last,
            &m.holds.freeze_end,
            &m.holds.maintenance_end,
        ] {
            g.set(f64::NAN);
        }
        register_info(&mut r, config);
        r.register_collector(Box::new(ProbeCollector(m.probe.clone())));
        r.register_collector(Box::new(process::ProcessCollector {
            start_time: process::process_start_time(),
        }));
        m.seed(config);
        m.registry = r;
        m
    }

    /// Registers every family; the help texts are the metric's documentation on `/metrics`.
    #[rustfmt::skip]
    fn register(r: &mut Registry) -> Metrics {
        fn reg<M: prometheus_client::registry::Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
            r.register(name, help, metric.clone());
            metric
        }
        Metrics {
            registry: Registry::default(),
            probe: Arc::new(OnceLock::new()),
            events: reg(r, "rollback_events", "Rollbacks executed against the target, by trigger type", Family::default()),
            conditions_active: reg(r, "trigger_conditions_active", "1 while the condition is critical", Family::default()),
            validation_score: reg(r, "recovery_validation_score", "Score 0-100 of the latest recovery validation; NaN before the first", FGauge::default()),
            execution_time: reg(r, "rollback_execution_time_seconds", "From the rollback decision to the validated switch", Histogram::new(EXECUTION_BUCKETS)),
            condition_value: reg(r, "trigger_condition_value", "Latest value of the condition read from the target; NaN when unknown", Family::default()),
            condition_threshold: reg(r, "trigger_condition_threshold", "Effective threshold after environment overrides", Family::default()),
            condition_status: reg(r, "trigger_condition_status", "0 ok, 1 warning, 2 critical, -1 unknown", Family::default()),
            condition_breaches: reg(r, "trigger_condition_breach", "Times a condition entered warning or critical", Family::default()),
            monitoring_active: reg(r, "rollback_monitoring_active", "1 while the watchdog is armed", Gauge::default()),
            automatic_enabled: reg(r, "rollback_automatic_enabled", "1 when automatic rollback is configured on", Gauge::default()),
            path_armed: reg(r, "rollback_automatic_path_armed", "1 while that automatic path (watchdog, alertmanager) can execute a rollback: configured on and armed", Family::default()),
            in_progress: reg(r, "rollback_in_progress", "1 while a rollback or restore is executing or validating", Gauge::default()),
            mode: reg(r, "rollback_mode", "1 for the trading system's current mode", Family::default()),
            target_up: reg(r, "rollback_target_up", "1 when the last status read from the target succeeded", Gauge::default()),
            target_last_success: reg(r, "rollback_target_last_success_timestamp_seconds", "Unix time of the last successful status read", FGauge::default()),
            target_requests: reg(r, "rollback_target_requests", "HTTP calls to the target, retries included", Family::default()),
            agents_healthy: reg(r, "rollback_agents_healthy", "Agents reporting healthy", Gauge::default()),
            agents_expected: reg(r, "rollback_agents_expected", "Agents expected by the config", Gauge::default()),
            suppressed: reg(r, "rollback_suppressed", "Triggers recorded as suppressed, by reason", Family::default()),
            dry_runs: reg(r, "rollback_dry_runs", "Dry-run rollbacks recorded", Counter::default()),
            outcomes: reg(r, "rollback_outcomes", "Executed rollbacks by final status", Family::default()),
            last_event_timestamp: reg(r, "rollback_last_event_timestamp_seconds", "Unix time the latest executed rollback started", FGauge::default()),
            last_event_info: reg(r, "rollback_last_event_info", "The latest executed rollback; always 1", Family::default()),
            validations: reg(r, "recovery_validations", "Validation runs stored, by kind and result", Family::default()),
            validation_last_timestamp: reg(r, "recovery_validation_last_timestamp_seconds", "Unix time of the latest validation run", FGauge::default()),
            validation_pass_score: reg(r, "recovery_validation_pass_score", "The configured pass score of a recovery validation", FGauge::default()),
            stability_watch_active: reg(r, "rollback_stability_watch_active", "1 while a stability watch runs", Gauge::default()),
            webhook_alerts: reg(r, "rollback_webhook_alerts_received", "Alerts received in valid Alertmanager deliveries", Family::default()),
            webhook_firing: Counter::default(),
            webhook_resolved: Counter::default(),
            webhook_deduplicated: reg(r, "rollback_webhook_alerts_deduplicated", "Firing rollback alerts already recorded (resends, HA duplicates)", Counter::default()),
            webhook_rejected: reg(r, "rollback_webhook_requests_rejected", "Alertmanager deliveries refused, by reason", Family::default()),
            webhook_truncated: reg(r, "rollback_webhook_truncated_alerts", "truncatedAlerts reported by Alertmanager", Counter::default()),
            leadership_changes: reg(r, "rollbackd_leadership_changes", "Times this replica took or lost the leadership", Counter::default()),
            http: http::HttpMetrics::register(r),
            operations: OperationGauges {
                drill_last: reg(r, "rollback_drill_last_timestamp_seconds", "Unix time of the last drill; NaN before the first", FGauge::default()),
                drill_success: reg(r, "rollback_drill_last_success", "1 when every step of the last drill that ran passed, 0 when one failed", Gauge::default()),
                drill_step_seconds: reg(r, "rollback_drill_step_duration_seconds", "How long each step of the last drill took", Family::default()),
                test_last: reg(r, "rollback_notification_test_last_timestamp_seconds", "Unix time of the last notification test; NaN before the first", FGauge::default()),
                test_success: reg(r, "rollback_notification_test_last_success", "1 when the last notification test saw the channel deliver, 0 when it failed or made no attempt", Family::default()),
            },
            holds: HoldGauges {
                freeze_active: reg(r, "rollback_freeze_active", "1 while a freeze holds automatic triggers (they are recorded as suppressed, reason freeze)", Gauge::default()),
                freeze_end: reg(r, "rollback_freeze_end_timestamp_seconds", "Unix time the freeze in force ends; NaN without one", FGauge::default()),
                maintenance_active: reg(r, "rollback_maintenance_active", "1 while a maintenance window sets the expected healthy agents", Gauge::default()),
                maintenance_end: reg(r, "rollback_maintenance_end_timestamp_seconds", "Unix time the maintenance window in force ends; NaN without one", FGauge::default()),
                regime_active: reg(r, "rollback_regime_active", "1 for the threshold regime in force, 0 for the other configured ones", Family::default()),
                automation_mode: reg(r, "rollback_automation_mode", "1 for the automation mode in force (auto, confirm, observe)", Family::default()),
                proposals_pending: reg(r, "rollback_proposals_pending", "Automatic rollbacks awaiting an operator's answer (confirm mode)", Gauge::default()),
                restore_requests_pending: reg(r, "rollback_restore_requests_pending", "Restores awaiting a second person's approval", Gauge::default()),
            },
            rates: RateGauges {
                false_positive: reg(r, "rollback_false_positive_rate", "Reviewed triggers judged false positive / reviewed triggers (drills left out), over the window; NaN without reviews", Family::default()),
                true_positive: reg(r, "rollback_true_positive_rate", "True positives / (true positives + missed degradations), over the window; NaN without either", Family::default()),
                validation_success: reg(r, "recovery_validation_success_rate", "Executed rollbacks whose recovery validated / executed rollbacks, over the window; NaN without any", Family::default()),
                documentation: reg(r, "rollback_documentation_compliance_ratio", "Executed rollbacks reviewed / executed rollbacks, over the window; NaN without any", Family::default()),
                unreviewed_executed: reg(r, "rollback_unreviewed_executed", "Executed rollbacks without a review, over the window", Family::default()),
                missed: reg(r, "rollback_missed_degradations", "Degradations nothing caught, recorded by operators, over the window", Family::default()),
                episodes: reg(r, "rollback_trigger_episodes", "Trigger episodes (executed, suppressed, dry runs) by their latest verdict, over the window", Family::default()),
                response: reg(r, "rollback_incident_response_seconds", "From the first alert or trigger to the switch, over the window's incidents; NaN without any", Family::default()),
                recovery: reg(r, "rollback_recovery_seconds", "From the switch to the validated recovery, over the window's incidents; NaN without any", Family::default()),
                oldest_unreviewed: reg(r, "rollback_unreviewed_oldest_timestamp_seconds", "Unix time the oldest executed rollback without a review started; NaN when every one is reviewed", FGauge::default()),
                updated: reg(r, "rollback_rates_updated_timestamp_seconds", "Unix time the rates were last computed from the history", FGauge::default()),
            },
        }
    }

    /// Every known label value exists from the first scrape, and the configured values are set.
    fn seed(&mut self, config: &Config) {
        for t in TriggerType::ALL {
            let _ = self.events.get_or_create(&trigger(t));
        }
        for reason in SuppressReason::ALL {
            let _ = self
                .suppressed
                .get_or_create(&reason_label(reason.as_str()));
        }
        for status in ["completed", "failed"] {
            let _ = self.outcomes.get_or_create(&status_label(status));
        }
        self.webhook_firing = self
            .webhook_alerts
            .get_or_create(&status_label("firing"))
            .clone();
        self.webhook_resolved = self
            .webhook_alerts
            .get_or_create(&status_label("resolved"))
            .clone();
        for reason in Rejection::ALL {
            let _ = self
                .webhook_rejected
                .get_or_create(&reason_label(reason.as_str()));
        }
        for op in TargetOperation::ALL {
            for ok in [true, false] {
                let _ = self.target_requests.get_or_create(&target_call(op, ok));
            }
        }
        for kind in [
            ValidationKind::Initial,
            ValidationKind::Stability,
            ValidationKind::Recovered,
        ] {
            for passed in [true, false] {
                let _ = self.validations.get_or_create(&validation(kind, passed));
            }
        }
        for c in &config.conditions {
            self.set_condition(&c.name, None, Status::Unknown);
        }
        self.set_mode(None);
        self.validation_score.set(f64::NAN);
        self.rates.oldest_unreviewed.set(f64::NAN);
        for w in Window::ALL {
            self.set_rates(w, &Rates::default());
        }
        self.configured(config);
    }

    /// The values that come from the config, at start and after each reload.
    fn configured(&self, config: &Config) {
        for c in &config.conditions {
            for (sev, v) in [("warning", c.warning), ("critical", c.critical)] {
                let l = threshold(&c.name, sev);
                self.condition_threshold.get_or_create(&l).set(v);
                let _ = self.condition_breaches.get_or_create(&l);
            }
        }
        self.validation_pass_score.set(config.validation.pass_score);
        self.agents_expected.set(config.agents_expected as i64);
    }

    /// Where the scrape-time values come from; set once, by the engine at start.
    /// This replica took or lost the leadership.
    pub fn leadership_changed(&self) {
        self.leadership_changes.inc();
    }

    pub fn set_probe(&self, probe: impl Fn() -> Probe + Send + Sync + 'static) {
        let _ = self.probe.set(Box::new(probe));
    }

    /// Turns one engine event into counts and gauges.
    pub fn apply(&self, event: &EngineEvent) {
        match event {
            EngineEvent::Polled(p) => self.polled(p),
            EngineEvent::ModeSeen(mode) => self.set_mode(Some(mode)),
            EngineEvent::ConditionChanged { condition, to, .. } => {
                if matches!(to, Status::Warning | Status::Critical) {
                    self.condition_breaches
                        .get_or_create(&threshold(condition, to.as_str()))
                        .inc();
                }
            }
            EngineEvent::Recorded(e) => self.recorded(e),
            EngineEvent::Transitioned(e) => self.transitioned(e),
            EngineEvent::SlotReleased { .. } => {
                self.in_progress.set(0);
            }
            EngineEvent::ValidationStored { run, of_rollback } => {
                if *of_rollback {
                    self.validation_stored(run)
                }
            }
            EngineEvent::StabilityStarted { .. } => {
                self.stability_watch_active.set(1);
            }
            EngineEvent::StabilityEnded { .. } => {
                self.stability_watch_active.set(0);
            }
            EngineEvent::TargetCalled { operation, ok } => {
                self.target_requests
                    .get_or_create(&target_call(*operation, *ok))
                    .inc();
            }
            EngineEvent::AlertsReceived {
                firing,
                resolved,
                truncated,
            } => {
                // The webhook's hot path: the two series are resolved once, at start.
                self.webhook_firing.inc_by(*firing);
                self.webhook_resolved.inc_by(*resolved);
                if *truncated > 0 {
                    self.webhook_truncated.inc_by(*truncated);
                }
            }
            EngineEvent::AlertsDeduplicated { count } => {
                self.webhook_deduplicated.inc_by(*count);
            }
            EngineEvent::DeliveryRejected(why) => {
                self.webhook_rejected
                    .get_or_create(&reason_label(why.as_str()))
                    .inc();
            }
            EngineEvent::ArmingChanged(arming) => self.armed(arming),
            EngineEvent::ConfigReloaded(config) => self.configured(config),
            EngineEvent::Resumed {
                last_executed,
                last_validation,
            } => {
                if let Some(e) = last_executed {
                    self.set_last_event(e);
                }
                // The gauges pick up where the last run left them; the counters stay at 0.
                if let Some(run) = last_validation {
                    self.validation_score.set(run.score);
                    self.validation_last_timestamp.set(unix(run.at));
                }
            }
            EngineEvent::RatesComputed(r) => self.rates_computed(r),
            EngineEvent::HoldsChanged(h) => self.holds_changed(h),
            EngineEvent::DrillRecorded(d) => {
                let g = &self.operations;
                g.drill_last.set(unix(d.at));
                g.drill_success.set(d.passed as i64);
                for s in &d.steps {
                    let l = StepLabel {
                        step: s.name.clone(),
                    };
                    g.drill_step_seconds
                        .get_or_create(&l)
                        .set(s.duration_ms as f64 / 1000.0);
                }
            }
            EngineEvent::NotificationTested(n) => {
                let g = &self.operations;
                g.test_last.set(unix(n.at));
                for c in &n.channels {
                    let l = ChannelLabel {
                        channel: c.channel.clone(),
                    };
                    let ok = c.result == crate::engine::StepResult::Passed;
                    g.test_success.get_or_create(&l).set(ok as i64);
                }
            }
            EngineEvent::Reviewed(_) | EngineEvent::MissedRecorded(_) => {}
        }
    }

    fn holds_changed(&self, h: &crate::views::HoldsView) {
        let g = &self.holds;
        let end =
            |w: &Option<crate::domain::holds::Window>| w.as_ref().map_or(f64::NAN, |w| unix(w.end));
        g.freeze_active.set(h.freeze.is_some() as i64);
        g.freeze_end.set(end(&h.freeze));
        g.maintenance_active.set(h.maintenance.is_some() as i64);
        g.maintenance_end.set(end(&h.maintenance));
        let active = h.regime.as_ref().map(|r| r.name.as_str());
        for name in h.regimes.iter().map(String::as_str).chain(active) {
            let l = RegimeLabel {
                regime: name.into(),
            };
            g.regime_active
                .get_or_create(&l)
                .set((Some(name) == active) as i64);
        }
        for m in crate::domain::holds::AutomationMode::ALL {
            let l = ModeLabel {
                mode: m.as_str().into(),
            };
            g.automation_mode
                .get_or_create(&l)
                .set((m == h.automation_mode) as i64);
        }
        g.proposals_pending.set(h.proposals.len() as i64);
        g.restore_requests_pending
            .set(h.restore_requests.len() as i64);
    }

    fn rates_computed(&self, r: &SuccessRates) {
        for (w, rates) in &r.windows {
            self.set_rates(*w, rates);
        }
        let oldest = r.oldest_unreviewed.map_or(f64::NAN, unix);
        self.rates.oldest_unreviewed.set(oldest);
        self.rates.updated.set(unix(r.at));
    }

    /// One window's gauges; no data is NaN, never 0 or 1.
    fn set_rates(&self, w: Window, r: &Rates) {
        let g = &self.rates;
        let l = WindowLabel {
            window: w.as_str().into(),
        };
        let ratio = |x: Ratio| x.value().unwrap_or(f64::NAN);
        g.false_positive
            .get_or_create(&l)
            .set(ratio(r.false_positive));
        g.true_positive
            .get_or_create(&l)
            .set(ratio(r.true_positive));
        g.validation_success
            .get_or_create(&l)
            .set(ratio(r.validation_success));
        g.documentation
            .get_or_create(&l)
            .set(ratio(r.documentation));
        g.unreviewed_executed
            .get_or_create(&l)
            .set(r.unreviewed_executed as i64);
        g.missed.get_or_create(&l).set(r.missed as i64);
        for v in VERDICT_LABELS {
            let verdict = v.map_or("unreviewed", Verdict::as_str);
            let vl = WindowVerdictLabel {
                window: w.as_str().into(),
                verdict: verdict.into(),
            };
            g.episodes.get_or_create(&vl).set(r.verdicts.get(v) as i64);
        }
        for (family, d) in [(&g.response, r.response), (&g.recovery, r.recovery)] {
            set_durations(family, w, d);
        }
    }

    fn armed(&self, arming: &Arming) {
        self.monitoring_active.set(arming.watchdog.armed as i64);
        self.automatic_enabled
            .set(arming.watchdog.configured as i64);
        for path in AutomaticPath::ALL {
            let state = match path {
                AutomaticPath::Watchdog => arming.watchdog,
                AutomaticPath::Alertmanager => arming.alertmanager,
            };
            self.path_armed
                .get_or_create(&PathLabel {
                    path: path.as_str().into(),
                })
                .set(state.acts() as i64);
        }
    }

    fn polled(&self, p: &Poll) {
        self.target_up.set(p.target_up as i64);
        self.agents_healthy.set(p.agents_healthy as i64);
        self.set_mode(p.mode.as_deref());
        if p.target_up {
            self.target_last_success.set(unix(p.at));
        }
        for c in &p.triggers.conditions {
            self.set_condition(&c.condition, c.value, c.status);
        }
    }

    fn recorded(&self, e: &Event) {
        if e.status == EventStatus::Pending {
            // Rollback or restore: the guard holds the slot from here.
            self.in_progress.set(1);
            return;
        }
        if e.request.action != Action::Rollback {
            return;
        }
        match e.status {
            EventStatus::Suppressed => {
                let reason = e.suppressed_reason.as_deref().unwrap_or("unknown");
                self.suppressed.get_or_create(&reason_label(reason)).inc();
            }
            EventStatus::DryRun => {
                self.dry_runs.inc();
            }
            _ => {}
        }
    }

    fn transitioned(&self, e: &Event) {
        if e.request.action != Action::Rollback {
            return;
        }
        match e.status {
            EventStatus::Executing => {
                self.events
                    .get_or_create(&trigger(e.request.trigger_type))
                    .inc();
                self.set_last_event(e);
            }
            EventStatus::Completed | EventStatus::Failed => {
                if let Some(ms) = e.duration_ms {
                    self.execution_time.observe(ms as f64 / 1000.0);
                }
                self.outcomes
                    .get_or_create(&status_label(e.status.as_str()))
                    .inc();
                self.set_last_event(e);
            }
            _ => {}
        }
    }

    fn validation_stored(&self, run: &ValidationRun) {
        self.validations
            .get_or_create(&validation(run.kind, run.passed))
            .inc();
        self.validation_score.set(run.score);
        self.validation_last_timestamp.set(unix(run.at));
    }

    fn set_condition(&self, name: &str, value: Option<f64>, status: Status) {
        let l = ConditionLabel {
            condition_type: name.into(),
        };
        self.condition_value
            .get_or_create(&l)
            .set(value.unwrap_or(f64::NAN));
        self.condition_status
            .get_or_create(&l)
            .set(status.as_gauge());
        self.conditions_active
            .get_or_create(&l)
            .set((status == Status::Critical) as i64);
    }

    fn set_mode(&self, mode: Option<&str>) {
        let current = match mode {
            Some(m) if MODES.contains(&m) => m,
            _ => "unknown",
        };
        for m in MODES {
            self.mode
                .get_or_create(&ModeLabel { mode: m.into() })
                .set((m == current) as i64);
        }
    }

    /// The one series of `rollback_last_event_info` names the latest executed rollback.
    fn set_last_event(&self, e: &Event) {
        self.last_event_info.clear();
        self.last_event_info
            .get_or_create(&LastEventLabel {
                event_id: e.id.clone(),
                trigger_type: e.request.trigger_type.as_str().into(),
                status: e.status.as_str().into(),
            })
            .set(1);
        self.last_event_timestamp.set(unix(e.created_at));
    }

    /// OpenMetrics text, as prometheus-client writes it.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// The classic Prometheus text format (0.0.4): counter families are named with their
    /// `_total`, and the OpenMetrics-only `# EOF` and `# UNIT` lines are left out.
    pub fn encode_prometheus_text(&self) -> String {
        to_prometheus_text(&self.encode_openmetrics())
    }
}

fn set_durations(family: &Family<WindowStatLabel, FGauge>, w: Window, d: Durations) {
    for (stat, v) in [("median", d.median), ("max", d.max)] {
        family
            .get_or_create(&WindowStatLabel {
                window: w.as_str().into(),
                stat: stat.into(),
            })
            .set(v.unwrap_or(f64::NAN));
    }
}

fn trigger(t: TriggerType) -> TriggerLabel {
    TriggerLabel {
        trigger_type: t.as_str().into(),
    }
}

fn reason_label(reason: &str) -> ReasonLabel {
    ReasonLabel {
        reason: reason.into(),
    }
}

fn status_label(status: &str) -> StatusLabel {
    StatusLabel {
        status: status.into(),
    }
}

fn threshold(condition: &str, severity: &str) -> ThresholdLabel {
    ThresholdLabel {
        condition_type: condition.into(),
        severity: severity.into(),
    }
}

fn target_call(op: TargetOperation, ok: bool) -> TargetCallLabel {
    TargetCallLabel {
        operation: op.as_str().into(),
        result: if ok { "ok" } else { "error" }.into(),
    }
}

fn validation(kind: ValidationKind, passed: bool) -> ValidationLabel {
    ValidationLabel {
        kind: kind.as_str().into(),
        result: if passed { "pass" } else { "fail" }.into(),
    }
}

/// The info series: version and environment, always 1.
fn register_info(r: &mut Registry, config: &Config) {
    let build: Family<VersionLabel, Gauge> = Family::default();
    build
        .get_or_create(&VersionLabel {
            version: env!("CARGO_PKG_VERSION").into(),
            revision: env!("ROLLBACKD_REVISION").into(),
        })
        .set(1);
    r.register(
        "rollbackd_build_info",
        "rollbackd's version and the source revision it was built from; always 1",
        build,
    );
    let env: Family<EnvironmentLabel, Gauge> = Family::default();
    env.get_or_create(&EnvironmentLabel {
        environment: config
            .environment
            .clone()
            .unwrap_or_else(|| "default".into()),
    })
    .set(1);
    r.register(
        "rollbackd_environment_info",
        "The active threshold environment; always 1",
        env,
    );
}

/// Readiness and cooldown, asked of the engine when scraped.
struct ProbeCollector(Arc<OnceLock<ProbeFn>>);

impl std::fmt::Debug for ProbeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeCollector")
    }
}

impl Collector for ProbeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let p = self.0.get().map(|f| f()).unwrap_or_default();
        process::gauge(
            &mut encoder,
            "rollback_system_ready",
            "1 when a rollback could execute now: storage writable, target reachable, none in progress",
            p.rollback_ready as i64,
        )?;
        process::gauge(
            &mut encoder,
            "rollback_cooldown_remaining_seconds",
            "Seconds until automatic triggers may execute again",
            p.cooldown_remaining_seconds,
        )?;
        process::gauge(
            &mut encoder,
            "rollbackd_leader",
            "1 while this replica leads (runs the watchdog's rollbacks, schedules, stability watches and crash recovery); always 1 with SQLite",
            p.leader as i64,
        )?;
        process::gauge(
            &mut encoder,
            "rollbackd_database_up",
            "1 while the history's database answers; always 1 with SQLite",
            p.database_up as i64,
        )
    }
}

pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut counters: Vec<&str> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.push(name);
            }
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let fixed = ["# TYPE ", "# HELP "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match fixed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_metrics_exist_from_the_first_scrape() {
        let m = Metrics::new(&crate::config::defaults(None).unwrap());
        let text = m.encode_prometheus_text();
        for needle in [
            "# TYPE rollback_system_ready gauge",
            "# TYPE rollback_events_total counter",
            "rollback_events_total{trigger_type=\"watchdog\"} 0",
            "rollback_events_total{trigger_type=\"alertmanager\"} 0",
            "rollback_events_total{trigger_type=\"manual\"} 0",
            "trigger_conditions_active{condition_type=\"walk_forward_stability\"} 0",
            "trigger_conditions_active{condition_type=\"max_drawdown\"} 0",
            "recovery_validation_score NaN",
            "recovery_validation_pass_score 85.0",
            "rollback_execution_time_seconds_bucket{le=\"0.01\"} 0",
            "rollback_execution_time_seconds_bucket{le=\"30.0\"} 0",
            "trigger_condition_threshold{condition_type=\"walk_forward_stability\",severity=\"critical\"} 40.0",
            "rollback_mode{mode=\"unknown\"} 1",
            "rollbackd_build_info{version=",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "# TYPE process_cpu_seconds_total counter",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"));
        let om = m.encode_openmetrics();
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE rollback_events counter"));
    }

    #[test]
    fn the_last_event_series_is_replaced_not_added() {
        let m = Metrics::new(&crate::config::defaults(None).unwrap());
        let event = |id: &str, trigger_type, status| {
            let request = crate::store::EventRequest {
                action: Action::Rollback,
                trigger_type,
                source: "test".into(),
                reason: "test".into(),
                actor: "ops".into(),
                dry_run: false,
                alert_names: vec![],
                fingerprints: vec![],
                conditions: vec![],
                mode_before: None,
                parameters_before: None,
                target_mode: MODE_UNIVERSAL_CYCLE_4.into(),
                target_parameters: Default::default(),
            };
            Arc::new(Event::new(id.into(), request, chrono::Utc::now(), status))
        };
        m.apply(&EngineEvent::Transitioned(event(
            "a",
            TriggerType::Manual,
            EventStatus::Completed,
        )));
        m.apply(&EngineEvent::Transitioned(event(
            "b",
            TriggerType::Watchdog,
            EventStatus::Failed,
        )));
        let text = m.encode_prometheus_text();
        assert!(!text.contains("event_id=\"a\""));
        assert!(text.contains("rollback_last_event_info{event_id=\"b\",trigger_type=\"watchdog\",status=\"failed\"} 1"));
    }
}
