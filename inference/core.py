"""The back-end contract: ``RawResult`` in, ``xarray.DataTree`` out.

Back-ends return plain arrays; :func:`to_idata` is the only place that builds the result tree, so
every back-end's output has the same groups, names, dims and coords (ArviZ 1's conventions).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ConvergenceWarning", "FitRecord", "RawResult", "make_dataset", "nan_padded", "posterior_values", "to_idata"]


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped before meeting its tolerance, or a sampler did not mix."""


#: separates the recorded warnings in the ``warnings`` attr (NetCDF attrs hold no lists of text)
WARNING_SEPARATOR = "\n"


@dataclass(frozen=True, eq=False)
class FitRecord:
    """What every back-end reports about its run, beside the draws: the seam between the back-ends
    and the comparison.

    The back-end fills the fields it knows; ``fit`` adds ``backend``, ``random_seed``,
    ``runtime_s``, ``compile_s`` and ``warnings``. ``to_idata`` writes the record into the
    attrs of the result (root and every group) under the field names, and
    :meth:`from_attrs` reads it back: the comparison reads nothing else.

    Attributes
    ----------
    converged : bool
        The iterative fit met its tolerance, or the sampler mixed (R-hat, ESS, divergences).
    n_iter : int
        Iterations of the best restart, sweeps per chain (tune + draws), or optimiser steps.
    point_estimate : bool
        One draw standing for a point (EM, MAP) rather than a sample of the posterior.
    objective : float
        The final value of what the back-end maximised (NaN for samplers).
    objective_name : str
        ``"log-posterior"``, ``"log-likelihood"``, ``"classification log-posterior"``,
        ``"ELBO"`` or ``"log-evidence"`` ("" when there is none).
    objective_spread : float
        Largest minus smallest final objective over the restarts (0 when they agree to
        round-off, NaN with a single restart).
    run_s : float
        Seconds of the sampling or optimisation itself (the whole fit for hand-written
        back-ends; PyMC's own clock for its samplers and optimisers).
    compile_s : float
        Seconds of model building, compilation and conversion: the wall time minus ``run_s``
        for back-ends that compile a PyMC model, NaN for the hand-written ones.
    runtime_s : float
        Wall time of the whole ``fit``.
    warnings : tuple of str
        The warnings the run raised (``"Category: message"``); they are also shown as usual.
    backend : str
    random_seed : int or None
    """

    converged: bool
    n_iter: int
    point_estimate: bool
    objective: float = math.nan
    objective_name: str = ""
    objective_spread: float = math.nan
    run_s: float = math.nan
    compile_s: float = math.nan
    runtime_s: float = math.nan
    warnings: tuple[str, ...] = ()
    backend: str = ""
    random_seed: int | None = None

    def __eq__(self, other) -> bool:
        # field by field, with unknown values (NaN) equal to each other: dataclass equality
        # compares NaN with NaN as unequal on Python 3.13 (on 3.12 it compared field tuples)
        if not isinstance(other, FitRecord):
            return NotImplemented
        return self.to_attrs() == other.to_attrs()

    __hash__ = None  # equal records need not hash alike (to_attrs drops NaN), so none hashes

    def to_attrs(self) -> dict:
        """The record as NetCDF-safe attrs: booleans as 0/1, the warnings as one string, and
        unknown values (NaN, None) left out (:meth:`from_attrs` restores them as defaults), so
        that attrs compare equal after a round trip through a file."""
        attrs = dataclasses.asdict(self)
        attrs["warnings"] = WARNING_SEPARATOR.join(self.warnings)
        known = {key: value for key, value in attrs.items()
                 if value is not None and not (isinstance(value, float) and math.isnan(value))}
        return {key: _attr_value(value) for key, value in known.items()}

    @classmethod
    def from_attrs(cls, attrs) -> "FitRecord":
        """Read a record written by :meth:`to_attrs` (from a result, or one loaded from NetCDF).

        Raises
        ------
        ValueError
            If ``attrs`` lacks a field without a default: the result was not made by latentzoo's
            ``fit`` (or by a version before the record existed).
        """
        missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in attrs]
        if missing:
            raise ValueError(f"these attrs hold no latentzoo fit record: {missing} missing; was the result made by fit()?")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in attrs:
                continue
            value = attrs[f.name]
            if f.name in ("converged", "point_estimate"):
                value = bool(value)
            elif f.name == "n_iter":
                value = int(value)
            elif f.name == "warnings":
                value = tuple(part for part in str(value).split(WARNING_SEPARATOR) if part)
            elif f.name == "random_seed":
                value = None if value in (None, "None") else int(value)
            elif f.name in ("backend", "objective_name"):
                value = str(value)
            else:
                value = float(value)
            values[f.name] = value
        return cls(**values)


