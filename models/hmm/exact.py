"""The exact posterior of a hidden Markov model whose emission family is conjugate, by
enumerating every hidden state path that can emit the data.

Given a path z, the rows of ``init_probs`` and ``trans_mat`` are independent Dirichlets (prior +
the path's counts) and the emission parameters the family's conjugate posterior given the
path's statistics; the path's marginal likelihood is ``prod_rows B(prior + counts) / B(prior)``
times the family's evidence (``log_marginal``). When the statistics are counts (a table family),
paths with the same counts contribute the same term and are grouped before the mixture is formed
(the dice HMM's 10 rolls: 3^10 = 59,049 paths, 5,832 of which can emit the rolls). A missing
step may be in any state and adds no emission statistic.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..core.conjugate_mixture import ConjugateMixture
from ..families.checks import log_multivariate_beta, log_multivariate_beta_of_counts

__all__ = ["EXACT_MAX_PATHS", "exact_posterior"]

#: the exact posterior enumerates every state path that can emit the data; above this many it
#: refuses (memory ~ 40 bytes per path and time step)
EXACT_MAX_PATHS = 2_000_000


def _paths(allowed: list[np.ndarray], n_steps: int, codes: np.ndarray | None = None) -> np.ndarray:
    """The paths through the allowed states numbered ``codes`` (default: every path), shape
    (n_paths, T); a path's number is mixed-radix in its steps' positions in ``allowed``, the last
    step fastest."""
    if codes is None:
        codes = np.arange(int(np.prod([a.size for a in allowed], dtype=float)))
    n_paths = codes.size
    codes = codes.copy()
    paths = np.empty((n_paths, n_steps), dtype=np.int64)
    for t in range(n_steps - 1, -1, -1):
        paths[:, t] = allowed[t][codes % allowed[t].size]
        codes //= allowed[t].size
    return paths


def _chain_counts(paths: np.ndarray, starts: set, n_states: int) -> tuple[np.ndarray, np.ndarray]:
    """Initial-state and transition counts of each path: (n_paths, K) and (n_paths, K * K) int32."""
    K, rows = n_states, np.arange(paths.shape[0])
    init_c = np.zeros((rows.size, K), np.int32)
    trans_c = np.zeros((rows.size, K * K), np.int32)
    for t in range(paths.shape[1]):
        if t in starts:
            init_c[rows, paths[:, t]] += 1
        else:
            trans_c[rows, paths[:, t - 1] * K + paths[:, t]] += 1
    return init_c, trans_c


def _group_paths(allowed: list[np.ndarray], starts: set, codes: np.ndarray, n_states: int,
                 n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Group the paths of a table-emission HMM by their counts without listing the paths.

    A path's counts (initial states K, transitions K * K, state-symbol pairs K * M, in this
    column order) are encoded as mixed-radix integers, the first column most significant, each
    column's radix one more than the most it can count (sequence starts for an initial state,
    the other steps for a transition, the steps showing the symbol for an emission), several
    int64 keys when one would overflow. A key is a sum over the steps of one term per step, so
    the keys of every path are built a step at a time by broadcasting. Sorted keys order the
    groups as ``np.unique(counts, axis=0)`` orders the count rows, and each group's counts are
    the digits of its keys.

    Parameters
    ----------
    allowed : list of T int arrays, the states that can emit each step
    starts : set of int, the steps that begin a sequence
    codes : int array of shape (T,), the symbols (``n_symbols`` where missing)
    n_states, n_symbols : int

    Returns
    -------
    rows : int64 array of shape (n_groups, K + K * K + K * M), each group's counts
    multiplicity : int64 array of shape (n_groups,), the number of paths in each group
    """
    K, M, T = n_states, n_symbols, len(allowed)
    n_starts = len(starts)
    bound = np.zeros(K + K * K + K * M, np.int64)
    bound[:K] = n_starts
    bound[K : K + K * K] = T - n_starts
    symbol_steps = np.bincount(codes[codes != M], minlength=M)[:M]
    bound[K + K * K :] = np.tile(symbol_steps, K)
    # columns into keys, most significant first; Python ints, so the span test cannot overflow
    blocks, block, span = [], [], 1
    for column, b in enumerate(bound.tolist()):
        if b == 0:  # a column that is 0 in every path orders nothing
            continue
        if span * (b + 1) >= 2**62:
            blocks.append(block)
            block, span = [], 1
        block.append(column)
        span *= b + 1
    blocks.append(block)
    weights = np.zeros((len(blocks), bound.size), np.int64)
    for i, block in enumerate(blocks):
        w = 1
        for column in reversed(block):
            weights[i, column] = w
            w *= int(bound[column]) + 1
    init_w = weights[:, :K]
    trans_w = weights[:, K : K + K * K].reshape(-1, K, K)
    emission_w = weights[:, K + K * K :].reshape(-1, K, M)
    keys = np.zeros((len(blocks), 1), np.int64)
    for t in range(T):
        here = allowed[t]
        step = emission_w[:, here, codes[t]] if codes[t] != M else np.zeros((len(blocks), here.size), np.int64)
        if t in starts:
            term = (init_w[:, here] + step)[:, None, :]  # (keys, 1, n_t): any previous state
            previous = 1
        else:
            term = trans_w[:, allowed[t - 1][:, None], here[None, :]] + step[:, None, :]  # (keys, n_{t-1}, n_t)
            previous = allowed[t - 1].size
        keys = (keys.reshape(len(blocks), -1, previous, 1) + term[:, None]).reshape(len(blocks), -1)
    if len(blocks) == 1:
        ordered = np.sort(keys[0])[None]
    else:
        ordered = keys[:, np.lexsort(keys[::-1])]  # lexsort sorts by its last key first
    new = np.ones(ordered.shape[1], bool)
    new[1:] = np.any(ordered[:, 1:] != ordered[:, :-1], axis=0)
    first = np.flatnonzero(new)
    # each group's counts read back from its keys (the digits of the mixed-radix numbers)
    rows = np.zeros((first.size, bound.size), np.int64)
    for i, block in enumerate(blocks):
        unique = ordered[i, first]
        for column in block:
            rows[:, column] = unique // weights[i, column] % (bound[column] + 1)
    return rows, np.diff(np.append(first, ordered.shape[1]))


