// Loading, the actions (rollback, restore, arming; holds in holds.js) and the access panel;
// starts the page.

/** The visible result line in the action bar; `loud` also announces it. */
function say(text, kind, loud) {
  const m = $("action-message");
  m.textContent = text;
  m.className = "message" + (kind ? " " + kind : "");
  if (loud) announce(text);
}

async function loadAll() {
  const [h, v, s, t] = await Promise.all([
    api("GET", "/api/v1/rollbacks?limit=20"),
    api("GET", "/api/v1/validations?limit=20"),
    fetchStatus(),
    api("GET", "/api/v1/triggers"),
  ]);
  if (h.ok) h.data.events.forEach(mergeEvent);
  renderHistory();
  if (v.ok) v.data.validations.forEach(upsertValidation);
  if (t.ok) renderTriggers(t.data);
  renderAttention();
  const failed = [s, t, h, v].find((r) => !r.ok);
  if (failed) say(failed.error, "error", true);
}

/**
 * Sends one write and reports it in the action bar. A failed rollback or restore (502) comes
 * with its event, which goes to the history like any other.
 */
async function act(pending, path, body, refused, onOk) {
  busy(true);
  say(pending, "");
  const r = await api("POST", path, body);
  busy(false);
  if (r.ok) onOk(r.data);
  else if (r.data && r.data.event) {
    upsertEvent(r.data.event, true);
    say(describeEvent(r.data.event) || refused + r.error, "error");
  } else say(refused + r.error, "error", true);
  return r;
}

function eventOutcome(e) {
  upsertEvent(e, true);
  const ok = e.status === "completed" || e.status === "dry_run";
  let text = describeEvent(e) || e.action + " " + e.status + ".";
  const left = cooldownLeft();
  if (e.action === "restore" && ok && left > 0) text += " Automatic rollbacks stay held by the cooldown for " + formatClock(left) + ".";
  say(text, ok ? "success" : "error");
}

function sendRollback(reason) {
  const dry = $("rollback-dry-run").checked;
  $("rollback-dry-run").checked = false;
  return act(dry ? "Recording a dry run…" : "Rolling back to Cycle 4…", "/api/v1/rollback", { reason, dry_run: dry }, "Rollback refused: ", eventOutcome);
}

function sendRestore(reason) {
  return act("Restoring session targeting…", "/api/v1/restore", { reason }, "Restore refused: ", (d) => {
    if (!d || !d.restore_request) return eventOutcome(d);
    // Two-person restore: the request waits for another admin (shown with its approve button).
    say("Restore requested: another admin must approve it before it is sent.", "success");
    fetchHolds();
  });
}

function renderTokenState() {
  $("token-state").textContent = token() ? "Token set for this tab." : "No token set: the confirmation dialogs ask for one.";
}

function wireAccess() {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token").value.trim();
    if (v) setToken(v);
    $("token").value = "";
    loadAll();
  });
  $("forget-token").addEventListener("click", () => setToken(""));
  renderTokenState();
}

function init() {
  reasonDialog("rollback", "confirm-dialog", sendRollback);
  reasonDialog("restore", "restore-dialog", sendRestore);
  reasonDialog("automation", "automation-dialog", sendArming);
  wireHolds();
  $("emergency-rollback").addEventListener("click", () => dialogs.rollback.open());
  $("restore").addEventListener("click", () => dialogs.restore.open());
  $("disarm-all").addEventListener("click", () => openArming(null, false));
  wireAccess();
  trackStickyHeight();
  renderHistory();
  loadAll();
  connect();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
