"""Sequence data, read and validated once: one container for every emission family.

A hidden Markov model's data are one sequence or many (ragged lengths allowed), each step an
observation of per-step shape () (a symbol, a count) or (D,) (a real vector). :func:`read_sequences`
turns any accepted form into a :class:`Sequences` (the sequences concatenated, with offsets), with
the help of a *reader* that knows one family's observations: :class:`Alphabet` here for symbols and
counts, ``latentzoo.models.gaussian.data.RealVectors`` for real vectors. The container lives in the
core so that the component families (which validate data) and the HMM (which runs on it) both
build on it without importing each other.

Missing steps. A symbol that was not seen is written as NaN (float arrays, pandas Series with
missing values), ``None`` or ``pandas.NA`` (lists, nullable Series), a masked entry of a
``numpy.ma.MaskedArray``, or ``NA``, ``NaN`` or ``?`` in text, and stored as :data:`MISSING` (-1).
A missing real vector is a row of NaN (or a masked row). Either way the hidden chain still runs
through that step; only its emission factor is dropped.

Validation scans the data once; what it found (the symbols that occur, the missing steps) is kept
on the container, so that checking it again for the same or another model costs O(n_symbols) at
most, not O(T): the back-ends call ``model.check_data`` in every hook.
"""

from __future__ import annotations

import numbers
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

__all__ = ["Alphabet", "HMMData", "MISSING", "MISSING_TOKENS", "SequenceReader", "Sequences", "as_offsets",
           "read_sequences"]

#: the symbol (and the label in ``observed_data``) of a missing step: no symbol or face is negative
MISSING = -1

#: text tokens that mean a missing step (compared in lower case)
MISSING_TOKENS = frozenset({"na", "nan", "?"})


