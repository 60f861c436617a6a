// Shared pieces: the page state, DOM building (server strings only ever through textContent),
// the tab's API token and the API client.
const TOKEN_KEY = "rollbackd.token";
const SVG_NS = "http://www.w3.org/2000/svg";
const NAMES = {
  walk_forward_stability: "Walk-Forward Stability",
  overfitting_score: "Overfitting Score",
  consecutive_losses: "Consecutive Losses",
  max_drawdown: "Max Drawdown",
};

const $ = (id) => document.getElementById(id);

/** What the page knows; each part of the script renders from it. */
const state = {
  status: null,
  triggers: null,
  automation: null,
  // Freezes, maintenance, the regime, the automation mode, proposals, restore requests.
  holds: null,
  events: new Map(),
  validations: new Map(),
  busy: false,
  // Learnt from a 401: this daemon takes no write without a token.
  tokenRequired: false,
};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function setField(id, text, cls) {
  const e = $(id);
  if (e.textContent !== text) e.textContent = text;
  e.className = cls || "";
}

/** Enables a control, or disables it and says why in the visible text it is described by. */
function explain(button, why) {
  button.disabled = !!why;
  const note = $(button.getAttribute("aria-describedby"));
  if (note && note.textContent !== (why || "")) note.textContent = why || "";
}

function conditionName(c) {
  return NAMES[c.condition] || c.condition;
}

/** "m:ss", or "h:mm:ss" from an hour on. */
function formatClock(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  const two = (n) => String(n).padStart(2, "0");
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h > 0 ? h + ":" + two(m) + ":" + two(s % 60) : m + ":" + two(s % 60);
}

/** Milliseconds of an RFC 3339 time (0 when missing): the strings carry 0 to 9 fraction digits
 * and do not compare as text. */
function when(s) {
  const t = Date.parse(s || "");
  return isNaN(t) ? 0 : t;
}

function formatTime(s) {
  if (!s) return "";
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString();
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

/** Keeps the token for this tab only: sessionStorage, never localStorage. */
function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  renderTokenState();
}

/** One request; errors come back as `{ok: false, status, code, error, data}`, never thrown. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    return { ok: false, status: 0, code: "", data: null, error: "cannot reach rollbackd: " + e.message };
  }
  let data = null;
  try {
    data = await resp.json();
  } catch (_) {
    data = null;
  }
  if (resp.ok) return { ok: true, status: resp.status, data };
  const err = data && data.error ? data.error : null;
  if (resp.status === 401) state.tokenRequired = true;
  return { ok: false, status: resp.status, data, code: err ? err.code : "", error: err ? err.message : "HTTP " + resp.status };
}
