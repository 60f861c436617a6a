//! The status and triggers views, built from the owners' state. Each lock is taken on its own
//! and let go before the next.

use super::watchdog::Watch;
use super::{lock, Engine};
use crate::domain::condition::{Status, Trend};
use crate::domain::TargetStatus;
use crate::store::ConditionSnapshot;
use crate::views::{
    AgentsView, AutomationView, ConditionView, StatusView, TargetView, TriggersView,
};

impl Engine {
    fn environment(&self) -> String {
        self.config()
            .environment
            .clone()
            .unwrap_or_else(|| "default".into())
    }

    pub(super) fn status_view(&self) -> StatusView {
        let cfg = self.config();
        let (mode, agents_healthy, target) = {
            let w = lock(&self.0.watch);
            let target = TargetView {
                url: cfg.target.url.clone(),
                up: w.target_up,
                last_success: w.last_success,
                last_error: w.last_error.clone(),
            };
            let mode = w.last_known().map(|t| t.mode.clone());
            (mode, w.current().map(TargetStatus::healthy_agents), target)
        };
        let (in_progress, last_event, cooldown_ms, arming) = {
            let x = self.execution();
            let cooldown = x
                .guard
                .cooldown_remaining_ms(self.now_ms(), cfg.cooldown.as_millis() as u64);
            (
                x.guard
                    .in_progress()
                    .map(str::to_owned)
                    .or_else(|| lock(&self.0.remote_slot).clone()),
                x.last_event.clone(),
                cooldown,
                x.guard.arming,
            )
        };
        let mode = mode.unwrap_or_else(|| "unknown".into());
        let storage_ok = self.0.store.is_healthy();
        StatusView {
            rollback_ready: storage_ok && target.up && in_progress.is_none(),
            already_rolled_back: mode == cfg.profile.mode,
            mode,
            monitoring_active: arming.watchdog.armed,
            automatic_rollback: arming.watchdog.configured,
            automation: AutomationView::from(arming),
            in_progress,
            last_event,
            agents: AgentsView {
                healthy: agents_healthy.unwrap_or(0),
                expected: cfg.agents_expected,
            },
            target,
            environment: self.environment(),
            cooldown_remaining_seconds: cooldown_ms as f64 / 1000.0,
            stability_watch_active: lock(&self.0.stability).is_some(),
            storage_ok,
            holds: self.holds(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    pub(super) fn triggers_view(&self, w: &Watch) -> TriggersView {
        let conditions: Vec<ConditionView> = self
            .config()
            .conditions
            .iter()
            .zip(&w.conditions)
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
            environment: self.environment(),
            triggers_detected: conditions
                .iter()
                .filter(|c| c.status == Status::Critical)
                .map(|c| c.condition.clone())
                .collect(),
            conditions,
            updated_at: w.updated_at,
        }
    }

    /// The conditions as an event records them at its creation.
    pub(super) fn snapshot(&self, w: &Watch) -> Vec<ConditionSnapshot> {
        self.config()
            .conditions
            .iter()
            .zip(&w.conditions)
            .map(|(spec, c)| ConditionSnapshot {
                condition: spec.name.clone(),
                value: c.value,
                status: c.status.unwrap_or(Status::Unknown),
                warning_threshold: spec.warning,
                critical_threshold: spec.critical,
            })
            .collect()
    }
}
