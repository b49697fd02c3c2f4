"""Compiled kernels for discrete-state hidden Markov models, written once.

Every routine of the HMM family's inference lives here: the scaled forward and backward
recursions, smoothing, expected counts for Baum-Welch and variational Bayes, Viterbi and
forward-filtering backward-sampling (FFBS). The time loops are compiled with numba
(``nopython``, cached on disk), because a Python loop over T is about 100x too slow.

Conventions
-----------
``K`` states, ``M`` symbols, ``T`` time steps in total.

* Many sequences are passed **concatenated**, with ``offsets`` of shape (n_seq + 1,):
  sequence ``s`` occupies rows ``offsets[s]:offsets[s + 1]``. The loop over sequences runs
  inside the compiled code, so many short sequences cost no Python overhead.
* The emission likelihood ``p(x_t | z_t = k)``: the compiled loops read it as
  ``emission[k, rows[t]]``, one implementation for two forms. Every function takes a (T, K)
  matrix ``lik`` (read through its transpose and the rows 0..T-1), or with ``rows`` given a
  (K, M) table read at those columns: for categorical emissions the table itself and the
  symbols (no (T, K) matrix is formed, which saved a fifth of a Baum-Welch iteration at
  T = 1e6; gathering the table and counting symbols outside the loop cost 1.6-2x per
  Baum-Welch iteration and 3x per Viterbi decoding), for a family that gives a (K, T) table
  (:func:`smooth_counts`) that table and 0..T-1.
  Variational Bayes passes *sub-normalised* rows ``exp(E[log theta])``: the recursions do not
  assume that any row sums to one, and the scaling constants then multiply up to the
  normaliser of q(z).
* The scaled recursions (Rabiner 1989, sec. V.A; Bishop 2006, eq. 13.59-13.62) normalise the
  forward message at every step, ``alpha_hat_t = alpha_t / c_t``; the log-likelihood is
  ``sum_t log c_t`` and nothing underflows however long the sequence. Viterbi works in log
  space. Memory is O(T K) (the forward messages); the backward pass keeps O(K).
* A zero scaling constant means the observation at that step has probability zero under every
  state reachable from the past. The kernels stop and report the flat index of that step
  (``bad >= 0``; -1 when all is well) instead of producing NaN; :func:`raise_if_impossible`
  turns it into a ValueError naming the sequence and position.
* Randomness stays with NumPy: FFBS and chain simulation take uniforms drawn by a
  ``numpy.random.Generator`` and invert cumulative sums.

The kernels stay in one module: they share compiled helpers (``_forward`` inside smoothing,
expected counts, FFBS and the gradient; ``_inverse_cdf`` inside FFBS and chain simulation),
and numba's on-disk cache is invalidated by changes to the file that defines a cached function
only, not by changes to a compiled callee defined in another file.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..core.sequences import as_offsets

__all__ = [
    "as_offsets",
    "raise_if_impossible",
    "forward",
    "smooth",
    "smooth_counts",
    "expected_counts",
    "viterbi",
    "ffbs",
    "path_counts",
    "sample_chain",
    "log_likelihood_batch",
    "log_table_gradient",
]

_JIT = {"cache": True, "nogil": True}

# the running product of scaling constants is logged and restarted outside this range, far from
# underflow (a constant can be as small as 1e-308) and overflow (VB's and shifted
# emission rows keep every constant <= 1; the ceiling guards any other caller)
_PRODUCT_FLOOR, _PRODUCT_CEILING = 1e-200, 1e200


def _contiguous(*arrays) -> list[np.ndarray]:
    """C-contiguous float64 arrays, as the compiled kernels are specialised for (no copy when
    they already are)."""
    return [np.ascontiguousarray(array, dtype=np.float64) for array in arrays]


def raise_if_impossible(bad: int, offsets: np.ndarray, what: str = "observation") -> None:
    """Turn a kernel's ``bad`` flat index into a ValueError naming sequence and position."""
    if bad < 0:
        return
    sequence = int(np.searchsorted(offsets, bad, side="right") - 1)
    position = int(bad - offsets[sequence])
    raise ValueError(
        f"the {what} at position {position} of sequence {sequence} has probability zero under "
        "every state reachable from the previous ones (the forward scaling constant is 0); "
        "check that the symbol can be emitted and that the parameters allow the states that emit it"
    )


