"""What the whole Gaussian-mixture fit computes besides its iterations, against SciPy and NumPy:
the pointwise hooks on the compiled pass (one parameter set or a batch of draws), the summed
E-step, the log-evidence pass, and the column summaries that validation records once."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from latentzoo.models import GaussianMixture
from latentzoo.models.gaussian.data import GaussianData, mean_round_off
from latentzoo.models.mixture.gaussian import _COMPILED_FROM_ROWS
from latentzoo.models.gaussian.kernels import e_step, e_step_stats, expected_e_step_stats


def random_params(rng, K, D):
    weights = rng.dirichlet(np.ones(K))
    means = rng.normal(0.0, 3.0, (K, D))
    factors = rng.normal(size=(K, D, D))
    covs = factors @ np.swapaxes(factors, 1, 2) + np.eye(D)
    return {"weights": weights, "means": means, "covs": covs}


def scipy_log_joint(x, params):
    """log(weights_k N(x_n | means_k, covs_k)), shape (N, K), by SciPy."""
    return np.stack([np.log(w) + multivariate_normal(m, c).logpdf(x).reshape(len(x))
                     for w, m, c in zip(params["weights"], params["means"], params["covs"])], axis=1)


@pytest.mark.parametrize("K, D, N", [(1, 2, 300), (4, 3, 1001), (8, 2, 700)])  # K = 8: the BLAS moments
def test_log_evidence_and_summed_e_step_match_scipy(K, D, N):
    rng = np.random.default_rng(K + 10 * D)
    x = rng.normal(0.0, 4.0, (N, D)) + 100.0  # offset data
    params = random_params(rng, K, D)
    params["means"] += 100.0
    reference = logsumexp(scipy_log_joint(x, params), axis=1)
    np.testing.assert_allclose(e_step(x, **params, want_resp=False)[0], reference, rtol=1e-12)
    total, counts, means, scatters = e_step_stats(x, **params, summed=True)
    assert isinstance(total, float)
    assert total == pytest.approx(reference.sum(), rel=1e-12)
    per_point, *stats = e_step_stats(x, **params)
    np.testing.assert_allclose(per_point, reference, rtol=1e-12)
    for summed_stat, stat in zip((counts, means, scatters), stats):
        np.testing.assert_array_equal(summed_stat, stat)
    # a centre passed in moves where the moments are accumulated, not the statistics
    centred = e_step_stats(x, **params, centre=x.mean(0) + 0.5, summed=True)
    assert centred[0] == pytest.approx(total, rel=1e-13)
    for value, expected in zip(centred[1:], (counts, means, scatters)):
        np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-9)


def test_summed_vb_e_step_is_the_sum_of_the_pointwise_one():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(999, 2))
    K = 3
    args = (np.log(np.full(K, 1 / K)), rng.normal(size=(K, 2)), np.full(K, 2.0), np.full(K, 6.0), np.stack([np.eye(2)] * K))
    per_point = expected_e_step_stats(x, *args)
    summed = expected_e_step_stats(x, *args, summed=True)
    assert summed[0] == pytest.approx(per_point[0].sum(), rel=1e-12)


def test_a_non_finite_point_is_still_named_with_the_summed_e_step():
    x = np.random.default_rng(0).normal(size=(50, 2))
    x[7, 1] = np.nan
    params = random_params(np.random.default_rng(1), 2, 2)
    with pytest.raises(ValueError, match=r"rows \[7\]"):
        e_step_stats(x, **params, summed=True)


@pytest.mark.parametrize("batch", [(), (1, 1), (2, 3)])
def test_pointwise_hooks_on_the_compiled_pass_match_scipy(batch):
    rng = np.random.default_rng(len(batch))
    K, D = 3, 2
    N = _COMPILED_FROM_ROWS + 17  # long enough for the compiled pass, per parameter set
    model = GaussianMixture(K, m0=np.zeros(D), S0=np.eye(D), nu0=4.0)
    data = model.check_data(rng.normal(0.0, 3.0, (N, D)))
    sets = [random_params(rng, K, D) for _ in range(int(np.prod(batch, dtype=int)))]
    draws = {name: np.stack([s[name] for s in sets]).reshape(batch + sets[0][name].shape) for name in sets[0]}
    log_lik = model.log_likelihood(data, draws)
    resp = model.latent_posterior(data, draws)["responsibilities"]
    assert log_lik.shape == batch + (N,) and resp.shape == batch + (N, K)
    for index, params in zip(np.ndindex(*batch), sets):
        log_joint = scipy_log_joint(data.x, params)
        reference = logsumexp(log_joint, axis=1)
        np.testing.assert_allclose(log_lik[index], reference, rtol=1e-12)
        np.testing.assert_allclose(resp[index], np.exp(log_joint - reference[:, None]), atol=1e-12)


def test_a_draw_that_is_not_positive_definite_is_named():
    rng = np.random.default_rng(2)
    model = GaussianMixture(2, m0=np.zeros(2), S0=np.eye(2), nu0=4.0)
    data = model.check_data(rng.normal(size=(_COMPILED_FROM_ROWS, 2)))
    draws = {"weights": np.full((1, 2, 2), 0.5), "means": np.zeros((1, 2, 2, 2)), "covs": np.tile(np.eye(2), (1, 2, 2, 1, 1))}
    draws["covs"][0, 1, 1] = [[1.0, 2.0], [2.0, 1.0]]  # draw 1, component 1: indefinite
    with pytest.raises(ValueError, match=r"draw 1\).*component 1"):
        model.log_likelihood(data, draws)


@pytest.mark.parametrize("order", ["C", "F"])
def test_validation_records_the_column_summaries(order):
    rng = np.random.default_rng(3)
    raw = np.asarray(rng.normal(5.0, [1.0, 1e-3, 40.0], (5000, 3)), order=order)
    data = GaussianData(raw)
    assert data.x.flags.c_contiguous and not data.x.flags.writeable
    low, high = data.extremes
    np.testing.assert_array_equal(low, raw.min(0))
    np.testing.assert_array_equal(high, raw.max(0))
    mean, scatter = data.moments
    np.testing.assert_allclose(mean, raw.mean(0), rtol=1e-13)
    np.testing.assert_allclose(scatter, np.cov(raw.T, bias=True) * len(raw), rtol=1e-11)
    model = GaussianMixture(2)
    assert model.objective_round_off(data) == pytest.approx(mean_round_off(raw), rel=1e-9)
    # shared by a GaussianData made from this one
    again = GaussianData(data, feature_names=("a", "b", "c"))
    assert again.moments is data.moments and again.extremes is data.extremes


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_single_non_finite_value_is_refused(bad):
    x = np.random.default_rng(4).normal(size=(1000, 3))
    x[517, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        GaussianData(x)


def test_the_data_prior_comes_from_the_recorded_moments():
    rng = np.random.default_rng(6)
    x = rng.normal(0.0, [2.0, 0.5], (800, 2)) + [1e3, -4.0]
    model = GaussianMixture(3).with_data_prior(x)
    np.testing.assert_allclose(model.m0, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(model.S0, np.cov(x.T, bias=True) / 3 ** (2 / 2), rtol=1e-10)
