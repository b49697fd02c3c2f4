"""Small data sets shipped with latentzoo (see ``models/data/README.md`` for sources)."""

from __future__ import annotations

import io
import json
from importlib import resources

import numpy as np

__all__ = ["casino", "old_faithful"]


def old_faithful() -> np.ndarray:
    """The Old Faithful geyser data (R ``datasets::faithful``).

    Returns
    -------
    ndarray of shape (272, 2)
        Columns: eruption duration (minutes) and waiting time to the next eruption (minutes).
        A fresh array on every call.
    """
    text = resources.files("latentzoo.models").joinpath("data", "old_faithful.csv").read_text(encoding="utf-8")
    return np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)


def casino() -> tuple[np.ndarray, np.ndarray]:
    """The occasionally dishonest casino (Durbin, Eddy, Krogh & Mitchison 1998, fig. 3.5).

    Returns
    -------
    rolls : int ndarray of shape (300,)
        Faces 1..6.
    loaded : bool ndarray of shape (300,)
        Whether the loaded die was used for each roll (the hidden truth).
    """
    text = resources.files("latentzoo.models").joinpath("data", "casino_durbin.json").read_text(encoding="utf-8")
    record = json.loads(text)
    return np.asarray(record["rolls"], dtype=np.int64), np.array([die == "L" for die in record["die"]])