# ------------------------------------------------------------------------------------------
# forward / backward / smoothing
# ------------------------------------------------------------------------------------------
@njit(**_JIT)
def _forward(init, trans, emission, rows, offsets, alpha, scale):
    """Fill alpha (T, K) and scale (T,) in place; return (log-lik per sequence, bad index).

    The emission likelihood of step t is ``emission[k, rows[t]]``: a (K, M) table indexed by the
    symbols, or the transpose of a (T, K) matrix indexed by ``0..T-1``."""
    n_seq = offsets.size - 1
    n_states = init.size
    log_lik = np.zeros(n_seq)
    for s in range(n_seq):
        start, stop = offsets[s], offsets[s + 1]
        total = 0.0
        row = rows[start]
        for k in range(n_states):
            value = init[k] * emission[k, row]
            alpha[start, k] = value
            total += value
        if not total > 0.0:
            return log_lik, start
        scale[start] = total
        for k in range(n_states):
            alpha[start, k] /= total
        # the scaling constants are multiplied up and their product's log taken only when it
        # nears the bottom of the float range: one log per ~100 steps instead of one per step
        acc = 0.0
        product = total
        for t in range(start + 1, stop):
            row = rows[t]
            total = 0.0
            for j in range(n_states):
                value = 0.0
                for i in range(n_states):
                    value += alpha[t - 1, i] * trans[i, j]
                value *= emission[j, row]
                alpha[t, j] = value
                total += value
            if not total > 0.0:
                return log_lik, t
            scale[t] = total
            inverse = 1.0 / total
            for j in range(n_states):
                alpha[t, j] *= inverse
            following = product * total
            if following < _PRODUCT_FLOOR or following > _PRODUCT_CEILING:
                acc += np.log(product)
                product = total
            else:
                product = following
        log_lik[s] = acc + np.log(product)
    return log_lik, -1


def _emission(lik, rows):
    """``(emission, rows)`` as the compiled loops read them: a (K, M) table with its ``rows``, or
    a (T, K) likelihood matrix (``rows`` None) as its transpose (a view) indexed by 0..T-1."""
    if rows is None:
        return lik.T, np.arange(lik.shape[0])
    return lik, rows


def forward(init, trans, lik, offsets, rows=None):
    """Scaled forward recursion (filtering).

    Parameters
    ----------
    init : ndarray of shape (K,)
        Initial state probabilities (or sub-normalised weights).
    trans : ndarray of shape (K, K)
        ``trans[i, j] = p(z_{t+1} = j | z_t = i)``.
    lik : ndarray of shape (T, K), or (K, M) with ``rows``
        Emission likelihoods of the concatenated sequences, or a table read at ``rows``.
    offsets : int ndarray of shape (n_seq + 1,)
    rows : int ndarray of shape (T,), optional
        Column of the (K, M) table ``lik`` read at each step (0..M-1).

    Returns
    -------
    alpha : ndarray of shape (T, K)
        Filtered marginals ``p(z_t | x_1..t)`` of each sequence (rows sum to one).
    scale : ndarray of shape (T,)
        ``c_t = p(x_t | x_1..t-1)``.
    log_lik : ndarray of shape (n_seq,)
        ``log p(x_1..T)`` per sequence (``sum_t log c_t``).
    bad : int
        Flat index of the first step with ``c_t = 0``, or -1.
    """
    emission, rows = _emission(lik, rows)
    alpha = np.empty((rows.shape[0], init.shape[0]))
    scale = np.ones(rows.shape[0])
    log_lik, bad = _forward(init, trans, emission, rows, offsets, alpha, scale)
    return alpha, scale, log_lik, int(bad)


def smooth(init, trans, lik, offsets, rows=None):
    """Posterior marginals ``p(z_t | x_1..T)`` of shape (T, K), and the forward results: one
    forward and one backward pass.

    Parameters
    ----------
    init : ndarray of shape (K,)
    trans : ndarray of shape (K, K)
    lik : ndarray of shape (T, K), or (K, M) with ``rows``
        As in :func:`forward`.
    offsets : int ndarray of shape (n_seq + 1,)
    rows : int ndarray of shape (T,), optional

    Returns
    -------
    gamma : ndarray of shape (T, K)
        Smoothed marginals (rows sum to one); the filtered ones (``alpha``) when ``bad >= 0``.
    log_lik : ndarray of shape (n_seq,)
    bad : int
    """
    log_lik, _, _, gamma, bad = smooth_counts(init, trans, *_emission(lik, rows), offsets)
    return gamma, log_lik, bad


