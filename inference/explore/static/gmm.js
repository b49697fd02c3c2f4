// latentzoo explore, Gaussian mixture: the points (clicked or typed), K and the seed go to the
// server; EM, VB and Gibbs answers (latentzoo's back-ends) are drawn. No statistics here: even
// the ellipses' outlines come from the server.
"use strict";

(() => {
const METHODS = ["data", "em", "vb", "gibbs"];
const LABEL_COLORS = ["#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];
const COLORS = { em: "#1f77b4", vb: "#ff7f0e", nuts: "#d62728", advi: "#9467bd" };
const { $, fmt, plot } = LZ;
// no legends: the keys are in the page's notes (plotly laid every legend out on every redraw)
const LAYOUTS = {
  plane: { margin: { t: 10, r: 10, b: 50 }, dragmode: false, hovermode: "closest", showlegend: false,
    xaxis: { title: { text: "x" } }, yaxis: { title: { text: "y" } } },
  // two panels side by side, under the headings of index.html
  curves: { margin: { t: 10, r: 10, l: 60, b: 45 }, showlegend: false,
    xaxis: { domain: [0, 0.44], title: { text: "iteration" } }, yaxis: {},
    xaxis2: { domain: [0.56, 1], title: { text: "iteration" }, anchor: "y2" }, yaxis2: { title: { text: "nats" }, anchor: "x2" } },
};
// a fresh copy per redraw: plotly writes the ranges it chose (and a user's zoom) into the layout
// it is given, and a zoom is not to outlive the edit
const layout = (name) => structuredClone(LAYOUTS[name]);

function readBody() {
  return {
    points: $("gmm-points").value,
    n_components: Number($("gmm-k").value),
    seed: Number($("gmm-seed").value),
    options: { n_starts: Number($("gmm-starts").value) },
  };
}

const live = LZ.createLive({ model: "gaussian-mixture", methods: METHODS, tables: ["em", "vb", "gibbs"],
  readBody, draw: drawOnce, errorBox: "gmm-error" });
const state = live.state;
(window.exploreViews = window.exploreViews || {})["gaussian-mixture"] = state;

function drawOnce(what) {
  const waits = [];
  for (const [method, id] of [["data", "gmm-count"], ["em", "gmm-em-status"], ["vb", "gmm-vb-status"], ["gibbs", "gmm-gibbs-status"]]) {
    if (what.has(method)) $(id).dataset.tag = state.results[method] ? state.results[method].tag : "";
  }
  if (what.has("data")) drawCount();
  if (what.has("em")) drawEm();
  if (what.has("vb")) drawVb();
  if (what.has("em") || what.has("vb")) waits.push(drawCurves());
  if (what.has("gibbs") || what.has("table")) drawGibbs();
  if (METHODS.some((m) => what.has(m)) || what.has("plane")) waits.push(drawPlane());
  if (what.has("table") || METHODS.some((m) => what.has(m))) drawSummary();
  return Promise.all(waits);
}

function drawCount() {
  const d = state.results.data;
  const count = $("gmm-count");
  if (!d) { count.textContent = "–"; count.dataset.nPoints = ""; return; }
  count.textContent = `${d.n_points} points, K = ${d.n_components}`;
  count.dataset.nPoints = d.n_points;
  const L = d.limits;
  $("gmm-limits").textContent = `Bounds: at most ${L.points} points with coordinates within ±${L.abs_coordinate}; K in 1..${L.n_components}; `
    + `${L.n_starts} EM starts; Gibbs at most ${L.gibbs_chains} chains of ${L.gibbs_draws} draws.`;
}

// One trace for the outlines of every component given and one for their means (null between
// outlines): plotly's time grows with the number of traces (a trace per component and start was
// 19 traces on Old Faithful, now 8)
function ellipseTraces(components, color, options = {}) {
  const outline = { x: [], y: [] };
  for (const c of components) { outline.x.push(...c.ellipse.x, null); outline.y.push(...c.ellipse.y, null); }
  const traces = [{ type: "scatter", mode: "lines", ...outline, hoverinfo: "skip", connectgaps: false,
    line: { color, width: options.width || 2, dash: options.dash || "solid" }, opacity: options.opacity || 1 }];
  if (options.means !== false) {
    traces.push({ type: "scatter", mode: "markers", x: components.map((c) => c.mean[0]), y: components.map((c) => c.mean[1]),
      name: options.name, text: components.map((c) => fmt(c.weight)), marker: { color, size: 12, symbol: options.symbol || "x" },
      hovertemplate: `${options.name || ""} mean (%{x:.3f}, %{y:.3f}), weight %{text}<extra></extra>` });
  }
  return traces;
}

function drawPlane() {
  const traces = [];
  const d = state.results.data, em = state.results.em, vb = state.results.vb, g = state.results.gibbs;
  if (d) traces.push({ type: "scatter", mode: "markers", x: d.x, y: d.y, name: "points",
    marker: { color: "#222", size: 6, opacity: 0.7 }, hovertemplate: "(%{x}, %{y}): click to remove<extra></extra>" });
  if (g && $("gmm-show-gibbs").checked) {  // every label's draws in one trace, coloured by label
    const draws = { x: [], y: [], color: [] };
    for (const byLabel of g.draws_by_label) {
      draws.x.push(...byLabel.x); draws.y.push(...byLabel.y);
      draws.color.push(...byLabel.x.map(() => LABEL_COLORS[byLabel.label]));
    }
    traces.push({ type: "scatter", mode: "markers", x: draws.x, y: draws.y, name: "Gibbs draws of the means", hoverinfo: "skip",
      marker: { color: draws.color, size: 4, opacity: 0.5 } });
  }
  if (em && $("gmm-show-starts").checked) {
    const others = em.starts.filter((_, i) => i !== em.best_restart).flatMap((start) => start.components);
    if (others.length) traces.push(...ellipseTraces(others, COLORS.em, { width: 1, opacity: 0.4, means: false }));
  }
  if (em) traces.push(...ellipseTraces(em.best, COLORS.em, { name: "EM (best start)" }));
  if (vb && $("gmm-show-vb").checked) traces.push(...ellipseTraces(vb.components, COLORS.vb, { name: "VB", dash: "dash", symbol: "cross-thin-open" }));
  for (const job of ["nuts", "advi"]) {
    if (state.jobs[job]) traces.push(...ellipseTraces(state.jobs[job].components, COLORS[job], { name: job.toUpperCase(), dash: "dot", symbol: "diamond-open" }));
  }
  return plot("gmm-plot", traces, layout("plane")).then(bindClicks);
}

function drawEm() {
  const em = state.results.em;
  const s = $("gmm-em-status");
  if (!em) { s.textContent = ""; delete s.dataset.means; return; }
  s.dataset.means = JSON.stringify(em.best.map((c) => c.mean));
  s.textContent = `best of ${em.starts.length} starts: start ${em.best_restart + 1}, ${em.objective_name} ${fmt(em.objective, 3)}\n`
    + em.best.map((c, k) => `component ${k + 1}: weight ${fmt(c.weight)}, mean (${fmt(c.mean[0])}, ${fmt(c.mean[1])})`).join("\n");
}

function drawVb() {
  const vb = state.results.vb;
  const s = $("gmm-vb-status");
  if (!vb) { s.textContent = ""; return; }
  s.textContent = `final ELBO ${fmt(vb.elbo_final, 3)}\n`
    + vb.components.map((c, k) => `component ${k + 1}: E[weight] ${fmt(c.weight)}, E[mean] (${fmt(c.mean[0])}, ${fmt(c.mean[1])})`).join("\n");
}

// EM's objective per iteration from every start (x/y) and VB's ELBO (x2/y2): one figure of two
// panels, so that plotly's fixed work per redraw is paid once. Lines without markers (an SVG node
// per iteration and start); hover names the start.
function drawCurves() {
  const em = state.results.em, vb = state.results.vb;
  const traces = [];
  if (em) em.starts.forEach((start, i) => traces.push({ y: start.objective, mode: "lines", name: `start ${i + 1}`,
    line: { width: i === em.best_restart ? 3 : 1 } }));
  if (vb) traces.push({ y: vb.elbo, mode: "lines", name: "ELBO", line: { color: COLORS.vb }, xaxis: "x2", yaxis: "y2" });
  const curves = layout("curves");
  if (em) curves.yaxis.title = { text: em.objective_name };
  return plot("gmm-curves-plot", traces, curves);
}

function drawGibbs() {
  const g = state.results.gibbs;
  const s = $("gmm-gibbs-status");
  if (!g) { s.textContent = ""; return; }
  // R-hat comes with the table (computed after the plots are drawn); "–" until it arrives
  const checked = state.tableAnswers.gibbs;
  const rows = (state.tables.gibbs || []).filter((r) => r.parameter.startsWith("means"));
  const worst = rows.length ? Math.max(...rows.map((r) => r.r_hat)) : null;
  s.dataset.labelSwitches = g.label_switches;
  s.textContent = `${g.settings.chains} chains × ${g.settings.draws} draws (after ${g.settings.tune} burn-in) from k-means++ starts; `
    + `label switches ${g.label_switches}; R-hat after relabelling ${fmt(checked ? checked.max_rhat : null)}`
    + (worst === null ? "" : `; largest R-hat of the means as labelled ${fmt(worst)}`);
}

// The comparison table is rebuilt only when its rows changed: an edit's panels arrive while the
// previous edit's rows are still the current ones (the new rows follow the plots), and rebuilding
// the same rows had the page laid out again at the start of plotly's redraw.
let shownRows = [];
const sameRows = (rows) => rows.length === shownRows.length && rows.every((r, i) => r === shownRows[i]);
function drawSummary() {
  const methods = ["em", "vb", "gibbs"];
  const rows = [...methods.map((m) => state.tables[m]), ...["nuts", "advi"].map((job) => state.jobs[job] && state.jobs[job].table)];
  if (sameRows(rows)) return;
  shownRows = rows;
  LZ.drawSummary("gmm-summary", state, methods);
}

// -- editing by clicks --------------------------------------------------------------------------
// A click on a point removes it (plotly_click names the point); a click elsewhere adds one at the
// clicked data coordinates. plotly_click fires before the DOM's click, so the flag tells them apart.
let removed = false;

function dataLines() {
  return $("gmm-points").value.split("\n");
}

function isDataLine(line) {
  return line.split("#", 1)[0].trim() !== "";
}

function removePoint(index) {
  const lines = dataLines();
  let seen = -1;
  for (let i = 0; i < lines.length; i += 1) {
    if (isDataLine(lines[i]) && ++seen === index) { lines.splice(i, 1); break; }
  }
  $("gmm-points").value = lines.join("\n");
  live.schedule();
}

function addPoint(x, y) {
  const text = $("gmm-points").value.replace(/\s+$/, "");
  $("gmm-points").value = (text ? text + "\n" : "") + `${x.toPrecision(4)}, ${y.toPrecision(4)}`;
  live.schedule();
}

function bindClicks() {
  const gd = $("gmm-plot");
  if (!gd.on) return;
  if (gd.removeAllListeners) gd.removeAllListeners("plotly_click");
  gd.on("plotly_click", (event) => {
    const point = event.points && event.points[0];
    if (point && point.data.name === "points") { removed = true; removePoint(point.pointIndex); }
  });
}

$("gmm-plot").addEventListener("click", (event) => {
  if (removed) { removed = false; return; }
  const layout = $("gmm-plot")._fullLayout;
  if (!layout || !layout.xaxis) return;
  const xa = layout.xaxis, ya = layout.yaxis;
  const box = $("gmm-plot").getBoundingClientRect();
  const px = event.clientX - box.left - xa._offset, py = event.clientY - box.top - ya._offset;
  if (px < 0 || py < 0 || px > xa._length || py > ya._length) return;  // on the axes or the legend
  addPoint(xa.p2d(px), ya.p2d(py));
});

async function loadDataset(name) {
  try {
    const answer = await LZ.post("/api/gaussian-mixture/dataset", { dataset: name });
    $("gmm-points").value = answer.points;
    live.schedule();
  } catch (error) {
    live.showError("data", error.message);
  }
}

for (const id of ["gmm-points", "gmm-k", "gmm-seed", "gmm-starts"]) $(id).addEventListener("input", live.schedule);
for (const name of ["old_faithful", "blobs"]) $(`gmm-load-${name}`).addEventListener("click", () => loadDataset(name));
$("gmm-clear").addEventListener("click", () => { $("gmm-points").value = ""; live.schedule(); });
for (const id of ["gmm-show-starts", "gmm-show-vb", "gmm-show-gibbs"]) $(id).addEventListener("change", () => live.requestRedraw("plane"));
for (const job of ["nuts", "advi"]) {
  $(`gaussian-mixture-run-${job}`).addEventListener("click", () => live.runJob(job, "gmm-job-status", () => {
    live.requestRedraw("plane"); live.requestRedraw("table");
  }));
}
LZ.register("gaussian-mixture", () => {
  if ($("gmm-points").value.trim()) live.update(); else loadDataset("old_faithful");
});
})();
