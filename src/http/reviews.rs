//! Reviews of trigger episodes, missed degradations and the incident report: thin handlers
//! over the engine. Writes need the operator role; the reviewer is the token's actor.

use super::api::{actor, page, Params, StrictJson};
use super::auth::Need;
use super::error::ApiError;
use super::AppState;
use crate::domain::review::{ReviewDraft, Verdict};
use crate::report::render;
use crate::store::{MissedQuery, ReviewQuery};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

/// The longest period a report covers: ten years of days.
const MAX_REPORT_DAYS: i64 = 3660;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    verdict: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    ticket_url: Option<String>,
}

/// `POST /api/v1/rollbacks/{id}/review`: 201 with the stored review.
pub async fn review(
    State(s): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<ReviewBody>::from_request(req, &s).await?;
    let draft = ReviewDraft::new(
        &body.verdict,
        body.note.as_deref(),
        body.ticket_url.as_deref(),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let stored = s.engine.review(&id, draft, &who.name).await?;
    Ok((axum::http::StatusCode::CREATED, Json(stored)).into_response())
}

/// `GET /api/v1/reviews`: newest first; `current=true` leaves out superseded ones.
pub async fn list_reviews(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    let p = Params::new(q, &["limit", "before", "event_id", "verdict", "current"])?;
    let limit = p.limit()?;
    let allowed = format!("must be one of {}", Verdict::allowed());
    let query = ReviewQuery {
        limit,
        before: p.parsed(
            "before",
            |v| v.parse::<i64>().ok(),
            "must be a review id (a whole number)",
        )?,
        event_id: p.0.get("event_id").cloned(),
        verdict: p.parsed("verdict", Verdict::parse, &allowed)?,
        current_only: p.flag("current")?,
    };
    let reviews = s.store.list_reviews(query).await?;
    Ok(page("reviews", reviews, limit, |r| json!(r.id)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissedBody {
    from: String,
    to: String,
    conditions: Vec<String>,
    #[serde(default)]
    note: String,
}

fn rfc3339(key: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{key} {v:?} must be an RFC 3339 time such as 2026-11-23T10:00:00Z"
            ))
        })
}

/// `POST /api/v1/missed`: 201 with the recorded missed degradation.
pub async fn record_missed(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<MissedBody>::from_request(req, &s).await?;
    let from = rfc3339("from", &body.from)?;
    let to = rfc3339("to", &body.to)?;
    let missed = s
        .engine
        .record_missed(from, to, &body.conditions, &body.note, &who.name)
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(missed)).into_response())
}

/// `GET /api/v1/missed`: newest first, by when they began within `since`/`until`.
pub async fn list_missed(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    let p = Params::new(q, &["limit", "before", "since", "until"])?;
    let limit = p.limit()?;
    let query = MissedQuery {
        limit,
        before: p.parsed(
            "before",
            |v| v.parse::<i64>().ok(),
            "must be a missed degradation id (a whole number)",
        )?,
        since: p.time("since")?,
        until: p.time("until")?,
    };
    let missed = s.store.list_missed(query).await?;
    Ok(page("missed_degradations", missed, limit, |m| json!(m.id)))
}

/// `30d`, `12h` (before `now`) or an RFC 3339 time.
fn since_of(v: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    let d = humantime::parse_duration(v).ok()?;
    let d = chrono::Duration::from_std(d).ok()?;
    (d > chrono::Duration::zero() && d <= chrono::Duration::days(MAX_REPORT_DAYS)).then(|| now - d)
}

/// The report's formats.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Markdown,
    Csv,
}

/// `GET /api/v1/report?since=30d&until=...&format=json|md|csv`.
pub async fn report(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    let p = Params::new(q, &["since", "until", "format"])?;
    let now = Utc::now();
    let since = p
        .parsed(
            "since",
            |v| since_of(v, now),
            &format!("must be a duration such as 30d or 90d (at most {MAX_REPORT_DAYS} days) or an RFC 3339 time"),
        )?
        .unwrap_or(now - chrono::Duration::days(30));
    let until = p.time("until")?.unwrap_or(now);
    if since >= until {
        return Err(ApiError::bad_request(format!(
            "since {} is not before until {}",
            since.to_rfc3339(),
            until.to_rfc3339()
        )));
    }
    let format = p
        .parsed(
            "format",
            |v| match v {
                "json" => Some(Format::Json),
                "md" | "markdown" => Some(Format::Markdown),
                "csv" => Some(Format::Csv),
                _ => None,
            },
            "must be json, md or csv",
        )?
        .unwrap_or(Format::Json);
    let report = s.engine.report(since, until).await?;
    Ok(match format {
        Format::Json => Json(report).into_response(),
        Format::Markdown => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            render::markdown(&report),
        )
            .into_response(),
        Format::Csv => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            render::csv(&report),
        )
            .into_response(),
    })
}
