//! One HTTP client for the trading system and the command line: `http://` or `https://`
//! (rustls on ring, the server checked against a given CA file or the system's CAs). Every
//! call is bounded in time and in the size of the answer it reads.

use crate::tls::ClientTls;
use axum::body::Bytes;
use axum::http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// The largest answer read; a peer sending more is refused, not buffered.
pub const MAX_ANSWER: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The TLS handshake failed; rustls' words, e.g. "invalid peer certificate: UnknownIssuer".
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("{0}")]
    Failed(String),
    #[error("the answer is over {MAX_ANSWER} bytes")]
    TooLarge,
}

/// A status and a body, whatever the status.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    user_agent: HeaderValue,
}

impl Transport {
    /// `url` says whether the system's CAs are needed (only for `https://` without a CA).
    pub fn new(url: &str, tls: &ClientTls, connect_timeout: Duration) -> Result<Transport, String> {
        let config = tls.config(url.starts_with("https://"))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Transport {
            client,
            user_agent: HeaderValue::from_static(concat!("rollbackd/", env!("CARGO_PKG_VERSION"))),
        })
    }

    /// One request; `json` is sent as `application/json`.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        json: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Answer, TransportError> {
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .header("user-agent", self.user_agent.clone());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if json.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .map_err(|e| TransportError::Failed(format!("invalid request to {url}: {e}")))?;
        tokio::time::timeout(timeout, self.exchange(req))
            .await
            .map_err(|_| TransportError::Timeout(timeout))?
    }

    async fn exchange(&self, req: Request<Full<Bytes>>) -> Result<Answer, TransportError> {
        let resp = self.client.request(req).await.map_err(|e| failure(&e))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    TransportError::TooLarge
                } else {
                    TransportError::Failed(chain(e.as_ref()))
                }
            })?
            .to_bytes();
        Ok(Answer { status, body })
    }
}

/// An error and every cause under it, on one line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

fn failure(e: &(dyn std::error::Error + 'static)) -> TransportError {
    match crate::tls::failure_in(e) {
        Some(why) => TransportError::Tls(why),
        None => TransportError::Failed(chain(e)),
    }
}
