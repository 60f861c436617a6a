//! The SQLite backend: WAL with `synchronous=FULL`, every table append-only (triggers refuse
//! UPDATE and DELETE), and a write acknowledged only after its transaction committed. Writes go
//! through one writer thread that commits whatever has queued up in one transaction (group
//! commit), so a burst shares one fsync.

use super::{
    format_time, held_detail, AlertRecord, AuditQuery, AuditRecord, Delivery, Event, EventQuery,
    MissedDegradation, MissedQuery, Result, Review, ReviewQuery, StoreError, StoredEvent,
    Transition, TransitionDetail, ValidationQuery, ValidationRun,
};
use crate::domain::lifecycle::{Action, EventStatus};
use crate::domain::review::EpisodeKind;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS rollback_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    action TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rollback_transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES rollback_events(id),
    status TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rollback_transitions_by_event ON rollback_transitions(event_id, seq);
-- The transitions an unfinished event can stand at: start-up looks for such events among
-- the events with one of these (the ones that ran) instead of among every event. Partial, so
-- it holds only what ran; created on the first start of a history without it.
CREATE INDEX IF NOT EXISTS rollback_transitions_open ON rollback_transitions(event_id)
    WHERE status IN ('pending', 'executing', 'validating');
-- The success rates read the episodes of the last 30 days: this index finds where they begin
-- (the oldest one's seq) instead of reading every event back to the first.
CREATE INDEX IF NOT EXISTS rollback_events_by_created ON rollback_events(created_ms);
CREATE TABLE IF NOT EXISTS validation_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES rollback_events(id),
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS validation_runs_by_event ON validation_runs(event_id, id);
CREATE TABLE IF NOT EXISTS health_probe (id INTEGER PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (fingerprint, starts_at, status)
);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES rollback_events(id),
    verdict TEXT NOT NULL,
    reviewed_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_by_event ON reviews(event_id, id);
CREATE TABLE IF NOT EXISTS inflight (
    slot INTEGER PRIMARY KEY CHECK (slot = 1),
    event_id TEXT NOT NULL UNIQUE REFERENCES rollback_events(id),
    claimed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS missed_degradations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    body TEXT NOT NULL
);
"#;

const APPEND_ONLY_TABLES: [&str; 7] = [
    "rollback_events",
    "rollback_transitions",
    "validation_runs",
    "webhook_alerts",
    "audit_log",
    "reviews",
    "missed_degradations",
];

/// `'completed', 'failed', ...`: the statuses where `keep` holds, for an SQL `IN` list, so
/// the queries count exactly what the domain calls an episode.
pub(super) fn statuses_sql(keep: impl Fn(EventStatus) -> bool) -> String {
    EventStatus::ALL
        .into_iter()
        .filter(|s| keep(*s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A finished trigger episode with no review (`e`, `t`, `r` as in `EVENT_JOINS`).
pub(super) fn unreviewed_sql(executed_only: bool) -> String {
    let statuses = statuses_sql(|s| match EpisodeKind::of(Action::Rollback, s) {
        Ok(kind) => !executed_only || kind == EpisodeKind::Executed,
        Err(_) => false,
    });
    format!("e.action = 'rollback' AND t.status IN ({statuses}) AND r.id IS NULL")
}

enum Job {
    InsertEvent(Box<StoredEvent>, EventStatus, TransitionDetail),
    Transition(String, EventStatus, TransitionDetail),
    InsertValidation(Box<ValidationRun>),
    /// Alerts, and the rollback event they ask for, in one transaction.
    RecordDelivery(
        Vec<AlertRecord>,
        Option<(Box<StoredEvent>, EventStatus, TransitionDetail)>,
    ),
    RecordAudit(Box<AuditRecord>),
    /// Overwrites the one row of `health_probe`: proves the disk takes writes.
    Probe,
    RecordReview(Box<Review>),
    RecordMissed(Box<MissedDegradation>),
}

enum Done {
    Unit,
    Held(Option<String>),
    Id(i64),
    Delivery(Delivery),
    Review(Box<Review>),
}

type Reply = oneshot::Sender<Result<Done>>;

/// Cheap to clone; all clones share one writer and one reader connection.
#[derive(Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<(Job, Reply)>,
    reader: Arc<Mutex<Connection>>,
    healthy: Arc<AtomicBool>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let open_err = |e: rusqlite::Error| StoreError::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    allocate_page_caches_in_one_block();
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open {
            path: path.display().to_string(),
            message: format!("journal_mode is {mode}, WAL is required"),
        });
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-{PAGE_CACHE_KIB};"
    ))
    .map_err(open_err)?;
    Ok(conn)
}

/// Each connection's page cache, in KiB, served from one block SQLite is given at start
/// (`allocate_page_caches_in_one_block`). Stated here so the bound is ours, not a library
/// default.
pub const PAGE_CACHE_KIB: i64 = 2048;

/// Pages in the block SQLite's page caches are served from: both connections' caches
/// (`PAGE_CACHE_KIB` each, in pages of `PAGE_BYTES`) and a margin for the temporary tables a
/// query builds and drops (a sort, an `IN` list). Past it SQLite allocates as before.
const PAGE_SLOTS: usize = 2 * PAGE_CACHE_KIB as usize * 1024 / PAGE_BYTES + 128;

/// SQLite's default page size, which the history keeps.
const PAGE_BYTES: usize = 4096;

