//! Holds: what adjusts the guard for a while. A freeze (news events) stops automatic triggers
//! from executing; a maintenance window lowers the healthy-agent count that validation and the
//! agent alert expect; a regime lays a named threshold preset over the environment's. Each is
//! scheduled in the config or started by an operator, and always ends: an ad hoc one carries
//! its expiry, a scheduled one its end or its duration.
//!
//! Pure: the caller passes the time in and records what [`Holds::tick`] reports.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The kinds of time window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    Freeze,
    Maintenance,
}

impl WindowKind {
    pub const ALL: [WindowKind; 2] = [WindowKind::Freeze, WindowKind::Maintenance];

    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Freeze => "freeze",
            WindowKind::Maintenance => "maintenance",
        }
    }
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One window in force (or planned): its name, when it holds, and who asked for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub kind: WindowKind,
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `config` for a scheduled window, else the operator who started it.
    pub actor: String,
    pub reason: String,
    /// Maintenance only: the healthy agents expected while it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_healthy_agents: Option<u32>,
}

impl Window {
    pub fn holds_at(&self, now: DateTime<Utc>) -> bool {
        self.start <= now && now < self.end
    }

    pub fn is_scheduled(&self) -> bool {
        self.actor == SCHEDULED_BY
    }
}

/// The actor of a window that comes from the config.
pub const SCHEDULED_BY: &str = "config";

/// A regime in force: a named threshold preset, until it is cleared or expires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regime {
    pub name: String,
    pub since: DateTime<Utc>,
    /// `None`: until cleared.
    pub until: Option<DateTime<Utc>>,
    pub actor: String,
    pub reason: String,
}

/// A cron expression (five fields, UTC), checked when the config is read.
#[derive(Clone, Debug)]
pub struct CronExpr {
    text: String,
    cron: croner::Cron,
}

impl CronExpr {
    pub fn parse(text: &str) -> Result<CronExpr, String> {
        let cron = croner::Cron::from_str(text.trim()).map_err(|e| {
            format!("invalid cron expression {text:?} ({e}); expected five fields such as \"30 21 * * FRI\" (minute hour day-of-month month day-of-week, UTC)")
        })?;
        Ok(CronExpr {
            text: text.trim().to_owned(),
            cron,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first occurrence strictly after `t` (whole seconds: the fraction is dropped first,
    /// as occurrences fall on whole minutes).
    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        use chrono::Timelike;
        let t = t.with_nanosecond(0).unwrap_or(t);
        self.cron.find_next_occurrence(&t, false).ok()
    }
}

/// When a scheduled window holds.
// A parsed cron expression is large, but there are only a few scheduled windows, read once
// from the config: boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum When {
    Once {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    Every {
        cron: CronExpr,
        duration: Duration,
    },
}

/// A window written in the config.
#[derive(Clone, Debug)]
pub struct Scheduled {
    pub kind: WindowKind,
    pub name: String,
    pub when: When,
    pub expected_healthy_agents: Option<u32>,
}

impl Scheduled {
    /// The occurrence that holds at `now`, if any.
    pub fn occurrence_at(&self, now: DateTime<Utc>) -> Option<Window> {
        let (start, end) = match &self.when {
            When::Once { start, end } => (*start, *end),
            When::Every { cron, duration } => {
                // The latest start at or before `now` is the first one after `now - duration`
                // (exclusive); it holds if it is not later than `now`.
                let start = cron.next_after(now - *duration)?;
                (start, start + *duration)
            }
        };
        let w = Window {
            kind: self.kind,
            name: self.name.clone(),
            start,
            end,
            actor: SCHEDULED_BY.into(),
            reason: format!("scheduled {} window {}", self.kind, self.name),
            expected_healthy_agents: self.expected_healthy_agents,
        };
        w.holds_at(now).then_some(w)
    }

    /// The next start after `now` (for the status page).
    pub fn next_start(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Once { start, .. } => (*start > now).then_some(*start),
            When::Every { cron, .. } => cron.next_after(now),
        }
    }
}

/// What changed at a tick, for the history and the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A window began to hold (a scheduled one reached its start).
    Started(Window),
    /// A window reached its end.
    Ended(Window),
    /// A regime reached its expiry.
    RegimeExpired(Regime),
}

/// The windows and the regime, ad hoc and scheduled, and what was last seen in force.
#[derive(Clone, Debug, Default)]
pub struct Holds {
    pub scheduled: Vec<Scheduled>,
    /// At most one ad hoc window per kind; a new one replaces the old.
    adhoc: Vec<Window>,
    regime: Option<Regime>,
    /// What `tick` last reported in force, per kind.
    seen: Vec<Window>,
}

impl Holds {
    pub fn new(scheduled: Vec<Scheduled>) -> Holds {
        Holds {
            scheduled,
            ..Holds::default()
        }
    }

