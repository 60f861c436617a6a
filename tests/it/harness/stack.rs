//! The real alerting programs for tests and benchmarks: Alertmanagers and a Prometheus
//! started from the shipped configs with their endpoints pointed at this machine's loopback,
//! and local sinks standing in for SMTP, Slack and SNS.

use super::wait::wait_until;
use serde_json::{json, Value};
use serde_yaml_ng::Value as Yaml;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The rendered Alertmanager configuration's file name in the stack's directory.
pub const ALERTMANAGER_CONFIG: &str = "alertmanager.yml";

/// A shipped file, by its path from the repository root.
fn shipped(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A loopback port free just now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `127.0.0.1:<a port free just now>`.
pub fn loopback_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A child process killed on drop; its output goes to a log printed if the test fails.
pub struct Proc {
    name: &'static str,
    log: PathBuf,
    _child: tokio::process::Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- last lines of {} ----", self.name);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// A process of the stack, its output logged in `dir`, killed when dropped.
pub fn start(name: &'static str, program: &str, args: &[String], dir: &Path) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is required (Debian packages prometheus and prometheus-alertmanager; scripts/test.sh installs them): {e}"));
    Proc {
        name,
        log,
        _child: child,
    }
}

#[derive(Default)]
pub struct Sinks {
    pub http: Vec<(String, String)>,
    pub mail: Vec<String>,
    /// Path prefixes (e.g. "/slack") the HTTP sink refuses with 500: a broken channel. The
    /// refused posts are still recorded in `http`.
    pub refuse: Vec<String>,
}

pub type Shared = Arc<Mutex<Sinks>>;

/// Slack and SNS: record every POST body by path, answer as the real services would.
async fn http_sink(sinks: Shared) -> String {
    use axum::extract::{OriginalUri, State};
    use axum::http::StatusCode;
    let app = axum::Router::new()
        .fallback(|State(s): State<Shared>, OriginalUri(uri): OriginalUri, body: String| async move {
            let path = uri.path().to_string();
            let refused = {
                let mut s = s.lock().unwrap();
                s.http.push((path.clone(), body));
                s.refuse.iter().any(|p| path.starts_with(p.as_str()))
            };
            if refused {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [("content-type", "text/plain")],
                    "refused by the test".to_string(),
                )
            } else if path.starts_with("/sns") {
                let xml = "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>";
                (StatusCode::OK, [("content-type", "text/xml")], xml.to_string())
            } else {
                (StatusCode::OK, [("content-type", "text/plain")], "ok".to_string())
            }
        })
        .with_state(sinks);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

/// A minimal SMTP server that accepts every message and keeps its DATA.
async fn smtp_sink(sinks: Shared) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let sinks = sinks.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        let _ = w.write_all(b"354 go ahead\r\n").await;
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        sinks.lock().unwrap().mail.push(data);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    addr
}

fn set(map: &mut Yaml, key: &str, value: Yaml) {
    map.as_mapping_mut().unwrap().insert(Yaml::from(key), value);
}

/// The shipped Alertmanager config `config` (a path from the repository root) with only
/// endpoints and secrets replaced.
fn render_alertmanager(
    dir: &Path,
    config: &str,
    daemon: &str,
    token: &str,
    http_sink: &str,
    smtp: &str,
) -> PathBuf {
    let text = std::fs::read_to_string(shipped(config)).unwrap();
    let mut cfg: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    let token_file = dir.join("webhook.token");
    std::fs::write(&token_file, token).unwrap();
    let g = cfg.get_mut("global").unwrap();
    set(g, "smtp_smarthost", Yaml::from(smtp));
    set(g, "smtp_require_tls", Yaml::from(false));
    for k in [
        "smtp_auth_username",
        "smtp_auth_password_file",
        "slack_api_url_file",
    ] {
        g.as_mapping_mut().unwrap().remove(k);
    }
    set(g, "slack_api_url", Yaml::from(format!("{http_sink}/slack")));
    set(
        &mut cfg,
        "templates",
        serde_yaml_ng::to_value(vec![shipped("alerting/templates/*.tmpl")
            .display()
            .to_string()])
        .unwrap(),
    );
    for r in cfg.get_mut("receivers").unwrap().as_sequence_mut().unwrap() {
        if let Some(hooks) = r.get_mut("webhook_configs").and_then(Yaml::as_sequence_mut) {
            for h in hooks {
                set(
                    h,
                    "url",
                    Yaml::from(format!("{daemon}/api/v1/alertmanager")),
                );
                let auth = h
                    .get_mut("http_config")
                    .unwrap()
                    .get_mut("authorization")
                    .unwrap();
                set(
                    auth,
                    "credentials_file",
                    Yaml::from(token_file.display().to_string()),
                );
            }
        }
        if let Some(sns) = r.get_mut("sns_configs").and_then(Yaml::as_sequence_mut) {
            for s in sns {
                set(s, "api_url", Yaml::from(format!("{http_sink}/sns")));
                let sig = s.get_mut("sigv4").unwrap();
                set(sig, "access_key", Yaml::from("AKIDLOCALSINK"));
                set(sig, "secret_key", Yaml::from("local-sink-secret"));
            }
        }
    }
    let path = dir.join(ALERTMANAGER_CONFIG);
    std::fs::write(&path, serde_yaml_ng::to_string(&cfg).unwrap()).unwrap();
    path
}

/// The shipped Prometheus config with its targets pointed at this test's processes.
fn render_prometheus(
    dir: &Path,
    daemon_addr: &str,
    prom_addr: &str,
    am_addrs: &[String],
) -> PathBuf {
    let text = std::fs::read_to_string(shipped("alerting/prometheus.yml")).unwrap();
    let mut cfg: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    set(
        &mut cfg,
        "rule_files",
        serde_yaml_ng::to_value(vec![shipped("alerting/rules/*.yml").display().to_string()])
            .unwrap(),
    );
    let ams = cfg
        .get_mut("alerting")
        .unwrap()
        .get_mut("alertmanagers")
        .unwrap()
        .as_sequence_mut()
        .unwrap();
    set(
        &mut ams[0],
        "static_configs",
        serde_yaml_ng::to_value(vec![json!({"targets": am_addrs})]).unwrap(),
    );
    for job in cfg
        .get_mut("scrape_configs")
        .unwrap()
        .as_sequence_mut()
        .unwrap()
    {
        let targets: Vec<String> = match job["job_name"].as_str().unwrap() {
            "rollbackd" => vec![daemon_addr.to_string()],
            "alertmanager" => am_addrs.to_vec(),
            _ => vec![prom_addr.to_string()],
        };
        set(
            job,
            "static_configs",
            serde_yaml_ng::to_value(vec![json!({"targets": targets})]).unwrap(),
        );
    }
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, serde_yaml_ng::to_string(&cfg).unwrap()).unwrap();
    path
}

