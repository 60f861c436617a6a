//! What `rollbackd tune` prints: a table per condition with the recommendation and the config
//! block to paste, or the same as JSON (`--json`, `format_version` 1).

use super::{Plan, ReviewSource};
use crate::domain::tuning::{Basis, CandidateResult, ConditionOutcome, MAX_MOVE, STEPS, TP_FLOOR};
use crate::domain::ConditionSpec;
use comfy_table::{presets, CellAlignment, Table};
use serde_json::{json, Value};
use std::time::Duration;

pub struct Report<'a> {
    pub prometheus: &'a str,
    pub plan: &'a Plan,
    pub cooldown: Duration,
    pub source: &'a ReviewSource,
    pub conditions: &'a [ConditionSpec],
    pub outcomes: &'a [ConditionOutcome],
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1} %", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn signed(step: i32) -> String {
    if step == 0 {
        "0 %".into()
    } else {
        format!("{step:+} %")
    }
}

fn basis(b: Basis) -> String {
    match b {
        Basis::KeepsTruePositives => format!(
            "keeps the true positive rate >= {:.0} % with the lowest false positive rate within one {MAX_MOVE} % step",
            TP_FLOOR * 100.0
        ),
        Basis::BestTruePositives => format!(
            "no candidate within one {MAX_MOVE} % step keeps the true positive rate >= {:.0} %; this one catches the most",
            TP_FLOOR * 100.0
        ),
        Basis::NoTruePositivesKnown => {
            "no reviewed true positive or missed degradation for this condition: nothing says what a move would miss, so no move".into()
        }
    }
}

