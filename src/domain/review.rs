//! Was each trigger right? The rules of reviews and missed degradations, and the success rates
//! read from them: what counts, each formula, and "no data" wherever a denominator is zero.
//!
//! A trigger episode is a rollback request that reached a final status: executed (`completed`
//! or `failed`), `suppressed`, or a `dry_run`. An operator reviews it as a `true_positive`, a
//! `false_positive` or a `drill`; the latest review of an episode is the one that counts. A
//! degradation nothing caught is recorded on its own as a missed degradation.
//!
//! The rates (docs/metrics.md has the same formulas in words):
//! - false positive rate = false positives / (true positives + false positives), over reviewed
//!   episodes, drills left out;
//! - true positive rate = true positives / (true positives + missed degradations);
//! - recovery validation success = executed rollbacks that completed / executed rollbacks that
//!   finished (drills included: their switch and validation really ran);
//! - documentation compliance = executed rollbacks reviewed / executed rollbacks;
//! - incident response time = from the first alert or trigger to the action (the switch), and
//!   recovery time = from the action to the validated switch, over executed rollbacks that are
//!   not drills.

use super::lifecycle::{Action, EventStatus};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest note accepted on a review or a missed degradation, in characters.
pub const MAX_NOTE: usize = 2000;
/// The longest ticket URL accepted, in characters.
pub const MAX_TICKET_URL: usize = 500;

/// An operator's judgement of one trigger episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A real degradation: acting was right.
    TruePositive,
    /// No real degradation: the trigger was wrong.
    FalsePositive,
    /// A planned test: left out of the false and true positive rates.
    Drill,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [
        Verdict::TruePositive,
        Verdict::FalsePositive,
        Verdict::Drill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::TruePositive => "true_positive",
            Verdict::FalsePositive => "false_positive",
            Verdict::Drill => "drill",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// `true_positive, false_positive, drill`, for messages.
    pub fn allowed() -> String {
        Verdict::ALL.map(Verdict::as_str).join(", ")
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of trigger episode an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeKind {
    /// The target was switched: the event ended `completed` or `failed`.
    Executed,
    Suppressed,
    DryRun,
}

/// Why an event cannot be reviewed (yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotReviewable {
    #[error("a restore is a deliberate human action, not a trigger; only rollbacks are reviewed")]
    Restore,
    #[error("the rollback is still {0}; review it once it has finished")]
    InFlight(EventStatus),
}

impl EpisodeKind {
    /// The final statuses of a reviewable episode, for queries that must agree with `of`.
    pub const STATUSES: [EventStatus; 4] = [
        EventStatus::Completed,
        EventStatus::Failed,
        EventStatus::Suppressed,
        EventStatus::DryRun,
    ];

    /// The episode a rollback event is, once it has a final status.
    pub fn of(action: Action, status: EventStatus) -> Result<EpisodeKind, NotReviewable> {
        if action == Action::Restore {
            return Err(NotReviewable::Restore);
        }
        match status {
            EventStatus::Completed | EventStatus::Failed => Ok(EpisodeKind::Executed),
            EventStatus::Suppressed => Ok(EpisodeKind::Suppressed),
            EventStatus::DryRun => Ok(EpisodeKind::DryRun),
            EventStatus::Pending | EventStatus::Executing | EventStatus::Validating => {
                Err(NotReviewable::InFlight(status))
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeKind::Executed => "executed",
            EpisodeKind::Suppressed => "suppressed",
            EpisodeKind::DryRun => "dry_run",
        }
    }
}

/// Input refused, each message starting with the field it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("verdict {0:?} is not allowed; expected one of {allowed}", allowed = Verdict::allowed())]
    UnknownVerdict(String),
    #[error(
        "note is required for a false_positive verdict: say why there was no real degradation"
    )]
    NoteRequiredForFalsePositive,
    #[error("note is required: say what degraded and how it was noticed")]
    NoteRequired,
    #[error("note is {0} characters; at most {MAX_NOTE}")]
    NoteTooLong(usize),
    #[error("ticket_url {0:?} must be an http:// or https:// URL without spaces")]
    BadTicketUrl(String),
    #[error("ticket_url is {0} characters; at most {MAX_TICKET_URL}")]
    TicketUrlTooLong(usize),
    #[error("from {from} is not before to {to}: the range is reversed or empty")]
    ReversedRange { from: String, to: String },
    #[error("to {to} is in the future (now {now}): record a degradation once it has happened")]
    FutureRange { to: String, now: String },
    #[error("conditions must name at least one condition; expected some of {0}")]
    NoConditions(String),
    #[error("conditions: {name:?} is not a configured condition; expected one of {known}")]
    UnknownCondition { name: String, known: String },
    #[error("conditions: {0:?} is listed twice")]
    DuplicateCondition(String),
}

