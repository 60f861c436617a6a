//! The compose stack, the Grafana provisioning and dashboards, and the Dockerfile, checked
//! as files: no Docker, no Grafana, no network. What is checked here is what breaks a
//! `docker compose up` silently or shows an empty panel: a mount of a path that does not
//! exist, a dashboard bound to a datasource that is not there, a panel querying a metric
//! rollbackd does not export, a token file nobody mounts.
//!
//! The dashboard and PromQL helpers live in the harness (`dashboards`, `promql`); the
//! end-to-end alerting test runs the same expressions on a real Prometheus.

use crate::harness::dashboards::*;
use crate::harness::files::{read, repo};
use crate::harness::library::load_config;
use crate::harness::metric_docs::{documented_metrics, documented_name, is_rollbackd_metric};
use crate::harness::promql::promql_metric_names;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

fn yaml(rel: &str) -> Yaml {
    let mut v: Yaml = serde_yaml_ng::from_str(&read(rel))
        .unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{rel}: YAML merge keys: {e}"));
    v
}

fn compose() -> Yaml {
    yaml("docker-compose.yml")
}

fn services(compose: &Yaml) -> &serde_yaml_ng::Mapping {
    compose["services"]
        .as_mapping()
        .expect("docker-compose.yml has a services mapping")
}

fn s(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

/// A service's volume mounts as (source, target, read_only); short and long syntax.
fn mounts(service: &Yaml) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for v in service["volumes"].as_sequence().into_iter().flatten() {
        match v {
            Yaml::String(spec) => {
                let parts: Vec<&str> = spec.split(':').collect();
                assert!(
                    parts.len() >= 2,
                    "volume {spec:?} has no target (anonymous volumes lose data on recreate)"
                );
                let ro = parts
                    .get(2)
                    .is_some_and(|m| m.split(',').any(|o| o == "ro"));
                out.push((parts[0].to_string(), parts[1].to_string(), ro));
            }
            Yaml::Mapping(_) => out.push((
                s(&v["source"]),
                s(&v["target"]),
                v["read_only"].as_bool().unwrap_or(false),
            )),
            other => panic!("unexpected volume entry {other:?}"),
        }
    }
    out
}

fn is_bind(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

/// The repository file or directory behind a path inside a service's container, through its
/// bind mounts and compose secrets (mounted at /run/secrets/<name>, or their `target`).
fn host_path(compose: &Yaml, service: &str, container_path: &str) -> Option<PathBuf> {
    let svc = &services(compose)[service];
    let mut best: Option<(usize, PathBuf)> = None;
    for (src, target, _) in mounts(svc) {
        if !is_bind(&src) {
            continue;
        }
        let target = target.trim_end_matches('/');
        let rest = if container_path == target {
            Some("")
        } else {
            container_path
                .strip_prefix(target)
                .and_then(|r| r.strip_prefix('/'))
        };
        if let Some(rest) = rest {
            let p = repo().join(src.trim_start_matches("./")).join(rest);
            if best.as_ref().is_none_or(|(len, _)| target.len() > *len) {
                best = Some((target.len(), p));
            }
        }
    }
    if best.is_none() {
        for sec in svc["secrets"].as_sequence().into_iter().flatten() {
            let (name, target) = match sec {
                Yaml::String(n) => (n.clone(), format!("/run/secrets/{n}")),
                m => {
                    let n = s(&m["source"]);
                    let t = m["target"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or(n.clone());
                    let t = if t.starts_with('/') {
                        t
                    } else {
                        format!("/run/secrets/{t}")
                    };
                    (n, t)
                }
            };
            if target == container_path {
                let file = s(&compose["secrets"][name.as_str()]["file"]);
                best = Some((0, repo().join(file.trim_start_matches("./"))));
            }
        }
    }
    best.map(|(_, p)| p)
}

// ---------------------------------------------------------------------------------------
// Dashboards

#[test]
fn dashboards_exist_and_are_valid_json_with_fixed_uids() {
    let files = dashboard_files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["emergency-rollback.json", "rollback-slos.json"] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing grafana/dashboards/{expected}"
        );
    }
    let mut uids = BTreeSet::new();
    for f in &files {
        let d = load_dashboard(f);
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no fixed uid", f.display()));
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "{}: uid {uid:?}",
            f.display()
        );
        assert!(uids.insert(uid.to_string()), "uid {uid} used twice");
        assert!(
            d["id"].is_null(),
            "{}: `id` must be null so Grafana assigns it",
            f.display()
        );
        let schema = d["schemaVersion"].as_u64().unwrap_or(0);
        assert!(
            (36..=41).contains(&schema),
            "{}: schemaVersion {schema}",
            f.display()
        );
        let tags: Vec<&str> = d["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Json::as_str)
            .collect();
        assert!(
            tags.contains(&"rollbackd"),
            "{}: not tagged rollbackd",
            f.display()
        );
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    }
}

#[test]
fn panel_ids_are_unique_including_rows_and_fit_the_grid() {
    for f in dashboard_files() {
        let d = load_dashboard(&f);
        let mut ids = BTreeSet::new();
        let panels = all_panels(&d);
        assert!(
            panels.len() >= 8,
            "{}: only {} panels",
            f.display(),
            panels.len()
        );
        for p in &panels {
            let id = p["id"].as_u64().unwrap_or_else(|| {
                panic!("{}: panel {:?} has no numeric id", f.display(), p["title"])
            });
            assert!(ids.insert(id), "{}: panel id {id} used twice", f.display());
            let g = &p["gridPos"];
            let (x, w, h) = (g["x"].as_u64(), g["w"].as_u64(), g["h"].as_u64());
            let (Some(x), Some(w), Some(h)) = (x, w, h) else {
                panic!("{}: panel {id} has no gridPos", f.display())
            };
            assert!(
                g["y"].as_u64().is_some(),
                "{}: panel {id} has no gridPos.y",
                f.display()
            );
            assert!(
                w > 0 && h > 0 && x + w <= 24,
                "{}: panel {id} gridPos {g}",
                f.display()
            );
            assert!(
                p["type"].as_str().is_some(),
                "{}: panel {id} has no type",
                f.display()
            );
            assert!(
                p["title"].as_str().is_some(),
                "{}: panel {id} has no title",
                f.display()
            );
        }
        // What is on screen at once (top level and expanded rows) must not overlap.
        let mut visible: Vec<&Json> = Vec::new();
        for p in d["panels"].as_array().unwrap() {
            visible.push(p);
            if p["type"] == "row" && p["collapsed"] == false {
                assert!(
                    p["panels"].as_array().is_none_or(|c| c.is_empty()),
                    "{}: expanded row {} keeps panels inside (only collapsed rows do)",
                    f.display(),
                    p["id"]
                );
            }
        }
        let rect = |p: &Json| {
            let g = &p["gridPos"];
            let n = |k: &str| g[k].as_u64().unwrap();
            (n("x"), n("y"), n("x") + n("w"), n("y") + n("h"))
        };
        for (i, a) in visible.iter().enumerate() {
            for b in &visible[i + 1..] {
                let (ax0, ay0, ax1, ay1) = rect(a);
                let (bx0, by0, bx1, by1) = rect(b);
                let overlap = ax0 < bx1 && bx0 < ax1 && ay0 < by1 && by0 < ay1;
                assert!(
                    !overlap,
                    "{}: panels {} and {} overlap",
                    f.display(),
                    a["id"],
                    b["id"]
                );
            }
        }
    }
}

