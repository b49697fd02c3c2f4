"""The three-coin view of ``latentzoo explore``: what each panel of the page shows, as JSON.

Every number comes from the library: the exact posterior from
:meth:`ThreeCoins.exact_posterior <latentzoo.models.coins.three_coins.ThreeCoins.exact_posterior>`,
the fits from :func:`latentzoo.inference.registry.run_backend` (``em``, ``vb``, ``gibbs``,
``exact``, ``nuts``, ``advi``: what :func:`latentzoo.inference.fit` runs, before the DataTree is
built), the table rows from the comparison's own ``comparison_table`` on ``fit``'s DataTree (the
rows ``latentzoo fit --json`` prints). The page only draws them. A panel is answered from the
back-end's raw result; the DataTree, which costs more than a hand-written back-end's run on
seed-sized data, is built only for the table, which the page asks for after drawing. The one loop run here rather than inside ``fit`` is
EM's path from each start (``fit`` keeps where each restart ended, not the way there): it chains
the model's own E-step and M-step hooks, and the end of every path is checked against the fixed
point ``fit`` returns for the same start (``paths_match`` in the answer).

A request is a dict (the page's JSON body)::

    {"flips": "1111110000", "pi_prior": [1, 1], "p_prior": [1, 1], "q_prior": [1, 1],
     "seed": 0, "options": {"n_starts": 12, ...}}

Bounds (:data:`LIMITS`) keep every request to a fraction of a second for the hand-written
back-ends; a request beyond them is refused with a ValueError naming the field.
"""

from __future__ import annotations

import math
import numbers
import time

import numpy as np
from ...models import MODELS
from ...models.core.base import LatentModel
from ...models.core.conjugate import Beta, apply_to_factors
from ..backends.ascent import ascend
from ..registry import seed_from
from .common import (RecentFits, answer_every_panel, check_fields, check_options, check_seed,
                     int_option, pymc_job_options, quiet_run, request_key, table_rows, to_json)

__all__ = ["LIMITS", "METHODS", "JOB_METHODS", "parse_request", "run_method", "run_table", "run_job", "warm_up"]

#: the bounds every request is held to (stated on the page and in docs/user-guide/explore.md)
LIMITS = {
    "text_chars": 20_000,  # characters of the flips' text
    "trials": 200,  # trials (lines, or flips of a one-flip-per-trial line)
    "flips_per_trial": 50,
    "total_flips": 2_000,
    "prior_max": 1_000.0,  # every Beta concentration in (0, 1000]
    "seed_max": 2**31 - 1,
    "n_starts": 50,  # EM starts
    "em_max_iter": 500,
    "vb_max_iter": 500,
    "gibbs_chains": 8,
    "gibbs_draws": 2_000,
    "gibbs_tune": 1_000,
    "nuts_draws": 2_000,
    "nuts_chains": 4,
    "advi_iterations": 50_000,
}

#: what each hand-written method runs with unless the request says otherwise: the interactive
#: budget (an edit redraws within about 100 ms; see benchmarks/explore_latency.py)
DEFAULTS = {
    "n_starts": 12,
    "em_max_iter": 200,
    "vb_n_init": 2,
    "vb_max_iter": 200,
    "gibbs_chains": 4,
    # 4 x (10 + 80) sweeps: the chains start near EM's best point, so a short burn-in does; the
    # page states the counts beside R-hat and ESS, and a request may ask for up to LIMITS
    "gibbs_draws": 80,
    "gibbs_tune": 10,
    "exact_draws": 1_000,
    "nuts_draws": 500,
    "nuts_tune": 500,
    "nuts_chains": 2,
    "advi_iterations": 10_000,
}

#: the request the page sends before any edit (its editor's defaults; see static/index.html)
PAGE_DEFAULT = {"flips": "1111110000", "pi_prior": [1, 1], "p_prior": [1, 1], "q_prior": [1, 1], "seed": 0,
                "options": {"n_starts": 12}}

