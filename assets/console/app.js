// rollbackd operator console. Plain DOM, no framework, no inline script: it runs under a
// strict Content-Security-Policy. Every string from the server is rendered with textContent.
"use strict";
(function () {
  const TOKEN_KEY = "rollbackd.token";
  const STALE_AFTER_MS = 3000;
  const NAMES = {
    walk_forward_stability: "Walk-Forward Stability",
    overfitting_score: "Overfitting Score",
    consecutive_losses: "Consecutive Losses",
    max_drawdown: "Max Drawdown",
  };
  const STATE_LABEL = { ok: "OK", warning: "WARN", critical: "CRIT", unknown: "UNKNOWN" };
  const TREND = { rising: ["↑", "rising"], falling: ["↓", "falling"], steady: ["→", "steady"] };

  const $ = (id) => document.getElementById(id);
  const state = { status: null, events: new Map(), validations: new Map(), busy: false };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      return { ok: false, status: 0, error: "cannot reach rollbackd: " + e.message };
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (_) {
      data = null;
    }
    if (!resp.ok) {
      const msg = data && data.error ? data.error.message : "HTTP " + resp.status;
      const hint = resp.status === 401 ? " (enter a token under Access)" : "";
      return { ok: false, status: resp.status, error: msg + hint, code: data && data.error ? data.error.code : "" };
    }
    return { ok: true, status: resp.status, data };
  }

  function say(text, kind) {
    const m = $("action-message");
    m.textContent = text;
    m.className = "message" + (kind ? " " + kind : "");
  }

  // ---- header and buttons ----------------------------------------------------------------
  function setField(id, text, cls) {
    const e = $(id);
    e.textContent = text;
    e.className = cls || "";
  }

  function renderStatus(s) {
    state.status = s;
    setField("h-ready", s.rollback_ready ? "● Ready" : "● Not ready", s.rollback_ready ? "good" : "bad");
    const a = s.agents || { healthy: 0, expected: 0 };
    setField("h-agents", a.healthy + "/" + a.expected, a.healthy >= a.expected ? "good" : "bad");
    const mode = s.mode === "universal_cycle_4" ? "Cycle 4 (rolled back)" : s.mode === "session_targeted" ? "Session targeted" : "Unknown";
    setField("h-mode", mode, s.mode === "universal_cycle_4" ? "meh" : s.mode === "session_targeted" ? "good" : "bad");
    setField("h-monitoring", s.monitoring_active ? "On" + (s.automatic_rollback ? " (auto)" : " (manual)") : "Off", s.monitoring_active ? "good" : "meh");
    setField("h-target", s.target && s.target.up ? "Up" : "Down", s.target && s.target.up ? "good" : "bad");
    setField("h-env", s.environment || "default");
    const busy = !!s.in_progress || state.busy;
    $("emergency-rollback").disabled = !s.rollback_ready || s.already_rolled_back || busy;
    $("emergency-rollback").title = s.already_rolled_back ? "Already in Cycle 4" : s.rollback_ready ? "" : "rollbackd is not ready";
    $("restore").disabled = !s.already_rolled_back || busy;
    $("monitoring-toggle").textContent = s.monitoring_active ? "Stop monitoring" : "Start monitoring";
    if (s.last_event) upsertEvent(s.last_event);
  }

  // ---- trigger grid ----------------------------------------------------------------------
  function formatValue(c) {
    if (c.value === null || c.value === undefined) return "—";
    if (c.condition === "max_drawdown") return c.value.toFixed(2) + "%";
    if (c.condition === "consecutive_losses") return String(Math.round(c.value));
    return Number.isInteger(c.value) ? String(c.value) : String(Math.round(c.value * 1000) / 1000);
  }

  function renderTriggers(t) {
    const grid = $("grid");
    for (const c of t.conditions || []) {
      let card = grid.querySelector('[data-condition="' + CSS.escape(c.condition) + '"]');
      if (!card) {
        card = el("article", "card");
        card.dataset.condition = c.condition;
        card.append(el("h3", "", NAMES[c.condition] || c.condition));
        const line = el("div");
        line.append(el("span", "value"), el("span", "trend"));
        card.append(line, el("span", "state"), el("div", "thresholds"));
        grid.append(card);
      }
      card.dataset.status = c.status;
      card.className = "card " + c.status;
      card.querySelector(".value").textContent = formatValue(c);
      const [arrow, word] = TREND[c.trend] || TREND.steady;
      const tr = card.querySelector(".trend");
      tr.textContent = arrow;
      tr.title = word;
      tr.setAttribute("aria-label", "trend " + word);
      card.querySelector(".state").textContent = STATE_LABEL[c.status] || c.status;
      const unit = c.condition === "max_drawdown" ? "%" : "";
      card.querySelector(".thresholds").textContent =
        "critical " + c.operator + " " + c.critical_threshold + unit + " · warning " + c.operator + " " + c.warning_threshold + unit;
    }
  }

  // ---- history ---------------------------------------------------------------------------
  function time(s) {
    if (!s) return "";
    const d = new Date(s);
    return isNaN(d) ? s : d.toLocaleString();
  }

  function upsertEvent(e) {
    state.events.set(e.id, e);
    renderHistory();
  }

  function renderHistory() {
    const list = $("history");
    const events = [...state.events.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1)).slice(0, 50);
    list.replaceChildren(
      ...events.map((e) => {
        const li = el("li", "history-item");
        li.dataset.eventId = e.id;
        const head = el("div");
        head.append(el("span", "badge " + e.status, e.status), document.createTextNode(" " + e.action + " · " + e.trigger_type + (e.dry_run ? " · dry run" : "")));
        if (e.validation_score !== null && e.validation_score !== undefined) head.append(document.createTextNode(" · score " + e.validation_score));
        li.append(head, el("div", "reason", e.reason));
        const why = e.failure_reason || e.suppressed_reason || e.note;
        if (why) li.append(el("div", "meta", why));
        li.append(el("div", "meta", time(e.created_at) + " · by " + e.actor + " · " + e.id));
        return li;
      })
    );
    if (events.length === 0) list.append(el("li", "muted", "No rollback events yet."));
  }

  function upsertValidation(v) {
    state.validations.set(v.id, v);
    const list = $("validations");
    const runs = [...state.validations.values()].sort((a, b) => b.id - a.id).slice(0, 50);
    list.replaceChildren(
      ...runs.map((r) => {
        const li = el("li", "validation-item");
        li.dataset.validationId = String(r.id);
        const head = el("div");
        head.append(el("span", "badge " + (r.passed ? "pass" : "fail"), r.passed ? "PASS" : "FAIL"), document.createTextNode(" " + r.kind + " · score " + r.score + "/100 (pass " + r.pass_score + ")"));
        li.append(head);
        const failed = (r.checks || []).filter((c) => !c.passed).map((c) => c.detail);
        if (failed.length) li.append(el("div", "meta", failed.join("; ")));
        if (r.note) li.append(el("div", "meta", r.note));
        li.append(el("div", "meta", time(r.at) + " · event " + r.event_id));
        return li;
      })
    );
    if (runs.length === 0) list.append(el("li", "muted", "No validations yet."));
  }

  async function loadAll() {
    const [s, t, h, v] = await Promise.all([
      api("GET", "/api/v1/status"),
      api("GET", "/api/v1/triggers"),
      api("GET", "/api/v1/rollbacks?limit=20"),
      api("GET", "/api/v1/validations?limit=20"),
    ]);
    if (t.ok) renderTriggers(t.data);
    if (h.ok) h.data.events.forEach((e) => state.events.set(e.id, e));
    renderHistory();
    if (v.ok) v.data.validations.forEach(upsertValidation);
    if (s.ok) renderStatus(s.data);
    const failed = [s, t, h, v].find((r) => !r.ok);
    if (failed) say(failed.error, "error");
  }

  // ---- live stream -----------------------------------------------------------------------
  let backoff = 1000;
  let lostAt = null;
  let staleTimer = null;

  function showStale() {
    const b = $("stale-banner");
    b.textContent = "Live updates lost since " + lostAt.toLocaleTimeString() + ": the data shown may be out of date. Reconnecting…";
    b.hidden = false;
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const t = token();
    const url = proto + "//" + location.host + "/api/v1/stream" + (t ? "?access_token=" + encodeURIComponent(t) : "");
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (_) {
      return scheduleReconnect();
    }
    ws.onopen = () => {
      backoff = 1000;
      lostAt = null;
      clearTimeout(staleTimer);
      $("stale-banner").hidden = true;
      loadAll();
    };
    ws.onmessage = (m) => {
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch (_) {
        return;
      }
      if (msg.type === "status") renderStatus(msg.data);
      else if (msg.type === "trigger_update") renderTriggers(msg.data);
      else if (msg.type === "rollback_event") upsertEvent(msg.data);
      else if (msg.type === "validation") upsertValidation(msg.data);
    };
    ws.onclose = () => scheduleReconnect();
  }

  function scheduleReconnect() {
    if (!lostAt) {
      lostAt = new Date();
      staleTimer = setTimeout(showStale, STALE_AFTER_MS);
    }
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10000);
  }

  // ---- actions ---------------------------------------------------------------------------
  function describe(e) {
    const id = "…" + e.id.slice(-8);
    if (e.status === "completed") return ["Rollback " + id + " completed; validation score " + e.validation_score + "/100.", "success"];
    if (e.status === "dry_run") return ["Dry run " + id + " recorded: " + (e.note || ""), "success"];
    if (e.status === "failed") return ["Rollback " + id + " FAILED: " + (e.failure_reason || "see history"), "error"];
    return [e.action + " " + id + ": " + e.status, ""];
  }

  function wireReasonDialog(dialogId, inputId, confirmId, cancelId) {
    const dialog = $(dialogId), input = $(inputId), confirm = $(confirmId);
    const update = () => {
      const n = input.value.trim().length;
      confirm.disabled = n === 0 || input.value.length > 500;
    };
    input.addEventListener("input", update);
    $(cancelId).addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      input.value = "";
      update();
    });
    return { dialog, input, confirm, open: () => { update(); dialog.showModal(); input.focus(); } };
  }

  function busy(on) {
    state.busy = on;
    if (state.status) renderStatus(state.status);
  }

  function init() {
    const rb = wireReasonDialog("confirm-dialog", "rollback-reason", "confirm-rollback", "cancel-rollback");
    const rs = wireReasonDialog("restore-dialog", "restore-reason", "confirm-restore", "cancel-restore");
    $("emergency-rollback").addEventListener("click", rb.open);
    $("restore").addEventListener("click", rs.open);

    rb.confirm.addEventListener("click", async () => {
      const reason = rb.input.value.trim();
      const dry = $("rollback-dry-run").checked;
      rb.dialog.close();
      $("rollback-dry-run").checked = false;
      busy(true);
      say(dry ? "Recording a dry run…" : "Rolling back to Cycle 4…", "");
      const r = await api("POST", "/api/v1/rollback", { reason, dry_run: dry });
      busy(false);
      if (r.ok) {
        upsertEvent(r.data);
        const [text, kind] = describe(r.data);
        say(text, kind);
      } else say("Rollback refused: " + r.error, "error");
    });

    rs.confirm.addEventListener("click", async () => {
      const reason = rs.input.value.trim();
      rs.dialog.close();
      busy(true);
      say("Restoring session targeting…", "");
      const r = await api("POST", "/api/v1/restore", { reason });
      busy(false);
      if (r.ok) {
        upsertEvent(r.data);
        say(r.data.status === "completed" ? "Restored to session targeting." : "Restore " + r.data.status + ": " + (r.data.failure_reason || ""), r.data.status === "completed" ? "success" : "error");
      } else say("Restore refused: " + r.error, "error");
    });

    $("monitoring-toggle").addEventListener("click", async () => {
      const on = state.status && state.status.monitoring_active;
      const r = await api("POST", on ? "/api/v1/monitoring/stop" : "/api/v1/monitoring/start");
      if (r.ok) say("Monitoring " + (r.data.monitoring_active ? "started." : "stopped."), "success");
      else say("Monitoring change refused: " + r.error, "error");
    });

    const tokenState = () => ($("token-state").textContent = token() ? "Token set for this tab." : "No token set: read-only unless the daemon allows anonymous writes.");
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("token").value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v);
      $("token").value = "";
      tokenState();
      loadAll();
    });
    $("forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      tokenState();
    });
    tokenState();
    renderHistory();
    loadAll();
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
