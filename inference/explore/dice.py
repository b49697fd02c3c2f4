"""The dice-HMM view of ``latentzoo explore``: the seed's game (``DiceHMM``: hidden dice with 6, 4
and 8 faces, a Markov chain over them, faces 1..8 seen) on rolls the user types.

Every number comes from the library: the fits from :func:`latentzoo.inference.registry.run_backend`
(``exact``, ``em``, ``vb``, ``gibbs``; ``nuts`` and ``advi`` as background jobs), the smoothed
state probabilities from the model's ``latent_posterior`` at each draw (what ``fit`` puts in its
posterior as ``state_probs``), averaged over the draws as ``fit``'s posterior mean is, the Viterbi
path from the model's ``viterbi`` at EM's estimate, and the table rows from ``comparison_table``
on ``fit``'s DataTree.

A request (the page's JSON body)::

    {"rolls": "1 6 3 5 2 7 3 5 2 4", "seed": 0, "options": {"n_starts": 5}}

``rolls`` is text (faces separated by spaces, commas or new lines) or a list of faces; it goes to
``DiceHMM.check_data`` as it is, so a bad roll is answered with the library's message. The
exact posterior enumerates the state paths that can emit the rolls; beyond the library's limit
the exact panel says so and the other methods still answer. Bounds: :data:`LIMITS`.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ...models import MODELS
from .common import (RecentFits, answer_every_panel, check_fields, check_options, check_seed,
                     int_option, pymc_job_options, quiet_run, request_key, sampler_table, table_rows,
                     to_json)

__all__ = ["LIMITS", "DEFAULTS", "METHODS", "JOB_METHODS", "parse_request", "run_method", "run_table", "run_job",
           "warm_up", "SEED_ROLLS"]

SEED_ROLLS = "1 6 3 5 2 7 3 5 2 4"

LIMITS = {
    "rolls": 200,
    "text_chars": 5_000,
    "seed_max": 2**31 - 1,
    "n_starts": 20,
    "em_max_iter": 500,
    "vb_max_iter": 500,
    "gibbs_chains": 4,
    "gibbs_draws": 1_000,
    "gibbs_tune": 500,
    "exact_draws": 2_000,
    "nuts_draws": 2_000,
    "nuts_chains": 4,
    "advi_iterations": 50_000,
}

#: the live view's budget (an edit redraws within about 100 ms on 200 rolls; see
#: benchmarks/explore_latency.py); a request may ask for more, up to LIMITS
DEFAULTS = {
    # on 200 random rolls EM creeps: 3 starts x 200 iterations cost 280 ms (a loaded machine),
    # 3 x 50 cost 75 ms and end within 0.05 nats of the 200-iteration objective; the page says
    # how many iterations ran
    "n_starts": 3,
    "em_max_iter": 50,
    # VB from random soft assignments: the back-end's default first start is a round of short EM
    # runs, 85 % of VB's time here (266 ms against 28 ms, the same ELBO on 200 rolls)
    "vb_init": "random",
    "vb_n_init": 1,
    "vb_max_iter": 200,
    "vb_draws": 100,
    # Gibbs from random draws (not after short EM runs: 340 ms against 70 ms); R-hat is shown
    "gibbs_init": "random",
    "gibbs_chains": 2,
    "gibbs_draws": 50,
    "gibbs_tune": 20,
    "exact_draws": 200,
    "nuts_draws": 500,
    "nuts_tune": 500,
    "nuts_chains": 2,
    "advi_iterations": 10_000,
}

METHODS = ("data", "exact", "em", "vb", "gibbs")
TABLE_METHODS = ("exact", "em", "vb", "gibbs")
#: how the panels split between the server's worker processes (:mod:`.lanes`). Measured on 200
#: rolls: data + exact + vb + gibbs 28 ms, em (with its Viterbi path) 23 ms; on 10 rolls 20 and 12 ms.
LANES = (("data", "exact", "vb", "gibbs"), ("em",))
JOB_METHODS = ("nuts", "advi")
PAGE_DEFAULT = {"rolls": SEED_ROLLS, "seed": 0, "options": {}}

RECENT_FITS = RecentFits()


class Request:
    """A validated request: the model, the data, the seed and the options of one edit."""

    def __init__(self, model, data, seed: int, options: dict, key: str):
        self.model, self.data, self.seed, self.options, self.key = model, data, seed, options, key


def parse_request(body) -> Request:
    """Validate a request body: the rolls through ``DiceHMM.check_data`` (the library's message
    for a face no die has), then the bounds.

    Raises
    ------
    ValueError, TypeError
    """
    check_fields(body, {"rolls", "seed", "options", "tag", "panels"})
    rolls = body.get("rolls", SEED_ROLLS)
    if isinstance(rolls, str):
        if len(rolls) > LIMITS["text_chars"]:
            raise ValueError(f"rolls hold {len(rolls)} characters; at most {LIMITS['text_chars']} are accepted")
        # commas and new lines as spaces: the library reads one sequence of whitespace-separated faces
        rolls = " ".join(rolls.replace(",", " ").split())
    elif isinstance(rolls, list):
        if len(rolls) > LIMITS["rolls"]:
            raise ValueError(f"{len(rolls)} rolls; the page accepts at most {LIMITS['rolls']}")
    else:
        raise TypeError(f"rolls must be text such as '1 6 3 5' or a list of faces, got {type(rolls).__name__}")
    seed = check_seed(body, LIMITS["seed_max"])
    options = check_options(body, DEFAULTS)
    model = MODELS["dice-hmm"]()  # the seed's dice (6, 4, 8); by registered name, as inference must
    data = model.check_data(rolls)
    if data.n_steps > LIMITS["rolls"]:
        raise ValueError(f"{data.n_steps} rolls; the page accepts at most {LIMITS['rolls']}")
    return Request(model, data, seed, options, request_key(body))


def _option(request: Request, key: str, low: int, high_key: str | None = None) -> int:
    return int_option(request.options, key, low, LIMITS[high_key or key], DEFAULTS)


OPTIONS = {
    "em": lambda r: {"n_init": _option(r, "n_starts", 1), "max_iter": _option(r, "em_max_iter", 1), "tol": 1e-8,
                     "progressbar": False},
    "vb": lambda r: {"init": DEFAULTS["vb_init"], "n_init": DEFAULTS["vb_n_init"], "max_iter": _option(r, "vb_max_iter", 1),
                     "draws": DEFAULTS["vb_draws"], "progressbar": False},
    "gibbs": lambda r: {"init": DEFAULTS["gibbs_init"], "chains": _option(r, "gibbs_chains", 1),
                        "draws": _option(r, "gibbs_draws", 10), "tune": _option(r, "gibbs_tune", 0), "progressbar": False,
                        # R-hat comes with the table (its rows hold it): not computed twice
                        "check_mixing": False},
    "exact": lambda r: {"draws": _option(r, "exact_draws", 10)},
}


def _run(request: Request, backend: str):
    return quiet_run(RECENT_FITS, request, backend, **OPTIONS[backend](request))


def smoothed(request: Request, draws: dict) -> np.ndarray:
    """p(z_t = k | x): the model's ``latent_posterior`` (forward-backward at each draw) averaged
    over the draws, as ``fit``'s posterior mean of ``state_probs``; (T, n_states)."""
    probs = request.model.latent_posterior(request.data, draws)["state_probs"]  # (chain, draw, T, K)
    return np.nanmean(probs, axis=(0, 1))


