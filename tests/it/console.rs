//! The operator console in real headless Chromium (Debian's chromium and chromium-driver),
//! driven over WebDriver, against a real daemon and simulator on 127.0.0.1:0.

use crate::harness::app::Builder;
use crate::harness::browser::{browser, click, js, type_into, wait_js, Browser};
use crate::harness::*;
use fantoccini::Client;
use serde_json::json;
use std::time::Duration;

/// Waits for a dialog to be open (or closed).
async fn wait_dialog(c: &Client, id: &str, open: bool) {
    let expr = format!("document.getElementById('{id}').open === {open}");
    wait_js(c, &format!("#{id} open={open}"), &expr).await;
}

async fn setup(auth: bool) -> (TestApp, Browser) {
    let builder = TestApp::builder().manual();
    setup_with(if auth { builder.auth() } else { builder }).await
}

async fn setup_with(builder: Builder) -> (TestApp, Browser) {
    let app = builder.spawn_polled().await;
    let b = browser().await;
    b.client.goto(&format!("{}/", app.url)).await.unwrap();
    (app, b)
}

/// The simulator's walk-forward stability falls to 31.5: under its critical threshold.
async fn stability_critical(app: &TestApp) {
    app.sim
        .set_metrics(json!({"walk_forward_stability": 31.5}))
        .await;
}

const CARD: &str = "document.querySelector('[data-condition=\"walk_forward_stability\"]')";

#[tokio::test]
async fn the_panel_shows_the_simulators_values_and_turns_critical_live() {
    let (app, b) = setup(false).await;
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
    stability_critical(&app).await;
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
    app.sim
        .set_metrics(json!({"walk_forward_stability": 45.0}))
        .await;
    wait_js(
        c,
        "warning",
        &format!("{CARD}.dataset.status === 'warning'"),
    )
    .await;
    assert!(app.events("").await.is_empty());
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn dismissing_the_confirmation_does_nothing_and_confirming_rolls_back() {
    let (app, b) = setup(true).await;
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
    assert!(app.events("").await.is_empty(), "dismissing does nothing");
    assert!(app.sim.switches().is_empty());

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
    let events = app.events("").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], "ops");
    assert_eq!(events[0]["status"], "completed");
    assert_eq!(app.sim.switches().len(), 1);
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
    let (app, b) = setup(false).await;
    let c = &b.client;
    let evil = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>";
    app.rollback(evil).await.ok();
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
    let app = TestApp::builder().spawn().await;
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
    let (app, b) = setup(false).await;
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
    let (app, b) = setup(false).await;
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
    assert!(app.events("").await.is_empty(), "Escape does nothing");
    assert!(app.sim.switches().is_empty());

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
    // No token in this tab: the dialog asks for one right after the reason.
    press(c, TAB).await;
    assert_eq!(active_id(c).await, "rollback-token");
    for _ in 0..3 {
        press(c, TAB).await;
    }
    assert_eq!(active_id(c).await, "confirm-rollback");
    press(c, ENTER).await;
    wait_js(c, "the completed rollback in the history", "[...document.querySelectorAll('#history .history-item')].some(e => e.textContent.includes('rolled back from the keyboard') && e.textContent.includes('completed'))").await;
    let events = app.events("").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "rolled back from the keyboard");
    assert_eq!(app.sim.switches().len(), 1);
    b.client.close().await.unwrap();
}

// ---- layout, screenshots and the DevTools protocol ----------------------------------------

/// A Chrome DevTools Protocol command, sent through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &reqwest::Url,
        session: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        let session = session.expect("a CDP command needs a session");
        base.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

async fn cdp(c: &Client, cmd: &'static str, params: serde_json::Value) {
    c.issue_cmd(Cdp { cmd, params })
        .await
        .unwrap_or_else(|e| panic!("chromedriver refused {cmd}: {e}"));
}

/// The two screens the console is checked on: a desktop and a phone.
const SIZES: [(u32, u32); 2] = [(1280, 800), (390, 844)];

