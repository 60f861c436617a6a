//! The trading system over HTTP: read its status, switch its mode. Every call has a timeout;
//! switches retry with backoff on transport errors and 5xx (safe: the target is idempotent per
//! `event_id`), never on a 4xx refusal.

use crate::config::TargetConfig;
use crate::domain::{SwitchRequest, TargetStatus};
use crate::tls::ClientTls;
use crate::transport::{Transport, TransportError};
use axum::http::Method;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target unreachable at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("target did not answer {url} within {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u128 },
    #[error("target answered {status} to {url}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("target sent an unreadable answer to {url}: {message}")]
    InvalidResponse { url: String, message: String },
}

impl TargetError {
    fn retryable(&self) -> bool {
        match self {
            TargetError::Unreachable { .. } | TargetError::Timeout { .. } => true,
            TargetError::Status { status, .. } => *status >= 500,
            TargetError::InvalidResponse { .. } => false,
        }
    }
}

#[derive(Clone)]
pub struct TargetClient {
    http: Transport,
    base: String,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl TargetClient {
    pub fn new(cfg: &TargetConfig) -> TargetClient {
        let tls = ClientTls {
            ca: cfg.ca.as_ref().map(|c| c.certs.clone()),
            identity: None,
        };
        let http = Transport::new(&cfg.url, &tls, cfg.timeout)
            .expect("target.ca_file was checked when the config was read");
        TargetClient {
            http,
            base: cfg.url.clone(),
            timeout: cfg.timeout,
            retries: cfg.retries,
            backoff: cfg.retry_backoff,
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// One attempt: polling does not retry, the next poll is the retry.
    pub async fn status(&self) -> Result<TargetStatus, TargetError> {
        self.call(Method::GET, "/v1/status", None).await
    }

    /// Status with the bounded retries, for reading back after a switch.
    pub async fn status_with_retries(&self) -> Result<TargetStatus, TargetError> {
        self.with_retries(|| self.call(Method::GET, "/v1/status", None))
            .await
    }

    pub async fn switch(&self, req: &SwitchRequest) -> Result<TargetStatus, TargetError> {
        let body = serde_json::to_vec(req).expect("switch request serializes");
        self.with_retries(|| self.call(Method::PUT, "/v1/mode", Some(body.clone())))
            .await
    }

    async fn with_retries<F, Fut>(&self, mut attempt: F) -> Result<TargetStatus, TargetError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<TargetStatus, TargetError>>,
    {
        let mut delay = self.backoff;
        let mut tries = 0;
        loop {
            match attempt().await {
                Ok(s) => return Ok(s),
                Err(e) if e.retryable() && tries < self.retries => {
                    tries += 1;
                    tracing::warn!(error = %e, attempt = tries, "target call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<TargetStatus, TargetError> {
        let (url, bytes) = self.call_bytes(method, path, body).await?;
        TargetStatus::parse(&bytes).map_err(|e| TargetError::InvalidResponse {
            url,
            message: e.to_string(),
        })
    }

    /// A 2xx answer's body, or the error.
    async fn call_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(String, axum::body::Bytes), TargetError> {
        let url = format!("{}{path}", self.base);
        let answer = self
            .http
            .send(method, &url, &[], body, self.timeout)
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        let bytes = answer.body;
        if !answer.status.is_success() {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            return Err(TargetError::Status {
                url,
                status: answer.status.as_u16(),
                body,
            });
        }
        Ok((url, bytes))
    }

    /// Asks the target to check `req` without applying it (one attempt): the status it would
    /// leave. An answer not marked `dry_run` is refused: a target that ignored the flag may
    /// have switched, and the caller must say so.
    pub async fn check_switch(&self, req: &SwitchRequest) -> Result<TargetStatus, TargetError> {
        let mut req = req.clone();
        req.dry_run = true;
        let body = serde_json::to_vec(&req).expect("switch request serializes");
        let (url, bytes) = self.call_bytes(Method::PUT, "/v1/mode", Some(body)).await?;
        let marked = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("dry_run").and_then(serde_json::Value::as_bool))
            == Some(true);
        if !marked {
            return Err(TargetError::InvalidResponse {
                url,
                message: "the answer to a dry-run switch is not marked \"dry_run\": true; the target may have applied it".into(),
            });
        }
        TargetStatus::parse(&bytes).map_err(|e| TargetError::InvalidResponse {
            url,
            message: e.to_string(),
        })
    }

    fn transport_error(&self, url: &str, e: TransportError) -> TargetError {
        match e {
            TransportError::Timeout(_) => TargetError::Timeout {
                url: url.into(),
                timeout_ms: self.timeout.as_millis(),
            },
            TransportError::TooLarge => TargetError::InvalidResponse {
                url: url.into(),
                message: e.to_string(),
            },
            TransportError::Tls(why) => TargetError::Unreachable {
                url: url.into(),
                message: format!("TLS handshake failed: {why} (is target.ca_file the CA that signed the target's certificate?)"),
            },
            TransportError::Failed(message) => TargetError::Unreachable {
                url: url.into(),
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{body_partial_json, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn status_json() -> serde_json::Value {
        serde_json::json!({"mode": "universal_cycle_4", "parameters": {"confidence_threshold": 0.55},
            "agents": [{"id": "agent-1", "healthy": true}], "metrics": {"walk_forward_stability": null}})
    }

    fn client(url: &str, retries: u32) -> TargetClient {
        TargetClient::new(&TargetConfig {
            url: url.into(),
            timeout: Duration::from_millis(300),
            retries,
            retry_backoff: Duration::from_millis(5),
            ca: None,
        })
    }

    fn req() -> SwitchRequest {
        SwitchRequest {
            mode: "universal_cycle_4".into(),
            parameters: Default::default(),
            event_id: "e1".into(),
            reason: "r".into(),
            dry_run: false,
        }
    }

    #[tokio::test]
    async fn switch_retries_5xx_then_succeeds() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path("/v1/mode"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/v1/mode"))
            .and(body_partial_json(serde_json::json!({"event_id": "e1"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(status_json()))
            .mount(&server)
            .await;
        let s = client(&server.uri(), 2).switch(&req()).await.unwrap();
        assert_eq!(s.mode, "universal_cycle_4");
        assert_eq!(
            s.metric("walk_forward_stability"),
            None,
            "null reads as unknown"
        );
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
            .expect(3)
            .mount(&server)
            .await;
        let e = client(&server.uri(), 2).switch(&req()).await.unwrap_err();
        assert!(matches!(e, TargetError::Status { status: 500, .. }), "{e}");
        assert!(e.to_string().contains("boom"));
    }

    #[tokio::test]
    async fn a_4xx_refusal_is_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(409))
            .expect(1)
            .mount(&server)
            .await;
        let e = client(&server.uri(), 3).switch(&req()).await.unwrap_err();
        assert!(matches!(e, TargetError::Status { status: 409, .. }));
    }

    #[tokio::test]
    async fn slow_and_garbled_answers_are_named() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/status"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
            .mount(&server)
            .await;
        let e = client(&server.uri(), 0).status().await.unwrap_err();
        assert!(matches!(e, TargetError::Timeout { .. }), "{e}");
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
            .mount(&server)
            .await;
        let e = client(&server.uri(), 0).status().await.unwrap_err();
        assert!(matches!(e, TargetError::InvalidResponse { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let e = client(&url, 0).status().await.unwrap_err();
        assert!(matches!(e, TargetError::Unreachable { .. }), "{e}");
    }
}
