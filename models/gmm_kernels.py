"""Numerical kernels of the Gaussian mixture: log-densities, E-step, sufficient statistics.

Pure NumPy/SciPy, written for speed at N = 1e5..1e6 points, and shared by EM, VB and Gibbs
(through ``models/gaussian_mixture.py``) and by :func:`~latentzoo.models.conjugate.gaussian_stats`.

How they are fast
-----------------
* **Quadratic features.** With ``y = x - c`` (``c`` the overall data mean) and the features
  ``phi(y) = (y_i y_j for i <= j, y_1..y_D, 1)`` (``Q = D(D+1)/2 + D + 1`` of them), a Gaussian
  log-density is linear in ``phi``: ``log N(x | mu, Sigma) = w . phi(y)`` with weights built from
  ``Lambda = Sigma^{-1}`` (one Cholesky factor per component, ``Lambda = P P^T`` with
  ``P = L^{-T}``; no inverse of ``Sigma`` is formed). The log-densities of *all* components are
  then one BLAS product ``(K, Q) @ (Q, B)`` per block of B points, and the weighted second moments
  of all components are one product ``(K, B) @ (B, Q)``. The features are built once per block
  (``D(D+1)/2`` multiplications per point), not once per component.
* **Transposed blocks.** Points are processed in blocks of a few thousand, laid out as
  ``(features, B)`` so that every element-wise operation runs along a long contiguous axis (NumPy
  is slow along a short last axis such as D = 2). Temporaries are ``(Q, B)`` and ``(K, B)``
  blocks that stay in cache; the only ``(N, ...)`` arrays are the inputs and the ``(N, K)``
  outputs. Memory is O(N K + K D^2 + B D^2), never O(N K D).
* **E-step in one block pass.** Subtract the row maximum, ``exp`` in place, divide by the sum:
  the responsibilities come out directly and the log-normaliser is ``max + log(sum)``
  (logsumexp without a second ``exp``).
* ``(N, K)`` outputs are Fortran-ordered (the transpose of a C-ordered ``(K, N)`` array), so
  ``out[:, k]`` and ``out.T`` are contiguous.

Why they stay accurate
----------------------
The expansion ``(y - m)^T Lambda (y - m) = y^T Lambda y - 2 y^T Lambda m + m^T Lambda m`` cancels
digits when a point and its component are both far from ``c`` compared with the component's
width. Centring at the overall data mean removes the part of that which matters in practice (an
offset of 1e6 in the data costs nothing). What remains is an absolute error of about
``1e-16 * |mu_k - c|^2 / sigma_k^2`` in a log-density, e.g. 1e-10 for a component 1e3 of its own
standard deviations away from the centre of the data.

The scatter matrices come from the same one-pass moments, ``sum_n r_nk y_n y_n^T - N_k ybar_k
ybar_k^T``. A component whose mean is so far from ``c`` (compared with the spread of its scatter
in its weakest direction) that this would lose more than about 1e-12 of relative precision, or
could leave the scatter indefinite, is recomputed exactly, centred at its own mean, in a second
pass. In the usual case there is one pass over the data.

Inputs are trusted to be finite where checking would cost an extra pass over the data: a
non-finite ``x`` is detected from the (cheap) outputs and reported as a ``ValueError``.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, special

__all__ = ["component_stats", "e_step", "expected_e_step", "expected_log_densities", "log_gaussian_densities"]

_LOG_2PI = np.log(2.0 * np.pi)

# Points per block. Measured on the benchmark machine (OpenBLAS, 1 thread), the (K, Q) @ (Q, B)
# products run 2-3 times faster per point at B = 8192 than at B <= 4096, and larger blocks gain
# nothing; the (Q, B) buffer is then at most a few MB (4.3 MB at D = 10).
_BLOCK_ROWS = 8192

# Recompute a component's scatter centred at its own mean when the one-pass formula would lose
# more than about 1e-16 * ratio of relative precision in the scatter's weakest direction.
_RECENTRE_RATIO = 1e4


# -- validation (cheap: shapes and K D^2 parameters, never a pass over x) -----------------------
def _as_data(x, name: str = "x") -> np.ndarray:
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric array of shape (N, D)") from None
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got shape {x.shape}")
    if x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one feature, got shape {x.shape}")
    return x


def _as_params(x: np.ndarray, means, covs, *, means_name: str = "means", covs_name: str = "covs"):
    dim = x.shape[1]
    means = np.asarray(means, dtype=np.float64)
    covs = np.asarray(covs, dtype=np.float64)
    if means.ndim != 2 or means.shape[1] != dim or means.shape[0] < 1:
        raise ValueError(f"{means_name} must have shape (K, D) with K >= 1 and D = {dim}, got shape {means.shape}")
    n_components = means.shape[0]
    if covs.shape != (n_components, dim, dim):
        raise ValueError(f"{covs_name} must have shape (K, D, D) = {(n_components, dim, dim)}, got shape {covs.shape}")
    if not np.all(np.isfinite(means)):
        raise ValueError(f"{means_name} must be finite")
    if not np.all(np.isfinite(covs)):
        raise ValueError(f"{covs_name} must be finite")
    return means, covs


def _precisions(covs: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``Lambda_k = covs_k^{-1}`` (from the Cholesky factor, symmetric) and ``log|covs_k|``.

    Only the lower triangle of each covariance is read (as LAPACK does), so round-off asymmetry
    is harmless.

    Raises
    ------
    ValueError
        Naming ``name`` and the component when a matrix is not positive definite.
    """
    n_components, dim = covs.shape[0], covs.shape[1]
    precisions = np.empty_like(covs)
    log_det = np.empty(n_components)
    identity = np.eye(dim)
    for k in range(n_components):
        try:
            chol = linalg.cholesky(covs[k], lower=True, check_finite=False)
            diagonal = np.diagonal(chol)
            positive = bool(np.all(diagonal > 0))
        except linalg.LinAlgError:
            positive = False
        if not positive:
            raise ValueError(
                f"{name}[{k}] is not positive definite (component {k}); a collapsing component "
                "needs a covariance regulariser or a proper prior"
            )
        prec_chol = linalg.solve_triangular(chol, identity, lower=True, check_finite=False).T  # L^{-T}
        precisions[k] = prec_chol @ prec_chol.T
        log_det[k] = 2.0 * np.log(diagonal).sum()
    return precisions, log_det


