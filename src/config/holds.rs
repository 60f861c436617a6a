//! The runtime adjustments written in the config: the automation mode, scheduled freeze and
//! maintenance windows, and the named threshold presets (`regimes`). Each is checked here, so a
//! window that could never hold, or a preset that would make a threshold critical for every
//! value, is refused at start and by `check-config`, naming its key.

use super::error::Origin;
use super::overlay::{apply_overlay, OverlayOrigin};
use super::raw::{Dur, Overrides};
use super::ConfigError;
use crate::domain::condition::ConditionSpec;
use crate::domain::holds::{AutomationMode, CronExpr, OnTimeout, Scheduled, When, WindowKind};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How automatic triggers are carried out, and who must agree to a restore.
#[derive(Clone, Debug, PartialEq)]
pub struct AutomationConfig {
    pub mode: AutomationMode,
    /// How long a proposal (confirm mode) waits for an operator.
    pub confirm_timeout: Duration,
    pub on_timeout: OnTimeout,
    /// A restore needs a second admin's approval (a different actor than the requester).
    pub restore_two_person: bool,
    /// How long a restore request waits for its second person.
    pub restore_approval_timeout: Duration,
}

impl Default for AutomationConfig {
    fn default() -> Self {
        AutomationConfig {
            mode: AutomationMode::Auto,
            confirm_timeout: Duration::from_secs(5 * 60),
            on_timeout: OnTimeout::Proceed,
            restore_two_person: false,
            restore_approval_timeout: Duration::from_secs(15 * 60),
        }
    }
}

/// One kind of window: the longest an ad hoc one may be, and the scheduled ones.
#[derive(Clone, Debug)]
pub struct WindowsConfig {
    pub max_duration: Duration,
    pub scheduled: Vec<Scheduled>,
}

impl WindowsConfig {
    pub fn freezes() -> WindowsConfig {
        WindowsConfig {
            max_duration: Duration::from_secs(4 * 3600),
            scheduled: vec![],
        }
    }

