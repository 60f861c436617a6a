//! The daemon's edge under real TLS and abuse: certificates made at test time (rcgen), a TLS
//! listener and a TLS target, mutual TLS, basic auth, the listener's limits on loopback
//! sockets, and property tests for every parser that reads outside input.

use crate::harness::api::Api;
use crate::harness::app::Builder;
use crate::harness::library::{Daemon, TestSim};
use crate::harness::metrics::Metrics;
use crate::harness::stack;
use crate::harness::wait::wait_until as wait_for;
use crate::harness::*;
use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rollbackd::metrics::http::Limit;
use rollbackd::simulator::{Scenario, Simulator};
use rollbackd::tls::ClientTls;
use rollbackd::transport::{Answer, Transport, TransportError};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const LONG: Duration = Duration::from_secs(10);

// ---- daemons on prepared directories -----------------------------------------------------

/// What a test asks of its daemon here; everything else is the harness's default.
#[derive(Default)]
struct Options {
    auth: bool,
    automatic_rollback: bool,
    timeout: &'static str,
    extra_yaml: String,
}

impl Options {
    fn builder(&self) -> Builder {
        let mut b = TestApp::builder().append_yaml(&self.extra_yaml);
        if self.auth {
            b = b.auth();
        }
        if !self.automatic_rollback {
            b = b.manual();
        }
        if !self.timeout.is_empty() {
            b = b.timeout(self.timeout);
        }
        b
    }
}

/// A daemon on `target_url` whose directory `dir` the test prepared (certificates, web
/// config); it derefs to its `Api`.
struct Edge {
    api: Api,
    daemon: Daemon,
}

impl std::ops::Deref for Edge {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Edge {
    async fn start(target_url: &str, dir: &Path, o: &Options) -> Edge {
        std::fs::write(dir.join("webhook.token"), format!("{WEBHOOK_TOKEN}\n")).unwrap();
        let path = dir.join("rollbackd.yaml");
        std::fs::write(&path, o.builder().yaml(target_url)).unwrap();
        let daemon = Daemon::start(&path, None).await;
        Edge {
            api: Api::new(&daemon.url),
            daemon,
        }
    }

