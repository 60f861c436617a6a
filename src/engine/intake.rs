//! Alertmanager deliveries. Each one is recorded durably before it is answered; each new
//! firing alert labelled `action="rollback"` then asks the executor for a rollback in the
//! background. Resends and HA duplicates are answered from the in-memory `ResendFilter` when
//! already recorded, and by the store's unique key when two race: the store decides.

use super::{lock, Engine, EngineError, RollbackRequest};
use crate::alertmanager::{Alert, Payload};
use crate::domain::lifecycle::TriggerType;
use crate::events::EngineEvent;
use crate::store::{AlertRecord, Store, StoreError};
use crate::views::WebhookOutcome;
use chrono::Utc;
use std::collections::HashSet;
use std::sync::Mutex;

/// The keys (fingerprint, startsAt, status) of alerts already recorded, to answer resends
/// without touching the disk. At most `CAP` keys; forgetting is always safe because the
/// store's unique key stays the authority.
pub(super) struct ResendFilter(Mutex<HashSet<(String, String, String)>>);

impl ResendFilter {
    const CAP: usize = 100_000;

    /// Starts with the newest keys recorded.
    pub(super) async fn warm(store: &Store) -> Result<ResendFilter, StoreError> {
        let keys = store.alert_keys(Self::CAP).await?;
        Ok(ResendFilter(Mutex::new(keys.into_iter().collect())))
    }

    /// The alerts of a delivery not known to be recorded.
    fn unseen<'a>(&self, alerts: &'a [Alert]) -> Vec<&'a Alert> {
        let seen = lock(&self.0);
        alerts.iter().filter(|a| !seen.contains(&a.key())).collect()
    }

    fn remember<'a>(&self, alerts: impl ExactSizeIterator<Item = &'a Alert>) {
        let mut seen = lock(&self.0);
        if seen.len() + alerts.len() > Self::CAP {
            seen.clear();
        }
        seen.extend(alerts.map(Alert::key));
    }
}

fn record(a: &Alert, now: chrono::DateTime<Utc>) -> AlertRecord {
    AlertRecord {
        fingerprint: a.fingerprint.clone(),
        starts_at: a.starts_at.clone(),
        status: a.status.clone(),
        alertname: a.alertname().into(),
        labels: a.labels.clone(),
        requests_rollback: a.requests_rollback(),
        received_at: now,
    }
}

/// The rollback request for the new rollback alerts of one delivery.
fn request(receiver: &str, alerts: &[&Alert]) -> RollbackRequest {
    let summaries: Vec<String> = alerts
        .iter()
        .map(|a| {
            a.annotations
                .get("summary")
                .cloned()
                .unwrap_or_else(|| a.alertname().to_string())
        })
        .collect();
    let receiver = if receiver.is_empty() { "?" } else { receiver };
    RollbackRequest {
        trigger_type: TriggerType::Alertmanager,
        source: format!("alertmanager receiver {receiver}"),
        reason: summaries.join("; "),
        actor: "alertmanager".into(),
        dry_run: false,
        alert_names: alerts.iter().map(|a| a.alertname().to_string()).collect(),
        fingerprints: alerts.iter().map(|a| a.fingerprint.clone()).collect(),
    }
}

impl Engine {
    pub(super) async fn intake(&self, payload: Payload) -> Result<WebhookOutcome, EngineError> {
        let firing = payload
            .alerts
            .iter()
            .filter(|a| a.status == "firing")
            .count() as u64;
        self.emit(EngineEvent::AlertsReceived {
            firing,
            resolved: payload.alerts.len() as u64 - firing,
            truncated: payload.truncated_alerts,
        });
        let fresh = self.0.resend.unseen(&payload.alerts);
        let now = Utc::now();
        let flags = if fresh.is_empty() {
            vec![]
        } else {
            let records = fresh.iter().map(|a| record(a, now)).collect();
            self.0.store.record_alerts(records).await?
        };
        self.0.resend.remember(fresh.iter().copied());
        let new_rollback: Vec<&Alert> = fresh
            .iter()
            .zip(&flags)
            .filter(|(a, is_new)| **is_new && a.requests_rollback())
            .map(|(a, _)| *a)
            .collect();
        let asking = payload
            .alerts
            .iter()
            .filter(|a| a.requests_rollback())
            .count();
        self.emit(EngineEvent::AlertsDeduplicated {
            count: (asking - new_rollback.len()) as u64,
        });
        let outcome = WebhookOutcome {
            accepted: payload.alerts.len(),
            rollback_requested: new_rollback
                .iter()
                .map(|a| a.alertname().to_string())
                .collect(),
            deduplicated: (payload.alerts.len() - fresh.len())
                + flags.iter().filter(|n| !**n).count(),
        };
        if !new_rollback.is_empty() {
            let req = request(&payload.receiver, &new_rollback);
            let e = self.clone();
            self.0.tasks.spawn(async move { e.trigger(req).await });
        }
        Ok(outcome)
    }
}
