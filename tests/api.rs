//! The HTTP surface end to end: a real simulator and a real daemon on 127.0.0.1:0, real
//! SQLite on disk, real Alertmanager payloads, a real WebSocket client, the real `promtool`
//! and the real binary for the CLI. Every wait is bounded.

mod common;

use common::*;
use futures_util::StreamExt;
use rollbackd::simulator::Scenario;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const LONG: Duration = Duration::from_secs(8);
/// The known-good profile's parameters.
fn profile() -> Value {
    json!({"confidence_threshold": 0.55, "risk_reward_ratio": 1.8})
}

/// The simulator's adaptive parameters before any rollback.
fn adaptive() -> Value {
    json!({"confidence_threshold": 0.62, "risk_reward_ratio": 2.1})
}

// ---- harness ------------------------------------------------------------------------------

/// Starts a simulator and a daemon and waits until the daemon has read the target once.
async fn env(o: Options) -> Env {
    let Env { app, sim, dir } = spawn(Scenario::Steady, &o).await;
    let a = &app;
    wait_for("the first poll of the target", LONG, move || async move {
        let s = a.engine.status();
        (s.target.up && s.mode == "session_targeted").then_some(())
    })
    .await;
    Env { app, sim, dir }
}

fn manual() -> Options {
    Options {
        automatic_rollback: false,
        ..Options::default()
    }
}

fn with_auth() -> Options {
    Options {
        automatic_rollback: false,
        auth: true,
        ..Options::default()
    }
}

/// A slow target: every answer of the simulator takes `delay_ms`, the daemon waits long enough.
fn slow() -> Options {
    Options {
        automatic_rollback: false,
        timeout: "4s",
        ..Options::default()
    }
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    json: Value,
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Resp {
    let mut r = app.http.request(method, format!("{}{path}", app.url));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    if let Some(b) = body {
        r = r.body(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        json,
    }
}

async fn get(app: &TestApp, path: &str) -> Resp {
    send(app, reqwest::Method::GET, path, None, None, None).await
}

async fn post_json(app: &TestApp, path: &str, body: &Value, token: Option<&str>) -> Resp {
    send(
        app,
        reqwest::Method::POST,
        path,
        token,
        Some("application/json"),
        Some(body.to_string().into_bytes()),
    )
    .await
}

/// Every error: the status, `{"error": {"code", "message"}}` and nothing else, JSON typed.
#[track_caller]
fn assert_error(r: &Resp, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "wanted {status} {code}, got: {}", r.text);
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "error content type {ct:?}"
    );
    let obj = r
        .json
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {}", r.text));
    assert_eq!(obj.len(), 1, "only `error` at the top: {}", r.text);
    let e = r.json["error"].as_object().expect("an error object");
    assert_eq!(e.len(), 2, "error has code and message only: {}", r.text);
    assert_eq!(r.json["error"]["code"], code, "{}", r.text);
    let msg = r.json["error"]["message"].as_str().expect("a message");
    assert!(!msg.trim().is_empty(), "empty message");
    msg.to_string()
}

async fn rollback(app: &TestApp, reason: &str, token: Option<&str>) -> Resp {
    post_json(app, "/api/v1/rollback", &json!({ "reason": reason }), token).await
}

async fn switches(sim: &TestSim) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{}/v1/sim/switches", sim.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["switches"].as_array().unwrap().clone()
}

async fn events_where(app: &TestApp, query: &str) -> Vec<Value> {
    let (code, v) = app
        .get(&format!("/api/v1/rollbacks?limit=500&{query}"))
        .await;
    assert_eq!(code, 200, "{v}");
    v["events"].as_array().unwrap().clone()
}

// ---- Prometheus text ------------------------------------------------------------------------

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A small parser of the text format: enough to hold the daemon's output to the contract.
fn parse_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => (&line[..i], &line[i..]),
            None => panic!("unparseable sample line {line:?}"),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = None;
            let mut key = String::new();
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = Some(i);
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                        let mut val = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => val.push(chars.next().unwrap().1),
                                '"' => break,
                                c => val.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), val);
                    }
                    c => key.push(c),
                }
            }
            rest = &body[end.expect("closing brace") + 1..];
        }
        let value = rest.split_whitespace().next().expect("a value");
        let value = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

