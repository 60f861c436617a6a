//! Recovery validation against the target, stored. Used by the executor after a switch, by
//! the stability watch while it lasts, and by crash recovery at start.

use super::Engine;
use crate::domain::condition::ConditionSpec;
use crate::domain::lifecycle::Action;
use crate::domain::validation::{self, Outcome};
use crate::domain::TargetStatus;
use crate::events::EngineEvent;
use crate::store::{Event, StoreError, ValidationKind, ValidationRun};
use chrono::Utc;
use std::sync::Arc;

impl Engine {
    /// Scores what the target reports against what the event asked for.
    pub(super) async fn validate(&self, event: &Event, observed: Option<&TargetStatus>) -> Outcome {
        let cfg = self.config();
        let logged = self.0.store.event_exists(&event.id).await.unwrap_or(false);
        let no_conditions: [ConditionSpec; 0] = [];
        let restore = event.request.action == Action::Restore;
        validation::score(
            &validation::Input {
                expected_mode: &event.request.target_mode,
                expected_parameters: &event.request.target_parameters,
                expected_agents: cfg.agents_expected,
                observed,
                event_logged: logged,
                // A restore hands control back; conditions are the adaptive mode's business.
                conditions: if restore {
                    &no_conditions
                } else {
                    &cfg.conditions
                },
            },
            cfg.validation.pass_score,
        )
    }

    pub(super) async fn store_validation(
        &self,
        event: &Event,
        kind: ValidationKind,
        outcome: &Outcome,
        note: Option<String>,
    ) -> Result<ValidationRun, StoreError> {
        let mut run = ValidationRun {
            id: 0,
            event_id: event.id.clone(),
            kind,
            at: Utc::now(),
            score: outcome.score,
            passed: outcome.passed,
            pass_score: outcome.pass_score,
            checks: outcome.checks.clone(),
            note,
        };
        run.id = self.0.store.insert_validation(run.clone()).await?;
        self.emit(EngineEvent::ValidationStored {
            run: Arc::new(run.clone()),
            of_rollback: event.request.action == Action::Rollback,
        });
        Ok(run)
    }
}
