"""Numerical kernels of the Gaussian mixture: log-densities, E-step, sufficient statistics.

Written for speed at N = 1e5..1e6 points and shared by EM, VB and Gibbs (through
``models/gaussian_mixture.py``) and by :func:`~latentzoo.models.conjugate.gaussian_stats`. One
compiled pass (numba, ``nopython``, cached on disk, single-threaded) does the work; NumPy/SciPy
only validate and factorise the ``K`` parameter matrices.

How they are fast
-----------------
* **One pass over the data.** Points go through in blocks of ``_BLOCK`` (256) laid out as
  ``(D, B)`` (a transposing copy), so every inner loop runs along the block and is vectorised
  by LLVM (AVX2 on the benchmark machine). Per block: the log-densities of every component,
  the log-normaliser and responsibilities, and, when asked for, the weighted counts, first and
  second moments. :func:`e_step_stats` and :func:`expected_e_step_stats` (EM's and VB's
  E-step plus the M-step input) therefore never write an ``(N, K)`` array.
* **Mahalanobis distances by the inverse Cholesky factor.** With ``covs_k = L_k L_k^T`` and
  ``A_k = L_k^{-1}`` (lower triangular, ``K D^2`` numbers formed once), the distance is
  ``|A_k (x - mu_k)|^2``: ``D(D+1)/2`` fused multiply-adds per point and component, on
  differences ``x - mu_k`` taken first (no cancellation, whatever the offset of the data).
* **A vectorised exp.** NumPy's and libm's ``exp`` of float64 are scalar without AVX-512; the
  kernel's own (Cody-Waite reduction by ``ln 2``, degree-13 Taylor polynomial, ``2^n`` from the
  exponent bits; relative error <= 2.2e-16, measured) runs about 5x faster. Arguments below
  ``-708`` give exactly 0 (a responsibility below 1e-307), NaN stays NaN.
* **Moments.** For few components each moment ``sum_b r_kb y_ib y_jb`` is a dot product along
  the block (``fastmath`` reassociation in that dot product only: a fixed, machine-deterministic
  order of partial sums, as BLAS uses); for many components one BLAS product per block,
  ``r (K, B) @ phi (B, Q)`` with the quadratic features ``phi(y) = (y_i y_j for i <= j, y, 1)``,
  is cheaper (it costs about what reading ``phi`` costs, whatever ``K``).
* Only ``fastmath={'contract'}`` (fused multiply-add) is allowed elsewhere: no assumption about
  NaN or infinities, no reordering of sums.
* ``(N, K)`` outputs are Fortran-ordered (the transpose of a C-ordered ``(K, N)`` array), so
  ``out[:, k]`` and ``out.T`` are contiguous. Memory is O(N K + K D^2 + B D^2).

Why they stay accurate
----------------------
Log-densities use ``x - mu_k`` directly, so an offset of the data costs nothing. The scatter
matrices come from one-pass moments of ``y = x - c`` (``c`` the overall data mean),
``sum_n r_nk y_n y_n^T - N_k ybar_k ybar_k^T``. A component whose mean is so far from ``c``
(compared with the spread of its scatter in its weakest direction) that this would lose more than
about 1e-12 of relative precision, or could leave the scatter indefinite, is recomputed exactly,
centred at its own mean, in a second pass. In the usual case there is one pass over the data.

Inputs are trusted to be finite where checking would cost an extra pass over the data: a
non-finite ``x`` is detected from the (cheap) outputs and reported as a ``ValueError``.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import special

__all__ = [
    "component_stats",
    "e_step",
    "e_step_stats",
    "expected_e_step",
    "expected_e_step_stats",
    "expected_log_densities",
    "log_gaussian_densities",
]

_LOG_2PI = np.log(2.0 * np.pi)

# Points per block: the (D, B) and (K, B) work arrays stay in L1/L2. Measured (N = 1e5, D = 2..10,
# K = 3..8): 256 and 512 equally fast at D <= 5, 256 10% faster at D = 10; 128 and 1024 slower,
# 4096 up to 2x slower at D = 10. A multiple of 8.
_BLOCK = 256

# Above this many components the moments are one BLAS product per block instead of K (D + 1)
# (D + 2) / 2 dot products (measured crossover between K = 3 and K = 8 at D = 5 and 10).
_GEMM_FROM = 5

# Recompute a component's scatter centred at its own mean when the one-pass formula would lose
# more than about 1e-16 * ratio of relative precision in the scatter's weakest direction.
_RECENTRE_RATIO = 1e4

# what the compiled pass writes into ``out``
_OUT_LOG_DENSITY, _OUT_RESP, _GIVEN_RESP = 0, 1, 2

_JIT = {"cache": True, "nogil": True, "fastmath": {"contract"}}


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


# -- compiled pass -----------------------------------------------------------------------------
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in 32 bits: m * _LN2_HI is exact for |m| < 2^20
_LN2_LO = 1.90821492927058770002e-10
_SHIFTER = 6755399441055744.0  # 1.5 * 2^52: adding it rounds to an integer kept in the low bits
_EXPONENT_OFFSET = int(np.array(_SHIFTER).view(np.int64)) - 1023
_EXP_FLOOR = -708.0  # exp(-708) = 3.3e-308, still normal


@njit(**_JIT)
def _exp_shifted(block, k, top, n, scratch):
    """``block[k, b] = exp(block[k, b] - top[b])`` for ``b < n``, where ``block[k, b] <= top[b]``;
    vectorisable (no libm call).

    ``exp(v) = 2^m exp(r)`` with ``m = round(v / ln 2)``, ``|r| <= ln(2) / 2``; ``exp(r)`` by its
    Taylor polynomial to degree 13 (truncation below 2e-17), ``2^m`` by writing ``m + 1023``
    into the exponent bits. Arguments below ``_EXP_FLOOR`` give exactly 0; NaN stays NaN.
    ``scratch`` is a float work array of at least ``n`` elements. (Indexing the 2-D block, not
    a slice of it, keeps the loops contiguous for the vectoriser: measured 3x faster.)
    """
    for b in range(n):
        v = block[k, b] - top[b]
        small = v < _EXP_FLOOR  # False for NaN, which then propagates through the arithmetic
        v = _EXP_FLOOR if small else v
        rounded = v * _LOG2E + _SHIFTER
        scratch[b] = rounded
        m = rounded - _SHIFTER
        r = (v - m * _LN2_HI) - m * _LN2_LO
        p = 1.6059043836821613e-10
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        block[k, b] = 0.0 if small else p
    bits = scratch.view(np.int64)
    for b in range(n):
        bits[b] = (bits[b] - _EXPONENT_OFFSET) << 52  # now the float 2^m
    for b in range(n):
        block[k, b] *= scratch[b]


@njit(**_JIT)
def _exp_nonpositive(values, out, scratch):
    """``out = exp(values)`` for ``values <= 0`` (1-D), by :func:`_exp_shifted`."""
    n = values.shape[0]
    block = np.empty((1, n))
    for b in range(n):
        block[0, b] = values[b]
    _exp_shifted(block, 0, np.zeros(n), n, scratch)
    for b in range(n):
        out[b] = block[0, b]


@njit(cache=True, nogil=True, fastmath={"contract", "reassoc"})
def _dot(u, v, n):
    """``sum_b u[b] v[b]`` over ``b < n``, vectorised (reassociated into SIMD partial sums)."""
    total = 0.0
    for b in range(n):
        total += u[b] * v[b]
    return total


@njit(cache=True, nogil=True, fastmath={"contract", "reassoc"})
def _dot4(u, v0, v1, v2, v3, n):
    """``sum_b u[b] v_i[b]`` for four ``v_i`` at once, as :func:`_dot`."""
    t0 = 0.0
    t1 = 0.0
    t2 = 0.0
    t3 = 0.0
    for b in range(n):
        w = u[b]
        t0 += w * v0[b]
        t1 += w * v1[b]
        t2 += w * v2[b]
        t3 += w * v3[b]
    return t0, t1, t2, t3


@njit(**_JIT)
def _fused_pass(x, factors, centres, constants, shift, resp_in, mode, out, log_norm, moments, block, use_gemm):
    """One pass over ``x`` (N, D), block by block.

    ``mode`` 0: ``out[k, n] = constants_k - |A_k (x_n - centres_k)|^2 / 2``; 1: normalised over k,
    ``out`` (K, N) the responsibilities (not written when ``out`` has no columns) and
    ``log_norm`` (N,) the log-normalisers; 2: the responsibilities are ``resp_in`` (K, N).
    When ``moments`` (K, Q) has columns, ``sum_n r_kn phi(x_n - shift)`` is added to it,
    ``phi(y) = (y_i y_j for i <= j, y_1..y_D, 1)``.
    """
    n_rows, dim = x.shape
    n_components = centres.shape[0]
    n_quadratic = dim * (dim + 1) // 2
    want_stats = moments.shape[1] > 0
    write_out = out.shape[1] > 0
    xt = np.empty((dim, block))
    diff = np.empty((dim, block))
    row_sum = np.empty(block)
    next_sum = np.empty(block)
    distance = np.empty(block)
    top = np.empty(block)
    total = np.empty(block)
    scratch = np.empty(block)
    # zero-filled: the padding of the last block must contribute exactly nothing to the moments
    resp = np.zeros((n_components, block))
    features = np.zeros((moments.shape[1] if use_gemm else dim, block))
    centred = features[n_quadratic : n_quadratic + dim] if use_gemm else features
    weighted = np.empty((dim, block))
    for start in range(0, n_rows, block):
        nb = min(block, n_rows - start)
        for b in range(nb):
            for j in range(dim):
                xt[j, b] = x[start + b, j]
        if mode == _GIVEN_RESP:
            for k in range(n_components):
                for b in range(nb):
                    resp[k, b] = resp_in[k, start + b]
        else:
            for k in range(n_components):
                for j in range(dim):
                    c = centres[k, j]
                    for b in range(nb):
                        diff[j, b] = xt[j, b] - c
                for b in range(nb):
                    distance[b] = 0.0
                # rows i and i + 1 of A_k (x - mu_k) together, accumulated along the block (each
                # load of diff[j] serves two rows)
                for i in range(0, dim - 1, 2):
                    a, a_next = factors[k, i, 0], factors[k, i + 1, 0]
                    for b in range(nb):
                        row_sum[b] = a * diff[0, b]
                        next_sum[b] = a_next * diff[0, b]
                    for j in range(1, i + 1):
                        a, a_next = factors[k, i, j], factors[k, i + 1, j]
                        for b in range(nb):
                            row_sum[b] += a * diff[j, b]
                            next_sum[b] += a_next * diff[j, b]
                    a_next = factors[k, i + 1, i + 1]
                    for b in range(nb):
                        last = next_sum[b] + a_next * diff[i + 1, b]
                        distance[b] += row_sum[b] * row_sum[b] + last * last
                if dim % 2:
                    i = dim - 1
                    a = factors[k, i, 0]
                    for b in range(nb):
                        row_sum[b] = a * diff[0, b]
                    for j in range(1, i + 1):
                        a = factors[k, i, j]
                        for b in range(nb):
                            row_sum[b] += a * diff[j, b]
                    for b in range(nb):
                        distance[b] += row_sum[b] * row_sum[b]
                c = constants[k]
                for b in range(nb):
                    resp[k, b] = c - 0.5 * distance[b]
            if mode == _OUT_LOG_DENSITY:
                for k in range(n_components):
                    for b in range(nb):
                        out[k, start + b] = resp[k, b]
            else:
                for b in range(nb):
                    top[b] = resp[0, b]
                for k in range(1, n_components):
                    for b in range(nb):
                        v, t = resp[k, b], top[b]
                        top[b] = v if v > t else t  # a select, vectorised (a NaN in row 0 stays)
                for k in range(n_components):
                    _exp_shifted(resp, k, top, nb, scratch)
                for b in range(nb):
                    total[b] = resp[0, b]
                for k in range(1, n_components):
                    for b in range(nb):
                        total[b] += resp[k, b]
                for b in range(nb):
                    log_norm[start + b] = top[b] + np.log(total[b])
                    total[b] = 1.0 / total[b]
                for k in range(n_components):
                    for b in range(nb):
                        resp[k, b] *= total[b]
                if write_out:
                    for k in range(n_components):
                        for b in range(nb):
                            out[k, start + b] = resp[k, b]
        if not want_stats:
            continue
        for j in range(dim):
            s = shift[j]
            for b in range(nb):
                centred[j, b] = xt[j, b] - s
        if use_gemm:
            row = 0
            for i in range(dim):
                for j in range(i, dim):
                    for b in range(nb):
                        features[row, b] = centred[i, b] * centred[j, b]
                    row += 1
            for b in range(nb):
                features[n_quadratic + dim, b] = 1.0
            if nb < block:
                for k in range(n_components):
                    for b in range(nb, block):
                        resp[k, b] = 0.0
                for q in range(features.shape[0]):
                    for b in range(nb, block):
                        features[q, b] = 0.0
            moments += np.dot(resp, features.T)
        else:
            for k in range(n_components):
                rk = resp[k]
                for i in range(dim):
                    for b in range(nb):
                        weighted[i, b] = rk[b] * centred[i, b]
                q = 0
                for i in range(dim):
                    j = i
                    while j + 4 <= dim:  # four moments per pass: each load of weighted[i] serves four
                        m0, m1, m2, m3 = _dot4(weighted[i], centred[j], centred[j + 1], centred[j + 2], centred[j + 3], nb)
                        moments[k, q] += m0
                        moments[k, q + 1] += m1
                        moments[k, q + 2] += m2
                        moments[k, q + 3] += m3
                        q += 4
                        j += 4
                    while j < dim:
                        moments[k, q] += _dot(weighted[i], centred[j], nb)
                        q += 1
                        j += 1
                for i in range(dim):
                    moments[k, n_quadratic + i] += _dot(rk, centred[i], nb)
                count = 0.0
                for b in range(nb):
                    count += rk[b]
                moments[k, n_quadratic + dim] += count


def _inverse_cholesky(covs: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``A_k = L_k^{-1}`` (lower triangular, ``covs_k = L_k L_k^T``) and ``log|covs_k|``.

    Only the lower triangle of each covariance is read (as LAPACK does), so round-off asymmetry
    is harmless. NumPy's LAPACK factorises; the compiled forward substitution inverts (SciPy's
    ``solve_triangular`` was measured at 8 ms of CPU per 2 x 2 call with two OpenBLAS threads).

    Raises
    ------
    ValueError
        Naming ``name`` and the component when a matrix is not positive definite.
    """
    n_components = covs.shape[0]
    chols = np.empty_like(covs)
    lower = np.tril(covs) + np.swapaxes(np.tril(covs, -1), -1, -2)
    for k in range(n_components):
        try:
            chols[k] = np.linalg.cholesky(lower[k])
            positive = bool(np.all(np.diagonal(chols[k]) > 0))
        except np.linalg.LinAlgError:
            positive = False
        if not positive:
            raise ValueError(
                f"{name}[{k}] is not positive definite (component {k}); a collapsing component "
                "needs a covariance regulariser or a proper prior"
            )
    log_det = 2.0 * np.log(np.diagonal(chols, axis1=1, axis2=2)).sum(axis=1)
    return _inverse_lower(chols), log_det


