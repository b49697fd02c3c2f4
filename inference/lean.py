"""Per-observation results for big data: full, lazy (Dask-backed) or summarised.

A fit's per-observation quantities (the pointwise log-likelihood (chain, draw, observation), latent
posteriors such as responsibilities (chain, draw, observation, component), the observed data)
grow with the data and the draws. ``fit(..., per_observation=...)`` chooses how they enter the
result:

``"full"``
    NumPy arrays, computed when the result is built (what small fits have always returned).
``"lazy"``
    Dask-backed variables: nothing is computed until a value is read (``.values``,
    ``.compute()``, a reduction); ``DataTree.to_netcdf`` streams them chunk by chunk. For chunked
    (Dask) data each chunk is one task on the workers; for in-memory data the whole array is one
    task, computed on first access.
``"summary"``
    Left out; the group ``per_observation_summary`` keeps their totals per draw:
    ``log_likelihood_sum`` (chain, draw) and, for each latent posterior, ``<name>_sum`` summed
    over its per-observation dim (a Gaussian mixture's ``responsibilities_sum`` (chain, draw,
    component) holds the expected count of every component). PSIS-LOO, which needs the pointwise
    values, then says so.
``"auto"`` (default)
    ``"full"`` up to :data:`AUTO_LIMIT` numbers in all per-observation arrays, ``"lazy"`` above,
    and always ``"lazy"`` for chunked data (which are never gathered to the client).
"""

from __future__ import annotations

import numpy as np

from .chunked import ChunkedData, data_dims

__all__ = ["PER_OBSERVATION", "AUTO_LIMIT", "SUMMARY_GROUP", "check_per_observation", "resolve_mode", "lazy_values"]

PER_OBSERVATION = ("auto", "full", "lazy", "summary")
#: "auto" keeps per-observation arrays in memory up to this many numbers in all
AUTO_LIMIT = 10_000_000
SUMMARY_GROUP = "per_observation_summary"


def check_per_observation(value) -> str:
    if not isinstance(value, str) or value not in PER_OBSERVATION:
        raise ValueError(f"per_observation must be one of {list(PER_OBSERVATION)}, got {value!r}")
    return value


def _parts(model, data):
    """The data as parts and each part's per-observation dim sizes."""
    if isinstance(data, ChunkedData):
        return data.parts, data.dim_sizes, data.sample
    coords = model.coords(data)
    dims = data_dims(model, data)
    sizes = {dim: len(coords[dim]) for dim in dims if dim in coords}
    sizes.setdefault(model.observation_dim, int(model.n_observations(data)))
    return (data,), (sizes,), data


def resolve_mode(mode: str, model, data, n_samples: int, coords: dict) -> str:
    """``mode`` with ``"auto"`` decided (see the module docstring); ``coords`` are the result's."""
    mode = check_per_observation(mode)
    if mode != "auto":
        return mode
    if isinstance(data, ChunkedData):
        return "lazy"
    per_draw = int(model.n_observations(data))
    for dims in model.latent_dims().values():
        per_draw += int(np.prod([len(coords[dim]) for dim in dims if dim in coords]))
    return "full" if n_samples * per_draw <= AUTO_LIMIT else "lazy"


def _chunk_log_likelihood(model, part, draws):
    return np.asarray(model.log_likelihood(part, draws), float)


def _chunk_latent(model, part, draws, name):
    values = model.latent_posterior(part, draws)
    if name not in values:
        raise RuntimeError(
            f"{type(model).__name__} gave no {name!r} for this part of the data (its memory guard: too many "
            "draws times observations); use per_observation='summary', fewer draws or smaller chunks"
        )
    return np.asarray(values[name], float)


def _chunk_observed(model, part, name):
    return np.asarray(model.observed_data(part)[name][0])


#: a lazy variable's tasks each compute about this many numbers at most (one chunk of the data
#: for as many draws as fit), so reading one draw never computes all of them; below the HMMs'
#: guard on smoothed state probabilities (``LATENT_MAX_ENTRIES`` = 5e6)
BLOCK_NUMBERS = 4_000_000


