"""Information criteria of a fitted mixture (seed 002): AIC and BIC.

Both criteria penalise the maximised log-likelihood by the number of free parameters p;
lower is better. :meth:`GaussianMixture.aic
<latentzoo.models.mixture.gaussian.GaussianMixture.aic>`, ``bic`` and ``n_parameters`` delegate
here. Fitting each candidate size is inference's job:
:func:`latentzoo.inference.choose_n_components`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["aic", "bic", "gaussian_mixture_parameters"]


def gaussian_mixture_parameters(n_components: int, dim: int) -> int:
    """Free parameters: K - 1 weights, K D means, K D (D + 1) / 2 covariance entries."""
    K = n_components
    return K - 1 + K * dim + K * dim * (dim + 1) // 2


def _penalty_terms(model, data, params) -> tuple[float, int, int]:
    """(-2 log L at ``params``, p, N) for the mixture ``model``; ``params`` is checked."""
    data = model.check_data(data)
    params = model.check_params(params, dim=data.shape[1])
    return -2.0 * float(model.log_likelihood(data, params).sum()), model.n_parameters(data), model.n_observations(data)


def aic(model, data, params) -> float:
    """Akaike's criterion -2 log L + 2 p (p = :func:`n_parameters`); lower is better."""
    deviance, p, _ = _penalty_terms(model, data, params)
    return float(deviance + 2.0 * p)


def bic(model, data, params) -> float:
    """Schwarz's criterion -2 log L + p log N; lower is better."""
    deviance, p, n = _penalty_terms(model, data, params)
    return float(deviance + p * np.log(n))