    async fn first_poll(&self) {
        wait_for("the first poll of the target", LONG, || async {
            (self.daemon.status()["target"]["up"] == true).then_some(())
        })
        .await;
    }
}

/// The value of one unlabelled series in a scrape.
fn metric(text: &str, name: &str) -> Option<f64> {
    Metrics {
        text: text.to_string(),
    }
    .get(name, &[])
}

// ---- certificates ----------------------------------------------------------------------

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for 127.0.0.1 and localhost (or a client's), signed by `ca`: (cert, key) PEM.
fn leaf(ca: &Ca, name: &str, client: bool) -> (String, String) {
    let mut p =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A server certificate and key from `ca` written as `server.pem` / `server.key`, and the
/// CA as `ca.pem`.
fn server_files(dir: &Path, ca: &Ca) {
    let (cert, key) = leaf(ca, "rollbackd", false);
    write(dir, "server.pem", &cert);
    write(dir, "server.key", &key);
    write(dir, "ca.pem", &ca.pem());
}

fn trusting(ca: &Ca) -> ClientTls {
    ClientTls {
        ca: Some(vec![ca.der().clone()]),
        identity: None,
    }
}

fn with_identity(mut tls: ClientTls, dir: &Path, ca: &Ca, name: &str) -> ClientTls {
    let (cert, key) = leaf(ca, name, true);
    let c = write(dir, &format!("{name}.pem"), &cert);
    let k = write(dir, &format!("{name}.key"), &key);
    tls.identity = Some((
        rollbackd::tls::read_certs(&c).unwrap(),
        Arc::new(rollbackd::tls::read_key(&k).unwrap()),
    ));
    tls
}

async fn get_with(
    url: &str,
    tls: &ClientTls,
    headers: &[(&str, String)],
) -> Result<Answer, TransportError> {
    let t = Transport::new(url, tls, Duration::from_secs(2)).unwrap();
    t.send(
        axum::http::Method::GET,
        url,
        headers,
        None,
        Duration::from_secs(5),
    )
    .await
}

async fn get(url: &str, tls: &ClientTls) -> Result<Answer, TransportError> {
    get_with(url, tls, &[]).await
}

/// Waits (bounded) until the scrape at `metrics_url` counts at least `n` failed handshakes.
async fn handshake_failures_counted(metrics_url: &str, tls: &ClientTls, n: f64) {
    wait_for("the failed handshakes to be counted", LONG, || async {
        let a = get(metrics_url, tls).await.ok()?;
        let v = metric(
            &String::from_utf8_lossy(&a.body),
            "rollbackd_http_tls_handshake_failures_total",
        )?;
        (v >= n).then_some(())
    })
    .await;
}

fn https(app: &Api) -> String {
    app.url.replacen("http://", "https://", 1)
}

/// A daemon whose listener speaks TLS as `web.yml` (already written in `dir`) says.
async fn tls_daemon(sim: &TestSim, dir: &Path, extra: &str) -> Edge {
    let o = Options {
        automatic_rollback: false,
        extra_yaml: format!("web_config_file: web.yml\n{extra}"),
        ..Default::default()
    };
    Edge::start(&sim.url, dir, &o).await
}

// ---- TLS on the listener ---------------------------------------------------------------

#[tokio::test]
async fn metrics_are_scraped_over_tls_with_the_ca_and_other_cas_are_refused_by_name() {
    let sim = TestSim::spawn(Scenario::Steady).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = ca("rollbackd test CA");
    server_files(dir, &good);
    write(
        dir,
        "web.yml",
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n",
    );
    let app = tls_daemon(&sim, dir, "").await;
    let url = https(&app);

    let a = get(&format!("{url}/metrics"), &trusting(&good))
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let text = String::from_utf8_lossy(&a.body);
    assert!(text.contains("rollback_system_ready"), "{text}");

    let e = get(&format!("{url}/metrics"), &trusting(&ca("another CA")))
        .await
        .err()
        .expect("a server certificate from an unknown CA is refused");
    assert!(
        matches!(&e, TransportError::Tls(why) if why.contains("invalid peer certificate") && why.contains("UnknownIssuer")),
        "{e}"
    );
    // Plain HTTP to the TLS port is a failed handshake, counted.
    let plain = reqwest::Client::new()
        .get(format!("{}/metrics", app.url))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    handshake_failures_counted(&format!("{url}/metrics"), &trusting(&good), 2.0).await;
}

#[tokio::test]
async fn the_cli_reaches_a_tls_daemon_with_its_ca_file_and_names_the_certificate_problem_without() {
    let sim = TestSim::spawn(Scenario::Steady).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = ca("rollbackd test CA");
    server_files(dir, &good);
    write(
        dir,
        "web.yml",
        "tls_server_config: { cert_file: server.pem, key_file: server.key }\n",
    );
    let app = tls_daemon(&sim, dir, "").await;
    let cli = |ca_file: Option<PathBuf>| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"));
        c.args(["status", "--url", &https(&app)])
            .env_remove("ROLLBACKD_CA_FILE")
            .env_remove("ROLLBACKD_TOKEN");
        if let Some(f) = ca_file {
            c.env("ROLLBACKD_CA_FILE", f);
        }
        c.output()
    };
    let ok = cli(Some(dir.join("ca.pem"))).await.unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("session_targeted"));
    let refused = cli(None).await.unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(4), "{err}");
    assert!(
        err.contains("TLS handshake failed")
            && err.contains("UnknownIssuer")
            && err.contains("--ca-file"),
        "{err}"
    );
}

#[tokio::test]
async fn mutual_tls_lets_in_only_clients_signed_by_the_client_ca() {
    let sim = TestSim::spawn(Scenario::Steady).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server_ca = ca("server CA");
    let client_ca = ca("client CA");
    server_files(dir, &server_ca);
    write(dir, "clients.pem", &client_ca.pem());
    write(
        dir,
        "web.yml",
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: clients.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
    );
    let app = tls_daemon(&sim, dir, "").await;
    let url = format!("{}/metrics", https(&app));
    let prometheus = with_identity(trusting(&server_ca), dir, &client_ca, "prometheus");
    let a = get(&url, &prometheus).await.unwrap();
    assert_eq!(a.status, 200);

    let anonymous = get(&url, &trusting(&server_ca)).await;
    assert!(anonymous.is_err(), "no client certificate, no answer");
    let stranger = with_identity(trusting(&server_ca), dir, &ca("rogue CA"), "stranger");
    assert!(
        get(&url, &stranger).await.is_err(),
        "a certificate from another CA is refused"
    );
    handshake_failures_counted(&url, &prometheus, 2.0).await;
}

