"""Gaussian mixture model with full covariances: Dirichlet weights, Normal-Inverse-Wishart components.

Generative model (K components, D features)::

    weights ~ Dirichlet(weights_prior * 1_K)                        (component,)
    covs[k] ~ IW(nu0, S0),   means[k] | covs[k] ~ N(m0, covs[k] / kappa0)      k = 1..K
    z_n ~ Categorical(weights),   x_n | z_n ~ N(means[z_n], covs[z_n])         n = 1..N

The components share one NIW prior, so they are exchangeable (``label_dim = "component"``):
results are relabelled (Hungarian matching, ``inference/labels.py``) before back-ends are compared.

Back-end hooks (seed 002: latent variables, EM and the ELBO; seed 001: GMM by EM, K-means as a limit)

* ``em``: the E-step gives responsibilities, the M-step is the mode of the conjugate posteriors
  (Dirichlet, NIW) given the expected statistics (counts, means, scatters). MAP-EM is well defined
  even for a component that explains a single point (its covariance is pulled towards the prior's
  S0). ``mle=True`` is plain maximum likelihood with scikit-learn's covariance regulariser
  (``reg_covar`` added to every covariance's diagonal); a component that collapses (empty, or
  narrower than ``reg_covar`` in some direction: the likelihood is unbounded there) raises
  :class:`DegenerateComponentError` naming the remedy. ``em(..., assignment="hard")`` is
  classification EM (a C-step of hard assignments between E and M).
* ``gibbs``: assignments | parameters, then weights | assignments (Dirichlet) and each component
  | assignments (NIW), blocked and conjugate.
* ``vb``: mean-field q(z) q(weights) q(means, covs) with Dirichlet and NIW factors (Bishop 2006,
  section 10.2, the Gauss-Wishart written for the covariance); the ELBO is the log normaliser of
  q(z) minus the factors' KL divergences from the prior.
* ``pymc_model``: the same priors, with an exact Inverse-Wishart; marginalised (a mixture density)
  for NUTS/ADVI/MAP, explicit ``z`` for ``pymc_gibbs``.

The data-driven prior (Fraley & Raftery 2007, "Bayesian regularization for normal mixture
estimation and model-based clustering", J. Classification 24; mclust's ``priorControl()``)
---------------------------------------------------------------------------------------
Any of ``m0``, ``nu0``, ``S0`` left as None is filled from the data (``with_data_prior``; ``fit``
calls it):

* ``m0 = xbar``, the data mean, with ``kappa0 = 0.01``: each component mean is pulled towards the
  centre of the data with the weight of one hundredth of an observation;
* ``nu0 = D + 2``: the smallest integer degrees of freedom for which E[covs[k]] exists, where it
  equals S0 (the weakest proper prior centred on S0);
* ``S0 = cov(x) / K^(2/D)``: the data's (maximum-likelihood) covariance shrunk so that K clusters
  of that covariance fill the volume of the data; E[covs[k]] = S0 is then "the per-cluster scale".

The weights get a symmetric Dirichlet(1) (uniform on the simplex) by default, so that MAP-EM's
weights are the expected fractions, as in maximum likelihood.

Where the parts live: kernels in ``gmm_kernels``, ``gmm_stats`` and ``gmm_pass``; priors in
``gmm_priors``; K-means and k-means++ in ``kmeans``; AIC, BIC and the choice of K in
``gmm_selection``; data are validated once into a ``gaussian_data.GaussianData``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy import special

from ..core.base import (
    DegenerateComponentError,
    LatentModel,
    check_param_keys,
    check_positive,
    check_rng,
    check_spd,
    inside_simplex,
    numeric_array,
)
from ..core.conjugate import NormalInverseWishart
from ..core.protocols import DemoPlan
from ..core.sizes import check_parameter_size
from ..core.stats_combine import combine_centred
from ..gaussian.data import GaussianChunk, GaussianData, GaussianObservations
from ..gaussian.kernels import batched_log_joint, classify, e_step, e_step_stats, expected_e_step_stats, log_evidence
from ..gaussian.kmeans import kmeans_plusplus, lloyd, nearest_centres
from ..gaussian.niw_hyperparameters import NIWHyperparameters
from ..gaussian.priors import component_niw, scale_from_covariance, spread_start, weights_distribution
from ..gaussian.stats import component_stats, hard_component_stats
from . import selection as gmm_selection
from .finite import check_mixture_size

__all__ = ["DegenerateComponentError", "GaussianMixture", "DATA_DRIVEN_KAPPA0", "REG_COVAR"]

#: kappa0 of the data-driven prior (Fraley & Raftery 2007)
DATA_DRIVEN_KAPPA0 = 0.01
#: the covariance regulariser of maximum-likelihood EM (scikit-learn's ``reg_covar`` default)
REG_COVAR = 1e-6
#: a weights init must sum to one within this tolerance
SUM_ATOL = 1e-6
NAMES = ("weights", "means", "covs")
#: from this many observations the pointwise hooks run the compiled pass once per parameter set;
#: below it, NumPy over chunks of sets is faster for the thousands of draws of a sampler
_COMPILED_FROM_ROWS = 2048
#: centres of the default data's blobs
DEFAULT_CENTRES = ((-6.0, -2.0), (0.0, 6.0), (6.0, -2.0))
NIW_KEY = ("means", "covs")


@dataclass(frozen=True)
class GaussianMixture(NIWHyperparameters, GaussianObservations, LatentModel):
    """Mixture of K full-covariance Gaussians with Dirichlet and Normal-Inverse-Wishart priors.

    Parameters
    ----------
    n_components : int, default 3
        K >= 1; K D^2 (the covariances) at most ``sizes.MAX_PARAMETER_ELEMENTS``, checked here when
        m0 or S0 fixes D, else when the data are.
    weights_prior : float or array-like of shape (K,), default 1.0
        Dirichlet concentration of the weights (a number: symmetric). Values >= 1 are needed for
        MAP-EM (otherwise the posterior density is unbounded at the simplex's boundary).
    m0 : array-like of shape (D,), optional
        Prior location of every component mean; None: the data mean.
    kappa0 : float, default 0.01
        Pseudo-observations behind m0 (> 0).
    nu0 : float, optional
        Inverse-Wishart degrees of freedom (> D - 1); None: D + 2.
    S0 : array-like of shape (D, D), optional
        Inverse-Wishart scale (symmetric positive definite; E[covs[k]] = S0 / (nu0 - D - 1));
        None: cov(data) / K^(2/D).
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance by maximum-likelihood EM (``mle=True``) only,
        as scikit-learn's ``GaussianMixture(reg_covar=1e-6)``; MAP-EM needs no regulariser.

    Notes
    -----
    Parameters: ``weights`` (component,), ``means`` (component, feature), ``covs``
    (component, feature, feature_bis); data: an (N, D) array (or a
    :class:`~latentzoo.models.gaussian.data.GaussianData`, which :meth:`check_data` returns). See
    the module docstring for the data-driven defaults and for what each back-end does.

    Examples
    --------
    >>> from latentzoo.models import GaussianMixture
    >>> from latentzoo.inference import fit
    >>> model = GaussianMixture(n_components=3)
    >>> idata = fit(model, model.default_data(), backend="em", random_seed=0, progressbar=False)  # doctest: +SKIP
    """

    n_components: int = 3
    weights_prior: float | tuple = 1.0
    m0: tuple | None = None
    kappa0: float = DATA_DRIVEN_KAPPA0
    nu0: float | None = None
    S0: tuple | None = None
    reg_covar: float = REG_COVAR

    name = "gmm"
    observation_dim = "observation"
    label_dim = "component"

    def __post_init__(self):
        K, weights_prior = check_mixture_size(self.n_components, self.weights_prior)
        object.__setattr__(self, "n_components", K)
        object.__setattr__(self, "weights_prior", weights_prior)
        object.__setattr__(self, "reg_covar", check_positive(self.reg_covar, "reg_covar"))
        self._check_niw_hyperparameters()
        if self.dim is not None:
            self._check_table_size(self.dim)

    def _check_table_size(self, dim: int) -> None:
        """Refuse K x D x D covariances too large to allocate (before any allocation)."""
        check_parameter_size(
            {"n_components": self.n_components, "n_features": dim, "n_features_bis": dim}, "the covariances covs"
        )

    def param_dims(self) -> dict[str, tuple[str, ...]]:
        return {
            "weights": ("component",),
            "means": ("component", "feature"),
            "covs": ("component", "feature", "feature_bis"),
        }

    def latent_dims(self) -> dict[str, tuple[str, ...]]:
        return {"responsibilities": ("observation", "component")}

    def n_parameters(self, data) -> int:
        """Free parameters for ``data``'s D features: K - 1 weights, K D means, K D (D + 1) / 2
        covariance entries."""
        return gmm_selection.gaussian_mixture_parameters(self.n_components, self.check_data(data).shape[1])

    def with_n_components(self, n_components: int) -> "GaussianMixture":
        """The same kind of mixture with ``n_components`` components, this one's ``reg_covar`` and
        the default (data-driven) priors: a candidate for
        :func:`latentzoo.inference.choose_n_components`."""
        return GaussianMixture(n_components=n_components, reg_covar=self.reg_covar)

    def coords(self, data) -> dict[str, list]:
        return {**GaussianObservations.coords(self, data), "component": np.arange(self.n_components)}

    def demo_plan(self) -> DemoPlan:
        # PyMC's explicit-assignment Gibbs evaluates the whole model for every point's proposal
        return DemoPlan(skips={"pymc_gibbs": "explicit assignments cost O(N^2) per sweep in PyMC; "
                                             "run `latentzoo compare gmm --backends pymc_gibbs` to see it"},
                        cost_seconds=52.0)

    def default_data(self) -> np.ndarray:
        """The seed's example: three well-separated 2-D blobs of unit spread, 100 points each, centred
        at (-6, -2), (0, 6) and (6, -2) (``datasets.blobs`` with a fixed seed), as a read-only
        (300, 2) float64 array."""
        from ..datasets import blobs

        x, _ = blobs(300, centers=DEFAULT_CENTRES, cluster_std=1.0, random_seed=20240)
        return self.check_data(x).x

    # -- validation ---------------------------------------------------------------------
    def check_data(self, data) -> GaussianData:
        """Validate observations.

        Parameters
        ----------
        data : array-like of shape (N, D), or GaussianData
            Finite real numbers, N >= n_components rows; D must match m0/S0 when given. A
            GaussianData is returned as it is once N and D are checked (no pass over the values).

        Returns
        -------
        GaussianData
            ``x``: ndarray of shape (N, D), float64, read-only.
        """
        K = self.n_components
        data = self._check_observations(
            data, min_rows=1 if isinstance(data, GaussianChunk) else K,
            too_few=f"n_components = {K} exceeds the number of observations N = {{n}}; use fewer components or more data",
        )
        self._check_table_size(data.n_features)
        return data

    def check_chunk(self, data) -> GaussianChunk:
        """:meth:`check_data` for one chunk of a chunked fit: any number of rows (the whole data
        set's N >= K is checked on all the chunks together)."""
        return self.check_data(GaussianChunk(data))

    def check_params(self, params, name: str = "params", dim: int | None = None) -> dict[str, np.ndarray]:
        """Validate one parameter set: ``weights`` (K,) positive summing to 1, ``means`` (K, D)
        finite, ``covs`` (K, D, D) symmetric positive definite. ``name`` is used in messages."""
        check_param_keys(params, NAMES, name)
        K = self.n_components
        dim = dim if dim is not None else self.dim
        weights = numeric_array(params["weights"], f"{name}['weights']", f"an array of {K} numbers")
        means = numeric_array(params["means"], f"{name}['means']", "a (K, D) array of numbers")
        covs = numeric_array(params["covs"], f"{name}['covs']", "a (K, D, D) array of numbers")
        if weights.shape != (K,):
            raise ValueError(f"{name}['weights'] must have shape ({K},), got {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise ValueError(f"{name}['weights'] must be finite and > 0, got {weights}")
        if abs(weights.sum() - 1.0) > SUM_ATOL:
            raise ValueError(f"{name}['weights'] must sum to 1, got sum {weights.sum():.6g}")
        if means.ndim != 2 or means.shape[0] != K or (dim is not None and means.shape[1] != dim):
            expected = f"({K}, {dim})" if dim is not None else f"({K}, D)"
            raise ValueError(f"{name}['means'] must have shape {expected}, got {means.shape}")
        if not np.all(np.isfinite(means)):
            raise ValueError(f"{name}['means'] must be finite")
        D = means.shape[1]
        if covs.shape != (K, D, D):
            raise ValueError(f"{name}['covs'] must have shape ({K}, {D}, {D}), got {covs.shape}")
        if not np.all(np.isfinite(covs)):
            raise ValueError(f"{name}['covs'] must be finite")
        covs = check_spd(covs, f"{name}['covs']")
        return {"weights": weights / weights.sum(), "means": means, "covs": covs}

    def _batched_params(self, params, dim: int):
        """Arrays of params with leading batch dims B (not checked for PD-ness: the kernels are)."""
        missing = [key for key in NAMES if key not in params]
        if missing:
            raise ValueError(f"params is missing {missing}; expected keys {list(NAMES)}")
        K = self.n_components
        weights = numeric_array(params["weights"], "params['weights']", "an array of numbers")
        means = numeric_array(params["means"], "params['means']", "an array of numbers")
        covs = numeric_array(params["covs"], "params['covs']", "an array of numbers")
        if weights.shape[-1:] != (K,) or means.shape[-2:] != (K, dim) or covs.shape[-3:] != (K, dim, dim):
            raise ValueError(
                f"params must have weights (..., {K}), means (..., {K}, {dim}) and covs (..., {K}, {dim}, {dim}); "
                f"got {weights.shape}, {means.shape} and {covs.shape}"
            )
        batch = np.broadcast_shapes(weights.shape[:-1], means.shape[:-2], covs.shape[:-3])
        return (
            np.broadcast_to(weights, batch + (K,)),
            np.broadcast_to(means, batch + (K, dim)),
            np.broadcast_to(covs, batch + (K, dim, dim)),
            batch,
        )

    # -- the prior ------------------------------------------------------------------------
    def _weights_prior(self):
        return weights_distribution(np.broadcast_to(np.asarray(self.weights_prior, float), (self.n_components,)))

    def _niw(self, m0, nu0, S0) -> NormalInverseWishart:
        return component_niw(m0, self.kappa0, nu0, S0, self.n_components)

    def resolved_prior(self, data) -> dict:
        """``{"weights": Dirichlet, ("means", "covs"): NIW batched over the K components}`` for
        ``data``: explicit hyperparameters as given, the others from the data (module docstring)."""
        data = self.check_data(data)
        mean, scatter = data.moments
        m0, nu0 = self._resolved_m0_nu0(mean)
        S0 = (np.asarray(self.S0, float) if self.S0 is not None
              else scale_from_covariance(scatter / data.n_observations, self.n_components, mean))
        return {"weights": self._weights_prior(), NIW_KEY: self._niw(m0, nu0, S0)}

    def with_data_prior(self, data) -> "GaussianMixture":
        """This model with every data-driven hyperparameter fixed from ``data`` (its repr then
        records the prior used)."""
        niw = self.resolved_prior(data)[NIW_KEY]
        return GaussianMixture(
            n_components=self.n_components, weights_prior=self.weights_prior, m0=niw.m[0], kappa0=self.kappa0,
            nu0=float(niw.nu[0]), S0=niw.S[0], reg_covar=self.reg_covar,
        )

    def data_prior_stats(self, data) -> dict:
        """What the data-driven prior needs from ``data``: the count, mean and scatter of all
        observations, as the statistics of one component (chunks combine by
        :meth:`combine_stats`, so chunked data give the prior without being gathered)."""
        x = self.check_data(data).x
        return self._stats(*component_stats(x, np.ones((x.shape[0], 1))))

    def with_data_prior_stats(self, stats) -> "GaussianMixture":
        """:meth:`with_data_prior` from :meth:`data_prior_stats` (of all the data, combined)."""
        count, mean, scatter = stats["counts"][0], stats["means"][0], stats["scatters"][0]
        m0, nu0 = self._resolved_m0_nu0(mean)
        S0 = np.asarray(self.S0, float) if self.S0 is not None else scale_from_covariance(scatter / count, self.n_components, mean)
        niw = self._niw(m0, nu0, S0)
        return GaussianMixture(
            n_components=self.n_components, weights_prior=self.weights_prior, m0=niw.m[0], kappa0=self.kappa0,
            nu0=float(niw.nu[0]), S0=niw.S[0], reg_covar=self.reg_covar,
        )

    def prior(self) -> dict:
        """``{"weights": Dirichlet, ("means", "covs"): NIW}``; only for explicit hyperparameters."""
        self._require_explicit_prior("prior()")
        return {
            "weights": self._weights_prior(),
            NIW_KEY: self._niw(np.asarray(self.m0), self.nu0, np.asarray(self.S0)),
        }

    def log_prior(self, params) -> np.ndarray:
        """log Dirichlet(weights) + sum_k log NIW(means_k, covs_k), shape B for params of batch
        shape B. Only for explicit hyperparameters: for a data-driven prior, use
        ``model.with_data_prior(data).log_prior(params)`` (``fit`` does so)."""
        prior = self.prior()
        weights = np.asarray(params["weights"], float)
        niw = prior[NIW_KEY]
        log_niw = niw.log_pdf(np.asarray(params["means"], float), np.asarray(params["covs"], float)).sum(-1)
        return prior["weights"].log_pdf(weights) + log_niw

    # -- likelihood -----------------------------------------------------------------------
    def _log_norm_and_resp(self, x, params, want_resp: bool = True):
        """``(log_norm (*B, N), resp (*B, N, K) or None)`` for params of batch shape B."""
        weights, means, covs, batch = self._batched_params(params, x.shape[1])
        size = int(np.prod(batch, dtype=np.int64))
        if batch == () or x.shape[0] >= _COMPILED_FROM_ROWS:
            # the compiled pass, one parameter set at a time: for EM's and MAP's single set, and
            # whenever the data are long enough for the per-set set-up not to matter
            flat = (weights.reshape(size, -1), means.reshape((size,) + means.shape[-2:]),
                    covs.reshape((size,) + covs.shape[-3:]))
            log_norms, resps = [], []
            for index in range(size):
                where = "params" if batch == () else f"params (draw {index})"
                try:
                    if want_resp:
                        log_norm, resp = e_step(x, *(array[index] for array in flat))
                        resps.append(resp)
                    else:
                        log_norm = log_evidence(x, *(array[index] for array in flat))
                except ValueError as error:
                    raise ValueError(f"{where}: {error}") from None
                log_norms.append(log_norm)
            # one set is reshaped, not copied (the (N, K) responsibilities of 4e6 points are 128 MB)
            log_norm = log_norms[0][None] if size == 1 else np.stack(log_norms)
            resp = None if not want_resp else (resps[0][None] if size == 1 else np.stack(resps))
            return (log_norm.reshape(batch + log_norm.shape[1:]),
                    None if resp is None else resp.reshape(batch + resp.shape[1:]))
        log_joint = batched_log_joint(
            x, weights.reshape(size, -1), means.reshape((size,) + means.shape[-2:]), covs.reshape((size,) + covs.shape[-3:])
        )
        log_norm = special.logsumexp(log_joint, axis=-1)
        resp = np.exp(log_joint - log_norm[..., None]) if want_resp else None
        return (log_norm.reshape(batch + log_norm.shape[1:]),
                None if resp is None else resp.reshape(batch + resp.shape[1:]))

    def log_likelihood(self, data, params) -> np.ndarray:
        """Pointwise log sum_k weights_k N(x_n | means_k, covs_k).

        Parameters
        ----------
        data : array-like of shape (N, D), or GaussianData
        params : dict with weights (*B, K), means (*B, K, D), covs (*B, K, D, D)

        Returns
        -------
        ndarray of shape (*B, N)
        """
        return self._log_norm_and_resp(self.check_data(data).x, params, want_resp=False)[0]

    def responsibilities(self, data, params) -> np.ndarray:
        """p(z_n = k | x_n, params), shape (*B, N, K); rows sum to one."""
        return self._log_norm_and_resp(self.check_data(data).x, params)[1]

    def latent_posterior(self, data, params) -> dict[str, np.ndarray]:
        """``{"responsibilities": (*B, N, K)}``."""
        return {"responsibilities": self.responsibilities(data, params)}

    def aic(self, data, params) -> float:
        """Akaike's criterion -2 log L + 2 p (p = :meth:`n_parameters`); lower is better."""
        return gmm_selection.aic(self, data, params)

    def bic(self, data, params) -> float:
        """Schwarz's criterion -2 log L + p log N; lower is better."""
        return gmm_selection.bic(self, data, params)

    def simulate(self, params, size, rng=None):
        """Draw ``size`` observations.

        Returns
        -------
        x : ndarray of shape (size, D)
        z : int ndarray of shape (size,), the component of each observation
        """
        rng = check_rng(rng, "rng")
        params = self.check_params(params)
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        z = rng.choice(self.n_components, size=int(size), p=params["weights"])
        chol = np.linalg.cholesky(params["covs"])
        noise = rng.standard_normal((int(size), params["means"].shape[1]))
        return params["means"][z] + np.einsum("nij,nj->ni", chol[z], noise), z

    # -- hooks: em ------------------------------------------------------------------------
    def initial_params(self, data, rng, strategy: str = "kmeans++") -> dict[str, np.ndarray]:
        """EM/Gibbs start.

        ``"kmeans++"`` (default): centres by k-means++ seeding (Arthur & Vassilvitskii 2007: each
        next centre is a data point drawn with probability proportional to its squared distance
        to the nearest centre so far; scikit-learn's greedy variant, see
        :func:`~latentzoo.models.gaussian.kmeans.kmeans_plusplus`); each point joins its nearest centre;
        weights are the cluster fractions, every covariance the pooled within-cluster covariance.
        ``"random"``: means at K distinct random observations, equal weights, every covariance
        the data covariance.
        """
        data = self.check_data(data)
        x = data.x
        n, dim = x.shape
        K = self.n_components
        floor = 1e-6 * max(float(np.mean(x.var(0))), np.finfo(float).tiny) * np.eye(dim)
        if strategy == "random":
            means = x[rng.choice(n, size=K, replace=False)].copy()
            cov = np.cov(x.T, bias=True).reshape(dim, dim) + floor
            return {"weights": np.full(K, 1.0 / K), "means": means, "covs": np.broadcast_to(cov, (K, dim, dim)).copy()}
        if strategy != "kmeans++":
            raise ValueError(f"init strategy must be 'kmeans++', 'random' or a dict of params, got {strategy!r}")
        centres = kmeans_plusplus(data, K, rng)
        counts, means, scatters = hard_component_stats(x, nearest_centres(x, centres), K)
        means = np.where(counts[:, None] > 0, means, centres)
        pooled = scatters.sum(0) / n + floor
        weights = np.maximum(counts, 1.0)
        return {"weights": weights / weights.sum(), "means": means, "covs": np.broadcast_to(pooled, (K, dim, dim)).copy()}

    def expected_stats(self, data, params):
        """E-step: ``{"counts", "means", "scatters"}`` weighted by the responsibilities, and the
        log-likelihood at ``params``."""
        data = self.check_data(data)
        # one fused pass: the responsibilities are used block by block, never stored
        log_lik, counts, means, scatters = e_step_stats(
            data.x, params["weights"], params["means"], params["covs"], centre=data.moments[0], summed=True
        )
        return self._stats(counts, means, scatters), log_lik

    def classification_stats(self, data, params):
        """Classification EM's E + C step: each point goes to its most probable component.

        Returns
        -------
        stats : dict of complete statistics of the hard assignment
        objective : float
            The classification log-likelihood sum_n max_k log(weights_k N(x_n | means_k, covs_k)),
            which classification EM never decreases.
        """
        x = self.check_data(data).x
        labels, objective = classify(x, params["weights"], params["means"], params["covs"])
        return self._stats(*hard_component_stats(x, labels, self.n_components)), objective

    def combine_stats(self, parts) -> dict:
        """Statistics of chunks combined into those of all their data: counts add, means and
        centred scatters combine by the pairwise formula (:func:`~latentzoo.models.core.stats_combine.combine_centred`)."""
        return combine_centred(parts)

    @staticmethod
    def _stats(counts, means, scatters):
        return {"counts": counts, "means": means, "scatters": scatters}

    def conditional_posterior(self, stats, mle: bool = False) -> dict:
        """``{"weights": Dirichlet, ("means", "covs"): NIW}`` given (expected or complete) statistics.

        With ``mle=True`` the priors are the flat limits (Dirichlet(1), NIW with kappa = 0,
        nu = -(D + 2), S = 0), whose modes are the maximum-likelihood estimates, and ``reg_covar``
        is added to each covariance's diagonal (scikit-learn's convention).

        Raises
        ------
        DegenerateComponentError
            With ``mle=True``, when a component is empty or its covariance is narrower than
            ``reg_covar`` in some direction (it collapsed onto a point or a subspace: the
            likelihood is unbounded, and the estimate would be the regulariser, not the data).
        """
        counts, means, scatters = stats["counts"], stats["means"], stats["scatters"]
        K, dim = means.shape
        if not mle:
            prior = self.prior()
            return {"weights": prior["weights"].update(counts), NIW_KEY: prior[NIW_KEY].update(counts, means, scatters)}
        self._check_not_collapsed(counts, scatters)
        regularised = scatters + (counts * self.reg_covar)[:, None, None] * np.eye(dim)
        weights = weights_distribution(np.ones(K))
        return {"weights": weights.update(counts), NIW_KEY: NormalInverseWishart.flat(dim, (K,)).update(counts, means, regularised)}

    def _check_not_collapsed(self, counts, scatters):
        # one batched call (a call per component cost as much as the M-step); empty components
        # are divided by 1 here and reported below before their eigenvalue is read
        eigenvalues = np.linalg.eigvalsh(scatters / np.where(counts > 0, counts, 1.0)[:, None, None])[:, 0]
        for k in range(counts.size):
            if counts[k] <= 1e-10 * counts.sum():
                raise DegenerateComponentError(
                    f"maximum-likelihood EM: component {k} is empty (no observation has weight on it), so its "
                    "mean and covariance are undefined; use the prior (em without mle=True: MAP-EM stays well "
                    "defined), fewer components, or other starting points (init, n_init)"
                )
            smallest = float(eigenvalues[k])
            if smallest <= self.reg_covar:
                raise DegenerateComponentError(
                    f"maximum-likelihood EM: component {k} collapsed onto {counts[k]:.3g} effective point(s): its "
                    f"covariance has an eigenvalue {smallest:.3g} <= reg_covar = {self.reg_covar:g}, so the likelihood "
                    "grows without bound there (duplicate points, or fewer points than D + 1 in the component). "
                    "Use the prior (em without mle=True: MAP-EM stays well defined), fewer components, or other "
                    "starting points (init, n_init)"
                )

    # -- hooks: gibbs -----------------------------------------------------------------------
    def sample_stats(self, data, params, rng):
        """Draw every assignment z_n from its responsibilities; complete statistics."""
        x = self.check_data(data).x
        _, resp = e_step(x, params["weights"], params["means"], params["covs"])
        cumulative = np.cumsum(resp, axis=1)
        labels = np.minimum((rng.random((x.shape[0], 1)) > cumulative).sum(1), self.n_components - 1)
        return self._stats(*hard_component_stats(x, labels, self.n_components))

    # -- hooks: vb --------------------------------------------------------------------------
    def initial_factors(self, data, rng) -> dict:
        """VB start: the conjugate posterior given the responsibilities at a k-means++ start."""
        data = self.check_data(data)
        start = self.initial_params(data, rng, "kmeans++")
        _, resp = e_step(data.x, start["weights"], start["means"], start["covs"])
        return self.conditional_posterior(self._stats(*component_stats(data.x, resp)))

    def vb_expected_stats(self, data, factors):
        """Update q(z): expected statistics and the ELBO's data term.

        log rho_nk = E[log weights_k] + E[log N(x_n | means_k, covs_k)] (Bishop eq. 10.46), and
        with the optimal q(z) the terms E_q[log p(x, z | theta)] - E_q[log q(z)] sum to
        sum_n log sum_k rho_nk; the ELBO is that minus the factors' KL divergences from the prior.
        """
        data = self.check_data(data)
        niw = factors[NIW_KEY]
        log_norm, counts, means, scatters = expected_e_step_stats(
            data.x, factors["weights"].expected_log(), niw.m, niw.kappa, niw.nu, niw.S, centre=data.moments[0],
            summed=True,
        )
        return self._stats(counts, means, scatters), log_norm

    # -- PyMC declaration -------------------------------------------------------------------
    def pymc_model(self, data, marginalized: bool = True):
        """The PyMC declaration of the same priors and likelihood.

        ``weights ~ Dirichlet(weights_prior)``, ``covs ~ IW(nu0, S0)`` (exact, batched over the
        components: :func:`latentzoo.models.ops.pymc_parts.inverse_wishart`),
        ``means[k] | covs[k] ~ MvNormal(m0, covs[k] / kappa0)``.

        Parameters
        ----------
        data : array-like of shape (N, D), or GaussianData
        marginalized : bool
            True: ``x ~ Mixture(weights, MvNormal(means_k, covs_k))`` with the assignments summed
            out (NUTS, ADVI, MAP). False: explicit ``z ~ Categorical(weights)`` per observation and
            ``x | z ~ MvNormal(means[z], covs[z])`` (PyMC's compound Gibbs).
        """
        import pymc as pm
        import pytensor.tensor as pt

        from ..ops.pymc_data import data_container
        from ..ops.pymc_parts import gaussian_mixture, inverse_wishart, mvnormal

        data = self.check_data(data)
        x = data.x
        prior = self.resolved_prior(data)
        niw = prior[NIW_KEY]
        K = self.n_components
        coords = {key: list(value) for key, value in self.coords(data).items()}
        with pm.Model(coords=coords) as model:
            if K == 1:
                weights = pt.ones(1, dtype="float64")
            else:
                weights = pm.Dirichlet("weights", a=np.asarray(prior["weights"].concentration, np.float64), dims="component")
            covs, chol = inverse_wishart("covs", np.float64(niw.nu[0]), np.asarray(niw.S, np.float64), dims=("component", "feature", "feature_bis"))
            # mvnormal / gaussian_mixture: pm.MvNormal's and pm.Mixture's densities without their
            # Python-level triangular solves (one per observation and component in pm.Mixture)
            means = mvnormal(
                "means",
                np.asarray(niw.m, np.float64),
                chol / np.sqrt(np.float64(self.kappa0)),
                dims=("component", "feature"),
                initval=np.asarray(niw.m, np.float64) + spread_start(x, K),
            )
            # a container, not a constant: one compiled model serves every data set (models/ops/pymc_data.py)
            x_data = data_container("x_data", x)
            if marginalized:
                gaussian_mixture("x", weights, means, chol, observed=x_data, dims=("observation", "feature"))
            else:
                z = pm.Categorical("z", p=weights, dims="observation")
                mvnormal("x", means[z], chol[z], observed=x_data, dims=("observation", "feature"))
        return model

    def pymc_initial_point(self, params: dict) -> dict[str, np.ndarray]:
        """The free variables of :meth:`pymc_model` at ``params`` (with K = 1 the weights are
        the constant (1,), not a PyMC variable)."""
        names = NAMES if self.n_components > 1 else NIW_KEY
        point = {name: np.asarray(params[name], float) for name in names}
        if "weights" in point:
            point["weights"] = inside_simplex(point["weights"])  # an EM weight can be exactly 0
        return point

    # -- K-means as a limit (seed 001) ----------------------------------------------------------
    def kmeans(self, data, init_centres, max_iter: int = 300):
        """K-means as classification EM with fixed equal weights and identity covariances.

        With weights_k = 1/K and covs_k = I, the C-step's argmax_k log(weights_k N(x_n | means_k, I))
        is the nearest centre (Lloyd's assignment) and the M-step's maximum-likelihood mean of
        each cluster is Lloyd's update; only the means are estimated. It stops when no assignment
        changes (a fixed point of both algorithms).

        Parameters
        ----------
        data : array-like of shape (N, D), or GaussianData
        init_centres : array-like of shape (K, D)
        max_iter : int

        Returns
        -------
        centres : ndarray of shape (K, D)
        labels : int ndarray of shape (N,)
        inertia : float
            Sum of squared distances to the assigned centres.
        """
        return lloyd(self.check_data(data).x, init_centres, self.n_components, max_iter)

    def picture(self, comparison):
        """The data by component, with each back-end's 95% component contours: a matplotlib Figure,
        or None for one feature (see :func:`~latentzoo.models.gaussian.pictures.gmm_picture`)."""
        # imported here: importing the models must not import matplotlib
        from ..gaussian.pictures import gmm_picture

        return gmm_picture(comparison)

