//! The real alerting programs for tests and benchmarks: Prometheus and Alertmanager started
//! from the shipped configs (endpoints pointed at this machine's loopback), and local sinks
//! standing in for SMTP, Slack and SNS.
#![allow(dead_code)]

use super::files::repo;
use super::{wait_for, Options, TestApp, TestSim, WEBHOOK_TOKEN};
use rollbackd::simulator::Scenario;
use serde_json::{json, Value};
use serde_yaml_ng::Value as Yaml;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
}

pub type Shared = Arc<Mutex<Sinks>>;

/// Slack and SNS: record every POST body by path, answer as the real services would.
pub async fn http_sink(sinks: Shared) -> String {
    use axum::extract::{OriginalUri, State};
    let app = axum::Router::new()
        .fallback(|State(s): State<Shared>, OriginalUri(uri): OriginalUri, body: String| async move {
            let path = uri.path().to_string();
            s.lock().unwrap().http.push((path.clone(), body));
            if path.starts_with("/sns") {
                let xml = "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>";
                ([("content-type", "text/xml")], xml.to_string())
            } else {
                ([("content-type", "text/plain")], "ok".to_string())
            }
        })
        .with_state(sinks);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

/// A minimal SMTP server that accepts every message and keeps its DATA.
pub async fn smtp_sink(sinks: Shared) -> String {
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

pub fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Quoted-printable bodies and RFC 2047 `=?utf-8?q?...?=` / `=?utf-8?b?...?=` headers, decoded.
pub fn decode_mail(raw: &str) -> String {
    fn q(s: &str, underscore_space: bool) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'=' if i + 2 < b.len() + 1 && b.get(i + 1) == Some(&b'\n') => i += 2,
                b'=' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                    }
                    _ => {
                        out.push(b'=');
                        i += 1;
                    }
                },
                b'_' if underscore_space => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        out
    }
    fn b64(s: &str) -> Vec<u8> {
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => continue,
            };
            bits = (bits << 6) | v as u32;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        out
    }
    // Encoded words first (their `?=` must not be read as a soft line break), then the body.
    let mut out = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find("=?") {
        out.push_str(&rest[..start]);
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        match (parts.len(), word.find("?=")) {
            (3, Some(_)) => {
                let enc = parts[1];
                let text_end = parts[2].find("?=").unwrap();
                let text = &parts[2][..text_end];
                let bytes = if enc.eq_ignore_ascii_case("b") {
                    b64(text)
                } else {
                    q(text, true)
                };
                out.push_str(&String::from_utf8_lossy(&bytes));
                let consumed = 2 + parts[0].len() + 1 + parts[1].len() + 1 + text_end + 2;
                rest = &rest[start + consumed..];
            }
            _ => {
                out.push_str("=?");
                rest = &rest[start + 2..];
            }
        }
    }
    out.push_str(rest);
    String::from_utf8_lossy(&q(&out, false)).into_owned()
}

pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                out.push(hex(b[i + 1]).unwrap_or(0) * 16 + hex(b[i + 2]).unwrap_or(0));
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn set(map: &mut Yaml, key: &str, value: Yaml) {
    map.as_mapping_mut().unwrap().insert(Yaml::from(key), value);
}

