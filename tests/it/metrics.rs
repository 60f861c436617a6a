//! `/metrics` held to its contract: the seed's five from the first scrape, every metric of
//! docs/metrics.md with its labels and values (and nothing undocumented), content negotiation,
//! and the real `promtool check metrics`.

use crate::harness::metric_docs::{doc_metrics, DocMetric, AFTER_FIRST_OPERATION};
use crate::harness::metrics::{Metrics, Sample};
use crate::harness::tools::run_tool;
use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};

#[tokio::test]
async fn metrics_the_seed_five_exist_from_the_first_scrape_with_exact_names_types_labels() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let m = app.metrics().await;
    assert_eq!(m.type_of("rollback_system_ready").as_deref(), Some("gauge"));
    assert_eq!(
        m.get("rollback_system_ready", &[]),
        Some(1.0),
        "target up, nothing in progress"
    );

    assert_eq!(
        m.type_of("rollback_events_total").as_deref(),
        Some("counter")
    );
    for t in ["watchdog", "alertmanager", "manual"] {
        assert_eq!(
            m.get("rollback_events_total", &[("trigger_type", t)]),
            Some(0.0),
            "rollback_events_total{{trigger_type={t:?}}} at 0 from the start"
        );
    }
    let samples = m.samples();
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
        m.type_of("trigger_conditions_active").as_deref(),
        Some("gauge")
    );
    for c in [
        "walk_forward_stability",
        "overfitting_score",
        "consecutive_losses",
        "max_drawdown",
    ] {
        m.assert("trigger_conditions_active", &[("condition_type", c)], 0.0);
    }
    assert_eq!(
        samples
            .iter()
            .filter(|s| s.name == "trigger_conditions_active")
            .count(),
        4
    );

    assert_eq!(
        m.type_of("recovery_validation_score").as_deref(),
        Some("gauge")
    );
    assert!(
        m.get("recovery_validation_score", &[]).unwrap().is_nan(),
        "NaN before the first validation"
    );

    assert_execution_time_buckets(&m, &samples);

    // After one manual rollback the seed's five move.
    app.rollback("drawdown spike").await.ok();
    let m = app.metrics().await;
    m.assert("rollback_events_total", &[("trigger_type", "manual")], 1.0);
    m.assert(
        "rollback_events_total",
        &[("trigger_type", "watchdog")],
        0.0,
    );
    m.assert("recovery_validation_score", &[], 100.0);
    m.assert("rollback_execution_time_seconds_count", &[], 1.0);
    m.assert(
        "rollback_execution_time_seconds_bucket",
        &[("le", "+Inf")],
        1.0,
    );
    let sum = m.get("rollback_execution_time_seconds_sum", &[]).unwrap();
    assert!(sum > 0.0 && sum < 5.0, "execution time {sum}");
}

