//! A trading system that speaks the target contract (`GET /v1/status`, `PUT /v1/mode`), with
//! scenarios for the ways a real one misbehaves and control endpoints for tests and demos:
//! `PUT /v1/sim/metrics` (partial metrics), `PUT /v1/sim/agents` (`{"healthy": N}`),
//! `PUT /v1/sim/scenario` (`{"scenario": NAME, "delay_ms": N}`), `GET /v1/sim/switches`.

use crate::domain::lifecycle::{MODE_SESSION_TARGETED, MODE_UNIVERSAL_CYCLE_4};
use crate::domain::target_status::CAP_MODE_DRY_RUN;
use crate::domain::{Agent, SwitchRequest, TargetStatus};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Healthy and still.
    Steady,
    /// Walk-forward stability falls and overfitting rises until a rollback, then they recover.
    Degrading,
    /// Every second request answers 503.
    Flaky,
    /// Every answer takes `delay_ms` (1500 ms unless set).
    Slow,
    /// Answers a switch with 200 but keeps its mode and parameters.
    AcceptsButDoesNotApply,
    /// Two of the eight agents are down.
    AgentsDown,
    /// Applies a switch, then answers it with an unreadable body (the answer lost on the way).
    LosesSwitchAnswers,
    /// Speaks only the base contract: no `mode_dry_run` capability (an older trading system).
    WithoutDryRun,
}

pub const AGENTS: u32 = 8;
const SLOW_DEFAULT: Duration = Duration::from_millis(1500);
/// Per second while degrading, and twice that while recovering in `universal_cycle_4`.
const STABILITY_DROP: f64 = 3.0;
const OVERFIT_RISE: f64 = 0.02;

#[derive(Clone, Debug, Serialize)]
pub struct AppliedSwitch {
    pub event_id: String,
    pub mode: String,
    pub parameters: BTreeMap<String, f64>,
    pub reason: String,
}

struct Sim {
    scenario: Scenario,
    delay: Option<Duration>,
    status: TargetStatus,
    requests: u64,
    last_tick: Instant,
    seen_events: HashSet<String>,
    switches: Vec<AppliedSwitch>,
}

fn healthy_status(healthy_agents: u32) -> TargetStatus {
    TargetStatus {
        mode: MODE_SESSION_TARGETED.into(),
        parameters: [
            ("confidence_threshold".to_string(), json!(0.62)),
            ("risk_reward_ratio".to_string(), json!(2.1)),
        ]
        .into(),
        agents: (1..=AGENTS)
            .map(|i| Agent {
                id: format!("agent-{i}"),
                healthy: i <= healthy_agents,
            })
            .collect(),
        metrics: [
            ("walk_forward_stability".to_string(), json!(72.5)),
            ("overfitting_score".to_string(), json!(0.21)),
            ("consecutive_losses".to_string(), json!(1)),
            ("max_drawdown".to_string(), json!(1.2)),
        ]
        .into(),
        capabilities: vec![CAP_MODE_DRY_RUN.into()],
    }
}

impl Sim {
    fn new(scenario: Scenario) -> Sim {
        let healthy = if scenario == Scenario::AgentsDown {
            AGENTS - 2
        } else {
            AGENTS
        };
        let mut status = healthy_status(healthy);
        if scenario == Scenario::WithoutDryRun {
            status.capabilities.clear();
        }
        Sim {
            scenario,
            delay: None,
            status,
            requests: 0,
            last_tick: Instant::now(),
            seen_events: HashSet::new(),
            switches: Vec::new(),
        }
    }

    /// Moves the degrading scenario's metrics on by the time since the last look.
    fn tick(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last_tick).as_secs_f64();
        self.last_tick = now;
        if self.scenario != Scenario::Degrading {
            return;
        }
        let recovering = self.status.mode == MODE_UNIVERSAL_CYCLE_4;
        let sign = if recovering { -2.0 } else { 1.0 };
        let m = &mut self.status.metrics;
        let mut nudge = |key: &str, by: f64, lo: f64, hi: f64| {
            if let Some(v) = m.get(key).and_then(Value::as_f64) {
                m.insert(key.into(), json!((v + by).clamp(lo, hi)));
            }
        };
        nudge(
            "walk_forward_stability",
            -sign * STABILITY_DROP * dt,
            20.0,
            72.5,
        );
        nudge("overfitting_score", sign * OVERFIT_RISE * dt, 0.21, 0.9);
    }

    /// Counts the request; says whether this one fails (flaky) and how long to stall.
    fn admit(&mut self) -> (bool, Option<Duration>) {
        self.requests += 1;
        let fail = self.scenario == Scenario::Flaky && self.requests % 2 == 0;
        let delay = self
            .delay
            .or((self.scenario == Scenario::Slow).then_some(SLOW_DEFAULT));
        (fail, delay)
    }
}

