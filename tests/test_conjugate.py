"""Conjugate families (models/core/conjugate.py) against scipy.stats, quadrature and optimisation.

These objects carry the algebra shared by EM (mode), Gibbs (sample) and VB (expected logs, KL),
so every method is checked against an independent reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from latentzoo.models import Beta, Dirichlet, Gamma

BETA_PARAMS = [(1.0, 1.0), (2.0, 5.0), (0.5, 0.5), (0.7, 3.0), (30.0, 12.0), (1.0, 4.0)]
GAMMA_PARAMS = [(1.0, 1.0), (2.5, 0.4), (0.5, 3.0), (0.8, 0.05), (40.0, 7.0), (1.0, 12.0)]
DIRICHLET_PARAMS = [(1.0, 1.0), (2.0, 3.0, 4.0), (0.5, 1.5, 2.5, 7.0), (10.0, 0.8, 3.0)]


# ----------------------------------------------------------------------------------------
# Beta
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b", BETA_PARAMS)
def test_beta_log_pdf_mean_var_match_scipy(a, b):
    dist = Beta(a, b)
    x = np.linspace(0.01, 0.99, 23)
    np.testing.assert_allclose(dist.log_pdf(x), stats.beta(a, b).logpdf(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dist.mean(), stats.beta(a, b).mean(), rtol=1e-12)
    np.testing.assert_allclose(dist.var(), stats.beta(a, b).var(), rtol=1e-12)


def test_beta_log_pdf_at_boundaries_matches_scipy():
    # Beta(1, 3) and Beta(3, 1) have finite densities at 0 and 1; 0 * log(0) must be 0
    for a, b in [(1.0, 3.0), (3.0, 1.0), (1.0, 1.0)]:
        for x in (0.0, 1.0):
            np.testing.assert_allclose(Beta(a, b).log_pdf(x), stats.beta(a, b).logpdf(x), rtol=1e-12)


@pytest.mark.parametrize("a, b", [(2.0, 5.0), (30.0, 12.0), (1.5, 1.2), (7.0, 1.1)])
def test_beta_mode_maximises_density(a, b):
    found = optimize.minimize_scalar(
        lambda x: -stats.beta(a, b).logpdf(x), bounds=(1e-9, 1 - 1e-9), method="bounded", options={"xatol": 1e-10}
    )
    np.testing.assert_allclose(Beta(a, b).mode(), found.x, atol=1e-6)


def test_beta_mode_edge_cases():
    # flat density: no information, the mean 0.5 is returned (never 0/0)
    assert Beta(1.0, 1.0).mode() == 0.5
    # density decreasing / increasing on (0, 1): mode at the boundary
    assert Beta(1.0, 4.0).mode() == 0.0
    assert Beta(4.0, 1.0).mode() == 1.0
    # a concentration below one makes the density unbounded at that end
    assert Beta(0.5, 2.0).mode() == 0.0
    assert Beta(2.0, 0.5).mode() == 1.0
    # both below one: unbounded at both ends; a boundary is returned, never the interior minimum
    assert Beta(0.5, 0.5).mode() in (0.0, 1.0)
    assert Beta(0.3, 0.6).mode() in (0.0, 1.0)
    # batched: every case at once, elementwise
    batch = Beta([1.0, 1.0, 4.0, 0.5, 2.0, 3.0], [1.0, 4.0, 1.0, 2.0, 0.5, 3.0])
    np.testing.assert_array_equal(batch.mode(), [0.5, 0.0, 1.0, 0.0, 1.0, 0.5])
    assert np.all(np.isfinite(batch.mode()))


def test_beta_mode_stays_in_unit_interval_near_flat():
    # regression: alpha + beta - 2 rounded below alpha - 1 for beta = 1, giving a mode > 1 and a
    # NaN log1p(-mode) in EM
    excess = np.random.default_rng(0).uniform(0, 20, size=5000) * 10.0 ** np.random.default_rng(1).integers(-12, 1, size=5000)
    concentration = 1.0 + excess
    for alpha, beta in [(concentration, 1.0), (1.0, concentration), (concentration, concentration[::-1])]:
        mode = Beta(alpha, beta).mode()
        assert np.all((mode >= 0.0) & (mode <= 1.0))
    # away from the flat case (where 0.5 is returned by design) the mode is exactly the boundary
    informative = excess > 1e-6
    np.testing.assert_array_equal(Beta(concentration[informative], 1.0).mode(), 1.0)
    np.testing.assert_array_equal(Beta(1.0, concentration[informative]).mode(), 0.0)


@pytest.mark.parametrize("a, b", BETA_PARAMS)
def test_beta_expected_log_matches_quadrature(a, b):
    density = stats.beta(a, b).pdf
    e_log_x = integrate.quad(lambda x: np.log(x) * density(x), 0, 1, limit=200)[0]
    e_log_1mx = integrate.quad(lambda x: np.log1p(-x) * density(x), 0, 1, limit=200)[0]
    got = Beta(a, b).expected_log()
    np.testing.assert_allclose(got, (e_log_x, e_log_1mx), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("a, b, a0, b0", [(2.0, 5.0, 1.0, 1.0), (30.0, 12.0, 2.0, 2.0), (0.7, 3.0, 1.5, 0.5)])
def test_beta_kl_matches_quadrature(a, b, a0, b0):
    p, q = stats.beta(a, b), stats.beta(a0, b0)
    reference = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), 0, 1, limit=200)[0]
    np.testing.assert_allclose(Beta(a, b).kl(Beta(a0, b0)), reference, rtol=1e-6, atol=1e-9)
    assert Beta(a, b).kl(Beta(a, b)) == pytest.approx(0.0, abs=1e-12)


def test_beta_sample_moments():
    # 200 000 draws: the mean is within 5 standard errors sd/sqrt(n) of the exact mean, and the
    # variance within 5 standard errors sqrt((m4 - var^2) / n) of the exact variance
    a, b, n = 2.0, 5.0, 200_000
    draws = Beta(a, b).sample(np.random.default_rng(0), size=n)
    assert draws.shape == (n,)
    reference = stats.beta(a, b)
    mean, var = reference.mean(), reference.var()
    m4 = reference.expect(lambda x: (x - mean) ** 4)
    assert abs(draws.mean() - mean) < 5 * np.sqrt(var / n)
    assert abs(draws.var() - var) < 5 * np.sqrt((m4 - var**2) / n)


def test_beta_update_adds_counts_and_is_bayes_rule():
    prior = Beta(2.0, 3.0)
    posterior = prior.update(4.0, 5.5)
    assert (posterior.alpha, posterior.beta) == (6.0, 8.5)
    # posterior density / (prior density x likelihood) is constant in x
    x = np.linspace(0.05, 0.95, 10)
    ratio = posterior.log_pdf(x) - prior.log_pdf(x) - (4.0 * np.log(x) + 5.5 * np.log1p(-x))
    np.testing.assert_allclose(ratio, ratio[0], atol=1e-10)
    # the original is immutable
    assert (prior.alpha, prior.beta) == (2.0, 3.0)


def test_beta_batched_shapes():
    alpha = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    dist = Beta(alpha, 2.0)  # beta broadcast to the batch
    assert dist.beta.shape == (2, 3)
    assert dist.mean().shape == dist.var().shape == dist.mode().shape == (2, 3)
    assert dist.sample(np.random.default_rng(0)).shape == (2, 3)
    assert dist.sample(np.random.default_rng(0), size=7).shape == (7, 2, 3)
    assert dist.sample(np.random.default_rng(0), size=(4, 5)).shape == (4, 5, 2, 3)
    assert dist.log_pdf(0.3).shape == (2, 3)
    assert all(e.shape == (2, 3) for e in dist.expected_log())
    assert dist.kl(Beta(1.0, 1.0)).shape == (2, 3)
    np.testing.assert_allclose(dist.log_pdf(0.3), stats.beta(alpha, 2.0).logpdf(0.3), rtol=1e-12)
    np.testing.assert_allclose(dist.update(np.ones((2, 3)), 0.0).alpha, alpha + 1)


@pytest.mark.parametrize(
    "a, b", [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (np.nan, 1.0), (np.inf, 1.0), ([1.0, -2.0], 1.0)]
)
def test_beta_invalid_parameters_raise(a, b):
    with pytest.raises(ValueError, match="alpha|beta"):
        Beta(a, b)


# ----------------------------------------------------------------------------------------
# Dirichlet
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", DIRICHLET_PARAMS)
def test_dirichlet_log_pdf_and_mean_match_scipy(alpha):
    alpha = np.asarray(alpha)
    dist = Dirichlet(alpha)
    points = stats.dirichlet(alpha + 1.0).rvs(size=5, random_state=np.random.default_rng(1))
    for x in points:
        np.testing.assert_allclose(dist.log_pdf(x), stats.dirichlet(alpha).logpdf(x), rtol=1e-10)
    np.testing.assert_allclose(dist.mean(), stats.dirichlet(alpha).mean(), rtol=1e-12)


@pytest.mark.parametrize("alpha", [(2.0, 3.0, 4.0), (1.5, 8.0, 2.5, 1.2)])
def test_dirichlet_mode_maximises_density(alpha):
    alpha = np.asarray(alpha)
    reference = stats.dirichlet(alpha)

    def negative_log_density(free):  # softmax parametrisation of the simplex
        return -reference.logpdf(special.softmax(np.append(free, 0.0)))

    found = optimize.minimize(negative_log_density, np.zeros(alpha.size - 1), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(Dirichlet(alpha).mode(), special.softmax(np.append(found.x, 0.0)), atol=1e-6)


def test_dirichlet_mode_edge_cases():
    np.testing.assert_allclose(Dirichlet([1.0, 1.0, 1.0, 1.0]).mode(), 0.25)
    # alpha_1 < 1: the density is unbounded as x_1 -> 0, so the mode lies on the face x_1 = 0,
    # where it is the mode of Dirichlet(2, 3): (1/3, 2/3)
    np.testing.assert_allclose(Dirichlet([0.5, 2.0, 3.0]).mode(), [0.0, 1 / 3, 2 / 3], atol=1e-12)
    batch = Dirichlet([[1.0, 1.0], [3.0, 2.0]])
    np.testing.assert_allclose(batch.mode(), [[0.5, 0.5], [2 / 3, 1 / 3]])


@pytest.mark.parametrize("alpha", [(2.0, 3.0, 4.0), (0.5, 1.5, 2.5, 7.0)])
def test_dirichlet_expected_log_matches_monte_carlo(alpha):
    n = 200_000
    draws = stats.dirichlet(alpha).rvs(size=n, random_state=np.random.default_rng(2))
    logs = np.log(draws)
    standard_error = logs.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(Dirichlet(alpha).expected_log() - logs.mean(axis=0)) < 5 * standard_error)


@pytest.mark.parametrize("alpha, prior", [((2.0, 3.0, 4.0), (1.0, 1.0, 1.0)), ((5.0, 0.8, 2.0), (2.0, 2.0, 0.5))])
def test_dirichlet_kl_matches_monte_carlo(alpha, prior):
    n = 200_000
    p, q = stats.dirichlet(alpha), stats.dirichlet(prior)
    draws = p.rvs(size=n, random_state=np.random.default_rng(3))
    log_ratio = p.logpdf(draws.T) - q.logpdf(draws.T)
    kl = Dirichlet(alpha).kl(Dirichlet(prior))
    assert abs(kl - log_ratio.mean()) < 5 * log_ratio.std() / np.sqrt(n)
    assert Dirichlet(alpha).kl(Dirichlet(alpha)) == pytest.approx(0.0, abs=1e-12)


def test_dirichlet_two_categories_is_beta():
    # Dirichlet(a, b) of (x, 1 - x) is Beta(a, b) of x: an independent cross-check of the KL
    d, d0 = Dirichlet([2.5, 4.0]), Dirichlet([1.5, 0.7])
    b, b0 = Beta(2.5, 4.0), Beta(1.5, 0.7)
    np.testing.assert_allclose(d.kl(d0), b.kl(b0), rtol=1e-12)
    np.testing.assert_allclose(d.expected_log(), b.expected_log(), rtol=1e-12)
    np.testing.assert_allclose(d.log_pdf([0.3, 0.7]), b.log_pdf(0.3), rtol=1e-12)


def test_dirichlet_sample_moments():
    alpha, n = np.array([2.0, 3.0, 5.0]), 100_000
    draws = Dirichlet(alpha).sample(np.random.default_rng(4), size=n)
    assert draws.shape == (n, 3)
    np.testing.assert_allclose(draws.sum(axis=1), 1.0, rtol=1e-12)
    reference = stats.dirichlet(alpha)
    mean, var = reference.mean(), reference.var()
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * np.sqrt(var / n))
    # the sample variance has standard error about var * sqrt(2 / n) (bounded marginals: looser 6)
    assert np.all(np.abs(draws.var(axis=0) - var) < 6 * var * np.sqrt(2 / n))


def test_dirichlet_update_adds_counts_and_is_bayes_rule():
    prior = Dirichlet([1.0, 2.0, 3.0])
    counts = np.array([4.0, 0.0, 2.5])
    posterior = prior.update(counts)
    np.testing.assert_array_equal(posterior.concentration, [5.0, 2.0, 5.5])
    points = stats.dirichlet([2.0, 2.0, 2.0]).rvs(size=6, random_state=np.random.default_rng(5))
    ratio = [posterior.log_pdf(x) - prior.log_pdf(x) - counts @ np.log(x) for x in points]
    np.testing.assert_allclose(ratio, ratio[0], atol=1e-10)


def test_dirichlet_batched_shapes():
    concentration = np.random.default_rng(6).uniform(0.5, 5.0, size=(2, 3, 4))
    dist = Dirichlet(concentration)
    assert dist.n_categories == 4
    assert dist.mean().shape == dist.mode().shape == dist.expected_log().shape == (2, 3, 4)
    assert dist.sample(np.random.default_rng(0)).shape == (2, 3, 4)
    assert dist.sample(np.random.default_rng(0), size=5).shape == (5, 2, 3, 4)
    assert dist.kl(Dirichlet(np.ones(4))).shape == (2, 3)
    x = np.full((2, 3, 4), 0.25)
    assert dist.log_pdf(x).shape == (2, 3)
    expected = [[stats.dirichlet(concentration[i, j]).logpdf(x[i, j]) for j in range(3)] for i in range(2)]
    np.testing.assert_allclose(dist.log_pdf(x), expected, rtol=1e-10)
    np.testing.assert_allclose(dist.mode().sum(-1), 1.0)


@pytest.mark.parametrize("concentration", [[1.0], 2.0, [1.0, 0.0], [1.0, -1.0], [1.0, np.nan], [np.inf, 1.0]])
def test_dirichlet_invalid_parameters_raise(concentration):
    with pytest.raises(ValueError, match="concentration"):
        Dirichlet(concentration)


# ----------------------------------------------------------------------------------------
# Gamma (shape, rate)
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b", GAMMA_PARAMS)
def test_gamma_log_pdf_mean_var_match_scipy(a, b):
    dist = Gamma(a, b)
    reference = stats.gamma(a, scale=1.0 / b)
    x = reference.ppf(np.linspace(0.01, 0.99, 23))
    np.testing.assert_allclose(dist.log_pdf(x), reference.logpdf(x), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dist.mean(), reference.mean(), rtol=1e-12)
    np.testing.assert_allclose(dist.var(), reference.var(), rtol=1e-12)


def test_gamma_log_pdf_at_zero_matches_scipy():
    # shape 1 (exponential) has a finite density at 0: 0 * log(0) must be 0
    np.testing.assert_allclose(Gamma(1.0, 3.0).log_pdf(0.0), stats.gamma(1.0, scale=1 / 3.0).logpdf(0.0), rtol=1e-12)
    assert Gamma(2.0, 3.0).log_pdf(0.0) == -np.inf
    assert Gamma(0.5, 3.0).log_pdf(0.0) == np.inf


@pytest.mark.parametrize("a, b", [(2.5, 0.4), (40.0, 7.0), (1.3, 2.0)])
def test_gamma_mode_maximises_density(a, b):
    reference = stats.gamma(a, scale=1.0 / b)
    found = optimize.minimize_scalar(
        lambda x: -reference.logpdf(x), bounds=(1e-12, reference.ppf(0.999)), method="bounded", options={"xatol": 1e-10}
    )
    np.testing.assert_allclose(Gamma(a, b).mode(), found.x, atol=1e-6)


def test_gamma_mode_edge_cases():
    # shape 1: the density decreases from 0; below 1 it is unbounded at 0
    assert Gamma(1.0, 3.0).mode() == 0.0
    assert Gamma(0.5, 3.0).mode() == 0.0
    np.testing.assert_array_equal(Gamma([1.0, 0.2, 3.0], [2.0, 2.0, 4.0]).mode(), [0.0, 0.0, 0.5])
    # shapes below one make EM's MAP undefined, which EM reads from `concentrations`
    np.testing.assert_array_equal(Gamma([0.5, 2.0], 1.0).concentrations, [0.5, 2.0])


def test_gamma_flat_prior_gives_the_maximum_likelihood_rate():
    """Gamma(1, 0) updated by counts summing to S over n observations has its mode at S / n, the
    Poisson maximum-likelihood rate; not updated (n = 0) it has no mode, mean or draws."""
    counts = np.array([3, 0, 7, 2, 5])
    flat = Gamma.flat((2,))
    assert flat.shape.shape == flat.rate.shape == (2,)
    posterior = flat.update([counts.sum(), 0.0], [counts.size, 0.0])
    assert posterior.shape[0] == 1 + counts.sum() and posterior.rate[0] == counts.size
    np.testing.assert_allclose(Gamma.flat().update(counts.sum(), counts.size).mode(), counts.mean(), rtol=1e-15)
    # the maximiser of the Poisson log-likelihood, found numerically
    found = optimize.minimize_scalar(lambda r: -stats.poisson(r).logpmf(counts).sum(), bounds=(1e-6, 20), method="bounded",
                                     options={"xatol": 1e-10})
    np.testing.assert_allclose(Gamma.flat().update(counts.sum(), counts.size).mode(), found.x, atol=1e-6)
    for method in ("mode", "mean", "var"):
        with pytest.raises(ValueError, match="rate 0"):
            getattr(posterior, method)()
    with pytest.raises(ValueError, match="rate 0"):
        posterior.sample(np.random.default_rng(0))


@pytest.mark.parametrize("a, b", GAMMA_PARAMS)
def test_gamma_expected_log_matches_quadrature(a, b):
    reference = stats.gamma(a, scale=1.0 / b)
    e_log_x = integrate.quad(lambda x: np.log(x) * reference.pdf(x), 0, np.inf, limit=400)[0]
    np.testing.assert_allclose(Gamma(a, b).expected_log(), e_log_x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("a, b, a0, b0", [(2.5, 0.4, 1.0, 1.0), (40.0, 7.0, 2.0, 0.5), (0.8, 3.0, 1.5, 0.2), (3.0, 2.0, 3.0, 2.0)])
def test_gamma_kl_matches_quadrature(a, b, a0, b0):
    q, p = stats.gamma(a, scale=1.0 / b), stats.gamma(a0, scale=1.0 / b0)
    low, high = q.ppf(1e-14), q.isf(1e-14)
    reference = integrate.quad(lambda x: q.pdf(x) * (q.logpdf(x) - p.logpdf(x)), low, high, limit=400,
                               points=[q.mean()])[0]
    np.testing.assert_allclose(Gamma(a, b).kl(Gamma(a0, b0)), reference, rtol=1e-6, atol=1e-9)
    assert Gamma(a, b).kl(Gamma(a, b)) == pytest.approx(0.0, abs=1e-12)


def test_gamma_sample_moments():
    # 200 000 draws: mean and variance within 5 standard errors of the exact ones
    a, b, n = 2.5, 0.4, 200_000
    draws = Gamma(a, b).sample(np.random.default_rng(1), size=n)
    assert draws.shape == (n,)
    reference = stats.gamma(a, scale=1.0 / b)
    mean, var = reference.mean(), reference.var()
    m4 = reference.moment(4) - 4 * mean * reference.moment(3) + 6 * mean**2 * reference.moment(2) - 3 * mean**4
    assert abs(draws.mean() - mean) < 5 * np.sqrt(var / n)
    assert abs(draws.var() - var) < 5 * np.sqrt((m4 - var**2) / n)


def test_gamma_update_adds_counts_and_is_bayes_rule():
    prior = Gamma(2.0, 0.5)
    counts = np.array([4, 1, 0, 6])
    posterior = prior.update(counts.sum(), counts.size)
    assert (posterior.shape, posterior.rate) == (13.0, 4.5)
    # posterior density / (prior density x Poisson likelihood) is constant in the rate
    rates = np.linspace(0.2, 8.0, 12)
    likelihood = np.array([stats.poisson(r).logpmf(counts).sum() for r in rates])
    ratio = posterior.log_pdf(rates) - prior.log_pdf(rates) - likelihood
    np.testing.assert_allclose(ratio, ratio[0], atol=1e-10)
    assert (prior.shape, prior.rate) == (2.0, 0.5)


def test_gamma_batched_shapes():
    shape = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    dist = Gamma(shape, 2.0)  # rate broadcast to the batch
    assert dist.rate.shape == (2, 3)
    assert dist.mean().shape == dist.var().shape == dist.mode().shape == dist.expected_log().shape == (2, 3)
    assert dist.sample(np.random.default_rng(0)).shape == (2, 3)
    assert dist.sample(np.random.default_rng(0), size=7).shape == (7, 2, 3)
    assert dist.sample(np.random.default_rng(0), size=(4, 5)).shape == (4, 5, 2, 3)
    assert dist.log_pdf(0.3).shape == (2, 3)
    assert dist.kl(Gamma(1.0, 1.0)).shape == (2, 3)
    np.testing.assert_allclose(dist.log_pdf(0.3), stats.gamma(shape, scale=0.5).logpdf(0.3), rtol=1e-12)
    # per-element draws follow their own element's law: the batch's means, by Monte Carlo
    draws = dist.sample(np.random.default_rng(3), size=20_000)
    assert np.all(np.abs(draws.mean(0) - dist.mean()) < 5 * np.sqrt(dist.var() / 20_000))


def test_gamma_rebuilds_from_its_fields():
    import dataclasses

    dist = Gamma([2.0, 3.0], [0.5, 1.5])
    assert [field.name for field in dataclasses.fields(dist)] == ["shape", "rate"]
    rebuilt = Gamma(**{field.name: getattr(dist, field.name) for field in dataclasses.fields(dist)})
    np.testing.assert_array_equal(rebuilt.mean(), dist.mean())


@pytest.mark.parametrize(
    "a, b", [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (np.nan, 1.0), (np.inf, 1.0), ([1.0, -2.0], 1.0), (1.0, -0.5)]
)
def test_gamma_invalid_parameters_raise(a, b):
    with pytest.raises(ValueError, match="shape|rate"):
        Gamma(a, b)


def test_beta_log_pdf_on_a_grid_under_many_betas_is_the_elementwise_formula():
    # many densities at few points take the logarithms once per point; the values must be those
    # of scipy's xlogy/xlog1py elementwise (the exponent 0 giving 0, also at x = 0 or 1)
    rng = np.random.default_rng(3)
    alpha = np.concatenate([rng.uniform(0.05, 40.0, 500), [1.0, 1.0, 0.5, 7.0]])
    beta = np.concatenate([rng.uniform(0.05, 40.0, 500), [1.0, 4.0, 1.0, 1.0]])
    grid = np.concatenate([np.linspace(0.0, 1.0, 41), [np.nan]])[:, None]
    expected = special.xlogy(alpha - 1.0, grid) + special.xlog1py(beta - 1.0, -grid) - special.betaln(alpha, beta)
    np.testing.assert_array_equal(Beta(alpha, beta).log_pdf(grid), expected)
    inside = grid[1:-2]
    np.testing.assert_allclose(Beta(alpha, beta).log_pdf(inside), stats.beta.logpdf(inside, alpha, beta), rtol=1e-10)