/// A review as asked for, checked: the verdict known, the note there when it must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewDraft {
    pub verdict: Verdict,
    pub note: Option<String>,
    pub ticket_url: Option<String>,
}

/// A note trimmed, `None` when blank, refused when too long.
fn note_of(note: Option<&str>) -> Result<Option<String>, InputError> {
    let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let len = n.chars().count();
    if len > MAX_NOTE {
        return Err(InputError::NoteTooLong(len));
    }
    Ok(Some(n.to_owned()))
}

fn ticket_of(url: Option<&str>) -> Result<Option<String>, InputError> {
    let Some(u) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let len = u.chars().count();
    if len > MAX_TICKET_URL {
        return Err(InputError::TicketUrlTooLong(len));
    }
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    let host_ok = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
    if !host_ok || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InputError::BadTicketUrl(u.to_owned()));
    }
    Ok(Some(u.to_owned()))
}

impl ReviewDraft {
    pub fn new(
        verdict: &str,
        note: Option<&str>,
        ticket_url: Option<&str>,
    ) -> Result<ReviewDraft, InputError> {
        let verdict = Verdict::parse(verdict.trim())
            .ok_or_else(|| InputError::UnknownVerdict(verdict.to_owned()))?;
        let note = note_of(note)?;
        if verdict == Verdict::FalsePositive && note.is_none() {
            return Err(InputError::NoteRequiredForFalsePositive);
        }
        Ok(ReviewDraft {
            verdict,
            note,
            ticket_url: ticket_of(ticket_url)?,
        })
    }
}

/// A degradation nothing caught, as asked for, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissedDraft {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub conditions: Vec<String>,
    pub note: String,
}

impl MissedDraft {
    /// `known` are the configured conditions; `now` bounds the range.
    pub fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        conditions: &[String],
        note: &str,
        known: &[&str],
        now: DateTime<Utc>,
    ) -> Result<MissedDraft, InputError> {
        if from >= to {
            return Err(InputError::ReversedRange {
                from: from.to_rfc3339(),
                to: to.to_rfc3339(),
            });
        }
        if to > now {
            return Err(InputError::FutureRange {
                to: to.to_rfc3339(),
                now: now.to_rfc3339(),
            });
        }
        let known_list = known.join(", ");
        if conditions.is_empty() {
            return Err(InputError::NoConditions(known_list));
        }
        let mut seen: Vec<String> = Vec::with_capacity(conditions.len());
        for c in conditions {
            let name = c.trim();
            if !known.contains(&name) {
                return Err(InputError::UnknownCondition {
                    name: c.clone(),
                    known: known_list,
                });
            }
            if seen.iter().any(|s| s == name) {
                return Err(InputError::DuplicateCondition(name.to_owned()));
            }
            seen.push(name.to_owned());
        }
        let note = note_of(Some(note))?.ok_or(InputError::NoteRequired)?;
        Ok(MissedDraft {
            from,
            to,
            conditions: seen,
            note,
        })
    }
}

// ---- the rates ----------------------------------------------------------------------------

/// A window the rates are computed over, ending now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    Week,
    Month,
}

impl Window {
    pub const ALL: [Window; 2] = [Window::Week, Window::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Week => "7d",
            Window::Month => "30d",
        }
    }

    pub fn length(self) -> Duration {
        match self {
            Window::Week => Duration::days(7),
            Window::Month => Duration::days(30),
        }
    }
}

/// What the rates need to know of one trigger episode.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// When the trigger was recorded: which window it falls in.
    pub at: DateTime<Utc>,
    pub kind: EpisodeKind,
    /// The verdict of the latest review; `None` while unreviewed.
    pub verdict: Option<Verdict>,
    /// The first alert that asked for it, or the trigger itself: the clock of the response.
    pub detected_at: DateTime<Utc>,
    /// When the switch began (`executing`).
    pub acted_at: Option<DateTime<Utc>>,
    /// When the switch was validated (`completed`); `None` when it failed.
    pub validated_at: Option<DateTime<Utc>>,
    /// Whether an executed rollback's recovery validated; `None` for other kinds.
    pub validated: Option<bool>,
    /// The rollback's execution time, decision to validated switch.
    pub execution_ms: Option<u64>,
}

