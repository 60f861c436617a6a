//! Shared test data: the configured tokens, the profiles the target moves between, and
//! Alertmanager deliveries shaped exactly as Alertmanager 0.25 posts them.

use serde_json::{json, Map, Value};

pub const OPS_TOKEN: &str = "operator-token-for-tests-0001";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-000001";
/// A second admin, for two-person restores.
pub const SECOND_ADMIN_TOKEN: &str = "admin-token-for-tests-000002";
pub const VIEWER_TOKEN: &str = "viewer-token-for-tests-00001";
pub const WEBHOOK_TOKEN: &str = "webhook-token-for-tests-0001";

/// The known-good profile's parameters.
pub fn profile() -> Value {
    json!({"confidence_threshold": 0.55, "risk_reward_ratio": 1.8})
}

/// The simulator's adaptive parameters before any rollback.
pub fn adaptive() -> Value {
    json!({"confidence_threshold": 0.62, "risk_reward_ratio": 2.1})
}

pub const AM_1: &str = "http://alertmanager-0.trading.internal:9093";
pub const AM_2: &str = "http://alertmanager-1.trading.internal:9093";
/// When every test alert started.
pub const STARTS: &str = "2026-11-23T10:04:12.358412877Z";

/// One alert as Alertmanager 0.25 renders it in a webhook; `rollback` adds `action="rollback"`.
pub fn alert(name: &str, status: &str, fingerprint: &str, rollback: bool) -> Value {
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
        "startsAt": STARTS,
        "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-11-23T10:19:42.358412877Z" },
        "generatorURL": format!("http://prometheus-0.trading.internal:9090/graph?g0.expr=trigger_condition_value%7Bcondition_type%3D%22walk_forward_stability%22%7D+%3C+40&g0.tab=1&alert={name}"),
        "fingerprint": fingerprint,
    })
}

/// What every alert of a group shares under `key` (`labels` or `annotations`).
fn common_of(alerts: &[Value], key: &str) -> Map<String, Value> {
    let mut common: Option<Map<String, Value>> = None;
    for a in alerts {
        let m = a[key].as_object().unwrap().clone();
        common = Some(match common {
            None => m,
            Some(c) => c.into_iter().filter(|(k, v)| m.get(k) == Some(v)).collect(),
        });
    }
    common.unwrap_or_default()
}

/// A delivery of `alerts` grouped by `group_by`, as the receiver of the Alertmanager at
/// `external_url` posts it.
pub fn group(receiver: &str, external_url: &str, group_by: &[&str], alerts: Vec<Value>) -> Value {
    let common_labels = common_of(&alerts, "labels");
    let group_labels: Map<String, Value> = group_by
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
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_of(&alerts, "annotations"),
        "alerts": alerts,
        "externalURL": external_url,
        "version": "4",
        "groupKey": format!("{{}}/{{action=\"rollback\"}}:{{{key}}}"),
        "truncatedAlerts": 0,
    })
}

/// The usual delivery: one alert, to `rollbackd-webhook` from the first Alertmanager, grouped
/// by `alertname`.
pub fn delivery(alert: Value) -> Value {
    group("rollbackd-webhook", AM_1, &["alertname"], vec![alert])
}
