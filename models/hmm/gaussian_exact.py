"""The exact posterior of :class:`~latentzoo.models.hmm.gaussian.GaussianHMM` for tiny data.

Every one of the K^T state paths is enumerated. Given a path, the rows of ``trans_mat`` and
``init_probs`` are Dirichlets updated by its counts and each state's (mean, covariance) an NIW
updated by the observations it emits; the path's weight is its marginal likelihood, the product of
the Dirichlet normaliser ratios and each state's NIW evidence ``pi^(-N D/2) Gamma_D(nu_N/2) /
Gamma_D(nu0/2) |S0|^(nu0/2) / |S_N|^(nu_N/2) (kappa0 / kappa_N)^(D/2)`` (Murphy 2012, eq. 4.217).
The posterior is the mixture of those conjugate posteriors (a
:class:`~latentzoo.models.core.conjugate_mixture.ConjugateMixture`).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..core.conjugate_mixture import ConjugateMixture

__all__ = ["EXACT_MAX_PATHS", "exact_posterior"]

#: the exact posterior enumerates K^T state paths; above this many it refuses
EXACT_MAX_PATHS = 100_000


def _log_dirichlet_normaliser(alpha):
    """``log B(alpha)`` over the last axis."""
    return special.gammaln(alpha).sum(-1) - special.gammaln(alpha.sum(-1))


def exact_posterior(model, data) -> ConjugateMixture:
    """The exact posterior of ``model`` given ``data``; refuses above ``EXACT_MAX_PATHS`` paths
    and with fixed covariances (a known-covariance Normal is no ConjugateMixture family).

    Returns
    -------
    ConjugateMixture
        One component per path, with ``log_evidence``.
    """
    data = model.check_data(data)
    if model.covs is not None:
        raise ValueError("backend 'exact' is not available with fixed covs; use 'gibbs' or 'nuts'")
    K, D, T = model.n_states, model.n_features, data.n_steps
    if float(K) ** T > EXACT_MAX_PATHS:
        raise ValueError(
            f"the exact posterior enumerates every state path: {float(K) ** T:.3g} paths for {T} time steps and "
            f"{K} states, more than the limit {EXACT_MAX_PATHS:,}; use backend='gibbs' or 'vb'"
        )
    codes = np.arange(K**T)
    paths = np.stack([(codes // K ** (T - 1 - t)) % K for t in range(T)], axis=1)  # (P, T)
    stats = [model._path_stats(data, path) for path in paths]
    stacked = {key: np.stack([s[key] for s in stats]) for key in stats[0]}
    arrays = model._dirichlet_arrays()
    log_weight = (_log_dirichlet_normaliser(arrays["trans_prior"] + stacked["trans_counts"])
                  - _log_dirichlet_normaliser(arrays["trans_prior"])).sum(-1)
    if model.init_probs is None:
        log_weight += _log_dirichlet_normaliser(arrays["init_prior"] + stacked["init_counts"]) - _log_dirichlet_normaliser(arrays["init_prior"])
    else:
        with np.errstate(divide="ignore"):
            log_weight += special.xlogy(stacked["init_counts"], np.asarray(model.init_probs)).sum(-1)
    prior = model.prior()[("means", "covs")]
    posterior = prior.update(stacked["counts"], stacked["means"], stacked["scatters"])  # batch (P, K)

    def log_det(S):
        return np.linalg.slogdet(S)[1]

    log_evidence_states = (
        -0.5 * stacked["counts"] * D * np.log(np.pi)
        + special.multigammaln(posterior.nu / 2, D) - special.multigammaln(prior.nu / 2, D)
        + 0.5 * prior.nu * log_det(prior.S) - 0.5 * posterior.nu * log_det(posterior.S)
        + 0.5 * D * (np.log(prior.kappa) - np.log(posterior.kappa))
    )
    log_weight = log_weight + log_evidence_states.sum(-1)
    log_evidence = float(special.logsumexp(log_weight))
    factors = model.conditional_posterior(stacked)
    return ConjugateMixture(log_weights=log_weight - log_evidence, factors=factors, log_evidence=log_evidence)