@njit(**_JIT)
def _inverse_lower(chols):
    """``L_k^{-1}`` of lower-triangular ``L_k`` (K, D, D) by forward substitution; exact zeros above."""
    n_components, dim = chols.shape[0], chols.shape[1]
    inverse = np.zeros_like(chols)
    for k in range(n_components):
        for c in range(dim):
            inverse[k, c, c] = 1.0 / chols[k, c, c]
            for i in range(c + 1, dim):
                total = 0.0
                for j in range(c, i):
                    total += chols[k, i, j] * inverse[k, j, c]
                inverse[k, i, c] = -total / chols[k, i, i]
    return inverse


def _data_centre(x: np.ndarray) -> np.ndarray:
    # overall mean as a BLAS product (x.mean(axis=0) reduces along the short axis, and is slow);
    # the shift only has to be central, not exact. For N = 0 anything finite will do.
    n_rows = x.shape[0]
    return x.T @ np.full(n_rows, 1.0 / n_rows) if n_rows else np.zeros(x.shape[1])


def _n_moments(dim: int) -> int:
    return dim * (dim + 1) // 2 + dim + 1


def _run(x, factors, centres, constants, mode, *, resp=None, want_out=True, want_stats=False):
    """Call the compiled pass; returns ``(out (N, K) Fortran-ordered or None, log_norm or None,
    moments or None, shift)``."""
    n_rows, dim = x.shape
    n_components = centres.shape[0]
    shift = _data_centre(x) if want_stats else np.zeros(dim)
    out = np.empty((n_components, n_rows if want_out else 0))
    log_norm = np.empty(n_rows if mode == _OUT_RESP else 0)
    moments = np.zeros((n_components, _n_moments(dim) if want_stats else 0))
    resp_in = np.empty((n_components, 0)) if resp is None else resp.T
    _fused_pass(
        x, factors, centres, constants, shift, resp_in, mode, out, log_norm, moments, _BLOCK,
        want_stats and n_components >= _GEMM_FROM,
    )
    return (out.T if want_out else None), log_norm, moments, shift


