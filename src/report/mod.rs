//! The incident report for the monthly and quarterly reviews: every trigger episode of a
//! period with its timeline, the missed degradations, then the period's success metrics beside
//! the seed's limit and target. Built from the history's records by pure functions; the JSON
//! shape is the API's (docs/api.md, "Report"), `render` writes it as Markdown or CSV.

pub mod render;

use crate::domain::lifecycle::{EventStatus, TriggerType};
use crate::domain::review::{
    self, Comparison, Criterion, Episode, EpisodeKind, Judged, Measure, Rates, Unit, VerdictCounts,
};
use crate::store::{ConditionSnapshot, Event, MissedDegradation, Review, ValidationKind};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Bumped only when a field changes meaning or goes away; new fields may be added.
pub const FORMAT_VERSION: u32 = 1;

/// The first alert that asked for a rollback, or the trigger itself: the latest `startsAt` of
/// each of the event's alerts not after its creation (`starts` holds fingerprint, startsAt).
pub fn detected_at(event: &Event, starts: &[(String, String)]) -> DateTime<Utc> {
    let created = event.created_at;
    event
        .request
        .fingerprints
        .iter()
        .filter_map(|f| {
            starts
                .iter()
                .filter(|(fp, _)| fp == f)
                .filter_map(|(_, s)| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| *t <= created)
                .max()
        })
        .fold(created, DateTime::min)
}

fn transition_at(event: &Event, status: EventStatus) -> Option<DateTime<Utc>> {
    event
        .transitions
        .iter()
        .flatten()
        .find(|t| t.status == status)
        .map(|t| t.at)
}

/// What the rates need of an event; `None` for a restore or a rollback still in flight.
pub fn episode(event: &Event, starts: &[(String, String)]) -> Option<Episode> {
    let kind = EpisodeKind::of(event.request.action, event.status).ok()?;
    let executed = kind == EpisodeKind::Executed;
    Some(Episode {
        at: event.created_at,
        kind,
        verdict: event.review.as_ref().map(|r| r.verdict),
        detected_at: detected_at(event, starts),
        acted_at: transition_at(event, EventStatus::Executing),
        validated_at: transition_at(event, EventStatus::Completed),
        validated: executed.then_some(event.status == EventStatus::Completed),
        execution_ms: event.duration_ms.filter(|_| executed),
    })
}

/// One state of the life cycle and when it was reached.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub status: EventStatus,
    pub at: DateTime<Utc>,
}

/// The initial recovery validation of an executed rollback.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValidationSummary {
    pub score: f64,
    pub pass_score: f64,
    pub passed: bool,
    /// The detail of every check that failed.
    pub failed_checks: Vec<String>,
}

/// How the stability watch after a completed rollback ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StabilityOutcome {
    Passed,
    Failed,
    /// No outcome stored: still watching, or cut short (a new execution, a restart).
    NotRecorded,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StabilitySummary {
    pub outcome: StabilityOutcome,
    pub score: Option<f64>,
    pub note: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// One trigger episode with its timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incident {
    pub event_id: String,
    pub kind: EpisodeKind,
    pub status: EventStatus,
    pub trigger_type: TriggerType,
    pub source: String,
    pub reason: String,
    pub actor: String,
    pub alert_names: Vec<String>,
    /// Each condition's value against its thresholds when the trigger was recorded.
    pub conditions: Vec<ConditionSnapshot>,
    pub created_at: DateTime<Utc>,
    pub detected_at: DateTime<Utc>,
    pub timeline: Vec<Step>,
    pub suppressed_reason: Option<String>,
    pub failure_reason: Option<String>,
    pub note: Option<String>,
    pub response_seconds: Option<f64>,
    pub execution_seconds: Option<f64>,
    pub recovery_seconds: Option<f64>,
    pub validation: Option<ValidationSummary>,
    /// For completed rollbacks only.
    pub stability: Option<StabilitySummary>,
    /// The review that counts; null while unreviewed.
    pub review: Option<Review>,
    /// How many earlier reviews it superseded.
    pub superseded_reviews: usize,
}

fn validation_summary(event: &Event) -> Option<ValidationSummary> {
    let run = event
        .validations
        .iter()
        .flatten()
        .filter(|r| r.kind != ValidationKind::Stability)
        .min_by_key(|r| r.id)?;
    Some(ValidationSummary {
        score: run.score,
        pass_score: run.pass_score,
        passed: run.passed,
        failed_checks: run
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.detail.clone())
            .collect(),
    })
}

fn stability_summary(event: &Event) -> Option<StabilitySummary> {
    if event.status != EventStatus::Completed {
        return None;
    }
    let run = event
        .validations
        .iter()
        .flatten()
        .filter(|r| r.kind == ValidationKind::Stability)
        .max_by_key(|r| r.id);
    Some(match run {
        Some(r) => StabilitySummary {
            outcome: if r.passed {
                StabilityOutcome::Passed
            } else {
                StabilityOutcome::Failed
            },
            score: Some(r.score),
            note: r.note.clone(),
            at: Some(r.at),
        },
        None => StabilitySummary {
            outcome: StabilityOutcome::NotRecorded,
            score: None,
            note: None,
            at: None,
        },
    })
}