impl Report<'_> {
    /// Whether any review or missed degradation was read.
    fn has_reviews(&self) -> bool {
        matches!(self.source, ReviewSource::Daemon { reviews, .. } if !reviews.summary.is_empty())
    }

    fn spec(&self, name: &str) -> Option<&ConditionSpec> {
        self.conditions.iter().find(|c| c.name == name)
    }

    /// Every override line, in the config's condition order.
    fn overrides(&self) -> Vec<(String, f64)> {
        self.outcomes
            .iter()
            .filter_map(|o| Some(o.overrides(self.spec(&o.condition)?)))
            .flatten()
            .collect()
    }

    fn reviews_line(&self) -> String {
        match self.source {
            ReviewSource::Skipped => {
                "Reviews: not read (--no-reviews): trigger counts only.".into()
            }
            ReviewSource::Daemon { url, reviews } if reviews.summary.is_empty() => format!(
                "Reviews: none at {url} for this period: trigger counts only. Review trigger episodes \
                 (`rollbackd review`) and record missed degradations (`rollbackd missed`) to get \
                 rates and a recommendation."
            ),
            ReviewSource::Daemon { url, reviews } => {
                let s = &reviews.summary;
                format!(
                    "Reviews from {url}: {} reviewed episodes ({} true positive, {} false positive, {} drill; {} name no configured condition); missed degradations: {}.",
                    s.reviewed_episodes, s.true_positive, s.false_positive, s.drill, s.unattributed, s.missed_degradations
                )
            }
        }
    }

    pub fn text(&self) -> String {
        let p = self.plan;
        let mut out = format!(
            "Tuning replay of trigger_condition_value from {}\n{} .. {} at a {} step; cooldown {}; a trigger within {} of a reviewed episode is that episode.\n{}\n",
            self.prometheus,
            p.since.to_rfc3339(),
            p.until.to_rfc3339(),
            human(p.step),
            human(self.cooldown),
            human(p.tolerance),
            self.reviews_line(),
        );
        let reviewed = self.has_reviews();
        for o in self.outcomes {
            out.push('\n');
            out.push_str(&self.condition_text(o, reviewed));
        }
        out.push('\n');
        let lines = self.overrides();
        if !reviewed {
            out.push_str("No recommendation without reviews.\n");
        } else if lines.is_empty() {
            out.push_str("No change recommended: keep the current thresholds.\n");
        } else {
            out.push_str(
                "Overrides to paste into rollbackd.yaml (under the environment's entry in `environments:`, \
                 e.g. environments.production), then `rollbackd check-config` and reload:\n",
            );
            for (k, v) in lines {
                out.push_str(&format!("{k}: {v}\n"));
            }
        }
        out
    }

    fn condition_text(&self, o: &ConditionOutcome, reviewed: bool) -> String {
        let mut out = format!(
            "{} ({} critical; {} samples",
            o.condition, o.operator, o.samples
        );
        if reviewed {
            out.push_str(&format!(
                "; reviewed {} true positive, {} false positive, {} drill; {} missed",
                o.reviewed_true_positives,
                o.reviewed_false_positives,
                o.reviewed_drills,
                o.missed_degradations
            ));
        }
        out.push_str(")\n");
        if o.samples == 0 {
            out.push_str("  no data in this period: not replayed\n");
            return out;
        }
        let mut header = vec![
            "step",
            "critical",
            "warning",
            "triggers",
            "rollbacks",
            "suppressed",
        ];
        if reviewed {
            header.extend([
                "TP",
                "FP",
                "missed caught",
                "unmatched",
                "TP rate",
                "FP rate",
            ]);
        }
        header.push("");
        let chosen = o.recommendation.as_ref().map(|r| r.step_percent);
        let rows = o
            .candidates
            .iter()
            .map(|c| {
                let mut row = vec![
                    signed(c.step_percent),
                    c.critical_threshold.to_string(),
                    c.warning_threshold.to_string(),
                    c.triggers.to_string(),
                    c.rollbacks.to_string(),
                    c.suppressed.to_string(),
                ];
                if reviewed {
                    row.extend([
                        format!("{}/{}", c.true_positives.hits, c.true_positives.total),
                        format!("{}/{}", c.false_positives.hits, c.false_positives.total),
                        format!("{}/{}", c.missed_caught.hits, c.missed_caught.total),
                        c.unmatched.to_string(),
                        percent(c.true_positive_rate()),
                        percent(c.false_positive_rate()),
                    ]);
                }
                let mut mark = Vec::new();
                if c.step_percent == 0 {
                    mark.push("current");
                }
                if chosen == Some(c.step_percent) {
                    mark.push("recommended");
                }
                row.push(mark.join(", "));
                row
            })
            .collect();
        let right: Vec<usize> = (0..header.len() - 1).collect();
        out.push_str(&columns(&header, rows, &right));
        match &o.recommendation {
            Some(r) if r.step_percent == 0 => {
                out.push_str(&format!(
                    "  keep {}: {}\n",
                    r.critical_threshold,
                    basis(r.basis)
                ));
            }
            Some(r) => out.push_str(&format!(
                "  move {} to critical {}: {}\n",
                signed(r.step_percent),
                r.critical_threshold,
                basis(r.basis)
            )),
            None if reviewed => out.push_str(
                "  no reviewed episode or missed degradation of this condition: counts only\n",
            ),
            None => {}
        }
        out
    }

    pub fn json(&self) -> String {
        let p = self.plan;
        let reviews = match self.source {
            ReviewSource::Skipped => Value::Null,
            ReviewSource::Daemon { url, reviews } => {
                let mut v = serde_json::to_value(&reviews.summary).unwrap_or(Value::Null);
                v["url"] = json!(url);
                v
            }
        };
        let conditions: Vec<Value> = self
            .outcomes
            .iter()
            .map(|o| {
                let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
                v["candidates"] = o.candidates.iter().map(candidate).collect();
                v
            })
            .collect();
        let overrides: serde_json::Map<String, Value> = self
            .overrides()
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        let doc = json!({
            "format_version": 1,
            "prometheus": self.prometheus,
            "since": p.since.to_rfc3339(),
            "until": p.until.to_rfc3339(),
            "step_seconds": p.step.as_secs_f64(),
            "cooldown_seconds": self.cooldown.as_secs_f64(),
            "tolerance_seconds": p.tolerance.as_secs_f64(),
            "steps_percent": STEPS,
            "reviews": reviews,
            "has_reviews": self.has_reviews(),
            "conditions": conditions,
            "overrides": overrides,
        });
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A candidate with its rates.
fn candidate(c: &CandidateResult) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    v["true_positive_rate"] = json!(c.true_positive_rate());
    v["false_positive_rate"] = json!(c.false_positive_rate());
    v
}

/// Columns without borders, two spaces apart, indented; `right` lists right-aligned columns.
fn columns(header: &[&str], rows: Vec<Vec<String>>, right: &[usize]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    for (i, col) in t.column_iter_mut().enumerate() {
        col.set_padding((0, 2));
        if right.contains(&i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.lines().map(|l| format!("  {}\n", l.trim_end())).collect()
}
