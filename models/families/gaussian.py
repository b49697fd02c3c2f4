"""The Gaussian component family: full-covariance Gaussians with a Normal-Inverse-Wishart prior
per component, or, with known covariances, a Normal prior on each mean
(:class:`NormalKnownCovariance`).

Priors: ``covs[k] ~ IW(nu0, S0)``, ``means[k] | covs[k] ~ N(m0[k], covs[k] / kappa0)``. Unset
``m0``, ``nu0`` and ``S0`` are filled from the data (the data-driven prior hook, Fraley & Raftery
2007: the data mean, D + 2, cov(x) / K^(2/D)). The weighted statistics are the Gaussian
mixture's (:mod:`latentzoo.models.gaussian.stats`), the densities its kernels'
(:mod:`latentzoo.models.gaussian.kernels`).

With ``covs`` fixed, ``means[k] ~ N(m0[k], covs[k] / kappa0)`` is conjugate to Gaussian
observations of covariance ``covs[k]``: given N observations with mean xbar, the posterior is
``N(m_N, covs[k] / kappa_N)`` with ``kappa_N = kappa0 + N`` and ``m_N = (kappa0 m0 + N xbar) /
kappa_N`` (Murphy 2012, eq. 4.173 with Sigma_0 = Sigma / kappa0).
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass
from functools import cached_property

import numpy as np
from scipy import special

from ..core.base import DegenerateComponentError, check_spd, numeric_array
from ..core.conjugate import NormalInverseWishart
from ..core.stats_combine import combine_centred
from ..gaussian.data import column_moments, mean_round_off
from ..gaussian.kernels import batched_log_densities, expected_log_densities, log_gaussian_densities, scaled_densities
from ..gaussian.kmeans import kmeans_plusplus, nearest_centres
from ..gaussian.priors import scale_from_covariance, spread_start
from ..gaussian.stats import component_stats

__all__ = ["GaussianFamily", "NormalKnownCovariance"]

_LOG_2PI = np.log(2.0 * np.pi)
NIW_KEY = ("means", "covs")


@dataclass(frozen=True)
class GaussianFamily:
    """Gaussian components ``x | k ~ N(means[k], covs[k])`` in R^D with conjugate priors.

    Parameters
    ----------
    n_features : int or None
        D; None: taken from the data (a mixture whose data-driven prior does not fix D yet).
    m0 : nested tuple of shape (D,) or (K, D), optional
        Prior mean of the means (None: data-driven).
    kappa0 : float
    nu0 : float, optional
        Inverse-Wishart degrees of freedom (None: data-driven, D + 2).
    S0 : nested tuple of shape (D, D), optional
        Inverse-Wishart scale (None: data-driven).
    covs : nested tuple of shape (K, D, D), optional
        Known covariances (not estimated).
    reg_covar : float
        Added to each covariance's diagonal by maximum-likelihood updates (``mle=True``).
    owner : str
        The model's class name, in errors.
    label : str
        What a component is called in errors (``"state"``, ``"component"``).
    """

    n_features: int | None
    m0: object = None
    kappa0: float = 0.01
    nu0: float | None = None
    S0: object = None
    covs: object = None
    reg_covar: float = 1e-6
    owner: str = "Gaussian"
    label: str = "state"

    allows_missing = True
    observed_name = "x"
    start_strategies = ("kmeans++", "random")
    event_dims = ("feature",)

    @property
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        dims = {"means": ("feature",), "covs": ("feature", "feature_bis")}
        if self.covs is not None:
            del dims["covs"]
        return dims

    @property
    def prior_key(self):
        return NIW_KEY if self.covs is None else "means"

    def param_shapes(self, n_components: int, n_features: int | None = None) -> dict[str, tuple[int, ...]]:
        K, D = n_components, self.n_features or n_features
        return {name: shape for name, shape in (("means", (K, D)), ("covs", (K, D, D))) if name in self.param_dims}

    # -- data ---------------------------------------------------------------------------
    def check_sequences(self, data):
        """Sequences of D-dimensional rows (see :func:`~latentzoo.models.gaussian.data.check_sequences`)."""
        from ..gaussian.data import check_sequences

        return check_sequences(data, self.n_features)

    def check_observations(self, data) -> np.ndarray:
        return self.check_sequences(data).x_observed

    def rows(self, data) -> np.ndarray:
        """The observed rows (n_observed, D)."""
        return data.x_observed

    def filled_rows(self, data) -> np.ndarray:
        """Every row (T, D), zeros where missing (for a compiled density that a mask then zeroes)."""
        return np.where(np.isnan(data.x), 0.0, data.x)

    def support(self, data, n_components: int) -> np.ndarray:
        """(T, K) bool: every component can emit every row."""
        if self.covs is not None:
            raise ValueError("backend 'exact' is not available with fixed covs; use 'gibbs' or 'nuts'")
        return np.ones((data.n_steps, n_components), bool)

    def observed_data(self, data) -> dict:
        return {"x": (data.x, ("time", "feature"))}

    def coords(self, data) -> dict[str, list]:
        names = getattr(data, "feature_names", None)
        features = list(names) if names is not None else list(range(self.n_features))
        return {"feature": features, "feature_bis": features}

    def round_off(self, rows: np.ndarray) -> float:
        return mean_round_off(rows)

    # -- parameters ---------------------------------------------------------------------
    def check_params(self, params: dict, n_components: int, name: str = "params") -> dict:
        """``means`` (batch + (K, D)) finite; ``covs`` (batch + (K, D, D)) finite, and positive
        definite for one set of parameters."""
        arrays = {}
        D = np.shape(params["means"])[-1] if np.ndim(params["means"]) else 0
        for key, shape in self.param_shapes(n_components, D).items():
            array = numeric_array(params[key], f"{name}[{key!r}]", f"an array of shape {shape}")
            if array.ndim < len(shape) or array.shape[array.ndim - len(shape):] != shape:
                raise ValueError(f"{name}[{key!r}] must have shape {shape} (after batch dims), got {array.shape}")
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name}[{key!r}] must be finite")
            if key == "covs" and array.ndim == 3:
                array = check_spd(array, f"{name}['covs']")
            arrays[key] = array
        return arrays

    def n_parameters(self, observations, n_components: int) -> int:
        """Free parameters: D means per component, and D (D + 1) / 2 covariance entries unless the
        covariances are fixed."""
        D = observations.shape[-1]
        return n_components * (D + (0 if self.covs is not None else D * (D + 1) // 2))

    def full(self, params: dict) -> dict:
        """``params`` with fixed covariances added (broadcast to the means' batch shape)."""
        if self.covs is None:
            return params
        means = np.asarray(params["means"])
        D = self.n_features
        return {**params, "covs": np.broadcast_to(np.asarray(self.covs, float), means.shape[:-1] + (D, D))}

    # -- priors -------------------------------------------------------------------------
    @property
    def data_driven(self) -> bool:
        """True when m0, or (with the covariances estimated) nu0 or S0, is filled from the data."""
        return self.m0 is None or (self.covs is None and (self.nu0 is None or self.S0 is None))

    def data_prior(self, rows: np.ndarray, n_components: int) -> dict:
        """The data-driven hyperparameters from the observed rows: ``{"m0", "nu0", "S0"}`` (those unset)."""
        # BLAS products over chunks (rows.mean(0) reduces along the short axis, and is slow)
        mean, scatter = column_moments(rows)
        return self.data_prior_from_stats({"counts": [rows.shape[0]], "means": [mean], "scatters": [scatter]}, n_components)

    def data_prior_stats(self, rows: np.ndarray) -> dict:
        """Count, mean and scatter of the rows, combinable over chunks by :meth:`combine_stats`."""
        return dict(zip(("counts", "means", "scatters"), component_stats(rows, np.ones((rows.shape[0], 1)))))

    def data_prior_from_stats(self, stats: dict, n_components: int) -> dict:
        """:meth:`data_prior` from the count, mean and scatter of all the rows (one component's
        statistics, as :meth:`data_prior_stats` gives them)."""
        count, mean, scatter = stats["counts"][0], stats["means"][0], stats["scatters"][0]
        changes = {"m0": self.m0 if self.m0 is not None else mean}
        if self.covs is None:
            changes["nu0"] = self.nu0 if self.nu0 is not None else np.shape(mean)[-1] + 2.0
            if self.S0 is None:
                if count < 2:
                    raise ValueError("the data-driven S0 needs at least two observed rows; give S0 explicitly")
                changes["S0"] = scale_from_covariance(scatter / count, n_components, mean)
        return changes

    def prior(self, n_components: int) -> dict:
        """NIW batched over the K components (``("means", "covs")``), or with fixed covariances a
        :class:`NormalKnownCovariance` (``"means"``); only for explicit hyperparameters."""
        if self.data_driven:
            raise ValueError(
                f"prior() needs the prior, and this {self.owner}'s prior is data-driven (m0, nu0 or S0 is None); "
                "use model.with_data_prior(data) (fit does so), or em with mle=True"
            )
        return self._prior(n_components)

    @cached_property
    def _priors(self) -> dict:
        return {}

    def _prior(self, n_components: int) -> dict:
        if n_components not in self._priors:  # built once: EM, Gibbs and VB ask at every iteration
            K, D = n_components, self.n_features
            m0 = np.broadcast_to(np.asarray(self.m0, float), (K, D)).copy()
            kappa = np.full(K, self.kappa0)
            if self.covs is None:
                S0 = np.broadcast_to(np.asarray(self.S0, float), (K, D, D)).copy()
                self._priors[K] = {NIW_KEY: NormalInverseWishart(m0, kappa, np.full(K, float(self.nu0)), S0)}
            else:
                self._priors[K] = {"means": NormalKnownCovariance(m0, kappa, np.asarray(self.covs, float))}
        return self._priors[n_components]

    def flat_prior(self, n_components: int, n_features: int | None = None) -> dict:
        if self.covs is None:
            return {NIW_KEY: NormalInverseWishart.flat(self.n_features or n_features, (n_components,))}
        return {"means": NormalKnownCovariance.flat(np.asarray(self.covs, float))}

    def log_prior(self, params: dict, n_components: int) -> np.ndarray:
        prior = self.prior(n_components)
        if NIW_KEY in prior:
            return prior[NIW_KEY].log_pdf(params["means"], params["covs"]).sum(-1)
        return prior["means"].log_pdf(params["means"]).sum(-1)

    def posterior(self, stats: dict, n_components: int, mle: bool = False) -> dict:
        """Conjugate posteriors given (expected or complete) statistics. With ``mle=True``: the
        flat limits (NIW with kappa = 0, nu = -(D + 2), S = 0, or a Normal with kappa = 0), whose
        modes are the maximum-likelihood estimates, with ``reg_covar`` on each covariance's diagonal.

        Raises
        ------
        DegenerateComponentError
            With ``mle=True``, for a component with no weight or whose covariance collapsed.
        """
        counts, means, scatters = stats["counts"], stats["means"], stats["scatters"]
        if mle:
            self._check_not_collapsed(counts, scatters)
            prior = self.flat_prior(n_components, means.shape[-1])
            if self.covs is None:
                scatters = scatters + (counts * self.reg_covar)[:, None, None] * np.eye(means.shape[-1])
        else:
            prior = self.prior(n_components)
        if self.covs is None:
            return {NIW_KEY: prior[NIW_KEY].update(counts, means, scatters)}
        return {"means": prior["means"].update(counts, means)}

    def _check_not_collapsed(self, counts, scatters) -> None:
        label = self.label
        advice = (f"Use the prior (em without mle=True: MAP-EM stays well defined), fewer {label}s, or other "
                  "starting points (init, n_init)")
        if self.covs is None:
            # one batched call (a call per component cost as much as the M-step); empty components
            # are divided by 1 here and reported below before their eigenvalue is read
            smallest = np.linalg.eigvalsh(scatters / np.where(counts > 0, counts, 1.0)[:, None, None])[:, 0]
        for k in range(counts.size):
            if counts[k] <= 1e-10 * counts.sum():
                raise DegenerateComponentError(
                    f"maximum-likelihood EM: {label} {k} has no expected observation, so its mean and covariance "
                    f"are undefined; {advice}"
                )
            if self.covs is None and smallest[k] <= self.reg_covar:
                raise DegenerateComponentError(
                    f"maximum-likelihood EM: {label} {k} collapsed onto {counts[k]:.3g} effective observation(s): "
                    f"its covariance has an eigenvalue {smallest[k]:.3g} <= reg_covar = {self.reg_covar:g}, so the "
                    "likelihood grows without bound there (duplicate points, or fewer points than D + 1 in the "
                    f"{label}). {advice}"
                )

    def log_marginal(self, stats: dict, n_components: int) -> np.ndarray:
        """``log p(x | z)`` with each component's (mean, covariance) integrated out: the NIW
        evidence ``pi^(-N D/2) Gamma_D(nu_N/2) / Gamma_D(nu0/2) |S0|^(nu0/2) / |S_N|^(nu_N/2)
        (kappa0 / kappa_N)^(D/2)`` (Murphy 2012, eq. 4.217), per component: shape ``(*batch, K)``."""
        if self.covs is not None:
            raise ValueError("backend 'exact' is not available with fixed covs; use 'gibbs' or 'nuts'")
        D = self.n_features
        prior = self.prior(n_components)[NIW_KEY]
        posterior = prior.update(stats["counts"], stats["means"], stats["scatters"])
        log_evidence = (
            -0.5 * stats["counts"] * D * np.log(np.pi)
            + special.multigammaln(posterior.nu / 2, D) - special.multigammaln(prior.nu / 2, D)
            + 0.5 * prior.nu * np.linalg.slogdet(prior.S)[1] - 0.5 * posterior.nu * np.linalg.slogdet(posterior.S)[1]
            + 0.5 * D * (np.log(prior.kappa) - np.log(posterior.kappa))
        )
        return log_evidence

    # -- densities and statistics -------------------------------------------------------
    def log_density(self, observations, params: dict) -> np.ndarray:
        """``log N(x_n | means_k, covs_k)``: (N, K) for one parameter set (the compiled pass), or
        (S, N, K) for ``means`` (S, K, D) and ``covs`` (S, K, D, D) (batched NumPy, fast for many
        small sets: :func:`~latentzoo.models.gaussian.kernels.batched_log_densities`)."""
        means, covs = params["means"], params["covs"]
        if np.ndim(means) == 2:
            return log_gaussian_densities(observations, means, covs)
        return batched_log_densities(observations, np.asarray(means, float), np.asarray(covs, float))

    def scaled_likelihood(self, observations, params: dict, summed: bool = True):
        """The densities of :meth:`log_density` divided by their sum over the components, laid
        out (K, N), and the logs of those sums (:func:`~latentzoo.models.gaussian.kernels.scaled_densities`):
        the HMM kernels read them as a table, with no (N, K) matrix to shift, exponentiate and
        transpose (the optional :class:`~latentzoo.models.core.protocols.ScaledEmissions` part)."""
        return scaled_densities(observations, params["means"], params["covs"], summed)

    def expected_log_density(self, observations, factors: dict) -> np.ndarray:
        if self.covs is None:
            niw = factors[NIW_KEY]
            return expected_log_densities(observations, niw.m, niw.kappa, niw.nu, niw.S)
        normal = factors["means"]
        # E_q[log N(x | mu, Sigma)] = log N(x | m_q, Sigma) - tr(Sigma^-1 Sigma / kappa_q) / 2
        return log_gaussian_densities(observations, normal.m, normal.known_covs) - 0.5 * normal.dim / normal.kappa

    def stats(self, observations, weights: np.ndarray) -> dict:
        return dict(zip(("counts", "means", "scatters"), component_stats(observations, weights)))

    def label_stats(self, observations, labels, n_components: int) -> dict:
        """:meth:`stats` of hard labels (``labels[n]`` in 0..K-1): their 0/1 weights; a component no
        row belongs to gets zero statistics."""
        return self.stats(observations, np.eye(n_components)[labels])

    def combine_stats(self, parts: list) -> dict:
        return combine_centred(parts)

    def simulate(self, params: dict, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        params = self.full(params)
        chol = np.linalg.cholesky(params["covs"])
        noise = rng.standard_normal((labels.size, params["means"].shape[-1]))
        return params["means"][labels] + np.einsum("tij,tj->ti", chol[labels], noise)

    def initial_params(self, observations, n_components: int, rng, strategy: str = "kmeans++"):
        """Means at k-means++ centres with the pooled within-cluster covariance (and the nearest-centre
        labels), at K distinct random rows with the data covariance (``"random"``), or a prior draw
        (``"prior"``). Returns ``(params, labels or None)``."""
        if strategy == "prior":
            draw = self.prior(n_components)[self.prior_key].sample(rng)
            return (dict(zip(NIW_KEY, draw)) if self.covs is None else {"means": draw}), None
        if observations is None:
            raise TypeError(f"init={strategy!r} needs the data's rows, got None")
        x, K, D = observations, n_components, observations.shape[1]
        n = x.shape[0]
        if n < K:
            raise ValueError(f"init={strategy!r} needs at least n_states = {K} observed rows, got {n}; use init='prior' or a dict")
        floor = 1e-6 * max(float(np.mean(x.var(0))), np.finfo(float).tiny) * np.eye(D)
        if strategy == "random":
            labels = None
            means = x[rng.choice(n, size=K, replace=False)].copy()
            covs = np.broadcast_to(np.cov(x.T, bias=True).reshape(D, D) + floor, (K, D, D)).copy()
        else:
            centres = kmeans_plusplus(x, K, rng)
            labels = nearest_centres(x, centres)
            counts, means, scatters = component_stats(x, np.eye(K)[labels])
            means = np.where(counts[:, None] > 0, means, centres)
            covs = np.broadcast_to(scatters.sum(0) / n + floor, (K, D, D)).copy()
        params = {"means": means, "covs": covs}
        return {name: params[name] for name in self.param_dims}, labels

    # -- PyMC ---------------------------------------------------------------------------
    def pymc_initial_point(self, params: dict) -> dict:
        return {name: np.asarray(params[name], float) for name in self.param_dims}

    def pymc_priors(self, n_components: int, label_dim: str, observations=None) -> dict:
        """``covs`` an exact batched Inverse-Wishart (unless fixed), ``means | covs`` Normal, started
        apart along the data's first principal axis (at m0 the gradient cannot tell them apart)."""
        import pymc as pm
        import pytensor.tensor as pt

        from ..ops.pymc_parts import inverse_wishart, mvnormal

        K, D = n_components, self.n_features
        prior = self.prior(K)
        if self.covs is None:
            niw = prior[NIW_KEY]
            _, chol = inverse_wishart("covs", np.float64(niw.nu[0]), np.asarray(niw.S, np.float64),
                                      dims=(label_dim, "feature", "feature_bis"))
            m0 = np.asarray(niw.m, np.float64)
        else:
            chol = pt.constant(np.linalg.cholesky(np.asarray(self.covs, np.float64)))
            m0 = np.asarray(prior["means"].m, np.float64)
        spread = spread_start(observations, K) if observations is not None and observations.shape[0] > 1 else np.zeros((K, D))
        # containers, not constants (as in inverse_wishart): the data-driven m0 changes with every data set
        prior_mean = pm.Data("means_prior_mean", m0, shape=m0.shape)
        prior_scale = pm.Data("means_prior_scale", np.float64(1.0 / np.sqrt(self.kappa0)))
        means = mvnormal("means", prior_mean, chol * prior_scale, dims=(label_dim, "feature"), initval=m0 + spread)
        return {"means": means, "chol": chol, "start_means": m0 + spread}

    def pymc_log_density(self, observations, params: dict):
        from ..ops.pymc_parts import mvnormal_logp

        return mvnormal_logp(observations[:, None, :], params["means"], params["chol"])

    def pymc_start_log_density(self, observations, params: dict) -> np.ndarray:
        """Where explicit states start: each row at the nearest starting mean."""
        return -((observations[:, None, :] - params["start_means"][None]) ** 2).sum(-1)

    def pymc_observe(self, rows: np.ndarray, params: dict, labels) -> None:
        from ..ops.pymc_parts import mvnormal

        mvnormal("x", params["means"][labels], params["chol"][labels], observed=rows)


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
def _log_det_and_inverse_chol(covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    chol = np.linalg.cholesky(covs)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return log_det, np.linalg.inv(chol)

