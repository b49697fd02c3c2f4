"""Small default tests that catch planted faults (tests/mutation/run_mutants.py) no other
default test caught, each against an independent reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from latentzoo.models import CategoricalHMM

pytestmark = pytest.mark.pymc


def test_explicit_state_hmm_log_density_is_the_joint_of_path_and_symbols():
    # pymc_gibbs samples this declaration; its log-density at (parameters, path) must be the
    # complete-data log-joint, written out here term by term with scipy's Dirichlet. A
    # transposed transition lookup (mutant hmm-pymc-explicit-chain-transposed) breaks it.
    model = CategoricalHMM(n_states=2, n_symbols=3)
    symbols = np.array([0, 1, 2, 2, 1, 0, 0, 2])
    pm_model = model.pymc_model(symbols, marginalized=False)
    logp = pm_model.compile_logp(jacobian=False)
    rng = np.random.default_rng(7)
    for _ in range(3):
        params = {
            "init_probs": rng.dirichlet(np.ones(2)),
            # strongly asymmetric rows, so that trans[i, j] and trans[j, i] differ
            "trans_mat": np.array([rng.dirichlet([8.0, 1.0]), rng.dirichlet([4.0, 4.0])]),
            "emission_probs": rng.dirichlet(np.ones(3), size=2),
        }
        path = rng.integers(0, 2, size=symbols.size)
        values = {"states": path}
        for var in pm_model.free_RVs:
            if var.name == "states":
                continue
            transform = pm_model.rvs_to_transforms[var]
            values[pm_model.rvs_to_values[var].name] = transform.forward(params[var.name], *var.owner.inputs).eval()
        expected = (
            stats.dirichlet.logpdf(params["init_probs"], np.ones(2))
            + sum(stats.dirichlet.logpdf(row, np.ones(2)) for row in params["trans_mat"])
            + sum(stats.dirichlet.logpdf(row, np.ones(3)) for row in params["emission_probs"])
            + np.log(params["init_probs"][path[0]])
            + sum(np.log(params["trans_mat"][a, b]) for a, b in zip(path[:-1], path[1:]))
            + sum(np.log(params["emission_probs"][z, x]) for z, x in zip(path, symbols))
        )
        np.testing.assert_allclose(logp(values), expected, rtol=1e-9)


def test_pit_values_of_the_extreme_ranks_fill_the_end_bins_of_the_unit_interval():
    # L draws give L + 1 possible ranks, so rank r maps to ((r, r + 1) / (L + 1)): rank L to
    # the top bin, below 1 (mutant sbc-pit-off-by-one divides by L and leaves (0, 1))
    from latentzoo.inference.calibration import sbc_ranks

    n_ranked = np.array([3, 3, 9])
    ranks = np.array([[3], [0], [9]])
    pit = np.stack([sbc_ranks.pit_from_ranks(ranks, n_ranked, np.random.default_rng(seed))[:, 0] for seed in range(200)])
    assert np.all((pit[:, 0] > 0.75) & (pit[:, 0] < 1.0))
    assert np.all((pit[:, 1] > 0.0) & (pit[:, 1] < 0.25))
    assert np.all((pit[:, 2] > 0.9) & (pit[:, 2] < 1.0))
