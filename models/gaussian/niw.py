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

from ..core.base import LatentModel, check_param_keys, check_rng
from ..core.conjugate import MultivariateT, NormalInverseWishart
from ..core.conjugate_mixture import ConjugateMixture
from ..core.protocols import DemoPlan
from ..families.gaussian import NIW_KEY, GaussianFamily
from .data import GaussianData, GaussianObservations
from .niw_hyperparameters import NIWHyperparameters, check_spd_hyperparameter, check_vector_hyperparameter

__all__ = ["NIWGaussian", "DATA_DRIVEN_KAPPA0"]

#: kappa0 of the data-driven prior (Murphy 2012, section 4.6.3.2)
DATA_DRIVEN_KAPPA0 = 0.01
NAMES = ("mu", "Sigma")


@dataclass(frozen=True)
class NIWGaussian(NIWHyperparameters, GaussianObservations, LatentModel):
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
    >>> from latentzoo.models.gaussian.niw import NIWGaussian
    >>> from latentzoo.models.datasets import old_faithful
    >>> model = NIWGaussian()
    >>> mu_map, Sigma_map = model.map(old_faithful())
    """

    m0: tuple | None = None
    kappa0: float = DATA_DRIVEN_KAPPA0
    nu0: float | None = None
    S0: tuple | None = None

    name = "niw-gaussian"
    lesson = None  # no lesson teaches it yet
    api_page = "latentzoo.models.NIWGaussian"
    observation_dim = "observation"
    label_dim = None

    def __post_init__(self):
        self._check_niw_hyperparameters()

    # -- structure ----------------------------------------------------------------------
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        return {"mu": ("feature",), "Sigma": ("feature", "feature_bis")}

    def demo_plan(self) -> DemoPlan:
        return DemoPlan(cost_seconds=22.0)

    def default_data(self) -> np.ndarray:
        """Old Faithful (272 eruptions: duration and waiting time, minutes), as a read-only
        (272, 2) float64 array."""
        from ..datasets import old_faithful

        return self.check_data(old_faithful()).x

    # -- validation ---------------------------------------------------------------------
    def check_data(self, data) -> GaussianData:
        """Validate observations.

        Parameters
        ----------
        data : array-like of shape (n_observations, D), or GaussianData
            Finite numbers, at least one row; D must match m0/S0 when those are given. A
            GaussianData is returned as it is once its D is checked (no pass over the values).

        Returns
        -------
        GaussianData
            ``x``: ndarray of shape (n_observations, D), float64, read-only.
        """
        return self._check_observations(data, min_rows=1)

    def check_params(self, params, name: str = "params", dim: int | None = None) -> dict[str, np.ndarray]:
        """Validate ``{"mu": (D,), "Sigma": (D, D) symmetric positive definite}``."""
        check_param_keys(params, NAMES, name)
        dim = dim if dim is not None else self.dim
        mu = check_vector_hyperparameter(params["mu"], f"{name}['mu']")
        if dim is not None and mu.size != dim:
            raise ValueError(f"{name}['mu'] must have shape ({dim},), got {mu.shape}")
        Sigma = check_spd_hyperparameter(params["Sigma"], f"{name}['Sigma']", mu.size)
        return {"mu": mu, "Sigma": Sigma}

    # -- the one-component Gaussian family ------------------------------------------------
    def _family(self, prior: NormalInverseWishart | None = None) -> GaussianFamily:
        """This model as a one-component :class:`GaussianFamily` (K = 1, no weights), with this
        model's hyperparameters or those of ``prior`` (a resolved data-driven prior). Its maximum
        likelihood adds no ``reg_covar``: a singular MLE raises here instead."""
        dim, m0, kappa0, nu0, S0 = (self.dim, self.m0, self.kappa0, self.nu0, self.S0) if prior is None else (
            prior.dim, prior.m, float(prior.kappa), float(prior.nu), prior.S)
        return GaussianFamily(dim, m0=m0, kappa0=kappa0, nu0=nu0, S0=S0, reg_covar=0.0, owner="NIWGaussian")

    @staticmethod
    def _one(niw: NormalInverseWishart) -> NormalInverseWishart:
        """The family's NIW over K = 1 component, squeezed to one (mu, Sigma)."""
        return NormalInverseWishart._trusted(niw.m[0], niw.kappa[0], niw.nu[0], niw.S[0])

    def _stats(self, data) -> dict:
        """The family's statistics of all the rows (``counts`` (1,), ``means`` (1, D), ``scatters``
        (1, D, D)): one component that every observation belongs to."""
        x = self.check_data(data).x
        return self._family().stats(x, np.ones((x.shape[0], 1)))

    @staticmethod
    def _squeezed(stats: dict) -> tuple:
        """(count, mean, scatter) of the one component."""
        return stats["counts"][0], stats["means"][0], stats["scatters"][0]

    # -- the prior ------------------------------------------------------------------------
    def _prior_from_stats(self, count, mean, scatter) -> NormalInverseWishart:
        """The prior with data-driven hyperparameters filled from full-data statistics."""
        m0, nu0 = self._resolved_m0_nu0(mean)
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
        return self._prior_from_stats(*self._squeezed(self._stats(data)))

    def with_data_prior(self, data) -> "NIWGaussian":
        """This model with every data-driven hyperparameter fixed from ``data`` (empirical
        Bayes made explicit: the result is data-free, and its repr records the prior used)."""
        prior = self.resolved_prior(data)
        return NIWGaussian(m0=prior.m, kappa0=float(prior.kappa), nu0=float(prior.nu), S0=prior.S)

    def prior(self) -> dict:
        """``{("mu", "Sigma"): NormalInverseWishart}``; only for explicit hyperparameters."""
        return {NAMES: self._one(self._family().prior(1)[NIW_KEY])}

    def log_prior(self, params) -> np.ndarray:
        """log NIW(mu, Sigma | prior), shape B for params of batch shape B.

        Only for explicit hyperparameters: for a data-driven prior, use
        ``model.with_data_prior(data).log_prior(params)`` (``fit`` does so).
        """
        mu, Sigma = np.asarray(params["mu"], float), np.asarray(params["Sigma"], float)
        return self._family().log_prior({"means": mu[..., None, :], "covs": Sigma[..., None, :, :]}, 1)

    # -- likelihood -----------------------------------------------------------------------
    def log_likelihood(self, data, params) -> np.ndarray:
        """Pointwise log N(x_i | mu, Sigma).

        Parameters
        ----------
        data : array-like of shape (N, D), or GaussianData
        params : dict with ``mu`` of shape (*B, D) and ``Sigma`` of shape (*B, D, D)

        Returns
        -------
        ndarray of shape (*B, N)
        """
        x = self.check_data(data).x
        missing = [key for key in NAMES if key not in params]
        if missing:
            raise ValueError(f"params is missing {missing}; expected keys {list(NAMES)}")
        mu = np.asarray(params["mu"], float)
        Sigma = np.asarray(params["Sigma"], float)
        dim = x.shape[1]
        if mu.shape[-1:] != (dim,) or Sigma.shape[-2:] != (dim, dim):
            raise ValueError(f"params must have mu (..., {dim}) and Sigma (..., {dim}, {dim}), got {mu.shape} and {Sigma.shape}")
        # the family's densities with K = 1: (N, 1) for one set, (S, N, 1) for S sets
        batch = np.broadcast_shapes(mu.shape[:-1], Sigma.shape[:-2])
        means = np.broadcast_to(mu, batch + (dim,)).reshape(-1, 1, dim)
        covs = np.broadcast_to(Sigma, batch + (dim, dim)).reshape(-1, 1, dim, dim)
        try:
            log_density = self._family().log_density(x, {"means": means[0], "covs": covs[0]} if batch == () else
                                                     {"means": means, "covs": covs})
        except ValueError:
            # the family's message speaks of components and covs; the user passed Sigma
            smallest = np.linalg.eigvalsh(covs[:, 0]).min(axis=-1)
            bad = np.flatnonzero(~(smallest > 0))
            where = "" if batch == () else f" (flat draws {bad[:5].tolist()})"
            raise ValueError(f"params['Sigma'] must be symmetric positive definite{where}; its smallest "
                             f"eigenvalue is {smallest[bad[0]] if bad.size else smallest.min():.3g}") from None
        return log_density[..., 0].reshape(batch + (x.shape[0],))

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
        params = {"means": params["mu"][None], "covs": params["Sigma"][None]}
        return self._family().simulate(params, np.zeros(int(size), int), rng), None

    # -- closed forms ---------------------------------------------------------------------
    def mle(self, data) -> tuple[np.ndarray, np.ndarray]:
        """Maximum-likelihood (xbar, scatter / N).

        Raises
        ------
        ValueError
            When the scatter is singular (N <= D, or points on a hyperplane): no finite maximum.
        """
        return self._mle_from_stats(*self._squeezed(self._stats(data)))

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
        stats = self._squeezed(self._stats(data))
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
        stats = self._stats(data)
        prior = self._prior_from_stats(*self._squeezed(stats))
        return float(self._family(prior).log_marginal(stats, 1)[0])

    # -- hooks: em ------------------------------------------------------------------------
    def initial_params(self, data, rng, strategy: str = "random") -> dict[str, np.ndarray]:
        """EM start. ``"random"``: mu at a random observation, Sigma the diagonal of the data's
        variances (1 where a feature is constant); ``"prior"``: a draw from the prior."""
        data = self.check_data(data)
        x = data.x
        if strategy == "random":
            variances = x.var(axis=0) if x.shape[0] > 1 else np.ones(x.shape[1])
            return {"mu": x[rng.integers(x.shape[0])].copy(), "Sigma": np.diag(np.where(variances > 0, variances, 1.0))}
        if strategy == "prior":
            draw = self._family(self.resolved_prior(data)).initial_params(None, 1, rng, "prior")[0]
            return {"mu": draw["means"][0], "Sigma": draw["covs"][0]}
        raise ValueError(f"init strategy must be 'random', 'prior' or a dict of params, got {strategy!r}")

    def expected_stats(self, data, params):
        """With no latent variables the 'expected' statistics are the complete ones: the
        family's ``{"counts", "means", "scatters"}`` of all the data (K = 1), and the
        log-likelihood at params."""
        data = self.check_data(data)
        return self._stats(data), float(np.sum(self.log_likelihood(data, params)))

    def conditional_posterior(self, stats, mle: bool = False) -> dict:
        """``{("mu", "Sigma"): NIW posterior}`` given the statistics; its mode is the MAP.

        For this model the statistics are always those of the whole data set, so a data-driven
        prior is resolved from them. With ``mle=True`` the prior is the flat limit
        (:meth:`NormalInverseWishart.flat`), whose posterior mode is the MLE; a singular MLE
        (e.g. one observation) raises ValueError.
        """
        squeezed = self._squeezed(stats)
        if mle:
            self._mle_from_stats(*squeezed)  # raises a clear error if singular
        family = self._family(None if mle else self._prior_from_stats(*squeezed))
        return {NAMES: self._one(family.posterior(stats, 1, mle=mle)[NIW_KEY])}

    # -- hooks: exact ---------------------------------------------------------------------
    def exact_posterior(self, data) -> ConjugateMixture:
        """The exact posterior as a one-component :class:`ConjugateMixture` (the form the ``exact``
        back-end samples): the NIW posterior keyed by ``("mu", "Sigma")``, and ``log p(data)``."""
        return ConjugateMixture.single({NAMES: self.posterior(data)}, self.log_evidence(data))

    # -- PyMC declaration -----------------------------------------------------------------
    def pymc_model(self, data, marginalized: bool = True):
        """The PyMC declaration of the same prior and likelihood.

        ``Sigma ~ IW(nu0, S0)`` by :func:`~latentzoo.models.ops.pymc_parts.inverse_wishart` (exact
        log-density; NUTS/ADVI move on its log-Cholesky vector with the Jacobian, ``find_MAP``
        leaves the Jacobian out and so finds the mode in (mu, Sigma) itself),
        ``mu ~ MvNormal(m0, Sigma / kappa0)``, ``x ~ MvNormal(mu, Sigma)``, the normals by
        :func:`~latentzoo.models.ops.pymc_parts.mvnormal` (the same density as ``pm.MvNormal``, on
        the Cholesky factor the transform already holds).

        Parameters
        ----------
        data : array-like of shape (N, D), or GaussianData
        marginalized : bool
            Ignored: the model has no latent variables.
        """
        import pymc as pm

        from ..ops.pymc_data import data_container
        from ..ops.pymc_parts import inverse_wishart, mvnormal

        data = self.check_data(data)
        prior = self.resolved_prior(data)
        coords = {key: list(value) for key, value in self.coords(data).items()}
        with pm.Model(coords=coords) as model:
            _, chol = inverse_wishart("Sigma", float(prior.nu), np.asarray(prior.S, np.float64), dims=("feature", "feature_bis"))
            # mvnormal: pm.MvNormal's density without re-factorising Sigma or Python linear algebra
            # the prior's mean and scale as containers too (see inverse_wishart): a data-driven
            # prior then needs no new compiled code per data set
            m0 = np.asarray(prior.m, np.float64)
            prior_mean = pm.Data("mu_prior_mean", m0, shape=m0.shape)
            prior_scale = pm.Data("mu_prior_scale", np.float64(1.0 / np.sqrt(prior.kappa)))
            mu = mvnormal("mu", prior_mean, chol * prior_scale, dims="feature")
            mvnormal("x", mu, chol, observed=data_container("x_data", data.x), dims=("observation", "feature"))
        return model

    def picture(self, comparison):
        """95% contours of N(mu, Sigma) at each back-end's posterior mean over the data: a matplotlib
        Figure, or None for one feature (see :func:`~latentzoo.models.gaussian.pictures.niw_picture`)."""
        # imported here: importing the models must not import matplotlib
        from .pictures import niw_picture

        return niw_picture(comparison)
