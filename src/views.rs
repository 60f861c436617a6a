//! What the API, the stream and the CLI show of the engine's state: plain data, serialized as
//! the documented JSON. The engine builds them (src/engine/views.rs); nothing here reads state.

use crate::domain::condition::{Status, Trend};
use crate::store::{Event, ValidationRun};
use chrono::{DateTime, Utc};
use serde::Serialize;

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
    pub monitoring_active: bool,
    pub automatic_rollback: bool,
    pub in_progress: Option<String>,
    pub last_event: Option<Event>,
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
}
