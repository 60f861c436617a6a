//! Crash recovery at start: events a previous run left between `pending` and a final status
//! are finished once. Pending ones never touched the target and fail as interrupted; the
//! others are re-validated against the target and given their verdict by the executor's
//! `record_verdict`, like any execution.

use super::executor::Verdict;
use super::Engine;
use crate::domain::lifecycle::EventStatus;
use crate::store::{Event, StoreError, TransitionDetail, ValidationKind};

impl Engine {
    /// Finishes the unfinished events whose owner is gone: at start (SQLite), or by the leader
    /// when it takes over and while it leads (PostgreSQL: a replica killed mid-rollback). Each
    /// is adopted first, in the database, so it is finished exactly once.
    pub(super) async fn recover(&self) -> Result<(), StoreError> {
        for event in self.0.store.orphaned_events().await? {
            if !self.0.store.adopt(&event.id).await? {
                continue;
            }
            tracing::warn!(event_id = %event.id, status = %event.status, "found an unfinished event its owner left");
            self.recover_one(event).await?;
        }
        Ok(())
    }

    /// Gives one unfinished event its verdict: a pending one never touched the target.
    pub(super) async fn recover_one(&self, event: Event) -> Result<(), StoreError> {
        let verdict = if event.status == EventStatus::Pending {
            Verdict::failed("interrupted before the target was touched".into())
        } else {
            self.revalidate(&event).await?
        };
        let status = verdict.status;
        self.record_verdict(&event, verdict).await?;
        tracing::warn!(event_id = %event.id, status = %status, "unfinished event resolved");
        Ok(())
    }

    /// Reads the target and scores it against what the interrupted event asked for.
    async fn revalidate(&self, event: &Event) -> Result<Verdict, StoreError> {
        if event.status == EventStatus::Executing {
            let note = TransitionDetail {
                note: Some("re-validating after restart".into()),
                ..Default::default()
            };
            self.advance(&event.id, EventStatus::Validating, note)
                .await?;
        }
        let observed = self.0.target.status_with_retries().await;
        let outcome = self.validate(event, observed.as_ref().ok()).await;
        let run = self
            .store_validation(
                event,
                ValidationKind::Recovered,
                &outcome,
                Some("re-validated at start-up after an interruption".into()),
            )
            .await?;
        let mut verdict = match &observed {
            Err(e) => Verdict::failed(format!(
                "interrupted; the target could not be read at start-up: {e}"
            )),
            Ok(_) if outcome.passed => Verdict {
                note: Some("interrupted, then confirmed at start-up".into()),
                ..Verdict::new(None)
            },
            Ok(_) => Verdict::failed(format!("interrupted: {}", outcome.failures())),
        };
        verdict.validation_score = Some(run.score);
        verdict.parameters_after = observed.ok().map(|s| s.parameters);
        Ok(verdict)
    }
}
