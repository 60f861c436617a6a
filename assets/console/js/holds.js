// Holds: the freeze and the maintenance window in force, the regime, the automation mode, the
// proposals waiting for an operator (confirm mode) and the restores waiting for a second admin.
// What holds shows in a banner of the sticky bar, with a countdown to its end (ticking here every
// second from the end the daemon gives) and the button that ends it; what waits for an answer
// shows in a banner of its own, with its controls. Every change goes through a confirmation
// dialog (a reason, and the token when needed). Server strings only ever through textContent.
const MODES = {
  auto: ["Auto", "automatic triggers roll back on their own.", "good"],
  confirm: ["Confirm", "automatic triggers propose a rollback and wait for an operator.", "meh"],
  observe: ["Observe", "automatic triggers are only recorded: nothing acts on its own.", "bad"],
};
const ON_TIMEOUT = { proceed: "it proceeds", lapse: "it lapses and nothing is sent" };
const KIND_NAMES = { freeze: "Freeze", maintenance: "Maintenance" };
/** A window whose actor is this comes from the config and ends on its own. */
const SCHEDULED_BY = "config";
/** While a countdown shows 0 and the hold is still reported, it is read again this often. */
const HOLD_OVERDUE_REFRESH_MS = 2000;
const holdClock = { timer: null, readAt: 0 };
let holdsKey = "";
let pendingKey = "";

function modeWords(mode) {
  return MODES[mode] || [mode || "unknown", "", "bad"];
}

/** At most `n` characters of a server string, for a short announcement. */
function brief(text, n) {
  const t = String(text || "").trim();
  return t.length > n ? t.slice(0, n - 1) + "…" : t;
}

async function fetchHolds() {
  const r = await api("GET", "/api/v1/holds");
  if (r.ok) renderHolds(r.data);
  return r;
}

// ---- the countdowns ---------------------------------------------------------------------------

/** A countdown to `until` (RFC 3339): "m:ss left", or "in m:ss" with `lead`. */
function clockSpan(id, until, lead) {
  const span = el("span", "hold-clock");
  span.id = id;
  span.dataset.until = String(when(until));
  if (lead) span.dataset.lead = "1";
  showClock(span);
  return span;
}

function showClock(span) {
  const left = (Number(span.dataset.until) - Date.now()) / 1000;
  const text = left <= 0 ? "ending now…" : span.dataset.lead ? "in " + formatClock(left) : formatClock(left) + " left";
  if (span.textContent !== text) span.textContent = text;
  return left;
}

function tickHolds() {
  const clocks = document.querySelectorAll(".hold-clock");
  let overdue = false;
  for (const span of clocks) if (showClock(span) <= 0) overdue = true;
  if (clocks.length === 0) {
    clearInterval(holdClock.timer);
    holdClock.timer = null;
  } else if (overdue && performance.now() - holdClock.readAt > HOLD_OVERDUE_REFRESH_MS) {
    // The daemon ends it at its next tick and says so on the stream; read it in case.
    holdClock.readAt = performance.now();
    fetchHolds();
  }
}

function startHoldClock() {
  if (!holdClock.timer && document.querySelector(".hold-clock")) holdClock.timer = setInterval(tickHolds, 1000);
}

// ---- rendering ------------------------------------------------------------------------------

/** Replaces a container's children, keeping the focus on a control that is there again. */
function rebuild(container, nodes) {
  const active = document.activeElement;
  const focusedId = active && active.id && container.contains(active) ? active.id : "";
  container.replaceChildren(...nodes);
  if (focusedId && $(focusedId)) $(focusedId).focus();
}

/** A button with the visible note that describes it. */
function holdButton(id, label, cls, onClick) {
  const b = el("button", cls, label);
  b.type = "button";
  b.id = id;
  b.dataset.holdControl = "1";
  const why = el("p", "why");
  why.id = id + "-why";
  b.setAttribute("aria-describedby", why.id);
  b.addEventListener("click", onClick);
  return [b, why];
}

