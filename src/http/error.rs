//! One error shape for every route: `{"error": {"code", "message"}}` with the right status. A
//! rollback or restore that ran and failed also carries the recorded event beside it.

use crate::domain::review::NotReviewable;
use crate::engine::EngineError;
use crate::store::{Event, StoreError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The event a failed execution left in the history.
    pub event: Option<Box<Event>>,
    /// Seconds until a rate-limited caller may try again (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            event: None,
            retry_after: None,
        }
    }

    /// 502 `target_error`: the execution ran and the trading system did not end where asked.
    pub fn failed(event: Event) -> ApiError {
        let why = event.failure_reason.clone().unwrap_or_default();
        ApiError {
            event: Some(Box::new(event)),
            ..ApiError::new(StatusCode::BAD_GATEWAY, "target_error", why)
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some(event) = self.event {
            body["event"] = json!(event);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer realm=\"rollbackd\""),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::UnknownCursor(_) => ApiError::bad_request(e.to_string()),
            StoreError::UnknownEvent(_) => ApiError::not_found(e.to_string()),
            // A rollback still running: as for any action on it, 409 rollback_in_progress.
            StoreError::NotReviewable {
                why: NotReviewable::InFlight(_),
                ..
            } => ApiError::new(StatusCode::CONFLICT, "rollback_in_progress", e.to_string()),
            StoreError::NotReviewable { .. } => ApiError::bad_request(e.to_string()),
            _ => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                e.to_string(),
            ),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let message = e.to_string();
        match e {
            EngineError::Storage(s) => s.into(),
            EngineError::InProgress(_) => {
                ApiError::new(StatusCode::CONFLICT, "rollback_in_progress", message)
            }
            EngineError::NotRolledBack { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_rolled_back", message)
            }
            EngineError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
            }
            EngineError::Invalid(_) | EngineError::Rejected(_) => ApiError::bad_request(message),
            EngineError::NotActive(_) => ApiError::new(StatusCode::CONFLICT, "not_active", message),
            EngineError::NotFound(_) => ApiError::not_found(message),
            EngineError::SecondPersonRequired(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "second_person_required", message)
            }
        }
    }
}