fn type_of(text: &str, family: &str) -> Option<String> {
    let prefix = format!("# TYPE {family} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

/// One row of docs/metrics.md: name, type, label names with their documented values.
#[derive(Debug)]
struct DocMetric {
    name: String,
    kind: String,
    labels: Vec<(String, Vec<String>)>,
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Parses the doc's tables: every row whose first cell is a backticked metric name.
fn doc_metrics() -> (Vec<DocMetric>, BTreeMap<String, Vec<String>>) {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    let mut global: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut metrics = Vec::new();
    for line in doc.lines() {
        // "- `condition_type`: `walk_forward_stability`, ..." gives a label's values.
        if let Some(rest) = line.strip_prefix("- `") {
            if let (Some((label, _)), Some((_, values))) =
                (rest.split_once('`'), rest.split_once(':'))
            {
                global.insert(label.to_string(), backticked(values));
            }
            continue;
        }
        if !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(cells.len() >= 5, "a metrics table row has 4 cells: {line}");
        let name = backticked(cells[1]);
        assert_eq!(name.len(), 1, "one metric per row: {line}");
        // Labels: backticked names outside parentheses, their values inside.
        let mut labels: Vec<(String, Vec<String>)> = Vec::new();
        let mut depth = 0;
        let mut in_tick = false;
        let mut tok = String::new();
        for c in cells[3].chars() {
            match c {
                '`' if in_tick => {
                    in_tick = false;
                    let t = std::mem::take(&mut tok);
                    if depth == 0 {
                        labels.push((t, Vec::new()));
                    } else {
                        labels.last_mut().expect("values follow a label").1.push(t);
                    }
                }
                '`' => in_tick = true,
                c if in_tick => tok.push(c),
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
        }
        metrics.push(DocMetric {
            name: name[0].clone(),
            kind: cells[2].to_string(),
            labels,
        });
    }
    assert!(
        metrics.len() >= 40,
        "the doc's tables were read: {}",
        metrics.len()
    );
    (metrics, global)
}

async fn scrape(app: &TestApp, accept: Option<&str>) -> (String, String) {
    let mut r = app.http.get(format!("{}/metrics", app.url));
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    let resp = r.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    (ct, resp.text().await.unwrap())
}

/// The real promtool: exit 0 means the text parsed and no lint problem was found.
fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run promtool ({e}): install the Debian package `prometheus` (apt-get install prometheus), which provides /usr/bin/promtool; this test does not skip"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{said}\n--- scraped text ---\n{text}",
        out.status
    );
    assert!(
        said.trim().is_empty(),
        "promtool printed lint problems:\n{said}"
    );
}

// ---- /metrics -------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_the_seed_five_exist_from_the_first_scrape_with_exact_names_types_labels() {
    let e = env(manual()).await;
    let (_, text) = scrape(&e.app, None).await;
    assert_eq!(
        type_of(&text, "rollback_system_ready").as_deref(),
        Some("gauge")
    );
    assert_eq!(
        metric(&text, "rollback_system_ready"),
        Some(1.0),
        "target up, nothing in progress"
    );

    assert_eq!(
        type_of(&text, "rollback_events_total").as_deref(),
        Some("counter")
    );
    for t in ["watchdog", "alertmanager", "manual"] {
        assert_eq!(
            metric(
                &text,
                &format!("rollback_events_total{{trigger_type=\"{t}\"}}")
            ),
            Some(0.0),
            "rollback_events_total{{trigger_type={t:?}}} at 0 from the start"
        );
    }
    let samples = parse_samples(&text);
    let events: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "rollback_events_total")
        .collect();
    assert_eq!(
        events.len(),
        3,
        "exactly the three trigger types: {events:?}"
    );

    assert_eq!(
        type_of(&text, "trigger_conditions_active").as_deref(),
        Some("gauge")
    );
    for c in [
        "walk_forward_stability",
        "overfitting_score",
        "consecutive_losses",
        "max_drawdown",
    ] {
        assert_eq!(
            metric(
                &text,
                &format!("trigger_conditions_active{{condition_type=\"{c}\"}}")
            ),
            Some(0.0),
            "{c}"
        );
    }
    assert_eq!(
        samples
            .iter()
            .filter(|s| s.name == "trigger_conditions_active")
            .count(),
        4
    );

    assert_eq!(
        type_of(&text, "recovery_validation_score").as_deref(),
        Some("gauge")
    );
    assert!(
        metric(&text, "recovery_validation_score").unwrap().is_nan(),
        "NaN before the first validation"
    );

    assert_eq!(
        type_of(&text, "rollback_execution_time_seconds").as_deref(),
        Some("histogram")
    );
    let les: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == "rollback_execution_time_seconds_bucket")
        .map(|s| {
            assert_eq!(s.labels.keys().collect::<Vec<_>>(), ["le"], "{s:?}");
            s.labels["le"].parse::<f64>().unwrap()
        })
        .collect();
    assert_eq!(
        les.first(),
        Some(&0.01),
        "the first bucket is 10 ms: {les:?}"
    );
    assert_eq!(
        les.iter().rev().nth(1),
        Some(&30.0),
        "the last finite bucket is 30 s: {les:?}"
    );
    assert_eq!(les.last(), Some(&f64::INFINITY));
    assert!(
        les.windows(2).all(|w| w[0] < w[1]),
        "buckets ascend: {les:?}"
    );
    assert_eq!(
        metric(&text, "rollback_execution_time_seconds_count"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "rollback_execution_time_seconds_sum"),
        Some(0.0)
    );

    // After one manual rollback the seed's five move.
    let r = rollback(&e.app, "drawdown spike", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, text) = scrape(&e.app, None).await;
    assert_eq!(
        metric(&text, "rollback_events_total{trigger_type=\"manual\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "rollback_events_total{trigger_type=\"watchdog\"}"),
        Some(0.0)
    );
    assert_eq!(metric(&text, "recovery_validation_score"), Some(100.0));
    assert_eq!(
        metric(&text, "rollback_execution_time_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "rollback_execution_time_seconds_bucket{le=\"+Inf\"}"),
        Some(1.0)
    );
    let sum = metric(&text, "rollback_execution_time_seconds_sum").unwrap();
    assert!(sum > 0.0 && sum < 5.0, "execution time {sum}");
}

#[tokio::test]
async fn metrics_every_documented_metric_is_exported_with_its_labels_and_values() {
    let e = env(manual()).await;
    let (metrics, global) = doc_metrics();
    for l in ["condition_type", "trigger_type", "severity", "mode"] {
        assert!(
            global.contains_key(l),
            "the doc lists values for {l}: {global:?}"
        );
    }
    let (_, text) = scrape(&e.app, None).await;
    let samples = parse_samples(&text);

    let check = |text: &str, samples: &[Sample], after_rollback: bool| {
        for m in &metrics {
            // Naming rules of the text format.
            match m.kind.as_str() {
                "counter" => assert!(
                    m.name.ends_with("_total"),
                    "counter {} ends in _total",
                    m.name
                ),
                "gauge" => assert!(
                    !m.name.ends_with("_total"),
                    "gauge {} must not end in _total",
                    m.name
                ),
                "histogram" => assert!(
                    !m.name.ends_with("_bucket") && !m.name.ends_with("_count"),
                    "histogram {} is named by its family",
                    m.name
                ),
                other => panic!("unknown type {other:?} for {} in docs/metrics.md", m.name),
            }
            if m.name == "rollback_last_event_info" && !after_rollback {
                assert!(
                    type_of(text, &m.name).is_none() && !text.contains("rollback_last_event_info{"),
                    "absent before the first rollback"
                );
                continue;
            }
            assert_eq!(
                type_of(text, &m.name).as_deref(),
                Some(m.kind.as_str()),
                "`# TYPE {} {}` in the scrape",
                m.name,
                m.kind
            );
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| {
                    if m.kind == "histogram" {
                        [
                            format!("{}_bucket", m.name),
                            format!("{}_sum", m.name),
                            format!("{}_count", m.name),
                        ]
                        .contains(&s.name)
                    } else {
                        s.name == m.name
                    }
                })
                .collect();
            if m.name == "rollback_last_event_info" {
                assert_eq!(
                    mine.len(),
                    1,
                    "one series for the latest rollback: {mine:?}"
                );
                assert_eq!(mine[0].value, 1.0);
            }
            assert!(!mine.is_empty(), "{} has samples", m.name);
            let want: BTreeSet<&str> = m.labels.iter().map(|(l, _)| l.as_str()).collect();
            for s in &mine {
                let mut have: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
                if s.name.ends_with("_bucket") && m.kind == "histogram" {
                    assert!(have.remove("le"), "{s:?}");
                }
                assert_eq!(have, want, "labels of {}", s.name);
            }
            // Every documented label value exists from the first scrape (all combinations).
            let known: Vec<(&str, Vec<String>)> = m
                .labels
                .iter()
                .filter_map(|(l, vals)| {
                    let vals = if vals.is_empty() {
                        global.get(l).cloned()?
                    } else {
                        vals.clone()
                    };
                    Some((l.as_str(), vals))
                })
                .collect();
            if m.name == "rollback_last_event_info" || known.len() != m.labels.len() {
                continue;
            }
            let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
            for (l, vals) in &known {
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        vals.iter().map(move |v| {
                            let mut c = c.clone();
                            c.insert(l.to_string(), v.clone());
                            c
                        })
                    })
                    .collect();
            }
            for c in combos {
                assert!(
                    mine.iter().any(|s| {
                        let mut l = s.labels.clone();
                        l.remove("le");
                        l == c
                    }),
                    "{} has a series for {c:?}",
                    m.name
                );
            }
        }
        // And the other way round: every family rollbackd exports is documented.
        let documented: BTreeSet<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let family = rest.split(' ').next().unwrap();
                assert!(
                    documented.contains(family),
                    "{family} is exported but not in docs/metrics.md"
                );
            }
        }
    };
    check(&text, &samples, false);

    // The process metrics hold real values.
    let v = |name: &str| metric(&text, name).unwrap_or_else(|| panic!("{name}"));
    assert!(v("process_resident_memory_bytes") > 1e6);
    assert!(v("process_virtual_memory_bytes") >= v("process_resident_memory_bytes"));
    assert!(v("process_open_fds") >= 3.0);
    assert!(v("process_max_fds") >= v("process_open_fds"));
    assert!(v("process_cpu_seconds_total") >= 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = v("process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "start time {started} vs now {now}"
    );
    assert_eq!(v("rollback_agents_expected"), 8.0);
    assert_eq!(v("rollback_agents_healthy"), 8.0);
    assert_eq!(v("rollback_target_up"), 1.0);
    assert_eq!(v("rollback_mode{mode=\"session_targeted\"}"), 1.0);
    assert_eq!(v("rollback_mode{mode=\"unknown\"}"), 0.0);
    assert_eq!(v("rollback_automatic_enabled"), 0.0);
    assert_eq!(v("recovery_validation_pass_score"), 85.0);
    assert_eq!(v("rollbackd_build_info{version=\"0.1.0\"}"), 1.0);

    let r = rollback(&e.app, "for the last event series", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let (_, text) = scrape(&e.app, None).await;
    let samples = parse_samples(&text);
    check(&text, &samples, true);
    assert_eq!(
        metric(
            &text,
            &format!("rollback_last_event_info{{event_id=\"{id}\",trigger_type=\"manual\",status=\"completed\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "rollback_mode{mode=\"universal_cycle_4\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "rollback_outcomes_total{status=\"completed\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "recovery_validations_total{kind=\"initial\",result=\"pass\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "rollback_target_requests_total{operation=\"switch\",result=\"ok\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn metrics_content_negotiation_openmetrics_or_text_004() {
    let e = env(manual()).await;
    let (ct, text) = scrape(&e.app, None).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert!(
        !text.contains("# EOF"),
        "no OpenMetrics terminator in 0.0.4"
    );
    assert!(text.contains("# TYPE rollback_events_total counter"));

    let (ct, om) = scrape(&e.app, Some("application/openmetrics-text; version=1.0.0")).await;
    assert!(
        ct.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ct}"
    );
    assert!(om.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert!(
        om.contains("# TYPE rollback_events counter"),
        "OpenMetrics names the counter family without _total"
    );
    assert!(om.contains("rollback_events_total{trigger_type=\"manual\"} 0"));

    // Exactly what Prometheus 2.x sends.
    let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (ct, om) = scrape(&e.app, Some(prom)).await;
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"));
    // A plain scraper.
    let (ct, _) = scrape(&e.app, Some("text/plain")).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
}

#[tokio::test]
async fn metrics_pass_the_real_promtool_check_before_and_after_a_rollback() {
    let e = env(manual()).await;
    let (_, text) = scrape(&e.app, None).await;
    promtool_check(&text);
    let r = rollback(&e.app, "for promtool", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, text) = scrape(&e.app, None).await;
    assert!(text.contains("rollback_last_event_info{"));
    promtool_check(&text);
}

// ---- health ---------------------------------------------------------------------------------

#[tokio::test]
async fn healthy_and_ready() {
    let e = env(manual()).await;
    let r = get(&e.app, "/-/healthy").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text.trim(), "OK");
    let r = get(&e.app, "/-/ready").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"ready": true}));
}

// ---- JSON API -------------------------------------------------------------------------------

#[tokio::test]
async fn status_and_triggers_have_the_documented_shapes() {
    let e = env(Options {
        environment: Some("production"),
        ..manual()
    })
    .await;
    let (code, s) = e.app.get("/api/v1/status").await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["mode"], "session_targeted");
    assert_eq!(s["rollback_ready"], true);
    assert_eq!(s["already_rolled_back"], false);
    assert_eq!(s["monitoring_active"], true);
    assert_eq!(s["automatic_rollback"], false);
    assert_eq!(s["in_progress"], Value::Null);
    assert_eq!(s["last_event"], Value::Null);
    assert_eq!(s["agents"], json!({"healthy": 8, "expected": 8}));
    assert_eq!(s["target"]["url"], e.sim.url.as_str());
    assert_eq!(s["target"]["up"], true);
    let last = s["target"]["last_success"]
        .as_str()
        .expect("last_success is a time");
    assert!(chrono::DateTime::parse_from_rfc3339(last).is_ok(), "{last}");
    assert_eq!(s["environment"], "production");
    assert_eq!(s["cooldown_remaining_seconds"], 0.0);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));

    let (code, t) = e.app.get("/api/v1/triggers").await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["environment"], "production");
    assert_eq!(t["triggers_detected"], json!([]));
    assert!(chrono::DateTime::parse_from_rfc3339(t["updated_at"].as_str().unwrap()).is_ok());
    let conds = t["conditions"].as_array().unwrap();
    let want = [
        ("walk_forward_stability", "<", 50.0, 40.0, 72.5),
        ("overfitting_score", ">", 0.4, 0.5, 0.21),
        // production: consecutive_losses.critical_threshold: 6
        ("consecutive_losses", ">=", 4.0, 6.0, 1.0),
        ("max_drawdown", ">=", 3.5, 5.0, 1.2),
    ];
    assert_eq!(conds.len(), 4, "{t}");
    for (name, op, warn, crit, value) in want {
        let c = conds
            .iter()
            .find(|c| c["condition"] == name)
            .unwrap_or_else(|| panic!("{name} in {t}"));
        assert_eq!(c["operator"], op, "{c}");
        assert_eq!(c["warning_threshold"].as_f64(), Some(warn), "{c}");
        assert_eq!(c["critical_threshold"].as_f64(), Some(crit), "{c}");
        assert_eq!(c["value"].as_f64(), Some(value), "{c}");
        assert_eq!(c["status"], "ok", "{c}");
        assert!(
            ["rising", "falling", "steady"].contains(&c["trend"].as_str().unwrap()),
            "{c}"
        );
        assert!(c["description"].is_string(), "{c}");
    }
    let text = e.app.metrics().await;
    assert_eq!(
        metric(&text, "trigger_condition_threshold{condition_type=\"consecutive_losses\",severity=\"critical\"}"),
        Some(6.0)
    );
    assert_eq!(
        metric(
            &text,
            "rollbackd_environment_info{environment=\"production\"}"
        ),
        Some(1.0)
    );

    // A critical value shows up as detected, with the condition's status.
    e.sim
        .put("/v1/sim/metrics", json!({"max_drawdown": 5.5}))
        .await;
    let a = &e.app;
    let t = wait_for("max_drawdown critical", LONG, move || async move {
        let (_, t) = a.get("/api/v1/triggers").await;
        (t["triggers_detected"] == json!(["max_drawdown"])).then_some(t)
    })
    .await;
    let c = t["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition"] == "max_drawdown")
        .unwrap();
    assert_eq!(c["status"], "critical");
    assert_eq!(c["value"], 5.5);
    let text = e.app.metrics().await;
    assert_eq!(
        metric(
            &text,
            "trigger_conditions_active{condition_type=\"max_drawdown\"}"
        ),
        Some(1.0)
    );
    assert!(
        e.app.events().await.is_empty(),
        "automatic rollback is off: the watchdog only watches"
    );
}

