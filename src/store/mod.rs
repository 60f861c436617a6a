//! The durable history: rollback events, their transitions, validation runs, the reviews of
//! trigger episodes and the degradations nothing caught, the Alertmanager alerts received, and
//! the audit of changes to how rollbackd runs. The engine talks to `Store`, an enum of backends, so a second
//! backend is one more variant here and nothing changes above it. Every backend keeps the same
//! guarantees: append-only records, a write acknowledged only once durable, alerts unique on
//! fingerprint + startsAt + status, and the life cycle's moves enforced at write time.

mod postgres;
mod sqlite;

use crate::domain::condition::Status;
use crate::domain::lifecycle::{Action, EventStatus, TriggerType};
use crate::domain::review::{NotReviewable, Verdict};
use crate::domain::validation::Check;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub use postgres::{redact, PgStore, PostgresConfig};
pub use sqlite::{
    memory_used as sqlite_memory_used, SqliteStore, PAGE_CACHE_KIB as SQLITE_PAGE_CACHE_KIB,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open history at {path}: {message}")]
    Open { path: String, message: String },
    #[error("history storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("history database error: {0}")]
    Postgres(String),
    /// Another replica adopted the event (its owner was found dead): this one must not move
    /// it again. The database's fencing, not a check in memory.
    #[error("event {id} is owned by another replica now; not moved")]
    NotOwner { id: String },
    #[error("history storage is closed")]
    Closed,
    #[error("{0}")]
    Invalid(String),
    /// A paging cursor that names no event: the caller's mistake, not the store's.
    #[error("before: no event with id {0:?}")]
    UnknownCursor(String),
    /// A review of an event the history does not hold.
    #[error("no rollback event with id {0:?}")]
    UnknownEvent(String),
    /// A review of an event that is no finished trigger episode.
    #[error("event {id}: {why}")]
    NotReviewable { id: String, why: NotReviewable },
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConditionSnapshot {
    pub condition: String,
    pub value: Option<f64>,
    pub status: Status,
    pub warning_threshold: f64,
    pub critical_threshold: f64,
}

/// What was asked: fixed when the event is created, never changed afterwards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRequest {
    pub action: Action,
    pub trigger_type: TriggerType,
    pub source: String,
    pub reason: String,
    pub actor: String,
    pub dry_run: bool,
    pub alert_names: Vec<String>,
    pub fingerprints: Vec<String>,
    pub conditions: Vec<ConditionSnapshot>,
    pub mode_before: Option<String>,
    pub parameters_before: Option<BTreeMap<String, Value>>,
    pub target_mode: String,
    pub target_parameters: BTreeMap<String, f64>,
}

/// What a transition adds. The final transition carries the outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TransitionDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters_after: Option<BTreeMap<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub status: EventStatus,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub detail: TransitionDetail,
}

/// A rollback or restore event: the request inside it and where it stands. The JSON is the
/// API's event shape; the request's fields sit at the top level.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(flatten)]
    pub request: EventRequest,
    pub created_at: DateTime<Utc>,
    /// Where on this machine's boot clock it was created (not shown in the API).
    #[serde(skip)]
    pub clock: Option<ClockMark>,
    pub status: EventStatus,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub suppressed_reason: Option<String>,
    pub failure_reason: Option<String>,
    pub parameters_after: Option<BTreeMap<String, Value>>,
    pub duration_ms: Option<u64>,
    pub validation_score: Option<f64>,
    pub note: Option<String>,
    /// The latest review, the one that counts; null while unreviewed.
    pub review: Option<Review>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transitions: Option<Vec<Transition>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validations: Option<Vec<ValidationRun>>,
    /// Every review, oldest first (only on a single event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviews: Option<Vec<Review>>,
}

impl Event {
    /// A new event whose first status is `status`, as it stands before it is stored.
    pub fn new(
        id: String,
        request: EventRequest,
        created_at: DateTime<Utc>,
        status: EventStatus,
    ) -> Event {
        Event {
            id,
            request,
            created_at,
            clock: None,
            status,
            updated_at: created_at,
            finished_at: None,
            suppressed_reason: None,
            failure_reason: None,
            parameters_after: None,
            duration_ms: None,
            validation_score: None,
            note: None,
            review: None,
            transitions: None,
            validations: None,
            reviews: None,
        }
    }

