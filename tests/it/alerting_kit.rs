//! The shipped alerting kit (`alerting/`) and its runbook (`docs/runbook.md`) are checked with
//! the real tools and against the product's contract:
//!
//! - `promtool check rules`, `promtool test rules`, `promtool check config`, `amtool check-config`,
//!   `amtool config routes test` and `amtool template render` all succeed. A missing tool FAILS
//!   (install the Debian packages `prometheus` and `prometheus-alertmanager`).
//! - Every alert has a severity, team/service labels, summary, description (with the live value)
//!   and a runbook_url whose anchor is a heading of docs/runbook.md.
//! - Every metric a rule uses is documented in docs/metrics.md (or is `up`).
//! - Every alert has a promtool test where it fires and one where it stays silent.
//! - One breach pages people once whether one rollbackd or two replicas raise it: a real
//!   Alertmanager on the shipped config gets the same alert from two instances (and the
//!   direct notice of a held trigger) and sends one notification per channel.

use crate::harness::app::TestApp;
use crate::harness::files::{read, repo};
use crate::harness::fixtures::{OPS_TOKEN, WEBHOOK_TOKEN};
use crate::harness::mail::{decode_mail, url_decode};
use crate::harness::metric_docs::{documented_metrics, documented_name};
use crate::harness::promql::promql_metric_names;
use crate::harness::stack::{loopback_addr, start_lone_alertmanager, Shared};
use crate::harness::tools::run_tool;
use crate::harness::wait::wait_until;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const RUNBOOK_BASE: &str = "file:///usr/share/doc/rollbackd/runbook.md#";

/// Files in `dir` (relative to the crate root) ending in `ext`, sorted, as relative paths.
fn files(dir: &str, ext: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(ext))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *{ext} files in {dir}");
    out
}

fn rule_files() -> Vec<String> {
    files("alerting/rules", ".yml")
}

fn test_files() -> Vec<String> {
    files("alerting/tests", ".yml")
}

/// Runs a tool from the crate root; fails with its whole output unless it succeeds. Returns
/// stdout.
fn run(program: &str, args: &[&str]) -> String {
    run_tool(program, args, None).stdout
}

/// promtool with `args` then every file of `files`.
fn promtool_on(args: &[&str], files: &[String]) -> String {
    let mut all = args.to_vec();
    all.extend(files.iter().map(String::as_str));
    run("promtool", &all)
}

fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// Every alerting rule of every rule file, as (file, rule).
fn alerts() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for file in rule_files() {
        let doc = yaml(&file);
        let groups = doc["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no `groups` list"));
        for group in groups {
            for rule in group["rules"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: group without `rules`"))
            {
                if rule.get("alert").is_some() {
                    out.push((file.clone(), rule.clone()));
                }
            }
        }
    }
    assert!(!out.is_empty(), "no alerting rules found");
    out
}

fn alert_name(rule: &Value) -> String {
    rule["alert"]
        .as_str()
        .expect("alert name is a string")
        .to_owned()
}

fn label<'a>(rule: &'a Value, name: &str) -> Option<&'a str> {
    rule["labels"].get(name).and_then(Value::as_str)
}

fn annotation<'a>(rule: &'a Value, name: &str) -> Option<&'a str> {
    rule["annotations"].get(name).and_then(Value::as_str)
}

/// GitHub's anchor for a Markdown heading: lower case, spaces to hyphens, punctuation dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Anchors of every heading of a Markdown file, code fences skipped.
fn heading_anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#');
        if text.starts_with(' ') {
            anchors.insert(github_anchor(text));
        }
    }
    anchors
}

// ---- the tools --------------------------------------------------------------------------------

#[test]
fn promtool_check_rules_passes() {
    let out = promtool_on(&["check", "rules"], &rule_files());
    assert!(
        out.contains("SUCCESS"),
        "unexpected promtool output:\n{out}"
    );
}

#[test]
fn promtool_unit_tests_pass() {
    let out = promtool_on(&["test", "rules"], &test_files());
    assert!(
        !out.contains("FAILED"),
        "promtool reported failures:\n{out}"
    );
}

