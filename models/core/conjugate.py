"""Conjugate families, written once and shared by EM, Gibbs sampling and variational Bayes.

The three back-ends use the same object in three ways (the idea behind ``models/core/conjugate.py``
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
from functools import cached_property, lru_cache

import numpy as np
from scipy import special

__all__ = [
    "Beta",
    "Dirichlet",
    "Gamma",
    "InverseGamma",
    "MaskedDirichlet",
    "MultivariateT",
    "NormalInverseWishart",
    "apply_to_factors",
]


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


def _check_positive_pair(instance, first: str, second: str) -> None:
    """Validate two positive parameters of a frozen distribution and broadcast them together."""
    arrays = np.broadcast_arrays(_as_positive_array(getattr(instance, first), first),
                                 _as_positive_array(getattr(instance, second), second))
    for name, array in zip((first, second), arrays):
        object.__setattr__(instance, name, array)


def _frozen(value):
    """``value`` made read-only (an array) or left as it is (a NumPy scalar): what a cached
    property of an immutable distribution hands out, so that no caller can change it in place."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    return value


def _trusted(cls, **fields):
    """An instance of a frozen distribution built without validation: posteriors built in inner
    loops (Gibbs sweeps, EM and VB steps) from validated priors and non-negative counts."""
    instance = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(instance, name, value)
    return instance


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
        _check_positive_pair(self, "alpha", "beta")

    @classmethod
    def _trusted(cls, alpha, beta) -> "Beta":
        return _trusted(cls, alpha=alpha, beta=beta)

    def update(self, successes, failures) -> "Beta":
        """Posterior after observing (possibly fractional, i.e. expected) counts.

        Parameters
        ----------
        successes, failures : float or array-like broadcastable to batch_shape
            Non-negative counts (not checked).
        """
        # not re-validated: this is the inner loop of Gibbs and VB, and counts come from our code
        alpha = self.alpha + np.asarray(successes, float)
        beta = self.beta + np.asarray(failures, float)
        if alpha.shape != beta.shape:  # the common case (scalar counts) needs no broadcasting call
            alpha, beta = np.broadcast_arrays(alpha, beta)
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
        alpha_1, beta_1 = self.alpha - 1.0, self.beta - 1.0
        if x.size * 4 > int(np.prod(np.broadcast_shapes(x.shape, alpha_1.shape))):  # about one density per point
            return special.xlogy(alpha_1, x) + special.xlog1py(beta_1, -x) - self._log_beta_function
        # many densities at few points (a grid under a mixture of many Betas): the logarithms once
        # per point. xlogy(a, x) is a * log(x), and 0 where a = 0 (unless x is NaN); its log(x)
        # is xlogy(1, x), so the values are the same as elementwise
        log_x, log_rest = special.xlogy(1.0, x), special.xlog1py(1.0, -x)
        terms = []
        for exponent, log_value in ((alpha_1, log_x), (beta_1, log_rest)):
            with np.errstate(invalid="ignore"):  # 0 * -inf, replaced by 0 below
                term = exponent * log_value
            zero = exponent == 0
            if np.any(zero):
                term = np.where(zero & ~np.isnan(x), 0.0, term)
            terms.append(term)
        return terms[0] + terms[1] - self._log_beta_function

    def expected_log(self) -> tuple[np.ndarray, np.ndarray]:
        """``(E[log x], E[log(1 - x)])``, the expectations mean-field VB needs."""
        return self._expected_log

    # VB asks for both once per factor and iteration (the q(z) update and the KL term), and the
    # prior's normaliser every iteration: computed once per (immutable) distribution
    @cached_property
    def _expected_log(self) -> tuple[np.ndarray, np.ndarray]:
        digamma_total = special.digamma(self.alpha + self.beta)
        return (_frozen(special.digamma(self.alpha) - digamma_total),
                _frozen(special.digamma(self.beta) - digamma_total))

    @cached_property
    def _log_beta_function(self) -> np.ndarray:
        return _frozen(special.betaln(self.alpha, self.beta))

    def kl(self, other: "Beta") -> np.ndarray:
        """KL(self || other), elementwise over the batch."""
        e_log_x, e_log_1mx = self.expected_log()
        return (
            other._log_beta_function
            - self._log_beta_function
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
        return _trusted(Dirichlet, concentration=self.concentration + counts)

    def mean(self) -> np.ndarray:
        return self.concentration / self.concentration.sum(axis=-1, keepdims=True)

    def mode(self) -> np.ndarray:
        """Mode of the density, ``(alpha_k - 1) / (sum(alpha) - K)`` when every alpha_k >= 1.

        Categories with ``alpha_k < 1`` sit at the boundary (probability 0); a batch element
        with no information at all (every ``alpha_k = 1``) gets the uniform vector.
        """
        # EM's M-step every iteration: np.maximum, not np.clip (the same values, less dispatch),
        # and no errstate context: the rows without information divide by 1 and are replaced
        excess = np.maximum(self.concentration - 1.0, 0.0)
        total = excess.sum(axis=-1, keepdims=True)
        informed = total > 0
        mode = excess / np.where(informed, total, 1.0)
        return np.where(informed, mode, 1.0 / self.n_categories)

    def sample(self, rng: np.random.Generator, size=None) -> np.ndarray:
        """Draws of shape ``size + batch_shape + (n_categories,)``, via normalised Gammas."""
        batch = self.concentration.shape
        shape = batch if size is None else tuple(np.atleast_1d(size)) + batch
        # one draw (every Gibbs sweep) needs no broadcast view: the same gammas
        concentration = self.concentration if shape == batch else np.broadcast_to(self.concentration, shape)
        gammas = rng.standard_gamma(concentration)
        return gammas / gammas.sum(axis=-1, keepdims=True)

    def log_pdf(self, x) -> np.ndarray:
        x = np.asarray(x, float)
        alpha = self.concentration
        log_gamma_total, log_gamma_sum = self._log_gamma_terms
        log_norm = log_gamma_total - log_gamma_sum
        return log_norm + special.xlogy(alpha - 1.0, x).sum(-1)

    def expected_log(self) -> np.ndarray:
        """``E[log x_k]`` of shape ``(*batch_shape, n_categories)``."""
        return self._expected_log

    # computed once per (immutable) distribution: VB asks for them twice per iteration (q(z)
    # update and KL term), and for the prior's every iteration
    @cached_property
    def _expected_log(self) -> np.ndarray:
        alpha = self.concentration
        return _frozen(special.digamma(alpha) - special.digamma(alpha.sum(-1, keepdims=True)))

    @cached_property
    def _log_gamma_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """``(log Gamma(sum_k alpha_k), sum_k log Gamma(alpha_k))`` per batch element."""
        alpha = self.concentration
        return _frozen(special.gammaln(alpha.sum(-1))), _frozen(special.gammaln(alpha).sum(-1))

    def kl(self, other: "Dirichlet") -> np.ndarray:
        """KL(self || other), one value per batch element."""
        alpha, prior = self.concentration, other.concentration
        log_gamma_total, log_gamma_sum = self._log_gamma_terms
        prior_gamma_total, prior_gamma_sum = other._log_gamma_terms
        return (
            log_gamma_total
            - log_gamma_sum
            - prior_gamma_total
            + prior_gamma_sum
            + ((alpha - prior) * self.expected_log()).sum(-1)
        )


@dataclass(frozen=True)
class Gamma:
    """Gamma(shape, rate) distribution on (0, inf), possibly batched: the conjugate prior of a
    Poisson rate.

    The density is ``rate^shape / Gamma(shape) x^(shape - 1) exp(-rate x)`` (scipy's
    ``stats.gamma(shape, scale=1 / rate)``). After observing counts summing to ``S`` over an
    exposure ``n`` (the number of observations, or their total weight) the posterior is
    ``Gamma(shape + S, rate + n)``.

    Parameters
    ----------
    shape, rate : float or array-like of the same shape (batch_shape)
        Positive; ``shape`` acts as a prior total count, ``rate`` as a prior number of
        observations. Only :meth:`flat` builds ``rate = 0``.
    """

    shape: np.ndarray
    rate: np.ndarray

    def __post_init__(self):
        _check_positive_pair(self, "shape", "rate")

    @classmethod
    def _trusted(cls, shape, rate) -> "Gamma":
        return _trusted(cls, shape=shape, rate=rate)

    @classmethod
    def flat(cls, batch_shape: tuple[int, ...] = ()) -> "Gamma":
        """The improper limit Gamma(1, 0), a flat density on (0, inf): updated by counts summing
        to ``S`` over ``n > 0`` observations its mode is ``S / n``, the maximum-likelihood rate.
        It has no mode, mean or draws of its own (``rate = 0``), and is only meant to be updated."""
        return cls._trusted(np.ones(batch_shape), np.zeros(batch_shape))

    def update(self, total, count) -> "Gamma":
        """Posterior after observing (possibly fractional, i.e. expected) counts.

        Parameters
        ----------
        total : float or array-like broadcastable to batch_shape
            The sum of the observed counts, ``S``.
        count : float or array-like broadcastable to batch_shape
            How many observations (or their total weight), ``n``.
        """
        # not re-validated: this is the inner loop of Gibbs and VB, and counts come from our code
        shape, rate = np.broadcast_arrays(self.shape + np.asarray(total, float), self.rate + np.asarray(count, float))
        return Gamma._trusted(shape, rate)

    @property
    def concentrations(self) -> np.ndarray:
        """The shapes: as for a Beta's or Dirichlet's concentrations, a value below one makes the
        density unbounded at the boundary (at 0), where EM's MAP would not exist."""
        return self.shape

    def _check_proper(self, what: str) -> None:
        if np.any(self.rate <= 0):
            raise ValueError(
                f"a Gamma with rate 0 (the flat prior, not updated by any observation) has no {what}"
            )

    def mean(self) -> np.ndarray:
        self._check_proper("mean")
        return self.shape / self.rate

    def var(self) -> np.ndarray:
        self._check_proper("variance")
        return self.shape / self.rate**2

    def mode(self) -> np.ndarray:
        """Mode of the density, ``(shape - 1) / rate`` for ``shape >= 1``, and 0 (where the
        density is unbounded or largest) for ``shape < 1``.

        Raises
        ------
        ValueError
            Where ``rate = 0``: the flat prior :meth:`flat` updated by no observation (a component
            with no weight under maximum likelihood) has no mode.
        """
        self._check_proper("mode")
        return np.where(self.shape >= 1.0, (self.shape - 1.0) / self.rate, 0.0)

    def sample(self, rng: np.random.Generator, size=None) -> np.ndarray:
        """Draws of shape ``size + batch_shape`` (``size`` may be None or a tuple)."""
        self._check_proper("draws")
        shape = self.shape.shape if size is None else tuple(np.atleast_1d(size)) + self.shape.shape
        return rng.gamma(np.broadcast_to(self.shape, shape)) / self.rate

    def log_pdf(self, x) -> np.ndarray:
        x = np.asarray(x, float)
        return (
            special.xlogy(self.shape, self.rate)
            - special.gammaln(self.shape)
            + special.xlogy(self.shape - 1.0, x)
            - self.rate * x
        )

    def expected_log(self) -> np.ndarray:
        """``E[log x] = digamma(shape) - log(rate)``, what mean-field VB needs besides the mean."""
        return special.digamma(self.shape) - np.log(self.rate)

    def kl(self, other: "Gamma") -> np.ndarray:
        """KL(self || other), elementwise over the batch:
        ``(a_q - a_p) psi(a_q) - log Gamma(a_q) + log Gamma(a_p) + a_p (log b_q - log b_p)
        + a_q (b_p - b_q) / b_q`` for q = Gamma(a_q, b_q), p = Gamma(a_p, b_p)."""
        a_q, b_q, a_p, b_p = self.shape, self.rate, other.shape, other.rate
        return (
            (a_q - a_p) * special.digamma(a_q)
            - special.gammaln(a_q)
            + special.gammaln(a_p)
            + a_p * (np.log(b_q) - np.log(b_p))
            + a_q * (b_p - b_q) / b_q
        )


@dataclass(frozen=True)
class InverseGamma:
    """InverseGamma(shape, scale) distribution on (0, inf), possibly batched: the conjugate prior of
    a Gaussian variance with known mean.

    The density is ``scale^shape / Gamma(shape) x^(-shape - 1) exp(-scale / x)`` (scipy's
    ``stats.invgamma(shape, scale=scale)``); ``1 / x`` is Gamma(shape, rate=scale). After ``n``
    Gaussian residuals whose squares sum to ``S`` the posterior is
    ``InverseGamma(shape + n / 2, scale + S / 2)``.

    Parameters
    ----------
    shape, scale : float or array-like of the same shape (batch_shape)
        Positive. Only :meth:`flat` builds the improper ``(-1, 0)``.
    """

    shape: np.ndarray
    scale: np.ndarray

    def __post_init__(self):
        shape = _as_positive_array(self.shape, "shape")
        scale = _as_positive_array(self.scale, "scale")
        shape, scale = np.broadcast_arrays(shape, scale)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "scale", scale)

    @classmethod
    def _trusted(cls, shape, scale) -> "InverseGamma":
        instance = object.__new__(cls)
        object.__setattr__(instance, "shape", np.asarray(shape, float))
        object.__setattr__(instance, "scale", np.asarray(scale, float))
        return instance

    @classmethod
    def flat(cls, batch_shape: tuple[int, ...] = ()) -> "InverseGamma":
        """The improper limit InverseGamma(-1, 0), a flat density on (0, inf): updated by ``n``
        squared residuals summing to ``S`` its mode is ``S / n``, the maximum-likelihood variance.
        It is only meant to be updated (no mode, mean or draws of its own)."""
        return cls._trusted(-np.ones(batch_shape), np.zeros(batch_shape))

    def update(self, sum_sq, count) -> "InverseGamma":
        """Posterior after ``count`` residuals (possibly expected) with squares summing to ``sum_sq``."""
        shape, scale = np.broadcast_arrays(self.shape + 0.5 * np.asarray(count, float),
                                           self.scale + 0.5 * np.asarray(sum_sq, float))
        return InverseGamma._trusted(shape, scale)

    def _check_proper(self, what: str, min_shape: float = 0.0) -> None:
        if np.any(self.scale <= 0) or np.any(self.shape <= min_shape):
            raise ValueError(
                f"an InverseGamma needs scale > 0 and shape > {min_shape:g} for its {what}; got shape "
                f"{self.shape!r}, scale {self.scale!r} (the flat prior updated by too few residuals)"
            )

    def mean(self) -> np.ndarray:
        """``scale / (shape - 1)``, for ``shape > 1``."""
        self._check_proper("mean", 1.0)
        return self.scale / (self.shape - 1.0)

    def var(self) -> np.ndarray:
        """``scale^2 / ((shape - 1)^2 (shape - 2))``, for ``shape > 2``."""
        self._check_proper("variance", 2.0)
        return self.scale**2 / ((self.shape - 1.0) ** 2 * (self.shape - 2.0))

    def mode(self) -> np.ndarray:
        """``scale / (shape + 1)``: always defined for a proper distribution (the density vanishes
        at 0 however small the shape), and for the flat prior once ``shape > -1``."""
        if np.any(self.scale <= 0) or np.any(self.shape <= -1.0):
            raise ValueError("the flat InverseGamma prior updated by no residual has no mode")
        return self.scale / (self.shape + 1.0)

    def sample(self, rng: np.random.Generator, size=None) -> np.ndarray:
        """Draws of shape ``size + batch_shape`` (``size`` may be None or a tuple)."""
        self._check_proper("draws")
        shape = self.shape.shape if size is None else tuple(np.atleast_1d(size)) + self.shape.shape
        return self.scale / rng.gamma(np.broadcast_to(self.shape, shape))

    def log_pdf(self, x) -> np.ndarray:
        x = np.asarray(x, float)
        with np.errstate(divide="ignore"):
            return (special.xlogy(self.shape, self.scale) - special.gammaln(self.shape)
                    - (self.shape + 1.0) * np.log(x) - self.scale / x)

    def expected_inverse(self) -> np.ndarray:
        """``E[1 / x] = shape / scale`` (the mean of the Gamma precision)."""
        return self.shape / self.scale

    def expected_log(self) -> np.ndarray:
        """``E[log x] = log(scale) - digamma(shape)``."""
        return np.log(self.scale) - special.digamma(self.shape)

    def kl(self, other: "InverseGamma") -> np.ndarray:
        """KL(self || other), elementwise: the KL divergence of the Gamma(shape, rate=scale)
        precisions, which a change of variables leaves unchanged."""
        return Gamma._trusted(self.shape, self.scale).kl(Gamma._trusted(other.shape, other.scale))