/// Where the alerting programs run and what they talk to.
pub struct Wiring<'a> {
    /// Their configs, data and logs go here.
    pub dir: &'a Path,
    /// The daemon's base URL: Prometheus scrapes it, the webhook posts to it.
    pub daemon: &'a str,
    /// The bearer token the webhook sends.
    pub webhook_token: &'a str,
    /// One Alertmanager per address: an HA set without gossip, so each delivers.
    pub alertmanagers: &'a [String],
    /// What email, Slack and SNS receive.
    pub sinks: &'a Shared,
    /// How long they may take to come up.
    pub limit: Duration,
}

/// Real Alertmanagers and a real Prometheus, from configs rendered from the shipped ones,
/// with the people's integrations pointed at local sinks. Killed when dropped.
pub struct AlertingStack {
    /// Prometheus's base URL.
    prom: String,
    http: reqwest::Client,
    _procs: Vec<Proc>,
}

impl AlertingStack {
    /// Starts everything and returns once Prometheus scrapes the daemon and has found every
    /// Alertmanager.
    pub async fn start(w: Wiring<'_>) -> AlertingStack {
        let http_sink = http_sink(w.sinks.clone()).await;
        let smtp = smtp_sink(w.sinks.clone()).await;
        let am_config = render_alertmanager(
            w.dir,
            "alerting/alertmanager.yml",
            w.daemon,
            w.webhook_token,
            &http_sink,
            &smtp,
        );
        let mut procs: Vec<Proc> = w
            .alertmanagers
            .iter()
            .enumerate()
            .map(|(i, addr)| start_alertmanager(w.dir, i, addr, &am_config))
            .collect();
        let prom_addr = loopback_addr();
        let daemon_addr = w.daemon.trim_start_matches("http://");
        let prom_config = render_prometheus(w.dir, daemon_addr, &prom_addr, w.alertmanagers);
        procs.push(start(
            "prometheus",
            "prometheus",
            &[
                format!("--config.file={}", prom_config.display()),
                format!("--storage.tsdb.path={}", w.dir.join("tsdb").display()),
                format!("--web.listen-address={prom_addr}"),
            ],
            w.dir,
        ));
        let stack = AlertingStack {
            prom: format!("http://{prom_addr}"),
            http: reqwest::Client::new(),
            _procs: procs,
        };
        stack.wait_ready(w.alertmanagers.len(), w.limit).await;
        stack
    }

