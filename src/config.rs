//! `rollbackd.yaml`: parsed strictly, then validated into a typed [`Config`]. Every mistake is
//! reported once, naming the file, the key and what was expected.

use crate::domain::condition::{self, ConditionSpec, Operator};
use crate::domain::lifecycle::MODE_UNIVERSAL_CYCLE_4;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

/// The effective configuration the daemon runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from, for messages; `None` for the embedded defaults.
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    pub environment: Option<String>,
    pub storage_path: PathBuf,
    pub target: TargetConfig,
    pub agents_expected: u32,
    pub profile: RollbackProfile,
    pub monitoring: MonitoringConfig,
    pub cooldown: Duration,
    pub validation: ValidationConfig,
    pub auth: AuthConfig,
    pub conditions: Vec<ConditionSpec>,
    pub environments: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct TargetConfig {
    pub url: String,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RollbackProfile {
    pub mode: String,
    pub parameters: BTreeMap<String, f64>,
}

#[derive(Clone, Debug)]
pub struct MonitoringConfig {
    pub active_on_start: bool,
    pub poll_interval: Duration,
    pub automatic_rollback: bool,
}

#[derive(Clone, Debug)]
pub struct ValidationConfig {
    pub pass_score: f64,
    pub stability_window: Duration,
    pub stability_interval: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
    /// Alertmanager's token: the webhook only.
    Webhook,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "operator" => Role::Operator,
            "admin" => Role::Admin,
            "webhook" => Role::Webhook,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Webhook => "webhook",
        }
    }
}

#[derive(Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub secret: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Token {{ name: {:?}, role: {:?}, secret: <redacted> }}",
            self.name, self.role
        )
    }
}

#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    pub read_requires_token: bool,
    pub tokens: Vec<Token>,
}

/// The shortest secret accepted: anything shorter is guessable.
pub const MIN_TOKEN_LEN: usize = 16;

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            listen: "127.0.0.1:9100".parse().expect("valid address"),
            environment: None,
            storage_path: PathBuf::from("rollbackd.db"),
            target: TargetConfig {
                url: "http://127.0.0.1:9101".into(),
                timeout: Duration::from_secs(2),
                retries: 2,
                retry_backoff: Duration::from_millis(100),
            },
            agents_expected: 8,
            profile: RollbackProfile {
                mode: MODE_UNIVERSAL_CYCLE_4.into(),
                parameters: BTreeMap::from([
                    ("confidence_threshold".into(), 0.55),
                    ("risk_reward_ratio".into(), 1.8),
                ]),
            },
            monitoring: MonitoringConfig {
                active_on_start: true,
                poll_interval: Duration::from_secs(1),
                automatic_rollback: true,
            },
            cooldown: Duration::from_secs(15 * 60),
            validation: ValidationConfig {
                pass_score: 85.0,
                stability_window: Duration::from_secs(30 * 60),
                stability_interval: Duration::from_secs(60),
            },
            auth: AuthConfig::default(),
            conditions: seed_conditions(),
            environments: vec!["production".into(), "staging".into()],
        }
    }
}

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