    /// The event as its latest transition leaves it.
    pub(crate) fn at(
        mut self,
        status: EventStatus,
        at: DateTime<Utc>,
        d: TransitionDetail,
    ) -> Event {
        self.status = status;
        self.updated_at = at;
        self.finished_at = status.is_terminal().then_some(at);
        self.suppressed_reason = d.suppressed_reason;
        self.failure_reason = d.failure_reason;
        self.parameters_after = d.parameters_after;
        self.duration_ms = d.duration_ms;
        self.validation_score = d.validation_score;
        self.note = d.note;
        self
    }
}

/// A point on the machine's boot clock (seconds since boot, suspend included) and which boot:
/// ages measured on it survive a restart of rollbackd and ignore wall-clock steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockMark {
    pub boot_id: String,
    pub since_boot_ms: u64,
}

/// What `rollback_events.body` holds: the event as created.
#[derive(Serialize, Deserialize)]
struct StoredEvent {
    id: String,
    #[serde(flatten)]
    request: EventRequest,
    created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clock: Option<ClockMark>,
}

impl StoredEvent {
    fn of(e: &Event) -> StoredEvent {
        StoredEvent {
            id: e.id.clone(),
            request: e.request.clone(),
            created_at: e.created_at,
            clock: e.clock.clone(),
        }
    }

    fn into_event(self, status: EventStatus) -> Event {
        let mut e = Event::new(self.id, self.request, self.created_at, status);
        e.clock = self.clock;
        e
    }
}

/// What recording a delivery did.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// Per alert: it was new (not a resend of one already recorded).
    pub new: Vec<bool>,
    /// The rollback event went in with the alerts.
    pub event_recorded: bool,
    /// The execution slot was held by this event (id) when the rollback event was recorded,
    /// so it went in as suppressed (`in_progress`) instead of pending.
    pub held_by: Option<String>,
}

/// What another replica changed in the shared history (PostgreSQL's LISTEN/NOTIFY).
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// An event was recorded or moved on by another replica.
    Event(String),
    /// Another replica recorded an audit record: arming, a hold, the mode, a proposal or a
    /// restore request changed, and every replica follows it.
    Audit,
    /// The session to the database was (re)established: notices may have been missed.
    Reconnected,
}

/// What a refused claim on the execution slot leaves in the history: the event as suppressed.
pub(crate) fn held_detail(holder: &str) -> TransitionDetail {
    TransitionDetail {
        suppressed_reason: Some("in_progress".into()),
        note: Some(format!(
            "rollback {holder} holds the execution slot in the shared history"
        )),
        ..Default::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationKind {
    Initial,
    Stability,
    Recovered,
}

impl ValidationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationKind::Initial => "initial",
            ValidationKind::Stability => "stability",
            ValidationKind::Recovered => "recovered",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationRun {
    /// Assigned by the store; 0 before it is stored.
    pub id: i64,
    pub event_id: String,
    pub kind: ValidationKind,
    pub at: DateTime<Utc>,
    pub score: f64,
    pub passed: bool,
    pub pass_score: f64,
    pub checks: Vec<Check>,
    pub note: Option<String>,
}

/// One alert of an Alertmanager delivery, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub fingerprint: String,
    pub starts_at: String,
    pub status: String,
    pub alertname: String,
    pub labels: BTreeMap<String, String>,
    pub requests_rollback: bool,
    pub received_at: DateTime<Utc>,
}

/// A change to how rollbackd runs (arming, a config reload, ...): who, when, why, from what to
/// what. Kept in the same append-only history as the events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Assigned by the store; 0 before it is stored.
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub reason: String,
    pub from: Value,
    pub to: Value,
}

/// An operator's review of one trigger episode. A later review of the same event supersedes
/// this one; both stay in the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// Assigned by the store; 0 before it is stored.
    pub id: i64,
    pub event_id: String,
    pub verdict: Verdict,
    pub note: Option<String>,
    pub ticket_url: Option<String>,
    /// The token's actor who reviewed it.
    pub reviewer: String,
    pub reviewed_at: DateTime<Utc>,
    /// The review of the same event this one replaces; set by the store.
    pub supersedes: Option<i64>,
    /// The later review that replaced this one; null while it is the current review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<i64>,
}