/// The shipped Alertmanager config with only endpoints and secrets replaced.
pub fn render_alertmanager(dir: &Path, daemon: &str, http_sink: &str, smtp: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("alerting/alertmanager.yml")).unwrap();
    let mut cfg: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    let token = dir.join("webhook.token");
    std::fs::write(&token, WEBHOOK_TOKEN).unwrap();
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
        serde_yaml_ng::to_value(vec![repo()
            .join("alerting/templates/*.tmpl")
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
                    Yaml::from(token.display().to_string()),
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
    let path = dir.join("alertmanager.yml");
    std::fs::write(&path, serde_yaml_ng::to_string(&cfg).unwrap()).unwrap();
    path
}

/// The shipped Prometheus config with its targets pointed at this test's processes.
pub fn render_prometheus(
    dir: &Path,
    daemon_addr: &str,
    prom_addr: &str,
    am_addrs: &[String],
) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("alerting/prometheus.yml")).unwrap();
    let mut cfg: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    set(
        &mut cfg,
        "rule_files",
        serde_yaml_ng::to_value(vec![repo()
            .join("alerting/rules/*.yml")
            .display()
            .to_string()])
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

/// The whole alerting loop on loopback: rollbackd (its own automatic rollback off, tokens on)
/// guarding a steady simulator, `alertmanagers` real Alertmanagers (an HA set without gossip,
/// so each delivers) and a real Prometheus, all from configs rendered from the shipped ones,
/// with the people's integrations pointed at local sinks.
pub struct AlertLoop {
    pub sim: TestSim,
    pub app: TestApp,
    pub sinks: Shared,
    pub am_config: PathBuf,
    pub am_addrs: Vec<String>,
    /// Prometheus's base URL.
    pub prom: String,
    pub http: reqwest::Client,
    _procs: Vec<Proc>,
    // Last: the processes are gone before their directories are.
    _dir: tempfile::TempDir,
}

impl AlertLoop {
    /// Starts everything and returns once Prometheus scrapes rollbackd and has found every
    /// Alertmanager.
    pub async fn start(alertmanagers: usize, limit: Duration) -> AlertLoop {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sinks: Shared = Arc::default();
        let http_sink = http_sink(sinks.clone()).await;
        let smtp = smtp_sink(sinks.clone()).await;
        let sim = TestSim::spawn(Scenario::Steady).await;
        let app_dir = dir.join("daemon");
        std::fs::create_dir(&app_dir).unwrap();
        let app = TestApp::start(
            &sim.url,
            &app_dir,
            &Options {
                automatic_rollback: false,
                auth: true,
                ..Default::default()
            },
        )
        .await;
        let am_config = render_alertmanager(dir, &app.url, &http_sink, &smtp);
        let am_addrs: Vec<String> = (0..alertmanagers)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut procs = Vec::new();
        for (i, addr) in am_addrs.iter().enumerate() {
            let data = dir.join(format!("am{i}"));
            std::fs::create_dir(&data).unwrap();
            procs.push(start(
                ["alertmanager-a", "alertmanager-b", "alertmanager-c"][i],
                "prometheus-alertmanager",
                &[
                    format!("--config.file={}", am_config.display()),
                    format!("--storage.path={}", data.display()),
                    format!("--web.listen-address={addr}"),
                    "--cluster.listen-address=".into(),
                ],
                dir,
            ));
        }
        let prom_addr = format!("127.0.0.1:{}", free_port());
        let daemon_addr = app.url.trim_start_matches("http://");
        let prom_config = render_prometheus(dir, daemon_addr, &prom_addr, &am_addrs);
        procs.push(start(
            "prometheus",
            "prometheus",
            &[
                format!("--config.file={}", prom_config.display()),
                format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
                format!("--web.listen-address={prom_addr}"),
            ],
            dir,
        ));
        let stack = AlertLoop {
            sim,
            app,
            sinks,
            am_config,
            am_addrs,
            prom: format!("http://{prom_addr}"),
            http: reqwest::Client::new(),
            _procs: procs,
            _dir: tmp,
        };
        let s = &stack;
        wait_for(
            "Prometheus to scrape rollbackd",
            limit,
            move || async move {
                let v = s.try_query("up{job=\"rollbackd\"} == 1").await?;
                (!v["data"]["result"].as_array()?.is_empty()).then_some(())
            },
        )
        .await;
        let found = alertmanagers.to_string();
        wait_for("Prometheus to find every Alertmanager", limit, || async {
            let v = s
                .try_query("prometheus_notifications_alertmanagers_discovered")
                .await?;
            (v["data"]["result"][0]["value"][1] == found.as_str()).then_some(())
        })
        .await;
        stack
    }

    async fn try_query(&self, expr: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/api/v1/query", self.prom))
            .query(&[("query", expr)])
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// An instant query on this Prometheus; its answer whatever the status.
    pub async fn query(&self, expr: &str) -> Value {
        self.try_query(expr)
            .await
            .unwrap_or_else(|| panic!("Prometheus did not answer the query {expr}"))
    }
}
