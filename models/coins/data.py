"""Coin-flip data for :class:`~latentzoo.models.coins.three_coins.ThreeCoins`: reading and validation.

Flips arrive as arrays (NumPy, pandas, 0-d, masked with nothing masked, object arrays holding
Python integers), as text (``"1111110000"``, lines of equal length) or as a :class:`CoinData`.
:func:`check_coin_data` turns each into one validated, read-only :class:`CoinData`, once; the
model's hooks then trust it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import special

from ..core.base import unmasked

__all__ = ["CoinData", "check_coin_data"]


@dataclass(frozen=True)
class CoinData:
    """Validated coin data.

    :meth:`ThreeCoins.check_data` builds it once and afterwards passes it through unchanged (every
    ``ThreeCoins`` accepts the same flips); a ``CoinData`` built by hand is validated again.

    Attributes
    ----------
    flips : ndarray of shape (n_trials,) or (n_trials, n_flips), dtype int8
        The flips as given (0 = tails, 1 = heads).
    """

    flips: np.ndarray

    @property
    def validated(self) -> bool:
        """True when :meth:`ThreeCoins.check_data` built this object."""
        # an attribute, not a field: it stays out of equality and of reference.cache_key's hash
        return self.__dict__.get("_validated", False)

    @property
    def flips_2d(self) -> np.ndarray:
        return self.flips.reshape(self.flips.shape[0], -1)

    @cached_property
    def heads(self) -> np.ndarray:
        """Heads per trial, shape (n_trials,)."""
        return self.flips_2d.sum(axis=1).astype(np.int64)

    @cached_property
    def tails(self) -> np.ndarray:
        """Tails per trial, shape (n_trials,)."""
        return self.n_flips - self.heads

    @cached_property
    def heads_and_tails(self) -> tuple[np.ndarray, np.ndarray]:
        """Heads and tails per trial as floats, shape (n_trials,) each: what the weighted counts
        are dot products with (the same products as with the integers, without a cast per call)."""
        return self.heads.astype(float), self.tails.astype(float)

    @cached_property
    def total_heads(self) -> int:
        return int(self.heads.sum())

    @cached_property
    def heads_values(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, index)``: the distinct numbers of heads, shape (G,), and each trial's
        position among them, shape (n_trials,) (``values[index] == heads``). Trials with the same
        number of heads are interchangeable: what depends on a trial only through its heads is
        computed once per value."""
        values, index = np.unique(self.heads, return_inverse=True)
        return values, index

    @property
    def n_trials(self) -> int:
        return self.flips.shape[0]

    @property
    def n_flips(self) -> int:
        """Flips per trial (1 for 1-D data)."""
        return self.flips_2d.shape[1]

    @cached_property
    def log_binomial_coefficients(self) -> np.ndarray:
        """log C(n_flips, heads) per trial, the constant of the binomial likelihood."""
        m, h = self.n_flips, self.heads
        return special.gammaln(m + 1) - special.gammaln(h + 1) - special.gammaln(m - h + 1)


def check_coin_data(data) -> CoinData:
    """Validate coin flips (the work of :meth:`ThreeCoins.check_data
    <latentzoo.models.coins.three_coins.ThreeCoins.check_data>`, whose docstring lists what is accepted)."""
    if isinstance(data, CoinData):
        if data.validated:
            return data
        data = data.flips  # built by hand: check its flips like any other array
    if isinstance(data, str):
        data = _flips_from_text(data)
    if isinstance(data, np.ma.MaskedArray):
        data = unmasked(data, "data", "value(s)", "ThreeCoins cannot marginalise missing flips: drop those trials "
                        "(data[~np.ma.getmaskarray(data)] for one flip per trial, or the rows with a masked flip) or fill them")
    try:
        array = np.asarray(data)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"data must be an array of 0/1 flips, could not read it: {error}") from None
    if array.dtype == object and array.size:
        array = _flips_from_objects(array)
    if array.dtype == bool:
        array = array.astype(np.int8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"data must be numeric 0/1 flips, got an array of dtype {array.dtype}")
    if array.ndim == 0:  # a single flip: one trial
        array = array.reshape(1)
    if array.ndim not in (1, 2):
        raise ValueError(
            "data must be 1-D (one flip per trial) or 2-D (trials x flips), "
            f"got an array of shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"data must contain at least one trial, got shape {array.shape}")
    if array.ndim == 2 and array.shape[1] == 0:
        raise ValueError(f"each trial must have at least one flip, got data of shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise ValueError("data contains NaN or infinite values; flips must be 0 or 1")
    bad = ~np.isin(array, (0, 1))
    if np.any(bad):
        examples = np.unique(array[bad])[:5]
        raise ValueError(_not_flips(examples.tolist()))
    flips = array.astype(np.int8)
    flips.setflags(write=False)
    checked = CoinData(flips)
    object.__setattr__(checked, "_validated", True)
    return checked


def _not_flips(values) -> str:
    # Python ints and floats print as given (2**70 in full, not wrapped into int64)
    return f"data must hold 0/1 flips: flips must be 0 (tails) or 1 (heads), found {list(values)}"


def _flips_from_objects(array: np.ndarray) -> np.ndarray:
    """An object array (Python integers beyond int64, for instance) as int8 flips; values other than
    0/1 are reported as given, not wrapped into int64."""
    bad = []
    for value in array.flat:
        if isinstance(value, bool | np.bool_):
            continue
        if not isinstance(value, numbers.Real):
            raise TypeError(f"data must be numeric 0/1 flips, got {type(value).__name__} {value!r}")
        if value not in (0, 1) and value not in bad:
            bad.append(value)
    if bad:
        raise ValueError(_not_flips(bad[:5]))
    return array.astype(np.int8)


def _flips_from_text(text: str):
    """Coin text as a list (one line, or lines of one flip) or a list of equal-length rows."""
    lines = [line.replace(",", " ").split() for line in text.splitlines()]
    rows = ["".join(tokens) for tokens in lines if tokens]
    if not rows or any(set(row) - {"0", "1"} for row in rows):
        raise ValueError(
            f"data given as text must contain only the characters 0 and 1 (separated by whitespace or commas, "
            f"if at all), and at least one of them; got {text!r}"
        )
    lengths = {len(row) for row in rows}
    if len(rows) == 1 or lengths == {1}:
        return [int(character) for row in rows for character in row]
    if len(lengths) > 1:
        raise ValueError(
            f"data given as text has lines of {sorted(lengths)} flips; each line is one trial, so every line "
            "must hold the same number of flips"
        )
    return [[int(character) for character in row] for row in rows]
