//! The operator console in real headless Chromium (Debian's chromium and chromium-driver),
//! driven over WebDriver, against a real daemon and simulator on 127.0.0.1:0.

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use rollbackd::simulator::Scenario;
use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

struct Browser {
    client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// chromedriver in a process group of its own.
struct Driver(tokio::process::Child);

/// A test that fails never closes its session; killing chromedriver alone would leave its
/// Chromium behind, so the whole group goes.
impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

async fn browser() -> Browser {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("chromedriver is required (Debian package chromium-driver; scripts/test.sh installs it): {e}"));
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.path().display())]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "chromedriver did not start a session: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    Browser {
        client,
        _driver: Driver(driver),
        _profile: profile,
    }
}

/// Polls a JavaScript expression until it returns true.
async fn wait_js(c: &Client, what: &str, expr: &str) {
    let start = Instant::now();
    loop {
        let v = c
            .execute(&format!("return !!({expr});"), vec![])
            .await
            .unwrap();
        if v == json!(true) {
            return;
        }
        if start.elapsed() > LIMIT {
            let body = c
                .execute("return document.body.innerText;", vec![])
                .await
                .unwrap();
            panic!(
                "timed out waiting for {what} ({expr}); page text:\n{}",
                body.as_str().unwrap_or("")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn type_into(c: &Client, id: &str, text: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

/// Waits for a dialog to be open (or closed).
async fn wait_dialog(c: &Client, id: &str, open: bool) {
    let expr = format!("document.getElementById('{id}').open === {open}");
    wait_js(c, &format!("#{id} open={open}"), &expr).await;
}

async fn js(c: &Client, expr: &str) -> serde_json::Value {
    c.execute(&format!("return ({expr});"), vec![])
        .await
        .unwrap()
}

async fn setup(auth: bool) -> (TestSim, TestApp, tempfile::TempDir, Browser) {
    let Env { app, sim, dir } = spawn(
        Scenario::Steady,
        &Options {
            automatic_rollback: false,
            auth,
            ..Default::default()
        },
    )
    .await;
    app.first_poll().await;
    let b = browser().await;
    b.client.goto(&format!("{}/", app.url)).await.unwrap();
    (sim, app, dir, b)
}

const CARD: &str = "document.querySelector('[data-condition=\"walk_forward_stability\"]')";

#[tokio::test]
async fn the_panel_shows_the_simulators_values_and_turns_critical_live() {
    let (sim, app, _dir, b) = setup(false).await;
    let c = &b.client;
    wait_js(
        c,
        "the four cards",
        "document.querySelectorAll('[data-condition]').length === 4",
    )
    .await;
    wait_js(
        c,
        "the stability value",
        &format!("{CARD}.querySelector('.value').textContent.includes('72.5')"),
    )
    .await;
    assert_eq!(js(c, &format!("{CARD}.dataset.status")).await, "ok");
    wait_js(c, "agents 8/8 in the header", "document.body.innerText.includes('8/8') || document.body.innerText.includes('8 / 8') || document.body.innerText.includes('8 of 8')").await;
    assert_eq!(
        js(c, "document.getElementById('emergency-rollback').disabled").await,
        false
    );

    let before = js(c, "performance.getEntriesByType('navigation').length").await;
    sim.put("/v1/sim/metrics", json!({"walk_forward_stability": 31.5}))
        .await;
    wait_js(
        c,
        "the card to turn critical",
        &format!("{CARD}.dataset.status === 'critical'"),
    )
    .await;
    wait_js(
        c,
        "the new value",
        &format!("{CARD}.querySelector('.value').textContent.includes('31.5')"),
    )
    .await;
    assert_eq!(
        js(c, "performance.getEntriesByType('navigation').length").await,
        before,
        "no reload"
    );
    sim.put("/v1/sim/metrics", json!({"walk_forward_stability": 45.0}))
        .await;
    wait_js(
        c,
        "warning",
        &format!("{CARD}.dataset.status === 'warning'"),
    )
    .await;
    assert!(app.events().await.is_empty());
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn dismissing_the_confirmation_does_nothing_and_confirming_rolls_back() {
    let (sim, app, _dir, b) = setup(true).await;
    let c = &b.client;
    // Write actions need the operator's token, kept in sessionStorage.
    type_into(c, "token", OPS_TOKEN).await;
    click(c, "save-token").await;
    assert_eq!(
        js(c, "sessionStorage.getItem('rollbackd.token')").await,
        OPS_TOKEN
    );
    wait_js(
        c,
        "the button enabled",
        "!document.getElementById('emergency-rollback').disabled",
    )
    .await;

    click(c, "emergency-rollback").await;
    wait_dialog(c, "confirm-dialog", true).await;
    assert_eq!(
        js(c, "document.getElementById('confirm-rollback').disabled").await,
        true,
        "no reason, no confirm"
    );
    click(c, "cancel-rollback").await;
    wait_dialog(c, "confirm-dialog", false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.events().await.is_empty(), "dismissing does nothing");
    assert!(sim.sim.switches().is_empty());

    click(c, "emergency-rollback").await;
    wait_dialog(c, "confirm-dialog", true).await;
    type_into(c, "rollback-reason", "drawdown spike on desk 3").await;
    wait_js(
        c,
        "confirm enabled",
        "!document.getElementById('confirm-rollback').disabled",
    )
    .await;
    click(c, "confirm-rollback").await;
    wait_js(c, "the completed rollback in the history", "[...document.querySelectorAll('#history .history-item')].some(e => e.textContent.includes('drawdown spike on desk 3') && e.textContent.includes('completed'))").await;
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], "ops");
    assert_eq!(events[0]["status"], "completed");
    assert_eq!(sim.sim.switches().len(), 1);
    wait_js(
        c,
        "the button disabled once rolled back",
        "document.getElementById('emergency-rollback').disabled",
    )
    .await;
    wait_js(
        c,
        "the validation in its history",
        "document.querySelectorAll('#validations .validation-item').length >= 1",
    )
    .await;
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn a_reason_with_markup_stays_text() {
    let (_sim, app, _dir, b) = setup(false).await;
    let c = &b.client;
    let evil = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>";
    let (code, _) = app
        .post("/api/v1/rollback", json!({"reason": evil}), None)
        .await;
    assert_eq!(code, 200);
    wait_js(
        c,
        "the event in the history",
        "document.querySelectorAll('#history .history-item').length >= 1",
    )
    .await;
    wait_js(c, "the reason shown as text", "document.getElementById('history').textContent.includes('<script>window.__pwned=2</script>')").await;
    assert_eq!(
        js(
            c,
            "document.querySelectorAll('#history img, #history script').length"
        )
        .await,
        0
    );
    assert_eq!(js(c, "window.__pwned === undefined").await, true);
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_content_security_policy() {
    let Env {
        app,
        sim: _sim,
        dir: _dir,
    } = spawn(Scenario::Steady, &Options::default()).await;
    let resp = reqwest::get(format!("{}/", app.url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("/console/app.js"),
        "the script is a file, not inline"
    );
    assert!(
        !html.contains("<script>") && !html.contains(" onclick="),
        "no inline script or handlers"
    );
    for (path, ct) in [
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let r = reqwest::get(format!("{}{path}", app.url)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(ct));
        assert!(
            r.text().await.unwrap().len() > 100,
            "{path} is the real asset"
        );
    }
}

#[tokio::test]
async fn losing_the_stream_shows_the_stale_data_banner() {
    let (_sim, app, _dir, b) = setup(false).await;
    let c = &b.client;
    wait_js(
        c,
        "the cards",
        "document.querySelectorAll('[data-condition]').length === 4",
    )
    .await;
    assert_eq!(
        js(c, "document.getElementById('stale-banner').hidden").await,
        true
    );
    app.stop().await; // the daemon drains and closes the stream
    wait_js(
        c,
        "the stale banner",
        "!document.getElementById('stale-banner').hidden",
    )
    .await;
    let text = js(c, "document.getElementById('stale-banner').textContent").await;
    assert!(
        text.as_str().unwrap().contains("may be out of date"),
        "{text}"
    );
    b.client.close().await.unwrap();
}

/// WebDriver key codes.
const ENTER: &str = "\u{E007}";
const TAB: &str = "\u{E004}";
const ESCAPE: &str = "\u{E00C}";

async fn press(c: &Client, keys: &str) {
    c.active_element()
        .await
        .unwrap()
        .send_keys(keys)
        .await
        .unwrap();
}

async fn active_id(c: &Client) -> serde_json::Value {
    js(c, "document.activeElement && document.activeElement.id").await
}

/// Every form control has a name a screen reader can say; nothing sticks out sideways.
async fn assert_labelled_and_fits(c: &Client, width: &str) {
    let unnamed = js(
        c,
        "[...document.querySelectorAll('button, input, textarea')].filter(e => \
           !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()\
         ).map(e => e.id || e.outerHTML)",
    )
    .await;
    assert_eq!(unnamed, json!([]), "{width}: controls without a label");
    let (scroll, inner) = (
        js(c, "document.documentElement.scrollWidth").await,
        js(c, "window.innerWidth").await,
    );
    assert!(
        scroll.as_f64().unwrap() <= inner.as_f64().unwrap(),
        "{width}: the page scrolls sideways ({scroll} > {inner})"
    );
    let button = js(
        c,
        "(r => r.left >= 0 && r.right <= window.innerWidth)\
         (document.getElementById('emergency-rollback').getBoundingClientRect())",
    )
    .await;
    assert_eq!(button, true, "{width}: the emergency button is cut off");
}

#[tokio::test]
async fn the_panel_fits_desktop_and_phone_and_works_from_the_keyboard() {
    let (sim, app, _dir, b) = setup(false).await;
    let c = &b.client;
    wait_js(
        c,
        "the button enabled",
        "!document.getElementById('emergency-rollback').disabled",
    )
    .await;
    assert_labelled_and_fits(c, "1280 px").await;
    c.set_window_size(390, 844).await.unwrap();
    wait_js(c, "a phone-width viewport", "window.innerWidth <= 400").await;
    assert_labelled_and_fits(c, "390 px").await;
    // At phone width the four cards stack instead of squeezing side by side.
    let columns = js(
        c,
        "new Set([...document.querySelectorAll('[data-condition]')]\
           .map(e => Math.round(e.getBoundingClientRect().left))).size",
    )
    .await;
    assert_eq!(columns, 1, "cards at 390 px are in {columns} columns");

    // Keyboard only: Enter opens the confirmation with the reason focused, Escape dismisses it.
    js(
        c,
        "document.getElementById('emergency-rollback').focus() ?? true",
    )
    .await;
    press(c, ENTER).await;
    wait_dialog(c, "confirm-dialog", true).await;
    assert_eq!(active_id(c).await, "rollback-reason");
    press(c, "typed at the keyboard").await;
    press(c, ESCAPE).await;
    wait_dialog(c, "confirm-dialog", false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.events().await.is_empty(), "Escape does nothing");
    assert!(sim.sim.switches().is_empty());

    // Again, then Tab past the dry-run box and Cancel to the confirm button.
    js(
        c,
        "document.getElementById('emergency-rollback').focus() ?? true",
    )
    .await;
    press(c, ENTER).await;
    wait_dialog(c, "confirm-dialog", true).await;
    assert_eq!(
        js(c, "document.getElementById('rollback-reason').value").await,
        "",
        "a dismissed reason is not kept for the next rollback"
    );
    press(c, "rolled back from the keyboard").await;
    for _ in 0..3 {
        press(c, TAB).await;
    }
    assert_eq!(active_id(c).await, "confirm-rollback");
    press(c, ENTER).await;
    wait_js(c, "the completed rollback in the history", "[...document.querySelectorAll('#history .history-item')].some(e => e.textContent.includes('rolled back from the keyboard') && e.textContent.includes('completed'))").await;
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "rolled back from the keyboard");
    assert_eq!(sim.sim.switches().len(), 1);
    b.client.close().await.unwrap();
}
