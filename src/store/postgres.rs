//! The PostgreSQL backend, for two or more replicas sharing one history. The guarantees are
//! SQLite's: every history table append-only (triggers refuse UPDATE, DELETE and TRUNCATE), a
//! write acknowledged only once its transaction committed (`synchronous_commit=on`), alerts
//! unique on fingerprint + startsAt + status, the life cycle's moves checked at write time.
//! Two more, for several replicas:
//!
//! - one execution slot across all replicas: the `inflight` table (not history: a lock) has one
//!   possible row, claimed in the same transaction as a pending event and deleted with the
//!   event's final transition. The primary key decides, not a read before the write.
//! - fencing: the slot names its owner (a replica's liveness key). An owner found dead (its
//!   session's advisory lock gone) can be adopted by the leader; from then on the old owner's
//!   transitions of that event are refused.
//!
//! Each replica keeps one dedicated session (outside the pool): it holds the replica's
//! liveness lock, the leader's advisory lock when it leads, and LISTENs for the other
//! replicas' writes. See docs/ha.md.

use super::sqlite::{from_json, parse_status, parse_time, to_json, unreviewed_sql};
use super::{
    format_time, held_detail, AlertRecord, AuditQuery, AuditRecord, Delivery, Event, EventQuery,
    MissedDegradation, MissedQuery, Notice, Result, Review, ReviewQuery, StoreError, StoredEvent,
    Transition, TransitionDetail, ValidationQuery, ValidationRun,
};
use crate::domain::lifecycle::{Action, EventStatus};
use crate::domain::review::EpisodeKind;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, NoTls};
use tokio_util::sync::CancellationToken;

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// How `storage.postgres` configures the backend.
#[derive(Clone, PartialEq)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/db`; never logged whole (it may hold a password).
    pub url: String,
    pub pool_size: usize,
    pub statement_timeout: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact(&self.url))
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// The URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The advisory lock the leader holds (two-key form: class, key).
const LEADER_LOCK: (i32, i32) = (0x524c_4244, 1);
/// The class of each replica's liveness lock; the key is the replica's.
const LIVE_CLASS: i32 = 0x524c_4245;
/// The channel other replicas' writes are announced on.
const CHANNEL: &str = "rollbackd_events";
/// The notice's payload for an audit record (event ids are UUIDs, never this).
const AUDIT_NOTICE: &str = "audit";
/// How often the session proves itself (and a standby asks for the leader's lock).
pub const HEARTBEAT: Duration = Duration::from_millis(200);
/// A leader whose session has not answered for this long steps down. It is well under
/// `IDLE_SESSION_TIMEOUT`, after which the server ends a silent session and frees its locks:
/// the old leader has stepped down before a standby can take the lock.
pub const LEASE: Duration = Duration::from_millis(1000);
/// What the server allows a session to stay silent (`idle_session_timeout`).
const IDLE_SESSION_TIMEOUT: Duration = Duration::from_millis(3000);

/// Schema versions, applied in order at start under an advisory lock (so replicas starting
/// together migrate once); `schema_version` records each.
const MIGRATIONS: &[(i32, &str)] = &[(1, SCHEMA_V1), (2, SCHEMA_V2)];

/// The indexes that keep the success rates and the oldest unreviewed rollback from reading
/// the whole history: episodes by creation time, and the events that ran.
const SCHEMA_V2: &str = "
CREATE INDEX rollback_events_by_created ON rollback_events(created_ms);
CREATE INDEX rollback_transitions_open ON rollback_transitions(event_id)
    WHERE status IN ('pending', 'executing', 'validating');
";

const SCHEMA_V1: &str = r#"
CREATE TABLE rollback_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    action TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE rollback_transitions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES rollback_events(id),
    status TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX rollback_transitions_by_event ON rollback_transitions(event_id, seq);
