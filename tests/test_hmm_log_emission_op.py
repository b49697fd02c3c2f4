"""The forward-backward pass from log emission densities and the HMM Op on a (T, K) matrix of them.

References: brute-force enumeration of every state path (the log-likelihood, the smoothed
marginals and the expected counts), central finite differences (the gradient), and the Op on
the categorical table read by symbol (:mod:`latentzoo.models.ops.hmm_op`) against the same Op on
the (T, K) matrix gathered from it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from latentzoo.models.hmm import kernels


def _problem(seed: int, K: int = 3, lengths=(3, 4), scale: float = 3.0, offset: float = 0.0):
    rng = np.random.default_rng(seed)
    init = rng.dirichlet(np.ones(K))
    trans = rng.dirichlet(np.ones(K), size=K)
    log_emission = scale * rng.normal(size=(sum(lengths), K)) + offset
    return init, trans, log_emission, kernels.as_offsets(list(lengths))


def _gradient(init, trans, log_emission, offsets):
    """The Op's kernel on a (T, K) matrix, read at the rows 0..T-1."""
    return kernels.log_table_gradient(init, trans, log_emission, np.arange(log_emission.shape[0]), offsets)


def _enumerate(init, trans, log_emission, offsets):
    """log p(x_s) per sequence, gamma (T, K), expected init and transition counts, by summing
    over every path with plain NumPy."""
    K = init.size
    log_liks, gamma = [], np.zeros_like(log_emission)
    init_counts, trans_counts = np.zeros(K), np.zeros((K, K))
    for start, stop in zip(offsets[:-1], offsets[1:]):
        paths = np.array(list(itertools.product(range(K), repeat=stop - start)))
        log_joint = np.log(init[paths[:, 0]]) + log_emission[np.arange(start, stop), paths].sum(1)
        for t in range(1, stop - start):
            log_joint += np.log(trans[paths[:, t - 1], paths[:, t]])
        total = logsumexp(log_joint)
        log_liks.append(total)
        weight = np.exp(log_joint - total)
        for t in range(stop - start):
            np.add.at(gamma[start + t], paths[:, t], weight)
            if t:
                np.add.at(trans_counts, (paths[:, t - 1], paths[:, t]), weight)
        np.add.at(init_counts, paths[:, 0], weight)
    return np.array(log_liks), gamma, init_counts, trans_counts


@pytest.mark.parametrize("seed, offset", [(0, 0.0), (1, -900.0), (2, 400.0)])
def test_smoothing_pass_matches_enumeration(seed, offset):
    # offsets of -900 underflow exp() without the row shift; +400 would overflow it
    problem = _problem(seed, offset=offset)
    init, trans = problem[:2]
    log_lik, grad_init, grad_trans, gamma = _gradient(*problem)
    ref_log_lik, ref_gamma, ref_init, ref_trans = _enumerate(*problem)
    np.testing.assert_allclose(log_lik, ref_log_lik.sum(), rtol=1e-12)
    np.testing.assert_allclose(gamma, ref_gamma, atol=1e-12)
    # Fisher's identity: gradient times entry is the expected count
    np.testing.assert_allclose(grad_init * init, ref_init, atol=1e-12)
    np.testing.assert_allclose(grad_trans * trans, ref_trans, atol=1e-12)


def test_a_row_of_zeros_is_a_missing_observation():
    init, trans, log_emission, offsets = _problem(3, lengths=(5,))
    log_emission[2] = 0.0
    # the sequence with step 2 removed: two chained transitions trans @ trans replace it
    kept = np.delete(log_emission, 2, axis=0)
    paths = np.array(list(itertools.product(range(3), repeat=4)))
    two_steps = trans @ trans
    log_joint = (np.log(init[paths[:, 0]]) + np.log(trans[paths[:, 0], paths[:, 1]])
                 + np.log(two_steps[paths[:, 1], paths[:, 2]]) + np.log(trans[paths[:, 2], paths[:, 3]])
                 + kept[np.arange(4), paths].sum(1))
    log_lik, *_ = _gradient(init, trans, log_emission, offsets)
    np.testing.assert_allclose(log_lik, logsumexp(log_joint), rtol=1e-12)


def test_impossible_and_invalid_rows_are_reported():
    init, trans, log_emission, offsets = _problem(4)
    for value in (-np.inf, np.nan, np.inf):
        broken = log_emission.copy()
        broken[5] = value
        log_lik, *grads = _gradient(init, trans, broken, offsets)
        assert log_lik == -np.inf and all(np.all(g == 0) for g in grads)
    with pytest.raises(ValueError, match="position 2 of sequence 1"):
        kernels.raise_if_impossible(5, offsets)


def test_gradient_matches_finite_differences():
    init, trans, log_emission, offsets = _problem(5)
    value, grad_init, grad_trans, gamma = _gradient(init, trans, log_emission, offsets)
    np.testing.assert_allclose(value, _enumerate(init, trans, log_emission, offsets)[0].sum(), rtol=1e-12)
    step = 1e-6

    def numeric(array, evaluate):
        out = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            up, down = array.copy(), array.copy()
            up[index] += step
            down[index] -= step
            out[index] = (evaluate(up) - evaluate(down)) / (2 * step)
        return out

    np.testing.assert_allclose(grad_init, numeric(init, lambda a: _gradient(a, trans, log_emission, offsets)[0]), rtol=1e-6)
    np.testing.assert_allclose(grad_trans, numeric(trans, lambda a: _gradient(init, a, log_emission, offsets)[0]), rtol=1e-6)
    np.testing.assert_allclose(gamma, numeric(log_emission, lambda a: _gradient(init, trans, a, offsets)[0]), atol=1e-7)


@pytest.mark.pymc
def test_op_value_and_gradient_equal_the_table_form():
    import pytensor
    import pytensor.tensor as pt

    from latentzoo.models.ops.hmm_op import hmm_log_emission_likelihood, hmm_log_likelihood

    rng = np.random.default_rng(6)
    K, M = 3, 4
    symbols = rng.integers(0, M, size=9)
    offsets = kernels.as_offsets([4, 5])
    init_v, trans_v = pt.dvector("init"), pt.dmatrix("trans")
    emission_v = pt.dmatrix("emission")
    general = hmm_log_emission_likelihood(init_v, trans_v, pt.log(emission_v).T[symbols], offsets)
    categorical = hmm_log_likelihood(init_v, trans_v, emission_v, symbols, offsets)
    inputs = [init_v, trans_v, emission_v]
    functions = [pytensor.function(inputs, [out, *pytensor.grad(out, inputs)]) for out in (general, categorical)]
    point = [rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K), size=K), rng.dirichlet(np.ones(M), size=K)]
    results = [function(*point) for function in functions]
    for mine, reference in zip(*results):
        np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-12)
    # the compiled (Numba) value is the enumeration's
    log_emission = np.log(point[2]).T[symbols]
    np.testing.assert_allclose(results[0][0], _enumerate(point[0], point[1], log_emission, offsets)[0].sum(), rtol=1e-12)


@pytest.mark.pymc
def test_op_refuses_misshapen_inputs():
    import pytensor.tensor as pt

    from latentzoo.models.ops.hmm_op import hmm_op

    init, trans, offsets = pt.dvector(), pt.dmatrix(), np.array([0, 3])
    with pytest.raises(ValueError, match=r"rows 2"):
        hmm_op()(init, trans, pt.dmatrix(), np.zeros((3, 1), int), offsets)
    with pytest.raises(ValueError, match=r"log_table 1"):
        hmm_op()(init, trans, pt.dvector(), np.zeros(3, int), offsets)
