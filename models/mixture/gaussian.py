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

Everything else comes from :class:`~latentzoo.models.mixture.finite.FiniteMixture` (weights,
validation, Gibbs, chunks, the PyMC declaration, AIC and BIC) and the component family the
Gaussian HMM uses too, :class:`~latentzoo.models.families.gaussian.GaussianFamily`. What stays
here is Gaussian: the data-driven prior, the k-means++ start, :class:`GaussianData`, and the
fused compiled E-steps (``models/gaussian/kernels.py``), which give the log-normaliser,
responsibilities and statistics in one pass over the data without storing an (N, K) matrix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..core.base import DegenerateComponentError, check_positive
from ..core.protocols import DemoPlan
from ..core.sizes import check_parameter_size
from ..families.gaussian import GaussianFamily
from ..gaussian.data import GaussianChunk, GaussianData, GaussianObservations
from ..gaussian.kernels import e_step, e_step_stats, expected_e_step_stats
from ..gaussian.kmeans import kmeans_plusplus, lloyd  # noqa: F401  (kmeans_plusplus: re-exported for examples/gmm.py)
from ..gaussian.niw_hyperparameters import NIWHyperparameters
from .finite import FiniteMixture

__all__ = ["DegenerateComponentError", "GaussianMixture", "DATA_DRIVEN_KAPPA0", "REG_COVAR"]

#: kappa0 of the data-driven prior (Fraley & Raftery 2007)
DATA_DRIVEN_KAPPA0 = 0.01
#: the covariance regulariser of maximum-likelihood EM (scikit-learn's ``reg_covar`` default)
REG_COVAR = 1e-6
#: from this many observations the pointwise hooks run the compiled pass once per parameter set;
#: below it, NumPy over chunks of sets is faster for the thousands of draws of a sampler
_COMPILED_FROM_ROWS = 2048
#: centres of the default data's blobs
DEFAULT_CENTRES = ((-6.0, -2.0), (0.0, 6.0), (6.0, -2.0))
NIW_KEY = ("means", "covs")