/// A degradation no trigger caught, recorded by an operator: it counts against the true
/// positive rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MissedDegradation {
    /// Assigned by the store; 0 before it is stored.
    pub id: i64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub conditions: Vec<String>,
    pub note: String,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default)]
pub struct ReviewQuery {
    pub limit: u32,
    pub before: Option<i64>,
    pub event_id: Option<String>,
    pub verdict: Option<Verdict>,
    /// Only reviews no later one superseded.
    pub current_only: bool,
}

/// Missed degradations by when they began, in `[since, until)`.
#[derive(Clone, Debug, Default)]
pub struct MissedQuery {
    pub limit: u32,
    pub before: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub limit: u32,
    pub before: Option<i64>,
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    pub limit: u32,
    pub before: Option<String>,
    pub trigger_type: Option<TriggerType>,
    pub status: Option<EventStatus>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only finished trigger episodes without a review.
    pub unreviewed: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ValidationQuery {
    pub limit: u32,
    pub before: Option<i64>,
    pub event_id: Option<String>,
}

/// The history, whichever backend holds it. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Each method is the backend's own, one arm per backend.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Opens (and creates) the SQLite history at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        SqliteStore::open(path).map(Store::Sqlite)
    }

    /// Connects to the PostgreSQL history (creating or migrating its schema) and starts this
    /// replica's session: its liveness, the leadership and the notices of other replicas.
    pub async fn connect_postgres(config: &PostgresConfig) -> Result<Store> {
        PgStore::connect(config).await.map(Store::Postgres)
    }

    /// False after a write failed, until one succeeds again (PostgreSQL: also while the
    /// database cannot be reached).
    pub fn is_healthy(&self) -> bool {
        each!(self, s => s.is_healthy())
    }

    /// False while the database cannot be reached (always true for SQLite, a local file).
    pub fn is_reachable(&self) -> bool {
        match self {
            Store::Sqlite(_) => true,
            Store::Postgres(s) => s.is_reachable(),
        }
    }

    /// Whether this replica leads: runs the watchdog's rollbacks, schedules, stability
    /// watches and crash recovery. SQLite has one replica, which always leads.
    pub fn is_leader(&self) -> bool {
        match self {
            Store::Sqlite(_) => true,
            Store::Postgres(s) => s.is_leader(),
        }
    }

    /// Changes of leadership; `None` for SQLite (it always leads).
    pub fn leadership(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(s) => Some(s.leadership()),
        }
    }

    /// What other replicas record; `None` for SQLite (no other replica).
    pub fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<Notice>> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(s) => Some(s.notices()),
        }
    }

    /// Stops the session (leadership released at once) and closes the pool.
    pub fn close(&self) {
        if let Store::Postgres(s) = self {
            s.close();
        }
    }

    /// Stores a new event with its first status (`event.status`), durably. A pending event
    /// claims the one execution slot in the same transaction; if another event holds it, the
    /// event is stored as suppressed (`in_progress`) instead and the holder's id returned.
    pub async fn insert_event(
        &self,
        event: &Event,
        detail: TransitionDetail,
    ) -> Result<Option<String>> {
        each!(self, s => s.insert_event(event, detail).await)
    }

    /// Unfinished events whose owner is gone (crashed, killed, its session lost), oldest
    /// first: what crash recovery finishes. SQLite: every unfinished event (read at start).
    pub async fn orphaned_events(&self) -> Result<Vec<Event>> {
        each!(self, s => s.orphaned_events().await)
    }

    /// Makes this replica the owner of an orphaned event, if its owner is still gone; false
    /// when someone else owns it (alive, or adopted it first).
    pub async fn adopt(&self, id: &str) -> Result<bool> {
        each!(self, s => s.adopt(id).await)
    }

    /// The event holding the execution slot, if any.
    pub async fn in_flight(&self) -> Result<Option<String>> {
        each!(self, s => s.in_flight().await)
    }

    /// Moves an event on; refused unless the life cycle allows the move.
    pub async fn transition(
        &self,
        id: &str,
        status: EventStatus,
        detail: TransitionDetail,
    ) -> Result<()> {
        each!(self, s => s.transition(id, status, detail).await)
    }

    pub async fn insert_validation(&self, run: ValidationRun) -> Result<i64> {
        each!(self, s => s.insert_validation(run).await)
    }

    /// Records a delivery's alerts and, in the same transaction, the rollback event they ask
    /// for: the event only when this delivery was the first to record one of its rollback
    /// alerts. All or nothing: a failure records neither, so Alertmanager's retry acts.
    pub async fn record_delivery(
        &self,
        alerts: Vec<AlertRecord>,
        event: Option<(&Event, TransitionDetail)>,
    ) -> Result<Delivery> {
        each!(self, s => s.record_delivery(alerts, event).await)
    }

    /// One event with its transitions and validations.
    pub async fn get_event(&self, id: &str) -> Result<Option<Event>> {
        each!(self, s => s.get_event(id).await)
    }

    pub async fn event_exists(&self, id: &str) -> Result<bool> {
        each!(self, s => s.event_exists(id).await)
    }

    /// Events newest first, filtered and paged.
    pub async fn list_events(&self, q: EventQuery) -> Result<Vec<Event>> {
        each!(self, s => s.list_events(q).await)
    }

    /// Events a crash left between `pending` and a final status, oldest first.
    pub async fn unfinished_events(&self) -> Result<Vec<Event>> {
        each!(self, s => s.unfinished_events().await)
    }

    /// The latest rollback that touched the target (for the cooldown and the status page).
    pub async fn last_executed(&self) -> Result<Option<Event>> {
        each!(self, s => s.last_executed().await)
    }

    pub async fn list_validations(&self, q: ValidationQuery) -> Result<Vec<ValidationRun>> {
        each!(self, s => s.list_validations(q).await)
    }

    /// A small write to learn whether the history takes writes again (after a failure).
    pub async fn probe(&self) -> Result<()> {
        each!(self, s => s.probe().await)
    }

    /// Records a change to how rollbackd runs, durably; returns its id.
    pub async fn record_audit(&self, record: AuditRecord) -> Result<i64> {
        each!(self, s => s.record_audit(record).await)
    }

    /// Audit records newest first.
    pub async fn list_audit(&self, q: AuditQuery) -> Result<Vec<AuditRecord>> {
        each!(self, s => s.list_audit(q).await)
    }

    /// Records a review durably; refused unless the event is a finished trigger episode.
    /// Returns it as stored (its id, the review it supersedes).
    pub async fn record_review(&self, review: Review) -> Result<Review> {
        each!(self, s => s.record_review(review).await)
    }

    /// Reviews newest first.
    pub async fn list_reviews(&self, q: ReviewQuery) -> Result<Vec<Review>> {
        each!(self, s => s.list_reviews(q).await)
    }

    /// Records a missed degradation durably; returns its id.
    pub async fn record_missed(&self, missed: MissedDegradation) -> Result<i64> {
        each!(self, s => s.record_missed(missed).await)
    }

    /// Missed degradations newest first.
    pub async fn list_missed(&self, q: MissedQuery) -> Result<Vec<MissedDegradation>> {
        each!(self, s => s.list_missed(q).await)
    }

    /// Rollback events created in `[since, until)`, each with its transitions, validations and
    /// reviews: what the rates and the report are read from. A page: at most `limit` of them,
    /// the newest older than `before` (an event id; `None`: the newest), oldest first within
    /// the page. A reader walks back page by page, so memory stays one page.
    pub async fn episodes(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        before: Option<String>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        each!(self, s => s.episodes(since, until, before, limit).await)
    }

    /// When the oldest executed rollback without a review started, over the whole history.
    pub async fn oldest_unreviewed(&self) -> Result<Option<DateTime<Utc>>> {
        each!(self, s => s.oldest_unreviewed().await)
    }

    /// The `startsAt` of every firing alert recorded under these fingerprints.
    pub async fn alert_starts(&self, fingerprints: Vec<String>) -> Result<Vec<(String, String)>> {
        each!(self, s => s.alert_starts(fingerprints).await)
    }

    /// The newest `limit` alert keys recorded, to warm the in-memory resend filter at start.
    pub async fn alert_keys(&self, limit: usize) -> Result<Vec<(String, String, String)>> {
        each!(self, s => s.alert_keys(limit).await)
    }
}

pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
