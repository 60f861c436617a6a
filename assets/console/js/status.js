// The header and the action bar from a status: every disabled button says why in visible text
// next to it (not only in a tooltip).
const WAITING = "Waiting for rollbackd's status…";

function runningWhy(s) {
  if (state.busy) return "Waiting for the answer to the request just sent…";
  if (s.in_progress) return "A rollback or restore is running (event …" + s.in_progress.slice(-8) + "): wait for it to finish.";
  return "";
}

/** Why the emergency rollback cannot be sent now, or "". */
function rollbackBlocker(s) {
  if (!s) return WAITING;
  const running = runningWhy(s);
  if (running) return running;
  if (s.already_rolled_back) return "Already in Cycle 4: restore session targeting to go back.";
  if (!s.target || !s.target.up) return "The trading system is unreachable: a rollback cannot be sent until it answers.";
  if (!s.storage_ok) return "The history store is unavailable: rollbacks are refused until it is back.";
  if (!s.rollback_ready) return "rollbackd is not ready.";
  return "";
}

/** Why a restore cannot be sent now, or "". */
function restoreBlocker(s) {
  if (!s) return WAITING;
  const running = runningWhy(s);
  if (running) return running;
  if (s.already_rolled_back) return "";
  if (s.mode === "unknown") return "The trading system's mode is not known yet: nothing to restore.";
  return "Nothing to restore: the system is in session targeting.";
}

/** Bumped by every status shown: an answer to a read started before it is older. */
let statusSeq = 0;

/** Reads the status; shows it unless a newer one arrived meanwhile (from the stream). */
async function fetchStatus() {
  const seen = statusSeq;
  const r = await api("GET", "/api/v1/status");
  if (r.ok && seen === statusSeq) renderStatus(r.data);
  return r;
}

/** Trigger updates come with every poll; the status (target up or down) is re-read with them. */
const STATUS_REFRESH_MS = 2000;
let statusReadAt = 0;

function refreshStatusSoon() {
  const now = performance.now();
  if (now - statusReadAt < STATUS_REFRESH_MS) return;
  statusReadAt = now;
  fetchStatus();
}

function renderStatus(s) {
  statusSeq++;
  state.status = s;
  const a = s.agents || { healthy: 0, expected: 0 };
  setField("h-agents", a.healthy + "/" + a.expected, a.healthy >= a.expected ? "good" : "bad");
  const rolledBack = s.mode === "universal_cycle_4", adaptive = s.mode === "session_targeted";
  setField("h-mode", rolledBack ? "Cycle 4 (rolled back)" : adaptive ? "Session targeted" : "Unknown", rolledBack ? "meh" : adaptive ? "good" : "bad");
  const up = s.target && s.target.up;
  setField("h-target", up ? "Up" : "Down", up ? "good" : "bad");
  setField("target-error", up || !s.target.last_error ? "" : "Target: " + s.target.last_error, "why");
  setField("h-env", s.environment || "default");
  explain($("emergency-rollback"), rollbackBlocker(s));
  explain($("restore"), restoreBlocker(s));
  renderAutomation(s.automation, state.busy);
  if (s.holds) renderHolds(s.holds);
  if (s.last_event) upsertEvent(s.last_event, false);
  setCooldown(s.cooldown_remaining_seconds);
  renderAttention();
}

function busy(on) {
  state.busy = on;
  if (state.status) renderStatus(state.status);
}
