"""The conjugate priors of :class:`~latentzoo.models.mixture.gaussian.GaussianMixture`.

The weights get a Dirichlet (a point mass on ``(1,)`` when there is one component), the
components one Normal-Inverse-Wishart each, all with the same hyperparameters; the data-driven
scale ``S0 = cov(x) / K^(2/D)`` is Fraley & Raftery's (2007; see the module docstring of
``gaussian_mixture``).
"""

from __future__ import annotations

import numpy as np

from ..core.conjugate import Dirichlet, NormalInverseWishart

__all__ = ["OneCategory", "component_niw", "data_driven_scale", "scale_from_covariance", "spread_start", "weights_distribution"]


class OneCategory:
    """The Dirichlet over a single category: weights = (1,), with no free parameter (K = 1)."""

    concentrations = np.ones(1)

    def update(self, counts):
        return self

    def mode(self):
        return np.ones(1)

    mean = mode

    def sample(self, rng, size=None):
        shape = () if size is None else tuple(np.atleast_1d(size))
        return np.ones(shape + (1,))

    def log_pdf(self, x):
        return np.zeros(np.shape(x)[:-1])

    def expected_log(self):
        return np.zeros(1)

    def kl(self, other):
        return np.zeros(())


def weights_distribution(concentration) -> Dirichlet | OneCategory:
    """Dirichlet(concentration) over the K mixing weights; :class:`OneCategory` when K = 1.

    Parameters
    ----------
    concentration : array-like of shape (K,)
        Positive.
    """
    concentration = np.asarray(concentration, float)
    return OneCategory() if concentration.size == 1 else Dirichlet(concentration)


def component_niw(m0, kappa0: float, nu0: float, S0, n_components: int) -> NormalInverseWishart:
    """NIW(m0, kappa0, nu0, S0) for each of the K components, as one batched distribution.

    Parameters
    ----------
    m0 : ndarray of shape (D,)
    kappa0, nu0 : float
    S0 : ndarray of shape (D, D)
    n_components : int

    Returns
    -------
    NormalInverseWishart
        With ``m`` (K, D), ``kappa`` (K,), ``nu`` (K,), ``S`` (K, D, D).
    """
    K = n_components
    dim = m0.size
    return NormalInverseWishart(
        np.broadcast_to(m0, (K, dim)).copy(), np.full(K, kappa0), np.full(K, float(nu0)),
        np.broadcast_to(S0, (K, dim, dim)).copy(),
    )


def data_driven_scale(x: np.ndarray, n_components: int) -> np.ndarray:
    """``S0 = cov(x) / K^(2/D)``: the data's (maximum-likelihood) covariance shrunk so that K
    clusters of that covariance fill the volume of the data.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    n_components : int

    Returns
    -------
    ndarray of shape (D, D)

    Raises
    ------
    ValueError
        When that matrix is singular (a constant feature, too few distinct points, points on a
        hyperplane): S0 then has to be given.
    """
    mean = x.mean(0)
    centred = x - mean
    return scale_from_covariance(centred.T @ centred / x.shape[0], n_components, mean)


def scale_from_covariance(cov: np.ndarray, n_components: int, mean: np.ndarray | None = None) -> np.ndarray:
    """:func:`data_driven_scale` from the data's (maximum-likelihood) covariance ``cov`` of shape
    (D, D): for validated data, whose scatter matrix is computed once, and for data seen only
    through their statistics (chunked data).

    ``mean`` (D,), the data's mean, sets what counts as no spread: a variance below the round-off
    of numbers of that size (identical points leave a scatter of about 1e-33, which Cholesky
    accepts, and the fit then fails on a covariance that is not positive definite)."""
    dim = cov.shape[0]
    S0 = cov / n_components ** (2.0 / dim)
    size = max(1.0, float(np.max(np.abs(mean)))) if mean is not None and np.size(mean) else 1.0
    floor = (1e3 * np.finfo(float).eps * size) ** 2  # variance that round-off of the data alone can make
    eigenvalues = np.linalg.eigvalsh(0.5 * (cov + cov.T)) if np.all(np.isfinite(cov)) else np.array([np.nan])
    if not np.all(eigenvalues > floor):
        if np.all(~(eigenvalues > floor)):
            what = "the data have no spread (every point is the same, up to round-off)"
        else:
            what = (f"the data have no spread in some direction (a constant feature, fewer distinct points than "
                    f"D + 1 = {dim + 1}, or points on a hyperplane)")
        raise ValueError(
            f"{what}, so the data-driven prior is degenerate: its scale S0 = cov(data) / K^(2/D) is not positive "
            f"definite. Pass an explicit prior scale S0, a ({dim}, {dim}) positive-definite matrix of the spread you "
            f"expect within a component (e.g. S0=np.eye({dim})), or fit data that vary"
        )
    return S0


def spread_start(x: np.ndarray, K: int) -> np.ndarray:
    """Offsets that start the K component means apart (at data quantiles along the first
    principal axis) instead of all at m0, where the gradient cannot tell them apart: shape (K, D)
    for rows ``x`` of shape (N, D)."""
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    scores = centred @ vt[0]
    levels = np.quantile(scores, (np.arange(K) + 0.5) / K)
    return levels[:, None] * vt[0][None, :]
