//! The JSON API v1: thin handlers over the engine.

use super::auth::{authorize, bearer, Actor, Need};
use super::error::ApiError;
use super::AppState;
use crate::domain::lifecycle::AutomaticPath;
use crate::domain::lifecycle::{EventStatus, SuppressReason, TriggerType};
use crate::engine::{Requested, RollbackRequest};
use crate::events::Rejection;
use crate::store::{AuditQuery, EventQuery, ValidationQuery};
use crate::views::AutomationView;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

/// The longest reason accepted.
pub const MAX_REASON: usize = 500;

/// A JSON body, strictly: `application/json`, within the size limit, no unknown fields, and a
/// message naming the field that is wrong.
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        parse_json(&bytes).map(StrictJson)
    }
}

/// The body of a JSON request, with 415 and 413 answered here.
pub async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::unsupported_media_type(format!(
            "expected Content-Type application/json, got {:?}",
            ct
        )));
    }
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("the request body is over the limit")
        } else {
            ApiError::bad_request(format!("cannot read the request body: {e}"))
        }
    })
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON body at {path}: {inner}"))
        }
    })
}

/// Who is asking, judged against what the route needs: a read may come as a basic-auth user
/// (already let in by the basic-auth gate); a write with a token counts against that token's
/// rate (not the webhook: Alertmanager is never throttled; nor open mode, which has no token
/// to count against and lets anyone write anyway).
pub fn actor(state: &AppState, headers: &HeaderMap, need: Need) -> Result<Actor, ApiError> {
    if need == Need::Read {
        if let Some(user) = super::basic::reader(state, headers) {
            return Ok(Actor {
                name: user,
                role: Some(crate::config::Role::Viewer),
            });
        }
    }
    let who = authorize(&state.auth.load(), bearer(headers)?, need)?;
    if matches!(need, Need::Operator | Need::Admin) && who.role.is_some() {
        state.edge.check_write(&who.name)?;
    }
    Ok(who)
}

pub(super) fn check_reason(reason: &str) -> Result<String, ApiError> {
    let trimmed = reason.trim();
    if trimmed.is_empty() {
        return Err(ApiError::bad_request(
            "reason is required and must not be blank",
        ));
    }
    if reason.chars().count() > MAX_REASON {
        return Err(ApiError::bad_request(format!(
            "reason is {} characters; at most {MAX_REASON}",
            reason.chars().count()
        )));
    }
    Ok(trimmed.to_owned())
}

pub async fn status(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    Ok(Json(s.engine.status()).into_response())
}

pub async fn triggers(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    Ok(Json(s.engine.triggers()).into_response())
}

/// The body of a rollback or a restore.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    reason: String,
    #[serde(default)]
    dry_run: bool,
}

/// The token is judged before the body: an unauthenticated caller learns nothing about what
/// the route would accept.
pub async fn rollback(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<RollbackBody>::from_request(req, &s).await?;
    let reason = check_reason(&body.reason)?;
    let req = RollbackRequest {
        trigger_type: TriggerType::Manual,
        source: "api".into(),
        reason,
        actor: who.name,
        dry_run: body.dry_run,
        alert_names: vec![],
        fingerprints: vec![],
        approval: Default::default(),
    };
    match s.engine.request_rollback(req).await? {
        // Awaiting a spawned task: a client that hangs up does not cancel the rollback.
        Requested::Started { done, .. } => {
            let event = done.await.map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_ready",
                    "the rollback task ended early; see the history",
                )
            })?;
            answer(event.map_err(unrecorded)?)
        }
        Requested::DryRun { event } => Ok(Json(event).into_response()),
        Requested::Suppressed { event, reason } => {
            let (code, message) = match reason {
                SuppressReason::InProgress => (
                    "rollback_in_progress",
                    format!("rollback {} is in progress; this request was recorded as suppressed event {}", s.engine.status().in_progress.unwrap_or_default(), event.id),
                ),
                SuppressReason::AlreadyRolledBack => (
                    "already_rolled_back",
                    format!("the trading system is already in {}; recorded as suppressed event {}", event.request.target_mode, event.id),
                ),
                SuppressReason::Cooldown => ("cooldown", format!("in cooldown; recorded as suppressed event {}", event.id)),
                // Manual requests are never held by arming, freezes or confirm mode.
                other => (other.as_str(), format!("recorded as suppressed event {} ({})", event.id, other.as_str())),
            };
            Err(ApiError::new(StatusCode::CONFLICT, code, message))
        }
        Requested::Proposed(p) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"proposal": p})),
        )
            .into_response()),
    }
}

