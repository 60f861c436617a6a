//! The real `rollbackd` binary: as a daemon that can be killed and started again, and as the
//! CLI client and tools an operator runs.

use super::api::{Api, Body, Reply};
use super::app::TestApp;
use super::history::HistoryFile;
use super::library::{Scenario, TestSim};
use super::stack::loopback_addr;
use super::wait::wait_until;
use reqwest::Method;
use serde_json::json;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long the daemon may take to listen, and a switch to reach the target.
const START_LIMIT: Duration = Duration::from_secs(10);
/// How long one CLI command may take.
const CLI_LIMIT: Duration = Duration::from_secs(8);

/// Runs the binary with `args` to its end, e.g. `check-config` or `contacts render`.
pub fn run_rollbackd<S: AsRef<OsStr>>(args: &[S]) -> Out {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args(args)
        .output()
        .unwrap();
    Out::from(out)
}

/// `rollbackd serve` guarding a steady simulator (automatic rollback off, waiting up to 5 s
/// for the target), on a fixed free port so that it can be killed and started again at the
/// same address on the same history.
pub struct BinaryDaemon {
    pub sim: TestSim,
    pub api: Api,
    config: PathBuf,
    listen: String,
    dir: tempfile::TempDir,
}

impl BinaryDaemon {
    /// Writes the configuration; starts nothing but the simulator.
    pub async fn configure() -> BinaryDaemon {
        let builder = TestApp::builder().manual().timeout("5s");
        let sim = TestSim::spawn(Scenario::Steady).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rollbackd.yaml");
        std::fs::write(&config, builder.yaml(&sim.url)).unwrap();
        let listen = loopback_addr();
        BinaryDaemon {
            sim,
            api: Api::new(&format!("http://{listen}")),
            config,
            listen,
            dir,
        }
    }

    /// Starts it and waits until `/-/ready` answers 200.
    pub async fn start(&self) -> tokio::process::Child {
        self.start_logging_to(Stdio::null()).await
    }

    /// Starts it with its log on a pipe whose reading end is closed at once, as when the
    /// process collecting the log has died: every log line it writes fails (EPIPE).
    pub async fn start_with_log_reader_gone(&self) -> tokio::process::Child {
        let mut child = self.start_logging_to(Stdio::piped()).await;
        drop(child.stderr.take());
        child
    }

    async fn start_logging_to(&self, stderr: Stdio) -> tokio::process::Child {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(["--listen", &self.listen])
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_until("the daemon to listen", START_LIMIT, || async {
            let ready = self.api.try_send(Method::GET, "/-/ready", Body::Empty);
            ready.await.ok().filter(|r| r.status == 200).map(|_| ())
        })
        .await;
        child
    }

    /// Slows the target to `delay_ms` per answer and asks for a rollback in a task; returns once
    /// the switch has reached the target, with the request's outcome (the answer, or the error
    /// of a daemon gone) and the event's id.
    pub async fn rollback_in_flight(
        &self,
        delay_ms: u64,
        reason: &'static str,
    ) -> (JoinHandle<reqwest::Result<Reply>>, String) {
        self.sim.set_delay_ms(delay_ms).await;
        let api = self.api.clone();
        let pending = tokio::spawn(async move {
            let body = json!({ "reason": reason });
            api.try_send(Method::POST, "/api/v1/rollback", Body::Json(&body))
                .await
        });
        let id = wait_until("the switch to reach the target", START_LIMIT, || async {
            let switches = self.sim.switches();
            Some(switches.first()?["event_id"].as_str()?.to_string())
        })
        .await;
        (pending, id)
    }

    pub fn history(&self) -> HistoryFile {
        HistoryFile::in_dir(self.dir.path())
    }
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the CLI with `args`, `ROLLBACKD_TOKEN` set to `token` and nothing else from the
/// environment's rollbackd settings; bounded.
pub async fn cli(args: &[&str], token: Option<&str>) -> Out {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"));
    c.args(args)
        .env_remove("ROLLBACKD_URL")
        .env_remove("ROLLBACKD_TOKEN")
        .kill_on_drop(true);
    if let Some(t) = token {
        c.env("ROLLBACKD_TOKEN", t);
    }
    let out = tokio::time::timeout(CLI_LIMIT, c.output())
        .await
        .expect("the CLI returns in time")
        .unwrap();
    Out::from(out)
}

impl From<std::process::Output> for Out {
    fn from(out: std::process::Output) -> Out {
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Out {
    /// Whether it exited 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Fails unless it exited 0 having printed every one of `words`.
    #[track_caller]
    pub fn assert_printed(&self, words: &[&str]) {
        assert!(self.ok(), "{}", self.stderr);
        assert!(
            words.iter().all(|w| self.stdout.contains(w)),
            "{}",
            self.stdout
        );
    }

    /// What `--json` printed.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).expect("--json prints JSON")
    }
}

/// `rollbackd serve` as a process of its own on `config`, at a free loopback address: a
/// replica that can be killed with SIGKILL. Killed when dropped.
pub struct ProcessReplica {
    pub api: Api,
    child: tokio::process::Child,
}

impl ProcessReplica {
    /// Starts it and waits until `/-/ready` answers 200 (its database session is up).
    pub async fn start(config: &std::path::Path) -> ProcessReplica {
        let listen = loopback_addr();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &listen])
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let api = Api::new(&format!("http://{listen}"));
        wait_until("the replica to be ready", START_LIMIT, || async {
            let ready = api.try_send(Method::GET, "/-/ready", Body::Empty);
            ready.await.ok().filter(|r| r.status == 200).map(|_| ())
        })
        .await;
        ProcessReplica { api, child }
    }

    /// kill -9: no drain, no goodbye to the database.
    pub async fn kill9(&mut self) {
        self.child.start_kill().unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// Sends a signal by name (`STOP`, `CONT`) to the process.
    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    /// 1 when it leads, 0 when it follows; `None` when it does not answer.
    pub async fn leader(&self) -> Option<f64> {
        let r = self
            .api
            .try_send(Method::GET, "/metrics", Body::Empty)
            .await
            .ok()?;
        r.text
            .lines()
            .find_map(|l| l.strip_prefix("rollbackd_leader "))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// Sends a signal by name (`TERM`, `HUP`, `STOP`) to a running child, with `kill`.
pub fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().expect("the process runs").to_string();
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}
