"""The ``gibbs`` back-end's ``check_mixing`` option: skipping the mixing check changes no draw,
only what is reported about the chains (references: the default run of the same seed)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from latentzoo.inference import fit
from latentzoo.inference.diagnostics import ConvergenceWarning
from latentzoo.models import DiceHMM, GaussianMixture, datasets

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