/// The execution ran but the history refused its outcome: 503, and the slot stays held until
/// an outcome is recorded.
fn unrecorded(e: crate::store::StoreError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        format!("{e}; the rollback ran but its outcome could not be recorded: rollbackd holds the execution slot and keeps trying to record it (see the history)"),
    )
}

/// An executed rollback or restore: 200 when it completed, 502 with the event when it failed.
fn answer(event: crate::store::Event) -> Result<Response, ApiError> {
    if event.status == EventStatus::Failed {
        return Err(ApiError::failed(event));
    }
    Ok(Json(event).into_response())
}

pub async fn restore(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Admin)?;
    let StrictJson(body) = StrictJson::<RollbackBody>::from_request(req, &s).await?;
    let reason = check_reason(&body.reason)?;
    if s.engine.restore_needs_second_person() && !body.dry_run {
        let ask = s.engine.ask_restore(&reason, &who.name).await?;
        let body = serde_json::json!({"restore_request": ask});
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let event = s.engine.restore(reason, who.name, body.dry_run).await?;
    if body.dry_run {
        return Ok(Json(event).into_response());
    }
    answer(event)
}

pub async fn monitoring_start(s: State<AppState>, req: Request) -> Result<Response, ApiError> {
    set_monitoring(s, req, true).await
}

pub async fn monitoring_stop(s: State<AppState>, req: Request) -> Result<Response, ApiError> {
    set_monitoring(s, req, false).await
}

/// `{}` or `{"reason": "..."}`: a JSON body is required, so a cross-site form or a "simple"
/// cross-origin POST (which cannot send `application/json` without a preflight) cannot disarm
/// the watchdog, whatever the token setup.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringBody {
    #[serde(default)]
    reason: Option<String>,
}

/// Arms or disarms the watchdog; recorded with the token's actor.
async fn set_monitoring(
    State(s): State<AppState>,
    req: Request,
    on: bool,
) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<MonitoringBody>::from_request(req, &s).await?;
    let given = body.reason.as_deref().map(check_reason).transpose()?;
    let why = given.unwrap_or_else(|| {
        if on {
            "monitoring start"
        } else {
            "monitoring stop"
        }
        .to_string()
    });
    let why = why.as_str();
    let arming = s
        .engine
        .arm(AutomaticPath::Watchdog, on, &who.name, why)
        .await?;
    Ok(Json(json!({"monitoring_active": arming.watchdog.armed})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmBody {
    path: String,
    armed: bool,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    reason: String,
}

/// `POST /api/v1/automation`: arms or disarms one automatic path (operator).
pub async fn automation(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<ArmBody>::from_request(req, &s).await?;
    let path = AutomaticPath::parse(&body.path).ok_or_else(|| {
        ApiError::bad_request(format!(
            "path {:?} is not an automatic path; expected watchdog or alertmanager",
            body.path
        ))
    })?;
    let reason = check_reason(&body.reason)?;
    let arming = s.engine.arm(path, body.armed, &who.name, &reason).await?;
    Ok(Json(AutomationView::from(arming)).into_response())
}

/// `POST /api/v1/automation/disarm-all`: the emergency switch (operator).
pub async fn disarm_all(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<ReasonBody>::from_request(req, &s).await?;
    let reason = check_reason(&body.reason)?;
    let arming = s.engine.disarm_all(&who.name, &reason).await?;
    Ok(Json(AutomationView::from(arming)).into_response())
}

/// `GET /api/v1/audit`: changes to how rollbackd runs, newest first.
pub async fn list_audit(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    let p = Params::new(q, &["limit", "before", "kind"])?;
    let limit = p.limit()?;
    let before = p.parsed(
        "before",
        |v| v.parse::<i64>().ok(),
        "must be an audit record id (a whole number)",
    )?;
    let records = s
        .store
        .list_audit(AuditQuery {
            limit,
            before,
            kind: p.0.get("kind").cloned(),
        })
        .await?;
    Ok(page("records", records, limit, |r| json!(r.id)))
}

/// `POST /-/reload` (admin), as Prometheus names it: the config file is validated first; a bad
/// one is refused (400, naming the mistake) and the running config kept.
pub async fn reload(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let who = actor(&s, &headers, Need::Admin)?;
    match super::reload(&s) {
        Ok(r) => {
            tracing::info!(actor = %who.name, "config reloaded on request");
            Ok(Json(r).into_response())
        }
        Err(e) => {
            tracing::error!(actor = %who.name, error = %e, "config reload refused");
            Err(ApiError::bad_request(e.to_string()))
        }
    }
}

/// Query parameters, refused by name when unknown or malformed.
pub(super) struct Params(pub(super) HashMap<String, String>);

impl Params {
    pub(super) fn new(q: HashMap<String, String>, allowed: &[&str]) -> Result<Params, ApiError> {
        if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {k:?}; expected one of {}",
                allowed.join(", ")
            )));
        }
        Ok(Params(q))
    }

    pub(super) fn limit(&self) -> Result<u32, ApiError> {
        let limit = self.parsed(
            "limit",
            |v| v.parse::<u32>().ok().filter(|n| (1..=500).contains(n)),
            "must be a whole number from 1 to 500",
        )?;
        Ok(limit.unwrap_or(50))
    }

    /// The value under `key` through `parse`; a value it refuses is a 400 saying what was
    /// expected.
    pub(super) fn parsed<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<Option<T>, ApiError> {
        self.0
            .get(key)
            .map(|v| {
                parse(v).ok_or_else(|| ApiError::bad_request(format!("{key} {v:?} {expected}")))
            })
            .transpose()
    }

    /// `true` or `false`; absent is false.
    pub(super) fn flag(&self, key: &str) -> Result<bool, ApiError> {
        let v = self.parsed(key, |v| v.parse::<bool>().ok(), "must be true or false")?;
        Ok(v.unwrap_or(false))
    }

    pub(super) fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.parsed(
            key,
            |v| {
                DateTime::parse_from_rfc3339(v)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            },
            "must be an RFC 3339 time such as 2026-11-23T10:00:00Z",
        )
    }
}