/// The block's size in bytes, once SQLite has taken it.
static PAGE_BLOCK_BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Left to itself SQLite allocates cache pages one at a time as a growing history is read,
/// between the daemon's short-lived buffers, and every query with a temporary table allocates
/// and frees a cache of its own: glibc then keeps the heap around each long-lived page, and
/// the process's memory crept up for an hour under load. Given one block before its first
/// use in this process, SQLite serves every page from it: the cache is there from the start
/// and the heap holds none of it.
fn allocate_page_caches_in_one_block() {
    PAGE_BLOCK_BYTES.get_or_init(|| {
        use rusqlite::ffi::{sqlite3_config, SQLITE_CONFIG_PAGECACHE, SQLITE_CONFIG_PCACHE_HDRSZ};
        use std::ffi::{c_int, c_void};
        let mut header: c_int = 0;
        // SAFETY: SQLITE_CONFIG_PCACHE_HDRSZ writes one int through the pointer it is given.
        // sqlite3_config refuses (SQLITE_MISUSE) once SQLite is initialized, e.g. when
        // something else in the process opened a database first; it then keeps its defaults.
        if unsafe { sqlite3_config(SQLITE_CONFIG_PCACHE_HDRSZ, &mut header as *mut c_int) }
            != rusqlite::ffi::SQLITE_OK
        {
            tracing::debug!("SQLite was already initialized: its page cache is left as it is");
            return 0;
        }
        let slot = (PAGE_BYTES + header as usize).next_multiple_of(8);
        let block: &'static mut [u64] =
            Box::leak(vec![0u64; PAGE_SLOTS * slot / 8].into_boxed_slice());
        // SAFETY: the block is 8-byte aligned, `PAGE_SLOTS * slot` bytes long and leaked, so
        // it outlives every connection; SQLite is not yet initialized (checked above).
        let rc = unsafe {
            sqlite3_config(
                SQLITE_CONFIG_PAGECACHE,
                block.as_mut_ptr() as *mut c_void,
                slot as c_int,
                PAGE_SLOTS as c_int,
            )
        };
        if rc == rusqlite::ffi::SQLITE_OK {
            PAGE_SLOTS * slot
        } else {
            0
        }
    });
}

