"""Starting points of :class:`~latentzoo.models.hmm.gaussian.GaussianHMM` for EM, Gibbs and VB
(the strategies are described in ``GaussianHMM.initial_params``)."""

from __future__ import annotations

import numpy as np

from ..gaussian.kmeans import kmeans_plusplus, nearest_centres
from ..gaussian.stats import hard_component_stats

__all__ = ["initial_params"]


def initial_params(model, data, rng, strategy: str) -> dict[str, np.ndarray]:
    """Starting parameters of ``model`` on validated ``data`` (GaussianSequences) by ``strategy``
    (``"kmeans++"``, ``"random"`` or ``"prior"``)."""
    x = data.x_observed
    n, D = x.shape
    K = model.n_states
    if strategy == "prior":
        model._require_explicit_prior("init='prior'")
        params = {}
        for key, factor in model.prior().items():
            draw = factor.sample(rng)
            params.update(zip(key, draw) if isinstance(key, tuple) else [(key, draw)])
        for key in ("init_probs", "trans_mat"):
            if key in params:  # small concentrations can round entries to 0
                params[key] = np.maximum(params[key], 1e-6) / np.maximum(params[key], 1e-6).sum(-1, keepdims=True)
        return params
    if strategy not in ("kmeans++", "random"):
        raise ValueError(f"init strategy must be 'kmeans++', 'random', 'prior' or a dict of params, got {strategy!r}")
    if n < K:
        raise ValueError(f"init={strategy!r} needs at least n_states = {K} observed rows, got {n}; use init='prior' or a dict")
    floor = 1e-6 * max(float(np.mean(x.var(0))), np.finfo(float).tiny) * np.eye(D)
    uniform = np.full((K, K), 1.0 / K)
    if strategy == "random":
        means = x[rng.choice(n, size=K, replace=False)].copy()
        cov = np.cov(x.T, bias=True).reshape(D, D) + floor
        covs = np.broadcast_to(cov, (K, D, D)).copy()
        trans = 0.5 * uniform + 0.5 * rng.dirichlet(np.ones(K), size=K)
        init = 0.5 / K + 0.5 * rng.dirichlet(np.ones(K))
    else:
        centres = kmeans_plusplus(x, K, rng)
        labels = nearest_centres(x, centres)
        counts, means, scatters = hard_component_stats(x, labels, K)
        means = np.where(counts[:, None] > 0, means, centres)
        covs = np.broadcast_to(scatters.sum(0) / n + floor, (K, D, D)).copy()
        path = np.full(data.n_steps, -1)
        path[data.observed] = labels
        following = np.ones((K, K))
        consecutive = (path[:-1] >= 0) & (path[1:] >= 0)
        consecutive[data.offsets[1:-1] - 1] = False  # no transition across sequences
        np.add.at(following, (path[:-1][consecutive], path[1:][consecutive]), 1.0)
        trans = 0.5 * uniform + 0.5 * following / following.sum(1, keepdims=True)
        init = np.full(K, 1.0 / K)
    params = {"init_probs": init, "trans_mat": trans, "means": means, "covs": covs}
    return {name: params[name] for name in model.param_names}
