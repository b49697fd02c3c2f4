"""Gibbs and VB start from the best of a few short MAP-EM runs (``em.em_start``), jittered per
chain, rather than from random points that can trap a chain in the mirror-image labelling.

posteriordb's ``hmm_example`` (100 draws from a two-state HMM with unit-variance emissions
around 3 and 9) with the posteriordb model's priors mu_1 ~ N(3, 1), mu_2 ~ N(10, 1): the prior
tells the states apart, so every chain must report state 0 near 3 and state 1 near 9.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from latentzoo.inference import ConvergenceWarning, fit
from latentzoo.inference.backends.em import em_start
from latentzoo.models import GaussianHMM, GaussianMixture

# posteriordb's hmm_example data, copied from the shared data sets (tests/data/README.md)
DATA = Path(__file__).parent / "data" / "posteriordb_hmm_example.json"


@pytest.fixture(scope="module")
def hmm_example():
    y = np.asarray(json.loads(DATA.read_text())["y"], float)[:, None]
    # posteriordb's hmm_example: sigma = 1 known, mu_k ~ N(m0_k, 1) (kappa0 = 1 with unit covariances)
    model = GaussianHMM(n_states=2, n_features=1, m0=[[3.0], [10.0]], kappa0=1.0, covs=[[[1.0]], [[1.0]]])
    return model, y


def _gibbs(model, y, random_seed=0, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(model, y, backend="gibbs", random_seed=random_seed, progressbar=False, **options)


def test_hmm_example_gibbs_chains_all_in_the_priors_labelling(hmm_example):
    model, y = hmm_example
    result = _gibbs(model, y)
    per_chain = result.posterior["means"].values[..., 0].mean(axis=1)  # (chain, state)
    assert per_chain.shape == (4, 2)
    # the prior's labelling: state 0 near its prior mean 3, state 1 near 10 (the data put it near 9)
    assert np.all(np.abs(per_chain[:, 0] - 3.0) < 0.5) and np.all(np.abs(per_chain[:, 1] - 9.0) < 0.5)
    assert result.posterior.attrs["max_rhat"] < 1.05
    assert result.attrs["init"] == "em"
    # jittered: the chains start apart (the first kept draws differ), and a seed fixes them all
    first = result.posterior["means"].values[:, 0, :, 0]
    assert len({tuple(row) for row in first.round(12)}) == 4
    again = _gibbs(model, y)
    np.testing.assert_array_equal(again.posterior["means"].values, result.posterior["means"].values)


def test_hmm_example_random_starts_fail_the_rhat_check(hmm_example):
    """The check above can fail: from random starts, one chain (seed 1) settles in the mirrored
    labelling and R-hat flags it (seeds 1-5 and 7 of 0-7 put at least one chain there)."""
    model, y = hmm_example
    result = _gibbs(model, y, init="random", random_seed=1)
    per_chain = result.posterior["means"].values[..., 0].mean(axis=1)
    mirrored = per_chain[:, 0] > per_chain[:, 1]
    assert mirrored.any() and not mirrored.all()
    assert result.posterior.attrs["max_rhat"] > 1.05


def test_hmm_example_vb_in_the_priors_labelling(hmm_example):
    model, y = hmm_example
    means = fit(model, y, backend="vb", random_seed=0, progressbar=False).posterior["means"].values[..., 0].mean(axis=(0, 1))
    assert abs(means[0] - 3.0) < 0.5 and abs(means[1] - 9.0) < 0.5


def test_the_em_start_is_at_least_as_good_as_em():
    """On iris the start's log posterior is at least EM's (k-means++, five restarts) under the
    same (data-driven) prior, up to the short runs' unfinished last steps (0.01 nats): the start
    keeps the best end point it sees."""
    from sklearn.datasets import load_iris

    x = load_iris().data
    model = GaussianMixture(3).with_data_prior(x)
    data = model.check_data(x)
    start = em_start(model, data, np.random.default_rng(0))
    em = fit(model, x, backend="em", random_seed=0, progressbar=False)
    best = {name: em.posterior[name].values[0, 0] for name in model.param_names}

    def log_posterior(params):
        return float(model.log_likelihood(data, params).sum() + model.log_prior(params))

    assert log_posterior(start) >= log_posterior(best) - 0.01


@pytest.mark.parametrize("model_class", [GaussianMixture, GaussianHMM])
def test_data_without_spread_ask_for_an_explicit_scale(model_class):
    model = model_class(2, 2) if model_class is GaussianHMM else model_class(2)
    x = np.full((20, 2), 1.5)
    with pytest.raises(ValueError, match=r"the data have no spread .*data-driven prior is degenerate.*explicit prior scale S0"):
        fit(model, x, backend="em", random_seed=0, progressbar=False)
    # a constant feature beside a varying one: no spread in that direction
    x[:, 1] = np.arange(20.0)
    with pytest.raises(ValueError, match=r"no spread in some direction \(a constant feature"):
        fit(model, x, backend="em", random_seed=0, progressbar=False)


def test_identical_points_fit_with_an_explicit_scale():
    x = np.full((20, 2), 1.5)
    result = fit(GaussianMixture(2, S0=np.eye(2)), x, backend="em", random_seed=0, progressbar=False)
    np.testing.assert_allclose(result.posterior["means"].values[0, 0], 1.5, atol=1e-6)