    async fn wait_ready(&self, alertmanagers: usize, limit: Duration) {
        wait_until("Prometheus to scrape rollbackd", limit, || async {
            let v = self.query("up{job=\"rollbackd\"} == 1").await?;
            (!v["data"]["result"].as_array()?.is_empty()).then_some(())
        })
        .await;
        let found = alertmanagers.to_string();
        wait_until("Prometheus to find every Alertmanager", limit, || async {
            let v = self
                .query("prometheus_notifications_alertmanagers_discovered")
                .await?;
            (v["data"]["result"][0]["value"][1] == found.as_str()).then_some(())
        })
        .await;
    }

    /// An instant query on this Prometheus: its answer whatever the status, `None` when it
    /// did not answer.
    pub async fn query(&self, expr: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/api/v1/query", self.prom))
            .query(&[("query", expr)])
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }
}

/// Alertmanager number `i` at `addr`, with its own data directory and no gossip.
fn start_alertmanager(dir: &Path, i: usize, addr: &str, config: &Path) -> Proc {
    let data = dir.join(format!("am{i}"));
    std::fs::create_dir(&data).unwrap();
    start(
        ["alertmanager-a", "alertmanager-b", "alertmanager-c"][i],
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", data.display()),
            format!("--web.listen-address={addr}"),
            "--cluster.listen-address=".into(),
        ],
        dir,
    )
}

/// One real Alertmanager at `addr`, without Prometheus, on the shipped `config` (a path from
/// the repository root, e.g. "alerting/alertmanager.yml"): every webhook posts to `daemon`
/// with `token`, email, Slack and SNS go to `sinks`. Returns once it answers `/-/ready`;
/// killed when dropped.
// The benches include this file too and do not use it.
#[allow(dead_code)]
pub async fn start_lone_alertmanager(
    dir: &Path,
    config: &str,
    addr: &str,
    daemon: &str,
    token: &str,
    sinks: &Shared,
    limit: Duration,
) -> Proc {
    let http_sink = http_sink(sinks.clone()).await;
    let smtp = smtp_sink(sinks.clone()).await;
    let rendered = render_alertmanager(dir, config, daemon, token, &http_sink, &smtp);
    let proc = start_alertmanager(dir, 0, addr, &rendered);
    let ready = format!("http://{addr}/-/ready");
    wait_until("Alertmanager to be ready", limit, || async {
        let r = reqwest::get(&ready).await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    proc
}