@dataclass
class RawResult:
    """What a back-end returns.

    Attributes
    ----------
    draws : dict of str -> ndarray of shape (chain, draw, *param_shape)
        Posterior draws, or a point estimate as one chain with one draw.
    record : FitRecord
        Convergence, objective and timing, in typed fields.
    sample_stats : dict of str -> ndarray of shape (chain, draw)
        Per-draw statistics (divergences, energies, ...).
    history : dict of str -> ndarray of shape (n_restart, n_iter) or (n_iter,)
        Per-iteration objective (log-likelihood, log-posterior, lower bound, ELBO), padded
        with NaN where restarts ran for different numbers of iterations; the objective comes
        first. Entries ``final_<param>`` of shape (n_restart, *param_shape) hold where each
        restart ended (EM).
    attrs : dict
        The back-end's own settings and details (the options used, the best restart, ...),
        written to the result's attrs beside the record.
    variational : dict of str -> (ndarray, tuple of str)
        The parameters of a fitted variational family (``vb``'s final q(theta)), each with its
        dims (the model's dims, no sample dims); written to the ``variational`` group.
    """

    draws: dict
    record: FitRecord
    sample_stats: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    variational: dict = field(default_factory=dict)


def _attr_value(value):
    """NetCDF attrs accept numbers, strings and flat arrays only; everything else is text."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, numbers.Number | str):
        return value
    if value is None:
        return "None"
    return repr(value)


def posterior_values(model, data, draws: dict) -> tuple[dict, dict]:
    """Everything the posterior group holds, computed from the parameter draws.

    Returns
    -------
    values : dict of str -> ndarray of shape (chain, draw, ...)
        Free parameters, derived quantities and per-observation latent posteriors.
    dims : dict of str -> tuple of str (without the sample dims)
    """
    values = dict(draws)
    values.update(model.derived(draws))
    values.update(model.latent_posterior(data, draws))
    dims = {**model.param_dims(), **model.derived_dims(), **model.latent_dims()}
    return values, dims


def make_dataset(values: dict, dims: dict, coords: dict, sample_dims=("chain", "draw")):
    """An xarray Dataset whose variables carry ``sample_dims + dims[name]`` and the used coords."""
    import xarray as xr

    variables = {}
    for name, array in values.items():
        if not hasattr(array, "__dask_graph__"):  # lazy (Dask) variables stay lazy
            array = np.asarray(array)
        var_dims = tuple(sample_dims) + tuple(dims.get(name, ()))
        if array.ndim != len(var_dims):
            raise RuntimeError(f"{name!r} has shape {array.shape}, expected dims {var_dims}")
        variables[name] = (var_dims, array)
    used = {dim for var_dims, _ in variables.values() for dim in var_dims}
    return xr.Dataset(variables, coords={key: value for key, value in coords.items() if key in used})


def sample_coords(model, data, n_chain: int, n_draw: int) -> dict:
    from .chunked import ChunkedData, data_dims

    if isinstance(data, ChunkedData):
        # per-observation dims of chunked data go without coordinates (a range of N numbers
        # gathered on the client for nothing); the others come from the in-memory sample
        per_observation = data_dims(model, data.sample)
        coords = {key: np.asarray(value) for key, value in model.coords(data.sample).items() if key not in per_observation}
    else:
        coords = {key: np.asarray(value) for key, value in model.coords(data).items()}
    coords.update(chain=np.arange(n_chain), draw=np.arange(n_draw))
    return coords


#: prefix of the history entries that hold where each restart ended (``final_<param>``)
FINAL_PREFIX = "final_"


def _history_dataset(model, history: dict, coords: dict):
    """The ``fit_history`` group: objective traces over ("restart", "iteration"), and each
    restart's final parameters (``final_<param>``) over ("restart", *param_dims) with the
    model's coords."""
    import xarray as xr

    param_dims = model.param_dims()
    variables = {}
    for name, values in history.items():
        param = name.removeprefix(FINAL_PREFIX)
        if name.startswith(FINAL_PREFIX) and param in param_dims:
            variables[name] = (("restart", *param_dims[param]), np.asarray(values, float))
        else:
            variables[name] = (("restart", "iteration"), np.atleast_2d(np.asarray(values, float)))
    used = {dim for dims, _ in variables.values() for dim in dims}
    return xr.Dataset(variables, coords={dim: coords[dim] for dim in used if dim in coords})


