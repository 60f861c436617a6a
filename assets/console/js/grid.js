// The trigger grid: one card per condition with its value, trend, status, thresholds and chart.
// A card whose status changes is announced; re-rendering the grid is not.
const STATE_LABEL = { ok: "OK", warning: "WARN", critical: "CRIT", unknown: "UNKNOWN" };
const STATE_WORD = { ok: "OK", warning: "at warning", critical: "critical", unknown: "unknown" };
const TREND = { rising: ["↑", "rising"], falling: ["↓", "falling"], steady: ["→", "steady"] };

function formatValue(c) {
  if (c.value === null || c.value === undefined) return "—";
  if (c.condition === "max_drawdown") return c.value.toFixed(2) + "%";
  if (c.condition === "consecutive_losses") return String(Math.round(c.value));
  return Number.isInteger(c.value) ? String(c.value) : String(Math.round(c.value * 1000) / 1000);
}

function conditionCard(grid, condition) {
  let card = grid.querySelector('[data-condition="' + CSS.escape(condition) + '"]');
  if (card) return card;
  card = el("article", "card");
  card.dataset.condition = condition;
  card.append(el("h3", "", NAMES[condition] || condition));
  const line = el("div");
  line.append(el("span", "value"), el("span", "trend"));
  card.append(line, el("span", "state"), el("div", "thresholds"));
  grid.append(card);
  return card;
}

function renderCondition(card, c) {
  const before = card.dataset.status;
  if (before && before !== c.status) {
    const value = c.value === null || c.value === undefined ? "" : " (" + formatValue(c) + ")";
    announce(conditionName(c) + " is now " + (STATE_WORD[c.status] || c.status) + value + ".");
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

function renderTriggers(t) {
  // An answer to a read can arrive after a newer update from the stream.
  if (state.triggers && when(t.updated_at) < when(state.triggers.updated_at)) return;
  state.triggers = t;
  const grid = $("grid");
  for (const c of t.conditions || []) {
    const card = conditionCard(grid, c.condition);
    renderCondition(card, c);
    drawChart(card, c, recordSample(c, t.updated_at));
  }
  renderAttention();
}
