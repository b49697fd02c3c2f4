"""The conjugate priors of :class:`~latentzoo.models.mixture.gaussian.GaussianMixture`.

The weights get a Dirichlet (a point mass on ``(1,)`` when there is one component), the
components one Normal-Inverse-Wishart each, all with the same hyperparameters; the data-driven
scale ``S0 = cov(x) / K^(2/D)`` is Fraley & Raftery's (2007; see the module docstring of
:mod:`latentzoo.models.mixture.gaussian`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.conjugate import Dirichlet

__all__ = ["OneCategory", "scale_from_covariance", "spread_start", "weights_distribution"]


@dataclass(frozen=True)
class OneCategory:
    """The Dirichlet over a single category: weights = (1,), with no free parameter (K = 1).

    A dataclass with a ``concentration`` field like :class:`Dirichlet`'s, so that whatever reads
    a conjugate factor's parameters (VB's variational parameters) reads this one too.
    """

    concentration: np.ndarray = field(default_factory=lambda: np.ones(1))

    @property
    def concentrations(self) -> np.ndarray:
        return self.concentration

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


def scale_from_covariance(cov: np.ndarray, n_components: int, mean: np.ndarray | None = None) -> np.ndarray:
    """``S0 = cov / K^(2/D)``: the data's (maximum-likelihood) covariance ``cov`` of shape (D, D)
    shrunk so that K clusters of that covariance fill the volume of the data. From the scatter
    matrix of validated data (computed once), or of data seen only through their statistics
    (chunked data).

    ``mean`` (D,), the data's mean, sets what counts as no spread: a variance below the round-off
    of numbers of that size (identical points leave a scatter of about 1e-33, which Cholesky
    accepts, and the fit then fails on a covariance that is not positive definite)."""
    dim = cov.shape[0]
    S0 = cov / n_components ** (2.0 / dim)
    size = max(1.0, float(np.max(np.abs(mean)))) if mean is not None and np.size(mean) else 1.0
    eigenvalues = np.linalg.eigvalsh(0.5 * (cov + cov.T)) if np.all(np.isfinite(cov)) else np.array([np.nan])
    # a variance that round-off of the data alone can make, or one so small beside the largest that
    # the matrix is singular to working precision (two points in 2-D: 3e-17 beside 2e4)
    largest = float(np.nanmax(np.abs(eigenvalues))) if np.any(np.isfinite(eigenvalues)) else 0.0
    floor = max((1e3 * np.finfo(float).eps * size) ** 2, 1e3 * np.finfo(float).eps * largest)
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
