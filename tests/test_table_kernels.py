"""The HMM kernels reading the emission table by symbol (``expected_counts``, ``smooth``, ``ffbs``
with ``rows``) against an independent forward-backward written here in log
space with SciPy's ``logsumexp``, on sequences too long to enumerate: missing steps, many
sequences, one state, and scaling constants small enough to force the running product of the
scaling constants to be logged at every step."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from latentzoo.models.hmm import kernels
from latentzoo.models.hmm.categorical import CategoricalHMM


def log_space_reference(init, trans, table, codes, lengths):
    """Log-likelihood per sequence, smoothed marginals and expected counts by the forward-backward
    recursions in log space (no scaling), sequence by sequence; ``table`` (K, M) is read at
    ``codes`` (a padding column of ones codes a missing step)."""
    K, M = table.shape
    with np.errstate(divide="ignore"):
        log_init, log_trans, log_table = np.log(init), np.log(trans), np.log(table)
    log_liks, gammas = [], []
    init_counts, trans_counts, emission_counts = np.zeros(K), np.zeros((K, K)), np.zeros((K, M))
    start = 0
    for length in lengths:
        x = codes[start : start + length]
        start += length
        log_alpha = np.empty((length, K))
        log_alpha[0] = log_init + log_table[:, x[0]]
        for t in range(1, length):
            log_alpha[t] = logsumexp(log_alpha[t - 1][:, None] + log_trans, axis=0) + log_table[:, x[t]]
        log_beta = np.zeros((length, K))
        for t in range(length - 2, -1, -1):
            log_beta[t] = logsumexp(log_trans + (log_table[:, x[t + 1]] + log_beta[t + 1])[None, :], axis=1)
        log_lik = logsumexp(log_alpha[-1])
        gamma = np.exp(log_alpha + log_beta - log_lik)
        for t in range(length - 1):
            xi = log_alpha[t][:, None] + log_trans + (log_table[:, x[t + 1]] + log_beta[t + 1])[None, :]
            trans_counts += np.exp(xi - log_lik)
        init_counts += gamma[0]
        np.add.at(emission_counts.T, x, gamma)
        log_liks.append(log_lik)
        gammas.append(gamma)
    return np.array(log_liks), np.concatenate(gammas), init_counts, trans_counts, emission_counts


def random_case(rng, K, M, lengths, missing_share):
    init = rng.dirichlet(np.ones(K))
    trans = rng.dirichlet(np.ones(K), size=K)
    emission = rng.dirichlet(np.ones(M), size=K)
    codes = rng.integers(0, M, sum(lengths))
    missing = rng.random(codes.size) < missing_share
    if missing.any():  # the kernels' convention: a last column of ones, indexed by the missing steps
        emission = np.concatenate([emission, np.ones((K, 1))], axis=1)
        codes = np.where(missing, M, codes)
    return init, trans, np.ascontiguousarray(emission), codes, kernels.as_offsets(lengths)


def check_against_reference(init, trans, table, codes, offsets, rtol=1e-10):
    lengths = np.diff(offsets)
    log_lik, gamma, init_counts, trans_counts, emission_counts = log_space_reference(init, trans, table, codes, lengths)

    log_lik_c, init_c, trans_c, emission_c, bad = kernels.expected_counts(init, trans, table, codes, offsets, table.shape[1], rows=codes)
    assert bad == -1
    np.testing.assert_allclose(log_lik_c, log_lik, rtol=rtol)
    np.testing.assert_allclose(init_c, init_counts, atol=1e-9)
    np.testing.assert_allclose(trans_c, trans_counts, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(emission_c, emission_counts, rtol=1e-9, atol=1e-9)

    gamma_s, log_lik_s, bad = kernels.smooth(init, trans, table, offsets, rows=codes)
    assert bad == -1
    np.testing.assert_allclose(log_lik_s, log_lik, rtol=rtol)
    np.testing.assert_allclose(gamma_s, gamma, atol=1e-10)

    # the (T, K) matrix form reads the same numbers
    lik = np.ascontiguousarray(table.T[codes])
    _, log_lik_f, _ = kernels.forward(init, trans, lik, offsets)[1:]
    np.testing.assert_allclose(log_lik_f, log_lik, rtol=rtol)


@pytest.mark.parametrize("K, M, lengths, missing_share", [
    (3, 8, [3000], 0.0),            # one long sequence: many restarts of the running product
    (3, 8, [400, 1, 250, 2, 90], 0.0),  # many sequences, of length one too
    (2, 5, [700, 300], 0.2),        # missing steps (the padding column of ones)
    (1, 4, [500, 20], 0.1),         # one state: the marginals are all ones
    (4, 3, [1200], 0.0),
])
def test_table_kernels_against_log_space_forward_backward(K, M, lengths, missing_share):
    rng = np.random.default_rng(K * 100 + M)
    check_against_reference(*random_case(rng, K, M, lengths, missing_share))


def test_tiny_scaling_constants_restart_the_product_at_every_step():
    # emission probabilities scaled by 1e-250: every scaling constant is below the product's
    # floor. Scaling the table by c leaves every posterior quantity unchanged and adds T log c to
    # the log-likelihood (the log-space reference itself loses digits at such magnitudes)
    rng = np.random.default_rng(7)
    init, trans = np.array([0.6, 0.4]), np.array([[0.7, 0.3], [0.2, 0.8]])
    table = rng.dirichlet(np.ones(3), size=2)
    codes, offsets = rng.integers(0, 3, 400), kernels.as_offsets([400])
    log_lik, gamma, init_counts, trans_counts, emission_counts = log_space_reference(init, trans, table, codes, [400])
    shift = 400 * np.log(1e-250)
    assert log_lik[0] + shift < -400 * 570  # far below the smallest double's logarithm (-745)

    log_lik_c, init_c, trans_c, emission_c, bad = kernels.expected_counts(init, trans, table * 1e-250, codes, offsets, 3, rows=codes)
    assert bad == -1
    np.testing.assert_allclose(log_lik_c, log_lik + shift, rtol=1e-13)
    np.testing.assert_allclose(trans_c, trans_counts, rtol=1e-10)
    np.testing.assert_allclose(emission_c, emission_counts, rtol=1e-10)
    gamma_s, log_lik_s, _ = kernels.smooth(init, trans, table * 1e-250, offsets, rows=codes)
    np.testing.assert_allclose(gamma_s, gamma, atol=1e-10)
    np.testing.assert_allclose(log_lik_s, log_lik + shift, rtol=1e-13)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    K=st.integers(1, 4),
    M=st.integers(2, 6),
    lengths=st.lists(st.integers(1, 60), min_size=1, max_size=5),
    missing_share=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_table_kernels_property(K, M, lengths, missing_share, seed):
    check_against_reference(*random_case(np.random.default_rng(seed), K, M, lengths, missing_share))


def test_an_impossible_step_is_reported_not_turned_into_nan():
    init, trans = np.array([1.0, 0.0]), np.array([[1.0, 0.0], [0.0, 1.0]])
    table = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])  # state 0 never shows symbol 2
    codes, offsets = np.array([0, 1, 2, 0]), kernels.as_offsets([4])
    *_, bad = kernels.expected_counts(init, trans, table, codes, offsets, table.shape[1], rows=codes)
    assert bad == 2
    gamma, _, bad = kernels.smooth(init, trans, table, offsets, rows=codes)
    assert bad == 2
    with pytest.raises(ValueError, match="position 2 of sequence 0"):
        kernels.raise_if_impossible(bad, offsets)


def test_ffbs_on_the_table_draws_the_path_of_the_matrix_form():
    rng = np.random.default_rng(3)
    init, trans, table, codes, offsets = random_case(rng, 3, 5, [300, 40], 0.1)
    uniforms = rng.random(codes.size)
    path, log_lik, bad = kernels.ffbs(init, trans, table, offsets, uniforms, rows=codes)
    reference_path, reference_log_lik, _ = kernels.ffbs(init, trans, np.ascontiguousarray(table.T[codes]), offsets, uniforms)
    assert bad == -1
    np.testing.assert_array_equal(path, reference_path)
    np.testing.assert_allclose(log_lik, reference_log_lik, rtol=1e-13)


def test_model_hooks_with_missing_steps_and_many_sequences_match_the_reference():
    rng = np.random.default_rng(11)
    model = CategoricalHMM(3, 4)
    params = {"init_probs": rng.dirichlet(np.ones(3)), "trans_mat": rng.dirichlet(np.ones(3), size=3),
              "emission_probs": rng.dirichlet(np.ones(4), size=3)}
    sequences = [rng.integers(0, 4, n).astype(float) for n in (150, 1, 60)]
    sequences[0][[3, 4, 90]] = np.nan
    sequences[2][0] = np.nan
    data = model.check_data(sequences)
    table = np.concatenate([params["emission_probs"], np.ones((3, 1))], axis=1)
    log_lik, gamma, init_counts, trans_counts, emission_counts = log_space_reference(
        params["init_probs"], params["trans_mat"], table, data.coded(4), data.lengths
    )
    stats, total = model.expected_stats(data, params)
    assert total == pytest.approx(log_lik.sum(), rel=1e-12)
    np.testing.assert_allclose(stats["emission_counts"], emission_counts[:, :4], atol=1e-10)
    np.testing.assert_allclose(stats["trans_counts"], trans_counts, atol=1e-10)
    draws = {name: value[None, None] for name, value in params.items()}
    np.testing.assert_allclose(model.latent_posterior(data, draws)["state_probs"][0, 0], gamma, atol=1e-10)
    np.testing.assert_allclose(model.log_likelihood(data, draws)[0, 0], log_lik, rtol=1e-12)
