"""Choosing the number of components of a Gaussian mixture (seed 002): AIC and BIC.

Both criteria penalise the maximised log-likelihood by the number of free parameters p;
lower is better. :meth:`GaussianMixture.aic
<latentzoo.models.gaussian_mixture.GaussianMixture.aic>`, ``bic``, ``n_parameters`` and
``choose_n_components`` delegate here.
"""

from __future__ import annotations

import warnings

import numpy as np

from .gaussian_data import GaussianData

__all__ = ["aic", "bic", "choose_n_components", "n_parameters"]

#: the columns of :func:`choose_n_components`' table, before ``best``
TABLE_COLUMNS = ["n_components", "log_likelihood", "n_parameters", "aic", "bic", "converged", "note"]


def n_parameters(n_components: int, dim: int) -> int:
    """Free parameters: K - 1 weights, K D means, K D (D + 1) / 2 covariance entries."""
    K = n_components
    return K - 1 + K * dim + K * dim * (dim + 1) // 2


def _penalty_terms(model, data, params) -> tuple[float, int, int]:
    """(-2 log L at ``params``, p, N) for the mixture ``model``; ``params`` is checked."""
    data = model.check_data(data)
    n, dim = data.shape
    params = model.check_params(params, dim=dim)
    return -2.0 * float(model.log_likelihood(data, params).sum()), n_parameters(model.n_components, dim), n


def aic(model, data, params) -> float:
    """Akaike's criterion -2 log L + 2 p (p = :func:`n_parameters`); lower is better."""
    deviance, p, _ = _penalty_terms(model, data, params)
    return float(deviance + 2.0 * p)


def bic(model, data, params) -> float:
    """Schwarz's criterion -2 log L + p log N; lower is better."""
    deviance, p, n = _penalty_terms(model, data, params)
    return float(deviance + p * np.log(n))


def choose_n_components(model, data, candidates=range(1, 7), criterion: str = "bic", random_seed: int = 0, n_init: int = 5):
    """:meth:`GaussianMixture.choose_n_components
    <latentzoo.models.gaussian_mixture.GaussianMixture.choose_n_components>` (the arguments and the
    table are described there): maximum-likelihood EM for each candidate K, with ``model``'s
    ``reg_covar`` and the data-driven prior (unused by maximum likelihood)."""
    import pandas as pd

    from ..inference import fit  # models do not depend on inference at import time
    from .gaussian_mixture import NAMES, DegenerateComponentError, GaussianMixture  # it imports this module

    if criterion not in ("bic", "aic"):
        raise ValueError(f"criterion must be 'bic' or 'aic', got {criterion!r}")
    candidates = [int(k) for k in candidates]
    if not candidates:
        raise ValueError("candidates must name at least one number of components")
    data = GaussianData(data)  # validated once; each candidate only checks N >= K
    rows = []
    for K in candidates:
        candidate = GaussianMixture(n_components=K, reg_covar=model.reg_covar)
        x = candidate.check_data(data)
        row = {"n_components": K, "n_parameters": n_parameters(K, x.n_features), "note": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                idata = fit(candidate, x, backend="em", mle=True, n_init=n_init, random_seed=random_seed, progressbar=False)
        except DegenerateComponentError as error:
            row.update(log_likelihood=np.nan, aic=np.nan, bic=np.nan, converged=False, note=str(error).split(";")[0])
        else:
            params = {name: idata.posterior[name].values[0, 0] for name in NAMES}
            row.update(
                log_likelihood=float(candidate.log_likelihood(x, params).sum()),
                aic=aic(candidate, x, params),
                bic=bic(candidate, x, params),
                converged=bool(idata.posterior.attrs["converged"]),
            )
        rows.append(row)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    scores = table[criterion].to_numpy(float)
    table["best"] = False
    if np.any(np.isfinite(scores)):
        table.loc[int(np.nanargmin(scores)), "best"] = True
    return table
