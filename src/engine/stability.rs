//! The stability watch: after a completed rollback, re-validates from the watchdog's view of
//! the target through the stability window. The first failing look ends it as failed;
//! reaching the end records a pass with the lowest score seen. A new execution cancels it. A
//! restart inside the window resumes it for what is left (`resume_stability_watch`).

use super::{lock, Engine};
use crate::domain::validation::Outcome;
use crate::events::EngineEvent;
use crate::store::{Event, ValidationKind};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

impl Engine {
    pub(super) fn cancel_stability_watch(&self) {
        let taken = lock(&self.0.stability).take();
        if let Some((token, event_id)) = taken {
            token.cancel();
            self.emit(EngineEvent::StabilityEnded { event_id });
        }
    }

    /// Watches `event` for `window` (the configured window, or what is left of it after a
    /// restart).
    pub(super) fn start_stability_watch(&self, event: Event, window: Duration) {
        let token = self.0.shutdown.child_token();
        *lock(&self.0.stability) = Some((token.clone(), event.id.clone()));
        self.emit(EngineEvent::StabilityStarted {
            event_id: event.id.clone(),
        });
        let e = self.clone();
        self.0
            .tasks
            .spawn(async move { e.stability_watch(event, window, token).await });
    }

    async fn stability_watch(self, event: Event, window: Duration, token: CancellationToken) {
        let result = self.watch_window(&event, window, &token).await;
        // A cancelled token means whoever cancelled it already took the slot.
        if !token.is_cancelled() {
            *lock(&self.0.stability) = None;
        }
        if let Some((outcome, note)) = result {
            match self
                .store_validation(
                    &event,
                    ValidationKind::Stability,
                    &outcome,
                    Some(note.clone()),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(event_id = %event.id, passed = outcome.passed, %note, "stability watch ended")
                }
                Err(e) => {
                    tracing::error!(event_id = %event.id, error = %e, "stability outcome could not be stored")
                }
            }
        }
        if !token.is_cancelled() {
            self.emit(EngineEvent::StabilityEnded { event_id: event.id });
        }
    }

    /// Looks at every stability interval until the window ends, a look fails, or the watch is
    /// cancelled (`None`).
    async fn watch_window(
        &self,
        event: &Event,
        window: Duration,
        token: &CancellationToken,
    ) -> Option<(Outcome, String)> {
        let config = self.config();
        let cfg = &config.validation;
        let deadline = Instant::now() + window;
        let mut lowest = 100.0f64;
        let mut looks = 0u32;
        loop {
            let wait = cfg
                .stability_interval
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = token.cancelled() => return None,
                _ = tokio::time::sleep(wait) => {}
            }
            let observed = lock(&self.0.watch).current().cloned();
            let outcome = self.validate(event, observed.as_ref()).await;
            looks += 1;
            lowest = lowest.min(outcome.score);
            if !outcome.passed {
                let left = deadline.saturating_duration_since(Instant::now()).as_secs();
                let after = Duration::from_secs(window.as_secs().saturating_sub(left));
                let note = format!(
                    "stability lost after {}: {}",
                    humantime::format_duration(after),
                    outcome.failures()
                );
                return Some((outcome, note));
            }
            if Instant::now() >= deadline {
                let note = format!(
                    "stable through {} ({looks} looks, lowest score {lowest})",
                    humantime::format_duration(window)
                );
                let mut o = outcome;
                o.score = lowest;
                o.passed = lowest >= o.pass_score;
                return Some((o, note));
            }
        }
    }
}

impl Engine {
    /// At start: the latest completed rollback whose stability watch has no outcome yet is
    /// watched again for what is left of its window; when the window ended while rollbackd was
    /// down, one look after start-up records the outcome (so it is never silently dropped).
    pub(super) fn resume_stability_watch(
        &self,
        last: &Event,
        runs: &[crate::store::ValidationRun],
    ) {
        use crate::domain::lifecycle::{Action, EventStatus};
        if last.request.action != Action::Rollback
            || last.status != EventStatus::Completed
            || runs.iter().any(|r| r.kind == ValidationKind::Stability)
        {
            return;
        }
        let cfg = self.config();
        let finished = last.finished_at.unwrap_or(last.updated_at);
        let elapsed = (chrono::Utc::now() - finished).to_std().unwrap_or_default();
        let left = cfg.validation.stability_window.saturating_sub(elapsed);
        let window = left.max(cfg.validation.stability_interval);
        tracing::warn!(event_id = %last.id, left = %humantime::format_duration(left), "resuming the stability watch a restart interrupted");
        self.start_stability_watch(last.clone(), window);
    }
}