function windowItem(w) {
  const item = el("div", "hold-item");
  item.dataset.hold = w.kind;
  const text = el("div", "hold-text");
  const what = w.kind === "freeze"
    ? "Freeze " + w.name + " holds automatic rollbacks"
    : "Maintenance " + w.name + ": expecting " + w.expected_healthy_agents + " healthy agents";
  const line = el("p", "hold-line");
  line.append(el("span", "hold-what", what), document.createTextNode(" · "), clockSpan(w.kind + "-clock", w.end), document.createTextNode(" (until " + formatTime(w.end) + ")"));
  const scheduled = w.actor === SCHEDULED_BY;
  text.append(line, el("p", "hold-meta", scheduled ? "Scheduled in the config: it ends on its own." : "Started by " + w.actor + ": " + w.reason));
  item.append(text);
  if (!scheduled) {
    const [b, why] = holdButton("end-" + w.kind, "End " + w.kind + "…", "", () => openEndWindow(w));
    const box = el("div", "action");
    box.append(b, why);
    item.append(box);
  }
  return item;
}

function regimeItem(r) {
  const item = el("div", "hold-item");
  item.dataset.hold = "regime";
  const text = el("div", "hold-text");
  const line = el("p", "hold-line");
  line.append(el("span", "hold-what", "Regime " + r.name + " sets the thresholds"), document.createTextNode(" · "));
  if (r.until) line.append(clockSpan("regime-clock", r.until), document.createTextNode(" (until " + formatTime(r.until) + ")"));
  else line.append(el("span", "", "until cleared"));
  text.append(line, el("p", "hold-meta", "Set by " + r.actor + ": " + r.reason));
  const [b, why] = holdButton("clear-regime", "Clear regime…", "", () => openClearRegime(r));
  const box = el("div", "action");
  box.append(b, why);
  item.append(text, box);
  return item;
}

function proposalItem(p) {
  const item = el("div", "hold-item");
  item.dataset.proposal = p.id;
  const text = el("div", "hold-text");
  const alerts = p.alert_names && p.alert_names.length ? " (alerts: " + p.alert_names.join(", ") + ")" : "";
  const line = el("p", "hold-line");
  line.append(el("span", "hold-what", "Automatic rollback proposed by the " + p.trigger_type + ": " + p.reason + alerts));
  const meta = el("p", "hold-meta");
  meta.append(document.createTextNode("Approve or reject it. Without an answer " + (ON_TIMEOUT[p.on_timeout] || p.on_timeout) + " "), clockSpan("proposal-clock-" + p.id, p.deadline, true), document.createTextNode("."));
  text.append(line, meta);
  const [approve, approveWhy] = holdButton("approve-" + p.id, "Approve rollback…", "danger", () => openAnswer(p, true));
  approve.dataset.action = "approve-proposal";
  const [reject, rejectWhy] = holdButton("reject-" + p.id, "Reject…", "", () => openAnswer(p, false));
  reject.dataset.action = "reject-proposal";
  const box = el("div", "action");
  box.append(approve, reject, approveWhy, rejectWhy);
  item.append(text, box);
  return item;
}

function restoreItem(q) {
  const item = el("div", "hold-item");
  item.dataset.restoreRequest = q.id;
  const text = el("div", "hold-text");
  const line = el("p", "hold-line");
  line.append(el("span", "hold-what", "Restore requested by " + q.requested_by + ": " + q.reason));
  const meta = el("p", "hold-meta");
  meta.append(document.createTextNode("Another admin must approve it; it expires "), clockSpan("restore-clock-" + q.id, q.expires_at, true), document.createTextNode("."));
  text.append(line, meta);
  const [b, why] = holdButton("approve-restore-" + q.id, "Approve restore…", "", () => openApproveRestore(q));
  b.dataset.action = "approve-restore";
  why.dataset.note = "Needs an admin token other than " + q.requested_by + "'s.";
  const box = el("div", "action");
  box.append(b, why);
  item.append(text, box);
  return item;
}

