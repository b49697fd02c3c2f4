"""Shared fixtures: data sets, reference helpers and a session-wide cache of fitted results.

PyTensor reads its configuration when PyMC is first imported, so the environment defaults are
set here, at import time, before any test module imports PyMC.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

_PYTENSORRC = Path.home() / ".cache" / "latentzoo" / "pytensorrc"
if "PYTENSORRC" not in os.environ and _PYTENSORRC.is_file():
    os.environ["PYTENSORRC"] = str(_PYTENSORRC)
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

#: seed 003's data: ten trials of one flip each, six heads
SEED_FLIPS = "1111110000"

#: cheap settings used for every cached fit (small enough for the default run, large enough for
#: Monte-Carlo comparisons at a few standard errors)
FIT_SETTINGS = {
    "em": {"progressbar": False},
    "vb": {"draws": 2000, "progressbar": False},
    "gibbs": {"draws": 1000, "tune": 200, "chains": 2, "progressbar": False},
    "exact": {"draws": 4000},
    "nuts": {"draws": 500, "tune": 500, "chains": 2, "cores": 1, "progressbar": False},
    "pymc_gibbs": {"draws": 500, "tune": 500, "chains": 2, "cores": 1, "progressbar": False},
    "advi": {"draws": 1000, "progressbar": False},
    "fullrank_advi": {"draws": 1000, "progressbar": False},
    "map": {"progressbar": False},
}
PYMC_BACKENDS = ("nuts", "pymc_gibbs", "advi", "fullrank_advi", "map")

BASE_GROUPS = {"posterior", "log_likelihood", "observed_data"}
#: the groups of each back-end's result DataTree, exactly
EXPECTED_GROUPS = {
    "em": BASE_GROUPS | {"fit_history"},
    "vb": BASE_GROUPS | {"fit_history", "variational"},
    "gibbs": BASE_GROUPS,
    "exact": BASE_GROUPS,
    "nuts": BASE_GROUPS | {"sample_stats"},
    "pymc_gibbs": BASE_GROUPS | {"sample_stats"},
    "advi": BASE_GROUPS | {"fit_history"},
    "fullrank_advi": BASE_GROUPS | {"fit_history"},
    "map": BASE_GROUPS | {"fit_history"},
}


def simulate_flips(n_trials: int, n_flips: int, pi: float, p: float, q: float, seed: int) -> np.ndarray:
    """Three-coin data simulated with plain NumPy (independently of ``ThreeCoins.simulate``)."""
    rng = np.random.default_rng(seed)
    coin_b = rng.random(n_trials) < pi
    bias = np.where(coin_b, p, q)
    return (rng.random((n_trials, n_flips)) < bias[:, None]).astype(int)


def heads_and_flips(data):
    """Heads per trial and flips per trial of 0/1 data given as text or an array."""
    flips = np.array([int(c) for c in data]) if isinstance(data, str) else np.asarray(data)
    flips = flips.reshape(flips.shape[0], -1)
    return flips.sum(axis=1), flips.shape[1]


def reference_log_likelihood(data, pi, p, q):
    """log[pi Bin(h_i | m, p) + (1 - pi) Bin(h_i | m, q)] per trial, with scipy.stats.binom."""
    heads, m = heads_and_flips(data)
    pi, p, q = (np.asarray(v, float)[..., None] for v in (pi, p, q))
    return np.log(pi * stats.binom.pmf(heads, m, p) + (1 - pi) * stats.binom.pmf(heads, m, q))


#: named data sets, so that cached fits can be keyed by name
DATASETS = {
    "seed": SEED_FLIPS,
    # identifiable: 40 trials x 10 flips from pi=0.4, p=0.8, q=0.3
    "two_d": simulate_flips(40, 10, 0.4, 0.8, 0.3, seed=20240),
    # small enough for brute-force enumeration of all 2^5 coin assignments
    "tiny_2d": simulate_flips(5, 3, 0.5, 0.7, 0.2, seed=7),
}


@pytest.fixture(scope="session")
def seed_data() -> str:
    return SEED_FLIPS


@pytest.fixture(scope="session")
def two_d_data() -> np.ndarray:
    return DATASETS["two_d"]


@pytest.fixture(scope="session")
def tiny_2d_data() -> np.ndarray:
    return DATASETS["tiny_2d"]


class FitCache:
    """``fitted(model, dataset, backend, **extra)``: fit once per session with FIT_SETTINGS.

    Warnings raised during the fit (e.g. a ConvergenceWarning from a short PyMC run) are
    recorded in ``warnings_for(...)`` instead of leaking into every test that reuses the fit.
    """

    def __init__(self):
        self._idata = {}
        self._warnings = {}

    @staticmethod
    def _key(model, dataset, backend, seed, extra):
        return (repr(model), dataset, backend, seed, repr(sorted(extra.items())))

    def __call__(self, model, dataset: str, backend: str, *, random_seed: int = 1, **extra):
        from latentzoo.inference import fit

        key = self._key(model, dataset, backend, random_seed, extra)
        if key not in self._idata:
            options = {**FIT_SETTINGS[backend], **extra}
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._idata[key] = fit(model, DATASETS[dataset], backend=backend, random_seed=random_seed, **options)
            self._warnings[key] = [str(w.message) for w in caught]
        return self._idata[key]

    def warnings_for(self, model, dataset, backend, *, random_seed: int = 1, **extra):
        return self._warnings[self._key(model, dataset, backend, random_seed, extra)]


@pytest.fixture(scope="session")
def fitted() -> FitCache:
    return FitCache()
