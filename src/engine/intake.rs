//! Alertmanager deliveries. A delivery's alerts and the rollback event its new firing
//! `action="rollback"` alerts ask for are recorded in one transaction before it is answered,
//! so an answered delivery is always acted on and a refused one (storage, shutdown) leaves
//! nothing behind for the retry to trip over; the execution then runs in the background.
//! Resends and HA duplicates are answered from the in-memory `ResendFilter` when already
//! recorded, and by the store's unique key when two race: the store decides. A resend of the
//! exact bytes of a delivery answered before (Alertmanager's retries, an HA pair's twins, a
//! resend storm) is answered without parsing it again: the same bytes parse and validate the
//! same way, so only its alerts are looked up.

use super::{lock, Engine, EngineError, Requested, RollbackRequest};
use crate::alertmanager::{Alert, Payload};
use crate::domain::lifecycle::{Decision, TriggerType};
use crate::events::EngineEvent;
use crate::store::{AlertRecord, Delivery, Store, StoreError};
use crate::views::WebhookOutcome;
use chrono::Utc;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

type AlertKey = (String, String, String);

/// The keys (fingerprint, startsAt, status) of alerts already recorded, to answer resends
/// without touching the disk. Forgetting is always safe because the store's unique key stays
/// the authority: a forgotten key costs one look-up in the store.
pub(super) struct ResendFilter {
    seen: Mutex<Seen>,
    /// Deliveries answered before, by their exact bytes: at most `BODIES` of them, each at
    /// most `BODY_CAP` bytes, the oldest replaced first. Forgetting is safe: a forgotten body
    /// is parsed again. Found by comparing bytes (lengths first), cheaper than hashing a body.
    bodies: Mutex<Bodies>,
}

/// Two generations of keys, so memory stays at most two generations whatever the rate of new
/// alerts, and keys still being resent are kept: a key is added to `current`, a key found in
/// `previous` moves to `current`, and when `current` is full it becomes `previous` and the
/// older generation is forgotten. A key is forgotten only after a whole generation of other
/// keys arrived without it being resent once.
struct Seen {
    current: HashSet<AlertKey>,
    previous: HashSet<AlertKey>,
    generation: usize,
}

impl Seen {
    fn new(generation: usize) -> Seen {
        Seen {
            current: HashSet::new(),
            previous: HashSet::new(),
            generation,
        }
    }

