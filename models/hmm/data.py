"""Data of the hidden Markov models: reading and validating sequences of symbols, once.

Users give one sequence or many, as arrays, lists, pandas Series, a 2-D array (one sequence per
row) or text ("1 6 3 5"); :func:`check_data` turns any of them into an :class:`HMMData` (the
sequences concatenated, with offsets) for the symbols a model accepts, described by an
:class:`Alphabet`.

Missing observations. A step whose symbol was not seen is written as NaN (float arrays, pandas
Series with missing values), ``None`` or ``pandas.NA`` (lists, nullable Series), a masked entry
of a ``numpy.ma.MaskedArray``, or ``NA``, ``NaN`` or ``?`` in text. It is stored as the symbol
:data:`MISSING` (-1). The hidden chain still runs through that step; only its emission factor
is dropped (the likelihood sums over every symbol it could have shown). The models implement this
by giving the kernels one extra emission column of ones, indexed by ``HMMData.coded``.

Validation scans the data once. The resulting ``HMMData`` records which symbols occur
(:attr:`HMMData.present_symbols`), so that checking it again for the same or another model costs
O(n_symbols), not O(T): the back-ends call ``model.check_data`` in every hook, and a Gibbs sweep
or an EM step must not re-scan a long sequence.

The argument checks of the model classes (:func:`freeze_prior`; counts in :mod:`.sizes`) live here
too, next to the data checks.
"""

from __future__ import annotations

import numbers
import sys
from dataclasses import dataclass

import numpy as np

from .kernels import as_offsets

__all__ = ["Alphabet", "HMMData", "MISSING", "MISSING_TOKENS", "SEED_ROLLS", "check_data"]

#: the symbol (and the label in ``observed_data``) of a missing step: no symbol or face is negative
MISSING = -1

#: text tokens that mean a missing step (compared in lower case)
MISSING_TOKENS = frozenset({"na", "nan", "?"})

#: the seed's rolls (seed 001, "1 6 3 5 2 7 3 5 2 4")
SEED_ROLLS = (1, 6, 3, 5, 2, 7, 3, 5, 2, 4)


@dataclass(frozen=True)
class HMMData:
    """Validated sequences, concatenated.

    Attributes
    ----------
    symbols : int64 ndarray of shape (T,)
        Symbols 0..n_symbols-1 of all sequences, one after the other, and :data:`MISSING` (-1)
        where a step is missing (read-only).
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
    def _validated(cls, symbols, offsets, single, first_label, present_symbols, n_missing) -> "HMMData":
        data = cls(symbols, offsets, single, first_label)
        # attributes, not fields: they are derived from ``symbols``, and a field would enter
        # equality and the content hash of reference.cache_key (changing every cached key)
        object.__setattr__(data, "_present_symbols", present_symbols)
        object.__setattr__(data, "_n_missing", n_missing)
        object.__setattr__(data, "_coded", {})
        return data

    @property
    def n_missing(self) -> int:
        """How many steps are missing (recorded by :func:`check_data`; counted for a hand-built one)."""
        if "_n_missing" in self.__dict__:
            return self.__dict__["_n_missing"]
        return int(np.count_nonzero(np.asarray(self.symbols) == MISSING))

    @property
    def missing(self) -> np.ndarray:
        """Which steps are missing, bool of shape (T,)."""
        return np.asarray(self.symbols) == MISSING

    @property
    def observed(self) -> np.ndarray:
        """Which steps are observed, bool of shape (T,)."""
        return ~self.missing

    @property
    def all_observed(self) -> bool:
        return self.n_missing == 0

    def coded(self, n_symbols: int) -> np.ndarray:
        """The symbols for kernels whose emission matrices carry one padding column of ones:
        missing steps become ``n_symbols`` (that column), int64 of shape (T,).

        Without missing steps this is ``symbols`` itself (no copy, and the kernels see no
        padding); otherwise the coded array is made once per ``n_symbols`` and kept, so that an
        EM or Gibbs iteration does not recode the sequences.
        """
        if self.n_missing == 0:
            return self.symbols
        cache = self.__dict__.setdefault("_coded", {})
        if n_symbols not in cache:
            coded = np.where(self.symbols == MISSING, n_symbols, self.symbols)
            coded.setflags(write=False)
            cache[n_symbols] = coded
        return cache[n_symbols]

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
        """The symbols as the user writes them (faces 1..8 for dice), :data:`MISSING` (-1) where a
        step is missing; int64 of shape (T,)."""
        labels = self.symbols + self.first_label
        if self.n_missing:
            labels[self.symbols == MISSING] = MISSING
        return labels

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
    noun : str
        What the values are called in error messages ("symbols"; "counts" for Poisson data,
        whose alphabet is 0..2^53, every integer a float64 holds exactly).
    """

    n_symbols: int
    first_label: int
    description: str
    emittable: np.ndarray | None
    model_name: str
    noun: str = "symbols"