fn seed_conditions() -> Vec<ConditionSpec> {
    let raw: RawThresholds =
        serde_yaml_ng::from_str(SEED_THRESHOLDS).expect("the seed's thresholds parse");
    let mut out = Vec::new();
    for (name, c) in raw.trigger_conditions.unwrap_or_default() {
        out.push(ConditionSpec {
            operator: Operator::for_known(&name).expect("seed names known conditions"),
            warning: c.warning_threshold.expect("seed sets warning"),
            critical: c.critical_threshold.expect("seed sets critical"),
            description: c.description.unwrap_or_default(),
            name,
        });
    }
    order_conditions(&mut out);
    out
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

/// A duration written as `500ms`, `1s`, `30m`.
#[derive(Clone, Copy, Debug)]
struct Dur(Duration);

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
struct RawConfig {
    listen: Option<String>,
    environment: Option<String>,
    storage: Option<RawStorage>,
    target: Option<RawTarget>,
    agents: Option<RawAgents>,
    rollback_profile: Option<RawProfile>,
    monitoring: Option<RawMonitoring>,
    cooldown: Option<Dur>,
    validation: Option<RawValidation>,
    auth: Option<RawAuth>,
    thresholds_file: Option<PathBuf>,
    trigger_conditions: Option<BTreeMap<String, RawCondition>>,
    environments: Option<BTreeMap<String, BTreeMap<String, f64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: String,
    timeout: Option<Dur>,
    retries: Option<u32>,
    retry_backoff: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgents {
    expected: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    mode: String,
    parameters: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMonitoring {
    active_on_start: Option<bool>,
    poll_interval: Option<Dur>,
    automatic_rollback: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidation {
    pass_score: Option<f64>,
    stability_window: Option<Dur>,
    stability_interval: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    read_requires_token: bool,
    #[serde(default)]
    tokens: Vec<RawToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    role: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    critical_threshold: Option<f64>,
    warning_threshold: Option<f64>,
    description: Option<String>,
    /// Optional; the known conditions have fixed operators, others are inferred.
    operator: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    trigger_conditions: Option<BTreeMap<String, RawCondition>>,
    environments: Option<BTreeMap<String, BTreeMap<String, f64>>>,
}

/// Reads and validates a config file. `environment` (from `--environment`) wins over the file.
pub fn load(path: &Path, environment: Option<&str>) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        key: "(file)".into(),
        message: format!("cannot read the config file: {e}"),
    })?;
    let raw: RawConfig = parse_yaml(&file, &text)?;
    build(raw, Some(path), environment)
}

/// The embedded defaults (the seed's), with an optional environment selected.
pub fn defaults(environment: Option<&str>) -> Result<Config, ConfigError> {
    build(RawConfig::default(), None, environment)
}

/// Parses a YAML text given in code (used by the demo and tests), relative paths against `base`.
pub fn from_str(text: &str, base: &Path, environment: Option<&str>) -> Result<Config, ConfigError> {
    let raw: RawConfig = parse_yaml("(inline config)", text)?;
    build(raw, Some(&base.join("(inline)")), environment)
}

fn parse_yaml<T: for<'de> Deserialize<'de>>(file: &str, text: &str) -> Result<T, ConfigError> {
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
        // The YAML error may repeat part of the path ("monitoring: invalid ..."); say it once.
        let mut message = e.into_inner().to_string();
        let mut prefix = String::new();
        for part in key.split('.') {
            prefix = if prefix.is_empty() {
                part.to_string()
            } else {
                format!("{prefix}.{part}")
            };
            if let Some(rest) = message.strip_prefix(&format!("{prefix}: ")) {
                message = rest.to_string();
                break;
            }
        }
        ConfigError {
            file: file.into(),
            key,
            message,
        }
    })
}