# -- Normal-Inverse-Wishart ---------------------------------------------------------------------
def _multidigamma(a, dim: int) -> np.ndarray:
    """psi_D(a) = sum_{i=1..D} psi(a + (1 - i) / 2), elementwise over ``a``."""
    a = np.asarray(a, float)
    return special.digamma(a[..., None] + (1.0 - np.arange(1, dim + 1)) / 2.0).sum(-1)


@lru_cache(maxsize=16)
def _strictly_lower(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.tril_indices(dim, -1)``, read-only and built once per dim (every Gibbs sweep of a
    Gaussian model draws a Bartlett factor)."""
    return tuple(_frozen(index) for index in np.tril_indices(dim, -1))


def log_det_spd(matrix: np.ndarray) -> np.ndarray:
    """log|A| of symmetric positive-definite matrices (..., D, D), via Cholesky."""
    chol = np.linalg.cholesky(matrix)
    return 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)


def _symmetrize(matrix: np.ndarray) -> np.ndarray:
    return 0.5 * (matrix + np.swapaxes(matrix, -1, -2))


class MultivariateT(tuple):
    """Parameters ``(df, loc, shape)`` of a (possibly batched) multivariate Student t.

    ``df`` has shape (*batch,), ``loc`` (*batch, D), ``shape`` (*batch, D, D); the covariance is
    ``shape * df / (df - 2)`` for ``df > 2``. :meth:`log_pdf` evaluates it; for a single
    distribution ``scipy.stats.multivariate_t(loc, shape, df)`` is the same law.
    """

    def __new__(cls, df, loc, shape):
        return super().__new__(cls, (np.asarray(df, float), np.asarray(loc, float), np.asarray(shape, float)))

    df = property(lambda self: self[0])
    loc = property(lambda self: self[1])
    shape = property(lambda self: self[2])

    def log_pdf(self, x) -> np.ndarray:
        """Log density at ``x`` of shape (..., D) broadcastable against the batch."""
        x = np.asarray(x, float)
        dim = self.loc.shape[-1]
        chol = np.linalg.cholesky(self.shape)
        diff = x - self.loc
        z = np.linalg.solve(chol, diff[..., None])[..., 0]
        maha = np.sum(z**2, -1)
        half_log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
        df = self.df
        return (
            special.gammaln((df + dim) / 2) - special.gammaln(df / 2) - dim / 2 * np.log(df * np.pi)
            - half_log_det - (df + dim) / 2 * np.log1p(maha / df)
        )


@dataclass(frozen=True)
class NormalInverseWishart:
    """Normal-Inverse-Wishart NIW(m, kappa, nu, S) over (mu, Sigma), possibly batched:

        Sigma ~ IW(nu, S),   mu | Sigma ~ N(m, Sigma / kappa),

    with density ``N(mu | m, Sigma/kappa) IW(Sigma | nu, S)``, which is proportional to
    ``|Sigma|^{-(nu + D + 2)/2} exp(-tr(Sigma^{-1} [S + kappa (mu - m)(mu - m)^T]) / 2)``.
    ``S`` is a scale (a prior scatter), not a covariance: ``E[Sigma] = S / (nu - D - 1)``.

    Parameters
    ----------
    m : array-like of shape (*batch, D)
        Location of mu.
    kappa : float or array-like of shape (*batch,)
        Pseudo-observations behind ``m``; > 0.
    nu : float or array-like of shape (*batch,)
        Degrees of freedom; > D - 1.
    S : array-like of shape (*batch, D, D)
        Symmetric positive-definite scale matrix.

    The batch dims index independent distributions (a mixture's components). ``mode()``,
    ``mean()`` and ``sample()`` return the pair ``(mu, Sigma)``, so the factor is keyed by the
    tuple of names (``{("mu", "Sigma"): niw}``) in :func:`apply_to_factors`.
    """

    m: np.ndarray
    kappa: np.ndarray
    nu: np.ndarray
    S: np.ndarray

    def __post_init__(self):
        m = np.asarray(self.m, float)
        S = np.asarray(self.S, float)
        if m.ndim < 1 or S.ndim < 2 or S.shape[-2:] != (m.shape[-1], m.shape[-1]):
            raise ValueError(f"m must have shape (*batch, D) and S (*batch, D, D); got m {m.shape}, S {S.shape}")
        dim = m.shape[-1]
        batch = np.broadcast_shapes(m.shape[:-1], S.shape[:-2], np.shape(self.kappa), np.shape(self.nu))
        kappa = np.broadcast_to(_as_positive_array(self.kappa, "kappa"), batch)
        nu = np.broadcast_to(np.asarray(self.nu, float), batch)
        if not np.all(np.isfinite(m)):
            raise ValueError("m must be finite")
        if not np.all(np.isfinite(nu)) or np.any(nu <= dim - 1):
            raise ValueError(f"nu must be finite and > D - 1 = {dim - 1}, got {self.nu!r}")
        if not np.all(np.isfinite(S)) or not np.allclose(S, np.swapaxes(S, -1, -2), rtol=1e-10, atol=1e-12):
            raise ValueError("S must be a finite symmetric matrix")
        try:
            np.linalg.cholesky(S)
        except np.linalg.LinAlgError:
            raise ValueError("S must be positive definite") from None
        object.__setattr__(self, "m", np.broadcast_to(m, batch + (dim,)))
        object.__setattr__(self, "kappa", kappa)
        object.__setattr__(self, "nu", nu)
        object.__setattr__(self, "S", np.broadcast_to(_symmetrize(S), batch + (dim, dim)))

    @classmethod
    def _trusted(cls, m, kappa, nu, S) -> "NormalInverseWishart":
        return _trusted(cls, **{name: np.asarray(value, float) for name, value in zip("m kappa nu S".split(), (m, kappa, nu, S))})

    @classmethod
    def flat(cls, dim: int, batch_shape: tuple = ()) -> "NormalInverseWishart":
        """The improper limit kappa = 0, nu = -(D + 2), S = 0, i.e. p(mu, Sigma) = constant.

        Its ``update(...).mode()`` is the maximum-likelihood estimate (xbar, scatter / N), which
        is how EM's ``mle=True`` reuses the same algebra. Only ``update`` and ``mode`` are
        meaningful; the posterior is proper only when N > 2D + 1 and the mode is singular when
        the scatter is (N <= D), which callers must check.
        """
        batch_shape = tuple(batch_shape)
        return cls._trusted(
            np.zeros(batch_shape + (dim,)), np.zeros(batch_shape), np.full(batch_shape, -(dim + 2.0)),
            np.zeros(batch_shape + (dim, dim)),
        )

    # -- shape ----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.m.shape[-1]

    @property
    def batch_shape(self) -> tuple:
        return self.m.shape[:-1]

    # -- conjugate update -----------------------------------------------------------------
    def update(self, count, mean, scatter) -> "NormalInverseWishart":
        """Posterior after observing Gaussian data summarised by (weighted) statistics.

        Parameters
        ----------
        count : float or array-like of shape (*batch,)
            N, the (possibly expected) number of observations.
        mean : array-like of shape (*batch, D)
            Their (weighted) mean xbar; ignored where N = 0.
        scatter : array-like of shape (*batch, D, D)
            Their (weighted) scatter about xbar (see :func:`~latentzoo.models.gaussian.stats.component_stats`).

        Returns
        -------
        NormalInverseWishart
            kappa_N = kappa + N, m_N = (kappa m + N xbar) / kappa_N, nu_N = nu + N,
            S_N = S + scatter + (kappa N / kappa_N)(xbar - m)(xbar - m)^T (Murphy 2012, eq. 4.209-4.214).
        """
        count = np.asarray(count, float)
        mean = np.asarray(mean, float)
        scatter = np.asarray(scatter, float)
        kappa_n = self.kappa + count
        # N xbar rather than the mean alone, so that N = 0 contributes nothing even if xbar is NaN
        weighted_sum = np.where(count[..., None] > 0, count[..., None] * mean, 0.0)
        m_n = (self.kappa[..., None] * self.m + weighted_sum) / kappa_n[..., None]
        with np.errstate(invalid="ignore", divide="ignore"):
            shrink = np.where(kappa_n > 0, self.kappa * count / kappa_n, 0.0)
        diff = np.where(count[..., None] > 0, mean - self.m, 0.0)
        S_n = self.S + scatter + shrink[..., None, None] * diff[..., :, None] * diff[..., None, :]
        return NormalInverseWishart._trusted(m_n, kappa_n, self.nu + count, _symmetrize(S_n))

    # -- summaries ------------------------------------------------------------------------
    def mode(self) -> tuple[np.ndarray, np.ndarray]:
        """The joint mode of p(mu, Sigma): ``(m, S / (nu + D + 2))``.

        The density is proportional to |Sigma|^{-(nu + D + 2)/2} exp(-tr(Sigma^{-1} A)/2) with
        A = S + kappa (mu - m)(mu - m)^T; mu = m minimises A, and the maximiser in Sigma of
        |Sigma|^{-c/2} exp(-tr(Sigma^{-1} A)/2) is A / c. The extra +1 over the mode of the
        IW marginal (S / (nu + D + 1)) is the |Sigma|^{-1/2} of N(mu | m, Sigma/kappa).

        Returns
        -------
        mu : ndarray of shape (*batch, D)
        Sigma : ndarray of shape (*batch, D, D)
        """
        return self.m.copy(), self.S / (self.nu + self.dim + 2.0)[..., None, None]

    def mean(self) -> tuple[np.ndarray, np.ndarray]:
        """``(E[mu], E[Sigma]) = (m, S / (nu - D - 1))``; E[Sigma] exists only for nu > D + 1.

        Raises
        ------
        ValueError
            If some nu <= D + 1 (the mean of Sigma is infinite).
        """
        if np.any(self.nu <= self.dim + 1):
            raise ValueError(f"E[Sigma] is infinite unless nu > D + 1 = {self.dim + 1}; got nu = {self.nu}")
        return self.m.copy(), self.S / (self.nu - self.dim - 1.0)[..., None, None]

    def marginal_mu(self) -> MultivariateT:
        """The marginal of mu: multivariate t with df = nu - D + 1, location m and shape
        S / (kappa (nu - D + 1)) (Murphy 2012, eq. 4.218)."""
        df = self.nu - self.dim + 1.0
        return MultivariateT(df, self.m, self.S / (self.kappa * df)[..., None, None])

    def posterior_predictive(self) -> MultivariateT:
        """The law of a new observation x ~ N(mu, Sigma) with (mu, Sigma) from this NIW:
        multivariate t with df = nu - D + 1, location m and shape S (kappa + 1) / (kappa df)
        (Murphy 2012, eq. 4.219)."""
        df = self.nu - self.dim + 1.0
        return MultivariateT(df, self.m, self.S * ((self.kappa + 1.0) / (self.kappa * df))[..., None, None])

    # -- sampling and density -------------------------------------------------------------
    def sample(self, rng: np.random.Generator, size=None) -> tuple[np.ndarray, np.ndarray]:
        """Exact draws of (mu, Sigma).

        Sigma ~ IW(nu, S) by the Bartlett decomposition: with S = L L^T and A lower triangular,
        A_ii = sqrt(chi2(nu - i)) (i = 0..D-1), A_ij ~ N(0, 1) below the diagonal, the precision
        L^{-T} A A^T L^{-1} is Wishart(nu, S^{-1}), so Sigma = (L A^{-T})(L A^{-T})^T. Then
        mu = m + chol(Sigma) z / sqrt(kappa).

        Parameters
        ----------
        rng : numpy.random.Generator
        size : int or tuple, optional

        Returns
        -------
        mu : ndarray of shape (*size, *batch, D)
        Sigma : ndarray of shape (*size, *batch, D, D)
        """
        dim = self.dim
        shape = (() if size is None else tuple(np.atleast_1d(size))) + self.batch_shape
        degrees = self.nu[..., None] - np.arange(dim)  # (*batch, D)
        bartlett = np.zeros(shape + (dim, dim))
        diagonal = np.sqrt(rng.chisquare(np.broadcast_to(degrees, shape + (dim,))))
        bartlett[..., np.arange(dim), np.arange(dim)] = diagonal
        rows, cols = _strictly_lower(dim)
        bartlett[..., rows, cols] = rng.standard_normal(shape + (rows.size,))
        factor = np.linalg.cholesky(self.S) @ np.swapaxes(np.linalg.inv(bartlett), -1, -2)
        Sigma = _symmetrize(factor @ np.swapaxes(factor, -1, -2))
        z = rng.standard_normal(shape + (dim,))
        mu = self.m + np.einsum("...ij,...j->...i", np.linalg.cholesky(Sigma), z) / np.sqrt(self.kappa)[..., None]
        return mu, Sigma

    def log_pdf(self, mu, Sigma) -> np.ndarray:
        """log N(mu | m, Sigma / kappa) + log IW(Sigma | nu, S), shape broadcast(*batch)."""
        mu = np.asarray(mu, float)
        Sigma = np.asarray(Sigma, float)
        dim = self.dim
        chol = np.linalg.cholesky(Sigma)
        log_det = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
        z = np.linalg.solve(chol, (mu - self.m)[..., None])[..., 0]
        chol_inv = np.linalg.inv(chol)
        trace = np.einsum("...ij,...jk,...ik->...", chol_inv, self.S, chol_inv)  # tr(S Sigma^{-1})
        log_normal = -0.5 * dim * np.log(2 * np.pi) + 0.5 * dim * np.log(self.kappa) - 0.5 * log_det - 0.5 * self.kappa * np.sum(z**2, -1)
        log_iw = (
            0.5 * self.nu * self._log_det_S - 0.5 * self.nu * dim * np.log(2.0) - self._multigammaln_half_nu
            - 0.5 * (self.nu + dim + 1.0) * log_det - 0.5 * trace
        )
        return log_normal + log_iw

    # computed once per (immutable) distribution: EM's log prior evaluates the prior's density,
    # and VB's KL term the prior's normaliser, every iteration
    @cached_property
    def _log_det_S(self) -> np.ndarray:
        return _frozen(np.asarray(log_det_spd(self.S)))

    @cached_property
    def _multigammaln_half_nu(self) -> np.ndarray:
        return _frozen(np.asarray(special.multigammaln(self.nu / 2, self.dim)))

    # -- variational quantities (Bishop 2006, section 10.2, with Lambda = Sigma^{-1}) -----------
    def kl(self, other: "NormalInverseWishart") -> np.ndarray:
        """KL(self || other), one value per batch element.

        KL of the Wishart laws of the precisions plus the expected KL of the conditional
        normals: with q = self and p = other::

            KL = KL(W(nu_q, S_q^{-1}) || W(nu_p, S_p^{-1}))
                 + D/2 (kappa_p/kappa_q - 1 - log(kappa_p/kappa_q)) + kappa_p nu_q / 2 (m_q - m_p)^T S_q^{-1} (m_q - m_p).
        """
        dim = self.dim
        nu_q, nu_p = self.nu, other.nu
        chol_q = np.linalg.cholesky(self.S)
        # tr(V_p^{-1} V_q) with V = S^{-1}: tr(S_p S_q^{-1})
        chol_q_inv = np.linalg.inv(chol_q)
        trace = np.einsum("...ij,...jk,...ik->...", chol_q_inv, other.S, chol_q_inv)
        log_det_ratio = other._log_det_S - self._log_det_S  # log|V_p^{-1} V_q| = log|S_p| - log|S_q|
        kl_wishart = (
            -0.5 * nu_p * log_det_ratio + 0.5 * nu_q * (trace - dim)
            + other._multigammaln_half_nu - self._multigammaln_half_nu
            + 0.5 * (nu_q - nu_p) * _multidigamma(nu_q / 2, dim)
        )
        ratio = other.kappa / self.kappa
        z = np.linalg.solve(chol_q, (self.m - other.m)[..., None])[..., 0]
        kl_normal = 0.5 * dim * (ratio - 1.0 - np.log(ratio)) + 0.5 * other.kappa * nu_q * np.sum(z**2, -1)
        return kl_wishart + kl_normal


@dataclass(frozen=True)
class MaskedDirichlet:
    """Independent Dirichlets on the allowed entries of each row of a (..., K, M) matrix.

    Entries where ``mask`` is False are exactly zero in every mean, mode and draw. A row with a
    single allowed entry is the point mass on it. The interface matches
    :class:`~latentzoo.models.core.conjugate.Dirichlet` (batch shape = leading dims + rows).

    Parameters
    ----------
    concentration : ndarray of shape (*batch, K, M)
        Positive on allowed entries; masked entries are ignored.
    mask : bool ndarray of shape (K, M)
        Allowed entries; every row has at least one.
    """

    concentration: np.ndarray
    mask: np.ndarray

    @property
    def concentrations(self) -> np.ndarray:
        """The allowed concentrations, flattened (read by EM's check that the MAP exists)."""
        return np.asarray(self.concentration)[..., self.mask]

    @property
    def _alpha(self) -> np.ndarray:
        # masked entries set to 1 so that gammaln/digamma of them are finite (and then ignored)
        return np.where(self.mask, self.concentration, 1.0)

    def update(self, counts) -> "MaskedDirichlet":
        return MaskedDirichlet(self.concentration + np.asarray(counts, float), self.mask)

    def select(self, index) -> "MaskedDirichlet":
        """The distributions at ``index`` of the leading batch axis."""
        return MaskedDirichlet(self.concentration[index], self.mask)

    def mean(self) -> np.ndarray:
        alpha = np.where(self.mask, self.concentration, 0.0)
        return alpha / alpha.sum(axis=-1, keepdims=True)

    def mode(self) -> np.ndarray:
        """Per row ``(alpha_k - 1) / sum(alpha - 1)`` over allowed entries; uniform over the
        allowed entries where a row carries no information (all alpha = 1), as ``Dirichlet.mode``."""
        excess = np.where(self.mask, np.maximum(self.concentration - 1.0, 0.0), 0.0)
        total = excess.sum(axis=-1, keepdims=True)
        informed = total > 0
        # as Dirichlet.mode: rows without information divide by 1 and are replaced
        mode = excess / np.where(informed, total, 1.0)
        return np.where(informed, mode, self._uniform)

    @cached_property
    def _uniform(self) -> np.ndarray:
        """The uniform distribution over each row's allowed entries, (K, M)."""
        return _frozen(self.mask / self.mask.sum(axis=-1, keepdims=True))

    def sample(self, rng: np.random.Generator, size=None) -> np.ndarray:
        """Draws of shape ``size + batch + (K, M)`` via normalised Gammas; masked entries 0."""
        alpha = self._alpha
        shape = alpha.shape if size is None else tuple(np.atleast_1d(size)) + alpha.shape
        # one draw (every Gibbs sweep) needs no broadcast view: the same gammas
        gammas = np.where(self.mask, rng.standard_gamma(alpha if shape == alpha.shape else np.broadcast_to(alpha, shape)),
                          0.0)
        return gammas / gammas.sum(axis=-1, keepdims=True)

    def log_pdf(self, x) -> np.ndarray:
        """Log-density per row, shape ``batch + (K,)`` (masked entries of ``x`` ignored)."""
        alpha = self._alpha
        x = np.asarray(x, float)
        return self._own_log_normaliser + np.where(self.mask, special.xlogy(alpha - 1.0, x), 0.0).sum(-1)

    def _log_normaliser(self, alpha) -> np.ndarray:
        # log Gamma(sum alpha) - sum log Gamma(alpha) over the allowed entries of each row
        return special.gammaln(np.where(self.mask, alpha, 0.0).sum(-1)) - np.where(
            self.mask, special.gammaln(alpha), 0.0
        ).sum(-1)

    # computed once per (immutable) distribution: EM's log prior, VB's KL term and q(z) update
    # ask for them every iteration
    @cached_property
    def _own_log_normaliser(self) -> np.ndarray:
        return _frozen(self._log_normaliser(self._alpha))

    def expected_log(self) -> np.ndarray:
        """``E[log x]``; ``-inf`` on masked entries (so ``exp`` of it is exactly 0)."""
        return self._expected_log

    @cached_property
    def _expected_log(self) -> np.ndarray:
        alpha = self._alpha
        total = np.where(self.mask, alpha, 0.0).sum(-1, keepdims=True)
        return _frozen(np.where(self.mask, special.digamma(alpha) - special.digamma(total), -np.inf))

    def kl(self, other: "MaskedDirichlet") -> np.ndarray:
        """KL(self || other) per row, shape ``batch + (K,)``."""
        alpha, prior = self._alpha, other._alpha
        expected = np.where(self.mask, self.expected_log(), 0.0)
        return (
            self._own_log_normaliser
            - other._own_log_normaliser
            + np.where(self.mask, (alpha - prior) * expected, 0.0).sum(-1)
        )