def _as_c(x: np.ndarray) -> np.ndarray:
    # one compiled variant for the data layout; the copy only happens for non C-ordered input
    return np.ascontiguousarray(x)


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
    factors, log_det = _inverse_cholesky(covs, "covs")
    constants = -0.5 * (x.shape[1] * _LOG_2PI + log_det)
    out = _run(_as_c(x), factors, means, constants, _OUT_LOG_DENSITY)[0]
    _check_finite_rows(out, x, "the log-density")
    return out


def _mixture_pieces(x, weights, means, covs):
    """Validated ``x``, inverse Cholesky factors, means and ``log weights_k + log N`` constants."""
    x = _as_data(x)
    means, covs = _as_params(x, means, covs)
    weights = np.asarray(weights, dtype=np.float64)
    n_components = means.shape[0]
    if weights.shape != (n_components,):
        raise ValueError(f"weights must have shape (K,) = ({n_components},), got shape {weights.shape}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or not np.any(weights > 0):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {weights}")
    factors, log_det = _inverse_cholesky(covs, "covs")
    with np.errstate(divide="ignore"):
        constants = np.log(weights) - 0.5 * (x.shape[1] * _LOG_2PI + log_det)
    return x, factors, means, constants


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
    x, factors, means, constants = _mixture_pieces(x, weights, means, covs)
    resp, log_norm, _, _ = _run(_as_c(x), factors, means, constants, _OUT_RESP)
    _check_finite_rows(log_norm, x, "the log-density")
    return log_norm, resp