CREATE TABLE validation_runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES rollback_events(id),
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX validation_runs_by_event ON validation_runs(event_id, id);
CREATE TABLE health_probe (id INTEGER PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE webhook_alerts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (fingerprint, starts_at, status)
);
CREATE TABLE reviews (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES rollback_events(id),
    verdict TEXT NOT NULL,
    reviewed_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX reviews_by_event ON reviews(event_id, id);
CREATE TABLE missed_degradations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    from_ms BIGINT NOT NULL,
    to_ms BIGINT NOT NULL,
    recorded_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE inflight (
    slot SMALLINT PRIMARY KEY CHECK (slot = 1),
    event_id TEXT NOT NULL UNIQUE REFERENCES rollback_events(id),
    owner BIGINT NOT NULL,
    claimed_at TEXT NOT NULL
);
CREATE FUNCTION rollbackd_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'history is append-only: % rows cannot be %', TG_TABLE_NAME,
        CASE TG_OP WHEN 'UPDATE' THEN 'changed' WHEN 'DELETE' THEN 'deleted' ELSE 'truncated' END;
END
$$;
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

fn pg_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres(e.to_string())
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message (an append-only trigger, a constraint) says most.
        match e.as_db_error() {
            Some(db) => StoreError::Postgres(db.message().to_owned()),
            None => StoreError::Postgres(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Postgres(format!("no database connection: {e}"))
    }
}

/// The replica's session as the rest of the process sees it.
struct Shared {
    /// This replica's liveness key: the owner recorded in the execution slot.
    key: i64,
    leader: watch::Sender<bool>,
    /// When the session last answered, in ms since `epoch` (0: never).
    last_ok_ms: AtomicU64,
    epoch: Instant,
    connected: AtomicBool,
    /// False after a write failed, until one succeeds.
    writes_ok: AtomicBool,
    notices: broadcast::Sender<Notice>,
    stop: CancellationToken,
}

impl Shared {
    fn since_ok(&self) -> Duration {
        let last = self.last_ok_ms.load(Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(last))
    }
}

/// Cheap to clone; clones share the pool and the session.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    shared: Arc<Shared>,
}

fn pg_config(cfg: &PostgresConfig, key: i64) -> Result<tokio_postgres::Config> {
    let mut c: tokio_postgres::Config = cfg.url.parse().map_err(|e| StoreError::Open {
        path: redact(&cfg.url),
        message: format!("{e}"),
    })?;
    c.application_name(format!("rollbackd/{key}"));
    c.connect_timeout(Duration::from_secs(2));
    c.options(format!(
        "-c statement_timeout={} -c synchronous_commit=on",
        cfg.statement_timeout.as_millis()
    ));
    Ok(c)
}