# -- quadratic features -----------------------------------------------------------------------
class _Features:
    """Builds ``phi(x - shift)`` block by block into one reused ``(Q, B)`` buffer.

    Rows: ``y_i y_j`` for ``i <= j`` (row-major upper triangle), then ``y_1..y_D``, then 1.
    """

    def __init__(self, x: np.ndarray, shift: np.ndarray):
        self.x = x
        self.shift = shift[:, None]
        n_rows, dim = x.shape
        self.dim = dim
        self.n_quadratic = dim * (dim + 1) // 2
        self.n_features = self.n_quadratic + dim + 1
        self.block = int(max(1, min(n_rows, _BLOCK_ROWS)))
        self.buffer = np.empty((self.n_features, self.block))
        self.buffer[-1] = 1.0

    def blocks(self):
        """Yield ``(start, stop, features)`` with ``features`` of shape (Q, stop - start)."""
        n_rows, dim, q = self.x.shape[0], self.dim, self.n_quadratic
        for start in range(0, n_rows, self.block):
            stop = min(start + self.block, n_rows)
            features = self.buffer[:, : stop - start]
            linear = features[q : q + dim]
            # transposing copy and centring in one pass
            np.subtract(self.x[start:stop].T, self.shift, out=linear)
            row = 0
            for i in range(dim):
                np.multiply(linear[i:], linear[i], out=features[row : row + dim - i])
                row += dim - i
            yield start, stop, features


