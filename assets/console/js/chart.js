// A small chart per condition: the values this page has seen (every trigger update from the
// stream or the API, the latest last), with the warning and critical thresholds as dashed lines.
// Inline SVG made with DOM calls and classes: the CSP allows no inline style.
const CHART_KEEP = 60;
const CHART_W = 240;
const CHART_H = 48;
const CHART_PAD = 4;
const samples = new Map();

/** Adds the condition's value from a trigger update; the same update seen twice counts once. */
function recordSample(c, at) {
  let s = samples.get(c.condition);
  if (!s) {
    s = { at: null, values: [] };
    samples.set(c.condition, s);
  }
  if (typeof c.value !== "number") return s.values;
  if (at && s.at === at && s.values.length) s.values[s.values.length - 1] = c.value;
  else s.values.push(c.value);
  s.at = at;
  if (s.values.length > CHART_KEEP) s.values.splice(0, s.values.length - CHART_KEEP);
  return s.values;
}

/** Maps a value to a y coordinate; the range holds every value and both thresholds. */
function chartScale(values, c) {
  const all = values.concat([c.warning_threshold, c.critical_threshold]);
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi === lo) {
    hi += 1;
    lo -= 1;
  }
  const pad = (hi - lo) * 0.1;
  lo -= pad;
  hi += pad;
  return (v) => CHART_PAD + ((hi - v) / (hi - lo)) * (CHART_H - 2 * CHART_PAD);
}

function newChart() {
  const chart = svgEl("svg", { class: "chart", viewBox: "0 0 " + CHART_W + " " + CHART_H, role: "img", focusable: "false" });
  chart.append(
    svgEl("line", { class: "th warn", x1: 0, x2: CHART_W }),
    svgEl("line", { class: "th crit", x1: 0, x2: CHART_W }),
    svgEl("polyline", { class: "series" }),
    svgEl("circle", { class: "now", r: 3 })
  );
  return chart;
}

function drawChart(card, c, values) {
  let chart = card.querySelector("svg.chart");
  if (!chart) {
    chart = newChart();
    card.append(chart);
  }
  const y = chartScale(values, c);
  const step = CHART_W / (CHART_KEEP - 1);
  const x = (i) => CHART_W - (values.length - 1 - i) * step;
  for (const [cls, v] of [["warn", c.warning_threshold], ["crit", c.critical_threshold]]) {
    const line = chart.querySelector(".th." + cls);
    line.setAttribute("y1", y(v).toFixed(2));
    line.setAttribute("y2", y(v).toFixed(2));
  }
  const points = values.map((v, i) => x(i).toFixed(2) + "," + y(v).toFixed(2));
  chart.querySelector(".series").setAttribute("points", points.join(" "));
  const now = chart.querySelector(".now");
  now.setAttribute("cx", String(CHART_W));
  now.setAttribute("cy", values.length ? y(values[values.length - 1]).toFixed(2) : "-10");
  chart.dataset.points = String(values.length);
  const range = values.length ? ": last " + values.length + " values, from " + Math.min(...values) + " to " + Math.max(...values) : ": no values yet";
  chart.setAttribute("aria-label", conditionName(c) + range + "; warning " + c.operator + " " + c.warning_threshold + ", critical " + c.operator + " " + c.critical_threshold);
}
