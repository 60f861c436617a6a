// rollbackd operator console: reviews. Puts a review control on every finished trigger episode
// in the history and the count of unreviewed ones in the header. Plain DOM under the strict
// Content-Security-Policy: no inline script, every string from the server set as textContent.
"use strict";
(function () {
  const TOKEN_KEY = "rollbackd.token";
  const FINAL = ["completed", "failed", "suppressed", "dry_run"];
  const VERDICTS = [
    ["true_positive", "True positive: real degradation"],
    ["false_positive", "False positive: no real degradation"],
    ["drill", "Drill: planned test"],
  ];
  const MAX_NOTE = 2000;

  const $ = (id) => document.getElementById(id);
  const events = new Map(); // event id -> event (action, status)
  const current = new Map(); // event id -> its latest review
  const drafts = new Map(); // event id -> {verdict, note, ticket} typed but not sent
  let focused = null; // {id, field} of the control that had the focus

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
    if (token()) headers.Authorization = "Bearer " + token();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const data = await resp.json().catch(() => null);
      if (resp.ok) return { ok: true, data };
      const msg = data && data.error ? data.error.message : "HTTP " + resp.status;
      return { ok: false, error: msg + (resp.status === 401 ? " (enter a token under Access)" : "") };
    } catch (e) {
      return { ok: false, error: "cannot reach rollbackd: " + e.message };
    }
  }

  function remember(review) {
    const had = current.get(review.event_id);
    if (!had || had.id <= review.id) current.set(review.event_id, review);
  }

  function reviewable(e) {
    return e && e.action === "rollback" && FINAL.includes(e.status);
  }

  // ---- the unreviewed count in the header -----------------------------------------------
  function countSlot() {
    let dd = $("unreviewed-count");
    if (!dd) {
      const div = el("div");
      const dt = el("dt", "", "Unreviewed");
      dd = el("dd", "", "…");
      dd.id = "unreviewed-count";
      dd.title = "Finished trigger episodes nobody has reviewed yet";
      div.append(dt, dd);
      $("health").append(div);
    }
    return dd;
  }

  async function refreshCount() {
    const r = await api("GET", "/api/v1/rollbacks?unreviewed=true&limit=500");
    const dd = countSlot();
    if (!r.ok) return;
    const n = r.data.events.length;
    dd.textContent = r.data.next_before ? n + "+" : String(n);
    dd.className = n > 0 ? "meh" : "good";
  }

  // ---- the control on each history row ----------------------------------------------------
  function verdictLine(id) {
    const r = current.get(id);
    const line = el("span", "review-verdict");
    if (!r) {
      line.textContent = "Not reviewed yet";
      line.classList.add("muted");
      return line;
    }
    line.append(el("span", "badge " + (r.verdict === "false_positive" ? "fail" : "pass"), r.verdict));
    let text = " by " + r.reviewer;
    if (r.note) text += ": " + r.note;
    if (r.ticket_url) text += " (" + r.ticket_url + ")";
    line.append(document.createTextNode(text));
    return line;
  }

  function field(tag, id, name, label) {
    const f = el(tag);
    f.setAttribute("aria-label", label);
    f.dataset.field = name;
    f.addEventListener("focus", () => (focused = { id, field: name }));
    // A rebuilt row takes the focus back; leaving the field on purpose lets it go.
    f.addEventListener("blur", () => {
      if (f.isConnected) focused = null;
    });
    f.addEventListener("input", () => saveDraft(id, f.closest(".review-control")));
    return f;
  }

  function saveDraft(id, form) {
    const get = (name) => form.querySelector('[data-field="' + name + '"]').value;
    drafts.set(id, { verdict: get("verdict"), note: get("note"), ticket: get("ticket") });
  }

  function control(id) {
    const form = el("form", "review-control");
    form.setAttribute("aria-label", "Review event " + id);
    form.style.display = "flex";
    form.style.flexWrap = "wrap";
    form.style.gap = ".4rem";
    form.style.marginTop = ".35rem";
    const select = field("select", id, "verdict", "Verdict");
    for (const [value, label] of VERDICTS) {
      const o = el("option", "", label);
      o.value = value;
      select.append(o);
    }
    select.addEventListener("change", () => saveDraft(id, form));
    const note = field("input", id, "note", "Review note (required for a false positive)");
    note.type = "text";
    note.maxLength = MAX_NOTE;
    note.placeholder = "Note (required for a false positive)";
    const ticket = field("input", id, "ticket", "Ticket URL (optional)");
    ticket.type = "url";
    ticket.placeholder = "Ticket URL (optional)";
    for (const input of [note, ticket]) {
      input.style.flex = "1 1 9rem";
      input.style.minWidth = "0";
    }
    const send = el("button", "", current.has(id) ? "Review again" : "Review");
    send.type = "submit";
    const draft = drafts.get(id);
    if (draft) {
      select.value = draft.verdict;
      note.value = draft.note;
      ticket.value = draft.ticket;
    }
    form.append(select, note, ticket, send);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      submit(id, form);
    });
    return form;
  }

  function say(li, text, kind) {
    const m = li.querySelector(".review-message");
    if (!m) return;
    m.textContent = text;
    m.className = "review-message meta" + (kind === "error" ? " bad" : "");
  }

  async function submit(id, form) {
    saveDraft(id, form);
    const d = drafts.get(id);
    const li = form.closest(".history-item");
    const note = d.note.trim();
    if (d.verdict === "false_positive" && !note) {
      say(li, "A false positive needs a note: say why there was no real degradation.", "error");
      return;
    }
    say(li, "Recording the review…");
    const body = { verdict: d.verdict, note: note || null, ticket_url: d.ticket.trim() || null };
    const r = await api("POST", "/api/v1/rollbacks/" + encodeURIComponent(id) + "/review", body);
    const row = rowOf(id) || li;
    if (!r.ok) {
      say(row, "Review refused: " + r.error, "error");
      return;
    }
    drafts.delete(id);
    remember(r.data);
    decorate(rowOf(id));
    say(rowOf(id), "Review recorded.");
    refreshCount();
  }

  function rowOf(id) {
    return [...$("history").querySelectorAll(".history-item")].find((li) => li.dataset.eventId === id) || null;
  }

  function decorate(li) {
    if (!li) return;
    const id = li.dataset.eventId;
    const old = li.querySelector(".review-box");
    const message = old ? old.querySelector(".review-message").textContent : "";
    if (old) old.remove();
    if (!reviewable(events.get(id))) return;
    const box = el("div", "review-box");
    box.append(verdictLine(id), control(id), el("div", "review-message meta", message));
    li.append(box);
    const active = document.activeElement;
    if (focused && focused.id === id && !(active && active.closest && active.closest(".review-control"))) {
      const f = box.querySelector('[data-field="' + focused.field + '"]');
      if (f) f.focus();
    }
  }

  let loading = null;
  async function decorateAll() {
    const rows = [...$("history").querySelectorAll(".history-item")];
    if (rows.some((li) => !events.has(li.dataset.eventId)) && !loading) {
      loading = loadEvents().finally(() => (loading = null));
      await loading;
    }
    for (const li of [...$("history").querySelectorAll(".history-item")]) decorate(li);
  }

  async function loadEvents() {
    const [h, r] = await Promise.all([api("GET", "/api/v1/rollbacks?limit=100"), api("GET", "/api/v1/reviews?current=true&limit=500")]);
    if (h.ok) {
      for (const e of h.data.events) {
        events.set(e.id, e);
        if (e.review) remember(e.review);
      }
    }
    if (r.ok) r.data.reviews.forEach(remember);
  }

  // ---- live updates -------------------------------------------------------------------------
  let backoff = 1000;
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const t = token();
    let ws;
    try {
      ws = new WebSocket(proto + "//" + location.host + "/api/v1/stream" + (t ? "?access_token=" + encodeURIComponent(t) : ""));
    } catch (_) {
      setTimeout(connect, backoff);
      return;
    }
    ws.onopen = () => {
      backoff = 1000;
      loadEvents().then(decorateAll);
      refreshCount();
    };
    ws.onmessage = (m) => {
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch (_) {
        return;
      }
      if (msg.type === "review") {
        remember(msg.data);
        decorate(rowOf(msg.data.event_id));
        refreshCount();
      } else if (msg.type === "rollback_event") {
        events.set(msg.data.id, msg.data);
        if (msg.data.review) remember(msg.data.review);
        decorate(rowOf(msg.data.id));
        if (FINAL.includes(msg.data.status)) refreshCount();
      }
    };
    ws.onclose = () => {
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }

  function init() {
    countSlot();
    // The history list is rebuilt whenever an event changes: decorate the new rows.
    new MutationObserver(() => decorateAll()).observe($("history"), { childList: true });
    $("token-form").addEventListener("submit", () => setTimeout(() => {
      loadEvents().then(decorateAll);
      refreshCount();
    }, 0));
    loadEvents().then(decorateAll);
    refreshCount();
    connect();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
