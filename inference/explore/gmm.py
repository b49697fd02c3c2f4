"""The Gaussian-mixture view of ``latentzoo explore``: a 2-D ``GaussianMixture`` with K = 1..5
components on points the user clicks or types.

Every number comes from the library: the fits from :func:`latentzoo.inference.registry.run_backend`
(``em``, ``vb``, ``gibbs``; ``nuts`` and ``advi`` as background jobs), the table rows from the
comparison's ``comparison_table`` on ``fit``'s DataTree, the VB moments from the conjugate factor's
own ``mean``. What is computed here is presentation only: the 2-sd ellipse of a covariance (its
eigen-decomposition) and the count of label switches between consecutive Gibbs draws.

A request (the page's JSON body)::

    {"points": "3.6, 79\\n1.8, 54\\n...", "n_components": 2, "seed": 0, "options": {"n_starts": 5}}

``points`` is text (one ``x, y`` row per line; commas, spaces or tabs between) or a list of
``[x, y]`` pairs; it goes through ``GaussianMixture.check_data``. Bounds: :data:`LIMITS`.
"""

from __future__ import annotations

import itertools
import numbers
import re
import time

import numpy as np

from ...models import MODELS, datasets
from ...models.core.conjugate import NormalInverseWishart
from .common import (RecentFits, answer_every_panel, check_fields, check_options, check_seed,
                     int_option, pymc_job_options, quiet_run, request_key, sampler_table, table_rows,
                     to_json)

__all__ = ["LIMITS", "DEFAULTS", "METHODS", "JOB_METHODS", "parse_request", "run_method", "run_table", "run_job",
           "warm_up", "parse_points"]

#: the bounds every request is held to (stated on the page and in docs/user-guide/explore.md)
LIMITS = {
    "points": 300,
    "text_chars": 20_000,
    "n_components": 5,
    "abs_coordinate": 1e6,
    "seed_max": 2**31 - 1,
    "n_starts": 20,
    "em_max_iter": 500,
    "vb_max_iter": 500,
    "gibbs_chains": 4,
    "gibbs_draws": 1_000,
    "gibbs_tune": 500,
    "nuts_draws": 2_000,
    "nuts_chains": 4,
    "advi_iterations": 50_000,
}

#: the live view's budget (an edit redraws within about 100 ms on 272 points; see
#: benchmarks/explore_latency.py); a request may ask for more, up to LIMITS
DEFAULTS = {
    "n_starts": 5,
    "em_max_iter": 200,
    # VB from random soft assignments, twice: the back-end's default first start is a round of
    # short EM runs, which cost 150 ms here against 30 ms (the same ELBO on Old Faithful)
    "vb_init": "random",
    "vb_n_init": 2,
    "vb_max_iter": 200,
    "vb_draws": 200,
    "gibbs_chains": 2,
    # each chain starts at its own k-means++ draw (not the back-end's default, EM's answer, whose
    # short EM runs cost more than the sweeps here): label switching then shows too. 2 x 30
    # sweeps: the back-end's own R-hat check (relabelling the draws with xarray) costs about as
    # much as the sweeps on 272 points, so fewer sweeps buy less than they seem
    "gibbs_draws": 25,
    "gibbs_tune": 5,
    "nuts_draws": 500,
    "nuts_tune": 500,
    "nuts_chains": 2,
    "advi_iterations": 10_000,
}

METHODS = ("data", "em", "vb", "gibbs")
TABLE_METHODS = ("em", "vb", "gibbs")
#: how the panels split between the server's worker processes (:mod:`.lanes`). Measured on Old
#: Faithful's 272 points, K = 2: data + em + vb 30 ms, gibbs 25 ms.
LANES = (("data", "em", "vb"), ("gibbs",))
JOB_METHODS = ("nuts", "advi")
#: the data sets the seed-data buttons load (library functions; no request names a file)
DATASETS = {"old_faithful": datasets.old_faithful,
            "blobs": lambda: datasets.blobs(n_samples=150, centers=3, random_seed=0)[0]}
ELLIPSE_POINTS = 49
MAX_SCATTER = 1_000
#: the page's first request (Old Faithful, as the library ships it, K = 2)
PAGE_DEFAULT = {"points": None, "n_components": 2, "seed": 0, "options": {}}

