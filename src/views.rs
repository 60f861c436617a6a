//! What the API, the stream and the CLI show of the engine's state: plain data, serialized as
//! the documented JSON. The engine builds them (src/engine/views.rs); nothing here reads state.

use crate::domain::condition::{Status, Trend};
use crate::domain::holds::{AutomationMode, OnTimeout, Regime, Window, WindowKind};
use crate::domain::lifecycle::{Arming, PathState, TriggerType};
use crate::store::{Event, MissedDegradation, Review, ValidationRun};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// `GET /api/v1/status`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StatusView {
    pub mode: String,
    pub rollback_ready: bool,
    pub already_rolled_back: bool,
    /// The watchdog is armed at runtime (`monitoring start|stop`).
    pub monitoring_active: bool,
    /// The config lets the watchdog act (`monitoring.automatic_rollback`).
    pub automatic_rollback: bool,
    /// Each automatic path: may it act now, and why not.
    pub automation: AutomationView,
    pub in_progress: Option<String>,
    pub last_event: Option<Event>,
    pub agents: AgentsView,
    pub target: TargetView,
    pub environment: String,
    pub cooldown_remaining_seconds: f64,
    pub stability_watch_active: bool,
    pub storage_ok: bool,
    /// Freezes, maintenance, the regime, the automation mode and what awaits an answer.
    pub holds: HoldsView,
    pub version: &'static str,
}

/// `GET /api/v1/holds`, and part of the status: what adjusts the guard now.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HoldsView {
    /// `auto`, `confirm` or `observe`.
    pub automation_mode: AutomationMode,
    /// The freeze in force (ad hoc or scheduled); automatic triggers are suppressed.
    pub freeze: Option<Window>,
    /// The maintenance window in force; its `expected_healthy_agents` is the expected count.
    pub maintenance: Option<Window>,
    /// The regime in force, its thresholds laid over the environment's.
    pub regime: Option<Regime>,
    /// The regimes the config defines.
    pub regimes: Vec<String>,
    /// The next start of each scheduled window.
    pub upcoming: Vec<UpcomingWindow>,
    /// Automatic triggers waiting for an operator (confirm mode).
    pub proposals: Vec<ProposalView>,
    /// Restores waiting for a second person.
    pub restore_requests: Vec<RestoreRequestView>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UpcomingWindow {
    pub kind: WindowKind,
    pub name: String,
    pub start: DateTime<Utc>,
}

/// An automatic trigger awaiting an operator's answer (confirm mode).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProposalView {
    pub id: String,
    pub trigger_type: TriggerType,
    pub source: String,
    pub reason: String,
    pub alert_names: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// When the timeout decides.
    pub deadline: DateTime<Utc>,
    /// What the timeout does: `proceed` or `lapse`.
    pub on_timeout: OnTimeout,
}

/// A restore awaiting a second person's approval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RestoreRequestView {
    pub id: String,
    pub requested_by: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One automatic path as the status shows it.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct PathView {
    /// The config lets this path act.
    pub configured: bool,
    /// Armed at runtime.
    pub armed: bool,
    /// It can execute a rollback now (configured and armed).
    pub acts: bool,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct AutomationView {
    pub watchdog: PathView,
    pub alertmanager: PathView,
    /// No automatic path can act: only a person can roll back.
    pub manual_only: bool,
}

impl From<Arming> for AutomationView {
    fn from(a: Arming) -> AutomationView {
        let path = |p: PathState| PathView {
            configured: p.configured,
            armed: p.armed,
            acts: p.acts(),
        };
        AutomationView {
            watchdog: path(a.watchdog),
            alertmanager: path(a.alertmanager),
            manual_only: a.none_acts(),
        }
    }
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

/// `GET /api/v1/triggers`.
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

/// One message on `GET /api/v1/stream`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum StreamMessage {
    Status(Box<StatusView>),
    TriggerUpdate(Box<TriggersView>),
    RollbackEvent(Box<Event>),
    Validation(Box<ValidationRun>),
    /// A review of a trigger episode, as stored.
    Review(Box<Review>),
    /// A degradation nothing caught, as recorded.
    MissedDegradation(Box<MissedDegradation>),
    /// Holds changed: a window started or ended, a regime, the mode, a proposal.
    Holds(Box<HoldsView>),
}
