"""A validated univariate time series: ``SeriesData`` (values, NaN for missing, and their times)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.base import numeric_array

__all__ = ["SeriesData"]

#: text tokens that mark a missing step (as the command line's readers do)
MISSING_TOKENS = frozenset({"NA", "na", "Na", "NaN", "nan", "NAN", "?"})


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class SeriesData:
    """A series of T real values at T increasing times.

    Build it with :meth:`from_data`, which every state-space model's ``check_data`` calls.

    Attributes
    ----------
    y : ndarray of shape (T,), float64, read-only
        The values; NaN marks a missing step.
    time : ndarray of shape (T,), read-only
        Strictly increasing times of the steps (int64 when every time is a whole number, else
        float64): the ``time`` coordinate of fitted results. Default ``0, 1, ..., T - 1``.
    """

    y: np.ndarray
    time: np.ndarray

    def __len__(self) -> int:
        return self.y.size

    @classmethod
    def from_data(cls, data, min_steps: int = 2) -> "SeriesData":
        """Validate a series.

        Parameters
        ----------
        data : SeriesData, pandas Series, array-like of shape (T,) or (T, 1), or text of numbers
            A pandas Series' index gives the times (numbers, or dates as their ``datetime64``
            values). NaN (``NA`` or ``?`` in text) marks a missing step.
        min_steps : int
            Least number of steps and of observed values.

        Raises
        ------
        TypeError
            For values that are not numbers.
        ValueError
            For a series that is not 1-D, holds infinite values, has too few steps or observed
            values, or times that are not finite and strictly increasing.
        """
        if isinstance(data, SeriesData):
            return data
        import pandas as pd

        time = None
        if isinstance(data, pd.Series):
            time = data.index.to_numpy()
            data = data.to_numpy(dtype=float, na_value=np.nan)
        if isinstance(data, str):
            tokens = data.replace(",", " ").split()
            try:
                data = [np.nan if token in MISSING_TOKENS else float(token) for token in tokens]
            except ValueError:
                raise ValueError("data text must be numbers separated by spaces or commas (NA or ? for missing)") from None
        y = numeric_array(data, "data", "a 1-D series of numbers (NaN for missing)")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"data must be a 1-D series (T,) or a column (T, 1), got shape {y.shape}; a table of "
                             "(time, value) columns is pandas.Series(values, index=times)")
        if np.any(np.isinf(y)):
            raise ValueError("data must be finite or NaN (missing); it holds an infinite value")
        observed = int(np.sum(~np.isnan(y)))
        if y.size < min_steps or observed < min_steps:
            raise ValueError(f"data must have at least {min_steps} steps and {min_steps} observed values, got {y.size} "
                             f"steps, {observed} observed")
        return cls(_read_only(y.astype(float)), _read_only(_check_time(time, y.size)))


def _check_time(time, size: int) -> np.ndarray:
    """Times as int64 (whole numbers), float64 or datetime64, strictly increasing."""
    if time is None:
        return np.arange(size, dtype=np.int64)
    time = np.asarray(time)
    if time.dtype.kind == "M":
        order_ok = not np.isnat(time).any() and bool(np.all(time[1:] > time[:-1]))
    else:
        try:
            time = time.astype(float)
        except (TypeError, ValueError):
            raise TypeError("the series' times (a pandas Series' index) must be numbers or dates") from None
        order_ok = bool(np.all(np.isfinite(time))) and bool(np.all(np.diff(time) > 0))
        if order_ok and np.all(time == np.round(time)) and np.all(np.abs(time) < 2**53):
            time = time.astype(np.int64)
    if not order_ok:
        raise ValueError("the series' times (a pandas Series' index, or a file's time column) must be finite and "
                         "strictly increasing")
    return time
