"""Argument checks for the sizes a model is built with (numbers of states, symbols, components).

A constructor allocates its prior arrays at once, so an absurd size (``DiceHMM(dice=(6, 10**9))``)
would try to allocate gigabytes before any data are seen. Sizes are checked here, once, with a
message that names the argument.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["MAX_PARAMETER_ELEMENTS", "check_count", "check_parameter_size"]

# The largest parameter table a model may declare: 10 million numbers (80 MB in float64). Every
# back-end keeps a few copies of it per chain or restart, and the PyMC back-ends a few more, so
# larger tables would exhaust a laptop's memory long before the fit ended.
MAX_PARAMETER_ELEMENTS = 10_000_000


def check_count(value, name: str, minimum: int) -> int:
    """``value`` as an ``int`` >= ``minimum``, or a TypeError/ValueError naming ``name``.

    NumPy integers are accepted; ``bool`` is not (``True`` is not a count).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_parameter_size(shape: dict[str, int], what: str) -> None:
    """Refuse a parameter table with more than :data:`MAX_PARAMETER_ELEMENTS` numbers.

    Parameters
    ----------
    shape : dict mapping argument name to its size, e.g. ``{"n_states": 2, "n_symbols": 10**9}``
    what : the table, for the message (``"the emission matrix"``)
    """
    elements = math.prod(shape.values())
    if elements > MAX_PARAMETER_ELEMENTS:
        sizes = " x ".join(f"{name}={size}" for name, size in shape.items())
        raise ValueError(
            f"{what} would hold {elements:,} numbers ({sizes}); latentzoo models hold at most "
            f"{MAX_PARAMETER_ELEMENTS:,} per table, so check these sizes"
        )