#: the fast methods (answered in the request) and the slow ones (background jobs)
METHODS = ("data", "exact", "em", "vb", "gibbs")
TABLE_METHODS = ("exact", "em", "vb", "gibbs")
#: how the panels split between the server's worker processes (:mod:`.lanes`). VB reports its gap
#: to the exact log-evidence, so its lane computes the exact posterior too (2 ms at 100 flips; the
#: exact panel's density grids are the other 6). Measured at 100 flips, in-process: data + exact +
#: gibbs 20-21 ms, em + vb 22 ms (data + exact + vb against em + gibbs was 24 and 16).
LANES = (("data", "exact", "gibbs"), ("em", "vb"))
JOB_METHODS = ("nuts", "advi")

GRID_SIZE = 61  # points per axis of the (p, q) contour grids
#: the grid avoids 0 and 1, where a Beta density with a concentration below one is infinite
GRID = np.linspace(0.005, 0.995, GRID_SIZE)
MAX_SCATTER = 1_000  # draws shown as points per method (thinned evenly beyond that)
HIST_BINS = 40


class Request:
    """A validated request: the model, the data and the options of one edit; ``key`` identifies
    it (the body without its tag) for the cache of recent fits."""

    def __init__(self, model: LatentModel, data, seed: int, options: dict, key: str = ""):
        self.model, self.data, self.seed, self.options, self.key = model, data, seed, options, key


RECENT_FITS = RecentFits()


def _pair(value, name: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"{name} must be a pair [alpha, beta] of positive numbers, got {value!r}")
    pair = []
    for entry in value:
        if isinstance(entry, bool) or not isinstance(entry, numbers.Real) or not math.isfinite(entry):
            raise ValueError(f"{name} must hold two finite numbers, got {value!r}")
        if not 0 < entry <= LIMITS["prior_max"]:
            raise ValueError(f"{name} concentrations must lie in (0, {LIMITS['prior_max']:g}], got {entry!r}")
        pair.append(float(entry))
    return pair[0], pair[1]


def _int_option(options: dict, key: str, low: int, high: int) -> int:
    return int_option(options, key, low, high, DEFAULTS)


def parse_request(body) -> Request:
    """Validate a request body: the flips through ``ThreeCoins.check_data``, the priors through
    the model's constructor, then the size bounds.

    Raises
    ------
    ValueError, TypeError
        With the library's message, or one naming the field that is out of bounds.
    """
    check_fields(body, {"flips", "pi_prior", "p_prior", "q_prior", "seed", "options", "tag", "panels"})
    flips = body.get("flips", "")
    if not isinstance(flips, str):
        raise TypeError(f"flips must be text such as '1111110000', got {type(flips).__name__}")
    if len(flips) > LIMITS["text_chars"]:
        raise ValueError(f"flips holds {len(flips)} characters; at most {LIMITS['text_chars']} are accepted")
    priors = {name: _pair(body.get(name, [1, 1]), name) for name in ("pi_prior", "p_prior", "q_prior")}
    seed = check_seed(body, LIMITS["seed_max"])
    options = check_options(body, DEFAULTS)
    # by its registered name, as `latentzoo explore three-coins` names it: inference reaches model
    # classes through the registry only (tests/test_model_declarations.py)
    model = MODELS["three-coins"](**priors)
    data = model.check_data(flips)
    if data.n_trials > LIMITS["trials"]:
        raise ValueError(f"{data.n_trials} trials; the page accepts at most {LIMITS['trials']}")
    if data.n_flips > LIMITS["flips_per_trial"]:
        raise ValueError(f"{data.n_flips} flips per trial; the page accepts at most {LIMITS['flips_per_trial']}")
    if data.n_trials * data.n_flips > LIMITS["total_flips"]:
        raise ValueError(f"{data.n_trials * data.n_flips} flips in all; the page accepts at most {LIMITS['total_flips']}")
    return Request(model, data, int(seed), options, request_key(body))


# -- helpers --------------------------------------------------------------------------------
_json = to_json  # the name the server and older callers use


def _quiet_run(request: Request, backend: str, **options):
    """:func:`.common.quiet_run` with this view's cache of recent fits."""
    return quiet_run(RECENT_FITS, request, backend, **options)


