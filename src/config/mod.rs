//! `rollbackd.yaml`: parsed strictly, then validated into a typed [`Config`]. Every mistake is
//! reported once, naming the file, the key and what was expected.
//!
//! The stages: [`raw`] parses the YAML as written; [`sections`] resolves and validates each
//! top-level section over the defaults; [`thresholds`] does the same for the trigger
//! conditions and the selected environment, through the reusable [`overlay`]; [`validate`]
//! refuses what parses but cannot be meant.

mod describe;
mod error;
mod holds;
mod operations;
mod overlay;
mod raw;
mod sections;
mod thresholds;
mod validate;
mod web;

pub use error::ConfigError;
pub use holds::{AutomationConfig, WindowsConfig};
pub use operations::{
    channel_problem, AlertmanagerConfig, ChannelProblem, DrillConfig, NotificationTestConfig,
    CHANNELS,
};
pub use overlay::{apply_overlay, OverlayOrigin};
pub use raw::Overrides;
pub use thresholds::SEED_THRESHOLDS;
pub use web::{load_web_config, ClientAuth, ServerTls, WebConfig};

use crate::domain::condition::ConditionSpec;
use crate::domain::lifecycle::MODE_UNIVERSAL_CYCLE_4;
use error::Origin;
use raw::{parse_yaml, Dur, RawConfig, RawThresholds};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The effective configuration the daemon runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from, for messages; `None` for the embedded defaults.
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    pub environment: Option<String>,
    pub storage_path: PathBuf,
    /// `storage.postgres`: the history on PostgreSQL (two or more replicas); `None` keeps it
    /// in the SQLite file at `storage_path`.
    pub postgres: Option<crate::store::PostgresConfig>,
    pub target: TargetConfig,
    pub agents_expected: u32,
    pub profile: RollbackProfile,
    pub monitoring: MonitoringConfig,
    pub cooldown: Duration,
    pub validation: ValidationConfig,
    pub auth: AuthConfig,
    /// TLS and basic auth for the listener, from `web_config_file` (or `--web.config.file`).
    pub web: Option<WebConfig>,
    pub limits: Limits,
    pub conditions: Vec<ConditionSpec>,
    pub environments: Vec<String>,
    /// Named threshold presets an operator may lay over the environment's at runtime.
    pub regimes: BTreeMap<String, Overrides>,
    pub automation: AutomationConfig,
    pub freezes: WindowsConfig,
    pub maintenance: WindowsConfig,
    pub alertmanager: AlertmanagerConfig,
    pub drills: DrillConfig,
    pub notification_tests: NotificationTestConfig,
}

/// What one client may hold of the listener; see docs/security.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From a new connection (or the first byte of a kept-alive one's next request) until the
    /// request's headers are complete; a TLS handshake must also finish within it.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may wait, idle, for its next request.
    pub idle_timeout: Duration,
    /// Open connections; at the cap the oldest idle one is closed to make room, and a new
    /// connection is closed at once when none is idle.
    pub max_connections: usize,
    /// Open `GET /api/v1/stream` WebSockets, anonymous readers included.
    pub max_stream_subscribers: usize,
    /// Write requests per minute per token (open mode, without tokens, is not limited);
    /// 0 is unlimited.
    pub write_requests_per_minute: u32,
    /// Write requests a token may make at once before the rate applies.
    pub write_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections: 256,
            max_stream_subscribers: 64,
            write_requests_per_minute: 60,
            write_burst: 10,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TargetConfig {
    pub url: String,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    /// The CA that signed an `https://` target's certificate (`target.ca_file`); `None`
    /// trusts the system's CAs.
    pub ca: Option<CaFile>,
}

/// A CA file, read and checked when the config is.
#[derive(Clone, Debug)]
pub struct CaFile {
    pub path: PathBuf,
    pub certs: Vec<rustls::pki_types::CertificateDer<'static>>,
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
    /// The watchdog may execute rollbacks.
    pub automatic_rollback: bool,
    /// Firing `action="rollback"` Alertmanager alerts may execute rollbacks.
    pub alertmanager_rollback: bool,
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
            postgres: None,
            target: TargetConfig {
                url: "http://127.0.0.1:9101".into(),
                timeout: Duration::from_secs(2),
                retries: 2,
                retry_backoff: Duration::from_millis(100),
                ca: None,
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
                alertmanager_rollback: true,
            },
            cooldown: Duration::from_secs(15 * 60),
            validation: ValidationConfig {
                pass_score: 85.0,
                stability_window: Duration::from_secs(30 * 60),
                stability_interval: Duration::from_secs(60),
            },
            auth: AuthConfig::default(),
            web: None,
            limits: Limits::default(),
            conditions: thresholds::seed_conditions(),
            environments: vec!["production".into(), "staging".into()],
            regimes: BTreeMap::new(),
            automation: AutomationConfig::default(),
            freezes: WindowsConfig::freezes(),
            maintenance: WindowsConfig::maintenance(),
            alertmanager: AlertmanagerConfig::default(),
            drills: DrillConfig::default(),
            notification_tests: NotificationTestConfig::default(),
        }
    }
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

