//! The daemon's HTTP API as typed calls: one method per route, each answer with its status
//! code, headers, text and JSON, so a test reads as the contract it checks.

use super::metrics::Metrics;
use super::wait::wait_until;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// A client of one daemon, with or without a bearer token. Cheap to clone into tasks.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// One answer: its status code, headers, text, and JSON (`Null` when the text is not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

/// What a request carries.
pub enum Body<'a> {
    Empty,
    Json(&'a Value),
    /// Bytes with this content type (or none).
    Raw(Option<&'a str>, Vec<u8>),
}

impl Reply {
    /// The JSON of a 200 answer; any other status fails the test, showing the answer.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{}", self.text);
        self.json
    }

    /// A rollback or restore that ran and failed: 502 `target_error`, its message the event's
    /// failure reason, the recorded event beside the error. Returns the event.
    #[track_caller]
    pub fn failed(self) -> Value {
        assert_eq!(
            self.status, 502,
            "a failed execution is not a {}: {}",
            self.status, self.text
        );
        assert_eq!(self.json["error"]["code"], "target_error", "{}", self.text);
        let event = self.json["event"].clone();
        assert_eq!(event["status"], "failed", "{}", self.text);
        assert_eq!(self.json["error"]["message"], event["failure_reason"]);
        event
    }

    /// Every error: the status, `{"error": {"code", "message"}}` and nothing else, JSON typed.
    /// Returns the message.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(
            self.status, status,
            "wanted {status} {code}, got: {}",
            self.text
        );
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "error content type {ct:?}"
        );
        let obj = self
            .json
            .as_object()
            .unwrap_or_else(|| panic!("not a JSON object: {}", self.text));
        assert_eq!(obj.len(), 1, "only `error` at the top: {}", self.text);
        let e = self.json["error"].as_object().expect("an error object");
        assert_eq!(e.len(), 2, "error has code and message only: {}", self.text);
        assert_eq!(self.json["error"]["code"], code, "{}", self.text);
        let msg = self.json["error"]["message"].as_str().expect("a message");
        assert!(!msg.trim().is_empty(), "empty message");
        msg.to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api {
    pub fn new(url: &str) -> Api {
        Api {
            url: url.to_string(),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    /// The same daemon, every request with this bearer token.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// One request; `Err` only when no answer came (the daemon is gone).
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> reqwest::Result<Reply> {
        let r = self.request(method, path);
        let r = match body {
            Body::Empty => r,
            Body::Json(v) => r.json(v),
            Body::Raw(Some(ct), bytes) => r.header("content-type", ct).body(bytes),
            Body::Raw(None, bytes) => r.body(bytes),
        };
        answer(r).await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: Body<'_>) -> Reply {
        self.try_send(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("no answer to {path}: {e}"))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Body::Empty).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Body::Json(body)).await
    }

    pub async fn status(&self) -> Reply {
        self.get("/api/v1/status").await
    }

    pub async fn triggers(&self) -> Reply {
        self.get("/api/v1/triggers").await
    }

    /// The confirm-mode proposals open now (`GET /api/v1/holds`); `None` without the list.
    pub async fn proposals(&self) -> Option<Vec<Value>> {
        self.get("/api/v1/holds").await.json["proposals"]
            .as_array()
            .cloned()
    }

    pub async fn rollback(&self, reason: &str) -> Reply {
        self.post("/api/v1/rollback", &json!({ "reason": reason }))
            .await
    }

    pub async fn dry_run(&self, reason: &str) -> Reply {
        self.post(
            "/api/v1/rollback",
            &json!({ "reason": reason, "dry_run": true }),
        )
        .await
    }

    pub async fn restore(&self, reason: &str) -> Reply {
        self.post("/api/v1/restore", &json!({ "reason": reason }))
            .await
    }

    /// `start` or `stop`, with `{}`.
    pub async fn monitoring(&self, action: &str) -> Reply {
        self.post(&format!("/api/v1/monitoring/{action}"), &json!({}))
            .await
    }

    /// One page of the history; `query` as in the URL, e.g. `limit=2&status=dry_run`.
    pub async fn rollbacks(&self, query: &str) -> Reply {
        self.get(&with_query("/api/v1/rollbacks", query)).await
    }

    pub async fn rollback_by_id(&self, id: &str) -> Reply {
        self.get(&format!("/api/v1/rollbacks/{id}")).await
    }

    pub async fn validations(&self, query: &str) -> Reply {
        self.get(&with_query("/api/v1/validations", query)).await
    }

    /// Reviews trigger episode `id`: `{"verdict", "note"?, "ticket_url"?}`.
    pub async fn review(&self, id: &str, body: &Value) -> Reply {
        self.post(&format!("/api/v1/rollbacks/{id}/review"), body)
            .await
    }

    /// Reviews newest first, filtered by `query` (e.g. `current=true`, `verdict=drill`).
    pub async fn reviews(&self, query: &str) -> Reply {
        self.get(&with_query("/api/v1/reviews", query)).await
    }

    /// Records a missed degradation: `{"from", "to", "conditions", "note"}`.
    pub async fn missed(&self, body: &Value) -> Reply {
        self.post("/api/v1/missed", body).await
    }

    /// Missed degradations newest first, filtered by `query` (e.g. `since=...`).
    pub async fn list_missed(&self, query: &str) -> Reply {
        self.get(&with_query("/api/v1/missed", query)).await
    }

    /// The incident report; `query` as in the URL, e.g. `since=30d&format=md`.
    pub async fn report(&self, query: &str) -> Reply {
        self.get(&with_query("/api/v1/report", query)).await
    }

    /// A delivery as Alertmanager posts it.
    pub async fn webhook(&self, delivery: &Value) -> Reply {
        self.webhook_bytes(delivery.to_string().into_bytes()).await
    }

    /// Any bytes as an Alertmanager delivery, with Alertmanager's headers.
    pub async fn webhook_bytes(&self, body: Vec<u8>) -> Reply {
        let r = self
            .request(Method::POST, "/api/v1/alertmanager")
            .header("content-type", "application/json")
            .header("user-agent", "Alertmanager/0.25.0")
            .body(body);
        answer(r).await.expect("an answer to the delivery")
    }

    /// The newest events first (up to 500), filtered by `query` (e.g. `status=suppressed`).
    pub async fn events(&self, query: &str) -> Vec<Value> {
        let v = self.rollbacks(&format!("limit=500&{query}")).await.ok();
        v["events"].as_array().unwrap().clone()
    }

    /// Waits until the newest rollback or restore has reached a final status; returns it.
    /// Waits (bounded) for the stability watch's outcome of event `id`.
    pub async fn wait_stability(&self, id: &str) -> Value {
        let of_event = format!("event_id={id}");
        wait_until("the stability outcome", Duration::from_secs(10), || async {
            let v = self.validations(&of_event).await.json;
            v["validations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["kind"] == "stability")
                .cloned()
        })
        .await
    }

    pub async fn wait_final(&self) -> Value {
        wait_until("a rollback to finish", Duration::from_secs(10), || async {
            let e = self
                .events("")
                .await
                .into_iter()
                .find(|e| e["status"] != "suppressed" && e["status"] != "dry_run")?;
            matches!(e["status"].as_str(), Some("completed" | "failed")).then_some(e)
        })
        .await
    }

    /// Like `wait_final`, and the event must have completed.
    pub async fn wait_completed(&self) -> Value {
        let ev = self.wait_final().await;
        assert_eq!(ev["status"], "completed", "{ev}");
        ev
    }

    /// `/metrics` as a scraper that sends `accept` gets it: (content type, text).
    pub async fn scrape(&self, accept: Option<&str>) -> (String, String) {
        let mut r = self.http.get(format!("{}/metrics", self.url));
        if let Some(a) = accept {
            r = r.header("accept", a);
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        (ct, resp.text().await.unwrap())
    }

    /// One scrape in the text format.
    pub async fn metrics(&self) -> Metrics {
        Metrics {
            text: self.scrape(None).await.1,
        }
    }

    /// One series from a fresh scrape, e.g. `("rollback_events_total", &[("trigger_type", "manual")])`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.metrics().await.get(name, labels)
    }
}

async fn answer(r: reqwest::RequestBuilder) -> reqwest::Result<Reply> {
    let resp = r.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        headers,
        text,
        json,
    })
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// The entry for condition `name` in a triggers answer.
#[track_caller]
pub fn condition<'a>(triggers: &'a Value, name: &str) -> &'a Value {
    triggers["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition"] == name)
        .unwrap_or_else(|| panic!("{name} in {triggers}"))
}

/// One string field of every item of a JSON list, e.g. the statuses of an event's
/// `transitions`.
#[track_caller]
pub fn pluck<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}