/// The execution-time histogram: from 10 ms to 30 s, ascending, empty.
fn assert_execution_time_buckets(m: &Metrics, samples: &[Sample]) {
    assert_eq!(
        m.type_of("rollback_execution_time_seconds").as_deref(),
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
    m.assert("rollback_execution_time_seconds_count", &[], 0.0);
    m.assert("rollback_execution_time_seconds_sum", &[], 0.0);
}

#[tokio::test]
async fn metrics_every_documented_metric_is_exported_with_its_labels_and_values() {
    // A regime in the config: rollback_regime_active has one series per configured regime.
    let app = TestApp::builder()
        .manual()
        .append_yaml("regimes:\n  high_volatility: { max_drawdown.critical_threshold: 6.5 }\n")
        .spawn_polled()
        .await;
    let (docs, global) = doc_metrics();
    for l in ["condition_type", "trigger_type", "severity", "mode"] {
        assert!(
            global.contains_key(l),
            "the doc lists values for {l}: {global:?}"
        );
    }
    let m = app.metrics().await;
    assert_documented(&m, &docs, &global, false);
    // No hold in force: the configured regime is off, the mode is auto, nothing awaits.
    m.assert(
        "rollback_regime_active",
        &[("regime", "high_volatility")],
        0.0,
    );
    m.assert("rollback_automation_mode", &[("mode", "auto")], 1.0);
    m.assert("rollback_automation_mode", &[("mode", "observe")], 0.0);
    m.assert("rollback_freeze_active", &[], 0.0);
    m.assert("rollback_proposals_pending", &[], 0.0);

    // The process metrics hold real values.
    let v = |name: &str, labels: &[(&str, &str)]| {
        m.get(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?}"))
    };
    assert!(v("process_resident_memory_bytes", &[]) > 1e6);
    assert!(v("process_virtual_memory_bytes", &[]) >= v("process_resident_memory_bytes", &[]));
    assert!(v("process_open_fds", &[]) >= 3.0);
    assert!(v("process_max_fds", &[]) >= v("process_open_fds", &[]));
    assert!(v("process_cpu_seconds_total", &[]) >= 0.0);
    // SQLite holds at least the open history's schema, and never more than the process has.
    let sqlite = v("rollbackd_sqlite_memory_bytes", &[]);
    assert!(sqlite > 1e3, "rollbackd_sqlite_memory_bytes {sqlite}");
    assert!(sqlite < v("process_resident_memory_bytes", &[]));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = v("process_start_time_seconds", &[]);
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "start time {started} vs now {now}"
    );
    assert_eq!(v("rollback_agents_expected", &[]), 8.0);
    assert_eq!(v("rollback_agents_healthy", &[]), 8.0);
    assert_eq!(v("rollback_target_up", &[]), 1.0);
    assert_eq!(v("rollback_mode", &[("mode", "session_targeted")]), 1.0);
    assert_eq!(v("rollback_mode", &[("mode", "unknown")]), 0.0);
    assert_eq!(v("rollback_automatic_enabled", &[]), 0.0);
    assert_eq!(v("recovery_validation_pass_score", &[]), 85.0);
    let revision = env!("ROLLBACKD_REVISION");
    assert_eq!(
        v(
            "rollbackd_build_info",
            &[("version", "0.1.0"), ("revision", revision)]
        ),
        1.0
    );
    if std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".git")
        .exists()
    {
        assert!(
            revision.len() == 12 && revision.chars().all(|c| c.is_ascii_hexdigit()),
            "a git checkout is stamped with its commit: {revision:?}"
        );
    }

    let r = app.rollback("for the last event series").await.ok();
    let id = r["id"].as_str().unwrap();
    let m = app.metrics().await;
    assert_documented(&m, &docs, &global, true);
    let last = [
        ("event_id", id),
        ("trigger_type", "manual"),
        ("status", "completed"),
    ];
    m.assert("rollback_last_event_info", &last, 1.0);
    m.assert("rollback_mode", &[("mode", "universal_cycle_4")], 1.0);
    m.assert("rollback_outcomes_total", &[("status", "completed")], 1.0);
    m.assert(
        "recovery_validations_total",
        &[("kind", "initial"), ("result", "pass")],
        1.0,
    );
    m.assert(
        "rollback_target_requests_total",
        &[("operation", "switch"), ("result", "ok")],
        1.0,
    );
}

