//! A test's daemon: a builder for its configuration, and the running daemon with the simulator
//! it guards and the directory of its history. Every wait is bounded.

use super::api::Api;
use super::fixtures::{ADMIN_TOKEN, OPS_TOKEN, SECOND_ADMIN_TOKEN, VIEWER_TOKEN, WEBHOOK_TOKEN};
use super::history::HistoryFile;
use super::library::{Daemon, Scenario, TestSim};
use super::stack::loopback_addr;
use super::wait::wait_until;
use serde_json::Value;
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

/// The knobs tests turn; everything else is a fast, quiet default.
pub struct Builder {
    scenario: Scenario,
    poll_interval: &'static str,
    automatic_rollback: bool,
    timeout: &'static str,
    stability_window: &'static str,
    environment: Option<&'static str>,
    auth: bool,
    read_requires_token: bool,
    active_on_start: bool,
    extra_yaml: String,
    unreachable_target: bool,
    history: Option<tempfile::TempDir>,
    slow_target_ms: Option<u64>,
    storage: Option<String>,
}

impl Builder {
    /// The history on this PostgreSQL instead of an SQLite file.
    pub fn postgres(self, pg: &super::postgres::Postgres) -> Builder {
        Builder {
            storage: Some(pg.storage_yaml()),
            ..self
        }
    }

    /// Another replica guarding `of`'s simulator, with a directory of its own.
    pub async fn spawn_replica(self, of: &TestApp) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollbackd.yaml");
        std::fs::write(&path, self.yaml(&of.sim.url)).unwrap();
        std::fs::write(
            dir.path().join("webhook.token"),
            format!("{WEBHOOK_TOKEN}\n"),
        )
        .unwrap();
        let daemon = Daemon::start(&path, self.environment).await;
        Replica {
            api: Api::new(&daemon.url),
            _daemon: daemon,
            _dir: dir,
        }
    }

    /// How the simulator behaves (steady unless set).
    pub fn scenario(self, scenario: Scenario) -> Builder {
        Builder { scenario, ..self }
    }

    /// Automatic rollback off: the watchdog only watches.
    pub fn manual(self) -> Builder {
        Builder {
            automatic_rollback: false,
            ..self
        }
    }

    /// Tokens on: ops (operator), boss (admin), watcher (viewer), alertmanager (webhook, its
    /// token read from a file).
    pub fn auth(self) -> Builder {
        Builder { auth: true, ..self }
    }

    /// Tokens on, and reads need one too.
    pub fn read_requires_token(self) -> Builder {
        Builder {
            read_requires_token: true,
            ..self.auth()
        }
    }

    /// How long the daemon waits for the target (500ms unless set).
    pub fn timeout(self, timeout: &'static str) -> Builder {
        Builder { timeout, ..self }
    }

    /// How often the watchdog polls (50ms unless set).
    /// How long a completed rollback's stability watch lasts (1 s unless set).
    pub fn stability_window(self, stability_window: &'static str) -> Builder {
        Builder {
            stability_window,
            ..self
        }
    }

    pub fn poll_interval(self, poll_interval: &'static str) -> Builder {
        Builder {
            poll_interval,
            ..self
        }
    }

    pub fn environment(self, environment: &'static str) -> Builder {
        Builder {
            environment: Some(environment),
            ..self
        }
    }

    /// Monitoring off at start.
    pub fn inactive(self) -> Builder {
        Builder {
            active_on_start: false,
            ..self
        }
    }

    /// Configuration appended as it is, e.g. thresholds with their environments.
    pub fn append_yaml(self, yaml: &str) -> Builder {
        Builder {
            extra_yaml: self.extra_yaml + yaml,
            ..self
        }
    }

    /// Once read, the target answers every request after `ms`; the daemon waits up to 4 s.
    pub fn slow_target(self, ms: u64) -> Builder {
        Builder {
            timeout: "4s",
            slow_target_ms: Some(ms),
            ..self
        }
    }

    /// The daemon's target is a closed port on loopback.
    pub fn unreachable_target(self) -> Builder {
        Builder {
            unreachable_target: true,
            ..self
        }
    }

    /// Starts on this directory's history instead of an empty one.
    pub fn history(self, dir: tempfile::TempDir) -> Builder {
        Builder {
            history: Some(dir),
            ..self
        }
    }

    /// The daemon's configuration file, guarding `target_url`.
    pub fn yaml(&self, target_url: &str) -> String {
        let mut y = format!(
            r#"listen: "127.0.0.1:0"
{}target: {{ url: "{target_url}", timeout: {}, retries: 2, retry_backoff: 20ms }}
agents: {{ expected: 8 }}
monitoring: {{ active_on_start: {}, poll_interval: {}, automatic_rollback: {} }}
cooldown: 15m
validation: {{ pass_score: 85, stability_window: {}, stability_interval: 100ms }}
"#,
            self.storage
                .as_deref()
                .unwrap_or("storage: { path: history.db }\n"),
            self.timeout,
            self.active_on_start,
            self.poll_interval,
            self.automatic_rollback,
            self.stability_window,
        );
        if let Some(env) = self.environment {
            y.push_str(&format!("environment: {env}\n"));
        }
        if self.auth {
            y.push_str(&format!(
                "auth:\n  read_requires_token: {}\n  tokens:\n    - {{ name: ops, role: operator, token: \"{OPS_TOKEN}\" }}\n    - {{ name: boss, role: admin, token: \"{ADMIN_TOKEN}\" }}\n    - {{ name: chief, role: admin, token: \"{SECOND_ADMIN_TOKEN}\" }}\n    - {{ name: watcher, role: viewer, token: \"{VIEWER_TOKEN}\" }}\n    - {{ name: alertmanager, role: webhook, token_file: webhook.token }}\n",
                self.read_requires_token
            ));
        }
        y.push_str(&self.extra_yaml);
        y
    }

    /// Starts a simulator and a daemon guarding it; returns once the daemon listens (and, with
    /// a slow target, once it has read the target and the target has slowed down).
    pub async fn spawn(mut self) -> TestApp {
        let sim = TestSim::spawn(self.scenario).await;
        let dir = match self.history.take() {
            Some(dir) => dir,
            None => tempfile::tempdir().unwrap(),
        };
        let slow_target_ms = self.slow_target_ms.take();
        let app = self.start_on(sim, dir).await;
        if let Some(ms) = slow_target_ms {
            app.first_poll().await;
            app.sim.set_delay_ms(ms).await;
        }
        app
    }

    /// Like `spawn`, then waits until the daemon has read the target once.
    pub async fn spawn_polled(self) -> TestApp {
        let app = self.spawn().await;
        app.first_poll().await;
        app
    }

    async fn start_on(self, sim: TestSim, dir: tempfile::TempDir) -> TestApp {
        std::fs::write(
            dir.path().join("webhook.token"),
            format!("{WEBHOOK_TOKEN}\n"),
        )
        .unwrap();
        let target = if self.unreachable_target {
            format!("http://{}", loopback_addr()) // nothing listens there
        } else {
            sim.url.clone()
        };
        let path = dir.path().join("rollbackd.yaml");
        std::fs::write(&path, self.yaml(&target)).unwrap();
        let daemon = Daemon::start(&path, self.environment).await;
        TestApp {
            api: Api::new(&daemon.url),
            daemon,
            sim,
            dir,
        }
    }
}

