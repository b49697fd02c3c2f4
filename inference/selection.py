"""Choosing a model's size by fitting each candidate (seed 002: AIC and BIC over K).

The model supplies the mathematics through
:class:`~latentzoo.models.core.protocols.SelectableSize` (a copy of itself with K components, its
number of free parameters, its criteria); this module runs maximum-likelihood EM for each
candidate and tabulates the result.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..models.core.base import DegenerateComponentError
from ..models.core.protocols import SelectableSize
from .registry import fit

__all__ = ["choose_n_components"]

#: the columns of :func:`choose_n_components`' table, before ``best``
TABLE_COLUMNS = ["n_components", "log_likelihood", "n_parameters", "aic", "bic", "converged", "note"]


def choose_n_components(model, data, candidates=range(1, 7), criterion: str = "bic", random_seed: int = 0, n_init: int = 5):
    """Fit maximum-likelihood EM for each candidate size; tabulate log-likelihood, AIC and BIC.

    Parameters
    ----------
    model : SelectableSize
        A mixture (``GaussianMixture``); each candidate is ``model.with_n_components(K)``.
    data : array-like
        What ``model.check_data`` accepts (for a Gaussian mixture, shape (N, D)).
    candidates : iterable of int
    criterion : {"bic", "aic"}
        The column whose minimum picks K (marked in the ``best`` column).
    random_seed : int
    n_init : int
        EM restarts per K.

    Returns
    -------
    pandas.DataFrame
        One row per K: ``n_components``, ``log_likelihood``, ``n_parameters``, ``aic``, ``bic``,
        ``converged``, ``note``, ``best``. A K whose maximum-likelihood fit collapses
        (:class:`~latentzoo.models.core.base.DegenerateComponentError`) gets NaN scores and the
        reason in ``note``.

    Raises
    ------
    TypeError
        If ``model`` cannot change its size.
    ValueError
        If ``criterion`` is unknown or ``candidates`` is empty.

    Examples
    --------
    >>> from latentzoo.inference import choose_n_components
    >>> from latentzoo.models import GaussianMixture
    >>> table = choose_n_components(GaussianMixture(), x, candidates=range(1, 5))  # doctest: +SKIP
    """
    import pandas as pd

    if not isinstance(model, SelectableSize):
        raise TypeError(f"model must be a model whose size can be chosen (a mixture), got {type(model).__name__}")
    if criterion not in ("bic", "aic"):
        raise ValueError(f"criterion must be 'bic' or 'aic', got {criterion!r}")
    candidates = [int(k) for k in candidates]
    if not candidates:
        raise ValueError("candidates must name at least one number of components")
    rows = []
    for K in candidates:
        candidate = model.with_n_components(K)
        x = candidate.check_data(data)  # validated once per candidate; a validated object passes through
        row = {"n_components": K, "n_parameters": candidate.n_parameters(x), "note": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                idata = fit(candidate, x, backend="em", mle=True, n_init=n_init, random_seed=random_seed, progressbar=False)
        except DegenerateComponentError as error:
            row.update(log_likelihood=np.nan, aic=np.nan, bic=np.nan, converged=False, note=str(error).split(";")[0])
        else:
            params = {name: idata.posterior[name].values[0, 0] for name in candidate.param_dims()}
            row.update(
                log_likelihood=float(candidate.log_likelihood(x, params).sum()),
                aic=candidate.aic(x, params),
                bic=candidate.bic(x, params),
                converged=bool(idata.posterior.attrs["converged"]),
            )
        rows.append(row)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    scores = table[criterion].to_numpy(float)
    table["best"] = False
    if np.any(np.isfinite(scores)):
        table.loc[int(np.nanargmin(scores)), "best"] = True
    return table
