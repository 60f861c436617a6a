// The rollback history and the validation runs. An event reaching a new status on the stream is
// announced once (started, completed, failed, suppressed); loading the history is not.
const announcedSteps = new Set();

function describeEvent(e) {
  const what = e.action === "restore" ? "Restore" : e.dry_run ? "Dry run" : "Rollback";
  const by = " (" + e.trigger_type + ", by " + e.actor + ")";
  switch (e.status) {
    case "executing":
      return what + " started" + by + ".";
    case "completed":
      return what + " completed" + (e.validation_score === null || e.validation_score === undefined ? "." : "; validation score " + e.validation_score + "/100.");
    case "failed":
      return what + " FAILED: " + (e.failure_reason || "see the history") + ".";
    case "suppressed":
      return what + by + " suppressed: " + (SUPPRESSED[e.suppressed_reason] || e.suppressed_reason) + ".";
    case "dry_run":
      return "Dry run recorded: " + (e.note || "nothing was sent") + ".";
    default:
      return "";
  }
}

const STEP = { pending: 0, executing: 1, validating: 2 };

/** Whether `a` is a version of an event at least as new as `b` (times tie within a ms). */
function asNew(a, b) {
  const d = when(a.updated_at) - when(b.updated_at);
  return d ? d > 0 : (STEP[a.status] ?? 3) >= (STEP[b.status] ?? 3);
}

/** Keeps the newest version of an event: a read may answer after the stream moved it on. */
function mergeEvent(e) {
  const known = state.events.get(e.id);
  if (!known || asNew(e, known)) state.events.set(e.id, e);
}

/** Newest first; ids (UUIDv7) order events created in the same millisecond. */
function byCreation(a, b) {
  return when(b.created_at) - when(a.created_at) || (a.id < b.id ? 1 : -1);
}

/** Adds or updates an event; `live` when it was just reported (stream or answer). */
function upsertEvent(e, live) {
  mergeEvent(e);
  const step = e.id + ":" + e.status;
  if (live && !announcedSteps.has(step)) {
    announcedSteps.add(step);
    announce(describeEvent(e));
  }
  renderHistory();
}

function historyItem(e) {
  const li = el("li", "history-item");
  li.dataset.eventId = e.id;
  const head = el("div");
  head.append(el("span", "badge " + e.status, e.status), document.createTextNode(" " + e.action + " · " + e.trigger_type + (e.dry_run ? " · dry run" : "")));
  if (e.validation_score !== null && e.validation_score !== undefined) head.append(document.createTextNode(" · score " + e.validation_score));
  li.append(head, el("div", "reason", e.reason));
  const why = e.failure_reason || (e.suppressed_reason ? "suppressed: " + (SUPPRESSED[e.suppressed_reason] || e.suppressed_reason) : "") || e.note;
  if (why) li.append(el("div", "meta", why));
  li.append(el("div", "meta", formatTime(e.created_at) + " · by " + e.actor + " · " + e.id));
  return li;
}

function renderHistory() {
  const list = $("history");
  const events = [...state.events.values()].sort(byCreation).slice(0, 50);
  list.replaceChildren(...events.map(historyItem));
  if (events.length === 0) list.append(el("li", "muted", "No rollback events yet."));
}

function validationItem(r) {
  const li = el("li", "validation-item");
  li.dataset.validationId = String(r.id);
  const head = el("div");
  head.append(el("span", "badge " + (r.passed ? "pass" : "fail"), r.passed ? "PASS" : "FAIL"), document.createTextNode(" " + r.kind + " · score " + r.score + "/100 (pass " + r.pass_score + ")"));
  li.append(head);
  const failed = (r.checks || []).filter((c) => !c.passed).map((c) => c.detail);
  if (failed.length) li.append(el("div", "meta", failed.join("; ")));
  if (r.note) li.append(el("div", "meta", r.note));
  li.append(el("div", "meta", formatTime(r.at) + " · event " + r.event_id));
  return li;
}

function upsertValidation(v) {
  state.validations.set(v.id, v);
  const list = $("validations");
  const runs = [...state.validations.values()].sort((a, b) => b.id - a.id).slice(0, 50);
  list.replaceChildren(...runs.map(validationItem));
  if (runs.length === 0) list.append(el("li", "muted", "No validations yet."));
}