#[test]
fn promtool_check_prometheus_config_passes() {
    let out = run("promtool", &["check", "config", "alerting/prometheus.yml"]);
    assert!(
        out.contains("SUCCESS"),
        "unexpected promtool output:\n{out}"
    );
    let config = yaml("alerting/prometheus.yml");
    let jobs = config["scrape_configs"].as_array().expect("scrape_configs");
    let rollbackd = jobs
        .iter()
        .find(|j| j["job_name"] == "rollbackd")
        .expect("a scrape job named rollbackd");
    assert_eq!(
        rollbackd["scrape_interval"], "1s",
        "rollbackd must be scraped every second"
    );
    assert_eq!(config["global"]["evaluation_interval"], "1s");
}

#[test]
fn amtool_check_config_passes() {
    let out = run("amtool", &["check-config", "alerting/alertmanager.yml"]);
    assert!(out.contains("SUCCESS"), "unexpected amtool output:\n{out}");
}

/// Each alert, with its own static labels, reaches the receivers the product promises:
/// `action="rollback"` -> rollbackd's webhook AND people; the seed's emergency -> its receiver;
/// `notify="primary"` -> the primary contacts on every channel; otherwise by severity.
#[test]
fn alertmanager_routes_every_alert_to_the_promised_receivers() {
    for (_, rule) in alerts() {
        let name = alert_name(&rule);
        let severity = label(&rule, "severity").unwrap_or("none");
        let expected = if label(&rule, "action") == Some("rollback") {
            format!("rollbackd-webhook,team-{severity}")
        } else if name == "EmergencyRollbackTriggered" {
            "emergency-rollback".to_owned()
        } else if label(&rule, "notify") == Some("primary") {
            "primary-contacts".to_owned()
        } else {
            format!("team-{severity}")
        };
        let mut args: Vec<String> = vec![
            "config".into(),
            "routes".into(),
            "test".into(),
            "--config.file=alerting/alertmanager.yml".into(),
            format!("--verify.receivers={expected}"),
            format!("alertname={name}"),
        ];
        if let Some(labels) = rule["labels"].as_object() {
            for (k, v) in labels {
                args.push(format!(
                    "{k}={}",
                    v.as_str().expect("label values are strings")
                ));
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("amtool", &args);
    }
}

/// A critical condition during a freeze is the moment a person must decide: the primary
/// contacts hear it at once by email, SMS and Slack, and only that alert is routed so.
#[test]
fn a_critical_condition_during_a_freeze_reaches_the_primary_contacts_on_every_channel() {
    let all: BTreeMap<String, Value> = alerts()
        .into_iter()
        .map(|(_, r)| (alert_name(&r), r))
        .collect();
    let rule = &all["RollbackCriticalDuringFreeze"];
    assert_eq!(label(rule, "severity"), Some("critical"));
    assert_eq!(label(rule, "notify"), Some("primary"));
    assert_eq!(
        label(rule, "action"),
        None,
        "a freeze holds rollbacks anyway"
    );
    assert_eq!(rule["for"], "0s", "the moment a human must decide");
    for (name, r) in &all {
        if name != "RollbackCriticalDuringFreeze" {
            assert_eq!(label(r, "notify"), None, "{name} must not carry notify");
        }
    }
    let config = yaml("alerting/alertmanager.yml");
    let routes = config["route"]["routes"].as_array().expect("child routes");
    let primary = routes
        .iter()
        .position(|r| r["receiver"] == "primary-contacts")
        .expect("a route to primary-contacts");
    let severity = routes
        .iter()
        .position(|r| r["receiver"] == "team-critical")
        .expect("a route to team-critical");
    assert!(
        primary < severity,
        "the primary route must come before the severity routes"
    );
    // Grouped by name alone, so the replicas' rule alerts and rollbackd's direct notice are
    // one message; the short wait lets them all join it (docs/ha.md).
    assert_eq!(
        routes[primary]["group_by"],
        serde_json::json!(["alertname"])
    );
    assert_eq!(routes[primary]["group_wait"], "5s");
    let receivers = config["receivers"].as_array().expect("receivers");
    let receiver = receivers
        .iter()
        .find(|r| r["name"] == "primary-contacts")
        .expect("primary-contacts receiver");
    for channel in ["email_configs", "sns_configs", "slack_configs"] {
        assert!(
            receiver[channel].as_array().is_some_and(|c| !c.is_empty()),
            "primary-contacts has no {channel}"
        );
    }
}

/// `amtool config routes test` for one label set, checking the receivers it reaches.
fn routes_to(expected: &str, labels: &[(&str, &str)]) {
    let mut args: Vec<String> = vec![
        "config".into(),
        "routes".into(),
        "test".into(),
        "--config.file=alerting/alertmanager.yml".into(),
        format!("--verify.receivers={expected}"),
    ];
    args.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("amtool", &args);
}

/// rollbackd's own alerts, posted straight to Alertmanager (src/engine/operations.rs): drills
/// and notification tests reach people on every channel through their own receiver, marked as
/// such, before any route that could swallow them; the direct notices route exactly like the
/// rule alerts they stand for (the freeze notice carries notify="primary" like its rule).
#[test]
fn drills_tests_and_direct_notices_reach_the_promised_receivers() {
    let common = [("severity", "info"), ("service", "rollbackd")];
    let drill = [
        ("alertname", "RollbackDrill"),
        ("drill", "true"),
        ("drill_id", "0193c0de-0000-7000-8000-00000000d811"),
    ];
    routes_to("drills-and-tests", &[&common[..], &drill[..]].concat());
    let test = [
        ("alertname", "RollbackNotificationTest"),
        ("test_id", "0193c0de-0000-7000-8000-0000000075e7"),
        ("channels", "email,slack,sns"),
    ];
    routes_to("drills-and-tests", &[&common[..], &test[..]].concat());
    // The direct notices' label sets, as direct_alert builds them.
    let notice = [
        ("severity", "critical"),
        ("team", "trading-ops"),
        ("service", "rollbackd"),
        ("event_id", "0193c0de-0000-7000-8000-000000000e1d"),
        ("trigger_type", "manual"),
    ];
    for status in ["executing", "completed", "failed"] {
        routes_to(
            "emergency-rollback",
            &[
                &notice[..],
                &[
                    ("alertname", "EmergencyRollbackTriggered"),
                    ("status", status),
                ],
            ]
            .concat(),
        );
    }
    routes_to(
        "primary-contacts",
        &[
            &notice[..],
            &[
                ("alertname", "RollbackCriticalDuringFreeze"),
                ("status", "suppressed"),
                ("notify", "primary"),
            ],
        ]
        .concat(),
    );

    let config = yaml("alerting/alertmanager.yml");
    let routes = config["route"]["routes"].as_array().expect("child routes");
    let pos = |receiver: &str| {
        routes
            .iter()
            .position(|r| r["receiver"] == receiver)
            .unwrap_or_else(|| panic!("a route to {receiver}"))
    };
    let drills = pos("drills-and-tests");
    for later in [
        "emergency-rollback",
        "primary-contacts",
        "team-critical",
        "team-high",
        "team-warning",
    ] {
        assert!(
            drills < pos(later),
            "drills-and-tests must come before {later}"
        );
    }
    // Only the webhook route, which matches action="rollback" alone, may come first.
    for r in &routes[..drills] {
        assert_eq!(r["receiver"], "rollbackd-webhook", "{r}");
    }
    let route = &routes[drills];
    assert_eq!(route["group_wait"], "0s");
    assert!(route.get("continue").is_none_or(|c| c == false), "{route}");
    let group_by: Vec<&str> = route["group_by"]
        .as_array()
        .expect("group_by")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for l in ["alertname", "drill_id", "test_id"] {
        assert!(group_by.contains(&l), "group_by {group_by:?} lacks {l}");
    }
    let receiver = config["receivers"]
        .as_array()
        .expect("receivers")
        .iter()
        .find(|r| r["name"] == "drills-and-tests")
        .expect("drills-and-tests receiver");
    for channel in ["email_configs", "sns_configs", "slack_configs"] {
        let configs = receiver[channel].as_array().expect(channel);
        assert!(!configs.is_empty(), "drills-and-tests has no {channel}");
        for c in configs {
            assert_eq!(c["send_resolved"], false, "{channel}: {c}");
            assert!(c.to_string().contains("rollbackd.drill."), "{channel}: {c}");
        }
    }
}

#[test]
fn drill_and_test_notifications_say_so_first() {
    let drill = "alerting/tests/template_data_drill.json";
    let test = "alerting/tests/template_data_notification_test.json";
    assert_eq!(
        render(drill, "rollbackd.drill.subject").trim_end(),
        "[DRILL] rollbackd rollback drill - nothing was changed, no action needed"
    );
    assert_eq!(
        render(test, "rollbackd.drill.subject").trim_end(),
        "[TEST] rollbackd notification test - nothing was changed, no action needed"
    );
    let sms = render(drill, "rollbackd.drill.sms");
    assert!(
        sms.starts_with("[DRILL] ") && sms.contains("0193c0de-7a1b-7c2d-9e3f-00000000d811"),
        "{sms}"
    );
    assert!(render(test, "rollbackd.drill.sms").starts_with("[TEST] "));
    let slack = render(drill, "rollbackd.drill.slack");
    assert!(
        slack.contains("*DRILL*") && slack.contains("No action needed"),
        "{slack}"
    );
    let text = render(test, "rollbackd.drill.text");
    assert!(
        text.contains("Channels:  email,slack,sns") && text.contains("was not switched"),
        "{text}"
    );
    render(drill, "rollbackd.drill.html");
}

#[test]
fn alertmanager_sends_rollback_alerts_to_the_webhook_fast_and_completely() {
    let config = yaml("alerting/alertmanager.yml");
    let routes = config["route"]["routes"].as_array().expect("child routes");
    let first = &routes[0];
    assert_eq!(
        first["receiver"], "rollbackd-webhook",
        "the webhook route must come first"
    );
    assert_eq!(
        first["continue"], true,
        "people must still be told about action=rollback alerts"
    );
    assert_eq!(first["group_wait"], "0s");
    let receivers = config["receivers"].as_array().expect("receivers");
    let webhook = receivers
        .iter()
        .find(|r| r["name"] == "rollbackd-webhook")
        .expect("rollbackd-webhook receiver");
    let hook = &webhook["webhook_configs"][0];
    assert_eq!(hook["url"], "http://rollbackd:9100/api/v1/alertmanager");
    assert_eq!(hook["send_resolved"], true);
    assert_eq!(hook["max_alerts"], 0);
    assert!(
        hook["http_config"]["authorization"]["credentials_file"].is_string(),
        "webhook token from a file"
    );
    // No inhibition may ever mute an alert that asks for a rollback.
    for rule in config["inhibit_rules"].as_array().expect("inhibit_rules") {
        let targets = serde_json::to_string(&rule["target_matchers"]).unwrap();
        assert!(
            !targets.contains("Critical"),
            "an inhibit rule targets a *Critical alert: {targets}"
        );
        assert!(
            !targets.contains("action"),
            "an inhibit rule targets action=rollback: {targets}"
        );
    }
}

fn render(data: &str, template: &str) -> String {
    run(
        "amtool",
        &[
            "template",
            "render",
            "--template.glob=alerting/templates/*.tmpl",
            &format!("--template.data={data}"),
            &format!("--template.text={{{{ template \"{template}\" . }}}}"),
        ],
    )
}

#[test]
fn notification_templates_render_the_seed_texts() {
    let data = "alerting/tests/template_data_emergency.json";
    assert_eq!(
        render(data, "rollbackd.emergency.subject").trim_end(),
        "🚨 EMERGENCY: Trading System Rolled Back to Cycle 4"
    );
    // Only the firing alert (status completed) is reported, not the resolved `executing` one.
    assert_eq!(
        render(data, "rollbackd.emergency.sms").trim_end(),
        "Emergency rollback executed. Event: 0193c0de-7a1b-7c2d-9e3f-0123456789ab. Status: completed. \
         Check dashboard immediately."
    );
    let text = render(data, "rollbackd.emergency.text");
    assert!(
        text.contains("universal_cycle_4") && text.contains("0193c0de-7a1b-7c2d-9e3f-0123456789ab"),
        "{text}"
    );
    let slack = render(data, "rollbackd.slack.title");
    assert_eq!(
        slack.trim_end(),
        "🚨 EMERGENCY: Trading System Rolled Back to Cycle 4"
    );
    let condition = "alerting/tests/template_data_condition.json";
    let subject = render(condition, "rollbackd.email.subject");
    assert_eq!(
        subject.trim_end(),
        "[FIRING:1] CRITICAL WalkForwardStabilityCritical (walk_forward_stability) - rollbackd"
    );
    let sms = render(condition, "rollbackd.sms");
    assert!(sms.contains("#walkforwardstabilitycritical"), "{sms}");
    for t in [
        "rollbackd.email.text",
        "rollbackd.email.html",
        "rollbackd.slack.text",
        "rollbackd.slack.color",
        "rollbackd.emergency.html",
    ] {
        render(condition, t);
        render(data, t);
    }
}

// ---- the contract of every alert ----------------------------------------------------------------

#[test]
fn every_alert_has_severity_owner_summary_description_and_a_runbook_section() {
    let anchors = heading_anchors(&read("docs/runbook.md"));
    let mut names = BTreeSet::new();
    for (file, rule) in alerts() {
        let name = alert_name(&rule);
        assert!(
            names.insert(name.clone()),
            "{file}: alert {name} is defined twice"
        );
        let severity = label(&rule, "severity");
        assert!(
            matches!(severity, Some("critical" | "high" | "warning")),
            "{file}: {name}: severity must be critical|high|warning, is {severity:?}"
        );
        assert!(
            label(&rule, "team").is_some_and(|t| !t.is_empty()),
            "{file}: {name}: no team label"
        );
        assert_eq!(
            label(&rule, "service"),
            Some("rollbackd"),
            "{file}: {name}: service label"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                annotation(&rule, key).is_some_and(|v| !v.trim().is_empty()),
                "{file}: {name}: annotation {key} missing"
            );
        }
        let description = annotation(&rule, "description").unwrap();
        assert!(
            description.contains("$value"),
            "{file}: {name}: description must show the live value"
        );
        let url = annotation(&rule, "runbook_url").unwrap();
        let anchor = url.strip_prefix(RUNBOOK_BASE).unwrap_or_else(|| {
            panic!("{file}: {name}: runbook_url {url} does not start with {RUNBOOK_BASE}")
        });
        assert_eq!(
            anchor,
            name.to_lowercase(),
            "{file}: {name}: runbook anchor should be the alert name"
        );
        assert!(
            anchors.contains(anchor),
            "{file}: {name}: docs/runbook.md has no heading with anchor #{anchor}"
        );
        // Only the per-condition critical alerts may ask rollbackd for a rollback.
        if label(&rule, "action") == Some("rollback") {
            assert_eq!(
                severity,
                Some("critical"),
                "{file}: {name}: action=rollback on a non-critical alert"
            );
            assert!(
                name.ends_with("Critical"),
                "{file}: {name}: action=rollback on a non-condition alert"
            );
            assert!(
                rule["labels"].get("condition_type").is_none(),
                "condition_type comes from the series"
            );
        }
    }
    for required in [
        "EmergencyRollbackTriggered",
        "RollbackTriggerConditionsMet",
        "RecoveryValidationFailed",
    ] {
        assert!(
            names.contains(required),
            "the seed's alert {required} is missing"
        );
    }
    for condition in [
        "WalkForwardStability",
        "OverfittingScore",
        "ConsecutiveLosses",
        "MaxDrawdown",
    ] {
        for level in ["Critical", "Warning"] {
            assert!(
                names.contains(&format!("{condition}{level}")),
                "{condition}{level} is missing"
            );
        }
    }
}

#[test]
fn the_seed_alerts_keep_the_seed_severity_and_messages() {
    let all: BTreeMap<String, Value> = alerts()
        .into_iter()
        .map(|(_, r)| (alert_name(&r), r))
        .collect();
    let emergency = &all["EmergencyRollbackTriggered"];
    assert_eq!(label(emergency, "severity"), Some("critical"));
    assert_eq!(
        label(emergency, "action"),
        None,
        "the emergency notification must never request a rollback"
    );
    assert_eq!(
        annotation(emergency, "summary"),
        Some("🚨 EMERGENCY: Trading system rolled back to Cycle 4 - Event ID: {{ $labels.event_id }}")
    );
    let warning = &all["RollbackTriggerConditionsMet"];
    assert_eq!(label(warning, "severity"), Some("warning"));
    assert_eq!(
        annotation(warning, "summary"),
        Some("⚠️ WARNING: Rollback trigger conditions detected - System may auto-rollback")
    );
    let failed = &all["RecoveryValidationFailed"];
    assert_eq!(label(failed, "severity"), Some("high"));
    assert_eq!(
        annotation(failed, "summary"),
        Some("🔴 ALERT: Recovery validation failed after rollback - Manual intervention required")
    );
    for name in [
        "WalkForwardStabilityCritical",
        "OverfittingScoreCritical",
        "ConsecutiveLossesCritical",
        "MaxDrawdownCritical",
    ] {
        assert_eq!(
            label(&all[name], "action"),
            Some("rollback"),
            "{name} must carry action=rollback"
        );
        assert_eq!(
            all[name]["for"], "0s",
            "{name} must fire on the first evaluation"
        );
    }
}

#[test]
fn rules_only_use_documented_metrics() {
    let documented = documented_metrics();
    assert!(
        documented.contains("trigger_condition_value"),
        "could not parse docs/metrics.md"
    );
    for (file, rule) in alerts() {
        let name = alert_name(&rule);
        let expr = rule["expr"].as_str().expect("expr is a string");
        let used = promql_metric_names(expr);
        assert!(
            !used.is_empty(),
            "{file}: {name}: found no metric in {expr}"
        );
        for metric in used {
            let known = metric == "up" || documented_name(&metric, &documented).is_some();
            assert!(
                known,
                "{file}: {name}: metric `{metric}` is not in docs/metrics.md"
            );
        }
    }
}

#[test]
fn the_metric_name_parser_skips_labels_functions_and_keywords() {
    let names = promql_metric_names(
        r#"(rollback_last_event_info * ignoring(event_id, status) group_left() (time() - rollback_last_event_timestamp_seconds)) < 600
           or increase(rollback_outcomes_total{status="failed", x=~"a{1}"}[15m] offset 5m) > 0
           and on(instance) sum by (job) (up{job="rollbackd"}) unless absent(foo_bar)"#,
    );
    let expected: BTreeSet<String> = [
        "rollback_last_event_info",
        "rollback_last_event_timestamp_seconds",
        "rollback_outcomes_total",
        "up",
        "foo_bar",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(names, expected);
}

/// Every alert is tested by promtool both firing and silent.
#[test]
fn every_alert_has_a_firing_and_a_silent_promtool_test() {
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for file in test_files() {
        let doc = yaml(&file);
        for test in doc["tests"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no tests"))
        {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let name = case["alertname"].as_str().expect("alertname").to_owned();
                match case["exp_alerts"].as_array() {
                    Some(a) if !a.is_empty() => firing.insert(name),
                    _ => silent.insert(name),
                };
            }
        }
    }
    for (file, rule) in alerts() {
        let name = alert_name(&rule);
        assert!(
            firing.contains(&name),
            "{file}: {name} has no promtool test where it fires"
        );
        assert!(
            silent.contains(&name),
            "{file}: {name} has no promtool test where it stays silent"
        );
    }
}

#[test]
fn runbook_links_point_at_existing_sections() {
    let runbook = read("docs/runbook.md");
    let anchors = heading_anchors(&runbook);
    let mut rest = runbook.as_str();
    while let Some(pos) = rest.find("](#") {
        let after = &rest[pos + 3..];
        let end = after.find(')').expect("unterminated link");
        let anchor = &after[..end];
        assert!(
            anchors.contains(anchor),
            "docs/runbook.md links to #{anchor}, which is no heading"
        );
        rest = &after[end..];
    }
    for section in [
        "immediate-response--2-minutes",
        "validation-checklist-within-5-minutes",
        "post-rollback-actions-within-30-minutes",
    ] {
        assert!(
            anchors.contains(section),
            "the seed's playbook section #{section} is missing"
        );
    }
    assert!(Path::new(&repo().join("docs/metrics.md")).exists());
}

// ---- one breach, one page, with two replicas ----------------------------------------------------

const AM_LIMIT: Duration = Duration::from_secs(45);

/// Longer than the people routes' group_interval (30 s) after the first notification: a
/// replica's alert that missed the first message would be told again within it.
const PAST_GROUP_INTERVAL: Duration = Duration::from_secs(33);

/// One alert as Prometheus (or rollbackd's direct notice) posts it to Alertmanager.
fn am_alert(labels: &[(&str, &str)]) -> Value {
    let now = chrono::Utc::now();
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "labels": labels,
        "annotations": {"summary": "test alert", "description": "posted by the test"},
        "startsAt": now.to_rfc3339(),
        "endsAt": (now + chrono::Duration::minutes(10)).to_rfc3339(),
    })
}