def _pandas_types(*names) -> tuple[type, ...]:
    """pandas classes by name, or () when pandas was never imported (then no pandas object can
    reach us, and importing pandas here would cost ~0.3 s for nothing)."""
    pandas = sys.modules.get("pandas")
    return tuple(getattr(pandas, name) for name in names) if pandas is not None else ()


def _is_missing_marker(value) -> bool:
    """None, pandas' ``NA`` or a float NaN: what users write for a missing step."""
    if value is None or isinstance(value, float | np.floating) and np.isnan(value):
        return True
    pandas = sys.modules.get("pandas")
    return pandas is not None and value is pandas.NA


def _is_scalar(value) -> bool:
    """A number (not a bool), a 0-d numeric array or a missing marker: one time step."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if _is_missing_marker(value):
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


def _text_lines(text: str) -> list[list]:
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
        sequence = [value for line in _text_lines(sequence) for value in line]
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


def _check_sequence(sequence, index: int, alphabet: Alphabet) -> np.ndarray:
    """One sequence as int64 symbols 0..n_symbols-1 (``MISSING`` where a step is missing), shape
    (T_s,), or a TypeError/ValueError naming the sequence."""
    where = f"sequence {index}"
    described = alphabet.description
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
        observed = array if missing is None else array[~missing]
        if not np.all(np.isfinite(observed)):
            raise ValueError(f"data: {where} contains infinite values; {alphabet.noun} must be {described}")
        fractional = observed != np.round(observed)
        if np.any(fractional):
            shown = given if missing is None else given[~missing]
            position = int(np.flatnonzero(~missing)[np.argmax(fractional)]) if missing is not None else int(np.argmax(fractional))
            raise ValueError(
                f"data: {where} contains non-integer values {_format_symbols(np.unique(shown[fractional])[:5])} "
                f"(first at position {position}); {alphabet.noun} must be {described}"
            )
    if missing is not None and not missing.any():
        missing = None
    low, high = alphabet.first_label, alphabet.first_label + alphabet.n_symbols - 1
    # compared in the values' own type: a cast to int64 first would wrap huge values around
    outside = (array < low) | (array > high)
    if missing is not None:
        outside &= ~missing
    if np.any(outside):
        raise ValueError(
            f"data: {where} contains {_format_symbols(np.unique(given[outside])[:5])} (first at position "
            f"{int(np.argmax(outside))}), outside the {alphabet.noun} {described}"
        )
    if missing is None:
        return array.astype(np.int64) - alphabet.first_label
    symbols = np.full(array.size, MISSING, dtype=np.int64)
    symbols[~missing] = array[~missing].astype(np.int64) - alphabet.first_label
    return symbols


def _as_sequences(data) -> tuple[list, bool]:
    """The raw sequences in ``data`` and whether it was one sequence (not yet validated)."""
    if isinstance(data, str):
        lines = _text_lines(data)
        return lines, len(lines) == 1
    if isinstance(data, _pandas_types("DataFrame")):
        raise TypeError(
            "data must be a sequence of symbols or a list of sequences, got a pandas DataFrame; pass one "
            "column (df['rolls']) or a list of columns ([df[name] for name in df])"
        )
    if isinstance(data, _pandas_types("Series", "Index")):
        return [data], True
    if isinstance(data, np.ndarray):
        if data.ndim == 0:
            raise ValueError(f"data must be a sequence of symbols, got a 0-d array ({data!r})")
        if data.ndim == 2:
            return list(data), False
        return [data], True
    if isinstance(data, list | tuple):
        if len(data) == 0:
            raise ValueError("data must contain at least one sequence, got an empty list")
        scalar = _scalar_items(data)
        if all(scalar):
            return [data], True
        sequence_types = (list, tuple, np.ndarray, str, *_pandas_types("Series", "Index"))
        odd = [item for item, is_scalar in zip(data, scalar) if not is_scalar and not isinstance(item, sequence_types)]
        text = [position for position, item in enumerate(data) if isinstance(item, str | bytes)]
        if any(scalar) and text:
            # text among numbers is a value, not a sequence: name it where it stands
            position = text[0]
            raise TypeError(
                "data given as one sequence must hold numbers or missing markers (None, NaN), "
                f"got {type(data[position]).__name__} {data[position]!r} at position {position}"
            )
        if any(scalar) and odd:
            raise TypeError(
                "data given as one sequence must hold numbers or missing markers (None, NaN), "
                f"got {type(odd[0]).__name__} {odd[0]!r}"
            )
        if any(scalar):
            raise TypeError(
                "data must be one sequence of symbols or a list of sequences, got a list mixing "
                "numbers and sequences"
            )
        bad = [type(item).__name__ for item in data if not isinstance(item, sequence_types)]
        if bad:
            raise TypeError(
                f"data given as a list must hold sequences (lists, tuples, arrays, pandas Series or "
                f"strings), got {bad[0]}"
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
    # MISSING marks a missing step here as in a validated HMMData
    labels = np.ma.masked_array(symbols + data.first_label, mask=symbols == MISSING)
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
        never = np.append(~alphabet.emittable, False)  # the last entry: a missing step
        symbol = int(data.symbols[np.argmax(never[data.symbols])]) + alphabet.first_label
        raise ValueError(f"data contain the symbol {symbol}, which no state can emit (emission_mask)")


def check_data(data, alphabet: Alphabet) -> HMMData:
    """Validate one sequence or a list of sequences for a model with symbols ``alphabet``.

    Parameters
    ----------
    data : array-like of shape (T,), a list of array-likes of lengths (T_s,), a 2-D array
        (one sequence per row), text, or HMMData.
        Array-likes include lists, tuples, NumPy arrays (masked arrays: masked steps are
        missing) and pandas Series (a DataFrame is refused: pass its columns). Text holds
        integers separated by any whitespace (spaces, tabs, newlines) or commas; several
        non-blank lines are several sequences, one per line (a string inside a list is one
        sequence, whatever its lines). Missing steps: NaN, None, ``pandas.NA``, a mask, or the
        tokens ``NA``, ``NaN``, ``?`` in text; a sequence may be entirely missing, but not all
        of the data.
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
    observed = symbols[symbols != MISSING]
    if observed.size == 0:
        raise ValueError(
            f"data: every one of the {symbols.size} steps is missing; there are no observed {alphabet.noun} to fit"
        )
    if observed.max() <= 4 * observed.size + 1024:
        present = np.flatnonzero(np.bincount(observed))
    else:  # large counts (Poisson data): a bincount would need one entry per value up to the largest
        present = np.unique(observed)
    present.setflags(write=False)
    n_missing = symbols.size - observed.size
    result = HMMData._validated(symbols, offsets, single, alphabet.first_label, present, n_missing)
    _check_symbols_allowed(result, alphabet)
    return result


# ------------------------------------------------------------------------------------------
# arguments of the model classes
# ------------------------------------------------------------------------------------------
def freeze_prior(value):
    """Scalars (0-d arrays too) stay floats, arrays become nested tuples (hashable, readable in
    repr); pandas objects are read as arrays."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, _pandas_types("Series", "DataFrame")):
        value = value.to_numpy()
    if isinstance(value, np.ndarray):
        return tuple(map(freeze_prior, value)) if value.ndim else float(value)
    if isinstance(value, list | tuple):
        return tuple(freeze_prior(item) for item in value)
    return value  # validated (and rejected) by _prior_arrays