#[derive(Clone)]
pub struct Simulator {
    sim: Arc<Mutex<Sim>>,
}

impl Simulator {
    pub fn new(scenario: Scenario) -> Simulator {
        Simulator {
            sim: Arc::new(Mutex::new(Sim::new(scenario))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn switches(&self) -> Vec<AppliedSwitch> {
        self.lock().switches.clone()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/status", get(status))
            .route("/v1/mode", put(switch))
            .route("/v1/sim/metrics", put(set_metrics))
            .route("/v1/sim/agents", put(set_agents))
            .route("/v1/sim/scenario", put(set_scenario))
            .route("/v1/sim/switches", get(list_switches))
            .with_state(self.clone())
    }
}

/// Serves the simulator until `shutdown` completes; over TLS when `web` sets it (the target
/// of a daemon whose `target.url` is `https://`).
pub async fn run(
    listener: tokio::net::TcpListener,
    scenario: Scenario,
    web: Option<crate::config::WebConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sim = Simulator::new(scenario);
    let settings = crate::listener::ListenerSettings {
        web,
        limits: Default::default(),
    };
    let settings = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(settings));
    let stop = tokio_util::sync::CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        cancel.cancel();
    });
    crate::listener::run(listener, sim.router(), settings, Default::default(), stop).await;
    Ok(())
}

/// A refused control or switch request: 400 with the SPEC's error shape. Boxed so a handler's
/// `Result` stays small.
struct Refusal(Box<Response>);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

type Answer = Result<Response, Refusal>;

/// The body as JSON, whatever Content-Type came with it: the control routes are for curl too.
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Refusal> {
    serde_json::from_slice(bytes).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}

fn bad_request(message: impl Into<String>) -> Refusal {
    Refusal(Box::new(
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": "invalid_request", "message": message.into()}})),
        )
            .into_response(),
    ))
}

async fn stall(delay: Option<Duration>) {
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": {"code": "unavailable", "message": "flaky scenario: try again"}})),
    )
        .into_response()
}

async fn status(State(s): State<Simulator>) -> Response {
    let (fail, delay) = s.lock().admit();
    stall(delay).await;
    if fail {
        return unavailable();
    }
    let mut sim = s.lock();
    sim.tick();
    Json(sim.status.clone()).into_response()
}

async fn switch(State(s): State<Simulator>, bytes: Bytes) -> Answer {
    let (fail, delay) = s.lock().admit();
    if fail {
        stall(delay).await;
        return Ok(unavailable());
    }
    let req: SwitchRequest = body(&bytes)?;
    if req.event_id.trim().is_empty() {
        return Err(bad_request("event_id is required"));
    }
    if req.mode != MODE_SESSION_TARGETED && req.mode != MODE_UNIVERSAL_CYCLE_4 {
        return Err(bad_request(format!("unknown mode {:?}", req.mode)));
    }
    if req.dry_run {
        return Ok(check_switch(&s, req));
    }
    // Applied first, answered after the stall: a slow target that did switch, the case a
    // crash between "executing" and the answer leaves behind.
    let status = {
        let mut sim = s.lock();
        sim.tick();
        // A repeated event_id is answered with the current status and changes nothing.
        if sim.seen_events.insert(req.event_id.clone())
            && sim.scenario != Scenario::AcceptsButDoesNotApply
        {
            sim.status.mode = req.mode.clone();
            sim.status.parameters =
                if req.parameters.is_empty() && req.mode == MODE_SESSION_TARGETED {
                    healthy_status(0).parameters
                } else {
                    req.parameters
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect()
                };
            sim.switches.push(AppliedSwitch {
                event_id: req.event_id,
                mode: req.mode,
                parameters: req.parameters,
                reason: req.reason,
            });
        }
        sim.status.clone()
    };
    stall(delay).await;
    if s.lock().scenario == Scenario::LosesSwitchAnswers {
        return Ok((StatusCode::OK, "{\"mode\": \"univ").into_response());
    }
    Ok(Json(status).into_response())
}

