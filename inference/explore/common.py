"""What the views of ``latentzoo explore`` share: JSON conversion, the cache of recent fits, the
bounded integer options, the library's fits with their warnings collected, and the comparison
table's rows. Each view (:mod:`.coins`, :mod:`.gmm`, :mod:`.dice`) builds its panels from these.
"""

from __future__ import annotations

import json
import math
import numbers
import threading
import time
import warnings
from collections import OrderedDict

import numpy as np

from ..comparison.metrics import comparison_table
from ..registry import run_backend

__all__ = ["RecentFits", "to_json", "int_option", "quiet_run", "idata_of", "table_rows", "request_key", "max_rhat",
           "TABLE_FIELDS", "answer_edit", "answer_tables", "wanted_panels", "EDIT_FIELDS"]

TABLE_FIELDS = ("parameter", "mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk")


class RecentFits:
    """The last few results by key (request, back-end, options): a panel's table is computed in
    a second request (so that the plots redraw first) from the same fit, and several tabs
    showing the same data share it. Thread-safe; bounded."""

    def __init__(self, size: int = 64):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value):
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


def to_json(value):
    """NumPy values as JSON-ready Python values, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return to_json(value.astype(object).tolist())
        return value.tolist()  # fast path: whole arrays, no per-element Python recursion
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


#: body fields that say how an edit is answered, not what it is: left out of the cache key
EDIT_FIELDS = ("tag", "panels")


def request_key(body: dict) -> str:
    """The body without its tag (nor ``panels``), as a cache key: two tabs with the same edit
    share fits, and an edit asked for panel by panel reuses its exact posterior and EM fits."""
    return json.dumps({k: v for k, v in body.items() if k not in EDIT_FIELDS}, sort_keys=True)


def int_option(options: dict, key: str, low: int, high: int, defaults: dict) -> int:
    """``options[key]`` (or ``defaults[key]``), an integer in [low, high]; ValueError naming it."""
    value = options.get(key, defaults[key])
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"options.{key} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"options.{key} must lie in [{low}, {high}], got {value}")
    return int(value)


def check_seed(body: dict, high: int) -> int:
    seed = body.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= high:
        raise ValueError(f"seed must be an integer in [0, {high}], got {seed!r}")
    return int(seed)


def check_fields(body, allowed: set) -> None:
    """A request body must be a JSON object with no field outside ``allowed``."""
    if not isinstance(body, dict):
        raise TypeError(f"the request must be a JSON object, got {type(body).__name__}")
    unknown = set(body) - set(allowed)
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")


def check_options(body: dict, defaults: dict) -> dict:
    """The request's ``options`` object (empty when absent); TypeError when it is not an object,
    ValueError naming any option the view does not have (``defaults`` lists them)."""
    options = body.get("options", {}) or {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be an object, got {type(options).__name__}")
    unknown = set(options) - set(defaults)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(defaults)}")
    return options


def pymc_job_options(method: str, option, advi_draws: int) -> dict:
    """The options of a background ``nuts`` or ``advi`` job; ``option(key, low, high_key=None)``
    reads one bounded integer option of the view's request."""
    if method == "nuts":
        return {"chains": option("nuts_chains", 1), "draws": option("nuts_draws", 10),
                "tune": option("nuts_tune", 10, "nuts_draws"), "progressbar": False}
    return {"n_steps": option("advi_iterations", 100), "draws": advi_draws, "progressbar": False}


def sampler_table(cache: RecentFits, request, method: str, run, messages: list, body: dict, start: float) -> dict:
    """A table request's answer (JSON-ready) from a panel's run (None when the method could not
    run: no rows); for ``gibbs`` also ``max_rhat`` (:func:`max_rhat`), computed here once."""
    rows = [] if run is None else table_rows(cache, request.model, method, run)
    extra = {}
    if method == "gibbs" and run is not None:
        extra["max_rhat"], checked = max_rhat(request.model, run, rows)
        messages = messages + checked
    return to_json({"method": method, "table": rows, **extra, "tag": body.get("tag"), "warnings": messages,
                    "elapsed_ms": 1000 * (time.perf_counter() - start)})


