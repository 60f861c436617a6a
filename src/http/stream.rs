//! `GET /api/v1/stream`: a WebSocket of JSON messages. A new subscriber first gets the current
//! status and triggers; a subscriber that falls behind is disconnected, never waited for.

use super::auth::{authorize, bearer, Need};
use super::error::ApiError;
use super::AppState;
use crate::views::StreamMessage;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// A send that takes longer than this means the client is not reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Each stream's read buffer. Clients send nothing but control frames, and the buffer still
/// grows to take a frame up to `MAX_MESSAGE` when one comes; tungstenite's default (128 KiB,
/// zeroed before every read) made a thousand idle streams cost 140 MiB.
const READ_BUFFER: usize = 4 * 1024;
/// The largest message a client may send.
const MAX_MESSAGE: usize = 64 * 1024;
/// Unsent bytes a stream may hold: every message is written (and flushed) as it is sent, so
/// more than this means the socket refuses writes; the send then fails and the stream ends
/// (the client reconnects for the current state), as it would at `SEND_TIMEOUT`.
const MAX_UNSENT: usize = 1024 * 1024;

pub async fn stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // Browsers cannot set headers on a WebSocket; the token may come as `access_token`.
    if super::basic::reader(&s, &headers).is_none() {
        let token = match bearer(&headers)? {
            Some(t) => Some(t.to_owned()),
            None => q.get("access_token").cloned(),
        };
        authorize(&s.auth.load(), token.as_deref(), Need::Read)?;
    }
    // Anonymous readers take a place too; it is freed when the stream ends.
    let slot = s.edge.stream_slot()?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_UNSENT)
        .on_upgrade(move |socket| async move {
            serve(socket, s).await;
            drop(slot);
        }))
}

async fn send(socket: &mut WebSocket, msg: &StreamMessage) -> bool {
    let text = serde_json::to_string(msg).expect("stream messages serialize");
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}

async fn serve(mut socket: WebSocket, s: AppState) {
    let mut rx = s.engine.subscribe();
    let shutdown = s.engine.shutdown_token();
    let hello = [
        StreamMessage::Status(Box::new(s.engine.status())),
        StreamMessage::TriggerUpdate(Box::new(s.engine.triggers())),
    ];
    for m in &hello {
        if !send(&mut socket, m).await {
            return;
        }
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                close(&mut socket, 1001, "rollbackd is shutting down").await;
                return;
            }
            msg = rx.recv() => match msg {
                Ok(m) => {
                    if !send(&mut socket, &m).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    close(&mut socket, 1008, "too slow: reconnect for the current state").await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {} // clients have nothing to say
            },
        }
    }
}
