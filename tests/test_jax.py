"""NUTS on JAX: latentzoo's Ops in JAX, every model's log-density on JAX, NumPyro and BlackJAX.

References never come from the code under test:

* the JAX Ops against enumeration of every state path of tiny HMMs (written here in JAX, so
  that ``jax.grad`` of the enumeration gives the reference gradient);
* every model's JAX log-density and gradient against the default (Numba) compiled ones;
* NUTS against the exact posterior (closed forms, path enumeration) within Monte-Carlo error.

The default suite keeps to the cheap part (about 40 s cold on two cores, most of it JAX's
compilation of the two NUTS loops); the other models' log-densities and their NumPyro runs are
slow-marked.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("numpyro")
pytest.importorskip("blackjax")

from latentzoo.inference import fit  # noqa: E402
from latentzoo.models import CategoricalHMM, GaussianMixture  # noqa: E402
from latentzoo.models.hmm import kernels  # noqa: E402
from latentzoo.models.ops.jax_ops import (  # noqa: E402
    categorical_hmm_log_likelihood,
    log_emission_hmm_log_likelihood,
    register_jax_ops,
)

from .conftest import DATASETS, Reference, agreement_failures, assert_no_failures  # noqa: E402
from .test_contract_models import MODEL_ROWS  # noqa: E402

jnp = jax.numpy
pytestmark = pytest.mark.pymc


# ----------------------------------------------------------------------------------------
# the Ops against path enumeration
# ----------------------------------------------------------------------------------------
def enumerated_log_likelihood(init, trans, log_lik, offsets):
    """sum_s log p(x_s) by summing over every state path of every sequence (log space)."""
    n_states = init.shape[0]
    total = 0.0
    for start, stop in zip(offsets[:-1], offsets[1:]):
        paths = np.array(list(itertools.product(range(n_states), repeat=int(stop - start))))
        steps = np.arange(start, stop)
        log_path = jnp.log(init)[paths[:, 0]] + log_lik[steps, paths].sum(axis=1)
        if stop - start > 1:
            log_path = log_path + jnp.log(trans)[paths[:, :-1], paths[:, 1:]].sum(axis=1)
        total = total + jax.nn.logsumexp(log_path)
    return total


def random_hmm(rng, n_states, n_symbols):
    init = rng.dirichlet(np.ones(n_states))
    trans = rng.dirichlet(np.ones(n_states), n_states)
    emission = rng.dirichlet(np.ones(n_symbols), n_states)
    return init, trans, emission


#: three sequences of lengths 4, 1 and 3; symbol 3 is the column of ones that codes a missing step
RAGGED_SYMBOLS = np.array([0, 2, 3, 1, 1, 2, 0, 3])
RAGGED_OFFSETS = np.array([0, 4, 5, 8])


def with_missing_column(emission):
    return np.concatenate([emission, np.ones((emission.shape[0], 1))], axis=1)


def enumerated_value_and_grad(log_lik):
    """Value and gradient of ``log_lik(init, trans, third)``, jitted (one compilation instead of
    one per primitive)."""
    return jax.jit(jax.value_and_grad(log_lik, argnums=(0, 1, 2)))


def numba_categorical(init, trans, emission, symbols, offsets):
    """The Numba kernel behind the PyTensor Op on the log of a table; the table's gradient by the
    chain rule (0 at its zeros)."""
    with np.errstate(divide="ignore"):
        log_table = np.log(emission)
    value, grad_init, grad_trans, grad_log = kernels.log_table_gradient(init, trans, log_table.T, symbols, offsets)
    positive = emission > 0
    return value, grad_init, grad_trans, np.where(positive, grad_log.T / np.where(positive, emission, 1.0), 0.0)


def numba_log_emission(init, trans, log_emission, offsets):
    """The Numba kernel behind the PyTensor Op on a (T, K) matrix, at the rows 0..T-1."""
    return kernels.log_table_gradient(init, trans, log_emission, np.arange(log_emission.shape[0]), offsets)


def categorical_reference(init, trans, emission, symbols, offsets):
    def log_lik(init, trans, emission):
        return enumerated_log_likelihood(init, trans, jnp.log(emission).T[symbols], offsets)

    return enumerated_value_and_grad(log_lik)(init, trans, emission)


def test_categorical_op_matches_path_enumeration_on_ragged_sequences_with_missing_steps():
    init, trans, emission = random_hmm(np.random.default_rng(0), 3, 3)
    emission = with_missing_column(emission)
    value, *grads = categorical_hmm_log_likelihood(init, trans, emission, RAGGED_SYMBOLS, RAGGED_OFFSETS)
    expected_value, expected_grads = categorical_reference(init, trans, emission, RAGGED_SYMBOLS, RAGGED_OFFSETS)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)
    # the Numba kernel behind the PyTensor Op gives the same (what the model tests rely on)
    numba_value, *numba_grads = numba_categorical(init, trans, emission, RAGGED_SYMBOLS, RAGGED_OFFSETS)
    np.testing.assert_allclose(value, numba_value, rtol=1e-12)
    for grad, expected in zip(grads, numba_grads):
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)


def test_enumeration_tells_a_pass_that_ignores_the_sequence_boundaries():
    """Power: the same symbols read as one sequence (the boundaries ignored) fail the comparison."""
    init, trans, emission = random_hmm(np.random.default_rng(0), 3, 3)
    emission = with_missing_column(emission)
    joined = categorical_hmm_log_likelihood(init, trans, emission, RAGGED_SYMBOLS, np.array([0, 8]))
    expected_value, expected_grads = categorical_reference(init, trans, emission, RAGGED_SYMBOLS, RAGGED_OFFSETS)
    assert not np.isclose(joined[0], expected_value, rtol=1e-6)
    assert not np.allclose(joined[2], expected_grads[1], rtol=1e-6)


def test_log_emission_op_matches_path_enumeration_with_tiny_densities():
    rng = np.random.default_rng(1)
    init, trans, _ = random_hmm(rng, 3, 2)
    offsets = np.array([0, 3, 5])
    # densities far below exp(-745) (they would underflow unshifted) and a missing step (zeros)
    log_emission = rng.normal(size=(5, 3)) - np.array([[900.0], [0.0], [0.0], [1200.0], [0.0]])
    log_emission[2] = 0.0
    value, grad_init, grad_trans, gamma = log_emission_hmm_log_likelihood(init, trans, log_emission, offsets)
    reference = enumerated_value_and_grad(lambda i, t, e: enumerated_log_likelihood(i, t, e, offsets))(
        init, trans, log_emission
    )
    np.testing.assert_allclose(value, reference[0], rtol=1e-12)
    for grad, expected in zip((grad_init, grad_trans, gamma), reference[1]):
        np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, rtol=1e-12)


def test_jax_gradient_of_the_value_is_the_forward_backward_gradient():
    """What NumPyro and BlackJAX differentiate: jax.grad of the Op's value output, jitted."""
    init, trans, emission = random_hmm(np.random.default_rng(2), 2, 3)
    emission = with_missing_column(emission)

    @jax.jit
    def log_lik(init, trans, emission):
        return categorical_hmm_log_likelihood(init, trans, emission, RAGGED_SYMBOLS, RAGGED_OFFSETS)[0]

    _, expected = categorical_reference(init, trans, emission, RAGGED_SYMBOLS, RAGGED_OFFSETS)
    for grad, reference in zip(jax.grad(log_lik, argnums=(0, 1, 2))(init, trans, emission), expected):
        np.testing.assert_allclose(grad, reference, rtol=1e-10, atol=1e-12)

    log_emission = np.log(emission).T[RAGGED_SYMBOLS]
    grads = jax.jit(jax.grad(lambda *a: log_emission_hmm_log_likelihood(*a, RAGGED_OFFSETS)[0], argnums=(0, 1, 2)))(
        init, trans, log_emission
    )
    _, reference = enumerated_value_and_grad(lambda *a: enumerated_log_likelihood(*a, RAGGED_OFFSETS))(
        init, trans, log_emission
    )
    for grad, expected in zip(grads, reference):
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)