function renderHoldsBanner(h) {
  const banner = $("holds-banner");
  const key = JSON.stringify([h.freeze, h.maintenance, h.regime]);
  if (key !== holdsKey) {
    holdsKey = key;
    const items = [];
    if (h.freeze) items.push(windowItem(h.freeze));
    if (h.maintenance) items.push(windowItem(h.maintenance));
    if (h.regime) items.push(regimeItem(h.regime));
    rebuild(banner, items);
    banner.hidden = items.length === 0;
  }
}

function renderPendingBanner(h) {
  const banner = $("pending-banner");
  const proposals = h.proposals || [], restores = h.restore_requests || [];
  const key = JSON.stringify([proposals, restores]);
  if (key !== pendingKey) {
    pendingKey = key;
    rebuild(banner, [...proposals.map(proposalItem), ...restores.map(restoreItem)]);
    banner.hidden = proposals.length + restores.length === 0;
  }
}

function stateCard(title, value, detail, cls) {
  const li = el("li", "path");
  const head = el("div", "path-head");
  head.append(el("span", "path-name", title), el("span", "path-state " + cls, value));
  li.append(head);
  if (detail) li.append(el("p", "path-detail", detail));
  return li;
}

function renderHoldPanel(h) {
  const w = (x) => (x ? x.name + ", until " + formatTime(x.end) : "none");
  const cards = [
    stateCard("Freeze", w(h.freeze), h.freeze ? "Automatic rollbacks are recorded as suppressed." : "Automatic rollbacks are not held.", h.freeze ? "meh" : "good"),
    stateCard("Maintenance", w(h.maintenance), h.maintenance ? "Expecting " + h.maintenance.expected_healthy_agents + " healthy agents." : "Expecting the configured healthy agents.", h.maintenance ? "meh" : "good"),
    stateCard("Regime", h.regime ? h.regime.name + (h.regime.until ? ", until " + formatTime(h.regime.until) : ", until cleared") : "none", h.regime ? "Its thresholds are laid over the environment's." : "The environment's thresholds.", h.regime ? "meh" : "good"),
  ];
  const key = JSON.stringify([h.freeze, h.maintenance, h.regime]);
  const states = $("hold-states");
  if (states.dataset.key !== key) {
    states.dataset.key = key;
    states.replaceChildren(...cards);
  }
  const upcoming = (h.upcoming || []).map((u) => {
    const li = el("li", "upcoming-item");
    li.append(el("span", "", (KIND_NAMES[u.kind] || u.kind) + " " + u.name), el("div", "meta", "starts " + formatTime(u.start)));
    return li;
  });
  if (upcoming.length === 0) upcoming.push(el("li", "muted", "No scheduled windows."));
  const list = $("upcoming");
  const ukey = JSON.stringify(h.upcoming || []);
  if (list.dataset.key !== ukey) {
    list.dataset.key = ukey;
    list.replaceChildren(...upcoming);
  }
}

function renderMode(h) {
  const [word, detail, cls] = modeWords(h.automation_mode);
  setField("h-automation-mode", word, cls);
  setField("mode-name", word, cls);
  setField("mode-detail", detail, "muted");
}

/** Enables the hold controls, or says why not (waiting for an answer, nothing to choose). */
function explainHoldControls(h) {
  const waiting = state.busy ? "Waiting for the answer…" : "";
  explain($("change-mode"), waiting);
  explain($("start-freeze"), waiting);
  explain($("start-maintenance"), waiting);
  explain($("set-regime"), waiting || ((h.regimes || []).length ? "" : "No regimes in the config (regimes:): nothing to set."));
  // The banners' buttons: a note of their own (who may approve) unless waiting.
  for (const b of document.querySelectorAll("[data-hold-control]")) {
    b.disabled = !!waiting;
    const note = $(b.getAttribute("aria-describedby"));
    const text = waiting || (note && note.dataset.note) || "";
    if (note && note.textContent !== text) note.textContent = text;
  }
}