def _exact_posterior(request: Request):
    """The exact posterior, shared by every panel of one edit (each reports errors against it)."""
    key = ("exact-posterior", request.key)
    posterior = RECENT_FITS.get(key)
    if posterior is None:
        posterior = request.model.exact_posterior(request.data)
        RECENT_FITS.put(key, posterior)
    return posterior


def _exact_moments(request: Request) -> dict:
    posterior = _exact_posterior(request)
    mean, sd = posterior.mean(), posterior.sd()
    return {"mean": {name: float(value) for name, value in mean.items()},
            "sd": {name: float(value) for name, value in sd.items()},
            "log_evidence": posterior.log_evidence}


def _table(request: Request, backend: str, run, reference: dict) -> list[dict]:
    """The comparison table's rows for ``backend``, with the error of the mean in exact
    posterior sds."""
    return table_rows(RECENT_FITS, request.model, backend, run, reference)


def _flat(run, name: str) -> np.ndarray:
    """The draws of ``name``, shape (chain, draw): what ``fit`` puts in its posterior group."""
    return np.asarray(run.raw.draws[name], float)


def _thin(values: np.ndarray) -> np.ndarray:
    values = values.reshape(-1)
    if values.size <= MAX_SCATTER:
        return values
    return values[np.linspace(0, values.size - 1, MAX_SCATTER).astype(int)]


def _histograms(run, names) -> dict:
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    out = {}
    for name in names:
        density, _ = np.histogram(_flat(run, name).reshape(-1), bins=edges, density=True)
        out[name] = {"x": centres, "density": density}
    return out


def _sampler_answer(request: Request, backend: str, run, messages, with_table: bool = False) -> dict:
    """What the page draws for a sampler (Gibbs, NUTS) or a sampled approximation (ADVI)."""
    names = list(request.model.param_names)
    p, q = _flat(run, "p"), _flat(run, "q")
    # a label switch: coin B becomes the less heads-prone one between consecutive draws of a chain
    switches = int(np.sum(np.diff(np.sign(p - q), axis=1) != 0)) if p.shape[1] > 1 else 0
    return {
        "method": backend,
        "scatter": {"p": _thin(p), "q": _thin(q)},
        "traces": {name: _flat(run, name) for name in names},
        "marginals": _histograms(run, names),
        "label_switches": switches,
        "max_rhat_identified": run.raw.attrs.get("max_rhat", math.nan),
        # the exact posterior only for a table's errors in exact sds: the Gibbs panel's worker
        # (:data:`LANES`) would otherwise compute it too
        "table": _table(request, backend, run, _exact_moments(request)) if with_table else None,
        "warnings": messages,
        "settings": {key: run.raw.attrs[key] for key in ("chains", "draws", "tune") if key in run.raw.attrs},
    }


# -- the panels ----------------------------------------------------------------------------
def data_summary(request: Request) -> dict:
    """The sufficient statistics the methods see: trials, flips per trial, heads per trial
    (counted by value) and the head rate."""
    data = request.data
    counts = np.bincount(data.heads, minlength=data.n_flips + 1)
    total_heads = int(data.heads.sum())
    return {
        "method": "data",
        "n_trials": data.n_trials,
        "n_flips": data.n_flips,
        "total_heads": total_heads,
        "head_rate": total_heads / (data.n_trials * data.n_flips),
        "trials_by_heads": {str(h): int(count) for h, count in enumerate(counts)},
        "limits": LIMITS,
        "model": repr(request.model),
    }


def _marginal_on_grid(factor: Beta, weights: np.ndarray) -> np.ndarray:
    """sum_g w_g Beta_g(x) at :data:`GRID`, one density per distinct (alpha, beta): pi's Beta
    depends only on how many trials each coin has, so 100 one-flip trials give about 2,600
    components but 101 distinct Betas (a third of the exact panel's time, computed 26 times over)."""
    pairs = np.stack(np.broadcast_arrays(factor.alpha, factor.beta), axis=-1).reshape(-1, 2)
    distinct, inverse = np.unique(pairs, axis=0, return_inverse=True)
    pdf = np.exp(Beta(distinct[:, 0], distinct[:, 1]).log_pdf(GRID[:, None]))  # (grid, distinct)
    return pdf @ np.bincount(inverse.reshape(-1), weights=weights, minlength=len(distinct))