/// Every `datasource` reference in the dashboard: (where, value).
fn datasource_refs(v: &Json, at: &str, out: &mut Vec<(String, Json)>) {
    match v {
        Json::Object(m) => {
            for (k, child) in m {
                let here = format!("{at}.{k}");
                if k == "datasource" {
                    out.push((here.clone(), child.clone()));
                }
                datasource_refs(child, &here, out);
            }
        }
        Json::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                datasource_refs(child, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_datasource_reference_is_the_variable_or_the_provisioned_uid() {
    for f in dashboard_files() {
        let d = load_dashboard(&f);
        let mut refs = Vec::new();
        datasource_refs(&d, "", &mut refs);
        assert!(!refs.is_empty());
        for (at, r) in &refs {
            let builtin = r["type"] == "grafana" && at.starts_with(".annotations");
            if builtin {
                continue;
            }
            let uid = r["uid"].as_str();
            assert!(
                r.is_object()
                    && r["type"] == "prometheus"
                    && (uid == Some(DATASOURCE_VAR) || uid == Some(DATASOURCE_UID)),
                "{}: {at} = {r}: expected {{\"type\":\"prometheus\",\"uid\":\"{DATASOURCE_VAR}\"}} \
                 (never a datasource name)",
                f.display()
            );
        }
        // Every panel that queries has a datasource, and so does each of its targets.
        for p in all_panels(&d) {
            let Some(targets) = p["targets"].as_array() else {
                continue;
            };
            if targets.is_empty() {
                continue;
            }
            assert!(
                p["datasource"].is_object(),
                "{}: panel {} queries without a datasource",
                f.display(),
                p["id"]
            );
            for t in targets {
                assert!(
                    t["datasource"].is_object(),
                    "{}: panel {} target {} has no datasource",
                    f.display(),
                    p["id"],
                    t["refId"]
                );
                assert!(t["refId"].as_str().is_some());
            }
            let refids: BTreeSet<&str> =
                targets.iter().filter_map(|t| t["refId"].as_str()).collect();
            assert_eq!(
                refids.len(),
                targets.len(),
                "{}: panel {} repeats a refId",
                f.display(),
                p["id"]
            );
        }
    }
}

#[test]
fn dashboards_have_the_datasource_and_instance_variables() {
    for f in dashboard_files() {
        let d = load_dashboard(&f);
        let vars: HashMap<&str, &Json> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v))
            .collect();
        let ds = vars
            .get("datasource")
            .unwrap_or_else(|| panic!("{}: no datasource variable", f.display()));
        assert_eq!(ds["type"], "datasource", "{}", f.display());
        assert_eq!(ds["query"], "prometheus", "{}", f.display());
        let inst = vars
            .get("instance")
            .unwrap_or_else(|| panic!("{}: no instance variable", f.display()));
        assert_eq!(inst["type"], "query");
        let q = inst["query"]["query"]
            .as_str()
            .or(inst["query"].as_str())
            .unwrap();
        assert_eq!(
            q,
            "label_values(rollbackd_build_info, instance)",
            "{}",
            f.display()
        );
        assert_eq!(inst["datasource"]["uid"], DATASOURCE_VAR, "{}", f.display());
        // Every rollbackd query is scoped to the selected instance.
        for e in dashboard_exprs(&f) {
            let rollbackd_metrics: Vec<String> = promql_metric_names(&e.expr)
                .into_iter()
                .filter(|n| is_rollbackd_metric(n) || n == "up")
                .collect();
            if !rollbackd_metrics.is_empty() {
                let selectors = e.expr.matches('{').count();
                let scoped = e.expr.matches("instance=~\"$instance\"").count();
                assert!(
                    selectors > 0 && scoped == selectors,
                    "{} {}: every selector of {:?} must carry instance=~\"$instance\"",
                    e.dashboard,
                    e.location,
                    e.expr
                );
            }
        }
    }
}

#[test]
fn every_rollbackd_metric_a_dashboard_uses_is_documented() {
    let documented = documented_metrics();
    assert!(
        documented.contains("rollback_system_ready"),
        "docs/metrics.md parsed wrongly"
    );
    let exprs = all_dashboard_exprs();
    assert!(exprs.len() >= 30, "only {} expressions found", exprs.len());
    let mut missing = Vec::new();
    let mut used = BTreeSet::new();
    for e in &exprs {
        let names = promql_metric_names(&e.expr);
        assert!(
            !names.is_empty(),
            "{} {}: no metric in {:?}",
            e.dashboard,
            e.location,
            e.expr
        );
        for n in names {
            if !is_rollbackd_metric(&n) {
                assert!(
                    n == "up" || n.starts_with("alertmanager_"),
                    "{} {}: {n} is neither rollbackd's, Prometheus' `up` nor Alertmanager's",
                    e.dashboard,
                    e.location
                );
                continue;
            }
            match documented_name(&n, &documented) {
                Some(base) => {
                    used.insert(base.to_string());
                }
                None => missing.push(format!("{} {}: {n}", e.dashboard, e.location)),
            }
        }
    }
    // The variable query names a metric too.
    assert!(documented.contains("rollbackd_build_info"));
    assert!(
        missing.is_empty(),
        "metrics not in docs/metrics.md:\n{}",
        missing.join("\n")
    );
    // The seed's five are all on a dashboard.
    for seed in [
        "rollback_system_ready",
        "rollback_events_total",
        "recovery_validation_score",
        "rollback_execution_time_seconds",
        "trigger_condition_value",
    ] {
        assert!(used.contains(seed), "no dashboard shows {seed}");
    }
}

#[test]
fn label_values_in_queries_are_ones_rollbackd_exports() {
    // docs/metrics.md lists every label value; a typo here is an empty panel.
    let doc = read("docs/metrics.md");
    let checked = [
        "condition_type",
        "trigger_type",
        "severity",
        "mode",
        "reason",
        "status",
        "result",
        "kind",
        "operation",
    ];
    for e in all_dashboard_exprs() {
        for label in checked {
            for pat in [format!("{label}=\""), format!("{label}!=\"")] {
                for (i, _) in e.expr.match_indices(&pat) {
                    // `status="..."` preceded by a letter or '_' is another label.
                    if e.expr[..i]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        continue;
                    }
                    let rest = &e.expr[i + pat.len()..];
                    let value = &rest[..rest.find('"').unwrap()];
                    assert!(
                        doc.contains(&format!("`{value}`")),
                        "{} {}: {label}=\"{value}\" is not a value docs/metrics.md lists",
                        e.dashboard,
                        e.location
                    );
                }
            }
        }
    }
}

#[test]
fn promql_metric_name_extraction() {
    let names = |e: &str| promql_metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum by (le) (increase(rollback_execution_time_seconds_bucket{instance=~"$instance", le=~"10|10.0"}[$__range]))"#
        ),
        ["rollback_execution_time_seconds_bucket"]
    );
    assert_eq!(
        names(
            r#"rollback_last_event_info{a="}"} and on (instance, job) (changes(rollback_last_event_timestamp_seconds[1m]) > 0)"#
        ),
        [
            "rollback_last_event_info",
            "rollback_last_event_timestamp_seconds"
        ]
    );
    assert_eq!(
        names("1 - (sum by (integration) (increase(alertmanager_notifications_failed_total[5m])) / sum without (x, y) (up))"),
        ["alertmanager_notifications_failed_total", "up"]
    );
    assert_eq!(names("histogram_quantile(0.95, x) * 2 > bool 1"), ["x"]);
    assert_eq!(
        names("sum without (mode) (a) * 2 + count by (x) (b:rate5m)"),
        ["a", "b:rate5m"]
    );
    assert_eq!(
        grafana_vars_substituted(
            r#"rate(a{instance=~"$instance"}[$__rate_interval]) / b[$__range]"#,
            "5m",
            ".*"
        ),
        r#"rate(a{instance=~".*"}[5m]) / b[5m]"#
    );
}