/// Bytes SQLite holds in this process: the page block, and what it allocated besides
/// (schemas, prepared statements, pages past the block); exported as
/// `rollbackd_sqlite_memory_bytes`.
pub fn memory_used() -> i64 {
    // SAFETY: sqlite3_memory_used takes no arguments and only reads SQLite's own counter under
    // its mutex; it is safe to call from any thread at any time.
    let allocated = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    allocated + PAGE_BLOCK_BYTES.get().copied().unwrap_or(0) as i64
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        let mut conn = open_connection(path)?;
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        for table in APPEND_ONLY_TABLES {
            tx.execute_batch(&format!(
                "CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, 'history is append-only: {table} rows cannot be changed'); END;
                 CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, 'history is append-only: {table} rows cannot be deleted'); END;"
            ))?;
        }
        tx.commit()?;
        let reader = open_connection(path)?;
        let (tx, rx) = mpsc::channel::<(Job, Reply)>();
        let healthy = Arc::new(AtomicBool::new(true));
        let h = healthy.clone();
        std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || writer_loop(conn, rx, h))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(SqliteStore {
            writer: tx,
            reader: Arc::new(Mutex::new(reader)),
            healthy,
        })
    }

    /// False after a write failed, until one succeeds again.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    async fn submit(&self, job: Job) -> Result<Done> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send((job, tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn insert_event(
        &self,
        event: &Event,
        detail: TransitionDetail,
    ) -> Result<Option<String>> {
        match self
            .submit(Job::InsertEvent(
                Box::new(StoredEvent::of(event)),
                event.status,
                detail,
            ))
            .await?
        {
            Done::Held(holder) => Ok(holder),
            _ => unreachable!("an event insert says whether the slot was held"),
        }
    }

    /// Every unfinished event: one process, so at start all of them are its own to finish.
    pub async fn orphaned_events(&self) -> Result<Vec<Event>> {
        self.unfinished_events().await
    }

    /// One process owns everything.
    pub async fn adopt(&self, _id: &str) -> Result<bool> {
        Ok(true)
    }

    pub async fn in_flight(&self) -> Result<Option<String>> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT event_id FROM inflight WHERE slot = 1", [], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
        .await
    }

    /// Moves an event on; refused unless the life cycle allows the move.
    pub async fn transition(
        &self,
        event_id: &str,
        status: EventStatus,
        detail: TransitionDetail,
    ) -> Result<()> {
        self.submit(Job::Transition(event_id.to_owned(), status, detail))
            .await
            .map(|_| ())
    }

    pub async fn insert_validation(&self, run: ValidationRun) -> Result<i64> {
        match self.submit(Job::InsertValidation(Box::new(run))).await? {
            Done::Id(id) => Ok(id),
            _ => unreachable!("validation insert returns an id"),
        }
    }

    /// Records alerts; for each, whether it was new (not a resend of an already recorded one).
    pub async fn record_delivery(
        &self,
        alerts: Vec<AlertRecord>,
        event: Option<(&Event, TransitionDetail)>,
    ) -> Result<Delivery> {
        let event = event.map(|(e, d)| (Box::new(StoredEvent::of(e)), e.status, d));
        match self.submit(Job::RecordDelivery(alerts, event)).await? {
            Done::Delivery(d) => Ok(d),
            _ => unreachable!("a delivery record returns its flags"),
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("history read task failed: {e}")))?
    }

    pub async fn get_event(&self, id: &str) -> Result<Option<Event>> {
        let id = id.to_owned();
        self.read(move |c| {
            let Some(mut view) = query_events(c, "WHERE e.id = ?1", &[&id], 1)?.pop() else {
                return Ok(None);
            };
            with_details(c, &mut view)?;
            Ok(Some(view))
        })
        .await
    }

    /// A page of the rollback events created in `[since, until)`, with their details.
    pub async fn episodes(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        before: Option<String>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        self.read(move |c| {
            let mut events = query_events(
                c,
                EPISODES,
                &[
                    &since.timestamp_millis(),
                    &until.timestamp_millis(),
                    &before,
                ],
                limit,
            )?;
            events.reverse();
            for e in &mut events {
                with_details(c, e)?;
            }
            Ok(events)
        })
        .await
    }

    pub async fn event_exists(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.read(move |c| {
            Ok(
                c.query_row("SELECT 1 FROM rollback_events WHERE id = ?1", [&id], |_| {
                    Ok(())
                })
                .optional()?
                .is_some(),
            )
        })
        .await
    }

    pub async fn list_events(&self, q: EventQuery) -> Result<Vec<Event>> {
        self.read(move |c| {
            let mut clauses: Vec<String> = Vec::new();
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            if let Some(before) = &q.before {
                let seq: Option<i64> = c
                    .query_row(
                        "SELECT seq FROM rollback_events WHERE id = ?1",
                        [before],
                        |r| r.get(0),
                    )
                    .optional()?;
                let seq = seq.ok_or_else(|| StoreError::UnknownCursor(before.clone()))?;
                args.push(Box::new(seq));
                clauses.push(format!("e.seq < ?{}", args.len()));
            }
            if let Some(t) = q.trigger_type {
                args.push(Box::new(t.as_str()));
                clauses.push(format!("e.trigger_type = ?{}", args.len()));
            }
            if let Some(s) = q.status {
                args.push(Box::new(s.as_str()));
                clauses.push(format!("t.status = ?{}", args.len()));
            }
            if let Some(since) = q.since {
                args.push(Box::new(since.timestamp_millis()));
                clauses.push(format!("e.created_ms >= ?{}", args.len()));
            }
            if let Some(until) = q.until {
                args.push(Box::new(until.timestamp_millis()));
                clauses.push(format!("e.created_ms < ?{}", args.len()));
            }
            if q.unreviewed {
                clauses.push(unreviewed_sql(false));
            }
            let filter = if clauses.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", clauses.join(" AND "))
            };
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref()).collect();
            query_events(c, &filter, &refs, q.limit)
        })
        .await
    }

    /// Events a crash left between `pending` and a final status, oldest first.
    pub async fn unfinished_events(&self) -> Result<Vec<Event>> {
        self.read(|c| {
            // The same events as filtering on the latest status alone: an event standing at
            // an open status has a transition with it. The candidates come from the partial
            // index (the events that ran), not from a scan of every event.
            let filter = format!(
                "WHERE e.id IN ({RAN}) AND t.status IN ('pending', 'executing', 'validating')"
            );
            let mut v = query_events(c, &filter, &[], u32::MAX)?;
            v.reverse();
            Ok(v)
        })
        .await
    }

    /// The latest rollback that touched the target (for the cooldown and the status page).
    pub async fn last_executed(&self) -> Result<Option<Event>> {
        self.read(|c| {
            Ok(query_events(
                c,
                "WHERE e.action = 'rollback' AND t.status NOT IN ('suppressed', 'dry_run')",
                &[],
                1,
            )?
            .pop())
        })
        .await
    }

    pub async fn list_validations(&self, q: ValidationQuery) -> Result<Vec<ValidationRun>> {
        self.read(move |c| query_validations(c, &q)).await
    }

    pub async fn probe(&self) -> Result<()> {
        self.submit(Job::Probe).await.map(|_| ())
    }

    pub async fn record_review(&self, review: Review) -> Result<Review> {
        match self.submit(Job::RecordReview(Box::new(review))).await? {
            Done::Review(r) => Ok(*r),
            _ => unreachable!("a review record returns the review"),
        }
    }

    pub async fn list_reviews(&self, q: ReviewQuery) -> Result<Vec<Review>> {
        self.read(move |c| query_reviews(c, &q)).await
    }

    pub async fn record_missed(&self, missed: MissedDegradation) -> Result<i64> {
        match self.submit(Job::RecordMissed(Box::new(missed))).await? {
            Done::Id(id) => Ok(id),
            _ => unreachable!("a missed degradation record returns an id"),
        }
    }

    pub async fn list_missed(&self, q: MissedQuery) -> Result<Vec<MissedDegradation>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, body FROM missed_degradations WHERE (?1 IS NULL OR id < ?1) \
                 AND (?2 IS NULL OR from_ms >= ?2) AND (?3 IS NULL OR from_ms < ?3) ORDER BY id DESC LIMIT ?4",
            )?;
            let since = q.since.map(|t| t.timestamp_millis());
            let until = q.until.map(|t| t.timestamp_millis());
            let rows = stmt.query_map(params![q.before, since, until, q.limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (id, body) = row?;
                let mut m: MissedDegradation = from_json(&body)?;
                m.id = id;
                Ok(m)
            })
            .collect()
        })
        .await
    }

    pub async fn oldest_unreviewed(&self) -> Result<Option<DateTime<Utc>>> {
        self.read(|c| {
            let ms: Option<i64> = c
                .prepare_cached(&oldest_unreviewed_sql())?
                .query_row([], |r| r.get(0))?;
            Ok(ms.and_then(DateTime::from_timestamp_millis))
        })
        .await
    }

    pub async fn alert_starts(&self, fingerprints: Vec<String>) -> Result<Vec<(String, String)>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT fingerprint, starts_at FROM webhook_alerts WHERE fingerprint = ?1 AND status = 'firing'",
            )?;
            let mut out = Vec::new();
            for f in &fingerprints {
                let rows = stmt.query_map([f], |r| Ok((r.get(0)?, r.get(1)?)))?;
                out.extend(rows.collect::<std::result::Result<Vec<_>, _>>()?);
            }
            Ok(out)
        })
        .await
    }

    pub async fn record_audit(&self, record: AuditRecord) -> Result<i64> {
        match self.submit(Job::RecordAudit(Box::new(record))).await? {
            Done::Id(id) => Ok(id),
            _ => unreachable!("audit insert returns an id"),
        }
    }

    pub async fn list_audit(&self, q: AuditQuery) -> Result<Vec<AuditRecord>> {
        self.read(move |c| {
            query_bodies(
                c,
                "SELECT id, body FROM audit_log WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR kind = ?2) ORDER BY id DESC LIMIT ?3",
                params![q.before, q.kind, q.limit],
                |r: &mut AuditRecord, id| r.id = id,
            )
        })
        .await
    }

    /// The newest `limit` alert keys recorded, to warm the in-memory resend filter at start.
    pub async fn alert_keys(&self, limit: usize) -> Result<Vec<(String, String, String)>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT fingerprint, starts_at, status FROM webhook_alerts ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
        .await
    }
}

