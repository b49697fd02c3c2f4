// installed before the page's scripts: record fetches, plotly calls and edits (performance.now)
(() => {
  const log = { edits: [], fetches: [], plotly: [] };
  window.__lzBreakdown = log;
  document.addEventListener("input", () => log.edits.push(performance.now()), true);
  const fetch0 = window.fetch.bind(window);
  window.fetch = async (url, init) => {
    const entry = { url: String(url), start: performance.now() };
    log.fetches.push(entry);
    const response = await fetch0(url, init);
    entry.headers = performance.now();
    const json0 = response.json.bind(response);
    response.json = async () => { const value = await json0(); entry.parsed = performance.now(); entry.elapsed_ms = value && value.elapsed_ms; entry.bytes = Number(response.headers.get("content-length")); return value; };
    return response;
  };
  let plotly;
  const wrap = (P) => {
    for (const name of ["react", "newPlot", "purge"]) {
      const f = P[name];
      P[name] = function (...args) {
        const entry = { name, id: typeof args[0] === "string" ? args[0] : (args[0] && args[0].id), start: performance.now() };
        log.plotly.push(entry);
        const out = f.apply(this, args);
        entry.sync = performance.now();
        return Promise.resolve(out).then((v) => { entry.end = performance.now(); return v; });
      };
    }
  };
  Object.defineProperty(window, "Plotly", { configurable: true, get: () => plotly, set: (P) => { plotly = P; wrap(P); } });
})();
