//! The operator console in real headless Chromium against a real daemon and simulator: live
//! values, the confirmed emergency rollback, text that stays text, a strict CSP, the stale-data
//! banner, and a layout that works at phone width and from the keyboard.

use crate::harness::browser::{Browser, ENTER, ESCAPE, TAB};
use crate::harness::*;
use serde_json::json;
use std::time::Duration;

const CARD: &str = "document.querySelector('[data-condition=\"walk_forward_stability\"]')";

/// A daemon (manual, tokens on when `auth`) read once, and the console open in a browser.
async fn console(auth: bool) -> (TestApp, Browser) {
    let builder = TestApp::builder().manual();
    let builder = if auth { builder.auth() } else { builder };
    let app = builder.spawn_polled().await;
    let b = Browser::open(&format!("{}/", app.url)).await;
    (app, b)
}

#[tokio::test]
async fn the_panel_shows_the_simulators_values_and_turns_critical_live() {
    let (app, b) = console(false).await;
    b.wait_js(
        "the four cards",
        "document.querySelectorAll('[data-condition]').length === 4",
    )
    .await;
    b.wait_js(
        "the stability value",
        &format!("{CARD}.querySelector('.value').textContent.includes('72.5')"),
    )
    .await;
    assert_eq!(b.js(&format!("{CARD}.dataset.status")).await, "ok");
    b.wait_js("agents 8/8 in the header", "document.body.innerText.includes('8/8') || document.body.innerText.includes('8 / 8') || document.body.innerText.includes('8 of 8')").await;
    assert_eq!(
        b.js("document.getElementById('emergency-rollback').disabled")
            .await,
        false
    );

    let navigations = "performance.getEntriesByType('navigation').length";
    let before = b.js(navigations).await;
    app.sim
        .set_metrics(json!({"walk_forward_stability": 31.5}))
        .await;
    b.wait_js(
        "the card to turn critical",
        &format!("{CARD}.dataset.status === 'critical'"),
    )
    .await;
    b.wait_js(
        "the new value",
        &format!("{CARD}.querySelector('.value').textContent.includes('31.5')"),
    )
    .await;
    assert_eq!(b.js(navigations).await, before, "no reload");
    app.sim
        .set_metrics(json!({"walk_forward_stability": 45.0}))
        .await;
    b.wait_js("warning", &format!("{CARD}.dataset.status === 'warning'"))
        .await;
    assert!(app.events("").await.is_empty());
    b.close().await;
}