def to_idata(model, data, raw: RawResult, per_observation: str = "auto"):
    """Build the result every back-end returns: an ``xarray.DataTree`` in ArviZ 1's conventions.

    ``data`` is the validated data object (``model.check_data``'s output), trusted as it is.

    Groups: ``posterior`` (free parameters, derived quantities and per-observation latent
    posteriors, with the model's dims and coords), ``sample_stats``, ``observed_data``,
    ``log_likelihood`` (pointwise, from ``model.log_likelihood`` for every back-end, under the
    name of the observed variable), ``fit_history`` (an extra group: the objective per restart
    and iteration, and where back-ends that record it ended each restart: ``final_<param>``
    over ("restart", *param_dims)), ``variational`` (an extra group, for back-ends that fit a
    variational family: its parameters, with the model's dims and coords and no sample dims) and
    attrs, set on the root and on every group.

    ``data`` may be :class:`~latentzoo.inference.chunked.ChunkedData` (a fit on Dask).
    ``per_observation`` (``"auto"``, ``"full"``, ``"lazy"``, ``"summary"``) says how the
    per-observation quantities enter (:mod:`latentzoo.inference.lean`); the choice made is
    recorded in the attr ``per_observation``.
    """
    from .lean import SUMMARY_GROUP, lazy_values, resolve_mode, summaries

    import xarray as xr

    from .chunked import ChunkedData

    missing = set(model.param_names) - set(raw.draws)
    if missing:
        raise RuntimeError(f"back-end {raw.record.backend!r} returned no draws for {sorted(missing)}")
    draws = {name: np.asarray(raw.draws[name], float) for name in model.param_names}
    n_chain, n_draw = next(iter(draws.values())).shape[:2]
    coords = sample_coords(model, data, n_chain, n_draw)

    mode = resolve_mode(per_observation, model, data, n_chain * n_draw, coords)
    if mode == "full" and not isinstance(data, ChunkedData):
        posterior, posterior_dims = posterior_values(model, data, draws)
        observed = model.observed_data(data)
        log_lik = model.log_likelihood(data, draws)
    else:
        log_lik, latents, observed = lazy_values(model, data, draws, (n_chain, n_draw))
        posterior = {**draws, **model.derived(draws)}
        posterior_dims = {**model.param_dims(), **model.derived_dims(), **model.latent_dims()}
        if mode == "full":  # chunked data asked for in full: computed on the workers, then gathered
            import dask

            log_lik, latents, observed = dask.compute(log_lik, latents, observed)
        if mode in ("lazy", "full"):
            posterior.update(latents)
    groups = {"posterior": make_dataset(posterior, posterior_dims, coords)}
    observed_name = next(iter(observed))
    if mode == "summary":
        groups[SUMMARY_GROUP] = make_dataset(
            *summaries(log_lik, latents, model.latent_dims(), (n_chain, n_draw)), coords
        )
    else:
        groups["log_likelihood"] = make_dataset(
            {observed_name: log_lik}, {observed_name: (model.observation_dim,)}, coords
        )
    groups["observed_data"] = make_dataset(
        {name: array for name, (array, _) in observed.items()},
        {name: dims for name, (_, dims) in observed.items()},
        coords,
        sample_dims=(),
    )
    if raw.sample_stats:
        groups["sample_stats"] = make_dataset(raw.sample_stats, {}, coords)
    if raw.history:
        groups["fit_history"] = _history_dataset(model, raw.history, coords)
    if raw.variational:
        groups["variational"] = make_dataset(
            {name: array for name, (array, _) in raw.variational.items()},
            {name: dims for name, (_, dims) in raw.variational.items()},
            coords,
            sample_dims=(),
        )

    attrs = {
        "model": type(model).__name__,
        "model_spec": repr(model),
        "inference_library": "latentzoo",
        "per_observation": mode,
        **{key: _attr_value(value) for key, value in raw.attrs.items()},
        **raw.record.to_attrs(),
    }
    for dataset in groups.values():
        dataset.attrs.update(attrs)
    result = xr.DataTree.from_dict(groups)
    result.attrs.update(attrs)
    return result


def nan_padded(rows) -> np.ndarray:
    """1-D histories of different lengths (restarts, paths, chains' stages) as one array of shape
    (len(rows), longest), padded with NaN at the end."""
    rows = [np.atleast_1d(np.asarray(row, float)) for row in rows]
    table = np.full((len(rows), max(row.size for row in rows)), np.nan)
    for index, row in enumerate(rows):
        table[index, : row.size] = row
    return table