#[tokio::test]
async fn a_manual_rollback_returns_the_completed_validated_event() {
    let e = env(manual()).await;
    let r = rollback(&e.app, "  drawdown spike on desk 3  ", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ev = &r.json;
    assert_eq!(ev["status"], "completed", "{ev}");
    assert_eq!(ev["action"], "rollback");
    assert_eq!(ev["trigger_type"], "manual");
    assert_eq!(ev["source"], "api");
    assert_eq!(ev["reason"], "drawdown spike on desk 3", "trimmed");
    assert_eq!(ev["actor"], "anonymous", "no tokens configured");
    assert_eq!(ev["dry_run"], false);
    assert_eq!(ev["mode_before"], "session_targeted");
    assert_eq!(ev["parameters_before"], adaptive());
    assert_eq!(ev["target_mode"], "universal_cycle_4");
    assert_eq!(ev["target_parameters"], profile());
    assert_eq!(ev["parameters_after"], profile());
    assert_eq!(ev["validation_score"], 100.0);
    assert_eq!(ev["suppressed_reason"], Value::Null);
    assert_eq!(ev["failure_reason"], Value::Null);
    assert_eq!(ev["alert_names"], json!([]));
    assert_eq!(ev["fingerprints"], json!([]));
    assert_eq!(ev["conditions"].as_array().unwrap().len(), 4);
    assert!(ev["duration_ms"].as_u64().is_some(), "{ev}");
    assert!(chrono::DateTime::parse_from_rfc3339(ev["created_at"].as_str().unwrap()).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(ev["finished_at"].as_str().unwrap()).is_ok());

    let sw = switches(&e.sim).await;
    assert_eq!(sw.len(), 1, "{sw:?}");
    assert_eq!(sw[0]["event_id"], ev["id"]);
    assert_eq!(sw[0]["mode"], "universal_cycle_4");
    assert_eq!(sw[0]["parameters"], profile());
    assert_eq!(e.sim.status().await["mode"], "universal_cycle_4");

    let (_, s) = e.app.get("/api/v1/status").await;
    assert_eq!(s["mode"], "universal_cycle_4");
    assert_eq!(s["already_rolled_back"], true);
    assert_eq!(s["last_event"]["id"], ev["id"]);
}

#[tokio::test]
async fn a_dry_run_is_recorded_and_never_touches_the_target() {
    let e = env(manual()).await;
    let r = post_json(
        &e.app,
        "/api/v1/rollback",
        &json!({"reason": "rehearsal", "dry_run": true}),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "dry_run");
    assert_eq!(r.json["dry_run"], true);
    assert!(
        r.json["note"]
            .as_str()
            .unwrap()
            .contains("would switch to universal_cycle_4"),
        "{}",
        r.text
    );
    assert!(
        switches(&e.sim).await.is_empty(),
        "the simulator saw no switch"
    );
    assert_eq!(e.sim.status().await["mode"], "session_targeted");
    let stored = events_where(&e.app, "status=dry_run").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], r.json["id"]);
    let text = e.app.metrics().await;
    assert_eq!(metric(&text, "rollback_dry_runs_total"), Some(1.0));
    assert_eq!(
        metric(&text, "rollback_events_total{trigger_type=\"manual\"}"),
        Some(0.0),
        "a dry run is not executed"
    );
}