/** Says what changed since the last holds seen, briefly. */
function announceHolds(before, after) {
  for (const kind of ["freeze", "maintenance"]) {
    const b = before[kind], a = after[kind];
    if (a && (!b || b.name !== a.name || b.start !== a.start || b.end !== a.end)) {
      announce(kind === "freeze"
        ? "Freeze " + brief(a.name, 64) + " started: automatic rollbacks are held until " + formatTime(a.end) + "."
        : "Maintenance " + brief(a.name, 64) + " started: expecting " + a.expected_healthy_agents + " healthy agents.");
    } else if (b && !a) {
      announce(kind === "freeze" ? "Freeze " + brief(b.name, 64) + " ended: automatic rollbacks may act again." : "Maintenance " + brief(b.name, 64) + " ended.");
    }
  }
  const rb = before.regime, ra = after.regime;
  if (ra && (!rb || rb.name !== ra.name || rb.since !== ra.since)) announce("Regime " + brief(ra.name, 64) + " sets the thresholds.");
  else if (rb && !ra) announce("Regime " + brief(rb.name, 64) + " ended: the environment's thresholds apply.");
  if (before.automation_mode !== after.automation_mode) {
    const [word, detail] = modeWords(after.automation_mode);
    announce("Automation mode " + word + ": " + detail);
  }
  const known = new Set((before.proposals || []).map((p) => p.id));
  for (const p of after.proposals || []) {
    if (!known.has(p.id)) announce("Automatic rollback proposed by the " + p.trigger_type + ": " + brief(p.reason, 80) + ". Approve or reject it.");
  }
  const asked = new Set((before.restore_requests || []).map((q) => q.id));
  for (const q of after.restore_requests || []) {
    if (!asked.has(q.id)) announce("Restore requested by " + brief(q.requested_by, 40) + ": another admin must approve it.");
  }
}

/** Shows the holds (from the status, the stream or an answer). */
function renderHolds(h) {
  if (!h) return;
  const before = state.holds;
  state.holds = h;
  if (before) announceHolds(before, h);
  renderMode(h);
  renderHoldsBanner(h);
  renderPendingBanner(h);
  renderHoldPanel(h);
  explainHoldControls(h);
  startHoldClock();
  if (before && JSON.stringify([before.freeze, before.automation_mode]) !== JSON.stringify([h.freeze, h.automation_mode])) renderAttention();
}

/** What the attention banner says about holds when a condition is critical, or null. */
function holdsAttention(which) {
  const h = state.holds;
  if (!h) return null;
  if (h.automation_mode === "observe") return ["observe", which + " and the automation mode is Observe: nothing will act unless you roll back."];
  if (h.freeze) return ["freeze", which + " and freeze " + h.freeze.name + " holds automatic rollbacks: nothing will act unless you roll back."];
  return null;
}

// ---- the changes, each confirmed ---------------------------------------------------------

let pendingHold = null;

/** Opens the confirmation for ending, clearing or answering something. */
function openHold(change) {
  pendingHold = change;
  $("hold-dialog-title").textContent = change.title;
  $("hold-dialog-text").textContent = change.text;
  const confirm = $("confirm-hold");
  confirm.textContent = change.confirm;
  confirm.className = change.danger ? "danger" : "";
  dialogs.hold.open();
}

async function sendHold(reason) {
  const change = pendingHold;
  const r = await act(change.pending, change.url, Object.assign({ reason }, change.body || {}), change.refused, change.onOk);
  fetchHolds();
  return r;
}

function openEndWindow(w) {
  const name = KIND_NAMES[w.kind];
  openHold({
    title: "End " + w.kind + " " + w.name + "?",
    text: w.kind === "freeze"
      ? "Automatic rollbacks may act again as soon as it ends."
      : "Validation and the agent alert expect the configured healthy agents again.",
    confirm: "End " + w.kind,
    url: "/api/v1/" + w.kind + "/end",
    pending: "Ending the " + w.kind + "…",
    refused: name + " not ended: ",
    onOk: (d) => say(name + " " + ((d.ended && d.ended.name) || w.name) + " ended.", "success"),
  });
}