def exact_view(request: Request) -> dict:
    """Contours of p(p, q | x) with pi summed out, the exact marginals, moments and log-evidence,
    and the exact back-end's table rows."""
    posterior = _exact_posterior(request)
    weights = posterior.weights
    # each component is a product of independent Betas, so pi integrates out and the density
    # on (p, q) is sum_g w_g Beta_g(p) Beta_g(q): two (grid, G) matrices and one product
    pdf = {name: np.exp(posterior.factors[name].log_pdf(GRID[:, None])) for name in ("p", "q")}
    density = (pdf["q"] * weights) @ pdf["p"].T  # rows: q, columns: p
    marginals = {name: {"x": GRID, "density": pdf[name] @ weights if name in pdf else _marginal_on_grid(factor, weights)}
                 for name, factor in posterior.factors.items()}
    reference = {"mean": {k: float(v) for k, v in posterior.mean().items()},
                 "sd": {k: float(v) for k, v in posterior.sd().items()}}
    return {
        "method": "exact",
        "grid": GRID,
        "density": density,
        "marginals": marginals,
        "mean": reference["mean"],
        "sd": reference["sd"],
        "log_evidence": posterior.log_evidence,
        "n_components": posterior.n_components,
        "warnings": [],
    }


def _em_options(request: Request, mle: bool) -> dict:
    """The ``em`` options of the panel (and of its table row)."""
    return {"init": "random", "n_init": _int_option(request.options, "n_starts", 1, LIMITS["n_starts"]),
            "max_iter": _int_option(request.options, "em_max_iter", 1, LIMITS["em_max_iter"]), "tol": 1e-8,
            "mle": mle, "progressbar": False}


def _vb_options(request: Request) -> dict:
    return {"n_init": DEFAULTS["vb_n_init"], "max_iter": _int_option(request.options, "vb_max_iter", 1, LIMITS["vb_max_iter"]),
            "draws": 1000, "progressbar": False}


def _gibbs_options(request: Request) -> dict:
    options = request.options
    return {"chains": _int_option(options, "gibbs_chains", 1, LIMITS["gibbs_chains"]),
            "draws": _int_option(options, "gibbs_draws", 10, LIMITS["gibbs_draws"]),
            "tune": _int_option(options, "gibbs_tune", 0, LIMITS["gibbs_tune"]), "progressbar": False}


def _table_run(request: Request, method: str):
    """The run behind a panel's table row: the panel's own (cached) fit. EM's row is MAP-EM, or
    ML where the priors leave no MAP."""
    if method == "exact":
        return _quiet_run(request, "exact", draws=DEFAULTS["exact_draws"])
    if method == "vb":
        return _quiet_run(request, "vb", **_vb_options(request))
    if method == "gibbs":
        return _quiet_run(request, "gibbs", **_gibbs_options(request))
    try:
        return _quiet_run(request, "em", **_em_options(request, False))
    except ValueError:  # the MAP does not exist under these priors: the ML fit is the row
        return _quiet_run(request, "em", **_em_options(request, True))


def _em_path(model, data, start: dict, mle: bool, max_iter: int, tol: float) -> list[dict]:
    """EM's iterates from ``start``: the model's E-step (``expected_stats``) and M-step (the mode
    of ``conditional_posterior``), the two hooks the ``em`` back-end chains, run by the back-end's
    own loop (:func:`~latentzoo.inference.backends.ascent.ascend`), which calls the step on every
    iterate it visits, so the path stops where ``fit`` stops. (A loop of its own here stopped one
    step later: the same point on one-flip data, where EM lands on the ridge at once, but 1e-4
    away after several flips per trial, and the page said the paths missed ``fit``'s points.)"""
    path = []

    def step(params):
        path.append(params)
        stats, log_lik = model.expected_stats(data, params)
        objective = log_lik if mle else log_lik + float(model.log_prior(params))
        return apply_to_factors(model.conditional_posterior(stats, mle=mle), "mode"), objective

    ascend(start, step, tol=tol, max_iter=max_iter, n_observations=model.objective_scale(data),
           round_off=float(model.objective_round_off(data)), objective_name="log-likelihood" if mle else "log-posterior")
    return path


