//! Alertmanager's webhook payload (version 4) and how each alert in it is judged. Pure: the
//! engine records and acts on what this returns.

use chrono::DateTime;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// The label that asks rollbackd to act.
pub const ACTION_LABEL: &str = "action";
pub const ACTION_ROLLBACK: &str = "rollback";

impl Alert {
    pub fn alertname(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Judged on the alert's own labels, never the group's: a firing alert labelled
    /// `action="rollback"` asks for a rollback; a resolved one never undoes anything.
    pub fn requests_rollback(&self) -> bool {
        self.status == "firing"
            && self.labels.get(ACTION_LABEL).map(String::as_str) == Some(ACTION_ROLLBACK)
    }

    /// The durable identity of this alert's episode in this state.
    pub fn key(&self) -> (String, String, String) {
        (
            self.fingerprint.clone(),
            self.starts_at.clone(),
            self.status.clone(),
        )
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("malformed Alertmanager payload: {0}")]
    Malformed(String),
    #[error("unsupported Alertmanager payload version {0:?}; expected \"4\"")]
    Version(String),
}

/// Parses and checks a delivery; names the first thing wrong. A good delivery is parsed once,
/// straight into its types (the webhook's hot path); only a refused one is looked at again, to
/// say why.
pub fn parse(body: &[u8]) -> Result<Payload, PayloadError> {
    let p: Payload = serde_json::from_slice(body).map_err(|e| why_refused(body, e))?;
    if p.version != "4" {
        return Err(PayloadError::Version(p.version));
    }
    for (i, a) in p.alerts.iter().enumerate() {
        if a.fingerprint.trim().is_empty() {
            return Err(PayloadError::Malformed(format!(
                "alerts[{i}].fingerprint is empty"
            )));
        }
        if a.status != "firing" && a.status != "resolved" {
            return Err(PayloadError::Malformed(format!(
                "alerts[{i}].status is {:?}; expected firing or resolved",
                a.status
            )));
        }
        if DateTime::parse_from_rfc3339(&a.starts_at).is_err() {
            return Err(PayloadError::Malformed(format!(
                "alerts[{i}].startsAt {:?} is not an RFC 3339 time",
                a.starts_at
            )));
        }
    }
    Ok(p)
}

/// The first thing wrong with a body that does not parse as a payload: not JSON, another
/// version, or the field that does not fit.
fn why_refused(body: &[u8], first: serde_json::Error) -> PayloadError {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return PayloadError::Malformed(e.to_string()),
    };
    if let Some(v) = value.get("version").filter(|v| v.as_str() != Some("4")) {
        return PayloadError::Version(v.as_str().map_or_else(|| v.to_string(), str::to_owned));
    }
    match serde_path_to_error::deserialize::<_, Payload>(value) {
        Err(e) => PayloadError::Malformed(format!("{}: {}", e.path(), e.inner())),
        Ok(_) => PayloadError::Malformed(first.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(alerts: serde_json::Value) -> Vec<u8> {
        json!({"version": "4", "groupKey": "{}:{alertname=\"X\"}", "truncatedAlerts": 0, "status": "firing",
               "receiver": "rollbackd-webhook", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
               "externalURL": "http://am:9093", "alerts": alerts}).to_string().into_bytes()
    }

    fn alert(status: &str, labels: serde_json::Value, fp: &str) -> serde_json::Value {
        json!({"status": status, "labels": labels, "annotations": {}, "startsAt": "2026-11-23T10:00:00.123Z",
               "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": fp})
    }

    #[test]
    fn each_alert_is_judged_on_its_own_labels() {
        let p = parse(&payload(json!([
            alert(
                "firing",
                json!({"alertname": "WalkForwardStabilityCritical", "action": "rollback"}),
                "a1"
            ),
            alert(
                "firing",
                json!({"alertname": "RollbackTriggerConditionsMet"}),
                "a2"
            ),
            alert(
                "resolved",
                json!({"alertname": "MaxDrawdownCritical", "action": "rollback"}),
                "a3"
            ),
        ])))
        .unwrap();
        let asks: Vec<bool> = p.alerts.iter().map(Alert::requests_rollback).collect();
        assert_eq!(asks, [true, false, false]);
        assert_eq!(p.alerts[0].alertname(), "WalkForwardStabilityCritical");
    }

    #[test]
    fn bad_payloads_name_what_is_wrong() {
        assert!(matches!(
            parse(b"{not json"),
            Err(PayloadError::Malformed(_))
        ));
        let mut v: serde_json::Value = serde_json::from_slice(&payload(json!([]))).unwrap();
        v["version"] = json!("3");
        assert_eq!(
            parse(v.to_string().as_bytes()).unwrap_err(),
            PayloadError::Version("3".into())
        );
        v["version"] = json!(4);
        assert_eq!(
            parse(v.to_string().as_bytes()).unwrap_err(),
            PayloadError::Version("4".into()),
            "a number is not the string \"4\""
        );
        let e = parse(&payload(json!([alert("firing", json!({}), "")])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("alerts[0].fingerprint is empty"), "{e}");
        let e = parse(&payload(json!([alert("pending", json!({}), "f")])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("alerts[0].status"), "{e}");
        let mut a = alert("firing", json!({}), "f");
        a["startsAt"] = json!("yesterday");
        assert!(parse(&payload(json!([a])))
            .unwrap_err()
            .to_string()
            .contains("startsAt"));
        let e = parse(br#"{"version":"4","status":"firing","alerts":[{"status":"firing"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("alerts[0]") && e.contains("missing field"),
            "{e}"
        );
    }
}