#[tokio::test]
async fn a_second_rollback_is_409_already_rolled_back_and_recorded_as_suppressed() {
    let e = env(manual()).await;
    assert_eq!(rollback(&e.app, "first", None).await.status, 200);
    let r = rollback(&e.app, "second", None).await;
    let msg = assert_error(&r, 409, "already_rolled_back");
    let suppressed = events_where(&e.app, "status=suppressed").await;
    assert_eq!(suppressed.len(), 1, "{suppressed:?}");
    assert_eq!(suppressed[0]["suppressed_reason"], "already_rolled_back");
    assert_eq!(suppressed[0]["reason"], "second");
    let id = suppressed[0]["id"].as_str().unwrap();
    assert!(
        msg.contains(id),
        "the message names the suppressed event: {msg}"
    );
    assert_eq!(switches(&e.sim).await.len(), 1, "no second switch");
    let text = e.app.metrics().await;
    assert_eq!(
        metric(
            &text,
            "rollback_suppressed_total{reason=\"already_rolled_back\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "rollback_events_total{trigger_type=\"manual\"}"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rollbacks_execute_once_and_the_other_is_409_in_progress() {
    let e = env(slow()).await;
    e.sim
        .put("/v1/sim/scenario", json!({"delay_ms": 1500}))
        .await;
    let started = Instant::now();
    let (a, b) = tokio::join!(
        rollback(&e.app, "desk A", None),
        rollback(&e.app, "desk B", None)
    );
    let (ok, conflict) = if a.status == 200 { (a, b) } else { (b, a) };
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["status"], "completed", "{}", ok.text);
    let msg = assert_error(&conflict, 409, "rollback_in_progress");
    assert!(
        msg.contains(ok.json["id"].as_str().unwrap()),
        "names the executing event: {msg}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the target really was slow"
    );
    let suppressed = events_where(&e.app, "status=suppressed").await;
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0]["suppressed_reason"], "in_progress");
    assert_eq!(switches(&e.sim).await.len(), 1);
    let text = e.app.metrics().await;
    assert_eq!(
        metric(&text, "rollback_suppressed_total{reason=\"in_progress\"}"),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_is_visible_in_status_and_metrics_while_a_rollback_executes() {
    let e = env(slow()).await;
    e.sim
        .put("/v1/sim/scenario", json!({"delay_ms": 1000}))
        .await;
    let app = &e.app;
    let (r, seen) = tokio::join!(rollback(app, "slow one", None), async move {
        wait_for("in_progress in the status", LONG, move || async move {
            let (_, s) = app.get("/api/v1/status").await;
            s["in_progress"]
                .as_str()
                .map(|id| (id.to_string(), s["rollback_ready"].clone()))
        })
        .await
    });
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(seen.0, r.json["id"].as_str().unwrap());
    assert_eq!(seen.1, false, "not ready while one executes");
    let (_, s) = app.get("/api/v1/status").await;
    assert_eq!(s["in_progress"], Value::Null);
}

#[tokio::test]
async fn restore_needs_admin_returns_to_session_targeted_and_409_when_not_rolled_back() {
    let e = env(with_auth()).await;
    let r = post_json(
        &e.app,
        "/api/v1/restore",
        &json!({"reason": "all clear"}),
        Some(ADMIN_TOKEN),
    )
    .await;
    let msg = assert_error(&r, 409, "not_rolled_back");
    assert!(msg.contains("session_targeted"), "{msg}");

    let r = rollback(&e.app, "spike", Some(OPS_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = post_json(
        &e.app,
        "/api/v1/restore",
        &json!({"reason": "all clear"}),
        Some(OPS_TOKEN),
    )
    .await;
    let msg = assert_error(&r, 403, "forbidden");
    assert!(msg.contains("admin"), "{msg}");
    let r = post_json(
        &e.app,
        "/api/v1/restore",
        &json!({"reason": "all clear"}),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["action"], "restore");
    assert_eq!(r.json["status"], "completed", "{}", r.text);
    assert_eq!(r.json["actor"], "boss");
    assert_eq!(r.json["target_mode"], "session_targeted");
    assert_eq!(
        r.json["target_parameters"],
        adaptive(),
        "the adaptive parameters come back"
    );
    let sim = e.sim.status().await;
    assert_eq!(sim["mode"], "session_targeted");
    assert_eq!(sim["parameters"], adaptive());
    let (_, s) = e.app.get("/api/v1/status").await;
    assert_eq!(s["mode"], "session_targeted");
    let r = post_json(
        &e.app,
        "/api/v1/restore",
        &json!({"reason": "again"}),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_error(&r, 409, "not_rolled_back");

    // A second cycle restores the adaptive parameters again.
    assert_eq!(
        rollback(&e.app, "spike 2", Some(ADMIN_TOKEN)).await.status,
        200
    );
    let r = post_json(
        &e.app,
        "/api/v1/restore",
        &json!({"reason": "clear 2"}),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["target_parameters"], adaptive());
    let text = e.app.metrics().await;
    assert_eq!(
        metric(&text, "rollback_events_total{trigger_type=\"manual\"}"),
        Some(2.0),
        "restores are not rollbacks"
    );
}

#[tokio::test]
async fn monitoring_stop_and_start_show_in_status_and_the_metric() {
    let e = env(with_auth()).await;
    for (path, active) in [("stop", false), ("start", true), ("stop", false)] {
        let r = send(
            &e.app,
            reqwest::Method::POST,
            &format!("/api/v1/monitoring/{path}"),
            Some(OPS_TOKEN),
            None,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json, json!({"monitoring_active": active}));
        let (_, s) = e.app.get("/api/v1/status").await;
        assert_eq!(s["monitoring_active"], active);
        let text = e.app.metrics().await;
        assert_eq!(
            metric(&text, "rollback_monitoring_active"),
            Some(active as u8 as f64)
        );
    }
    // `{}` is accepted as a body too.
    let r = post_json(
        &e.app,
        "/api/v1/monitoring/start",
        &json!({}),
        Some(OPS_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"monitoring_active": true}));
    let r = send(
        &e.app,
        reqwest::Method::POST,
        "/api/v1/monitoring/stop",
        Some(VIEWER_TOKEN),
        None,
        None,
    )
    .await;
    assert_error(&r, 403, "forbidden");
    let r = send(
        &e.app,
        reqwest::Method::POST,
        "/api/v1/monitoring/stop",
        None,
        None,
        None,
    )
    .await;
    assert_error(&r, 401, "unauthorized");
    assert!(
        e.app.engine.status().monitoring_active,
        "refused requests change nothing"
    );
}

#[tokio::test]
async fn bad_bodies_get_400_415_413_in_the_error_shape() {
    let e = env(manual()).await;
    let app = &e.app;
    let post = |body: Value| async move { post_json(app, "/api/v1/rollback", &body, None).await };

    let m = assert_error(&post(json!({})).await, 400, "invalid_request");
    assert!(m.contains("reason"), "{m}");
    let m = assert_error(
        &post(json!({"reason": "   \n\t"})).await,
        400,
        "invalid_request",
    );
    assert!(m.contains("reason"), "{m}");
    assert_error(&post(json!({"reason": ""})).await, 400, "invalid_request");
    let m = assert_error(
        &post(json!({"reason": "x".repeat(501)})).await,
        400,
        "invalid_request",
    );
    assert!(m.contains("500"), "{m}");
    let r = post(json!({"reason": "y".repeat(500), "dry_run": true})).await;
    assert_eq!(r.status, 200, "500 characters are fine: {}", r.text);
    // 500 characters counted as characters, not bytes.
    let r = post(json!({"reason": "é".repeat(500), "dry_run": true})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = assert_error(
        &post(json!({"reason": "x", "force": true})).await,
        400,
        "invalid_request",
    );
    assert!(
        m.contains("force"),
        "the message names the unknown field: {m}"
    );
    let m = assert_error(
        &post(json!({"reason": "x", "dry_run": "yes"})).await,
        400,
        "invalid_request",
    );
    assert!(m.contains("dry_run"), "{m}");
    let m = assert_error(&post(json!({"reason": 7})).await, 400, "invalid_request");
    assert!(m.contains("reason"), "{m}");
    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/rollback",
        None,
        Some("application/json"),
        Some(b"{\"reason\": ".to_vec()),
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/rollback",
        None,
        Some("application/json"),
        Some(b"[1,2]".to_vec()),
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/rollback",
        None,
        Some("application/json"),
        None,
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/rollback",
        None,
        Some("text/plain"),
        Some(b"{\"reason\":\"x\"}".to_vec()),
    )
    .await;
    assert_error(&r, 415, "unsupported_media_type");
    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/rollback",
        None,
        None,
        Some(b"{\"reason\":\"x\"}".to_vec()),
    )
    .await;
    assert_error(&r, 415, "unsupported_media_type");
    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/rollback",
        None,
        Some("application/json; charset=utf-8"),
        Some(
            json!({"reason": "charset ok", "dry_run": true})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "a charset parameter is fine: {}", r.text);
    let big = json!({"reason": "x", "pad": "p".repeat(100 * 1024)})
        .to_string()
        .into_bytes();
    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/rollback",
        None,
        Some("application/json"),
        Some(big),
    )
    .await;
    assert_error(&r, 413, "payload_too_large");
    let r = post_json(
        app,
        "/api/v1/restore",
        &json!({"reason": "x", "extra": 1}),
        None,
    )
    .await;
    let m = assert_error(&r, 400, "invalid_request");
    assert!(m.contains("extra"), "{m}");
    let r = post_json(app, "/api/v1/restore", &json!({"reason": " "}), None).await;
    assert_error(&r, 400, "invalid_request");

    assert!(
        switches(&e.sim).await.is_empty(),
        "nothing reached the target"
    );
    assert_eq!(
        events_where(app, "").await.len(),
        3,
        "only the three good dry runs were recorded"
    );
}

#[tokio::test]
async fn unknown_routes_events_and_methods_get_json_404_and_405() {
    let e = env(manual()).await;
    let app = &e.app;
    let r = get(app, "/api/v1/nope").await;
    assert_error(&r, 404, "not_found");
    let r = get(app, "/definitely/not/here").await;
    assert_error(&r, 404, "not_found");
    let r = get(
        app,
        "/api/v1/rollbacks/0193c0de-0000-7000-8000-000000000000",
    )
    .await;
    let m = assert_error(&r, 404, "not_found");
    assert!(m.contains("0193c0de-0000-7000-8000-000000000000"), "{m}");
    let r = get(app, "/api/v1/rollback").await;
    assert_error(&r, 405, "method_not_allowed");
    let r = send(
        app,
        reqwest::Method::DELETE,
        "/api/v1/rollbacks",
        None,
        None,
        None,
    )
    .await;
    assert_error(&r, 405, "method_not_allowed");
    let r = get(app, "/api/v1/alertmanager").await;
    assert_error(&r, 405, "method_not_allowed");
    let r = send(app, reqwest::Method::POST, "/metrics", None, None, None).await;
    assert_error(&r, 405, "method_not_allowed");
}

#[tokio::test]
async fn history_pages_newest_first_and_filters() {
    let e = env(manual()).await;
    let app = &e.app;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = post_json(
            app,
            "/api/v1/rollback",
            &json!({"reason": format!("rehearsal {i}"), "dry_run": true}),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        ids.push(r.json["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let middle = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = rollback(app, "real", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    ids.push(r.json["id"].as_str().unwrap().to_string());
    let r = rollback(app, "again", None).await;
    assert_eq!(r.status, 409);
    ids.push(
        events_where(app, "status=suppressed").await[0]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    ids.reverse(); // newest first

    let all: Vec<String> = events_where(app, "")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all, ids, "newest first");

    // Follow next_before through pages of 2.
    let mut seen = Vec::new();
    let mut path = "/api/v1/rollbacks?limit=2".to_string();
    for _ in 0..10 {
        let (code, page) = app.get(&path).await;
        assert_eq!(code, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        seen.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match page["next_before"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), events.last().and_then(|e| e["id"].as_str()));
                path = format!("/api/v1/rollbacks?limit=2&before={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ids, "paging visits every event once, in order");
    let (_, page) = app.get("/api/v1/rollbacks?limit=50").await;
    assert_eq!(
        page["next_before"],
        Value::Null,
        "no next page when all fit"
    );
    let (_, page) = app.get("/api/v1/rollbacks").await;
    assert_eq!(
        page["events"].as_array().unwrap().len(),
        7,
        "default limit 50"
    );

    let ids_of = |v: Vec<Value>| {
        v.iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids_of(events_where(app, "status=dry_run").await),
        ids[2..].to_vec()
    );
    assert_eq!(
        ids_of(events_where(app, "status=completed").await),
        vec![ids[1].clone()]
    );
    assert_eq!(
        ids_of(events_where(app, "status=suppressed").await),
        vec![ids[0].clone()]
    );
    assert_eq!(events_where(app, "trigger_type=manual").await.len(), 7);
    assert!(events_where(app, "trigger_type=watchdog").await.is_empty());
    assert!(events_where(app, "trigger_type=alertmanager")
        .await
        .is_empty());
    let m = middle.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(
        ids_of(events_where(app, &format!("since={m}")).await),
        ids[..2].to_vec()
    );
    assert_eq!(
        ids_of(events_where(app, &format!("until={m}")).await),
        ids[2..].to_vec()
    );
    assert_eq!(
        ids_of(events_where(app, &format!("until={m}&status=dry_run&limit=2")).await),
        ids[2..4].to_vec()
    );
    // An offset written with +00:00 (percent-encoded) means the same instant.
    let plus = middle.format("%Y-%m-%dT%H:%M:%S%.3f%%2B00:00").to_string();
    assert_eq!(
        ids_of(events_where(app, &format!("since={plus}")).await),
        ids[..2].to_vec()
    );
    assert_eq!(
        ids_of(events_where(app, &format!("before={}", ids[1])).await),
        ids[2..].to_vec()
    );
}

#[tokio::test]
async fn history_rejects_bad_queries_with_400() {
    let e = env(manual()).await;
    let app = &e.app;
    for (q, needle) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("sort=asc", "sort"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("trigger_type=cron", "trigger_type"),
        ("status=done", "status"),
        ("before=no-such-event", "before"),
    ] {
        let r = get(app, &format!("/api/v1/rollbacks?{q}")).await;
        let m = assert_error(&r, 400, "invalid_request");
        assert!(m.contains(needle), "{q}: {m}");
    }
    for (q, needle) in [
        ("limit=0", "limit"),
        ("before=abc", "before"),
        ("kind=initial", "kind"),
    ] {
        let r = get(app, &format!("/api/v1/validations?{q}")).await;
        let m = assert_error(&r, 400, "invalid_request");
        assert!(m.contains(needle), "{q}: {m}");
    }
}

#[tokio::test]
async fn an_event_shows_its_transitions_and_validations_and_validations_page() {
    let e = env(manual()).await;
    let app = &e.app;
    let r = rollback(app, "for the record", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    // The stability watch (1 s window in tests) adds a second validation.
    let path = format!("/api/v1/validations?event_id={id}");
    let path = path.as_str();
    let runs = wait_for("the stability validation", LONG, move || async move {
        let (_, v) = app.get(path).await;
        let runs = v["validations"].as_array()?.clone();
        (runs.len() == 2).then_some(runs)
    })
    .await;
    assert_eq!(runs[0]["kind"], "stability", "newest first: {runs:?}");
    assert_eq!(runs[1]["kind"], "initial");
    for run in &runs {
        assert_eq!(run["event_id"], id.as_str());
        assert_eq!(run["passed"], true, "{run}");
        assert_eq!(run["pass_score"], 85.0);
        assert!(run["id"].as_i64().is_some());
        assert!(run["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"].is_string()
                && c["weight"].is_number()
                && c["passed"].is_boolean()
                && c["detail"].is_string()));
    }
    assert_eq!(runs[1]["score"], 100.0);
    assert!(
        runs[0]["note"].as_str().unwrap().contains("stable"),
        "{}",
        runs[0]
    );

    let (code, ev) = app.get(&format!("/api/v1/rollbacks/{id}")).await;
    assert_eq!(code, 200, "{ev}");
    let statuses: Vec<&str> = ev["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["pending", "executing", "validating", "completed"]
    );
    assert!(ev["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["at"].is_string()));
    let kinds: Vec<&str> = ev["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "{ev}");
    assert!(kinds.contains(&"initial") && kinds.contains(&"stability"));
    // The list does not carry them.
    let listed = &events_where(app, "").await[0];
    assert!(
        listed.get("transitions").is_none() && listed.get("validations").is_none(),
        "{listed}"
    );

    // Paging validations: limit, before, next_before.
    let (_, v) = app.get("/api/v1/validations?limit=1").await;
    let first = &v["validations"].as_array().unwrap()[0];
    assert_eq!(first["id"], runs[0]["id"]);
    assert_eq!(v["next_before"], runs[0]["id"]);
    let (_, v) = app
        .get(&format!(
            "/api/v1/validations?limit=1&before={}",
            v["next_before"]
        ))
        .await;
    assert_eq!(v["validations"].as_array().unwrap()[0]["id"], runs[1]["id"]);
    let (_, v) = app
        .get(&format!("/api/v1/validations?before={}", runs[1]["id"]))
        .await;
    assert_eq!(v["validations"], json!([]));
    assert_eq!(v["next_before"], Value::Null);
    let (_, v) = app.get("/api/v1/validations?event_id=someone-else").await;
    assert_eq!(v["validations"], json!([]));
}

// ---- auth -----------------------------------------------------------------------------------

#[tokio::test]
async fn auth_401_403_and_the_actor_is_the_token_name() {
    let e = env(with_auth()).await;
    let app = &e.app;
    let r = rollback(app, "no token", None).await;
    assert_error(&r, 401, "unauthorized");
    let www = r
        .headers
        .get("www-authenticate")
        .expect("WWW-Authenticate on 401");
    assert!(www.to_str().unwrap().starts_with("Bearer"), "{www:?}");
    let r = rollback(app, "bad token", Some("not-a-configured-token-000")).await;
    assert_error(&r, 401, "unauthorized");
    assert!(r.headers.get("www-authenticate").is_some());
    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/rollback",
        None,
        Some("application/json"),
        Some(b"{\"reason\":\"x\"}".to_vec()),
    )
    .await;
    assert_error(&r, 401, "unauthorized");
    let mut req = app
        .http
        .post(format!("{}/api/v1/rollback", app.url))
        .json(&json!({"reason": "basic"}));
    req = req.basic_auth("ops", Some(OPS_TOKEN));
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 401, "only bearer tokens");

    let r = rollback(app, "viewer tries", Some(VIEWER_TOKEN)).await;
    let m = assert_error(&r, 403, "forbidden");
    assert!(m.contains("viewer"), "{m}");
    let r = rollback(app, "webhook tries", Some(WEBHOOK_TOKEN)).await;
    assert_error(&r, 403, "forbidden");
    assert!(switches(&e.sim).await.is_empty());
    assert!(
        app.events().await.is_empty(),
        "refused requests leave no event"
    );

    let r = post_json(
        app,
        "/api/v1/rollback",
        &json!({"reason": "ops rehearses", "dry_run": true}),
        Some(OPS_TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["actor"], "ops");
    let r = rollback(app, "ops acts", Some(OPS_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["actor"], "ops");
    let (_, ev) = app
        .get(&format!(
            "/api/v1/rollbacks/{}",
            r.json["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ev["actor"], "ops", "the actor is stored");
    // Reads stay open by default.
    assert_eq!(app.get("/api/v1/status").await.0, 200);
    assert_eq!(app.get("/api/v1/rollbacks").await.0, 200);
}

#[tokio::test]
async fn auth_is_checked_before_the_body_is_judged() {
    let e = env(with_auth()).await;
    let app = &e.app;
    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/rollback",
        None,
        Some("text/plain"),
        Some(b"hello".to_vec()),
    )
    .await;
    assert_error(&r, 401, "unauthorized");
    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/rollback",
        None,
        Some("application/json"),
        Some(b"{not json".to_vec()),
    )
    .await;
    assert_error(&r, 401, "unauthorized");
    let r = post_json(
        app,
        "/api/v1/restore",
        &json!({"unknown": 1}),
        Some(OPS_TOKEN),
    )
    .await;
    assert_error(&r, 403, "forbidden");
    let r = post_json(
        app,
        "/api/v1/rollback",
        &json!({"reason": ""}),
        Some(VIEWER_TOKEN),
    )
    .await;
    assert_error(&r, 403, "forbidden");
}

#[tokio::test]
async fn auth_protected_reads_need_a_token() {
    let e = env(Options {
        read_requires_token: true,
        ..with_auth()
    })
    .await;
    let app = &e.app;
    for path in [
        "/api/v1/status",
        "/api/v1/triggers",
        "/api/v1/rollbacks",
        "/api/v1/validations",
    ] {
        let r = get(app, path).await;
        assert_error(&r, 401, "unauthorized");
        for t in [VIEWER_TOKEN, OPS_TOKEN, ADMIN_TOKEN] {
            assert_eq!(app.get_as(path, Some(t)).await.0, 200, "{path}");
        }
        let r = send(
            app,
            reqwest::Method::GET,
            path,
            Some(WEBHOOK_TOKEN),
            None,
            None,
        )
        .await;
        assert_error(&r, 403, "forbidden");
    }
    let r = get(app, "/api/v1/rollbacks/x").await;
    assert_error(&r, 401, "unauthorized");
    // The stream refuses too (before the upgrade).
    let url = format!("{}/api/v1/stream", app.url.replacen("http", "ws", 1));
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401 for the stream, got {other:?}"),
    }
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{url}?access_token={VIEWER_TOKEN}"))
            .await
            .expect("access_token works for browsers");
    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "status");
    // Liveness, readiness and metrics stay open for probes and Prometheus.
    assert_eq!(get(app, "/-/ready").await.status, 200);
    assert_eq!(get(app, "/metrics").await.status, 200);
}

// ---- Alertmanager webhook -----------------------------------------------------------------

const AM_1: &str = "http://alertmanager-0.trading.internal:9093";
const AM_2: &str = "http://alertmanager-1.trading.internal:9093";
const STARTS: &str = "2026-11-23T10:04:12.358412877Z";

/// One alert as Alertmanager 0.25 renders it in a webhook.
fn am_alert(name: &str, status: &str, fingerprint: &str, starts_at: &str, rollback: bool) -> Value {
    let mut labels = json!({
        "alertname": name, "severity": "critical", "service": "trading-system",
        "team": "trading-ops", "instance": "rollbackd:9100", "job": "rollbackd",
    });
    if rollback {
        labels["action"] = json!("rollback");
    }
    json!({
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": format!("{name}: the trading system needs the known-good profile"),
            "description": "Walk-forward stability 34.4 is below the critical threshold 40.",
            "runbook_url": "https://runbooks.trading.internal/rollbackd#walkforwardstabilitycritical",
        },
        "startsAt": starts_at,
        "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-11-23T10:19:42.358412877Z" },
        "generatorURL": format!("http://prometheus-0.trading.internal:9090/graph?g0.expr=trigger_condition_value%7Bcondition_type%3D%22walk_forward_stability%22%7D+%3C+40&g0.tab=1&alert={name}"),
        "fingerprint": fingerprint,
    })
}

fn common_of(alerts: &[Value], key: &str) -> Value {
    let mut common: Option<serde_json::Map<String, Value>> = None;
    for a in alerts {
        let m = a[key].as_object().unwrap().clone();
        common = Some(match common {
            None => m,
            Some(c) => c.into_iter().filter(|(k, v)| m.get(k) == Some(v)).collect(),
        });
    }
    Value::Object(common.unwrap_or_default())
}

/// A delivery exactly as Alertmanager 0.25 posts it: grouped by `group_by`.
fn am_payload(
    receiver: &str,
    external_url: &str,
    group_by: &[&str],
    alerts: Vec<Value>,
    truncated: u64,
) -> Value {
    let common_labels = common_of(&alerts, "labels");
    let group_labels: serde_json::Map<String, Value> = group_by
        .iter()
        .filter_map(|k| common_labels.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let key = group_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let status = if alerts.iter().any(|a| a["status"] == "firing") {
        "firing"
    } else {
        "resolved"
    };
    json!({
        "receiver": receiver,
        "status": status,
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_of(&alerts, "annotations"),
        "externalURL": external_url,
        "version": "4",
        "groupKey": format!("{{}}/{{action=\"rollback\"}}:{{{key}}}"),
        "truncatedAlerts": truncated,
    })
}

async fn deliver(app: &TestApp, payload: &Value, token: Option<&str>) -> Resp {
    deliver_raw(app, payload.to_string().into_bytes(), token).await
}

async fn deliver_raw(app: &TestApp, body: Vec<u8>, token: Option<&str>) -> Resp {
    let mut r = app
        .http
        .post(format!("{}/api/v1/alertmanager", app.url))
        .header("content-type", "application/json")
        .header("user-agent", "Alertmanager/0.25.0")
        .body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        json,
    }
}

async fn wait_completed(app: &TestApp) -> Value {
    let ev = wait_final(app).await;
    assert_eq!(ev["status"], "completed", "{ev}");
    ev
}

/// Rows in the daemon's durable record of webhook alerts.
fn recorded_alerts(dir: &std::path::Path) -> Vec<(String, String, String)> {
    let c = rusqlite::Connection::open_with_flags(
        dir.join("history.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut st = c
        .prepare("SELECT fingerprint, starts_at, status FROM webhook_alerts ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn webhook_a_firing_rollback_alert_rolls_back_once_resends_and_ha_duplicates_do_not() {
    let e = env(manual()).await;
    let app = &e.app;
    let fp = "9c3e1f0a7b5d2e48";
    let alert = am_alert("WalkForwardStabilityCritical", "firing", fp, STARTS, true);
    let delivery = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![alert.clone()],
        0,
    );
    let r = deliver(app, &delivery, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"accepted": 1, "rollback_requested": ["WalkForwardStabilityCritical"], "deduplicated": 0})
    );
    let ev = wait_completed(app).await;
    assert_eq!(ev["trigger_type"], "alertmanager");
    assert_eq!(ev["alert_names"], json!(["WalkForwardStabilityCritical"]));
    assert_eq!(ev["fingerprints"], json!([fp]));
    assert_eq!(ev["actor"], "alertmanager");
    assert!(
        ev["source"].as_str().unwrap().contains("rollbackd-webhook"),
        "{ev}"
    );
    assert!(
        ev["reason"]
            .as_str()
            .unwrap()
            .contains("known-good profile"),
        "the summary is the reason: {ev}"
    );
    assert_eq!(ev["parameters_after"], profile());

    // Alertmanager resends the same group on repeat_interval.
    let r = deliver(app, &delivery, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"accepted": 1, "rollback_requested": [], "deduplicated": 1})
    );
    // The HA peer sends the same alert: other receiver name, group key and URL.
    let peer = am_payload(
        "rollbackd-webhook-dr",
        AM_2,
        &["alertname", "severity"],
        vec![alert],
        0,
    );
    assert_ne!(peer["groupKey"], delivery["groupKey"]);
    let r = deliver(app, &peer, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["rollback_requested"], json!([]));
    assert_eq!(r.json["deduplicated"], 1);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = app.events().await;
    assert_eq!(
        events.len(),
        1,
        "one event, not even a suppressed duplicate: {events:?}"
    );
    assert_eq!(switches(&e.sim).await.len(), 1);
    let text = app.metrics().await;
    assert_eq!(
        metric(
            &text,
            "rollback_events_total{trigger_type=\"alertmanager\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "rollback_webhook_alerts_deduplicated_total"),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "rollback_webhook_alerts_received_total{status=\"firing\"}"
        ),
        Some(3.0)
    );
    assert_eq!(recorded_alerts(e.dir.path()).len(), 1, "recorded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_a_storm_of_50_concurrent_deliveries_rolls_back_exactly_once() {
    let e = env(manual()).await;
    let app = &e.app;
    let delivery = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert(
            "MaxDrawdownCritical",
            "firing",
            "4d2a90c1e6f3b857",
            STARTS,
            true,
        )],
        0,
    );
    let body = delivery.to_string();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (url, body, http) = (app.url.clone(), body.clone(), app.http.clone());
            tokio::spawn(async move {
                let r = http
                    .post(format!("{url}/api/v1/alertmanager"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut requested = 0;
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        requested += v["rollback_requested"].as_array().unwrap().len();
    }
    assert_eq!(requested, 1, "exactly one delivery asked for the rollback");
    let ev = wait_completed(app).await;
    assert_eq!(ev["alert_names"], json!(["MaxDrawdownCritical"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.events().await.len(), 1, "one event in total");
    assert_eq!(switches(&e.sim).await.len(), 1, "one switch on the target");
    let text = app.metrics().await;
    assert_eq!(
        metric(&text, "rollback_webhook_alerts_deduplicated_total"),
        Some(49.0)
    );
    assert_eq!(
        metric(
            &text,
            "rollback_events_total{trigger_type=\"alertmanager\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn webhook_each_alert_is_judged_on_its_own_labels() {
    let e = env(manual()).await;
    let app = &e.app;
    // Two alerts in one group (grouped by service), only one labelled action="rollback".
    let delivery = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["service"],
        vec![
            am_alert(
                "RollbackTriggerConditionsMet",
                "firing",
                "aa00000000000001",
                STARTS,
                false,
            ),
            am_alert(
                "OverfittingScoreCritical",
                "firing",
                "aa00000000000002",
                STARTS,
                true,
            ),
        ],
        0,
    );
    assert!(
        delivery["commonLabels"].get("action").is_none(),
        "commonLabels lack `action`"
    );
    assert_eq!(
        delivery["groupLabels"],
        json!({"service": "trading-system"})
    );
    let r = deliver(app, &delivery, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"accepted": 2, "rollback_requested": ["OverfittingScoreCritical"], "deduplicated": 0})
    );
    let ev = wait_completed(app).await;
    assert_eq!(
        ev["alert_names"],
        json!(["OverfittingScoreCritical"]),
        "only the labelled alert is named"
    );
    assert_eq!(ev["fingerprints"], json!(["aa00000000000002"]));
    assert_eq!(recorded_alerts(e.dir.path()).len(), 2, "both are recorded");
}

#[tokio::test]
async fn webhook_common_labels_with_action_do_not_matter_without_it_on_the_alert() {
    let e = env(manual()).await;
    let app = &e.app;
    // A hand-made group claiming action=rollback in commonLabels, with no alert labelled so.
    let mut delivery = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert(
            "RollbackTriggerConditionsMet",
            "firing",
            "bb00000000000001",
            STARTS,
            false,
        )],
        0,
    );
    delivery["commonLabels"]["action"] = json!("rollback");
    delivery["groupLabels"]["action"] = json!("rollback");
    let r = deliver(app, &delivery, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["rollback_requested"], json!([]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.events().await.is_empty());
    assert!(switches(&e.sim).await.is_empty());
}

#[tokio::test]
async fn webhook_a_resolved_only_group_is_recorded_and_undoes_nothing() {
    let e = env(manual()).await;
    let app = &e.app;
    let fp = "cc00000000000001";
    let firing = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert("MaxDrawdownCritical", "firing", fp, STARTS, true)],
        0,
    );
    assert_eq!(deliver(app, &firing, None).await.status, 200);
    wait_completed(app).await;
    let resolved = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert(
            "MaxDrawdownCritical",
            "resolved",
            fp,
            STARTS,
            true,
        )],
        0,
    );
    assert_eq!(resolved["status"], "resolved");
    let r = deliver(app, &resolved, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!({"accepted": 1, "rollback_requested": [], "deduplicated": 0})
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = app.events().await;
    assert_eq!(events.len(), 1, "no restore, no new event: {events:?}");
    assert_eq!(switches(&e.sim).await.len(), 1);
    assert_eq!(
        e.sim.status().await["mode"],
        "universal_cycle_4",
        "still rolled back"
    );
    let rows = recorded_alerts(e.dir.path());
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[1],
        (fp.to_string(), STARTS.to_string(), "resolved".to_string())
    );
    let text = app.metrics().await;
    assert_eq!(
        metric(
            &text,
            "rollback_webhook_alerts_received_total{status=\"resolved\"}"
        ),
        Some(1.0)
    );

    // A resolved-only group on a fresh system: recorded, nothing happens.
    let other = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert(
            "ConsecutiveLossesCritical",
            "resolved",
            "cc00000000000002",
            STARTS,
            true,
        )],
        0,
    );
    assert_eq!(deliver(app, &other, None).await.status, 200);
    assert_eq!(recorded_alerts(e.dir.path()).len(), 3);
    assert_eq!(app.events().await.len(), 1);
}

#[tokio::test]
async fn webhook_a_firing_alert_while_rolled_back_is_recorded_as_suppressed() {
    let e = env(manual()).await;
    let app = &e.app;
    assert_eq!(rollback(app, "by hand first", None).await.status, 200);
    let d = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert(
            "WalkForwardStabilityCritical",
            "firing",
            "dd00000000000001",
            STARTS,
            true,
        )],
        0,
    );
    let r = deliver(app, &d, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let a = app;
    let ev = wait_for(
        "the suppressed alertmanager event",
        LONG,
        move || async move {
            events_where(a, "status=suppressed")
                .await
                .into_iter()
                .next()
        },
    )
    .await;
    assert_eq!(ev["trigger_type"], "alertmanager");
    assert_eq!(ev["suppressed_reason"], "already_rolled_back");
    assert_eq!(ev["alert_names"], json!(["WalkForwardStabilityCritical"]));
    assert_eq!(switches(&e.sim).await.len(), 1);
    // The counter moves just after the event is durable, so a scrape may be a moment behind.
    let text = wait_for("the suppression counted", LONG, move || async move {
        let text = a.metrics().await;
        (metric(
            &text,
            "rollback_suppressed_total{reason=\"already_rolled_back\"}",
        ) == Some(1.0))
        .then_some(text)
    })
    .await;
    assert_eq!(
        metric(
            &text,
            "rollback_events_total{trigger_type=\"alertmanager\"}"
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn webhook_rejects_bad_deliveries_and_counts_them_by_reason() {
    let e = env(manual()).await;
    let app = &e.app;
    let good = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert(
            "MaxDrawdownCritical",
            "firing",
            "ee00000000000001",
            STARTS,
            true,
        )],
        0,
    );

    let r = deliver_raw(app, b"{\"version\": \"4\", \"alerts\": [".to_vec(), None).await;
    assert_error(&r, 400, "invalid_request");
    let mut v3 = good.clone();
    v3["version"] = json!("3");
    let m = assert_error(&deliver(app, &v3, None).await, 400, "invalid_request");
    assert!(m.contains("version"), "{m}");
    let mut no_alerts = good.clone();
    no_alerts.as_object_mut().unwrap().remove("alerts");
    let m = assert_error(
        &deliver(app, &no_alerts, None).await,
        400,
        "invalid_request",
    );
    assert!(m.contains("alerts"), "{m}");
    let mut bad_status = good.clone();
    bad_status["alerts"][0]["status"] = json!("pending");
    assert_error(
        &deliver(app, &bad_status, None).await,
        400,
        "invalid_request",
    );

    // Over 1 MiB: 413. Under it (but far over the API's 64 KiB): accepted.
    let mut huge = good.clone();
    huge["commonAnnotations"]["description"] = json!("d".repeat(1024 * 1024));
    assert_error(&deliver(app, &huge, None).await, 413, "payload_too_large");
    let mut large = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert(
            "Noise",
            "firing",
            "ee00000000000002",
            STARTS,
            false,
        )],
        0,
    );
    large["commonAnnotations"]["description"] = json!("d".repeat(512 * 1024));
    let r = deliver(app, &large, None).await;
    assert_eq!(
        r.status, 200,
        "512 KiB is within the webhook's 1 MiB: {}",
        r.text
    );

    let r = send(
        app,
        reqwest::Method::POST,
        "/api/v1/alertmanager",
        None,
        Some("text/plain"),
        Some(good.to_string().into_bytes()),
    )
    .await;
    assert_error(&r, 415, "unsupported_media_type");

    let text = app.metrics().await;
    let rejected = |reason: &str| {
        metric(
            &text,
            &format!("rollback_webhook_requests_rejected_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(
        rejected("malformed"),
        Some(4.0),
        "bad JSON, no alerts, bad status, text/plain"
    );
    assert_eq!(rejected("version"), Some(1.0));
    assert_eq!(rejected("too_large"), Some(1.0));
    assert_eq!(rejected("unauthorized"), Some(0.0));
    assert_eq!(rejected("storage"), Some(0.0));
    assert!(app.events().await.is_empty(), "nothing rejected acted");
    assert_eq!(
        recorded_alerts(e.dir.path()).len(),
        1,
        "only the large valid delivery was recorded"
    );
}

#[tokio::test]
async fn webhook_needs_a_webhook_role_and_takes_the_token_from_its_file() {
    let e = env(with_auth()).await;
    let app = &e.app;
    let d = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert(
            "MaxDrawdownCritical",
            "firing",
            "ff00000000000001",
            STARTS,
            true,
        )],
        0,
    );
    let r = deliver(app, &d, None).await;
    assert_error(&r, 401, "unauthorized");
    let r = deliver(app, &d, Some(VIEWER_TOKEN)).await;
    assert_error(&r, 403, "forbidden");
    let text = app.metrics().await;
    assert_eq!(
        metric(
            &text,
            "rollback_webhook_requests_rejected_total{reason=\"unauthorized\"}"
        ),
        Some(2.0)
    );
    assert!(std::fs::read_to_string(e.dir.path().join("webhook.token"))
        .unwrap()
        .contains(WEBHOOK_TOKEN));
    let r = deliver(app, &d, Some(WEBHOOK_TOKEN)).await;
    assert_eq!(
        r.status, 200,
        "the token read from token_file is accepted: {}",
        r.text
    );
    let ev = wait_completed(app).await;
    assert_eq!(ev["trigger_type"], "alertmanager");
}

#[tokio::test]
async fn webhook_a_storage_failure_is_5xx_so_alertmanager_retries_and_the_retry_acts() {
    let e = env(manual()).await;
    let app = &e.app;
    let db = rusqlite::Connection::open(e.dir.path().join("history.db")).unwrap();
    db.execute_batch("CREATE TRIGGER fail_alerts BEFORE INSERT ON webhook_alerts BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;")
        .unwrap();
    let d = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert(
            "MaxDrawdownCritical",
            "firing",
            "1100000000000001",
            STARTS,
            true,
        )],
        0,
    );
    let r = deliver(app, &d, None).await;
    assert!(
        (500..600).contains(&r.status),
        "5xx so Alertmanager retries: {} {}",
        r.status,
        r.text
    );
    assert_error(&r, 503, "storage_unavailable");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        app.events().await.is_empty(),
        "nothing acted on an unrecorded delivery"
    );
    assert!(switches(&e.sim).await.is_empty());
    let text = app.metrics().await;
    assert_eq!(
        metric(
            &text,
            "rollback_webhook_requests_rejected_total{reason=\"storage\"}"
        ),
        Some(1.0)
    );

    // The disk recovers; Alertmanager's retry is recorded and acted on.
    db.execute_batch("DROP TRIGGER fail_alerts;").unwrap();
    let r = deliver(app, &d, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["rollback_requested"],
        json!(["MaxDrawdownCritical"]),
        "the failed attempt did not count as seen"
    );
    let ev = wait_completed(app).await;
    assert_eq!(ev["fingerprints"], json!(["1100000000000001"]));
}

