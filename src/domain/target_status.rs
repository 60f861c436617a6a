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
    /// What the target supports beyond the base contract (`mode_dry_run`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// The capability of checking a switch without applying it (`"dry_run": true` on `PUT /v1/mode`).
pub const CAP_MODE_DRY_RUN: &str = "mode_dry_run";

impl TargetStatus {
    /// Reads `GET /v1/status` (or a switch's answer). A number JSON cannot hold (`NaN`,
    /// `Infinity`, `1e400`) is read as null, so one bad value makes its own condition unknown
    /// instead of blinding all of them; anything else malformed is refused whole.
    pub fn parse(body: &[u8]) -> Result<TargetStatus, serde_json::Error> {
        match serde_json::from_slice(body) {
            Ok(s) => Ok(s),
            Err(first) => match std::str::from_utf8(body).ok().and_then(nulled_non_finite) {
                Some(fixed) => serde_json::from_str(&fixed).map_err(|_| first),
                None => Err(first),
            },
        }
    }

    /// The value of a condition; `None` (unknown) when missing, null or not finite.
    /// `max_drawdown` is a loss in percent: a target reporting it as a negative return (-6.2)
    /// means the same drawdown as 6.2.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let v = self
            .metrics
            .get(name)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite())?;
        Some(if name == "max_drawdown" { v.abs() } else { v })
    }

    pub fn parameter(&self, name: &str) -> Option<f64> {
        self.parameters.get(name).and_then(Value::as_f64)
    }

    pub fn healthy_agents(&self) -> u32 {
        self.agents.iter().filter(|a| a.healthy).count() as u32
    }
}

/// The JSON text with every out-of-range or non-JSON number (`NaN`, `Infinity`, `-Infinity`,
/// `1e400`) outside strings replaced by `null`; `None` when there was none.
fn nulled_non_finite(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut chars = text.char_indices().peekable();
    let mut in_string = false;
    let mut escaped = false;
    while let Some((i, c)) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        if c == '"' {
            in_string = true;
            out.push(c);
            continue;
        }
        if c == '-' || c.is_ascii_alphanumeric() || c == '.' || c == '+' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_ascii_alphanumeric() || matches!(d, '.' | '+' | '-') {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let token = &text[i..end];
            let non_finite = matches!(token, "NaN" | "Infinity" | "-Infinity" | "-NaN")
                || (token.starts_with(|c: char| c == '-' || c.is_ascii_digit())
                    && token.parse::<f64>().is_ok_and(|v| !v.is_finite()));
            if non_finite {
                out.push_str("null");
                changed = true;
            } else {
                out.push_str(token);
            }
            continue;
        }
        out.push(c);
    }
    changed.then_some(out)
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
    /// Check the switch, apply nothing, answer the status it would leave (drills). Sent only
    /// to a target whose status lists `mode_dry_run`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = r#"{"mode": "session_targeted", "parameters": {"confidence_threshold": 0.62},
        "agents": [{"id": "agent-1", "healthy": true}],
        "metrics": {"walk_forward_stability": W, "overfitting_score": 0.21, "consecutive_losses": 1, "max_drawdown": D}}"#;

    fn with(w: &str, d: &str) -> String {
        STATUS.replace('W', w).replace('D', d)
    }

    #[test]
    fn one_non_finite_value_makes_only_its_condition_unknown() {
        for bad in ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"] {
            let s = TargetStatus::parse(with(bad, "1.2").as_bytes())
                .unwrap_or_else(|e| panic!("{bad}: {e}"));
            assert_eq!(s.metric("walk_forward_stability"), None, "{bad}");
            assert_eq!(s.metric("overfitting_score"), Some(0.21), "{bad}");
            assert_eq!(s.metric("max_drawdown"), Some(1.2));
            assert_eq!(s.mode, "session_targeted");
        }
    }

    #[test]
    fn strings_that_look_like_numbers_are_left_alone() {
        let text = with("72.5", "1.2").replace("agent-1", "NaN 1e400 Infinity");
        let s = TargetStatus::parse(text.as_bytes()).unwrap();
        assert_eq!(s.agents[0].id, "NaN 1e400 Infinity");
    }

    #[test]
    fn anything_else_malformed_is_refused_whole() {
        assert!(TargetStatus::parse(b"{\"mode\": }").is_err());
        assert!(
            TargetStatus::parse(with("NaN", "1.2").replace("\"mode\"", "\"mod\"").as_bytes())
                .is_err()
        );
        assert!(TargetStatus::parse(b"NaN").is_err());
    }

    #[test]
    fn a_negative_drawdown_is_read_as_its_magnitude() {
        let s = TargetStatus::parse(with("72.5", "-6.2").as_bytes()).unwrap();
        assert_eq!(s.metric("max_drawdown"), Some(6.2));
    }
}
