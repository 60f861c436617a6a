//! Was each trigger right? Operators' reviews of trigger episodes and their records of
//! degradations nothing caught, each durable before it is answered and said once as an
//! `EngineEvent`; the success rates computed again from the durable history (so they survive
//! restarts) every `RATES_EVERY`, soon after every episode, and before a review is answered.

use super::{Engine, EngineError};
use crate::domain::review::{MissedDraft, ReviewDraft, Window};
use crate::events::{EngineEvent, SuccessRates};
use crate::report::{self, Report};
use crate::store::{Event, MissedDegradation, MissedQuery, Review, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// How often the rates are computed again when nothing happens (the windows slide).
pub const RATES_EVERY: Duration = Duration::from_secs(30);

/// What the rates and the report are read from, over one period.
struct History {
    events: Vec<Event>,
    missed: Vec<MissedDegradation>,
    starts: Vec<(String, String)>,
}

/// Episodes read at a time by the rates and the report. An episode read back with its
/// transitions, validations and review takes about 10 KiB until it is reduced, so a page is
/// about 250 KiB at its peak (pages of 200 made a 2 MiB peak after every rollback, and the
/// allocator kept what the peaks left).
const EPISODE_PAGE: u32 = 25;

impl Engine {
    /// Records `reviewer`'s review of a finished trigger episode; the answer comes once it is
    /// durable and the rates include it.
    pub async fn review(
        &self,
        event_id: &str,
        draft: ReviewDraft,
        reviewer: &str,
    ) -> Result<Review, EngineError> {
        let review = Review {
            id: 0,
            event_id: event_id.to_owned(),
            verdict: draft.verdict,
            note: draft.note,
            ticket_url: draft.ticket_url,
            reviewer: reviewer.to_owned(),
            reviewed_at: Utc::now(),
            supersedes: None,
            superseded_by: None,
        };
        let stored = self.0.store.record_review(review).await?;
        if let Some(last) = self.execution().last_event.as_mut() {
            if last.id == stored.event_id {
                last.review = Some(stored.clone());
            }
        }
        tracing::info!(event_id, verdict = %stored.verdict, reviewer, "trigger episode reviewed");
        self.emit(EngineEvent::Reviewed(Arc::new(stored.clone())));
        self.refresh_rates().await;
        Ok(stored)
    }

    /// Records a degradation nothing caught, checked against the configured conditions.
    pub async fn record_missed(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        conditions: &[String],
        note: &str,
        actor: &str,
    ) -> Result<MissedDegradation, EngineError> {
        let cfg = self.config();
        let known: Vec<&str> = cfg.conditions.iter().map(|c| c.name.as_str()).collect();
        let now = Utc::now();
        let draft = MissedDraft::new(from, to, conditions, note, &known, now)?;
        let mut missed = MissedDegradation {
            id: 0,
            from: draft.from,
            to: draft.to,
            conditions: draft.conditions,
            note: draft.note,
            recorded_by: actor.to_owned(),
            recorded_at: now,
        };
        missed.id = self.0.store.record_missed(missed.clone()).await?;
        tracing::warn!(id = missed.id, actor, "missed degradation recorded");
        self.emit(EngineEvent::MissedRecorded(Arc::new(missed.clone())));
        self.refresh_rates().await;
        Ok(missed)
    }

    /// The incident report over `[since, until)`.
    pub async fn report(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Report, EngineError> {
        let h = self.history(since, until).await?;
        Ok(report::build(
            &h.events,
            h.missed,
            &h.starts,
            since,
            until,
            Utc::now(),
        ))
    }

    /// Walks the episodes of `[since, until)` page by page, newest page first, with the
    /// `startsAt` of their alerts: memory stays one page, however many the window holds.
    async fn episode_pages(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        mut each: impl FnMut(Vec<Event>, Vec<(String, String)>),
    ) -> Result<(), StoreError> {
        let store = &self.0.store;
        let mut before = None;
        loop {
            let page = store
                .episodes(since, until, before.take(), EPISODE_PAGE)
                .await?;
            let Some(oldest) = page.first() else {
                return Ok(());
            };
            let full = page.len() == EPISODE_PAGE as usize;
            before = Some(oldest.id.clone());
            let fingerprints: Vec<String> = page
                .iter()
                .flat_map(|e| e.request.fingerprints.iter().cloned())
                .collect();
            let starts = store.alert_starts(fingerprints).await?;
            each(page, starts);
            if !full {
                return Ok(());
            }
        }
    }

    async fn history(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<History, StoreError> {
        let mut pages = Vec::new();
        let mut starts = Vec::new();
        self.episode_pages(since, until, |page, s| {
            pages.push(page);
            starts.extend(s);
        })
        .await?;
        // Oldest first, as the report lists them.
        let events = pages.into_iter().rev().flatten().collect();
        Ok(History {
            events,
            missed: self.missed(since, until).await?,
            starts,
        })
    }

    /// The missed degradations that began in `[since, until)`.
    async fn missed(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<MissedDegradation>, StoreError> {
        let q = MissedQuery {
            limit: u32::MAX,
            since: Some(since),
            until: Some(until),
            ..Default::default()
        };
        self.0.store.list_missed(q).await
    }

    /// The rates of every window as of `now`, from the history. Each page of events is
    /// reduced to the domain's small `Episode`s before the next is read.
    async fn compute_rates(&self, now: DateTime<Utc>) -> Result<SuccessRates, StoreError> {
        let longest = Window::ALL
            .iter()
            .map(|w| w.length())
            .max()
            .unwrap_or_default();
        // A millisecond past now, so an episode recorded this very millisecond counts.
        let until = now + chrono::Duration::milliseconds(1);
        let since = now - longest;
        let mut episodes = Vec::new();
        self.episode_pages(since, until, |page, starts| {
            episodes.extend(page.iter().filter_map(|e| report::episode(e, &starts)));
        })
        .await?;
        let missed: Vec<_> = self
            .missed(since, until)
            .await?
            .iter()
            .map(|m| m.from)
            .collect();
        let windows = Window::ALL
            .iter()
            .map(|w| {
                let r = crate::domain::review::rates(&episodes, &missed, now - w.length(), until);
                (*w, r)
            })
            .collect();
        Ok(SuccessRates {
            at: now,
            windows,
            oldest_unreviewed: self.0.store.oldest_unreviewed().await?,
        })
    }

    /// Computes the rates again and says so; one computation at a time, so an older one
    /// never overwrites a newer one.
    pub(super) async fn refresh_rates(&self) {
        let _one = self.0.rates_lock.lock().await;
        match self.compute_rates(Utc::now()).await {
            Ok(r) => self.emit(EngineEvent::RatesComputed(Arc::new(r))),
            Err(e) => {
                tracing::error!(error = %e, "success rates could not be read from the history")
            }
        }
    }

    /// Keeps the rates current until shutdown: every `RATES_EVERY`, and soon after anything
    /// that changes them (`emit` wakes it).
    pub(super) async fn rates_loop(self) {
        loop {
            tokio::select! {
                _ = self.0.shutdown.cancelled() => return,
                _ = tokio::time::sleep(RATES_EVERY) => {}
                _ = self.0.rates_due.notified() => {}
            }
            self.refresh_rates().await;
        }
    }
}