def _panel_error(method: str, error: BaseException) -> dict:
    return {"method": method, "error": {"type": type(error).__name__, "message": str(error)}}


def wanted_panels(view, body) -> list[str]:
    """The panels a request asks for: its ``panels`` (a list of the view's ``METHODS``), or all
    of them, in the view's order. TypeError for a body that is not an object, ValueError for
    a bad list."""
    if not isinstance(body, dict):
        raise TypeError(f"the request must be a JSON object, got {type(body).__name__}")
    wanted = body.get("panels", list(view.METHODS))
    if not isinstance(wanted, list) or not all(isinstance(m, str) for m in wanted) or not set(wanted) <= set(view.METHODS):
        raise ValueError(f"panels must be a list of the view's panels {list(view.METHODS)}, got {wanted!r}")
    return [method for method in view.METHODS if method in wanted]


def answer_edit(view, body) -> dict:
    """Every panel of one edit in one answer: the body validated once (``parse_request``, which
    raises on bad input: the whole edit is refused), then each panel built from that one request
    object, so that the fits and the exact posterior the panels share are computed once (the
    view's cache of recent fits holds them). Before, the page asked for each panel in its own
    request; those queued behind each other on one interpreter, each validating the body again.

    Parameters
    ----------
    view : module
        A view (:mod:`.coins`, :mod:`.gmm`, :mod:`.dice`): its ``parse_request``, its panels
        ``METHODS`` in the order to compute them, and ``VIEWS`` (method -> function of the request).
    body : dict
        The page's request; its optional ``panels`` (a list) names the panels to answer (all
        by default).

    Returns
    -------
    dict, JSON-ready
        ``{"tag", "elapsed_ms", "panels": {method: answer}}``; each answer is what the panel's own
        request (``POST /api/{model}/{method}``) gives, or ``{"method", "error": {"type",
        "message"}}`` when that panel alone failed with a ValueError or TypeError.
    """
    start = time.perf_counter()
    wanted = wanted_panels(view, body)
    request = view.parse_request(body)
    answers = {}
    for method in wanted:
        began = time.perf_counter()
        try:
            answer = view.VIEWS[method](request)
        except (ValueError, TypeError) as error:
            answer = _panel_error(method, error)
        answer["tag"] = body.get("tag")
        answer["elapsed_ms"] = 1000 * (time.perf_counter() - began)
        answers[method] = to_json(answer)
    return {"tag": body.get("tag"), "panels": answers, "elapsed_ms": 1000 * (time.perf_counter() - start)}


def answer_tables(view, body) -> dict:
    """Every table of a view (its ``TABLE_METHODS``, or those of them the body's ``panels`` names)
    in one answer: ``{"tag", "elapsed_ms", "tables": {method: view.run_table(method, body)}}``.
    Bad input raises (``parse_request`` first: the whole answer is refused, as for
    :func:`answer_edit`); a table that fails alone (ValueError, TypeError) holds
    ``{"method", "error"}``. The page asks for it once the panels have been drawn."""
    start = time.perf_counter()
    wanted = set(wanted_panels(view, body))
    view.parse_request(body)
    tables = {}
    for method in (m for m in view.TABLE_METHODS if m in wanted):
        try:
            tables[method] = view.run_table(method, body)
        except (ValueError, TypeError) as error:
            tables[method] = to_json(_panel_error(method, error))
    return {"tag": body.get("tag"), "tables": tables,
            "elapsed_ms": 1000 * (time.perf_counter() - start)}


def answer_every_panel(methods, table_methods, run_method, run_table, body: dict) -> float:
    """Answer every panel (and its table) once on ``body``, as a view's ``warm_up`` does, so that
    the first edit of the page does not pay for importing and compiling; the seconds spent."""
    start = time.perf_counter()
    for method in methods:
        run_method(method, dict(body))
        if method in table_methods:
            run_table(method, dict(body))
    return time.perf_counter() - start


