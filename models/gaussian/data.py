"""Validated real observations of shape (n_observations, n_features), checked once.

:class:`GaussianData` is what :meth:`GaussianMixture.check_data
<latentzoo.models.mixture.gaussian.GaussianMixture.check_data>` and
:meth:`NIWGaussian.check_data <latentzoo.models.gaussian.niw.NIWGaussian.check_data>` return.
Building one is the whole validation (types, shape, and one pass over the values for NaN and
infinities); a model given a ``GaussianData`` only compares its shape with what the model needs,
in O(1). Back-ends validate once and hand the object to every hook, so an EM or VB iteration
never scans the data again.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numba import njit

from ..core.base import unmasked
from ..core.protocols import FEATURE_ROWS
from ..core.sequences import Sequences, read_sequences

__all__ = ["GaussianData", "GaussianChunk", "GaussianObservations", "RealVectors", "check_sequences"]


# The magnitudes latentzoo computes with. Sums of N squared deviations must neither overflow
# (1e100 squared leaves a factor 1e108 for N and D) nor underflow to zero (a spread of 1e-100
# squares to 1e-200, far above the smallest normal double, 2.2e-308).
LARGEST_VALUE = 1e100
SMALLEST_SPREAD = 1e-100
# Components may be this much narrower (in variance) than the data, for the round-off allowance.
ROUND_OFF_NARROWING = 1e4
# rows per BLAS product of the scatter matrix: a (chunk, D) temporary of a few MB at most
_MOMENT_CHUNK = 1 << 16


@njit(cache=True, nogil=True)
def _column_extremes(x):
    """Per-column minimum and maximum of ``x`` (N, D) and whether every value is finite, in one
    pass (NumPy's ``isfinite``, ``max(abs)`` and ``ptp`` take four, each slow along axis 0)."""
    n_rows, dim = x.shape
    low = np.full(dim, np.inf)
    high = np.full(dim, -np.inf)
    # v - v is 0 for a finite v and NaN for NaN or an infinity; the sum keeps any NaN
    check = np.zeros(dim)
    for i in range(n_rows):
        for j in range(dim):
            value = x[i, j]
            check[j] += value - value
            if value < low[j]:
                low[j] = value
            if value > high[j]:
                high[j] = value
    finite = True
    for j in range(dim):
        if check[j] != 0.0:
            finite = False
    return finite, low, high


def _require_finite(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one pass over the values: a ValueError if any is NaN or infinite; else the per-column
    minimum and maximum, each of shape (D,)."""
    finite, low, high = _column_extremes(x)
    if not finite:
        raise ValueError("data contain NaN or infinite values")
    return low, high


def require_computable_range(x: np.ndarray) -> None:
    """A ValueError naming ``data`` when its values are too large or vary too little to compute
    with in float64 (their squares would overflow or underflow): they must be rescaled."""
    _check_range(x.min(axis=0), x.max(axis=0))


def _check_range(low: np.ndarray, high: np.ndarray) -> None:
    """:func:`require_computable_range` from the per-column minimum and maximum."""
    largest = float(np.max(np.maximum(np.abs(low), np.abs(high))))
    if largest > LARGEST_VALUE:
        raise ValueError(
            f"data hold values up to {largest:.3g} in magnitude; latentzoo computes with |values| <= "
            f"{LARGEST_VALUE:g} (their squares and sums of squares must not overflow): rescale the data, "
            f"e.g. divide by 1e{int(np.log10(largest))}, and the fitted means and covariances by that factor "
            "and its square"
        )
    spread = high - low
    tiny = np.flatnonzero((spread > 0) & (spread < SMALLEST_SPREAD))
    if tiny.size:
        column = int(tiny[0])
        raise ValueError(
            f"data feature(s) {tiny.tolist()} vary by only {spread[column]:.3g} (feature {column}), too little to "
            f"compute with (squared deviations would underflow to 0); latentzoo needs a spread of at least "
            f"{SMALLEST_SPREAD:g}: rescale the data, e.g. multiply by 1e{-int(np.floor(np.log10(spread[column])))}"
        )


def mean_round_off(x: np.ndarray) -> float:
    """The log-likelihood drop that storing Gaussian means in float64 can cost, for observations
    ``x`` of shape (N, D) (see :meth:`GaussianObservations.objective_round_off`)."""
    # one compiled pass and BLAS products: NumPy's var(0) and abs(x).max(0) reduce along the
    # short axis, and took 5% of a GaussianHMM fit at T = 2e5
    _, low, high = _column_extremes(x)
    _, scatter = column_moments(x)
    return _round_off(x.shape[0], np.diagonal(scatter) / x.shape[0], np.maximum(np.abs(low), np.abs(high)))


def finite_in_range(x: np.ndarray) -> bool:
    """One compiled pass over ``x`` (N, D): False when a value is NaN or infinite; otherwise the
    range check of :func:`require_computable_range` (a ValueError naming ``data``), then True."""
    finite, low, high = _column_extremes(x)
    if finite:
        _check_range(low, high)
    return bool(finite)


def _round_off(n_rows: int, variance: np.ndarray, largest: np.ndarray) -> float:
    """:func:`mean_round_off` from the per-column variances and largest magnitudes (D,)."""
    if np.any(variance <= 0):
        return 0.0
    stored = (np.finfo(float).eps * largest) ** 2
    return float(ROUND_OFF_NARROWING * n_rows * np.sum(stored / variance))


def column_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean (D,) and scatter matrix ``sum_n (x_n - mean)(x_n - mean)^T`` (D, D) of finite
    ``x`` (N, D), by BLAS products over chunks of rows (no (N, D) temporary)."""
    n_rows, dim = x.shape
    # a BLAS product: x.mean(axis=0) reduces along the short axis, and is slow
    mean = x.T @ np.full(n_rows, 1.0 / n_rows)
    scatter = np.zeros((dim, dim))
    for start in range(0, n_rows, _MOMENT_CHUNK):
        centred = x[start : start + _MOMENT_CHUNK] - mean
        scatter += centred.T @ centred
    return mean, scatter


def real_objects(array: np.ndarray) -> np.ndarray:
    """An object array of Python numbers (integers beyond int64, Fractions) as float64; a TypeError
    naming ``data`` for anything else (text, None, bool)."""
    for value in array.flat:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise TypeError(f"data must be a 2-D array of real numbers, got {type(value).__name__} {value!r}")
    try:
        return array.astype(np.float64)
    except OverflowError:  # an integer beyond the float range (about 1.8e308)
        largest = max(array.flat, key=abs)
        raise ValueError(
            f"data hold the integer {largest}, beyond float64's range; rescale the data"
        ) from None


def _read_array(data) -> np.ndarray:
    """``data`` as a 2-D real array (not yet copied), or a TypeError/ValueError naming ``data``."""
    if isinstance(data, str | bytes) or data is None or isinstance(data, dict):
        raise TypeError(f"data must be a 2-D numeric array of shape (N, D), got {type(data).__name__}")
    if isinstance(data, np.ma.MaskedArray):
        data = unmasked(data, "data", "value(s)", "a Gaussian model (GaussianMixture, NIWGaussian, GaussianDiscriminantAnalysis) "
                        "cannot marginalise missing values: drop those rows (data[~np.ma.getmaskarray(data).any(axis=1)]) "
                        "or fill them (data.filled(...))")
    try:
        array = np.asarray(data)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"data must be a 2-D numeric array of shape (N, D), could not read it: {error}") from None
    if array.dtype == object and array.size:
        array = real_objects(array)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"data must be a 2-D array of real numbers, got dtype {array.dtype}")
    if array.ndim == 1 and _is_series(data):  # a pandas Series is one column
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        hint = " (use data.reshape(-1, 1) for one feature)" if array.ndim == 1 else ""
        raise ValueError(f"data must be 2-D of shape (N, D), got shape {array.shape}{hint}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"data must have at least one observation and one feature, got shape {array.shape}")
    return array


def _is_series(data) -> bool:
    # duck-typed: importing pandas only to test for it would slow every import down
    return type(data).__name__ == "Series" and hasattr(data, "name") and hasattr(data, "index")


def _read_feature_names(names, data, n_features: int) -> tuple[str, ...] | None:
    """Explicit ``names``, else the columns of a pandas DataFrame, else None."""
    if names is None:
        columns = getattr(data, "columns", None)
        if columns is None:
            if _is_series(data) and data.name is not None:
                return (str(data.name),)
            return None
        names = list(columns)
    if isinstance(names, str | bytes):
        raise TypeError(f"feature_names must be a sequence of {n_features} names, got {names!r}")
    names = tuple(str(name) for name in names)
    if len(names) != n_features:
        raise ValueError(f"feature_names must name the D = {n_features} features, got {len(names)} names")
    return names


@dataclass(frozen=True, eq=False)
class GaussianData:
    """Real observations, validated: N rows of D finite numbers.

    Parameters
    ----------
    x : array-like of shape (N, D)
        Finite real numbers (a NumPy array, nested lists, a pandas DataFrame, a pandas Series as
        one column, a masked array with nothing masked, or a GaussianData), at least one row and
        one column; Python integers beyond int64 are read as floats. Magnitudes up to 1e100, and
        each varying feature spread over at least 1e-100 (module constants ``LARGEST_VALUE`` and
        ``SMALLEST_SPREAD``: beyond them squared deviations overflow or underflow). Copied into a
        read-only, C-ordered float64 array.
    feature_names : sequence of str, optional
        One name per column; by default the columns of a pandas DataFrame (the name of a named
        Series), else None. They become the ``feature`` coordinates of fitted results.

    Attributes
    ----------
    x : ndarray of shape (N, D), float64, C-ordered, read-only
    feature_names : tuple of str or None

    Raises
    ------
    TypeError
        For text, None, a dict, ragged lists or non-numeric values.
    ValueError
        For data that are not 2-D, empty, contain NaN or infinite values, have masked values, or
        lie outside the computable range (the message says how to rescale).

    Notes
    -----
    Instances compare by identity (equal values are not equal objects) and work where NumPy
    expects an array (``np.asarray(data)`` is ``data.x``, without a copy).

    Examples
    --------
    >>> import numpy as np
    >>> data = GaussianData(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    >>> data.shape
    (3, 2)
    """

    x: np.ndarray
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self):
        source = self.x
        if isinstance(source, GaussianData):  # already validated: share its read-only array
            array = source.x
            for summary in ("_extremes", "moments"):
                if summary in source.__dict__:
                    object.__setattr__(self, summary, source.__dict__[summary])
            names = source.feature_names if self.feature_names is None else self.feature_names
            names = _read_feature_names(names, None, array.shape[1])
        else:
            # C order whatever the source (a DataFrame is often Fortran-ordered): the kernels run
            # on rows, and a frame and its plain array then give the same numbers to the last bit
            array = np.array(_read_array(source), dtype=np.float64, order="C")
            low, high = _require_finite(array)
            _check_range(low, high)
            array.setflags(write=False)
            object.__setattr__(self, "_extremes", (low, high))
            names = _read_feature_names(self.feature_names, source, array.shape[1])
        object.__setattr__(self, "x", array)
        object.__setattr__(self, "feature_names", names)

    @property
    def shape(self) -> tuple[int, int]:
        """(N, D)."""
        return self.x.shape

    @property
    def n_observations(self) -> int:
        """N, the number of rows."""
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        """D, the number of columns."""
        return self.x.shape[1]

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-column minimum and maximum, each of shape (D,) (found by the validation pass)."""
        if "_extremes" not in self.__dict__:  # shared from another GaussianData
            object.__setattr__(self, "_extremes", (self.x.min(axis=0), self.x.max(axis=0)))
        return self.__dict__["_extremes"]

    @cached_property
    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Column mean (D,) and scatter matrix ``sum_n (x_n - mean)(x_n - mean)^T`` (D, D),
        computed on first use and kept (the data prior and the EM tolerance both need them)."""
        return column_moments(self.x)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        # NumPy's protocol: copy=None copies only for another dtype, True always, False never
        return np.array(self.x, dtype=dtype, copy=copy)

    def __repr__(self) -> str:
        names = f", feature_names={self.feature_names!r}" if self.feature_names is not None else ""
        return f"GaussianData(N={self.x.shape[0]}, D={self.x.shape[1]}{names})"