def em_view(request: Request) -> dict:
    """EM from many random starts, MAP (under the priors) and ML: each start's path, where
    ``fit`` says each restart stopped, and the best of each."""
    model, data = request.model, request.data
    options = _em_options(request, False)
    n_starts, max_iter, tol = options["n_init"], options["max_iter"], options["tol"]
    answer = {"method": "em", "n_starts": n_starts, "head_rate": float(data.heads.sum() / (data.n_trials * data.n_flips))}
    names = list(model.param_names)
    warnings_seen = []
    # under uniform priors MAP-EM is maximum likelihood: one run serves both
    flat = all(np.all(prior.alpha == 1.0) and np.all(prior.beta == 1.0) for prior in model.prior().values())
    answer["ml_is_map"] = flat
    for label, mle in (("map", False),) if flat else (("map", False), ("ml", True)):
        try:
            run, messages = _quiet_run(request, "em", **_em_options(request, mle))
        except ValueError as error:  # MAP does not exist under priors below one: say so, show ML
            answer[label] = {"error": str(error)}
            continue
        warnings_seen += messages
        finals = {name: np.asarray(run.raw.history[f"final_{name}"], float) for name in names}
        # the starts fit used: its restarts draw from the children of the seed's generator
        children = np.random.default_rng(seed_from(request.seed)).spawn(n_starts)
        paths = [_em_path(model, data, model.initial_params(data, child, "random"), mle, max_iter, tol)
                 for child in children]
        ends = {name: np.array([float(path[-1][name]) for path in paths]) for name in names}
        gap = max(float(np.max(np.abs(ends[name] - finals[name]))) for name in names)
        best = {name: float(np.asarray(run.raw.draws[name]).reshape(-1)[0]) for name in names}
        answer[label] = {
            "paths": [{name: [float(step[name]) for step in path] for name in names} for path in paths],
            "fixed_points": finals,
            "heads_prob": finals["p"] * finals["pi"] + finals["q"] * (1 - finals["pi"]),
            "best": best,
            "objective": float(run.raw.record.objective),
            "objective_name": str(run.raw.record.objective_name),
            "paths_match": gap < 1e-6,
        }
    answer["warnings"] = warnings_seen
    return answer


def vb_view(request: Request) -> dict:
    """Mean-field VB: the contours of q(p) q(q), its marginals, the ELBO per iteration and the
    gap to the exact log-evidence (KL(q || posterior))."""
    model = request.model
    run, messages = _quiet_run(request, "vb", **_vb_options(request))
    variational = run.raw.variational
    factors = {name: Beta(float(variational[f"{name}_alpha"][0]), float(variational[f"{name}_beta"][0]))
               for name in model.param_names}
    pdf = {name: np.exp(factor.log_pdf(GRID)) for name, factor in factors.items()}
    history = np.asarray(run.raw.history["elbo"], float)
    best = int(run.raw.attrs.get("best_restart", 0))
    elbo = history[best] if history.ndim == 2 else history
    elbo = elbo[np.isfinite(elbo)]
    reference = _exact_moments(request)
    return {
        "method": "vb",
        "grid": GRID,
        "density": np.outer(pdf["q"], pdf["p"]),  # rows: q, columns: p
        "marginals": {name: {"x": GRID, "density": values} for name, values in pdf.items()},
        "mean": {name: float(factor.mean()) for name, factor in factors.items()},
        "sd": {name: float(np.sqrt(factor.var())) for name, factor in factors.items()},
        "elbo": elbo,
        "elbo_final": float(elbo[-1]),
        "log_evidence": reference["log_evidence"],
        # log p(x) = ELBO + KL(q || p(theta, z | x)): the gap is the KL of the best q
        "kl_gap": reference["log_evidence"] - float(elbo[-1]),
        "n_init": _vb_options(request)["n_init"],
        "warnings": messages,
    }