def test_zero_entries_get_zero_gradient_and_the_others_match_enumeration():
    init = np.array([1.0, 0.0])
    trans = np.array([[0.0, 1.0], [0.6, 0.4]])
    emission = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    symbols, offsets = np.array([0, 1, 2, 0]), np.array([0, 4])
    value, *grads = categorical_hmm_log_likelihood(init, trans, emission, symbols, offsets)
    expected_value, expected_grads = categorical_reference(init, trans, emission, symbols, offsets)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    for grad, expected, param in zip(grads, expected_grads, (init, trans, emission)):
        assert np.all(np.asarray(grad)[param == 0] == 0)
        np.testing.assert_allclose(np.asarray(grad)[param > 0], np.asarray(expected)[param > 0], rtol=1e-10)


def test_impossible_observations_give_minus_infinity_and_zero_gradients():
    init, trans, emission = random_hmm(np.random.default_rng(3), 2, 3)
    emission[:, 2] = 0.0  # no state emits symbol 2
    value, *grads = categorical_hmm_log_likelihood(init, trans, emission, np.array([0, 2, 1]), np.array([0, 3]))
    assert value == -np.inf and all(np.all(np.asarray(grad) == 0) for grad in grads)

    offsets = np.array([0, 2, 4])
    for broken in (-np.inf, np.nan, np.inf):
        log_emission = np.zeros((4, 2))
        log_emission[3] = broken
        value, *grads = log_emission_hmm_log_likelihood(init[:2], trans[:2, :2], log_emission, offsets)
        assert value == -np.inf, broken
        assert all(np.all(np.asarray(grad) == 0) for grad in grads), broken
        assert numba_log_emission(init[:2], trans[:2, :2], log_emission, offsets)[0] == -np.inf


