//! Client commands against a running daemon: readable tables by default, `--json` for scripts,
//! a non-zero exit with the server's message on error.

use crate::cli::{ClientArgs, Command};
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;

struct Client {
    http: reqwest::Client,
    args: ClientArgs,
}

impl Client {
    fn new(args: ClientArgs) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client builds");
        Client {
            http,
            args: ClientArgs {
                url: args.url.trim_end_matches('/').to_string(),
                ..args
            },
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.args.url);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.args.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach rollbackd at {}", self.args.url))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            let code = value
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("error");
            bail!("{} {code}: {msg}", status.as_u16());
        }
        Ok(value)
    }
}

fn s(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(x)) => x.clone(),
        Some(other) => other.to_string(),
    }
}

fn print_event(e: &Value) {
    println!("event     {}", s(e, "/id"));
    println!(
        "action    {} ({} via {}, by {})",
        s(e, "/action"),
        s(e, "/trigger_type"),
        s(e, "/source"),
        s(e, "/actor")
    );
    println!("status    {}", s(e, "/status"));
    println!("reason    {}", s(e, "/reason"));
    println!(
        "target    {} {}",
        s(e, "/target_mode"),
        s(e, "/target_parameters")
    );
    if e.get("validation_score").is_some_and(|v| !v.is_null()) {
        println!("score     {}", s(e, "/validation_score"));
    }
    if e.get("duration_ms").is_some_and(|v| !v.is_null()) {
        println!("took      {} ms", s(e, "/duration_ms"));
    }
    for key in ["failure_reason", "suppressed_reason", "note"] {
        if e.get(key).is_some_and(|v| !v.is_null()) {
            println!("{key:<9} {}", s(e, &format!("/{key}")));
        }
    }
}

/// What a client command asks of the daemon, and how its answer is printed.
struct Call {
    args: ClientArgs,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
    print: fn(&Value),
}

fn call_for(cmd: Command) -> anyhow::Result<Call> {
    use reqwest::Method;
    let call = |args, method, path: &str, body, print| Call {
        args,
        method,
        path: path.to_owned(),
        body,
        print,
    };
    Ok(match cmd {
        Command::Status { client } => {
            call(client, Method::GET, "/api/v1/status", None, print_status)
        }
        Command::Triggers { client } => call(
            client,
            Method::GET,
            "/api/v1/triggers",
            None,
            print_triggers,
        ),
        Command::Rollback {
            client,
            reason,
            dry_run,
        } => call(
            client,
            Method::POST,
            "/api/v1/rollback",
            Some(json!({"reason": reason, "dry_run": dry_run})),
            print_event,
        ),
        Command::Restore { client, reason } => call(
            client,
            Method::POST,
            "/api/v1/restore",
            Some(json!({"reason": reason})),
            print_event,
        ),
        Command::History {
            client,
            limit,
            trigger_type,
            status,
        } => {
            let mut q = format!("/api/v1/rollbacks?limit={limit}");
            if let Some(t) = trigger_type {
                q.push_str(&format!("&trigger_type={t}"));
            }
            if let Some(st) = status {
                q.push_str(&format!("&status={st}"));
            }
            call(client, Method::GET, &q, None, print_history)
        }
        Command::Monitoring { client, action } => call(
            client,
            Method::POST,
            &format!("/api/v1/monitoring/{action}"),
            None,
            |v| println!("monitoring active: {}", s(v, "/monitoring_active")),
        ),
        _ => return Err(anyhow!("not a client command")),
    })
}

pub async fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let call = call_for(cmd)?;
    let json_out = call.args.json;
    let client = Client::new(call.args);
    let value = client.call(call.method, &call.path, call.body).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        (call.print)(&value);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(value: &Value) {
    println!("mode              {}", s(value, "/mode"));
    println!("rollback ready    {}", s(value, "/rollback_ready"));
    println!("rolled back       {}", s(value, "/already_rolled_back"));
    println!(
        "monitoring        {} (automatic rollback {})",
        s(value, "/monitoring_active"),
        s(value, "/automatic_rollback")
    );
    println!("in progress       {}", s(value, "/in_progress"));
    println!(
        "agents            {}/{}",
        s(value, "/agents/healthy"),
        s(value, "/agents/expected")
    );
    println!(
        "target            {} up={}",
        s(value, "/target/url"),
        s(value, "/target/up")
    );
    println!("environment       {}", s(value, "/environment"));
    println!(
        "cooldown left     {} s",
        s(value, "/cooldown_remaining_seconds")
    );
    println!(
        "last event        {} {} {}",
        s(value, "/last_event/id"),
        s(value, "/last_event/action"),
        s(value, "/last_event/status")
    );
}

fn print_triggers(value: &Value) {
    println!(
        "{:<24} {:>10} {:>3} {:>9} {:>9} {:<9} {:<8}",
        "CONDITION", "VALUE", "OP", "WARNING", "CRITICAL", "STATUS", "TREND"
    );
    for c in value["conditions"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:>10} {:>3} {:>9} {:>9} {:<9} {:<8}",
            s(c, "/condition"),
            s(c, "/value"),
            s(c, "/operator"),
            s(c, "/warning_threshold"),
            s(c, "/critical_threshold"),
            s(c, "/status"),
            s(c, "/trend")
        );
    }
    println!("triggers detected: {}", s(value, "/triggers_detected"));
}

fn print_history(value: &Value) {
    println!(
        "{:<25} {:<8} {:<12} {:<11} {:>6} {:<10} REASON",
        "CREATED", "ACTION", "TRIGGER", "STATUS", "SCORE", "ACTOR"
    );
    for e in value["events"].as_array().into_iter().flatten() {
        println!(
            "{:<25} {:<8} {:<12} {:<11} {:>6} {:<10} {}",
            s(e, "/created_at"),
            s(e, "/action"),
            s(e, "/trigger_type"),
            s(e, "/status"),
            s(e, "/validation_score"),
            s(e, "/actor"),
            s(e, "/reason")
        );
    }
}