def _method_answer(request: Request, backend: str, run, messages) -> dict:
    draws = run.raw.draws
    return {"method": backend,
            "state_probs": smoothed(request, draws),
            "emission_probs": np.asarray(draws["emission_probs"], float).mean(axis=(0, 1)),
            "trans_mat": np.asarray(draws["trans_mat"], float).mean(axis=(0, 1)),
            "warnings": messages}


# -- the panels ----------------------------------------------------------------------------
def data_view(request: Request) -> dict:
    model, data = request.model, request.data
    # the states and faces as the fits name them (the model's coords); the data hold 0-based
    # symbol codes (negative for a missing roll), and the page shows the faces people write
    coords = model.coords(data)
    faces = np.asarray(coords["symbol"], float)
    codes = np.asarray(data.x).reshape(-1)
    seen = (codes >= 0) & (codes < faces.size)
    rolls = np.where(seen, faces[np.where(seen, codes, 0)], np.nan)
    return {"method": "data", "n_rolls": int(data.n_steps), "rolls": rolls,
            "states": [str(label) for label in coords["state"]], "faces": [int(face) for face in faces],
            "limits": LIMITS}


def exact_view(request: Request) -> dict:
    """Smoothed states and emission probabilities from draws of the exact posterior, or why it
    is out of reach (too many state paths: the library's message)."""
    try:
        run, messages = _run(request, "exact")
    except ValueError as error:
        if "paths" not in str(error):
            raise
        return {"method": "exact", "available": False, "reason": str(error), "warnings": []}
    answer = _method_answer(request, "exact", run, messages)
    answer["available"] = True
    answer["log_evidence"] = float(run.raw.attrs.get("log_evidence", math.nan))
    answer["draws"] = int(np.asarray(run.raw.draws["emission_probs"]).shape[1])
    return answer


