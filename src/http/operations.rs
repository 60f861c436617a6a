//! Drills and notification tests: run by an operator (or the schedule), stored, listed.

use super::api::{actor, StrictJson};
use super::auth::Need;
use super::error::ApiError;
use super::AppState;
use crate::engine::{DrillReport, NotificationTestReport};
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

fn limit(q: &HashMap<String, String>) -> Result<u32, ApiError> {
    match q.get("limit") {
        None => Ok(20),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit: {v:?} is not 1 to 500"))),
    }
}

/// `POST /api/v1/drills`: 201 with the drill's report (passed or not: a failing step is a
/// finding, stored like a passing one).
pub async fn run_drill(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(_) =
        StrictJson::<serde_json::Map<String, serde_json::Value>>::from_request(req, &s).await?;
    let report = s.engine.drill(&who.name).await?;
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

pub async fn list_drills(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    let drills: Vec<DrillReport> = s.engine.operations("drill", limit(&q)?).await?;
    Ok(Json(json!({ "drills": drills })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    #[serde(default)]
    channels: Option<Vec<String>>,
}

/// `POST /api/v1/notification-tests`: 201 with the per-channel result, once Alertmanager's
/// counters have said (or `notification_tests.wait` ran out).
pub async fn run_notification_test(
    State(s): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let who = actor(&s, req.headers(), Need::Operator)?;
    let StrictJson(body) = StrictJson::<TestBody>::from_request(req, &s).await?;
    let report = s.engine.notification_test(&who.name, body.channels).await?;
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

pub async fn list_notification_tests(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    actor(&s, &headers, Need::Read)?;
    let tests: Vec<NotificationTestReport> =
        s.engine.operations("notification_test", limit(&q)?).await?;
    Ok(Json(json!({ "notification_tests": tests })).into_response())
}