def test_ops_agree_with_the_numba_kernels_on_long_ragged_data():
    rng = np.random.default_rng(4)
    init, trans, emission = random_hmm(rng, 3, 4)
    lengths = [200, 1, 37, 2, 500]
    offsets = kernels.as_offsets(lengths)
    symbols = rng.integers(0, 4, offsets[-1])
    value, *grads = categorical_hmm_log_likelihood(init, trans, emission, symbols, offsets)
    numba_value, *numba_grads = numba_categorical(init, trans, emission, symbols, offsets)
    np.testing.assert_allclose(value, numba_value, rtol=1e-12)
    for grad, expected in zip(grads, numba_grads):
        np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)

    log_emission = rng.normal(scale=30.0, size=(offsets[-1], 3))
    value, *grads = log_emission_hmm_log_likelihood(init, trans, log_emission, offsets)
    numba_value, *numba_grads = numba_log_emission(init, trans, log_emission, offsets)
    np.testing.assert_allclose(value, numba_value, rtol=1e-12)
    for grad, expected in zip(grads, numba_grads):
        np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)


def test_pytensor_gradient_graphs_compile_to_jax_and_match_the_numba_kernel():
    """The gradient PyTensor builds from the Op's pullback (its last three outputs), linked
    with JAX, against the Numba kernel's value and gradient (already compiled: linking the graph
    with Numba as well would cost 30 s). The table read by symbol and the (T, K) matrix gathered
    from it describe the same likelihood here, so both must give the kernel's numbers."""
    import pytensor
    import pytensor.tensor as pt

    from latentzoo.models.ops.hmm_op import hmm_log_emission_likelihood, hmm_log_likelihood

    register_jax_ops()
    init, trans, emission = pt.dvector("init"), pt.dmatrix("trans"), pt.dmatrix("emission")
    categorical = hmm_log_likelihood(init, trans, emission, RAGGED_SYMBOLS, RAGGED_OFFSETS)
    # the log-density form on log(emission) gathered at the symbols: its gamma reaches emission too
    log_emission = hmm_log_emission_likelihood(init, trans, pt.log(emission).T[RAGGED_SYMBOLS], RAGGED_OFFSETS)
    outputs = [value for total in (categorical, log_emission) for value in (total, *pytensor.grad(total, [init, trans, emission]))]
    values = random_hmm(np.random.default_rng(7), 3, 3)
    values = (values[0], values[1], with_missing_column(values[2]))
    on_jax = pytensor.function([init, trans, emission], outputs, mode="JAX")(*values)
    expected = numba_categorical(*values, RAGGED_SYMBOLS, RAGGED_OFFSETS)
    for index, value in enumerate(on_jax):
        np.testing.assert_allclose(value, expected[index % 4], rtol=1e-10, atol=1e-12)


def test_spd_cholesky_in_jax_matches_numpy_and_is_nan_off_the_cone():
    import pytensor
    import pytensor.tensor as pt

    from latentzoo.models.ops.pymc_parts import spd_cholesky

    register_jax_ops()
    matrices = pt.tensor3("matrices", shape=(None, 2, 2))
    factor = pytensor.function([matrices], spd_cholesky(matrices), mode="JAX")
    rng = np.random.default_rng(5)
    roots = rng.normal(size=(3, 2, 2))
    spd = roots @ roots.transpose(0, 2, 1) + 0.1 * np.eye(2)
    np.testing.assert_allclose(factor(spd), np.linalg.cholesky(spd), rtol=1e-12)
    not_positive = np.array([[[1.0, 2.0], [2.0, 1.0]]])
    assert np.all(np.isnan(factor(not_positive)))


