"""Conjugate families, written once and shared by EM, Gibbs sampling and variational Bayes.

The three back-ends use the same object in three ways (the idea behind ``models/conjugate.py``
in DESIGN.md):

* EM's M-step is the posterior **mode** given *expected* sufficient statistics,
* Gibbs sampling **samples** the posterior given *complete* sufficient statistics,
* mean-field VB keeps the posterior itself as a variational factor and needs its
  **expected logarithms** and its **KL divergence** from the prior.

Every class is an immutable value; ``update`` returns a new object. Parameters may carry
leading batch dimensions (one distribution per element), so a mixture's components are one
object, not a list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = ["Beta", "Dirichlet", "apply_to_factors"]


def apply_to_factors(factors: dict, method: str, *args, **kwargs) -> dict:
    """Call ``method`` (``"mode"``, ``"mean"``, ``"sample"``) on every factor and name the results.

    ``factors`` maps a parameter name to its conjugate distribution, or a *tuple* of names to a
    joint family (Normal-Inverse-Wishart over ``("means", "covs")``) whose method returns one
    array per name. EM, Gibbs and VB all go through here, so joint families need no special case.
    """
    values = {}
    for key, factor in factors.items():
        result = getattr(factor, method)(*args, **kwargs)
        if isinstance(key, tuple):
            values.update(zip(key, result))
        else:
            values[key] = result
    return values


def _as_positive_array(value, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return array


@dataclass(frozen=True)
class Beta:
    """Beta(alpha, beta) distribution on (0, 1), possibly batched.

    Parameters
    ----------
    alpha, beta : float or array-like of the same shape (batch_shape)
        Positive concentrations; ``alpha`` counts successes, ``beta`` failures.
    """

    alpha: np.ndarray
    beta: np.ndarray

    def __post_init__(self):
        alpha = _as_positive_array(self.alpha, "alpha")
        beta = _as_positive_array(self.beta, "beta")
        alpha, beta = np.broadcast_arrays(alpha, beta)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "beta", beta)

    @classmethod
    def _trusted(cls, alpha, beta) -> "Beta":
        # Gibbs builds a posterior per sweep; positive plus non-negative needs no re-validation
        instance = object.__new__(cls)
        object.__setattr__(instance, "alpha", alpha)
        object.__setattr__(instance, "beta", beta)
        return instance

    def update(self, successes, failures) -> "Beta":
        """Posterior after observing (possibly fractional, i.e. expected) counts.

        Parameters
        ----------
        successes, failures : float or array-like broadcastable to batch_shape
            Non-negative counts (not checked).
        """
        # not re-validated: this is the inner loop of Gibbs and VB, and counts come from our code
        successes = np.asarray(successes, float)
        failures = np.asarray(failures, float)
        alpha, beta = np.broadcast_arrays(self.alpha + successes, self.beta + failures)
        return Beta._trusted(alpha, beta)

    @property
    def concentrations(self) -> np.ndarray:
        """``(alpha, beta)`` stacked on a last axis of length 2."""
        return np.stack([self.alpha, self.beta], axis=-1)

    def mean(self) -> np.ndarray:
        return self.alpha / (self.alpha + self.beta)

    def var(self) -> np.ndarray:
        total = self.alpha + self.beta
        return self.alpha * self.beta / (total**2 * (total + 1.0))

    def mode(self) -> np.ndarray:
        """Mode of the density.

        For ``alpha, beta >= 1`` this is ``(alpha - 1) / (alpha + beta - 2)``. Where the
        density is flat (``alpha = beta = 1``: no information at all, as for a coin that
        no trial was assigned to under MLE) the mean 0.5 is returned, so that EM never
        produces 0/0. Where a concentration is below one the density is unbounded at a
        boundary, and that boundary (0 or 1) is returned.
        """
        alpha, beta = self.alpha, self.beta
        # (alpha - 1) + (beta - 1), not alpha + beta - 2: with beta = 1 the latter can round
        # below alpha - 1 and give a "mode" slightly above 1 (log1p(-mode) is then NaN)
        denominator = (alpha - 1.0) + (beta - 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            interior = (alpha - 1.0) / denominator
        flat = (alpha == 1.0) & (beta == 1.0)
        mode = np.where(flat, 0.5, interior)
        mode = np.where((alpha < 1.0) & (beta >= alpha), 0.0, mode)
        mode = np.where((beta < 1.0) & (alpha > beta), 1.0, mode)
        return mode

    def sample(self, rng: np.random.Generator, size=None) -> np.ndarray:
        """Draws of shape ``size + batch_shape`` (``size`` may be None or a tuple)."""
        shape = self.alpha.shape if size is None else tuple(np.atleast_1d(size)) + self.alpha.shape
        return rng.beta(self.alpha, self.beta, size=shape)

    def log_pdf(self, x) -> np.ndarray:
        x = np.asarray(x, float)
        return (
            special.xlogy(self.alpha - 1.0, x)
            + special.xlog1py(self.beta - 1.0, -x)
            - special.betaln(self.alpha, self.beta)
        )

    def expected_log(self) -> tuple[np.ndarray, np.ndarray]:
        """``(E[log x], E[log(1 - x)])``, the expectations mean-field VB needs."""
        digamma_total = special.digamma(self.alpha + self.beta)
        return special.digamma(self.alpha) - digamma_total, special.digamma(self.beta) - digamma_total

    def kl(self, other: "Beta") -> np.ndarray:
        """KL(self || other), elementwise over the batch."""
        e_log_x, e_log_1mx = self.expected_log()
        return (
            special.betaln(other.alpha, other.beta)
            - special.betaln(self.alpha, self.beta)
            + (self.alpha - other.alpha) * e_log_x
            + (self.beta - other.beta) * e_log_1mx
        )


@dataclass(frozen=True)
class Dirichlet:
    """Dirichlet(concentration) on the probability simplex, possibly batched.

    Parameters
    ----------
    concentration : array-like of shape (*batch_shape, n_categories)
        Positive concentrations; the last axis indexes categories.
    """

    concentration: np.ndarray

    def __post_init__(self):
        concentration = _as_positive_array(self.concentration, "concentration")
        if concentration.ndim < 1 or concentration.shape[-1] < 2:
            raise ValueError(
                "concentration must have a last axis of at least 2 categories, "
                f"got shape {concentration.shape}"
            )
        object.__setattr__(self, "concentration", concentration)

    @property
    def concentrations(self) -> np.ndarray:
        return self.concentration

    @property
    def n_categories(self) -> int:
        return self.concentration.shape[-1]

    def update(self, counts) -> "Dirichlet":
        """Posterior after observing (possibly expected) counts of shape broadcastable to
        ``(*batch_shape, n_categories)``."""
        counts = np.asarray(counts, float)
        # not re-validated: this is the inner loop of Gibbs and VB, and counts come from our code
        instance = object.__new__(Dirichlet)
        object.__setattr__(instance, "concentration", self.concentration + counts)
        return instance

    def mean(self) -> np.ndarray:
        return self.concentration / self.concentration.sum(axis=-1, keepdims=True)

    def mode(self) -> np.ndarray:
        """Mode of the density, ``(alpha_k - 1) / (sum(alpha) - K)`` when every alpha_k >= 1.

        Categories with ``alpha_k < 1`` sit at the boundary (probability 0); a batch element
        with no information at all (every ``alpha_k = 1``) gets the uniform vector.
        """
        excess = np.clip(self.concentration - 1.0, 0.0, None)
        total = excess.sum(axis=-1, keepdims=True)
        uniform = np.full_like(excess, 1.0 / self.n_categories)
        with np.errstate(invalid="ignore", divide="ignore"):
            mode = excess / total
        return np.where(total > 0, mode, uniform)

    def sample(self, rng: np.random.Generator, size=None) -> np.ndarray:
        """Draws of shape ``size + batch_shape + (n_categories,)``, via normalised Gammas."""
        batch = self.concentration.shape
        shape = batch if size is None else tuple(np.atleast_1d(size)) + batch
        gammas = rng.standard_gamma(np.broadcast_to(self.concentration, shape))
        return gammas / gammas.sum(axis=-1, keepdims=True)

    def log_pdf(self, x) -> np.ndarray:
        x = np.asarray(x, float)
        alpha = self.concentration
        log_norm = special.gammaln(alpha.sum(-1)) - special.gammaln(alpha).sum(-1)
        return log_norm + special.xlogy(alpha - 1.0, x).sum(-1)

    def expected_log(self) -> np.ndarray:
        """``E[log x_k]`` of shape ``(*batch_shape, n_categories)``."""
        alpha = self.concentration
        return special.digamma(alpha) - special.digamma(alpha.sum(-1, keepdims=True))

    def kl(self, other: "Dirichlet") -> np.ndarray:
        """KL(self || other), one value per batch element."""
        alpha, prior = self.concentration, other.concentration
        return (
            special.gammaln(alpha.sum(-1))
            - special.gammaln(alpha).sum(-1)
            - special.gammaln(prior.sum(-1))
            + special.gammaln(prior).sum(-1)
            + ((alpha - prior) * self.expected_log()).sum(-1)
        )
