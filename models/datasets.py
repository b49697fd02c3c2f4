"""Small data sets shipped with latentzoo (see ``models/data/README.md`` for sources)."""

from __future__ import annotations

import io
import json
import numbers
from importlib import resources

import numpy as np

from .core.base import check_rng, numeric_array
from .core.sizes import check_parameter_size

__all__ = ["blobs", "casino", "digits_binary", "earthquakes", "nile", "old_faithful"]


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


def nile() -> tuple[np.ndarray, np.ndarray]:
    """The annual flow of the river Nile at Aswan, 1871-1970 (R ``datasets::Nile``; Cobb 1978).

    Returns
    -------
    years : int ndarray of shape (100,)
    volume : ndarray of shape (100,)
        Annual flow in 10^8 cubic metres; it drops around 1898 (the Aswan dam's first works
        and a change of climate are the usual explanations).
    """
    text = resources.files("latentzoo.models").joinpath("data", "nile.csv").read_text(encoding="utf-8")
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
    return table[:, 0].astype(np.int64), table[:, 1]


def earthquakes() -> tuple[np.ndarray, np.ndarray]:
    """Annual counts of major earthquakes (magnitude 7 and above), 1900-2006 (Zucchini, MacDonald &
    Langrock 2016, compiled from the USGS catalogue).

    Returns
    -------
    years : int ndarray of shape (107,)
    counts : int ndarray of shape (107,)
        Earthquakes per year; overdispersed (mean about 19, variance about 51) and autocorrelated,
        the classic example of a Poisson hidden Markov model.
    """
    text = resources.files("latentzoo.models").joinpath("data", "earthquakes.csv").read_text(encoding="utf-8")
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.int64)
    return table[:, 0], table[:, 1]


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


def digits_binary(threshold: float = 7.0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (UCI optdigits test set; no download),
    binarised: a pixel is 1 where its intensity (0..16) exceeds ``threshold``.

    Parameters
    ----------
    threshold : float, default 7.0
        Pixels brighter than this are ones (the default splits the 0..16 scale in the middle).

    Returns
    -------
    x : int8 ndarray of shape (1797, 64)
        One image per row, pixels in reading order (row by row of the 8x8 image).
    digits : int ndarray of shape (1797,)
        The digit (0..9) each image shows.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data > threshold).astype(np.int8), np.asarray(bunch.target, dtype=np.int64)


def blobs(
    n_samples=500,
    centers=3,
    cluster_std=1.0,
    random_seed=0,
    *,
    n_features: int = 2,
    center_box: tuple[float, float] = (-10.0, 10.0),
    shuffle: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian blobs, the kind of data of the Gaussian-mixture seed's figures.

    Each blob is ``N(center_k, cluster_std_k^2 I)``; with the defaults, three blobs of unit
    spread whose centres are drawn uniformly in ``[-10, 10]^2`` (the convention of scikit-learn's
    ``make_blobs``, which the seed used; the numbers drawn here are latentzoo's own).

    Parameters
    ----------
    n_samples : int or sequence of int, default 500
        Total number of points, split as evenly as possible between the blobs (the first
        ``n_samples % K`` blobs get one more), or the number of points of each blob.
    centers : int or array-like of shape (K, D), default 3
        Number of blobs (centres drawn uniformly in ``center_box``), or the centres themselves
        (then ``n_features`` is ignored).
    cluster_std : float or sequence of K floats, default 1.0
        Standard deviation of every coordinate, per blob or shared; > 0.
    random_seed : int, numpy.random.Generator or None, default 0
        Seed of the only random numbers used (centres, points, order).
    n_features : int, default 2
        D, when ``centers`` is a number.
    center_box : (float, float), default (-10, 10)
        Bounds of the random centres.
    shuffle : bool, default True
        Shuffle the points; otherwise they come blob by blob.

    Returns
    -------
    x : ndarray of shape (N, D)
    labels : int ndarray of shape (N,)
        The blob each point was drawn from (its index in the centres).

    Examples
    --------
    >>> x, labels = blobs(300, centers=3, cluster_std=[1.0, 2.5, 0.5], random_seed=42)
    >>> x.shape, np.bincount(labels).tolist()
    ((300, 2), [100, 100, 100])
    """
    rng = check_rng(random_seed, "random_seed")
    if isinstance(centers, numbers.Integral) and not isinstance(centers, bool):
        if centers < 1:
            raise ValueError(f"centers must be a positive number of blobs or a (K, D) array, got {centers}")
        if not isinstance(n_features, numbers.Integral) or isinstance(n_features, bool) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        box = numeric_array(center_box, "center_box", "a pair (low, high) of numbers")
        if box.shape != (2,) or not np.all(np.isfinite(box)) or box[0] >= box[1]:
            raise ValueError(f"center_box must be a pair (low, high) with low < high, got {center_box!r}")
        check_parameter_size({"centers": int(centers), "n_features": int(n_features)}, "the blob centres")
        centres = rng.uniform(box[0], box[1], size=(int(centers), int(n_features)))
    else:
        centres = numeric_array(centers, "centers", "a number of blobs or a (K, D) array of centres")
        if centres.ndim != 2 or centres.size == 0 or not np.all(np.isfinite(centres)):
            raise ValueError(f"centers must be a positive int or a finite (K, D) array, got shape {centres.shape}")
    n_blobs, dim = centres.shape

    spread = numeric_array(cluster_std, "cluster_std", "a positive number or one per blob")
    spread = spread.reshape(-1) if spread.ndim else np.full(n_blobs, float(spread))
    if spread.shape != (n_blobs,) or not np.all(np.isfinite(spread)) or np.any(spread <= 0):
        raise ValueError(f"cluster_std must be a positive number or {n_blobs} positive numbers, got {cluster_std!r}")

    if isinstance(n_samples, numbers.Integral) and not isinstance(n_samples, bool):
        if n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples}")
        sizes = np.full(n_blobs, n_samples // n_blobs)
        sizes[: n_samples % n_blobs] += 1
    else:
        sizes = numeric_array(n_samples, "n_samples", "a positive integer or one count per blob")
        if sizes.shape != (n_blobs,) or np.any(sizes < 0) or np.any(sizes != np.round(sizes)) or sizes.sum() < 1:
            raise ValueError(f"n_samples must be a positive integer or {n_blobs} non-negative integer counts, got {n_samples!r}")
        sizes = sizes.astype(np.int64)

    check_parameter_size({"n_samples": int(sizes.sum()), "n_features": dim}, "the blobs data")
    labels = np.repeat(np.arange(n_blobs), sizes)
    x = centres[labels] + spread[labels, None] * rng.standard_normal((labels.size, dim))
    if shuffle:
        order = rng.permutation(labels.size)
        x, labels = x[order], labels[order]
    return x, labels
