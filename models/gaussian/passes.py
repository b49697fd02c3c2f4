"""The compiled pass of the Gaussian-mixture kernels: one pass over the data, block by block.

:func:`run_pass` calls :func:`_fused_pass` (numba, ``nopython``, cached on disk, single-threaded),
which computes, per block of points, the log-densities of every component, the log-normaliser
and responsibilities, and, when asked for, the weighted counts, first and second moments. The
public kernels (:mod:`~latentzoo.models.gaussian.kernels`, :mod:`~latentzoo.models.gaussian.stats`)
validate and factorise the parameters, then call it.

How it is fast
--------------
* **One pass over the data.** Points go through in blocks of ``_BLOCK`` (256) laid out as
  ``(D, B)`` (a transposing copy), so every inner loop runs along the block and is vectorised
  by LLVM (AVX2 on the benchmark machine). Per block: the log-densities of every component,
  the log-normaliser and responsibilities, and, when asked for, the weighted counts, first and
  second moments. :func:`~latentzoo.models.gaussian.kernels.e_step_stats` and
  :func:`~latentzoo.models.gaussian.kernels.expected_e_step_stats` (EM's and VB's E-step plus the
  M-step input) therefore never write an ``(N, K)`` array.
* **Mahalanobis distances by the inverse Cholesky factor.** With ``covs_k = L_k L_k^T`` and
  ``A_k = L_k^{-1}`` (lower triangular, ``K D^2`` numbers formed once by
  :func:`~latentzoo.models.gaussian.linalg.inverse_cholesky`), the distance is
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

Inputs are trusted to be finite where checking would cost an extra pass over the data: a
non-finite ``x`` is detected from the (cheap) outputs and reported as a ``ValueError``
(:func:`check_finite_rows`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Points per block: the (D, B) and (K, B) work arrays stay in L1/L2. Measured (N = 1e5, D = 2..10,
# K = 3..8): 256 and 512 equally fast at D <= 5, 256 10% faster at D = 10; 128 and 1024 slower,
# 4096 up to 2x slower at D = 10. A multiple of 8.
_BLOCK = 256

# Above this many components the moments are one BLAS product per block instead of K (D + 1)
# (D + 2) / 2 dot products (measured crossover between K = 3 and K = 8 at D = 5 and 10).
_GEMM_FROM = 5

# what the compiled pass writes into ``out``
OUT_LOG_DENSITY, OUT_RESP, GIVEN_RESP = 0, 1, 2

JIT = {"cache": True, "nogil": True, "fastmath": {"contract"}}


# -- validation (cheap: the shape of x, never a pass over its values) -----------------------------
def as_data(x, name: str = "x") -> np.ndarray:
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric array of shape (N, D)") from None
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got shape {x.shape}")
    if x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one feature, got shape {x.shape}")
    return x


def check_finite_rows(values: np.ndarray, x: np.ndarray, what: str) -> None:
    """Raise if ``values`` (an output computed from x) is not finite, naming the rows of x."""
    if not np.all(np.isfinite(values)):
        raise_non_finite(x, what)


def raise_non_finite(x: np.ndarray, what: str) -> None:
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


@njit(**JIT)
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


@njit(**JIT)
def _fused_pass(x, factors, centres, constants, shift, resp_in, mode, out, log_norm, log_sum, moments, block, use_gemm):
    """One pass over ``x`` (N, D), block by block.

    ``mode`` 0: ``out[k, n] = constants_k - |A_k (x_n - centres_k)|^2 / 2``; 1: normalised over k,
    ``out`` (K, N) the responsibilities (not written when ``out`` has no columns) and
    ``log_norm`` (N,) the log-normalisers, or, when ``log_norm`` is empty, their sum added to
    ``log_sum[0]``; 2: the responsibilities are ``resp_in`` (K, N).
    When ``moments`` (K, Q) has columns, ``sum_n r_kn phi(x_n - shift)`` is added to it,
    ``phi(y) = (y_i y_j for i <= j, y_1..y_D, 1)``.
    """
    n_rows, dim = x.shape
    n_components = centres.shape[0]
    n_quadratic = dim * (dim + 1) // 2
    want_stats = moments.shape[1] > 0
    write_out = out.shape[1] > 0
    per_point = log_norm.shape[0] > 0
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
        if mode == GIVEN_RESP:
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
            if mode == OUT_LOG_DENSITY:
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
                if per_point:
                    for b in range(nb):
                        log_norm[start + b] = top[b] + np.log(total[b])
                else:
                    # the sum only: one log per product of 8 normalisers (each in [1, K], the
                    # largest term being exp(0)), not one scalar log per point
                    top_sum = 0.0
                    for b in range(nb):
                        top_sum += top[b]
                    logs = 0.0
                    for first in range(0, nb, 8):
                        product = 1.0
                        for b in range(first, min(first + 8, nb)):
                            product *= total[b]
                        logs += np.log(product)
                    log_sum[0] += top_sum + logs
                for b in range(nb):
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


def _data_centre(x: np.ndarray) -> np.ndarray:
    # overall mean as a BLAS product (x.mean(axis=0) reduces along the short axis, and is slow);
    # the shift only has to be central, not exact. For N = 0 anything finite will do.
    n_rows = x.shape[0]
    return x.T @ np.full(n_rows, 1.0 / n_rows) if n_rows else np.zeros(x.shape[1])


def _n_moments(dim: int) -> int:
    return dim * (dim + 1) // 2 + dim + 1


def run_pass(x, factors, centres, constants, mode, *, resp=None, want_out=True, want_stats=False, shift=None,
         summed=False):
    """Call the compiled pass; returns ``(out (N, K) Fortran-ordered or None, log_norm, moments or
    None, shift)``. ``log_norm``: (N,) in mode 1 (empty otherwise), or with ``summed`` its sum as
    a float. ``shift`` (D,): the centre of the moments, by default the data's mean (callers that
    know it pass it, saving a pass over ``x``)."""
    n_rows, dim = x.shape
    n_components = centres.shape[0]
    if not want_stats:
        shift = np.zeros(dim)
    elif shift is None:
        shift = _data_centre(x)
    out = np.empty((n_components, n_rows if want_out else 0))
    log_norm = np.empty(n_rows if mode == OUT_RESP and not summed else 0)
    log_sum = np.zeros(1)
    moments = np.zeros((n_components, _n_moments(dim) if want_stats else 0))
    resp_in = np.empty((n_components, 0)) if resp is None else resp.T
    _fused_pass(
        x, factors, centres, constants, shift, resp_in, mode, out, log_norm, log_sum, moments, _BLOCK,
        want_stats and n_components >= _GEMM_FROM,
    )
    return (out.T if want_out else None), (float(log_sum[0]) if summed else log_norm), moments, shift


def as_c(x: np.ndarray) -> np.ndarray:
    # one compiled variant for the data layout; the copy only happens for non C-ordered input
    return np.ascontiguousarray(x)
