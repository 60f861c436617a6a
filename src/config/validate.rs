//! The last stage: values that parse but cannot be meant. A timeout of days holds the only
//! execution slot for days; a threshold outside its condition's range is critical forever; a
//! placeholder token in production is a published secret. Each mistake names its key.

use super::error::Origin;
use super::{Config, ConfigError};
use crate::domain::condition::{ConditionSpec, Operator};
use crate::domain::lifecycle::MODE_SESSION_TARGETED;
use std::time::Duration;

/// The longest a single target call may wait: one stuck call holds the execution slot.
pub const MAX_TARGET_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest first back-off between switch retries (later ones double from it).
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(10);
/// The longest stability window.
pub const MAX_STABILITY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The values a seed condition can take; a critical threshold outside them is always (or
/// never) met.
fn range_of(condition: &str) -> Option<(f64, f64)> {
    Some(match condition {
        "walk_forward_stability" => (0.0, 100.0),
        "overfitting_score" => (0.0, 1.0),
        "consecutive_losses" => (0.0, f64::INFINITY),
        "max_drawdown" => (0.0, 100.0),
        _ => return None,
    })
}

/// True when every value in the condition's range breaches `critical`.
fn always_critical(spec: &ConditionSpec) -> bool {
    let Some((min, max)) = range_of(&spec.name) else {
        return false;
    };
    let c = spec.critical;
    match spec.operator {
        Operator::Lt => c > max,
        Operator::Le => c >= max,
        Operator::Gt => c < min,
        Operator::Ge => c <= min,
    }
}

/// Checks one set of resolved thresholds; `origin` says which (the base, or an environment).
pub(super) fn conditions(
    conditions: &[ConditionSpec],
    file: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    match conditions.iter().find(|c| always_critical(c)) {
        None => Ok(()),
        Some(c) => {
            let (min, max) = range_of(&c.name).unwrap_or_default();
            Err(super::error::error(
                file,
                format!("trigger_conditions.{}.critical_threshold", c.name),
                format!(
                    "{} {} {} holds for every value {}'s range {min}..{max} allows{origin}: it would be critical always",
                    c.name,
                    c.operator.as_str(),
                    c.critical,
                    c.name
                ),
            ))
        }
    }
}

fn at_most(
    at: &Origin,
    key: &str,
    value: Duration,
    max: Duration,
    why: &str,
) -> Result<(), ConfigError> {
    if value <= max {
        return Ok(());
    }
    Err(at.err(
        key,
        format!(
            "{} is too long; expected at most {} ({why})",
            humantime::format_duration(value),
            humantime::format_duration(max)
        ),
    ))
}

/// A secret still holding the shipped placeholder.
fn is_placeholder(secret: &str) -> bool {
    let s = secret.to_ascii_uppercase();
    crate::contacts::PLACEHOLDERS.iter().any(|p| s.contains(p)) || s.contains("CHANGEME")
}

fn is_production(environment: Option<&str>) -> bool {
    environment.is_some_and(|e| e == "production" || e == "prod")
}

pub(super) fn validate(cfg: &Config, at: &Origin) -> Result<(), ConfigError> {
    let slot = "a stuck target holds the only execution slot";
    at_most(
        at,
        "target.timeout",
        cfg.target.timeout,
        MAX_TARGET_TIMEOUT,
        slot,
    )?;
    at_most(
        at,
        "target.retry_backoff",
        cfg.target.retry_backoff,
        MAX_RETRY_BACKOFF,
        slot,
    )?;
    if cfg.validation.stability_window.is_zero() {
        return Err(at.err(
            "validation.stability_window",
            "must be greater than 0; every completed rollback is watched through it",
        ));
    }
    at_most(
        at,
        "validation.stability_window",
        cfg.validation.stability_window,
        MAX_STABILITY_WINDOW,
        "a watch longer than a day never reports",
    )?;
    if cfg.profile.mode == MODE_SESSION_TARGETED {
        return Err(at.err(
            "rollback_profile.mode",
            format!("{MODE_SESSION_TARGETED:?} is the adaptive mode a rollback leaves; expected the known-good profile's mode such as \"universal_cycle_4\""),
        ));
    }
    if !cfg
        .profile
        .mode
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(at.err(
            "rollback_profile.mode",
            format!("{:?} is not a mode name; expected lowercase letters, digits and _ such as \"universal_cycle_4\"", cfg.profile.mode),
        ));
    }
    if is_production(cfg.environment.as_deref()) {
        if let Some((i, t)) = cfg
            .auth
            .tokens
            .iter()
            .enumerate()
            .find(|(_, t)| is_placeholder(&t.secret))
        {
            return Err(at.err(
                format!("auth.tokens[{i}]"),
                format!("token for {:?} is still the shipped placeholder; set a secret of your own before running in production", t.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{from_str, ConfigError};
    use std::path::Path;

    fn err(yaml: &str, env: Option<&str>) -> ConfigError {
        from_str(yaml, Path::new("/tmp"), env).expect_err("refused")
    }

    #[test]
    fn a_back_off_or_timeout_that_would_hold_the_slot_for_long_is_refused() {
        let e = err(
            "target: { url: \"http://127.0.0.1:1\", retry_backoff: 1h }",
            None,
        );
        assert_eq!(e.key, "target.retry_backoff");
        assert!(
            e.message.contains("1h is too long; expected at most 10s"),
            "{e}"
        );
        let e = err(
            "target: { url: \"http://127.0.0.1:1\", timeout: 1000d }",
            None,
        );
        assert_eq!(e.key, "target.timeout");
        assert!(e.message.contains("expected at most 1m"), "{e}");
    }

    #[test]
    fn a_zero_or_endless_stability_window_is_refused() {
        let e = err("validation: { stability_window: 0s }", None);
        assert_eq!(e.key, "validation.stability_window");
        let e = err("validation: { stability_window: 30d }", None);
        assert_eq!(e.key, "validation.stability_window");
        assert!(from_str(
            "validation: { stability_window: 5m }",
            Path::new("/tmp"),
            None
        )
        .is_ok());
    }

    #[test]
    fn a_threshold_critical_for_every_value_is_refused_in_the_base_and_in_each_environment() {
        let e = err(
            "trigger_conditions:\n  walk_forward_stability: { critical_threshold: 150, warning_threshold: 160 }\n",
            None,
        );
        assert_eq!(
            e.key,
            "trigger_conditions.walk_forward_stability.critical_threshold"
        );
        assert!(e.message.contains("critical always"), "{e}");
        let e = err(
            "trigger_conditions:\n  max_drawdown: { critical_threshold: 0, warning_threshold: -1 }\n",
            None,
        );
        assert_eq!(e.key, "trigger_conditions.max_drawdown.critical_threshold");
        // Only staging is wrong; neither selecting production nor selecting none hides it.
        let yaml = "environments:\n  production: {}\n  staging: { consecutive_losses.critical_threshold: 0, consecutive_losses.warning_threshold: -1 }\n";
        for env in [None, Some("production")] {
            let e = err(yaml, env);
            assert!(e.message.contains("(environment staging)"), "{env:?}: {e}");
        }
    }

    #[test]
    fn every_environment_is_ordered_not_only_the_selected_one() {
        let yaml = "environments:\n  production: {}\n  staging: { walk_forward_stability.warning_threshold: 30.0 }\n";
        let e = err(yaml, Some("production"));
        assert!(e.message.contains("staging"), "{e}");
    }

    #[test]
    fn the_profile_mode_must_be_a_rollback_mode() {
        let e = err(
            "rollback_profile: { mode: session_targeted, parameters: {} }",
            None,
        );
        assert_eq!(e.key, "rollback_profile.mode");
        let e = err(
            "rollback_profile: { mode: \"Universal Cycle 4\", parameters: {} }",
            None,
        );
        assert!(e.message.contains("not a mode name"), "{e}");
        assert!(from_str(
            "rollback_profile: { mode: universal_cycle_3, parameters: {} }",
            Path::new("/tmp"),
            None
        )
        .is_ok());
    }

    #[test]
    fn the_shipped_placeholder_token_is_refused_in_production_only() {
        let yaml = "auth:\n  tokens:\n    - { name: ops, role: operator, token: \"CHANGE-ME-rollbackd-operator-token\" }\n";
        let e = err(yaml, Some("production"));
        assert_eq!(e.key, "auth.tokens[0]");
        assert!(e.message.contains("placeholder"), "{e}");
        assert!(from_str(yaml, Path::new("/tmp"), Some("staging")).is_ok());
    }
}