impl Episode {
    /// An executed rollback that is not known to be a drill: an incident.
    pub fn is_incident(&self) -> bool {
        self.kind == EpisodeKind::Executed && self.verdict != Some(Verdict::Drill)
    }

    /// From the first alert or trigger to the action, for incidents.
    pub fn response_seconds(&self) -> Option<f64> {
        let acted = self.acted_at.filter(|_| self.is_incident())?;
        Some(seconds_between(self.detected_at, acted))
    }

    /// From the action to the validated switch, for incidents that recovered.
    pub fn recovery_seconds(&self) -> Option<f64> {
        let acted = self.acted_at.filter(|_| self.is_incident())?;
        Some(seconds_between(acted, self.validated_at?))
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds().max(0)) as f64 / 1000.0
}

/// A share: `hits` of `total`. No total is no data, never 0 % or 100 %.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ratio {
    pub hits: u64,
    pub total: u64,
}

impl Ratio {
    pub fn value(self) -> Option<f64> {
        (self.total > 0).then(|| self.hits as f64 / self.total as f64)
    }

    fn count(&mut self, hit: bool) {
        self.total += 1;
        self.hits += hit as u64;
    }
}

/// Durations in seconds: how many, the median (nearest rank) and the longest; no samples,
/// no data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Durations {
    pub count: u64,
    pub median: Option<f64>,
    pub max: Option<f64>,
}

impl Durations {
    pub fn of(mut samples: Vec<f64>) -> Durations {
        samples.retain(|s| s.is_finite());
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        Durations {
            count: n as u64,
            // Nearest rank: the ceil(n/2)-th smallest.
            median: (n > 0).then(|| samples[n.div_ceil(2) - 1]),
            max: samples.last().copied(),
        }
    }
}

/// Episodes by their latest verdict, unreviewed ones apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerdictCounts {
    pub true_positive: u64,
    pub false_positive: u64,
    pub drill: u64,
    pub unreviewed: u64,
}

impl VerdictCounts {
    /// The count for a verdict, `None` standing for unreviewed.
    pub fn get(&self, verdict: Option<Verdict>) -> u64 {
        match verdict {
            Some(Verdict::TruePositive) => self.true_positive,
            Some(Verdict::FalsePositive) => self.false_positive,
            Some(Verdict::Drill) => self.drill,
            None => self.unreviewed,
        }
    }

    fn add(&mut self, verdict: Option<Verdict>) {
        let slot = match verdict {
            Some(Verdict::TruePositive) => &mut self.true_positive,
            Some(Verdict::FalsePositive) => &mut self.false_positive,
            Some(Verdict::Drill) => &mut self.drill,
            None => &mut self.unreviewed,
        };
        *slot += 1;
    }
}

/// Everything the success metrics are read from, for one period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rates {
    pub false_positive: Ratio,
    pub true_positive: Ratio,
    pub validation_success: Ratio,
    pub documentation: Ratio,
    /// Executed rollbacks without a review.
    pub unreviewed_executed: u64,
    /// Every episode (any kind) by its latest verdict.
    pub verdicts: VerdictCounts,
    pub missed: u64,
    pub response: Durations,
    pub recovery: Durations,
    pub execution: Durations,
}

