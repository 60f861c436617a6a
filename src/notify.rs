//! rollbackd's own voice to Alertmanager: alerts posted to `POST /api/v2/alerts` on every
//! member of the pair (drills, notification tests, and the direct notice of an executed,
//! failed or frozen rollback), and Alertmanager's own notification counters read from its
//! `/metrics`, which say per integration whether people were told.

use crate::tls::ClientTls;
use crate::transport::Transport;
use axum::http::Method;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One alert as Alertmanager's API takes it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OutAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: DateTime<Utc>,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
}

/// What one member of the pair answered.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MemberResult {
    pub url: String,
    pub ok: bool,
    /// The error or the refusal, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Notifications sent and failed, per integration (`email`, `slack`, `sns`, `webhook`, ...).
pub type Counters = BTreeMap<String, (f64, f64)>;

#[derive(Clone)]
pub struct AlertmanagerClient {
    urls: Vec<String>,
    http: Transport,
    timeout: Duration,
}

impl AlertmanagerClient {
    pub fn new(urls: &[String], timeout: Duration) -> AlertmanagerClient {
        let http = Transport::new("http://", &ClientTls::default(), timeout)
            .expect("a plain HTTP client needs no CA");
        AlertmanagerClient {
            urls: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            http,
            timeout,
        }
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn is_configured(&self) -> bool {
        !self.urls.is_empty()
    }

    /// Posts `alerts` to every member, concurrently; one result per member.
    pub async fn post(&self, alerts: &[OutAlert]) -> Vec<MemberResult> {
        let body = serde_json::to_vec(alerts).expect("alerts serialize");
        let calls = self.urls.iter().map(|base| {
            let body = body.clone();
            async move {
                let url = format!("{base}/api/v2/alerts");
                let r = self
                    .http
                    .send(Method::POST, &url, &[], Some(body), self.timeout)
                    .await;
                let error = match r {
                    Ok(a) if a.status.is_success() => None,
                    Ok(a) => Some(format!(
                        "{url} answered {}: {}",
                        a.status.as_u16(),
                        String::from_utf8_lossy(&a.body[..a.body.len().min(200)]).trim()
                    )),
                    Err(e) => Some(format!("{url}: {e}")),
                };
                MemberResult {
                    url: base.clone(),
                    ok: error.is_none(),
                    error,
                }
            }
        });
        futures_util::future::join_all(calls).await
    }

    /// Alertmanager's notification counters on `base`, summed per integration.
    pub async fn counters(&self, base: &str) -> Result<Counters, String> {
        let url = format!("{base}/metrics");
        let a = self
            .http
            .send(Method::GET, &url, &[], None, self.timeout)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !a.status.is_success() {
            return Err(format!("{url} answered {}", a.status.as_u16()));
        }
        Ok(parse_counters(&String::from_utf8_lossy(&a.body)))
    }
}

/// Sums `alertmanager_notification_requests_total` and
/// `alertmanager_notification_requests_failed_total` per `integration` label from Prometheus'
/// text format. These count each request to a receiver as it ends; the
/// `alertmanager_notifications_*` pair would count an attempt as sent at once and its failure
/// only when the retries give up, a group interval later.
pub fn parse_counters(text: &str) -> Counters {
    let mut out = Counters::new();
    for line in text.lines() {
        let failed = if line.starts_with("alertmanager_notification_requests_failed_total{") {
            true
        } else if line.starts_with("alertmanager_notification_requests_total{") {
            false
        } else {
            continue;
        };
        let Some(integration) = label(line, "integration") else {
            continue;
        };
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let e = out.entry(integration.to_owned()).or_insert((0.0, 0.0));
        if failed {
            e.1 += value;
        } else {
            e.0 += value;
        }
    }
    out
}

fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let end = line[start..].find('"')? + start;
    Some(&line[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_per_integration_whatever_the_other_labels() {
        let text = "# HELP alertmanager_notification_requests_total The total number of attempted notification requests.\n\
alertmanager_notification_requests_total{integration=\"email\"} 3\n\
alertmanager_notification_requests_total{integration=\"slack\"} 2\n\
alertmanager_notification_requests_failed_total{integration=\"email\",reason=\"other\"} 1\n\
alertmanager_notification_requests_failed_total{integration=\"email\",reason=\"clientError\"} 1\n\
alertmanager_notification_requests_failed_total{integration=\"slack\"} 0\n\
alertmanager_notifications_total{integration=\"slack\"} 9\n\
alertmanager_notification_latency_seconds_bucket{integration=\"email\",le=\"1\"} 3\n";
        let c = parse_counters(text);
        assert_eq!(c["email"], (3.0, 2.0));
        assert_eq!(c["slack"], (2.0, 0.0));
        assert_eq!(c.len(), 2);
    }
}