def e_step_stats(x, weights, means, covs):
    """:func:`e_step` and :func:`component_stats` of its responsibilities, in one pass.

    The responsibilities are used block by block and never stored: EM's whole E-step and the
    input of its M-step at the cost of one pass over ``x`` and no ``(N, K)`` array.

    Parameters
    ----------
    x, weights, means, covs
        As in :func:`e_step`.

    Returns
    -------
    log_norm : ndarray of shape (N,)
        As in :func:`e_step`.
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
    x = _as_c(x)
    _, log_norm, moments, shift = _run(x, factors, centres, constants, _OUT_RESP, want_out=False, want_stats=True)
    _check_finite_rows(log_norm, x, "the log-density")

    def responsibilities():
        return _run(x, factors, centres, constants, _OUT_RESP)[0]

    return (log_norm, *_stats_from_moments(x, moments, shift, responsibilities))


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
    Counts, sums and second moments of the data centred at the overall mean come from one pass;
    then ``scatter_k = M2_k - N_k ybar_k ybar_k^T``. A component for which that subtraction
    would cancel too many digits is recomputed centred at its own mean (module docstring), so
    the scatters keep their precision however far the data are from the origin.
    """
    x = _as_c(_as_data(x))
    resp = np.asarray(resp, dtype=np.float64)
    n_rows, dim = x.shape
    if resp.ndim != 2 or resp.shape[0] != n_rows or resp.shape[1] < 1:
        raise ValueError(f"resp must have shape (N, K) with N = {n_rows}, got shape {resp.shape}")
    if not (resp.T.flags.c_contiguous or resp.flags.c_contiguous):
        resp = np.asfortranarray(resp)
    n_components = resp.shape[1]
    none = np.empty((n_components, dim, dim))  # the pass reads no parameters in this mode
    _, _, moments, shift = _run(
        x, none, np.zeros((n_components, dim)), np.zeros(n_components), _GIVEN_RESP, resp=resp,
        want_out=False, want_stats=True,
    )
    if not np.all(np.isfinite(moments)):
        if not np.all(np.isfinite(resp)):
            raise ValueError("resp must be finite")
        _raise_non_finite(x, "the weighted moments")
    return _stats_from_moments(x, moments, shift, lambda: resp)