/// Each event with its latest transition (`t`) and its latest review (`r`, when any).
/// The events that ran (were admitted): the ones with a transition the partial index
/// `rollback_transitions_open` holds; the same condition, so SQLite reads the index.
const RAN: &str = "SELECT event_id FROM rollback_transitions WHERE status IN ('pending', 'executing', 'validating')";

/// The rollback events created in `[?1, ?2)`. Events are numbered as they are recorded, so the
/// first one created at or after `?1` (found by `rollback_events_by_created`) bounds the scan;
/// the time filter still decides.
const EPISODES: &str =
    "WHERE e.seq >= (SELECT MIN(seq) FROM rollback_events WHERE created_ms >= ?1) \
     AND e.action = 'rollback' AND e.created_ms >= ?1 AND e.created_ms < ?2 \
     AND (?3 IS NULL OR e.seq < (SELECT seq FROM rollback_events WHERE id = ?3))";

/// The oldest executed rollback without a review. Only an event that ran can be an executed
/// rollback: it is looked for among those (the partial index), not among every suppressed
/// request.
fn oldest_unreviewed_sql() -> String {
    format!(
        "SELECT MIN(e.created_ms) FROM rollback_events e {EVENT_JOINS} WHERE e.id IN ({RAN}) AND {}",
        unreviewed_sql(true)
    )
}

const EVENT_JOINS: &str = "JOIN rollback_transitions t ON t.seq = (SELECT MAX(seq) FROM rollback_transitions WHERE event_id = e.id) \
    LEFT JOIN reviews r ON r.id = (SELECT MAX(id) FROM reviews WHERE event_id = e.id)";

fn query_events(
    c: &Connection,
    filter: &str,
    args: &[&dyn rusqlite::ToSql],
    limit: u32,
) -> Result<Vec<Event>> {
    let sql = format!(
        "SELECT e.body, t.status, t.at, t.detail, r.id, r.body FROM rollback_events e {EVENT_JOINS} \
         {filter} ORDER BY e.seq DESC LIMIT {limit}"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(args, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    rows.map(|row| {
        let (body, status, at, detail, review_id, review) = row?;
        let stored: StoredEvent = from_json(&body)?;
        let status = parse_status(&status)?;
        let at = parse_time(&at)?;
        let detail: TransitionDetail = from_json(&detail)?;
        let mut event = stored.into_event(status).at(status, at, detail);
        if let (Some(id), Some(body)) = (review_id, review) {
            let mut r: Review = from_json(&body)?;
            r.id = id;
            event.review = Some(r);
        }
        Ok(event)
    })
    .collect()
}

/// Adds an event's transitions, validations and reviews.
fn with_details(c: &Connection, event: &mut Event) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "SELECT status, at, detail FROM rollback_transitions WHERE event_id = ?1 ORDER BY seq",
    )?;
    let transitions = stmt
        .query_map([&event.id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .map(|row| {
            let (status, at, detail) = row?;
            Ok(Transition {
                status: parse_status(&status)?,
                at: parse_time(&at)?,
                detail: from_json(&detail)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    event.transitions = Some(transitions);
    let q = ValidationQuery {
        limit: 1000,
        before: None,
        event_id: Some(event.id.clone()),
    };
    event.validations = Some(query_validations(c, &q)?);
    let q = ReviewQuery {
        limit: 1000,
        event_id: Some(event.id.clone()),
        ..Default::default()
    };
    let mut reviews = query_reviews(c, &q)?;
    reviews.reverse();
    event.reviews = Some(reviews);
    Ok(())
}

fn query_reviews(c: &Connection, q: &ReviewQuery) -> Result<Vec<Review>> {
    let mut stmt = c.prepare_cached(
        "SELECT r.id, r.body, (SELECT MIN(id) FROM reviews l WHERE l.event_id = r.event_id AND l.id > r.id) AS later \
         FROM reviews r WHERE (?1 IS NULL OR r.id < ?1) AND (?2 IS NULL OR r.event_id = ?2) \
         AND (?3 IS NULL OR r.verdict = ?3) AND (?4 = 0 OR later IS NULL) ORDER BY r.id DESC LIMIT ?5",
    )?;
    let verdict = q.verdict.map(|v| v.as_str());
    let rows = stmt.query_map(
        params![q.before, q.event_id, verdict, q.current_only, q.limit],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        },
    )?;
    rows.map(|row| {
        let (id, body, later) = row?;
        let mut review: Review = from_json(&body)?;
        review.id = id;
        review.superseded_by = later;
        Ok(review)
    })
    .collect()
}

fn query_validations(c: &Connection, q: &ValidationQuery) -> Result<Vec<ValidationRun>> {
    query_bodies(
        c,
        "SELECT id, body FROM validation_runs WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR event_id = ?2) ORDER BY id DESC LIMIT ?3",
        params![q.before, q.event_id, q.limit],
        |r: &mut ValidationRun, id| r.id = id,
    )
}

/// Rows of `(id, body)`: each body read as a `T` that then takes its row id.
fn query_bodies<T: for<'de> Deserialize<'de>>(
    c: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
    set_id: impl Fn(&mut T, i64),
) -> Result<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(args, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    rows.map(|row| {
        let (id, body) = row?;
        let mut item: T = from_json(&body)?;
        set_id(&mut item, id);
        Ok(item)
    })
    .collect()
}

pub(super) fn from_json<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("unreadable history row: {e}")))
}

pub(super) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("history rows serialize")
}

pub(super) fn parse_status(s: &str) -> Result<EventStatus> {
    EventStatus::parse(s)
        .ok_or_else(|| StoreError::Invalid(format!("unknown status {s:?} in history")))
}

pub(super) fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Invalid(format!("bad time {s:?} in history: {e}")))
}

