//! Talking to the daemon: one request, and every way it can be refused turned into an exit
//! code and a message that names the daemon's own words.

use crate::exit::Exit;
use crate::tls::ClientTls;
use crate::transport::{Transport, TransportError};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A 2xx answer: the body as received (for `--json`) and parsed.
pub struct Answer {
    pub raw: String,
    pub value: Value,
}

/// Anything but a 2xx: what to exit with, what to say, and the body when the daemon sent one.
#[derive(Debug)]
pub struct Refusal {
    pub exit: Exit,
    pub message: String,
    pub raw: Option<String>,
    pub value: Option<Value>,
}

impl Refusal {
    pub fn new(exit: Exit, message: impl Into<String>) -> Refusal {
        Refusal {
            exit,
            message: message.into(),
            raw: None,
            value: None,
        }
    }

    /// The event an error body may carry (a rollback whose switch failed answers 502 with it).
    pub fn event(&self) -> Option<&Value> {
        let v = self.value.as_ref()?;
        [v.pointer("/error/event"), v.get("event")]
            .into_iter()
            .flatten()
            .find(|e| e.is_object())
    }
}

pub struct Client {
    http: Transport,
    url: String,
    token: Option<String>,
}

/// A rollback answers after the switch and the first validation.
const TIMEOUT: Duration = Duration::from_secs(60);

impl Client {
    /// `ca_file` is the CA that signed an `https://` daemon's certificate (else the system's).
    pub fn new(url: &str, token: Option<String>, ca_file: Option<&Path>) -> Result<Client, String> {
        let ca = ca_file
            .map(|p| crate::tls::read_certs(p).map_err(|e| format!("the CA file (--ca-file): {e}")))
            .transpose()?;
        let tls = ClientTls { ca, identity: None };
        let http = Transport::new(url, &tls, Duration::from_secs(5))
            .map_err(|e| format!("the CA file (--ca-file): {e}"))?;
        Ok(Client {
            http,
            url: url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, Refusal> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.url))
            .map_err(|e| Refusal::new(Exit::Usage, format!("{:?} is not a URL: {e}", self.url)))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut headers = Vec::new();
        if let Some(t) = &self.token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let json = body.map(|b| serde_json::to_vec(b).expect("a JSON value serializes"));
        let answer = self
            .http
            .send(method, url.as_str(), &headers, json, TIMEOUT)
            .await
            .map_err(|e| self.unreachable(e))?;
        let raw = String::from_utf8_lossy(&answer.body).into_owned();
        let value = serde_json::from_str(&raw).ok();
        if answer.status.is_success() {
            let value = value.unwrap_or_else(|| Value::String(raw.clone()));
            return Ok(Answer { raw, value });
        }
        Err(refused(answer.status.as_u16(), raw, value))
    }

    fn unreachable(&self, e: TransportError) -> Refusal {
        let message = match e {
            TransportError::Timeout(_) => format!("timed out talking to rollbackd at {}", self.url),
            TransportError::Tls(why) => format!(
                "cannot reach rollbackd at {}: TLS handshake failed: {why} (give the CA that signed its certificate with --ca-file or ROLLBACKD_CA_FILE)",
                self.url
            ),
            e => format!("cannot reach rollbackd at {}: {e}", self.url),
        };
        Refusal::new(Exit::Unreachable, message)
    }
}

/// A non-2xx answer as `STATUS code: message`, with its exit code.
fn refused(status: u16, raw: String, value: Option<Value>) -> Refusal {
    let v = value.as_ref();
    let code = v
        .and_then(|v| v.pointer("/error/code"))
        .and_then(Value::as_str)
        .unwrap_or("error")
        .to_owned();
    let message = v
        .and_then(|v| v.pointer("/error/message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| raw.trim().to_owned());
    Refusal {
        exit: Exit::from_http(status, &code),
        message: format!("{status} {code}: {message}"),
        raw: Some(raw),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refusal_names_status_code_and_message() {
        let body = json!({"error": {"code": "already_rolled_back", "message": "already in universal_cycle_4"}});
        let r = refused(409, body.to_string(), Some(body));
        assert_eq!(r.exit, Exit::AlreadyRolledBack);
        assert_eq!(
            r.message,
            "409 already_rolled_back: already in universal_cycle_4"
        );
        let r = refused(502, "Bad Gateway".into(), None);
        assert_eq!(
            (r.exit, r.message.as_str()),
            (Exit::Failed, "502 error: Bad Gateway")
        );
    }

    #[test]
    fn the_event_a_target_error_carries_is_found_in_either_place() {
        for body in [
            json!({"error": {"code": "target_error", "message": "m", "event": {"id": "e1", "status": "failed"}}}),
            json!({"error": {"code": "target_error", "message": "m"}, "event": {"id": "e1", "status": "failed"}}),
        ] {
            let r = refused(502, body.to_string(), Some(body));
            assert_eq!(r.event().unwrap()["id"], "e1");
        }
        let body = json!({"error": {"code": "target_error", "message": "m"}});
        assert!(refused(502, body.to_string(), Some(body)).event().is_none());
    }
}