#[tokio::test]
async fn webhook_truncated_alerts_are_counted() {
    let e = env(manual()).await;
    let d = am_payload(
        "rollbackd-webhook",
        AM_1,
        &["alertname"],
        vec![am_alert(
            "Noise",
            "firing",
            "2200000000000001",
            STARTS,
            false,
        )],
        3,
    );
    let r = deliver(&e.app, &d, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = e.app.metrics().await;
    assert_eq!(
        metric(&text, "rollback_webhook_truncated_alerts_total"),
        Some(3.0)
    );
    assert_eq!(deliver(&e.app, &d, None).await.status, 200);
    let text = e.app.metrics().await;
    assert_eq!(
        metric(&text, "rollback_webhook_truncated_alerts_total"),
        Some(6.0)
    );
}

// ---- stream ---------------------------------------------------------------------------------

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp) -> Ws {
    let url = format!("{}/api/v1/stream", app.url.replacen("http", "ws", 1));
    tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("the stream upgrades")
        .0
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(LONG, ws.next())
            .await
            .expect("a stream message in time")
            .expect("the stream is open")
            .expect("a good frame");
        match msg {
            WsMessage::Text(t) => {
                return serde_json::from_str(t.as_str()).expect("JSON text frames")
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

#[tokio::test]
async fn stream_sends_state_first_then_rollback_progress_and_the_validation() {
    let e = env(manual()).await;
    let mut ws = connect(&e.app).await;
    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "status", "{first}");
    assert_eq!(first["data"]["mode"], "session_targeted");
    let second = next_json(&mut ws).await;
    assert_eq!(second["type"], "trigger_update", "{second}");
    assert_eq!(second["data"]["conditions"].as_array().unwrap().len(), 4);

    let r = rollback(&e.app, "watched live", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["id"].as_str().unwrap();
    let mut statuses = Vec::new();
    let mut validation = None;
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline
        && (statuses.last().map(String::as_str) != Some("completed") || validation.is_none())
    {
        let m = next_json(&mut ws).await;
        match m["type"].as_str().unwrap() {
            "rollback_event" if m["data"]["id"] == id => {
                statuses.push(m["data"]["status"].as_str().unwrap().to_string())
            }
            "validation" if m["data"]["event_id"] == id => validation = Some(m["data"].clone()),
            "status" | "trigger_update" | "rollback_event" | "validation" => {}
            other => panic!("unknown message type {other}"),
        }
    }
    assert_eq!(
        statuses,
        ["pending", "executing", "validating", "completed"]
    );
    let v = validation.expect("a validation message");
    assert_eq!(v["kind"], "initial");
    assert_eq!(v["score"], 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_idle_subscribers_do_not_hold_up_a_rollback() {
    let e = env(manual()).await;
    let _idle_1 = connect(&e.app).await;
    let _idle_2 = connect(&e.app).await;
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        rollback(&e.app, "with idle watchers", None),
    )
    .await
    .expect("the rollback is not held up by subscribers that never read");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "completed");
    // The engine keeps polling and publishing while they sit there.
    let before = e.app.engine.triggers().updated_at;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_ne!(e.app.engine.triggers().updated_at, before);
}

/// A subscriber that stops reading while the engine keeps publishing is cut off (lagged behind
/// the broadcast, or its send timed out) instead of being buffered for without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_a_subscriber_that_stops_reading_is_disconnected() {
    let e = env(manual()).await;
    // A tiny receive window so the daemon's writes back up quickly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = e.app.url.trim_start_matches("http://").to_owned();
    let tcp = socket.connect(addr.parse().unwrap()).await.unwrap();
    let url = format!("ws://{addr}/api/v1/stream");
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
        .await
        .expect("the stream upgrades");

    // Each dry run publishes its event and the status; far more than the stream's buffer.
    const DRY_RUNS: usize = 1500;
    let reason = "x".repeat(480);
    let (url, http) = (e.app.url.clone(), e.app.http.clone());
    let body = json!({"reason": reason, "dry_run": true});
    futures_util::stream::iter(0..DRY_RUNS)
        .for_each_concurrent(16, |_| {
            let (url, http, body) = (url.clone(), http.clone(), body.clone());
            async move {
                let r = http
                    .post(format!("{url}/api/v1/rollback"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "the engine keeps answering");
            }
        })
        .await;

    // Now read what was delivered: the stream ends before it has everything.
    let mut events = 0;
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(WsMessage::Text(t)) if t.as_str().contains("\"rollback_event\"") => events += 1,
                Ok(WsMessage::Close(f)) => return format!("closed: {f:?}"),
                Ok(_) => {}
                Err(err) => return format!("error: {err}"),
            }
        }
        "ended".to_owned()
    })
    .await
    .expect("the slow subscriber is disconnected, not kept");
    assert!(
        events < DRY_RUNS,
        "{events} of {DRY_RUNS} events reached a client that did not read ({ended})"
    );
    eprintln!("slow subscriber: {events} of {DRY_RUNS} events, then {ended}");
}

