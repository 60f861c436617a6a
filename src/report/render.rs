//! The report as Markdown (reads well pasted into a ticket) and as CSV (for a spreadsheet).
//! Text typed by people (reasons, notes) is escaped so it can never break a table or start a
//! spreadsheet formula.

use super::{Incident, MetricLine, Report};
use crate::domain::review::{Comparison, Unit};
use crate::store::MissedDegradation;
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// `2026-11-23 10:00:03 UTC`.
fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Seconds as `12.3 s` (`30 s` when whole), or `2 min 5 s` from a minute on.
fn seconds(s: f64) -> String {
    if s < 60.0 {
        let text = format!("{s:.1}");
        format!("{} s", text.trim_end_matches(".0"))
    } else {
        let whole = s.round() as u64;
        match whole % 60 {
            0 => format!("{} min", whole / 60),
            rest => format!("{} min {rest} s", whole / 60),
        }
    }
}

fn value_of(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Ratio => {
            let pct = format!("{:.1}", v * 100.0);
            format!("{} %", pct.trim_end_matches(".0"))
        }
        Unit::Seconds => seconds(v),
    }
}

fn bound(m: &MetricLine, v: Option<f64>) -> String {
    v.map_or("-".into(), |v| {
        format!("{} {}", m.comparison.symbol(), value_of(m.unit, v))
    })
}

/// `met`, `not met`, or `no data`.
fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "no data",
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("-".into(), f)
}

/// Text for a Markdown table cell or list item: one line, pipes and markup escaped.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            '|' | '\\' | '`' | '*' | '[' | ']' | '<' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn metrics_md(out: &mut String, r: &Report) {
    out.push_str("## Success metrics\n\n");
    out.push_str("| Metric | Value | Limit | Target | Limit met | Target met | Basis |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for m in &r.success_metrics {
        let target = if m.target.is_some() {
            met(m.target_met)
        } else {
            "-"
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            m.title,
            opt(m.value, |v| value_of(m.unit, v)),
            bound(m, Some(m.limit)),
            bound(m, m.target),
            met(m.limit_met),
            target,
            md(&m.basis)
        );
    }
    out.push('\n');
}

fn incident_head(i: &Incident) -> String {
    let verdict = i
        .review
        .as_ref()
        .map_or("UNREVIEWED".to_owned(), |r| r.verdict.to_string());
    format!(
        "{} · {} · {} · {}",
        when(&i.created_at),
        i.trigger_type.as_str(),
        i.status,
        verdict
    )
}

fn conditions_md(out: &mut String, i: &Incident) {
    if i.conditions.is_empty() {
        return;
    }
    out.push_str("\n| Condition | Value | Warning | Critical | Status |\n|---|---|---|---|---|\n");
    for c in &i.conditions {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            md(&c.condition),
            opt(c.value, |v| format!("{v}")),
            c.warning_threshold,
            c.critical_threshold,
            c.status.as_str()
        );
    }
}

fn outcome_md(out: &mut String, i: &Incident) {
    if let Some(v) = &i.validation {
        let _ = write!(
            out,
            "- Validation: score {} (pass {}), {}",
            v.score,
            v.pass_score,
            if v.passed { "passed" } else { "FAILED" }
        );
        if !v.failed_checks.is_empty() {
            let checks: Vec<String> = v.failed_checks.iter().map(|c| md(c)).collect();
            let _ = write!(out, "; failed checks: {}", checks.join("; "));
        }
        out.push('\n');
    }
    if let Some(s) = &i.stability {
        let outcome = serde_json::to_value(s.outcome).unwrap_or_default();
        let _ = write!(
            out,
            "- Stability watch: {}",
            outcome.as_str().unwrap_or("-").replace('_', " ")
        );
        if let Some(n) = &s.note {
            let _ = write!(out, " ({})", md(n));
        }
        out.push('\n');
    }
    match &i.review {
        Some(r) => {
            let _ = write!(
                out,
                "- Review: **{}** by {} at {}",
                r.verdict,
                md(&r.reviewer),
                when(&r.reviewed_at)
            );
            if let Some(n) = &r.note {
                let _ = write!(out, ": {}", md(n));
            }
            if let Some(t) = &r.ticket_url {
                let _ = write!(out, " (ticket {})", md(t));
            }
            if i.superseded_reviews > 0 {
                let _ = write!(
                    out,
                    "; supersedes {} earlier review(s)",
                    i.superseded_reviews
                );
            }
            out.push('\n');
        }
        None => out.push_str("- Review: **not reviewed yet**\n"),
    }
}

fn incident_md(out: &mut String, n: usize, i: &Incident) {
    let _ = writeln!(out, "### {n}. {}\n", incident_head(i));
    let _ = writeln!(out, "- Event: `{}`", i.event_id);
    let _ = writeln!(
        out,
        "- Trigger: {} via {}, by {}: {}",
        i.trigger_type.as_str(),
        md(&i.source),
        md(&i.actor),
        md(&i.reason)
    );
    if !i.alert_names.is_empty() {
        let _ = writeln!(out, "- Alerts: {}", md(&i.alert_names.join(", ")));
    }
    for (label, text) in [
        ("Suppressed", &i.suppressed_reason),
        ("Failure", &i.failure_reason),
        ("Note", &i.note),
    ] {
        if let Some(t) = text {
            let _ = writeln!(out, "- {label}: {}", md(t));
        }
    }
    let steps: Vec<String> = i
        .timeline
        .iter()
        .map(|s| format!("{} {}", s.status, s.at.format("%H:%M:%S%.3f")))
        .collect();
    let _ = writeln!(
        out,
        "- Timeline: detected {} → {}",
        i.detected_at.format("%H:%M:%S%.3f"),
        steps.join(" → ")
    );
    let _ = writeln!(
        out,
        "- Response {}, execution {}, recovery {}",
        opt(i.response_seconds, seconds),
        opt(i.execution_seconds, seconds),
        opt(i.recovery_seconds, seconds)
    );
    outcome_md(out, i);
    conditions_md(out, i);
    out.push('\n');
}