# ----------------------------------------------------------------------------------------
# every model: the JAX log-density and gradient equal the Numba ones
# ----------------------------------------------------------------------------------------
#: the contract table's models, and a categorical HMM with ragged sequences and missing steps
JAX_MODELS = {**MODEL_ROWS, "categorical-hmm-missing": (CategoricalHMM(2, 3), [[0, 1, None, 2], [1], [2, 0, None, 0]])}
#: these compile in a few seconds each on two cores; the others are slow-marked
# the three coins (PyMC's own distributions) by default; the HMM Ops and the SPD Cholesky in JAX
# are checked on their own above, inside whole models in the slow suite (40 s each, cold)
# the local level's Kalman Op (1.4 s warm): its only check in JAX
DEFAULT_JAX_MODELS = {"three-coins", "local-level"}


def _random_points(pm_model, rng, n_points):
    start = pm_model.initial_point()
    for _ in range(n_points):
        yield {name: value + rng.normal(scale=0.5, size=np.shape(value)) for name, value in start.items()}


@pytest.mark.parametrize(
    "row",
    [pytest.param(row, marks=[] if row in DEFAULT_JAX_MODELS else [pytest.mark.slow]) for row in JAX_MODELS],
)
def test_jax_log_density_and_gradient_equal_the_numba_ones(row):
    from pymc.sampling.jax import get_jaxified_logp

    register_jax_ops()
    model, data = JAX_MODELS[row]
    data = model.check_data(data)
    if hasattr(model, "with_data_prior"):
        model = model.with_data_prior(data)
    pm_model = model.pymc_model(data, marginalized=True)
    numba = pm_model.logp_dlogp_function(ravel_inputs=True)
    numba.set_extra_values({})
    jax_logp = get_jaxified_logp(pm_model)
    value_and_grad = jax.jit(jax.value_and_grad(lambda position: jax_logp(position)))
    names = [var.name for var in pm_model.value_vars]
    for point in _random_points(pm_model, np.random.default_rng(6), 3):
        position = [np.asarray(point[name], float) for name in names]
        expected_value, expected_grad = numba(np.concatenate([value.ravel() for value in position]))
        value, grad = value_and_grad(position)
        assert np.isfinite(expected_value)
        np.testing.assert_allclose(value, expected_value, rtol=1e-8)
        grad = np.concatenate([np.ravel(g) for g in grad])
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-8, atol=1e-8 * np.abs(expected_grad).max())


# ----------------------------------------------------------------------------------------
# NUTS through NumPyro and BlackJAX
# ----------------------------------------------------------------------------------------
def test_missing_jax_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "blackjax", None)
    with pytest.raises(ImportError, match=r"pip install 'latentzoo\[jax\]'"):
        fit(MODEL_ROWS["three-coins"][0], DATASETS["seed"], backend="nuts", sampler="blackjax", progressbar=False)


def test_unknown_sampler_is_refused():
    with pytest.raises(ValueError, match="sampler"):
        fit(MODEL_ROWS["three-coins"][0], DATASETS["seed"], backend="nuts", sampler="jax", progressbar=False)


def test_importing_latentzoo_does_not_import_jax():
    code = "import sys, latentzoo.models, latentzoo.inference; print('jax' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    assert result.stdout.strip() == "False"


def coin_case():
    from .test_agreement import COIN_CASES

    model, dataset, _ = COIN_CASES["two_d-informative"]
    return model, DATASETS[dataset]


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(*args, **kwargs)