def smooth_counts(init, trans, lik, rows, offsets):
    """Smoothed marginals and the expected initial and transition counts, from emission
    likelihoods read as ``lik[k, rows[t]]``.

    A family that gives its likelihoods up to a factor per step as a (K, T) table (the Gaussian
    one: ``GaussianFamily.scaled_likelihood``; ``rows`` 0..T-1) has them read in place, with no
    shift, ``exp`` or transposing copy of a (T, K) log-density matrix.

    Parameters
    ----------
    init : ndarray of shape (K,)
    trans : ndarray of shape (K, K)
    lik : ndarray of shape (K, T) or (K, M)
        ``p(x_t | z_t = k)`` up to a positive factor per step (a column of ones for a missing step).
    rows : int ndarray of shape (T,)
        Column of ``lik`` read at each step.
    offsets : int ndarray of shape (n_seq + 1,)

    Returns
    -------
    log_lik : ndarray of shape (n_seq,)
        ``sum_t log c_t`` per sequence: the log-likelihood less the logs of the steps' factors.
    init_counts : ndarray of shape (K,)
    trans_counts : ndarray of shape (K, K)
    gamma : ndarray of shape (T, K)
        Smoothed marginals (the filtered ones when ``bad >= 0``).
    bad : int
        -1, or the flat index of the first step no reachable state can emit (counts are then zero).
    """
    n_states, n_steps = lik.shape[0], rows.shape[0]
    gamma = np.empty((n_steps, n_states))
    scale = np.empty(n_steps)  # written at every step before it is read
    # gamma overwrites the forward messages in place (see _smoothed_counts)
    log_lik, init_c, trans_c, bad = _smoothed_counts(
        *_contiguous(init, trans), lik, rows, np.ascontiguousarray(offsets, dtype=np.int64),
        gamma, scale, gamma, rows, np.zeros((n_states, 0)),
    )
    return log_lik, init_c, trans_c, gamma, int(bad)


# ------------------------------------------------------------------------------------------
# expected sufficient statistics (Baum-Welch E-step, VB's q(z) update)
# ------------------------------------------------------------------------------------------
@njit(**_JIT)
def _smoothed_counts(init, trans, emission, rows, offsets, alpha, scale, gamma, symbols, emission_counts):
    """Forward pass, then a backward pass that fills ``gamma`` (T, K) with the smoothed
    marginals and returns the expected initial and transition counts. ``gamma`` may be ``alpha``
    itself (the categorical E-step overwrites the forward messages). The emission likelihood of
    step t is ``emission[k, rows[t]]`` (see :func:`_forward`). When ``emission_counts`` (K, M)
    has columns, ``gamma[t, k]`` is added to ``emission_counts[k, symbols[t]]`` as it is made
    (no second pass over the marginals)."""
    n_states = init.size
    count_emissions = emission_counts.shape[1] > 0
    log_lik, bad = _forward(init, trans, emission, rows, offsets, alpha, scale)
    init_counts = np.zeros(n_states)
    trans_counts = np.zeros((n_states, n_states))
    if bad >= 0:
        return log_lik, init_counts, trans_counts, bad
    beta = np.empty(n_states)
    beta_prev = np.empty(n_states)
    weighted = np.empty(n_states)
    # xi is accumulated *unnormalised by trans*: sum_t alpha_t(i) w_{t+1}(j) / c_{t+1}, and
    # multiplied by trans[i, j] once at the end (saves K^2 multiplications per step)
    xi_sum = np.zeros((n_states, n_states))
    for s in range(offsets.size - 1):
        start, stop = offsets[s], offsets[s + 1]
        for k in range(n_states):
            beta[k] = 1.0
            gamma[stop - 1, k] = alpha[stop - 1, k]
        if count_emissions:
            symbol = symbols[stop - 1]
            for k in range(n_states):
                emission_counts[k, symbol] += gamma[stop - 1, k]
        for t in range(stop - 2, start - 1, -1):
            inverse = 1.0 / scale[t + 1]
            row = rows[t + 1]
            for j in range(n_states):
                weighted[j] = emission[j, row] * beta[j] * inverse
            for i in range(n_states):
                a_i = alpha[t, i]
                value = 0.0
                for j in range(n_states):
                    xi_sum[i, j] += a_i * weighted[j]
                    value += trans[i, j] * weighted[j]
                beta_prev[i] = value
            total = 0.0
            for k in range(n_states):
                beta[k] = beta_prev[k]
                total += alpha[t, k] * beta[k]
            # gamma_t = alpha_t * beta_t sums to one up to round-off; normalise to keep counts exact
            inverse = 1.0 / total
            for k in range(n_states):
                gamma[t, k] = alpha[t, k] * beta[k] * inverse
            if count_emissions:
                symbol = symbols[t]
                for k in range(n_states):
                    emission_counts[k, symbol] += gamma[t, k]
        for k in range(n_states):
            init_counts[k] += gamma[start, k]
    for i in range(n_states):
        for j in range(n_states):
            trans_counts[i, j] = xi_sum[i, j] * trans[i, j]
    return log_lik, init_counts, trans_counts, -1


