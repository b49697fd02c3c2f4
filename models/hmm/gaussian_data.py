"""Data of the Gaussian hidden Markov model: sequences of real vectors, read and validated once.

Users give one sequence or many: a (T, D) array, a pandas DataFrame (its columns name the
features), a 1-D array or Series when D = 1, a 3-D array (one sequence per leading index), or a
list of any of these (ragged lengths allowed). :func:`check_sequences` turns them into a
:class:`GaussianSequences` (the sequences concatenated, with offsets). A row of NaN is a missing
observation (so are the masked rows of a ``numpy.ma.MaskedArray``): it tells nothing about the state at that step, and every back-end gives it a log
emission density of 0. A row that is only partly NaN is refused (the model has no missing
features), as are infinities.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..gaussian.data import finite_in_range, real_objects, require_computable_range
from .kernels import as_offsets

__all__ = ["GaussianSequences", "check_sequences"]


@dataclass(frozen=True, eq=False)
class GaussianSequences:
    """Validated sequences of D-dimensional observations, concatenated.

    Attributes
    ----------
    x : float64 ndarray of shape (T, D), read-only
        All sequences one after the other; rows of NaN are missing observations.
    offsets : int64 ndarray of shape (n_sequences + 1,)
        Sequence ``s`` is ``x[offsets[s]:offsets[s + 1]]``.
    single : bool
        True when the data were one sequence (methods then return one array, not a list).
    feature_names : tuple of str or None
        The columns of a DataFrame, when the data came as one.

    Notes
    -----
    Instances compare by identity. Build them with :func:`check_sequences`.
    """

    x: np.ndarray
    offsets: np.ndarray
    single: bool
    feature_names: tuple[str, ...] | None = None

    @cached_property
    def observed(self) -> np.ndarray:
        """bool ndarray of shape (T,): False on missing (NaN) rows."""
        observed = ~np.isnan(self.x[:, 0])
        observed.setflags(write=False)
        return observed

    @cached_property
    def all_observed(self) -> bool:
        return bool(self.observed.all())

    @cached_property
    def x_observed(self) -> np.ndarray:
        """The observed rows, (n_observed, D), C-contiguous and read-only."""
        rows = self.x if self.all_observed else np.ascontiguousarray(self.x[self.observed])
        rows.setflags(write=False)
        return rows

    @property
    def n_missing(self) -> int:
        return 0 if self.all_observed else int(self.n_steps - self.observed.sum())

    @property
    def n_sequences(self) -> int:
        return self.offsets.size - 1

    @property
    def n_steps(self) -> int:
        """Total number of time steps T over all sequences (missing ones included)."""
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def split(self, array: np.ndarray):
        """Split an array over concatenated time steps into sequences (or return it for one)."""
        if self.single:
            return array
        return [array[start:stop] for start, stop in zip(self.offsets[:-1], self.offsets[1:])]

    def __repr__(self) -> str:
        return (
            f"GaussianSequences(T={self.n_steps}, D={self.n_features}, n_sequences={self.n_sequences}, "
            f"missing={int(self.n_steps - self.observed.sum())})"
        )


def _is_scalar(value) -> bool:
    return isinstance(value, numbers.Number | np.generic) and not isinstance(value, bool | np.bool_)


def _is_frame(value) -> bool:
    # pandas objects without importing pandas
    return hasattr(value, "to_numpy") and hasattr(value, "columns")


def _is_series(value) -> bool:
    return hasattr(value, "to_numpy") and hasattr(value, "index") and not hasattr(value, "columns")


def _read_sequence(sequence, index: int, n_features: int) -> np.ndarray:
    """One sequence as a float64 (T_s, D) array, or a TypeError/ValueError naming it."""
    where = f"data: sequence {index}"
    if _is_frame(sequence) or _is_series(sequence):
        sequence = sequence.to_numpy()
    if isinstance(sequence, str | bytes) or sequence is None or isinstance(sequence, dict):
        raise TypeError(f"{where} must be a (T, D) array of real numbers, got {type(sequence).__name__}")
    if isinstance(sequence, np.ma.MaskedArray):
        # masked entries are missing observations, as NaN rows are (a partly masked row is refused below)
        sequence = np.ma.filled(sequence.astype(np.float64), np.nan)
    try:
        array = np.asarray(sequence)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"{where}: could not read it as a (T, D) array (ragged rows?): {error}") from None
    if array.dtype == object and array.size:
        array = real_objects(array)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{where} must hold real numbers, got an array of dtype {array.dtype}")
    if array.ndim == 1 and n_features == 1:
        array = array[:, None]
    if array.ndim != 2:
        hint = f" (a 1-D sequence is read as one feature, but the model has n_features = {n_features})" if array.ndim == 1 else ""
        raise ValueError(f"{where} must be 2-D of shape (T, D = {n_features}), got shape {array.shape}{hint}")
    if array.shape[1] != n_features:
        raise ValueError(
            f"{where} has D = {array.shape[1]} features per row but the model has n_features = {n_features}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{where} is empty; every sequence needs at least one time step")
    array = np.asarray(array, dtype=np.float64)
    if finite_in_range(array):
        # the usual case, in one compiled pass: nothing missing or infinite, the range checked
        return array
    if np.isinf(array).any():
        row = int(np.argmax(np.isinf(array).any(axis=1)))
        raise ValueError(f"{where} has an infinite value at time step {row}; observations must be finite or NaN (missing)")
    missing = np.isnan(array)
    partly = missing.any(axis=1) & ~missing.all(axis=1)
    if partly.any():
        row = int(np.argmax(partly))
        raise ValueError(
            f"{where} has a partly missing row at time step {row}; a row must be all numbers or all NaN "
            "(a missing observation)"
        )
    if not missing.all():
        require_computable_range(array[~missing.any(axis=1)])
    return array


def _as_sequences(data, n_features: int) -> tuple[list, bool]:
    """The raw sequences in ``data`` and whether it was one sequence (not yet validated)."""
    if _is_frame(data) or _is_series(data):
        return [data], True
    if isinstance(data, np.ndarray):
        return (list(data), False) if data.ndim == 3 else ([data], True)
    if isinstance(data, list | tuple):
        if len(data) == 0:
            raise ValueError("data must contain at least one sequence, got an empty list")
        if all(_is_scalar(item) for item in data):
            return [data], True
        if any(_is_scalar(item) for item in data):
            raise TypeError("data must be one sequence or a list of sequences, got a list mixing numbers and sequences")
        # items that are sequences themselves: NumPy arrays, pandas objects, or nested lists of
        # rows; a list of flat lists is the rows of one (T, D) sequence
        if all(isinstance(item, np.ndarray) or _is_frame(item) or _is_series(item) or np.ndim(item) == 2 for item in data):
            return list(data), False
        return [data], True
    raise TypeError(
        "data must be a (T, D) array, a pandas DataFrame, or a list of them (one per sequence), "
        f"got {type(data).__name__}"
    )


def check_sequences(data, n_features: int) -> GaussianSequences:
    """Validate one sequence or many for a model of ``n_features``-dimensional observations.

    Parameters
    ----------
    data : array-like of shape (T, D), pandas DataFrame, 1-D array or Series (D = 1), 3-D array
        of shape (n_sequences, T, D), a list of those (NumPy arrays, pandas objects or nested lists
        of rows; a list of flat lists is read as the rows of one sequence), or GaussianSequences
    n_features : int
        D.

    Returns
    -------
    GaussianSequences
        ``data`` itself when it already is one with D features (no pass over the values).

    Raises
    ------
    TypeError, ValueError
        Naming the sequence and, where it helps, the time step: unreadable or non-numeric data,
        a wrong number of features, empty sequences, infinities, partly missing rows, or no
        observed row at all.
    """
    if isinstance(data, GaussianSequences):
        if data.n_features != n_features:
            raise ValueError(f"data have D = {data.n_features} features but the model has n_features = {n_features}")
        return data
    sequences, single = _as_sequences(data, n_features)
    names = None
    if _is_frame(sequences[0]):
        names = tuple(str(column) for column in sequences[0].columns)
    checked = [_read_sequence(sequence, index, n_features) for index, sequence in enumerate(sequences)]
    x = np.concatenate(checked) if len(checked) > 1 else checked[0].copy()
    x.setflags(write=False)
    offsets = as_offsets([len(sequence) for sequence in checked])
    offsets.setflags(write=False)
    result = GaussianSequences(x, offsets, single, names)
    if not result.observed.any():
        raise ValueError("data: every observation is missing (NaN); at least one row must be observed")
    return result
