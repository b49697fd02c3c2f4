// latentzoo explore, three coins: reads the editor, asks the server (latentzoo's back-ends) for
// each panel and draws the answers with plotly.js. No statistics are computed here. The request
// machinery (debounce, tags, stale answers, errors) is shared.js's.
"use strict";

(() => {
const METHODS = ["data", "exact", "em", "vb", "gibbs"];
const COLORS = { exact: "#555", em: "#1f77b4", ml: "#17becf", vb: "#ff7f0e", gibbs: "#2ca02c", nuts: "#d62728", advi: "#9467bd" };
const CHAIN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const { $, fmt, plot } = LZ;
// The plots' layouts: no legends (each plot's key is in the page's notes, in the traces' colours:
// plotly measured and laid out every legend on every redraw) and fixed ranges where the quantity
// is bounded (probabilities)
const LAYOUTS = {
  // the unit square stays the unit square (constrain: the plot area shrinks, not the ranges grow)
  plane: { margin: { t: 10, r: 10 }, showlegend: false, xaxis: { title: { text: "p (coin B)" }, range: [0, 1], constrain: "domain" },
    yaxis: { title: { text: "q (coin C)" }, range: [0, 1], scaleanchor: "x", constrain: "domain" } },
  // three panels side by side, under the headings of index.html
  curves: { margin: { t: 10, r: 10, l: 50, b: 45 }, showlegend: false,
    xaxis: { domain: [0, 0.28], title: { text: "iteration" } }, yaxis: { title: { text: "nats" } },
    xaxis2: { domain: [0.36, 0.64], title: { text: "draw" }, anchor: "y2" }, yaxis2: { range: [0, 1], title: { text: "p" }, anchor: "x2" },
    xaxis3: { domain: [0.72, 1], range: [0, 1], anchor: "y3" }, yaxis3: { title: { text: "density" }, anchor: "x3" } },
};
// a fresh copy per redraw: plotly writes the ranges it chose (and a user's zoom) into the layout
// it is given, and a zoom is not to outlive the edit
const layout = (name) => structuredClone(LAYOUTS[name]);

function readBody() {
  const pair = (a, b) => [Number($(a).value), Number($(b).value)];
  return {
    flips: $("flips").value,
    pi_prior: pair("pi_a", "pi_b"),
    p_prior: pair("p_a", "p_b"),
    q_prior: pair("q_a", "q_b"),
    seed: Number($("seed").value),
    options: { n_starts: Number($("n_starts").value) },
  };
}

const live = LZ.createLive({ model: "three-coins", methods: METHODS, tables: ["exact", "em", "vb", "gibbs"],
  readBody, draw: drawOnce, errorBox: "error" });
const state = live.state;
state.emStep = null;      // null: show the whole path
window.explore = state;   // for the browser tests and for curious teachers
const requestRedraw = live.requestRedraw;

function drawOnce(what) {
  const waits = [];
  for (const method of METHODS) {
    if (!what.has(method)) continue;
    const status = { exact: "exact-status", em: "em-status", vb: "vb-status", gibbs: "gibbs-status", data: "stats" }[method];
    $(status).dataset.tag = state.results[method] ? state.results[method].tag : "";
    if (method === "data") drawStats();
    if (method === "em") drawEmTable();
    if (method === "vb") drawVbStatus();
    if (method === "gibbs") drawGibbsStatus();
    if (method === "exact") drawExactStatus();
  }
  if (what.has("table")) { drawSummary(); drawGibbsStatus(); }
  const panels = METHODS.some((method) => what.has(method));
  if (panels || what.has("plane")) waits.push(drawPlane());
  if (panels || what.has("marginals")) waits.push(drawCurves());
  if (panels) drawSummary();
  return Promise.all(waits);
}

function drawStats() {
  const d = state.results.data;
  if (!d) { $("stats").textContent = "–"; return; }
  const byHeads = Object.entries(d.trials_by_heads).filter(([, n]) => n > 0)
    .map(([h, n]) => `${n} trial(s) with ${h} head(s)`).join(", ");
  $("stats").innerHTML = "";
  $("stats").append(
    `${d.n_trials} trials of ${d.n_flips} flip(s); ${d.total_heads} heads; head rate `,
    Object.assign(document.createElement("b"), { id: "head-rate", textContent: fmt(d.head_rate, 4) }),
    `. ${byHeads}.`);
  $("stats").dataset.headRate = d.head_rate;
  $("stats").dataset.nTrials = d.n_trials;
  const L = d.limits;
  $("limits").textContent = `Bounds: at most ${L.trials} trials, ${L.flips_per_trial} flips per trial, ${L.total_flips} flips in all; `
    + `prior concentrations in (0, ${L.prior_max}]; ${L.n_starts} EM starts; Gibbs at most ${L.gibbs_chains} chains of ${L.gibbs_draws} draws.`;
}

function emRuns() {
  const em = state.results.em;
  if (!em) return [];
  return [["map", em.map], ["ml", em.ml]].filter(([, run]) => run && !run.error);
}

function drawEmTable() {
  const body = $("em-fixed").querySelector("tbody");
  body.innerHTML = "";
  const em = state.results.em;
  const status = $("em-status");
  if (!em) { status.textContent = ""; return; }
  const notes = [];
  for (const [label, run] of [["MAP", em.map], ["ML", em.ml]]) {
    if (!run) continue;
    if (run.error) { notes.push(`${label}: ${run.error}`); continue; }
    const fp = run.fixed_points;
    fp.p.forEach((_, i) => {
      const row = body.insertRow();
      row.className = "em-fixed-row";
      row.dataset.headsProb = run.heads_prob[i];
      row.dataset.kind = label;
      const pi = fp.pi ? fp.pi[i] : null;
      for (const text of [`${label} ${i + 1}`, fmt(pi), fmt(fp.p[i]), fmt(fp.q[i]), fmt(run.heads_prob[i], 5)]) row.insertCell().textContent = text;
    });
    notes.push(`${label}: best ${run.objective_name} ${fmt(run.objective, 4)}; paths end at fit's fixed points: ${run.paths_match}`);
  }
  if (em.ml_is_map) notes.push("uniform priors: MAP-EM is maximum likelihood");
  notes.push(`head rate ${fmt(em.head_rate, 4)}: with one flip per trial every fixed point lies on the ridge pi·p + (1−pi)·q = head rate`);
  status.textContent = notes.join("\n");
  const longest = Math.max(1, ...emRuns().flatMap(([, run]) => run.paths.map((path) => path.p.length - 1)));
  $("em-step").max = longest;
  if (state.emStep === null) $("em-step").value = longest;
  $("em-step-label").textContent = state.emStep === null ? "all" : `${state.emStep}`;
}

function drawExactStatus() {
  const e = state.results.exact;
  const s = $("exact-status");
  if (!e) { s.textContent = ""; return; }
  s.dataset.meanP = e.mean.p; s.dataset.sdP = e.sd.p;
  s.textContent = `exact: mean p ${fmt(e.mean.p)} (sd ${fmt(e.sd.p)}), mean q ${fmt(e.mean.q)} (sd ${fmt(e.sd.q)}); `
    + `log-evidence ${fmt(e.log_evidence, 4)}; ${e.n_components} mixture components`;
}

function drawVbStatus() {
  const v = state.results.vb;
  const s = $("vb-status");
  if (!v) { s.textContent = ""; return; }
  s.dataset.sdP = v.sd.p; s.dataset.meanP = v.mean.p;
  s.textContent = `VB (best of ${v.n_init} starts): mean p ${fmt(v.mean.p)} (sd ${fmt(v.sd.p)}); final ELBO ${fmt(v.elbo_final, 4)}; `
    + `exact log-evidence ${fmt(v.log_evidence, 4)}; gap = KL(q || posterior) = ${fmt(v.kl_gap, 4)}`;
}

function drawGibbsStatus() {
  const g = state.results.gibbs;
  const s = $("gibbs-status");
  if (!g) { s.textContent = ""; return; }
  const rows = state.tables.gibbs || [];
  const diag = rows.filter((r) => ["p", "q", "pi"].includes(r.parameter))
    .map((r) => `${r.parameter}: R-hat ${fmt(r.r_hat)}, ESS ${fmt(r.ess_bulk, 0)}`).join("; ");
  s.textContent = `${g.settings.chains} chains × ${g.settings.draws} draws (after ${g.settings.tune} burn-in); `
    + `label switches ${g.label_switches}; R-hat after ordering p ≥ q ${fmt(g.max_rhat_identified)}\n${diag}`;
  s.dataset.labelSwitches = g.label_switches;
}

function drawPlane() {
  const traces = [];
  const e = state.results.exact, v = state.results.vb, g = state.results.gibbs;
  if (e) traces.push({ type: "contour", x: e.grid, y: e.grid, z: e.density, name: "exact", showscale: false,
    colorscale: [[0, "rgba(255,255,255,0)"], [1, "rgba(60,60,60,0.9)"]], contours: { coloring: "lines" }, ncontours: 12, line: { width: 1 }, hoverinfo: "skip" });
  if (v && $("show-vb").checked) traces.push({ type: "contour", x: v.grid, y: v.grid, z: v.density, name: "VB", showscale: false,
    colorscale: [[0, COLORS.vb], [1, COLORS.vb]], contours: { coloring: "lines" }, ncontours: 6, line: { width: 1.5 }, hoverinfo: "skip" });
  if (g && $("show-gibbs").checked) traces.push({ type: "scatter", mode: "markers", x: g.scatter.p, y: g.scatter.q, name: "Gibbs",
    marker: { size: 3, color: COLORS.gibbs, opacity: 0.5 } });
  // every start's path in one trace (null between paths) and every end in another: two traces
  // per EM run instead of two per start, which plotly drew one by one (24 of 28 traces)
  for (const [label, run] of emRuns()) {
    const color = label === "map" ? COLORS.em : COLORS.ml;
    const lines = { x: [], y: [] }, ends = { x: [], y: [] };
    for (const path of run.paths) {
      const k = state.emStep === null ? path.p.length : Math.min(path.p.length, state.emStep + 1);
      lines.x.push(...path.p.slice(0, k), null); lines.y.push(...path.q.slice(0, k), null);
      ends.x.push(path.p[k - 1]); ends.y.push(path.q[k - 1]);
    }
    traces.push({ type: "scatter", mode: "lines", ...lines, showlegend: false, connectgaps: false,
      line: { color, width: 1 }, hoverinfo: "skip" });
    traces.push({ type: "scatter", mode: "markers", ...ends, name: label === "map" ? "EM (MAP)" : "EM (ML)",
      marker: { color, size: 7, symbol: state.emStep === null ? "circle" : "circle-open" } });
  }
  return plot("plane-plot", traces, layout("plane"));
}

// VB's ELBO per iteration, the Gibbs traces of p and the chosen parameter's marginals: one figure
// of three panels (x/y, x2/y2, x3/y3). As three plots, each redraw paid plotly's fixed work three
// times (defaults, a forced layout of the page, axes, hover set-up): most of their time.
function drawCurves() {
  const v = state.results.vb, g = state.results.gibbs;
  const traces = [];
  // lines without markers: a marker is an SVG node per iteration, half of the ELBO's drawing
  // time; hover still gives each iteration's value
  if (v) traces.push(
    { y: v.elbo, mode: "lines", name: "ELBO", line: { color: COLORS.vb } },
    { y: v.elbo.map(() => v.log_evidence), mode: "lines", name: "log p(x), exact", line: { color: COLORS.exact, dash: "dash" } });
  // the chains in plotly's first colours, as when they were a plot of their own
  if (g) g.traces.p.forEach((chain, c) => traces.push({ y: chain, mode: "lines", name: `chain ${c + 1}`,
    line: { width: 1, color: CHAIN_COLORS[c % CHAIN_COLORS.length] }, xaxis: "x2", yaxis: "y2" }));
  const name = $("marginal-param").value;
  const lines = [["exact", state.results.exact], ["vb", v], ["gibbs", g], ["nuts", state.jobs.nuts], ["advi", state.jobs.advi]];
  for (const [method, answer] of lines) {
    if (!answer || !answer.marginals[name]) continue;
    const m = answer.marginals[name];
    traces.push({ x: m.x, y: m.density, mode: "lines", name: method, xaxis: "x3", yaxis: "y3",
      line: { color: COLORS[method], shape: method === "exact" || method === "vb" ? "linear" : "hvh" } });
  }
  const shapes = [];
  for (const [label, run] of emRuns()) {
    if (run.best[name] === undefined) continue;
    shapes.push({ type: "line", xref: "x3", x0: run.best[name], x1: run.best[name], yref: "y3 domain", y0: 0, y1: 0.15,
      line: { color: label === "map" ? COLORS.em : COLORS.ml, width: 3 } });
  }
  const curves = layout("curves");
  curves.xaxis3.title = { text: name };
  return plot("curves-plot", traces, { ...curves, shapes });
}

// The comparison table is rebuilt only when its rows changed: an edit's panels arrive while the
// previous edit's rows are still the current ones (the new rows follow the plots), and rebuilding
// the same rows had the page laid out again at the start of plotly's redraw.
let shownRows = [];
const sameRows = (rows) => rows.length === shownRows.length && rows.every((r, i) => r === shownRows[i]);
function drawSummary() {
  const methods = ["exact", "em", "vb", "gibbs"];
  const rows = [...methods.map((m) => state.tables[m]), ...["nuts", "advi"].map((job) => state.jobs[job] && state.jobs[job].table)];
  if (sameRows(rows)) return;
  shownRows = rows;
  LZ.drawSummary("summary", state, methods, { withError: true });
}

function runJob(method) {
  live.runJob(method, "job-status", () => { requestRedraw("marginals"); requestRedraw("table"); });
}

// -- wiring -----------------------------------------------------------------------------------
for (const id of ["flips", "pi_a", "pi_b", "p_a", "p_b", "q_a", "q_b", "seed", "n_starts"]) $(id).addEventListener("input", live.schedule);
$("file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  if (file.size > 20000) { live.showError("data", `the file holds ${file.size} bytes; at most 20000 are read`); return; }
  $("flips").value = await file.text();
  live.schedule();
});
$("em-step").addEventListener("input", () => { state.emStep = Number($("em-step").value); drawEmTable(); requestRedraw("plane"); });
$("em-step-button").addEventListener("click", () => {
  const max = Number($("em-step").max);
  state.emStep = state.emStep === null || state.emStep >= max ? 0 : state.emStep + 1;
  $("em-step").value = state.emStep;
  drawEmTable(); requestRedraw("plane");
});
$("show-gibbs").addEventListener("change", () => requestRedraw("plane"));
$("show-vb").addEventListener("change", () => requestRedraw("plane"));
$("marginal-param").addEventListener("change", () => requestRedraw("marginals"));
$("run-nuts").addEventListener("click", () => runJob("nuts"));
$("run-advi").addEventListener("click", () => runJob("advi"));
LZ.register("three-coins", live.update);
})();