def expected_counts(init, trans, lik, symbols, offsets, n_symbols, rows=None):
    """Forward-backward expected sufficient statistics in one pass (Baum-Welch's E-step).

    ``E[#z_1 = k]``, ``E[#(z_t = i, z_t+1 = j)] = sum_t xi_t(i, j)`` with ``xi_t(i, j) =
    alpha_hat_t(i) A_ij lik_t+1(j) beta_hat_t+1(j) / c_t+1`` (Bishop eq. 13.65 in scaled form),
    and ``E[#(z_t = k, x_t = m)]``, summed over sequences. The backward messages are never
    stored: memory is the (T, K) forward messages only. The categorical HMM passes its table
    with ``rows = symbols``: the symbols are counted inside the loop, with no (T, K) matrix.

    Parameters
    ----------
    init : ndarray of shape (K,)
    trans : ndarray of shape (K, K)
    lik : ndarray of shape (T, K), or (K, M) with ``rows``
        As in :func:`forward` (VB passes the sub-normalised ``exp(E[log theta])``), with a last
        column of ones when the symbols code missing steps as ``M - 1``.
    symbols : int ndarray of shape (T,)
        Observed symbols 0..n_symbols-1 (for the emission counts).
    offsets : int ndarray of shape (n_seq + 1,)
    n_symbols : int
    rows : int ndarray of shape (T,), optional

    Returns
    -------
    log_lik : ndarray of shape (n_seq,)
        Per-sequence ``sum_t log c_t`` (the log-likelihood; for sub-normalised VB parameters
        the log normaliser of q(z)).
    init_counts : ndarray of shape (K,)
    trans_counts : ndarray of shape (K, K)
    emission_counts : ndarray of shape (K, n_symbols)
    bad : int
        -1, or the flat index of an impossible observation (counts are then zero).
    """
    emission, rows = _emission(lik, rows)
    alpha = np.empty((rows.shape[0], init.shape[0]))
    scale = np.ones(rows.shape[0])
    # counted as the backward pass makes the marginals: none when an impossible step stops the forward pass
    emission_c = np.zeros((init.shape[0], int(n_symbols)))
    # the smoothed marginals overwrite the forward messages in place: the backward pass reads
    # alpha[t] just before it writes gamma[t], and never reads alpha[t] again
    log_lik, init_c, trans_c, bad = _smoothed_counts(init, trans, emission, rows, offsets, alpha, scale, alpha, symbols, emission_c)
    return log_lik, init_c, trans_c, emission_c, int(bad)


# ------------------------------------------------------------------------------------------
# Viterbi
# ------------------------------------------------------------------------------------------
@njit(**_JIT)
def _viterbi(log_init, log_trans, log_emission, symbols, offsets, path, pointers):
    n_seq = offsets.size - 1
    n_states = log_init.size
    log_prob = np.empty(n_seq)
    delta = np.empty(n_states)
    delta_next = np.empty(n_states)
    for s in range(n_seq):
        start, stop = offsets[s], offsets[s + 1]
        for k in range(n_states):
            delta[k] = log_init[k] + log_emission[k, symbols[start]]
        for t in range(start + 1, stop):
            symbol = symbols[t]
            for j in range(n_states):
                best = -np.inf
                best_i = 0
                for i in range(n_states):
                    value = delta[i] + log_trans[i, j]
                    if value > best:
                        best = value
                        best_i = i
                pointers[t, j] = best_i
                delta_next[j] = best + log_emission[j, symbol]
            for j in range(n_states):
                delta[j] = delta_next[j]
        best = -np.inf
        best_k = 0
        for k in range(n_states):
            if delta[k] > best:
                best = delta[k]
                best_k = k
        log_prob[s] = best
        path[stop - 1] = best_k
        for t in range(stop - 1, start, -1):
            path[t - 1] = pointers[t, path[t]]
    return log_prob


