//! Named threshold overlays: dotted `CONDITION.critical_threshold: VALUE` keys applied on top of
//! an already-resolved set of conditions, as `environments.staging` is. One function checks
//! and applies any such overlay, so every kind of overlay is held to the same rules.

use super::error::error;
use super::ConfigError;
use crate::domain::condition::ConditionSpec;
use std::collections::BTreeMap;

/// Which overlay is being applied, for the keys and messages of its errors.
#[derive(Clone, Copy, Debug)]
pub struct OverlayOrigin<'a> {
    /// The file the overlay was written in.
    pub file: &'a str,
    /// The map that holds overlays of this kind (`environments`): keys are reported as
    /// `environments.staging.max_drawdown.critical_threshold`.
    pub section: &'a str,
    /// What one overlay is called in messages (`environment`): "(environment staging)".
    pub kind: &'a str,
    /// The overlay's own name (`staging`).
    pub name: &'a str,
}

impl<'a> OverlayOrigin<'a> {
    /// An entry of `environments:`.
    pub fn environment(file: &'a str, name: &'a str) -> OverlayOrigin<'a> {
        OverlayOrigin {
            file,
            section: "environments",
            kind: "environment",
            name,
        }
    }

    /// An entry of `regimes:`.
    pub fn regime(file: &'a str, name: &'a str) -> OverlayOrigin<'a> {
        OverlayOrigin {
            file,
            section: "regimes",
            kind: "regime",
            name,
        }
    }

    fn key(&self, dotted: &str) -> String {
        format!("{}.{}.{dotted}", self.section, self.name)
    }
}

/// The threshold one overlay key sets.
#[derive(Clone, Copy, Debug)]
pub(super) struct Change {
    condition: usize,
    critical: bool,
    value: f64,
}

/// Applies `overrides` to `conditions`, then checks that every warning threshold is still on
/// the safe side of its critical one. Any error names the offending key; on error
/// `conditions` is left as it was, so a rejected overlay never half-applies.
pub fn apply_overlay(
    conditions: &mut [ConditionSpec],
    origin: OverlayOrigin<'_>,
    overrides: &BTreeMap<String, f64>,
) -> Result<(), ConfigError> {
    let changes = check_overlay(conditions, origin, overrides)?;
    let mut updated = conditions.to_vec();
    for c in changes {
        let spec = &mut updated[c.condition];
        if c.critical {
            spec.critical = c.value;
        } else {
            spec.warning = c.value;
        }
    }
    check_ordering(&updated, origin.file, Some(origin))?;
    conditions.clone_from_slice(&updated);
    Ok(())
}

/// Checks every key of an overlay against `conditions` without applying it: a known
/// condition, a known field, a finite value.
pub(super) fn check_overlay(
    conditions: &[ConditionSpec],
    origin: OverlayOrigin<'_>,
    overrides: &BTreeMap<String, f64>,
) -> Result<Vec<Change>, ConfigError> {
    overrides
        .iter()
        .map(|(dotted, value)| change(conditions, origin, dotted, *value))
        .collect()
}

fn change(
    conditions: &[ConditionSpec],
    origin: OverlayOrigin<'_>,
    dotted: &str,
    value: f64,
) -> Result<Change, ConfigError> {
    let key = origin.key(dotted);
    let fail = |message: String| error(origin.file, key.clone(), message);
    let Some((cond, field)) = dotted.split_once('.') else {
        return Err(fail(
            "expected CONDITION.critical_threshold or CONDITION.warning_threshold".into(),
        ));
    };
    let Some(condition) = conditions.iter().position(|c| c.name == cond) else {
        return Err(fail(format!(
            "unknown condition {cond:?}; expected one of {}",
            names(conditions)
        )));
    };
    if !value.is_finite() {
        return Err(fail(format!("{value} is not a finite number")));
    }
    let critical = match field {
        "critical_threshold" => true,
        "warning_threshold" => false,
        other => {
            return Err(fail(format!(
                "unknown field {other:?}; expected critical_threshold or warning_threshold"
            )))
        }
    };
    Ok(Change {
        condition,
        critical,
        value,
    })
}

