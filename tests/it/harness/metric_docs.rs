//! The metrics documented in docs/metrics.md, the contract of `/metrics`.

use super::files::read;
use std::collections::{BTreeMap, BTreeSet};

/// Labelled families with no series until the first drill or notification test: their label
/// values (the steps that ran, the channels tested) come from it.
pub const AFTER_FIRST_OPERATION: [&str; 2] = [
    "rollback_drill_step_duration_seconds",
    "rollback_notification_test_last_success",
];

/// One row of docs/metrics.md: name, type, label names with their documented values.
#[derive(Debug)]
pub struct DocMetric {
    pub name: String,
    pub kind: String,
    pub labels: Vec<(String, Vec<String>)>,
}

/// The doc's tables (every row whose first cell is a backticked metric name), and the values
/// it lists for labels shared by many metrics (`- `label`: `a`, `b``).
pub fn doc_metrics() -> (Vec<DocMetric>, BTreeMap<String, Vec<String>>) {
    let mut global: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut metrics = Vec::new();
    for line in read("docs/metrics.md").lines() {
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
        metrics.push(DocMetric {
            name: name[0].clone(),
            kind: cells[2].to_string(),
            labels: labels_cell(cells[3]),
        });
    }
    assert!(
        metrics.len() >= 40,
        "the doc's tables were read: {}",
        metrics.len()
    );
    (metrics, global)
}

/// The metric names documented in docs/metrics.md.
pub fn documented_metrics() -> BTreeSet<String> {
    doc_metrics().0.into_iter().map(|m| m.name).collect()
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Labels: backticked names outside parentheses, their values inside.
fn labels_cell(cell: &str) -> Vec<(String, Vec<String>)> {
    let mut labels: Vec<(String, Vec<String>)> = Vec::new();
    let mut depth = 0;
    let mut in_tick = false;
    let mut tok = String::new();
    for c in cell.chars() {
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
    labels
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
