"""The exact HMM posterior's grouping of paths by their counts (``_unique_rows``) against
NumPy's ``np.unique(axis=0)``, the implementation it replaces: the same rows, in the same order
(the order fixes which group a seeded draw picks), with the same multiplicities."""

from __future__ import annotations

import numpy as np
import pytest

from latentzoo.models.hmm.exact import _unique_rows


@pytest.mark.parametrize("high", [1, 2, 11, 200, 2**20])
def test_unique_rows_is_numpys_unique(high):
    rng = np.random.default_rng(high)
    for _ in range(40):
        n, m = int(rng.integers(1, 300)), int(rng.integers(1, 40))
        counts = rng.integers(0, high, (n, m)).astype(np.int32)
        counts = counts[rng.integers(0, n, n)]  # repeated rows
        counts[:, rng.integers(0, m, m // 2)] = 0  # columns that are 0 everywhere (masked emissions)
        expected_rows, expected_counts = np.unique(counts, axis=0, return_counts=True)
        rows, multiplicity = _unique_rows(counts)
        np.testing.assert_array_equal(rows, expected_rows)
        np.testing.assert_array_equal(multiplicity, expected_counts)