    /// The window of `kind` holding at `now`: an ad hoc one first (an operator's word wins),
    /// else the scheduled one that ends last.
    pub fn active(&self, kind: WindowKind, now: DateTime<Utc>) -> Option<Window> {
        if let Some(w) = self
            .adhoc
            .iter()
            .find(|w| w.kind == kind && w.holds_at(now))
        {
            return Some(w.clone());
        }
        self.scheduled
            .iter()
            .filter(|s| s.kind == kind)
            .filter_map(|s| s.occurrence_at(now))
            .max_by_key(|w| w.end)
    }

    pub fn regime(&self, now: DateTime<Utc>) -> Option<&Regime> {
        self.regime
            .as_ref()
            .filter(|r| r.until.is_none_or(|u| now < u))
    }

    /// The ad hoc window of `kind`, whether or not it holds yet.
    pub fn adhoc(&self, kind: WindowKind) -> Option<&Window> {
        self.adhoc.iter().find(|w| w.kind == kind)
    }

    /// Starts (or replaces) the ad hoc window of its kind.
    pub fn start(&mut self, w: Window) {
        self.adhoc.retain(|x| x.kind != w.kind);
        self.adhoc.push(w);
    }

    /// Ends the ad hoc window of `kind` now; what it was.
    pub fn end(&mut self, kind: WindowKind) -> Option<Window> {
        let i = self.adhoc.iter().position(|w| w.kind == kind)?;
        Some(self.adhoc.remove(i))
    }

    pub fn set_regime(&mut self, r: Option<Regime>) -> Option<Regime> {
        std::mem::replace(&mut self.regime, r)
    }

    /// Drops what expired by `now` and says what started and ended since the last tick; the
    /// first tick after start reports every window already in force as started.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Change> {
        let mut changes = Vec::new();
        if let Some(r) = self.regime.clone() {
            if r.until.is_some_and(|u| now >= u) {
                self.regime = None;
                changes.push(Change::RegimeExpired(r));
            }
        }
        for kind in WindowKind::ALL {
            let now_active = self.active(kind, now);
            let before = self.seen.iter().position(|w| w.kind == kind);
            let same = match (before.map(|i| &self.seen[i]), &now_active) {
                (Some(a), Some(b)) => a.name == b.name && a.start == b.start && a.end == b.end,
                (None, None) => true,
                _ => false,
            };
            if !same {
                if let Some(i) = before {
                    let old = self.seen.remove(i);
                    if old.end <= now {
                        changes.push(Change::Ended(old));
                    }
                }
                if let Some(w) = now_active.clone() {
                    self.seen.push(w.clone());
                    // An ad hoc window is recorded when it is asked for, not here.
                    if w.is_scheduled() {
                        changes.push(Change::Started(w));
                    }
                }
            }
        }
        self.adhoc.retain(|w| w.end > now);
        changes
    }

    /// Marks `w` as seen in force (an ad hoc start or a restored one), so `tick` reports its end.
    pub fn mark_seen(&mut self, w: &Window) {
        self.seen.retain(|x| x.kind != w.kind);
        self.seen.push(w.clone());
    }

    /// Forgets what was seen of `kind` (an ad hoc window ended by hand is recorded then).
    pub fn forget_seen(&mut self, kind: WindowKind) {
        self.seen.retain(|x| x.kind != kind);
    }
}

/// How automatic triggers are carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AutomationMode {
    /// Execute at once.
    #[default]
    Auto,
    /// Propose; an operator approves or rejects, else the timeout decides.
    Confirm,
    /// Record what would have been done; never act.
    Observe,
}

impl AutomationMode {
    pub const ALL: [AutomationMode; 3] = [
        AutomationMode::Auto,
        AutomationMode::Confirm,
        AutomationMode::Observe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AutomationMode::Auto => "auto",
            AutomationMode::Confirm => "confirm",
            AutomationMode::Observe => "observe",
        }
    }

    pub fn parse(s: &str) -> Option<AutomationMode> {
        AutomationMode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for AutomationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an unanswered proposal does when its time is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// Execute: a kill switch fails safe.
    #[default]
    Proceed,
    /// Drop it, recorded as suppressed.
    Lapse,
}

impl OnTimeout {
    pub fn parse(s: &str) -> Option<OnTimeout> {
        match s {
            "proceed" => Some(OnTimeout::Proceed),
            "lapse" => Some(OnTimeout::Lapse),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Proceed => "proceed",
            OnTimeout::Lapse => "lapse",
        }
    }
}