/// The seed's thresholds, as deploy/rollbackd.yaml has them (which is the seed's block).
fn seed_thresholds() -> BTreeMap<String, (f64, f64)> {
    let cfg = yaml("deploy/rollbackd.yaml");
    cfg["trigger_conditions"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                s(k),
                (
                    v["warning_threshold"].as_f64().unwrap(),
                    v["critical_threshold"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn emergency_dashboard_has_the_seed_layout() {
    let d = load_dashboard(&repo().join("grafana/dashboards/emergency-rollback.json"));
    let panels = all_panels(&d);
    let exprs: Vec<String> =
        dashboard_exprs(&repo().join("grafana/dashboards/emergency-rollback.json"))
            .into_iter()
            .map(|e| e.expr)
            .collect();
    let uses = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    for m in [
        "rollback_system_ready",
        "rollback_agents_healthy",
        "rollback_agents_expected",
        "rollback_mode",
        "rollback_monitoring_active",
        "rollback_target_up",
        "rollback_in_progress",
        "recovery_validation_score",
        "rollback_last_event_info",
        "rollback_events_total",
    ] {
        assert!(uses(m), "the emergency dashboard does not show {m}");
    }
    // One stat per condition, coloured at the seed's thresholds.
    let seed = seed_thresholds();
    assert_eq!(seed.len(), 4);
    for (cond, (warning, critical)) in &seed {
        let sel = format!(
            "trigger_condition_value{{instance=~\"$instance\", condition_type=\"{cond}\"}}"
        );
        let stat = panels
            .iter()
            .find(|p| {
                p["type"] == "stat"
                    && p["targets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|t| t["expr"] == sel.as_str())
            })
            .unwrap_or_else(|| panic!("no stat panel for {cond}"));
        let steps: Vec<f64> = stat["fieldConfig"]["defaults"]["thresholds"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["value"].as_f64())
            .collect();
        assert!(
            steps.contains(warning) && steps.contains(critical),
            "{cond}: threshold steps {steps:?} lack warning {warning} / critical {critical}"
        );
        assert_ne!(stat["options"]["graphMode"], "none", "{cond}: no sparkline");
    }
    // Recovery validation over time with the 85 line.
    let score = panels
        .iter()
        .find(|p| {
            p["type"] == "timeseries"
                && p["targets"][0]["expr"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("recovery_validation_score"))
        })
        .expect("a recovery validation score time series");
    let steps = &score["fieldConfig"]["defaults"]["thresholds"]["steps"];
    assert!(
        steps.as_array().unwrap().iter().any(|s| s["value"] == 85),
        "no 85 line: {steps}"
    );
    assert_ne!(
        score["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"],
        "off"
    );
    // Rollback history: a state timeline, and annotations on every panel.
    assert!(panels.iter().any(|p| p["type"] == "state-timeline"));
    let annotations = d["annotations"]["list"].as_array().unwrap();
    assert!(annotations.iter().any(|a| a["expr"]
        .as_str()
        .is_some_and(|e| e.contains("rollback_last_event_timestamp_seconds"))
        && a["enable"] == true));
    // The operator console for the emergency button.
    let console = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "console_url")
        .expect("console_url variable");
    assert_eq!(console["query"], "http://localhost:9100/");
    assert!(d["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["url"] == "${console_url}"));
    assert!(panels.iter().any(|p| p["type"] == "text"
        && p["options"]["content"]
            .as_str()
            .is_some_and(|c| c.contains("${console_url}"))));
}

#[test]
fn slo_dashboard_covers_the_seed_success_metrics() {
    let exprs: Vec<String> = dashboard_exprs(&repo().join("grafana/dashboards/rollback-slos.json"))
        .into_iter()
        .map(|e| e.expr)
        .collect();
    let uses = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    assert!(uses(
        "histogram_quantile(0.5, sum by (le) (increase(rollback_execution_time_seconds_bucket"
    ));
    assert!(uses(
        "histogram_quantile(0.95, sum by (le) (increase(rollback_execution_time_seconds_bucket"
    ));
    assert!(uses(
        "recovery_validations_total{instance=~\"$instance\", result=\"pass\"}"
    ));
    assert!(uses("up{job=\"rollbackd\""));
    assert!(
        uses("alertmanager_notifications_total") && uses("alertmanager_notifications_failed_total")
    );
    assert!(uses("sum by (integration)"));
    assert!(uses("trigger_condition_breach_total"));
    assert!(uses("rollback_suppressed_total"));
    let d = load_dashboard(&repo().join("grafana/dashboards/rollback-slos.json"));
    // The execution-time stats are coloured at the seed's 10 s target and 30 s limit.
    let p95 = all_panels(&d)
        .into_iter()
        .find(|p| p["title"] == "p95 execution time")
        .expect("p95 panel");
    let steps: Vec<f64> = p95["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["value"].as_f64())
        .collect();
    assert_eq!(steps, [10.0, 30.0]);
    assert_eq!(p95["fieldConfig"]["defaults"]["unit"], "s");
    // The histogram's buckets really have 10 s and 30 s bounds (the le matchers rely on it).
    let metrics_rs = read("src/metrics/mod.rs");
    assert!(
        metrics_rs.contains("10.0, 20.0, 30.0"),
        "rollback_execution_time_seconds buckets changed; check le=~\"10|10.0\" / \"30|30.0\""
    );
}

// ---------------------------------------------------------------------------------------
// Grafana provisioning

#[test]
fn datasource_provisioning_has_the_fixed_uid_and_points_at_the_prometheus_service() {
    let ds = yaml("grafana/provisioning/datasources/prometheus.yml");
    let list = ds["datasources"].as_sequence().expect("datasources list");
    assert_eq!(list.len(), 1);
    let p = &list[0];
    assert_eq!(p["uid"].as_str(), Some(DATASOURCE_UID));
    assert_eq!(p["type"].as_str(), Some("prometheus"));
    assert_eq!(p["url"].as_str(), Some("http://prometheus:9090"));
    assert_eq!(p["isDefault"].as_bool(), Some(true));
    let c = compose();
    let prom = &services(&c)["prometheus"];
    assert!(
        prom["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| s(p).ends_with(":9090")),
        "the prometheus service does not serve 9090"
    );
}

#[test]
fn dashboard_provider_path_is_where_compose_mounts_the_dashboards() {
    let prov = yaml("grafana/provisioning/dashboards/rollbackd.yml");
    let providers = prov["providers"].as_sequence().expect("providers");
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["type"].as_str(), Some("file"));
    let path = providers[0]["options"]["path"].as_str().unwrap();
    let c = compose();
    let grafana = &services(&c)["grafana"];
    let m = mounts(grafana);
    let dash = m
        .iter()
        .find(|(src, _, _)| src.trim_end_matches('/') == "./grafana/dashboards")
        .expect("grafana mounts ./grafana/dashboards");
    assert_eq!(dash.1.trim_end_matches('/'), path.trim_end_matches('/'));
    assert!(dash.2, "dashboards are mounted read-only");
    let provisioning = m
        .iter()
        .find(|(src, _, _)| src.trim_end_matches('/') == "./grafana/provisioning")
        .expect("grafana mounts ./grafana/provisioning");
    assert_eq!(provisioning.1, "/etc/grafana/provisioning");
    // The home dashboard, when set, is one of the mounted files.
    if let Some(home) = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].as_str()
    {
        let file = host_path(&c, "grafana", home).expect("home dashboard is mounted");
        assert!(
            file.is_file(),
            "{home} -> {} does not exist",
            file.display()
        );
    }
    let env = &grafana["environment"];
    assert_eq!(s(&env["GF_AUTH_ANONYMOUS_ENABLED"]), "true");
    assert_eq!(s(&env["GF_AUTH_ANONYMOUS_ORG_ROLE"]), "Viewer");
}

// ---------------------------------------------------------------------------------------
// Compose

#[test]
fn compose_has_the_six_services_with_healthchecks() {
    let c = compose();
    let svcs = services(&c);
    let names: BTreeSet<String> = svcs.keys().map(s).collect();
    for expected in [
        "rollbackd",
        "simulator",
        "prometheus",
        "alertmanager",
        "mailpit",
        "grafana",
    ] {
        assert!(names.contains(expected), "no {expected} service");
    }
    for (name, svc) in svcs {
        let name = s(name);
        assert!(
            svc["image"].is_string() || svc["build"].is_mapping() || svc["build"].is_string(),
            "{name}: neither image nor build"
        );
        if let Some(image) = svc["image"].as_str() {
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "{name}: pin the image tag ({image})"
            );
        }
        assert!(
            svc["healthcheck"]["test"].is_sequence(),
            "{name}: no healthcheck"
        );
    }
    let sim = &svcs["simulator"];
    let cmd: Vec<String> = sim["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(cmd[0], "simulate");
    assert!(cmd
        .windows(2)
        .any(|w| w[0] == "--listen" && w[1] == "0.0.0.0:9101"));
    assert!(cmd
        .windows(2)
        .any(|w| w[0] == "--scenario" && w[1] == "${SIM_SCENARIO:-degrading}"));
    let rb = &svcs["rollbackd"];
    let cmd: Vec<String> = rb["command"].as_sequence().unwrap().iter().map(s).collect();
    assert_eq!(cmd, ["serve", "--config", "/etc/rollbackd/rollbackd.yaml"]);
    assert!(
        mounts(rb)
            .iter()
            .any(|(src, t, _)| !is_bind(src) && t == "/var/lib/rollbackd"),
        "rollbackd keeps its history on a named volume at /var/lib/rollbackd"
    );
}

#[test]
fn compose_bind_mounts_secrets_and_builds_exist_in_the_repo() {
    let c = compose();
    let declared_volumes: BTreeSet<String> = c["volumes"]
        .as_mapping()
        .map(|m| m.keys().map(s).collect())
        .unwrap_or_default();
    let declared_secrets = c["secrets"].as_mapping().cloned().unwrap_or_default();
    for (name, svc) in services(&c) {
        let name = s(name);
        for (src, target, _) in mounts(svc) {
            if is_bind(&src) {
                assert!(
                    src.starts_with("./"),
                    "{name}: bind mount {src} outside the repo"
                );
                let p = repo().join(src.trim_start_matches("./"));
                assert!(p.exists(), "{name}: bind mount source {src} does not exist");
                assert!(
                    target.starts_with('/'),
                    "{name}: mount target {target} is not absolute"
                );
            } else {
                assert!(
                    declared_volumes.contains(&src),
                    "{name}: volume {src} is not declared"
                );
            }
        }
        for sec in svc["secrets"].as_sequence().into_iter().flatten() {
            let sname = match sec {
                Yaml::String(n) => n.clone(),
                m => s(&m["source"]),
            };
            assert!(
                declared_secrets.contains_key(sname.as_str()),
                "{name}: secret {sname} is not declared"
            );
        }
        if !svc["build"].is_null() {
            let (ctx, dockerfile) = match &svc["build"] {
                Yaml::String(ctx) => (ctx.clone(), "Dockerfile".to_string()),
                b => (
                    b["context"].as_str().unwrap_or(".").to_string(),
                    b["dockerfile"].as_str().unwrap_or("Dockerfile").to_string(),
                ),
            };
            let dir = repo().join(ctx.trim_start_matches("./"));
            assert!(
                dir.join(&dockerfile).is_file(),
                "{name}: {ctx}/{dockerfile} does not exist"
            );
        }
    }
    for (sname, sec) in &declared_secrets {
        let sname = s(sname);
        let file = s(&sec["file"]);
        assert!(
            file.starts_with("./"),
            "secret {sname}: {file} outside the repo"
        );
        let p = repo().join(file.trim_start_matches("./"));
        assert!(p.is_file(), "secret {sname}: {file} does not exist");
        let token = std::fs::read_to_string(&p).unwrap();
        assert!(
            token.trim().len() >= 16,
            "secret {sname} is shorter than rollbackd accepts"
        );
    }
}

/// The profiles `docker compose up` runs without a --profile flag: COMPOSE_PROFILES from the
/// project's .env (a --profile flag replaces it).
fn default_profiles() -> Vec<String> {
    let env = read(".env");
    let line = env
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("COMPOSE_PROFILES="))
        .expect(".env sets COMPOSE_PROFILES");
    line.split(',').map(|p| p.trim().to_string()).collect()
}

/// Every way the stack is started, with the services each one runs: a service runs when it
/// has no profiles or one of them is active.
fn modes(c: &Yaml) -> Vec<(String, BTreeSet<String>)> {
    let default = default_profiles();
    [
        ("default".to_string(), default),
        ("ha".to_string(), vec!["ha".to_string()]),
    ]
    .into_iter()
    .map(|(mode, active)| {
        let running = services(c)
            .iter()
            .filter(|(_, svc)| match svc["profiles"].as_sequence() {
                None => true,
                Some(p) => p.iter().any(|p| active.contains(&s(p))),
            })
            .map(|(name, _)| s(name))
            .collect();
        (mode, running)
    })
    .collect()
}

/// The services of a mode that run the guard (`serve`).
fn guards(c: &Yaml, running: &BTreeSet<String>) -> BTreeSet<String> {
    running
        .iter()
        .filter(|n| services(c)[n.as_str()]["command"][0].as_str() == Some("serve"))
        .cloned()
        .collect()
}

/// The names a service answers to on the stack's network: its own and its aliases.
fn network_names(svc_name: &str, svc: &Yaml) -> Vec<String> {
    let mut names = vec![svc_name.to_string()];
    if let Some(nets) = svc["networks"].as_mapping() {
        for (_, net) in nets {
            names.extend(net["aliases"].as_sequence().into_iter().flatten().map(s));
        }
    }
    names
}

/// Which running service a host name reaches in a mode, if any.
fn reaches(c: &Yaml, running: &BTreeSet<String>, host: &str) -> Option<String> {
    running
        .iter()
        .find(|n| {
            network_names(n, &services(c)[n.as_str()])
                .iter()
                .any(|a| a == host)
        })
        .cloned()
}

#[test]
fn compose_depends_on_names_real_services_and_ports_do_not_collide() {
    let c = compose();
    let svcs = services(&c);
    let names: BTreeSet<String> = svcs.keys().map(s).collect();
    for (mode, running) in modes(&c) {
        let mut published: BTreeMap<(String, u16), String> = BTreeMap::new();
        for name in &running {
            let svc = &svcs[name.as_str()];
            let deps: Vec<(String, bool)> = match &svc["depends_on"] {
                Yaml::Null => vec![],
                Yaml::Sequence(seq) => seq.iter().map(|d| (s(d), true)).collect(),
                Yaml::Mapping(m) => {
                    for (dep, cond) in m {
                        let cond = cond["condition"].as_str().unwrap_or("service_started");
                        assert!(
                            [
                                "service_started",
                                "service_healthy",
                                "service_completed_successfully"
                            ]
                            .contains(&cond),
                            "{name}: depends_on {dep:?} condition {cond}"
                        );
                        if cond == "service_healthy" {
                            assert!(
                                svcs[dep]["healthcheck"].is_mapping(),
                                "{name} waits for {dep:?} to be healthy; it has no healthcheck"
                            );
                        }
                    }
                    m.iter()
                        .map(|(dep, cond)| (s(dep), cond["required"].as_bool().unwrap_or(true)))
                        .collect()
                }
                other => panic!("{name}: depends_on {other:?}"),
            };
            for (d, required) in deps {
                assert!(names.contains(&d), "{name} depends on unknown service {d}");
                assert_ne!(&d, name, "{name} depends on itself");
                // Compose refuses a required dependency its profiles leave out.
                assert!(
                    !required || running.contains(&d),
                    "{mode}: {name} requires {d}, which does not run in this mode"
                );
            }
            for p in svc["ports"].as_sequence().into_iter().flatten() {
                let spec = s(p);
                let spec = spec.split('/').next().unwrap();
                let parts: Vec<&str> = spec.split(':').collect();
                let (ip, host) = match parts.as_slice() {
                    [ip, host, _container] => (ip.to_string(), *host),
                    [host, _container] => ("0.0.0.0".to_string(), *host),
                    _ => panic!("{name}: publish the port explicitly host:container ({spec})"),
                };
                let host: u16 = host
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: host port in {spec}"));
                for ((other_ip, other_port), other) in &published {
                    let same_ip = other_ip == &ip || other_ip == "0.0.0.0" || ip == "0.0.0.0";
                    assert!(
                        !(same_ip && *other_port == host),
                        "{mode}: {name} and {other} both publish host port {host}"
                    );
                }
                published.insert((ip, host), name.clone());
            }
        }
        // What the docs tell people to open.
        let expected: &[u16] = if mode == "ha" {
            &[9111, 9112, 9101, 9090, 9094, 8025, 3000, 5432]
        } else {
            &[9100, 9101, 9090, 9093, 8025, 3000]
        };
        for port in expected {
            assert!(
                published.keys().any(|(_, p)| p == port),
                "{mode}: nothing publishes port {port}"
            );
        }
    }
}

/// Each mode runs one guard of the simulator, or replicas sharing one history: never two
/// independent guards of one trading system (two rollbacks of one breach). Its Prometheus
/// scrapes every guard and alerts its Alertmanager, which delivers to every guard, and the
/// guards post to that Alertmanager.
#[test]
fn each_compose_mode_runs_one_guard_watched_and_alerted_by_its_own_prometheus() {
    let c = compose();
    let svcs = services(&c);
    for (mode, running) in modes(&c) {
        let guards = guards(&c, &running);
        let expected: BTreeSet<String> = if mode == "ha" {
            ["rollbackd-1", "rollbackd-2"].map(String::from).into()
        } else {
            ["rollbackd"].map(String::from).into()
        };
        assert_eq!(guards, expected, "{mode}: the guards that run");
        let mut configs = BTreeSet::new();
        for g in &guards {
            let cfg = host_path(&c, g, "/etc/rollbackd/rollbackd.yaml")
                .unwrap_or_else(|| panic!("{g}: no config mounted"));
            configs.insert(cfg);
        }
        assert_eq!(configs.len(), 1, "{mode}: the guards share one config");
        let cfg_path = configs.into_iter().next().unwrap();
        let cfg_rel = cfg_path
            .strip_prefix(repo())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let cfg = yaml(&cfg_rel);
        if guards.len() > 1 {
            assert!(
                cfg["storage"]["postgres"]["url"].is_string(),
                "{mode}: replicas must share a PostgreSQL history"
            );
        }
        for g in &guards {
            let target = s(&cfg["target"]["url"]);
            assert_eq!(target, "http://simulator:9101", "{g}");
        }

        // One Prometheus per mode, scraping every guard and alerting every Alertmanager of
        // the mode.
        let proms: Vec<&String> = running
            .iter()
            .filter(|n| {
                svcs[n.as_str()]["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("prom/prometheus:"))
            })
            .collect();
        assert_eq!(proms.len(), 1, "{mode}: one Prometheus, not {proms:?}");
        let prom = proms[0];
        let prom_cfg = host_path(&c, prom, "/etc/prometheus/prometheus.yml")
            .unwrap_or_else(|| panic!("{prom}: prometheus.yml mounted"));
        let prom_cfg = yaml(prom_cfg.strip_prefix(repo()).unwrap().to_str().unwrap());
        let job = |name: &str| -> BTreeSet<String> {
            prom_cfg["scrape_configs"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter(|j| j["job_name"].as_str() == Some(name))
                .flat_map(|j| j["static_configs"].as_sequence().unwrap().iter())
                .flat_map(|st| st["targets"].as_sequence().unwrap().iter().map(s))
                .collect()
        };
        let scraped = job("rollbackd");
        let want: BTreeSet<String> = guards.iter().map(|g| format!("{g}:9100")).collect();
        assert_eq!(scraped, want, "{mode}: {prom} scrapes every guard");
        let alertmanagers: BTreeSet<String> = running
            .iter()
            .filter(|n| {
                svcs[n.as_str()]["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("prom/alertmanager:"))
            })
            .cloned()
            .collect();
        let alerted: BTreeSet<String> = prom_cfg["alerting"]["alertmanagers"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|am| am["static_configs"].as_sequence().unwrap().iter())
            .flat_map(|st| st["targets"].as_sequence().unwrap().iter().map(s))
            .collect();
        let want: BTreeSet<String> = alertmanagers.iter().map(|a| format!("{a}:9093")).collect();
        assert_eq!(
            alerted, want,
            "{mode}: {prom} alerts the mode's Alertmanager"
        );
        assert_eq!(
            job("alertmanager"),
            want,
            "{mode}: {prom} scrapes the Alertmanager"
        );
        for sc in prom_cfg["scrape_configs"].as_sequence().unwrap() {
            for st in sc["static_configs"].as_sequence().into_iter().flatten() {
                for target in st["targets"].as_sequence().unwrap().iter().map(s) {
                    let host = target.split(':').next().unwrap();
                    assert!(
                        host == "localhost" || reaches(&c, &running, host).is_some(),
                        "{mode}: {prom} scrapes {target}, which does not run"
                    );
                }
            }
        }
        // Grafana's datasource reaches this Prometheus.
        let ds = yaml("grafana/provisioning/datasources/prometheus.yml");
        let url = s(&ds["datasources"][0]["url"]);
        let host = url.trim_start_matches("http://").split(':').next().unwrap();
        assert_eq!(
            reaches(&c, &running, host).as_deref(),
            Some(prom.as_str()),
            "{mode}: Grafana's {url} must reach {prom}"
        );

        // The Alertmanager delivers its webhook to every guard, and the guards post their
        // notices, drills and tests to it.
        assert_eq!(alertmanagers.len(), 1, "{mode}: {alertmanagers:?}");
        let am = alertmanagers.iter().next().unwrap();
        let am_cfg = host_path(&c, am, "/etc/alertmanager/alertmanager.yml").unwrap();
        let am_cfg = yaml(am_cfg.strip_prefix(repo()).unwrap().to_str().unwrap());
        let hooks: BTreeSet<String> = am_cfg["receivers"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|r| r["name"].as_str() == Some("rollbackd-webhook"))
            .flat_map(|r| r["webhook_configs"].as_sequence().unwrap().iter())
            .map(|w| s(&w["url"]))
            .collect();
        let want: BTreeSet<String> = guards
            .iter()
            .map(|g| format!("http://{g}:9100/api/v1/alertmanager"))
            .collect();
        assert_eq!(hooks, want, "{mode}: {am} delivers to every guard");
        let urls: Vec<String> = cfg["alertmanager"]["urls"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{cfg_rel}: no alertmanager.urls"))
            .iter()
            .map(s)
            .collect();
        assert_eq!(
            urls,
            [format!("http://{am}:9093")],
            "{cfg_rel}: alertmanager.urls"
        );
        for g in &guards {
            assert!(
                svcs[g.as_str()]["depends_on"][am.as_str()]["condition"].as_str()
                    == Some("service_healthy")
                    && svcs[g.as_str()]["depends_on"]["simulator"]["condition"].as_str()
                        == Some("service_healthy"),
                "{g}: the first scheduled drill runs at start; it must find {am} and the simulator up"
            );
        }
    }
}

#[test]
fn compose_matches_the_alerting_kit_and_the_daemon_config() {
    let c = compose();
    compose_matches_prometheus(&c);
    compose_matches_alertmanager(&c);
    compose_matches_rollbackd(&c);
}

/// Prometheus: its config and rules are mounted where alerting/prometheus.yml expects them,
/// and every host it scrapes or alerts is a service of the stack.
fn compose_matches_prometheus(c: &Yaml) {
    let names: BTreeSet<String> = services(c).keys().map(s).collect();
    let prom_cfg_path = host_path(c, "prometheus", "/etc/prometheus/prometheus.yml")
        .expect("prometheus.yml mounted");
    assert_eq!(prom_cfg_path, repo().join("alerting/prometheus.yml"));
    let prom = yaml("alerting/prometheus.yml");
    for rf in prom["rule_files"].as_sequence().unwrap() {
        let rf = s(rf);
        let abs = if rf.starts_with('/') {
            rf.clone()
        } else {
            format!("/etc/prometheus/{rf}")
        };
        let dir = abs.rsplit_once('/').unwrap().0;
        let host = host_path(c, "prometheus", dir)
            .unwrap_or_else(|| panic!("rule_files {rf}: {dir} is not mounted"));
        assert!(
            host.is_dir(),
            "rule_files {rf}: {} is not a directory",
            host.display()
        );
    }
    let mut hosts = Vec::new();
    for sc in prom["scrape_configs"].as_sequence().unwrap() {
        for st in sc["static_configs"].as_sequence().into_iter().flatten() {
            hosts.extend(st["targets"].as_sequence().unwrap().iter().map(s));
        }
    }
    for am in prom["alerting"]["alertmanagers"].as_sequence().unwrap() {
        for st in am["static_configs"].as_sequence().unwrap() {
            hosts.extend(st["targets"].as_sequence().unwrap().iter().map(s));
        }
    }
    assert!(
        hosts.contains(&"rollbackd:9100".to_string()),
        "Prometheus does not scrape rollbackd:9100"
    );
    for h in &hosts {
        let host = h.split(':').next().unwrap();
        assert!(
            host == "localhost" || names.contains(host),
            "Prometheus targets {h}, not a service"
        );
    }
}

/// Alertmanager: every file its config reads resolves through the mounts to a repo file.
fn compose_matches_alertmanager(c: &Yaml) {
    assert_eq!(
        host_path(c, "alertmanager", "/etc/alertmanager/alertmanager.yml"),
        Some(repo().join("alerting/alertmanager.yml"))
    );
    let am_text = read("alerting/alertmanager.yml");
    let am = yaml("alerting/alertmanager.yml");
    for line in am_text.lines() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = l.split_once(':') {
            if key.ends_with("_file") {
                let path = value.split('#').next().unwrap().trim().trim_matches('"');
                if path.starts_with('/') {
                    let host = host_path(c, "alertmanager", path).unwrap_or_else(|| {
                        panic!("alertmanager reads {path}, which is not mounted")
                    });
                    assert!(
                        host.is_file(),
                        "alertmanager reads {path} -> {} missing",
                        host.display()
                    );
                }
            }
        }
    }
    // The webhook goes to the rollbackd service.
    assert!(am_text.contains("http://rollbackd:9100/api/v1/alertmanager"));
    // The compose entrypoint points e-mail at mailpit by rewriting the global smtp_smarthost
    // and smtp_require_tls: they must be global, once each, and no receiver may override them.
    for key in ["smtp_smarthost", "smtp_require_tls"] {
        assert!(
            !am["global"][key].is_null(),
            "alertmanager.yml has no global {key}"
        );
        let n = am_text
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{key}:")))
            .count();
        assert_eq!(n, 1, "alertmanager.yml sets {key} {n} times");
    }
    for r in am["receivers"].as_sequence().unwrap() {
        for e in r["email_configs"].as_sequence().into_iter().flatten() {
            assert!(e["smarthost"].is_null() && e["require_tls"].is_null(),
                "receiver {:?} sets its own smarthost/require_tls; the compose mailpit rewrite would miss it", r["name"]);
        }
    }
    let am_svc = &services(c)["alertmanager"];
    let am_cmd = s(&am_svc["command"][0]);
    assert!(am_cmd.contains("mailpit:1025") && am_cmd.contains("smtp_require_tls"));
    assert!(am_cmd.contains("exec /bin/alertmanager"));
}

/// rollbackd: its config is the repo's, and it loads (the real parser) with every token file
/// resolved through the compose secrets.
fn compose_matches_rollbackd(c: &Yaml) {
    assert_eq!(
        host_path(c, "rollbackd", "/etc/rollbackd/rollbackd.yaml"),
        Some(repo().join("deploy/rollbackd.yaml"))
    );
    let mut text = read("deploy/rollbackd.yaml");
    let cfg = yaml("deploy/rollbackd.yaml");
    for t in cfg["auth"]["tokens"].as_sequence().unwrap() {
        let f = s(&t["token_file"]);
        let host = host_path(c, "rollbackd", &f)
            .unwrap_or_else(|| panic!("token_file {f} is not mounted"));
        assert!(
            host.is_file(),
            "token_file {f} -> {} missing",
            host.display()
        );
        text = text.replace(&f, host.to_str().unwrap());
    }
    // The webhook token rollbackd accepts is the one Alertmanager sends.
    let webhook = cfg["auth"]["tokens"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|t| t["role"].as_str() == Some("webhook"))
        .expect("a webhook token");
    assert_eq!(
        host_path(c, "rollbackd", &s(&webhook["token_file"])),
        host_path(
            c,
            "alertmanager",
            "/etc/alertmanager/secrets/rollbackd-webhook.token"
        ),
    );
    let loaded = load_config(&text, &repo().join("deploy"), None)
        .unwrap_or_else(|e| panic!("deploy/rollbackd.yaml does not load: {e}"));
    assert_eq!(loaded.listen, "0.0.0.0:9100");
    assert_eq!(loaded.target_url, "http://simulator:9101");
    assert_eq!(
        loaded.storage_path,
        PathBuf::from("/var/lib/rollbackd/rollbackd.db")
    );
    assert_eq!(loaded.tokens, 3);
    load_config(&text, &repo().join("deploy"), Some("staging"))
        .unwrap_or_else(|e| panic!("deploy/rollbackd.yaml with --environment staging: {e}"));
    // The shipped secrets are public placeholders: production refuses to run on them.
    let refused = match load_config(&text, &repo().join("deploy"), Some("production")) {
        Ok(_) => panic!("production ran on the shipped placeholder tokens"),
        Err(e) => e,
    };
    assert!(refused.contains("shipped placeholder"), "{refused}");
    let storage_dir = loaded
        .storage_path
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        mounts(&services(c)["rollbackd"])
            .iter()
            .any(|(_, t, ro)| *t == storage_dir && !ro),
        "the storage directory {storage_dir} is not a writable volume"
    );
}

// ---------------------------------------------------------------------------------------
// Dockerfile

#[test]
fn dockerfile_is_multi_stage_non_root_with_a_healthcheck() {
    let text = read("Dockerfile");
    // Join continuation lines, drop comments.
    let mut instrs: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                instrs.push(std::mem::take(&mut cur));
            }
        }
    }
    let kw = |i: &String| {
        i.split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase()
    };
    let froms: Vec<usize> = instrs
        .iter()
        .enumerate()
        .filter(|(_, i)| kw(i) == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert!(froms.len() >= 2, "not a multi-stage build");
    assert!(
        instrs[froms[0]].contains("rust:"),
        "build stage is not a rust image"
    );
    let last = &instrs[*froms.last().unwrap()..];
    assert!(instrs[*froms.last().unwrap()].contains("debian:bookworm-slim"));
    let user = last
        .iter()
        .rfind(|i| kw(i) == "USER")
        .expect("no USER in the final stage");
    let who = user
        .split_whitespace()
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    assert!(who != "root" && who != "0", "the final stage runs as {who}");
    let hc = last
        .iter()
        .find(|i| kw(i) == "HEALTHCHECK")
        .expect("no HEALTHCHECK");
    assert!(
        hc.contains("/-/healthy"),
        "HEALTHCHECK does not probe /-/healthy: {hc}"
    );
    assert!(last.iter().any(|i| kw(i) == "EXPOSE" && i.contains("9100")));
    assert!(last.iter().any(|i| i == r#"ENTRYPOINT ["rollbackd"]"#));
    assert!(last
        .iter()
        .any(|i| i.starts_with("CMD") && i.contains("/etc/rollbackd/rollbackd.yaml")));
    assert!(last
        .iter()
        .any(|i| kw(i) == "COPY" && i.contains("--from=")));
    // The console's assets are embedded at build time: the build context must carry them.
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target/", ".git/", "deploy/secrets/", "alerting/secrets/"] {
        assert!(
            ignored.contains(&must),
            ".dockerignore does not exclude {must}"
        );
    }
    // Cargo.toml may name bench and test targets whose files must be in the context.
    for needed in [
        "src",
        "assets",
        "benches",
        "tests",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        assert!(
            !ignored.iter().any(|l| l.trim_end_matches('/') == needed),
            ".dockerignore excludes {needed}, which the build needs"
        );
    }
}

#[test]
fn compose_ha_profile_runs_postgres_two_replicas_and_an_alertmanager_sending_to_both() {
    let c = compose();
    let svcs = services(&c);
    let profiles = |name: &str| -> Vec<String> {
        svcs[name]["profiles"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} has no profiles"))
            .iter()
            .map(s)
            .collect()
    };
    for name in [
        "postgres",
        "rollbackd-1",
        "rollbackd-2",
        "alertmanager-ha",
        "prometheus-ha",
    ] {
        assert_eq!(
            profiles(name),
            ["ha"],
            "{name} belongs to the ha profile only"
        );
    }
    // The single-node guard and its Prometheus and Alertmanager run by default only: with
    // them in the ha profile too, two independent guards would roll one breach back twice.
    assert_eq!(default_profiles(), ["single"]);
    for name in ["rollbackd", "prometheus", "alertmanager"] {
        assert_eq!(profiles(name), ["single"], "{name} is the single profile's");
    }
    for name in ["simulator", "mailpit", "grafana"] {
        assert!(
            svcs[name]["profiles"].is_null(),
            "{name} runs in every mode"
        );
    }
    let prom = host_path(&c, "prometheus-ha", "/etc/prometheus/prometheus.yml")
        .expect("prometheus-ha config mounted");
    assert_eq!(prom, repo().join("alerting/prometheus-ha.yml"));
    assert_eq!(
        host_path(&c, "prometheus-ha", "/etc/prometheus/rules"),
        Some(repo().join("alerting/rules"))
    );
    for name in ["rollbackd-1", "rollbackd-2"] {
        let config = host_path(&c, name, "/etc/rollbackd/rollbackd.yaml")
            .unwrap_or_else(|| panic!("{name}: no config mounted"));
        assert_eq!(config, repo().join("deploy/rollbackd-ha.yaml"));
        assert_eq!(
            s(&svcs[name]["depends_on"]["postgres"]["condition"]),
            "service_healthy",
            "{name} waits for the database"
        );
    }
    let text = read("deploy/rollbackd-ha.yaml");
    assert!(
        text.contains("postgres://rollbackd:rollbackd@postgres:5432/rollbackd"),
        "the replicas use the postgres service"
    );
    // Alertmanager sends the webhook to both replicas.
    let am = host_path(&c, "alertmanager-ha", "/etc/alertmanager/alertmanager.yml")
        .expect("alertmanager-ha config mounted");
    assert_eq!(am, repo().join("alerting/alertmanager-ha.yml"));
    let cfg = yaml("alerting/alertmanager-ha.yml");
    let receiver = cfg["receivers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "rollbackd-webhook")
        .expect("the rollbackd-webhook receiver");
    let urls: Vec<String> = receiver["webhook_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|w| s(&w["url"]))
        .collect();
    assert_eq!(
        urls,
        [
            "http://rollbackd-1:9100/api/v1/alertmanager",
            "http://rollbackd-2:9100/api/v1/alertmanager"
        ]
    );
    let checked = std::process::Command::new("amtool")
        .args(["check-config", "alerting/alertmanager-ha.yml"])
        .current_dir(repo())
        .output()
        .expect("amtool is installed (scripts/test.sh installs prometheus-alertmanager)");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // The replicas' token files resolve, and the webhook's is the one alertmanager-ha sends.
    let cfg = yaml("deploy/rollbackd-ha.yaml");
    for name in ["rollbackd-1", "rollbackd-2"] {
        for tok in cfg["auth"]["tokens"].as_sequence().unwrap() {
            let f = s(&tok["token_file"]);
            let host = host_path(&c, name, &f)
                .unwrap_or_else(|| panic!("{name}: token_file {f} is not mounted"));
            assert!(host.is_file(), "{name}: {f} -> {} missing", host.display());
            if tok["role"].as_str() == Some("webhook") {
                assert_eq!(
                    Some(host),
                    host_path(
                        &c,
                        "alertmanager-ha",
                        "/etc/alertmanager/secrets/rollbackd-webhook.token"
                    ),
                    "{name}: the webhook token is alertmanager-ha's"
                );
            }
        }
    }
}

/// `receivers` without the one named `name`, and that one.
fn split_receiver(cfg: &Yaml, name: &str) -> (Yaml, Yaml) {
    let mut rest = cfg.clone();
    let receivers = rest["receivers"].as_sequence_mut().expect("receivers");
    let at = receivers
        .iter()
        .position(|r| r["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no receiver {name}"));
    let one = receivers.remove(at);
    (rest, one)
}

/// alertmanager-ha.yml is alertmanager.yml but for the webhook receiver, which lists both
/// replicas with the same settings and token file: routes, receivers, timings, inhibitions
/// and templates can never drift apart.
#[test]
fn alertmanager_ha_is_the_shipped_alertmanager_but_for_the_webhook_to_both_replicas() {
    let single = yaml("alerting/alertmanager.yml");
    let ha = yaml("alerting/alertmanager-ha.yml");
    let (single_rest, single_hook) = split_receiver(&single, "rollbackd-webhook");
    let (ha_rest, ha_hook) = split_receiver(&ha, "rollbackd-webhook");
    if single_rest != ha_rest {
        let a = serde_yaml_ng::to_string(&single_rest).unwrap();
        let b = serde_yaml_ng::to_string(&ha_rest).unwrap();
        let first = a
            .lines()
            .zip(b.lines())
            .position(|(x, y)| x != y)
            .unwrap_or(a.lines().count().min(b.lines().count()));
        panic!(
            "alertmanager-ha.yml differs from alertmanager.yml beyond the webhook receiver, from line {} of the parsed config:\n  alertmanager.yml:    {:?}\n  alertmanager-ha.yml: {:?}",
            first + 1,
            a.lines().nth(first),
            b.lines().nth(first)
        );
    }
    let single_configs = single_hook["webhook_configs"].as_sequence().unwrap();
    assert_eq!(single_configs.len(), 1);
    let ha_configs = ha_hook["webhook_configs"].as_sequence().unwrap();
    let urls: Vec<String> = ha_configs.iter().map(|w| s(&w["url"])).collect();
    assert_eq!(
        urls,
        [
            "http://rollbackd-1:9100/api/v1/alertmanager",
            "http://rollbackd-2:9100/api/v1/alertmanager"
        ]
    );
    for w in ha_configs {
        let mut w = w.clone();
        w["url"] = single_configs[0]["url"].clone();
        assert_eq!(
            &w, &single_configs[0],
            "each replica's webhook has the single one's settings and token file"
        );
    }
    for f in ["alerting/alertmanager.yml", "alerting/alertmanager-ha.yml"] {
        let out = std::process::Command::new("amtool")
            .args(["check-config", f])
            .current_dir(repo())
            .output()
            .expect("amtool is installed");
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// prometheus-ha.yml is prometheus.yml but for its targets: both replicas in the rollbackd
/// job, alertmanager-ha as the Alertmanager.
#[test]
fn prometheus_ha_is_the_shipped_prometheus_but_for_the_replicas_and_alertmanager_ha() {
    let single = yaml("alerting/prometheus.yml");
    let mut ha = yaml("alerting/prometheus-ha.yml");
    let targets = |cfg: &Yaml, job: &str| -> Vec<String> {
        cfg["scrape_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|j| j["job_name"].as_str() == Some(job))
            .unwrap_or_else(|| panic!("no job {job}"))["static_configs"][0]["targets"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(s)
            .collect()
    };
    assert_eq!(
        targets(&ha, "rollbackd"),
        ["rollbackd-1:9100", "rollbackd-2:9100"]
    );
    assert_eq!(targets(&ha, "alertmanager"), ["alertmanager-ha:9093"]);
    assert_eq!(
        ha["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"],
        serde_yaml_ng::from_str::<Yaml>("[alertmanager-ha:9093]").unwrap()
    );
    // Put the single-node targets back: what is left must be the same config.
    for job in ha["scrape_configs"].as_sequence_mut().unwrap() {
        let name = s(&job["job_name"]);
        let back = targets(&single, &name);
        job["static_configs"][0]["targets"] = serde_yaml_ng::to_value(back).unwrap();
    }
    ha["alerting"] = single["alerting"].clone();
    assert_eq!(ha, single, "prometheus-ha.yml drifted from prometheus.yml");
    let out = std::process::Command::new("promtool")
        .args(["check", "config", "alerting/prometheus-ha.yml"])
        .current_dir(repo())
        .output()
        .expect("promtool is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A shipped config with its compose-secret token files pointed at the repository's files.
fn shipped_daemon_config(rel: &str) -> String {
    let mut text = read(rel);
    for (secret, file) in [
        (
            "/run/secrets/rollbackd_operator_token",
            "deploy/secrets/operator.token",
        ),
        (
            "/run/secrets/rollbackd_admin_token",
            "deploy/secrets/admin.token",
        ),
        (
            "/run/secrets/rollbackd_webhook_token",
            "alerting/secrets/rollbackd-webhook.token",
        ),
    ] {
        text = text.replace(secret, repo().join(file).to_str().unwrap());
    }
    text
}

/// rollbackd's own default is no schedule and no Alertmanager; the shipped configs set a
/// monthly drill, a weekly notification test and the stack's Alertmanager, which the
/// *Overdue alerts expect. They load with rollbackd's parser in every environment they
/// have (production refuses the placeholder tokens, as it must), and the ha config is the
/// single one but for the storage and the Alertmanager.
#[test]
fn the_shipped_daemon_configs_schedule_drills_and_tests_against_the_stack_alertmanager() {
    let day = std::time::Duration::from_secs(86400);
    for (rel, am) in [
        ("deploy/rollbackd.yaml", "http://alertmanager:9093"),
        ("deploy/rollbackd-ha.yaml", "http://alertmanager-ha:9093"),
    ] {
        let text = shipped_daemon_config(rel);
        for env in [None, Some("staging")] {
            let cfg = rollbackd::config::from_str(&text, &repo().join("deploy"), env)
                .unwrap_or_else(|e| panic!("{rel} ({env:?}) does not load: {e}"));
            assert_eq!(cfg.drills.every, Some(30 * day), "{rel}: drills.every");
            assert_eq!(
                cfg.notification_tests.every,
                Some(7 * day),
                "{rel}: notification_tests.every"
            );
            assert_eq!(cfg.alertmanager.urls, [am], "{rel}: alertmanager.urls");
            assert!(cfg.alertmanager.direct_notify, "{rel}");
            for c in &cfg.notification_tests.channels {
                assert!(
                    ["email", "slack", "sns"].contains(&c.as_str()),
                    "{rel}: channel {c} has no integration in the drills-and-tests receiver"
                );
            }
        }
        let refused =
            rollbackd::config::from_str(&text, &repo().join("deploy"), Some("production"))
                .err()
                .unwrap_or_else(|| panic!("{rel}: production ran on the placeholder tokens"));
        assert!(
            refused.to_string().contains("shipped placeholder"),
            "{refused}"
        );
    }
    // Each channel the tests name has an integration in the receiver that carries them.
    let am = yaml("alerting/alertmanager.yml");
    let receiver = am["receivers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str() == Some("drills-and-tests"))
        .unwrap()
        .clone();
    for (channel, key) in [
        ("email", "email_configs"),
        ("slack", "slack_configs"),
        ("sns", "sns_configs"),
    ] {
        assert!(
            receiver[key].is_sequence(),
            "drills-and-tests has no {channel} integration"
        );
    }
    let mut single = yaml("deploy/rollbackd.yaml");
    let mut ha = yaml("deploy/rollbackd-ha.yaml");
    for cfg in [&mut single, &mut ha] {
        let m = cfg.as_mapping_mut().unwrap();
        m.remove("storage");
        m["alertmanager"].as_mapping_mut().unwrap().remove("urls");
    }
    assert_eq!(
        ha, single,
        "deploy/rollbackd-ha.yaml drifted from deploy/rollbackd.yaml"
    );
}
