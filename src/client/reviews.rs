//! What `review`, `missed` and `report` print without `--json`.

use super::format::{text, Clock};
use serde_json::Value;

/// `label  value` lines.
fn lines(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// A stored review.
pub fn review(v: &Value, clock: &Clock) -> String {
    let id = match v.get("supersedes").and_then(Value::as_i64) {
        Some(old) => format!("{} (supersedes review {old})", text(v.get("id"))),
        None => text(v.get("id")),
    };
    lines(&[
        ("review", id),
        ("event", text(v.get("event_id"))),
        ("verdict", text(v.get("verdict"))),
        ("note", text(v.get("note"))),
        ("ticket", text(v.get("ticket_url"))),
        ("reviewer", text(v.get("reviewer"))),
        ("reviewed", clock.when(v.get("reviewed_at"))),
    ])
}

/// A recorded missed degradation.
pub fn missed(v: &Value, clock: &Clock) -> String {
    let conditions: Vec<String> = v["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| text(Some(c)))
        .collect();
    lines(&[
        ("missed degradation", text(v.get("id"))),
        ("from", clock.when(v.get("from"))),
        ("to", clock.when(v.get("to"))),
        ("conditions", conditions.join(", ")),
        ("note", text(v.get("note"))),
        ("recorded by", text(v.get("recorded_by"))),
    ])
}

/// The report as the daemon wrote it (Markdown or CSV text), or its JSON, indented.
pub fn report(v: &Value) -> String {
    let mut out = match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{request_for, Kind};
    use super::*;
    use crate::cli::Cli;
    use crate::exit::Exit;
    use chrono::FixedOffset;
    use clap::Parser;
    use reqwest::Method;
    use serde_json::json;

    fn request(args: &[&str]) -> super::super::Request {
        let cli = Cli::try_parse_from([&["rollbackd"], args].concat()).unwrap();
        request_for(&cli.command).unwrap().0
    }

    fn usage_error(args: &[&str]) -> String {
        let err = Cli::try_parse_from([&["rollbackd"], args].concat()).unwrap_err();
        assert_eq!(err.exit_code(), Exit::Usage.code() as i32, "{err}");
        err.to_string()
    }

    #[test]
    fn review_missed_report_and_unreviewed_history_requests() {
        let r = request(&[
            "review",
            "0193/x",
            "--verdict",
            "false_positive",
            "--note",
            "bad tick",
            "--ticket",
            "https://t/1",
        ]);
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::POST, "/api/v1/rollbacks/0193%2Fx/review")
        );
        assert_eq!(
            r.body,
            Some(
                json!({"verdict": "false_positive", "note": "bad tick", "ticket_url": "https://t/1"})
            )
        );
        assert_eq!(r.kind, Kind::Review);
        let r = request(&[
            "missed",
            "--from",
            "2026-11-23T10:00:00Z",
            "--to",
            "2026-11-23T10:30:00Z",
            "--condition",
            "max_drawdown",
            "--condition",
            "overfitting_score",
            "--note",
            "slow bleed",
        ]);
        assert_eq!(r.path, "/api/v1/missed");
        assert_eq!(
            r.body.unwrap()["conditions"],
            json!(["max_drawdown", "overfitting_score"])
        );
        let r = request(&["report", "--since", "90d", "--format", "csv"]);
        assert_eq!(r.path, "/api/v1/report");
        assert_eq!(
            r.query,
            vec![("since", "90d".to_owned()), ("format", "csv".to_owned())]
        );
        let r = request(&["report", "--json"]);
        assert_eq!(
            r.query,
            vec![("since", "30d".to_owned()), ("format", "json".to_owned())]
        );
        let r = request(&["history", "--unreviewed"]);
        assert_eq!(
            r.query,
            vec![
                ("limit", "20".to_owned()),
                ("unreviewed", "true".to_owned())
            ]
        );
        assert_eq!(r.kind, Kind::History { filtered: true });
    }

    #[test]
    fn bad_command_lines_name_what_is_wrong() {
        assert!(usage_error(&["review", "e1", "--verdict", "maybe"]).contains("true_positive"));
        assert!(usage_error(&[
            "missed",
            "--from",
            "yesterday",
            "--to",
            "2026-11-23T10:30:00Z",
            "--condition",
            "max_drawdown",
            "--note",
            "n"
        ])
        .contains("RFC 3339"));
        assert!(usage_error(&[
            "missed",
            "--from",
            "2026-11-23T10:00:00Z",
            "--to",
            "2026-11-23T10:30:00Z",
            "--note",
            "n"
        ])
        .contains("--condition"));
        assert!(usage_error(&["report", "--format", "pdf"]).contains("md"));
    }

    #[test]
    fn a_review_and_a_missed_degradation_render_as_lines() {
        let clock = Clock {
            now: "2026-11-23T10:06:15Z".parse().unwrap(),
            offset: Some(FixedOffset::east_opt(3600).unwrap()),
        };
        let r = json!({"id": 2, "event_id": "e1", "verdict": "true_positive", "note": "real",
            "ticket_url": null, "reviewer": "ops", "reviewed_at": "2026-11-23T10:06:00Z", "supersedes": 1});
        assert_eq!(
            review(&r, &clock),
            "review    2 (supersedes review 1)\nevent     e1\nverdict   true_positive\nnote      real\n\
             ticket    -\nreviewer  ops\nreviewed  11:06:00 (15s ago)\n"
        );
        let m = json!({"id": 7, "from": "2026-11-23T09:00:00Z", "to": "2026-11-23T09:30:00Z",
            "conditions": ["max_drawdown"], "note": "slow bleed", "recorded_by": "ops"});
        let out = missed(&m, &clock);
        assert!(
            out.starts_with("missed degradation  7\nfrom                10:00:00 (1h ago)\n"),
            "{out}"
        );
        assert_eq!(report(&json!("# report")), "# report\n");
        assert!(report(&json!({"format_version": 1})).contains("\"format_version\": 1"));
    }
}
