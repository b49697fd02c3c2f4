"""Validated real observations of shape (n_observations, n_features), checked once.

:class:`GaussianData` is what :meth:`GaussianMixture.check_data
<latentzoo.models.gaussian_mixture.GaussianMixture.check_data>` and
:meth:`NIWGaussian.check_data <latentzoo.models.niw_gaussian.NIWGaussian.check_data>` return.
Building one is the whole validation (types, shape, and one pass over the values for NaN and
infinities); a model given a ``GaussianData`` only compares its shape with what the model needs,
in O(1). Back-ends validate once and hand the object to every hook, so an EM or VB iteration
never scans the data again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianData", "GaussianObservations"]


def _require_finite(x: np.ndarray) -> None:
    """The one pass over the values: a ValueError if any is NaN or infinite."""
    if not np.all(np.isfinite(x)):
        raise ValueError("data contain NaN or infinite values")


def _read_array(data) -> np.ndarray:
    """``data`` as a 2-D real array (not yet copied), or a TypeError/ValueError naming ``data``."""
    if isinstance(data, str | bytes) or data is None or isinstance(data, dict):
        raise TypeError(f"data must be a 2-D numeric array of shape (N, D), got {type(data).__name__}")
    try:
        array = np.asarray(data)
    except (TypeError, ValueError) as error:
        raise TypeError(f"data must be a 2-D numeric array of shape (N, D), could not read it: {error}") from None
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"data must be a 2-D array of real numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        hint = " (use data.reshape(-1, 1) for one feature)" if array.ndim == 1 else ""
        raise ValueError(f"data must be 2-D of shape (N, D), got shape {array.shape}{hint}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"data must have at least one observation and one feature, got shape {array.shape}")
    return array


def _read_feature_names(names, data, n_features: int) -> tuple[str, ...] | None:
    """Explicit ``names``, else the columns of a pandas DataFrame, else None."""
    if names is None:
        columns = getattr(data, "columns", None)
        if columns is None:
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
        Finite real numbers (a NumPy array, nested lists, a pandas DataFrame, or a GaussianData),
        at least one row and one column. Copied into a read-only float64 array.
    feature_names : sequence of str, optional
        One name per column; by default the columns of a pandas DataFrame, else None.

    Attributes
    ----------
    x : ndarray of shape (N, D), float64, read-only
    feature_names : tuple of str or None

    Raises
    ------
    TypeError
        For text, None, a dict, ragged lists or non-numeric values.
    ValueError
        For data that are not 2-D, empty, or contain NaN or infinite values.

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
            names = source.feature_names if self.feature_names is None else self.feature_names
            names = _read_feature_names(names, None, array.shape[1])
        else:
            array = np.array(_read_array(source), dtype=np.float64)
            _require_finite(array)
            array.setflags(write=False)
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

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        # NumPy's protocol: copy=None copies only for another dtype, True always, False never
        return np.array(self.x, dtype=dtype, copy=copy)

    def __repr__(self) -> str:
        names = f", feature_names={self.feature_names!r}" if self.feature_names is not None else ""
        return f"GaussianData(N={self.x.shape[0]}, D={self.x.shape[1]}{names})"


class GaussianObservations:
    """The data hooks of a model of :class:`GaussianData` (one ``x`` of dims (observation,
    feature)); the model provides ``check_data``. Shared by
    :class:`~latentzoo.models.niw_gaussian.NIWGaussian` and
    :class:`~latentzoo.models.gaussian_mixture.GaussianMixture`."""

    def n_observations(self, data) -> int:
        return self.check_data(data).n_observations

    def coords(self, data) -> dict[str, list]:
        n, dim = self.check_data(data).shape
        features = np.arange(dim)
        return {"observation": np.arange(n), "feature": features, "feature_bis": features}

    def observed_data(self, data) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        return {"x": (self.check_data(data).x, ("observation", "feature"))}