#[tokio::test]
async fn stream_closes_with_a_close_frame_when_the_daemon_drains() {
    let e = env(manual()).await;
    let mut ws = connect(&e.app).await;
    assert_eq!(next_json(&mut ws).await["type"], "status");
    let Env {
        app,
        sim: _sim,
        dir: _dir,
    } = e;
    let stop = tokio::spawn(app.stop());
    let deadline = Instant::now() + LONG;
    let code = loop {
        assert!(Instant::now() < deadline, "no close frame");
        match tokio::time::timeout(LONG, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(WsMessage::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(WsMessage::Close(None))) => panic!("a close frame without a code"),
            Some(Ok(_)) => continue,
            other => panic!("the stream ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(code, 1001, "going away");
    tokio::time::timeout(LONG, stop)
        .await
        .expect("drained")
        .unwrap();
}

// ---- drain ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_in_flight_finishes_during_the_drain() {
    let Env { app, sim, dir } = spawn(Scenario::Steady, &slow()).await;
    app.first_poll().await;
    let a = &app;
    sim.put("/v1/sim/scenario", json!({"delay_ms": 1000})).await;
    let (url, http) = (app.url.clone(), app.http.clone());
    let request = tokio::spawn(async move {
        let r = http
            .post(format!("{url}/api/v1/rollback"))
            .json(&json!({"reason": "just before the deploy"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    let id = wait_for("the rollback to execute", LONG, move || async move {
        a.engine.status().in_progress
    })
    .await;
    app.stop().await;
    let (code, ev) = request.await.unwrap();
    assert_eq!(code, 200, "the in-flight request is answered: {ev}");
    assert_eq!(ev["status"], "completed", "{ev}");
    assert_eq!(ev["id"], id.as_str());

    // The same history, reopened: completed during the drain, not left for recovery.
    sim.put("/v1/sim/scenario", json!({"delay_ms": 0})).await;
    let app = TestApp::start(&sim.url, dir.path(), &manual()).await;
    let (code, ev) = app.get(&format!("/api/v1/rollbacks/{id}")).await;
    assert_eq!(code, 200, "{ev}");
    assert_eq!(ev["status"], "completed", "{ev}");
    let statuses: Vec<&str> = ev["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["pending", "executing", "validating", "completed"]
    );
    let kinds: Vec<&str> = ev["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"initial") && !kinds.contains(&"recovered"),
        "{kinds:?}"
    );
    assert_eq!(switches(&sim).await.len(), 1);
    app.stop().await;
}

// ---- the CLI client -------------------------------------------------------------------------

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn cli(args: &[&str], token: Option<&str>) -> Out {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"));
    c.args(args)
        .env_remove("ROLLBACKD_URL")
        .env_remove("ROLLBACKD_TOKEN")
        .kill_on_drop(true);
    if let Some(t) = token {
        c.env("ROLLBACKD_TOKEN", t);
    }
    let out = tokio::time::timeout(LONG, c.output())
        .await
        .expect("the CLI returns in time")
        .unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn cli_client_commands_work_against_a_running_daemon() {
    let e = env(with_auth()).await;
    let url = e.app.url.as_str();

    let o = cli(&["status", "--url", url], None).await;
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout.contains("session_targeted") && o.stdout.contains("8/8"),
        "{}",
        o.stdout
    );
    let o = cli(&["status", "--url", url, "--json"], None).await;
    assert!(o.ok, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).expect("--json prints JSON");
    assert_eq!(v["mode"], "session_targeted");

    let o = cli(&["triggers", "--url", url], None).await;
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout.contains("walk_forward_stability") && o.stdout.contains("max_drawdown"),
        "{}",
        o.stdout
    );
    let o = cli(&["triggers", "--json", "--url", url], None).await;
    let v: Value = serde_json::from_str(&o.stdout).expect("--json prints JSON");
    assert_eq!(v["conditions"].as_array().unwrap().len(), 4);

    let o = cli(
        &[
            "rollback",
            "--reason",
            "cli rehearsal",
            "--dry-run",
            "--url",
            url,
            "--json",
        ],
        Some(OPS_TOKEN),
    )
    .await;
    assert!(o.ok, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).expect("--json prints JSON");
    assert_eq!(v["status"], "dry_run");
    assert_eq!(v["actor"], "ops", "ROLLBACKD_TOKEN was used");
    assert!(switches(&e.sim).await.is_empty());
    let o = cli(
        &[
            "rollback",
            "--reason",
            "cli rehearsal 2",
            "--dry-run",
            "--url",
            url,
            "--token",
            ADMIN_TOKEN,
        ],
        None,
    )
    .await;
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout.contains("dry_run") && o.stdout.contains("boss"),
        "{}",
        o.stdout
    );

    let o = cli(&["history", "--url", url], None).await;
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stdout.contains("cli rehearsal") && o.stdout.contains("dry_run"),
        "{}",
        o.stdout
    );
    let o = cli(&["history", "--url", url, "--json"], None).await;
    let v: Value = serde_json::from_str(&o.stdout).expect("--json prints JSON");
    assert_eq!(v["events"].as_array().unwrap().len(), 2);

    let o = cli(&["monitoring", "stop", "--url", url], Some(OPS_TOKEN)).await;
    assert!(o.ok, "{}", o.stderr);
    assert!(o.stdout.contains("false"), "{}", o.stdout);
    assert!(!e.app.engine.status().monitoring_active);
    let o = cli(
        &["monitoring", "start", "--url", url, "--json"],
        Some(OPS_TOKEN),
    )
    .await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&o.stdout).unwrap(),
        json!({"monitoring_active": true})
    );
}

#[tokio::test]
async fn cli_errors_exit_non_zero_with_the_servers_message() {
    let e = env(with_auth()).await;
    let url = e.app.url.as_str();
    let o = cli(
        &["rollback", "--reason", "viewer tries", "--url", url],
        Some(VIEWER_TOKEN),
    )
    .await;
    assert!(!o.ok, "a 403 exits non-zero: {}", o.stdout);
    assert!(
        o.stderr.contains("403") && o.stderr.contains("forbidden"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("has role viewer"),
        "the server's message: {}",
        o.stderr
    );
    let o = cli(
        &["restore", "--reason", "not rolled back", "--url", url],
        Some(ADMIN_TOKEN),
    )
    .await;
    assert!(!o.ok);
    assert!(
        o.stderr.contains("409") && o.stderr.contains("not_rolled_back"),
        "{}",
        o.stderr
    );
    let o = cli(&["monitoring", "stop", "--url", url], None).await;
    assert!(!o.ok);
    assert!(o.stderr.contains("401"), "{}", o.stderr);
    assert!(e.app.engine.status().monitoring_active);
    // Nobody listening.
    let o = cli(&["status", "--url", "http://127.0.0.1:9"], None).await;
    assert!(!o.ok);
    assert!(o.stderr.contains("cannot reach rollbackd"), "{}", o.stderr);
}
