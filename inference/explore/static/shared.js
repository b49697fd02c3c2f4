// latentzoo explore: what every view shares. Coalesced edits, tagged requests, dropping stale
// answers, error display, one drawing pass at a time, the view switcher and the timings the
// latency benchmark reads. No statistics are computed here: each view only draws the server's
// answers (latentzoo's back-ends).
"use strict";

const LZ = (() => {
  const $ = (id) => document.getElementById(id);
  const fmt = (x, digits = 3) => (x === null || x === undefined || Number.isNaN(x)) ? "–" : Number(x).toFixed(digits);
  const views = {};       // model name -> {start, live}
  let active = null;
  // edit-to-redraw times (ms), measured with performance.now from the (first unanswered) edit:
  // timings[model] until every panel and table of that edit is drawn, timings[model + "/panels"]
  // until every panel (the plots) is; read by the slow browser test and the benchmark
  const timings = {};
  const record = (key, ms) => (timings[key] = timings[key] || []).push(ms);
  window.latentzooTimings = timings;

  async function post(url, body, signal) {
    const response = await fetch(url, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal,
    });
    const answer = await response.json();
    if (!response.ok) {
      const error = new Error(answer.error ? answer.error.message : `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return answer;
  }

  // The page's own account of whether a view shows its latest edit: data-busy="1" on the view's
  // container from a keystroke until every panel and table of that edit has been answered and
  // drawn, then data-busy="0" and data-shown-tag = that edit's tag. <body> mirrors the active
  // view. Tests (and impatient teachers) wait on it.
  function mirror() {
    if (!active) return;
    const source = $(`view-${active}`).dataset;
    document.body.dataset.busy = source.busy || "1";
    document.body.dataset.shownTag = source.shownTag || "";
  }

  /**
   * The live machinery of one view.
   * options: model (the API's name), methods (panels asked on every edit), tables (the panels
   * whose table rows are asked after they are drawn), readBody() (the editor as a request body),
   * draw(what: Set) -> Promise (draws the named panels), errorBox (element id).
   */
  function createLive(options) {
    // tables: each panel's table rows; tableAnswers: the whole table answer (Gibbs's R-hat comes with it)
    // waiting: an edit has been made that no request carries yet
    const state = { tag: 0, results: {}, tables: {}, tableAnswers: {}, inflight: {}, tableInflight: {}, open: 0,
                    waiting: false, jobs: {} };
    const container = $(`view-${options.model}`);
    const tables = new Set(options.tables || []);
    let queued = false;     // an update is queued as a microtask
    let drawing = null;
    let editedAt = null;     // when the edit now being answered was made (null: none pending)
    let panelsTimed = false;  // its panels-drawn time is recorded
    let pendingTables = null;  // the body whose tables are asked once its plots are drawn
    let fullArrived = false;   // the edit's full answer came, and no pass has drawn it yet
    const dirty = new Set();

    function settle() {
      const idle = !state.waiting && state.open === 0 && !drawing;
      container.dataset.busy = idle ? "0" : "1";
      if (idle) {
        container.dataset.shownTag = String(state.tag);
        if (editedAt !== null) {
          const elapsed = performance.now() - editedAt;
          if (!panelsTimed) record(`${options.model}/panels`, elapsed);
          record(options.model, elapsed);
          editedAt = null;
        }
      }
      if (active === options.model) mirror();
    }

    function showError(method, message) {
      const box = $(options.errorBox);
      box.dataset[method] = message || "";
      const messages = [...new Set(options.methods.map((m) => box.dataset[m]).filter(Boolean))];
      box.textContent = messages.join("\n");
    }

    // Edits are coalesced, not delayed: an edit made while no edit request is in flight is sent
    // at once (once the input's handlers have returned, so that one change makes one request); edits
    // made while one is in flight are noted, and the newest is sent when that answer comes back
    // (which is then stale: dropped, not drawn). The server thus computes at most one superseded
    // edit per burst of keystrokes, and a lone edit waits for nothing. (A timed debounce, 40 then
    // 20 ms, added its whole wait to every redraw: benchmarks/explore_latency.py --breakdown.)
    function schedule() {
      if (editedAt === null) editedAt = performance.now();
      state.waiting = true;
      settle();
      if (state.inflight.edit || queued) return;  // sent by sendNewest, or by the queued microtask
      // a microtask, not a timer: it runs as soon as the input's handlers return, before the
      // browser lays out and paints the edited field (a 273-line text area: 5-7 ms sooner)
      queued = true;
      queueMicrotask(() => { queued = false; if (state.waiting && !state.inflight.edit) update(); });
    }

    // the answer in flight is back (or failed): true when a newer edit waits, which is then sent
    function sendNewest() {
      state.inflight.edit = null;
      if (!state.waiting) return false;
      update();
      return true;
    }

    // A panel (or the whole edit) failed: its answer and table go, its message is shown.
    function fail(method, message) {
      delete state.results[method];
      delete state.tables[method];
      delete state.tableAnswers[method];
      showError(method, message);
      dirty.add(method);
    }

    // One request per edit: the server validates the body once and answers every panel from it
    // (POST /api/{model}/edit). Asking for each panel separately queued the requests behind each
    // other on the server's one interpreter (benchmarks/explore_latency.py --breakdown).
    function update() {
      const tag = ++state.tag;
      let body;
      try {
        body = { ...options.readBody(), tag };
      } catch (error) {  // the editor cannot be read as a request (the view says why)
        state.waiting = false;
        for (const method of options.methods) fail(method, error.message);
        requestRedraw(options.methods[0]);
        settle();
        return;
      }
      state.waiting = false;
      state.open = 1;  // answers to older edits no longer count
      state.panelsOpen = 1;
      pendingTables = null;
      fullArrived = false;
      panelsTimed = false;
      settle();
      // the older edit's requests are aborted: the server drops a request whose page has gone
      // before computing it
      if (state.inflight.edit) state.inflight.edit.abort();
      if (state.tableInflight.all) state.tableInflight.all.abort();
      const controller = new AbortController();
      state.inflight.edit = controller;
      const answered = () => {
        if (tag !== state.tag) return;
        state.open -= 1; state.panelsOpen -= 1;
        settle();
      };
      const receive = (answer) => {
        for (const [method, panel] of Object.entries(answer.panels)) {
          if (panel.error) { fail(method, panel.error.message); continue; }
          state.results[method] = panel;
          showError(method, "");
          dirty.add(method);
        }
      };
      const failed = (error) => {
        if (error.name === "AbortError" || tag !== state.tag) return;
        if (sendNewest()) return;
        for (const method of options.methods) fail(method, error.message);
        state.panelsOpen = 0;
        requestRedraw(options.methods[0]);
        answered();
      };
      const full = (answer) => {
        if (answer.tag !== state.tag) return;  // a newer edit's request is on its way
        if (sendNewest()) return;  // a newer edit waited for this answer: stale, not drawn
        receive(answer);
        // the tables are asked once the plots are drawn (drawPending): computed meanwhile, they
        // took the CPU from the page's drawing on a busy 2-core machine and delayed the plots
        if (tables.size) { state.open += 1; pendingTables = body; }
        fullArrived = true;
        state.panelsOpen = 0;
        requestRedraw(options.methods[0]);
        answered();
      };
      post(`/api/${options.model}/edit`, body, controller.signal).then(full).catch(failed);
    }

    function fetchTables(body) {  // counted in state.open when it was planned
      const answered = () => { if (body.tag === state.tag) { state.open -= 1; settle(); } };
      if (state.tableInflight.all) state.tableInflight.all.abort();
      const controller = new AbortController();
      state.tableInflight.all = controller;
      post(`/api/${options.model}/tables`, body, controller.signal).then((answer) => {
        if (answer.tag !== state.tag) return;
        for (const method of tables) {
          const table = answer.tables[method];
          if (!table || !state.results[method]) continue;  // no panel, no row
          if (table.error) { showError(method, table.error.message); continue; }
          state.tables[method] = table.table;
          state.tableAnswers[method] = table;
        }
        requestRedraw("table");
        answered();
      }).catch((error) => {
        if (error.name === "AbortError" || body.tag !== state.tag) return;
        for (const method of tables) showError(method, error.message);
        answered();
      });
    }

    // An edit's panels arrive together; its tables a little later. Drawing each as it lands
    // would start a second Plotly.react on a plot while the first is still running (plotly then
    // reads a half-built figure and throws). Instead, what changed is noted and drawn in one
    // pass; a pass waits for plotly, and whatever arrived meanwhile is drawn in the next. A
    // drawing error is logged, never mistaken for a failed request.
    function requestRedraw(what) {
      dirty.add(what);
      if (!drawing) {
        drawing = new Promise((resolve) => setTimeout(resolve, 0)).then(drawPending);
        settle();
      }
    }

    async function drawPending() {
      while (dirty.size) {
        const what = new Set(dirty);
        dirty.clear();
        const full = fullArrived;  // this pass draws the edit's full answer
        fullArrived = false;
        try {
          await options.draw(what);
        } catch (error) {
          console.error(`latentzoo explore (${options.model}): drawing failed:`, error);
        }
        // the edit's plots are drawn once such a pass ends (the tables, drawn in a later pass,
        // are timed in settle)
        if (!full) continue;
        if (editedAt !== null && !panelsTimed && !state.waiting) {
          record(`${options.model}/panels`, performance.now() - editedAt);
          panelsTimed = true;
        }
        if (pendingTables) {
          const body = pendingTables;
          pendingTables = null;
          if (body.tag === state.tag) fetchTables(body);
        }
      }
      drawing = null;
      settle();
    }

    async function runJob(method, statusId, onDone) {
      const status = $(statusId);
      const button = $(`${options.model}-run-${method}`) || $(`run-${method}`);
      if (button) button.disabled = true;
      status.classList.remove("failed");
      try {
        const started = await post(`/api/${options.model}/jobs/${method}`, options.readBody());
        status.textContent = `${method}: queued`;
        for (;;) {
          await new Promise((resolve) => setTimeout(resolve, 500));
          const job = await (await fetch(`/api/jobs/${started.id}`)).json();
          status.textContent = `${method}: ${job.state} (${job.stage}), ${fmt(job.elapsed_s, 1)} s`;
          if (job.state === "done") { state.jobs[method] = job.result; onDone(method); break; }
          if (job.state === "error") { status.textContent = `${method} failed: ${job.error.message}`; status.classList.add("failed"); break; }
        }
      } catch (error) {
        status.textContent = `${method}: ${error.message}`;
      } finally {
        if (button) button.disabled = false;
      }
    }

    return { state, schedule, update, requestRedraw, showError, runJob, settle };
  }

  // Plotly.react cannot turn a figure with contours into one without (it reads the old z): a plot
  // whose list of trace types changed is drawn afresh (purge, newPlot), and an emptied one is
  // purged, so the next figure is new too. Any other plot, contours included, is updated with
  // react: on the three-coin plane it took 50-60 ms where newPlot took 250-300 ms (a busy 2-core
  // machine), most of an edit's redraw. Should react fail, the plot is drawn afresh.
  function plot(id, traces, layout) {
    const element = $(id);
    if (traces.length === 0) { Plotly.purge(id); delete element.dataset.shape; return Promise.resolve(); }
    const shape = traces.map((trace) => trace.type || "scatter").join(",");
    const afresh = () => { element.dataset.shape = shape; Plotly.purge(id); return Plotly.newPlot(id, traces, layout); };
    if (element.dataset.shape !== shape) return afresh();
    return Promise.resolve().then(() => Plotly.react(id, traces, layout)).catch((error) => {
      console.warn(`latentzoo explore: redrawing ${id} afresh after react failed:`, error);
      return afresh();
    });
  }

  function register(model, start) { views[model] = { start, started: false }; }

  // The view switcher: the tab in the URL's hash (#three-coins, #gaussian-mixture, #dice-hmm);
  // a view starts (asks for its first answers) the first time it is shown, so that plotly lays
  // out plots in a visible container.
  function route() {
    const wanted = location.hash.slice(1);
    const model = views[wanted] ? wanted : "three-coins";
    active = model;
    for (const name of Object.keys(views)) {
      $(`view-${name}`).hidden = name !== model;
      const tab = document.querySelector(`#tabs a[href="#${name}"]`);
      if (tab) tab.classList.toggle("active", name === model);
    }
    document.body.dataset.view = model;
    if (!views[model].started) { views[model].started = true; views[model].start(); }
    mirror();
    window.dispatchEvent(new Event("resize"));  // plots drawn while hidden take their width now
  }
  window.addEventListener("hashchange", route);
  document.addEventListener("DOMContentLoaded", route);

  // The comparison table of a view: one row per parameter of each fit (and of each finished
  // background job), the rows the server computed; the coins add the error in exact sds.
  function drawSummary(tableId, state, methods, { withError = false, keep = () => true } = {}) {
    const body = $(tableId).querySelector("tbody");
    body.innerHTML = "";
    const sources = methods.map((m) => [m, state.tables[m]]);
    for (const job of ["nuts", "advi"]) if (state.jobs[job]) sources.push([job + " (job)", state.jobs[job].table]);
    for (const [method, rows] of sources) {
      for (const r of (rows || []).filter(keep)) {
        const row = body.insertRow();
        row.dataset.method = method; row.dataset.parameter = r.parameter;
        const hdi = r["hdi_3%"] === null ? "–" : `${fmt(r["hdi_3%"])} – ${fmt(r["hdi_97%"])}`;
        const error = withError ? [fmt(r.error_in_exact_sd, 2)] : [];
        for (const text of [method, r.parameter, fmt(r.mean), fmt(r.sd), hdi, ...error, fmt(r.r_hat), fmt(r.ess_bulk, 0), fmt(r.time_s, 3)]) {
          row.insertCell().textContent = text;
        }
      }
    }
  }

  return { $, fmt, post, plot, createLive, register, drawSummary, timings };
})();
