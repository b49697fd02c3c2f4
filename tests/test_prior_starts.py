"""The mixtures' ``"prior"`` start (SMC draws its first population with it): a draw inside the
support of every parameter, from the prior, and another draw for another seed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from latentzoo.models import BernoulliMixture, GaussianMixture, PoissonMixture
from latentzoo.models.datasets import old_faithful

RNG = np.random.default_rng(3)
CASES = [
    pytest.param(PoissonMixture(2), RNG.poisson(4.0, size=60), id="poisson"),
    pytest.param(BernoulliMixture(3, n_features=5), RNG.integers(0, 2, size=(40, 5)), id="bernoulli"),
    pytest.param(GaussianMixture(2).with_data_prior(old_faithful()), old_faithful(), id="gmm"),
]


@pytest.mark.parametrize("model, data", CASES)
def test_a_prior_start_lies_in_the_support_and_depends_on_the_seed(model, data):
    first = model.initial_params(data, np.random.default_rng(0), "prior")
    again = model.initial_params(data, np.random.default_rng(0), "prior")
    other = model.initial_params(data, np.random.default_rng(1), "prior")
    assert np.isfinite(model.log_prior(first))
    weights = first["weights"]
    assert np.all(weights > 0) and np.isclose(weights.sum(), 1.0)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert any(not np.array_equal(first[name], other[name]) for name in first)


def test_poisson_prior_starts_follow_the_gamma_prior():
    """400 draws of the rates against the Gamma prior's own distribution (Kolmogorov-Smirnov):
    a start that ignored the prior (say, rates near the data's mean) fails."""
    model, data = PoissonMixture(2), RNG.poisson(4.0, size=60)
    rng = np.random.default_rng(7)
    rates = np.concatenate([model.initial_params(data, rng, "prior")["rates"] for _ in range(200)])
    gamma = model.prior()["rates"]
    shape, rate = float(np.ravel(gamma.shape)[0]), float(np.ravel(gamma.rate)[0])
    reference = stats.gamma(shape, scale=1.0 / rate)
    assert stats.kstest(rates, reference.cdf).pvalue > 1e-3
    assert stats.kstest(np.full_like(rates, data.mean()) + rng.normal(0, 0.5, rates.size), reference.cdf).pvalue < 1e-3
