//! What the client commands print without `--json`: aligned columns and rounded values, each
//! renderer a pure function of the daemon's JSON and a clock.

use super::format::{self, condition_value, duration, parameters, score, text, yes_no, Clock};
use comfy_table::{presets, CellAlignment, Table};
use serde_json::Value;

/// Columns without borders, two spaces apart; `right` lists right-aligned columns.
fn columns(header: Option<&[&str]>, rows: Vec<Vec<String>>, right: &[usize]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    if let Some(h) = header {
        t.set_header(h.to_vec());
    }
    for r in rows {
        t.add_row(r);
    }
    for (i, col) in t.column_iter_mut().enumerate() {
        col.set_padding((0, 2));
        if right.contains(&i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out: String = t
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// `label  value` lines, the labels aligned.
fn details(rows: Vec<(&str, String)>) -> String {
    columns(
        None,
        rows.into_iter()
            .map(|(k, v)| vec![k.to_owned(), v])
            .collect(),
        &[],
    )
}

pub fn status(v: &Value, clock: &Clock) -> String {
    let get = |p: &str| v.pointer(p);
    let monitoring = match get("/monitoring_active").and_then(Value::as_bool) {
        Some(true) => "active",
        Some(false) => "stopped",
        None => "-",
    };
    let target_up = match get("/target/up").and_then(Value::as_bool) {
        Some(true) => "up".to_owned(),
        Some(false) => format!("DOWN ({})", text(get("/target/last_error"))),
        None => "-".to_owned(),
    };
    let cooldown = match get("/cooldown_remaining_seconds").and_then(Value::as_f64) {
        Some(s) if s > 0.0 => format!("{} left", duration(s)),
        Some(_) => "none".to_owned(),
        None => "-".to_owned(),
    };
    let last = match get("/last_event") {
        Some(e) if e.is_object() => format!(
            "{} {} {} {}",
            text(e.get("action")),
            text(e.get("status")),
            clock.when(e.get("created_at")),
            text(e.get("id"))
        ),
        _ => "none".to_owned(),
    };
    details(vec![
        ("mode", text(get("/mode"))),
        ("rollback ready", yes_no(get("/rollback_ready")).into()),
        ("rolled back", yes_no(get("/already_rolled_back")).into()),
        (
            "monitoring",
            format!(
                "{monitoring} (automatic rollback {})",
                match get("/automatic_rollback").and_then(Value::as_bool) {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "-",
                }
            ),
        ),
        ("automation mode", text(get("/holds/automation_mode"))),
        ("freeze", super::holds::window(&v["holds"]["freeze"], clock)),
        (
            "maintenance",
            super::holds::window(&v["holds"]["maintenance"], clock),
        ),
        ("regime", super::holds::regime(&v["holds"]["regime"], clock)),
        ("in progress", text(get("/in_progress"))),
        (
            "agents",
            format!(
                "{}/{} healthy",
                text(get("/agents/healthy")),
                text(get("/agents/expected"))
            ),
        ),
        (
            "target",
            format!(
                "{} {target_up}, last read {}",
                text(get("/target/url")),
                clock.when(get("/target/last_success"))
            ),
        ),
        ("environment", text(get("/environment"))),
        ("cooldown", cooldown),
        (
            "stability watch",
            yes_no(get("/stability_watch_active")).into(),
        ),
        ("storage ok", yes_no(get("/storage_ok")).into()),
        ("last event", last),
        ("version", text(get("/version"))),
    ])
}

pub fn triggers(v: &Value, clock: &Clock) -> String {
    let rows = v["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = text(c.get("condition"));
            vec![
                name.clone(),
                condition_value(&name, c.get("value")),
                text(c.get("operator")),
                condition_value(&name, c.get("warning_threshold")),
                condition_value(&name, c.get("critical_threshold")),
                text(c.get("status")),
                text(c.get("trend")),
            ]
        })
        .collect();
    let header = [
        "CONDITION",
        "VALUE",
        "OP",
        "WARNING",
        "CRITICAL",
        "STATUS",
        "TREND",
    ];
    let mut out = columns(Some(&header), rows, &[1, 3, 4]);
    let detected: Vec<String> = v["triggers_detected"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| text(Some(t)))
        .collect();
    out.push_str(&format!(
        "\ntriggers detected: {}\nupdated: {}\n",
        if detected.is_empty() {
            "none".to_owned()
        } else {
            detected.join(", ")
        },
        clock.when(v.get("updated_at"))
    ));
    out
}

/// The history table; `filtered` says whether filters narrowed it (for the empty message).
pub fn history(v: &Value, clock: &Clock, filtered: bool) -> String {
    let events = v["events"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        return if filtered {
            "no rollbacks recorded that match the filters\n".into()
        } else {
            "no rollbacks recorded\n".into()
        };
    }
    let rows = events
        .iter()
        .map(|e| {
            vec![
                clock.when(e.get("created_at")),
                text(e.get("action")),
                text(e.get("trigger_type")),
                status_with_reason(e),
                score(e.get("validation_score")),
                e.get("duration_ms")
                    .and_then(Value::as_f64)
                    .map_or("-".into(), format::millis),
                text(e.get("actor")),
                text(e.get("id")),
                text(e.get("reason")),
            ]
        })
        .collect();
    let header = [
        "WHEN", "ACTION", "TRIGGER", "STATUS", "SCORE", "TOOK", "ACTOR", "ID", "REASON",
    ];
    let mut out = columns(Some(&header), rows, &[4, 5]);
    if let Some(next) = v.get("next_before").and_then(Value::as_str) {
        out.push_str(&format!("\nolder events: --before {next}\n"));
    }
    out
}

/// `failed`, `suppressed (cooldown)`, `completed`.
fn status_with_reason(e: &Value) -> String {
    let status = text(e.get("status"));
    match e.get("suppressed_reason").and_then(Value::as_str) {
        Some(r) if status == "suppressed" => format!("{status} ({r})"),
        _ => status,
    }
}

/// One rollback or restore event.
pub fn event(e: &Value, clock: &Clock) -> String {
    let mut rows = vec![
        ("event", text(e.get("id"))),
        (
            "action",
            format!(
                "{} ({} via {}, by {})",
                text(e.get("action")),
                text(e.get("trigger_type")),
                text(e.get("source")),
                text(e.get("actor"))
            ),
        ),
        ("status", status_with_reason(e)),
        ("reason", text(e.get("reason"))),
        (
            "mode",
            format!(
                "{} -> {}",
                text(e.get("mode_before")),
                text(e.get("target_mode"))
            ),
        ),
        ("parameters", parameters(e.get("target_parameters"))),
        ("created", clock.when(e.get("created_at"))),
    ];
    let present = |k: &str| e.get(k).is_some_and(|v| !v.is_null());
    if present("validation_score") {
        rows.push(("score", score(e.get("validation_score"))));
    }
    if let Some(ms) = e.get("duration_ms").and_then(Value::as_f64) {
        rows.push(("took", format::millis(ms)));
    }
    for (key, label) in [("failure_reason", "failure"), ("note", "note")] {
        if present(key) {
            rows.push((label, text(e.get(key))));
        }
    }
    details(rows)
}

/// What a restore dry run answered: an event, or a plan of any shape as `key  value` lines.
pub fn plan_or_event(v: &Value, clock: &Clock) -> String {
    if v.get("id").is_some() && v.get("status").is_some() {
        return event(v, clock);
    }
    match v.as_object() {
        Some(map) => details(
            map.iter()
                .map(|(k, v)| {
                    let shown = match v {
                        Value::Object(_) => parameters(Some(v)),
                        other => text(Some(other)),
                    };
                    (k.as_str(), shown)
                })
                .collect(),
        ),
        None => format!("{}\n", text(Some(v))),
    }
}

pub fn monitoring(v: &Value) -> String {
    match v.get("monitoring_active").and_then(Value::as_bool) {
        Some(true) => "monitoring active: true\n".into(),
        Some(false) => "monitoring active: false (the watchdog no longer rolls back)\n".into(),
        None => format!("monitoring: {}\n", text(Some(v))),
    }
}
