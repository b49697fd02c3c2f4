"""Combining sufficient statistics computed on disjoint parts of the data (map-reduce).

A model that can be fitted on chunked data (a Dask array, many sequences split into partitions)
declares how its statistics combine with a ``combine_stats(parts)`` hook. Counts and other plain
totals add (:func:`sum_stats`). Centred statistics do not: a Gaussian component's
``(counts, means, scatters)`` of two parts combine by the pairwise update of Chan, Golub and
LeVeque (1979, "Updating formulae and a pairwise algorithm for computing sample variances")::

    n = n_a + n_b,   delta = mean_b - mean_a,   mean = mean_a + delta n_b / n,
    scatter = scatter_a + scatter_b + delta delta^T n_a n_b / n

which keeps the scatters accurate however far the data lie from the origin
(:func:`combine_centred`). Summing centred scatters instead drops the between-part term.
"""

from __future__ import annotations

from functools import reduce

import numpy as np

__all__ = ["sum_stats", "combine_centred", "CENTRED_KEYS"]

#: the keys of a Gaussian component's centred statistics
CENTRED_KEYS = ("counts", "means", "scatters")


def sum_stats(parts) -> dict:
    """Add every statistic over the parts.

    Parameters
    ----------
    parts : sequence of dict of str -> array-like
        The statistics of each part, with the same keys and shapes.

    Returns
    -------
    dict of str -> ndarray (or float for scalar statistics)
    """
    parts = _checked(parts)
    return {key: _total([part[key] for part in parts]) for key in parts[0]}


def _total(values):
    total = np.sum(np.stack([np.asarray(value, float) for value in values]), axis=0)
    return float(total) if total.ndim == 0 else total


def combine_centred(parts, keys=CENTRED_KEYS) -> dict:
    """Combine parts whose ``keys`` are per-component (weighted) counts (K,), means (K, D) and
    centred scatter matrices (K, D, D); every other key is summed.

    A component empty in one part takes the other's statistics; empty in all, it keeps zero
    counts, means and scatters (the convention of ``gmm_stats.component_stats``).
    """
    parts = _checked(parts)
    counts_key, means_key, scatters_key = keys
    centred = [(np.asarray(p[counts_key], float), np.asarray(p[means_key], float), np.asarray(p[scatters_key], float))
               for p in parts]
    counts, means, scatters = reduce(_pair, centred)
    combined = {key: _total([part[key] for part in parts]) for key in parts[0] if key not in keys}
    combined.update({counts_key: counts, means_key: means, scatters_key: scatters})
    return {key: combined[key] for key in parts[0]}  # the parts' key order


def _pair(a, b):
    n_a, mean_a, scatter_a = a
    n_b, mean_b, scatter_b = b
    n = n_a + n_b
    # an empty part's mean is a placeholder (zeros) that these weights ignore; 0/0 (a component
    # empty in both) stays empty rather than NaN
    share_b = np.divide(n_b, n, out=np.zeros_like(n), where=n > 0)
    delta = mean_b - mean_a
    mean = mean_a + delta * share_b[:, None]
    between = np.divide(n_a * n_b, n, out=np.zeros_like(n), where=n > 0)
    scatter = scatter_a + scatter_b + between[:, None, None] * delta[:, :, None] * delta[:, None, :]
    return n, mean, scatter


def _checked(parts) -> list:
    parts = list(parts)
    if not parts:
        raise ValueError("parts must hold the statistics of at least one part, got none")
    keys = set(parts[0])
    for index, part in enumerate(parts[1:], 1):
        if set(part) != keys:
            raise ValueError(f"parts[{index}] has keys {sorted(part)}, expected {sorted(keys)}")
    return parts