/// Resolves each section in the file's order over the defaults; the first mistake stops it.
fn build(
    raw: RawConfig,
    source: Option<&Path>,
    cli_environment: Option<&str>,
) -> Result<Config, ConfigError> {
    let at = Origin::of(source);
    let mut cfg = Config {
        source: source.map(Path::to_path_buf),
        ..Config::default()
    };
    if let Some(listen) = raw.listen {
        cfg.listen = sections::listen(&listen, &at)?;
    }
    if let Some(s) = raw.storage {
        (cfg.storage_path, cfg.postgres) = sections::storage(s, cfg.storage_path, &at)?;
    }
    if let Some(t) = raw.target {
        cfg.target = sections::target(t, cfg.target, &at)?;
    }
    if let Some(a) = raw.agents {
        cfg.agents_expected = sections::agents(a, &at)?;
    }
    if let Some(p) = raw.rollback_profile {
        cfg.profile = sections::rollback_profile(p, &at)?;
    }
    if let Some(m) = raw.monitoring {
        cfg.monitoring = sections::monitoring(m, cfg.monitoring, &at)?;
    }
    if let Some(Dur(d)) = raw.cooldown {
        cfg.cooldown = d;
    }
    if let Some(v) = raw.validation {
        let poll = cfg.monitoring.poll_interval;
        cfg.validation = sections::validation(v, cfg.validation, poll, &at)?;
    }
    if let Some(a) = raw.auth {
        cfg.auth = sections::auth(a, &at)?;
    }
    if let Some(f) = raw.web_config_file {
        cfg.web = Some(load_web_config(&at.base_dir.join(f)).map_err(|e| {
            if e.key == "(file)" {
                at.err("web_config_file", format!("{}: {}", e.file, e.message))
            } else {
                e
            }
        })?);
    }
    if let Some(l) = raw.limits {
        cfg.limits = sections::limits(l, cfg.limits, &at)?;
    }
    let inline = RawThresholds {
        trigger_conditions: raw.trigger_conditions,
        environments: raw.environments,
    };
    let thresholds = thresholds::read(raw.thresholds_file, inline, &at)?;
    let environment = cli_environment.map(str::to_owned).or(raw.environment);
    thresholds::resolve(&mut cfg, thresholds, environment, &at)?;
    if let Some(a) = raw.automation {
        cfg.automation = holds::automation(a, cfg.automation, &at)?;
    }
    if let Some(f) = raw.freezes {
        let kind = crate::domain::holds::WindowKind::Freeze;
        cfg.freezes = holds::windows(f, kind, cfg.freezes, cfg.agents_expected, &at)?;
    }
    if let Some(m) = raw.maintenance {
        let kind = crate::domain::holds::WindowKind::Maintenance;
        cfg.maintenance = holds::windows(m, kind, cfg.maintenance, cfg.agents_expected, &at)?;
    }
    if let Some(a) = raw.alertmanager {
        cfg.alertmanager = operations::alertmanager(a, cfg.alertmanager, &at)?;
    }
    if let Some(d) = raw.drills {
        cfg.drills = operations::drills(d, &at)?;
    }
    if let Some(n) = raw.notification_tests {
        cfg.notification_tests = operations::notification_tests(n, cfg.notification_tests, &at)?;
    }
    if let Some(r) = raw.regimes {
        holds::regimes(&r, &cfg.conditions, &at)?;
        cfg.regimes = r;
    }
    validate::validate(&cfg, &at)?;
    Ok(cfg)
}

impl Config {
    pub fn condition(&self, name: &str) -> Option<&ConditionSpec> {
        self.conditions.iter().find(|c| c.name == name)
    }

    /// This config with the regime `name` laid over its thresholds (checked at load, so only
    /// an unknown name fails).
    pub fn with_regime(&self, name: &str) -> Result<Config, String> {
        let overrides = self.regimes.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.regimes.keys().map(String::as_str).collect();
            if known.is_empty() {
                format!("unknown regime {name:?}; the config defines no regimes")
            } else {
                format!(
                    "unknown regime {name:?}; expected one of {}",
                    known.join(", ")
                )
            }
        })?;
        let mut out = self.clone();
        let file = self
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        apply_overlay(
            &mut out.conditions,
            OverlayOrigin::regime(&file, name),
            overrides,
        )
        .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// Writing and loading config files in a temporary directory, for the tests of every stage.
#[cfg(test)]
pub(crate) mod testing {
    use super::{load, Config, ConfigError};
    use std::io::Write;
    use std::path::{Path, PathBuf};

    pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    pub(crate) fn load_text(text: &str, env: Option<&str>) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "rollbackd.yaml", text);
        load(&p, env)
    }

    /// The key and the message of the mistake `yaml` is refused for.
    pub(crate) fn refused(yaml: &str) -> (String, String) {
        let e = load_text(yaml, None).expect_err(yaml);
        (e.key, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{load_text, write};
    use super::*;

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
            ("target: { url: \"ftp://x\" }\n", "target.url", "http:// or https://"),
            ("target: { url: \"https://x\", ca_file: nowhere.pem }\n", "target.ca_file", "cannot read"),
            ("target: { url: \"http://x\", ca_file: nowhere.pem }\n", "target.ca_file", "only for an https://"),
            ("web_config_file: nowhere.yml\n", "web_config_file", "cannot read the web config file"),
            ("limits: { max_connections: 0 }\n", "limits.max_connections", "at least 1"),
            ("limits: { header_read_timeout: 0s }\n", "limits.header_read_timeout", "greater than 0"),
            ("limits: { max_conections: 5 }\n", "limits.max_conections", "unknown field"),
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
    fn an_unreadable_file_is_named() {
        let e = load(Path::new("/nonexistent/rollbackd.yaml"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/rollbackd.yaml: (file): cannot read"),
            "{e}"
        );
    }
}
