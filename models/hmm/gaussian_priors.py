"""Priors of the Gaussian HMM's emissions: Normal-Inverse-Wishart per state, or, with known
covariances, a Normal on each state's mean (:class:`NormalKnownCovariance`).

With ``covs`` fixed, ``means[k] ~ N(m0[k], covs[k] / kappa0)`` is conjugate to Gaussian
observations of covariance ``covs[k]``: given N observations with mean xbar, the posterior is
``N(m_N, covs[k] / kappa_N)`` with ``kappa_N = kappa0 + N`` and ``m_N = (kappa0 m0 + N xbar) /
kappa_N`` (Murphy 2012, eq. 4.173 with Sigma_0 = Sigma / kappa0). The family has the interface
of :mod:`latentzoo.models.core.conjugate` (``update``, ``mode``, ``mean``, ``sample``, ``log_pdf``,
``kl``), so EM, Gibbs and VB use it unchanged.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass

import numpy as np

__all__ = ["NormalKnownCovariance"]

_LOG_2PI = np.log(2.0 * np.pi)


def _log_det_and_inverse_chol(covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    chol = np.linalg.cholesky(covs)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return log_det, np.linalg.inv(chol)


@dataclass(frozen=True)
class NormalKnownCovariance:
    """``mu ~ N(m, covs / kappa)`` with known covariances, batched over states.

    Parameters
    ----------
    m : ndarray of shape (*batch, D)
    kappa : ndarray of shape (*batch,)
        Pseudo-observations behind ``m`` (0 only for the flat prior of maximum likelihood).
    covs : ndarray of shape (*batch, D, D)
        The known covariances of the observations (and, divided by kappa, of mu).
    """

    m: np.ndarray
    kappa: np.ndarray
    # not a field: the known covariances are the model's constants, not parameters of q (the
    # fields are what VB reports in its variational group)
    covs: InitVar[np.ndarray]

    def __post_init__(self, covs):
        object.__setattr__(self, "known_covs", np.asarray(covs, float))

    @classmethod
    def flat(cls, covs: np.ndarray) -> "NormalKnownCovariance":
        """The improper flat prior (kappa = 0): its updated mode is the maximum-likelihood mean."""
        covs = np.asarray(covs, float)
        return cls(np.zeros(covs.shape[:-1]), np.zeros(covs.shape[:-2]), covs)

    @property
    def dim(self) -> int:
        return self.m.shape[-1]

    def update(self, count, mean, scatter=None) -> "NormalKnownCovariance":
        """Posterior after observations with (weighted) count N and mean xbar; the scatter carries
        no information about mu when the covariance is known and is ignored."""
        count = np.asarray(count, float)
        kappa_n = self.kappa + count
        weighted_sum = np.where(count[..., None] > 0, count[..., None] * np.asarray(mean, float), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            m_n = np.where(kappa_n[..., None] > 0, (self.kappa[..., None] * self.m + weighted_sum) / kappa_n[..., None], self.m)
        return NormalKnownCovariance(m_n, kappa_n, self.known_covs)

    def mode(self) -> np.ndarray:
        return np.array(self.m, float)

    mean = mode

    def sample(self, rng: np.random.Generator, size=None) -> np.ndarray:
        """Draws of mu, shape ``size + batch + (D,)``."""
        shape = (() if size is None else tuple(np.atleast_1d(size))) + self.m.shape
        chol = np.linalg.cholesky(self.known_covs / self.kappa[..., None, None])
        noise = rng.standard_normal(shape)
        return self.m + np.einsum("...ij,...j->...i", chol, noise)

    def log_pdf(self, mu) -> np.ndarray:
        """log N(mu | m, covs / kappa), one value per batch element."""
        log_det, inverse = _log_det_and_inverse_chol(self.known_covs)
        z = np.einsum("...ij,...j->...i", inverse, np.asarray(mu, float) - self.m)
        return -0.5 * self.dim * (_LOG_2PI - np.log(self.kappa)) - 0.5 * log_det - 0.5 * self.kappa * np.sum(z**2, -1)

    def kl(self, other: "NormalKnownCovariance") -> np.ndarray:
        """KL(self || other) for two Normals with covariances covs / kappa_q and covs / kappa_p:
        D/2 (kappa_p / kappa_q - 1 - log(kappa_p / kappa_q)) + kappa_p / 2 |m_q - m_p|^2_{covs^-1}."""
        _, inverse = _log_det_and_inverse_chol(self.known_covs)
        z = np.einsum("...ij,...j->...i", inverse, self.m - other.m)
        ratio = other.kappa / self.kappa
        return 0.5 * self.dim * (ratio - 1.0 - np.log(ratio)) + 0.5 * other.kappa * np.sum(z**2, -1)
