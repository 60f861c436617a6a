//! Freezes, maintenance windows, regimes, the automation mode, proposals (confirm mode) and
//! two-person restores: thin handlers over the engine. Changes need the operator role; a
//! restore's approval needs an admin other than the one who asked.

use super::api::{actor, check_reason, StrictJson};
use super::auth::Need;
use super::error::ApiError;
use super::AppState;
use crate::domain::holds::{AutomationMode, WindowKind};
use crate::engine::{Requested, WindowAsk};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// `"45m"`, `"8h"`: the duration a window or regime holds.
fn duration(field: &str, text: Option<&str>) -> Result<Option<Duration>, ApiError> {
    text.map(|t| {
        humantime::parse_duration(t.trim()).map_err(|e| {
            ApiError::bad_request(format!(
                "{field}: invalid duration {t:?} ({e}); expected a duration such as \"45m\" or \"8h\""
            ))
        })
    })
    .transpose()
}

pub async fn holds(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    Ok(Json(s.engine.holds()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    expected_healthy_agents: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    reason: String,
}

async fn start_window(s: AppState, req: Request, kind: WindowKind) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<WindowBody>::from_request(req, &s).await?;
    let reason = check_reason(&body.reason)?;
    let ask = WindowAsk {
        kind,
        name: body.name,
        duration: duration("duration", body.duration.as_deref())?,
        reason,
        expected_healthy_agents: body.expected_healthy_agents,
    };
    let w = s.engine.start_window(ask, &who.name).await?;
    let mut body = serde_json::Map::new();
    body.insert(kind.as_str().into(), json!(w));
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn end_window(s: AppState, req: Request, kind: WindowKind) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<ReasonBody>::from_request(req, &s).await?;
    let reason = check_reason(&body.reason)?;
    let w = s.engine.end_window(kind, &who.name, &reason).await?;
    Ok(Json(json!({ "ended": w })).into_response())
}

pub async fn freeze(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    start_window(s, req, WindowKind::Freeze).await
}

pub async fn unfreeze(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    end_window(s, req, WindowKind::Freeze).await
}

pub async fn maintenance(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    start_window(s, req, WindowKind::Maintenance).await
}

pub async fn end_maintenance(
    State(s): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    end_window(s, req, WindowKind::Maintenance).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegimeBody {
    name: String,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    reason: String,
}

pub async fn set_regime(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<RegimeBody>::from_request(req, &s).await?;
    let reason = check_reason(&body.reason)?;
    let d = duration("duration", body.duration.as_deref())?;
    let r = s
        .engine
        .set_regime(&body.name, d, &who.name, &reason)
        .await?;
    Ok(Json(json!({ "regime": r, "holds": s.engine.holds() })).into_response())
}

pub async fn clear_regime(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<ReasonBody>::from_request(req, &s).await?;
    let reason = check_reason(&body.reason)?;
    let r = s.engine.clear_regime(&who.name, &reason).await?;
    Ok(Json(json!({ "cleared": r })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    mode: String,
    #[serde(default)]
    reason: String,
}

pub async fn set_mode(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<ModeBody>::from_request(req, &s).await?;
    let reason = check_reason(&body.reason)?;
    let mode = AutomationMode::parse(&body.mode).ok_or_else(|| {
        ApiError::bad_request(format!(
            "mode: unknown mode {:?}; expected auto, confirm or observe",
            body.mode
        ))
    })?;
    let m = s.engine.set_mode(mode, &who.name, &reason).await?;
    Ok(Json(json!({ "automation_mode": m })).into_response())
}

pub async fn approve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    answer(s, id, req, true).await
}

pub async fn reject(
    State(s): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    answer(s, id, req, false).await
}

/// An approved proposal answers like a manual rollback (the event once validated); a rejected
/// one with the suppressed event.
async fn answer(
    s: AppState,
    id: String,
    req: Request,
    approve: bool,
) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<ReasonBody>::from_request(req, &s).await?;
    if !approve {
        check_reason(&body.reason)?;
    }
    match s
        .engine
        .answer_proposal(&id, approve, &who.name, &body.reason)
        .await?
    {
        Requested::Started { done, .. } => {
            let event = done.await.map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_ready",
                    "the rollback task ended early; see the history",
                )
            })?;
            let event = event.map_err(ApiError::from)?;
            if event.status == crate::domain::lifecycle::EventStatus::Failed {
                return Err(ApiError::failed(event));
            }
            Ok(Json(event).into_response())
        }
        Requested::Suppressed { event, .. } | Requested::DryRun { event } => {
            Ok(Json(event).into_response())
        }
        Requested::Proposed(p) => {
            Ok((StatusCode::ACCEPTED, Json(json!({"proposal": p}))).into_response())
        }
    }
}

pub async fn approve_restore(
    State(s): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Admin)?;
    let StrictJson(body) = StrictJson::<ReasonBody>::from_request(req, &s).await?;
    let event = s
        .engine
        .approve_restore(&id, &who.name, &body.reason)
        .await?;
    if event.status == crate::domain::lifecycle::EventStatus::Failed {
        return Err(ApiError::failed(event));
    }
    Ok(Json(event).into_response())
}
