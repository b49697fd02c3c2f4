"""The exact HMM posterior's grouping of paths by their counts (``_group_paths``, which never
lists the paths) against listing every path, counting it and grouping the count rows with
NumPy's ``np.unique(axis=0)``: the same count rows, in the same order (the order fixes which
group a seeded draw picks), with the same multiplicities. And the tabulated log multivariate Beta
against the direct formula."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from latentzoo.models.families.checks import log_multivariate_beta, log_multivariate_beta_of_counts
from latentzoo.models.hmm.exact import _group_paths


def _every_path_counts(allowed, starts, codes, K, M):
    """Each path's count row (initial states, transitions, state-symbol pairs), in the order of
    ``itertools.product`` (the last step fastest, as the paths are numbered), by plain loops."""
    rows = []
    for path in itertools.product(*[a.tolist() for a in allowed]):
        row = np.zeros(K + K * K + K * M, np.int64)
        for t, state in enumerate(path):
            if t in starts:
                row[state] += 1
            else:
                row[K + path[t - 1] * K + state] += 1
            if codes[t] != M:
                row[K + K * K + state * M + codes[t]] += 1
        rows.append(row)
    return np.array(rows)


def _brute_force_groups(allowed, starts, codes, K, M):
    return np.unique(_every_path_counts(allowed, starts, codes, K, M), axis=0, return_counts=True)


@pytest.mark.parametrize("seed", range(12))
def test_group_paths_is_grouping_every_path(seed):
    rng = np.random.default_rng(seed)
    K, M = int(rng.integers(1, 5)), int(rng.integers(1, 9))
    # long enough, with enough states and symbols, that some cases need several int64 keys
    T = int(rng.integers(1, 13))
    allowed = []
    for _ in range(T):
        n = int(rng.integers(1, min(K, 2 if T > 8 else 3) + 1))
        allowed.append(np.sort(rng.choice(K, n, replace=False)))
    codes = rng.integers(0, M + 1, T)  # M: a missing step
    starts = {0} | {int(t) for t in rng.integers(0, T, int(rng.integers(0, 3)))}
    expected_rows, expected_multiplicity = _brute_force_groups(allowed, starts, codes, K, M)
    rows, multiplicity = _group_paths(allowed, starts, codes, K, M)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(multiplicity, expected_multiplicity)


def test_group_paths_with_several_keys():
    # 4 states, 8 symbols, 12 steps: the count columns' radices multiply past 2^62
    rng = np.random.default_rng(3)
    K, M, T = 4, 8, 12
    allowed = [np.sort(rng.choice(K, 2, replace=False)) for _ in range(T)]
    codes = rng.integers(0, M, T)
    starts = {0, 5}
    expected_rows, expected_multiplicity = _brute_force_groups(allowed, starts, codes, K, M)
    rows, multiplicity = _group_paths(allowed, starts, codes, K, M)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(multiplicity, expected_multiplicity)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("fractional", [False, True])
def test_tabulated_log_beta_is_the_formula(masked, fractional):
    rng = np.random.default_rng(int(masked) + 2 * int(fractional))
    alpha = rng.uniform(0.2, 3.0, (3, 5))
    counts = rng.integers(0, 6, (400, 3, 5)).astype(float)
    if fractional:
        counts = counts + rng.uniform(0, 1, counts.shape)
    mask = rng.uniform(size=(3, 5)) < 0.7 if masked else None
    if masked:
        mask[:, 0] = True
    expected = log_multivariate_beta(alpha + counts, mask)
    # bit for bit: the same gammaln calls on the same sums
    np.testing.assert_array_equal(log_multivariate_beta_of_counts(alpha, counts, mask), expected)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("shape", [(6000, 3, 4), (3000, 5), (2000, 2, 3, 3)])
def test_tabulated_log_beta_of_many_small_count_vectors_is_the_formula(masked, shape):
    # many vectors of small counts: each distinct vector's value is computed once and read by
    # its code; the values must be the direct formula's, bit for bit
    rng = np.random.default_rng(len(shape))
    alpha = rng.uniform(0.2, 3.0, shape[1:])
    counts = rng.integers(0, 3, shape)
    counts[..., -1] = rng.integers(0, 2, shape[:-1])  # columns of different ranges
    mask = None
    if masked:
        mask = rng.uniform(size=shape[1:]) < 0.7
        mask[..., 0] = True
        counts = np.where(mask, counts, 0)
    expected = log_multivariate_beta(alpha + counts.astype(float), mask)
    for given in (counts, counts.astype(np.int32), counts.astype(float)):
        np.testing.assert_array_equal(log_multivariate_beta_of_counts(alpha, given, mask), expected)
