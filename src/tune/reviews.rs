//! What the daemon's history says about each condition: its reviewed trigger episodes
//! (`GET /api/v1/rollbacks`, each event with its latest review) and the recorded missed
//! degradations (`GET /api/v1/missed`), page by page, turned into the domain's
//! [`Reference`] per condition.

use crate::client::http::{Client, Refusal};
use crate::domain::review::Verdict;
use crate::domain::tuning::{Missed, Reference, Reviewed};
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The largest page the daemon serves.
const PAGE: u32 = 500;
/// At most this many pages of each list are read (250,000 entries).
const MAX_PAGES: usize = 500;

/// The reviews, per condition, and what could not be attributed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reviews {
    pub by_condition: BTreeMap<String, Reference>,
    pub summary: Summary,
}

/// What was read, in numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Reviewed rollback episodes in the period (their latest verdict counts).
    pub reviewed_episodes: u64,
    pub true_positive: u64,
    pub false_positive: u64,
    pub drill: u64,
    /// Reviewed episodes that name none of the configured conditions (e.g. a manual rollback
    /// without a critical condition): left out of the replay.
    pub unattributed: u64,
    pub missed_degradations: u64,
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.reviewed_episodes == 0 && self.missed_degradations == 0
    }
}

/// `walk_forward_stability` as its alert rules begin: `WalkForwardStability`.
fn camel(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The conditions an event was about: those critical in its condition snapshot; else those
/// its alert names begin with (`MaxDrawdownCritical`); else those its reason names (the
/// watchdog writes `max_drawdown 5.2 >= 5 (critical)`).
pub fn conditions_of(event: &Value, known: &[String]) -> Vec<String> {
    let critical: Vec<String> = event["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "critical")
        .filter_map(|c| c["condition"].as_str())
        .filter(|c| known.iter().any(|k| k == c))
        .map(str::to_owned)
        .collect();
    if !critical.is_empty() {
        return critical;
    }
    let alerts: Vec<&str> = event["alert_names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let by_alert: Vec<String> = known
        .iter()
        .filter(|k| alerts.iter().any(|a| a.starts_with(&camel(k))))
        .cloned()
        .collect();
    if !by_alert.is_empty() {
        return by_alert;
    }
    let reason = event["reason"].as_str().unwrap_or("");
    known
        .iter()
        .filter(|k| reason.contains(k.as_str()))
        .cloned()
        .collect()
}

fn time_ms(v: &Value) -> Option<u64> {
    let t = DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
    u64::try_from(t.timestamp_millis()).ok()
}

/// Adds one event of `GET /api/v1/rollbacks` to `out`: a rollback with a review.
pub fn add_event(out: &mut Reviews, event: &Value, known: &[String]) {
    if event["action"] != "rollback" {
        return;
    }
    let Some(verdict) = event["review"]["verdict"].as_str().and_then(Verdict::parse) else {
        return;
    };
    let Some(at_ms) = time_ms(&event["created_at"]) else {
        return;
    };
    let s = &mut out.summary;
    s.reviewed_episodes += 1;
    match verdict {
        Verdict::TruePositive => s.true_positive += 1,
        Verdict::FalsePositive => s.false_positive += 1,
        Verdict::Drill => s.drill += 1,
    }
    let conditions = conditions_of(event, known);
    if conditions.is_empty() {
        s.unattributed += 1;
    }
    for c in conditions {
        let r = out.by_condition.entry(c).or_default();
        r.reviewed.push(Reviewed { at_ms, verdict });
    }
}

/// Adds one missed degradation of `GET /api/v1/missed` to `out`.
pub fn add_missed(out: &mut Reviews, missed: &Value, known: &[String]) {
    let (Some(from_ms), Some(to_ms)) = (time_ms(&missed["from"]), time_ms(&missed["to"])) else {
        return;
    };
    out.summary.missed_degradations += 1;
    let names = missed["conditions"].as_array().into_iter().flatten();
    for c in names.filter_map(Value::as_str) {
        if known.iter().any(|k| k == c) {
            let r = out.by_condition.entry(c.to_owned()).or_default();
            r.missed.push(Missed { from_ms, to_ms });
        }
    }
}

/// Reads every page of `path` (its items under `key`), `since`/`until` applied by the daemon.
async fn each_page(
    client: &Client,
    path: &str,
    key: &str,
    window: (DateTime<Utc>, DateTime<Utc>),
    mut item: impl FnMut(&Value),
) -> Result<(), Refusal> {
    let mut before: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query = vec![
            ("limit", PAGE.to_string()),
            ("since", window.0.to_rfc3339()),
            ("until", window.1.to_rfc3339()),
        ];
        query.extend(before.take().map(|b| ("before", b)));
        let answer = client.send(Method::GET, path, &query, None).await?;
        for v in answer.value[key].as_array().into_iter().flatten() {
            item(v);
        }
        before = match &answer.value["next_before"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => return Ok(()),
        };
    }
    Ok(())
}

/// The reviewed episodes recorded in `window` and the missed degradations that began in it.
pub async fn fetch(
    client: &Client,
    window: (DateTime<Utc>, DateTime<Utc>),
    known: &[String],
) -> Result<Reviews, Refusal> {
    let mut out = Reviews::default();
    each_page(client, "/api/v1/rollbacks", "events", window, |e| {
        add_event(&mut out, e, known)
    })
    .await?;
    each_page(
        client,
        "/api/v1/missed",
        "missed_degradations",
        window,
        |m| add_missed(&mut out, m, known),
    )
    .await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known() -> Vec<String> {
        [
            "walk_forward_stability",
            "overfitting_score",
            "max_drawdown",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn an_event_is_about_its_critical_conditions_then_its_alerts_then_its_reason() {
        let e = json!({"conditions": [
            {"condition": "max_drawdown", "status": "critical"},
            {"condition": "overfitting_score", "status": "warning"}],
            "alert_names": ["OverfittingScoreCritical"], "reason": "walk_forward_stability"});
        assert_eq!(conditions_of(&e, &known()), vec!["max_drawdown"]);
        let e = json!({"conditions": [], "alert_names": ["OverfittingScoreCritical"]});
        assert_eq!(conditions_of(&e, &known()), vec!["overfitting_score"]);
        let e = json!({"reason": "overfitting_score 0.52 > 0.5 (critical)"});
        assert_eq!(conditions_of(&e, &known()), vec!["overfitting_score"]);
        assert!(conditions_of(&json!({"reason": "desk 3 asked"}), &known()).is_empty());
    }

    #[test]
    fn only_reviewed_rollbacks_count_and_missed_ones_go_to_their_conditions() {
        let mut r = Reviews::default();
        let k = known();
        let ev = |action: &str, verdict: Value, reason: &str| {
            json!({"action": action, "created_at": "2026-11-20T10:00:00Z", "reason": reason,
                   "review": if verdict.is_null() { Value::Null } else { json!({"verdict": verdict}) }})
        };
        add_event(
            &mut r,
            &ev(
                "rollback",
                json!("false_positive"),
                "max_drawdown 5.1 >= 5 (critical)",
            ),
            &k,
        );
        add_event(&mut r, &ev("rollback", Value::Null, "max_drawdown"), &k);
        add_event(
            &mut r,
            &ev("restore", json!("true_positive"), "max_drawdown"),
            &k,
        );
        add_event(&mut r, &ev("rollback", json!("drill"), "a drill"), &k);
        add_missed(
            &mut r,
            &json!({"from": "2026-11-20T09:00:00Z", "to": "2026-11-20T09:40:00Z",
                    "conditions": ["walk_forward_stability", "latency"]}),
            &k,
        );
        assert_eq!(r.summary.reviewed_episodes, 2);
        assert_eq!((r.summary.false_positive, r.summary.drill), (1, 1));
        assert_eq!(r.summary.unattributed, 1);
        assert_eq!(r.summary.missed_degradations, 1);
        let dd = &r.by_condition["max_drawdown"];
        assert_eq!(dd.reviewed.len(), 1);
        assert_eq!(dd.reviewed[0].verdict, Verdict::FalsePositive);
        assert_eq!(
            dd.reviewed[0].at_ms,
            DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
                .unwrap()
                .timestamp_millis() as u64
        );
        let wfs = &r.by_condition["walk_forward_stability"];
        assert_eq!(wfs.missed[0].to_ms - wfs.missed[0].from_ms, 40 * 60_000);
        assert!(!r.by_condition.contains_key("latency"));
    }
}