/// Every documented family is in the scrape with its type, labels and every documented label
/// value (all combinations), and every family in the scrape is documented. The last event's
/// series exists only after a rollback.
fn assert_documented(
    m: &Metrics,
    docs: &[DocMetric],
    global: &BTreeMap<String, Vec<String>>,
    after_rollback: bool,
) {
    let samples = m.samples();
    for d in docs {
        assert_named_by_type(d);
        if d.name == "rollback_last_event_info" && !after_rollback {
            assert!(
                m.type_of(&d.name).is_none() && !m.text.contains("rollback_last_event_info{"),
                "absent before the first rollback"
            );
            continue;
        }
        if AFTER_FIRST_OPERATION.contains(&d.name.as_str()) {
            assert!(
                m.type_of(&d.name).is_none() && !m.text.contains(&format!("{}{{", d.name)),
                "{} is absent before the first drill or notification test",
                d.name
            );
            continue;
        }
        assert_eq!(
            m.type_of(&d.name).as_deref(),
            Some(d.kind.as_str()),
            "`# TYPE {} {}` in the scrape",
            d.name,
            d.kind
        );
        let mine = samples_of(&samples, d);
        if d.name == "rollback_last_event_info" {
            assert_eq!(
                mine.len(),
                1,
                "one series for the latest rollback: {mine:?}"
            );
            assert_eq!(mine[0].value, 1.0);
        }
        assert!(!mine.is_empty(), "{} has samples", d.name);
        let want: BTreeSet<&str> = d.labels.iter().map(|(l, _)| l.as_str()).collect();
        for s in &mine {
            let mut have: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
            if s.name.ends_with("_bucket") && d.kind == "histogram" {
                assert!(have.remove("le"), "{s:?}");
            }
            assert_eq!(have, want, "labels of {}", s.name);
        }
        if d.name != "rollback_last_event_info" {
            assert_every_documented_value(d, &mine, global);
        }
    }
    // And the other way round: every family rollbackd exports is documented.
    let documented: BTreeSet<&str> = docs.iter().map(|d| d.name.as_str()).collect();
    for line in m.text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let family = rest.split(' ').next().unwrap();
            assert!(
                documented.contains(family),
                "{family} is exported but not in docs/metrics.md"
            );
        }
    }
}

/// Naming rules of the text format.
fn assert_named_by_type(d: &DocMetric) {
    match d.kind.as_str() {
        "counter" => assert!(
            d.name.ends_with("_total"),
            "counter {} ends in _total",
            d.name
        ),
        "gauge" => assert!(
            !d.name.ends_with("_total"),
            "gauge {} must not end in _total",
            d.name
        ),
        "histogram" => assert!(
            !d.name.ends_with("_bucket") && !d.name.ends_with("_count"),
            "histogram {} is named by its family",
            d.name
        ),
        other => panic!("unknown type {other:?} for {} in docs/metrics.md", d.name),
    }
}

/// The samples of one documented family (a histogram's `_bucket`, `_sum` and `_count`).
fn samples_of<'a>(samples: &'a [Sample], d: &DocMetric) -> Vec<&'a Sample> {
    let names = if d.kind == "histogram" {
        vec![
            format!("{}_bucket", d.name),
            format!("{}_sum", d.name),
            format!("{}_count", d.name),
        ]
    } else {
        vec![d.name.clone()]
    };
    samples.iter().filter(|s| names.contains(&s.name)).collect()
}

/// Every documented label value exists from the first scrape, in all combinations.
fn assert_every_documented_value(
    d: &DocMetric,
    mine: &[&Sample],
    global: &BTreeMap<String, Vec<String>>,
) {
    let known: Vec<(&str, Vec<String>)> = d
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
    if known.len() != d.labels.len() {
        return;
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
            d.name
        );
    }
}

#[tokio::test]
async fn metrics_content_negotiation_openmetrics_or_text_004() {
    let app = TestApp::builder().manual().spawn_polled().await;
    let (ct, text) = app.scrape(None).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert!(
        !text.contains("# EOF"),
        "no OpenMetrics terminator in 0.0.4"
    );
    assert!(text.contains("# TYPE rollback_events_total counter"));

    let (ct, om) = app
        .scrape(Some("application/openmetrics-text; version=1.0.0"))
        .await;
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
    let (ct, om) = app.scrape(Some(prom)).await;
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"));
    // A plain scraper.
    let (ct, _) = app.scrape(Some("text/plain")).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
}

/// The real promtool: exit 0 means the text parsed, and silence means no lint problem.
fn promtool_check(m: &Metrics) {
    let out = run_tool("promtool", &["check", "metrics"], Some(&m.text));
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.trim().is_empty(),
        "promtool printed lint problems:\n{said}"
    );
}

#[tokio::test]
async fn metrics_pass_the_real_promtool_check_before_and_after_a_rollback() {
    let app = TestApp::builder().manual().spawn_polled().await;
    promtool_check(&app.metrics().await);
    app.rollback("for promtool").await.ok();
    let m = app.metrics().await;
    assert!(m.text.contains("rollback_last_event_info{"));
    promtool_check(&m);
}