class GaussianChunk(GaussianData):
    """One chunk of validated observations of a chunked fit (``latentzoo.inference.chunked``).

    Its values are validated like a :class:`GaussianData`'s; conditions on the whole data set
    (at least K rows for K components) were checked on all the chunks together, so a model
    accepts a chunk of fewer rows.
    """


class GaussianObservations:
    """The data hooks of a model of :class:`GaussianData` (one ``x`` of dims (observation,
    feature)); the model provides ``check_data``. Shared by
    :class:`~latentzoo.models.gaussian.niw.NIWGaussian` and
    :class:`~latentzoo.models.mixture.gaussian.GaussianMixture`."""

    #: a data file's columns are the features (see ``protocols.DataFileFormat``)
    data_file_format = FEATURE_ROWS

    def n_observations(self, data) -> int:
        return self.check_data(data).n_observations

    def objective_round_off(self, data) -> float:
        """How far the log-likelihood can drop because means are stored in float64.

        A mean near ``c`` is stored to about ``eps |c|``; moving it by ``delta`` lowers the
        log-likelihood of the N_k points of its component by about
        ``N_k delta^T covs_k^{-1} delta / 2``. For data far from the origin compared with their
        spread (timestamps of 1.7e12 milliseconds varying by seconds) that is more than the
        relative round-off the EM and VB loops allow, and is no mistake. Bounded by
        ``ROUND_OFF_NARROWING * N * sum_i (eps max|x_i|)^2 / var(x_i)``: components may be
        narrower than the data, by a factor ``sqrt(ROUND_OFF_NARROWING)`` in standard deviation.
        Zero for data centred near the origin (to about 1e-25 per observation).
        """
        data = self.check_data(data)
        low, high = data.extremes
        mean, scatter = data.moments
        return _round_off(data.n_observations, np.diagonal(scatter) / data.n_observations,
                          np.maximum(np.abs(low), np.abs(high)))

    def coords(self, data) -> dict[str, list]:
        data = self.check_data(data)
        n, dim = data.shape
        # a DataFrame's column names label the results (means[0, "waiting"]); else 0..D-1
        names = data.feature_names
        unique = names is not None and len(set(names)) == len(names)
        features = np.array(names) if unique else np.arange(dim)
        return {"observation": np.arange(n), "feature": features, "feature_bis": features}

    def observed_data(self, data) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        return {"x": (self.check_data(data).x, ("observation", "feature"))}


