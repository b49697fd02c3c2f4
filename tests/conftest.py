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
    # a random start, not map's default em-start (near EM's mode): the checks against EM and the
    # closed forms then test the PyMC declaration alone
    "map": {"init": "random", "progressbar": False},
    "smc": {"draws": 500, "chains": 2, "cores": 1, "progressbar": False},
    "laplace": {"draws": 2000, "progressbar": False},
    "pathfinder": {"draws": 1000, "progressbar": False},
    "svgd": {"n_particles": 100, "n_steps": 300, "progressbar": False},
}
PYMC_BACKENDS = ("nuts", "pymc_gibbs", "advi", "fullrank_advi", "map", "smc", "laplace", "pathfinder", "svgd")

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
    "smc": BASE_GROUPS | {"fit_history"},
    "laplace": BASE_GROUPS | {"fit_history"},
    "pathfinder": BASE_GROUPS | {"fit_history"},
    "svgd": BASE_GROUPS,  # PyMC records no objective for SVGD
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


# ----------------------------------------------------------------------------------------
# agreement of posterior draws with a reference, within Monte-Carlo error
# ----------------------------------------------------------------------------------------
from dataclasses import dataclass  # noqa: E402

import arviz as az  # noqa: E402

#: z of every agreement bound. One comparison fails honest code with probability 5.7e-7 (the
#: two-sided normal tail beyond 5); the largest check makes about 60 comparisons (the mean and
#: sd of each free element of the dice HMM), so an honest sampler fails it less than 1e-4 of
#: the time
AGREEMENT_Z = 5.0
#: the fewest effective draws per element an agreement check accepts. Bounds use
#: max(ESS, ESS_FLOOR) and an element below the floor fails, so a badly mixing sampler fails
#: instead of earning a looser bound. At the floor a normal's sd bound is +-5 sqrt(2 / 1600)
#: = +-0.18 of the sd, so draws 0.7 times too narrow fail; a mean off by one sd misses by 20 SE
ESS_FLOOR = 400
#: a variational posterior's sd as a fraction of the exact sd: mean-field q ignores posterior
#: correlations and is too narrow (Bishop 10.1.2), never wider beyond Monte-Carlo error. On the
#: data sets here the ratios measured 0.6-1.0; less than half the exact width fails
VARIATIONAL_MIN_SD_RATIO = 0.5


@dataclass(frozen=True)
class Reference:
    """Reference posterior moments of one parameter, element by element.

    Attributes
    ----------
    mean, sd : ndarray of the parameter's shape
        Posterior mean and standard deviation; ``sd == 0`` marks an element the model fixes
        (a die's impossible face), whose draws must equal ``mean`` exactly.
    mean_se, sd_se : float or ndarray of the parameter's shape
        The reference's own standard errors: 0 for closed forms and enumeration, Monte-Carlo
        errors for a reference that is itself a sample (:meth:`from_draws`).
    """

    mean: np.ndarray
    sd: np.ndarray
    mean_se: np.ndarray | float = 0.0
    sd_se: np.ndarray | float = 0.0

    @classmethod
    def from_draws(cls, draws, ess_floor: int = ESS_FLOOR) -> "Reference":
        """Moments of a Monte-Carlo reference, draws of shape (chain, draw, ...), with their
        standard errors; every element's ESS must reach ``ess_floor``."""
        draws = np.asarray(draws, float)
        ess_mean, ess_sd = effective_sizes(draws)
        sd = draws.std(axis=(0, 1))
        free = sd > 0
        assert np.all(np.minimum(ess_mean, ess_sd)[free] >= ess_floor), (
            f"reference ESS {np.minimum(ess_mean, ess_sd)[free].min():.0f} below the floor {ess_floor}"
        )
        return cls(draws.mean(axis=(0, 1)), sd, sd / np.sqrt(ess_mean), sd * sd_relative_se(draws, ess_sd))