def quiet_run(cache: RecentFits, request, backend: str, **options):
    """``run_backend`` (``fit`` before its DataTree is built) with its warnings collected (shown
    on the page) rather than printed; kept in ``cache`` under the request, the back-end and the
    options. ``request`` has ``model``, ``data``, ``seed`` and ``key``. Returns
    ``(BackendRun, warning messages)``."""
    key = (request.key, backend, json.dumps(options, sort_keys=True))
    cached = cache.get(key)
    if cached is not None:
        return cached
    # the messages are the ones ``run_backend`` records in ``raw.record.warnings``; it re-issues
    # them, and they are silenced here so that the server's terminal stays quiet. (Python's
    # warning filters are process-wide: while two panels fit at once in two threads, a warning
    # can be filed under the other panel's fit; the numbers are not affected.)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_backend(request.model, request.data, backend=backend, random_seed=request.seed, **options)
    messages = list(run.raw.record.warnings)
    cache.put(key, (run, messages))
    return run, messages


def idata_of(cache: RecentFits, run):
    """``fit``'s DataTree for a cached run (built once: several tables may ask)."""
    key = ("idata", id(run))
    cached = cache.get(key)
    if cached is None or cached[0] is not run:
        cached = (run, run.to_idata())
        cache.put(key, cached)
    return cached[1]


def table_rows(cache: RecentFits, model, backend: str, run, reference: dict | None = None) -> list[dict]:
    """The comparison table's rows for ``backend`` (the rows ``latentzoo fit --json`` prints),
    with the run's time and, given a ``reference`` (``{"mean": ..., "sd": ...}`` per parameter),
    the error of the mean in reference sds."""
    # the page shows no tail ESS (TABLE_FIELDS): not computed
    table = comparison_table(model, {backend: idata_of(cache, run)}, tail_ess=False)
    rows = []
    for record in table.to_dict(orient="records"):
        row = {field: record[field] for field in TABLE_FIELDS}
        name = row["parameter"]
        if reference is not None and name in reference["mean"] and reference["sd"][name] > 0:
            row["error_in_exact_sd"] = (row["mean"] - reference["mean"][name]) / reference["sd"][name]
        else:
            row["error_in_exact_sd"] = math.nan
        row["time_s"] = float(run.raw.record.runtime_s)
        rows.append(row)
    return rows


def max_rhat(model, run, rows: list[dict]) -> tuple[float, list[str]]:
    """The largest R-hat across the chains of a sampler run with ``check_mixing=False``: the
    number ``fit`` reports as ``attrs["max_rhat"]`` (the back-end's mixing check), computed once,
    after the plots, for the table request.

    A model whose draws the check relabels first (exchangeable components, an identification
    rule) goes through the check itself, :func:`latentzoo.inference.diagnostics.check_mixing`;
    for any other model the check's R-hat is the table's (ArviZ's rank-normalised R-hat of each
    parameter), so the rows are reused rather than computed twice.

    Parameters
    ----------
    model : latentzoo model
    run : BackendRun
        Draws of shape (chain, draw, ...).
    rows : list of dict
        :func:`table_rows` of that run.

    Returns
    -------
    max_rhat : float
        NaN with one chain.
    messages : list of str
        The check's warning (chains that disagree), as the page shows warnings.
    """
    from ...models.core.protocols import IdentificationRule
    from ..diagnostics import check_mixing

    draws = run.raw.draws
    chains = next(iter(draws.values())).shape[0]
    if chains < 2:
        return math.nan, []
    if isinstance(model, IdentificationRule) or model.label_dim is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, diagnostics = check_mixing(draws, "gibbs", model=model)
        return diagnostics["max_rhat"], [str(w.message) for w in caught]
    names = set(model.param_names)
    values = [row["r_hat"] for row in rows if row["parameter"].split("[", 1)[0] in names]
    values = [value for value in values if not math.isnan(value)]
    return (max(values) if values else math.nan), []
