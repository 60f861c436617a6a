// The banner that says when nothing automatic will act on a critical condition (no path armed,
// or held by the cooldown), or that the latest automatic trigger was suppressed and why. While
// it shows, the header's "Ready" is not green.
const SUPPRESSED = {
  already_rolled_back: "the system was already in Cycle 4",
  in_progress: "another rollback was running",
  cooldown: "the cooldown after the last rollback was running",
  disarmed: "its automatic path is disarmed",
  freeze: "a freeze held automatic rollbacks",
  rejected: "an operator rejected the proposal",
  lapsed: "nobody answered the proposal in time",
};

function latestEvent() {
  let latest = null;
  for (const e of state.events.values()) if (!latest || byCreation(e, latest) < 0) latest = e;
  return latest;
}

/** The banner's sentences, each with a key that names its kind (announced when new). */
function attentionParts() {
  const s = state.status, t = state.triggers;
  if (!s || !t) return [];
  const critical = (t.conditions || []).filter((c) => c.status === "critical").map(conditionName);
  const parts = [];
  if (critical.length && !s.already_rolled_back && !s.in_progress) {
    const which = critical.join(", ") + (critical.length > 1 ? " are" : " is") + " critical";
    const left = cooldownLeft();
    const held = holdsAttention(which);
    if (s.automation && s.automation.manual_only) {
      parts.push(["manual", which + " and no automatic rollback is armed: nothing will act unless you roll back."]);
    } else if (held) {
      parts.push(held);
    } else if (left > 0) {
      parts.push(["cooldown", which + " and automatic rollbacks are held by the cooldown for " + formatClock(left) + "."]);
    }
  }
  const e = latestEvent();
  if (e && e.status === "suppressed" && (critical.length || e.trigger_type !== "manual")) {
    const why = SUPPRESSED[e.suppressed_reason] || e.suppressed_reason || "no reason given";
    parts.push(["suppressed:" + e.id, "The latest " + e.trigger_type + " trigger was suppressed: " + why + "."]);
  }
  return parts;
}

let attentionKeys = "";

function renderAttention() {
  const parts = attentionParts();
  const banner = $("critical-banner");
  const text = parts.map((p) => p[1]).join(" ");
  if (banner.textContent !== text) banner.textContent = text;
  banner.hidden = parts.length === 0;
  const keys = parts.map((p) => p[0]).join(" ");
  if (keys !== attentionKeys) {
    for (const [key, sentence] of parts) if (!attentionKeys.split(" ").includes(key)) announce(sentence.replace(/ for \d[\d:]*\./, "."));
    attentionKeys = keys;
  }
  const s = state.status;
  if (!s) return;
  const waiting = state.holds && (state.holds.proposals || []).length > 0;
  const act = waiting || parts.some((p) => ["manual", "observe", "freeze", "cooldown"].includes(p[0]));
  const ready = s.rollback_ready ? (act ? "● Ready: act now" : "● Ready") : "● Not ready";
  setField("h-ready", ready, s.rollback_ready && !act ? "good" : "bad");
}