def exact_posterior(model, data) -> ConjugateMixture:
    """The exact posterior of ``model`` (a HiddenMarkovModel) given its validated ``data``.

    Returns
    -------
    ConjugateMixture
        One component per group of paths, with the model's conjugate factors (the groups on
        their leading batch axis) and ``log_evidence``.

    Raises
    ------
    ValueError
        Above ``EXACT_MAX_PATHS`` possible paths, or for a family without a conjugate evidence.
    """
    K, T, family = model.n_states, data.n_steps, model.family
    support = family.support(data, K)  # (T, K): the states that can emit each step
    allowed = [np.flatnonzero(row) for row in support]
    n_paths = float(np.prod([a.size for a in allowed], dtype=float))
    if n_paths > EXACT_MAX_PATHS:
        raise ValueError(
            f"the exact posterior enumerates every state path: {n_paths:.3g} paths for {T} "
            f"time steps and {K} states, more than the limit {EXACT_MAX_PATHS:,}; use backend='gibbs' or 'vb'"
        )
    starts = set(data.offsets[:-1].tolist())
    if model.table:
        codes, M = family.codes(data), family.n_symbols
        # paths with the same counts have the same posterior and weight: grouped by a key that
        # encodes the counts, built step by step without listing the paths
        groups, multiplicity = _group_paths(allowed, starts, codes, K, M)
        init_c, trans_c = groups[:, :K], groups[:, K : K + K * K]
        emission = family.table_stats(groups[:, K + K * K :].reshape(-1, K, M))
        log_weight = np.log(multiplicity)
    else:
        paths = _paths(allowed, T)
        init_c, trans_c = _chain_counts(paths, starts, K)
        observed = data.observed
        per_path = [family.label_stats(family.rows(data), path[observed], K) for path in paths]
        emission = {key: np.stack([s[key] for s in per_path]) for key in per_path[0]}
        log_weight = np.zeros(paths.shape[0])
    # whole-number counts kept as integers: the conjugate updates add them to the priors as
    # floats, and the log-Beta tables read them without testing that they are whole
    stats = {"init_counts": init_c, "trans_counts": trans_c.reshape(-1, K, K), **emission}
    arrays = model._chain_arrays()
    if model.fixed_init_probs is None:
        log_weight = log_weight + (log_multivariate_beta_of_counts(arrays["init_prior"], stats["init_counts"])
                                   - log_multivariate_beta(arrays["init_prior"]))
    else:
        with np.errstate(divide="ignore"):
            log_weight = log_weight + special.xlogy(stats["init_counts"], np.asarray(model.fixed_init_probs)).sum(-1)
    evidence = family.log_marginal(stats, K).sum(-1)
    log_weight = (
        log_weight
        + (log_multivariate_beta_of_counts(arrays["trans_prior"], stats["trans_counts"])
           - log_multivariate_beta(arrays["trans_prior"])).sum(-1)
        + evidence
    )
    log_evidence = float(special.logsumexp(log_weight))
    factors = model.conditional_posterior(stats)
    return ConjugateMixture(log_weights=log_weight - log_evidence, factors=factors, log_evidence=log_evidence)
