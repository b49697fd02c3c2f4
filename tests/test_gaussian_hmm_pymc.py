"""GaussianHMM's PyMC declaration: its log-density equals the NumPy log-posterior at random
points (scipy densities check the NumPy side in test_gaussian_hmm.py), and NUTS agrees with the
exact posterior on tiny data (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from latentzoo.inference import fit
from latentzoo.models import GaussianHMM

from .conftest import Reference, agreement_failures, assert_no_failures
from .test_gaussian_hmm import TINY, TINY_MODEL, simulated

pytestmark = pytest.mark.pymc


def _check_log_density(model, data, n_points=4):
    pm_model = model.pymc_model(data)
    logp = pm_model.compile_logp(jacobian=False)
    rng = np.random.default_rng(0)
    for _ in range(n_points):
        params = model.initial_params(model.check_data(data), rng, "prior")
        point = {var.name: None for var in pm_model.value_vars}
        # the free variables in their transformed spaces, through PyMC's own transforms
        values = {}
        for var in pm_model.free_RVs:
            value_var = pm_model.rvs_to_values[var]
            transform = pm_model.rvs_to_transforms.get(var)
            value = np.asarray(params[var.name], float)
            values[value_var.name] = transform.forward(value, *var.owner.inputs).eval() if transform is not None else value
        assert set(values) == set(point)
        expected = float(model.log_prior(params)) + float(model.log_likelihood(data, params).sum())
        np.testing.assert_allclose(logp(values), expected, rtol=1e-9)


def test_pymc_log_density_equals_the_numpy_log_posterior():
    x, _ = simulated(40, seed=3)
    x[7] = np.nan
    model = GaussianHMM(2, 2, init_prior=[1.5, 2.0], trans_prior=[[4.0, 1.0], [1.0, 4.0]], m0=[[0.0, 1.0], [3.0, -1.0]],
                        kappa0=0.3, nu0=4.5, S0=[[1.0, 0.2], [0.2, 2.0]])
    _check_log_density(model, [x[:15], x[15:]])


@pytest.mark.slow
def test_pymc_log_density_with_fixed_covariances_and_initial_distribution():
    x, _ = simulated(30, seed=4)
    covs = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]]])
    _check_log_density(GaussianHMM(2, 2, covs=covs, init_probs=[0.3, 0.7], m0=[0.0, 0.0], kappa0=0.5), x)


@pytest.mark.slow
def test_nuts_agrees_with_the_exact_posterior():
    exact = fit(TINY_MODEL, TINY, backend="exact", random_seed=0, draws=20000).posterior
    nuts = fit(TINY_MODEL, TINY, backend="nuts", random_seed=2, draws=1000, tune=1000, chains=2, cores=1, progressbar=False).posterior
    failures = []
    for name in TINY_MODEL.param_names:
        failures += agreement_failures(name, nuts[name].values, Reference.from_draws(exact[name].values))
    assert_no_failures(failures)
