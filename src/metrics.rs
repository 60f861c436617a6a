//! Everything rollbackd exports on `/metrics` (see docs/metrics.md), registered once. Counters
//! are registered without `_total`; the encoder appends it.

use crate::config::Config;
use crate::domain::condition::Status;
use crate::domain::lifecycle::{
    SuppressReason, TriggerType, MODE_SESSION_TARGETED, MODE_UNIVERSAL_CYCLE_4,
};
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type FGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabel {
    pub condition_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThresholdLabel {
    pub condition_type: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabel {
    pub trigger_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetCallLabel {
    pub operation: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidationLabel {
    pub kind: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LastEventLabel {
    pub event_id: String,
    pub trigger_type: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvironmentLabel {
    pub environment: String,
}

/// The execution-time buckets: 10 ms to 30 s, the seed's limit.
pub const EXECUTION_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

pub const MODES: [&str; 3] = [MODE_SESSION_TARGETED, MODE_UNIVERSAL_CYCLE_4, "unknown"];

pub struct Metrics {
    registry: Registry,
    pub system_ready: Gauge,
    pub events: Family<TriggerLabel, Counter>,
    pub conditions_active: Family<ConditionLabel, Gauge>,
    pub validation_score: FGauge,
    pub execution_time: Histogram,
    pub condition_value: Family<ConditionLabel, FGauge>,
    pub condition_threshold: Family<ThresholdLabel, FGauge>,
    pub condition_status: Family<ConditionLabel, Gauge>,
    pub condition_breaches: Family<ThresholdLabel, Counter>,
    pub monitoring_active: Gauge,
    pub automatic_enabled: Gauge,
    pub in_progress: Gauge,
    pub mode: Family<ModeLabel, Gauge>,
    pub target_up: Gauge,
    pub target_last_success: FGauge,
    pub target_requests: Family<TargetCallLabel, Counter>,
    pub agents_healthy: Gauge,
    pub agents_expected: Gauge,
    pub suppressed: Family<ReasonLabel, Counter>,
    pub dry_runs: Counter,
    pub outcomes: Family<StatusLabel, Counter>,
    pub last_event_timestamp: FGauge,
    pub last_event_info: Family<LastEventLabel, Gauge>,
    pub cooldown_remaining: FGauge,
    pub validations: Family<ValidationLabel, Counter>,
    pub validation_last_timestamp: FGauge,
    pub validation_pass_score: FGauge,
    pub stability_watch_active: Gauge,
    pub webhook_alerts: Family<StatusLabel, Counter>,
    pub webhook_deduplicated: Counter,
    pub webhook_rejected: Family<ReasonLabel, Counter>,
    pub webhook_truncated: Counter,
}

pub const WEBHOOK_REJECT_REASONS: [&str; 5] = [
    "malformed",
    "version",
    "too_large",
    "unauthorized",
    "storage",
];

impl Metrics {
    pub fn new(config: &Config) -> Metrics {
        let mut r = Registry::default();
        macro_rules! reg {
            ($name:literal, $help:literal, $metric:expr) => {{
                let m = $metric;
                r.register($name, $help, m.clone());
                m
            }};
        }
        let m = Metrics {
            system_ready: reg!("rollback_system_ready", "1 when a rollback could execute now: storage writable, target reachable, none in progress", Gauge::default()),
            events: reg!("rollback_events", "Rollbacks executed against the target, by trigger type", Family::default()),
            conditions_active: reg!("trigger_conditions_active", "1 while the condition is critical", Family::default()),
            validation_score: reg!("recovery_validation_score", "Score 0-100 of the latest recovery validation; NaN before the first", FGauge::default()),
            execution_time: reg!("rollback_execution_time_seconds", "From the rollback decision to the validated switch", Histogram::new(EXECUTION_BUCKETS)),
            condition_value: reg!("trigger_condition_value", "Latest value of the condition read from the target; NaN when unknown", Family::default()),
            condition_threshold: reg!("trigger_condition_threshold", "Effective threshold after environment overrides", Family::default()),
            condition_status: reg!("trigger_condition_status", "0 ok, 1 warning, 2 critical, -1 unknown", Family::default()),
            condition_breaches: reg!("trigger_condition_breach", "Times a condition entered warning or critical", Family::default()),
            monitoring_active: reg!("rollback_monitoring_active", "1 while the watchdog is armed", Gauge::default()),
            automatic_enabled: reg!("rollback_automatic_enabled", "1 when automatic rollback is configured on", Gauge::default()),
            in_progress: reg!("rollback_in_progress", "1 while a rollback or restore is executing or validating", Gauge::default()),
            mode: reg!("rollback_mode", "1 for the trading system's current mode", Family::default()),
            target_up: reg!("rollback_target_up", "1 when the last status read from the target succeeded", Gauge::default()),
            target_last_success: reg!("rollback_target_last_success_timestamp_seconds", "Unix time of the last successful status read", FGauge::default()),
            target_requests: reg!("rollback_target_requests", "HTTP calls to the target, retries included", Family::default()),
            agents_healthy: reg!("rollback_agents_healthy", "Agents reporting healthy", Gauge::default()),
            agents_expected: reg!("rollback_agents_expected", "Agents expected by the config", Gauge::default()),
            suppressed: reg!("rollback_suppressed", "Triggers recorded as suppressed, by reason", Family::default()),
            dry_runs: reg!("rollback_dry_runs", "Dry-run rollbacks recorded", Counter::default()),
            outcomes: reg!("rollback_outcomes", "Executed rollbacks by final status", Family::default()),
            last_event_timestamp: reg!("rollback_last_event_timestamp_seconds", "Unix time the latest executed rollback started", FGauge::default()),
            last_event_info: reg!("rollback_last_event_info", "The latest executed rollback; always 1", Family::default()),
            cooldown_remaining: reg!("rollback_cooldown_remaining_seconds", "Seconds until automatic triggers may execute again", FGauge::default()),
            validations: reg!("recovery_validations", "Validation runs stored, by kind and result", Family::default()),
            validation_last_timestamp: reg!("recovery_validation_last_timestamp_seconds", "Unix time of the latest validation run", FGauge::default()),
            validation_pass_score: reg!("recovery_validation_pass_score", "The configured pass score of a recovery validation", FGauge::default()),
            stability_watch_active: reg!("rollback_stability_watch_active", "1 while a stability watch runs", Gauge::default()),
            webhook_alerts: reg!("rollback_webhook_alerts_received", "Alerts received in valid Alertmanager deliveries", Family::default()),
            webhook_deduplicated: reg!("rollback_webhook_alerts_deduplicated", "Firing rollback alerts already recorded (resends, HA duplicates)", Counter::default()),
            webhook_rejected: reg!("rollback_webhook_requests_rejected", "Alertmanager deliveries refused, by reason", Family::default()),
            webhook_truncated: reg!("rollback_webhook_truncated_alerts", "truncatedAlerts reported by Alertmanager", Counter::default()),
            registry: Registry::default(),
        };
        let build: Family<VersionLabel, Gauge> = Family::default();
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        r.register(
            "rollbackd_build_info",
            "rollbackd's version; always 1",
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
        r.register_collector(Box::new(ProcessCollector {
            start_time: process_start_time(),
        }));

        // Every known label value exists from the first scrape.
        for t in TriggerType::ALL {
            let _ = m.events.get_or_create(&TriggerLabel {
                trigger_type: t.as_str().into(),
            });
        }
        for reason in SuppressReason::ALL {
            let _ = m.suppressed.get_or_create(&ReasonLabel {
                reason: reason.as_str().into(),
            });
        }
        for status in ["completed", "failed"] {
            let _ = m.outcomes.get_or_create(&StatusLabel {
                status: status.into(),
            });
        }
        for status in ["firing", "resolved"] {
            let _ = m.webhook_alerts.get_or_create(&StatusLabel {
                status: status.into(),
            });
        }
        for reason in WEBHOOK_REJECT_REASONS {
            let _ = m.webhook_rejected.get_or_create(&ReasonLabel {
                reason: reason.into(),
            });
        }
        for op in ["status", "switch"] {
            for result in ["ok", "error"] {
                let _ = m.target_requests.get_or_create(&TargetCallLabel {
                    operation: op.into(),
                    result: result.into(),
                });
            }
        }
        for kind in ["initial", "stability", "recovered"] {
            for result in ["pass", "fail"] {
                let _ = m.validations.get_or_create(&ValidationLabel {
                    kind: kind.into(),
                    result: result.into(),
                });
            }
        }
        for c in &config.conditions {
            let name = c.name.clone();
            m.set_condition(&name, None, Status::Unknown);
            for (sev, v) in [("warning", c.warning), ("critical", c.critical)] {
                let l = ThresholdLabel {
                    condition_type: name.clone(),
                    severity: sev.into(),
                };
                let _ = m.condition_threshold.get_or_create(&l).set(v);
                let _ = m.condition_breaches.get_or_create(&l);
            }
        }
        m.set_mode(None);
        m.validation_score.set(f64::NAN);
        m.validation_pass_score.set(config.validation.pass_score);
        m.agents_expected.set(config.agents_expected as i64);
        m.automatic_enabled
            .set(config.monitoring.automatic_rollback as i64);
        Metrics { registry: r, ..m }
    }

    pub fn set_condition(&self, name: &str, value: Option<f64>, status: Status) {
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

    pub fn count_breach(&self, name: &str, severity: Status) {
        self.condition_breaches
            .get_or_create(&ThresholdLabel {
                condition_type: name.into(),
                severity: severity.as_str().into(),
            })
            .inc();
    }

    pub fn set_mode(&self, mode: Option<&str>) {
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

    pub fn count_target_call(&self, operation: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.target_requests
            .get_or_create(&TargetCallLabel {
                operation: operation.into(),
                result: result.into(),
            })
            .inc();
    }

    pub fn set_last_event(
        &self,
        event_id: &str,
        trigger_type: &str,
        status: &str,
        started_unix: f64,
    ) {
        self.last_event_info.clear();
        self.last_event_info
            .get_or_create(&LastEventLabel {
                event_id: event_id.into(),
                trigger_type: trigger_type.into(),
                status: status.into(),
            })
            .set(1);
        self.last_event_timestamp.set(started_unix);
    }

    pub fn count_validation(&self, kind: &str, passed: bool, score: f64, at_unix: f64) {
        let result = if passed { "pass" } else { "fail" };
        self.validations
            .get_or_create(&ValidationLabel {
                kind: kind.into(),
                result: result.into(),
            })
            .inc();
        self.validation_score.set(score);
        self.validation_last_timestamp.set(at_unix);
    }

    pub fn count_webhook_rejection(&self, reason: &str) {
        self.webhook_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
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

/// Process metrics read from /proc at scrape time.
#[derive(Debug)]
struct ProcessCollector {
    start_time: f64,
}

fn process_start_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct ProcStat {
    cpu_seconds: f64,
    rss_bytes: f64,
    vsize_bytes: f64,
}

fn read_proc_stat() -> Option<ProcStat> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let page = 4096.0;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let vsize: f64 = f.get(20)?.parse().ok()?;
    let rss: f64 = f.get(21)?.parse().ok()?;
    Some(ProcStat {
        cpu_seconds: (utime + stime) / ticks,
        rss_bytes: rss * page,
        vsize_bytes: vsize,
    })
}

fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

fn max_fds() -> Option<i64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::TypedMetric;
        fn gauge(
            encoder: &mut DescriptorEncoder,
            name: &str,
            help: &str,
            v: f64,
        ) -> Result<(), std::fmt::Error> {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, ConstGauge::<f64>::TYPE)?)
        }
        if let Some(s) = read_proc_stat() {
            let c = ConstCounter::new(s.cpu_seconds);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent in seconds",
                None,
                ConstCounter::<f64>::TYPE,
            )?)?;
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.rss_bytes,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.vsize_bytes,
            )?;
        }
        if let Some(n) = open_fds() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors",
                n as f64,
            )?;
        }
        if let Some(n) = max_fds() {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum open file descriptors",
                n as f64,
            )?;
        }
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since the unix epoch in seconds",
            self.start_time,
        )
    }
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
        m.set_last_event("a", "manual", "completed", 1.0);
        m.set_last_event("b", "watchdog", "failed", 2.0);
        let text = m.encode_prometheus_text();
        assert!(!text.contains("event_id=\"a\""));
        assert!(text.contains("rollback_last_event_info{event_id=\"b\",trigger_type=\"watchdog\",status=\"failed\"} 1"));
    }
}