# BlackJAX runs through latentzoo's own driver (inference/backends/jax_nuts.py), so it is the one in the
# default suite; NumPyro (PyMC's driver) is in the slow suite, with every model
@pytest.mark.parametrize("sampler", [pytest.param("numpyro", marks=pytest.mark.slow), "blackjax"])
def test_jax_nuts_matches_the_exact_three_coins_posterior(sampler):
    from .test_agreement import coin_sampler_failures

    model, data = coin_case()
    idata = quiet_fit(model, data, backend="nuts", sampler=sampler, draws=1000, tune=300, chains=2,
                      progressbar=False, random_seed=3)
    assert_no_failures(coin_sampler_failures("two_d-informative", idata))
    assert idata.posterior.attrs["sampler"] == sampler
    assert idata.posterior.attrs["converged"] == 1 and idata.posterior.attrs["divergences"] == 0
    for name in model.param_names:
        assert idata.posterior[name].dims == ("chain", "draw")
    assert idata.sample_stats["diverging"].dims == ("chain", "draw")
    assert idata.sample_stats["diverging"].dtype == bool
    assert idata.posterior.sizes == {"chain": 2, "draw": 1000, **{d: n for d, n in idata.posterior.sizes.items()
                                                                  if d not in ("chain", "draw")}}


# ----------------------------------------------------------------------------------------
# slow: every model's NumPyro NUTS against exact or Gibbs references
# ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("case", ["dice-seed", "masked-40"])
def test_numpyro_nuts_matches_hmm_path_enumeration(case):
    from .test_agreement import HMM_CASES, HMM_NAMES, path_enumeration

    model, data = HMM_CASES[case]
    idata = quiet_fit(model, data, backend="nuts", sampler="numpyro", draws=1000, tune=500, chains=2,
                      progressbar=False, random_seed=1)
    references = path_enumeration(model, data)
    assert_no_failures([f for name in HMM_NAMES for f in agreement_failures(name, idata.posterior[name].values,
                                                                            references[name])])
    assert int(idata.sample_stats["diverging"].sum()) == 0


@pytest.mark.slow
def test_blackjax_nuts_matches_hmm_path_enumeration():
    from .test_agreement import HMM_CASES, HMM_NAMES, path_enumeration

    model, data = HMM_CASES["dice-seed"]
    idata = quiet_fit(model, data, backend="nuts", sampler="blackjax", draws=1000, tune=500, chains=2,
                      progressbar=False, random_seed=1)
    references = path_enumeration(model, data)
    assert_no_failures([f for name in HMM_NAMES for f in agreement_failures(name, idata.posterior[name].values,
                                                                            references[name])])


@pytest.mark.slow
def test_numpyro_nuts_matches_the_niw_closed_form():
    from .test_agreement import niw_closed_form
    from .test_niw import MODEL, SMALL

    idata = quiet_fit(MODEL, SMALL, backend="nuts", sampler="numpyro", draws=1000, tune=500, chains=2,
                      progressbar=False, random_seed=1)
    references = niw_closed_form()
    assert_no_failures([f for name, ref in references.items()
                        for f in agreement_failures(name, idata.posterior[name].values, ref)])


@pytest.mark.slow
def test_numpyro_nuts_matches_the_gmm_posterior_given_the_true_assignments():
    from latentzoo.inference.labels import relabel

    from .test_agreement import GMM, GMM_DATA, GMM_LABELS, GMM_NAMES, gmm_label_conditional

    assert isinstance(GMM, GaussianMixture)
    idata = quiet_fit(GMM, GMM_DATA, backend="nuts", sampler="numpyro", draws=1000, tune=1000, chains=2,
                      progressbar=False, random_seed=2)
    true_means = np.stack([GMM_DATA[GMM_LABELS == k].mean(0) for k in range(3)])
    idata = relabel(idata, {"means": true_means}, "component")
    references = gmm_label_conditional()
    assert_no_failures([f for name in GMM_NAMES
                        for f in agreement_failures(name, idata.posterior[name].values, references[name])])


@pytest.mark.slow
def test_numpyro_nuts_matches_the_gaussian_hmm_exact_posterior():
    from .test_gaussian_hmm import TINY, TINY_MODEL

    exact = fit(TINY_MODEL, TINY, backend="exact", random_seed=0, draws=20000).posterior
    nuts = quiet_fit(TINY_MODEL, TINY, backend="nuts", sampler="numpyro", random_seed=2, draws=1000, tune=1000,
                     chains=2, progressbar=False).posterior
    assert_no_failures([f for name in TINY_MODEL.param_names
                        for f in agreement_failures(name, nuts[name].values, Reference.from_draws(exact[name].values))])


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_jax_nuts_is_reproducible_from_the_seed(sampler):
    model, data = coin_case()
    runs = [quiet_fit(model, data, backend="nuts", sampler=sampler, draws=50, tune=50, chains=2, progressbar=False,
                      random_seed=seed).posterior["p"].values for seed in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
