"""Latency of ``latentzoo explore``: each view's panels through the HTTP API, and (``--browser``)
edit-to-redraw in a real browser; ``--breakdown`` says where the time goes.

API: each "edit" changes the data (and the seed), as typing does, so no answer is served from
the cache of recent fits. The time is from sending the request to having the parsed JSON,
in-process through Starlette's TestClient (the page adds plotly's redraw on top; the loopback
socket adds well under a millisecond). The server's start-up warm-up is skipped, and the first
two repeats of each panel are not counted. Besides each panel's own route (``data``, ``exact``,
...; ``table/gibbs`` after its panel), what the page asks: ``edit`` (every panel of the edit in
one request) and ``tables`` (every table, after the edit). Seed-sized data: the three coins on
10 and 100 flips; the Gaussian mixture on Old Faithful's 272 points (jittered by 0.01 per edit),
K = 2; the dice HMM on 10 and 200 random rolls, and its exact panel on 10 rolls of faces 1 to 4
(every die can show them: the most state paths).

Browser (``--browser``; Playwright driving the system's Chromium, as tests/test_explore_browser.py
does): each view is edited ``--browser-edits`` times (one ``fill`` per edit, or for the mixture's
text area a paste: one input event; waiting until the view says it shows it); the page records, with ``performance.now``, the time from the edit (the input
event) to the moment every panel of it is drawn (the plots; ``window.latentzooTimings[view +
"/panels"]``) and to the moment the comparison tables, asked for once the plots are drawn, are
drawn too (``[view]``).

``--lanes 0,2`` measures the server with each number of worker processes (:mod:`latentzoo.
inference.explore.lanes`; 0: the panels computed in the server's own process), one after the
other in the same run.

Breakdown (``--breakdown``): without ``--browser``, each panel's server time split into
validation, the back-end's fit, the DataTree and ``comparison_table`` (tables), the rest of the
panel, ``to_json`` and ``json.dumps``, with the answer's size (in this process, no workers);
with ``--browser``, each edit's timeline from the page (explore_breakdown.js, installed before
the page's scripts): the wait from the edit to its request, each request's server time (its
``elapsed_ms``) and the rest of its wait (queueing, transfer), and the time spent in plotly's
calls per plot. Results: docs/user-guide/explore.md.

Replay (``--replay``, with ``--browser``): the page's drawing without the server. The first two
edits of each view are answered by the server and their ``/edit`` and ``/tables`` answers kept;
every later edit is answered from those (alternately, with the request's tag), through Playwright's
request routing, so the figures are the page's own work and the routing's round trip
(20-30 ms here), whatever the server and its load do. The breakdown's "server" figures are then
the kept answers' own.

Usage::

    python benchmarks/explore_latency.py [--repeats 40] [--views three-coins,gaussian-mixture,dice-hmm]
        [--browser] [--no-api] [--breakdown] [--replay] [--lanes 0,2]

Prints one line per (view, data size, panel): median and p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import numpy as np

VIEWS = ("three-coins", "gaussian-mixture", "dice-hmm")
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def _edits(view: str, rng: np.random.Generator):
    """(label, methods, body factory) per data size of ``view``."""
    if view == "three-coins":
        for n in (10, 100):
            yield f"{n} flips", ("data", "exact", "em", "vb", "gibbs", "table/gibbs", "edit", "tables"), \
                lambda r, n=n: {"flips": "".join(rng.choice(["0", "1"], size=n)), "seed": r, "tag": r}
    elif view == "gaussian-mixture":
        from latentzoo.models import datasets

        x = datasets.old_faithful()
        yield f"{len(x)} points", ("data", "em", "vb", "gibbs", "table/gibbs", "edit", "tables"), \
            lambda r: {"points": (x + rng.normal(0, 0.01, x.shape)).tolist(), "n_components": 2, "seed": r, "tag": r}
    else:
        for n in (10, 200):
            yield f"{n} rolls", ("data", "exact", "em", "vb", "gibbs", "table/gibbs", "edit", "tables"), \
                lambda r, n=n: {"rolls": " ".join(map(str, rng.integers(1, 9, n))), "seed": r, "tag": r}
        # the exact panel's worst case: faces every die has, so all 3^10 state paths are enumerated
        yield "10 rolls 1-4", ("exact",), \
            lambda r: {"rolls": " ".join(map(str, rng.integers(1, 5, 10))), "seed": r, "tag": r}


def api(views, repeats: int, lanes: int | None = None) -> None:
    from starlette.testclient import TestClient

    from latentzoo.inference.explore.server import create_app

    rng = np.random.default_rng(0)
    lanes_label = "" if lanes is None else f" lanes={lanes}"
    with TestClient(create_app(allowed_hosts=("testserver",), warm_up=False, lanes=lanes)) as client:
        for view in views:
            for label, methods, body_of in _edits(view, rng):
                for method in methods:
                    times = []
                    for repeat in range(repeats + 2):
                        body = body_of(repeat)
                        if method.startswith("table/"):  # the panel first, as the page asks
                            client.post(f"/api/{view}/" + method.split("/")[1], json=body)
                        if method == "tables":  # the edit first, as the page asks
                            client.post(f"/api/{view}/edit", json=body)
                        start = time.perf_counter()
                        answer = client.post(f"/api/{view}/" + method, json=body)
                        answer.json()
                        times.append(1000 * (time.perf_counter() - start))
                        assert answer.status_code == 200, answer.text
                    times = np.array(times[2:])  # the first two warm the caches of NumPy, SciPy and the code
                    print(f"api{lanes_label} {view:17s} {label:11s} {method:12s} median {np.median(times):7.1f} ms   p95 "
                          f"{np.percentile(times, 95):7.1f} ms", flush=True)


#: installed before the page's own scripts by ``--breakdown``: records each edit (input event), each
#: fetch (start, headers, parsed JSON, the server's ``elapsed_ms``) and each plotly call (start, the
#: end of its synchronous part, its promise's resolution), all with ``performance.now``
BREAKDOWN_JS = Path(__file__).with_name("explore_breakdown.js")


def server_split(views, repeats: int) -> None:
    """Where a panel's server time goes: validation (``parse_request``), the back-end's fit
    (``run_backend``), the rest of the panel (presentation: EM paths, histograms, smoothing),
    JSON-ready conversion (``to_json``) and encoding (``json.dumps``, as Starlette does); for the
    tables also the DataTree (``to_idata``) and ``comparison_table``. Medians in ms, fresh data
    per repeat (no cached fit)."""
    import json
    from collections import defaultdict

    from latentzoo.inference.explore import coins, common, dice, gmm

    modules = {"three-coins": coins, "gaussian-mixture": gmm, "dice-hmm": dice}
    spent = defaultdict(float)

    def timed(owner, name, label):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += 1000 * (time.perf_counter() - start)
        setattr(owner, name, wrapper)
        return original

    rng = np.random.default_rng(2)
    timed(common, "run_backend", "fit")
    timed(common, "comparison_table", "comparison_table")
    from latentzoo.inference.registry import BackendRun
    timed(BackendRun, "to_idata", "datatree")
    for view in views:
        module = modules[view]
        timed(module, "parse_request", "validate")
        timed(module, "_json" if view == "three-coins" else "to_json", "to_json")
        for label, methods, body_of in _edits(view, rng):
            for method in methods:
                rows = defaultdict(list)
                for repeat in range(repeats + 2):
                    body = body_of(repeat)
                    if method.startswith("table/"):
                        module.run_method(method.split("/")[1], dict(body))
                    spent.clear()
                    start = time.perf_counter()
                    if method.startswith("table/"):
                        answer = module.run_table(method.split("/")[1], dict(body))
                    elif method in ("edit", "tables"):
                        if method == "tables":
                            common.answer_edit(module, dict(body))
                            spent.clear()
                            start = time.perf_counter()
                        answer = getattr(common, f"answer_{method}")(module, dict(body))
                    else:
                        answer = module.run_method(method, dict(body))
                    total = 1000 * (time.perf_counter() - start)
                    encode = time.perf_counter()
                    text = json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
                    spent["json.dumps"] = 1000 * (time.perf_counter() - encode)
                    spent["panel (rest)"] = total - sum(spent[k] for k in ("validate", "fit", "datatree", "comparison_table", "to_json"))
                    spent["kB"] = len(text) / 1000
                    for key, value in spent.items():
                        rows[key].append(value)
                    rows["total"].append(total + spent["json.dumps"])
                parts = "  ".join(f"{key} {np.median(values[2:]):.1f}" for key, values in rows.items())
                print(f"split {view:17s} {label:11s} {method:12s} {parts}", flush=True)


def _breakdown(log: dict, settle: float, view: str) -> dict:
    """One edit's timeline from the page's log: ms from the edit."""
    edit = log["edits"][-1]
    fetches = [f for f in log["fetches"] if f["start"] >= edit and "/api/" in f["url"] and "parsed" in f]
    out = {"edit to request": min(f["start"] for f in fetches) - edit if fetches else np.nan}
    for f in fetches:
        name = f["url"].split(f"/api/{view}/", 1)[1]
        out[f"{name}: answered at"] = f["parsed"] - edit
        out[f"{name}: server"] = f["elapsed_ms"] or 0.0
        out[f"{name}: waited+transfer"] = f["headers"] - f["start"] - (f["elapsed_ms"] or 0.0)
    calls = [c for c in log["plotly"] if c["start"] >= edit and "end" in c]
    out["plotly calls"] = len(calls)
    out["plotly busy (sync)"] = sum(c["sync"] - c["start"] for c in calls)
    out["plotly busy (to promise)"] = sum(c["end"] - c["start"] for c in calls)
    for call in calls:
        key = f"plotly {call['id']} (sync)"
        out[key] = out.get(key, 0.0) + call["sync"] - call["start"]
    out["first plotly call at"] = min((c["start"] for c in calls), default=np.nan) - edit
    out["settled at"] = settle
    return out


#: a paste into a field: its new value and one input event
PASTE = """([selector, text]) => {
  const field = document.querySelector(selector);
  field.value = text;
  field.dispatchEvent(new InputEvent("input", { bubbles: true, inputType: "insertFromPaste", data: text }));
}"""


def _replayer(page):
    """Route the page's ``/edit`` and ``/tables`` requests: to the server while ``replay["on"]`` is
    false (keeping each answer), then from the kept answers (the request's tag put in)."""
    import json

    kept, replay = {}, {"on": False}

    def handle(route, request):
        view, kind = request.url.split("/api/", 1)[1].split("/")[:2]
        tag = json.loads(request.post_data)["tag"]
        answers = kept.get((view, kind))
        if replay["on"] and answers:
            answer = dict(answers[tag % len(answers)], tag=tag)
            route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))
            return
        response = route.fetch()
        if response.status == 200:
            kept.setdefault((view, kind), []).append(response.json())
        route.fulfill(response=response)

    for kind in ("edit", "tables"):
        page.route(f"**/api/*/{kind}", handle)
    return replay