#[tokio::test]
async fn dismissing_the_confirmation_does_nothing_and_confirming_rolls_back() {
    let (app, b) = console(true).await;
    // Write actions need the operator's token, kept in sessionStorage.
    b.type_into("token", OPS_TOKEN).await;
    b.click("save-token").await;
    assert_eq!(
        b.js("sessionStorage.getItem('rollbackd.token')").await,
        OPS_TOKEN
    );
    b.wait_js(
        "the button enabled",
        "!document.getElementById('emergency-rollback').disabled",
    )
    .await;

    b.click("emergency-rollback").await;
    b.wait_dialog("confirm-dialog", true).await;
    assert_eq!(
        b.js("document.getElementById('confirm-rollback').disabled")
            .await,
        true,
        "no reason, no confirm"
    );
    b.click("cancel-rollback").await;
    b.wait_dialog("confirm-dialog", false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.events("").await.is_empty(), "dismissing does nothing");
    assert!(app.sim.switches().is_empty());

    b.click("emergency-rollback").await;
    b.wait_dialog("confirm-dialog", true).await;
    b.type_into("rollback-reason", "drawdown spike on desk 3")
        .await;
    b.wait_js(
        "confirm enabled",
        "!document.getElementById('confirm-rollback').disabled",
    )
    .await;
    b.click("confirm-rollback").await;
    b.wait_js("the completed rollback in the history", "[...document.querySelectorAll('#history .history-item')].some(e => e.textContent.includes('drawdown spike on desk 3') && e.textContent.includes('completed'))").await;
    let events = app.events("").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], "ops");
    assert_eq!(events[0]["status"], "completed");
    assert_eq!(app.sim.switches().len(), 1);
    b.wait_js(
        "the button disabled once rolled back",
        "document.getElementById('emergency-rollback').disabled",
    )
    .await;
    b.wait_js(
        "the validation in its history",
        "document.querySelectorAll('#validations .validation-item').length >= 1",
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn a_reason_with_markup_stays_text() {
    let (app, b) = console(false).await;
    let evil = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>";
    assert_eq!(app.rollback(evil).await.status, 200);
    b.wait_js(
        "the event in the history",
        "document.querySelectorAll('#history .history-item').length >= 1",
    )
    .await;
    b.wait_js("the reason shown as text", "document.getElementById('history').textContent.includes('<script>window.__pwned=2</script>')").await;
    assert_eq!(
        b.js("document.querySelectorAll('#history img, #history script').length")
            .await,
        0
    );
    assert_eq!(b.js("window.__pwned === undefined").await, true);
    b.close().await;
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_content_security_policy() {
    let app = TestApp::builder().spawn().await;
    let r = app.get("/").await;
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(
        r.text.contains("/console/app.js"),
        "the script is a file, not inline"
    );
    assert!(
        !r.text.contains("<script>") && !r.text.contains(" onclick="),
        "no inline script or handlers"
    );
    for (path, ct) in [
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().starts_with(ct));
        assert!(r.text.len() > 100, "{path} is the real asset");
    }
}

#[tokio::test]
async fn losing_the_stream_shows_the_stale_data_banner() {
    let (app, b) = console(false).await;
    b.wait_js(
        "the cards",
        "document.querySelectorAll('[data-condition]').length === 4",
    )
    .await;
    assert_eq!(
        b.js("document.getElementById('stale-banner').hidden").await,
        true
    );
    let _stopped = app.stop().await; // the daemon drains and closes the stream
    b.wait_js(
        "the stale banner",
        "!document.getElementById('stale-banner').hidden",
    )
    .await;
    let text = b
        .js("document.getElementById('stale-banner').textContent")
        .await;
    assert!(
        text.as_str().unwrap().contains("may be out of date"),
        "{text}"
    );
    b.close().await;
}

/// Every form control has a name a screen reader can say; nothing sticks out sideways.
async fn assert_labelled_and_fits(b: &Browser, width: &str) {
    let unnamed = b
        .js("[...document.querySelectorAll('button, input, textarea')].filter(e => \
               !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()\
             ).map(e => e.id || e.outerHTML)")
        .await;
    assert_eq!(unnamed, json!([]), "{width}: controls without a label");
    let (scroll, inner) = (
        b.js("document.documentElement.scrollWidth").await,
        b.js("window.innerWidth").await,
    );
    assert!(
        scroll.as_f64().unwrap() <= inner.as_f64().unwrap(),
        "{width}: the page scrolls sideways ({scroll} > {inner})"
    );
    let button = b
        .js("(r => r.left >= 0 && r.right <= window.innerWidth)\
             (document.getElementById('emergency-rollback').getBoundingClientRect())")
        .await;
    assert_eq!(button, true, "{width}: the emergency button is cut off");
}

/// Focuses the emergency button and opens the confirmation with Enter.
async fn open_confirmation_from_the_keyboard(b: &Browser) {
    b.js("document.getElementById('emergency-rollback').focus() ?? true")
        .await;
    b.press(ENTER).await;
    b.wait_dialog("confirm-dialog", true).await;
}

#[tokio::test]
async fn the_panel_fits_desktop_and_phone_and_works_from_the_keyboard() {
    let (app, b) = console(false).await;
    b.wait_js(
        "the button enabled",
        "!document.getElementById('emergency-rollback').disabled",
    )
    .await;
    assert_labelled_and_fits(&b, "1280 px").await;
    b.client.set_window_size(390, 844).await.unwrap();
    b.wait_js("a phone-width viewport", "window.innerWidth <= 400")
        .await;
    assert_labelled_and_fits(&b, "390 px").await;
    // At phone width the four cards stack instead of squeezing side by side.
    let columns = b
        .js("new Set([...document.querySelectorAll('[data-condition]')]\
               .map(e => Math.round(e.getBoundingClientRect().left))).size")
        .await;
    assert_eq!(columns, 1, "cards at 390 px are in {columns} columns");

    // Keyboard only: Enter opens the confirmation with the reason focused, Escape dismisses it.
    open_confirmation_from_the_keyboard(&b).await;
    assert_eq!(b.active_id().await, "rollback-reason");
    b.press("typed at the keyboard").await;
    b.press(ESCAPE).await;
    b.wait_dialog("confirm-dialog", false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.events("").await.is_empty(), "Escape does nothing");
    assert!(app.sim.switches().is_empty());

    // Again, then Tab past the dry-run box and Cancel to the confirm button.
    open_confirmation_from_the_keyboard(&b).await;
    assert_eq!(
        b.js("document.getElementById('rollback-reason').value")
            .await,
        "",
        "a dismissed reason is not kept for the next rollback"
    );
    b.press("rolled back from the keyboard").await;
    // No token in this tab: the dialog asks for one right after the reason.
    b.press(TAB).await;
    assert_eq!(b.active_id().await, "rollback-token");
    for _ in 0..3 {
        b.press(TAB).await;
    }
    assert_eq!(b.active_id().await, "confirm-rollback");
    b.press(ENTER).await;
    b.wait_js("the completed rollback in the history", "[...document.querySelectorAll('#history .history-item')].some(e => e.textContent.includes('rolled back from the keyboard') && e.textContent.includes('completed'))").await;
    let events = app.events("").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "rolled back from the keyboard");
    assert_eq!(app.sim.switches().len(), 1);
    b.close().await;
}