def as_offsets(lengths) -> np.ndarray:
    """Offsets (n_seq + 1,) of concatenated sequences with the given lengths."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    return offsets


@dataclass(frozen=True, eq=False)
class Sequences:
    """Validated sequences, concatenated.

    Attributes
    ----------
    x : ndarray of shape (T,) or (T, D), read-only
        All sequences one after the other. Symbols or counts: int64 0..n_symbols-1, with
        :data:`MISSING` (-1) where a step is missing. Real vectors: float64, a row of NaN where
        a step is missing.
    offsets : int64 ndarray of shape (n_sequences + 1,)
        Sequence ``s`` is ``x[offsets[s]:offsets[s + 1]]``.
    single : bool
        True when the data were given as one sequence (model-level methods then return one
        array instead of a list).
    first_label : int
        How the user writes symbol 0 (0 for ``CategoricalHMM``, face 1 for ``DiceHMM``; 0 for
        real vectors).
    feature_names : tuple of str or None
        The columns of a DataFrame, when real vectors came as one.

    Notes
    -----
    Instances compare by identity. Build them with :func:`read_sequences` (through a model's
    ``check_data``); one built by hand is validated like raw sequences when a model first sees it.
    """

    x: np.ndarray
    offsets: np.ndarray
    single: bool
    first_label: int = 0
    feature_names: tuple[str, ...] | None = None

    @property
    def validated(self) -> bool:
        return self.__dict__.get("_validated", False)

    @property
    def symbols(self) -> np.ndarray:
        """``x`` under the name the symbol families read it by, int64 of shape (T,)."""
        return self.x

    @cached_property
    def missing(self) -> np.ndarray:
        """Which steps are missing, bool of shape (T,) (recorded by the validation)."""
        x = np.asarray(self.x)
        if x.dtype.kind == "f":
            return np.isnan(x if x.ndim == 1 else x[:, 0])
        return x == MISSING

    @property
    def observed(self) -> np.ndarray:
        """Which steps are observed, bool of shape (T,)."""
        return ~self.missing

    @cached_property
    def n_missing(self) -> int:
        return int(np.count_nonzero(self.missing))

    @property
    def all_observed(self) -> bool:
        return self.n_missing == 0

    @cached_property
    def x_observed(self) -> np.ndarray:
        """The observed steps, (n_observed,) or (n_observed, D), C-contiguous and read-only."""
        rows = self.x if self.all_observed else np.ascontiguousarray(self.x[self.observed])
        rows.setflags(write=False)
        return rows

    @property
    def present_symbols(self) -> np.ndarray | None:
        """The distinct symbols that occur, int64 of shape (n_present,), ascending; recorded by
        the validation of symbols (None otherwise)."""
        return self.__dict__.get("_present_symbols")

    def coded(self, n_symbols: int) -> np.ndarray:
        """The symbols for kernels whose emission matrices carry one padding column of ones:
        missing steps become ``n_symbols`` (that column), int64 of shape (T,).

        Without missing steps this is ``x`` itself (no copy, and the kernels see no padding);
        otherwise the coded array is made once per ``n_symbols`` and kept, so that an EM or Gibbs
        iteration does not recode the sequences.
        """
        if self.n_missing == 0:
            return self.x
        cache = self.__dict__.setdefault("_coded", {})
        if n_symbols not in cache:
            coded = np.where(self.x == MISSING, n_symbols, self.x)
            coded.setflags(write=False)
            cache[n_symbols] = coded
        return cache[n_symbols]

    @property
    def labels(self) -> np.ndarray:
        """The symbols as the user writes them (faces 1..8 for dice), :data:`MISSING` (-1) where a
        step is missing; int64 of shape (T,)."""
        labels = self.x + self.first_label
        if self.n_missing:
            labels[self.missing] = MISSING
        return labels

    @property
    def n_sequences(self) -> int:
        return self.offsets.size - 1

    @property
    def n_steps(self) -> int:
        """Total number of time steps T over all sequences (missing ones included)."""
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        """D for real vectors (1 for symbols)."""
        return self.x.shape[1] if self.x.ndim == 2 else 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def split(self, array: np.ndarray):
        """Split an array over concatenated time steps into sequences (or return it for one)."""
        if self.single:
            return array
        return [array[start:stop] for start, stop in zip(self.offsets[:-1], self.offsets[1:])]

    def __repr__(self) -> str:
        shape = f", D={self.n_features}" if self.x.ndim == 2 else ""
        return (f"Sequences(T={self.n_steps}{shape}, n_sequences={self.n_sequences}, "
                f"missing={self.n_missing})")


#: the name the symbol HMMs' users know the container by (``from latentzoo.models import HMMData``)
HMMData = Sequences


class SequenceReader(Protocol):
    """What :func:`read_sequences` needs to know about one family's observations."""

    #: 0 for one symbol or count per step, 1 for a vector per step
    event_ndim: int
    #: how the user writes symbol 0 (0 for real vectors)
    first_label: int
    #: what the values are called in error messages ("symbols", "counts", "observations")
    noun: str

    def read(self, sequence, where: str) -> np.ndarray:
        """One raw sequence as int64 symbols (T_s,) or float64 rows (T_s, D), missing steps
        marked; a TypeError/ValueError naming ``where`` ("sequence 3")."""

    def accept(self, data: Sequences) -> None:
        """Check validated ``data`` (possibly from another model) cheaply; raise if this reader
        would not have produced it."""