RECENT_FITS = RecentFits()


class Request:
    """A validated request: the model, the data, the seed and the options of one edit."""

    def __init__(self, model, data, seed: int, options: dict, key: str):
        self.model, self.data, self.seed, self.options, self.key = model, data, seed, options, key


def parse_points(text: str) -> list[list[float]]:
    """Rows ``x, y`` (commas, spaces, tabs or semicolons between; blank lines and ``#`` comments
    skipped) as a list of pairs.

    Raises
    ------
    ValueError
        Naming the line that is not two numbers.
    """
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [field for field in re.split(r"[,;\s]+", line) if field]
        if len(fields) != 2:
            raise ValueError(f"points, line {number}: {line!r} is not two numbers x, y")
        try:
            rows.append([float(fields[0]), float(fields[1])])
        except ValueError:
            raise ValueError(f"points, line {number}: {line!r} is not two numbers x, y") from None
    return rows


def _points_text(x: np.ndarray) -> str:
    return "\n".join(f"{a:g}, {b:g}" for a, b in x)


def parse_request(body) -> Request:
    """Validate a request body: the points through ``GaussianMixture.check_data``, K through the
    model's constructor, then the bounds.

    Raises
    ------
    ValueError, TypeError
        With the library's message, or one naming the field that is out of bounds.
    """
    check_fields(body, {"points", "n_components", "seed", "options", "tag", "panels", "dataset"})
    points = body.get("points")
    if points is None:
        points = DATASETS["old_faithful"]()
    elif isinstance(points, str):
        if len(points) > LIMITS["text_chars"]:
            raise ValueError(f"points hold {len(points)} characters; at most {LIMITS['text_chars']} are accepted")
        points = parse_points(points)
    elif not isinstance(points, list):
        raise TypeError(f"points must be text (x, y rows) or a list of [x, y] pairs, got {type(points).__name__}")
    if len(points) > LIMITS["points"]:
        raise ValueError(f"{len(points)} points; the page accepts at most {LIMITS['points']}")
    K = body.get("n_components", 2)
    if isinstance(K, bool) or not isinstance(K, numbers.Integral) or not 1 <= K <= LIMITS["n_components"]:
        raise ValueError(f"n_components must be an integer in [1, {LIMITS['n_components']}], got {K!r}")
    seed = check_seed(body, LIMITS["seed_max"])
    options = check_options(body, DEFAULTS)
    # by its registered name: inference reaches model classes through the registry only
    model = MODELS["gmm"](n_components=int(K))
    data = model.check_data(points)
    if data.x.shape[1] != 2:
        raise ValueError(f"the page draws 2-D points; got {data.x.shape[1]} coordinates per point")
    if np.abs(data.x).max() > LIMITS["abs_coordinate"]:
        raise ValueError(f"coordinates must lie within ±{LIMITS['abs_coordinate']:g}")
    return Request(model, data, seed, options, request_key(body))


def _option(request: Request, key: str, low: int, high_key: str | None = None) -> int:
    return int_option(request.options, key, low, LIMITS[high_key or key], DEFAULTS)


def _em_options(request: Request) -> dict:
    return {"n_init": _option(request, "n_starts", 1), "max_iter": _option(request, "em_max_iter", 1),
            "tol": 1e-8, "progressbar": False}


def _vb_options(request: Request) -> dict:
    return {"init": DEFAULTS["vb_init"], "n_init": DEFAULTS["vb_n_init"], "max_iter": _option(request, "vb_max_iter", 1),
            "draws": DEFAULTS["vb_draws"], "progressbar": False}


def _gibbs_options(request: Request) -> dict:
    return {"chains": _option(request, "gibbs_chains", 1), "draws": _option(request, "gibbs_draws", 10),
            "tune": _option(request, "gibbs_tune", 0), "init": "kmeans++", "progressbar": False,
            # R-hat after relabelling (half of the run on 272 points) is computed by the table
            # request, after the plots are drawn
            "check_mixing": False}


OPTIONS = {"em": _em_options, "vb": _vb_options, "gibbs": _gibbs_options}


def _run(request: Request, backend: str):
    return quiet_run(RECENT_FITS, request, backend, **OPTIONS[backend](request))


