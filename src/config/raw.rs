//! Parse: the YAML exactly as it is written, strictly (unknown keys are errors), before any
//! value is checked. The struct names appear in serde's messages ("expected struct RawConfig").

use super::ConfigError;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One named overlay: dotted `CONDITION.critical_threshold` / `CONDITION.warning_threshold`
/// keys to values, as under `environments.staging`.
pub type Overrides = BTreeMap<String, f64>;

/// A duration written as `500ms`, `1s`, `30m`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dur(pub(super) Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|e| de::Error::custom(format!("invalid duration {s:?} ({e}); expected a duration such as \"500ms\", \"1s\" or \"30m\"")))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: Option<String>,
    pub(super) environment: Option<String>,
    pub(super) storage: Option<RawStorage>,
    pub(super) target: Option<RawTarget>,
    pub(super) agents: Option<RawAgents>,
    pub(super) rollback_profile: Option<RawProfile>,
    pub(super) monitoring: Option<RawMonitoring>,
    pub(super) cooldown: Option<Dur>,
    pub(super) validation: Option<RawValidation>,
    pub(super) auth: Option<RawAuth>,
    pub(super) web_config_file: Option<PathBuf>,
    pub(super) limits: Option<RawLimits>,
    pub(super) thresholds_file: Option<PathBuf>,
    pub(super) trigger_conditions: Option<BTreeMap<String, RawCondition>>,
    pub(super) environments: Option<BTreeMap<String, Overrides>>,
    pub(super) regimes: Option<BTreeMap<String, Overrides>>,
    pub(super) automation: Option<super::holds::RawAutomation>,
    pub(super) freezes: Option<super::holds::RawWindows>,
    pub(super) maintenance: Option<super::holds::RawWindows>,
    pub(super) alertmanager: Option<super::operations::RawAlertmanager>,
    pub(super) drills: Option<super::operations::RawDrills>,
    pub(super) notification_tests: Option<super::operations::RawNotificationTests>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) path: Option<PathBuf>,
    pub(super) postgres: Option<RawPostgres>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPostgres {
    pub(super) url: String,
    pub(super) pool_size: Option<usize>,
    pub(super) statement_timeout: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub(super) url: String,
    pub(super) timeout: Option<Dur>,
    pub(super) retries: Option<u32>,
    pub(super) retry_backoff: Option<Dur>,
    pub(super) ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) header_read_timeout: Option<Dur>,
    pub(super) idle_timeout: Option<Dur>,
    pub(super) max_connections: Option<u32>,
    pub(super) max_stream_subscribers: Option<u32>,
    pub(super) write_requests_per_minute: Option<u32>,
    pub(super) write_burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgents {
    pub(super) expected: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub(super) mode: String,
    pub(super) parameters: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitoring {
    pub(super) active_on_start: Option<bool>,
    pub(super) poll_interval: Option<Dur>,
    pub(super) automatic_rollback: Option<bool>,
    pub(super) alertmanager_rollback: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawValidation {
    pub(super) pass_score: Option<f64>,
    pub(super) stability_window: Option<Dur>,
    pub(super) stability_interval: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    #[serde(default)]
    pub(super) read_requires_token: bool,
    #[serde(default)]
    pub(super) tokens: Vec<RawToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) name: String,
    pub(super) role: String,
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    pub(super) critical_threshold: Option<f64>,
    pub(super) warning_threshold: Option<f64>,
    pub(super) description: Option<String>,
    /// Optional; the known conditions have fixed operators, others are inferred.
    pub(super) operator: Option<String>,
}

/// The seed's `trigger_thresholds.yaml` layout, inline in the config or as its own file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThresholds {
    pub(super) trigger_conditions: Option<BTreeMap<String, RawCondition>>,
    pub(super) environments: Option<BTreeMap<String, Overrides>>,
}

/// Deserializes `text`, naming the failing key by its dotted path (`(document)` for the root).
pub(super) fn parse_yaml<T: for<'de> Deserialize<'de>>(
    file: &str,
    text: &str,
) -> Result<T, ConfigError> {
    if text.trim().is_empty() {
        return serde_yaml_ng::from_str("{}").map_err(|e| ConfigError {
            file: file.into(),
            key: "(document)".into(),
            message: e.to_string(),
        });
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = match e.path().to_string() {
            p if p == "." || p.is_empty() => "(document)".to_string(),
            p => p,
        };
        let message = without_path_prefix(&key, e.into_inner().to_string());
        ConfigError {
            file: file.into(),
            key,
            message,
        }
    })
}

/// The YAML error may repeat part of the path ("monitoring: invalid ..."); say it once.
fn without_path_prefix(key: &str, message: String) -> String {
    let mut prefix = String::new();
    for part in key.split('.') {
        prefix = if prefix.is_empty() {
            part.to_string()
        } else {
            format!("{prefix}.{part}")
        };
        if let Some(rest) = message.strip_prefix(&format!("{prefix}: ")) {
            return rest.to_string();
        }
    }
    message
}
