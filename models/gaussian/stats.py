"""Sufficient statistics of a Gaussian mixture: weighted counts, means and scatter matrices.

:func:`component_stats` gives them for given weights (responsibilities, or 0/1 assignments: hard
labels, as :meth:`GaussianFamily.label_stats
<latentzoo.models.families.gaussian.GaussianFamily.label_stats>` forms them); the fused E-steps of
:mod:`~latentzoo.models.gaussian.kernels` reach them through :func:`stats_from_moments` without
storing the responsibilities. They are the input of
:meth:`NormalInverseWishart.update <latentzoo.models.core.conjugate.NormalInverseWishart.update>`.

Why they stay accurate
----------------------
The scatter matrices come from one-pass moments of ``y = x - c`` (``c`` the overall data mean),
``sum_n r_nk y_n y_n^T - N_k ybar_k ybar_k^T``. A component whose mean is so far from ``c``
(compared with the spread of its scatter in its weakest direction) that this would lose more than
about 1e-12 of relative precision, or could leave the scatter indefinite, is recomputed exactly,
centred at its own mean, in a second pass. In the usual case there is one pass over the data.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .passes import GIVEN_RESP, as_c, as_data, raise_non_finite, run_pass

__all__ = ["component_stats"]

# Recompute a component's scatter centred at its own mean when the one-pass formula would lose
# more than about 1e-16 * ratio of relative precision in the scatter's weakest direction.
_RECENTRE_RATIO = 1e4


def component_stats(x, resp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted counts, means and scatter matrices of every component, in one pass.

    Parameters
    ----------
    x : array-like of shape (N, D)
    resp : array-like of shape (N, K)
        Non-negative weights (responsibilities, or 0/1 assignments); not checked beyond the shape.
        Fortran order (as :func:`~latentzoo.models.gaussian.kernels.e_step` returns) is the fastest,
        C order works as well.

    Returns
    -------
    counts : ndarray of shape (K,)
        ``N_k = sum_n resp_nk``.
    means : ndarray of shape (K, D)
        ``xbar_k = sum_n resp_nk x_n / N_k`` (zeros where ``N_k = 0``).
    scatters : ndarray of shape (K, D, D)
        ``sum_n resp_nk (x_n - xbar_k)(x_n - xbar_k)^T``, symmetric (zeros where ``N_k = 0``).
        The input of :meth:`NormalInverseWishart.update(count, mean, scatter)
        <latentzoo.models.core.conjugate.NormalInverseWishart.update>`.

    Notes
    -----
    Counts, sums and second moments of the data centred at the overall mean come from one pass;
    then ``scatter_k = M2_k - N_k ybar_k ybar_k^T``. A component for which that subtraction
    would cancel too many digits is recomputed centred at its own mean (module docstring), so
    the scatters keep their precision however far the data are from the origin.
    """
    x = as_c(as_data(x))
    resp = np.asarray(resp, dtype=np.float64)
    n_rows, dim = x.shape
    if resp.ndim != 2 or resp.shape[0] != n_rows or resp.shape[1] < 1:
        raise ValueError(f"resp must have shape (N, K) with N = {n_rows}, got shape {resp.shape}")
    if not (resp.T.flags.c_contiguous or resp.flags.c_contiguous):
        resp = np.asfortranarray(resp)
    n_components = resp.shape[1]
    none = np.empty((n_components, dim, dim))  # the pass reads no parameters in this mode
    _, _, moments, shift = run_pass(
        x, none, np.zeros((n_components, dim)), np.zeros(n_components), GIVEN_RESP, resp=resp,
        want_out=False, want_stats=True,
    )
    if not np.all(np.isfinite(moments)):
        if not np.all(np.isfinite(resp)):
            raise ValueError("resp must be finite")
        raise_non_finite(x, "the weighted moments")
    return stats_from_moments(x, moments, shift, lambda: resp)


def stats_from_moments(x, moments, shift, responsibilities):
    """Counts, means and scatters from the moments ``sum_n r_nk phi(x_n - shift)``;
    ``responsibilities()`` gives the (N, K) weights again if a component needs the exact pass."""
    dim = x.shape[1]
    n_quadratic = dim * (dim + 1) // 2
    counts = moments[:, -1].copy()
    positive = counts > 0
    safe = np.where(positive, counts, 1.0)
    centred_means = np.where(positive[:, None], moments[:, n_quadratic:-1] / safe[:, None], 0.0)

    upper_i, upper_j = _upper_triangle(dim)
    # on the upper triangle only, then mirrored: exactly symmetric
    upper = moments[:, :n_quadratic] - counts[:, None] * centred_means[:, upper_i] * centred_means[:, upper_j]
    upper[~positive] = 0.0
    scatters = np.empty((counts.size, dim, dim))
    scatters[:, upper_i, upper_j] = upper
    scatters[:, upper_j, upper_i] = upper

    # the subtraction loses about 1e-16 * N_k |ybar_k|^2 / lambda_min of relative precision
    resp = None
    offsets = counts * np.einsum("kd,kd->k", centred_means, centred_means)
    # one batched call: a call per component cost more than the rest of this function
    smallest = np.linalg.eigvalsh(scatters)[:, 0]
    for k in np.flatnonzero(positive):
        if offsets[k] > _RECENTRE_RATIO * max(smallest[k], 0.0):
            resp = responsibilities() if resp is None else resp
            scatters[k] = _scatter_about(x, resp[:, k], centred_means[k] + shift)
    means = np.where(positive[:, None], centred_means + shift, 0.0)
    return counts, means, scatters


@lru_cache(maxsize=16)
def _upper_triangle(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(dim)``, read-only and built once per dim (every E-step and sweep)."""
    indices = np.triu_indices(dim)
    for index in indices:
        index.flags.writeable = False
    return indices


def _scatter_about(x: np.ndarray, weights: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``sum_n w_n (x_n - centre)(x_n - centre)^T``, centred before the products (the exact pass)."""
    n_rows, dim = x.shape
    scatter = np.zeros((dim, dim))
    block = int(max(1, min(n_rows, 8192)))
    buffer = np.empty((dim, block))
    root = np.sqrt(weights)
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        rows = buffer[:, : stop - start]
        np.subtract(x[start:stop].T, centre[:, None], out=rows)
        rows *= root[start:stop]
        scatter += rows @ rows.T
    return 0.5 * (scatter + scatter.T)