def ellipse(mean, cov, n_sd: float = 2.0) -> dict:
    """The ``n_sd`` contour of N(mean, cov): ``{"x": [...], "y": [...]}``, a closed curve."""
    values, vectors = np.linalg.eigh(np.asarray(cov, float))
    angle = np.linspace(0, 2 * np.pi, ELLIPSE_POINTS)
    circle = np.stack([np.cos(angle), np.sin(angle)])
    curve = np.asarray(mean, float)[:, None] + n_sd * (vectors * np.sqrt(np.clip(values, 0, None))) @ circle
    return {"x": curve[0], "y": curve[1]}


def _components(weights, means, covs) -> list[dict]:
    return [{"weight": float(weights[k]), "mean": np.asarray(means[k], float), "cov": np.asarray(covs[k], float),
             "ellipse": ellipse(means[k], covs[k])} for k in range(len(weights))]


def count_label_switches(means: np.ndarray, scale: np.ndarray) -> int:
    """Draws at which the labels of the component means change: between consecutive draws of a
    chain, the permutation of the labels that moves the means least (in units of ``scale`` per
    axis) is not the identity. ``means``: (chain, draw, K, D)."""
    K = means.shape[2]
    if K == 1 or means.shape[1] < 2:
        return 0
    z = means / scale
    permutations = np.array(list(itertools.permutations(range(K))))
    before, after = z[:, :-1], z[:, 1:]
    # cost[c, t, p]: squared distance when label k at t+1 is called permutation[p][k] at t
    cost = np.stack([((after[:, :, perm] - before) ** 2).sum(axis=(-1, -2)) for perm in permutations], axis=-1)
    return int(np.sum(np.argmin(cost, axis=-1) != 0))  # permutation 0 is the identity


# -- the panels ----------------------------------------------------------------------------
def data_view(request: Request) -> dict:
    x = request.data.x
    return {"method": "data", "n_points": int(x.shape[0]), "n_components": request.model.n_components,
            "x": x[:, 0], "y": x[:, 1], "limits": LIMITS, "model": repr(request.model)}


def em_view(request: Request) -> dict:
    """EM from several starts: where each ended (weights, means, 2-sd ellipses), its objective
    per iteration, and the best."""
    run, messages = _run(request, "em")
    history, raw = run.raw.history, run.raw
    best = int(raw.attrs.get("best_restart", 0))
    starts = [{"components": _components(history["final_weights"][i], history["final_means"][i], history["final_covs"][i]),
               "objective": np.asarray(history["log_posterior"][i], float)}
              for i in range(len(history["final_weights"]))]
    for start in starts:
        start["objective"] = start["objective"][np.isfinite(start["objective"])]
    draws = {name: np.asarray(value)[0, 0] for name, value in raw.draws.items()}
    return {"method": "em", "starts": starts, "best_restart": best,
            "best": _components(draws["weights"], draws["means"], draws["covs"]),
            "objective": float(raw.record.objective), "objective_name": str(raw.record.objective_name),
            "warnings": messages}


def vb_view(request: Request) -> dict:
    """Mean-field VB: q's expected weights, means and covariances (its NIW factor's ``mean``),
    their 2-sd ellipses, and the ELBO per iteration."""
    run, messages = _run(request, "vb")
    variational = run.raw.variational
    niw = NormalInverseWishart(*(np.asarray(variational[f"means_covs_{p}"][0], float) for p in ("m", "kappa", "nu", "S")))
    mean_mu, mean_sigma = niw.mean()
    concentration = np.asarray(variational["weights_concentration"][0], float)
    weights = concentration / concentration.sum()  # the Dirichlet factor's mean
    history = np.asarray(run.raw.history["elbo"], float)
    best = int(run.raw.attrs.get("best_restart", 0))
    elbo = history[best] if history.ndim == 2 else history
    elbo = elbo[np.isfinite(elbo)]
    return {"method": "vb", "components": _components(weights, mean_mu, mean_sigma), "elbo": elbo,
            "elbo_final": float(elbo[-1]), "warnings": messages}


