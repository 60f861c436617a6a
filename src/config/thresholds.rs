//! Resolve and validate the trigger thresholds: the seed's defaults, then the config's
//! `trigger_conditions` (inline or from `thresholds_file`), then the selected environment's
//! overlay, then the ordering of every warning against its critical threshold.

use super::error::{error, Origin};
use super::overlay::{apply_overlay, check_ordering, check_overlay, OverlayOrigin};
use super::raw::{parse_yaml, Overrides, RawCondition, RawThresholds};
use super::{Config, ConfigError};
use crate::domain::condition::{self, ConditionSpec, Operator};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::LazyLock;

/// The seed's `trigger_thresholds.yaml`, embedded: what applies with no config at all.
pub const SEED_THRESHOLDS: &str = r#"trigger_conditions:
  walk_forward_stability:
    critical_threshold: 40.0
    warning_threshold: 50.0
    description: "Below 40 triggers immediate rollback"

  overfitting_score:
    critical_threshold: 0.5
    warning_threshold: 0.4
    description: "Above 0.5 indicates severe overfitting"

  consecutive_losses:
    critical_threshold: 5
    warning_threshold: 4
    description: "5+ consecutive losses trigger rollback"

  max_drawdown:
    critical_threshold: 5.0
    warning_threshold: 3.5
    description: "Above 5% drawdown triggers emergency stop"

# Environment-specific overrides
environments:
  staging:
    walk_forward_stability.critical_threshold: 30.0  # More sensitive
  production:
    consecutive_losses.critical_threshold: 6  # Less sensitive
"#;

/// [`SEED_THRESHOLDS`], parsed once: every config starts from its conditions, and a config
/// without `environments` gets its environments.
struct Seed {
    conditions: Vec<ConditionSpec>,
    environments: BTreeMap<String, Overrides>,
}

static SEED: LazyLock<Seed> = LazyLock::new(|| {
    let raw: RawThresholds =
        serde_yaml_ng::from_str(SEED_THRESHOLDS).expect("the seed's thresholds parse");
    let mut conditions = Vec::new();
    for (name, c) in raw.trigger_conditions.unwrap_or_default() {
        conditions.push(ConditionSpec {
            operator: Operator::for_known(&name).expect("seed names known conditions"),
            warning: c.warning_threshold.expect("seed sets warning"),
            critical: c.critical_threshold.expect("seed sets critical"),
            description: c.description.unwrap_or_default(),
            name,
        });
    }
    order_conditions(&mut conditions);
    Seed {
        conditions,
        environments: raw.environments.unwrap_or_default(),
    }
});

/// The seed's conditions, before any config.
pub(super) fn seed_conditions() -> Vec<ConditionSpec> {
    SEED.conditions.clone()
}

/// The four known conditions first, in the seed's order, then any others by name.
fn order_conditions(conditions: &mut [ConditionSpec]) {
    conditions.sort_by_key(|c| {
        let known = condition::KNOWN_CONDITIONS
            .iter()
            .position(|k| *k == c.name);
        (known.unwrap_or(usize::MAX), c.name.clone())
    });
}

/// The thresholds block and the file its keys are reported against.
pub(super) struct Thresholds {
    raw: RawThresholds,
    file: String,
}

/// The seed's block inline, or the seed's file as-is through `thresholds_file`, never both.
pub(super) fn read(
    thresholds_file: Option<PathBuf>,
    inline: RawThresholds,
    at: &Origin,
) -> Result<Thresholds, ConfigError> {
    let Some(f) = thresholds_file else {
        return Ok(Thresholds {
            raw: inline,
            file: at.file.clone(),
        });
    };
    if inline.trigger_conditions.is_some() || inline.environments.is_some() {
        return Err(at.err(
            "thresholds_file",
            "set either thresholds_file or inline trigger_conditions/environments, not both",
        ));
    }
    let path = at.base_dir.join(&f);
    let file = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| at.err("thresholds_file", format!("cannot read {file}: {e}")))?;
    Ok(Thresholds {
        raw: parse_yaml::<RawThresholds>(&file, &text)?,
        file,
    })
}

