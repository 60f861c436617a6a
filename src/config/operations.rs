//! The operating loop's settings: where Alertmanager is (every member of the pair), whether
//! rollbackd tells it directly, and how often drills and notification tests run on their own.

use super::error::Origin;
use super::raw::Dur;
use super::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// Alertmanager's API, for drills, notification tests and direct notices.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertmanagerConfig {
    /// Every member of the HA pair; empty: rollbackd never posts to Alertmanager.
    pub urls: Vec<String>,
    pub timeout: Duration,
    /// Post an alert at once when a rollback executes, fails or is held by a freeze.
    pub direct_notify: bool,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            urls: vec![],
            timeout: Duration::from_secs(2),
            direct_notify: true,
        }
    }
}

/// Drills: by hand, and every `every` when set.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DrillConfig {
    pub every: Option<Duration>,
}

/// Notification tests: which integrations must confirm delivery, and how long to wait.
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationTestConfig {
    pub every: Option<Duration>,
    pub wait: Duration,
    pub channels: Vec<String>,
}

impl Default for NotificationTestConfig {
    fn default() -> Self {
        NotificationTestConfig {
            every: None,
            wait: Duration::from_secs(60),
            channels: ["email", "slack", "sns"].map(String::from).to_vec(),
        }
    }
}

/// The integrations Alertmanager counts notifications by.
pub const CHANNELS: [&str; 9] = [
    "email",
    "slack",
    "sns",
    "webhook",
    "pagerduty",
    "opsgenie",
    "pushover",
    "telegram",
    "msteams",
];

/// What is wrong with a list of channels to test, by position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChannelProblem {
    /// No channel: a test of none would pass having proved nothing.
    Empty,
    /// Not an integration Alertmanager counts by.
    Unknown(usize),
    /// Named before: it could never be judged twice.
    Twice(usize),
}

/// The first problem of `channels`, if any (the config and the API judge a list alike).
pub fn channel_problem(channels: &[String]) -> Option<ChannelProblem> {
    if channels.is_empty() {
        return Some(ChannelProblem::Empty);
    }
    channels.iter().enumerate().find_map(|(i, c)| {
        if !CHANNELS.contains(&c.as_str()) {
            Some(ChannelProblem::Unknown(i))
        } else if channels[..i].contains(c) {
            Some(ChannelProblem::Twice(i))
        } else {
            None
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertmanager {
    #[serde(default)]
    urls: Vec<String>,
    timeout: Option<Dur>,
    direct_notify: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDrills {
    every: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotificationTests {
    every: Option<Dur>,
    wait: Option<Dur>,
    channels: Option<Vec<String>>,
}

pub(super) fn alertmanager(
    raw: RawAlertmanager,
    mut out: AlertmanagerConfig,
    at: &Origin,
) -> Result<AlertmanagerConfig, ConfigError> {
    for (i, u) in raw.urls.iter().enumerate() {
        let ok = ["http://", "https://"]
            .iter()
            .any(|s| u.starts_with(s) && u.len() > s.len());
        if !ok {
            return Err(at.err(
                format!("alertmanager.urls[{i}]"),
                format!(
                    "{u:?} is not an http:// or https:// URL (e.g. http://alertmanager-0:9093)"
                ),
            ));
        }
    }
    out.urls = raw.urls;
    if let Some(Dur(d)) = raw.timeout {
        if d < Duration::from_millis(100) || d > Duration::from_secs(60) {
            return Err(at.err("alertmanager.timeout", "expected 100ms to 60s"));
        }
        out.timeout = d;
    }
    if let Some(b) = raw.direct_notify {
        out.direct_notify = b;
    }
    Ok(out)
}

fn every(key: &str, d: Option<Dur>, at: &Origin) -> Result<Option<Duration>, ConfigError> {
    match d {
        Some(Dur(d)) if d < Duration::from_secs(3600) => Err(at.err(
            key,
            format!(
                "{} is too often; expected at least 1h",
                humantime::format_duration(d)
            ),
        )),
        d => Ok(d.map(|Dur(d)| d)),
    }
}

pub(super) fn drills(raw: RawDrills, at: &Origin) -> Result<DrillConfig, ConfigError> {
    Ok(DrillConfig {
        every: every("drills.every", raw.every, at)?,
    })
}

pub(super) fn notification_tests(
    raw: RawNotificationTests,
    mut out: NotificationTestConfig,
    at: &Origin,
) -> Result<NotificationTestConfig, ConfigError> {
    out.every = every("notification_tests.every", raw.every, at)?;
    if let Some(Dur(d)) = raw.wait {
        if d < Duration::from_secs(1) || d > Duration::from_secs(600) {
            return Err(at.err("notification_tests.wait", "expected 1s to 10m"));
        }
        out.wait = d;
    }
    if let Some(c) = raw.channels {
        // A channel listed twice in the config is tested once; a mistake is named at its
        // place in the file.
        let (mut once, mut place) = (Vec::new(), Vec::new());
        for (i, ch) in c.into_iter().enumerate() {
            if !once.contains(&ch) {
                once.push(ch);
                place.push(i);
            }
        }
        match channel_problem(&once) {
            None | Some(ChannelProblem::Twice(_)) => {}
            Some(ChannelProblem::Empty) => {
                return Err(at.err("notification_tests.channels", "name at least one channel"))
            }
            Some(ChannelProblem::Unknown(j)) => {
                return Err(at.err(
                    format!("notification_tests.channels[{}]", place[j]),
                    format!(
                        "unknown channel {:?}; expected one of {}",
                        once[j],
                        CHANNELS.join(", ")
                    ),
                ))
            }
        }
        out.channels = once;
    }
    Ok(out)
}