/// One page of a list route: the items under `key`, and `next_before`, the cursor of the last
/// item when the page is full (there may be more), else null.
pub(super) fn page<T: serde::Serialize>(
    key: &str,
    items: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> serde_json::Value,
) -> Response {
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(&cursor))
        .flatten();
    let mut body = serde_json::Map::new();
    body.insert(key.into(), json!(items));
    body.insert("next_before".into(), json!(next));
    Json(body).into_response()
}

pub async fn list_rollbacks(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    let p = Params::new(
        q,
        &[
            "limit",
            "before",
            "trigger_type",
            "status",
            "since",
            "until",
            "unreviewed",
        ],
    )?;
    let limit = p.limit()?;
    let trigger_type = p.parsed(
        "trigger_type",
        TriggerType::parse,
        "must be watchdog, alertmanager or manual",
    )?;
    let status = p.parsed(
        "status",
        EventStatus::parse,
        "must be one of pending, executing, validating, completed, failed, suppressed, dry_run",
    )?;
    let query = EventQuery {
        limit,
        before: p.0.get("before").cloned(),
        trigger_type,
        status,
        since: p.time("since")?,
        until: p.time("until")?,
        unreviewed: p.flag("unreviewed")?,
    };
    let events = s.store.list_events(query).await?;
    Ok(page("events", events, limit, |e| json!(e.id)))
}

pub async fn get_rollback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    match s.store.get_event(&id).await? {
        Some(e) => Ok(Json(e).into_response()),
        None => Err(ApiError::not_found(format!(
            "no rollback event with id {id:?}"
        ))),
    }
}

pub async fn list_validations(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    let p = Params::new(q, &["limit", "before", "event_id"])?;
    let limit = p.limit()?;
    let before = p.parsed(
        "before",
        |v| v.parse::<i64>().ok(),
        "must be a validation id (a whole number)",
    )?;
    let runs = s
        .engine
        .store()
        .list_validations(ValidationQuery {
            limit,
            before,
            event_id: p.0.get("event_id").cloned(),
        })
        .await?;
    Ok(page("validations", runs, limit, |r| json!(r.id)))
}

/// Alertmanager's webhook: 2xx only once the delivery is durably recorded.
pub async fn alertmanager(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let reject = |why: Rejection, e: ApiError| {
        s.engine.reject_delivery(why);
        e
    };
    actor(&s, req.headers(), Need::Webhook).map_err(|e| reject(Rejection::Unauthorized, e))?;
    let bytes = json_bytes(req, &()).await.map_err(|e| {
        let why = if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            Rejection::TooLarge
        } else {
            Rejection::Malformed
        };
        reject(why, e)
    })?;
    if let Some(answered) = s.engine.receive_resend(&bytes) {
        let outcome = answered.map_err(|e| reject(Rejection::Storage, e.into()))?;
        return Ok(Json(outcome).into_response());
    }
    let payload = crate::alertmanager::parse(&bytes).map_err(|e| {
        let why = match e {
            crate::alertmanager::PayloadError::Version(_) => Rejection::Version,
            crate::alertmanager::PayloadError::Malformed(_) => Rejection::Malformed,
        };
        reject(why, ApiError::bad_request(e.to_string()))
    })?;
    let outcome = s
        .engine
        .receive_delivery(&bytes, payload)
        .await
        .map_err(|e| reject(Rejection::Storage, e.into()))?;
    Ok(Json(outcome).into_response())
}