/// A running daemon, the simulator it guards and its directory (history, config, token
/// file). It derefs to its `Api`. Fields drop in order: the daemon stops before its
/// directory goes.
pub struct TestApp {
    api: Api,
    daemon: Daemon,
    pub sim: TestSim,
    dir: tempfile::TempDir,
}

impl Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder {
            scenario: Scenario::Steady,
            poll_interval: "50ms",
            stability_window: "1s",
            automatic_rollback: true,
            timeout: "500ms",
            environment: None,
            auth: false,
            read_requires_token: false,
            active_on_start: true,
            extra_yaml: String::new(),
            unreachable_target: false,
            history: None,
            slow_target_ms: None,
            storage: None,
        }
    }

    /// A client of this daemon to move into a task.
    pub fn api(&self) -> Api {
        self.api.clone()
    }

    /// The engine's own status (the status route's JSON), read without HTTP.
    pub fn engine_status(&self) -> Value {
        self.daemon.status()
    }

    /// The engine's own trigger view (the triggers route's JSON), read without HTTP.
    pub fn engine_triggers(&self) -> Value {
        self.daemon.triggers()
    }

    /// Starts the drain and hands the engine `delivery`: true when it is refused.
    pub async fn deliver_while_draining(&self, delivery: &Value) -> bool {
        self.daemon.deliver_while_draining(delivery).await
    }

    /// How many times the listener applied limit `l`.
    pub fn limited(&self, l: rollbackd::metrics::http::Limit) -> u64 {
        self.daemon.limited(l)
    }

    /// Waits (bounded) until the daemon has read the target once.
    pub async fn first_poll(&self) {
        wait_until(
            "the first poll of the target",
            Duration::from_secs(10),
            || async {
                let s = self.engine_status();
                (s["target"]["up"] == true && s["mode"] == "session_targeted").then_some(())
            },
        )
        .await;
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The history's SQLite file, read directly.
    pub fn history(&self) -> HistoryFile {
        HistoryFile::in_dir(self.dir.path())
    }

    /// Drains like SIGTERM does and waits for it; the simulator and the history stay.
    pub async fn stop(self) -> Stopped {
        self.daemon.stop().await;
        Stopped {
            sim: self.sim,
            dir: self.dir,
        }
    }
}

/// A second (third, ...) replica of a daemon, on the same simulator and database.
pub struct Replica {
    api: Api,
    _daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl Deref for Replica {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Replica {
    pub fn api(&self) -> Api {
        self.api.clone()
    }
}

/// What a stopped daemon leaves: its simulator and its history, to start again on.
pub struct Stopped {
    pub sim: TestSim,
    dir: tempfile::TempDir,
}

impl Stopped {
    /// A new daemon configured by `builder`, on the same simulator and history.
    pub async fn restart(self, builder: Builder) -> TestApp {
        builder.start_on(self.sim, self.dir).await
    }
}
