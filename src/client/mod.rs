//! Client commands against a running daemon: readable tables by default, `--json` for scripts,
//! and an exit code that says whether what was asked happened (see `crate::exit`).

mod format;
mod holds;
pub(crate) mod http;
mod render;
mod reviews;

use crate::cli::{
    ClientArgs, Command, MaintenanceCommand, MonitoringAction, ProposalCommand, RegimeCommand,
    ReportFormat,
};
use crate::exit::Exit;
use crate::output;
pub use format::Clock;
use http::Client;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

/// How an answer is judged and printed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Status,
    Triggers,
    History {
        filtered: bool,
    },
    /// A rollback or restore: only a `completed` (or recorded `dry_run`) event is success.
    Event,
    /// A restore dry run: a plan, or an event.
    Plan,
    Monitoring {
        active: bool,
    },
    /// A stored review.
    Review,
    /// A recorded missed degradation.
    Missed,
    /// The incident report: printed as the daemon wrote it.
    Report,
    /// The holds in force.
    Holds,
    /// A window, regime or mode changed, or a request awaits approval.
    HoldChange,
    /// A drill or notification test report: success only when it passed.
    Operation,
}

/// One client command as an HTTP request.
#[derive(Debug)]
struct Request {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    kind: Kind,
}

fn get(path: &str, query: Vec<(&'static str, String)>, kind: Kind) -> Request {
    Request {
        method: Method::GET,
        path: path.to_owned(),
        query,
        body: None,
        kind,
    }
}

fn post(path: &str, body: Option<Value>, kind: Kind) -> Request {
    Request {
        method: Method::POST,
        path: path.to_owned(),
        query: vec![],
        body,
        kind,
    }
}

/// The body of POST /api/v1/restore: `dry_run` only when asked, so older daemons accept it.
fn restore_body(reason: &str, dry_run: bool) -> Value {
    if dry_run {
        json!({"reason": reason, "dry_run": true})
    } else {
        json!({"reason": reason})
    }
}

/// The request a client command makes, and its connection flags; None for other commands.
fn request_for(cmd: &Command) -> Option<(Request, &ClientArgs)> {
    Some(match cmd {
        Command::Status { client } => (get("/api/v1/status", vec![], Kind::Status), client),
        Command::Triggers { client } => (get("/api/v1/triggers", vec![], Kind::Triggers), client),
        Command::Rollback {
            client,
            reason,
            dry_run,
        } => {
            let body = json!({"reason": reason, "dry_run": dry_run});
            (post("/api/v1/rollback", Some(body), Kind::Event), client)
        }
        Command::Restore {
            client,
            reason,
            dry_run,
        } => {
            let kind = if *dry_run { Kind::Plan } else { Kind::Event };
            (
                post(
                    "/api/v1/restore",
                    Some(restore_body(reason, *dry_run)),
                    kind,
                ),
                client,
            )
        }
        Command::History {
            client,
            limit,
            trigger_type,
            status,
            before,
            unreviewed,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            if *unreviewed {
                query.push(("unreviewed", "true".to_owned()));
            }
            let filters = [
                ("trigger_type", trigger_type),
                ("status", status),
                ("before", before),
            ];
            query.extend(
                filters
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.clone()?))),
            );
            let filtered = trigger_type.is_some() || status.is_some() || *unreviewed;
            (
                get("/api/v1/rollbacks", query, Kind::History { filtered }),
                client,
            )
        }
        Command::Monitoring { client, action } => {
            let (path, active) = match action {
                MonitoringAction::Start => ("/api/v1/monitoring/start", true),
                MonitoringAction::Stop => ("/api/v1/monitoring/stop", false),
            };
            // A JSON body: the daemon refuses a bodyless (cross-site) POST here.
            (
                post(
                    path,
                    Some(serde_json::json!({})),
                    Kind::Monitoring { active },
                ),
                client,
            )
        }
        Command::Review {
            id,
            verdict,
            note,
            ticket,
            client,
        } => {
            let body = json!({"verdict": verdict, "note": note, "ticket_url": ticket});
            let path = format!("/api/v1/rollbacks/{}/review", path_segment(id));
            (post(&path, Some(body), Kind::Review), client)
        }
        Command::Missed {
            from,
            to,
            conditions,
            note,
            client,
        } => {
            let body = json!({"from": from, "to": to, "conditions": conditions, "note": note});
            (post("/api/v1/missed", Some(body), Kind::Missed), client)
        }
        Command::Report {
            since,
            until,
            format,
            client,
        } => {
            let format = if client.json {
                ReportFormat::Json
            } else {
                *format
            };
            let mut query = vec![("since", since.clone()), ("format", format.as_str().into())];
            query.extend(until.clone().map(|u| ("until", u)));
            (get("/api/v1/report", query, Kind::Report), client)
        }
        Command::Freeze {
            duration,
            reason,
            name,
            client,
        } => {
            let body = json!({"duration": duration, "reason": reason, "name": name});
            (post("/api/v1/freeze", Some(body), Kind::HoldChange), client)
        }
        Command::Unfreeze { reason, client } => {
            let body = json!({ "reason": reason });
            (
                post("/api/v1/freeze/end", Some(body), Kind::HoldChange),
                client,
            )
        }
        Command::Maintenance { command } => match command {
            MaintenanceCommand::Start {
                duration,
                agents,
                reason,
                name,
                client,
            } => {
                let body = json!({"duration": duration, "reason": reason, "name": name, "expected_healthy_agents": agents});
                (
                    post("/api/v1/maintenance", Some(body), Kind::HoldChange),
                    client,
                )
            }
            MaintenanceCommand::End { reason, client } => {
                let body = json!({ "reason": reason });
                let req = post("/api/v1/maintenance/end", Some(body), Kind::HoldChange);
                (req, client)
            }
        },
        Command::Regime { command } => match command {
            RegimeCommand::Set {
                name,
                duration,
                reason,
                client,
            } => {
                let body = json!({"name": name, "duration": duration, "reason": reason});
                (post("/api/v1/regime", Some(body), Kind::HoldChange), client)
            }
            RegimeCommand::Clear { reason, client } => {
                let body = json!({ "reason": reason });
                let req = post("/api/v1/regime/clear", Some(body), Kind::HoldChange);
                (req, client)
            }
        },
        Command::Mode {
            mode,
            reason,
            client,
        } => {
            let body = json!({"mode": mode, "reason": reason});
            let req = post("/api/v1/automation/mode", Some(body), Kind::HoldChange);
            (req, client)
        }
        Command::Drill { client } => (
            post("/api/v1/drills", Some(json!({})), Kind::Operation),
            client,
        ),
        Command::NotifyTest { channels, client } => {
            let body = if channels.is_empty() {
                json!({})
            } else {
                json!({ "channels": channels })
            };
            let req = post("/api/v1/notification-tests", Some(body), Kind::Operation);
            (req, client)
        }
        Command::Holds { client } => (get("/api/v1/holds", vec![], Kind::Holds), client),
        Command::Proposal { command } => {
            let (id, approve, reason, client) = match command {
                ProposalCommand::Approve { id, reason, client } => (id, true, reason, client),
                ProposalCommand::Reject { id, reason, client } => (id, false, reason, client),
            };
            let verb = if approve { "approve" } else { "reject" };
            let path = format!("/api/v1/proposals/{}/{verb}", path_segment(id));
            let body = json!({ "reason": reason });
            // Approved: judged like a rollback; rejected: the suppressed event is what was asked.
            let kind = if approve {
                Kind::Event
            } else {
                Kind::HoldChange
            };
            (post(&path, Some(body), kind), client)
        }
        Command::ApproveRestore { id, reason, client } => {
            let path = format!("/api/v1/restore/requests/{}/approve", path_segment(id));
            let body = json!({ "reason": reason });
            (post(&path, Some(body), Kind::Event), client)
        }
        _ => return None,
    })
}

