"""Numerical kernels of the Gaussian mixture: log-densities and E-steps (EM's and VB's).

Written for speed at N = 1e5..1e6 points and shared by EM, VB and Gibbs (through
``models/mixture/gaussian.py``). One compiled pass (:mod:`~latentzoo.models.gaussian.passes`: numba,
``nopython``, cached on disk, single-threaded; how it is fast is told there) does the work;
NumPy/SciPy only validate and factorise the ``K`` parameter matrices
(:mod:`~latentzoo.models.gaussian.linalg`). The sufficient statistics live in
:mod:`~latentzoo.models.gaussian.stats` (:func:`component_stats` is re-exported here).

Log-densities use ``x - mu_k`` directly, so an offset of the data costs nothing; the scatter
matrices stay accurate as :mod:`~latentzoo.models.gaussian.stats` explains.

Inputs are trusted to be finite where checking would cost an extra pass over the data: a
non-finite ``x`` is detected from the (cheap) outputs and reported as a ``ValueError``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..core.base import check_spd
from .linalg import inverse_cholesky
from .passes import OUT_LOG_DENSITY, OUT_RESP, as_c, as_data, check_finite_rows, run_pass
from .stats import component_stats, stats_from_moments

__all__ = [
    "batched_log_densities",
    "component_stats",
    "e_step",
    "e_step_stats",
    "expected_e_step_stats",
    "expected_log_densities",
    "log_gaussian_densities",
    "scaled_densities",
]

_LOG_2PI = np.log(2.0 * np.pi)

#: elements of the (draws, N, K, D) temporaries when many parameter draws are evaluated at once
_BATCH_ELEMENTS = 1 << 21


# -- validation (cheap: shapes and K D^2 parameters, never a pass over x) -----------------------
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
    x = as_data(x)
    means, covs = _as_params(x, means, covs)
    factors, log_det = inverse_cholesky(covs, "covs")
    constants = -0.5 * (x.shape[1] * _LOG_2PI + log_det)
    out = run_pass(as_c(x), factors, means, constants, OUT_LOG_DENSITY)[0]
    check_finite_rows(out, x, "the log-density")
    return out


def scaled_densities(x, means, covs, summed: bool = True) -> tuple[np.ndarray, np.ndarray | float]:
    """Every point's densities under the components, divided by their sum over the components.

    What a hidden Markov model's forward-backward needs of the emissions: the likelihoods up to
    a factor per point (which only adds ``log c_n`` to the log-likelihood). Unlike
    :func:`log_gaussian_densities` followed by a shift and ``exp``, the compiled pass
    exponentiates with its vectorised ``exp`` and writes a (K, N) C-ordered array that the HMM
    kernels read as they read a categorical emission table.

    Parameters
    ----------
    x : array-like of shape (N, D)
        Finite data.
    means : array-like of shape (K, D)
    covs : array-like of shape (K, D, D)
        Symmetric positive-definite covariances.
    summed : bool
        Return ``sum_n log c_n`` (a float, one logarithm per 8 points) instead of ``log c_n`` (N,).

    Returns
    -------
    lik : ndarray of shape (K, N), C-ordered
        ``N(x_n | means_k, covs_k) / c_n`` with ``c_n = sum_k N(x_n | means_k, covs_k)``; every
        column sums to one.
    log_scale : float, or ndarray of shape (N,)
        ``sum_n log c_n``, or ``log c_n`` per point.

    Raises
    ------
    ValueError
        As :func:`log_gaussian_densities`.
    """
    x = as_data(x)
    means, covs = _as_params(x, means, covs)
    x, factors, means, constants = _mixture_pieces(x, np.ones(means.shape[0]), means, covs)
    out, log_scale, _, _ = run_pass(as_c(x), factors, means, constants, OUT_RESP, summed=summed)
    check_finite_rows(log_scale, x, "the log-density")
    return out.T, log_scale


def _mixture_pieces(x, weights, means, covs):
    """Validated ``x``, inverse Cholesky factors, means and ``log weights_k + log N`` constants."""
    x = as_data(x)
    means, covs = _as_params(x, means, covs)
    weights = np.asarray(weights, dtype=np.float64)
    n_components = means.shape[0]
    if weights.shape != (n_components,):
        raise ValueError(f"weights must have shape (K,) = ({n_components},), got shape {weights.shape}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not np.any(weights > 0):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {weights}")
    factors, log_det = inverse_cholesky(covs, "covs")
    with np.errstate(divide="ignore"):
        constants = np.log(weights) - 0.5 * (x.shape[1] * _LOG_2PI + log_det)
    return x, factors, means, constants


def e_step(x, weights, means, covs, want_resp: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
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
    want_resp : bool
        False: the log-normalisers alone, from the same compiled pass writing no ``(N, K)`` array.

    Returns
    -------
    log_norm : ndarray of shape (N,)
        ``log sum_k weights_k N(x_n | means_k, covs_k)``; its sum is the log-likelihood.
    resp : ndarray of shape (N, K), Fortran-ordered, or None
        Responsibilities ``p(z_n = k | x_n)``; every row sums to one (None unless ``want_resp``).

    Raises
    ------
    ValueError
        On wrong shapes, negative or non-finite weights, non-finite data, or a covariance that is
        not positive definite (naming ``covs`` and the component).
    """
    x, factors, means, constants = _mixture_pieces(x, weights, means, covs)
    resp, log_norm, _, _ = run_pass(as_c(x), factors, means, constants, OUT_RESP, want_out=want_resp)
    check_finite_rows(log_norm, x, "the log-density")
    return log_norm, resp


