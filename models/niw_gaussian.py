"""A multivariate Gaussian with a Normal-Inverse-Wishart prior: MLE, MAP and the exact posterior.

    Sigma ~ IW(nu0, S0),   mu | Sigma ~ N(m0, Sigma / kappa0),   x_i | mu, Sigma ~ N(mu, Sigma).

The prior is conjugate, so everything is in closed form (Murphy 2012, section 4.6.3): the
posterior is NIW(m_N, kappa_N, nu_N, S_N), the MAP is its joint mode, the marginal of mu and the
posterior predictive are multivariate t, and the marginal likelihood is a ratio of normalisers.
That makes this model the zoo's yardstick: every approximate back-end can be measured against
the ``exact`` one.

The data-driven prior (seed 001, after Murphy 2012, section 4.6.3.2)
--------------------------------------------------------------------
Any of ``m0``, ``nu0``, ``S0`` left as None is filled from the data being fitted:

* ``m0 = xbar`` (the sample mean), with ``kappa0 = 0.01`` by default: the seed says "0 or a
  very small value"; 0 would make the prior of mu improper (no PyMC declaration, no evidence),
  0.01 is Murphy's choice and weighs m0 as one hundredth of an observation;
* ``S0 = diag(scatter) / N``, the diagonal of the maximum-likelihood covariance (the seed's
  ``diag(S_xbar) / N``): the prior keeps the per-feature scales and none of the correlations;
* ``nu0 = D + 2``, the smallest integer for which E[Sigma] = S0 / (nu0 - D - 1) exists, and then
  E[Sigma] = S0: the weakest proper prior centred on the diagonal covariance.

The MAP covariance is then (S0 + scatter + small term) / (N + 2D + 4): the MLE shrunk towards
its own diagonal, positive definite for any N >= 2, which is what makes it usable when N <= D.

The model holds no data, so the data-driven values are resolved by the methods that get data
(:meth:`NIWGaussian.resolved_prior`, :meth:`NIWGaussian.with_data_prior`). The data-free
hooks :meth:`~NIWGaussian.prior` and :meth:`~NIWGaussian.log_prior` cannot, and raise for a
data-driven model: MAP-EM (which calls them) needs ``model.with_data_prior(data)`` (or
``mle=True``); every other back-end takes the data-driven model as it is.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.special import multigammaln

from .base import LatentModel, as_tuple, check_positive, check_rng, check_spd, numeric_array
from .conjugate import MultivariateT, NormalInverseWishart, _log_det_spd, gaussian_stats
from .conjugate_mixture import ConjugateMixture

__all__ = ["NIWGaussian", "DATA_DRIVEN_KAPPA0"]

#: kappa0 of the data-driven prior (Murphy 2012, section 4.6.3.2)
DATA_DRIVEN_KAPPA0 = 0.01
NAMES = ("mu", "Sigma")


def _check_vector(value, name: str) -> np.ndarray:
    array = numeric_array(value, name, "a 1-D array of numbers")
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of shape (D,), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return array


def _check_spd(value, name: str, dim: int | None = None) -> np.ndarray:
    """A symmetric positive-definite (D, D) matrix, or a ValueError/TypeError naming ``name``."""
    array = numeric_array(value, name, "a (D, D) array of numbers")
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise ValueError(f"{name} must be a square (D, D) matrix, got shape {array.shape}")
    if dim is not None and array.shape[0] != dim:
        raise ValueError(f"{name} must have shape ({dim}, {dim}) to match D = {dim}, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return check_spd(array, name)


class NIWHyperparameters:
    """The Normal-Inverse-Wishart hyperparameters ``m0``, ``kappa0``, ``nu0``, ``S0`` shared by
    :class:`NIWGaussian` and :class:`~latentzoo.models.gaussian_mixture.GaussianMixture`
    (dataclass fields of those classes; None = filled from the data)."""

    def _check_niw_hyperparameters(self) -> None:
        """Validate and freeze the hyperparameters (call from ``__post_init__``)."""
        dim = None
        if self.m0 is not None:
            m0 = _check_vector(self.m0, "m0")
            dim = m0.size
            object.__setattr__(self, "m0", as_tuple(m0))
        object.__setattr__(self, "kappa0", check_positive(self.kappa0, "kappa0"))
        if self.S0 is not None:
            S0 = _check_spd(self.S0, "S0", dim)
            dim = S0.shape[0]
            object.__setattr__(self, "S0", as_tuple(S0))
        if self.nu0 is not None:
            nu0 = check_positive(self.nu0, "nu0")
            if dim is not None and nu0 <= dim - 1:
                raise ValueError(f"nu0 must be > D - 1 = {dim - 1} (D = {dim}), got {nu0}")
            object.__setattr__(self, "nu0", nu0)

    def _check_observations(self, data, min_rows: int, too_few: str = "") -> np.ndarray:
        """Gaussian observations as a read-only float64 (N, D) array with N >= ``min_rows`` and D
        matching the hyperparameters; ``too_few`` is the error message when N is too small."""
        if isinstance(data, np.ndarray) and data.dtype == np.float64 and not data.flags.writeable and data.ndim == 2:
            # our own validated output (read-only): skip the copy, keep the cheap checks
            if data.shape[0] >= min_rows and data.shape[1] >= 1 and (self.dim is None or data.shape[1] == self.dim):
                if np.all(np.isfinite(data)):
                    return data
        if isinstance(data, str | bytes) or data is None or isinstance(data, dict):
            raise TypeError(f"data must be a 2-D numeric array of shape (N, D), got {type(data).__name__}")
        try:
            array = np.asarray(data)
        except (TypeError, ValueError) as error:
            raise TypeError(f"data must be a 2-D numeric array of shape (N, D), could not read it: {error}") from None
        if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise TypeError(f"data must be a 2-D array of real numbers, got dtype {array.dtype}")
        if array.ndim != 2:
            hint = " (use data.reshape(-1, 1) for one feature)" if array.ndim == 1 else ""
            raise ValueError(f"data must be 2-D of shape (N, D), got shape {array.shape}{hint}")
        if array.shape[0] < 1 or array.shape[1] < 1:
            raise ValueError(f"data must have at least one observation and one feature, got shape {array.shape}")
        if array.shape[0] < min_rows:
            raise ValueError(too_few.format(n=array.shape[0]))
        if self.dim is not None and array.shape[1] != self.dim:
            raise ValueError(f"data have D = {array.shape[1]} features but the prior (m0/S0) has D = {self.dim}")
        array = np.array(array, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise ValueError("data contain NaN or infinite values")
        array.setflags(write=False)
        return array

    @property
    def dim(self) -> int | None:
        """D if the explicit hyperparameters fix it, else None (taken from the data)."""
        if self.m0 is not None:
            return len(self.m0)
        if self.S0 is not None:
            return len(self.S0)
        return None

    @property
    def data_driven(self) -> bool:
        """True when some hyperparameter is filled from the data (m0, nu0 or S0 is None)."""
        return self.m0 is None or self.nu0 is None or self.S0 is None


@dataclass(frozen=True)
class NIWGaussian(NIWHyperparameters, LatentModel):
    """Multivariate Gaussian with a conjugate Normal-Inverse-Wishart prior on (mu, Sigma).

    Parameters
    ----------
    m0 : array-like of shape (D,), optional
        Prior location of mu; None: the sample mean of the data being fitted.
    kappa0 : float, default 0.01
        Prior pseudo-observations behind m0 (> 0).
    nu0 : float, optional
        Prior degrees of freedom (> D - 1; > D + 1 for E[Sigma] to exist); None: D + 2.
    S0 : array-like of shape (D, D), optional
        Prior scale (symmetric positive definite; E[Sigma] = S0 / (nu0 - D - 1)); None:
        ``diag(scatter) / N`` of the data being fitted.

    Notes
    -----
    Hyperparameters are stored as (nested) tuples so that models compare and hash by value.
    See the module docstring for the data-driven defaults.

    Examples
    --------
    >>> from latentzoo.models.niw_gaussian import NIWGaussian
    >>> from latentzoo.models.datasets import old_faithful
    >>> model = NIWGaussian()
    >>> mu_map, Sigma_map = model.map(old_faithful())
    """

    m0: tuple | None = None
    kappa0: float = DATA_DRIVEN_KAPPA0
    nu0: float | None = None
    S0: tuple | None = None

    name = "niw-gaussian"
    observation_dim = "observation"
    label_dim = None

    def __post_init__(self):
        self._check_niw_hyperparameters()

    # -- structure ----------------------------------------------------------------------
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        return {"mu": ("feature",), "Sigma": ("feature", "feature_bis")}

    def n_observations(self, data) -> int:
        return self.check_data(data).shape[0]

    def coords(self, data) -> dict[str, list]:
        x = self.check_data(data)
        features = np.arange(x.shape[1])
        return {"observation": np.arange(x.shape[0]), "feature": features, "feature_bis": features}

    def observed_data(self, data) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        return {"x": (self.check_data(data), ("observation", "feature"))}

    def default_data(self) -> np.ndarray:
        """Old Faithful (272 eruptions: duration and waiting time, minutes)."""
        from .datasets import old_faithful

        return self.check_data(old_faithful())

    # -- validation ---------------------------------------------------------------------
    def check_data(self, data) -> np.ndarray:
        """Validate observations.

        Parameters
        ----------
        data : array-like of shape (n_observations, D)
            Finite numbers, at least one row; D must match m0/S0 when those are given.

        Returns
        -------
        ndarray of shape (n_observations, D), float64, read-only
        """
        return self._check_observations(data, min_rows=1)

    def check_params(self, params, name: str = "params", dim: int | None = None) -> dict[str, np.ndarray]:
        """Validate ``{"mu": (D,), "Sigma": (D, D) symmetric positive definite}``."""
        if not isinstance(params, dict):
            raise TypeError(f"{name} must be a dict with keys {list(NAMES)}, got {type(params).__name__}")
        missing, unknown = set(NAMES) - set(params), set(params) - set(NAMES)
        if missing or unknown:
            raise ValueError(f"{name} must have exactly the keys {list(NAMES)}; missing {sorted(missing)}, unexpected {sorted(unknown)}")
        dim = dim if dim is not None else self.dim
        mu = _check_vector(params["mu"], f"{name}['mu']")
        if dim is not None and mu.size != dim:
            raise ValueError(f"{name}['mu'] must have shape ({dim},), got {mu.shape}")
        Sigma = _check_spd(params["Sigma"], f"{name}['Sigma']", mu.size)
        return {"mu": mu, "Sigma": Sigma}

    # -- the prior ------------------------------------------------------------------------
    def _prior_from_stats(self, count, mean, scatter) -> NormalInverseWishart:
        """The prior with data-driven hyperparameters filled from full-data statistics."""
        dim = mean.shape[-1]
        m0 = np.asarray(self.m0) if self.m0 is not None else mean
        nu0 = self.nu0 if self.nu0 is not None else dim + 2.0
        if nu0 <= dim - 1:
            raise ValueError(f"nu0 must be > D - 1 = {dim - 1} for data with D = {dim}, got {nu0}")
        if self.S0 is not None:
            S0 = np.asarray(self.S0)
        else:
            variances = np.diag(scatter) / count
            if np.any(variances <= 0):
                constant = np.flatnonzero(variances <= 0).tolist()
                raise ValueError(
                    f"the data-driven S0 = diag(scatter)/N needs every feature to vary, but feature(s) {constant} "
                    f"are constant over the N = {int(count)} observation(s); give S0 explicitly"
                )
            S0 = np.diag(variances)
        return NormalInverseWishart(m0, self.kappa0, nu0, S0)

    def resolved_prior(self, data) -> NormalInverseWishart:
        """The NIW prior used for ``data``: explicit hyperparameters as given, the others from
        the data (see the module docstring)."""
        return self._prior_from_stats(*gaussian_stats(self.check_data(data)))

    def with_data_prior(self, data) -> "NIWGaussian":
        """This model with every data-driven hyperparameter fixed from ``data`` (empirical
        Bayes made explicit: the result is data-free, and its repr records the prior used)."""
        prior = self.resolved_prior(data)
        return NIWGaussian(m0=prior.m, kappa0=float(prior.kappa), nu0=float(prior.nu), S0=prior.S)

    def _explicit_prior(self, what: str) -> NormalInverseWishart:
        if self.data_driven:
            raise ValueError(
                f"{what} needs the prior, and this NIWGaussian's prior is data-driven (m0, nu0 or S0 is None), "
                "so it depends on the data; use model.with_data_prior(data) (the same prior, fixed from the "
                "data), or em with mle=True"
            )
        return NormalInverseWishart(np.asarray(self.m0), self.kappa0, self.nu0, np.asarray(self.S0))

    def prior(self) -> dict:
        """``{("mu", "Sigma"): NormalInverseWishart}``; only for explicit hyperparameters."""
        return {NAMES: self._explicit_prior("prior()")}

    def log_prior(self, params, data=None) -> np.ndarray:
        """log NIW(mu, Sigma | prior), shape B for params of batch shape B.

        ``data`` resolves a data-driven prior; without it only explicit priors work.
        """
        prior = self.resolved_prior(data) if data is not None else self._explicit_prior("log_prior(params)")
        return prior.log_pdf(np.asarray(params["mu"], float), np.asarray(params["Sigma"], float))

    # -- likelihood -----------------------------------------------------------------------
    def log_likelihood(self, data, params) -> np.ndarray:
        """Pointwise log N(x_i | mu, Sigma).

        Parameters
        ----------
        data : array-like of shape (N, D)
        params : dict with ``mu`` of shape (*B, D) and ``Sigma`` of shape (*B, D, D)

        Returns
        -------
        ndarray of shape (*B, N)
        """
        x = self.check_data(data)
        missing = [key for key in NAMES if key not in params]
        if missing:
            raise ValueError(f"params is missing {missing}; expected keys {list(NAMES)}")
        mu = np.asarray(params["mu"], float)
        Sigma = np.asarray(params["Sigma"], float)
        dim = x.shape[1]
        if mu.shape[-1:] != (dim,) or Sigma.shape[-2:] != (dim, dim):
            raise ValueError(f"params must have mu (..., {dim}) and Sigma (..., {dim}, {dim}), got {mu.shape} and {Sigma.shape}")
        chol = np.linalg.cholesky(Sigma)
        chol_inv = np.linalg.inv(chol)
        z = np.einsum("...ij,...nj->...ni", chol_inv, x - mu[..., None, :])
        half_log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
        return -0.5 * dim * np.log(2 * np.pi) - half_log_det[..., None] - 0.5 * np.sum(z**2, -1)

    def simulate(self, params, size, rng=None):
        """Draw ``size`` observations from N(mu, Sigma).

        Returns
        -------
        x : ndarray of shape (size, D)
        latents : None (the model has no latent variables)
        """
        rng = check_rng(rng, "rng")
        params = self.check_params(params)
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        z = rng.standard_normal((int(size), params["mu"].size))
        return params["mu"] + z @ np.linalg.cholesky(params["Sigma"]).T, None

    # -- closed forms ---------------------------------------------------------------------
    def mle(self, data) -> tuple[np.ndarray, np.ndarray]:
        """Maximum-likelihood (xbar, scatter / N).

        Raises
        ------
        ValueError
            When the scatter is singular (N <= D, or points on a hyperplane): no finite maximum.
        """
        count, mean, scatter = gaussian_stats(self.check_data(data))
        return self._mle_from_stats(count, mean, scatter)

    @staticmethod
    def _mle_from_stats(count, mean, scatter, advice="use the MAP (em without mle=True, or model.map(data))"):
        mu, Sigma = NormalInverseWishart.flat(mean.shape[-1]).update(count, mean, scatter).mode()
        try:
            np.linalg.cholesky(Sigma)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"the maximum-likelihood covariance is singular with N = {int(round(float(count)))} observation(s) "
                f"in D = {mean.shape[-1]} dimensions (it needs N > D points not on a hyperplane); "
                f"{advice}"
            ) from None
        return mu, Sigma

    def posterior(self, data) -> NormalInverseWishart:
        """The exact posterior NIW(m_N, kappa_N, nu_N, S_N)."""
        x = self.check_data(data)
        stats = gaussian_stats(x)
        return self._prior_from_stats(*stats).update(*stats)

    def map(self, data) -> tuple[np.ndarray, np.ndarray]:
        """The joint posterior mode (m_N, S_N / (nu_N + D + 2))."""
        return self.posterior(data).mode()

    def posterior_mean(self, data) -> tuple[np.ndarray, np.ndarray]:
        """(E[mu | data], E[Sigma | data]) = (m_N, S_N / (nu_N - D - 1))."""
        return self.posterior(data).mean()

    def marginal_mu(self, data) -> MultivariateT:
        """p(mu | data): multivariate t (df, loc, shape)."""
        return self.posterior(data).marginal_mu()

    def posterior_predictive(self, data) -> MultivariateT:
        """p(x_new | data): multivariate t (df, loc, shape)."""
        return self.posterior(data).posterior_predictive()

    def log_evidence(self, data) -> float:
        """log p(data), the marginal likelihood (Murphy 2012, eq. 4.215)."""
        x = self.check_data(data)
        stats = gaussian_stats(x)
        prior = self._prior_from_stats(*stats)
        post = prior.update(*stats)
        n, dim = x.shape
        return float(
            -0.5 * n * dim * np.log(np.pi)
            + multigammaln(post.nu / 2, dim) - multigammaln(prior.nu / 2, dim)
            + 0.5 * prior.nu * _log_det_spd(prior.S) - 0.5 * post.nu * _log_det_spd(post.S)
            + 0.5 * dim * (np.log(prior.kappa) - np.log(post.kappa))
        )

    # -- hooks: em ------------------------------------------------------------------------
    def initial_params(self, data, rng, strategy: str = "random") -> dict[str, np.ndarray]:
        """EM start. ``"random"``: mu at a random observation, Sigma the diagonal of the data's
        variances (1 where a feature is constant); ``"prior"``: a draw from the prior."""
        x = self.check_data(data)
        if strategy == "random":
            variances = x.var(axis=0) if x.shape[0] > 1 else np.ones(x.shape[1])
            return {"mu": x[rng.integers(x.shape[0])].copy(), "Sigma": np.diag(np.where(variances > 0, variances, 1.0))}
        if strategy == "prior":
            mu, Sigma = self.resolved_prior(x).sample(rng)
            return {"mu": mu, "Sigma": Sigma}
        raise ValueError(f"init strategy must be 'random', 'prior' or a dict of params, got {strategy!r}")

    def expected_stats(self, data, params):
        """With no latent variables the 'expected' statistics are the complete ones:
        ``{"count", "mean", "scatter"}`` of all the data, and the log-likelihood at params."""
        x = self.check_data(data)
        count, mean, scatter = gaussian_stats(x)
        log_lik = float(np.sum(self.log_likelihood(x, params)))
        return {"count": count, "mean": mean, "scatter": scatter}, log_lik

    def conditional_posterior(self, stats, mle: bool = False) -> dict:
        """``{("mu", "Sigma"): NIW posterior}`` given the statistics; its mode is the MAP.

        For this model the statistics are always those of the whole data set, so a data-driven
        prior is resolved from them. With ``mle=True`` the prior is the flat limit
        (:meth:`NormalInverseWishart.flat`), whose posterior mode is the MLE; a singular MLE
        (e.g. one observation) raises ValueError.
        """
        count, mean, scatter = stats["count"], stats["mean"], stats["scatter"]
        if mle:
            self._mle_from_stats(count, mean, scatter)  # raises a clear error if singular
            return {NAMES: NormalInverseWishart.flat(mean.shape[-1]).update(count, mean, scatter)}
        return {NAMES: self._prior_from_stats(count, mean, scatter).update(count, mean, scatter)}

    # -- hooks: exact ---------------------------------------------------------------------
    def exact_posterior(self, data) -> ConjugateMixture:
        """The exact posterior as a one-component :class:`ConjugateMixture` (the form the ``exact``
        back-end samples): the NIW posterior keyed by ``("mu", "Sigma")``, and ``log p(data)``."""
        return ConjugateMixture.single({NAMES: self.posterior(data)}, self.log_evidence(data))

    # -- PyMC declaration -----------------------------------------------------------------
    def pymc_model(self, data, marginalized: bool = True):
        """The PyMC declaration of the same prior and likelihood.

        ``Sigma ~ IW(nu0, S0)`` by :func:`~latentzoo.models.pymc_parts.inverse_wishart` (exact
        log-density; NUTS/ADVI move on its log-Cholesky vector with the Jacobian, ``find_MAP``
        leaves the Jacobian out and so finds the mode in (mu, Sigma) itself),
        ``mu ~ MvNormal(m0, Sigma / kappa0)``, ``x ~ MvNormal(mu, Sigma)``, the normals by
        :func:`~latentzoo.models.pymc_parts.mvnormal` (the same density as ``pm.MvNormal``, on
        the Cholesky factor the transform already holds).

        Parameters
        ----------
        data : array-like of shape (N, D)
        marginalized : bool
            Ignored: the model has no latent variables.
        """
        import pymc as pm

        from .pymc_parts import inverse_wishart, mvnormal

        x = self.check_data(data)
        prior = self.resolved_prior(x)
        coords = {key: list(value) for key, value in self.coords(x).items()}
        with pm.Model(coords=coords) as model:
            _, chol = inverse_wishart("Sigma", float(prior.nu), np.asarray(prior.S, np.float64), dims=("feature", "feature_bis"))
            # mvnormal: pm.MvNormal's density without re-factorising Sigma or Python linear algebra
            mu = mvnormal("mu", np.asarray(prior.m, np.float64), chol / np.sqrt(np.float64(prior.kappa)), dims="feature")
            mvnormal("x", mu, chol, observed=x, dims=("observation", "feature"))
        return model
