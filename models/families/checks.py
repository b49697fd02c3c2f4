"""Validation shared by the families and the models built from them: Dirichlet concentrations
and arrays of probability vectors with optional leading batch dims."""

from __future__ import annotations

import numpy as np

from ..core.base import numeric_array

__all__ = ["STOCHASTIC_ATOL", "concentration_array", "probability_array", "split_missing"]

#: rows of a probability vector must sum to one within this tolerance
STOCHASTIC_ATOL = 1e-6


def concentration_array(value, name: str, shape: tuple[int, ...], mask: np.ndarray | None = None) -> np.ndarray:
    """``value`` broadcast to ``shape``, finite and > 0 (where ``mask`` allows an entry).

    Parameters
    ----------
    value : float or array-like broadcasting to ``shape``
    name : str
        The argument's name, for the error messages.
    shape : tuple of int
    mask : bool ndarray of ``shape``, optional
        Entries outside it are not used and not checked.

    Returns
    -------
    float64 ndarray of ``shape`` (a copy)
    """
    array = numeric_array(value, name, f"a positive number or an array of shape {shape}")
    try:
        array = np.broadcast_to(array, shape).copy()
    except ValueError:
        raise ValueError(f"{name} must be a number or broadcast to shape {shape}, got shape {array.shape}") from None
    allowed = array if mask is None else array[mask]
    if not np.all(np.isfinite(allowed)) or np.any(allowed <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return array


def probability_array(value, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as float64 of shape ``batch + shape`` whose last axis holds probability vectors.

    Raises
    ------
    TypeError
        If ``value`` is not numeric.
    ValueError
        On a wrong trailing shape, a non-finite or negative entry, or a row that does not sum to
        one within ``STOCHASTIC_ATOL`` (the message names the row).
    """
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of probabilities of shape {shape}") from None
    if array.ndim < len(shape) or array.shape[array.ndim - len(shape):] != shape:
        raise ValueError(f"{name} must have shape {shape} (after batch dims), got {array.shape}")
    # the smallest entry is NaN where any is (and fails the test), below 0 where any is; the
    # largest is infinite where any is: two reductions instead of four passes (EM validates its
    # parameters every iteration through the log prior)
    if array.size and not (array.min() >= 0 and array.max() < np.inf):
        raise ValueError(f"{name} must hold finite probabilities >= 0")
    sums = array.sum(axis=-1)
    if not np.abs(sums - 1.0).max(initial=0.0) <= STOCHASTIC_ATOL:
        worst = np.unravel_index(np.argmax(np.abs(sums - 1.0)), sums.shape)
        if len(shape) > 1:
            raise ValueError(f"{name} row {worst[-1]} must sum to 1 (rows must sum to 1: probability vectors), "
                             f"sums to {float(sums[worst]):.6g}")
        raise ValueError(f"{name} must sum to 1 (a probability vector), sums to {float(sums[worst]):.6g}")
    return array


def log_multivariate_beta(alpha: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``log B(alpha) = sum log Gamma(alpha_k) - log Gamma(sum alpha_k)`` over the last axis
    (over the entries ``mask`` allows)."""
    from scipy import special

    if mask is None:
        return special.gammaln(alpha).sum(-1) - special.gammaln(alpha.sum(-1))
    alpha = np.where(mask, alpha, 1.0)
    return np.where(mask, special.gammaln(alpha), 0.0).sum(-1) - special.gammaln(np.where(mask, alpha, 0.0).sum(-1))


def log_multivariate_beta_of_counts(alpha: np.ndarray, counts: np.ndarray,
                                    mask: np.ndarray | None = None) -> np.ndarray:
    """``log_multivariate_beta(alpha + counts, mask)`` for many count vectors, the same numbers.

    The exact posteriors evaluate it for thousands of groups of assignments whose counts are
    small whole numbers: ``log Gamma(alpha + n)`` is then read from a table over ``n = 0 ..
    max(counts)`` (the same additions and ``gammaln`` calls, so the same values) instead of being
    evaluated once per entry. Counts that are not whole numbers in a short enough range are
    summed directly.

    Parameters
    ----------
    alpha : ndarray of shape S (the concentrations; broadcast against ``counts``'s last axes)
    counts : ndarray of shape B + S, integers or floats
    mask : bool ndarray broadcastable to S, optional

    Returns
    -------
    ndarray of shape B
    """
    from scipy import special

    alpha, counts = np.asarray(alpha, float), np.asarray(counts)
    tail = counts.shape[counts.ndim - alpha.ndim:] if alpha.ndim <= counts.ndim else None
    if tail is None or counts.size == 0 or np.broadcast_shapes(alpha.shape, tail) != tail:
        return log_multivariate_beta(alpha + counts, mask)
    # integer counts (the exact posteriors' groups) need no test that they are whole
    whole = counts if counts.dtype.kind in "iu" else counts.astype(np.int64)
    high = int(whole.max())
    size = int(np.prod(tail))
    # a table bigger than the entries it replaces saves nothing
    if (whole.min() < 0 or size * (high + 1) > counts.size
            or (whole is not counts and not np.array_equal(whole, counts))):
        return log_multivariate_beta(alpha + counts, mask)
    alpha = np.broadcast_to(alpha, tail)
    table = special.gammaln(alpha[..., None] + np.arange(high + 1, dtype=float))  # S + (high + 1,)
    if mask is not None:
        table = np.where(np.broadcast_to(mask, tail)[..., None], table, 0.0)
    offsets = np.arange(size).reshape(tail) * (high + 1)
    # the distinct count vectors are few (each column counts at most as many as it can): the value
    # of every vector within the columns' ranges, then read by each vector's mixed-radix code
    radix = whole.reshape((-1, tail[-1])).max(axis=0) + 1  # per last-axis column
    span = int(np.prod(radix.astype(float)))
    n_vectors = counts.size // tail[-1]
    if 4 * span * (size // tail[-1]) <= n_vectors:
        weights = np.append(np.cumprod(radix[:0:-1])[::-1], 1)  # the last column fastest
        codes = np.arange(span)
        rows = (codes[:, None] // weights) % radix  # (span, last): every vector in range
        values = _log_beta_of_rows(table, offsets[..., None, :] + rows, alpha[..., None, :] + rows,
                                   None if mask is None else np.broadcast_to(mask, tail)[..., None, :])
        code = whole @ weights  # (B + S[:-1]) int
        lead = np.arange(size // tail[-1]).reshape(tail[:-1])
        return values.reshape(-1)[lead * span + code]
    return _log_beta_of_rows(table, offsets + whole, alpha + counts, mask)


def _log_beta_of_rows(table, index, total, mask):
    """``sum(table[index]) - gammaln(sum(total))`` over the last axis, masked entries 0 in the
    totals (``table`` holds 0 there): ``log B`` of each row, from the table of log Gammas."""
    from scipy import special

    if mask is not None:
        total = np.where(mask, total, 0.0)
    return table.reshape(-1).take(index).sum(-1) - special.gammaln(total.sum(-1))


def split_missing(observations) -> tuple[np.ndarray, np.ndarray]:
    """``(values with 0 where missing, 1.0 where observed)`` of float observations that mark a
    missing entry NaN: the statistics then weight each entry by whether it was seen.

    Parameters
    ----------
    observations : array-like of any shape

    Returns
    -------
    values, observed : float ndarrays of the same shape
    """
    x = np.asarray(observations, float)
    missing = np.isnan(x)
    if not missing.any():
        return x, np.ones_like(x)
    return np.where(missing, 0.0, x), (~missing).astype(float)