fn build(
    raw: RawConfig,
    source: Option<&Path>,
    cli_environment: Option<&str>,
) -> Result<Config, ConfigError> {
    let file = source
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(defaults)".into());
    let base_dir = source
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let err = |key: &str, message: String| ConfigError {
        file: file.clone(),
        key: key.into(),
        message,
    };
    let mut cfg = Config {
        source: source.map(Path::to_path_buf),
        ..Config::default()
    };

    if let Some(listen) = raw.listen {
        cfg.listen = listen.parse().map_err(|_| {
            err(
                "listen",
                format!(
                    "{listen:?} is not an address; expected host:port such as \"127.0.0.1:9100\""
                ),
            )
        })?;
    }
    if let Some(s) = raw.storage {
        if s.path.as_os_str().is_empty() {
            return Err(err("storage.path", "must not be empty".into()));
        }
        cfg.storage_path = base_dir.join(s.path);
    }
    if let Some(t) = raw.target {
        let url = t.url.trim_end_matches('/').to_string();
        if !url.starts_with("http://") || url.len() <= "http://".len() {
            return Err(err("target.url", format!("{:?} is not supported; expected an http:// URL such as \"http://127.0.0.1:9101\" (put a TLS proxy in front of an https target)", t.url)));
        }
        cfg.target.url = url;
        if let Some(Dur(d)) = t.timeout {
            if d.is_zero() {
                return Err(err("target.timeout", "must be greater than 0".into()));
            }
            cfg.target.timeout = d;
        }
        if let Some(r) = t.retries {
            if r > 10 {
                return Err(err(
                    "target.retries",
                    format!("{r} is too many; expected 0 to 10"),
                ));
            }
            cfg.target.retries = r;
        }
        if let Some(Dur(d)) = t.retry_backoff {
            cfg.target.retry_backoff = d;
        }
    }
    if let Some(a) = raw.agents {
        if a.expected == 0 {
            return Err(err("agents.expected", "must be at least 1".into()));
        }
        cfg.agents_expected = a.expected;
    }
    if let Some(p) = raw.rollback_profile {
        if p.mode.trim().is_empty() {
            return Err(err("rollback_profile.mode", "must not be empty".into()));
        }
        if let Some((k, v)) = p.parameters.iter().find(|(_, v)| !v.is_finite()) {
            return Err(err(
                &format!("rollback_profile.parameters.{k}"),
                format!("{v} is not a finite number"),
            ));
        }
        cfg.profile = RollbackProfile {
            mode: p.mode,
            parameters: p.parameters,
        };
    }
    if let Some(m) = raw.monitoring {
        if let Some(v) = m.active_on_start {
            cfg.monitoring.active_on_start = v;
        }
        if let Some(v) = m.automatic_rollback {
            cfg.monitoring.automatic_rollback = v;
        }
        if let Some(Dur(d)) = m.poll_interval {
            if d < Duration::from_millis(10) {
                return Err(err(
                    "monitoring.poll_interval",
                    format!(
                        "{} is too short; expected at least 10ms",
                        humantime::format_duration(d)
                    ),
                ));
            }
            cfg.monitoring.poll_interval = d;
        }
    }
    if let Some(Dur(d)) = raw.cooldown {
        cfg.cooldown = d;
    }
    if let Some(v) = raw.validation {
        if let Some(p) = v.pass_score {
            if !(0.0..=100.0).contains(&p) {
                return Err(err(
                    "validation.pass_score",
                    format!("{p} is out of range; expected 0 to 100"),
                ));
            }
            cfg.validation.pass_score = p;
        }
        if let Some(Dur(d)) = v.stability_window {
            cfg.validation.stability_window = d;
        }
        cfg.validation.stability_interval = match v.stability_interval {
            Some(Dur(d)) if d.is_zero() => {
                return Err(err(
                    "validation.stability_interval",
                    "must be greater than 0".into(),
                ))
            }
            Some(Dur(d)) => d,
            // Thirty looks across the window, never more often than the poll.
            None => (cfg.validation.stability_window / 30).max(cfg.monitoring.poll_interval),
        };
    }
    if let Some(a) = raw.auth {
        cfg.auth.read_requires_token = a.read_requires_token;
        for (i, t) in a.tokens.into_iter().enumerate() {
            let key = format!("auth.tokens[{i}]");
            if t.name.trim().is_empty() {
                return Err(err(&format!("{key}.name"), "must not be empty".into()));
            }
            if cfg.auth.tokens.iter().any(|o| o.name == t.name) {
                return Err(err(
                    &format!("{key}.name"),
                    format!(
                        "{:?} is used by another token; names must be unique",
                        t.name
                    ),
                ));
            }
            let role = Role::parse(&t.role).ok_or_else(|| {
                err(
                    &format!("{key}.role"),
                    format!(
                        "{:?} is not a role; expected viewer, operator, admin or webhook",
                        t.role
                    ),
                )
            })?;
            let secret = match (t.token, t.token_file) {
                (Some(s), None) => s,
                (None, Some(f)) => {
                    let path = base_dir.join(&f);
                    std::fs::read_to_string(&path)
                        .map_err(|e| {
                            err(
                                &format!("{key}.token_file"),
                                format!("cannot read {}: {e}", path.display()),
                            )
                        })?
                        .trim()
                        .to_string()
                }
                _ => {
                    return Err(err(
                        &key,
                        "set exactly one of `token` or `token_file`".into(),
                    ))
                }
            };
            if secret.len() < MIN_TOKEN_LEN {
                return Err(err(
                    &key,
                    format!(
                        "token for {:?} is {} characters; expected at least {MIN_TOKEN_LEN}",
                        t.name,
                        secret.len()
                    ),
                ));
            }
            if cfg.auth.tokens.iter().any(|o| o.secret == secret) {
                return Err(err(
                    &key,
                    format!("token for {:?} is the same as another token's", t.name),
                ));
            }
            cfg.auth.tokens.push(Token {
                name: t.name,
                role,
                secret,
            });
        }
        if cfg.auth.read_requires_token && cfg.auth.tokens.is_empty() {
            return Err(err(
                "auth.read_requires_token",
                "is true but no tokens are configured; nobody could read".into(),
            ));
        }
    }

    // Thresholds: the seed's block inline, or the seed's file as-is, never both.
    let (thresholds, thresholds_file) = match raw.thresholds_file {
        Some(f) => {
            if raw.trigger_conditions.is_some() || raw.environments.is_some() {
                return Err(err("thresholds_file", "set either thresholds_file or inline trigger_conditions/environments, not both".into()));
            }
            let path = base_dir.join(&f);
            let pfile = path.display().to_string();
            let text = std::fs::read_to_string(&path)
                .map_err(|e| err("thresholds_file", format!("cannot read {pfile}: {e}")))?;
            (parse_yaml::<RawThresholds>(&pfile, &text)?, pfile)
        }
        None => (
            RawThresholds {
                trigger_conditions: raw.trigger_conditions,
                environments: raw.environments,
            },
            file.clone(),
        ),
    };
    let terr = |key: String, message: String| ConfigError {
        file: thresholds_file.clone(),
        key,
        message,
    };

    if let Some(conds) = thresholds.trigger_conditions {
        for (name, c) in conds {
            let key = format!("trigger_conditions.{name}");
            let existing = cfg.conditions.iter().position(|s| s.name == name);
            let (warning, critical) = match (existing, c.warning_threshold, c.critical_threshold) {
                (_, Some(w), Some(cr)) => (w, cr),
                (Some(i), w, cr) => (w.unwrap_or(cfg.conditions[i].warning), cr.unwrap_or(cfg.conditions[i].critical)),
                (None, _, _) => return Err(terr(key, "a condition rollbackd does not know needs both critical_threshold and warning_threshold".into())),
            };
            for (field, v) in [
                ("warning_threshold", warning),
                ("critical_threshold", critical),
            ] {
                if !v.is_finite() {
                    return Err(terr(
                        format!("{key}.{field}"),
                        format!("{v} is not a finite number"),
                    ));
                }
            }
            let operator = match (c.operator.as_deref(), Operator::for_known(&name)) {
                (Some(op), known) => {
                    let op = Operator::parse(op).ok_or_else(|| {
                        terr(
                            format!("{key}.operator"),
                            format!("{op:?} is not an operator; expected <, <=, > or >="),
                        )
                    })?;
                    if known.is_some_and(|k| k != op) {
                        return Err(terr(
                            format!("{key}.operator"),
                            format!("{name} always breaches with {}", known.unwrap()),
                        ));
                    }
                    op
                }
                (None, Some(known)) => known,
                (None, None) => Operator::inferred(warning, critical).ok_or_else(|| {
                    terr(
                        key.clone(),
                        "warning and critical thresholds are equal; cannot tell which way is worse"
                            .into(),
                    )
                })?,
            };
            let spec = ConditionSpec {
                description: c
                    .description
                    .or_else(|| existing.map(|i| cfg.conditions[i].description.clone()))
                    .unwrap_or_default(),
                name: name.clone(),
                operator,
                warning,
                critical,
            };
            match existing {
                Some(i) => cfg.conditions[i] = spec,
                None => cfg.conditions.push(spec),
            }
        }
    }
    order_conditions(&mut cfg.conditions);

    let environments = thresholds.environments.unwrap_or_else(|| {
        serde_yaml_ng::from_str::<RawThresholds>(SEED_THRESHOLDS)
            .expect("seed parses")
            .environments
            .unwrap_or_default()
    });
    cfg.environments = environments.keys().cloned().collect();
    cfg.environment = cli_environment.map(str::to_owned).or(raw.environment);
    // Every override is checked, not only the selected environment's: a typo in staging
    // should not wait for the day staging is deployed.
    for (env, overrides) in &environments {
        for (dotted, value) in overrides {
            let key = format!("environments.{env}.{dotted}");
            let (cond, field) = dotted.split_once('.').ok_or_else(|| {
                terr(
                    key.clone(),
                    "expected CONDITION.critical_threshold or CONDITION.warning_threshold".into(),
                )
            })?;
            let spec = cfg.conditions.iter_mut().find(|c| c.name == cond);
            let Some(spec) = spec else {
                return Err(terr(
                    key,
                    format!(
                        "unknown condition {cond:?}; expected one of {}",
                        names(&cfg.conditions)
                    ),
                ));
            };
            if !value.is_finite() {
                return Err(terr(key, format!("{value} is not a finite number")));
            }
            let slot = match field {
                "critical_threshold" => &mut spec.critical,
                "warning_threshold" => &mut spec.warning,
                other => {
                    return Err(terr(
                        key,
                        format!(
                        "unknown field {other:?}; expected critical_threshold or warning_threshold"
                    ),
                    ))
                }
            };
            if Some(env) == cfg.environment.as_ref() {
                *slot = *value;
            }
        }
    }
    if let Some(env) = &cfg.environment {
        if !environments.contains_key(env) {
            let defined = if cfg.environments.is_empty() {
                "none".to_string()
            } else {
                cfg.environments.join(", ")
            };
            return Err(err(
                "environment",
                format!("{env:?} is not defined under environments (defined: {defined})"),
            ));
        }
    }
    for c in &cfg.conditions {
        if !c.thresholds_ordered() {
            let side = if c.operator.lower_is_worse() {
                "above"
            } else {
                "below"
            };
            let env = cfg
                .environment
                .as_deref()
                .map(|e| format!(" (environment {e})"))
                .unwrap_or_default();
            return Err(terr(
                format!("trigger_conditions.{}", c.name),
                format!("warning_threshold {} must be {side} critical_threshold {} for operator {}{env}", c.warning, c.critical, c.operator),
            ));
        }
    }
    Ok(cfg)
}