def gibbs_view(request: Request) -> dict:
    """Blocked Gibbs: draws on (p, q), traces per chain, R-hat and ESS, label switches."""
    run, messages = _quiet_run(request, "gibbs", **_gibbs_options(request))
    return _sampler_answer(request, "gibbs", run, messages)


VIEWS = {"data": data_summary, "exact": exact_view, "em": em_view, "vb": vb_view, "gibbs": gibbs_view}


def run_method(method: str, body) -> dict:
    """Answer one panel's request: ``method`` is one of :data:`METHODS`.

    Returns
    -------
    dict, JSON-ready (NaN as None), with ``method``, ``tag`` (echoed) and ``elapsed_ms``.

    Raises
    ------
    ValueError, TypeError
        Bad input (the library's message, or the bound exceeded).
    """
    if method not in VIEWS:
        raise ValueError(f"unknown method {method!r}; valid: {list(VIEWS)} (and jobs {list(JOB_METHODS)})")
    start = time.perf_counter()
    request = parse_request(body)
    answer = VIEWS[method](request)
    answer["tag"] = body.get("tag")
    answer["elapsed_ms"] = 1000 * (time.perf_counter() - start)
    return _json(answer)


def run_table(method: str, body) -> dict:
    """The comparison-table rows of one panel's fit (mean, sd, 94% HDI, R-hat, ESS, error in exact
    posterior sds, time): asked for after the panel has been drawn, from the same (cached) fit.
    """
    if method not in VIEWS or method == "data":
        raise ValueError(f"no table for {method!r}; valid: {[m for m in VIEWS if m != 'data']}")
    start = time.perf_counter()
    request = parse_request(body)
    # the panel's fit, from the cache of recent fits (or again, if it was evicted)
    run, messages = _table_run(request, method)
    rows = _table(request, method, run, _exact_moments(request))
    return _json({"method": method, "table": rows, "tag": body.get("tag"), "warnings": messages,
                  "elapsed_ms": 1000 * (time.perf_counter() - start)})


def warm_up() -> float:
    """Answer every panel and table once on the seed's data; return the seconds spent.

    The first answer of a fresh process imports ArviZ, xarray and SciPy's special functions and
    fills NumPy's and the library's caches: seconds on a busy machine, which the first edit of
    the page would otherwise wait for. The answers stay in :data:`RECENT_FITS`, so a page opened
    on the seed's data is answered from there.
    """
    return answer_every_panel(METHODS, TABLE_METHODS, run_method, run_table, PAGE_DEFAULT)


def run_job(method: str, body, progress=None) -> dict:
    """NUTS or ADVI on the marginalised PyMC model (seconds to minutes: a background job).

    ``progress(fraction, message)``, when given, is told what stage the job is in.
    """
    if method not in JOB_METHODS:
        raise ValueError(f"unknown job {method!r}; valid: {list(JOB_METHODS)}")
    request = parse_request(body)
    if progress is not None:
        progress(0.05, "building and compiling the PyMC model")
    option = lambda key, low, high_key=None: _int_option(request.options, key, low, LIMITS[high_key or key])  # noqa: E731
    run, messages = _quiet_run(request, method, **pymc_job_options(method, option, advi_draws=1000))
    answer = _sampler_answer(request, method, run, messages, with_table=True)
    answer["tag"] = body.get("tag")
    return _json(answer)


def exact_marginal_density(request: Request, name: str, x) -> np.ndarray:
    """The exact marginal density of ``name`` at ``x`` (used by tests and the benchmark)."""
    posterior = request.model.exact_posterior(request.data)
    values = np.exp(posterior.factors[name].log_pdf(np.asarray(x, float)[:, None]))
    return values @ posterior.weights