def viterbi(log_init, log_trans, log_lik, offsets, rows=None):
    """Most probable state path per sequence, in log space (max-product; Rabiner eq. 30-35).

    Parameters
    ----------
    log_init : ndarray of shape (K,)
    log_trans : ndarray of shape (K, K)
    log_lik : ndarray of shape (T, K), or (K, M) with ``rows``
        ``log p(x_t | z_t = k)`` (may be -inf), or the log table read at ``rows``: the
        categorical HMM forms no (T, K) matrix, which saves two passes over memory (the gather
        and the logarithm) and makes decoding about 2x faster at large T.
    offsets : int ndarray of shape (n_seq + 1,)
    rows : int ndarray of shape (T,), optional

    Returns
    -------
    path : int64 ndarray of shape (T,)
        Ties go to the lowest state index.
    log_prob : ndarray of shape (n_seq,)
        ``max_z log p(x, z)``; -inf when every path is impossible.
    """
    log_emission, rows = _emission(log_lik, rows)
    path = np.zeros(rows.shape[0], dtype=np.int64)
    # int32 back-pointers: O(T K) memory, half of int64
    pointers = np.empty((rows.shape[0], log_init.shape[0]), dtype=np.int32)
    log_prob = _viterbi(log_init, log_trans, log_emission, rows, offsets, path, pointers)
    return path, log_prob


# ------------------------------------------------------------------------------------------
# forward filtering, backward sampling
# ------------------------------------------------------------------------------------------
@njit(**_JIT)
def _ffbs(init, trans, emission, rows, offsets, uniforms, alpha, scale, path):
    n_states = init.size
    log_lik, bad = _forward(init, trans, emission, rows, offsets, alpha, scale)
    if bad >= 0:
        return log_lik, bad
    weights = np.empty(n_states)
    for s in range(offsets.size - 1):
        start, stop = offsets[s], offsets[s + 1]
        # z_T ~ p(z_T | x_1..T) = alpha_hat_T
        for k in range(n_states):
            weights[k] = alpha[stop - 1, k]
        path[stop - 1] = _inverse_cdf(weights, uniforms[stop - 1])
        # z_t | z_t+1, x_1..t  ~  alpha_hat_t(i) A[i, z_t+1]
        for t in range(stop - 2, start - 1, -1):
            following = path[t + 1]
            for i in range(n_states):
                weights[i] = alpha[t, i] * trans[i, following]
            path[t] = _inverse_cdf(weights, uniforms[t])
    return log_lik, -1


@njit(inline="always")
def _inverse_cdf(weights, uniform):
    """Index k with P(k) proportional to weights (need not be normalised)."""
    total = 0.0
    for k in range(weights.size):
        total += weights[k]
    target = uniform * total
    cumulative = 0.0
    last = 0
    for k in range(weights.size):
        if weights[k] > 0.0:
            last = k
            cumulative += weights[k]
            if target < cumulative:
                return k
    # round-off pushed the target past the last positive weight
    return last


def ffbs(init, trans, lik, offsets, uniforms, rows=None):
    """Forward-filtering backward-sampling: one exact draw of the state path per sequence.

    Parameters
    ----------
    init : ndarray of shape (K,)
    trans : ndarray of shape (K, K)
    lik : ndarray of shape (T, K), or (K, M) with ``rows``
        As in :func:`forward`.
    offsets : int ndarray of shape (n_seq + 1,)
    uniforms : ndarray of shape (T,)
        Independent U(0, 1) draws from a ``numpy.random.Generator``.
    rows : int ndarray of shape (T,), optional

    Returns
    -------
    path : int64 ndarray of shape (T,)
    log_lik : ndarray of shape (n_seq,)
    bad : int
    """
    emission, rows = _emission(lik, rows)
    alpha = np.empty((rows.shape[0], init.shape[0]))
    scale = np.empty(rows.shape[0])  # written at every step before it is read
    path = np.zeros(rows.shape[0], dtype=np.int64)
    log_lik, bad = _ffbs(init, trans, emission, rows, offsets, uniforms, alpha, scale, path)
    return path, log_lik, int(bad)