    pub fn maintenance() -> WindowsConfig {
        WindowsConfig {
            max_duration: Duration::from_secs(12 * 3600),
            scheduled: vec![],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAutomation {
    mode: Option<String>,
    confirm_timeout: Option<Dur>,
    on_timeout: Option<String>,
    restore_approval: Option<String>,
    restore_approval_timeout: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWindows {
    max_duration: Option<Dur>,
    #[serde(default)]
    windows: Vec<RawWindow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWindow {
    name: String,
    start: Option<String>,
    end: Option<String>,
    cron: Option<String>,
    duration: Option<Dur>,
    expected_healthy_agents: Option<u32>,
}

pub(super) fn automation(
    raw: RawAutomation,
    mut out: AutomationConfig,
    at: &Origin,
) -> Result<AutomationConfig, ConfigError> {
    if let Some(m) = raw.mode {
        out.mode = AutomationMode::parse(&m).ok_or_else(|| {
            at.err(
                "automation.mode",
                format!("unknown mode {m:?}; expected auto, confirm or observe"),
            )
        })?;
    }
    if let Some(t) = raw.on_timeout {
        out.on_timeout = OnTimeout::parse(&t).ok_or_else(|| {
            at.err(
                "automation.on_timeout",
                format!("unknown value {t:?}; expected proceed or lapse"),
            )
        })?;
    }
    if let Some(a) = raw.restore_approval {
        out.restore_two_person = match a.as_str() {
            "single" => false,
            "two_person" => true,
            _ => {
                return Err(at.err(
                    "automation.restore_approval",
                    format!("unknown value {a:?}; expected single or two_person"),
                ))
            }
        };
    }
    for (key, raw, slot) in [
        (
            "confirm_timeout",
            raw.confirm_timeout,
            &mut out.confirm_timeout,
        ),
        (
            "restore_approval_timeout",
            raw.restore_approval_timeout,
            &mut out.restore_approval_timeout,
        ),
    ] {
        if let Some(Dur(d)) = raw {
            if d < Duration::from_secs(1) || d > Duration::from_secs(24 * 3600) {
                return Err(at.err(
                    format!("automation.{key}"),
                    format!(
                        "{} is out of range; expected 1s to 24h",
                        humantime::format_duration(d)
                    ),
                ));
            }
            *slot = d;
        }
    }
    Ok(out)
}

/// Checks the windows of one kind (`freezes` or `maintenance`); `agents` bounds a
/// maintenance window's expected healthy agents.
pub(super) fn windows(
    raw: RawWindows,
    kind: WindowKind,
    mut out: WindowsConfig,
    agents: u32,
    at: &Origin,
) -> Result<WindowsConfig, ConfigError> {
    let section = match kind {
        WindowKind::Freeze => "freezes",
        WindowKind::Maintenance => "maintenance",
    };
    if let Some(Dur(d)) = raw.max_duration {
        if d.is_zero() || d > Duration::from_secs(7 * 24 * 3600) {
            return Err(at.err(
                format!("{section}.max_duration"),
                format!(
                    "{} is out of range; expected more than 0s and at most 7d",
                    humantime::format_duration(d)
                ),
            ));
        }
        out.max_duration = d;
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, w) in raw.windows.into_iter().enumerate() {
        let key = |field: &str| format!("{section}.windows[{i}].{field}");
        if w.name.trim().is_empty() || !names.insert(w.name.clone()) {
            return Err(at.err(
                key("name"),
                format!(
                    "{:?} is empty or used twice; each window needs its own name",
                    w.name
                ),
            ));
        }
        let when = match (w.start, w.end, w.cron, w.duration) {
            (Some(s), Some(e), None, None) => {
                let start = timestamp(&s).map_err(|m| at.err(key("start"), m))?;
                let end = timestamp(&e).map_err(|m| at.err(key("end"), m))?;
                if end <= start {
                    return Err(at.err(key("end"), format!("{e} is not after start {s}")));
                }
                When::Once { start, end }
            }
            (None, None, Some(c), Some(Dur(d))) => {
                let cron = CronExpr::parse(&c).map_err(|m| at.err(key("cron"), m))?;
                if d.is_zero() || d > Duration::from_secs(7 * 24 * 3600) {
                    return Err(at.err(
                        key("duration"),
                        "expected more than 0s and at most 7d".to_string(),
                    ));
                }
                let duration = chrono::Duration::from_std(d).expect("at most 7d");
                When::Every { cron, duration }
            }
            _ => {
                return Err(at.err(
                    format!("{section}.windows[{i}]"),
                    "expected either start and end (UTC, RFC 3339) or cron and duration",
                ))
            }
        };
        // A scheduled window is bounded like an ad hoc one: a freeze that outlives its
        // maximum cannot exist, whichever way it was made.
        let (length, length_key) = match &when {
            When::Once { start, end } => (*end - *start, key("end")),
            When::Every { duration, .. } => (*duration, key("duration")),
        };
        let max = chrono::Duration::from_std(out.max_duration).expect("at most 7d");
        if length > max {
            return Err(at.err(
                length_key,
                format!(
                    "the window lasts {}, longer than {section}.max_duration ({})",
                    humantime::format_duration(length.to_std().unwrap_or_default()),
                    humantime::format_duration(out.max_duration)
                ),
            ));
        }
        let expected = match (kind, w.expected_healthy_agents) {
            (WindowKind::Maintenance, None) => {
                return Err(at.err(
                    key("expected_healthy_agents"),
                    "a maintenance window says how many healthy agents to expect",
                ))
            }
            (WindowKind::Maintenance, Some(n)) if n > agents => {
                return Err(at.err(
                    key("expected_healthy_agents"),
                    format!("{n} is more than agents.expected ({agents})"),
                ))
            }
            (WindowKind::Freeze, Some(_)) => {
                return Err(at.err(
                    key("expected_healthy_agents"),
                    "only a maintenance window changes the expected agents",
                ))
            }
            (_, n) => n,
        };
        out.scheduled.push(Scheduled {
            kind,
            name: w.name,
            when,
            expected_healthy_agents: expected,
        });
    }
    Ok(out)
}

fn timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("invalid time {s:?} ({e}); expected RFC 3339 such as 2026-12-10T18:55:00Z")
        })
}

/// Checks every regime on its own copy of the resolved conditions (the environment's), as
/// `serve` will apply it at runtime.
pub(super) fn regimes(
    regimes: &BTreeMap<String, Overrides>,
    conditions: &[ConditionSpec],
    at: &Origin,
) -> Result<(), ConfigError> {
    for (name, overrides) in regimes {
        let mut copy = conditions.to_vec();
        apply_overlay(&mut copy, OverlayOrigin::regime(&at.file, name), overrides)?;
        super::validate::conditions(&copy, &at.file, &format!(" (regime {name})"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{load_text, refused};

    #[test]
    fn a_bad_regime_is_refused_naming_its_key() {
        let (key, msg) =
            refused("regimes:\n  high_volatility: { max_drawdown.critical_threshold: 3.0 }\n");
        assert!(key.contains("max_drawdown"), "{key}: {msg}");
        assert!(msg.contains("(regime high_volatility)"), "{msg}");
        let (key, msg) = refused("regimes:\n  calm: { volume_spike.critical_threshold: 3.0 }\n");
        assert!(key.starts_with("regimes.calm"), "{key}: {msg}");
        let ok = load_text(
            "regimes:\n  high_volatility: { max_drawdown.critical_threshold: 6.5 }\n",
            None,
        )
        .unwrap();
        assert_eq!(ok.regimes.len(), 1);
    }

    #[test]
    fn windows_need_start_and_end_or_cron_and_duration() {
        let (key, msg) = refused("freezes:\n  windows:\n    - { name: fomc }\n");
        assert_eq!(key, "freezes.windows[0]", "{msg}");
        let (key, msg) = refused(
            "freezes:\n  windows:\n    - { name: rel, cron: \"61 * * * *\", duration: 30m }\n",
        );
        assert_eq!(key, "freezes.windows[0].cron", "{msg}");
        let (key, _) = refused("freezes:\n  windows:\n    - { name: x, start: \"2026-12-10T19:00:00Z\", end: \"2026-12-10T18:00:00Z\" }\n");
        assert_eq!(key, "freezes.windows[0].end");
        let (key, _) = refused("maintenance:\n  windows:\n    - { name: patch, cron: \"0 6 * * SUN\", duration: 2h }\n");
        assert_eq!(key, "maintenance.windows[0].expected_healthy_agents");
        let (key, _) = refused("maintenance:\n  windows:\n    - { name: patch, cron: \"0 6 * * SUN\", duration: 2h, expected_healthy_agents: 9 }\n");
        assert_eq!(key, "maintenance.windows[0].expected_healthy_agents");
        let (key, _) = refused("automation: { mode: yolo }\n");
        assert_eq!(key, "automation.mode");
        // Longer than the maximum (default 4h, or the one set): refused, naming the key.
        let (key, msg) = refused("freezes:\n  windows:\n    - { name: fomc, start: \"2026-12-10T18:00:00Z\", end: \"2026-12-10T22:00:01Z\" }\n");
        assert_eq!(key, "freezes.windows[0].end", "{msg}");
        assert!(msg.contains("freezes.max_duration (4h)"), "{msg}");
        let (key, msg) = refused("freezes:\n  max_duration: 1h\n  windows:\n    - { name: rel, cron: \"30 21 * * FRI\", duration: 90m }\n");
        assert_eq!(key, "freezes.windows[0].duration", "{msg}");
        let (key, _) = refused("maintenance:\n  windows:\n    - { name: patch, cron: \"0 6 * * SUN\", duration: 7d, expected_healthy_agents: 6 }\n");
        assert_eq!(key, "maintenance.windows[0].duration");
        load_text("freezes:\n  windows:\n    - { name: fomc, start: \"2026-12-10T18:00:00Z\", end: \"2026-12-10T22:00:00Z\" }\n", None).expect("exactly the maximum is allowed");
        let c = load_text("automation: { mode: confirm, on_timeout: lapse, restore_approval: two_person }\nfreezes:\n  max_duration: 2h\n  windows:\n    - { name: rel, cron: \"30 21 * * FRI\", duration: 30m }\n", None).unwrap();
        assert_eq!(c.freezes.scheduled.len(), 1);
        assert!(c.automation.restore_two_person);
        assert_eq!(c.freezes.max_duration.as_secs(), 7200);
    }
}