impl PgStore {
    /// Connects, creates or migrates the schema, and starts the replica's session.
    pub async fn connect(cfg: &PostgresConfig) -> Result<PgStore> {
        let key = (uuid::Uuid::now_v7().as_u128() as u32 & 0x7fff_ffff) as i64;
        let pc = pg_config(cfg, key)?;
        let mgr = Manager::from_config(
            pc.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(cfg.statement_timeout))
            .create_timeout(Some(Duration::from_secs(2)))
            .recycle_timeout(Some(Duration::from_secs(2)))
            .build()
            .map_err(|e| StoreError::Open {
                path: redact(&cfg.url),
                message: e.to_string(),
            })?;
        let open_err = |e: StoreError| StoreError::Open {
            path: redact(&cfg.url),
            message: match e {
                StoreError::Postgres(m) => m,
                other => other.to_string(),
            },
        };
        migrate(&pool).await.map_err(open_err)?;
        let (leader, _) = watch::channel(false);
        let (notices, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            key,
            leader,
            last_ok_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            connected: AtomicBool::new(false),
            writes_ok: AtomicBool::new(true),
            notices,
            stop: CancellationToken::new(),
        });
        let s = shared.clone();
        tokio::spawn(async move { session_loop(pc, s).await });
        tracing::info!(replica = key, database = %redact(&cfg.url), "history on PostgreSQL");
        Ok(PgStore { pool, shared })
    }

    pub fn is_healthy(&self) -> bool {
        self.shared.writes_ok.load(Ordering::Relaxed) && self.is_reachable()
    }

    pub fn is_reachable(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Leads while the session holds the leader's lock and answered within the lease.
    pub fn is_leader(&self) -> bool {
        *self.shared.leader.borrow() && self.shared.since_ok() < LEASE
    }

    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.shared.leader.subscribe()
    }

    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.shared.notices.subscribe()
    }

    pub fn close(&self) {
        self.shared.stop.cancel();
        self.shared.leader.send_replace(false);
        self.pool.close();
    }

    fn wrote<T>(&self, r: Result<T>) -> Result<T> {
        match &r {
            Ok(_) => self.shared.writes_ok.store(true, Ordering::Relaxed),
            // A refusal of the request itself says nothing about the database.
            Err(
                StoreError::Invalid(_)
                | StoreError::NotOwner { .. }
                | StoreError::UnknownEvent(_)
                | StoreError::NotReviewable { .. },
            ) => {}
            Err(e) => {
                self.shared.writes_ok.store(false, Ordering::Relaxed);
                tracing::error!(error = %e, "history write failed; not acknowledged");
            }
        }
        r
    }

    /// One write transaction; announced to the other replicas on commit when `notify` names
    /// an event.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'a> FnOnce(&'a Tx<'a>) -> BoxFuture<'a, Result<(T, Option<String>)>>,
    {
        let r = async {
            let mut c = self.pool.get().await?;
            let tx = c.transaction().await?;
            let (v, notify) = f(&tx).await?;
            if let Some(id) = notify {
                tx.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&CHANNEL, &format!("{}:{id}", self.shared.key)],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(v)
        }
        .await;
        self.wrote(r)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    pub async fn insert_event(
        &self,
        event: &Event,
        detail: TransitionDetail,
    ) -> Result<Option<String>> {
        let ev = StoredEvent::of(event);
        let status = event.status;
        let owner = self.shared.key;
        self.write(move |tx| {
            Box::pin(async move {
                let held = insert_event(tx, &ev, status, &detail, owner).await?;
                Ok((held, Some(ev.id.clone())))
            })
        })
        .await
    }

    pub async fn transition(
        &self,
        id: &str,
        status: EventStatus,
        detail: TransitionDetail,
    ) -> Result<()> {
        let id = id.to_owned();
        let owner = self.shared.key;
        self.write(move |tx| {
            Box::pin(async move {
                let locked = tx
                    .query_opt(
                        "SELECT 1 FROM rollback_events WHERE id = $1 FOR NO KEY UPDATE",
                        &[&id],
                    )
                    .await?;
                if locked.is_none() {
                    return Err(StoreError::Invalid(format!("no event with id {id:?}")));
                }
                let current = latest_status(&**tx, &id)
                    .await?
                    .ok_or_else(|| StoreError::Invalid(format!("no event with id {id:?}")))?;
                if !current.can_move_to(status) {
                    return Err(StoreError::Invalid(format!(
                        "event {id} cannot move from {current} to {status}"
                    )));
                }
                let slot = tx
                    .query_opt("SELECT owner FROM inflight WHERE event_id = $1", &[&id])
                    .await?;
                if let Some(row) = slot {
                    if row.get::<_, i64>(0) != owner {
                        return Err(StoreError::NotOwner { id });
                    }
                }
                tx.execute(
                    "INSERT INTO rollback_transitions (event_id, status, at, detail) VALUES ($1, $2, $3, $4)",
                    &[&id, &status.as_str(), &format_time(&Utc::now()), &to_json(&detail)],
                )
                .await?;
                if status.is_terminal() {
                    tx.execute("DELETE FROM inflight WHERE event_id = $1", &[&id])
                        .await?;
                }
                Ok(((), Some(id)))
            })
        })
        .await
    }

    pub async fn insert_validation(&self, run: ValidationRun) -> Result<i64> {
        self.write(move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_one(
                        "INSERT INTO validation_runs (event_id, kind, at, body) VALUES ($1, $2, $3, $4) RETURNING id",
                        &[&run.event_id, &run.kind.as_str(), &format_time(&run.at), &to_json(&run)],
                    )
                    .await?;
                Ok((row.get(0), Some(run.event_id.clone())))
            })
        })
        .await
    }

    pub async fn record_delivery(
        &self,
        alerts: Vec<AlertRecord>,
        event: Option<(&Event, TransitionDetail)>,
    ) -> Result<Delivery> {
        let event = event.map(|(e, d)| (StoredEvent::of(e), e.status, d));
        let owner = self.shared.key;
        self.write(move |tx| {
            Box::pin(async move {
                let mut new = Vec::with_capacity(alerts.len());
                for a in &alerts {
                    let n = tx
                        .execute(
                            "INSERT INTO webhook_alerts (fingerprint, starts_at, status, received_at, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                            &[&a.fingerprint, &a.starts_at, &a.status, &format_time(&a.received_at), &to_json(a)],
                        )
                        .await?;
                    new.push(n == 1);
                }
                let first = alerts
                    .iter()
                    .zip(&new)
                    .any(|(a, n)| *n && a.requests_rollback);
                let (event_recorded, held_by, notify) = match &event {
                    Some((ev, status, detail)) if first => {
                        let held = insert_event(tx, ev, *status, detail, owner).await?;
                        (true, held, Some(ev.id.clone()))
                    }
                    _ => (false, None, None),
                };
                Ok((
                    Delivery {
                        new,
                        event_recorded,
                        held_by,
                    },
                    notify,
                ))
            })
        })
        .await
    }

    pub async fn get_event(&self, id: &str) -> Result<Option<Event>> {
        let c = self.client().await?;
        let Some(mut e) = query_events(&**c, "WHERE e.id = $1", &[&id], 1)
            .await?
            .pop()
        else {
            return Ok(None);
        };
        with_details(&**c, &mut e).await?;
        Ok(Some(e))
    }

    pub async fn event_exists(&self, id: &str) -> Result<bool> {
        let c = self.client().await?;
        Ok(
            c.query_opt("SELECT 1 FROM rollback_events WHERE id = $1", &[&id])
                .await?
                .is_some(),
        )
    }

    pub async fn list_events(&self, q: EventQuery) -> Result<Vec<Event>> {
        let c = self.client().await?;
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        if let Some(before) = &q.before {
            let seq: Option<i64> = c
                .query_opt("SELECT seq FROM rollback_events WHERE id = $1", &[before])
                .await?
                .map(|r| r.get(0));
            let seq = seq.ok_or_else(|| StoreError::UnknownCursor(before.clone()))?;
            args.push(Box::new(seq));
            clauses.push(format!("e.seq < ${}", args.len()));
        }
        if let Some(t) = q.trigger_type {
            args.push(Box::new(t.as_str()));
            clauses.push(format!("e.trigger_type = ${}", args.len()));
        }
        if let Some(s) = q.status {
            args.push(Box::new(s.as_str()));
            clauses.push(format!("t.status = ${}", args.len()));
        }
        if let Some(since) = q.since {
            args.push(Box::new(since.timestamp_millis()));
            clauses.push(format!("e.created_ms >= ${}", args.len()));
        }
        if let Some(until) = q.until {
            args.push(Box::new(until.timestamp_millis()));
            clauses.push(format!("e.created_ms < ${}", args.len()));
        }
        if q.unreviewed {
            clauses.push(unreviewed_sql(false));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        query_events(&**c, &filter, &refs, q.limit).await
    }

    pub async fn unfinished_events(&self) -> Result<Vec<Event>> {
        let c = self.client().await?;
        let mut v = query_events(
            &**c,
            "WHERE t.status IN ('pending', 'executing', 'validating')",
            &[],
            u32::MAX,
        )
        .await?;
        v.reverse();
        Ok(v)
    }

    /// Unfinished events whose owner's liveness lock is gone (or that hold no slot at all).
    pub async fn orphaned_events(&self) -> Result<Vec<Event>> {
        let c = self.client().await?;
        let mut v = query_events(
            &**c,
            &format!(
                "WHERE t.status IN ('pending', 'executing', 'validating') AND NOT EXISTS (\
                 SELECT 1 FROM inflight i JOIN pg_locks l ON l.locktype = 'advisory' \
                 AND l.classid = {LIVE_CLASS}::oid AND l.objid::bigint = i.owner AND l.objsubid = 2 \
                 AND l.granted WHERE i.event_id = e.id)"
            ),
            &[],
            u32::MAX,
        )
        .await?;
        v.reverse();
        Ok(v)
    }

    /// Takes the slot of an orphaned event over, in one transaction that re-checks the owner
    /// is still gone.
    pub async fn adopt(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        let me = self.shared.key;
        self.write(move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_opt(
                        &format!("SELECT owner, EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' \
                         AND l.classid = {LIVE_CLASS}::oid AND l.objid::bigint = owner AND l.objsubid = 2 AND l.granted) \
                         FROM inflight WHERE event_id = $1 FOR UPDATE"),
                        &[&id],
                    )
                    .await?;
                let adopted = match row {
                    None => true,
                    Some(r) => {
                        let (owner, alive): (i64, bool) = (r.get(0), r.get(1));
                        if owner == me {
                            true
                        } else if alive {
                            false
                        } else {
                            tx.execute(
                                "UPDATE inflight SET owner = $2 WHERE event_id = $1",
                                &[&id, &me],
                            )
                            .await?;
                            true
                        }
                    }
                };
                Ok((adopted, None))
            })
        })
        .await
    }

    pub async fn in_flight(&self) -> Result<Option<String>> {
        let c = self.client().await?;
        Ok(
            c.query_opt("SELECT event_id FROM inflight WHERE slot = 1", &[])
                .await?
                .map(|r| r.get(0)),
        )
    }

    pub async fn last_executed(&self) -> Result<Option<Event>> {
        let c = self.client().await?;
        Ok(query_events(
            &**c,
            "WHERE e.action = 'rollback' AND t.status NOT IN ('suppressed', 'dry_run')",
            &[],
            1,
        )
        .await?
        .pop())
    }

    pub async fn list_validations(&self, q: ValidationQuery) -> Result<Vec<ValidationRun>> {
        let c = self.client().await?;
        query_validations(&**c, &q).await
    }

    pub async fn probe(&self) -> Result<()> {
        self.write(|tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO health_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at",
                    &[&format_time(&Utc::now())],
                )
                .await?;
                Ok(((), None))
            })
        })
        .await
    }

    pub async fn record_audit(&self, rec: AuditRecord) -> Result<i64> {
        self.write(move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_one(
                        "INSERT INTO audit_log (at, kind, actor, body) VALUES ($1, $2, $3, $4) RETURNING id",
                        &[&format_time(&rec.at), &rec.kind, &rec.actor, &to_json(&rec)],
                    )
                    .await?;
                Ok((row.get(0), Some(AUDIT_NOTICE.to_owned())))
            })
        })
        .await
    }

    pub async fn list_audit(&self, q: AuditQuery) -> Result<Vec<AuditRecord>> {
        let c = self.client().await?;
        let limit = q.limit as i64;
        query_bodies(
            &**c,
            "SELECT id, body FROM audit_log WHERE ($1::BIGINT IS NULL OR id < $1) AND ($2::TEXT IS NULL OR kind = $2) ORDER BY id DESC LIMIT $3",
            &[&q.before, &q.kind, &limit],
            |r: &mut AuditRecord, id| r.id = id,
        )
        .await
    }

    pub async fn record_review(&self, review: Review) -> Result<Review> {
        self.write(move |tx| {
            Box::pin(async move {
                let r = insert_review(tx, &review).await?;
                let id = r.event_id.clone();
                Ok((r, Some(id)))
            })
        })
        .await
    }

    pub async fn list_reviews(&self, q: ReviewQuery) -> Result<Vec<Review>> {
        let c = self.client().await?;
        query_reviews(&**c, &q).await
    }

    pub async fn record_missed(&self, m: MissedDegradation) -> Result<i64> {
        self.write(move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_one(
                        "INSERT INTO missed_degradations (from_ms, to_ms, recorded_at, body) VALUES ($1, $2, $3, $4) RETURNING id",
                        &[&m.from.timestamp_millis(), &m.to.timestamp_millis(), &format_time(&m.recorded_at), &to_json(&m)],
                    )
                    .await?;
                Ok((row.get(0), None))
            })
        })
        .await
    }

    pub async fn list_missed(&self, q: MissedQuery) -> Result<Vec<MissedDegradation>> {
        let c = self.client().await?;
        let since = q.since.map(|t| t.timestamp_millis());
        let until = q.until.map(|t| t.timestamp_millis());
        let limit = q.limit as i64;
        query_bodies(
            &**c,
            "SELECT id, body FROM missed_degradations WHERE ($1::BIGINT IS NULL OR id < $1) \
             AND ($2::BIGINT IS NULL OR from_ms >= $2) AND ($3::BIGINT IS NULL OR from_ms < $3) ORDER BY id DESC LIMIT $4",
            &[&q.before, &since, &until, &limit],
            |m: &mut MissedDegradation, id| m.id = id,
        )
        .await
    }

    pub async fn episodes(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        before: Option<String>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        let c = self.client().await?;
        let mut events = query_events(
            &**c,
            "WHERE e.action = 'rollback' AND e.created_ms >= $1 AND e.created_ms < $2 \
             AND ($3::TEXT IS NULL OR e.seq < (SELECT seq FROM rollback_events WHERE id = $3))",
            &[
                &since.timestamp_millis(),
                &until.timestamp_millis(),
                &before,
            ],
            limit,
        )
        .await?;
        events.reverse();
        for e in &mut events {
            with_details(&**c, e).await?;
        }
        Ok(events)
    }

    pub async fn oldest_unreviewed(&self) -> Result<Option<DateTime<Utc>>> {
        let c = self.client().await?;
        let sql = format!(
            "SELECT MIN(e.created_ms) FROM rollback_events e {EVENT_JOINS} WHERE e.id IN \
             (SELECT event_id FROM rollback_transitions WHERE status IN ('pending', 'executing', 'validating')) AND {}",
            unreviewed_sql(true)
        );
        let ms: Option<i64> = c.query_one(&sql, &[]).await?.get(0);
        Ok(ms.and_then(DateTime::from_timestamp_millis))
    }

    pub async fn alert_starts(&self, fingerprints: Vec<String>) -> Result<Vec<(String, String)>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT fingerprint, starts_at FROM webhook_alerts WHERE fingerprint = ANY($1) AND status = 'firing' ORDER BY id",
                &[&fingerprints],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub async fn alert_keys(&self, limit: usize) -> Result<Vec<(String, String, String)>> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT fingerprint, starts_at, status FROM webhook_alerts ORDER BY id DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}

