"""Data of the hidden Markov models: reading and validating sequences of symbols, once.

Users give one sequence or many, as arrays, lists, a 2-D array (one sequence per row) or text
("1 6 3 5"); :func:`check_data` turns any of them into an :class:`HMMData` (the sequences
concatenated, with offsets) for the symbols a model accepts, described by an :class:`Alphabet`.

Validation scans the data once. The resulting ``HMMData`` records which symbols occur
(:attr:`HMMData.present_symbols`), so that checking it again for the same or another model costs
O(n_symbols), not O(T): the back-ends call ``model.check_data`` in every hook, and a Gibbs sweep
or an EM step must not re-scan a long sequence.

The argument checks of the model classes (:func:`_freeze_prior`; counts in :mod:`.sizes`) live here
too, next to the data checks.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .hmm_kernels import as_offsets

__all__ = ["Alphabet", "HMMData", "SEED_ROLLS", "check_data"]

#: the seed's rolls (seed 001, "1 6 3 5 2 7 3 5 2 4")
SEED_ROLLS = (1, 6, 3, 5, 2, 7, 3, 5, 2, 4)


@dataclass(frozen=True)
class HMMData:
    """Validated sequences, concatenated.

    Attributes
    ----------
    symbols : int64 ndarray of shape (T,)
        Symbols 0..n_symbols-1 of all sequences, one after the other (read-only).
    offsets : int64 ndarray of shape (n_sequences + 1,)
        Sequence ``s`` is ``symbols[offsets[s]:offsets[s + 1]]``.
    single : bool
        True when the data were given as one sequence (model-level methods then return one
        array instead of a list).
    first_label : int
        How the user writes symbol 0 (0 for ``CategoricalHMM``, face 1 for ``DiceHMM``).
    """

    symbols: np.ndarray
    offsets: np.ndarray
    single: bool
    first_label: int = 0

    @classmethod
    def _validated(cls, symbols, offsets, single, first_label, present_symbols) -> "HMMData":
        data = cls(symbols, offsets, single, first_label)
        # an attribute, not a field: it is derived from ``symbols``, and a field would enter
        # equality and the content hash of reference.cache_key (changing every cached key)
        object.__setattr__(data, "_present_symbols", present_symbols)
        return data

    @property
    def present_symbols(self) -> np.ndarray | None:
        """The distinct symbols that occur, int64 of shape (n_present,), ascending; recorded by
        :func:`check_data`. None for an ``HMMData`` built by hand (not validated yet)."""
        return self.__dict__.get("_present_symbols")

    @property
    def n_sequences(self) -> int:
        return self.offsets.size - 1

    @property
    def n_steps(self) -> int:
        """Total number of time steps T over all sequences."""
        return self.symbols.size

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def labels(self) -> np.ndarray:
        """The symbols as the user writes them (faces 1..8 for dice)."""
        return self.symbols + self.first_label

    def split(self, array: np.ndarray):
        """Split an array over concatenated time steps into sequences (or return it for one)."""
        if self.single:
            return array
        return [array[start:stop] for start, stop in zip(self.offsets[:-1], self.offsets[1:])]


@dataclass(frozen=True, eq=False)
class Alphabet:
    """The symbols a model accepts: what validating data needs to know about the model.

    Attributes
    ----------
    n_symbols : int
        Symbols are 0..n_symbols-1 internally.
    first_label : int
        How the user writes symbol 0.
    description : str
        The accepted symbols in words, for error messages ("integers 0..5").
    emittable : bool ndarray of shape (n_symbols,) or None
        Which symbols some state can emit (the columns of the emission mask); None: all.
    model_name : str
        The model's class name, for error messages.
    """

    n_symbols: int
    first_label: int
    description: str
    emittable: np.ndarray | None
    model_name: str


def _is_scalar(value) -> bool:
    return isinstance(value, numbers.Number | np.generic) and not isinstance(value, bool | np.bool_)


def _read_text(text: str):
    tokens = text.replace(",", " ").split()
    if not tokens:
        raise ValueError("data given as text must hold whitespace- or comma-separated integers, got an empty string")
    try:
        return [int(token) for token in tokens]
    except ValueError:
        raise ValueError(f"data given as text must hold whitespace- or comma-separated integers, got {text!r}") from None


def _check_sequence(sequence, index: int, alphabet: Alphabet) -> np.ndarray:
    """One sequence as int64 symbols 0..n_symbols-1, shape (T_s,), or a TypeError/ValueError
    naming the sequence."""
    where = f"sequence {index}"
    described = alphabet.description
    if isinstance(sequence, str):
        sequence = _read_text(sequence)
    try:
        array = np.asarray(sequence)
    except (TypeError, ValueError) as error:
        raise TypeError(f"data: could not read {where} as an array of symbols: {error}") from None
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"data: {where} must hold {described}, got an array of dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"data: {where} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"data: {where} is empty; every sequence needs at least one symbol")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"data: {where} contains NaN or infinite values; symbols must be {described}")
        fractional = array != np.round(array)
        if np.any(fractional):
            raise ValueError(
                f"data: {where} contains non-integer values {np.unique(array[fractional])[:5].tolist()}; "
                f"symbols must be {described}"
            )
    labels = array.astype(np.int64)
    low, high = alphabet.first_label, alphabet.first_label + alphabet.n_symbols - 1
    outside = (labels < low) | (labels > high)
    if np.any(outside):
        raise ValueError(
            f"data: {where} contains {np.unique(labels[outside])[:5].tolist()} (first at position "
            f"{int(np.argmax(outside))}); symbols must be {described}"
        )
    return labels - alphabet.first_label


def _as_sequences(data) -> tuple[list, bool]:
    """The raw sequences in ``data`` and whether it was one sequence (not yet validated)."""
    if isinstance(data, str):
        return [data], True
    if isinstance(data, np.ndarray):
        if data.ndim == 2:
            return list(data), False
        return [data], True
    if isinstance(data, list | tuple):
        if len(data) == 0:
            raise ValueError("data must contain at least one sequence, got an empty list")
        scalar = [_is_scalar(item) for item in data]
        if all(scalar):
            return [data], True
        if any(scalar):
            raise TypeError(
                "data must be one sequence of symbols or a list of sequences, got a list mixing "
                "numbers and sequences"
            )
        bad = [type(item).__name__ for item in data if not isinstance(item, list | tuple | np.ndarray | str)]
        if bad:
            raise TypeError(
                f"data given as a list must hold sequences (lists, tuples, arrays or strings), got {bad[0]}"
            )
        return list(data), False
    raise TypeError(
        "data must be a sequence of symbols, a list of sequences or a string of integers, "
        f"got {type(data).__name__}"
    )


def _hand_built_sequences(data: HMMData) -> list[np.ndarray]:
    """The sequences (as written) of an ``HMMData`` built by hand, whose offsets are unchecked."""
    symbols = np.asarray(data.symbols)
    offsets = np.asarray(data.offsets)
    if (
        not np.issubdtype(symbols.dtype, np.number)
        or symbols.ndim != 1
        or offsets.ndim != 1
        or offsets.size < 2
        or not np.issubdtype(offsets.dtype, np.integer)
        or offsets[0] != 0
        or offsets[-1] != symbols.size
        or np.any(np.diff(offsets) < 0)
    ):
        raise ValueError(
            "data: an HMMData needs 1-D numeric symbols and integer offsets rising from 0 to len(symbols); "
            "pass the raw sequences instead"
        )
    labels = symbols + data.first_label
    return [labels[start:stop] for start, stop in zip(offsets[:-1], offsets[1:])]


def _check_symbols_allowed(data: HMMData, alphabet: Alphabet) -> None:
    """Check the symbols recorded on validated ``data`` against ``alphabet``, in O(n_symbols)."""
    present = data.present_symbols
    name = alphabet.model_name
    if data.first_label != alphabet.first_label:
        raise ValueError(
            f"data were validated for another model, whose symbols start at {data.first_label}, but {name} "
            f"takes {alphabet.description}; pass the raw sequences to {name}"
        )
    if present.size and present[-1] >= alphabet.n_symbols:
        raise ValueError(
            f"data were validated for another model and contain the symbol {int(present[-1]) + data.first_label}, "
            f"but {name} takes {alphabet.description}"
        )
    if alphabet.emittable is not None and not np.all(alphabet.emittable[present]):
        # the error path may scan: name the first offending symbol in time
        never = ~alphabet.emittable
        symbol = int(data.symbols[np.argmax(never[data.symbols])]) + alphabet.first_label
        raise ValueError(f"data contain the symbol {symbol}, which no state can emit (emission_mask)")


def check_data(data, alphabet: Alphabet) -> HMMData:
    """Validate one sequence or a list of sequences for a model with symbols ``alphabet``.

    Parameters
    ----------
    data : array-like of shape (T,), a list of array-likes of lengths (T_s,), a 2-D array
        (one sequence per row), a string of whitespace-separated integers, or HMMData.
    alphabet : Alphabet
        The symbols the model accepts.

    Returns
    -------
    HMMData
        ``data`` itself when it is an ``HMMData`` validated before (by any model) whose symbols
        this alphabet accepts: that check is O(n_symbols), with no scan of the sequences. An
        ``HMMData`` built by hand is validated like raw sequences.

    Raises
    ------
    TypeError, ValueError
        For unreadable data, symbols outside the alphabet, symbols no state can emit, or an
        ``HMMData`` validated for a model with other symbols.
    """
    if isinstance(data, HMMData):
        if data.present_symbols is not None:
            _check_symbols_allowed(data, alphabet)
            return data
        if data.first_label != alphabet.first_label:
            raise ValueError(
                f"data were validated for another model; pass the raw sequences to {alphabet.model_name}"
            )
        sequences, single = _hand_built_sequences(data), data.single
    else:
        sequences, single = _as_sequences(data)
    if len(sequences) == 0:
        raise ValueError("data must contain at least one sequence")
    checked = [_check_sequence(sequence, index, alphabet) for index, sequence in enumerate(sequences)]
    symbols = np.concatenate(checked)
    symbols.setflags(write=False)
    offsets = as_offsets([len(sequence) for sequence in checked])
    offsets.setflags(write=False)
    present = np.flatnonzero(np.bincount(symbols, minlength=alphabet.n_symbols))
    present.setflags(write=False)
    result = HMMData._validated(symbols, offsets, single, alphabet.first_label, present)
    _check_symbols_allowed(result, alphabet)
    return result


# ------------------------------------------------------------------------------------------
# arguments of the model classes
# ------------------------------------------------------------------------------------------
def _freeze_prior(value):
    """Scalars stay floats, arrays become nested tuples (hashable, readable in repr)."""
    if _is_scalar(value):
        return float(value)
    if isinstance(value, np.ndarray):
        return tuple(map(_freeze_prior, value)) if value.ndim else float(value)
    if isinstance(value, list | tuple):
        return tuple(_freeze_prior(item) for item in value)
    return value  # validated (and rejected) by _prior_arrays