def em_view(request: Request) -> dict:
    """EM (best of several starts): smoothed states, emission probabilities, and the Viterbi path
    at its estimate."""
    run, messages = _run(request, "em")
    answer = _method_answer(request, "em", run, messages)
    params = {name: np.asarray(value, float)[0, 0] for name, value in run.raw.draws.items()}
    path, log_prob = request.model.viterbi(request.data, params)
    answer.update({"viterbi": np.asarray(path), "viterbi_log_prob": log_prob,
                   "objective": float(run.raw.record.objective), "objective_name": str(run.raw.record.objective_name),
                   "max_iter": OPTIONS["em"](request)["max_iter"],
                   "objective_path": np.asarray(run.raw.history["log_posterior"], float)[int(run.raw.attrs.get("best_restart", 0))]})
    answer["objective_path"] = answer["objective_path"][np.isfinite(answer["objective_path"])]
    return answer


def vb_view(request: Request) -> dict:
    run, messages = _run(request, "vb")
    answer = _method_answer(request, "vb", run, messages)
    history = np.asarray(run.raw.history["elbo"], float)
    elbo = history[int(run.raw.attrs.get("best_restart", 0))] if history.ndim == 2 else history
    answer["elbo"] = elbo[np.isfinite(elbo)]
    return answer


def gibbs_view(request: Request) -> dict:
    run, messages = _run(request, "gibbs")
    answer = _method_answer(request, "gibbs", run, messages)
    answer["settings"] = {key: run.raw.attrs[key] for key in ("chains", "draws", "tune") if key in run.raw.attrs}
    return answer


VIEWS = {"data": data_view, "exact": exact_view, "em": em_view, "vb": vb_view, "gibbs": gibbs_view}


def run_method(method: str, body) -> dict:
    """Answer one panel's request (``method`` in :data:`METHODS`): JSON-ready, with ``tag``
    (echoed) and ``elapsed_ms``."""
    if method not in VIEWS:
        raise ValueError(f"unknown method {method!r}; valid: {list(VIEWS)} (and jobs {list(JOB_METHODS)})")
    start = time.perf_counter()
    answer = VIEWS[method](parse_request(body))
    answer["tag"] = body.get("tag")
    answer["elapsed_ms"] = 1000 * (time.perf_counter() - start)
    return to_json(answer)


def run_table(method: str, body) -> dict:
    """The comparison-table rows of one panel's (cached) fit; for Gibbs also ``max_rhat`` (what
    ``fit`` reports as ``attrs["max_rhat"]``, here the largest R-hat of the rows)."""
    if method not in TABLE_METHODS:
        raise ValueError(f"no table for {method!r}; valid: {list(TABLE_METHODS)}")
    start = time.perf_counter()
    request = parse_request(body)
    try:
        run, messages = _run(request, method)
    except ValueError as error:
        if method != "exact" or "paths" not in str(error):
            raise
        run, messages = None, [str(error)]
    return sampler_table(RECENT_FITS, request, method, run, messages, body, start)


def run_job(method: str, body, progress=None) -> dict:
    """NUTS or ADVI on the PyMC model with the states summed out (a background job)."""
    if method not in JOB_METHODS:
        raise ValueError(f"unknown job {method!r}; valid: {list(JOB_METHODS)}")
    request = parse_request(body)
    if progress is not None:
        progress(0.05, "building and compiling the PyMC model")
    options = pymc_job_options(method, lambda *key: _option(request, *key), advi_draws=200)
    run, messages = quiet_run(RECENT_FITS, request, method, **options)
    answer = _method_answer(request, method, run, messages)
    answer["table"] = table_rows(RECENT_FITS, request.model, method, run)
    answer["tag"] = body.get("tag")
    return to_json(answer)


def warm_up() -> float:
    """Answer every panel and table once on the seed's rolls; return the seconds spent."""
    return answer_every_panel(METHODS, TABLE_METHODS, run_method, run_table, PAGE_DEFAULT)