# ------------------------------------------------------------------------------------------
# sequences of real vectors (the Gaussian HMM's data)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RealVectors:
    """The reader of sequences of D-dimensional real observations (see
    :func:`~latentzoo.models.core.sequences.read_sequences`).

    A sequence is a (T, D) array, a pandas DataFrame (its columns name the features), or a 1-D
    array or Series when D = 1; many are a 3-D array (one sequence per leading index) or a list of
    those (ragged lengths allowed; a list of flat lists is the rows of one sequence). A row of NaN
    is a missing observation, as are the masked rows of a ``numpy.ma.MaskedArray``; a row that is
    only partly NaN is refused (the model has no missing features), as are infinities.
    """

    n_features: int
    event_ndim = 1
    first_label = 0
    noun = "observations"

    def read(self, sequence, where: str) -> np.ndarray:
        """One sequence as a float64 (T_s, D) array, or a TypeError/ValueError naming it."""
        where, n_features = f"data: {where}", self.n_features
        if hasattr(sequence, "to_numpy"):  # a pandas DataFrame or Series
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

    def accept(self, data: Sequences) -> None:
        if data.x.ndim != 2 or data.x.dtype.kind != "f":
            raise ValueError("data were validated as symbols or counts, but this model takes real vectors; "
                             "pass the raw sequences")
        if data.n_features != self.n_features:
            raise ValueError(f"data have D = {data.n_features} features but the model has n_features = {self.n_features}")


def check_sequences(data, n_features: int) -> Sequences:
    """One sequence or many of ``n_features``-dimensional real observations, validated (see
    :class:`RealVectors` for the accepted forms); a validated container is returned as it is."""
    return read_sequences(data, RealVectors(n_features))
