//! The test harness: a real simulator and a real daemon on 127.0.0.1:0, a temp dir for the
//! history, and small helpers. Every wait is bounded.
#![allow(dead_code)]

pub mod browser;
pub mod files;
pub mod stack;

use rollbackd::engine::Engine;
use rollbackd::simulator::{Scenario, Simulator};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const OPS_TOKEN: &str = "operator-token-for-tests-0001";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-000001";
pub const VIEWER_TOKEN: &str = "viewer-token-for-tests-00001";
pub const WEBHOOK_TOKEN: &str = "webhook-token-for-tests-0001";

pub struct TestSim {
    pub url: String,
    pub sim: Simulator,
    stop: Option<oneshot::Sender<()>>,
}

impl TestSim {
    pub async fn spawn(scenario: Scenario) -> TestSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sim = Simulator::new(scenario);
        let app = sim.router();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        TestSim {
            url,
            sim,
            stop: Some(tx),
        }
    }

    pub async fn put(&self, path: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .put(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "simulator refused {path}: {}",
            r.status()
        );
        r.json().await.unwrap()
    }

    pub async fn status(&self) -> Value {
        reqwest::get(format!("{}/v1/status", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for TestSim {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The knobs tests turn; everything else is a fast, quiet default.
#[derive(Clone)]
pub struct Options {
    pub poll_interval: &'static str,
    pub automatic_rollback: bool,
    pub cooldown: &'static str,
    pub stability_window: &'static str,
    pub timeout: &'static str,
    pub environment: Option<&'static str>,
    pub auth: bool,
    pub read_requires_token: bool,
    pub extra_yaml: String,
    pub active_on_start: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            poll_interval: "50ms",
            automatic_rollback: true,
            cooldown: "15m",
            stability_window: "1s",
            timeout: "500ms",
            environment: None,
            auth: false,
            read_requires_token: false,
            extra_yaml: String::new(),
            active_on_start: true,
        }
    }
}

pub fn config_yaml(target_url: &str, o: &Options) -> String {
    let mut y = format!(
        r#"listen: "127.0.0.1:0"
storage: {{ path: history.db }}
target: {{ url: "{target_url}", timeout: {}, retries: 2, retry_backoff: 20ms }}
agents: {{ expected: 8 }}
monitoring: {{ active_on_start: {}, poll_interval: {}, automatic_rollback: {} }}
cooldown: {}
validation: {{ pass_score: 85, stability_window: {}, stability_interval: 100ms }}
"#,
        o.timeout,
        o.active_on_start,
        o.poll_interval,
        o.automatic_rollback,
        o.cooldown,
        o.stability_window
    );
    if let Some(env) = o.environment {
        y.push_str(&format!("environment: {env}\n"));
    }
    if o.auth {
        y.push_str(&format!(
            "auth:\n  read_requires_token: {}\n  tokens:\n    - {{ name: ops, role: operator, token: \"{OPS_TOKEN}\" }}\n    - {{ name: boss, role: admin, token: \"{ADMIN_TOKEN}\" }}\n    - {{ name: watcher, role: viewer, token: \"{VIEWER_TOKEN}\" }}\n    - {{ name: alertmanager, role: webhook, token_file: webhook.token }}\n",
            o.read_requires_token
        ));
    }
    y.push_str(&o.extra_yaml);
    y
}

pub struct TestApp {
    pub url: String,
    pub engine: Engine,
    pub dir: PathBuf,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Starts a daemon against `target_url` with its history in `dir`.
    pub async fn start(target_url: &str, dir: &Path, o: &Options) -> TestApp {
        std::fs::write(dir.join("webhook.token"), format!("{WEBHOOK_TOKEN}\n")).unwrap();
        let path = dir.join("rollbackd.yaml");
        std::fs::write(&path, config_yaml(target_url, o)).unwrap();
        let cfg = rollbackd::config::load(&path, o.environment).unwrap();
        let listener = tokio::net::TcpListener::bind(cfg.listen).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let engine = Engine::start(cfg).await.unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(rollbackd::http::serve(
            listener,
            engine.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        TestApp {
            url,
            engine,
            dir: dir.to_path_buf(),
            http: reqwest::Client::new(),
            stop: Some(tx),
            server: Some(server),
        }
    }

    /// Drains like SIGTERM does and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(20), s)
                .await
                .expect("the daemon drains within 20s")
                .unwrap()
                .unwrap();
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(path, None).await
    }

    pub async fn get_as(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None, token).await
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(body), token)
            .await
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The status and the answer: its JSON, or its text as a JSON string.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = &body {
            r = r.json(b);
        }
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Waits (bounded) until the daemon has read the target once.
    pub async fn first_poll(&self) {
        wait_for(
            "the first poll of the target",
            Duration::from_secs(10),
            || async { self.engine.status().target.up.then_some(()) },
        )
        .await;
    }

    pub async fn events(&self) -> Vec<Value> {
        let (code, v) = self.get("/api/v1/rollbacks?limit=500").await;
        assert_eq!(code, 200, "{v}");
        v["events"].as_array().unwrap().clone()
    }
}

/// A simulator, a daemon guarding it, and the daemon's directory (history, token files).
/// Fields drop in order: the daemon stops before its directory goes.
pub struct Env {
    pub app: TestApp,
    pub sim: TestSim,
    pub dir: tempfile::TempDir,
}

/// Starts a simulator in `scenario` and a daemon with `options` against it.
pub async fn spawn(scenario: Scenario, options: &Options) -> Env {
    let sim = TestSim::spawn(scenario).await;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(&sim.url, dir.path(), options).await;
    Env { app, sim, dir }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The value of one sample line in Prometheus text, e.g. `rollback_target_up`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// Polls `f` until it returns Some, for at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the newest event has reached a final status; returns it.
pub async fn wait_final(app: &TestApp) -> Value {
    wait_for("a rollback to finish", Duration::from_secs(10), || async {
        let events = app.events().await;
        let e = events
            .into_iter()
            .find(|e| e["status"] != "suppressed" && e["status"] != "dry_run")?;
        matches!(e["status"].as_str(), Some("completed" | "failed")).then_some(e)
    })
    .await
}
