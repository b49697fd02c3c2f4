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
from ..families.checks import log_multivariate_beta

__all__ = ["EXACT_MAX_PATHS", "exact_posterior"]

#: the exact posterior enumerates every state path that can emit the data; above this many it
#: refuses (memory ~ 40 bytes per path and time step)
EXACT_MAX_PATHS = 2_000_000


def _paths(allowed: list[np.ndarray], n_steps: int) -> np.ndarray:
    """Every path through the allowed states, (n_paths, T), mixed-radix with the last step fastest."""
    n_paths = int(np.prod([a.size for a in allowed], dtype=float))
    codes = np.arange(n_paths)
    paths = np.empty((n_paths, n_steps), dtype=np.int64)
    for t in range(n_steps - 1, -1, -1):
        paths[:, t] = allowed[t][codes % allowed[t].size]
        codes //= allowed[t].size
    return paths


def _unique_rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(counts, axis=0, return_counts=True)`` for non-negative integer rows, in the
    same (lexicographic) order, several times faster: the rows are packed, most significant
    column first, into a few int64 keys (a mixed-radix number per block of columns) and sorted
    with ``lexsort``, where ``np.unique`` sorts a structured view (most of the exact posterior's
    time on ten rolls of small faces).

    Parameters
    ----------
    counts : ndarray of int, shape (n_rows, n_columns)

    Returns
    -------
    rows : ndarray, shape (n_unique, n_columns)
    multiplicity : ndarray of int64, shape (n_unique,)
    """
    if counts.shape[0] == 0 or counts.shape[1] == 0:
        return np.unique(counts, axis=0, return_counts=True)
    radix = [int(r) + 1 for r in counts.max(axis=0)]  # Python ints: the span test cannot overflow
    keys, key, span = [], np.zeros(counts.shape[0], np.int64), 1
    for column in range(counts.shape[1]):
        if radix[column] == 1:  # a column that is 0 in every row orders nothing
            continue
        if span * radix[column] >= 2**62:  # this key is full: start the next, less significant one
            keys.append(key)
            key, span = np.zeros(counts.shape[0], np.int64), 1
        key = key * radix[column] + counts[:, column]
        span *= radix[column]
    keys.append(key)
    order = np.lexsort(keys[::-1])  # lexsort sorts by its last key first
    ordered = [k[order] for k in keys]
    new = np.ones(order.size, bool)
    new[1:] = np.any([k[1:] != k[:-1] for k in ordered], axis=0)
    first = np.flatnonzero(new)
    multiplicity = np.diff(np.append(first, order.size))
    return counts[order[first]], multiplicity


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
    paths = _paths(allowed, T)
    rows = np.arange(paths.shape[0])
    init_c = np.zeros((rows.size, K), np.int32)
    trans_c = np.zeros((rows.size, K * K), np.int32)
    starts = set(data.offsets[:-1].tolist())
    for t in range(T):
        if t in starts:
            init_c[rows, paths[:, t]] += 1
        else:
            trans_c[rows, paths[:, t - 1] * K + paths[:, t]] += 1
    if model.table:
        codes, M = family.codes(data), family.n_symbols
        emission_c = np.zeros((rows.size, K * M), np.int32)
        for t in range(T):
            if codes[t] != M:  # a missing step emits nothing
                emission_c[rows, paths[:, t] * M + codes[t]] += 1
        del paths
        # paths with the same counts have the same posterior and weight: group them
        groups, multiplicity = _unique_rows(np.concatenate([init_c, trans_c, emission_c], axis=1))
        init_c, trans_c = groups[:, :K], groups[:, K : K + K * K]
        emission = family.table_stats(groups[:, K + K * K :].reshape(-1, K, M).astype(float))
        log_weight = np.log(multiplicity)
    else:
        observed = data.observed
        per_path = [family.label_stats(family.rows(data), path[observed], K) for path in paths]
        emission = {key: np.stack([s[key] for s in per_path]) for key in per_path[0]}
        log_weight = np.zeros(rows.size)
    stats = {"init_counts": init_c.astype(float), "trans_counts": trans_c.reshape(-1, K, K).astype(float), **emission}
    arrays = model._chain_arrays()
    if model.fixed_init_probs is None:
        log_weight = log_weight + (log_multivariate_beta(arrays["init_prior"] + stats["init_counts"])
                                   - log_multivariate_beta(arrays["init_prior"]))
    else:
        with np.errstate(divide="ignore"):
            log_weight = log_weight + special.xlogy(stats["init_counts"], np.asarray(model.fixed_init_probs)).sum(-1)
    evidence = family.log_marginal(stats, K).sum(-1)
    log_weight = (
        log_weight
        + (log_multivariate_beta(arrays["trans_prior"] + stats["trans_counts"]) - log_multivariate_beta(arrays["trans_prior"])).sum(-1)
        + evidence
    )
    log_evidence = float(special.logsumexp(log_weight))
    factors = model.conditional_posterior(stats)
    return ConjugateMixture(log_weights=log_weight - log_evidence, factors=factors, log_evidence=log_evidence)
