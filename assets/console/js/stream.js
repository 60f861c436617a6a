// The live stream (WebSocket), reconnecting with backoff; when it has been lost for a while a
// banner says the data may be out of date.
const STALE_AFTER_MS = 3000;
const stream = { backoff: 1000, lostAt: null, staleTimer: null };

function showStale() {
  const b = $("stale-banner");
  b.textContent = "Live updates lost since " + stream.lostAt.toLocaleTimeString() + ": the data shown may be out of date. Reconnecting…";
  b.hidden = false;
  announce("Live updates lost: the data shown may be out of date.");
}

function onStreamMessage(m) {
  let msg;
  try {
    msg = JSON.parse(m.data);
  } catch (_) {
    return;
  }
  if (msg.type === "status") renderStatus(msg.data);
  else if (msg.type === "trigger_update") {
    renderTriggers(msg.data);
    refreshStatusSoon();
  }
  else if (msg.type === "rollback_event") upsertEvent(msg.data, true);
  else if (msg.type === "validation") upsertValidation(msg.data);
  else if (msg.type === "holds") renderHolds(msg.data);
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
    stream.backoff = 1000;
    stream.lostAt = null;
    clearTimeout(stream.staleTimer);
    if (!$("stale-banner").hidden) announce("Live updates are back.");
    $("stale-banner").hidden = true;
    loadAll();
  };
  ws.onmessage = onStreamMessage;
  ws.onclose = () => scheduleReconnect();
}

function scheduleReconnect() {
  if (!stream.lostAt) {
    stream.lostAt = new Date();
    stream.staleTimer = setTimeout(showStale, STALE_AFTER_MS);
  }
  setTimeout(connect, stream.backoff);
  stream.backoff = Math.min(stream.backoff * 2, 10000);
}