/// Up to this many queued writes share one transaction.
const MAX_BATCH: usize = 512;

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<(Job, Reply)>, healthy: Arc<AtomicBool>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut results: Vec<Result<Done>> = Vec::with_capacity(batch.len());
        let committed = (|| -> Result<()> {
            let mut tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (job, _) in &batch {
                // A savepoint per job: one bad job fails alone, the others still commit.
                let mut sp = tx.savepoint()?;
                let r = apply(&sp, job);
                if r.is_ok() {
                    sp.commit()?;
                } else {
                    sp.rollback()?;
                    sp.commit()?;
                }
                results.push(r);
            }
            tx.commit()?;
            Ok(())
        })();
        match committed {
            Ok(()) => {
                healthy.store(true, Ordering::Relaxed);
                for ((_, reply), r) in batch.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                healthy.store(false, Ordering::Relaxed);
                tracing::error!(error = %e, "history write failed; nothing in the batch was acknowledged");
                let msg = e.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Invalid(format!(
                        "history write failed: {msg}"
                    ))));
                }
            }
        }
    }
}

/// Inserts an event with its first transition. A pending one claims the execution slot in
/// the same transaction; when another event holds it, the event goes in as suppressed
/// (`in_progress`) and the holder is returned.
fn insert_event(
    c: &Connection,
    ev: &StoredEvent,
    status: EventStatus,
    detail: &TransitionDetail,
) -> Result<Option<String>> {
    if !matches!(
        status,
        EventStatus::Pending | EventStatus::Suppressed | EventStatus::DryRun
    ) {
        return Err(StoreError::Invalid(format!(
            "an event cannot start as {status}"
        )));
    }
    c.prepare_cached("INSERT INTO rollback_events (id, created_at, created_ms, action, trigger_type, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![ev.id, format_time(&ev.created_at), ev.created_at.timestamp_millis(), ev.request.action.as_str(), ev.request.trigger_type.as_str(), to_json(ev)])?;
    let mut held = None;
    if status == EventStatus::Pending {
        let claimed = c
            .prepare_cached(
                "INSERT OR IGNORE INTO inflight (slot, event_id, claimed_at) VALUES (1, ?1, ?2)",
            )?
            .execute(params![ev.id, format_time(&ev.created_at)])?;
        if claimed == 0 {
            held = Some(
                c.query_row("SELECT event_id FROM inflight WHERE slot = 1", [], |r| {
                    r.get::<_, String>(0)
                })?,
            );
        }
    }
    let (status, detail) = match &held {
        Some(holder) => (EventStatus::Suppressed, held_detail(holder)),
        None => (status, detail.clone()),
    };
    c.prepare_cached(
        "INSERT INTO rollback_transitions (event_id, status, at, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        ev.id,
        status.as_str(),
        format_time(&ev.created_at),
        to_json(&detail)
    ])?;
    Ok(held)
}

/// A delivery's alerts (each new or a resend), and its rollback event only when this delivery
/// was the first to record one of its rollback alerts: a twin that lost the race adds nothing.
fn record_delivery(
    c: &Connection,
    alerts: &[AlertRecord],
    event: Option<&(Box<StoredEvent>, EventStatus, TransitionDetail)>,
) -> Result<Done> {
    let mut stmt = c.prepare_cached(
        "INSERT OR IGNORE INTO webhook_alerts (fingerprint, starts_at, status, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut new = Vec::with_capacity(alerts.len());
    for a in alerts {
        let n = stmt.execute(params![
            a.fingerprint,
            a.starts_at,
            a.status,
            format_time(&a.received_at),
            to_json(a)
        ])?;
        new.push(n == 1);
    }
    let first = alerts
        .iter()
        .zip(&new)
        .any(|(a, n)| *n && a.requests_rollback);
    let (event_recorded, held_by) = match event {
        Some((ev, status, detail)) if first => (true, insert_event(c, ev, *status, detail)?),
        _ => (false, None),
    };
    Ok(Done::Delivery(Delivery {
        new,
        event_recorded,
        held_by,
    }))
}

/// Stores a review of a finished trigger episode, superseding the event's latest review.
fn insert_review(c: &Connection, review: &Review) -> Result<Done> {
    let action: Option<String> = c
        .query_row(
            "SELECT action FROM rollback_events WHERE id = ?1",
            [&review.event_id],
            |r| r.get(0),
        )
        .optional()?;
    let action = action.ok_or_else(|| StoreError::UnknownEvent(review.event_id.clone()))?;
    let action = Action::parse(&action)
        .ok_or_else(|| StoreError::Invalid(format!("unknown action {action:?} in history")))?;
    let status = latest_status(c, &review.event_id)?
        .ok_or_else(|| StoreError::UnknownEvent(review.event_id.clone()))?;
    EpisodeKind::of(action, status).map_err(|why| StoreError::NotReviewable {
        id: review.event_id.clone(),
        why,
    })?;
    let mut stored = review.clone();
    stored.id = 0;
    stored.superseded_by = None;
    stored.supersedes = c.query_row(
        "SELECT MAX(id) FROM reviews WHERE event_id = ?1",
        [&review.event_id],
        |r| r.get(0),
    )?;
    c.prepare_cached(
        "INSERT INTO reviews (event_id, verdict, reviewed_at, body) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        stored.event_id,
        stored.verdict.as_str(),
        format_time(&stored.reviewed_at),
        to_json(&stored)
    ])?;
    stored.id = c.last_insert_rowid();
    Ok(Done::Review(Box::new(stored)))
}