@dataclass(frozen=True)
class GaussianMixture(NIWHyperparameters, GaussianObservations, FiniteMixture):
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
    lesson = "label-switching"
    api_page = "latentzoo.models.GaussianMixture"
    counts_key = "counts"  # the family's counts, from the same pass, update the weights too
    #: the enumeration groups assignments with equal statistics, and rows of real numbers hardly
    #: ever give equal ones: K^N groups. The posterior is not exactly solvable in practice.
    exact_posterior = None

    def __post_init__(self):
        object.__setattr__(self, "reg_covar", check_positive(self.reg_covar, "reg_covar"))
        self._check_niw_hyperparameters()
        super().__post_init__()
        if self.dim is not None:
            self._check_table_size(self.dim)

    def make_family(self) -> GaussianFamily:
        return GaussianFamily(self.dim, m0=self.m0, kappa0=self.kappa0, nu0=self.nu0, S0=self.S0,
                              reg_covar=self.reg_covar, owner="GaussianMixture", label="component")

    def _check_table_size(self, dim: int) -> None:
        """Refuse K x D x D covariances too large to allocate (before any allocation)."""
        check_parameter_size(
            {"n_components": self.n_components, "n_features": dim, "n_features_bis": dim}, "the covariances covs"
        )

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

    # -- the data-driven prior (module docstring) ---------------------------------------------
    def resolved_prior(self, data) -> dict:
        """``{"weights": Dirichlet, ("means", "covs"): NIW batched over the K components}`` for
        ``data``: explicit hyperparameters as given, the others from the data (module docstring)."""
        return self.with_data_prior(data).prior()

    def with_data_prior(self, data) -> "GaussianMixture":
        """This model with every data-driven hyperparameter fixed from ``data`` (its repr then
        records the prior used)."""
        data = self.check_data(data)
        mean, scatter = data.moments  # computed once per GaussianData
        return self.with_data_prior_stats({"counts": [data.n_observations], "means": [mean], "scatters": [scatter]})

    def data_prior_stats(self, data) -> dict:
        """What the data-driven prior needs from ``data``: the count, mean and scatter of all
        observations, as the statistics of one component (chunks combine by
        :meth:`combine_stats`, so chunked data give the prior without being gathered)."""
        return self.family.data_prior_stats(self.check_data(data).x)

    def with_data_prior_stats(self, stats) -> "GaussianMixture":
        """:meth:`with_data_prior` from :meth:`data_prior_stats` (of all the data, combined)."""
        return dataclasses.replace(self, **self.family.data_prior_from_stats(stats, self.n_components))

    def pymc_model(self, data, marginalized: bool = True):
        """:meth:`FiniteMixture.pymc_model <latentzoo.models.mixture.finite.FiniteMixture.pymc_model>`
        under the prior resolved from ``data``: ``covs ~ IW(nu0, S0)`` (exact, batched),
        ``means[k] | covs[k] ~ MvNormal(m0, covs[k] / kappa0)``."""
        model = self.with_data_prior(data) if self.data_driven else self
        return FiniteMixture.pymc_model(model, data, marginalized)

    # -- the compiled kernels: one pass over the data, no (N, K) matrix kept -------------------
    def _log_norm_block(self, x, block: dict, want_resp: bool, unbatched: bool):
        weights, means, covs = block["weights"], block["means"], block["covs"]
        K, dim = self.n_components, x.shape[1]
        if means.shape[-1] != dim or covs.shape[-2:] != (dim, dim):
            raise ValueError(f"params must have weights (..., {K}), means (..., {K}, {dim}) and covs (..., {K}, {dim}, "
                             f"{dim}); got {weights.shape}, {means.shape} and {covs.shape}")
        if not unbatched and x.shape[0] < _COMPILED_FROM_ROWS:
            # the family's NumPy over the block of sets: faster than a compiled pass per set for short data
            return super()._log_norm_block(x, block, want_resp, unbatched)
        log_norms, resps = [], []
        for index in range(weights.shape[0]):
            try:
                log_norm, resp = e_step(x, weights[index], means[index], covs[index], want_resp)
                resps.append(resp)
            except ValueError as error:
                raise ValueError(f"{'params' if unbatched else f'params (draw {index})'}: {error}") from None
            log_norms.append(log_norm)
        # one set is reshaped, not copied (the (N, K) responsibilities of 4e6 points are 128 MB)
        stack = lambda arrays: arrays[0][None] if len(arrays) == 1 else np.stack(arrays)  # noqa: E731
        return stack(log_norms), (stack(resps) if want_resp else None)

    def initial_params(self, data, rng, strategy: str = "kmeans++") -> dict[str, np.ndarray]:
        """EM, Gibbs and VB start.

        ``"kmeans++"`` (default): centres by k-means++ seeding (Arthur & Vassilvitskii 2007: each
        next centre is a data point drawn with probability proportional to its squared distance
        to the nearest centre so far; scikit-learn's greedy variant, see
        :func:`~latentzoo.models.gaussian.kmeans.kmeans_plusplus`); each point joins its nearest centre;
        weights are the cluster fractions, every covariance the pooled within-cluster covariance.
        ``"random"``: means at K distinct random observations, equal weights, every covariance
        the data covariance. ``"prior"``: a draw from the prior.
        """
        if strategy not in ("kmeans++", "random", "prior"):
            raise ValueError(f"init strategy must be 'kmeans++', 'random', 'prior' or a dict of params, got {strategy!r}")
        if strategy == "prior":
            return self.prior_draw(self.check_data(data).x, rng)
        K = self.n_components
        params, labels = self.family.initial_params(self.check_data(data).x, K, rng, strategy)
        counts = np.full(K, 1.0) if labels is None else np.maximum(np.bincount(labels, minlength=K), 1.0)
        return {"weights": counts / counts.sum(), **params}

    def expected_stats(self, data, params):
        """E-step: the statistics weighted by the responsibilities, and the log-likelihood at
        ``params``, in one fused pass (the responsibilities are used block by block, never stored)."""
        data = self.check_data(data)
        log_lik, *stats = e_step_stats(data.x, params["weights"], params["means"], params["covs"],
                                       centre=data.moments[0], summed=True)
        return dict(zip(("counts", "means", "scatters"), stats)), log_lik

    def vb_expected_stats(self, data, factors):
        """Update q(z): expected statistics and the ELBO's data term, in one fused pass.

        log rho_nk = E[log weights_k] + E[log N(x_n | means_k, covs_k)] (Bishop eq. 10.46), and
        with the optimal q(z) the terms E_q[log p(x, z | theta)] - E_q[log q(z)] sum to
        sum_n log sum_k rho_nk; the ELBO is that minus the factors' KL divergences from the prior.
        """
        data = self.check_data(data)
        niw = factors[NIW_KEY]
        log_norm, *stats = expected_e_step_stats(
            data.x, factors["weights"].expected_log(), niw.m, niw.kappa, niw.nu, niw.S, centre=data.moments[0],
            summed=True,
        )
        return dict(zip(("counts", "means", "scatters"), stats)), log_norm

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