/// Sets `cfg.conditions`, `cfg.environments` and `cfg.environment` (the command line's, else
/// the file's).
pub(super) fn resolve(
    cfg: &mut Config,
    thresholds: Thresholds,
    environment: Option<String>,
    at: &Origin,
) -> Result<(), ConfigError> {
    let Thresholds { raw, file } = thresholds;
    if let Some(conditions) = raw.trigger_conditions {
        merge_conditions(&mut cfg.conditions, conditions, &file)?;
    }
    order_conditions(&mut cfg.conditions);
    let environments = raw
        .environments
        .unwrap_or_else(|| SEED.environments.clone());
    cfg.environments = environments.keys().cloned().collect();
    cfg.environment = environment;
    select_environment(cfg, &environments, &file, at)
}

/// Every override is checked, not only the selected environment's: a typo in staging should
/// not wait for the day staging is deployed. Then the selected one is applied.
fn select_environment(
    cfg: &mut Config,
    environments: &BTreeMap<String, Overrides>,
    file: &str,
    at: &Origin,
) -> Result<(), ConfigError> {
    for (name, overrides) in environments {
        check_overlay(
            &cfg.conditions,
            OverlayOrigin::environment(file, name),
            overrides,
        )?;
    }
    let base = cfg.conditions.clone();
    apply_selected(cfg, environments, file, at)?;
    // Every environment applied on its own copy: ordering and ranges hold in each one, so
    // `check-config` refuses what `serve --environment X` would.
    super::validate::conditions(&base, file, "")?;
    for (name, overrides) in environments {
        let mut copy = base.clone();
        apply_overlay(&mut copy, OverlayOrigin::environment(file, name), overrides)?;
        super::validate::conditions(&copy, file, &format!(" (environment {name})"))?;
    }
    Ok(())
}

/// Applies the selected environment (or checks the base ordering when none is selected).
fn apply_selected(
    cfg: &mut Config,
    environments: &BTreeMap<String, Overrides>,
    file: &str,
    at: &Origin,
) -> Result<(), ConfigError> {
    let Some(env) = cfg.environment.as_deref() else {
        return check_ordering(&cfg.conditions, file, None);
    };
    let Some(overrides) = environments.get(env) else {
        let defined = if cfg.environments.is_empty() {
            "none".to_string()
        } else {
            cfg.environments.join(", ")
        };
        return Err(at.err(
            "environment",
            format!("{env:?} is not defined under environments (defined: {defined})"),
        ));
    };
    apply_overlay(
        &mut cfg.conditions,
        OverlayOrigin::environment(file, env),
        overrides,
    )
}

/// The config's `trigger_conditions` over the seed's: a known condition may set only some
/// fields, any other condition is added whole.
fn merge_conditions(
    conditions: &mut Vec<ConditionSpec>,
    raw: BTreeMap<String, RawCondition>,
    file: &str,
) -> Result<(), ConfigError> {
    for (name, c) in raw {
        let existing = conditions.iter().position(|s| s.name == name);
        let spec = condition_spec(name, c, existing.map(|i| &conditions[i]), file)?;
        match existing {
            Some(i) => conditions[i] = spec,
            None => conditions.push(spec),
        }
    }
    Ok(())
}