async fn post_to_alertmanager(addr: &str, alerts: &[Value]) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/api/v2/alerts"))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// What people received that mentions `alertname`: (emails, Slack bodies, SNS bodies).
fn people_told(sinks: &Shared, alertname: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let s = sinks.lock().unwrap();
    let about = |text: &str| text.to_lowercase().contains(&alertname.to_lowercase());
    let mail = s
        .mail
        .iter()
        .map(|m| decode_mail(m))
        .filter(|m| about(m))
        .collect();
    let by = |prefix: &str| -> Vec<String> {
        s.http
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, body)| url_decode(body))
            .filter(|b| about(b))
            .collect()
    };
    (mail, by("/slack"), by("/sns"))
}

/// Waits for the first message of `alertname` on every channel, then past the group
/// interval, and returns everything people got about it.
async fn told_once_settled(
    sinks: &Shared,
    alertname: &str,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    wait_until("email, Slack and SMS about the alert", AM_LIMIT, || async {
        let (mail, slack, sns) = people_told(sinks, alertname);
        (!mail.is_empty() && !slack.is_empty() && !sns.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(PAST_GROUP_INTERVAL).await;
    people_told(sinks, alertname)
}

/// Every replica exports the condition gauges, so a breach fires the condition's critical
/// alert once per instance. The shipped routing pages people once for both (one email, one
/// Slack message, one SMS listing both instances), while the webhook still gets each alert
/// at once and rollbackd runs one rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_breach_seen_by_two_replicas_pages_people_once_and_rolls_back_once() {
    let app = TestApp::builder().manual().auth().spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = Shared::default();
    let am = loopback_addr();
    let _am = start_lone_alertmanager(
        dir.path(),
        "alerting/alertmanager.yml",
        &am,
        &app.url,
        WEBHOOK_TOKEN,
        &sinks,
        AM_LIMIT,
    )
    .await;
    let rule = |instance: &str| {
        am_alert(&[
            ("alertname", "WalkForwardStabilityCritical"),
            ("severity", "critical"),
            ("team", "trading-ops"),
            ("service", "rollbackd"),
            ("action", "rollback"),
            ("condition_type", "walk_forward_stability"),
            ("job", "rollbackd"),
            ("instance", instance),
        ])
    };
    // The replicas poll, and Prometheus scrapes them, independently: their alerts arrive a
    // moment apart, as from Prometheus's evaluations.
    post_to_alertmanager(&am, &[rule("rollbackd-1:9100")]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    post_to_alertmanager(&am, &[rule("rollbackd-2:9100")]).await;

    let (mail, slack, sns) = told_once_settled(&sinks, "WalkForwardStabilityCritical").await;
    assert_eq!(mail.len(), 1, "one email for one breach: {mail:#?}");
    assert!(
        mail[0].contains("[FIRING:2]"),
        "both replicas in it: {mail:#?}"
    );
    assert_eq!(slack.len(), 1, "one Slack message: {slack:#?}");
    assert!(
        slack[0].contains("rollbackd-1:9100") && slack[0].contains("rollbackd-2:9100"),
        "{slack:#?}"
    );
    assert_eq!(sns.len(), 1, "one SMS: {sns:#?}");

    // The webhook route (group_by '...') delivered each replica's alert on its own; rollbackd
    // ran one rollback and held the other alert.
    let events = wait_until("both alerts recorded by rollbackd", AM_LIMIT, || async {
        let events = app.events("trigger_type=alertmanager").await;
        let fingerprints: usize = events
            .iter()
            .map(|e| e["fingerprints"].as_array().map_or(0, Vec::len))
            .sum();
        (fingerprints == 2).then_some(events)
    })
    .await;
    let executed: Vec<&Value> = events
        .iter()
        .filter(|e| e["status"] != "suppressed")
        .collect();
    assert_eq!(executed.len(), 1, "{events:#?}");
    assert_eq!(
        app.sim.switches().len(),
        1,
        "one switch of the trading system"
    );
}

/// During a freeze the leader posts its direct notice of the held trigger (no job, no
/// instance) and both replicas' RollbackCriticalDuringFreeze rule alerts follow: the primary
/// contacts get one message on each channel holding all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_trigger_told_by_rollbackd_and_two_replicas_reaches_the_primary_contacts_once() {
    let am = loopback_addr();
    let app = TestApp::builder()
        .auth()
        .append_yaml(&format!("alertmanager: {{ urls: [\"http://{am}\"] }}\n"))
        .spawn()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = Shared::default();
    let _am = start_lone_alertmanager(
        dir.path(),
        "alerting/alertmanager.yml",
        &am,
        &app.url,
        WEBHOOK_TOKEN,
        &sinks,
        AM_LIMIT,
    )
    .await;
    let freeze = json!({"duration": "1h", "reason": "CPI release", "name": "cpi"});
    let started = app
        .with_token(OPS_TOKEN)
        .post("/api/v1/freeze", &freeze)
        .await;
    assert_eq!(started.status, 201, "{}", started.text);
    app.sim
        .set_metrics(json!({"walk_forward_stability": 30.0}))
        .await;

    // rollbackd's own notice, with the labels src/engine/operations.rs gives it.
    let alerts_url = format!("http://{am}/api/v2/alerts");
    let notice = wait_until(
        "rollbackd's direct notice in Alertmanager",
        AM_LIMIT,
        || async {
            let alerts: Value = reqwest::get(&alerts_url).await.ok()?.json().await.ok()?;
            alerts
                .as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == "RollbackCriticalDuringFreeze")
                .cloned()
        },
    )
    .await;
    assert_eq!(notice["labels"]["notify"], "primary", "{notice}");
    assert!(notice["labels"].get("instance").is_none(), "{notice}");
    assert_eq!(
        notice["receivers"],
        json!([{"name": "primary-contacts"}]),
        "{notice}"
    );

    // Prometheus's rule alert from each replica, a scrape and an evaluation later.
    let rule = |instance: &str| {
        am_alert(&[
            ("alertname", "RollbackCriticalDuringFreeze"),
            ("severity", "critical"),
            ("team", "trading-ops"),
            ("service", "rollbackd"),
            ("notify", "primary"),
            ("condition_type", "walk_forward_stability"),
            ("job", "rollbackd"),
            ("instance", instance),
        ])
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    post_to_alertmanager(&am, &[rule("rollbackd-1:9100")]).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    post_to_alertmanager(&am, &[rule("rollbackd-2:9100")]).await;

    let (mail, slack, sns) = told_once_settled(&sinks, "RollbackCriticalDuringFreeze").await;
    assert_eq!(
        mail.len(),
        1,
        "one email to the primary contacts: {mail:#?}"
    );
    assert!(
        mail[0].contains("[FIRING:3]"),
        "the notice and both replicas' alerts in it: {mail:#?}"
    );
    assert_eq!(slack.len(), 1, "one Slack message: {slack:#?}");
    assert_eq!(sns.len(), 1, "one SMS: {sns:#?}");
    assert!(
        app.sim.switches().is_empty(),
        "a freeze never touches the target"
    );
}