def _density_weights(means, precisions, constants, shift) -> np.ndarray:
    """Weights ``(K, Q)`` with ``w_k . phi(x - shift) = constants_k - (x - mu_k)^T Lambda_k (x - mu_k) / 2``."""
    n_components, dim = means.shape
    upper_i, upper_j = np.triu_indices(dim)
    centred_means = means - shift
    linear = np.einsum("kij,kj->ki", precisions, centred_means)  # Lambda m
    weights = np.empty((n_components, upper_i.size + dim + 1))
    # off-diagonal pairs appear once in phi but twice in y^T Lambda y
    weights[:, : upper_i.size] = -np.where(upper_i == upper_j, 0.5, 1.0) * precisions[:, upper_i, upper_j]
    weights[:, upper_i.size : -1] = linear
    weights[:, -1] = constants - 0.5 * np.einsum("ki,ki->k", centred_means, linear)
    return weights


def _fortran_output(n_rows: int, n_components: int) -> np.ndarray:
    """A (K, N) C-ordered array; its transpose is the (N, K) result."""
    return np.empty((n_components, n_rows))


def _data_centre(x: np.ndarray) -> np.ndarray:
    # overall mean as a BLAS product (x.mean(axis=0) reduces along the short axis, and is slow);
    # the shift only has to be central, not exact. For N = 0 anything finite will do.
    n_rows = x.shape[0]
    return x.T @ np.full(n_rows, 1.0 / n_rows) if n_rows else np.zeros(x.shape[1])


def _linear_log_densities(x, weights, shift) -> np.ndarray:
    """``(N, K)`` values of ``w_k . phi(x_n - shift)``, Fortran-ordered."""
    out = _fortran_output(x.shape[0], weights.shape[0])
    # non-finite x is reported by the caller's check of the output, not as RuntimeWarnings
    with np.errstate(invalid="ignore", over="ignore"):
        for start, stop, features in _Features(x, shift).blocks():
            np.matmul(weights, features, out=out[:, start:stop])
    return out.T


def _check_finite_rows(values: np.ndarray, x: np.ndarray, what: str) -> None:
    """Raise if ``values`` (an output computed from x) is not finite, naming the rows of x."""
    if not np.all(np.isfinite(values)):
        _raise_non_finite(x, what)


def _raise_non_finite(x: np.ndarray, what: str) -> None:
    # only on the error path: find the culprits in x itself (a NaN spreads through the centre)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        more = " ..." if bad.size > 5 else ""
        raise ValueError(f"x must be finite; NaN or inf at rows {bad[:5].tolist()}{more}")
    raise ValueError(f"{what} overflowed; rescale x (its values are too large for float64)")


# -- public kernels ----------------------------------------------------------------------------
def log_gaussian_densities(x, means, covs) -> np.ndarray:
    """Log-densities of every point under every Gaussian component.

    Parameters
    ----------
    x : array-like of shape (N, D)
        Finite data.
    means : array-like of shape (K, D)
    covs : array-like of shape (K, D, D)
        Symmetric positive-definite covariances (only the lower triangles are read).

    Returns
    -------
    ndarray of shape (N, K), Fortran-ordered
        ``log N(x_n | means_k, covs_k)``.

    Raises
    ------
    ValueError
        On wrong shapes, non-finite parameters or data, or a covariance that is not positive
        definite (the message names ``covs`` and the component).
    """
    x = _as_data(x)
    means, covs = _as_params(x, means, covs)
    precisions, log_det = _precisions(covs, "covs")
    shift = _data_centre(x)
    constants = -0.5 * (x.shape[1] * _LOG_2PI + log_det)
    out = _linear_log_densities(x, _density_weights(means, precisions, constants, shift), shift)
    _check_finite_rows(out, x, "the log-density")
    return out