fn latest_status(c: &Connection, event_id: &str) -> Result<Option<EventStatus>> {
    let s: Option<String> = c
        .query_row(
            "SELECT status FROM rollback_transitions WHERE event_id = ?1 ORDER BY seq DESC LIMIT 1",
            [event_id],
            |r| r.get(0),
        )
        .optional()?;
    s.map(|s| parse_status(&s)).transpose()
}

fn apply(c: &Connection, job: &Job) -> Result<Done> {
    let now = format_time(&Utc::now());
    match job {
        Job::InsertEvent(ev, status, detail) => {
            Ok(Done::Held(insert_event(c, ev, *status, detail)?))
        }
        Job::Transition(id, status, detail) => {
            let current = latest_status(c, id)?
                .ok_or_else(|| StoreError::Invalid(format!("no event with id {id:?}")))?;
            if !current.can_move_to(*status) {
                return Err(StoreError::Invalid(format!(
                    "event {id} cannot move from {current} to {status}"
                )));
            }
            c.prepare_cached("INSERT INTO rollback_transitions (event_id, status, at, detail) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![id, status.as_str(), now, to_json(detail)])?;
            if status.is_terminal() {
                c.prepare_cached("DELETE FROM inflight WHERE event_id = ?1")?
                    .execute([id])?;
            }
            Ok(Done::Unit)
        }
        Job::InsertValidation(run) => {
            c.prepare_cached(
                "INSERT INTO validation_runs (event_id, kind, at, body) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                run.event_id,
                run.kind.as_str(),
                format_time(&run.at),
                to_json(run)
            ])?;
            Ok(Done::Id(c.last_insert_rowid()))
        }
        Job::RecordDelivery(alerts, event) => record_delivery(c, alerts, event.as_ref()),
        Job::Probe => {
            c.prepare_cached("INSERT OR REPLACE INTO health_probe (id, at) VALUES (1, ?1)")?
                .execute([now])?;
            Ok(Done::Unit)
        }
        Job::RecordAudit(rec) => {
            c.prepare_cached(
                "INSERT INTO audit_log (at, kind, actor, body) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                format_time(&rec.at),
                rec.kind,
                rec.actor,
                to_json(rec)
            ])?;
            Ok(Done::Id(c.last_insert_rowid()))
        }
        Job::RecordReview(review) => insert_review(c, review),
        Job::RecordMissed(m) => {
            c.prepare_cached(
                "INSERT INTO missed_degradations (from_ms, to_ms, recorded_at, body) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                m.from.timestamp_millis(),
                m.to.timestamp_millis(),
                format_time(&m.recorded_at),
                to_json(m)
            ])?;
            Ok(Done::Id(c.last_insert_rowid()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lifecycle::{Action, TriggerType};
    use crate::domain::review::Verdict;
    use crate::store::{EventRequest, Store, ValidationKind};
    use std::collections::BTreeMap;

    pub fn event(id: &str, status: EventStatus) -> Event {
        let request = EventRequest {
            action: Action::Rollback,
            trigger_type: TriggerType::Manual,
            source: "test".into(),
            reason: "because".into(),
            actor: "ops".into(),
            dry_run: false,
            alert_names: vec![],
            fingerprints: vec![],
            conditions: vec![],
            mode_before: Some("session_targeted".into()),
            parameters_before: None,
            target_mode: "universal_cycle_4".into(),
            target_parameters: BTreeMap::from([("confidence_threshold".into(), 0.55)]),
        };
        Event::new(id.into(), request, Utc::now(), status)
    }

    /// What SQLite plans for `sql`, one line per step.
    fn plan(c: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        let args: Vec<i64> = vec![0; n];
        stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn the_rates_queries_never_read_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        drop(SqliteStore::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        let episodes = format!(
            "SELECT e.body FROM rollback_events e {EVENT_JOINS} {EPISODES} ORDER BY e.seq DESC"
        );
        // The episodes start from the first event of the window (a rowid range found by the
        // created_ms index); the oldest unreviewed rollback is looked for among the events
        // that ran (the partial index).
        for (sql, bound) in [
            (episodes, "rollback_events_by_created"),
            (oldest_unreviewed_sql(), "rollback_transitions_open"),
        ] {
            let steps = plan(&c, &sql);
            assert!(
                steps.iter().any(|s| s.contains(bound)),
                "{bound} bounds the read: {steps:?}\n{sql}"
            );
        }
    }

    #[tokio::test]
    async fn episodes_are_read_page_by_page_without_losing_or_repeating_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("h.db")).unwrap();
        let since = Utc::now() - chrono::Duration::seconds(5);
        let ids: Vec<String> = (0..7).map(|i| format!("e{i}")).collect();
        for id in &ids {
            s.insert_event(
                &event(id, EventStatus::Suppressed),
                TransitionDetail::default(),
            )
            .await
            .unwrap();
        }
        let until = Utc::now() + chrono::Duration::seconds(1);
        let (mut seen, mut before) = (Vec::new(), None);
        loop {
            let page = s.episodes(since, until, before.take(), 3).await.unwrap();
            assert!(page.len() <= 3);
            let Some(first) = page.first() else { break };
            before = Some(first.id.clone());
            assert!(page.iter().all(|e| e.transitions.is_some()), "with details");
            // Oldest first within a page; pages go back in time.
            seen.splice(0..0, page.iter().map(|e| e.id.clone()));
        }
        assert_eq!(seen, ids);
        let all = s.episodes(since, until, None, u32::MAX).await.unwrap();
        assert_eq!(all.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids);
    }

    #[tokio::test]
    async fn events_move_through_the_life_cycle_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let s = Store::open(&path).unwrap();
            s.insert_event(
                &event("a", EventStatus::Pending),
                TransitionDetail::default(),
            )
            .await
            .unwrap();
            s.transition("a", EventStatus::Executing, TransitionDetail::default())
                .await
                .unwrap();
            let bad = s
                .transition("a", EventStatus::Completed, TransitionDetail::default())
                .await
                .unwrap_err();
            assert!(
                bad.to_string()
                    .contains("cannot move from executing to completed"),
                "{bad}"
            );
            s.transition("a", EventStatus::Validating, TransitionDetail::default())
                .await
                .unwrap();
            let d = TransitionDetail {
                validation_score: Some(100.0),
                duration_ms: Some(12),
                ..Default::default()
            };
            s.transition("a", EventStatus::Completed, d).await.unwrap();
            assert!(
                s.transition("a", EventStatus::Failed, TransitionDetail::default())
                    .await
                    .is_err(),
                "terminal is final"
            );
            s.insert_event(
                &event("b", EventStatus::Suppressed),
                TransitionDetail {
                    suppressed_reason: Some("cooldown".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            s.insert_event(
                &event("c", EventStatus::Pending),
                TransitionDetail::default(),
            )
            .await
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let a = s.get_event("a").await.unwrap().unwrap();
        assert_eq!(a.status, EventStatus::Completed);
        assert_eq!(a.validation_score, Some(100.0));
        assert_eq!(a.transitions.as_ref().unwrap().len(), 4);
        let all = s
            .list_events(EventQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["c", "b", "a"]
        );
        let page = s
            .list_events(EventQuery {
                limit: 10,
                before: Some("b".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        let sup = s
            .list_events(EventQuery {
                limit: 10,
                status: Some(EventStatus::Suppressed),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(sup[0].suppressed_reason.as_deref(), Some("cooldown"));
        let unfinished = s.unfinished_events().await.unwrap();
        assert_eq!(
            unfinished.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(s.last_executed().await.unwrap().unwrap().id, "c");
    }

    #[tokio::test]
    async fn history_refuses_updates_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let s = Store::open(&path).unwrap();
        s.insert_event(
            &event("a", EventStatus::Pending),
            TransitionDetail::default(),
        )
        .await
        .unwrap();
        let run = ValidationRun {
            id: 0,
            event_id: "a".into(),
            kind: ValidationKind::Initial,
            at: Utc::now(),
            score: 1.0,
            passed: false,
            pass_score: 85.0,
            checks: vec![],
            note: None,
        };
        s.insert_validation(run).await.unwrap();
        let alert = AlertRecord {
            fingerprint: "f".into(),
            starts_at: "t".into(),
            status: "firing".into(),
            alertname: "X".into(),
            labels: BTreeMap::new(),
            requests_rollback: false,
            received_at: Utc::now(),
        };
        s.record_delivery(vec![alert], None).await.unwrap();
        let c = Connection::open(&path).unwrap();
        for sql in [
            "UPDATE rollback_events SET body = '{}'",
            "DELETE FROM rollback_events",
            "UPDATE rollback_transitions SET status = 'completed'",
            "DELETE FROM rollback_transitions",
            "DELETE FROM validation_runs",
            "UPDATE webhook_alerts SET status = 'x'",
        ] {
            let e = c.execute(sql, []).unwrap_err().to_string();
            assert!(e.contains("append-only"), "{sql}: {e}");
        }
        let wal: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(wal, "wal");
        assert!(s.get_event("a").await.unwrap().is_some());
    }

    #[test]
    fn each_connection_bounds_its_page_cache_as_stated() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("h.db")).unwrap();
        let size: i64 = conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(size, -PAGE_CACHE_KIB, "negative: a size in KiB");
        assert!(memory_used() > 0, "SQLite counts its allocations");
    }

    #[tokio::test]
    async fn alerts_are_new_once_and_concurrent_writers_agree() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("h.db")).unwrap();
        let alert = |fp: &str, status: &str| AlertRecord {
            fingerprint: fp.into(),
            starts_at: "2026-11-23T10:00:00Z".into(),
            status: status.into(),
            alertname: "X".into(),
            labels: BTreeMap::new(),
            requests_rollback: true,
            received_at: Utc::now(),
        };
        let mut handles = Vec::new();
        for _ in 0..50 {
            let s = s.clone();
            let a = alert("f1", "firing");
            handles.push(tokio::spawn(async move {
                s.record_delivery(vec![a], None).await.unwrap().new[0]
            }));
        }
        let mut fresh = 0;
        for h in handles {
            fresh += h.await.unwrap() as u32;
        }
        assert_eq!(fresh, 1, "exactly one of 50 concurrent deliveries is new");
        assert_eq!(
            s.record_delivery(vec![alert("f1", "resolved"), alert("f2", "firing")], None)
                .await
                .unwrap()
                .new,
            vec![true, true]
        );
        assert_eq!(s.alert_keys(10).await.unwrap().len(), 3);
        assert_eq!(s.alert_keys(2).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn validations_page_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("h.db")).unwrap();
        s.insert_event(
            &event("a", EventStatus::Pending),
            TransitionDetail::default(),
        )
        .await
        .unwrap();
        for i in 0..3 {
            let run = ValidationRun {
                id: 0,
                event_id: "a".into(),
                kind: ValidationKind::Initial,
                at: Utc::now(),
                score: i as f64,
                passed: false,
                pass_score: 85.0,
                checks: vec![],
                note: None,
            };
            s.insert_validation(run).await.unwrap();
        }
        let v = s
            .list_validations(ValidationQuery {
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(v.iter().map(|r| r.score).collect::<Vec<_>>(), [2.0, 1.0]);
        let rest = s
            .list_validations(ValidationQuery {
                limit: 10,
                before: Some(v[1].id),
                event_id: Some("a".into()),
            })
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        let missing = s
            .insert_validation(ValidationRun {
                id: 0,
                event_id: "nope".into(),
                kind: ValidationKind::Initial,
                at: Utc::now(),
                score: 0.0,
                passed: false,
                pass_score: 85.0,
                checks: vec![],
                note: None,
            })
            .await;
        assert!(
            missing.is_err(),
            "a validation must belong to a stored event"
        );
    }

    fn review(event_id: &str, verdict: Verdict, reviewer: &str) -> Review {
        Review {
            id: 0,
            event_id: event_id.into(),
            verdict,
            note: Some(format!("{verdict} by {reviewer}")),
            ticket_url: None,
            reviewer: reviewer.into(),
            reviewed_at: Utc::now(),
            supersedes: None,
            superseded_by: None,
        }
    }

    #[tokio::test]
    async fn a_later_review_supersedes_an_earlier_one_and_both_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let s = Store::open(&path).unwrap();
        let none = TransitionDetail::default;
        s.insert_event(&event("done", EventStatus::Suppressed), none())
            .await
            .unwrap();
        s.insert_event(&event("running", EventStatus::Pending), none())
            .await
            .unwrap();
        let mut restore = event("restore", EventStatus::DryRun);
        restore.request.action = Action::Restore;
        s.insert_event(&restore, none()).await.unwrap();
        assert_eq!(
            s.list_events(EventQuery {
                limit: 10,
                unreviewed: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
            ["done"],
            "only finished rollbacks await a review"
        );
        let first = s
            .record_review(review("done", Verdict::TruePositive, "ops"))
            .await
            .unwrap();
        assert_eq!(first.supersedes, None);
        let second = s
            .record_review(review("done", Verdict::FalsePositive, "boss"))
            .await
            .unwrap();
        assert_eq!(second.supersedes, Some(first.id));
        for (id, why) in [
            ("running", "event running: the rollback is still pending; review it once it has finished"),
            ("restore", "event restore: a restore is a deliberate human action, not a trigger; only rollbacks are reviewed"),
            ("nope", "no rollback event with id \"nope\""),
        ] {
            let e = s.record_review(review(id, Verdict::Drill, "ops")).await.unwrap_err();
            assert_eq!(e.to_string(), why);
        }
        drop(s);
        let s = Store::open(&path).unwrap();
        let done = s.get_event("done").await.unwrap().unwrap();
        assert_eq!(
            done.review.as_ref().unwrap().id,
            second.id,
            "the latest counts"
        );
        let all = done.reviews.unwrap();
        assert_eq!(
            all.iter().map(|r| r.verdict).collect::<Vec<_>>(),
            [Verdict::TruePositive, Verdict::FalsePositive]
        );
        assert_eq!(all[0].superseded_by, Some(second.id));
        assert_eq!(all[1].superseded_by, None);
        let current = s
            .list_reviews(ReviewQuery {
                limit: 10,
                current_only: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            current.iter().map(|r| r.id).collect::<Vec<_>>(),
            [second.id]
        );
        let listed = s
            .list_events(EventQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.iter().filter(|e| e.review.is_some()).count(), 1);
        assert!(s
            .list_events(EventQuery {
                limit: 10,
                unreviewed: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty());
        let c = Connection::open(&path).unwrap();
        for sql in [
            "UPDATE reviews SET verdict = 'drill'",
            "DELETE FROM reviews",
        ] {
            let e = c.execute(sql, []).unwrap_err().to_string();
            assert!(e.contains("append-only"), "{sql}: {e}");
        }
    }

    #[tokio::test]
    async fn missed_degradations_and_the_oldest_unreviewed_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("h.db")).unwrap();
        assert_eq!(s.oldest_unreviewed().await.unwrap(), None);
        let old = Utc::now() - chrono::Duration::days(3);
        let mut a = event("a", EventStatus::Pending);
        a.created_at = old;
        s.insert_event(&a, TransitionDetail::default())
            .await
            .unwrap();
        assert_eq!(
            s.oldest_unreviewed().await.unwrap(),
            None,
            "not finished yet"
        );
        for st in [
            EventStatus::Executing,
            EventStatus::Validating,
            EventStatus::Completed,
        ] {
            s.transition("a", st, TransitionDetail::default())
                .await
                .unwrap();
        }
        s.insert_event(
            &event("b", EventStatus::Suppressed),
            TransitionDetail::default(),
        )
        .await
        .unwrap();
        let at = s.oldest_unreviewed().await.unwrap().unwrap();
        assert_eq!(
            at.timestamp_millis(),
            old.timestamp_millis(),
            "suppressed ones do not count"
        );
        s.record_review(review("a", Verdict::Drill, "ops"))
            .await
            .unwrap();
        assert_eq!(s.oldest_unreviewed().await.unwrap(), None);
        let eps = s
            .episodes(old, Utc::now() + chrono::Duration::seconds(1), None, 100)
            .await
            .unwrap();
        assert_eq!(
            eps.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(eps[0].transitions.as_ref().unwrap().len(), 4);

        let m = |from: DateTime<Utc>| MissedDegradation {
            id: 0,
            from,
            to: from + chrono::Duration::minutes(10),
            conditions: vec!["max_drawdown".into()],
            note: "slow bleed".into(),
            recorded_by: "ops".into(),
            recorded_at: Utc::now(),
        };
        let id1 = s.record_missed(m(old)).await.unwrap();
        let id2 = s
            .record_missed(m(Utc::now() - chrono::Duration::hours(1)))
            .await
            .unwrap();
        let recent = s
            .list_missed(MissedQuery {
                limit: 10,
                since: Some(Utc::now() - chrono::Duration::days(1)),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(recent.iter().map(|m| m.id).collect::<Vec<_>>(), [id2]);
        let page = s
            .list_missed(MissedQuery {
                limit: 10,
                before: Some(id2),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), [id1]);
        let c = Connection::open(dir.path().join("h.db")).unwrap();
        for sql in [
            "UPDATE missed_degradations SET body = '{}'",
            "DELETE FROM missed_degradations",
        ] {
            let e = c.execute(sql, []).unwrap_err().to_string();
            assert!(e.contains("append-only"), "{sql}: {e}");
        }
    }

    #[test]
    fn an_unwritable_path_is_a_clear_error() {
        let e = Store::open(Path::new("/proc/rollbackd/h.db"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("cannot open history at /proc/rollbackd/h.db"),
            "{e}"
        );
    }
}