/// An id as one URL path segment: anything but unreserved characters percent-encoded.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The token from `--token-file` (trimmed), else `--token` / ROLLBACKD_TOKEN.
pub(crate) fn token(args: &ClientArgs) -> Result<Option<String>, String> {
    let Some(path) = &args.token_file else {
        return Ok(args.token.clone());
    };
    read_token(path).map(Some)
}

fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(t.to_owned())
}

/// Whether a 2xx answer means that what was asked happened, and if not, what to say.
fn judge(kind: Kind, v: &Value) -> (Exit, Option<String>) {
    if awaits_approval(v) {
        // Asked for and recorded: a second person (or an operator) decides next.
        return (Exit::Ok, None);
    }
    match kind {
        Kind::Event => event_outcome(v),
        Kind::Plan if v.get("id").is_some() && v.get("status").is_some() => event_outcome(v),
        Kind::Operation => match v.get("passed").and_then(Value::as_bool) {
            Some(true) => (Exit::Ok, None),
            _ => (
                Exit::Failed,
                Some("a step or channel failed; see above (the report is stored)".into()),
            ),
        },
        Kind::Monitoring { active } => match v.get("monitoring_active").and_then(Value::as_bool) {
            Some(a) if a == active => (Exit::Ok, None),
            other => (
                Exit::Failed,
                Some(format!(
                    "asked for monitoring_active={active}, the daemon answered {other:?}"
                )),
            ),
        },
        _ => (Exit::Ok, None),
    }
}

