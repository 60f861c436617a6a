//! Holds in the operator console, in real headless Chromium against a real daemon and
//! simulator: the freeze, maintenance and regime banner with its countdown and end button, the
//! automation mode and its switch, and the approval control for proposals (confirm mode).

use crate::console::{color_scheme, CONTRAST_FAILURES};
use crate::harness::app::Builder;
use crate::harness::browser::{browser, click, js, type_into, wait_js, Browser};
use crate::harness::*;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

const CONFIRM_MODE: &str = "automation: { mode: confirm, confirm_timeout: 10m }\n";
const REGIMES: &str = "regimes: { high_volatility: { max_drawdown.critical_threshold: 6.5 } }\n";

async fn open(builder: Builder) -> (TestApp, Browser) {
    let app = builder.spawn_polled().await;
    let b = browser().await;
    b.client.goto(&format!("{}/", app.url)).await.unwrap();
    // The status (and its holds) has been shown once.
    wait_js(
        &b.client,
        "the automation mode in the header",
        "document.getElementById('h-automation-mode').textContent !== '…'",
    )
    .await;
    (app, b)
}

async fn wait_dialog(c: &Client, id: &str, open: bool) {
    let expr = format!("document.getElementById('{id}').open === {open}");
    wait_js(c, &format!("#{id} open={open}"), &expr).await;
}

async fn wait_enabled(c: &Client, id: &str) {
    let expr = format!("!document.getElementById('{id}').disabled");
    wait_js(c, &format!("#{id} enabled"), &expr).await;
}

/// Scrolls an element of the page clear of the sticky bar and clicks it.
async fn click_in_page(c: &Client, id: &str) {
    let expr =
        format!("document.getElementById('{id}').scrollIntoView({{block: 'center'}}) ?? true");
    js(c, &expr).await;
    click(c, id).await;
}