/// A dry-run switch: the status the switch would leave, marked `dry_run`; nothing changes and
/// nothing is recorded as applied. A target without the capability refuses the flag.
fn check_switch(s: &Simulator, req: SwitchRequest) -> Response {
    let mut sim = s.lock();
    if !sim
        .status
        .capabilities
        .iter()
        .any(|c| c == CAP_MODE_DRY_RUN)
    {
        return bad_request("unknown field `dry_run`").into_response();
    }
    sim.tick();
    let mut planned = sim.status.clone();
    planned.mode = req.mode;
    planned.parameters = req
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut answer = serde_json::to_value(planned).expect("status serializes");
    answer["dry_run"] = json!(true);
    Json(answer).into_response()
}

async fn set_metrics(State(s): State<Simulator>, bytes: Bytes) -> Answer {
    let patch: BTreeMap<String, Value> = body(&bytes)?;
    if let Some((k, _)) = patch.iter().find(|(_, v)| !(v.is_number() || v.is_null())) {
        return Err(bad_request(format!(
            "metric {k:?} must be a number or null"
        )));
    }
    let mut sim = s.lock();
    sim.tick();
    sim.status.metrics.extend(patch);
    Ok(Json(sim.status.clone()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsPatch {
    healthy: u32,
}

async fn set_agents(State(s): State<Simulator>, bytes: Bytes) -> Answer {
    let patch: AgentsPatch = body(&bytes)?;
    if patch.healthy > AGENTS {
        return Err(bad_request(format!("healthy must be 0 to {AGENTS}")));
    }
    let mut sim = s.lock();
    for (i, a) in sim.status.agents.iter_mut().enumerate() {
        a.healthy = (i as u32) < patch.healthy;
    }
    Ok(Json(sim.status.clone()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioPatch {
    scenario: Option<Scenario>,
    delay_ms: Option<u64>,
}

async fn set_scenario(State(s): State<Simulator>, bytes: Bytes) -> Answer {
    let patch: ScenarioPatch = body(&bytes)?;
    let mut sim = s.lock();
    sim.tick();
    if let Some(sc) = patch.scenario {
        sim.scenario = sc;
    }
    if let Some(ms) = patch.delay_ms {
        sim.delay = (ms > 0).then(|| Duration::from_millis(ms));
    }
    Ok(
        Json(
            json!({"scenario": sim.scenario, "delay_ms": sim.delay.map(|d| d.as_millis() as u64)}),
        )
        .into_response(),
    )
}

async fn list_switches(State(s): State<Simulator>) -> Response {
    Json(json!({"switches": s.lock().switches})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator on 127.0.0.1:0; answers (status, JSON) to a PUT.
    async fn put(path: &str, body: &str) -> (u16, Value) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let app = Simulator::new(Scenario::Steady).router();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let r = reqwest::Client::new()
            .put(url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let out = (r.status().as_u16(), r.json().await.unwrap());
        server.abort();
        out
    }

    async fn refused(path: &str, body: &str, needle: &str) {
        let (code, v) = put(path, body).await;
        assert_eq!(code, 400, "{path} {body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{path} {body}: {msg}");
    }

    #[tokio::test]
    async fn bad_control_and_switch_bodies_are_refused_by_name() {
        refused("/v1/sim/metrics", "{", "invalid JSON body").await;
        refused(
            "/v1/sim/metrics",
            r#"{"max_drawdown": "high"}"#,
            "\"max_drawdown\" must be a number or null",
        )
        .await;
        refused(
            "/v1/sim/agents",
            r#"{"healthy": 9}"#,
            "healthy must be 0 to 8",
        )
        .await;
        refused("/v1/sim/agents", r#"{"up": 3}"#, "unknown field `up`").await;
        refused("/v1/sim/scenario", r#"{"scenario": "calm"}"#, "calm").await;
        let switch = |mode: &str, id: &str| {
            json!({"mode": mode, "parameters": {}, "event_id": id, "reason": "r"}).to_string()
        };
        refused(
            "/v1/mode",
            &switch("universal_cycle_4", " "),
            "event_id is required",
        )
        .await;
        refused(
            "/v1/mode",
            &switch("cycle_5", "e1"),
            "unknown mode \"cycle_5\"",
        )
        .await;
    }

    #[tokio::test]
    async fn a_good_patch_is_applied_and_echoed() {
        let (code, v) = put("/v1/sim/metrics", r#"{"max_drawdown": 5.0}"#).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["metrics"]["max_drawdown"], 5.0);
        assert_eq!(v["metrics"]["walk_forward_stability"], 72.5);
    }
}
