//! The shipped Grafana dashboards and the PromQL in them. Shared by the file checks and the
//! end-to-end test that runs every expression on a real Prometheus.

use super::files::repo;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

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