def e_step(x, weights, means, covs) -> tuple[np.ndarray, np.ndarray]:
    """The E-step of a Gaussian mixture: per-point log-evidence and responsibilities.

    Parameters
    ----------
    x : array-like of shape (N, D)
    weights : array-like of shape (K,)
        Mixing weights, non-negative, not all zero (a zero weight gives its component zero
        responsibility); used as given, not renormalised.
    means : array-like of shape (K, D)
    covs : array-like of shape (K, D, D)
        Symmetric positive-definite covariances.

    Returns
    -------
    log_norm : ndarray of shape (N,)
        ``log sum_k weights_k N(x_n | means_k, covs_k)``; its sum is the log-likelihood.
    resp : ndarray of shape (N, K), Fortran-ordered
        Responsibilities ``p(z_n = k | x_n)``; every row sums to one.

    Raises
    ------
    ValueError
        On wrong shapes, negative or non-finite weights, non-finite data, or a covariance that is
        not positive definite (naming ``covs`` and the component).
    """
    x = _as_data(x)
    means, covs = _as_params(x, means, covs)
    weights = np.asarray(weights, dtype=np.float64)
    n_components = means.shape[0]
    if weights.shape != (n_components,):
        raise ValueError(f"weights must have shape (K,) = ({n_components},), got shape {weights.shape}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not np.any(weights > 0):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {weights}")
    precisions, log_det = _precisions(covs, "covs")
    shift = _data_centre(x)
    with np.errstate(divide="ignore"):
        constants = np.log(weights) - 0.5 * (x.shape[1] * _LOG_2PI + log_det)
    return _normalised(x, _density_weights(means, precisions, constants, shift), shift)


def _normalised(x, weights, shift) -> tuple[np.ndarray, np.ndarray]:
    """Responsibilities and log-normalisers of the unnormalised log-probabilities ``w . phi``."""
    n_rows, n_components = x.shape[0], weights.shape[0]
    resp = _fortran_output(n_rows, n_components)
    log_norm = np.empty(n_rows)
    features = _Features(x, shift)
    top = np.empty(features.block)
    total = np.empty(features.block)
    with np.errstate(invalid="ignore", over="ignore"):
        for start, stop, phi in features.blocks():
            block = resp[:, start:stop]
            np.matmul(weights, phi, out=block)
            # reductions over the K rows as K - 1 vector operations: NumPy's reduce along axis 0
            # of a (K, B) view loops over the short axis innermost, several times slower
            row_max, row_sum = top[: stop - start], total[: stop - start]
            np.copyto(row_max, block[0])
            for k in range(1, n_components):
                np.maximum(row_max, block[k], out=row_max)
            block -= row_max
            np.exp(block, out=block)
            np.copyto(row_sum, block[0])
            for k in range(1, n_components):
                row_sum += block[k]
            block /= row_sum
            np.log(row_sum, out=row_sum)
            np.add(row_max, row_sum, out=log_norm[start:stop])
    _check_finite_rows(log_norm, x, "the log-density")
    return log_norm, resp.T


