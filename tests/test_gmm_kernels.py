"""The Gaussian-mixture kernels (models/gaussian/kernels.py, gmm_stats.py, gmm_pass.py) against
independent evaluations.

References never come from the code under test: ``scipy.stats.multivariate_normal.logpdf``,
``scipy.special.logsumexp``, explicit weighted sums with centring before the products, exact
translation invariance of the scatter, Monte-Carlo averages over exact Normal-Inverse-Wishart
draws, and the NIW expectations of ``models/core/conjugate.py`` (Bishop eq. 10.64-10.65).
Also the blob data generator ``datasets.blobs`` (moments within Monte-Carlo error).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import special, stats

from latentzoo.models.core.conjugate import NormalInverseWishart
from latentzoo.models.datasets import blobs
from latentzoo.models.gaussian.kernels import (
    e_step,
    e_step_stats,
    expected_e_step_stats,
    expected_log_densities,
    log_gaussian_densities,
    scaled_densities,
)
from latentzoo.models.gaussian.passes import _exp_shifted
from latentzoo.models.gaussian.stats import component_stats

from .test_niw import expected_log_det_precision, expected_mahalanobis

#: Monte-Carlo tolerance in standard errors
Z = 4.5


def random_mixture(n_components, dim, seed=0, spread=3.0):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_components, 2.0))
    means = rng.normal(scale=spread, size=(n_components, dim))
    factors = rng.normal(size=(n_components, dim, dim))
    covs = factors @ np.swapaxes(factors, -1, -2) + 0.5 * np.eye(dim)
    return weights, means, covs


def sample(weights, means, covs, n, seed=1):
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(weights), size=n, p=weights)
    x = np.empty((n, means.shape[1]))
    for k in range(len(weights)):
        idx = labels == k
        x[idx] = rng.multivariate_normal(means[k], covs[k], size=idx.sum())
    return x, labels


def scipy_log_densities(x, means, covs):
    return np.column_stack([stats.multivariate_normal(means[k], covs[k]).logpdf(x).reshape(len(x)) for k in range(len(means))])


def explicit_stats(x, resp):
    """Weighted counts, means and scatters by explicit centred sums, one component at a time."""
    counts = resp.sum(0)
    means = np.array([(resp[:, k, None] * x).sum(0) / counts[k] for k in range(resp.shape[1])])
    scatters = np.array(
        [((x - means[k]).T * resp[:, k]) @ (x - means[k]) for k in range(resp.shape[1])]
    )
    return counts, means, scatters


# -- log-densities and E-step -----------------------------------------------------------------
@pytest.mark.parametrize("n_components, dim", [(1, 1), (3, 2), (4, 5), (2, 10)])
def test_log_densities_match_scipy(n_components, dim):
    weights, means, covs = random_mixture(n_components, dim, seed=dim)
    x, _ = sample(weights, means, covs, 3000 + 7 * dim)  # not a multiple of any block size
    ours = log_gaussian_densities(x, means, covs)
    assert ours.shape == (len(x), n_components)
    np.testing.assert_allclose(ours, scipy_log_densities(x, means, covs), rtol=1e-11, atol=1e-9)


def test_log_densities_accept_any_layout_and_lists():
    weights, means, covs = random_mixture(3, 3, seed=4)
    x, _ = sample(weights, means, covs, 500)
    reference = scipy_log_densities(x, means, covs)
    fortran = np.asfortranarray(x)
    strided = np.repeat(x, 2, axis=0)[::2]
    for data in (fortran, strided, x.tolist()):
        np.testing.assert_allclose(log_gaussian_densities(data, means.tolist(), covs), reference, rtol=1e-11, atol=1e-9)


def test_log_densities_far_from_origin():
    # an offset of 1e6 with unit-scale components: the quadratic expansion must not cancel digits
    weights, means, covs = random_mixture(3, 3, seed=5)
    x, _ = sample(weights, means, covs, 2000)
    offset = 1e6 * np.array([1.0, -2.0, 0.5])
    ours = log_gaussian_densities(x + offset, means + offset, covs)
    np.testing.assert_allclose(ours, scipy_log_densities(x, means, covs), rtol=1e-9, atol=1e-8)


def test_e_step_matches_logsumexp_and_bayes_rule():
    weights, means, covs = random_mixture(4, 3, seed=6)
    x, _ = sample(weights, means, covs, 2500)
    log_norm, resp = e_step(x, weights, means, covs)
    joint = scipy_log_densities(x, means, covs) + np.log(weights)
    np.testing.assert_allclose(log_norm, special.logsumexp(joint, axis=1), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(resp, np.exp(joint - special.logsumexp(joint, axis=1, keepdims=True)), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(resp.sum(1), 1.0, rtol=0, atol=1e-14)


def test_scaled_densities_are_the_densities_over_their_sum():
    weights, means, covs = random_mixture(3, 2, seed=8)
    x, _ = sample(weights, means, covs, 1001)  # not a multiple of the block
    x[0] += 40.0  # a point where every density underflows in linear space
    log_dens = scipy_log_densities(x, means, covs)
    log_c = special.logsumexp(log_dens, axis=1)
    lik, log_scale = scaled_densities(x, means, covs, summed=False)
    assert lik.shape == (3, 1001) and lik.flags.c_contiguous
    np.testing.assert_allclose(lik, np.exp(log_dens - log_c[:, None]).T, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(log_scale, log_c, rtol=1e-12, atol=1e-10)
    lik_summed, total = scaled_densities(x, means, covs)
    np.testing.assert_array_equal(lik_summed, lik)
    np.testing.assert_allclose(total, log_c.sum(), rtol=1e-12)


def test_e_step_far_points_do_not_underflow():
    # every component density underflows to 0 in linear space (log-density about -5e5)
    weights, means, covs = random_mixture(3, 2, seed=7)
    x = np.array([[1e3, -1e3], [2e3, 5e2]])
    log_norm, resp = e_step(x, weights, means, covs)
    joint = scipy_log_densities(x, means, covs) + np.log(weights)
    assert np.all(joint < -1e4)
    np.testing.assert_allclose(log_norm, special.logsumexp(joint, axis=1), rtol=1e-12)
    np.testing.assert_allclose(resp.sum(1), 1.0, atol=1e-14)


def test_e_step_zero_weight_gets_no_responsibility():
    weights, means, covs = random_mixture(3, 2, seed=8)
    weights = np.array([0.6, 0.0, 0.4])
    x, _ = sample(np.array([0.5, 0.0, 0.5]), means, covs, 400)
    log_norm, resp = e_step(x, weights, means, covs)
    assert np.all(resp[:, 1] == 0.0)
    keep = [0, 2]
    joint = scipy_log_densities(x, means[keep], covs[keep]) + np.log(weights[keep])
    np.testing.assert_allclose(log_norm, special.logsumexp(joint, axis=1), rtol=1e-12)


def test_memory_is_n_k_not_n_k_d():
    # D = 10, K = 8: an (N, K, D) temporary would be 80 N doubles; we allow a few (N, K) arrays
    n, n_components, dim = 40_000, 8, 10
    weights, means, covs = random_mixture(n_components, dim, seed=9)
    x = np.random.default_rng(0).normal(size=(n, dim))
    e_step(x[:100], weights, means, covs)  # imports and caches outside the measurement
    tracemalloc.start()
    _, resp = e_step(x, weights, means, covs)
    component_stats(x, resp)
    expected_log_densities(x, means, np.ones(n_components), np.full(n_components, dim + 2.0), covs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 3 * n * n_components * 8 + 4e6, f"peak {peak / 1e6:.1f} MB"


# -- sufficient statistics --------------------------------------------------------------------
@pytest.mark.parametrize("n_components, dim", [(3, 1), (3, 2), (3, 6), (7, 2), (7, 6)])
def test_component_stats_match_explicit_sums(n_components, dim):
    # K = 3: moments as dot products along each block; K = 7: one BLAS product per block
    weights, means, covs = random_mixture(n_components, dim, seed=10 + dim)
    x, _ = sample(weights, means, covs, 1500)
    _, resp = e_step(x, weights, means, covs)
    counts, xbar, scatters = component_stats(x, resp)
    ref_counts, ref_means, ref_scatters = explicit_stats(x, np.asarray(resp))
    np.testing.assert_allclose(counts, ref_counts, rtol=1e-12)
    np.testing.assert_allclose(xbar, ref_means, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(scatters, ref_scatters, rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(scatters, np.swapaxes(scatters, -1, -2))


def test_component_stats_hard_assignments_and_empty_component():
    # Gibbs passes 0/1 assignments (C-ordered); a component with no points gets zeros
    weights, means, covs = random_mixture(2, 3, seed=11)
    x, labels = sample(weights, means, covs, 700)
    one_hot = np.zeros((len(x), 3))
    one_hot[np.arange(len(x)), labels] = 1.0
    counts, xbar, scatters = component_stats(x, one_hot)
    np.testing.assert_array_equal(counts, [np.sum(labels == 0), np.sum(labels == 1), 0.0])
    for k in range(2):
        members = x[labels == k]
        np.testing.assert_allclose(xbar[k], members.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(scatters[k], (len(members) - 1) * np.cov(members.T), rtol=1e-10)
    np.testing.assert_array_equal(xbar[2], 0.0)
    np.testing.assert_array_equal(scatters[2], 0.0)


@pytest.mark.parametrize("offset", [1e6, -3e7])
def test_scatter_far_from_origin_is_translation_invariant(offset):
    # the scatter of x + c equals the scatter of x; the naive one-pass formula on raw data loses
    # every digit here (x x^T ~ 1e12..1e15 against a unit-scale scatter)
    weights, means, covs = random_mixture(3, 4, seed=12, spread=2.0)
    x, _ = sample(weights, means, covs, 3000)
    _, resp = e_step(x, weights, means, covs)
    counts, xbar, scatters = component_stats(x + offset, resp)
    ref_counts, ref_means, ref_scatters = explicit_stats(x, np.asarray(resp))
    np.testing.assert_allclose(xbar - offset, ref_means, atol=1e-8 * abs(offset) * 1e-6 + 1e-8)
    np.testing.assert_allclose(scatters, ref_scatters, rtol=1e-8, atol=1e-8)
    assert np.all(np.linalg.eigvalsh(scatters) > 0)


def test_scatter_of_components_far_apart_stays_exact():
    # two tight clusters 1e6 apart: far from the overall mean compared with their width, so the
    # one-pass moments would cancel; the kernel must recompute them centred at their own means
    rng = np.random.default_rng(13)
    tight = rng.normal(scale=1e-3, size=(2000, 2))
    x = tight + np.where(np.arange(2000)[:, None] < 1000, -5e5, 5e5)
    resp = np.zeros((2000, 2))
    resp[:1000, 0] = resp[1000:, 1] = 1.0
    _, _, scatters = component_stats(x, resp)
    reference = np.array([(len(t) - 1) * np.cov(t.T) for t in (tight[:1000], tight[1000:])])
    np.testing.assert_allclose(scatters, reference, rtol=1e-6)
    assert np.all(np.linalg.eigvalsh(scatters) > 0)


def test_single_point_component_has_exactly_zero_scatter():
    x = np.random.default_rng(14).normal(size=(50, 3)) + 1e4
    resp = np.zeros((50, 2))
    resp[0, 0] = 1.0
    resp[1:, 1] = 1.0
    counts, xbar, scatters = component_stats(x, resp)
    assert counts[0] == 1.0
    np.testing.assert_allclose(xbar[0], x[0], rtol=1e-15)
    np.testing.assert_allclose(scatters[0], 0.0, atol=1e-12)


# -- variational expected log-densities --------------------------------------------------------
def niw_factors(n_components=3, dim=2, seed=15):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n_components, dim))
    kappa = rng.uniform(0.5, 5.0, size=n_components)
    nu = dim + 1.0 + rng.uniform(1.0, 10.0, size=n_components)
    factors = rng.normal(size=(n_components, dim, dim))
    S = factors @ np.swapaxes(factors, -1, -2) + nu[:, None, None] * np.eye(dim)
    return m, kappa, nu, S


def test_expected_log_densities_match_niw_expectations():
    m, kappa, nu, S = niw_factors(4, 3)
    x = np.random.default_rng(16).normal(scale=2.0, size=(300, 3))
    niw = NormalInverseWishart(m, kappa, nu, S)
    reference = 0.5 * (expected_log_det_precision(niw) - 3 * np.log(2 * np.pi) - expected_mahalanobis(niw, x))
    np.testing.assert_allclose(expected_log_densities(x, m, kappa, nu, S), reference, rtol=1e-11, atol=1e-10)


def test_expected_log_densities_match_monte_carlo_over_niw_draws():
    m, kappa, nu, S = niw_factors(3, 2)
    x = np.array([[0.0, 0.0], [1.5, -2.0], [-3.0, 1.0]])
    mu, Sigma = NormalInverseWishart(m, kappa, nu, S).sample(np.random.default_rng(17), size=20_000)
    # log N(x_n | mu, Sigma) for every draw, with scipy-independent algebra: Cholesky solves
    chol = np.linalg.cholesky(Sigma)  # (draws, K, D, D)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    values = np.empty((len(mu), len(x), 3))
    for n, point in enumerate(x):
        z = np.linalg.solve(chol, (point - mu)[..., None])[..., 0]
        values[:, n, :] = -0.5 * (2 * np.log(2 * np.pi) + log_det + (z**2).sum(-1))
    mc_mean = values.mean(0)
    mc_se = values.std(0) / np.sqrt(len(mu))
    ours = expected_log_densities(x, m, kappa, nu, S)
    assert np.all(np.abs(ours - mc_mean) < Z * mc_se), (ours - mc_mean) / mc_se


# -- bad inputs -------------------------------------------------------------------------------
def test_not_positive_definite_names_covs_and_component():
    weights, means, covs = random_mixture(3, 2, seed=18)
    covs[1] = np.array([[1.0, 2.0], [2.0, 1.0]])  # indefinite
    x = np.zeros((5, 2))
    for call in (lambda: log_gaussian_densities(x, means, covs), lambda: e_step(x, weights, means, covs)):
        with pytest.raises(ValueError, match=r"covs\[1\].*component 1"):
            call()
    m, kappa, nu, S = niw_factors(3, 2)
    S[2] = 0.0
    with pytest.raises(ValueError, match=r"S\[2\]"):
        expected_log_densities(x, m, kappa, nu, S)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data_is_a_clear_error(bad):
    weights, means, covs = random_mixture(2, 2, seed=19)
    x = np.zeros((10, 2))
    x[3, 1] = bad
    for call in (lambda: log_gaussian_densities(x, means, covs), lambda: e_step(x, weights, means, covs)):
        with pytest.raises(ValueError, match=r"x must be finite; NaN or inf at rows \[3\]"):
            call()


def test_bad_shapes_and_weights():
    weights, means, covs = random_mixture(2, 2, seed=20)
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="x must have shape"):
        e_step(np.zeros(10), weights, means, covs)
    with pytest.raises(ValueError, match="means must have shape"):
        e_step(x, weights, means[:, :1], covs)
    with pytest.raises(ValueError, match="covs must have shape"):
        e_step(x, weights, means, covs[:, :1])
    with pytest.raises(ValueError, match="weights must have shape"):
        e_step(x, weights[:1], means, covs)
    with pytest.raises(ValueError, match="weights must be finite, non-negative"):
        e_step(x, np.array([1.5, -0.5]), means, covs)
    with pytest.raises(ValueError, match="covs must be finite"):
        e_step(x, weights, means, np.full_like(covs, np.nan))
    with pytest.raises(ValueError, match="resp must have shape"):
        component_stats(x, np.ones((9, 2)))
    with pytest.raises(TypeError, match="x must be a numeric array"):
        log_gaussian_densities([["a", "b"]], means, covs)
    m, kappa, nu, S = niw_factors(2, 2)
    with pytest.raises(ValueError, match="nu must be finite and > D - 1"):
        expected_log_densities(x, m, kappa, np.array([0.5, 3.0]), S)
    with pytest.raises(ValueError, match="kappa must be finite and > 0"):
        expected_log_densities(x, m, np.array([0.0, 1.0]), nu, S)


def test_component_stats_rejects_non_finite_inputs():
    x = np.zeros((6, 2))
    resp = np.full((6, 2), 0.5)
    x[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"x must be finite; NaN or inf at rows \[4\]"):
        component_stats(x, resp)
    resp[2, 1] = np.inf
    with pytest.raises(ValueError, match="resp must be finite"):
        component_stats(np.zeros((6, 2)), resp)


# -- blob data (models/datasets.py::blobs) -----------------------------------------------------
def test_blobs_shapes_counts_and_reproducibility():
    x, labels = blobs(301, centers=3, random_seed=5)
    assert x.shape == (301, 2) and labels.shape == (301,) and labels.dtype.kind == "i"
    assert np.bincount(labels).tolist() == [101, 100, 100]
    again, again_labels = blobs(301, centers=3, random_seed=5)
    np.testing.assert_array_equal(x, again)
    np.testing.assert_array_equal(labels, again_labels)
    other, _ = blobs(301, centers=3, random_seed=6)
    assert not np.allclose(x, other)
    # shuffled by default, blob by blob on request
    assert not np.all(np.diff(labels) >= 0)
    _, ordered = blobs([5, 0, 7], centers=3, random_seed=5, shuffle=False)
    assert ordered.tolist() == [0] * 5 + [2] * 7


def test_blobs_moments_match_centres_and_spreads():
    centres = np.array([[0.0, 0.0, 0.0], [20.0, -5.0, 3.0]])
    spreads = np.array([0.5, 3.0])
    n = 4000
    x, labels = blobs(2 * n, centers=centres, cluster_std=spreads, random_seed=7)
    assert x.shape == (2 * n, 3)
    for k in range(2):
        members = x[labels == k]
        # sample mean within Z standard errors; sample variance within Z of its chi-square SE
        assert np.all(np.abs(members.mean(0) - centres[k]) < Z * spreads[k] / np.sqrt(n))
        assert np.all(np.abs(members.var(0, ddof=1) / spreads[k] ** 2 - 1.0) < Z * np.sqrt(2.0 / (n - 1)))


def test_blobs_random_centres_lie_in_the_box():
    x, labels = blobs(3000, centers=4, cluster_std=0.01, random_seed=8, n_features=3, center_box=(2.0, 3.0))
    centres = np.array([x[labels == k].mean(0) for k in range(4)])
    assert x.shape[1] == 3
    assert np.all((centres > 1.99) & (centres < 3.01))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_samples": [1, 2]}, ValueError, "n_samples"),
        ({"centers": 0}, ValueError, "centers"),
        ({"centers": [[np.nan, 0.0]]}, ValueError, "centers"),
        ({"centers": "three"}, TypeError, "centers"),
        ({"cluster_std": -1.0}, ValueError, "cluster_std"),
        ({"cluster_std": [1.0, 2.0]}, ValueError, "cluster_std"),
        ({"random_seed": "0"}, TypeError, "random_seed"),
        ({"n_features": 0}, ValueError, "n_features"),
        ({"center_box": (1.0, -1.0)}, ValueError, "center_box"),
    ],
)
def test_blobs_bad_inputs(kwargs, error, match):
    with pytest.raises(error, match=match):
        blobs(**kwargs)


def test_expected_e_step_normalises_expected_log_densities():
    m, kappa, nu, S = niw_factors(3, 2)
    x = np.random.default_rng(21).normal(scale=2.0, size=(500, 2))
    expected_log_weights = np.log(np.array([0.2, 0.5, 0.3])) - 0.1
    log_rho = expected_log_densities(x, m, kappa, nu, S) + expected_log_weights
    log_norm, counts, _, _ = expected_e_step_stats(x, expected_log_weights, m, kappa, nu, S)
    np.testing.assert_allclose(log_norm, special.logsumexp(log_rho, axis=1), rtol=1e-12)
    resp = np.exp(log_rho - special.logsumexp(log_rho, axis=1, keepdims=True))
    np.testing.assert_allclose(counts, resp.sum(0), rtol=1e-10)
    with pytest.raises(ValueError, match="expected_log_weights"):
        expected_e_step_stats(x, np.array([np.nan, 0.0, 0.0]), m, kappa, nu, S)


# -- the compiled pass's own pieces and the fused E-step + statistics --------------------------
def test_vectorised_exp_matches_numpy_and_handles_the_edges():
    values = np.concatenate([-np.linspace(0.0, 707.9, 200_001), [-0.0, -1e-300, -708.5, -1e4, -np.inf, np.nan]])
    # as the E-step calls it: in place on row k of a block, shifted by the row's top (0 here)
    block = values.copy()[None]
    _exp_shifted(block, 0, np.zeros(values.size), values.size, np.empty_like(values))
    out = block[0]
    reference = np.exp(values[:-6])
    np.testing.assert_allclose(out[:-6], reference, rtol=3e-16, atol=0)
    np.testing.assert_array_equal(out[-6:-1], [1.0, 1.0, 0.0, 0.0, 0.0])  # below -708: exactly 0
    assert np.isnan(out[-1])


def scipy_e_step(x, weights, means, covs):
    joint = scipy_log_densities(x, means, covs) + np.log(weights)
    log_norm = special.logsumexp(joint, axis=1)
    return log_norm, np.exp(joint - log_norm[:, None])


@pytest.mark.parametrize("n_components, dim", [(1, 1), (3, 2), (4, 5), (6, 3), (8, 10)])
def test_e_step_stats_matches_scipy_responsibilities_and_explicit_sums(n_components, dim):
    weights, means, covs = random_mixture(n_components, dim, seed=30 + dim)
    x, _ = sample(weights, means, covs, 2049 + 3 * dim)  # a partial last block
    log_norm, counts, xbar, scatters = e_step_stats(x, weights, means, covs)
    ref_log_norm, ref_resp = scipy_e_step(x, weights, means, covs)
    ref_counts, ref_means, ref_scatters = explicit_stats(x, ref_resp)
    np.testing.assert_allclose(log_norm, ref_log_norm, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(counts, ref_counts, rtol=1e-10)
    np.testing.assert_allclose(xbar, ref_means, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(scatters, ref_scatters, rtol=1e-9, atol=1e-8)
    np.testing.assert_array_equal(scatters, np.swapaxes(scatters, -1, -2))


def test_e_step_stats_far_apart_components_take_the_exact_pass():
    # two tight clusters 1e6 apart, the means on them: the recentred second pass must run
    rng = np.random.default_rng(31)
    tight = rng.normal(scale=1e-3, size=(3000, 2))
    centres = np.array([[-5e5, 1e5], [5e5, -1e5]])
    x = tight + np.where(np.arange(3000)[:, None] < 1500, centres[0], centres[1])
    covs = np.broadcast_to(1e-6 * np.eye(2), (2, 2, 2)).copy()
    log_norm, counts, xbar, scatters = e_step_stats(x, np.array([0.5, 0.5]), centres, covs)
    np.testing.assert_array_equal(counts, [1500.0, 1500.0])
    reference = np.array([1499 * np.cov(t.T) for t in (tight[:1500], tight[1500:])])
    np.testing.assert_allclose(scatters, reference, rtol=1e-6)
    np.testing.assert_allclose(xbar - centres, [tight[:1500].mean(0), tight[1500:].mean(0)], atol=1e-9)
    ref_log_norm = scipy_e_step(x, np.array([0.5, 0.5]), centres, covs)[0]
    np.testing.assert_allclose(log_norm, ref_log_norm, rtol=1e-9)


def test_e_step_stats_rejects_non_finite_data():
    weights, means, covs = random_mixture(2, 2, seed=32)
    x = np.zeros((700, 2))
    x[612, 0] = np.nan
    with pytest.raises(ValueError, match=r"x must be finite; NaN or inf at rows \[612\]"):
        e_step_stats(x, weights, means, covs)


@pytest.mark.parametrize("n_components", [3, 6])
def test_expected_e_step_stats_matches_niw_expectations_and_explicit_sums(n_components):
    m, kappa, nu, S = niw_factors(n_components, 3, seed=33)
    x = np.random.default_rng(34).normal(scale=2.0, size=(1300, 3)) + 1e5
    m = m + 1e5
    niw = NormalInverseWishart(m, kappa, nu, S)
    expected_log_weights = np.log(np.arange(1.0, n_components + 1) / np.sum(np.arange(1.0, n_components + 1))) - 0.2
    log_rho = 0.5 * (expected_log_det_precision(niw) - 3 * np.log(2 * np.pi) - expected_mahalanobis(niw, x))
    log_rho = log_rho + expected_log_weights
    ref_log_norm = special.logsumexp(log_rho, axis=1)
    ref_counts, ref_means, ref_scatters = explicit_stats(x, np.exp(log_rho - ref_log_norm[:, None]))
    log_norm, counts, xbar, scatters = expected_e_step_stats(x, expected_log_weights, m, kappa, nu, S)
    np.testing.assert_allclose(log_norm, ref_log_norm, rtol=1e-10)
    np.testing.assert_allclose(counts, ref_counts, rtol=1e-9)
    np.testing.assert_allclose(xbar, ref_means, rtol=1e-12)
    np.testing.assert_allclose(scatters, ref_scatters, rtol=1e-7, atol=1e-8)
