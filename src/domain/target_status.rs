//! The trading system's view of itself, as `GET /v1/status` returns it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub healthy: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub mode: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, Value>,
    #[serde(default)]
    pub agents: Vec<Agent>,
    /// Values may be null or missing: those conditions are unknown.
    #[serde(default)]
    pub metrics: BTreeMap<String, Value>,
}

impl TargetStatus {
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .get(name)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite())
    }

    pub fn parameter(&self, name: &str) -> Option<f64> {
        self.parameters.get(name).and_then(Value::as_f64)
    }

    pub fn healthy_agents(&self) -> u32 {
        self.agents.iter().filter(|a| a.healthy).count() as u32
    }
}

/// What `PUT /v1/mode` carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    pub mode: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, f64>,
    pub event_id: String,
    #[serde(default)]
    pub reason: String,
}
