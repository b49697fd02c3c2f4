"""K-means as a limit of the Gaussian mixture (seed 001), and k-means++ seeding.

* :func:`lloyd` is Lloyd's algorithm written as classification EM with fixed equal weights and
  identity covariances (:meth:`GaussianMixture.kmeans
  <latentzoo.models.mixture.gaussian.GaussianMixture.kmeans>` is the public entry point).
* :func:`kmeans_plusplus` seeds K centres by scikit-learn's ``sklearn.cluster.kmeans_plusplus``
  (Arthur & Vassilvitskii 2007, greedy variant); :func:`nearest_centres` assigns points to them.
  Together they give :meth:`GaussianMixture.initial_params
  <latentzoo.models.mixture.gaussian.GaussianMixture.initial_params>` its default start.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..core.base import numeric_array
from .data import GaussianData
from .kernels import log_gaussian_densities
from .stats import component_stats

__all__ = ["kmeans_plusplus", "lloyd", "nearest_centres"]


def kmeans_plusplus(x, K: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: K centres drawn from the rows of ``x`` (Arthur & Vassilvitskii 2007).

    The first centre is uniform; each next one is the best (lowest resulting inertia) of
    ``2 + log K`` candidates drawn with probability proportional to the squared distance to the
    nearest centre chosen so far: scikit-learn's ``sklearn.cluster.kmeans_plusplus``, which
    ``sklearn.mixture.GaussianMixture(init_params="k-means++")`` uses as well.

    Parameters
    ----------
    x : array-like of shape (N, D), or GaussianData
        N >= K finite rows (a GaussianData is not checked again).
    K : int
        The number of centres.
    rng : numpy.random.Generator
        One integer drawn from it seeds scikit-learn (which takes a seed or a ``RandomState``,
        not a Generator), so the same seeded Generator gives the same centres.

    Returns
    -------
    ndarray of shape (K, D)
    """
    # imported here: scikit-learn takes about a second to import, and only this start needs it
    from sklearn import config_context
    from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus

    validated = isinstance(x, GaussianData)
    array = x.x if validated else np.asarray(x, dtype=float)
    seed = int(rng.integers(2**32))  # the range of a RandomState seed
    # scikit-learn's squared distances are |x|^2 - 2 x.c + |c|^2, which cancel catastrophically for
    # data far from the origin (timestamps): centred data keep them accurate, and make the
    # chosen centres the same for shifted data
    centre = array.mean(0)
    # validated data were scanned for NaN once already; scikit-learn would scan them again
    with config_context(assume_finite=validated):
        centres, indices = sklearn_kmeans_plusplus(array - centre, K, random_state=seed)
    return array[indices]


def nearest_centres(x, centres) -> np.ndarray:
    """Index of the nearest centre (Euclidean) of every point, shape (N,).

    Lloyd's assignment, computed as classification EM's C-step with equal weights and identity
    covariances (the largest log N(x_n | centre_k, I) is the smallest distance; the first on ties).

    Parameters
    ----------
    x : ndarray of shape (N, D)
    centres : ndarray of shape (K, D)
    """
    K, dim = centres.shape
    identity = np.broadcast_to(np.eye(dim), (K, dim, dim))
    return np.argmax(log_gaussian_densities(x, centres, identity), axis=1)


def lloyd(x: np.ndarray, init_centres, n_components: int, max_iter: int = 300):
    """Lloyd's algorithm as classification EM: :meth:`GaussianMixture.kmeans
    <latentzoo.models.mixture.gaussian.GaussianMixture.kmeans>` on validated ``x`` of shape
    (N, D), with K = ``n_components`` (the returned centres, labels and inertia are described there).
    """
    K, dim = n_components, x.shape[1]
    centres = numeric_array(init_centres, "init_centres", "a (K, D) array of numbers").copy()
    if centres.shape != (K, dim) or not np.all(np.isfinite(centres)):
        raise ValueError(f"init_centres must be a finite array of shape ({K}, {dim}), got shape {centres.shape}")
    labels = None
    for _ in range(max_iter):
        new_labels = nearest_centres(x, centres)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts, means, _ = component_stats(x, np.eye(K)[labels])
        # an empty cluster keeps its centre (scikit-learn would relocate it)
        centres = np.where(counts[:, None] > 0, means, centres)
    else:
        warnings.warn(f"kmeans did not converge in {max_iter} iterations", UserWarning, stacklevel=3)
    inertia = float(np.sum((x - centres[labels]) ** 2))
    return centres, labels, inertia
