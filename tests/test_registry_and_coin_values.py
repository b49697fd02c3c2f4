"""The registry's errors, and the three coins' results from every back-end checked against scipy.

The result layout (groups, names, dims, coords, attrs, NetCDF) of every model is tested in
``test_contract_models.py``; here the values in a three-coin result (both the free-pi and the
fixed-pi model) are recomputed independently: the pointwise log-likelihood and the
probability that each trial used coin B, from scipy's binomial.
Fits are cached for the session (tests/conftest.py), so each pair is fitted once.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from latentzoo.inference import BACKENDS, applicable_backends, fit
from latentzoo.models import ThreeCoins

from .conftest import DATASETS, EXPECTED_GROUPS, PYMC_BACKENDS, heads_and_flips, reference_log_likelihood

POINT_ESTIMATES = {"em", "map"}

#: (model, data set) rows of the contract table; every applicable back-end is run on each
CONTRACT_MODELS = [(ThreeCoins(), "seed"), (ThreeCoins(pi=0.5), "seed")]
#: PyMC back-ends whose pairs here run only in the slow suite (see _marks)
NEWER_PYMC = ("smc", "laplace", "pathfinder", "svgd")


def _marks(model, backend) -> list:
    if backend not in PYMC_BACKENDS:
        return []
    # the fixed-pi variant compiles its own PyMC graphs (minutes with a cold compile cache):
    # its PyMC rows run with the slow tests, the free-pi model covers the PyMC back-ends by default.
    # The back-ends of issue 28 are slow here too: test_contract_models checks their log-likelihood
    # and latent posteriors on this very model and data by default, and each fit costs 2-5 s warm
    slow = model.pi is not None or backend in NEWER_PYMC
    return [pytest.mark.pymc] + ([pytest.mark.slow] if slow else [])


PAIRS = [
    pytest.param(model, dataset, backend, id=f"{type(model).__name__}{'(pi=0.5)' if model.pi else ''}-{backend}",
                 marks=_marks(model, backend))
    for model, dataset in CONTRACT_MODELS
    for backend in applicable_backends(model)
]


def test_contract_table_covers_every_backend():
    assert set(EXPECTED_GROUPS) == set(BACKENDS)
    for model, _ in CONTRACT_MODELS:
        assert set(applicable_backends(model)) == set(BACKENDS)


@pytest.mark.parametrize("model, dataset, backend", PAIRS)
def test_observed_data_and_pointwise_log_likelihood(fitted, model, dataset, backend):
    idata = fitted(model, dataset, backend)
    data = DATASETS[dataset]
    flips = np.array([int(c) for c in data]) if isinstance(data, str) else data
    np.testing.assert_array_equal(idata.observed_data["flips"].values, flips)
    assert idata.observed_data["flips"].dims == ("trial",)
    log_lik = idata.log_likelihood["flips"]
    posterior = idata.posterior
    assert log_lik.dims == ("chain", "draw", "trial")
    assert log_lik.shape == (posterior.sizes["chain"], posterior.sizes["draw"], len(flips))
    pi = posterior["pi"].values if model.pi is None else model.pi
    reference = reference_log_likelihood(data, pi, posterior["p"].values, posterior["q"].values)
    np.testing.assert_allclose(log_lik.values, reference, rtol=1e-10)


@pytest.mark.parametrize("model, dataset, backend", PAIRS)
def test_derived_and_latent_quantities(fitted, model, dataset, backend):
    posterior = fitted(model, dataset, backend).posterior
    pi = posterior["pi"].values if model.pi is None else model.pi
    p, q = posterior["p"].values, posterior["q"].values
    np.testing.assert_allclose(posterior["heads_prob"].values, pi * p + (1 - pi) * q, rtol=1e-12)
    coin_b = posterior["coin_b_prob"].values
    assert np.all((coin_b >= 0) & (coin_b <= 1))
    heads, m = heads_and_flips(DATASETS[dataset])
    pi, p, q = (np.asarray(v, float)[..., None] for v in (pi, p, q))
    joint_b = pi * stats.binom.pmf(heads, m, p)
    np.testing.assert_allclose(coin_b, joint_b / (joint_b + (1 - pi) * stats.binom.pmf(heads, m, q)), rtol=1e-9)


# ----------------------------------------------------------------------------------------
# the registry's errors
# ----------------------------------------------------------------------------------------
def test_unknown_backend_lists_valid_ones(seed_data):
    with pytest.raises(ValueError, match="unknown backend 'nutz'") as error:
        fit(ThreeCoins(), seed_data, backend="nutz")
    for name in applicable_backends(ThreeCoins()):
        assert repr(name) in str(error.value)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_option_not_accepted_by_backend_is_named(backend, seed_data):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['not_an_option'\]"):
        fit(ThreeCoins(), seed_data, backend=backend, not_an_option=1)


@pytest.mark.parametrize("backend, option", [("em", "draws"), ("exact", "tol"), ("gibbs", "mle"), ("map", "chains"), ("vb", "chains")])
def test_option_of_another_backend_is_rejected(backend, option, seed_data):
    with pytest.raises(ValueError, match=f"'{option}'.*backend '{backend}'"):
        fit(ThreeCoins(), seed_data, backend=backend, **{option: 1})