def component_stats(x, resp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted counts, means and scatter matrices of every component, in one pass.

    Parameters
    ----------
    x : array-like of shape (N, D)
    resp : array-like of shape (N, K)
        Non-negative weights (responsibilities, or 0/1 assignments); not checked beyond the shape.
        Fortran order (as :func:`e_step` returns) is the fastest, C order works as well.

    Returns
    -------
    counts : ndarray of shape (K,)
        ``N_k = sum_n resp_nk``.
    means : ndarray of shape (K, D)
        ``xbar_k = sum_n resp_nk x_n / N_k`` (zeros where ``N_k = 0``).
    scatters : ndarray of shape (K, D, D)
        ``sum_n resp_nk (x_n - xbar_k)(x_n - xbar_k)^T``, symmetric (zeros where ``N_k = 0``).
        The input of :meth:`NormalInverseWishart.update(count, mean, scatter)
        <latentzoo.models.conjugate.NormalInverseWishart.update>`.

    Notes
    -----
    Counts, sums and second moments of the data centred at the overall mean come from one
    product ``resp^T phi`` per block; then ``scatter_k = M2_k - N_k ybar_k ybar_k^T``. A component
    for which that subtraction would cancel too many digits is recomputed centred at its own mean
    (module docstring), so the scatters keep their precision however far the data are from the
    origin.
    """
    x = _as_data(x)
    resp = np.asarray(resp, dtype=np.float64)
    n_rows, dim = x.shape
    if resp.ndim != 2 or resp.shape[0] != n_rows or resp.shape[1] < 1:
        raise ValueError(f"resp must have shape (N, K) with N = {n_rows}, got shape {resp.shape}")
    n_components = resp.shape[1]
    shift = _data_centre(x)
    features = _Features(x, shift)
    moments = np.zeros((n_components, features.n_features))
    resp_t = resp.T
    with np.errstate(invalid="ignore", over="ignore"):
        for start, stop, block in features.blocks():
            moments += resp_t[:, start:stop] @ block.T
    if not np.all(np.isfinite(moments)):
        if not np.all(np.isfinite(resp)):
            raise ValueError("resp must be finite")
        _raise_non_finite(x, "the weighted moments")
    counts = moments[:, -1].copy()
    positive = counts > 0
    safe = np.where(positive, counts, 1.0)
    centred_means = np.where(positive[:, None], moments[:, features.n_quadratic : -1] / safe[:, None], 0.0)

    upper_i, upper_j = np.triu_indices(dim)
    # on the upper triangle only, then mirrored: exactly symmetric
    upper = moments[:, : features.n_quadratic] - counts[:, None] * centred_means[:, upper_i] * centred_means[:, upper_j]
    upper[~positive] = 0.0
    scatters = np.empty((n_components, dim, dim))
    scatters[:, upper_i, upper_j] = upper
    scatters[:, upper_j, upper_i] = upper

    # the subtraction loses about 1e-16 * N_k |ybar_k|^2 / lambda_min of relative precision
    for k in np.flatnonzero(positive):
        offset = counts[k] * (centred_means[k] @ centred_means[k])
        smallest = np.linalg.eigvalsh(scatters[k])[0]
        if offset > _RECENTRE_RATIO * max(smallest, 0.0):
            scatters[k] = _scatter_about(x, resp[:, k], centred_means[k] + shift)
    means = np.where(positive[:, None], centred_means + shift, 0.0)
    return counts, means, scatters


def _scatter_about(x: np.ndarray, weights: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``sum_n w_n (x_n - centre)(x_n - centre)^T``, centred before the products (the exact pass)."""
    n_rows, dim = x.shape
    scatter = np.zeros((dim, dim))
    block = int(max(1, min(n_rows, _BLOCK_ROWS)))
    buffer = np.empty((dim, block))
    root = np.sqrt(weights)
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        rows = buffer[:, : stop - start]
        np.subtract(x[start:stop].T, centre[:, None], out=rows)
        rows *= root[start:stop]
        scatter += rows @ rows.T
    return 0.5 * (scatter + scatter.T)


def _niw_pieces(x, m, kappa, nu, S):
    """Validated ``x``, ``m``, the expected precisions ``nu_k S_k^{-1}`` and the per-component
    constants ``(E[log|Lambda_k|] - D log(2 pi) - D / kappa_k) / 2``."""
    x = _as_data(x)
    m, S = _as_params(x, m, S, means_name="m", covs_name="S")
    n_components, dim = m.shape
    try:
        kappa = np.broadcast_to(np.asarray(kappa, dtype=np.float64), (n_components,))
        nu = np.broadcast_to(np.asarray(nu, dtype=np.float64), (n_components,))
    except ValueError:
        raise ValueError(f"kappa and nu must be scalars or have shape (K,) = ({n_components},)") from None
    if not np.all(np.isfinite(kappa)) or np.any(kappa <= 0):
        raise ValueError(f"kappa must be finite and > 0, got {kappa}")
    if not np.all(np.isfinite(nu)) or np.any(nu <= dim - 1):
        raise ValueError(f"nu must be finite and > D - 1 = {dim - 1}, got {nu}")
    inverse_S, log_det_S = _precisions(S, "S")
    half_degrees = nu[:, None] / 2.0 + (1.0 - np.arange(1, dim + 1)) / 2.0
    expected_log_det = special.digamma(half_degrees).sum(axis=1) + dim * np.log(2.0) - log_det_S
    constants = 0.5 * (expected_log_det - dim * _LOG_2PI - dim / kappa)
    return x, m, nu[:, None, None] * inverse_S, constants


def expected_log_densities(x, m, kappa, nu, S) -> np.ndarray:
    """Variational Bayes' ``E_q[log N(x_n | mu_k, Sigma_k)]`` under Normal-Inverse-Wishart factors.

    With ``(mu_k, Sigma_k) ~ NIW(m_k, kappa_k, nu_k, S_k)`` and ``Lambda_k = Sigma_k^{-1}``
    (Bishop 2006, eq. 10.64-10.67 with ``W = S^{-1}``, ``beta = kappa``)::

        E[log N] = E[log|Lambda_k|] / 2 - D log(2 pi) / 2
                   - (D / kappa_k + nu_k (x_n - m_k)^T S_k^{-1} (x_n - m_k)) / 2,
        E[log|Lambda_k|] = psi_D(nu_k / 2) + D log 2 - log|S_k|,

    the same maths as :meth:`NormalInverseWishart.expected_log_det_precision` and
    :meth:`NormalInverseWishart.expected_mahalanobis`. It is the log-density of
    ``N(m_k, S_k / nu_k)`` up to a per-component constant, so it costs what
    :func:`log_gaussian_densities` costs.

    Parameters
    ----------
    x : array-like of shape (N, D)
    m : array-like of shape (K, D)
    kappa : array-like of shape (K,) (or a scalar)
        Positive.
    nu : array-like of shape (K,) (or a scalar)
        Greater than D - 1.
    S : array-like of shape (K, D, D)
        Symmetric positive-definite scale matrices.

    Returns
    -------
    ndarray of shape (N, K), Fortran-ordered
    """
    x, m, expected_precisions, constants = _niw_pieces(x, m, kappa, nu, S)
    shift = _data_centre(x)
    out = _linear_log_densities(x, _density_weights(m, expected_precisions, constants, shift), shift)
    _check_finite_rows(out, x, "the expected log-density")
    return out


def expected_e_step(x, expected_log_weights, m, kappa, nu, S) -> tuple[np.ndarray, np.ndarray]:
    """VB's update of q(z) in one pass: ``log rho_nk = E[log weights_k] + E[log N(x_n | mu_k, Sigma_k)]``
    (Bishop 2006, eq. 10.46), normalised as :func:`e_step` normalises.

    Parameters
    ----------
    x : array-like of shape (N, D)
    expected_log_weights : array-like of shape (K,)
        ``E_q[log weights_k]`` (``Dirichlet.expected_log()``); ``-inf`` allowed (zero responsibility).
    m, kappa, nu, S
        The NIW factors, as in :func:`expected_log_densities`.

    Returns
    -------
    log_norm : ndarray of shape (N,)
        ``log sum_k rho_nk``; with the optimal q(z) its sum is the ELBO's data term
        ``E_q[log p(x, z | theta)] - E_q[log q(z)]``.
    resp : ndarray of shape (N, K), Fortran-ordered
        ``r_nk = rho_nk / sum_j rho_nj``.
    """
    x, m, expected_precisions, constants = _niw_pieces(x, m, kappa, nu, S)
    log_weights = np.asarray(expected_log_weights, dtype=np.float64)
    if log_weights.shape != constants.shape or np.any(np.isnan(log_weights)) or np.any(log_weights == np.inf) or np.all(log_weights == -np.inf):
        raise ValueError(f"expected_log_weights must be {constants.size} numbers below +inf, not all -inf, got {log_weights}")
    shift = _data_centre(x)
    return _normalised(x, _density_weights(m, expected_precisions, constants + log_weights, shift), shift)