/// Checks an ad hoc request: a reason, a positive duration no longer than `max`.
pub fn check_request(
    reason: &str,
    duration: Option<std::time::Duration>,
    max: std::time::Duration,
) -> Result<std::time::Duration, String> {
    if reason.trim().is_empty() {
        return Err("reason: a reason is required".into());
    }
    let d = duration.ok_or("duration: an expiry is required (for example \"45m\")")?;
    if d.is_zero() {
        return Err("duration: must be longer than 0s".into());
    }
    if d > max {
        return Err(format!(
            "duration: {} is longer than the maximum {}",
            humantime::format_duration(d),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // 2026-11-27 is a Friday.
        Utc.with_ymd_and_hms(2026, 11, 27, h, m, 0).unwrap()
    }

    fn weekly() -> Scheduled {
        Scheduled {
            kind: WindowKind::Freeze,
            name: "release".into(),
            when: When::Every {
                cron: CronExpr::parse("30 21 * * FRI").unwrap(),
                duration: Duration::minutes(30),
            },
            expected_healthy_agents: None,
        }
    }

    fn adhoc(kind: WindowKind, start: DateTime<Utc>, minutes: i64) -> Window {
        Window {
            kind,
            name: "cpi".into(),
            start,
            end: start + Duration::minutes(minutes),
            actor: "alice".into(),
            reason: "CPI release".into(),
            expected_healthy_agents: None,
        }
    }

    #[test]
    fn a_recurring_window_holds_from_its_start_until_its_duration_is_over() {
        let s = weekly();
        assert!(s.occurrence_at(at(21, 29)).is_none());
        let w = s.occurrence_at(at(21, 30)).expect("holds at its start");
        assert_eq!((w.start, w.end), (at(21, 30), at(22, 0)));
        assert!(s.occurrence_at(at(21, 59)).is_some());
        assert!(s.occurrence_at(at(22, 0)).is_none(), "the end is exclusive");
        assert_eq!(
            s.next_start(at(22, 0)),
            Some(at(21, 30) + Duration::days(7))
        );
    }

    #[test]
    fn a_malformed_cron_is_refused_with_what_was_expected() {
        for bad in ["", "61 * * * *", "* * *", "every friday"] {
            let e = CronExpr::parse(bad).unwrap_err();
            assert!(e.contains("five fields"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn an_operators_window_wins_and_tick_reports_scheduled_starts_and_every_end() {
        let mut h = Holds::new(vec![weekly()]);
        assert!(h.tick(at(21, 0)).is_empty());
        let changes = h.tick(at(21, 30));
        assert!(matches!(&changes[..], [Change::Started(w)] if w.name == "release"));
        assert!(h.tick(at(21, 31)).is_empty(), "reported once");
        let ends = h.tick(at(22, 0));
        assert!(matches!(&ends[..], [Change::Ended(w)] if w.name == "release"));

        let w = adhoc(WindowKind::Freeze, at(22, 10), 45);
        h.start(w.clone());
        h.mark_seen(&w);
        assert_eq!(h.active(WindowKind::Freeze, at(22, 20)), Some(w.clone()));
        assert!(
            h.tick(at(22, 20)).is_empty(),
            "an ad hoc start is recorded when asked for"
        );
        let ends = h.tick(at(22, 55));
        assert_eq!(ends, vec![Change::Ended(w)]);
        assert!(
            h.adhoc(WindowKind::Freeze).is_none(),
            "an expired window is gone"
        );
    }

    #[test]
    fn a_regime_expires_once_and_until_cleared_means_no_expiry() {
        let mut h = Holds::default();
        let r = Regime {
            name: "high_volatility".into(),
            since: at(9, 0),
            until: Some(at(17, 0)),
            actor: "alice".into(),
            reason: "FOMC week".into(),
        };
        h.set_regime(Some(r.clone()));
        assert!(h.regime(at(16, 59)).is_some());
        assert!(h.regime(at(17, 0)).is_none());
        assert_eq!(h.tick(at(17, 0)), vec![Change::RegimeExpired(r.clone())]);
        assert!(h.tick(at(17, 1)).is_empty());
        h.set_regime(Some(Regime { until: None, ..r }));
        assert!(h.regime(at(23, 59)).is_some());
    }

    #[test]
    fn a_request_needs_a_reason_and_an_expiry_within_the_maximum() {
        let max = std::time::Duration::from_secs(4 * 3600);
        let m = |s| Some(std::time::Duration::from_secs(s));
        assert!(check_request("", m(60), max)
            .unwrap_err()
            .starts_with("reason"));
        assert!(check_request("CPI", None, max)
            .unwrap_err()
            .starts_with("duration"));
        assert!(check_request("CPI", m(0), max)
            .unwrap_err()
            .starts_with("duration"));
        let e = check_request("CPI", m(4 * 3600 + 1), max).unwrap_err();
        assert!(e.contains("longer than the maximum 4h"), "{e}");
        assert_eq!(check_request("CPI", m(4 * 3600), max), Ok(max));
    }

    #[test]
    fn modes_and_timeouts_parse_their_names() {
        for m in AutomationMode::ALL {
            assert_eq!(AutomationMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(AutomationMode::parse("manual"), None);
        assert_eq!(OnTimeout::parse("lapse"), Some(OnTimeout::Lapse));
        assert_eq!(OnTimeout::parse("wait"), None);
    }
}
