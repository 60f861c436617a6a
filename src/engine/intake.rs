//! Alertmanager deliveries. A delivery's alerts and the rollback event its new firing
//! `action="rollback"` alerts ask for are recorded in one transaction before it is answered,
//! so an answered delivery is always acted on and a refused one (storage, shutdown) leaves
//! nothing behind for the retry to trip over; the execution then runs in the background.
//! Resends and HA duplicates are answered from the in-memory `ResendFilter` when already
//! recorded, and by the store's unique key when two race: the store decides.

use super::{lock, Engine, EngineError, Requested, RollbackRequest};
use crate::alertmanager::{Alert, Payload};
use crate::domain::lifecycle::{Decision, TriggerType};
use crate::events::EngineEvent;
use crate::store::{AlertRecord, Delivery, Store, StoreError};
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
        approval: Default::default(),
    }
}

impl Engine {
    pub(super) async fn intake(&self, payload: Payload) -> Result<WebhookOutcome, EngineError> {
        // A delivery accepted now must be acted on: while shutting down, refuse it whole so
        // Alertmanager retries (against this replica or the next start).
        if self.0.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
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
        let asking: Vec<&Alert> = fresh
            .iter()
            .copied()
            .filter(|a| a.requests_rollback())
            .collect();
        let asked = (!asking.is_empty()).then(|| request(&payload.receiver, &asking));
        let proposal = asked.as_ref().map(|r| self.propose(r));
        // Confirm mode: the alerts are recorded alone; the proposal opens once they are.
        let (proposal, confirm) = match proposal {
            Some(p) if p.decision == Decision::Propose => (None, asked),
            p => (p, None),
        };
        let now = Utc::now();
        let records = fresh.iter().map(|a| record(a, now)).collect();
        let event = proposal.as_ref().map(|p| (&p.event, p.detail.clone()));
        let recorded = if fresh.is_empty() {
            // A resend of what is already recorded: answered from memory (the hot path).
            Ok(Delivery {
                new: vec![],
                event_recorded: false,
                held_by: None,
            })
        } else {
            self.0.store.record_delivery(records, event).await
        };
        let delivery = match recorded {
            Ok(d) => d,
            Err(e) => {
                if let Some(p) = &proposal {
                    self.withdraw_slot(&p.event.id);
                }
                return Err(e.into());
            }
        };
        self.0.resend.remember(fresh.iter().copied());
        if let Some(p) = proposal {
            if let (true, Some(holder)) = (delivery.event_recorded, &delivery.held_by) {
                // Another replica's rollback holds the slot: this one went in as suppressed.
                self.withdraw_slot(&p.event.id);
                *lock(&self.0.remote_slot) = Some(holder.clone());
                let at = p.event.created_at;
                let event = p.event.at(
                    crate::domain::lifecycle::EventStatus::Suppressed,
                    at,
                    crate::store::held_detail(holder),
                );
                let event = self.announce(event).await;
                self.log_requested("alertmanager", &Ok(self.carry_out(event, p.decision)));
            } else if delivery.event_recorded {
                let event = self.announce(p.event).await;
                self.log_requested("alertmanager", &Ok(self.carry_out(event, p.decision)));
            } else {
                // A twin delivery recorded these alerts first, and with them its own event.
                self.withdraw_slot(&p.event.id);
            }
        }
        if let Some(req) = confirm {
            if fresh
                .iter()
                .zip(&delivery.new)
                .any(|(a, n)| *n && a.requests_rollback())
            {
                let opened = self.open_proposal(req).await.map(Requested::Proposed);
                self.log_requested("alertmanager", &opened);
            }
        }
        let new_rollback: Vec<&Alert> = fresh
            .iter()
            .zip(&delivery.new)
            .filter(|(a, is_new)| **is_new && a.requests_rollback())
            .map(|(a, _)| *a)
            .collect();
        let asking_total = payload
            .alerts
            .iter()
            .filter(|a| a.requests_rollback())
            .count();
        self.emit(EngineEvent::AlertsDeduplicated {
            count: (asking_total - new_rollback.len()) as u64,
        });
        Ok(WebhookOutcome {
            accepted: payload.alerts.len(),
            rollback_requested: new_rollback
                .iter()
                .map(|a| a.alertname().to_string())
                .collect(),
            deduplicated: (payload.alerts.len() - fresh.len())
                + delivery.new.iter().filter(|n| !**n).count(),
        })
    }
}