@njit(**_JIT)
def _path_counts(path, symbols, offsets, n_states, n_symbols):
    init_counts = np.zeros(n_states)
    trans_counts = np.zeros((n_states, n_states))
    emission_counts = np.zeros((n_states, n_symbols))
    for s in range(offsets.size - 1):
        start, stop = offsets[s], offsets[s + 1]
        init_counts[path[start]] += 1.0
        for t in range(start, stop):
            emission_counts[path[t], symbols[t]] += 1.0
            if t + 1 < stop:
                trans_counts[path[t], path[t + 1]] += 1.0
    return init_counts, trans_counts, emission_counts


def path_counts(path, symbols, offsets, n_states, n_symbols):
    """Complete-data sufficient statistics of a state path (Gibbs).

    Returns
    -------
    init_counts : ndarray of shape (K,)
    trans_counts : ndarray of shape (K, K)
    emission_counts : ndarray of shape (K, n_symbols)
    """
    return _path_counts(path, symbols, offsets, int(n_states), int(n_symbols))


@njit(**_JIT)
def _sample_chain(init, trans, offsets, uniforms, path):
    for s in range(offsets.size - 1):
        start, stop = offsets[s], offsets[s + 1]
        path[start] = _inverse_cdf(init, uniforms[start])
        for t in range(start + 1, stop):
            path[t] = _inverse_cdf(trans[path[t - 1]], uniforms[t])


def sample_chain(init, trans, offsets, uniforms):
    """Simulate Markov chains (one per sequence) by inverting cumulative sums.

    Parameters
    ----------
    init : ndarray of shape (K,)
    trans : ndarray of shape (K, K)
    offsets : int ndarray of shape (n_seq + 1,)
    uniforms : ndarray of shape (T,)

    Returns
    -------
    path : int64 ndarray of shape (T,)
    """
    path = np.zeros(uniforms.shape[0], dtype=np.int64)
    _sample_chain(init, trans, offsets, uniforms, path)
    return path


# ------------------------------------------------------------------------------------------
# log-likelihood of many parameter draws
# ------------------------------------------------------------------------------------------
@njit(**_JIT)
def _log_likelihood_batch(init, trans, emission, symbols, offsets, out):
    alpha = np.empty((symbols.size, init.shape[1]))
    scale = np.empty(symbols.size)
    for b in range(init.shape[0]):
        # one sequence at a time: an impossible one stops the recursion, not the others
        for s in range(offsets.size - 1):
            log_lik, bad = _forward(init[b], trans[b], emission[b], symbols, offsets[s : s + 2], alpha, scale)
            out[b, s] = log_lik[0] if bad < 0 else -np.inf


def log_likelihood_batch(init, trans, emission, symbols, offsets):
    """Per-sequence log-likelihood for a batch of parameter draws (the forward pass of each
    draw in turn, in one (T, K) scratch array; no (T, K) likelihood matrix is formed).

    Parameters
    ----------
    init : ndarray of shape (B, K)
    trans : ndarray of shape (B, K, K)
    emission : ndarray of shape (B, K, M)
    symbols : int ndarray of shape (T,)
    offsets : int ndarray of shape (n_seq + 1,)

    Returns
    -------
    ndarray of shape (B, n_seq)
        ``-inf`` where the sequence is impossible under that draw (a valid value of the
        log-likelihood, e.g. for posterior draws that put zero mass on a needed transition).
    """
    out = np.empty((init.shape[0], offsets.size - 1))
    _log_likelihood_batch(init, trans, emission, symbols, offsets, out)
    return out


# ------------------------------------------------------------------------------------------
# any emission family, from log densities: forward-backward, and the PyTensor Op's gradient
# ------------------------------------------------------------------------------------------
@njit(**_JIT)
def _shift_log_table(log_table, lik, shift):
    """Fill ``lik = exp(log_table - shift)`` with each row's maximum as ``shift`` (so that no
    row underflows however small its densities); a row of -inf is left at zero (a step that
    reads it is impossible). Return the first row holding NaN or +inf, or -1."""
    n_rows, n_states = log_table.shape
    for m in range(n_rows):
        top = -np.inf
        for k in range(n_states):
            value = log_table[m, k]
            if value != value or value == np.inf:
                return m
            if value > top:
                top = value
        if top == -np.inf:
            top = 0.0
        shift[m] = top
        for k in range(n_states):
            lik[m, k] = np.exp(log_table[m, k] - top)
    return -1