def e_step_stats(x, weights, means, covs, centre=None, summed=False):
    """:func:`e_step` and :func:`component_stats` of its responsibilities, in one pass.

    The responsibilities are used block by block and never stored: EM's whole E-step and the
    input of its M-step at the cost of one pass over ``x`` and no ``(N, K)`` array.

    Parameters
    ----------
    x, weights, means, covs
        As in :func:`e_step`.
    centre : ndarray of shape (D,), optional
        Where the moments are accumulated from: any point central to ``x``, by default its mean
        (computed here, an extra pass over ``x``; validated data know theirs).
    summed : bool
        Return the sum of ``log_norm`` (a float; EM needs no more) instead of the (N,) array: the
        pass then takes one logarithm per 8 points instead of one per point.

    Returns
    -------
    log_norm : ndarray of shape (N,), or float
        As in :func:`e_step`; its sum with ``summed=True``.
    counts : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    scatters : ndarray of shape (K, D, D)
        As :func:`component_stats` returns them for the responsibilities of :func:`e_step`.

    Raises
    ------
    ValueError
        As :func:`e_step`.
    """
    x, factors, centres, constants = _mixture_pieces(x, weights, means, covs)
    return _stats_pass(as_c(x), factors, centres, constants, centre, summed, "the log-density")


def _stats_pass(x, factors, centres, constants, centre, summed: bool, what: str):
    """Log-normalisers and weighted statistics of the components in one pass over ``x`` (the
    responsibilities are formed again only if the moments need them; see
    :func:`stats_from_moments`), for EM's and VB's E-steps alike."""
    _, log_norm, moments, shift = run_pass(
        x, factors, centres, constants, OUT_RESP, want_out=False, want_stats=True,
        shift=None if centre is None else np.asarray(centre, dtype=np.float64), summed=summed,
    )
    check_finite_rows(log_norm, x, what)

    def responsibilities():
        return run_pass(x, factors, centres, constants, OUT_RESP)[0]

    return (log_norm, *stats_from_moments(x, moments, shift, responsibilities))


def batched_log_densities(x, means, covs) -> np.ndarray:
    """log N(x_n | means_k, covs_k) for many parameter sets, shape (S, N, K).

    The other kernels here are built for one parameter set and many points; posterior draws
    need the opposite (thousands of small sets), so this loops over chunks of sets with
    batched Cholesky factors instead of over sets.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    means : ndarray of shape (S, K, D)
    covs : ndarray of shape (S, K, D, D)

    Returns
    -------
    ndarray of shape (S, N, K)

    Raises
    ------
    ValueError
        Naming the draw and component whose covariance is not symmetric positive definite.
    """
    n, dim = x.shape
    n_sets, K = means.shape[:2]
    out = np.empty((n_sets, n, K))
    chunk = max(1, _BATCH_ELEMENTS // max(1, n * K * dim))
    for start in range(0, n_sets, chunk):
        part = slice(start, min(n_sets, start + chunk))
        try:
            chol = np.linalg.cholesky(covs[part])
        except np.linalg.LinAlgError:
            for offset, set_covs in enumerate(covs[part]):
                check_spd(set_covs, f"params['covs'] (draw {start + offset}) ")
            raise
        chol_inv = np.linalg.inv(chol)
        z = np.einsum("skij,snkj->snki", chol_inv, x[None, :, None, :] - means[part][:, None, :, :])
        half_log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)  # (s, K)
        out[part] = (-half_log_det - 0.5 * dim * _LOG_2PI)[:, None, :] - 0.5 * np.einsum("snki,snki->snk", z, z)
    return out


