"""The back-end contract: ``RawResult`` in, ``arviz.InferenceData`` out.

Back-ends return plain arrays; :func:`to_idata` is the only place that builds InferenceData, so
every back-end's output has the same groups, names, dims and coords.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ConvergenceWarning", "RawResult", "to_idata"]


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped before meeting its tolerance, or a sampler did not mix."""


@dataclass
class RawResult:
    """What a back-end returns.

    Attributes
    ----------
    draws : dict of str -> ndarray of shape (chain, draw, *param_shape)
        Posterior draws, or a point estimate as one chain with one draw.
    sample_stats : dict of str -> ndarray of shape (chain, draw)
        Per-draw statistics (divergences, energies, ...).
    history : dict of str -> ndarray of shape (n_restart, n_iter) or (n_iter,)
        Per-iteration objective (log-likelihood, log-posterior, lower bound, ELBO), padded
        with NaN where restarts ran for different numbers of iterations.
    attrs : dict
        ``backend``, ``converged``, ``n_iter``, ``runtime_s``, ``point_estimate``,
        ``random_seed`` and the options used.
    """

    draws: dict
    sample_stats: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)


def _attr_value(value):
    """NetCDF attrs accept numbers, strings and flat arrays only; everything else is text."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, numbers.Number | str):
        return value
    if value is None:
        return "None"
    return repr(value)


def to_idata(model, data, raw: RawResult):
    """Build the InferenceData every back-end returns.

    Groups: ``posterior`` (free parameters, derived quantities and per-observation latent
    posteriors, with the model's dims and coords), ``sample_stats``, ``observed_data``,
    ``log_likelihood`` (pointwise, from ``model.log_likelihood`` for every back-end),
    ``fit_history`` and attrs.
    """
    import arviz as az
    import xarray as xr

    data = model.check_data(data)
    param_dims = model.param_dims()
    missing = set(param_dims) - set(raw.draws)
    if missing:
        raise RuntimeError(f"back-end {raw.attrs.get('backend')!r} returned no draws for {sorted(missing)}")
    draws = {name: np.asarray(raw.draws[name], float) for name in param_dims}
    n_chain, n_draw = next(iter(draws.values())).shape[:2]
    coords = {key: np.asarray(value) for key, value in model.coords(data).items()}
    coords.update(chain=np.arange(n_chain), draw=np.arange(n_draw))

    def dataset(values: dict, dims: dict, sample_dims=("chain", "draw")):
        variables = {}
        for name, array in values.items():
            array = np.asarray(array)
            var_dims = sample_dims + tuple(dims.get(name, ()))
            if array.ndim != len(var_dims):
                raise RuntimeError(f"{name!r} has shape {array.shape}, expected dims {var_dims}")
            variables[name] = (var_dims, array)
        used = {dim for _, (var_dims, _) in variables.items() for dim in var_dims}
        return xr.Dataset(variables, coords={k: v for k, v in coords.items() if k in used})

    posterior_values = dict(draws)
    posterior_values.update(model.derived(draws))
    posterior_values.update(model.latent_posterior(data, draws))
    posterior_dims = {**param_dims, **model.derived_dims(), **model.latent_dims()}
    groups = {"posterior": dataset(posterior_values, posterior_dims)}

    log_lik = model.log_likelihood(data, draws)
    groups["log_likelihood"] = dataset(
        {next(iter(model.observed_data(data))): log_lik}, {next(iter(model.observed_data(data))): (model.observation_dim,)}
    )
    observed = {name: array for name, (array, _) in model.observed_data(data).items()}
    observed_dims = {name: dims for name, (_, dims) in model.observed_data(data).items()}
    groups["observed_data"] = dataset(observed, observed_dims, sample_dims=())
    if raw.sample_stats:
        groups["sample_stats"] = dataset(raw.sample_stats, {})

    history = {}
    for name, values in raw.history.items():
        values = np.atleast_2d(np.asarray(values, float))
        history[name] = (("restart", "iteration"), values)
    if history:
        groups["fit_history"] = xr.Dataset(history)

    attrs = {
        "model": type(model).__name__,
        "model_spec": repr(model),
        "inference_library": "latentzoo",
        **{key: _attr_value(value) for key, value in raw.attrs.items()},
    }
    for dataset_ in groups.values():
        dataset_.attrs.update(attrs)
    idata = az.InferenceData(**{k: v for k, v in groups.items() if k != "fit_history"})
    if "fit_history" in groups:
        # extra groups are allowed by the InferenceData schema; add_groups warns about non-standard names
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*fit_history.*")
            idata.add_groups(fit_history=groups["fit_history"])
    return idata