fn names(conditions: &[ConditionSpec]) -> String {
    conditions
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Config {
    /// The effective thresholds as `check-config` prints them.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let source = self
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "embedded defaults".into());
        out.push_str(&format!("config: {source}\n"));
        out.push_str(&format!(
            "environment: {}\n",
            self.environment
                .as_deref()
                .unwrap_or("(none: base thresholds)")
        ));
        out.push_str(&format!(
            "listen: {}\ntarget: {} (timeout {}, {} retries)\n",
            self.listen,
            self.target.url,
            humantime::format_duration(self.target.timeout),
            self.target.retries
        ));
        out.push_str(&format!("storage: {}\n", self.storage_path.display()));
        out.push_str(&format!(
            "monitoring: active_on_start={} poll_interval={} automatic_rollback={}\n",
            self.monitoring.active_on_start,
            humantime::format_duration(self.monitoring.poll_interval),
            self.monitoring.automatic_rollback
        ));
        let params: Vec<String> = self
            .profile
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "rollback profile: {} {}\n",
            self.profile.mode,
            params.join(" ")
        ));
        out.push_str(&format!(
            "cooldown: {}  validation: pass_score={} stability_window={}\n",
            humantime::format_duration(self.cooldown),
            self.validation.pass_score,
            humantime::format_duration(self.validation.stability_window)
        ));
        out.push_str(&format!(
            "auth: {} token(s), reads {}\n",
            self.auth.tokens.len(),
            if self.auth.read_requires_token {
                "need a token"
            } else {
                "open"
            }
        ));
        out.push_str("thresholds:\n");
        out.push_str(&format!(
            "  {:<24} {:>3} {:>10} {:>10}\n",
            "condition", "op", "warning", "critical"
        ));
        for c in &self.conditions {
            out.push_str(&format!(
                "  {:<24} {:>3} {:>10} {:>10}\n",
                c.name,
                c.operator.as_str(),
                c.warning,
                c.critical
            ));
        }
        out
    }

    pub fn condition(&self, name: &str) -> Option<&ConditionSpec> {
        self.conditions.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    fn load_text(text: &str, env: Option<&str>) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "rollbackd.yaml", text);
        load(&p, env)
    }

    #[test]
    fn no_config_gives_the_seed() {
        let c = defaults(None).unwrap();
        let t: Vec<(String, f64, f64)> = c
            .conditions
            .iter()
            .map(|c| (c.name.clone(), c.warning, c.critical))
            .collect();
        assert_eq!(
            t,
            vec![
                ("walk_forward_stability".into(), 50.0, 40.0),
                ("overfitting_score".into(), 0.4, 0.5),
                ("consecutive_losses".into(), 4.0, 5.0),
                ("max_drawdown".into(), 3.5, 5.0),
            ]
        );
        assert_eq!(c.profile.parameters["confidence_threshold"], 0.55);
        assert_eq!(c.profile.parameters["risk_reward_ratio"], 1.8);
        assert_eq!(c.agents_expected, 8);
        assert_eq!(c.validation.pass_score, 85.0);
        assert_eq!(c.validation.stability_window, Duration::from_secs(1800));
        assert_eq!(c.cooldown, Duration::from_secs(900));
    }

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
    fn the_full_contract_example_loads() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ops.token", "0123456789abcdef-ops\n");
        let p = write(
            dir.path(),
            "rollbackd.yaml",
            r#"
listen: "127.0.0.1:19100"
environment: production
storage: { path: history.db }
target: { url: "http://127.0.0.1:19101/", timeout: 500ms }
agents: { expected: 8 }
rollback_profile:
  mode: universal_cycle_4
  parameters: { confidence_threshold: 0.55, risk_reward_ratio: 1.8 }
monitoring: { active_on_start: true, poll_interval: 100ms, automatic_rollback: false }
cooldown: 15m
validation: { pass_score: 85, stability_window: 30m }
auth:
  read_requires_token: false
  tokens:
    - { name: ops, role: operator, token_file: ops.token }
    - { name: am, role: webhook, token: "alertmanager-secret-1234" }
"#,
        );
        let c = load(&p, None).unwrap();
        assert_eq!(c.listen.port(), 19100);
        assert_eq!(c.target.url, "http://127.0.0.1:19101");
        assert_eq!(c.target.timeout, Duration::from_millis(500));
        assert_eq!(c.storage_path, dir.path().join("history.db"));
        assert_eq!(c.monitoring.poll_interval, Duration::from_millis(100));
        assert!(!c.monitoring.automatic_rollback);
        assert_eq!(c.auth.tokens[0].secret, "0123456789abcdef-ops");
        assert_eq!(c.auth.tokens[1].role, Role::Webhook);
        assert!(c.describe().contains("consecutive_losses"));
    }

    fn err_of(text: &str) -> String {
        load_text(text, None).unwrap_err().to_string()
    }

    #[test]
    fn each_mistake_names_file_key_and_expectation() {
        let cases: &[(&str, &str, &str)] = &[
            ("listne: x\n", "listne", "unknown field `listne`, expected one of `listen`"),
            ("monitoring: { poll_interval: fast }\n", "monitoring.poll_interval", "expected a duration"),
            ("monitoring: { poll_interval: 1ms }\n", "monitoring.poll_interval", "at least 10ms"),
            ("agents: { expected: eight }\n", "agents.expected", "invalid type"),
            ("target: { url: \"https://x\" }\n", "target.url", "http://"),
            ("validation: { pass_score: 185 }\n", "validation.pass_score", "0 to 100"),
            ("trigger_conditions:\n  walk_forward_stability: { critical_threshold: 60.0, warning_threshold: 50.0 }\n", "trigger_conditions.walk_forward_stability", "must be above"),
            ("trigger_conditions:\n  max_drawdown: { critical_threshold: 3.0 }\n", "trigger_conditions.max_drawdown", "must be below"),
            ("trigger_conditions:\n  latency: { critical_threshold: 3.0 }\n", "trigger_conditions.latency", "needs both"),
            ("trigger_conditions:\n  max_drawdown: { critical_treshold: 3.0 }\n", "trigger_conditions.max_drawdown.critical_treshold", "unknown field `critical_treshold`"),
            ("environments:\n  staging:\n    walk_forward.critical_threshold: 30\n", "environments.staging.walk_forward.critical_threshold", "unknown condition"),
            ("environments:\n  staging:\n    max_drawdown.critical: 30\n", "environments.staging.max_drawdown.critical", "unknown field"),
            ("environment: qa\n", "environment", "not defined under environments"),
            ("auth: { tokens: [ { name: a, role: god, token: \"0123456789abcdef\" } ] }\n", "auth.tokens[0].role", "expected viewer, operator, admin or webhook"),
            ("auth: { tokens: [ { name: a, role: admin, token: \"short\" } ] }\n", "auth.tokens[0]", "at least 16"),
            ("auth: { tokens: [ { name: a, role: admin, token_file: missing.token } ] }\n", "auth.tokens[0].token_file", "cannot read"),
            ("thresholds_file: nowhere.yaml\n", "thresholds_file", "cannot read"),
        ];
        for (text, key, expect) in cases {
            let e = err_of(text);
            assert!(e.contains("rollbackd.yaml: "), "{text:?}: no file in {e}");
            assert!(
                e.contains(&format!(": {key}: ")),
                "{text:?}: no key {key} in {e}"
            );
            assert!(e.contains(expect), "{text:?}: {expect:?} not in {e}");
        }
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
    fn an_unreadable_file_is_named() {
        let e = load(Path::new("/nonexistent/rollbackd.yaml"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/rollbackd.yaml: (file): cannot read"),
            "{e}"
        );
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