# ------------------------------------------------------------------------------------------
# the driver: one sequence or many, whatever the family
# ------------------------------------------------------------------------------------------
def read_sequences(data, reader: SequenceReader) -> Sequences:
    """Validate one sequence or a list of sequences with ``reader``.

    Parameters
    ----------
    data : one sequence, a list of sequences, an array with one sequence per leading index, text
        (symbols only), or Sequences
        What each family accepts is described by its ``check_sequences``.
    reader : SequenceReader
        The family's observations (:class:`Alphabet`, or ``RealVectors``).

    Returns
    -------
    Sequences
        ``data`` itself when it is a container validated before (by any model) that ``reader``
        accepts: no scan of the sequences. One built by hand is validated like raw sequences.

    Raises
    ------
    TypeError, ValueError
        Naming the sequence and, where it helps, the step.
    """
    names = None
    if isinstance(data, Sequences):
        if data.validated:
            reader.accept(data)
            return data
        sequences, single, names = _hand_built_sequences(data, reader), data.single, data.feature_names
    else:
        sequences, single = _as_sequences(data, reader)
        if reader.event_ndim == 1 and _is_frame(sequences[0]):
            names = tuple(str(column) for column in sequences[0].columns)
    checked = [reader.read(sequence, f"sequence {index}") for index, sequence in enumerate(sequences)]
    x = np.concatenate(checked)
    x.setflags(write=False)
    offsets = as_offsets([len(sequence) for sequence in checked])
    offsets.setflags(write=False)
    result = Sequences(x, offsets, single, reader.first_label, names)
    missing = result.missing  # computed once here and kept: later checks need not scan
    missing.setflags(write=False)
    if missing.all():
        raise ValueError(
            f"data: every observation is missing (every one of the {x.shape[0]} steps is missing); there are no "
            f"observed {reader.noun} to fit"
        )
    object.__setattr__(result, "_validated", True)
    if reader.event_ndim == 0:
        observed = result.x_observed
        if observed.max() <= 4 * observed.size + 1024:
            present = np.flatnonzero(np.bincount(observed))
        else:  # large counts (Poisson data): a bincount would need one entry per value up to the largest
            present = np.unique(observed)
        present.setflags(write=False)
        object.__setattr__(result, "_present_symbols", present)
    reader.accept(result)
    return result


def _pandas_types(*names) -> tuple[type, ...]:
    """pandas classes by name, or () when pandas was never imported (then no pandas object can
    reach us, and importing pandas here would cost ~0.3 s for nothing)."""
    pandas = sys.modules.get("pandas")
    return tuple(getattr(pandas, name) for name in names) if pandas is not None else ()


def _is_frame(value) -> bool:
    # pandas (or look-alike) data frames without importing pandas
    return hasattr(value, "to_numpy") and hasattr(value, "columns")


def _is_series(value) -> bool:
    return isinstance(value, _pandas_types("Series", "Index")) or (
        hasattr(value, "to_numpy") and hasattr(value, "index") and not hasattr(value, "columns"))


def is_missing_marker(value) -> bool:
    """None, pandas' ``NA`` or a float NaN: what users write for a missing step."""
    if value is None or isinstance(value, float | np.floating) and np.isnan(value):
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and value is pandas.NA


