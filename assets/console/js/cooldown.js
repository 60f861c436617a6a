// The cooldown after the last rollback holds automatic triggers (a person can still roll back).
// It is shown as a countdown that ticks here every second from the status's
// `cooldown_remaining_seconds`, and the status is read again now and then to stay exact.
const COOLDOWN_REFRESH_MS = 15000;
const cooldown = { until: 0, timer: null, readAt: 0 };

function cooldownLeft() {
  return Math.max(0, (cooldown.until - performance.now()) / 1000);
}

/** Takes the figure from a status just received. */
function setCooldown(seconds) {
  const now = performance.now();
  cooldown.until = now + Math.max(0, Number(seconds) || 0) * 1000;
  cooldown.readAt = now;
  if (cooldown.until > now && !cooldown.timer) cooldown.timer = setInterval(tickCooldown, 1000);
  showCooldown();
}

function showCooldown() {
  const left = cooldownLeft();
  setField("h-cooldown", left > 0 ? formatClock(left) + " left (automatic held)" : "none", left > 0 ? "meh" : "");
}

function tickCooldown() {
  showCooldown();
  renderAttention();
  if (cooldownLeft() <= 0) {
    clearInterval(cooldown.timer);
    cooldown.timer = null;
    announce("The cooldown is over: automatic rollbacks may act again.");
  } else if (performance.now() - cooldown.readAt > COOLDOWN_REFRESH_MS) {
    cooldown.readAt = performance.now();
    fetchStatus();
  }
}