def _stats_from_moments(x, moments, shift, responsibilities):
    """Counts, means and scatters from the moments ``sum_n r_nk phi(x_n - shift)``;
    ``responsibilities()`` gives the (N, K) weights again if a component needs the exact pass."""
    dim = x.shape[1]
    n_quadratic = dim * (dim + 1) // 2
    counts = moments[:, -1].copy()
    positive = counts > 0
    safe = np.where(positive, counts, 1.0)
    centred_means = np.where(positive[:, None], moments[:, n_quadratic:-1] / safe[:, None], 0.0)

    upper_i, upper_j = np.triu_indices(dim)
    # on the upper triangle only, then mirrored: exactly symmetric
    upper = moments[:, :n_quadratic] - counts[:, None] * centred_means[:, upper_i] * centred_means[:, upper_j]
    upper[~positive] = 0.0
    scatters = np.empty((counts.size, dim, dim))
    scatters[:, upper_i, upper_j] = upper
    scatters[:, upper_j, upper_i] = upper

    # the subtraction loses about 1e-16 * N_k |ybar_k|^2 / lambda_min of relative precision
    resp = None
    for k in np.flatnonzero(positive):
        offset = counts[k] * (centred_means[k] @ centred_means[k])
        smallest = np.linalg.eigvalsh(scatters[k])[0]
        if offset > _RECENTRE_RATIO * max(smallest, 0.0):
            resp = responsibilities() if resp is None else resp
            scatters[k] = _scatter_about(x, resp[:, k], centred_means[k] + shift)
    means = np.where(positive[:, None], centred_means + shift, 0.0)
    return counts, means, scatters


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