def _niw_pieces(x, m, kappa, nu, S):
    """Validated ``x``, ``m``, factors ``sqrt(nu_k) L_k^{-1}`` of the expected precisions
    ``nu_k S_k^{-1}`` (``S_k = L_k L_k^T``) and the per-component constants
    ``(E[log|Lambda_k|] - D log(2 pi) - D / kappa_k) / 2``."""
    x = as_data(x)
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
    inverse_chol, log_det_S = inverse_cholesky(S, "S")
    half_degrees = nu[:, None] / 2.0 + (1.0 - np.arange(1, dim + 1)) / 2.0
    expected_log_det = special.digamma(half_degrees).sum(axis=1) + dim * np.log(2.0) - log_det_S
    constants = 0.5 * (expected_log_det - dim * _LOG_2PI - dim / kappa)
    return x, m, np.sqrt(nu)[:, None, None] * inverse_chol, constants


def expected_log_densities(x, m, kappa, nu, S) -> np.ndarray:
    """Variational Bayes' ``E_q[log N(x_n | mu_k, Sigma_k)]`` under Normal-Inverse-Wishart factors.

    With ``(mu_k, Sigma_k) ~ NIW(m_k, kappa_k, nu_k, S_k)`` and ``Lambda_k = Sigma_k^{-1}``
    (Bishop 2006, eq. 10.64-10.67 with ``W = S^{-1}``, ``beta = kappa``)::

        E[log N] = E[log|Lambda_k|] / 2 - D log(2 pi) / 2
                   - (D / kappa_k + nu_k (x_n - m_k)^T S_k^{-1} (x_n - m_k)) / 2,
        E[log|Lambda_k|] = psi_D(nu_k / 2) + D log 2 - log|S_k|,

    with ``E[(x - mu)^T Lambda (x - mu)] = D / kappa + nu (x - m)^T S^{-1} (x - m)``. It is the log-density of
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
    x, m, factors, constants = _niw_pieces(x, m, kappa, nu, S)
    out = run_pass(as_c(x), factors, m, constants, OUT_LOG_DENSITY)[0]
    check_finite_rows(out, x, "the expected log-density")
    return out


def expected_e_step_stats(x, expected_log_weights, m, kappa, nu, S, centre=None, summed=False):
    """:func:`e_step_stats` for variational Bayes, in one pass: VB's update of q(z), ``log rho_nk =
    E[log weights_k] + E[log N(x_n | mu_k, Sigma_k)]`` (Bishop 2006, eq. 10.46) normalised as
    :func:`e_step` normalises, and :func:`component_stats` of the responsibilities ``r_nk = rho_nk /
    sum_j rho_nj`` (the input of the factors' update; no ``(N, K)`` array).

    Parameters
    ----------
    x : array-like of shape (N, D)
    expected_log_weights : array-like of shape (K,)
        ``E_q[log weights_k]`` (``Dirichlet.expected_log()``); ``-inf`` allowed (zero responsibility).
    m, kappa, nu, S
        The NIW factors, as in :func:`expected_log_densities`.
    centre : ndarray of shape (D,), optional
    summed : bool
        As in :func:`e_step_stats`.

    Returns
    -------
    log_norm : ndarray of shape (N,), or float
        ``log sum_k rho_nk`` (its sum with ``summed=True``); with the optimal q(z) its sum is the
        ELBO's data term ``E_q[log p(x, z | theta)] - E_q[log q(z)]``.
    counts : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    scatters : ndarray of shape (K, D, D)
        As :func:`component_stats` returns them for the responsibilities.
    """
    x, m, factors, constants = _niw_pieces(x, m, kappa, nu, S)
    log_weights = np.asarray(expected_log_weights, dtype=np.float64)
    if (
        log_weights.shape != constants.shape
        or np.any(np.isnan(log_weights))
        or np.any(log_weights == np.inf)
        or np.all(log_weights == -np.inf)
    ):
        raise ValueError(
            f"expected_log_weights must be {constants.size} numbers below +inf, not all -inf, got {log_weights}"
        )
    return _stats_pass(as_c(x), factors, m, constants + log_weights, centre, summed, "the expected log-density")
