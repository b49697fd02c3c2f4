"""Accuracy of the back-ends of issue 28 (smc, laplace, pathfinder, svgd) against exact posteriors.

Every reference is an exact posterior (``model.exact_posterior``: enumeration for the three coins,
NIW conjugacy for the Gaussian), never the code under test, and every check is shown to fail on a
deliberately wrong input, so that it could fail. One fit per back-end and data set, shared by a
module fixture; the longer runs are marked slow.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from latentzoo.inference import ConvergenceWarning, fit
from latentzoo.inference.backends.laplace import gaussian_from_hessian
from latentzoo.inference.backends.pathfinder import lbfgs_inverse_hessian, psis_resample
from latentzoo.inference.backends.unconstrained import COMPILATIONS, FlatPosterior, clear_compiled_cache
from latentzoo.models import NIWGaussian, ThreeCoins

from .conftest import DATASETS, SEED_FLIPS
from .test_three_coins import INFORMATIVE

pytestmark = pytest.mark.pymc

#: the symmetric three coins: (pi, p, q) and (1 - pi, q, p) have equal posterior mass
SYMMETRIC = ThreeCoins()


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(*args, **kwargs)


def flat(idata, name):
    return np.asarray(idata.posterior[name].values, float).reshape(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"], -1)


def exact_draws(model, data, n=100_000, seed=0) -> dict:
    posterior = model.exact_posterior(model.check_data(data))
    draws = posterior.sample(np.random.default_rng(seed), n)
    return {name: np.asarray(value, float).reshape(n, -1) for name, value in draws.items()}


def moment_failures(draws: dict, reference: dict, *, mean_tol: float, sd_tol: float) -> list[str]:
    """Elements whose mean is off by more than ``mean_tol`` reference sds, or whose sd is off by
    more than the fraction ``sd_tol``."""
    failures = []
    for name, ref in reference.items():
        got = draws[name]
        ref_mean, ref_sd = ref.mean(0), ref.std(0)
        for index in np.flatnonzero(ref_sd > 0):
            shift = abs(got[:, index].mean() - ref_mean[index]) / ref_sd[index]
            ratio = got[:, index].std() / ref_sd[index]
            if shift > mean_tol or abs(ratio - 1) > sd_tol:
                failures.append(f"{name}[{index}]: mean off by {shift:.3f} sd, sd ratio {ratio:.3f}")
    return failures


# ----------------------------------------------------------------------------------------
# SMC: both mirror modes, and the log-evidence
# ----------------------------------------------------------------------------------------
#: mass on the mode p > q accepted: 0.5 +- 0.15. With 2 x 500 particles the binomial sd is 0.016;
#: SMC's resampling makes copies, so the effective number is smaller (a few hundred: sd <= 0.03);
#: 0.15 is five such sds
MODE_MASS_BAND = (0.35, 0.65)
#: |log-evidence - exact| accepted, nats. PyMC's estimate with 500 particles per chain varied by
#: about 0.05 nats between chains on this data; 0.5 allows ten times that
EVIDENCE_TOL = 0.5


def mode_mass_failures(p: np.ndarray, q: np.ndarray) -> list[str]:
    """The share of draws in the mode p > q, per chain (rows), outside MODE_MASS_BAND."""
    shares = np.mean(p > q, axis=-1)
    return [f"chain {c}: {s:.3f} of the draws have p > q" for c, s in enumerate(np.atleast_1d(shares))
            if not MODE_MASS_BAND[0] <= s <= MODE_MASS_BAND[1]]


@pytest.fixture(scope="module")
def smc_fit():
    return quiet_fit(SYMMETRIC, DATASETS["multi_flip"], backend="smc", random_seed=3, draws=500, chains=2, cores=1,
                     progressbar=False)


def test_smc_finds_both_mirror_modes_with_equal_mass(smc_fit):
    posterior = smc_fit.posterior
    assert mode_mass_failures(posterior["p"].values, posterior["q"].values) == []
    # power: the exact posterior folded onto one mode (its identified labelling) fails
    exact = exact_draws(SYMMETRIC, DATASETS["multi_flip"], n=2000)
    folded_p, folded_q = np.maximum(exact["p"], exact["q"]), np.minimum(exact["p"], exact["q"])
    assert mode_mass_failures(folded_p.T, folded_q.T)
    # and half the draws in each mode is what the exact posterior itself has
    assert mode_mass_failures(exact["p"].T, exact["q"].T) == []


def test_smc_log_evidence_agrees_with_the_exact_one(smc_fit):
    data = SYMMETRIC.check_data(DATASETS["multi_flip"])
    exact = SYMMETRIC.exact_posterior(data).log_evidence
    assert smc_fit.attrs["objective_name"] == "log-evidence"
    assert abs(smc_fit.attrs["objective"] - exact) < EVIDENCE_TOL
    # power: another prior's evidence on the same data is outside the tolerance
    other = INFORMATIVE.exact_posterior(INFORMATIVE.check_data(DATASETS["multi_flip"])).log_evidence
    assert abs(smc_fit.attrs["objective"] - other) > EVIDENCE_TOL
    history = smc_fit.fit_history
    assert history["beta"].dims == ("restart", "iteration")
    np.testing.assert_allclose(np.nanmax(history["beta"].values, axis=1), 1.0)


def test_smc_on_the_niw_starts_from_the_prior(niw):
    # the NIW's Sigma carries an initval (a start for NUTS), which PyMC's SMC would give every
    # particle of its first population: the log-evidence then came out at -2564 and -2541 per
    # chain (exact -1310.13), with R-hat 1.7. The back-end draws that population from the prior
    model, data, raw = niw
    result = quiet_fit(model, data, backend="smc", random_seed=0, draws=300, chains=2, cores=1, progressbar=False)
    exact = model.exact_posterior(data).log_evidence
    assert abs(result.attrs["objective"] - exact) < EVIDENCE_TOL
    # power: the evidence of half the data is hundreds of nats away
    assert abs(result.attrs["objective"] - model.exact_posterior(model.check_data(raw[::2])).log_evidence) > EVIDENCE_TOL
    draws = {"mu": flat(result, "mu")}
    assert moment_failures(draws, {"mu": exact_draws(model, data)["mu"]}, mean_tol=0.25, sd_tol=0.25) == []


def test_smc_options_are_validated():
    for options, error in (({"draws": 1}, ValueError), ({"kernel": "hmc"}, ValueError), ({"threshold": 1.5}, ValueError),
                           ({"chains": 0}, ValueError), ({"progressbar": "yes"}, TypeError)):
        with pytest.raises(error):
            fit(SYMMETRIC, SEED_FLIPS, backend="smc", **options)


# ----------------------------------------------------------------------------------------
# Laplace: close on the NIW with n = 272, visibly wrong on the one-flip three coins
# ----------------------------------------------------------------------------------------
#: one check for both: means within 0.2 posterior sd, sds within 8%. With 4000 draws the Monte-Carlo
#: error of a mean is 0.016 sd and of an sd about 1.1%; the NIW's Laplace approximation in the
#: log-Cholesky space was measured 0.05 sd off in mu's means, 0.13 sd off in Sigma's (the
#: inverse Wishart is skewed: its mean lies above its mode) and 1.5-4% narrow in sd
LAPLACE_BAND = {"mean_tol": 0.2, "sd_tol": 0.08}


@pytest.fixture(scope="module")
def niw():
    model = NIWGaussian()
    raw = np.asarray(model.default_data(), float)
    data = model.check_data(raw)
    return model.with_data_prior(data), data, raw


def test_laplace_is_close_on_the_niw(niw):
    model, data, raw = niw
    assert raw.shape == (272, 2)
    # seed 0, one start: L-BFGS-B once reported success from it after 5 iterations, 107 nats below
    # the mode (mean errors of 7 sd); the restarts on a large gradient are what pass here
    result = quiet_fit(model, data, backend="laplace", random_seed=0, n_init=1, draws=4000, progressbar=False)
    assert result.attrs["converged"] == 1
    draws = {name: flat(result, name) for name in ("mu", "Sigma")}
    assert moment_failures(draws, exact_draws(model, data), **LAPLACE_BAND) == []
    # Laplace's evidence is close to the exact one at this sample size
    assert abs(result.attrs["objective"] - model.exact_posterior(data).log_evidence) < 0.5
    # power: the exact posterior of half the data is about 1.4 times wider, and fails
    half = exact_draws(model, raw[::2])
    assert moment_failures(draws, half, **LAPLACE_BAND)


def test_laplace_is_visibly_wrong_on_the_one_flip_three_coins():
    result = quiet_fit(SYMMETRIC, SEED_FLIPS, backend="laplace", random_seed=1, draws=4000, progressbar=False)
    draws = {name: flat(result, name) for name in ("p", "heads_prob")}
    reference = exact_draws(SYMMETRIC, SEED_FLIPS)
    reference["heads_prob"] = reference["pi"] * reference["p"] + (1 - reference["pi"]) * reference["q"]
    failures = moment_failures(draws, {name: reference[name] for name in draws}, **LAPLACE_BAND)
    # the Gaussian in log-odds space makes heads_prob (the one identified quantity) too wide
    assert any(f.startswith("heads_prob") for f in failures), failures


def test_laplace_keeps_the_highest_of_its_starts():
    # the informative three coins on two_d: the major mode (p > q) lies above the mirror one
    fits = {n: quiet_fit(INFORMATIVE, DATASETS["two_d"], backend="laplace", random_seed=1, init="random", n_init=n,
                         draws=200, progressbar=False) for n in (1, 5)}
    # seed 1's one random start (pi 0.86, p 0.35, q 0.44) climbs to the minor mode; five starts find the major
    assert float(fits[1].posterior["p"].mean()) < 0.5
    assert float(fits[5].posterior["p"].mean()) > 0.8
    assert fits[5].attrs["log_density_at_mode"] > fits[1].attrs["log_density_at_mode"] + 5
    with pytest.raises(ValueError, match="n_init"):
        fit(INFORMATIVE, SEED_FLIPS, backend="laplace", init=None, n_init=2)


def test_gaussian_from_hessian_repairs_and_counts_bad_curvatures():
    covariance, bad = gaussian_from_hessian(-np.diag([4.0, 1.0]))
    np.testing.assert_allclose(covariance, np.diag([0.25, 1.0]))
    assert bad == 0
    covariance, bad = gaussian_from_hessian(np.diag([-4.0, 2.0]))  # a saddle
    assert bad == 1
    assert np.all(np.linalg.eigvalsh(covariance) > 0)


# ----------------------------------------------------------------------------------------
# Pathfinder and SVGD on an informative data set
# ----------------------------------------------------------------------------------------
#: INFORMATIVE's priors put p high and q low, so on the 40 x 10 flips ("two_d") the mirror mode
#: has negligible mass: a unimodal, nearly Gaussian posterior. Bands: Pathfinder's importance
#: resampling is close to exact (means within 0.15 sd, sds within 15%: resampling 1000 of 4000
#: draws duplicates some). SVGD's 100 particles, measured after 300 steps: means within 0.03 sd,
#: sds 7-8% narrow (a finite particle set under-disperses; Ba et al. 2021); its band, 0.15 sd and
#: 15%, is twice that
PATHFINDER_BAND = {"mean_tol": 0.15, "sd_tol": 0.15}
SVGD_BAND = {"mean_tol": 0.15, "sd_tol": 0.15}
#: steps for the default-suite SVGD fit: the particles had stopped moving (moments to three
#: decimals) after 200-250 steps from PyMC's initial point
SVGD_STEPS = 300


@pytest.fixture(scope="module")
def informative_exact():
    return exact_draws(INFORMATIVE, DATASETS["two_d"])


@pytest.fixture(scope="module")
def half_data_exact():
    """The exact posterior given every other trial: as a wrong reference it shows that a band
    tells a posterior from one about 1.4 times wider and shifted."""
    return exact_draws(INFORMATIVE, DATASETS["two_d"][::2])


def test_pathfinder_agrees_with_exact(informative_exact):
    result = quiet_fit(INFORMATIVE, DATASETS["two_d"], backend="pathfinder", random_seed=1, progressbar=False)
    draws = {name: flat(result, name) for name in ("pi", "p", "q")}
    reference = {name: informative_exact[name] for name in draws}
    assert moment_failures(draws, reference, **PATHFINDER_BAND) == []
    assert result.attrs["pareto_k"] < 0.7 and result.attrs["converged"] == 1
    # power: one path from this seed ends in the minor mirror mode; k-hat and the band both say so
    with pytest.warns(ConvergenceWarning, match="k-hat"):
        single = fit(INFORMATIVE, DATASETS["two_d"], backend="pathfinder", random_seed=1, n_paths=1, progressbar=False)
    assert moment_failures({name: flat(single, name) for name in draws}, reference, **PATHFINDER_BAND)


def test_svgd_agrees_with_exact(informative_exact, half_data_exact):
    result = quiet_fit(INFORMATIVE, DATASETS["two_d"], backend="svgd", random_seed=1, n_steps=SVGD_STEPS,
                       progressbar=False)
    draws = {name: flat(result, name) for name in ("pi", "p", "q")}
    assert draws["p"].shape == (100, 1)
    assert moment_failures(draws, {name: informative_exact[name] for name in draws}, **SVGD_BAND) == []
    # power: the band rejects the exact posterior of half the data
    assert moment_failures(draws, {name: half_data_exact[name] for name in draws}, **SVGD_BAND)


@pytest.mark.slow
def test_svgd_from_one_random_start_splits_between_the_modes(informative_exact):
    # the former default: every particle jittered (sd 1) around one random start, which for this
    # seed lies near the minor mirror mode (pi 0.86, p 0.35, q 0.44). The flow moves no particle
    # across the valley, so about half of them stay in the minor mode, however many steps run
    result = quiet_fit(INFORMATIVE, DATASETS["two_d"], backend="svgd", random_seed=1, init="random", jitter=1.0,
                       n_steps=SVGD_STEPS, progressbar=False)
    in_minor = np.mean(flat(result, "p") < flat(result, "q"))
    assert 0.2 < in_minor < 0.8
    draws = {name: flat(result, name) for name in ("pi", "p", "q")}
    assert moment_failures(draws, {name: informative_exact[name] for name in draws}, **SVGD_BAND)


@pytest.mark.slow
def test_svgd_agrees_with_exact_on_the_niw(niw):
    # the NIW's Sigma converges slowly (a common kernel bandwidth, set by mu's wider direction):
    # measured after 2000 steps (the default), means within 0.05 sd and sds 5-8% narrow
    model, data, raw = niw
    result = quiet_fit(model, data, backend="svgd", random_seed=1, progressbar=False)
    draws = {name: flat(result, name) for name in ("mu", "Sigma")}
    assert moment_failures(draws, exact_draws(model, data), **SVGD_BAND) == []
    assert moment_failures(draws, exact_draws(model, raw[::2]), **SVGD_BAND)


def test_flat_starts_are_the_log_odds_of_the_three_coins():
    # PyMC's value variables of the three coins are logit(pi), logit(p), logit(q), in that order
    target = FlatPosterior(SYMMETRIC, SYMMETRIC.check_data(SEED_FLIPS))
    params = [{"pi": 0.2, "p": 0.9, "q": 0.4}, {"pi": 0.5, "p": 0.3, "q": 0.7}]
    expected = np.log([[0.2 / 0.8, 0.9 / 0.1, 0.4 / 0.6], [1.0, 0.3 / 0.7, 0.7 / 0.3]])
    np.testing.assert_allclose(target.flat_starts(params), expected, rtol=1e-12)
    # power: the order matters (p and q swapped is another point)
    assert not np.allclose(target.flat_starts([{"pi": 0.2, "p": 0.4, "q": 0.9}]), expected[:1])
    starts = target.prior_starts(50, np.random.default_rng(0))
    assert starts.shape == (50, 3) and np.isfinite(starts).all()
    # uniform priors: the share of prior draws with p > q is 1/2 (binomial sd 0.07 for 50)
    assert 0.25 < np.mean(starts[:, 1] > starts[:, 2]) < 0.75


def test_svgd_options_are_validated():
    for options, error in (({"n_particles": 1}, ValueError), ({"jitter": -0.1}, ValueError),
                           ({"init": "random", "jitter": 0.0}, ValueError), ({"learning_rate": 0.0}, ValueError),
                           ({"n_steps": 2.5}, TypeError)):
        with pytest.raises(error):
            fit(SYMMETRIC, SEED_FLIPS, backend="svgd", **options)


def test_lbfgs_inverse_hessian_of_a_quadratic():
    # f(x) = x' A x / 2: gradient changes y = A s; BFGS along d A-conjugate steps recovers A^-1
    # exactly (the hereditary property; Nocedal and Wright 2006, theorem 6.4)
    matrix = np.array([[3.0, 1.0], [1.0, 2.0]])
    steps = [np.array([1.0, 0.0]), np.array([1.0, -3.0])]  # s1' A s2 = 0
    inverse = lbfgs_inverse_hessian(steps, [matrix @ s for s in steps], 2)
    np.testing.assert_allclose(inverse, np.linalg.inv(matrix), rtol=1e-10)
    # a pair of negative curvature is skipped: the identity remains
    np.testing.assert_allclose(lbfgs_inverse_hessian([np.ones(2)], [-np.ones(2)], 2), np.eye(2))


def test_psis_resample_recovers_a_target_from_a_wider_proposal():
    # proposal N(0, 2^2), target N(1, 1): resampled draws have the target's moments
    rng = np.random.default_rng(0)
    proposal = rng.normal(0.0, 2.0, 40_000)
    log_ratio = -0.5 * (proposal - 1.0) ** 2 + 0.5 * (proposal / 2.0) ** 2
    indices, khat = psis_resample(log_ratio, 20_000, rng)
    assert khat < 0.5
    assert abs(proposal[indices].mean() - 1.0) < 0.05 and abs(proposal[indices].std() - 1.0) < 0.05
    # a proposal half as wide as the target: the weights have infinite variance (target variance
    # above twice the proposal's), which is a Pareto shape above 0.5; k-hat says so
    narrow = rng.normal(0.0, 0.5, 40_000)
    _, khat = psis_resample(-0.5 * narrow**2 + 0.5 * (narrow / 0.5) ** 2, 1000, rng)
    assert khat > 0.5


# ----------------------------------------------------------------------------------------
# compiled pieces cached per model structure (laplace, pathfinder, svgd)


def _draws(result, names=("pi", "p", "q")):
    return {name: flat(result, name) for name in names}


def _assert_same_draws(first, second):
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_svgd_step_is_compiled_once_and_a_cached_fit_equals_a_fresh_one():
    data = DATASETS["two_d"]
    other = 1 - np.asarray(data)  # the same shape, other heads
    options = dict(backend="svgd", n_steps=50, progressbar=False)
    clear_compiled_cache()
    first = _draws(quiet_fit(INFORMATIVE, data, random_seed=1, **options))
    compiled = dict(COMPILATIONS)
    # another data set of the same shape, then the first again: served from the cache
    cached_other = _draws(quiet_fit(INFORMATIVE, other, random_seed=1, **options))
    again = _draws(quiet_fit(INFORMATIVE, data, random_seed=1, **options))
    assert dict(COMPILATIONS) == compiled
    _assert_same_draws(first, again)
    # the cached step sees the new data: it gives what a freshly compiled one gives
    clear_compiled_cache()
    fresh_other = _draws(quiet_fit(INFORMATIVE, other, random_seed=1, **options))
    assert COMPILATIONS["svgd_step"] == compiled["svgd_step"] + 1
    _assert_same_draws(cached_other, fresh_other)
    # power: the two data sets give different particles (a step stuck on the first data would not)
    assert not np.allclose(first["p"], cached_other["p"])


def test_laplace_and_pathfinder_reuse_the_compiled_density_per_structure():
    data = DATASETS["two_d"]
    other = 1 - np.asarray(data)
    clear_compiled_cache()
    first = _draws(quiet_fit(INFORMATIVE, data, backend="laplace", random_seed=0, draws=200, progressbar=False))
    compiled = dict(COMPILATIONS)
    cached = _draws(quiet_fit(INFORMATIVE, other, backend="laplace", random_seed=0, draws=200, progressbar=False))
    quiet_fit(INFORMATIVE, other, backend="pathfinder", random_seed=0, draws=100, draws_per_path=100,
              n_paths=2, progressbar=False)
    assert dict(COMPILATIONS) == compiled
    clear_compiled_cache()
    fresh = _draws(quiet_fit(INFORMATIVE, other, backend="laplace", random_seed=0, draws=200, progressbar=False))
    _assert_same_draws(cached, fresh)
    assert not np.allclose(first["p"], cached["p"])
    # another structure compiles its own: fewer trials (a data shape), other priors (constants)
    before = COMPILATIONS["flat_posterior"]
    quiet_fit(INFORMATIVE, other[:20], backend="laplace", random_seed=0, draws=50, n_init=1, progressbar=False)
    quiet_fit(SYMMETRIC, other, backend="laplace", random_seed=0, draws=50, n_init=1, progressbar=False)
    assert COMPILATIONS["flat_posterior"] == before + 2
