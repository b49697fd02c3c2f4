"""Mixing diagnostics shared by every MCMC back-end (hand-written Gibbs and PyMC's samplers)."""

from __future__ import annotations

import warnings

import numpy as np

from ..models.core.protocols import IdentificationRule
from .core import ConvergenceWarning

__all__ = ["RHAT_LIMIT", "check_mixing"]

# R-hat above this, or any divergence, marks an MCMC run as not converged (Vehtari et al. 2021).
RHAT_LIMIT = 1.01


def check_mixing(draws: dict, backend: str, divergences: int = 0, model=None) -> tuple[bool, dict]:
    """Rank-normalised R-hat over chains and the divergence count, with a warning that says
    what to change.

    Parameters
    ----------
    draws : dict of str -> ndarray of shape (chain, draw, ...)
    backend : str
        Named in the warning.
    divergences : int
    model : optional
        A model with an identification rule (``relabel_draws``): R-hat is computed on the
        identified draws, so that chains visiting mirror-image modes of an exchangeable
        posterior (which is correct behaviour) do not count as disagreeing. A model with a
        ``label_dim`` (mixture components, HMM states) is relabelled to a common labelling
        first, for the same reason.

    Returns
    -------
    converged : bool
    diagnostics : dict with ``divergences`` and ``max_rhat`` (NaN with a single chain)
    """

    if isinstance(model, IdentificationRule):
        draws, _ = model.relabel_draws(draws)
    if model is not None and model.label_dim is not None:
        draws = _identified_by_labels(draws, model)
    chains = next(iter(draws.values())).shape[0]
    max_rhat = float("nan")
    if chains > 1:
        # ArviZ's array function, the one az.rhat applies to each variable of a Dataset: the
        # same numbers without building one (which cost more than a short Gibbs run itself)
        from arviz_stats.base import array_stats

        with np.errstate(invalid="ignore", divide="ignore"):  # constant entries (masked HMM emissions): 0/0
            rhat = {name: array_stats.rhat(np.asarray(value, float), chain_axis=0, draw_axis=1) for name, value in draws.items()}
        max_rhat = float(max(np.nanmax(rhat[name]) for name in draws))
    problems = []
    if divergences:
        problems.append(f"{divergences} divergent transitions (raise target_accept, e.g. 0.95)")
    if max_rhat > RHAT_LIMIT:
        problems.append(
            f"max R-hat {max_rhat:.3f} > {RHAT_LIMIT}: chains disagree (run longer with more tune and "
            "draws, or start the chains elsewhere; chains stuck in different modes of a multimodal "
            "posterior also cause this)"
        )
    if problems:
        warnings.warn(f"{backend}: " + "; ".join(problems), ConvergenceWarning, stacklevel=4)
    return not problems, {"divergences": int(divergences), "max_rhat": max_rhat}


def _identified_by_labels(draws: dict, model) -> dict:
    """Draws relabelled to a common labelling (exchangeable components or states): chains that
    report the same mode under permuted labels are not disagreeing."""
    import arviz as az

    from .labels import labelled_names, relabel_self

    dims = model.param_dims()
    if not any(name in draws for name in labelled_names(model, dims)):
        return draws
    idata = az.from_dict({"posterior": {name: np.asarray(draws[name]) for name in draws if name in dims}},
                         dims={name: list(dims[name]) for name in draws if name in dims})
    relabelled = relabel_self(idata, model.label_dim, paired_dims=model.paired_label_dims)
    return {name: relabelled.posterior[name].values if name in dims else value for name, value in draws.items()}
