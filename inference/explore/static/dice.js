// latentzoo explore, dice HMM: the rolls and the seed go to the server; the smoothed state
// probabilities, emission probabilities and the Viterbi path (latentzoo's back-ends) are drawn.
"use strict";

(() => {
const METHODS = ["data", "exact", "em", "vb", "gibbs"];
const FITS = ["exact", "em", "vb", "gibbs"];
const STATE_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c"];
const DASH = { exact: "solid", em: "dash", vb: "dot", gibbs: "dashdot", nuts: "longdash", advi: "longdashdot" };
const { $, fmt, plot } = LZ;
const LAYOUT = { margin: { t: 20, r: 10 }, showlegend: false, xaxis: { title: { text: "roll" } },
  yaxis: { title: { text: "p(die | rolls)" }, range: [-0.02, 1.15] } };

function readBody() {
  return { rolls: $("dice-rolls").value, seed: Number($("dice-seed").value), options: { n_starts: Number($("dice-starts").value) } };
}

const live = LZ.createLive({ model: "dice-hmm", methods: METHODS, tables: FITS, readBody, draw: drawOnce, errorBox: "dice-error" });
const state = live.state;
(window.exploreViews = window.exploreViews || {})["dice-hmm"] = state;

function drawOnce(what) {
  for (const method of METHODS) {
    const id = method === "data" ? "dice-count" : `dice-${method}-status`;
    if (what.has(method)) $(id).dataset.tag = state.results[method] ? state.results[method].tag : "";
  }
  if (what.has("data")) { drawCount(); drawKey(); }
  drawStatus();
  drawEmissions();
  if (what.has("table") || METHODS.some((m) => what.has(m))) drawSummary();
  // the plot only when what it shows changed: a table's arrival redrew it for nothing (45-110 ms
  // each on a busy machine, three or four times per edit)
  if (what.has("states") || METHODS.some((m) => what.has(m))) return drawStates();
  return Promise.resolve();
}

function drawCount() {
  const d = state.results.data;
  const count = $("dice-count");
  if (!d) { count.textContent = "–"; count.dataset.nRolls = ""; return; }
  count.textContent = `${d.n_rolls} rolls; dice ${d.states.join(", ")}`;
  count.dataset.nRolls = d.n_rolls;
  const L = d.limits;
  $("dice-limits").textContent = `Bounds: at most ${L.rolls} rolls; ${L.n_starts} EM starts; Gibbs at most ${L.gibbs_chains} chains of ${L.gibbs_draws} draws; `
    + "the exact posterior enumerates the state paths that can emit the rolls (at most 2,000,000: about a dozen rolls).";
}

function fitted() {
  const answers = FITS.map((m) => [m, state.results[m]]).filter(([, a]) => a && a.available !== false);
  for (const job of ["nuts", "advi"]) if (state.jobs[job]) answers.push([job, state.jobs[job]]);
  return answers;
}

function drawStates() {
  const d = state.results.data;
  if (!d) return plot("dice-states-plot", [], {});
  const chosen = $("dice-method").value;
  const t = d.rolls.map((_, i) => i + 1);
  const traces = [];
  for (const [method, answer] of fitted()) {
    if (chosen !== "all" && chosen !== method) continue;
    d.states.forEach((label, k) => traces.push({
      type: "scatter", mode: "lines", x: t, y: answer.state_probs.map((row) => row[k]), name: `${label}, ${method}`,
      legendgroup: method, meta: { method, state: k },
      line: { color: STATE_COLORS[k % STATE_COLORS.length], dash: DASH[method], width: method === "exact" ? 3 : 1.5 },
    }));
  }
  const em = state.results.em;
  // the Viterbi path as one row of coloured cells above the curves: a heatmap is one image, where
  // a marker per roll was an SVG node each (200 of them); the dice's names in the cells only
  // where they can be read (at most 40 rolls, as the ticks)
  const labelled = t.length <= 40;
  if (em) {
    const names = em.viterbi.map((k) => d.states[k]);
    traces.push({ type: "heatmap", x: t, y: [1.03, 1.13], z: [em.viterbi], zmin: 0, zmax: STATE_COLORS.length - 1, showscale: false,
      colorscale: discreteScale(STATE_COLORS), name: "Viterbi (EM)", meta: { method: "viterbi" }, customdata: em.viterbi,
      text: [names], texttemplate: labelled ? "%{text}" : "", textfont: { size: 9, color: "#fff" },
      hovertemplate: "roll %{x}: %{text}<extra>Viterbi (EM)</extra>" });
  }
  const layout = structuredClone(LAYOUT);  // plotly writes its ranges (and a zoom) into it
  return plot("dice-states-plot", traces, { ...layout,
    xaxis: { ...layout.xaxis, tickvals: labelled ? t : undefined, ticktext: labelled ? d.rolls.map((r, i) => `${i + 1}: ${r}`) : undefined } });
}

// a colorscale giving integer z = k the k-th colour, flat between
function discreteScale(colors) {
  const n = colors.length;
  return colors.flatMap((color, k) => [[k / n, color], [(k + 1) / n, color]]);
}

// the key of the dice's colours and the methods' line styles, in the page (no plotly legend: it
// was laid out with its 13 entries on every redraw, a third of the plot's time)
function drawKey() {
  const d = state.results.data;
  const key = $("dice-key");
  key.innerHTML = "";
  if (!d) return;
  d.states.forEach((label, k) => {
    const swatch = Object.assign(document.createElement("span"), { className: "swatch", textContent: `■ ${label}` });
    swatch.style.color = STATE_COLORS[k % STATE_COLORS.length];
    key.append(swatch, " ");
  });
}

function drawStatus() {
  const e = state.results.exact, em = state.results.em, vb = state.results.vb, g = state.results.gibbs;
  $("dice-exact-status").textContent = !e ? "" : e.available
    ? `exact: averaged over ${e.draws} draws of the exact posterior; log-evidence ${fmt(e.log_evidence, 4)}`
    : `exact: not shown: ${e.reason}`;
  const viterbi = $("dice-em-status");
  if (em) {
    viterbi.dataset.viterbi = JSON.stringify(em.viterbi);
    viterbi.textContent = `EM (best of ${$("dice-starts").value} starts, at most ${em.max_iter} iterations): ${em.objective_name} ${fmt(em.objective, 4)}; Viterbi path log p(x, z*) = ${fmt(em.viterbi_log_prob, 4)}`;
  } else { viterbi.textContent = ""; delete viterbi.dataset.viterbi; }
  $("dice-vb-status").textContent = vb ? `VB: final ELBO ${fmt(vb.elbo[vb.elbo.length - 1], 4)} after ${vb.elbo.length} iterations` : "";
  $("dice-gibbs-status").textContent = g ? `Gibbs: ${g.settings.chains} chains × ${g.settings.draws} draws (after ${g.settings.tune} burn-in); max R-hat ${fmt(state.tableAnswers.gibbs ? state.tableAnswers.gibbs.max_rhat : null)}` : "";
}

function drawEmissions() {
  const d = state.results.data;
  const table = $("dice-emission-table");
  table.tHead.innerHTML = ""; table.tBodies[0].innerHTML = "";
  if (!d) return;
  const head = table.tHead.insertRow();
  for (const text of ["method", "die", ...d.faces.map((f) => `face ${f}`)]) head.appendChild(Object.assign(document.createElement("th"), { textContent: text }));
  for (const [method, answer] of fitted()) {
    d.states.forEach((label, k) => {
      const row = table.tBodies[0].insertRow();
      row.dataset.method = method; row.dataset.state = label;
      for (const text of [method, label, ...answer.emission_probs[k].map((p) => fmt(p))]) row.insertCell().textContent = text;
    });
  }
}

// The comparison table is rebuilt only when its rows changed: an edit's panels arrive while the
// previous edit's rows are still the current ones (the new rows follow the plots), and rebuilding
// the same rows had the page laid out again at the start of plotly's redraw.
let shownRows = [];
const sameRows = (rows) => rows.length === shownRows.length && rows.every((r, i) => r === shownRows[i]);
function drawSummary() {
  const rows = [...FITS.map((m) => state.tables[m]), ...["nuts", "advi"].map((job) => state.jobs[job] && state.jobs[job].table)];
  if (sameRows(rows)) return;
  shownRows = rows;
  // the faces a die does not have are zero in every fit: left out
  LZ.drawSummary("dice-summary", state, FITS, { keep: (r) => !(r.mean === 0 && !r.sd) });
}

for (const id of ["dice-rolls", "dice-seed", "dice-starts"]) $(id).addEventListener("input", live.schedule);
$("dice-method").addEventListener("change", () => live.requestRedraw("states"));
for (const job of ["nuts", "advi"]) {
  $(`dice-hmm-run-${job}`).addEventListener("click", () => live.runJob(job, "dice-job-status", () => { live.requestRedraw("states"); live.requestRedraw("table"); }));
}
LZ.register("dice-hmm", live.update);
})();