def _is_scalar(value) -> bool:
    """A number (not a bool), a 0-d numeric array or a missing marker: one time step."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if is_missing_marker(value):
        return True
    return isinstance(value, numbers.Number | np.generic) and not isinstance(value, bool | np.bool_)


def _scalar_items(items) -> list[bool]:
    """``_is_scalar`` of every item, decided once per type (and per item for arrays, whose
    dimension varies): a list of 1e6 rolls is classified in milliseconds."""
    verdict = {}
    for item in items:
        kind = type(item)
        if kind not in verdict and kind is not np.ndarray:
            verdict[kind] = _is_scalar(item)
    return [verdict[type(item)] if type(item) is not np.ndarray else item.ndim == 0 for item in items]


def _as_sequences(data, reader: SequenceReader) -> tuple[list, bool]:
    """The raw sequences in ``data`` and whether it was one sequence (not yet validated)."""
    vectors = reader.event_ndim == 1
    if isinstance(data, str):
        if vectors:
            raise TypeError("data must be a (T, D) array, a pandas DataFrame, or a list of them, got str")
        lines = text_lines(data)
        return lines, len(lines) == 1
    if _is_frame(data):
        if not vectors:
            raise TypeError(
                f"data must be a sequence of {reader.noun} or a list of sequences, got a pandas DataFrame; pass one "
                "column (df['rolls']) or a list of columns ([df[name] for name in df])"
            )
        return [data], True
    if _is_series(data):
        return [data], True
    if isinstance(data, np.ndarray):
        if data.ndim == 0:
            raise ValueError(f"data must be a sequence of {reader.noun}, got a 0-d array ({data!r})")
        return (list(data), False) if data.ndim == reader.event_ndim + 2 else ([data], True)
    if not isinstance(data, list | tuple):
        raise TypeError(
            f"data must be one sequence of {reader.noun} or a list of sequences"
            f"{' (or a string of integers)' if not vectors else ''}, got {type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError("data must contain at least one sequence, got an empty list")
    scalar = _scalar_items(data)
    if all(scalar):
        return [data], True
    if any(scalar):
        text = [position for position, item in enumerate(data) if isinstance(item, str | bytes)]
        if text:
            # text among numbers is a value, not a sequence: name it where it stands
            position = text[0]
            raise TypeError(
                "data given as one sequence must hold numbers or missing markers (None, NaN), "
                f"got {type(data[position]).__name__} {data[position]!r} at position {position}"
            )
        raise TypeError(f"data must be one sequence of {reader.noun} or a list of sequences, got a list mixing "
                        "numbers and sequences")
    if vectors:
        # a list of arrays, pandas objects or nested lists of rows is many sequences; a list of
        # flat lists is the rows of one (T, D) sequence
        many = all(isinstance(item, np.ndarray) or _is_frame(item) or _is_series(item) or np.ndim(item) == 2
                   for item in data)
        return (list(data), False) if many else ([data], True)
    sequence_types = (list, tuple, np.ndarray, str, *_pandas_types("Series", "Index"))
    bad = [type(item).__name__ for item in data if not isinstance(item, sequence_types)]
    if bad:
        raise TypeError(
            f"data given as a list must hold sequences (lists, tuples, arrays, pandas Series or "
            f"strings), got {bad[0]}"
        )
    return list(data), False


def _hand_built_sequences(data: Sequences, reader: SequenceReader) -> list[np.ndarray]:
    """The sequences (as written) of a container built by hand, whose offsets are unchecked."""
    x = np.asarray(data.x)
    offsets = np.asarray(data.offsets)
    if (
        not np.issubdtype(x.dtype, np.number)
        or x.ndim != reader.event_ndim + 1
        or offsets.ndim != 1
        or offsets.size < 2
        or not np.issubdtype(offsets.dtype, np.integer)
        or offsets[0] != 0
        or offsets[-1] != x.shape[0]
        or np.any(np.diff(offsets) < 0)
    ):
        raise ValueError(
            f"data: a Sequences container needs {reader.event_ndim + 1}-D numeric values and integer offsets "
            "rising from 0 to len(x); pass the raw sequences instead"
        )
    if data.first_label != reader.first_label:
        raise ValueError("data were validated for another model; pass the raw sequences")
    if reader.event_ndim == 0:
        # MISSING marks a missing step here as in a validated container
        x = np.ma.masked_array(x + data.first_label, mask=x == MISSING)
    return [x[start:stop] for start, stop in zip(offsets[:-1], offsets[1:])]


# ------------------------------------------------------------------------------------------
# symbols and counts
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Alphabet:
    """The symbols a model accepts: the reader of symbol and count sequences.

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
    noun : str
        What the values are called in error messages ("symbols"; "counts" for Poisson data,
        whose alphabet is 0..2^53, every integer a float64 holds exactly).

    Accepted sequences: array-likes of shape (T,) (lists, tuples, NumPy arrays, masked arrays,
    pandas Series), a 2-D array (one sequence per row), or text: integers separated by any
    whitespace or commas, one sequence per non-blank line (a string inside a list is one
    sequence, whatever its lines). A DataFrame is refused (pass its columns).
    """

    n_symbols: int
    first_label: int
    description: str
    emittable: np.ndarray | None
    model_name: str
    noun: str = "symbols"
    event_ndim = 0

    def read(self, sequence, where: str) -> np.ndarray:
        """One sequence as int64 symbols 0..n_symbols-1 (``MISSING`` where a step is missing),
        shape (T_s,), or a TypeError/ValueError naming the sequence."""
        described = self.description
        array, missing = _raw_values(sequence, where)
        if array.ndim != 1:
            raise ValueError(f"data: {where} must be 1-D, got shape {array.shape}")
        if array.size == 0:
            raise ValueError(f"data: {where} is empty; every sequence needs at least one symbol")
        kind = array.dtype.kind
        given = array  # what error messages show
        if kind == "O":
            array, given = _object_values(array, where, described)
            kind = "f"
        elif kind not in "iuf":
            raise TypeError(f"data: {where} must hold {described}, got an array of dtype {array.dtype}")
        if kind == "f":
            nan = np.isnan(array)
            missing = nan if missing is None else missing | nan
            observed = array[~missing]
            if not np.all(np.isfinite(observed)):
                raise ValueError(f"data: {where} contains infinite values; {self.noun} must be {described}")
            fractional = observed != np.round(observed)
            if np.any(fractional):
                position = int(np.flatnonzero(~missing)[np.argmax(fractional)])
                raise ValueError(
                    f"data: {where} contains non-integer values {_format_symbols(np.unique(given[~missing][fractional])[:5])} "
                    f"(first at position {position}); {self.noun} must be {described}"
                )
        if missing is not None and not missing.any():
            missing = None
        low, high = self.first_label, self.first_label + self.n_symbols - 1
        # compared in the values' own type: a cast to int64 first would wrap huge values around
        outside = (array < low) | (array > high)
        if missing is not None:
            outside &= ~missing
        if np.any(outside):
            raise ValueError(
                f"data: {where} contains {_format_symbols(np.unique(given[outside])[:5])} (first at position "
                f"{int(np.argmax(outside))}), outside the {self.noun} {described}"
            )
        if missing is None:
            return array.astype(np.int64) - self.first_label
        symbols = np.full(array.size, MISSING, dtype=np.int64)
        symbols[~missing] = array[~missing].astype(np.int64) - self.first_label
        return symbols

    def accept(self, data: Sequences) -> None:
        """Check the symbols recorded on validated ``data`` against this alphabet, in O(n_symbols)."""
        present = data.present_symbols
        name = self.model_name
        if present is None:
            raise ValueError(f"data were validated as real vectors, but {name} takes {self.description}; "
                             f"pass the raw sequences to {name}")
        if data.first_label != self.first_label:
            raise ValueError(
                f"data were validated for another model, whose symbols start at {data.first_label}, but {name} "
                f"takes {self.description}; pass the raw sequences to {name}"
            )
        if present.size and present[-1] >= self.n_symbols:
            raise ValueError(
                f"data were validated for another model and contain the symbol {int(present[-1]) + data.first_label}, "
                f"but {name} takes {self.description}"
            )
        if self.emittable is not None and not np.all(self.emittable[present]):
            # the error path may scan: name the first offending symbol in time
            never = np.append(~self.emittable, False)  # the last entry: a missing step
            symbol = int(data.x[np.argmax(never[data.x])]) + self.first_label
            raise ValueError(f"data contain the symbol {symbol}, which no state can emit (emission_mask)")


def _read_token(token: str, text: str):
    if token.lower() in MISSING_TOKENS:
        return None
    try:
        return int(token)
    except ValueError:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ValueError(
            "data given as text must hold integers separated by whitespace or commas (NA, NaN or ? for a "
            f"missing step), got {token!r} in {shown!r}"
        ) from None


def text_lines(text: str) -> list[list]:
    """The non-blank lines of ``text``, each as a list of ints (None where a step is missing)."""
    lines = []
    for line in text.splitlines():
        tokens = line.replace(",", " ").split()
        if tokens:
            lines.append([_read_token(token, text) for token in tokens])
    if not lines:
        raise ValueError(
            "data given as text must hold integers separated by whitespace or commas, got an empty string"
        )
    return lines


def _format_symbols(values: np.ndarray) -> list:
    """Offending values as the user wrote them: integers exactly (however large), others as floats."""
    shown = []
    for value in values.tolist():
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        shown.append(value)
    return shown


def _raw_values(sequence, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """One sequence as a 1-D array (numeric, or object for exact Python integers and markers)
    and the mask of steps known to be missing (None: none marked so far)."""
    if isinstance(sequence, str):
        sequence = [value for line in text_lines(sequence) for value in line]
    if isinstance(sequence, np.ma.MaskedArray):
        return np.ma.getdata(sequence), np.ma.getmaskarray(sequence)
    if isinstance(sequence, _pandas_types("Series", "Index")):
        pandas = sys.modules["pandas"]
        missing = np.asarray(pandas.isna(sequence), dtype=bool)
        dtype = getattr(sequence.dtype, "numpy_dtype", None)
        if missing.any() and dtype is not None and dtype.kind in "iu":
            # nullable integers: keep them exact (to_numpy() would give floats with NaN)
            return sequence.to_numpy(dtype=dtype, na_value=0), missing
        return sequence.to_numpy(), missing
    try:
        array = np.asarray(sequence)
    except (TypeError, ValueError) as error:
        raise TypeError(f"data: could not read {where} as an array of symbols: {error}") from None
    if isinstance(sequence, list | tuple) and (
        array.dtype.kind == "O" or array.dtype.kind == "f" and any(_inexact_as_float(value) for value in sequence)
    ):
        # numbers mixed with None, or integers beyond int64 (which NumPy turns into objects, or
        # into rounded floats): read every value exactly, one by one
        array = np.empty(len(sequence), dtype=object)
        array[:] = list(sequence)
    return array, None


def _inexact_as_float(value) -> bool:
    """An integer that a float64 would round (NumPy reads [1, 2**63] as floats)."""
    return isinstance(value, int | np.integer) and not -(2**53) <= value <= 2**53


def _is_number_type(kind: type) -> bool:
    return issubclass(kind, numbers.Real) and not issubclass(kind, bool | np.bool_)


def _object_values(array: np.ndarray, where: str, described: str) -> tuple[np.ndarray, np.ndarray]:
    """An object array of Python numbers and missing markers as float64 (NaN where missing,
    integers beyond float range clipped to +-1e300, far outside any alphabet) for the checks,
    and the values unwrapped as given (exact Python integers), for error messages.

    The checks run per distinct type and vectorised, not per value: lists of 1e6 rolls
    are common, and a Python-level check of each value would take seconds.
    """
    if any(isinstance(value, np.ndarray) for value in array):
        unwrapped = np.empty(array.size, dtype=object)
        unwrapped[:] = [value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value for value in array]
        array = unwrapped
    pandas = sys.modules.get("pandas")
    na = pandas.NA if pandas is not None else None
    for kind in {type(value) for value in array}:
        if not (_is_number_type(kind) or kind is type(None) or (na is not None and kind is type(na))):
            position = next(p for p, value in enumerate(array) if type(value) is kind)
            value = array[position]
            raise TypeError(
                f"data: {where} must hold {described}, got {kind.__name__} {value!r} at position {position}"
            )
    # ``value != value`` is NaN's test; None and NA are caught first (NA != NA is NA)
    missing = np.fromiter((value is None or value is na or value != value for value in array), bool, array.size)
    filled = np.where(missing, 0, array)
    try:
        numbers_ = filled.astype(np.float64)
    except OverflowError:  # an int beyond 1e308
        numbers_ = np.array([float(max(min(value, 10**300), -(10**300))) for value in filled])
    numbers_[missing] = np.nan
    return numbers_, array