def _lazy_array(function, model, parts, lengths, trailing: tuple, draws: dict, batch: tuple, dtype, *arguments):
    """A Dask array of shape batch + (sum(lengths),) + trailing: ``function(model, part,
    draws_block, *arguments)`` per part and block of draws, concatenated."""
    import dask
    import dask.array as da

    n_chain, n_draw = batch
    width = int(np.prod(trailing, dtype=np.int64))
    columns = []
    for part, length in zip(parts, lengths):
        per_block = int(max(1, BLOCK_NUMBERS // max(length * width, 1)))
        chains = []
        for chain in range(n_chain):
            blocks = []
            for start in range(0, n_draw, per_block):
                stop = min(start + per_block, n_draw)
                block_draws = {name: value[chain:chain + 1, start:stop] for name, value in draws.items()}
                task = dask.delayed(function)(model, part, block_draws, *arguments)
                blocks.append(da.from_delayed(task, shape=(1, stop - start, length) + trailing, dtype=dtype))
            chains.append(blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=1))
        columns.append(chains[0] if len(chains) == 1 else da.concatenate(chains, axis=0))
    return columns[0] if len(columns) == 1 else da.concatenate(columns, axis=2)


def _observed_array(model, parts, lengths, name, trailing: tuple, dtype):
    import dask
    import dask.array as da

    pieces = [da.from_delayed(dask.delayed(_chunk_observed)(model, part, name), shape=(length,) + trailing, dtype=dtype)
              for part, length in zip(parts, lengths)]
    return pieces[0] if len(pieces) == 1 else da.concatenate(pieces)


def lazy_values(model, data, draws: dict, batch: tuple):
    """Dask arrays of the per-observation quantities.

    Parameters
    ----------
    model : the latentzoo model (not the chunked wrapper)
    data : validated data, or :class:`~latentzoo.inference.chunked.ChunkedData`
    draws : dict of str -> ndarray of shape batch + param_shape
    batch : tuple of int, (chain, draw)

    Returns
    -------
    log_likelihood : dask.array.Array of shape batch + (n_observations,)
    latents : dict of str -> dask.array.Array (the model's ``latent_dims``)
    observed : dict of str -> (array, dims); Dask arrays for chunked data, the model's own
        arrays (already in memory) otherwise
    """
    parts, sizes, sample = _parts(model, data)
    coords = model.coords(sample)
    observation_dim = model.observation_dim
    draws = {name: np.asarray(value) for name, value in draws.items()}
    log_lik = _lazy_array(
        _chunk_log_likelihood, model, parts, [s[observation_dim] for s in sizes], (), draws, batch, float
    )
    latents = {}
    for name, dims in model.latent_dims().items():
        trailing = tuple(len(coords[dim]) for dim in dims[1:])
        lengths = [s[dims[0]] for s in sizes]
        latents[name] = _lazy_array(_chunk_latent, model, parts, lengths, trailing, draws, batch, float, name)
    if not isinstance(data, ChunkedData):
        return log_lik, latents, model.observed_data(data)
    observed = {}
    for name, (array, dims) in model.observed_data(sample).items():
        lengths = [s[dims[0]] for s in sizes]
        observed[name] = (_observed_array(model, parts, lengths, name, array.shape[1:], array.dtype), dims)
    return log_lik, latents, observed


def summaries(log_lik, latents: dict, latent_dims: dict, batch: tuple) -> tuple[dict, dict]:
    """Totals per draw of the lazy per-observation arrays, computed in one pass over the chunks.

    Returns
    -------
    values : dict of str -> ndarray of shape batch + trailing dims
    dims : dict of str -> tuple of str (without the sample dims)
    """
    import dask

    axis = len(batch)
    lazy = {"log_likelihood_sum": log_lik.sum(axis)}
    dims = {"log_likelihood_sum": ()}
    for name, array in latents.items():
        lazy[f"{name}_sum"] = array.sum(axis)
        dims[f"{name}_sum"] = tuple(latent_dims[name][1:])
    computed = dask.compute(lazy)[0]
    return {name: np.asarray(value) for name, value in computed.items()}, dims