/// The incident an episode event reads as; `None` for a restore or a rollback in flight.
pub fn incident(event: &Event, starts: &[(String, String)]) -> Option<Incident> {
    let ep = episode(event, starts)?;
    let r = &event.request;
    Some(Incident {
        event_id: event.id.clone(),
        kind: ep.kind,
        status: event.status,
        trigger_type: r.trigger_type,
        source: r.source.clone(),
        reason: r.reason.clone(),
        actor: r.actor.clone(),
        alert_names: r.alert_names.clone(),
        conditions: r.conditions.clone(),
        created_at: event.created_at,
        detected_at: ep.detected_at,
        timeline: (event.transitions.iter().flatten())
            .map(|t| Step {
                status: t.status,
                at: t.at,
            })
            .collect(),
        suppressed_reason: event.suppressed_reason.clone(),
        failure_reason: event.failure_reason.clone(),
        note: event.note.clone(),
        response_seconds: ep.response_seconds(),
        execution_seconds: ep.execution_ms.map(|ms| ms as f64 / 1000.0),
        recovery_seconds: ep.recovery_seconds(),
        validation: validation_summary(event),
        stability: stability_summary(event),
        review: event.review.clone(),
        superseded_reviews: event
            .reviews
            .as_ref()
            .map_or(0, |v| v.len().saturating_sub(1)),
    })
}

/// One success metric of the period beside the seed's bounds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricLine {
    pub metric: Measure,
    pub title: &'static str,
    pub unit: Unit,
    pub comparison: Comparison,
    pub limit: f64,
    pub target: Option<f64>,
    /// Null: no data in the period.
    pub value: Option<f64>,
    pub limit_met: Option<bool>,
    pub target_met: Option<bool>,
    /// What the value was read from, in words.
    pub basis: String,
}

/// `1 of 20 reviewed triggers were false`, or `no reviewed triggers in the period`.
fn ratio_basis(r: review::Ratio, noun: &str, what: &str) -> String {
    if r.total == 0 {
        format!("no {noun} in the period")
    } else {
        format!("{} of {} {noun} {what}", r.hits, r.total)
    }
}

fn durations_basis(d: review::Durations, of: &str) -> String {
    match d.median {
        None => format!("no {of} in the period"),
        Some(m) => format!("{} {of}; median {m:.1} s", d.count),
    }
}

/// What each value is read from, in the words an auditor reads.
fn basis(c: &Criterion, r: &Rates) -> String {
    match c.measure {
        Measure::RollbackExecutionTime => durations_basis(r.execution, "executed rollbacks"),
        Measure::RecoveryValidationSuccess => {
            ratio_basis(r.validation_success, "executed rollbacks", "validated")
        }
        Measure::FalsePositiveRate => ratio_basis(
            r.false_positive,
            "reviewed triggers",
            "were false (drills left out)",
        ),
        Measure::TruePositiveRate => ratio_basis(
            r.true_positive,
            "real degradations",
            "were caught (recorded misses count against it)",
        ),
        Measure::IncidentResponseTime => durations_basis(r.response, "incidents"),
        Measure::RecoveryTime => durations_basis(r.recovery, "recovered incidents"),
        Measure::DocumentationCompliance => {
            ratio_basis(r.documentation, "executed rollbacks", "reviewed")
        }
    }
}

fn metric_line(j: Judged, r: &Rates) -> MetricLine {
    let c = j.criterion;
    MetricLine {
        metric: c.measure,
        title: c.title,
        unit: c.unit,
        comparison: c.comparison,
        limit: c.limit,
        target: c.target,
        value: j.value,
        limit_met: j.limit_met,
        target_met: j.target_met,
        basis: basis(&c, r),
    }
}

/// How many episodes of each kind, and their verdicts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub episodes: usize,
    pub executed: usize,
    pub suppressed: usize,
    pub dry_runs: usize,
    pub verdicts: VerdictCounts,
    pub missed_degradations: u64,
}

/// `GET /api/v1/report`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub generated_at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub summary: Summary,
    pub incidents: Vec<Incident>,
    pub missed_degradations: Vec<MissedDegradation>,
    pub success_metrics: Vec<MetricLine>,
}

/// The report over `[since, until)` from the rollback events created in it (any order), the
/// missed degradations that began in it, and the alerts' `startsAt`.
pub fn build(
    events: &[Event],
    mut missed: Vec<MissedDegradation>,
    starts: &[(String, String)],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Report {
    let mut incidents: Vec<Incident> = events
        .iter()
        .filter(|e| e.created_at >= since && e.created_at < until)
        .filter_map(|e| incident(e, starts))
        .collect();
    incidents.sort_by_key(|i| i.created_at);
    missed.retain(|m| m.from >= since && m.from < until);
    missed.sort_by_key(|m| (m.from, m.id));
    let episodes: Vec<Episode> = events.iter().filter_map(|e| episode(e, starts)).collect();
    let starts_of_missed: Vec<DateTime<Utc>> = missed.iter().map(|m| m.from).collect();
    let rates = review::rates(&episodes, &starts_of_missed, since, until);
    let count = |k: EpisodeKind| incidents.iter().filter(|i| i.kind == k).count();
    Report {
        format_version: FORMAT_VERSION,
        generated_at: now,
        since,
        until,
        summary: Summary {
            episodes: incidents.len(),
            executed: count(EpisodeKind::Executed),
            suppressed: count(EpisodeKind::Suppressed),
            dry_runs: count(EpisodeKind::DryRun),
            verdicts: rates.verdicts,
            missed_degradations: rates.missed,
        },
        incidents,
        missed_degradations: missed,
        success_metrics: review::judge_all(&rates)
            .into_iter()
            .map(|j| metric_line(j, &rates))
            .collect(),
    }
}

#[cfg(test)]
mod tests;