def gibbs_view(request: Request) -> dict:
    """Gibbs draws of the component means, by label (so that label switching shows), and the
    count of switches. R-hat (the back-end's, after relabelling) comes with the table."""
    run, messages = _run(request, "gibbs")
    means = np.asarray(run.raw.draws["means"], float)  # (chain, draw, K, 2)
    scale = request.data.x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    K = means.shape[2]
    by_label = []
    for k in range(K):
        points = means[:, :, k, :].reshape(-1, 2)
        if points.shape[0] > MAX_SCATTER:
            points = points[np.linspace(0, points.shape[0] - 1, MAX_SCATTER).astype(int)]
        by_label.append({"label": k, "x": points[:, 0], "y": points[:, 1]})
    return {"method": "gibbs", "draws_by_label": by_label,
            "label_switches": count_label_switches(means, scale),
            "settings": {key: run.raw.attrs[key] for key in ("chains", "draws", "tune") if key in run.raw.attrs},
            "warnings": messages}


def dataset_view(request_body) -> dict:
    """A library data set as the points' text (the seed-data buttons)."""
    name = request_body.get("dataset") if isinstance(request_body, dict) else None
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
    x = np.asarray(DATASETS[name](), float)
    return {"method": "dataset", "dataset": name, "points": _points_text(x), "n_points": int(x.shape[0])}


VIEWS = {"data": data_view, "em": em_view, "vb": vb_view, "gibbs": gibbs_view}


def run_method(method: str, body) -> dict:
    """Answer one panel's request (``method`` in :data:`METHODS`, or ``dataset``).

    Returns
    -------
    dict, JSON-ready, with ``method``, ``tag`` (echoed) and ``elapsed_ms``.
    """
    start = time.perf_counter()
    if method == "dataset":
        answer = dataset_view(body)
    elif method in VIEWS:
        answer = VIEWS[method](parse_request(body))
    else:
        raise ValueError(f"unknown method {method!r}; valid: {list(VIEWS)} and 'dataset' (jobs {list(JOB_METHODS)})")
    answer["tag"] = body.get("tag")
    answer["elapsed_ms"] = 1000 * (time.perf_counter() - start)
    return to_json(answer)


def run_table(method: str, body) -> dict:
    """The comparison-table rows of one panel's (cached) fit: mean, sd, 94% HDI, R-hat, ESS, time;
    for Gibbs also ``max_rhat``, the back-end's R-hat after relabelling (as ``fit`` reports it)."""
    if method not in TABLE_METHODS:
        raise ValueError(f"no table for {method!r}; valid: {list(TABLE_METHODS)}")
    start = time.perf_counter()
    request = parse_request(body)
    run, messages = _run(request, method)
    return sampler_table(RECENT_FITS, request, method, run, messages, body, start)


def run_job(method: str, body, progress=None) -> dict:
    """NUTS or ADVI on the marginalised PyMC model (a background job); ``progress(fraction,
    message)`` is told the stage."""
    if method not in JOB_METHODS:
        raise ValueError(f"unknown job {method!r}; valid: {list(JOB_METHODS)}")
    request = parse_request(body)
    if progress is not None:
        progress(0.05, "building and compiling the PyMC model")
    options = pymc_job_options(method, lambda *key: _option(request, *key), advi_draws=500)
    run, messages = quiet_run(RECENT_FITS, request, method, **options)
    means = np.asarray(run.raw.draws["means"], float)
    K = means.shape[2]
    posterior_mean = {name: np.asarray(value, float).mean(axis=(0, 1)) for name, value in run.raw.draws.items()}
    answer = {"method": method, "components": _components(posterior_mean["weights"], posterior_mean["means"],
                                                           posterior_mean["covs"]),
              "draws_by_label": [{"label": k, "x": means[:, :, k, 0].reshape(-1)[:MAX_SCATTER],
                                  "y": means[:, :, k, 1].reshape(-1)[:MAX_SCATTER]} for k in range(K)],
              "table": table_rows(RECENT_FITS, request.model, method, run), "warnings": messages,
              "tag": body.get("tag")}
    return to_json(answer)


def warm_up() -> float:
    """Answer every panel and table once on the page's first data (Old Faithful, K = 2), so that
    the first edit does not pay for compiling and importing; return the seconds spent."""
    start = time.perf_counter()
    answer_every_panel(METHODS, TABLE_METHODS, run_method, run_table, PAGE_DEFAULT)
    run_method("dataset", {"dataset": "old_faithful"})
    return time.perf_counter() - start