fn event_outcome(e: &Value) -> (Exit, Option<String>) {
    let exit = Exit::from_event(e);
    if exit == Exit::Ok {
        return (exit, None);
    }
    let action = e.get("action").and_then(Value::as_str).unwrap_or("request");
    let id = e.get("id").and_then(Value::as_str).unwrap_or("-");
    let why = match e.get("status").and_then(Value::as_str) {
        Some("suppressed") => format!(
            "the {action} was suppressed ({}); nothing was changed (event {id})",
            format::text(e.get("suppressed_reason"))
        ),
        status => format!(
            "the {action} ended {}: {} (event {id})",
            status.unwrap_or("without a status"),
            format::text(e.get("failure_reason"))
        ),
    };
    (exit, Some(why))
}

/// A two-person restore request or a confirm-mode proposal, not an event.
fn awaits_approval(v: &Value) -> bool {
    v.get("restore_request").is_some() || v.get("proposal").is_some()
}

fn render(kind: Kind, v: &Value, clock: &Clock) -> String {
    if awaits_approval(v) {
        return holds::change(v, clock);
    }
    match kind {
        Kind::Status => render::status(v, clock),
        Kind::Triggers => render::triggers(v, clock),
        Kind::History { filtered } => render::history(v, clock, filtered),
        Kind::Event => render::event(v, clock),
        Kind::Plan => render::plan_or_event(v, clock),
        Kind::Monitoring { .. } => render::monitoring(v),
        Kind::Review => reviews::review(v, clock),
        Kind::Missed => reviews::missed(v, clock),
        Kind::Report => reviews::report(v),
        Kind::Holds => holds::holds(v, clock),
        Kind::Operation => holds::operation(v, clock),
        Kind::HoldChange if v.get("status").is_some() => render::event(v, clock),
        Kind::HoldChange => holds::change(v, clock),
    }
}

fn with_newline(mut raw: String) -> String {
    if !raw.ends_with('\n') {
        raw.push('\n');
    }
    raw
}

/// Runs a client command; `None` when `cmd` is not one.
pub async fn run(cmd: &Command) -> Option<anyhow::Result<Exit>> {
    let (req, args) = request_for(cmd)?;
    Some(execute(req, args).await)
}

async fn execute(req: Request, args: &ClientArgs) -> anyhow::Result<Exit> {
    let token = match token(args) {
        Ok(t) => t,
        Err(msg) => {
            output::eprint_line(&format!("rollbackd: {msg}"));
            return Ok(Exit::Usage);
        }
    };
    let client = match Client::new(&args.url, token, args.ca_file.as_deref()) {
        Ok(c) => c,
        Err(msg) => {
            output::eprint_line(&format!("rollbackd: {msg}"));
            return Ok(Exit::Usage);
        }
    };
    let clock = Clock::system();
    let answer = client
        .send(req.method, &req.path, &req.query, req.body.as_ref())
        .await;
    match answer {
        Ok(a) => {
            let (exit, complaint) = judge(req.kind, &a.value);
            let text = if args.json {
                with_newline(a.raw)
            } else {
                render(req.kind, &a.value, &clock)
            };
            output::print(&text)?;
            if let Some(c) = complaint {
                output::eprint_line(&format!("rollbackd: {c}"));
            }
            Ok(exit)
        }
        Err(refusal) => {
            match (&refusal.raw, &refusal.value) {
                (Some(raw), Some(_)) if args.json => output::print(&with_newline(raw.clone()))?,
                _ if !args.json => {
                    if let Some(e) = refusal.event() {
                        output::print(&render::event(e, &clock))?;
                    }
                }
                _ => {}
            }
            output::eprint_line(&format!("rollbackd: {}", refusal.message));
            Ok(refusal.exit)
        }
    }
}

#[cfg(test)]
mod tests;