@njit(**_JIT)
def _log_table_pass(init, trans, log_table, rows, offsets):
    """Forward-backward reading ``log p(x_t | k)`` as ``log_table[rows[t], k]``: per-sequence
    log-likelihoods, initial and transition counts, the smoothed marginals (T, K) and their
    sums per row ``counts[m, k] = sum_(t: rows[t] = m) gamma[t, k]``, the bad index."""
    n_rows, n_states = log_table.shape
    n_steps = rows.size
    lik = np.empty((n_rows, n_states))
    shift = np.zeros(n_rows)
    counts = np.zeros((n_rows, n_states))
    gamma = np.zeros((n_steps, n_states))
    impossible = np.full(offsets.size - 1, -np.inf)
    bad = _shift_log_table(log_table, lik, shift)
    if bad >= 0:
        return impossible, np.zeros(n_states), np.zeros((n_states, n_states)), counts, gamma, bad
    scale = np.ones(n_steps)
    # the marginals overwrite the forward messages, and are summed per column as they are made
    log_lik, init_counts, trans_counts, bad = _smoothed_counts(init, trans, lik.T, rows, offsets, gamma, scale, gamma, rows, counts.T)
    if bad >= 0:
        gamma[:] = 0.0  # the forward messages up to the impossible step
        return impossible, init_counts, trans_counts, counts, gamma, bad
    for s in range(offsets.size - 1):
        for t in range(offsets[s], offsets[s + 1]):
            log_lik[s] += shift[rows[t]]
    return log_lik, init_counts, trans_counts, counts, gamma, -1


@njit(**_JIT)
def _log_table_gradient(init, trans, log_table, rows, offsets):
    log_lik, init_g, trans_g, counts, _, bad = _log_table_pass(init, trans, log_table, rows, offsets)
    if bad >= 0:
        return -np.inf, init_g, trans_g, counts  # zeros
    # the likelihood is linear in each exp(log_table[rows[t], k]), so d log p / d log_table[m, k]
    # is the smoothed marginal summed over the steps that read row m
    _per_parameter(init_g, init)
    _per_parameter(trans_g, trans)
    return log_lik.sum(), init_g, trans_g, counts


@njit(inline="always")
def _per_parameter(counts, theta):
    """Fisher's identity in place: ``d log p / d theta_e = E[n_e] / theta_e`` from the expected
    counts; a zero entry has no expected count and gradient 0."""
    for e in np.ndindex(counts.shape):
        counts[e] = counts[e] / theta[e] if theta[e] > 0.0 else 0.0


def log_table_gradient(init, trans, log_table, rows, offsets):
    """Total log-likelihood and its gradient, for the forward-backward Op: one pass, reading
    ``log p(x_t | z_t = k)`` as ``log_table[rows[t], k]``.

    The categorical HMM passes its log table transposed (M, K) and the symbols, any other family
    its (T, K) log densities and the rows 0..T-1. The likelihood is linear in each
    ``exp(log_table[m, k])`` read at a step, so ``d log p / d log_table[m, k]`` is the smoothed
    marginal ``p(z_t = k | x)`` summed over the steps t that read row m; ``init`` and
    ``trans`` get Fisher's identity, ``d log p(x) / d theta_e = E[n_e | x] / theta_e`` (the
    likelihood is a polynomial in which a path uses entry ``e`` ``n_e`` times).

    Parameters
    ----------
    init : ndarray of shape (K,)
    trans : ndarray of shape (K, K)
    log_table : ndarray of shape (M, K)
        -inf where a state cannot emit; each row is shifted by its maximum before ``exp``.
    rows : int ndarray of shape (T,)
        Row read at each step.
    offsets : int ndarray of shape (n_seq + 1,)

    Returns
    -------
    log_lik : float
        ``sum_s log p(x_s)``; -inf when some step is impossible (the gradients are then 0).
    grad_init : ndarray of shape (K,)
        ``E[#(z_1 = k) | x] / init[k]`` (0 at a zero entry, which carries no expected count).
    grad_trans : ndarray of shape (K, K)
        ``E[#(i -> j) | x] / trans[i, j]`` (likewise).
    grad_log_table : ndarray of shape (M, K)
        The smoothed marginals summed per row (with rows 0..T-1: the marginals themselves).
    """
    value, *grads = _log_table_gradient(
        *_contiguous(init, trans, log_table), np.ascontiguousarray(rows, dtype=np.int64),
        np.ascontiguousarray(offsets, dtype=np.int64),
    )
    return float(value), *grads