/// The rates over `[from, to)`: episodes by when they were recorded, missed degradations by
/// when they began.
pub fn rates(
    episodes: &[Episode],
    missed_starts: &[DateTime<Utc>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Rates {
    let within = |t: &DateTime<Utc>| *t >= from && *t < to;
    let mut r = Rates {
        missed: missed_starts.iter().filter(|t| within(t)).count() as u64,
        ..Rates::default()
    };
    let (mut response, mut recovery, mut execution) = (Vec::new(), Vec::new(), Vec::new());
    for e in episodes.iter().filter(|e| within(&e.at)) {
        r.verdicts.add(e.verdict);
        match e.verdict {
            Some(Verdict::TruePositive) => r.false_positive.count(false),
            Some(Verdict::FalsePositive) => r.false_positive.count(true),
            Some(Verdict::Drill) | None => {}
        }
        if e.kind == EpisodeKind::Executed {
            r.documentation.count(e.verdict.is_some());
            if let Some(ok) = e.validated {
                r.validation_success.count(ok);
            }
            execution.extend(e.execution_ms.map(|ms| ms as f64 / 1000.0));
        }
        response.extend(e.response_seconds());
        recovery.extend(e.recovery_seconds());
    }
    r.true_positive = Ratio {
        hits: r.verdicts.true_positive,
        total: r.verdicts.true_positive + r.missed,
    };
    r.unreviewed_executed = r.documentation.total - r.documentation.hits;
    r.response = Durations::of(response);
    r.recovery = Durations::of(recovery);
    r.execution = Durations::of(execution);
    r
}

// ---- the seed's success metrics -------------------------------------------------------------

/// How a value must compare with a bound to meet it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Below,
    Above,
    AtLeast,
}

impl Comparison {
    pub fn met(self, value: f64, bound: f64) -> bool {
        match self {
            Comparison::Below => value < bound,
            Comparison::Above => value > bound,
            Comparison::AtLeast => value >= bound,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Below => "<",
            Comparison::Above => ">",
            Comparison::AtLeast => ">=",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Ratio,
    Seconds,
}

/// What a success metric measures, read from `Rates`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    RollbackExecutionTime,
    RecoveryValidationSuccess,
    FalsePositiveRate,
    TruePositiveRate,
    IncidentResponseTime,
    RecoveryTime,
    DocumentationCompliance,
}

impl Measure {
    pub fn value(self, r: &Rates) -> Option<f64> {
        match self {
            Measure::RollbackExecutionTime => r.execution.max,
            Measure::RecoveryValidationSuccess => r.validation_success.value(),
            Measure::FalsePositiveRate => r.false_positive.value(),
            Measure::TruePositiveRate => r.true_positive.value(),
            Measure::IncidentResponseTime => r.response.max,
            Measure::RecoveryTime => r.recovery.max,
            Measure::DocumentationCompliance => r.documentation.value(),
        }
    }
}

/// One of the seed's success metrics: its limit and, where the seed gives one, its target.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Criterion {
    #[serde(rename = "metric")]
    pub measure: Measure,
    pub title: &'static str,
    pub unit: Unit,
    pub comparison: Comparison,
    pub limit: f64,
    pub target: Option<f64>,
}

/// The seed's success metrics rollbackd can measure from its own history, in the seed's order.
pub const CRITERIA: [Criterion; 7] = [
    Criterion {
        measure: Measure::RollbackExecutionTime,
        title: "Rollback execution time (longest)",
        unit: Unit::Seconds,
        comparison: Comparison::Below,
        limit: 30.0,
        target: Some(10.0),
    },
    Criterion {
        measure: Measure::RecoveryValidationSuccess,
        title: "Recovery validation success",
        unit: Unit::Ratio,
        comparison: Comparison::Above,
        limit: 0.90,
        target: Some(0.95),
    },
    Criterion {
        measure: Measure::FalsePositiveRate,
        title: "False positive rate",
        unit: Unit::Ratio,
        comparison: Comparison::Below,
        limit: 0.05,
        target: Some(0.02),
    },
    Criterion {
        measure: Measure::TruePositiveRate,
        title: "True positive rate",
        unit: Unit::Ratio,
        comparison: Comparison::Above,
        limit: 0.95,
        target: None,
    },
    Criterion {
        measure: Measure::IncidentResponseTime,
        title: "Incident response time (longest)",
        unit: Unit::Seconds,
        comparison: Comparison::Below,
        limit: 120.0,
        target: None,
    },
    Criterion {
        measure: Measure::RecoveryTime,
        title: "Recovery time (longest)",
        unit: Unit::Seconds,
        comparison: Comparison::Below,
        limit: 300.0,
        target: None,
    },
    Criterion {
        measure: Measure::DocumentationCompliance,
        title: "Documentation compliance",
        unit: Unit::Ratio,
        comparison: Comparison::AtLeast,
        limit: 1.0,
        target: None,
    },
];

/// A criterion measured over a period: the value (`None`: no data) and whether it meets the
/// limit and the target (`None`: no data, or no target).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Judged {
    pub criterion: Criterion,
    pub value: Option<f64>,
    pub limit_met: Option<bool>,
    pub target_met: Option<bool>,
}

impl Criterion {
    pub fn judge(self, r: &Rates) -> Judged {
        let value = self.measure.value(r);
        Judged {
            criterion: self,
            value,
            limit_met: value.map(|v| self.comparison.met(v, self.limit)),
            target_met: value
                .zip(self.target)
                .map(|(v, t)| self.comparison.met(v, t)),
        }
    }
}

/// Every criterion judged against `r`.
pub fn judge_all(r: &Rates) -> Vec<Judged> {
    CRITERIA.iter().map(|c| c.judge(r)).collect()
}

#[cfg(test)]
mod tests;