def effective_sizes(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ESS of the mean and of the sd (arviz.ess, methods "mean" and "sd") per element of draws
    of shape (chain, draw, ...), capped at the number of draws; NaN (no estimate) becomes 0."""
    n = draws.shape[0] * draws.shape[1]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        sizes = [np.asarray(az.ess(draws, method=method), float) for method in ("mean", "sd")]
    return tuple(np.nan_to_num(np.minimum(size, n), nan=0.0) for size in sizes)


def sd_relative_se(draws: np.ndarray, ess) -> np.ndarray:
    """Relative standard error of the sample sd, sqrt((kurtosis - 1) / (4 ESS)) (the delta
    method on the variance; 1 / sqrt(2 ESS) for a normal), with the kurtosis of the draws."""
    centred = draws - draws.mean(axis=(0, 1))
    variance = (centred**2).mean(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        kurtosis = np.where(variance > 0, (centred**4).mean(axis=(0, 1)) / variance**2, 1.0)
    return np.sqrt(np.maximum(kurtosis - 1.0, 0.0) / (4.0 * np.asarray(ess, float)))


def _element(name: str, index: tuple) -> str:
    return f"{name}[{', '.join(str(i) for i in index)}]" if index else name


def _fixed_elements_failures(name, draws, reference) -> tuple[list[str], np.ndarray]:
    """Elements the reference fixes (sd 0) must be exactly the reference's value in every draw."""
    mean = np.broadcast_to(np.asarray(reference.mean, float), draws.shape[2:])
    fixed = np.broadcast_to(np.asarray(reference.sd, float), draws.shape[2:]) == 0
    moved = fixed & ~np.all(np.abs(draws - mean) <= 1e-12, axis=(0, 1))
    return [f"{_element(name, i)}: fixed at {mean[i]:.4g} by the model, but the draws move" for i in map(tuple, np.argwhere(moved))], ~fixed


def agreement_failures(name: str, draws, reference: Reference, *, z: float = AGREEMENT_Z,
                       ess_floor: int = ESS_FLOOR) -> list[str]:
    """How draws of a sampler disagree with a reference posterior, element by element.

    Three checks per free element (empty list: the draws agree):

    * ESS (of the mean and of the sd) at least ``ess_floor``;
    * |mean - reference mean| <= z sqrt(sd_ref^2 / ESS + mean_se^2), with the reference's sd
      (an over-dispersed sampler does not widen its own bound) and ESS = max(ESS, ess_floor);
    * |sd - reference sd| <= z sqrt((sd_ref r)^2 + sd_se^2), r = :func:`sd_relative_se`.

    Parameters
    ----------
    name : str
        The parameter's name, for the messages.
    draws : array-like of shape (chain, draw, *param_shape)
    reference : Reference
    """
    draws = np.asarray(draws, float)
    failures, free = _fixed_elements_failures(name, draws, reference)
    shape = draws.shape[2:]
    ref_mean, ref_sd, mean_se, sd_se = (np.broadcast_to(np.asarray(v, float), shape) for v in
                                        (reference.mean, reference.sd, reference.mean_se, reference.sd_se))
    ess_mean, ess_sd = effective_sizes(draws)
    bound_mean = z * np.sqrt(ref_sd**2 / np.maximum(ess_mean, ess_floor) + mean_se**2)
    bound_sd = z * np.sqrt((ref_sd * sd_relative_se(draws, np.maximum(ess_sd, ess_floor))) ** 2 + sd_se**2)
    mean, sd = draws.mean(axis=(0, 1)), draws.std(axis=(0, 1))
    for index in map(tuple, np.argwhere(free)):
        label = _element(name, index)
        if min(ess_mean[index], ess_sd[index]) < ess_floor:
            failures.append(f"{label}: ESS {ess_mean[index]:.0f} (mean), {ess_sd[index]:.0f} (sd) below the floor {ess_floor}")
        if abs(mean[index] - ref_mean[index]) > bound_mean[index]:
            failures.append(f"{label}: mean {mean[index]:.4g} vs {ref_mean[index]:.4g}, off by "
                            f"{z * abs(mean[index] - ref_mean[index]) / bound_mean[index]:.1f} standard errors")
        if abs(sd[index] - ref_sd[index]) > bound_sd[index]:
            failures.append(f"{label}: sd {sd[index]:.4g} vs {ref_sd[index]:.4g} (ratio {sd[index] / ref_sd[index]:.3f}, "
                            f"allowed 1 +- {bound_sd[index] / ref_sd[index]:.3f})")
    return failures


def variational_allowance(exact: Reference, n_draws: int, tol: float, z: float = AGREEMENT_Z) -> np.ndarray:
    """How far a variational mean may be from the exact mean: the approximation's bias ``tol``,
    stated by the caller, plus z Monte-Carlo errors of n independent draws. The Monte-Carlo
    term uses the exact sd, which an honest mean-field q does not exceed, so that an
    over-dispersed q does not widen its own bound."""
    return tol + z * np.asarray(exact.sd, float) / np.sqrt(n_draws)


def variational_failures(name: str, draws, exact: Reference, *, tol: float, z: float = AGREEMENT_Z,
                         min_sd_ratio: float = VARIATIONAL_MIN_SD_RATIO, max_sd_ratio: float | None = None) -> list[str]:
    """How draws of a variational approximation disagree with the exact posterior.

    Per free element: |mean - exact mean| <= :func:`variational_allowance`, and
    ``min_sd_ratio <= sd / exact sd <= max_sd_ratio``. The default ``max_sd_ratio`` is the
    mean-field one, 1 + z r: under-dispersion accepted, over-dispersion only within
    Monte-Carlo error r = :func:`sd_relative_se`. Pair it with :func:`assert_data_move_the_mean`,
    without which a q that ignores the data may pass.

    Parameters
    ----------
    draws : array-like of shape (chain, draw, *param_shape)
        Independent draws from q.
    """
    draws = np.asarray(draws, float)
    failures, free = _fixed_elements_failures(name, draws, exact)
    shape = draws.shape[2:]
    n = draws.shape[0] * draws.shape[1]
    exact_mean, exact_sd = (np.broadcast_to(np.asarray(v, float), shape) for v in (exact.mean, exact.sd))
    allowance = np.broadcast_to(variational_allowance(exact, n, tol, z), shape)
    mean, sd = draws.mean(axis=(0, 1)), draws.std(axis=(0, 1))
    upper = np.broadcast_to(1.0 + z * sd_relative_se(draws, n) if max_sd_ratio is None else max_sd_ratio, shape)
    for index in map(tuple, np.argwhere(free)):
        label = _element(name, index)
        if abs(mean[index] - exact_mean[index]) > allowance[index]:
            failures.append(f"{label}: mean {mean[index]:.4g} vs exact {exact_mean[index]:.4g} (allowed +-{allowance[index]:.4g})")
        ratio = sd[index] / exact_sd[index]
        if not min_sd_ratio <= ratio <= upper[index]:
            failures.append(f"{label}: sd ratio {ratio:.3f} outside [{min_sd_ratio}, {upper[index]:.3f}]")
    return failures


def assert_data_move_the_mean(name: str, exact: Reference, prior_mean, n_draws: int, *, tol: float,
                              z: float = AGREEMENT_Z) -> None:
    """Some element's exact mean is at least 4 variational allowances from its prior mean, so
    that a q returning the prior (ignoring the data) fails :func:`variational_failures`."""
    free = np.asarray(exact.sd, float) > 0
    distance = np.abs(np.asarray(prior_mean, float) - np.asarray(exact.mean, float))
    allowance = np.broadcast_to(variational_allowance(exact, n_draws, tol, z), distance.shape)
    assert np.any(distance[free] >= 4 * allowance[free]), (
        f"{name}: the exact mean is at most {distance[free].max():.4g} from the prior mean, less than 4 x the "
        f"allowance {allowance[free].max():.4g}: these data cannot tell a q that ignores them"
    )


def assert_no_failures(failures: list[str]) -> None:
    """Fail with every disagreement listed."""
    assert not failures, "\n".join(failures)


#: informative multi-flip coin data for the agreement tests: 30 trials x 8 flips from
#: pi = 0.3, p = 0.85, q = 0.2, far enough from the asymmetric priors used with them that a
#: back-end ignoring the data cannot pass
DATASETS["multi_flip"] = simulate_flips(30, 8, 0.3, 0.85, 0.2, seed=1)