/// Warning must sit on the safe side of critical, or warnings could never come first.
/// `overlay` is the one just applied, named in the message.
pub(super) fn check_ordering(
    conditions: &[ConditionSpec],
    file: &str,
    overlay: Option<OverlayOrigin<'_>>,
) -> Result<(), ConfigError> {
    let Some(c) = conditions.iter().find(|c| !c.thresholds_ordered()) else {
        return Ok(());
    };
    let side = if c.operator.lower_is_worse() {
        "above"
    } else {
        "below"
    };
    let applied = overlay
        .map(|o| format!(" ({} {})", o.kind, o.name))
        .unwrap_or_default();
    Err(error(
        file,
        format!("trigger_conditions.{}", c.name),
        format!(
            "warning_threshold {} must be {side} critical_threshold {} for operator {}{applied}",
            c.warning, c.critical, c.operator
        ),
    ))
}

fn names(conditions: &[ConditionSpec]) -> String {
    conditions
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defaults;

    /// A second named overlay of another kind, as a preset chosen at run time would be.
    fn regime(name: &str) -> OverlayOrigin<'_> {
        OverlayOrigin {
            file: "rollbackd.yaml",
            section: "regimes",
            kind: "regime",
            name,
        }
    }

    fn overrides(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn thresholds(conditions: &[ConditionSpec]) -> Vec<(String, f64, f64)> {
        conditions
            .iter()
            .map(|c| (c.name.clone(), c.warning, c.critical))
            .collect()
    }

    #[test]
    fn a_second_overlay_applies_on_top_of_the_resolved_environment() {
        let mut conditions = defaults(Some("staging")).unwrap().conditions;
        let set = overrides(&[
            ("max_drawdown.critical_threshold", 7.0),
            ("max_drawdown.warning_threshold", 4.5),
            ("walk_forward_stability.warning_threshold", 45.0),
        ]);
        apply_overlay(&mut conditions, regime("volatile"), &set).unwrap();
        assert_eq!(
            thresholds(&conditions),
            vec![
                // staging's critical 30 stays; the regime moves only what it names.
                ("walk_forward_stability".into(), 45.0, 30.0),
                ("overfitting_score".into(), 0.4, 0.5),
                ("consecutive_losses".into(), 4.0, 5.0),
                ("max_drawdown".into(), 4.5, 7.0),
            ]
        );
    }

    #[test]
    fn an_unknown_condition_or_field_is_refused_naming_the_key() {
        let mut conditions = defaults(Some("staging")).unwrap().conditions;
        let before = conditions.clone();
        let cases = [
            (
                ("latency.critical_threshold", 1.0),
                "rollbackd.yaml: regimes.volatile.latency.critical_threshold: unknown condition \"latency\"; expected one of walk_forward_stability, overfitting_score, consecutive_losses, max_drawdown",
            ),
            (
                ("max_drawdown.critical", 1.0),
                "rollbackd.yaml: regimes.volatile.max_drawdown.critical: unknown field \"critical\"; expected critical_threshold or warning_threshold",
            ),
            (
                ("max_drawdown", 1.0),
                "rollbackd.yaml: regimes.volatile.max_drawdown: expected CONDITION.critical_threshold or CONDITION.warning_threshold",
            ),
            (
                ("max_drawdown.critical_threshold", f64::NAN),
                "rollbackd.yaml: regimes.volatile.max_drawdown.critical_threshold: NaN is not a finite number",
            ),
        ];
        for (pair, expected) in cases {
            let e = apply_overlay(&mut conditions, regime("volatile"), &overrides(&[pair]))
                .unwrap_err();
            assert_eq!(e.to_string(), expected);
        }
        assert_eq!(conditions, before);
    }

    #[test]
    fn a_warning_on_the_wrong_side_of_critical_is_refused_and_nothing_is_applied() {
        let mut conditions = defaults(Some("staging")).unwrap().conditions;
        let before = conditions.clone();
        // Valid on its own, but below staging's critical 30 for a lower-is-worse condition.
        let set = overrides(&[
            ("max_drawdown.critical_threshold", 7.0),
            ("walk_forward_stability.warning_threshold", 25.0),
        ]);
        let e = apply_overlay(&mut conditions, regime("calm"), &set).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rollbackd.yaml: trigger_conditions.walk_forward_stability: warning_threshold 25 must be above critical_threshold 30 for operator < (regime calm)"
        );
        assert_eq!(conditions, before, "a rejected overlay must not half-apply");
    }
}