function openClearRegime(r) {
  openHold({
    title: "Clear regime " + r.name + "?",
    text: "The environment's thresholds apply again.",
    confirm: "Clear regime",
    url: "/api/v1/regime/clear",
    pending: "Clearing the regime…",
    refused: "Regime not cleared: ",
    onOk: () => say("Regime " + r.name + " cleared: the environment's thresholds apply.", "success"),
  });
}

function openAnswer(p, approve) {
  const path = "/api/v1/proposals/" + encodeURIComponent(p.id) + (approve ? "/approve" : "/reject");
  openHold(approve
    ? {
      title: "Approve the proposed rollback?",
      text: "This rolls back to Cycle 4 now and validates the recovery, as the emergency button does. The " + p.trigger_type + " proposed it: " + p.reason,
      confirm: "Approve: roll back now",
      danger: true,
      url: path,
      pending: "Rolling back to Cycle 4 (approved)…",
      refused: "Approval refused: ",
      onOk: (e) => (e && e.id ? eventOutcome(e) : say("Approved.", "success")),
    }
    : {
      title: "Reject the proposed rollback?",
      text: "Nothing is sent to the trading system; the trigger is recorded as suppressed (rejected) with your reason.",
      confirm: "Reject rollback",
      url: path,
      pending: "Rejecting the proposal…",
      refused: "Rejection refused: ",
      onOk: (e) => {
        if (e && e.id) upsertEvent(e, true);
        say("Proposal rejected: recorded as suppressed, nothing was sent.", "success");
      },
    });
}

function openApproveRestore(q) {
  openHold({
    title: "Approve the restore?",
    text: q.requested_by + " asked to hand the trading system back to session targeting: " + q.reason + ". Admin token required (not " + q.requested_by + "'s).",
    confirm: "Approve: restore now",
    url: "/api/v1/restore/requests/" + encodeURIComponent(q.id) + "/approve",
    pending: "Restoring session targeting (approved)…",
    refused: "Approval refused: ",
    onOk: eventOutcome,
  });
}

/** The value of a text field, trimmed. */
function fieldValue(id) {
  return $(id).value.trim();
}

function openStartWindow(kind) {
  const h = state.holds || {};
  const now = h[kind];
  $(kind + "-text").textContent = (kind === "freeze"
    ? "While it holds, automatic rollbacks are recorded as suppressed and not executed. You can still roll back from this page."
    : "While it holds, validation and the agent alert expect the healthy agents given here.") +
    (now && now.actor !== SCHEDULED_BY ? " It replaces " + kind + " " + now.name + "." : "");
  if (!fieldValue(kind + "-duration")) $(kind + "-duration").value = kind === "freeze" ? "45m" : "2h";
  dialogs[kind].open();
}

function durationWhy(id, optional) {
  const v = fieldValue(id);
  if (!v) return optional ? "" : "Enter a duration such as 45m or 2h.";
  return /^\d/.test(v) ? "" : "A duration starts with a number, such as 45m or 2h.";
}

function agentsWhy() {
  const v = fieldValue("maintenance-agents");
  return /^\d+$/.test(v) ? "" : "Enter how many healthy agents to expect (a whole number).";
}

function sendStartWindow(kind, reason) {
  const body = { duration: fieldValue(kind + "-duration"), reason };
  const name = fieldValue(kind + "-name");
  if (name) body.name = name;
  if (kind === "maintenance") body.expected_healthy_agents = Number(fieldValue("maintenance-agents"));
  const label = KIND_NAMES[kind];
  return act("Starting the " + kind + "…", "/api/v1/" + kind, body, label + " refused: ", (d) => {
    const w = d[kind];
    for (const f of ["-duration", "-name"]) $(kind + f).value = "";
    if (kind === "maintenance") $("maintenance-agents").value = "";
    say(label + " " + w.name + " holds until " + formatTime(w.end) + ".", "success");
    fetchHolds();
  });
}