/// Replaces what a field holds with `text`, typed.
async fn fill(c: &Client, id: &str, text: &str) {
    let e = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn text(c: &Client, id: &str) -> String {
    let v = js(c, &format!("document.getElementById('{id}').textContent")).await;
    v.as_str().unwrap_or_default().to_owned()
}

async fn active_id(c: &Client) -> Value {
    js(c, "document.activeElement && document.activeElement.id").await
}

/// Sets the operator's token for this tab through the Access panel.
async fn use_token(c: &Client, token: &str) {
    js(
        c,
        "document.getElementById('token').scrollIntoView({block: 'center'}) ?? true",
    )
    .await;
    type_into(c, "token", token).await;
    click(c, "save-token").await;
    wait_js(
        c,
        "the token kept for the tab",
        "sessionStorage.getItem('rollbackd.token') !== null",
    )
    .await;
}

/// Types a reason into the open dialog `name` and confirms it.
async fn confirm_with_reason(c: &Client, dialog: &str, name: &str, reason: &str) {
    type_into(c, &format!("{name}-reason"), reason).await;
    let confirm = format!("confirm-{name}");
    wait_enabled(c, &confirm).await;
    click(c, &confirm).await;
    wait_dialog(c, dialog, false).await;
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

async fn wait_announced(c: &Client, part: &str) {
    let expr = format!("window.__said.some(s => s.includes({part:?}))");
    wait_js(c, &format!("{part:?} announced"), &expr).await;
}

/// The seconds a banner countdown ("m:ss left", "h:mm:ss left") shows.
async fn clock_seconds(c: &Client, id: &str) -> u64 {
    let t = text(c, id).await;
    let clock = t
        .strip_suffix(" left")
        .unwrap_or_else(|| panic!("#{id} is not a countdown: {t:?}"));
    clock
        .split(':')
        .map(|p| p.parse::<u64>().unwrap_or_else(|_| panic!("#{id}: {t:?}")))
        .fold(0, |acc, n| acc * 60 + n)
}

async fn holds(app: &TestApp) -> Value {
    let r = app.get("/api/v1/holds").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

/// A JavaScript test: a history item with `part` in its reason has the badge `status`.
fn history_has(part: &str, status: &str) -> String {
    format!(
        "[...document.querySelectorAll('#history .history-item')].some(e => \
           e.textContent.includes({part:?}) && e.querySelector('.badge.{status}'))"
    )
}

#[tokio::test]
async fn a_freeze_started_from_the_console_counts_down_in_the_banner_and_ends_from_it() {
    let (app, b) = open(TestApp::builder().manual().auth()).await;
    let c = &b.client;
    assert!(
        js(c, "document.getElementById('holds-banner').hidden").await == json!(true),
        "nothing holds yet"
    );
    record_announcements(c).await;

    // No token in this tab: the dialog asks for one. A duration the daemon refuses brings the
    // dialog back with its word, what was typed kept and the focus on the duration.
    click_in_page(c, "start-freeze").await;
    wait_dialog(c, "freeze-dialog", true).await;
    assert_eq!(active_id(c).await, "freeze-duration");
    fill(c, "freeze-duration", "30 fortnights").await;
    type_into(c, "freeze-name", "CPI release").await;
    type_into(c, "freeze-token", OPS_TOKEN).await;
    type_into(c, "freeze-reason", "CPI print at 14:30").await;
    wait_enabled(c, "confirm-freeze").await;
    click(c, "confirm-freeze").await; // closes, and comes back with the answer
    wait_js(
        c,
        "the dialog back with the refusal",
        "document.getElementById('freeze-dialog').open && \
         document.querySelector('#freeze-dialog .dialog-error').textContent.includes('duration')",
    )
    .await;
    assert_eq!(active_id(c).await, "freeze-duration");
    assert_eq!(
        js(c, "document.getElementById('freeze-reason').value").await,
        "CPI print at 14:30",
        "the reason is kept"
    );
    assert_eq!(
        js(c, "document.getElementById('freeze-name').value").await,
        "CPI release"
    );
    assert_eq!(holds(&app).await["freeze"], Value::Null, "nothing started");

    fill(c, "freeze-duration", "30m").await;
    wait_enabled(c, "confirm-freeze").await;
    click(c, "confirm-freeze").await;
    wait_dialog(c, "freeze-dialog", false).await;

    wait_js(
        c,
        "the freeze banner with its countdown",
        "!document.getElementById('holds-banner').hidden && \
         document.getElementById('holds-banner').textContent.includes('Freeze CPI release holds automatic rollbacks') && \
         /^\\d+:\\d\\d left$/.test(document.getElementById('freeze-clock').textContent)",
    )
    .await;
    let left = clock_seconds(c, "freeze-clock").await;
    assert!(
        left <= 30 * 60 && left > 25 * 60,
        "a 30m freeze counts down from 30:00: {left}"
    );
    assert!(text(c, "holds-banner")
        .await
        .contains("Started by ops: CPI print at 14:30"));
    wait_announced(c, "Freeze CPI release started").await;
    let h = holds(&app).await;
    assert_eq!(h["freeze"]["name"], "CPI release", "{h}");
    assert_eq!(h["freeze"]["actor"], "ops");
    assert_eq!(h["freeze"]["reason"], "CPI print at 14:30");
    assert_eq!(
        js(c, "sessionStorage.getItem('rollbackd.token')").await,
        OPS_TOKEN,
        "the token typed in the dialog is kept for the tab"
    );

    // Ended from the banner, confirmed with a reason (the token is set: not asked again).
    click(c, "end-freeze").await;
    wait_dialog(c, "hold-dialog", true).await;
    assert_eq!(
        js(
            c,
            "document.getElementById('hold-token').getClientRects().length"
        )
        .await,
        0
    );
    assert!(text(c, "hold-dialog-title").await.contains("CPI release"));
    confirm_with_reason(c, "hold-dialog", "hold", "print is out, markets calm").await;
    wait_js(
        c,
        "the banner gone",
        "document.getElementById('holds-banner').hidden && !document.getElementById('end-freeze')",
    )
    .await;
    wait_announced(c, "Freeze CPI release ended").await;
    assert_eq!(holds(&app).await["freeze"], Value::Null);
    assert!(text(c, "action-message").await.contains("ended"));
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn a_freeze_started_through_the_api_appears_in_an_open_console_as_text() {
    // The watchdog armed: during the freeze a critical condition is held, not acted on.
    let (app, b) = open(TestApp::builder().auth()).await;
    let c = &b.client;
    let before = js(c, "performance.getEntriesByType('navigation').length").await;
    let ops = app.with_token(OPS_TOKEN);
    let name = "<img src=x onerror=window.__pwned=1>NFP";
    let r = ops
        .post(
            "/api/v1/freeze",
            &json!({"duration": "45m", "reason": "payrolls <b>soon</b>", "name": name}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let expr = format!(
        "!document.getElementById('holds-banner').hidden && \
         document.getElementById('holds-banner').textContent.includes({:?})",
        format!("Freeze {name} holds automatic rollbacks")
    );
    wait_js(c, "the freeze from the stream", &expr).await;
    wait_js(
        c,
        "its countdown",
        "/^\\d+:\\d\\d left$/.test(document.getElementById('freeze-clock').textContent)",
    )
    .await;
    assert!(clock_seconds(c, "freeze-clock").await > 40 * 60);
    assert_eq!(
        js(c, "document.querySelectorAll('#holds-banner img, #holds-banner b, #hold-states img').length").await,
        0,
        "server text stays text"
    );
    assert_eq!(js(c, "window.__pwned === undefined").await, true);
    assert!(
        text(c, "hold-states").await.contains(name),
        "the panel agrees"
    );
    assert_eq!(
        js(c, "performance.getEntriesByType('navigation').length").await,
        before,
        "no reload"
    );

    // A critical condition during the freeze: the attention banner says nothing will act.
    app.sim
        .set_metrics(json!({"walk_forward_stability": 31.5}))
        .await;
    wait_js(
        c,
        "the attention banner names the freeze",
        "document.getElementById('critical-banner').textContent.includes('holds automatic rollbacks: nothing will act')",
    )
    .await;
    assert_eq!(app.sim.switches().len(), 0, "the freeze held the watchdog");

    // Ended through the API: gone from the open console too.
    let r = ops
        .post("/api/v1/freeze/end", &json!({"reason": "done"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_js(
        c,
        "the banner gone",
        "document.getElementById('holds-banner').hidden",
    )
    .await;
    b.client.close().await.unwrap();
}

/// Confirm mode with the watchdog armed: a critical condition opens a proposal.
async fn proposal_in_console() -> (TestApp, Browser, String) {
    let (app, b) = open(TestApp::builder().auth().append_yaml(CONFIRM_MODE)).await;
    let c = &b.client;
    assert_eq!(text(c, "h-automation-mode").await, "Confirm");
    use_token(c, OPS_TOKEN).await;
    app.sim
        .set_metrics(json!({"walk_forward_stability": 31.5}))
        .await;
    wait_js(
        c,
        "the proposal with its controls",
        "!document.getElementById('pending-banner').hidden && \
         document.querySelector('#pending-banner [data-action=approve-proposal]') && \
         document.querySelector('#pending-banner [data-action=reject-proposal]')",
    )
    .await;
    let h = holds(&app).await;
    let proposals = h["proposals"].as_array().unwrap();
    assert_eq!(proposals.len(), 1, "{h}");
    assert_eq!(proposals[0]["trigger_type"], "watchdog");
    let id = proposals[0]["id"].as_str().unwrap().to_owned();
    let banner = text(c, "pending-banner").await;
    assert!(
        banner.contains("Automatic rollback proposed by the watchdog"),
        "{banner}"
    );
    assert!(banner.contains("it proceeds in "), "{banner}");
    assert_eq!(app.sim.switches().len(), 0, "nothing sent before an answer");
    (app, b, id)
}

#[tokio::test]
async fn in_confirm_mode_a_proposal_approved_from_the_console_rolls_back() {
    let (app, b, id) = proposal_in_console().await;
    let c = &b.client;
    click(c, &format!("approve-{id}")).await;
    wait_dialog(c, "hold-dialog", true).await;
    assert_eq!(
        text(c, "confirm-hold").await,
        "Approve: roll back now",
        "says what it does"
    );
    confirm_with_reason(c, "hold-dialog", "hold", "stability really is gone").await;

    wait_js(
        c,
        "a completed rollback in the history",
        &history_has("approved by ops: stability really is gone", "completed"),
    )
    .await;
    let expr = format!("!document.querySelector('[data-proposal=\"{id}\"]')");
    wait_js(c, "the proposal gone", &expr).await;
    let events = app.rollbacks("limit=5").await.json;
    let e = &events["events"][0];
    assert_eq!(e["status"], "completed", "{events}");
    assert_eq!(e["trigger_type"], "watchdog");
    assert_eq!(app.sim.switches().len(), 1, "one rollback sent");
    assert!(holds(&app).await["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["id"] != id.as_str()));
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn in_confirm_mode_a_proposal_rejected_from_the_console_is_recorded_as_suppressed() {
    let (app, b, id) = proposal_in_console().await;
    let c = &b.client;
    click(c, &format!("reject-{id}")).await;
    wait_dialog(c, "hold-dialog", true).await;
    // A reason is required.
    assert_eq!(
        js(c, "document.getElementById('confirm-hold').disabled").await,
        true
    );
    confirm_with_reason(c, "hold-dialog", "hold", "a stale feed, not a real drop").await;
    wait_js(
        c,
        "a suppressed event in the history",
        &history_has("an operator rejected the proposal", "suppressed"),
    )
    .await;
    let expr = format!("!document.querySelector('[data-proposal=\"{id}\"]')");
    wait_js(c, "the proposal gone", &expr).await;
    let events = app.rollbacks("limit=5").await.json;
    let e = &events["events"][0];
    assert_eq!(e["status"], "suppressed", "{events}");
    assert_eq!(e["suppressed_reason"], "rejected");
    assert_eq!(app.sim.switches().len(), 0, "nothing sent");
    assert!(text(c, "action-message")
        .await
        .contains("Proposal rejected"));
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn a_regime_set_from_the_console_shows_in_the_banner_and_the_mode_switches() {
    let (app, b) = open(TestApp::builder().manual().auth().append_yaml(REGIMES)).await;
    let c = &b.client;
    use_token(c, OPS_TOKEN).await;

    click_in_page(c, "set-regime").await;
    wait_dialog(c, "regime-dialog", true).await;
    assert_eq!(
        js(
            c,
            "[...document.getElementById('regime-name').options].map(o => o.value)"
        )
        .await,
        json!(["high_volatility"])
    );
    type_into(c, "regime-duration", "8h").await;
    confirm_with_reason(c, "regime-dialog", "regime", "FOMC week").await;
    wait_js(
        c,
        "the regime in the banner",
        "!document.getElementById('holds-banner').hidden && \
         document.getElementById('holds-banner').textContent.includes('Regime high_volatility sets the thresholds') && \
         /^\\d+:\\d\\d:\\d\\d left$/.test(document.getElementById('regime-clock').textContent)",
    )
    .await;
    let left = clock_seconds(c, "regime-clock").await;
    assert!(left <= 8 * 3600 && left > 7 * 3600, "an 8h regime: {left}");
    let h = holds(&app).await;
    assert_eq!(h["regime"]["name"], "high_volatility", "{h}");
    assert_eq!(h["regime"]["actor"], "ops");

    // Both themes keep AA contrast with the banner shown.
    for scheme in ["dark", "light"] {
        color_scheme(c, scheme).await;
        let r = js(c, CONTRAST_FAILURES).await;
        assert_eq!(r["failures"], json!([]), "{scheme}: text under 4.5:1");
    }

    // The automation mode, switched with confirmation.
    click_in_page(c, "change-mode").await;
    wait_dialog(c, "mode-dialog", true).await;
    js(
        c,
        "(s => (s.value = 'observe', s.dispatchEvent(new Event('change')), true))(document.getElementById('mode-choice'))",
    )
    .await;
    confirm_with_reason(c, "mode-dialog", "mode", "watch only during the audit").await;
    wait_js(
        c,
        "the header says Observe",
        "document.getElementById('h-automation-mode').textContent === 'Observe'",
    )
    .await;
    assert_eq!(holds(&app).await["automation_mode"], "observe");

    // Cleared from the banner.
    click(c, "clear-regime").await;
    wait_dialog(c, "hold-dialog", true).await;
    confirm_with_reason(c, "hold-dialog", "hold", "FOMC over").await;
    wait_js(
        c,
        "the banner gone",
        "document.getElementById('holds-banner').hidden",
    )
    .await;
    assert_eq!(holds(&app).await["regime"], Value::Null);
    b.client.close().await.unwrap();
}

#[tokio::test]
async fn a_two_person_restore_request_shows_with_its_approve_button_and_the_requester_cannot_approve(
) {
    let builder = TestApp::builder()
        .manual()
        .auth()
        .append_yaml("automation: { restore_approval: two_person }\n");
    let (app, b) = open(builder).await;
    let c = &b.client;
    app.with_token(OPS_TOKEN).rollback("drill").await.ok();
    wait_js(
        c,
        "rolled back",
        "document.getElementById('h-mode').textContent.includes('Cycle 4')",
    )
    .await;
    let r = app
        .with_token(ADMIN_TOKEN)
        .restore("drill over, hand it back")
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["restore_request"]["id"].as_str().unwrap().to_owned();
    wait_js(
        c,
        "the request with its approve button",
        "!document.getElementById('pending-banner').hidden && \
         document.getElementById('pending-banner').textContent.includes('Restore requested by boss: drill over, hand it back') && \
         document.querySelector('#pending-banner [data-action=approve-restore]')",
    )
    .await;
    assert!(text(c, &format!("approve-restore-{id}-why"))
        .await
        .contains("other than boss's"));

    // The admin who asked may not approve: the dialog comes back asking for another token.
    use_token(c, ADMIN_TOKEN).await;
    click(c, &format!("approve-restore-{id}")).await;
    wait_dialog(c, "hold-dialog", true).await;
    type_into(c, "hold-reason", "looks fine").await;
    wait_enabled(c, "confirm-hold").await;
    click(c, "confirm-hold").await;
    wait_js(
        c,
        "the dialog back with the refusal",
        "document.getElementById('hold-dialog').open && \
         document.querySelector('#hold-dialog .dialog-error').textContent.includes('another admin must approve')",
    )
    .await;
    assert_eq!(active_id(c).await, "hold-token");
    assert_eq!(
        js(c, "document.getElementById('hold-reason').value").await,
        "looks fine"
    );
    let h = holds(&app).await;
    assert_eq!(
        h["restore_requests"][0]["id"],
        id.as_str(),
        "still waiting: {h}"
    );
    assert_eq!(app.sim.switches().len(), 1, "only the rollback was sent");
    b.client.close().await.unwrap();
}
