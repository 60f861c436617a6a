// The automatic paths (the watchdog, Alertmanager): what each will do now, per-path arming and
// the emergency "disarm all". A path reads "acts" only when the config allows it and it is
// armed; the page never says "manual" while one of them can act.
const PATHS = [
  { key: "watchdog", name: "Watchdog", does: "Rolls back when a condition turns critical.", config: "monitoring.automatic_rollback" },
  { key: "alertmanager", name: "Alertmanager", does: "Rolls back on a firing alert labelled action=\"rollback\".", config: "the config" },
];

/** The words and class for a path's state. */
function pathState(p) {
  if (!p.configured) return ["off in config", "meh"];
  if (!p.armed) return ["disarmed", "bad"];
  return ["acts automatically", "good"];
}

function pathRow(path) {
  const id = "path-" + path.key;
  let row = $(id);
  if (row) return row;
  row = el("li", "path");
  row.id = id;
  row.dataset.path = path.key;
  const head = el("div", "path-head");
  const label = el("span", "path-state");
  label.id = id + "-state";
  head.append(el("span", "path-name", path.name), label);
  const button = el("button");
  button.type = "button";
  button.id = "arm-" + path.key;
  button.setAttribute("aria-describedby", button.id + "-why");
  const why = el("p", "why");
  why.id = button.id + "-why";
  const action = el("div", "action");
  action.append(button, why);
  row.append(head, el("p", "path-detail", path.does), action);
  button.addEventListener("click", () => openArming(path, !(state.automation && state.automation[path.key].armed)));
  $("paths").append(row);
  return row;
}

/** Says which paths changed arming, in one sentence per path. */
function announceArming(before, after) {
  if (!before) return;
  if (after.manual_only && !before.manual_only && PATHS.every((p) => !after[p.key].armed)) {
    announce("Every automatic path is disarmed: only a person can roll back.");
    return;
  }
  for (const p of PATHS) {
    if (before[p.key].armed === after[p.key].armed) continue;
    const now = after[p.key];
    const effect = !now.armed ? " disarmed: it will not roll back on its own." : now.acts ? " armed: it acts automatically." : " armed, but off in config: it will not act.";
    announce(p.name + effect);
  }
}

function renderAutomation(a, busy) {
  if (!a) return;
  announceArming(state.automation, a);
  state.automation = a;
  for (const path of PATHS) {
    const p = a[path.key];
    const row = pathRow(path);
    const [word, cls] = pathState(p);
    const label = row.querySelector(".path-state");
    setField(label.id, word, "path-state " + cls);
    const button = row.querySelector("button");
    button.textContent = (p.armed ? "Disarm " : "Arm ") + path.name;
    const offInConfig = !p.armed && !p.configured ? "Off in " + path.config + ": arming it here would not let it act." : "";
    explain(button, busy ? "Waiting for the answer…" : offInConfig);
  }
  const anyArmed = PATHS.some((p) => a[p.key].armed);
  explain($("disarm-all"), busy ? "Waiting for the answer…" : anyArmed ? "" : "Every automatic path is already disarmed.");
  const acting = PATHS.filter((p) => a[p.key].acts).map((p) => p.name);
  setField("h-automation", acting.length ? acting.join(" + ") : "none: manual only", acting.length ? "good" : "bad");
}

/** Opens the confirmation for arming or disarming one path, or every path. */
function openArming(path, armed) {
  const all = path === null;
  const name = all ? "" : path.name;
  $("automation-dialog-title").textContent = all ? "Disarm every automatic path?" : (armed ? "Arm " : "Disarm ") + name + "?";
  $("automation-dialog-text").textContent = all
    ? "Neither the watchdog nor Alertmanager will roll back on their own until re-armed. You can still roll back from this page."
    : armed
      ? name + " will roll back on its own again whenever it is triggered."
      : name + " will no longer roll back on its own. You can still roll back from this page.";
  const confirm = $("confirm-automation");
  confirm.textContent = all ? "Disarm all" : (armed ? "Arm " : "Disarm ") + name;
  confirm.className = armed ? "" : "danger";
  pendingArming = all ? { url: "/api/v1/automation/disarm-all", body: {} } : { url: "/api/v1/automation", body: { path: path.key, armed } };
  dialogs.automation.open();
}

let pendingArming = null;

async function sendArming(reason) {
  const change = pendingArming;
  return act("Changing automatic rollback…", change.url, Object.assign({ reason }, change.body), "Change refused: ", (a) => {
    if (state.status) state.status.automation = a;
    renderAutomation(a, false);
    renderAttention();
    const acting = PATHS.filter((p) => a[p.key].acts).map((p) => p.name);
    say("Automatic rollback: " + (acting.length ? acting.join(" and ") + " can act." : "none armed; only a person can roll back."), "success");
  });
}
