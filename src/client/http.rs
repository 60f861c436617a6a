//! Talking to the daemon: one request, and every way it can be refused turned into an exit
//! code and a message that names the daemon's own words.

use crate::exit::Exit;
use serde_json::Value;
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
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    pub fn new(url: &str, token: Option<String>) -> Client {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A rollback answers after the switch and the first validation.
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client builds");
        Client {
            http,
            url: url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, Refusal> {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let raw = resp.text().await.map_err(|e| self.unreachable(e))?;
        let value = serde_json::from_str(&raw).ok();
        if status.is_success() {
            let value = value.unwrap_or_else(|| Value::String(raw.clone()));
            return Ok(Answer { raw, value });
        }
        Err(refused(status.as_u16(), raw, value))
    }

    fn unreachable(&self, e: reqwest::Error) -> Refusal {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why.push_str(&format!(": {s}"));
            source = s.source();
        }
        let what = if e.is_timeout() {
            "timed out talking to"
        } else {
            "cannot reach"
        };
        Refusal::new(
            Exit::Unreachable,
            format!("{what} rollbackd at {}: {why}", self.url),
        )
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