def _niw_pieces(x, m, kappa, nu, S):
    """Validated ``x``, ``m``, factors ``sqrt(nu_k) L_k^{-1}`` of the expected precisions
    ``nu_k S_k^{-1}`` (``S_k = L_k L_k^T``) and the per-component constants
    ``(E[log|Lambda_k|] - D log(2 pi) - D / kappa_k) / 2``."""
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
    inverse_chol, log_det_S = _inverse_cholesky(S, "S")
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
    x, m, factors, constants = _niw_pieces(x, m, kappa, nu, S)
    out = _run(_as_c(x), factors, m, constants, _OUT_LOG_DENSITY)[0]
    _check_finite_rows(out, x, "the expected log-density")
    return out


def _vb_pieces(x, expected_log_weights, m, kappa, nu, S):
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
    return _as_c(x), m, factors, constants + log_weights


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
    x, m, factors, constants = _vb_pieces(x, expected_log_weights, m, kappa, nu, S)
    resp, log_norm, _, _ = _run(x, factors, m, constants, _OUT_RESP)
    _check_finite_rows(log_norm, x, "the expected log-density")
    return log_norm, resp


def expected_e_step_stats(x, expected_log_weights, m, kappa, nu, S):
    """:func:`expected_e_step` and :func:`component_stats` of its responsibilities, in one pass
    (VB's update of q(z) and the input of the factors' update; no ``(N, K)`` array).

    Parameters
    ----------
    x, expected_log_weights, m, kappa, nu, S
        As in :func:`expected_e_step`.

    Returns
    -------
    log_norm : ndarray of shape (N,)
    counts : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    scatters : ndarray of shape (K, D, D)
        As :func:`expected_e_step` and :func:`component_stats` return them.
    """
    x, m, factors, constants = _vb_pieces(x, expected_log_weights, m, kappa, nu, S)
    _, log_norm, moments, shift = _run(x, factors, m, constants, _OUT_RESP, want_out=False, want_stats=True)
    _check_finite_rows(log_norm, x, "the expected log-density")

    def responsibilities():
        return _run(x, factors, m, constants, _OUT_RESP)[0]

    return (log_norm, *_stats_from_moments(x, moments, shift, responsibilities))
