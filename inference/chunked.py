"""Data that stay in chunks: a Dask array of rows, or many sequences split into partitions.

:func:`read_chunked` turns the user's input into a :class:`ChunkedData`: one validated data
object per chunk (``model.check_data`` run on the workers, kept there with ``dask.persist``),
their sizes, and a bounded in-memory subsample for the starting points. The data themselves are
never gathered to the client. Under a ``distributed.Client`` the chunks live on its workers;
without one, Dask's default (threaded) scheduler holds them in this process.

Accepted inputs
---------------
* a ``dask.array.Array`` of rows (a Gaussian mixture's (N, D) points, the three coins' trials):
  chunked along the rows only (the other axes are rechunked to one chunk each);
* :func:`sequences` (a list of arrays or of Dask arrays, split into ``partitions`` groups of
  consecutive sequences), a list holding Dask arrays, or a ``dask.bag.Bag`` of sequences (one
  partition per bag partition): an HMM's many sequences, partitioned by sequence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..models.core.protocols import ChunkValidation

__all__ = ["ChunkedData", "Sequences", "sequences", "is_chunked_input", "read_chunked", "MAX_SAMPLE"]

#: the starting points (k-means++, random soft assignments) are drawn from at most this many rows
#: (or sequence steps) of the data: all of them for smaller data, so that a chunked fit starts
#: where the in-memory one does
MAX_SAMPLE = 100_000
#: the subsample of rows of larger data is the same for every fit of the same data
SAMPLE_SEED = 20260815


@dataclass(frozen=True)
class Sequences:
    """Many sequences, to be fitted partition by partition (see :func:`sequences`)."""

    items: tuple
    partitions: int | None = None


def sequences(items, partitions: int | None = None) -> Sequences:
    """Mark a list of sequences for a chunked fit, split into ``partitions`` groups.

    Parameters
    ----------
    items : sequence of array-like or dask.array.Array
        The sequences, in the form the model's ``check_data`` accepts one by one.
    partitions : int, optional
        Number of groups of consecutive sequences, each a task; default: the number of workers
        of the current ``distributed.Client``, or of CPU cores without one (never more than the
        number of sequences).

    Returns
    -------
    Sequences
        What ``fit`` accepts as ``data``.
    """
    if isinstance(items, str | bytes) or not hasattr(items, "__len__"):
        raise TypeError(f"items must be a list of sequences, got {type(items).__name__}")
    if len(items) == 0:
        raise ValueError("items must hold at least one sequence, got none")
    if partitions is not None and (isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1):
        raise ValueError(f"partitions must be a positive int or None, got {partitions!r}")
    return Sequences(tuple(items), partitions)


@dataclass(frozen=True, eq=False)
class ChunkedData:
    """Validated data in chunks.

    Attributes
    ----------
    parts : tuple of dask.delayed.Delayed
        One validated data object per chunk (``model.check_data``'s output), persisted.
    dim_sizes : tuple of dict of str -> int
        Per chunk, the length of every per-observation dim (``observation``; ``sequence`` and
        ``time``).
    scales, round_offs : tuple
        Per chunk, ``model.objective_scale`` and ``model.objective_round_off``.
    sample : validated data object
        At most :data:`MAX_SAMPLE` rows (or steps) in memory: all the data when they are no
        larger, else a fixed random subsample of rows (or the first sequences).
    """

    parts: tuple
    dim_sizes: tuple
    scales: tuple
    round_offs: tuple
    sample: object

    @property
    def n_chunks(self) -> int:
        return len(self.parts)

    def __repr__(self) -> str:
        return f"ChunkedData(n_chunks={self.n_chunks}, sizes={[dict(s) for s in self.dim_sizes][:4]}...)"


def _is_dask_collection(value) -> bool:
    return type(value).__module__.startswith("dask.") and hasattr(value, "__dask_graph__")


def is_chunked_input(data) -> bool:
    """True for a Dask array or bag, :func:`sequences`, a list holding a Dask array, or a
    :class:`ChunkedData`."""
    if isinstance(data, ChunkedData | Sequences) or _is_dask_collection(data):
        return True
    return isinstance(data, list | tuple) and any(_is_dask_collection(item) for item in data)


def data_dims(model, sample) -> tuple[str, ...]:
    """The dims whose length grows with the data: the observation dim and the leading dim of every
    observed variable and latent posterior."""
    dims = [model.observation_dim]
    dims += [var_dims[0] for _, var_dims in model.observed_data(sample).values()]
    dims += [var_dims[0] for var_dims in model.latent_dims().values()]
    return tuple(dict.fromkeys(dims))


def _validate(model, block, where: str):
    """Runs on a worker: one chunk through ``model.check_data``, errors naming the chunk."""
    try:
        # a chunk may be smaller than the whole data set must be (fewer rows than components)
        return model.check_chunk(block) if isinstance(model, ChunkValidation) else model.check_data(block)
    except (TypeError, ValueError) as error:
        kind = ValueError if isinstance(error, ValueError) else TypeError
        raise kind(f"{error} (in {where})") from None


def _describe(model, part) -> tuple:
    """Runs on a worker: the sizes a chunk contributes (small numbers only)."""
    dims = data_dims(model, part)
    coords = model.coords(part)
    sizes = {dim: len(coords[dim]) for dim in dims if dim in coords}
    sizes.setdefault(model.observation_dim, int(model.n_observations(part)))
    return sizes, int(model.objective_scale(part)), float(model.objective_round_off(part))


def _default_partitions() -> int:
    try:
        from distributed import get_client

        return max(len(get_client().scheduler_info(n_workers=-1)["workers"]), 1)
    except (ImportError, ValueError):
        return os.cpu_count() or 1


def _array_blocks(array):
    """``(blocks, descriptions, sample_source)`` of a Dask array chunked along its rows only."""
    if array.ndim == 0:
        raise ValueError("data must have at least one dimension (rows), got a 0-d Dask array")
    if np.isnan(array.shape[0]):
        raise ValueError("data is a Dask array of unknown length; call data.compute_chunk_sizes() first")
    if array.ndim > 1:
        array = array.rechunk({axis: -1 for axis in range(1, array.ndim)})
    blocks = list(array.to_delayed().ravel())
    starts = np.concatenate([[0], np.cumsum(array.chunks[0])])
    keep = [i for i in range(len(blocks)) if array.chunks[0][i] > 0]
    described = [f"data chunk {i} (rows {starts[i]} to {starts[i + 1] - 1})" for i in keep]
    n_rows = int(array.shape[0])
    if not keep:
        raise ValueError(f"data must have at least one row, got a Dask array of shape {array.shape}")
    if n_rows <= MAX_SAMPLE:
        sample = array
    else:
        rows = np.sort(np.random.default_rng(SAMPLE_SEED).choice(n_rows, MAX_SAMPLE, replace=False))
        sample = array[rows]
    return [blocks[i] for i in keep], described, sample


def _sequence_groups(data):
    """``(groups, descriptions, head)`` for many sequences: delayed lists of sequences."""
    import dask

    if type(data).__name__ == "Bag":
        groups = list(data.to_delayed())
        described = [f"data partition {i}" for i in range(len(groups))]
        return groups, described, None
    items = data.items if isinstance(data, Sequences) else tuple(data)
    n_parts = data.partitions if isinstance(data, Sequences) and data.partitions else _default_partitions()
    n_parts = min(n_parts, len(items))
    bounds = np.linspace(0, len(items), n_parts + 1).round().astype(int)
    groups, described = [], []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        groups.append(dask.delayed(list)(list(items[start:stop])))
        described.append(f"data partition of sequences {start} to {stop - 1}")
    return groups, described, items


def _first_sequences(items, budget: int) -> list:
    """The leading sequences holding at most ``budget`` steps (at least one sequence)."""
    import dask

    chosen, steps = [], 0
    for item in items:
        length = len(item)
        if chosen and steps + length > budget:
            break
        chosen.append(item)
        steps += length
    return list(dask.compute(*chosen))


def _leading_bag_items(partitions, budget: int) -> list:
    import dask

    items, steps = [], 0
    for partition in partitions:
        if steps >= budget:
            break
        fetched = list(dask.compute(partition)[0])
        items += fetched
        steps += sum(len(item) for item in fetched)
    return items


def read_chunked(model, data) -> ChunkedData:
    """Validate chunked ``data`` on the workers for ``model``; see the module docstring.

    Raises
    ------
    TypeError, ValueError
        From ``model.check_data`` on a chunk, with the chunk named (``in data chunk 3 (rows 300
        to 399)``).
    """
    import dask

    if isinstance(data, ChunkedData):
        return data
    is_array = type(data).__name__ == "Array" and _is_dask_collection(data)
    if is_array:
        blocks, described, sample_source = _array_blocks(data)
    else:
        if not (isinstance(data, Sequences | list | tuple) or type(data).__name__ == "Bag"):
            raise TypeError(f"data must be a Dask array, a dask.bag or latentzoo sequences(...), got {type(data).__name__}")
        blocks, described, items = _sequence_groups(data)
    # the chunks first, on the workers: a bad value is reported with the chunk that holds it
    validated = [dask.delayed(_validate)(model, block, where) for block, where in zip(blocks, described)]
    parts = dask.persist(*validated)
    described_parts = dask.compute(*[dask.delayed(_describe)(model, part) for part in parts])
    if is_array:
        sample = model.check_data(np.asarray(sample_source.compute()))
    else:
        if items is None:  # a bag: its leading partitions, fetched one by one until the budget is met
            items = _leading_bag_items(blocks, MAX_SAMPLE)
        sample = model.check_data(_first_sequences(items, MAX_SAMPLE))
    sizes, scales, round_offs = zip(*described_parts)
    return ChunkedData(tuple(parts), tuple(sizes), tuple(scales), tuple(round_offs), sample)