/// Applies the migrations not yet recorded, one transaction each, serialized across replicas.
async fn migrate(pool: &Pool) -> Result<()> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LEADER_LOCK.0, &2i32],
    )
    .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await?
        .get(0);
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > latest {
        return Err(StoreError::Postgres(format!(
            "the database's schema is version {current}, newer than this rollbackd knows ({latest}); upgrade rollbackd"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await?;
        if *version == 1 {
            for table in APPEND_ONLY_TABLES {
                tx.batch_execute(&format!(
                    "CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION rollbackd_append_only();
                     CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION rollbackd_append_only();"
                ))
                .await?;
            }
        }
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[version],
        )
        .await?;
        tracing::info!(version, "history schema migrated");
    }
    tx.commit().await?;
    Ok(())
}

/// The replica's dedicated session: reconnects with back-off, holds the liveness lock,
/// LISTENs, asks for (or keeps) the leader's lock every heartbeat. Leadership ends, first of
/// all, when the session stops answering within the lease.
async fn session_loop(cfg: tokio_postgres::Config, s: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if s.stop.is_cancelled() {
            return;
        }
        match session(&cfg, &s).await {
            Ok(()) => return,
            Err(e) => {
                let was_leader = s.leader.send_replace(false);
                let was_connected = s.connected.swap(false, Ordering::Relaxed);
                if was_leader {
                    tracing::error!(error = %e, "database session lost; stepped down as leader");
                } else if was_connected {
                    tracing::error!(error = %e, "database session lost; reconnecting");
                } else {
                    tracing::debug!(error = %e, "database still unreachable");
                }
                if was_connected {
                    backoff = Duration::from_millis(100);
                }
            }
        }
        tokio::select! {
            _ = s.stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// A session query that must answer within the lease.
async fn within<T>(
    what: &str,
    f: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
) -> Result<T> {
    match tokio::time::timeout(LEASE, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(StoreError::Postgres(format!(
            "{what}: no answer within {}ms",
            LEASE.as_millis()
        ))),
    }
}

/// One session, until it fails (`Err`) or the store closes (`Ok`).
async fn session(cfg: &tokio_postgres::Config, s: &Arc<Shared>) -> Result<()> {
    let (client, mut conn) = cfg.connect(NoTls).await.map_err(pg_err)?;
    let (lost_tx, mut lost) = tokio::sync::oneshot::channel::<String>();
    let notices = s.notices.clone();
    let me = s.key.to_string();
    let driver = tokio::spawn(async move {
        let why = loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if let Some((origin, id)) = n.payload().split_once(':') {
                        if origin != me {
                            let notice = match id {
                                AUDIT_NOTICE => Notice::Audit,
                                id => Notice::Event(id.to_owned()),
                            };
                            let _ = notices.send(notice);
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "connection closed".to_string(),
            }
        };
        let _ = lost_tx.send(why);
    });
    let _abort = AbortOnDrop(driver);
    within(
        "session setup",
        client.batch_execute(&format!(
            "SET idle_session_timeout = {}; SET statement_timeout = {}; LISTEN {CHANNEL}",
            IDLE_SESSION_TIMEOUT.as_millis(),
            LEASE.as_millis()
        )),
    )
    .await?;
    within(
        "liveness lock",
        client.execute(
            "SELECT pg_advisory_lock($1, $2)",
            &[&LIVE_CLASS, &(s.key as i32)],
        ),
    )
    .await?;
    s.last_ok_ms
        .store(s.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    s.connected.store(true, Ordering::Relaxed);
    let _ = s.notices.send(Notice::Reconnected);
    tracing::info!(replica = s.key, "database session established");
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = s.stop.cancelled() => return Ok(()),
            why = &mut lost => {
                return Err(StoreError::Postgres(why.unwrap_or_else(|_| "connection closed".into())));
            }
            _ = tick.tick() => {}
        }
        let asked = Instant::now();
        if *s.leader.borrow() {
            within("heartbeat", client.execute("SELECT 1", &[])).await?;
        } else {
            let row = within(
                "leader lock",
                client.query_one(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    &[&LEADER_LOCK.0, &LEADER_LOCK.1],
                ),
            )
            .await?;
            // The lease counts from when the question was asked, not answered.
            s.last_ok_ms.store(
                asked.duration_since(s.epoch).as_millis() as u64,
                Ordering::Relaxed,
            );
            if row.get::<_, bool>(0) {
                s.leader.send_replace(true);
                tracing::warn!(replica = s.key, "took the leadership");
            }
            continue;
        }
        s.last_ok_ms.store(
            asked.duration_since(s.epoch).as_millis() as u64,
            Ordering::Relaxed,
        );
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Inserts an event with its first transition; a pending one claims the slot for `owner` or,
/// when another event holds it, goes in as suppressed (`in_progress`).
async fn insert_event(
    tx: &Tx<'_>,
    ev: &StoredEvent,
    status: EventStatus,
    detail: &TransitionDetail,
    owner: i64,
) -> Result<Option<String>> {
    if !matches!(
        status,
        EventStatus::Pending | EventStatus::Suppressed | EventStatus::DryRun
    ) {
        return Err(StoreError::Invalid(format!(
            "an event cannot start as {status}"
        )));
    }
    let created = format_time(&ev.created_at);
    tx.execute(
        "INSERT INTO rollback_events (id, created_at, created_ms, action, trigger_type, body) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&ev.id, &created, &ev.created_at.timestamp_millis(), &ev.request.action.as_str(), &ev.request.trigger_type.as_str(), &to_json(ev)],
    )
    .await?;
    let mut held = None;
    if status == EventStatus::Pending {
        // The holder may finish between the refused claim and the read: claim again then.
        for _ in 0..5 {
            let claimed = tx
                .execute(
                    "INSERT INTO inflight (slot, event_id, owner, claimed_at) VALUES (1, $1, $2, $3) ON CONFLICT (slot) DO NOTHING",
                    &[&ev.id, &owner, &created],
                )
                .await?;
            if claimed == 1 {
                break;
            }
            held = tx
                .query_opt("SELECT event_id FROM inflight WHERE slot = 1", &[])
                .await?
                .map(|r| r.get::<_, String>(0));
            if held.is_some() {
                break;
            }
        }
    }
    let (status, detail) = match &held {
        Some(holder) => (EventStatus::Suppressed, held_detail(holder)),
        None => (status, detail.clone()),
    };
    tx.execute(
        "INSERT INTO rollback_transitions (event_id, status, at, detail) VALUES ($1, $2, $3, $4)",
        &[&ev.id, &status.as_str(), &created, &to_json(&detail)],
    )
    .await?;
    Ok(held)
}

async fn latest_status(c: &impl GenericClient, event_id: &str) -> Result<Option<EventStatus>> {
    let s: Option<String> = c
        .query_opt(
            "SELECT status FROM rollback_transitions WHERE event_id = $1 ORDER BY seq DESC LIMIT 1",
            &[&event_id],
        )
        .await?
        .map(|r| r.get(0));
    s.map(|s| parse_status(&s)).transpose()
}

async fn insert_review(tx: &Tx<'_>, review: &Review) -> Result<Review> {
    let action: Option<String> = tx
        .query_opt(
            "SELECT action FROM rollback_events WHERE id = $1 FOR NO KEY UPDATE",
            &[&review.event_id],
        )
        .await?
        .map(|r| r.get(0));
    let action = action.ok_or_else(|| StoreError::UnknownEvent(review.event_id.clone()))?;
    let action = Action::parse(&action)
        .ok_or_else(|| StoreError::Invalid(format!("unknown action {action:?} in history")))?;
    let status = latest_status(&**tx, &review.event_id)
        .await?
        .ok_or_else(|| StoreError::UnknownEvent(review.event_id.clone()))?;
    EpisodeKind::of(action, status).map_err(|why| StoreError::NotReviewable {
        id: review.event_id.clone(),
        why,
    })?;
    let mut stored = review.clone();
    stored.id = 0;
    stored.superseded_by = None;
    stored.supersedes = tx
        .query_one(
            "SELECT MAX(id) FROM reviews WHERE event_id = $1",
            &[&review.event_id],
        )
        .await?
        .get(0);
    let row = tx
        .query_one(
            "INSERT INTO reviews (event_id, verdict, reviewed_at, body) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&stored.event_id, &stored.verdict.as_str(), &format_time(&stored.reviewed_at), &to_json(&stored)],
        )
        .await?;
    stored.id = row.get(0);
    Ok(stored)
}

const EVENT_JOINS: &str = "JOIN rollback_transitions t ON t.seq = (SELECT MAX(seq) FROM rollback_transitions WHERE event_id = e.id) \
    LEFT JOIN reviews r ON r.id = (SELECT MAX(id) FROM reviews WHERE event_id = e.id)";

async fn query_events(
    c: &impl GenericClient,
    filter: &str,
    args: &[&(dyn ToSql + Sync)],
    limit: u32,
) -> Result<Vec<Event>> {
    let sql = format!(
        "SELECT e.body, t.status, t.at, t.detail, r.id, r.body FROM rollback_events e {EVENT_JOINS} \
         {filter} ORDER BY e.seq DESC LIMIT {limit}"
    );
    let rows = c.query(&sql, args).await?;
    rows.iter()
        .map(|r| {
            let stored: StoredEvent = from_json(r.get::<_, &str>(0))?;
            let status = parse_status(r.get::<_, &str>(1))?;
            let at = parse_time(r.get::<_, &str>(2))?;
            let detail: TransitionDetail = from_json(r.get::<_, &str>(3))?;
            let mut event = stored.into_event(status).at(status, at, detail);
            if let (Some(id), Some(body)) =
                (r.get::<_, Option<i64>>(4), r.get::<_, Option<&str>>(5))
            {
                let mut review: Review = from_json(body)?;
                review.id = id;
                event.review = Some(review);
            }
            Ok(event)
        })
        .collect()
}

async fn with_details(c: &impl GenericClient, event: &mut Event) -> Result<()> {
    let rows = c
        .query(
            "SELECT status, at, detail FROM rollback_transitions WHERE event_id = $1 ORDER BY seq",
            &[&event.id],
        )
        .await?;
    let transitions = rows
        .iter()
        .map(|r| {
            Ok(Transition {
                status: parse_status(r.get::<_, &str>(0))?,
                at: parse_time(r.get::<_, &str>(1))?,
                detail: from_json(r.get::<_, &str>(2))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    event.transitions = Some(transitions);
    let q = ValidationQuery {
        limit: 1000,
        before: None,
        event_id: Some(event.id.clone()),
    };
    event.validations = Some(query_validations(c, &q).await?);
    let q = ReviewQuery {
        limit: 1000,
        event_id: Some(event.id.clone()),
        ..Default::default()
    };
    let mut reviews = query_reviews(c, &q).await?;
    reviews.reverse();
    event.reviews = Some(reviews);
    Ok(())
}

async fn query_reviews(c: &impl GenericClient, q: &ReviewQuery) -> Result<Vec<Review>> {
    let verdict = q.verdict.map(|v| v.as_str());
    let limit = q.limit as i64;
    let rows = c
        .query(
            "SELECT id, body, later FROM (SELECT r.id, r.body, r.event_id, r.verdict, \
             (SELECT MIN(id) FROM reviews l WHERE l.event_id = r.event_id AND l.id > r.id) AS later FROM reviews r) x \
             WHERE ($1::BIGINT IS NULL OR id < $1) AND ($2::TEXT IS NULL OR event_id = $2) \
             AND ($3::TEXT IS NULL OR verdict = $3) AND (NOT $4 OR later IS NULL) ORDER BY id DESC LIMIT $5",
            &[&q.before, &q.event_id, &verdict, &q.current_only, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let mut review: Review = from_json(r.get::<_, &str>(1))?;
            review.id = r.get(0);
            review.superseded_by = r.get(2);
            Ok(review)
        })
        .collect()
}

async fn query_validations(
    c: &impl GenericClient,
    q: &ValidationQuery,
) -> Result<Vec<ValidationRun>> {
    let limit = q.limit as i64;
    query_bodies(
        c,
        "SELECT id, body FROM validation_runs WHERE ($1::BIGINT IS NULL OR id < $1) AND ($2::TEXT IS NULL OR event_id = $2) ORDER BY id DESC LIMIT $3",
        &[&q.before, &q.event_id, &limit],
        |r: &mut ValidationRun, id| r.id = id,
    )
    .await
}

async fn query_bodies<T: for<'de> Deserialize<'de>>(
    c: &impl GenericClient,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
    set_id: impl Fn(&mut T, i64),
) -> Result<Vec<T>> {
    let rows = c.query(sql, args).await?;
    rows.iter()
        .map(|r| {
            let mut item: T = from_json(r.get::<_, &str>(1))?;
            set_id(&mut item, r.get(0));
            Ok(item)
        })
        .collect()
}
