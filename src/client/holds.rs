//! What the hold commands print without `--json`: the holds in force, and what a change did.

use super::format::{text, Clock};
use serde_json::Value;

pub(super) fn window(w: &Value, clock: &Clock) -> String {
    if !w.is_object() {
        return "none".into();
    }
    let agents = w
        .get("expected_healthy_agents")
        .filter(|a| !a.is_null())
        .map(|a| format!(", {} healthy agents expected", text(Some(a))))
        .unwrap_or_default();
    format!(
        "{} until {} by {}: {}{agents}",
        text(w.get("name")),
        clock.when(w.get("end")),
        text(w.get("actor")),
        text(w.get("reason"))
    )
}

pub(super) fn regime(r: &Value, clock: &Clock) -> String {
    if !r.is_object() {
        return "none (the environment's thresholds)".into();
    }
    let until = match r.get("until") {
        Some(u) if !u.is_null() => clock.when(Some(u)),
        _ => "cleared".into(),
    };
    format!(
        "{} until {until} by {}: {}",
        text(r.get("name")),
        text(r.get("actor")),
        text(r.get("reason"))
    )
}

/// `GET /api/v1/holds` (or the status's `holds`).
pub fn holds(v: &Value, clock: &Clock) -> String {
    let mut out = vec![
        (
            "automation mode".to_string(),
            text(v.get("automation_mode")),
        ),
        ("freeze".into(), window(&v["freeze"], clock)),
        ("maintenance".into(), window(&v["maintenance"], clock)),
        ("regime".into(), regime(&v["regime"], clock)),
    ];
    for p in v["proposals"].as_array().into_iter().flatten() {
        out.push((
            format!("proposal {}", text(p.get("id"))),
            format!(
                "{} ({}), {} at {}",
                text(p.get("reason")),
                text(p.get("trigger_type")),
                text(p.get("on_timeout")),
                clock.when(p.get("deadline"))
            ),
        ));
    }
    for r in v["restore_requests"].as_array().into_iter().flatten() {
        out.push((
            format!("restore request {}", text(r.get("id"))),
            format!(
                "by {}: {} (expires {})",
                text(r.get("requested_by")),
                text(r.get("reason")),
                clock.when(r.get("expires_at"))
            ),
        ));
    }
    for u in v["upcoming"].as_array().into_iter().flatten() {
        out.push((
            format!("next {}", text(u.get("kind"))),
            format!("{} at {}", text(u.get("name")), clock.when(u.get("start"))),
        ));
    }
    let width = out.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    out.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// The answer to a hold change: the window, regime or mode it names.
pub fn change(v: &Value, clock: &Clock) -> String {
    let Some(obj) = v.as_object() else {
        return format!("{v}\n");
    };
    obj.iter()
        .filter(|(k, _)| *k != "holds")
        .map(|(k, x)| {
            let line = match k.as_str() {
                "regime" | "cleared" if x.get("since").is_some() => regime(x, clock),
                "automation_mode" => text(Some(x)),
                "restore_request" => format!(
                    "{} by {} awaits a second admin (rollbackd approve-restore {}) until {}",
                    text(x.get("id")),
                    text(x.get("requested_by")),
                    text(x.get("id")),
                    clock.when(x.get("expires_at"))
                ),
                "proposal" => format!(
                    "{} awaits an operator until {}",
                    text(x.get("id")),
                    clock.when(x.get("deadline"))
                ),
                _ => window(x, clock),
            };
            format!("{k}  {line}\n")
        })
        .collect()
}

/// A drill or a notification test: one line per step or channel.
pub fn operation(v: &Value, clock: &Clock) -> String {
    let mut out = format!(
        "{} {} by {} at {}: {}\n",
        if v.get("steps").is_some() {
            "drill"
        } else {
            "notification test"
        },
        text(v.get("id")),
        text(v.get("actor")),
        clock.when(v.get("at")),
        if v.get("passed").and_then(Value::as_bool) == Some(true) {
            "PASSED"
        } else {
            "FAILED"
        }
    );
    let rows = v["steps"].as_array().or_else(|| v["channels"].as_array());
    for r in rows.into_iter().flatten() {
        let name = r.get("name").or_else(|| r.get("channel"));
        let ms = r
            .get("duration_ms")
            .map(|d| format!(" ({} ms)", text(Some(d))))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<20} {:<11} {}{ms}\n",
            text(name),
            text(r.get("result")),
            text(r.get("detail"))
        ));
    }
    out
}