    fn contains(&mut self, key: &AlertKey) -> bool {
        if self.current.contains(key) {
            return true;
        }
        match self.previous.take(key) {
            Some(key) => {
                self.insert(key);
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: AlertKey) {
        if self.current.len() >= self.generation && !self.current.contains(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[derive(Default)]
struct Bodies {
    known: Vec<(Box<[u8]>, Arc<Known>)>,
    /// Where the next one goes once `known` is full.
    next: usize,
}

/// What answering a delivery again needs, taken from it when it was parsed and validated.
pub struct Known {
    keys: Vec<AlertKey>,
    firing: u64,
    truncated: u64,
    asking: u64,
}

impl Known {
    pub fn of(payload: &Payload) -> Known {
        Known {
            keys: payload.alerts.iter().map(Alert::key).collect(),
            firing: payload
                .alerts
                .iter()
                .filter(|a| a.status == "firing")
                .count() as u64,
            truncated: payload.truncated_alerts,
            asking: payload
                .alerts
                .iter()
                .filter(|a| a.requests_rollback())
                .count() as u64,
        }
    }
}

impl ResendFilter {
    /// Keys per generation: far more alerts than a desk has firing and resent at once (only
    /// alerts routed to rollbackd's receiver arrive), and at most about 1 MiB for the two.
    const GENERATION: usize = 2048;
    const BODIES: usize = 64;
    const BODY_CAP: usize = 16 * 1024;

    /// Starts with the newest keys recorded.
    pub(super) async fn warm(store: &Store) -> Result<ResendFilter, StoreError> {
        let mut seen = Seen::new(Self::GENERATION);
        for key in store.alert_keys(Self::GENERATION).await? {
            seen.insert(key);
        }
        Ok(ResendFilter {
            seen: Mutex::new(seen),
            bodies: Mutex::new(Bodies::default()),
        })
    }

    /// The alerts of a delivery not known to be recorded.
    fn unseen<'a>(&self, alerts: &'a [Alert]) -> Vec<&'a Alert> {
        let mut seen = lock(&self.seen);
        alerts.iter().filter(|a| !seen.contains(&a.key())).collect()
    }

    fn remember<'a>(&self, alerts: impl Iterator<Item = &'a Alert>) {
        let mut seen = lock(&self.seen);
        for key in alerts.map(Alert::key) {
            seen.insert(key);
        }
    }

    /// A delivery with these exact bytes answered before, every alert of it still known to be
    /// recorded.
    fn known(&self, body: &[u8]) -> Option<Arc<Known>> {
        let known = lock(&self.bodies)
            .known
            .iter()
            .find(|(b, _)| **b == *body)
            .map(|(_, k)| k.clone())?;
        let mut seen = lock(&self.seen);
        known.keys.iter().all(|k| seen.contains(k)).then_some(known)
    }

    fn remember_body(&self, body: &[u8], known: Known) {
        if body.len() > Self::BODY_CAP {
            return;
        }
        let mut bodies = lock(&self.bodies);
        if bodies.known.iter().any(|(b, _)| **b == *body) {
            return;
        }
        let entry = (body.into(), Arc::new(known));
        if bodies.known.len() < Self::BODIES {
            bodies.known.push(entry);
        } else {
            let at = bodies.next;
            bodies.known[at] = entry;
            bodies.next = (at + 1) % Self::BODIES;
        }
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
    /// A delivery whose exact bytes were answered before and whose alerts are all still known
    /// to be recorded: answered as `intake` answers it (the same counts, the same outcome)
    /// without parsing it. `None` when it must be parsed.
    pub(super) fn intake_resend(&self, body: &[u8]) -> Option<Result<WebhookOutcome, EngineError>> {
        let known = self.0.resend.known(body)?;
        if self.0.shutdown.is_cancelled() {
            return Some(Err(EngineError::ShuttingDown));
        }
        let alerts = known.keys.len();
        self.emit(EngineEvent::AlertsReceived {
            firing: known.firing,
            resolved: alerts as u64 - known.firing,
            truncated: known.truncated,
        });
        self.emit(EngineEvent::AlertsDeduplicated {
            count: known.asking,
        });
        Some(Ok(WebhookOutcome {
            accepted: alerts,
            rollback_requested: vec![],
            deduplicated: alerts,
        }))
    }

    /// `intake`, then the body remembered for `intake_resend`: once answered, every alert
    /// of it is recorded.
    pub(super) async fn intake_body(
        &self,
        body: &[u8],
        payload: Payload,
    ) -> Result<WebhookOutcome, EngineError> {
        let known = Known::of(&payload);
        let outcome = self.intake(payload).await?;
        self.0.resend.remember_body(body, known);
        Ok(outcome)
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(fp: &str) -> Vec<u8> {
        json!({"version": "4", "status": "firing", "receiver": "r", "truncatedAlerts": 2,
               "alerts": [
                   {"status": "firing", "labels": {"alertname": "A", "action": "rollback"}, "startsAt": "2026-11-23T10:00:00Z", "fingerprint": fp},
                   {"status": "resolved", "labels": {"alertname": "B"}, "startsAt": "2026-11-23T10:00:00Z", "fingerprint": "other"}
               ]})
        .to_string()
        .into_bytes()
    }

    fn filter() -> ResendFilter {
        ResendFilter {
            seen: Mutex::new(Seen::new(ResendFilter::GENERATION)),
            bodies: Mutex::new(Bodies::default()),
        }
    }

    #[test]
    fn a_body_is_known_only_while_every_alert_of_it_is() {
        let f = filter();
        let b = body("fp1");
        let payload = crate::alertmanager::parse(&b).unwrap();
        f.remember_body(&b, Known::of(&payload));
        assert!(f.known(&b).is_none(), "its alerts are not recorded yet");
        f.remember(payload.alerts.iter());
        let k = f.known(&b).expect("the same bytes, every alert recorded");
        assert_eq!(
            (k.keys.len(), k.firing, k.truncated, k.asking),
            (2, 1, 2, 1)
        );
        assert!(f.known(&body("fp2")).is_none(), "other bytes are parsed");
        let mut longer = b.clone();
        longer.push(b' ');
        assert!(f.known(&longer).is_none(), "bytes are compared whole");
        *lock(&f.seen) = Seen::new(ResendFilter::GENERATION);
        assert!(
            f.known(&b).is_none(),
            "a forgotten alert sends the body to the parser"
        );
    }

    #[test]
    fn bodies_are_bounded_in_count_and_size() {
        let f = filter();
        for i in 0..ResendFilter::BODIES + 10 {
            let b = body(&format!("fp{i}"));
            let payload = crate::alertmanager::parse(&b).unwrap();
            f.remember(payload.alerts.iter());
            f.remember_body(&b, Known::of(&payload));
            f.remember_body(&b, Known::of(&payload));
        }
        assert_eq!(lock(&f.bodies).known.len(), ResendFilter::BODIES);
        assert!(f.known(&body("fp0")).is_none(), "the oldest was replaced");
        assert!(f
            .known(&body(&format!("fp{}", ResendFilter::BODIES + 9)))
            .is_some());
        let big = vec![b' '; ResendFilter::BODY_CAP + 1];
        f.remember_body(
            &big,
            Known::of(&crate::alertmanager::parse(&body("x")).unwrap()),
        );
        assert!(lock(&f.bodies)
            .known
            .iter()
            .all(|(b, _)| b.len() <= ResendFilter::BODY_CAP));
    }

    fn key(i: usize) -> AlertKey {
        (
            format!("fp{i}"),
            "2026-11-23T10:00:00Z".into(),
            "firing".into(),
        )
    }

    #[test]
    fn the_keys_stay_within_two_generations_whatever_arrives() {
        let mut seen = Seen::new(8);
        for i in 0..1000 {
            seen.insert(key(i));
            assert!(seen.len() <= 16, "{} keys after {i}", seen.len());
        }
        assert!(seen.contains(&key(999)), "the newest are kept");
        assert!(!seen.contains(&key(0)), "the oldest are forgotten");
    }

    #[test]
    fn a_key_still_being_resent_is_kept() {
        let mut seen = Seen::new(8);
        seen.insert(key(0));
        for i in 1..1000 {
            seen.insert(key(i));
            if i % 7 == 0 {
                assert!(seen.contains(&key(0)), "resent, so kept (at {i})");
            }
        }
        assert!(seen.contains(&key(0)));
        assert!(seen.contains(&key(999)));
        assert!(seen.len() <= 16, "a key moves, it is not copied");
    }

    #[test]
    fn inserting_a_known_key_again_forgets_nothing() {
        let mut seen = Seen::new(4);
        for i in 0..4 {
            seen.insert(key(i));
        }
        seen.insert(key(3));
        assert!((0..4).all(|i| seen.contains(&key(i))));
    }
}
