"""The exact posterior of the categorical HMMs, by enumerating every hidden state path.

Given a path z, the rows of ``init_probs``, ``trans_mat`` and ``emission_probs`` are
independent Dirichlets (prior + the path's counts), and the path's marginal likelihood is
``prod_rows B(prior + counts) / B(prior)``. Paths with the same counts contribute the same
term, so they are grouped by their counts before the mixture is formed. A missing step may be
in any state and adds no emission count.

:meth:`latentzoo.models.hmm.categorical.CategoricalHMM.exact_posterior` delegates here.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..core.conjugate_mixture import ConjugateMixture

__all__ = ["EXACT_MAX_PATHS", "exact_posterior"]

#: the exact posterior enumerates every state path that can emit the data; above this many it
#: refuses (memory ~ 40 bytes per path and time step)
EXACT_MAX_PATHS = 2_000_000


def _log_multivariate_beta(alpha: np.ndarray, mask=None) -> np.ndarray:
    """``log B(alpha) = sum log Gamma(alpha_k) - log Gamma(sum alpha_k)`` over the last axis."""
    if mask is None:
        return special.gammaln(alpha).sum(-1) - special.gammaln(alpha.sum(-1))
    alpha = np.where(mask, alpha, 1.0)
    return np.where(mask, special.gammaln(alpha), 0.0).sum(-1) - special.gammaln(np.where(mask, alpha, 0.0).sum(-1))


def exact_posterior(model, data) -> ConjugateMixture:
    """The exact posterior of ``model`` given validated ``data`` (an ``HMMData``); see
    :meth:`latentzoo.models.hmm.categorical.CategoricalHMM.exact_posterior`."""
    K, M = model.n_states, model.n_symbols
    mask = model._mask if model._mask is not None else np.ones((K, M), bool)
    # a missing step (coded M) may be in any state: the padding column allows them all
    mask = np.concatenate([mask, np.ones((K, 1), bool)], axis=1)
    symbols = data.coded(M)
    allowed = [np.flatnonzero(mask[:, symbol]) for symbol in symbols]
    sizes = np.array([a.size for a in allowed], dtype=float)
    n_paths = float(np.prod(sizes))
    if n_paths > EXACT_MAX_PATHS:
        raise ValueError(
            f"the exact posterior enumerates every state path: {n_paths:.3g} paths for {data.n_steps} "
            f"time steps and {K} states, more than the limit {EXACT_MAX_PATHS:,}; use backend='gibbs' or 'vb'"
        )
    n_paths = int(n_paths)
    codes = np.arange(n_paths)
    paths = np.empty((n_paths, data.n_steps), dtype=np.int64)
    for t in range(data.n_steps - 1, -1, -1):  # mixed-radix digits, last step fastest
        paths[:, t] = allowed[t][codes % allowed[t].size]
        codes //= allowed[t].size
    rows = np.arange(n_paths)
    counts_init = np.zeros((n_paths, K), np.int32)
    counts_trans = np.zeros((n_paths, K * K), np.int32)
    counts_emission = np.zeros((n_paths, K * M), np.int32)
    starts = set(data.offsets[:-1].tolist())
    for t in range(data.n_steps):
        if t in starts:
            counts_init[rows, paths[:, t]] += 1
        else:
            counts_trans[rows, paths[:, t - 1] * K + paths[:, t]] += 1
        if symbols[t] != M:  # a missing step emits nothing
            counts_emission[rows, paths[:, t] * M + symbols[t]] += 1
    del paths
    stacked = np.concatenate([counts_init, counts_trans, counts_emission], axis=1)
    groups, multiplicity = np.unique(stacked, axis=0, return_counts=True)
    init_c = groups[:, :K].astype(float)
    trans_c = groups[:, K : K + K * K].reshape(-1, K, K).astype(float)
    emission_c = groups[:, K + K * K :].reshape(-1, K, M).astype(float)

    arrays = model._prior_arrays()
    emission_mask = model._mask
    log_weight = (
        np.log(multiplicity)
        + _log_multivariate_beta(arrays["init_prior"] + init_c) - _log_multivariate_beta(arrays["init_prior"])
        + (_log_multivariate_beta(arrays["trans_prior"] + trans_c) - _log_multivariate_beta(arrays["trans_prior"])).sum(-1)
        + (
            _log_multivariate_beta(arrays["emission_prior"] + emission_c, emission_mask)
            - _log_multivariate_beta(arrays["emission_prior"], emission_mask)
        ).sum(-1)
    )
    log_evidence = float(special.logsumexp(log_weight))
    factors = model.conditional_posterior(model._stats(init_c, trans_c, emission_c))
    return ConjugateMixture(log_weights=log_weight - log_evidence, factors=factors, log_evidence=log_evidence)