def browser(views, edits: int, breakdown: bool = False, replay: bool = False, lanes: int | None = None) -> None:
    import os

    import uvicorn
    from playwright.sync_api import sync_playwright

    from latentzoo.inference.explore.server import create_app, free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(lanes=lanes), host="127.0.0.1", port=port, log_level="warning"))
    label = "" if lanes is None else f" lanes={lanes}"
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    rng = np.random.default_rng(1)
    editors = {"three-coins": ("#flips", lambda: "".join(rng.choice(["0", "1"], size=100))),
               "gaussian-mixture": ("#gmm-points", None),
               "dice-hmm": ("#dice-rolls", lambda: " ".join(map(str, rng.integers(1, 9, 200))))}
    executable = next(path for path in CHROMIUM if os.access(path, os.X_OK))
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = chromium.new_page(viewport={"width": 1400, "height": 1300})
            if breakdown:
                page.add_init_script(path=str(BREAKDOWN_JS))
            replaying = _replayer(page) if replay else {"on": False}
            for view in views:
                replaying["on"] = False
                page.goto(f"http://127.0.0.1:{port}/#{view}")
                state = "window.explore" if view == "three-coins" else f"window.exploreViews['{view}']"
                wait = (f"() => {{ const s = {state}, c = document.getElementById('view-{view}').dataset;"
                        f" return s !== undefined && c.busy === '0' && Number(c.shownTag) === s.tag && s.tag > TAG; }}")
                page.wait_for_function(wait.replace("TAG", "0"), timeout=300_000)
                selector, text_of = editors[view]
                base = page.input_value(selector)
                lines = []
                for k in range(edits + 2):
                    replaying["on"] = replay and k >= 2  # the first two edits' answers are kept
                    tag = page.evaluate(f"() => {state}.tag")
                    if text_of is None:  # the GMM: Old Faithful with one point moved, as a click would
                        text = base + f"\n{3 + 0.01 * k:.2f}, {70 + k}"
                    else:
                        text = text_of()
                    if "\n" in text:
                        # as a paste does: one input event. Playwright's fill types a multi-line
                        # text into a text area with an input event per line in Chromium (700
                        # for Old Faithful), which no person does, and the page then computes
                        # the edit twice (one on the way when the later events come)
                        page.evaluate(PASTE, [selector, text])
                    else:
                        page.fill(selector, text)
                    page.wait_for_function(wait.replace("TAG", str(tag)), timeout=300_000)
                    if breakdown and k >= 2:
                        log = page.evaluate("() => window.__lzBreakdown")
                        settle = page.evaluate(f"() => window.latentzooTimings['{view}'].at(-1)")
                        lines.append(_breakdown(log, settle, view))
                        page.evaluate("() => { const l = window.__lzBreakdown; l.fetches.length = 0; l.plotly.length = 0; }")
                size = {"three-coins": "100 flips", "gaussian-mixture": "273 points", "dice-hmm": "200 rolls"}[view]
                for key, what in ((f"{view}/panels", "plots drawn"), (view, "plots and tables")):
                    times = np.array(page.evaluate(f"() => window.latentzooTimings['{key}']")[2:])
                    print(f"browser{label} {view:17s} {size:11s} edit to {what:16s}{' (replayed)' if replay else ''} median {np.median(times):7.1f} ms   p95 "
                          f"{np.percentile(times, 95):7.1f} ms   ({len(times)} edits)", flush=True)
                if breakdown:
                    keys = list(dict.fromkeys(key for line in lines for key in line))
                    for key in keys:
                        values = np.array([line.get(key, np.nan) for line in lines], float)
                        print(f"  breakdown{label} {view:17s} {key:40s} median {np.nanmedian(values):7.1f} ms", flush=True)
            chromium.close()
    finally:
        server.should_exit = True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--views", default=",".join(VIEWS))
    parser.add_argument("--browser", action="store_true", help="also measure edit-to-redraw in Chromium")
    parser.add_argument("--browser-edits", type=int, default=20)
    parser.add_argument("--no-api", action="store_true", help="skip the API measurement")
    parser.add_argument("--replay", action="store_true",
                        help="with --browser: answer every edit after the first two from their kept answers "
                             "(the page's drawing without the server)")
    parser.add_argument("--breakdown", action="store_true",
                        help="with --browser: each edit's timeline (edit to request, each request's server time and wait, "
                             "plotly's time); without: the server time of each panel split by stage")
    parser.add_argument("--lanes", default=None,
                        help="worker processes of the server, one count or several to compare side by side "
                             "(e.g. 0,2; 0: panels in the server's process); default: the server's default")
    args = parser.parse_args(argv)
    lane_counts = [None] if args.lanes is None else [int(count) for count in args.lanes.split(",")]
    views = [view.strip() for view in args.views.split(",") if view.strip()]
    unknown = set(views) - set(VIEWS)
    if unknown:
        parser.error(f"unknown view(s) {sorted(unknown)}; valid: {list(VIEWS)}")
    if args.breakdown and not args.browser:
        server_split(views, args.repeats)
        return 0
    for lanes in lane_counts:
        if not args.no_api:
            api(views, args.repeats, lanes)
    for lanes in lane_counts:
        if args.browser:
            browser(views, args.browser_edits, breakdown=args.breakdown, replay=args.replay, lanes=lanes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
