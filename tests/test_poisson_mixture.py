"""PoissonMixture: the likelihood against a direct NumPy computation, maximum-likelihood EM against
an EM written here, the exact posterior against brute force over every assignment, Gibbs against
the exact posterior, and bad input."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import special

from latentzoo.inference import fit
from latentzoo.models import MODELS, PoissonMixture
from latentzoo.models.datasets import earthquakes

from .conftest import Reference, agreement_failures, assert_no_failures

COUNTS = earthquakes()[1]


def direct_log_likelihood(x, weights, rates):
    """log sum_k w_k r_k^x e^(-r_k) / x! per count, with math.factorial (0 for a missing count)."""
    out = np.zeros(len(x))
    for n, value in enumerate(x):
        if np.isnan(value):
            continue
        pmf = [w * r ** int(value) * np.exp(-r) / math.factorial(int(value)) for w, r in zip(weights, rates)]
        out[n] = np.log(sum(pmf))
    return out


def reference_em(x, weights, rates, n_iter):
    """Maximum-likelihood EM for a Poisson mixture (Bishop 2006, sec. 9.2 with Poisson components):
    responsibilities from the current parameters, then weights = mean responsibility and rates =
    responsibility-weighted mean count."""
    weights, rates = np.array(weights, float), np.array(rates, float)
    for _ in range(n_iter):
        log_joint = np.log(weights) + x[:, None] * np.log(rates) - rates - special.gammaln(x + 1)[:, None]
        resp = np.exp(log_joint - special.logsumexp(log_joint, axis=1, keepdims=True))
        weights = resp.mean(0)
        rates = resp.T @ x / resp.sum(0)
    return weights, rates


def test_log_likelihood_matches_a_direct_computation():
    model = PoissonMixture(3)
    x = np.array([3.0, 0.0, np.nan, 12.0, 7.0, 25.0])
    weights, rates = np.array([0.2, 0.5, 0.3]), np.array([1.5, 6.0, 20.0])
    values = model.log_likelihood(x, {"weights": weights, "rates": rates})
    np.testing.assert_allclose(values, direct_log_likelihood(x, weights, rates), rtol=1e-12)
    # batched parameters: each set as alone
    batch = {"weights": np.stack([weights, weights[::-1]]), "rates": np.stack([rates, rates * 2])}
    np.testing.assert_allclose(model.log_likelihood(x, batch)[1], direct_log_likelihood(x, weights[::-1], rates * 2), rtol=1e-12)


def test_maximum_likelihood_em_matches_an_independent_em():
    """From the same start, the same iterates (the 2-component maximum on the earthquakes is
    Zucchini, MacDonald & Langrock's: rates 15.78 and 26.83, weights 0.676 and 0.324,
    log L = -360.37)."""
    start = {"weights": np.array([0.5, 0.5]), "rates": np.array([10.0, 30.0])}
    x = COUNTS.astype(float)
    for n_iter in (5, 300):  # iterate by iterate early on, and at convergence
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tol=0: "not converged" by design
            result = fit(PoissonMixture(2), COUNTS, backend="em", mle=True, init=start, tol=0, max_iter=n_iter,
                         random_seed=0, progressbar=False)
        weights, rates = reference_em(x, start["weights"], start["rates"], n_iter)
        np.testing.assert_allclose(result.posterior["weights"].values[0, 0], weights, rtol=1e-8)
        np.testing.assert_allclose(result.posterior["rates"].values[0, 0], rates, rtol=1e-8)
    np.testing.assert_allclose(rates, [15.78, 26.83], atol=0.01)
    np.testing.assert_allclose(weights, [0.676, 0.324], atol=0.001)
    assert direct_log_likelihood(x, weights, rates).sum() == pytest.approx(-360.37, abs=0.005)


TINY = np.array([1.0, 0.0, 2.0, np.nan, 9.0, 11.0, 8.0])
#: an informative Gamma keeps an empty component from wandering to huge rates
TINY_MODEL = PoissonMixture(2, rates_prior=(2.0, 0.3), weights_prior=1.5)


def test_exact_evidence_against_brute_force_over_assignments():
    """log p(x) = log sum over z in {0, 1}^N of the Dirichlet integral of the weights times, per
    component, the Gamma-Poisson integral of its counts (a missing count joins no component)."""
    a, b = TINY_MODEL.rates_prior
    alpha = 1.5
    observed = TINY[~np.isnan(TINY)]
    terms = []
    for z in itertools.product(range(2), repeat=observed.size):
        z = np.array(z)
        n = np.bincount(z, minlength=2)
        term = special.gammaln(2 * alpha) - special.gammaln(2 * alpha + n.sum()) + (special.gammaln(alpha + n) - special.gammaln(alpha)).sum()
        for k in range(2):
            chosen = observed[z == k]
            term += (a * np.log(b) - special.gammaln(a) + special.gammaln(a + chosen.sum())
                     - (a + chosen.sum()) * np.log(b + chosen.size) - special.gammaln(chosen + 1).sum())
        terms.append(term)
    assert TINY_MODEL.exact_posterior(TINY).log_evidence == pytest.approx(special.logsumexp(terms), rel=1e-12)


def sorted_by_rate(posterior) -> dict:
    """Every draw relabelled so that the rates increase (the same function of every result's draws)."""
    order = np.argsort(posterior["rates"].values, axis=-1)
    return {name: np.take_along_axis(posterior[name].values, order, -1) for name in ("weights", "rates")}


def test_gibbs_agrees_with_the_exact_posterior():
    exact = sorted_by_rate(fit(TINY_MODEL, TINY, backend="exact", random_seed=0, draws=20000).posterior)
    gibbs = sorted_by_rate(fit(TINY_MODEL, TINY, backend="gibbs", random_seed=1, draws=1500, tune=200, chains=2,
                               progressbar=False).posterior)
    failures = []
    for name in ("weights", "rates"):
        failures += agreement_failures(name, gibbs[name], Reference.from_draws(exact[name]))
    assert_no_failures(failures)
    shifted = gibbs["rates"] + exact["rates"].std(axis=(0, 1))
    assert agreement_failures("rates", shifted, Reference.from_draws(exact["rates"]))


def test_declarations():
    model = PoissonMixture()
    assert MODELS["poisson-mixture"] is PoissonMixture
    assert model.param_dims() == {"weights": ("component",), "rates": ("component",)}
    assert model.label_dim == "component" and "exact" in model.demo_plan().skips
    np.testing.assert_array_equal(model.check_data(model.default_data()).x, COUNTS)
    assert model.n_parameters(COUNTS) == 2 - 1 + 2
    counts, labels = model.simulate({"weights": [0.3, 0.7], "rates": [2.0, 15.0]}, 20_000, rng=0)
    assert counts.dtype == np.int64 and abs((labels == 1).mean() - 0.7) < 5 * np.sqrt(0.21 / 20_000)
    assert abs(counts[labels == 1].mean() - 15.0) < 5 * np.sqrt(15.0 / (labels == 1).sum())


@pytest.mark.parametrize(
    "data, kwargs, error, match",
    [
        ([1, -2, 3], {}, ValueError, r"contains \[-2\] \(first at position 1\)"),
        ([1, 2.5, 3], {}, ValueError, r"non-integer values \[2.5\] \(first at position 1\)"),
        ([1, "x", 3], {}, TypeError, r"got str 'x' at position 1"),
        (np.array([[1, 2], [3, 4]]), {}, ValueError, r"counts of shape \(N,\) or \(N, 1\)"),
        ([4], {}, ValueError, "n_components = 2 exceeds the number of observations N = 1"),
        ([1, 2, 3], {"rates_prior": (1.0, 0.0)}, ValueError, r"rates_prior must be a pair \(shape, rate\)"),
        ([1, 2, 3], {"rates_prior": 1.0}, TypeError, r"rates_prior must be a pair \(shape, rate\)"),
    ],
)
def test_bad_input_raises(data, kwargs, error, match):
    with pytest.raises(error, match=match):
        PoissonMixture(**kwargs).check_data(data)


@pytest.mark.pymc
def test_pymc_log_density_equals_the_numpy_log_posterior():
    model = PoissonMixture(2, rates_prior=(2.5, 0.2), weights_prior=[1.5, 2.0])
    x = np.r_[COUNTS[:30].astype(float), np.nan]
    pm_model = model.pymc_model(x)
    logp = pm_model.compile_logp(jacobian=False)
    params = {"weights": np.array([0.3, 0.7]), "rates": np.array([12.0, 25.0])}
    values = {}
    for var in pm_model.free_RVs:
        transform = pm_model.rvs_to_transforms.get(var)
        values[pm_model.rvs_to_values[var].name] = transform.forward(params[var.name], *var.owner.inputs).eval()
    expected = float(model.log_prior(params)) + float(model.log_likelihood(x, params).sum())
    np.testing.assert_allclose(logp(values), expected, rtol=1e-9)
