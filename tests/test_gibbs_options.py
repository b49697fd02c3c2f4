"""The ``gibbs`` back-end's ``check_mixing`` option: skipping the mixing check changes no draw,
only what is reported about the chains (references: the default run of the same seed)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from latentzoo.inference import fit
from latentzoo.inference.diagnostics import ConvergenceWarning
from latentzoo.models import DiceHMM, GaussianMixture, ThreeCoins, datasets

ROLLS = [1, 6, 3, 5, 2, 7, 3, 5, 2, 4]
SHORT = {"init": "random", "chains": 2, "draws": 10, "tune": 0, "progressbar": False}


@pytest.mark.parametrize("model, data", [(DiceHMM(), ROLLS),
                                         (GaussianMixture(n_components=2), datasets.old_faithful()[:60])])
def test_skipping_the_mixing_check_keeps_every_draw(model, data):
    checked = fit(model, data, backend="gibbs", random_seed=7, **SHORT)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # no R-hat, so nothing to warn about
        skipped = fit(model, data, backend="gibbs", random_seed=7, check_mixing=False, **SHORT)
    for name in model.param_names:
        np.testing.assert_array_equal(skipped["posterior"][name].values, checked["posterior"][name].values)
    assert math.isnan(skipped["posterior"].attrs["max_rhat"])
    assert skipped["posterior"].attrs["mixing_checked"] == 0
    # the default is unchanged: R-hat computed (two chains), no mixing_checked attr
    assert np.isfinite(checked["posterior"].attrs["max_rhat"]) and "mixing_checked" not in checked["posterior"].attrs


def test_short_random_chains_warn_only_when_checked():
    # 2 chains x 10 sweeps from random starts on the seed's rolls disagree (R-hat well above 1.01)
    with pytest.warns(ConvergenceWarning, match="R-hat"):
        fit(DiceHMM(), ROLLS, backend="gibbs", random_seed=7, **SHORT)


@pytest.mark.parametrize("model", [ThreeCoins(), ThreeCoins(pi=0.5), ThreeCoins(p_prior=(0.02, 0.02), q_prior=(0.5, 3.0))],
                         ids=["uniform", "two-coin", "boundary-draws"])
def test_all_chains_at_once_draws_what_chain_by_chain_draws(model):
    # the three coins sweep every chain in one call (BatchedSweep); each chain drawing from its
    # own generator, the draws must be those of the chains run one after the other
    from latentzoo.inference.backends import gibbs

    data = model.check_data(np.random.default_rng(1).integers(0, 2, (30, 4)))

    def start_at(rng):
        return model.initial_params(data, rng, "random")

    silent = type("Silent", (), {"advance": lambda self, steps=1, **fields: None})()
    one_by_one = gibbs._chain_by_chain(model, data, start_at, np.random.default_rng(7).spawn(3), 4, 40, silent)
    at_once = gibbs._all_chains_at_once(model, data, start_at, np.random.default_rng(7).spawn(3), 4, 40, silent)
    assert set(at_once) == set(one_by_one) == set(model.param_names)
    for name in model.param_names:
        assert at_once[name].shape == (3, 40)
        np.testing.assert_array_equal(at_once[name], one_by_one[name])
    if model.p_prior == (0.02, 0.02):  # the general path for biases of exactly 0 or 1 was taken
        assert np.any(np.isin(one_by_one["p"], (0.0, 1.0)))
