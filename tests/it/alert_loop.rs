//! The whole alerting loop with the real programs: Prometheus (Debian 2.42) scrapes rollbackd
//! and evaluates the shipped rules; two Alertmanagers (Debian 0.25, an HA pair without gossip,
//! so both deliver) run a config rendered from the shipped one with its endpoints pointed at
//! local sinks (SMTP for email, HTTP for Slack and SNS) and its webhook at the daemon. The
//! watchdog's own automatic rollback is off: only Alertmanager can roll back here.
//!
//! Then every PromQL expression of the dashboards and the rules is run on that Prometheus.

use crate::harness::dashboards::{all_dashboard_exprs, grafana_vars_substituted};
use crate::harness::files::repo;
use crate::harness::mail::{decode_mail, url_decode};
use crate::harness::metric_docs::{is_rollbackd_metric, AFTER_FIRST_OPERATION};
use crate::harness::promql::promql_metric_names;
use crate::harness::stack::{loopback_addr, AlertingStack, Shared, Wiring, ALERTMANAGER_CONFIG};
use crate::harness::tools::run_tool;
use crate::harness::*;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use serde_yaml_ng::Value as Yaml;
use std::path::Path;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(45);

/// A threshold regime, never set: it only gives `rollback_regime_active` a series.
const REGIMES: &str = "regimes:\n  high_volatility: { max_drawdown.critical_threshold: 6.5 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_travels_prometheus_and_alertmanager_to_one_validated_rollback_and_people_are_told(
) {
    // A regime in the config, so that rollback_regime_active (the dashboards' regime in
    // force) has series to query.
    let app = TestApp::builder()
        .manual()
        .auth()
        .append_yaml(REGIMES)
        .spawn()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = Shared::default();
    let alertmanagers = [loopback_addr(), loopback_addr()];
    let stack = alerting_for(&app, dir.path(), &sinks, &alertmanagers).await;

    let breach = Instant::now();
    app.sim
        .set_metrics(json!({"walk_forward_stability": 30.0}))
        .await;
    let event = wait_until("a rollback through Alertmanager", LIMIT, || async {
        app.events("").await.into_iter().find(|e| {
            e["trigger_type"] == "alertmanager"
                && matches!(e["status"].as_str(), Some("completed" | "failed"))
        })
    })
    .await;
    let took = breach.elapsed();
    eprintln!("breach -> rollback validated through Prometheus and Alertmanager: {took:?}");
    assert_eq!(event["status"], "completed", "{event}");
    assert!(event["validation_score"].as_f64().unwrap() >= 85.0);
    assert_eq!(
        event["alert_names"],
        json!(["WalkForwardStabilityCritical"])
    );
    assert_eq!(event["fingerprints"].as_array().unwrap().len(), 1);
    assert_eq!(event["actor"], "alertmanager");
    let id = event["id"].as_str().unwrap().to_string();
    // The alert as Alertmanager holds it (still firing: the breach goes on): its startsAt is
    // when the incident was detected.
    let starts_at = alert_starts_at(
        &alertmanagers[0],
        event["fingerprints"][0].as_str().unwrap(),
    )
    .await;

    // Both Alertmanagers deliver the same alert: the second is an HA duplicate.
    wait_until("the HA duplicate to be deduplicated", LIMIT, || async {
        let n = app
            .metric("rollback_webhook_alerts_deduplicated_total", &[])
            .await?;
        (n >= 1.0).then_some(())
    })
    .await;
    let switches = app.sim.switches();
    assert_eq!(
        switches.len(),
        1,
        "exactly one rollback reached the trading system"
    );
    assert_eq!(switches[0]["parameters"]["confidence_threshold"], 0.55);
    assert_eq!(switches[0]["parameters"]["risk_reward_ratio"], 1.8);
    let executed: Vec<Value> = app
        .events("")
        .await
        .into_iter()
        .filter(|e| e["status"] != "suppressed")
        .collect();
    assert_eq!(executed.len(), 1, "{executed:?}");

    wait_for_people_told(&sinks, &id).await;
    let checked = Instant::now();
    response_measured_from_the_alert_then_reviewed(&app, &id, starts_at).await;
    eprintln!(
        "report, review and rates of the incident checked in {:?}",
        checked.elapsed()
    );
    let m = app.metrics().await;
    m.assert(
        "rollback_events_total",
        &[("trigger_type", "alertmanager")],
        1.0,
    );
    assert_eq!(
        m.get(
            "rollback_webhook_requests_rejected_total",
            &[("reason", "unauthorized")]
        ),
        Some(0.0),
        "Alertmanager's bearer token works"
    );

    run_every_expression(&stack, &app, &alertmanagers[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_freeze_the_alert_arrives_through_prometheus_and_alertmanager_and_is_held() {
    let app = TestApp::builder().manual().auth().spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = Shared::default();
    let alertmanagers = [loopback_addr(), loopback_addr()];
    let _stack = alerting_for(&app, dir.path(), &sinks, &alertmanagers).await;
    let freeze = json!({"duration": "1h", "reason": "CPI release", "name": "cpi"});
    let started = app
        .with_token(OPS_TOKEN)
        .post("/api/v1/freeze", &freeze)
        .await;
    assert_eq!(started.status, 201, "{}", started.text);

    app.sim
        .set_metrics(json!({"walk_forward_stability": 30.0}))
        .await;
    let event = wait_until("the held alert through Alertmanager", LIMIT, || async {
        app.events("")
            .await
            .into_iter()
            .find(|e| e["trigger_type"] == "alertmanager")
    })
    .await;
    assert_eq!(event["status"], "suppressed", "{event}");
    assert_eq!(event["suppressed_reason"], "freeze", "{event}");
    assert!(
        event["note"].as_str().unwrap().contains("freeze cpi"),
        "{event}"
    );
    assert_eq!(
        event["alert_names"],
        json!(["WalkForwardStabilityCritical"])
    );
    assert!(
        app.sim.switches().is_empty(),
        "a freeze never touches the target"
    );
    assert_eq!(app.sim.status().await["mode"], "session_targeted");
}

/// The `startsAt` Alertmanager at `addr` holds for the alert with `fingerprint`; bounded.
async fn alert_starts_at(addr: &str, fingerprint: &str) -> DateTime<Utc> {
    let url = format!("http://{addr}/api/v2/alerts");
    let at = wait_until("the alert in Alertmanager", LIMIT, || async {
        let alerts: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
        let a = alerts
            .as_array()?
            .iter()
            .find(|a| a["fingerprint"] == fingerprint)?;
        Some(a["startsAt"].as_str()?.to_string())
    })
    .await;
    at.parse().unwrap()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// The incident report measures the Alertmanager rollback's response from the alert's
/// `startsAt` (the stored delivery, `Store::alert_starts`), not from the event's creation; an
/// operator's review of it then shows in the report and the rates.
async fn response_measured_from_the_alert_then_reviewed(
    app: &TestApp,
    id: &str,
    starts_at: DateTime<Utc>,
) {
    let event = app.rollback_by_id(id).await.ok();
    let executing = event["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["status"] == "executing")
        .unwrap_or_else(|| panic!("no executing transition: {event}"));
    let acted = time(&executing["at"]);
    let created = time(&event["created_at"]);
    let incident = |report: &Value| -> Value {
        report["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["event_id"] == id)
            .unwrap_or_else(|| panic!("{id} not in the report: {report}"))
            .clone()
    };
    let line = |report: &Value, metric: &str| -> Value {
        report["success_metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["metric"] == metric)
            .unwrap_or_else(|| panic!("no {metric}: {report}"))
            .clone()
    };

    let report = app.report("since=1h").await.ok();
    let i = incident(&report);
    let detected = time(&i["detected_at"]);
    // Alertmanager's API shows startsAt to the millisecond; the delivery carried more.
    let off = (detected - starts_at).num_microseconds().unwrap();
    assert!(
        (0..1000).contains(&off),
        "detected_at {detected} is the alert's startsAt {starts_at} ({off} µs apart): {i}"
    );
    assert!(
        detected < created,
        "detected when the alert began ({detected}), before the rollback was recorded ({created})"
    );
    let response = i["response_seconds"].as_f64().unwrap();
    assert!(response > 0.0, "{i}");
    assert_eq!(
        response,
        (acted - detected).num_milliseconds() as f64 / 1000.0,
        "from the alert's startsAt to the switch: {i}"
    );
    assert_eq!(i["review"], Value::Null);
    assert_eq!(line(&report, "documentation_compliance")["value"], 0.0);

    let r = app
        .with_token(OPS_TOKEN)
        .review(
            id,
            &json!({"verdict": "true_positive", "note": "walk-forward stability fell to 30: real"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let report = app.report("since=1h").await.ok();
    let i = incident(&report);
    assert_eq!(i["review"]["verdict"], "true_positive", "{i}");
    assert_eq!(i["review"]["reviewer"], "ops", "{i}");
    assert_eq!(i["response_seconds"].as_f64(), Some(response));
    let fp = line(&report, "false_positive_rate");
    assert_eq!(
        (&fp["value"], &fp["limit_met"]),
        (&json!(0.0), &json!(true)),
        "{fp}"
    );
    assert_eq!(line(&report, "documentation_compliance")["value"], 1.0);
    let resp = line(&report, "incident_response_time");
    assert_eq!(resp["value"].as_f64(), Some(response), "{resp}");
    // The rates were computed again before the review was answered.
    let m = app.metrics().await;
    m.assert("rollback_false_positive_rate", &[("window", "7d")], 0.0);
    m.assert(
        "rollback_documentation_compliance_ratio",
        &[("window", "7d")],
        1.0,
    );
    m.assert("rollback_unreviewed_executed", &[("window", "7d")], 0.0);
    m.assert(
        "rollback_incident_response_seconds",
        &[("window", "7d"), ("stat", "max")],
        response,
    );
}

/// The real alerting programs for `app`, in `dir`; the real amtool accepts the Alertmanager
/// config rendered for them.
pub(crate) async fn alerting_for(
    app: &TestApp,
    dir: &Path,
    sinks: &Shared,
    alertmanagers: &[String],
) -> AlertingStack {
    let stack = AlertingStack::start(Wiring {
        dir,
        daemon: &app.url,
        webhook_token: WEBHOOK_TOKEN,
        alertmanagers,
        sinks,
        limit: LIMIT,
    })
    .await;
    let am_config = dir.join(ALERTMANAGER_CONFIG);
    run_tool(
        "amtool",
        &["check-config", am_config.to_str().unwrap()],
        None,
    );
    stack
}

/// People: email with the seed's subject, SMS with the seed's text and the real event id,
/// Slack; bounded, showing what the sinks got.
async fn wait_for_people_told(sinks: &Shared, id: &str) {
    let sms = format!(
        "Emergency rollback executed. Event: {id}. Status: completed. Check dashboard immediately."
    );
    let told = Instant::now();
    loop {
        let (mail, text, slack, seen) = {
            let s = sinks.lock().unwrap();
            let mails: Vec<String> = s.mail.iter().map(|m| decode_mail(m)).collect();
            let mail = mails.iter().any(|m| {
                m.contains("Subject: 🚨 EMERGENCY: Trading System Rolled Back to Cycle 4")
                    && m.contains(id)
            });
            let text = s
                .http
                .iter()
                .any(|(p, b)| p.starts_with("/sns") && url_decode(b).contains(&sms));
            let slack = s.http.iter().any(|(p, b)| {
                p.starts_with("/slack")
                    && b.contains("EMERGENCY: Trading System Rolled Back to Cycle 4")
                    && b.contains(id)
            });
            let subjects: Vec<String> = mails
                .iter()
                .map(|m| {
                    m.lines()
                        .filter(|l| l.starts_with("Subject:"))
                        .collect::<Vec<_>>()
                        .join(" | ")
                })
                .collect();
            let posts: Vec<String> = s
                .http
                .iter()
                .map(|(p, b)| {
                    format!(
                        "{p}: {}",
                        url_decode(b).chars().take(300).collect::<String>()
                    )
                })
                .collect();
            let seen = format!(
                "mail:\n{}\nhttp:\n{}",
                subjects.join("\n"),
                posts.join("\n")
            );
            (mail, text, slack, seen)
        };
        if mail && text && slack {
            return;
        }
        assert!(told.elapsed() < LIMIT, "emergency notifications missing (email {mail}, sms {text}, slack {slack}); the sinks got:\n{seen}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every PromQL expression of the dashboards and the rules: (where, expression).
pub(crate) fn every_expression() -> Vec<(String, String)> {
    let mut exprs: Vec<(String, String)> = all_dashboard_exprs()
        .into_iter()
        .map(|e| {
            (
                format!("{} {}", e.dashboard, e.location),
                grafana_vars_substituted(&e.expr, "5m", ".*"),
            )
        })
        .collect();
    for f in std::fs::read_dir(repo().join("alerting/rules")).unwrap() {
        let path = f.unwrap().path();
        let y: Yaml = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for g in y["groups"].as_sequence().unwrap() {
            for r in g["rules"].as_sequence().unwrap() {
                let name = r
                    .get("alert")
                    .or(r.get("record"))
                    .and_then(Yaml::as_str)
                    .unwrap_or("?");
                exprs.push((
                    format!("{} {name}", path.file_name().unwrap().to_string_lossy()),
                    r["expr"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    exprs
}

/// Every expression runs on this Prometheus, and every rollbackd metric it names is on
/// /metrics (Alertmanager's on Alertmanager's); the families that only exist after the first
/// drill or notification test are checked by operations_stack, where those ran.
async fn run_every_expression(stack: &AlertingStack, app: &TestApp, alertmanager: &str) {
    let daemon_metrics = app.metrics().await.text;
    let am_metrics = reqwest::get(format!("http://{alertmanager}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exprs = every_expression();
    assert!(exprs.len() > 50, "found only {} expressions", exprs.len());
    let series = |text: &str, n: &str| {
        text.lines().any(|l| {
            !l.starts_with('#')
                && (l.starts_with(&format!("{n}{{")) || l.starts_with(&format!("{n} ")))
        })
    };
    let mut failures = Vec::new();
    for (where_, expr) in &exprs {
        let v = stack
            .query(expr)
            .await
            .unwrap_or_else(|| panic!("Prometheus did not answer the query {expr}"));
        if v["status"] != "success" {
            failures.push(format!("{where_}: {expr}\n   -> {}", v["error"]));
        }
        for name in promql_metric_names(expr) {
            let present = if AFTER_FIRST_OPERATION.contains(&name.as_str()) {
                true
            } else if is_rollbackd_metric(&name) {
                series(&daemon_metrics, &name)
            } else if name.starts_with("alertmanager_") {
                series(&am_metrics, &name)
            } else {
                true
            };
            if !present {
                failures.push(format!("{where_}: metric {name} is not exported"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} expressions failed:\n{}",
        failures.len(),
        exprs.len(),
        failures.join("\n")
    );
}
