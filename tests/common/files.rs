//! The repository's shipped files as tests read them: paths, the dashboards and the PromQL in
//! them, the documented metric names. Shared by the file checks, the alerting-kit checks and
//! the end-to-end test that runs every expression on a real Prometheus.
#![allow(dead_code)]

use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, by its path from the root.
pub fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// The provisioned datasource's fixed uid.
pub const DATASOURCE_UID: &str = "rollbackd-prometheus";
/// What every dashboard panel and query names as its datasource.
pub const DATASOURCE_VAR: &str = "${datasource}";

/// Every dashboard shipped in `grafana/dashboards/`, sorted.
pub fn dashboard_files() -> Vec<PathBuf> {
    let dir = repo().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

pub fn load_dashboard(path: &Path) -> Json {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Every panel of a dashboard, rows' nested panels included (those of collapsed rows live in
/// the row's own `panels`).
pub fn all_panels(dashboard: &Json) -> Vec<&Json> {
    fn walk<'a>(panels: &'a Json, out: &mut Vec<&'a Json>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(children) = p.get("panels") {
                walk(children, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// One PromQL expression of a dashboard, as Grafana stores it (template variables unexpanded).
#[derive(Clone, Debug)]
pub struct DashboardExpr {
    /// The dashboard's file name, e.g. `emergency-rollback.json`.
    pub dashboard: String,
    /// `panel <id> "<title>" target <refId>`, or `annotation "<name>"`.
    pub location: String,
    pub expr: String,
    /// Whether Grafana runs it as an instant query (else a range query).
    pub instant: bool,
}

/// Extracts every PromQL expression of a dashboard file: each panel target's `expr` (nested
/// rows included) and each Prometheus annotation's `expr`. Template variable queries
/// (`label_values(...)`) are not PromQL and are left out.
pub fn dashboard_exprs(path: &Path) -> Vec<DashboardExpr> {
    let d = load_dashboard(path);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut out = Vec::new();
    for p in all_panels(&d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push(DashboardExpr {
                    dashboard: name.clone(),
                    location: format!(
                        "panel {} {:?} target {}",
                        p["id"],
                        p["title"].as_str().unwrap_or(""),
                        t["refId"].as_str().unwrap_or("?")
                    ),
                    expr: expr.to_string(),
                    instant: t["instant"].as_bool().unwrap_or(false),
                });
            }
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        let expr = a["expr"].as_str().or_else(|| a["target"]["expr"].as_str());
        if let Some(expr) = expr {
            out.push(DashboardExpr {
                dashboard: name.clone(),
                location: format!("annotation {:?}", a["name"].as_str().unwrap_or("")),
                expr: expr.to_string(),
                instant: false,
            });
        }
    }
    out
}

/// Every PromQL expression of every shipped dashboard.
pub fn all_dashboard_exprs() -> Vec<DashboardExpr> {
    dashboard_files()
        .iter()
        .flat_map(|f| dashboard_exprs(f))
        .collect()
}

/// `expr` with Grafana's template variables replaced so that Prometheus can run it:
/// `$__rate_interval`, `$__interval`, `$__range` by `window` (e.g. `"5m"`) and `$instance`
/// by `instance` (a regex, e.g. `".*"` or an exact `host:port`).
pub fn grafana_vars_substituted(expr: &str, window: &str, instance: &str) -> String {
    expr.replace("${__rate_interval}", window)
        .replace("$__rate_interval", window)
        .replace("${__interval}", window)
        .replace("$__interval", window)
        .replace("${__range}", window)
        .replace("$__range", window)
        .replace("${instance}", instance)
        .replace("$instance", instance)
}

/// Metric names referenced by a PromQL expression, found without a full parser: string
/// literals, label matchers `{...}`, range/subquery brackets `[...]` and grouping label lists
/// (`by (...)`, `without`, `on`, `ignoring`, `group_left`, `group_right`) are dropped; of the
/// identifiers left, those not called as functions and not keywords are metric names.
pub fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "inf",
        "nan",
        "atan2",
    ];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // 1. Drop string literals and bracketed parts.
    let mut cleaned = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let quote = c;
                while let Some(n) = chars.next() {
                    if n == '\\' && quote != '`' {
                        chars.next();
                    } else if n == quote {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut depth = 1;
                while let Some(n) = chars.next() {
                    if n == '"' || n == '\'' || n == '`' {
                        // A '}' inside a label value is still inside the matcher.
                        while let Some(m) = chars.next() {
                            if m == '\\' && n != '`' {
                                chars.next();
                            } else if m == n {
                                break;
                            }
                        }
                    } else if n == c {
                        depth += 1;
                    } else if n == close {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                }
                cleaned.push(' ');
            }
            '#' => {
                // comment to end of line
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            _ => cleaned.push(c),
        }
    }
    // 2. Tokenise into identifiers and single punctuation characters.
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in cleaned.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                tokens.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    // 3. Walk the tokens.
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let lower = t.to_ascii_lowercase();
        if GROUPING.contains(&lower.as_str()) && tokens.get(i + 1).map(String::as_str) == Some("(")
        {
            // skip the label list
            while i < tokens.len() && tokens[i] != ")" {
                i += 1;
            }
            i += 1;
            continue;
        }
        let first = t.chars().next().unwrap();
        let is_ident =
            (first.is_ascii_alphabetic() || first == '_' || first == ':') && !t.contains('.');
        // A function call, or an aggregation with its grouping first: `sum by (le) (...)`.
        let called = matches!(
            tokens.get(i + 1).map(|n| n.to_ascii_lowercase()).as_deref(),
            Some("(" | "by" | "without")
        );
        if is_ident && !called && !KEYWORDS.contains(&lower.as_str()) {
            names.insert(t.clone());
        }
        i += 1;
    }
    names
}

/// The metric names documented in docs/metrics.md (every backticked name in a table's first
/// column).
pub fn documented_metrics() -> BTreeSet<String> {
    read("docs/metrics.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

/// Is this a metric rollbackd itself exports (by its name), as opposed to Prometheus' `up`
/// or Alertmanager's own metrics?
pub fn is_rollbackd_metric(name: &str) -> bool {
    [
        "rollback",
        "trigger_",
        "recovery_",
        "rollbackd_",
        "process_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// The documented metric a series name belongs to: histogram series `_bucket`, `_count`,
/// `_sum` belong to their histogram.
pub fn documented_name<'a>(name: &'a str, documented: &BTreeSet<String>) -> Option<&'a str> {
    if documented.contains(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if documented.contains(base) {
                return Some(base);
            }
        }
    }
    None
}