fn condition_spec(
    name: String,
    c: RawCondition,
    existing: Option<&ConditionSpec>,
    file: &str,
) -> Result<ConditionSpec, ConfigError> {
    let key = format!("trigger_conditions.{name}");
    let (warning, critical) = match (existing, c.warning_threshold, c.critical_threshold) {
        (_, Some(w), Some(cr)) => (w, cr),
        (Some(e), w, cr) => (w.unwrap_or(e.warning), cr.unwrap_or(e.critical)),
        (None, _, _) => return Err(error(file, key, "a condition rollbackd does not know needs both critical_threshold and warning_threshold")),
    };
    for (field, v) in [
        ("warning_threshold", warning),
        ("critical_threshold", critical),
    ] {
        if !v.is_finite() {
            return Err(error(
                file,
                format!("{key}.{field}"),
                format!("{v} is not a finite number"),
            ));
        }
    }
    let operator = operator(
        &name,
        &key,
        c.operator.as_deref(),
        (warning, critical),
        file,
    )?;
    Ok(ConditionSpec {
        description: c
            .description
            .or_else(|| existing.map(|e| e.description.clone()))
            .unwrap_or_default(),
        name,
        operator,
        warning,
        critical,
    })
}

/// A known condition's operator is fixed; another's is written or inferred from the order of
/// its `(warning, critical)` thresholds.
fn operator(
    name: &str,
    key: &str,
    written: Option<&str>,
    (warning, critical): (f64, f64),
    file: &str,
) -> Result<Operator, ConfigError> {
    let known = Operator::for_known(name);
    let Some(op) = written else {
        return known
            .or_else(|| Operator::inferred(warning, critical))
            .ok_or_else(|| {
                error(
                    file,
                    key,
                    "warning and critical thresholds are equal; cannot tell which way is worse",
                )
            });
    };
    let op = Operator::parse(op).ok_or_else(|| {
        error(
            file,
            format!("{key}.operator"),
            format!("{op:?} is not an operator; expected <, <=, > or >="),
        )
    })?;
    match known {
        Some(k) if k != op => Err(error(
            file,
            format!("{key}.operator"),
            format!("{name} always breaches with {k}"),
        )),
        _ => Ok(op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::config::testing::{load_text, write};

    #[test]
    fn the_seed_block_is_accepted_verbatim_inline_and_environments_apply() {
        let c = load_text(SEED_THRESHOLDS, Some("staging")).unwrap();
        assert_eq!(
            c.condition("walk_forward_stability").unwrap().critical,
            30.0
        );
        assert_eq!(c.condition("consecutive_losses").unwrap().critical, 5.0);
        let c = load_text(SEED_THRESHOLDS, Some("production")).unwrap();
        assert_eq!(
            c.condition("walk_forward_stability").unwrap().critical,
            40.0
        );
        assert_eq!(c.condition("consecutive_losses").unwrap().critical, 6.0);
        assert_eq!(c.environment.as_deref(), Some("production"));
    }

    #[test]
    fn the_seed_file_is_accepted_through_thresholds_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "trigger_thresholds.yaml", SEED_THRESHOLDS);
        let p = write(
            dir.path(),
            "rollbackd.yaml",
            "environment: staging\nthresholds_file: trigger_thresholds.yaml\n",
        );
        let c = load(&p, None).unwrap();
        assert_eq!(
            c.condition("walk_forward_stability").unwrap().critical,
            30.0
        );
        // The command line's environment wins over the file's.
        let c = load(&p, Some("production")).unwrap();
        assert_eq!(c.condition("consecutive_losses").unwrap().critical, 6.0);
    }

    #[test]
    fn an_override_that_misorders_thresholds_names_the_environment() {
        let text = format!("{SEED_THRESHOLDS}\n");
        let text = text.replace(
            "walk_forward_stability.critical_threshold: 30.0",
            "walk_forward_stability.critical_threshold: 55.0",
        );
        let e = load_text(&text, Some("staging")).unwrap_err().to_string();
        assert!(e.contains("environment staging"), "{e}");
    }

    #[test]
    fn extra_conditions_infer_their_operator() {
        let c = load_text("trigger_conditions:\n  latency_ms: { warning_threshold: 200, critical_threshold: 500 }\n", None).unwrap();
        let l = c.condition("latency_ms").unwrap();
        assert_eq!(l.operator, Operator::Ge);
        assert_eq!(c.conditions.len(), 5);
        assert_eq!(c.conditions[4].name, "latency_ms");
    }
}