function openRegime() {
  const select = $("regime-name");
  const names = (state.holds && state.holds.regimes) || [];
  const chosen = select.value;
  select.replaceChildren(...names.map((n) => {
    const o = el("option", "", n);
    o.value = n;
    return o;
  }));
  if (names.includes(chosen)) select.value = chosen;
  const r = state.holds && state.holds.regime;
  $("regime-text").textContent = "A regime lays its thresholds over the environment's until it expires or is cleared." + (r ? " It replaces regime " + r.name + "." : "");
  dialogs.regime.open();
}

function sendRegime(reason) {
  const body = { name: $("regime-name").value, reason };
  const d = fieldValue("regime-duration");
  if (d) body.duration = d;
  return act("Setting the regime…", "/api/v1/regime", body, "Regime refused: ", (data) => {
    $("regime-duration").value = "";
    if (data.holds) renderHolds(data.holds);
    say("Regime " + data.regime.name + " sets the thresholds" + (data.regime.until ? " until " + formatTime(data.regime.until) : " until cleared") + ".", "success");
  });
}

function openMode() {
  const current = state.holds ? state.holds.automation_mode : "";
  const choice = $("mode-choice");
  if (choice.value === current) choice.value = current === "auto" ? "confirm" : "auto";
  $("mode-text").textContent = "Now " + modeWords(current)[0] + ": " + modeWords(current)[1] + " This changes how automatic triggers (the watchdog, Alertmanager) are carried out; you can always roll back from this page.";
  dialogs.mode.open();
}

function modeWhy() {
  return state.holds && $("mode-choice").value === state.holds.automation_mode ? "Choose a mode other than the current one." : "";
}

function sendMode(reason) {
  const mode = $("mode-choice").value;
  return act("Changing the automation mode…", "/api/v1/automation/mode", { mode, reason }, "Mode not changed: ", () => {
    const [word, detail] = modeWords(mode);
    say("Automation mode " + word + ": " + detail, "success");
    fetchHolds();
  });
}

function wireHolds() {
  $("maintenance-duration").dataset.api = "duration";
  $("maintenance-agents").dataset.api = "expected_healthy_agents";
  $("maintenance-name").dataset.api = "name";
  $("freeze-duration").dataset.api = "duration";
  $("freeze-name").dataset.api = "name";
  $("regime-name").dataset.api = "name";
  $("regime-duration").dataset.api = "duration";
  $("mode-choice").dataset.api = "mode";
  reasonDialog("freeze", "freeze-dialog", (reason) => sendStartWindow("freeze", reason), {
    fields: [$("freeze-duration"), $("freeze-name")],
    check: () => durationWhy("freeze-duration", false),
    invalid: true,
  });
  reasonDialog("maintenance", "maintenance-dialog", (reason) => sendStartWindow("maintenance", reason), {
    fields: [$("maintenance-duration"), $("maintenance-agents"), $("maintenance-name")],
    check: () => durationWhy("maintenance-duration", false) || agentsWhy(),
    invalid: true,
  });
  reasonDialog("regime", "regime-dialog", sendRegime, {
    fields: [$("regime-name"), $("regime-duration")],
    check: () => ($("regime-name").value ? "" : "Choose a regime.") || durationWhy("regime-duration", true),
    invalid: true,
  });
  reasonDialog("mode", "mode-dialog", sendMode, { fields: [$("mode-choice")], check: modeWhy, invalid: true });
  reasonDialog("hold", "hold-dialog", sendHold);
  $("start-freeze").addEventListener("click", () => openStartWindow("freeze"));
  $("start-maintenance").addEventListener("click", () => openStartWindow("maintenance"));
  $("set-regime").addEventListener("click", openRegime);
  $("change-mode").addEventListener("click", openMode);
}