fn missed_md(out: &mut String, missed: &[MissedDegradation]) {
    let _ = writeln!(out, "## Missed degradations ({})\n", missed.len());
    if missed.is_empty() {
        out.push_str("None recorded.\n");
        return;
    }
    out.push_str("| From | To | Conditions | Recorded by | Note |\n|---|---|---|---|---|\n");
    for m in missed {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            when(&m.from),
            when(&m.to),
            md(&m.conditions.join(", ")),
            md(&m.recorded_by),
            md(&m.note)
        );
    }
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let s = &r.summary;
    let _ = writeln!(
        out,
        "# rollbackd incident report\n\nPeriod: {} to {} (generated {}).\n\n\
         Trigger episodes: {} (executed {}, suppressed {}, dry runs {}). Reviews: true positive {}, \
         false positive {}, drill {}, not reviewed yet {}. Missed degradations: {}.\n",
        when(&r.since),
        when(&r.until),
        when(&r.generated_at),
        s.episodes,
        s.executed,
        s.suppressed,
        s.dry_runs,
        s.verdicts.true_positive,
        s.verdicts.false_positive,
        s.verdicts.drill,
        s.verdicts.unreviewed,
        s.missed_degradations
    );
    let _ = writeln!(out, "## Incidents ({})\n", r.incidents.len());
    if r.incidents.is_empty() {
        out.push_str("No trigger episodes in the period.\n\n");
    }
    for (n, i) in r.incidents.iter().enumerate() {
        incident_md(&mut out, n + 1, i);
    }
    missed_md(&mut out, &r.missed_degradations);
    out.push('\n');
    metrics_md(&mut out, r);
    out
}

/// One CSV field: quoted when it must be, and a leading `=`, `+`, `-` or `@` neutralised so a
/// spreadsheet never runs it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_row(out: &mut String, fields: &[String]) {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

fn num(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v}"))
}

fn incident_row(i: &Incident) -> Vec<String> {
    let review = i.review.as_ref();
    let conditions: Vec<String> = i
        .conditions
        .iter()
        .map(|c| {
            format!(
                "{}={} ({}; warning {}, critical {})",
                c.condition,
                num(c.value),
                c.status.as_str(),
                c.warning_threshold,
                c.critical_threshold
            )
        })
        .collect();
    let v = i.validation.as_ref();
    vec![
        i.event_id.clone(),
        i.created_at.to_rfc3339(),
        i.kind.as_str().into(),
        i.status.as_str().into(),
        i.trigger_type.as_str().into(),
        i.actor.clone(),
        i.reason.clone(),
        conditions.join("; "),
        i.detected_at.to_rfc3339(),
        num(i.response_seconds),
        num(i.execution_seconds),
        num(i.recovery_seconds),
        num(v.map(|v| v.score)),
        v.map_or(String::new(), |v| v.failed_checks.join("; ")),
        i.stability.as_ref().map_or(String::new(), |s| {
            serde_json::to_value(s.outcome)
                .ok()
                .and_then(|o| o.as_str().map(str::to_owned))
                .unwrap_or_default()
        }),
        review.map_or("unreviewed".into(), |r| r.verdict.to_string()),
        review.and_then(|r| r.note.clone()).unwrap_or_default(),
        review.map_or(String::new(), |r| r.reviewer.clone()),
        review
            .and_then(|r| r.ticket_url.clone())
            .unwrap_or_default(),
    ]
}

const INCIDENT_COLUMNS: [&str; 19] = [
    "event_id",
    "created_at",
    "kind",
    "status",
    "trigger_type",
    "actor",
    "reason",
    "conditions",
    "detected_at",
    "response_seconds",
    "execution_seconds",
    "recovery_seconds",
    "validation_score",
    "failed_checks",
    "stability",
    "verdict",
    "review_note",
    "reviewer",
    "ticket_url",
];

fn comparison(c: Comparison) -> String {
    c.symbol().to_owned()
}

/// The report as CSV: the incidents table, a blank line, then the success metrics table.
pub fn csv(r: &Report) -> String {
    let mut out = String::new();
    csv_row(&mut out, &INCIDENT_COLUMNS.map(String::from));
    for i in &r.incidents {
        csv_row(&mut out, &incident_row(i));
    }
    out.push_str("\r\n");
    let header = [
        "metric",
        "value",
        "comparison",
        "limit",
        "target",
        "limit_met",
        "target_met",
        "basis",
    ];
    csv_row(&mut out, &header.map(String::from));
    let flag = |m: Option<bool>| m.map_or(String::new(), |b| b.to_string());
    for m in &r.success_metrics {
        let key = serde_json::to_value(m.metric).unwrap_or_default();
        csv_row(
            &mut out,
            &[
                key.as_str().unwrap_or_default().to_owned(),
                num(m.value),
                comparison(m.comparison),
                num(Some(m.limit)),
                num(m.target),
                flag(m.limit_met),
                flag(m.target_met),
                m.basis.clone(),
            ],
        );
    }
    out
}