/// Makes the viewport exactly `w` x `h` CSS pixels at one device pixel per CSS pixel.
async fn viewport(c: &Client, (w, h): (u32, u32)) {
    cdp(
        c,
        "Emulation.setDeviceMetricsOverride",
        json!({"width": w, "height": h, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    let expr = format!("window.innerWidth === {w} && window.innerHeight === {h}");
    wait_js(c, &format!("a {w}x{h} viewport"), &expr).await;
}

/// Switches `prefers-color-scheme` as the system would.
pub(crate) async fn color_scheme(c: &Client, scheme: &str) {
    cdp(
        c,
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
    )
    .await;
    let expr = format!("matchMedia('(prefers-color-scheme: {scheme})').matches");
    wait_js(c, &format!("the {scheme} scheme"), &expr).await;
}

/// Saves a screenshot for people to look at (target/tmp/console/) and checks it is a PNG of
/// the viewport's size; the layout itself is judged by the assertions around it.
async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert_eq!(&png[1..4], b"PNG", "{name}: not a PNG");
    let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as u64;
    let (w, h) = (
        js(c, "window.innerWidth").await,
        js(c, "window.innerHeight").await,
    );
    assert_eq!(
        (dim(16), dim(20)),
        (w.as_u64().unwrap(), h.as_u64().unwrap()),
        "{name}: the screenshot is not the viewport"
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Whether the element matching `selector` is shown and wholly inside the viewport.
async fn in_view(c: &Client, selector: &str) -> bool {
    let expr = format!(
        "(e => !!e && e.getClientRects().length > 0 && (r => r.top >= 0 && r.left >= 0 && \
           r.bottom <= window.innerHeight && r.right <= window.innerWidth)(e.getBoundingClientRect()))\
         (document.querySelector({selector:?}))"
    );
    js(c, &expr).await == json!(true)
}

async fn assert_no_sideways_scroll(c: &Client, size: &str) {
    let (scroll, inner) = (
        js(c, "document.documentElement.scrollWidth").await,
        js(c, "window.innerWidth").await,
    );
    assert!(
        scroll.as_f64().unwrap() <= inner.as_f64().unwrap(),
        "{size}: the page scrolls sideways ({scroll} > {inner})"
    );
}

async fn scroll_to_end(c: &Client) {
    js(
        c,
        "window.scrollTo(0, document.documentElement.scrollHeight) ?? true",
    )
    .await;
}

/// At both sizes, scrolled to the end of the page: each of `selectors` is in view and the page
/// does not scroll sideways. Screenshots `{shot}-{w}x{h}`.
async fn assert_in_view_at_both_sizes(c: &Client, selectors: &[&str], shot: &str) {
    for size in SIZES {
        let name = format!("{}x{}", size.0, size.1);
        viewport(c, size).await;
        scroll_to_end(c).await;
        for s in selectors {
            assert!(in_view(c, s).await, "{name}: {s} is out of view");
        }
        assert_no_sideways_scroll(c, &name).await;
        screenshot(c, &format!("{shot}-{name}")).await;
    }
}

/// Every visible disabled button is described by visible text that says why.
async fn assert_disabled_buttons_say_why(c: &Client, when: &str) {
    let unexplained = js(
        c,
        "[...document.querySelectorAll('button:disabled')].filter(b => b.getClientRects().length).filter(b => {\
           const why = document.getElementById(b.getAttribute('aria-describedby') || '');\
           return !why || !why.getClientRects().length || !why.textContent.trim();\
         }).map(b => b.id)",
    )
    .await;
    assert_eq!(
        unexplained,
        json!([]),
        "{when}: disabled without a visible reason"
    );
}

// ---- small readers and actions -------------------------------------------------------------

async fn text(c: &Client, id: &str) -> String {
    let v = js(c, &format!("document.getElementById('{id}').textContent")).await;
    v.as_str().unwrap_or_default().to_owned()
}

async fn disabled(c: &Client, id: &str) -> bool {
    js(c, &format!("document.getElementById('{id}').disabled")).await == json!(true)
}

async fn wait_enabled(c: &Client, id: &str) {
    let expr = format!("!document.getElementById('{id}').disabled");
    wait_js(c, &format!("#{id} enabled"), &expr).await;
}

/// A JavaScript test: a history item with `reason` has the badge `status`.
fn history_has(reason: &str, status: &str) -> String {
    format!(
        "[...document.querySelectorAll('#history .history-item')].some(e => \
           e.textContent.includes({reason:?}) && e.querySelector('.badge.{status}'))"
    )
}

/// Starts recording what the live region says from now on.
async fn record_announcements(c: &Client) {
    js(
        c,
        "(window.__said = [], new MutationObserver(ms => ms.forEach(m => m.addedNodes.forEach(n => \
           window.__said.push(n.textContent)))).observe(document.getElementById('announcer'), \
           {childList: true}), true)",
    )
    .await;
}

async fn announcements(c: &Client) -> Vec<String> {
    let v = js(c, "window.__said").await;
    let said = v.as_array().expect("record_announcements first");
    said.iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

async fn wait_announced(c: &Client, part: &str) {
    let expr = format!("window.__said.some(s => s.includes({part:?}))");
    wait_js(c, &format!("{part:?} announced"), &expr).await;
}

/// Scrolls an element of the page to the middle of the screen, clear of the sticky bar
/// (WebDriver clicks what is in view, even under a sticky bar), and clicks it.
async fn click_in_page(c: &Client, id: &str) {
    let expr =
        format!("document.getElementById('{id}').scrollIntoView({{block: 'center'}}) ?? true");
    js(c, &expr).await;
    click(c, id).await;
}

/// Opens the dialog of `name` (rollback, restore, automation) with `button` and types a reason.
async fn open_with_reason(c: &Client, button: &str, dialog: &str, name: &str, reason: &str) {
    click_in_page(c, button).await;
    wait_dialog(c, dialog, true).await;
    type_into(c, &format!("{name}-reason"), reason).await;
}

async fn open_dialog_and_confirm(c: &Client, button: &str, dialog: &str, name: &str, reason: &str) {
    open_with_reason(c, button, dialog, name, reason).await;
    let confirm = format!("confirm-{name}");
    wait_enabled(c, &confirm).await;
    click(c, &confirm).await;
    wait_dialog(c, dialog, false).await;
}

/// After a refused token: the dialog is back with `message`, the reason kept, the token asked.
async fn assert_back_for_a_token(
    c: &Client,
    dialog: &str,
    name: &str,
    message: &str,
    reason: &str,
) {
    let expr = format!(
        "document.getElementById('{dialog}').open && \
         document.querySelector('#{dialog} .dialog-error').textContent.includes({message:?})"
    );
    wait_js(c, "the dialog back with the refusal", &expr).await;
    assert_eq!(active_id(c).await, format!("{name}-token"));
    let kept = js(
        c,
        &format!("document.getElementById('{name}-reason').value"),
    )
    .await;
    assert_eq!(kept, reason, "the reason is kept");
}

// ---- the tests -----------------------------------------------------------------------------

/// For each block of the page: brought to the top of the screen, can it be seen (not under the
/// sticky bar)? Returns those that cannot.
const COVERED_BLOCKS: &str = "[...document.querySelectorAll('[data-condition], main section, #history .history-item')]\
   .filter(e => {\
     e.scrollIntoView({block: 'start'});\
     const r = e.getBoundingClientRect();\
     const hit = document.elementFromPoint(r.left + r.width / 2, r.top + Math.min(r.height / 2, 8));\
     return !hit || !e.contains(hit);\
   }).map(e => e.id || e.className)";

#[tokio::test]
async fn the_emergency_button_stays_in_view_while_scrolling_on_desktop_and_phone() {
    let (app, b) = setup(false).await;
    let c = &b.client;
    // A long history, so that the page scrolls at both sizes.
    for i in 0..12 {
        let body = json!({"reason": format!("dry run {i}"), "dry_run": true});
        assert_eq!(app.post("/api/v1/rollback", &body).await.status, 200);
    }
    for size in SIZES {
        let name = format!("{}x{}", size.0, size.1);
        viewport(c, size).await;
        c.goto(&format!("{}/", app.url)).await.unwrap();
        wait_js(
            c,
            "the history",
            "document.querySelectorAll('#history .history-item').length >= 12",
        )
        .await;
        wait_enabled(c, "emergency-rollback").await;
        let long = js(
            c,
            "document.documentElement.scrollHeight > window.innerHeight * 1.5",
        )
        .await;
        assert_eq!(
            long, true,
            "{name}: the page is too short to prove anything"
        );
        assert!(
            in_view(c, "#emergency-rollback").await,
            "{name}: below the fold"
        );
        screenshot(c, &format!("sticky-top-{name}")).await;

        scroll_to_end(c).await;
        wait_js(c, "scrolled to the end", "window.scrollY > 0").await;
        assert!(
            in_view(c, "#emergency-rollback").await,
            "{name}: scrolled away"
        );
        assert_no_sideways_scroll(c, &name).await;
        screenshot(c, &format!("sticky-bottom-{name}")).await;
        let share = js(
            c,
            "document.getElementById('sticky').offsetHeight / window.innerHeight",
        )
        .await;
        assert!(
            share.as_f64().unwrap() < 0.3,
            "{name}: the sticky bar takes {share} of the screen"
        );
        // It covers nothing for good: each block brought to the top can be seen.
        assert_eq!(
            js(c, COVERED_BLOCKS).await,
            json!([]),
            "{name}: under the sticky bar"
        );

        // From where the operator is, the click opens the dialog without scrolling.
        scroll_to_end(c).await;
        let y = js(c, "window.scrollY").await;
        click(c, "emergency-rollback").await;
        wait_dialog(c, "confirm-dialog", true).await;
        assert_eq!(
            js(c, "window.scrollY").await,
            y,
            "{name}: the click had to scroll"
        );
        click(c, "cancel-rollback").await;
        wait_dialog(c, "confirm-dialog", false).await;
    }
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn without_a_token_the_confirmation_asks_for_one_and_keeps_it_for_the_tab_only() {
    let (app, b) = setup(true).await;
    let c = &b.client;
    wait_enabled(c, "emergency-rollback").await;
    assert_eq!(
        js(c, "sessionStorage.getItem('rollbackd.token')").await,
        json!(null)
    );

    click(c, "emergency-rollback").await;
    wait_dialog(c, "confirm-dialog", true).await;
    assert!(
        in_view(c, "#rollback-token").await,
        "the dialog asks for the token"
    );
    assert_eq!(active_id(c).await, "rollback-reason");
    type_into(c, "rollback-reason", "losses on desk 7").await;
    type_into(c, "rollback-token", OPS_TOKEN).await;
    click(c, "confirm-rollback").await;
    wait_js(
        c,
        "the completed rollback",
        &history_has("losses on desk 7", "completed"),
    )
    .await;
    let events = app.events("").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["actor"], "ops",
        "sent with the token typed in the dialog"
    );
    assert_eq!(app.sim.switches().len(), 1);
    assert_eq!(
        js(c, "sessionStorage.getItem('rollbackd.token')").await,
        OPS_TOKEN
    );
    assert_eq!(
        js(c, "localStorage.length").await,
        0,
        "never in localStorage"
    );
    assert_eq!(text(c, "token-state").await, "Token set for this tab.");

    // The next dialog does not ask again.
    wait_enabled(c, "restore").await;
    click_in_page(c, "restore").await;
    wait_dialog(c, "restore-dialog", true).await;
    let asked = js(
        c,
        "document.getElementById('restore-token').getClientRects().length",
    )
    .await;
    assert_eq!(asked, 0, "a token is set: the dialog does not ask");
    click(c, "cancel-restore").await;
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn a_refused_token_brings_the_dialog_back_with_the_reason_kept() {
    let (app, b) = setup(true).await;
    let c = &b.client;
    type_into(c, "token", OPS_TOKEN).await;
    click_in_page(c, "save-token").await;
    let drill = json!({"reason": "drill"});
    assert_eq!(
        app.with_token(OPS_TOKEN)
            .post("/api/v1/rollback", &drill)
            .await
            .status,
        200
    );

    // Restore needs an admin: 403 for the operator's token.
    wait_enabled(c, "restore").await;
    open_with_reason(
        c,
        "restore",
        "restore-dialog",
        "restore",
        "desk 7 is fine again",
    )
    .await;
    click(c, "confirm-restore").await;
    assert_back_for_a_token(
        c,
        "restore-dialog",
        "restore",
        "may not",
        "desk 7 is fine again",
    )
    .await;
    assert_eq!(
        app.events("").await.len(),
        1,
        "nothing recorded for the refusal"
    );
    type_into(c, "restore-token", ADMIN_TOKEN).await;
    click(c, "confirm-restore").await;
    wait_js(
        c,
        "the completed restore",
        &history_has("desk 7 is fine again", "completed"),
    )
    .await;
    let events = app.events("").await;
    assert_eq!(
        (&events[0]["action"], &events[0]["actor"]),
        (&json!("restore"), &json!("boss"))
    );
    assert_eq!(
        js(c, "sessionStorage.getItem('rollbackd.token')").await,
        ADMIN_TOKEN
    );

    // No token and the field left empty: 401, and now it will not send without one.
    click_in_page(c, "forget-token").await;
    wait_enabled(c, "emergency-rollback").await;
    open_with_reason(
        c,
        "emergency-rollback",
        "confirm-dialog",
        "rollback",
        "losses on desk 9",
    )
    .await;
    click(c, "confirm-rollback").await;
    assert_back_for_a_token(
        c,
        "confirm-dialog",
        "rollback",
        "Not sent (a bearer token is required): enter an API token.",
        "losses on desk 9",
    )
    .await;
    assert!(disabled(c, "confirm-rollback").await);
    assert_disabled_buttons_say_why(c, "waiting for the token").await;
    assert_eq!(
        app.events("").await.len(),
        2,
        "nothing recorded for the refusal"
    );
    assert_eq!(js(c, "localStorage.length").await, 0);
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn a_failed_rollback_is_reported_from_the_502_answer() {
    let (app, b) = setup(false).await;
    let c = &b.client;
    app.sim.set_scenario("accepts-but-does-not-apply").await;
    wait_enabled(c, "emergency-rollback").await;
    record_announcements(c).await;
    open_dialog_and_confirm(
        c,
        "emergency-rollback",
        "confirm-dialog",
        "rollback",
        "switch that will not apply",
    )
    .await;
    wait_js(
        c,
        "the failure in the action bar",
        "document.getElementById('action-message').textContent.includes('FAILED')",
    )
    .await;
    assert_eq!(
        js(c, "document.getElementById('action-message').className").await,
        "message error"
    );
    assert!(
        in_view(c, "#action-message").await,
        "the outcome is next to the button"
    );
    wait_js(
        c,
        "the failed event in the history",
        &history_has("switch that will not apply", "failed"),
    )
    .await;
    wait_announced(c, "Rollback FAILED").await;
    assert_eq!(app.events("").await[0]["status"], "failed");
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn every_disabled_control_says_why_in_visible_text() {
    let (mut app, b) = setup(false).await;
    let c = &b.client;
    wait_enabled(c, "emergency-rollback").await;
    assert_disabled_buttons_say_why(c, "steady").await;
    assert!(text(c, "restore-why").await.contains("Nothing to restore"));
    click(c, "emergency-rollback").await;
    wait_dialog(c, "confirm-dialog", true).await;
    assert_disabled_buttons_say_why(c, "the dialog without a reason").await;
    click(c, "cancel-rollback").await;
    wait_dialog(c, "confirm-dialog", false).await;

    app.sim.stop(); // the trading system goes away
    wait_js(
        c,
        "the button disabled",
        "document.getElementById('emergency-rollback').disabled",
    )
    .await;
    let why = text(c, "emergency-rollback-why").await;
    assert!(why.contains("unreachable"), "{why}");
    let detail = text(c, "target-error").await;
    assert!(
        detail.contains("Connection refused"),
        "the target's error is shown: {detail}"
    );
    assert_eq!(
        js(c, "document.getElementById('emergency-rollback').title").await,
        "",
        "not a tooltip"
    );
    for size in SIZES {
        let name = format!("{}x{}", size.0, size.1);
        viewport(c, size).await;
        scroll_to_end(c).await;
        assert!(
            in_view(c, "#emergency-rollback-why").await,
            "{name}: the reason is out of view"
        );
        // Next to the control: right beside it or under it.
        let gap = js(
            c,
            "(b => (w => Math.max(0, w.top - b.bottom, w.left - b.right))(document.getElementById('emergency-rollback-why').getBoundingClientRect()))\
             (document.getElementById('emergency-rollback').getBoundingClientRect())",
        )
        .await;
        assert!(
            gap.as_f64().unwrap() <= 24.0,
            "{name}: the reason is {gap}px away from the button"
        );
        assert_disabled_buttons_say_why(c, &name).await;
        screenshot(c, &format!("target-down-{name}")).await;
    }
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn each_automatic_path_shows_whether_it_acts_and_nothing_reads_manual_while_one_can() {
    // The watchdog is off in the config; Alertmanager acts.
    let (app, b) = setup(false).await;
    let c = &b.client;
    wait_js(
        c,
        "the paths",
        "document.getElementById('path-alertmanager-state').textContent === 'acts automatically'",
    )
    .await;
    assert_eq!(text(c, "path-watchdog-state").await, "off in config");
    assert_eq!(text(c, "h-automation").await, "Alertmanager");
    let words = js(c, "document.getElementById('health').innerText + ' ' + document.getElementById('automation').innerText").await;
    let words = words.as_str().unwrap().to_lowercase();
    assert!(
        !words.contains("manual"),
        "nothing reads manual while Alertmanager acts: {words}"
    );
    assert_disabled_buttons_say_why(c, "watchdog off in config").await;

    open_dialog_and_confirm(
        c,
        "arm-alertmanager",
        "automation-dialog",
        "automation",
        "feed glitch",
    )
    .await;
    wait_js(
        c,
        "alertmanager disarmed",
        "document.getElementById('path-alertmanager-state').textContent === 'disarmed'",
    )
    .await;
    assert_eq!(text(c, "h-automation").await, "none: manual only");
    open_dialog_and_confirm(
        c,
        "arm-alertmanager",
        "automation-dialog",
        "automation",
        "feed is back",
    )
    .await;
    wait_js(
        c,
        "alertmanager acts",
        "document.getElementById('path-alertmanager-state').textContent === 'acts automatically'",
    )
    .await;
    let audit = app.get("/api/v1/audit").await.json;
    let records: Vec<_> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].clone(), r["reason"].clone()))
        .collect();
    assert_eq!(
        records,
        [
            (json!("arm"), json!("feed is back")),
            (json!("disarm"), json!("feed glitch"))
        ]
    );
    assert!(app.events("").await.is_empty(), "arming rolls nothing back");
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn critical_with_every_path_disarmed_shows_a_banner_that_the_header_agrees_with() {
    let (app, b) = setup(false).await;
    let c = &b.client;
    wait_js(
        c,
        "the paths",
        "document.getElementById('path-alertmanager-state').textContent === 'acts automatically'",
    )
    .await;
    record_announcements(c).await;
    open_dialog_and_confirm(
        c,
        "disarm-all",
        "automation-dialog",
        "automation",
        "maintenance on the feed",
    )
    .await;
    wait_js(
        c,
        "manual only in the header",
        "document.getElementById('h-automation').textContent.includes('manual only')",
    )
    .await;
    assert_eq!(text(c, "path-alertmanager-state").await, "disarmed");
    assert_eq!(
        app.get("/api/v1/status").await.json["automation"]["manual_only"],
        true
    );
    let audit = app.get("/api/v1/audit?kind=disarm_all").await.json;
    assert_eq!(audit["records"][0]["reason"], "maintenance on the feed");
    wait_announced(c, "Every automatic path is disarmed").await;
    assert!(disabled(c, "disarm-all").await, "nothing left to disarm");
    assert_disabled_buttons_say_why(c, "all disarmed").await;

    assert_eq!(
        js(c, "document.getElementById('critical-banner').hidden").await,
        true
    );
    stability_critical(&app).await;
    wait_js(
        c,
        "the banner",
        "!document.getElementById('critical-banner').hidden",
    )
    .await;
    let banner = text(c, "critical-banner").await;
    assert!(
        banner.contains("Walk-Forward Stability is critical and no automatic rollback is armed"),
        "{banner}"
    );
    assert_eq!(text(c, "h-ready").await, "● Ready: act now");
    assert_eq!(
        js(c, "document.getElementById('h-ready').className").await,
        "bad",
        "not green"
    );
    assert_in_view_at_both_sizes(
        c,
        &["#critical-banner", "#emergency-rollback"],
        "critical-manual-only",
    )
    .await;
    b.client.close().await.unwrap();
}

/// Seconds in the first "m:ss" of the element's text.
fn clock_seconds(id: &str) -> String {
    format!(
        "(m => m ? Number(m[1]) * 60 + Number(m[2]) : -1)\
         (document.getElementById('{id}').textContent.match(/(\\d+):(\\d\\d)/))"
    )
}

#[tokio::test]
async fn after_a_restore_the_cooldown_counts_down_and_a_suppressed_trigger_is_explained() {
    let (app, b) = setup_with(TestApp::builder()).await;
    let c = &b.client;
    wait_js(
        c,
        "no cooldown yet",
        "document.getElementById('h-cooldown').textContent === 'none'",
    )
    .await;
    let reason = json!({"reason": "manual drill"});
    assert_eq!(
        app.post("/api/v1/rollback", &reason.clone()).await.status,
        200
    );
    assert_eq!(app.post("/api/v1/restore", &reason).await.status, 200);

    let seconds = clock_seconds("h-cooldown");
    wait_js(c, "the cooldown shown", &format!("{seconds} > 0")).await;
    let first = js(c, &seconds).await.as_i64().unwrap();
    assert!(
        (800..=900).contains(&first),
        "{first}s of a 15 minute cooldown"
    );
    wait_js(c, "the countdown to tick", &format!("{seconds} < {first}")).await;
    let server = app.get("/api/v1/status").await.json["cooldown_remaining_seconds"]
        .as_f64()
        .unwrap();
    let shown = js(c, &seconds).await.as_f64().unwrap();
    assert!(
        (shown - server).abs() <= 5.0,
        "shown {shown}s, the daemon says {server}s"
    );
    let loads = js(c, "performance.getEntriesByType('navigation').length").await;
    assert_eq!(loads, 1, "no reload");

    // The watchdog sees a critical condition but the cooldown holds it: the banner says so.
    stability_critical(&app).await;
    wait_js(
        c,
        "the suppressed trigger in the banner",
        "document.getElementById('critical-banner').textContent.includes('suppressed')",
    )
    .await;
    let banner = text(c, "critical-banner").await;
    assert!(banner.contains("held by the cooldown for"), "{banner}");
    let why = "The latest watchdog trigger was suppressed: the cooldown after the last rollback was running.";
    assert!(banner.contains(why), "{banner}");
    let events = app.events("").await;
    assert_eq!(
        (&events[0]["status"], &events[0]["suppressed_reason"]),
        (&json!("suppressed"), &json!("cooldown"))
    );
    assert_in_view_at_both_sizes(c, &["#critical-banner"], "cooldown").await;
    b.client.close().await.unwrap();
}

/// The chart of one condition: its point count, threshold lines and latest point.
fn chart_of(condition: &str) -> String {
    format!(
        "(s => ({{points: Number(s.dataset.points), warn: Number(s.querySelector('.th.warn').getAttribute('y1')),\
           crit: Number(s.querySelector('.th.crit').getAttribute('y1')),\
           last: Number(s.querySelector('.series').getAttribute('points').trim().split(' ').pop().split(',')[1])}}))\
         (document.querySelector('[data-condition=\"{condition}\"] svg.chart'))"
    )
}

/// Charts that stick out of their card or have no height.
const BAD_CHARTS: &str = "[...document.querySelectorAll('svg.chart')].filter(s => {\
     const r = s.getBoundingClientRect(), p = s.closest('.card').getBoundingClientRect();\
     return r.left < p.left || r.right > p.right || r.height < 20;\
   }).length";

#[tokio::test]
async fn each_condition_has_a_chart_of_its_recent_values_and_thresholds() {
    let (app, b) = setup(false).await;
    let c = &b.client;
    js(c, "(window.__csp = [], document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective)), true)").await;
    wait_js(
        c,
        "a chart with points in every card",
        "[...document.querySelectorAll('[data-condition] svg.chart')].filter(s => Number(s.dataset.points) >= 2).length === 4",
    )
    .await;
    let (stability, drawdown) = (chart_of("walk_forward_stability"), chart_of("max_drawdown"));
    // Stability triggers below its thresholds: critical (40) is drawn under warning (50).
    assert_eq!(
        js(
            c,
            &format!("(c => c.crit > c.warn && c.last < c.warn)({stability})")
        )
        .await,
        true
    );
    // Drawdown triggers above: critical (5%) is drawn over warning (3.5%).
    assert_eq!(
        js(
            c,
            &format!("(c => c.crit < c.warn && c.last > c.warn)({drawdown})")
        )
        .await,
        true
    );

    stability_critical(&app).await;
    wait_js(
        c,
        "the latest point under the critical line",
        &format!("(c => c.last > c.crit)({stability})"),
    )
    .await;
    wait_js(
        c,
        "the last 60 values",
        &format!("{stability}.points === 60"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // ten more polls
    assert_eq!(
        js(c, &format!("{stability}.points")).await,
        60,
        "only the last 60 are kept"
    );
    let drawn = js(c, "document.querySelector('[data-condition=\"walk_forward_stability\"] .series').getAttribute('points').trim().split(' ').length").await;
    assert_eq!(drawn, 60);
    let label = js(c, "document.querySelector('[data-condition=\"walk_forward_stability\"] svg.chart').getAttribute('aria-label')").await;
    assert!(label.as_str().unwrap().contains("critical < 40"), "{label}");
    assert_eq!(
        js(c, "document.querySelectorAll('[style]').length").await,
        0,
        "no inline style"
    );
    for size in SIZES {
        viewport(c, size).await;
        assert_eq!(
            js(c, BAD_CHARTS).await,
            0,
            "{size:?}: a chart sticks out of its card or is flat"
        );
        assert_no_sideways_scroll(c, &format!("{size:?}")).await;
        screenshot(c, &format!("charts-{}x{}", size.0, size.1)).await;
    }
    assert_eq!(js(c, "window.__csp").await, json!([]), "no CSP violation");
    b.client.close().await.unwrap();
}

pub(crate) const CONTRAST_FAILURES: &str = r#"(() => {
  const parse = (c) => { const p = c.match(/[\d.]+/g).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const background = (e) => {
    const layers = [];
    for (; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    return layers.reverse().reduce((bg, layer) => over(layer, bg), [255, 255, 255, 1]);
  };
  const lum = (c) => { const f = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const ratio = (a, b) => { const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x); return (hi + 0.05) / (lo + 0.05); };
  const elements = new Set(document.querySelectorAll('input, textarea'));
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) if (walk.currentNode.textContent.trim()) elements.add(walk.currentNode.parentElement);
  const failures = [];
  let checked = 0;
  for (const e of elements) {
    if (!e.getClientRects().length || e.closest('.visually-hidden, :disabled, svg')) continue;
    const bg = background(e), fg = over(parse(getComputedStyle(e).color), bg), r = ratio(fg, bg);
    checked++;
    if (r < 4.5) failures.push((e.id || e.className || e.tagName) + ' "' + e.textContent.trim().slice(0, 30) + '" ' + r.toFixed(2));
  }
  return {checked, failures, bodyLuminance: lum(background(document.body))};
})()"#;

#[tokio::test]
async fn light_and_dark_themes_keep_wcag_aa_text_contrast() {
    let (app, b) = setup(false).await;
    let c = &b.client;
    // Every kind of text on screen: a warning and a critical card, a completed rollback with its
    // validation, a suppressed attempt, path states and the banner.
    app.sim
        .set_metrics(json!({"walk_forward_stability": 45.0, "max_drawdown": 6.0}))
        .await;
    let drill = json!({"reason": "contrast drill"});
    for (path, code) in [
        ("rollback", 200),
        ("rollback", 409),
        ("restore", 200),
        ("automation/disarm-all", 200),
    ] {
        let r = app.post(&format!("/api/v1/{path}"), &drill).await;
        assert_eq!(r.status, code, "{path}: {}", r.text);
    }
    wait_js(c, "the banner", "!document.getElementById('critical-banner').hidden && document.querySelectorAll('#validations .validation-item').length > 0 && document.querySelectorAll('#history .badge.suppressed').length > 0").await;
    for scheme in ["dark", "light"] {
        color_scheme(c, scheme).await;
        for size in SIZES {
            viewport(c, size).await;
            let r = js(c, CONTRAST_FAILURES).await;
            assert!(r["checked"].as_u64().unwrap() > 40, "{scheme}: {r}");
            assert_eq!(
                r["failures"],
                json!([]),
                "{scheme} {size:?}: text under 4.5:1"
            );
            let body = r["bodyLuminance"].as_f64().unwrap();
            match scheme {
                "dark" => assert!(body < 0.05, "the dark theme is not dark: {body}"),
                _ => assert!(body > 0.8, "the light theme is not light: {body}"),
            }
            screenshot(c, &format!("theme-{scheme}-{}x{}", size.0, size.1)).await;
        }
        // And a dialog, over its backdrop.
        click(c, "emergency-rollback").await;
        wait_dialog(c, "confirm-dialog", true).await;
        let r = js(c, CONTRAST_FAILURES).await;
        assert_eq!(
            r["failures"],
            json!([]),
            "{scheme}: the dialog's text under 4.5:1"
        );
        click(c, "cancel-rollback").await;
        wait_dialog(c, "confirm-dialog", false).await;
    }
    b.client.close().await.unwrap();
}

/// Every live region of the page, as `id:politeness`.
const LIVE_REGIONS: &str = "[...document.querySelectorAll('[aria-live], [role=status], [role=log], [role=alert], [role=marquee], [role=timer]')]\
   .map(e => e.id + ':' + (e.getAttribute('aria-live') || ''))";

/// The containers re-rendered on updates that sit inside a live region (none should).
const LIVE_CONTAINERS: &str = "['grid', 'history', 'validations', 'paths', 'health'].filter(id => document.getElementById(id)\
   .closest('[aria-live], [role=status], [role=log], [role=alert]'))";

#[tokio::test]
async fn only_changes_are_announced_in_one_polite_live_region() {
    let (app, b) = setup(false).await;
    let c = &b.client;
    wait_js(
        c,
        "the cards",
        "document.querySelectorAll('[data-condition]').length === 4",
    )
    .await;
    assert_eq!(
        js(c, LIVE_REGIONS).await,
        json!(["announcer:polite"]),
        "one polite live region"
    );
    assert_eq!(
        js(c, LIVE_CONTAINERS).await,
        json!([]),
        "grid and lists are not live"
    );

    record_announcements(c).await;
    stability_critical(&app).await;
    wait_js(
        c,
        "the card critical",
        &format!("{CARD}.dataset.status === 'critical'"),
    )
    .await;
    wait_js(c, "an announcement", "window.__said.length > 0").await;
    tokio::time::sleep(Duration::from_millis(500)).await; // ten more polls re-render the grid
    assert_eq!(
        announcements(c).await,
        ["Walk-Forward Stability is now critical (31.5)."],
        "one message for one status change"
    );

    // A path disarmed, a rollback started and ended: each said, briefly.
    let body = json!({"path": "alertmanager", "armed": false, "reason": "drill"});
    assert_eq!(app.post("/api/v1/automation", &body).await.status, 200);
    wait_announced(c, "Alertmanager disarmed").await;
    app.rollback("drill").await.ok();
    wait_announced(c, "Rollback completed").await;
    let said = announcements(c).await;
    assert!(
        said.iter().any(|s| s.contains("Rollback started")),
        "{said:?}"
    );
    assert!(
        said.iter().all(|s| s.len() < 200),
        "short messages: {said:?}"
    );
    let kept = js(c, "document.getElementById('announcer').children.length").await;
    assert!(
        kept.as_u64().unwrap() <= 5,
        "old messages are dropped: {kept}"
    );
    b.client.close().await.unwrap();
}