// ---- basic auth ------------------------------------------------------------------------

#[tokio::test]
async fn basic_auth_guards_every_read_and_writes_keep_their_bearer_tokens() {
    let sim = TestSim::spawn(Scenario::Steady).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hash = bcrypt::hash("scrape-secret", 4).unwrap();
    write(
        dir,
        "web.yml",
        &format!("basic_auth_users:\n  prometheus: \"{hash}\"\n"),
    );
    let o = Options {
        auth: true,
        automatic_rollback: false,
        extra_yaml: "web_config_file: web.yml\n".into(),
        ..Default::default()
    };
    let app = Edge::start(&sim.url, dir, &o).await;
    let req = |path: &str, user: Option<(&str, &str)>| {
        let r = reqwest::Client::new().get(format!("{}{path}", app.url));
        match user {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    };
    for path in ["/metrics", "/", "/api/v1/status", "/api/v1/rollbacks"] {
        let r = req(path, None).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Basic "), "{path}: {challenge}");
        let r = req(path, Some(("prometheus", "wrong")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong password");
        let r = req(path, Some(("prometheus", "scrape-secret")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with the password");
    }
    // Probes stay open; a reading token is as good as a password.
    assert_eq!(req("/-/healthy", None).send().await.unwrap().status(), 200);
    let r = reqwest::Client::new()
        .get(format!("{}/metrics", app.url))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(
        metric(&text, "rollbackd_http_basic_auth_failures_total"),
        Some(4.0)
    );
    // A write with a basic-auth user is refused: writes need their token.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/monitoring/stop", app.url))
        .basic_auth("prometheus", Some("scrape-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.with_token(OPS_TOKEN)
        .post("/api/v1/monitoring/stop", &json!({}))
        .await
        .ok();
}

// ---- an https target ---------------------------------------------------------------------

/// A simulator behind TLS with a certificate from `ca`; its URL, and the simulator.
async fn tls_target(dir: &Path, ca: &Ca) -> (String, Simulator, CancellationToken) {
    let (cert, key) = leaf(ca, "trading system", false);
    write(dir, "target.pem", &cert);
    write(dir, "target.key", &key);
    let web = write(
        dir,
        "target-web.yml",
        "tls_server_config: { cert_file: target.pem, key_file: target.key }\n",
    );
    let web = rollbackd::config::load_web_config(&web).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let sim = Simulator::new(Scenario::Steady);
    let settings = rollbackd::listener::ListenerSettings {
        web: Some(web),
        limits: Default::default(),
    };
    let stop = CancellationToken::new();
    tokio::spawn(rollbackd::listener::run(
        listener,
        sim.router(),
        Arc::new(arc_swap::ArcSwap::from_pointee(settings)),
        Default::default(),
        stop.clone(),
    ));
    (url, sim, stop)
}

#[tokio::test]
async fn an_https_target_with_its_ca_is_guarded_end_to_end_and_a_wrong_ca_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target_ca = ca("trading system CA");
    let (url, sim, stop) = tls_target(dir, &target_ca).await;
    let o = Options {
        automatic_rollback: false,
        ..Default::default()
    };
    // The harness writes `target: { url: "URL", ... }`; the CA goes in beside the URL.
    let with_ca = |file: &str| format!("{url}\", ca_file: \"{file}");
    let good_dir = dir.join("good");
    std::fs::create_dir(&good_dir).unwrap();
    write(&good_dir, "target-ca.pem", &target_ca.pem());
    let app = Edge::start(&with_ca("target-ca.pem"), &good_dir, &o).await;
    app.first_poll().await;
    let r = app
        .post("/api/v1/rollback", &json!({"reason": "over TLS"}))
        .await;
    let (code, event) = (r.status, r.json);
    assert_eq!(code, 200, "{event}");
    assert_eq!(event["status"], "completed", "{event}");
    let switches = sim.switches();
    assert_eq!(switches.len(), 1);
    assert_eq!(switches[0].event_id, event["id"].as_str().unwrap());

    // The same target trusted through another CA: never up, and the reason names the certificate.
    let bad_dir = dir.join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    write(&bad_dir, "other-ca.pem", &ca("not the target's CA").pem());
    let wrong = Edge::start(&with_ca("other-ca.pem"), &bad_dir, &o).await;
    let why = wait_for("the failed read to be reported", LONG, || async {
        let s = wrong.get("/api/v1/status").await.json;
        s["target"]["last_error"].as_str().map(str::to_owned)
    })
    .await;
    assert!(
        why.contains("invalid peer certificate")
            && why.contains("UnknownIssuer")
            && why.contains("target.ca_file"),
        "{why}"
    );
    assert_eq!(
        metric(&wrong.metrics().await.text, "rollback_target_up"),
        Some(0.0)
    );
    stop.cancel();
}

// ---- bad web config files --------------------------------------------------------------

#[tokio::test]
async fn a_bad_web_config_file_stops_the_daemon_and_check_config_names_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let the_ca = ca("test CA");
    server_files(dir, &the_ca);
    write(dir, "rollbackd.yaml", "web_config_file: web.yml\n");
    let cases: &[(&str, &str, &str)] = &[
        ("tls_server_config: { cert_file: missing.pem, key_file: server.key }\n", "tls_server_config.cert_file", "cannot read"),
        ("tls_server_config: { cert_file: server.pem, key_file: server.key, ciphers: [x] }\n", "tls_server_config.ciphers", "unknown field `ciphers`"),
        ("basic_auth_users: { prometheus: \"not-a-hash\" }\n", "basic_auth_users.prometheus", "not a bcrypt hash"),
        ("tls_server_config: { cert_file: server.pem, key_file: server.key, client_ca_file: ca.pem }\n", "tls_server_config.client_auth_type", "NoClientCert"),
    ];
    for (text, key, expect) in cases {
        write(dir, "web.yml", text);
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
            .arg("check-config")
            .arg(dir.join("rollbackd.yaml"))
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(
            err.contains(&format!("web.yml: {key}: ")),
            "{text}: no file and key in {err}"
        );
        assert!(err.contains(expect), "{text}: {expect:?} not in {err}");
    }
    // `serve --web.config.file` refuses the same way before it listens.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--web.config.file"])
        .arg(dir.join("web.yml"))
        .env_remove("ROLLBACKD_CONFIG")
        .current_dir(dir)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        err.contains("web.yml: tls_server_config.client_auth_type: "),
        "{err}"
    );
}

// ---- limits ----------------------------------------------------------------------------

const WEBHOOK: &str = r#"{"version":"4","groupKey":"g","status":"resolved","receiver":"rollbackd","alerts":[{"status":"resolved","labels":{"alertname":"Probe"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f1"}]}"#;

async fn deliver(app: &Api) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/api/v1/alertmanager", app.url))
        .bearer_auth(WEBHOOK_TOKEN)
        .header("content-type", "application/json")
        .body(WEBHOOK)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn limited(app: &TestApp, l: Limit) -> u64 {
    app.limited(l)
}

#[tokio::test]
async fn held_open_sockets_do_not_lock_out_scrapes_or_the_webhook() {
    let o = Options {
        auth: true,
        automatic_rollback: false,
        extra_yaml: "limits: { max_connections: 4, header_read_timeout: 30s }\n".into(),
        ..Default::default()
    };
    let app = o.builder().spawn().await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    wait_for("the held sockets to be accepted", LONG, || async {
        (limited(&app, Limit::MaxConnectionsEvicted) >= 6).then_some(())
    })
    .await;
    let fresh = reqwest::Client::new();
    let r = fresh
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        metric(&text, "rollbackd_http_connections").unwrap() <= 4.0,
        "{text}"
    );
    assert_eq!(deliver(&app).await, 200);
    drop(held);
}

#[tokio::test]
async fn when_every_connection_is_busy_a_new_one_is_closed_at_once() {
    let o = Options {
        automatic_rollback: false,
        timeout: "5s",
        extra_yaml: "limits: { max_connections: 1 }\n".into(),
        ..Default::default()
    };
    let app = o.builder().spawn().await;
    app.first_poll().await;
    app.sim.set_delay_ms(1500).await;
    let url = app.url.clone();
    let rollback = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/api/v1/rollback"))
            .json(&json!({"reason": "held busy"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    wait_for("the rollback to be in progress", LONG, || async {
        app.engine_status()["in_progress"].as_str().map(|_| ())
    })
    .await;
    let addr = app.url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(LONG, s.read(&mut buf))
        .await
        .expect("closed, not left waiting");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(limited(&app, Limit::MaxConnections) >= 1);
    assert_eq!(rollback.await.unwrap(), 200, "the busy request finishes");
}

#[tokio::test]
async fn a_slowloris_head_is_cut_after_the_header_read_timeout_and_idle_connections_close() {
    let o = Options {
        extra_yaml: "limits: { header_read_timeout: 300ms, idle_timeout: 400ms }\n".into(),
        ..Default::default()
    };
    let app = o.builder().spawn().await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut cut = false;
    for i in 0..100 {
        let line = format!("X-Drip-{i}: y\r\n");
        if s.write_all(line.as_bytes()).await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(n)) => panic!(
                "answered a request whose head never ended: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => {}
        }
    }
    assert!(cut, "the drip-fed head was never cut");
    assert!(limited(&app, Limit::HeaderReadTimeout) >= 1);

    // A kept-alive connection that asks once and then idles is closed.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(LONG, async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the idle connection stayed open");
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "answered first"
    );
    assert!(limited(&app, Limit::IdleTimeout) >= 1);
}

#[tokio::test]
async fn the_stream_cap_answers_503_and_frees_the_place_when_a_stream_ends() {
    let o = Options {
        extra_yaml: "limits: { max_stream_subscribers: 1 }\n".into(),
        ..Default::default()
    };
    let app = o.builder().spawn().await;
    let ws = app.url.replacen("http://", "ws://", 1) + "/api/v1/stream";
    let (first, _) = tokio_tungstenite::connect_async(&ws).await.unwrap();
    match tokio_tungstenite::connect_async(&ws).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body: Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
        }
        other => panic!("a second stream over the cap: {:?}", other.map(|_| ())),
    }
    assert_eq!(limited(&app, Limit::MaxStreamSubscribers), 1);
    drop(first);
    wait_for("the place to be freed", LONG, || async {
        tokio_tungstenite::connect_async(&ws).await.ok().map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn write_rates_answer_429_with_retry_after_per_token_and_spare_the_webhook() {
    let o = Options {
        auth: true,
        automatic_rollback: false,
        extra_yaml: "limits: { write_requests_per_minute: 1, write_burst: 2 }\n".into(),
        ..Default::default()
    };
    let app = o.builder().spawn().await;
    let post = |token: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/v1/monitoring/start", app.url))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(post(OPS_TOKEN).await.unwrap().status(), 200);
    }
    let r = post(OPS_TOKEN).await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"ops\""),
        "{body}"
    );
    // Another token has its own allowance; the webhook and /metrics keep answering.
    assert_eq!(post(ADMIN_TOKEN).await.unwrap().status(), 200);
    for _ in 0..5 {
        assert_eq!(deliver(&app).await, 200);
    }
    app.metrics().await.assert(
        "rollbackd_http_limited_total",
        &[("limit", "write_rate")],
        1.0,
    );
}

// ---- parsers of outside input, fuzzed --------------------------------------------------

/// JSON-ish text: fragments of the real shapes, shuffled, so the parsers get past the first
/// byte as often as they fail on it.
fn jsonish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"version\"".to_string()),
        Just("\"4\"".to_string()),
        Just("\"alerts\"".to_string()),
        Just("\"status\"".to_string()),
        Just("\"firing\"".to_string()),
        Just("\"labels\"".to_string()),
        Just("\"startsAt\"".to_string()),
        Just("\"fingerprint\"".to_string()),
        Just("\"mode\"".to_string()),
        Just("\"metrics\"".to_string()),
        Just("\"agents\"".to_string()),
        Just("null".to_string()),
        Just("1e999".to_string()),
        Just("-0".to_string()),
        "[a-z0-9\"\\\\ ]{0,8}",
    ];
    prop::collection::vec(piece, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_webhook_parser_never_panics_and_names_each_rejection(text in prop_oneof![jsonish(), ".{0,512}"]) {
        if let Err(e) = rollbackd::alertmanager::parse(text.as_bytes()) {
            let m = e.to_string();
            prop_assert!(m.starts_with("malformed Alertmanager payload: ") || m.starts_with("unsupported Alertmanager payload version"), "{}", m);
            prop_assert!(m.len() > "malformed Alertmanager payload: ".len(), "{}", m);
        }
    }

    #[test]
    fn the_webhook_parser_takes_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        if let Err(e) = rollbackd::alertmanager::parse(&bytes) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn the_target_status_parser_never_panics(text in prop_oneof![jsonish(), ".{0,512}"]) {
        match serde_json::from_str::<rollbackd::domain::TargetStatus>(&text) {
            Ok(s) => {
                // Whatever was read, the accessors stay total.
                let _ = s.healthy_agents();
                let _ = s.metric("max_drawdown").map(f64::is_finite);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn the_config_loader_never_panics_and_names_file_and_key(text in prop_oneof![yamlish(), ".{0,512}"]) {
        let dir = std::env::temp_dir();
        if let Err(e) = rollbackd::config::from_str(&text, &dir, None) {
            prop_assert!(!e.file.is_empty() && !e.key.is_empty() && !e.message.is_empty(), "{:?}", e);
        }
    }
}

/// YAML-ish text built from the config's own keys and values.
fn yamlish() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("listen"),
        Just("target"),
        Just("url"),
        Just("timeout"),
        Just("limits"),
        Just("max_connections"),
        Just("monitoring"),
        Just("poll_interval"),
        Just("trigger_conditions"),
        Just("max_drawdown"),
        Just("critical_threshold"),
        Just("environments"),
        Just("auth"),
        Just("tokens"),
        Just("cooldown"),
        Just("validation"),
        Just("pass_score"),
    ];
    let value = prop_oneof![
        Just("1s".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("\"http://127.0.0.1:1\"".to_string()),
        Just("\"https://127.0.0.1:1\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("~".to_string()),
        Just(".nan".to_string()),
        "[a-z0-9:./]{0,10}",
    ];
    let line = (0..3usize, key, value)
        .prop_map(|(indent, k, v)| format!("{}{k}: {v}\n", "  ".repeat(indent)));
    prop::collection::vec(line, 0..24).prop_map(|v| v.concat())
}

// ---- real clients and the real binary ----------------------------------------------------

#[tokio::test]
async fn a_real_prometheus_scrapes_over_tls_with_basic_auth() {
    let sim = TestSim::spawn(Scenario::Steady).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let the_ca = ca("rollbackd test CA");
    server_files(dir, &the_ca);
    let hash = bcrypt::hash("scrape-secret", 4).unwrap();
    write(
        dir,
        "web.yml",
        &format!("tls_server_config: {{ cert_file: server.pem, key_file: server.key }}\nbasic_auth_users:\n  prometheus: \"{hash}\"\n"),
    );
    let app = tls_daemon(&sim, dir, "").await;
    write(dir, "password", "scrape-secret");
    let daemon = app.url.trim_start_matches("http://");
    let prom_addr = format!("127.0.0.1:{}", stack::free_port());
    let config = write(
        dir,
        "prometheus.yml",
        &format!(
            "global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: rollbackd\n    scheme: https\n    tls_config: {{ ca_file: {ca} }}\n    basic_auth: {{ username: prometheus, password_file: {pw} }}\n    static_configs: [ {{ targets: [\"{daemon}\"] }} ]\n",
            ca = dir.join("ca.pem").display(),
            pw = dir.join("password").display()
        ),
    );
    let _prom = stack::start(
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address={prom_addr}"),
        ],
        dir,
    );
    let http = reqwest::Client::new();
    wait_for(
        "Prometheus to scrape rollbackd over TLS",
        Duration::from_secs(30),
        || async {
            let v: Value = http
                .get(format!("http://{prom_addr}/api/v1/query"))
                .query(&[("query", "rollback_system_ready")])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (!v["data"]["result"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_simulator_binary_serves_tls_from_a_web_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let the_ca = ca("trading system CA");
    server_files(dir, &the_ca);
    write(
        dir,
        "web.yml",
        "tls_server_config: { cert_file: server.pem, key_file: server.key }\n",
    );
    let addr = format!("127.0.0.1:{}", stack::free_port());
    let _sim = stack::start(
        "simulator",
        env!("CARGO_BIN_EXE_rollbackd"),
        &[
            "simulate".into(),
            "--listen".into(),
            addr.clone(),
            "--web.config.file".into(),
            dir.join("web.yml").display().to_string(),
        ],
        dir,
    );
    let url = format!("https://{addr}/v1/status");
    let status = wait_for("the simulator to answer over TLS", LONG, || async {
        get(&url, &trusting(&the_ca)).await.ok()
    })
    .await;
    assert_eq!(status.status, 200);
    let v: Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(v["mode"], "session_targeted");
}
