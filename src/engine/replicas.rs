//! Two or more replicas on one PostgreSQL history (docs/ha.md). The store's session says who
//! leads; here the engine follows it: the leader finishes what a lost replica left unfinished
//! and resumes the cooldown and the stability watch; a replica that stops leading ends its
//! stability watch. Every replica learns of the others' events from the database's notices,
//! for its status page, its stream and its cooldown, and of their audit records, so arming,
//! freezes, maintenance windows, the regime, the mode, proposals and restore requests are the
//! same on every replica whichever one an operator asked. SQLite has none of this: one replica,
//! always the leader.

use super::{lock, Engine};
use crate::domain::lifecycle::{Action, EventStatus};
use crate::events::EngineEvent;
use crate::store::{EventQuery, Notice};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often the leader looks for events a lost replica left unfinished.
const ORPHAN_SCAN: Duration = Duration::from_millis(250);

impl Engine {
    pub(super) fn start_replica_loops(&self) {
        if let Some(rx) = self.0.store.leadership() {
            let e = self.clone();
            self.0
                .tasks
                .spawn(async move { e.leadership_loop(rx).await });
        }
        if let Some(rx) = self.0.store.notices() {
            let e = self.clone();
            self.0.tasks.spawn(async move { e.notices_loop(rx).await });
        }
    }

    async fn leadership_loop(self, mut rx: tokio::sync::watch::Receiver<bool>) {
        let mut leading = false;
        let mut scan = tokio::time::interval(ORPHAN_SCAN);
        scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.0.shutdown.cancelled() => return,
                r = rx.changed() => if r.is_err() { return },
                _ = scan.tick() => {}
            }
            let now = self.0.store.is_leader();
            if now != leading {
                leading = now;
                self.0.metrics.leadership_changed();
                if now {
                    tracing::warn!("this replica leads");
                    self.follow().await;
                    if let Err(e) = self.resume().await {
                        tracing::error!(error = %e, "the new leader could not read the history back; trying again");
                    }
                } else {
                    tracing::warn!("this replica no longer leads");
                    self.cancel_stability_watch();
                }
                self.emit(EngineEvent::ArmingChanged(self.arming()));
            }
            if leading {
                if let Err(e) = self.recover().await {
                    tracing::error!(error = %e, "an unfinished event could not be finished yet; trying again");
                }
            }
        }
    }

    async fn notices_loop(self, mut rx: tokio::sync::broadcast::Receiver<Notice>) {
        loop {
            let notice = tokio::select! {
                _ = self.0.shutdown.cancelled() => return,
                n = rx.recv() => n,
            };
            match notice {
                Ok(Notice::Event(id)) => self.learn(&id).await,
                Ok(Notice::Audit) => self.follow().await,
                Ok(Notice::Reconnected) | Err(RecvError::Lagged(_)) => self.catch_up().await,
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Arming and holds as the shared history has them (another replica changed one).
    pub(super) async fn follow(&self) {
        if let Err(e) = self.follow_arming().await {
            tracing::error!(error = %e, "another replica's arming could not be read");
        }
        if let Err(e) = self.follow_holds().await {
            tracing::error!(error = %e, "another replica's holds could not be read");
        }
    }

    /// After a reconnection (or notices lost): the latest events, the slot, the arming and
    /// the holds, read again.
    async fn catch_up(&self) {
        self.follow().await;
        let q = EventQuery {
            limit: 5,
            ..Default::default()
        };
        if let Ok(events) = self.0.store.list_events(q).await {
            for e in events.iter().rev() {
                self.learn(&e.id).await;
            }
        }
        if let Ok(slot) = self.0.store.in_flight().await {
            let mine = self.execution().guard.in_progress().map(str::to_owned);
            *lock(&self.0.remote_slot) = slot.filter(|s| Some(s) != mine.as_ref());
        }
    }

    /// Another replica recorded or moved `id` on.
    async fn learn(&self, id: &str) {
        let Ok(Some(event)) = self.0.store.get_event(id).await else {
            return;
        };
        let running = matches!(
            event.status,
            EventStatus::Pending | EventStatus::Executing | EventStatus::Validating
        );
        {
            let mut slot = lock(&self.0.remote_slot);
            if running && self.execution().guard.in_progress() != Some(id) {
                *slot = Some(id.to_owned());
            } else if slot.as_deref() == Some(id) {
                *slot = None;
            }
        }
        if running && event.request.action == Action::Rollback {
            // Another replica admitted a rollback: the cooldown counts from now here too (its
            // slot refuses ours meanwhile).
            let now = self.now_ms();
            self.execution().guard.set_last_execution_ms(now);
        }
        {
            let mut x = self.execution();
            let newer = x
                .last_event
                .as_ref()
                .is_none_or(|l| l.id == event.id || l.created_at <= event.created_at);
            if newer {
                x.last_event = Some(event.clone());
            }
        }
        let watching = lock(&self.0.stability)
            .as_ref()
            .is_some_and(|(_, e)| e == id);
        if self.0.store.is_leader() && !watching && event.status == EventStatus::Completed {
            // A rollback another replica completed is watched by the leader.
            let runs = event.validations.clone().unwrap_or_default();
            self.resume_stability_watch(&event, &runs);
        }
        if event.status.is_terminal() {
            self.0.rates_due.notify_one();
        }
        // The stream shows it; the metrics stay this replica's own.
        self.relay(EngineEvent::Transitioned(Arc::new(event)));
    }

    fn relay(&self, event: EngineEvent) {
        if self.0.stream.receiver_count() == 0 {
            return;
        }
        for msg in event.stream_messages(|| self.status()) {
            let _ = self.0.stream.send(msg);
        }
    }
}
