"""The local-level model (a random walk observed with noise): ``LocalLevel``.

Generative model (Durbin & Koopman 2012, ch. 2)::

    sigma2_eps ~ InverseGamma(shape, scale)     (shape, scale) = sigma2_eps_prior
    sigma2_eta ~ InverseGamma(shape, scale)     (shape, scale) = sigma2_eta_prior
    level_1 ~ Normal(mean, variance)            (mean, variance) = level_prior
    level_t+1 = level_t + eta_t,   eta_t ~ N(0, sigma2_eta)
    y_t = level_t + eps_t,         eps_t ~ N(0, sigma2_eps)          t = 1..T

The levels are a linear-Gaussian chain (:mod:`latentzoo.models.statespace.kalman`) with the system
``Z = [1], T = [[1]], G = [[sigma_eta]]``; the Kalman filter integrates them out. Every back-end
uses the same pieces:

* ``em``: Shumway & Stoffer's (1982) EM. The E-step is the RTS smoother; its expected squared
  residuals and level increments update the two Inverse-Gamma factors, whose mode is the M-step
  (MAP; ``mle=True``: the flat limit, whose mode is the maximum-likelihood variance).
* ``gibbs``: the simulation smoother draws the levels, then each variance from its Inverse-Gamma
  conditional.
* ``vb``: q(levels) q(sigma2_eps) q(sigma2_eta). q(levels) is the smoother run with the variances
  ``1 / E_q[1 / sigma2]``; the two factors are Inverse-Gamma.
* ``exact``: quadrature over ``(log sigma2_eps, log sigma2_eta)`` on a grid, the levels integrated
  by the Kalman filter (:class:`QuadraturePosterior`).
* ``nuts``, ``advi``, ``fullrank_advi``, ``map``: the PyMC model with the Kalman log-likelihood
  as a PyTensor Op with an analytic gradient (:mod:`latentzoo.models.ops.kalman_op`; the levels
  never enter the sampler, so NUTS sees no funnel).
* ``pymc_gibbs``: the PyMC model with explicit levels; without a discrete latent PyMC's compound
  step is plain NUTS over the levels and the variances (the centred funnel, for comparison).

Why a proper prior on the first level: the diffuse limit (variance to infinity) gives no
marginal likelihood (``log p(y)`` drifts to minus infinity with the prior's variance), so neither
the exact evidence nor the comparison of log-likelihoods between back-ends would be defined, and
the first observation would be dropped from the pointwise log-likelihood. A normal prior ten times
wider than the data's spread changes the fitted variances by far less than their standard errors
(see ``docs/local-level.md``).

Missing observations (NaN) are skipped by the filter: they add nothing to the likelihood, and their
levels are smoothed from their neighbours.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..core.base import LatentModel, check_param_keys, check_rng, numeric_array
from ..core.conjugate import InverseGamma
from ..core.protocols import TIME_SERIES, DemoPlan
from .series import SeriesData
from .kalman import local_level_log_likelihood, rts_smoother, simulate_states, simulation_smoother

__all__ = ["LocalLevel", "QuadraturePosterior"]

NAMES = ("sigma2_eps", "sigma2_eta")
#: shape of the data-driven Inverse-Gamma priors: 1 adds one pseudo-observation's worth of
#: information and keeps a heavy right tail (no prior mean)
DEFAULT_SHAPE = 1.0
#: their scale, as a fraction of the data's variance: prior mode at 1/200 of it
DEFAULT_SCALE_FRACTION = 0.01
#: the first level's data-driven prior variance, in units of the data's variance
DEFAULT_LEVEL_WIDTH = 10.0


def _check_pair(value, name: str, what: str, positive_first: bool) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes):
        raise TypeError(f"{name} must be a pair {what} of numbers, got {value!r}")
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair {what} of numbers, got {value!r}") from None
    if len(pair) != 2 or not all(np.isfinite(pair)) or pair[1] <= 0 or (positive_first and pair[0] <= 0):
        sign = "positive" if positive_first else "a finite number and a positive"
        raise ValueError(f"{name} must be a pair {what} of {sign} finite numbers, got {value!r}")
    return pair


@dataclass(frozen=True)
class LocalLevel(LatentModel):
    """The local-level model: a Gaussian random walk observed with Gaussian noise.

    Parameters
    ----------
    sigma2_eps_prior : (shape, scale) or None, default None
        Inverse-Gamma prior of the observation-noise variance. None: data-driven,
        ``(1, var(y) / 100)`` (resolved once by ``fit`` through :meth:`with_data_prior`).
    sigma2_eta_prior : (shape, scale) or None, default None
        Inverse-Gamma prior of the level-noise variance; None as above.
    level_prior : (mean, variance) or None, default None
        Normal prior of the first level. None: ``(mean(y), 10 var(y))``, proper but weak (the
        module docstring says why it is proper).

    Notes
    -----
    Parameters ``sigma2_eps`` and ``sigma2_eta`` (scalars); the latent posterior is ``level``
    (time), the smoothed mean ``E[level_t | y, params]``, and ``level_sd`` (time), its standard
    deviation; over posterior draws their mixture is the posterior of the levels.

    Examples
    --------
    >>> model = LocalLevel(sigma2_eps_prior=(2.0, 1.0), sigma2_eta_prior=(2.0, 0.1), level_prior=(0.0, 10.0))
    >>> y, level = model.simulate({"sigma2_eps": 1.0, "sigma2_eta": 0.1}, 50, rng=0)
    >>> y.shape, level.shape
    ((50,), (50,))
    """

    sigma2_eps_prior: tuple[float, float] | None = None
    sigma2_eta_prior: tuple[float, float] | None = None
    level_prior: tuple[float, float] | None = None

    name = "local-level"
    lesson = "local-level"
    api_page = "latentzoo.models.LocalLevel"
    observation_dim = "time"
    data_file_format = TIME_SERIES  # a file of values, or of (time, value) rows

    def __post_init__(self):
        for name in ("sigma2_eps_prior", "sigma2_eta_prior"):
            object.__setattr__(self, name, _check_pair(getattr(self, name), name, "(shape, scale)", True))
        object.__setattr__(self, "level_prior", _check_pair(self.level_prior, "level_prior", "(mean, variance)", False))

    # -- the system of the chain -------------------------------------------------------------
    @staticmethod
    def system(params: dict) -> dict:
        """The state-space matrices at scalar ``params`` (see :mod:`~latentzoo.models.statespace.kalman`),
        without the first state's prior: ``Z``, ``T``, ``H``, ``G``."""
        return {"Z": np.ones(1), "T": np.ones((1, 1)), "H": float(params["sigma2_eps"]),
                "G": np.sqrt(float(params["sigma2_eta"])) * np.ones((1, 1))}

    def _start(self) -> tuple[np.ndarray, np.ndarray]:
        mean, var = self._explicit("level_prior")
        return np.array([mean]), np.array([[var]])

    # -- data ----------------------------------------------------------------------------------
    def check_data(self, data) -> SeriesData:
        """Validate a series.

        Parameters
        ----------
        data : array-like of shape (T,) or (T, 1), pandas Series, text of numbers, or SeriesData
            Real numbers; NaN (or ``NA``/``?`` in text) marks a missing step. At least two steps and
            two observed values. A pandas Series' index (strictly increasing numbers or dates)
            becomes the ``time`` coordinate of the results.

        Returns
        -------
        SeriesData
            ``y`` (T,) read-only float64, and ``time`` (T,).
        """
        return SeriesData.from_data(data)

    def default_data(self) -> np.ndarray:
        """The Nile's annual flow at Aswan, 1871-1970 (:func:`latentzoo.models.datasets.nile`), a pandas
        Series indexed by year (the years become the ``time`` coordinate)."""
        from ..datasets import nile

        import pandas as pd

        years, flow = nile()
        return pd.Series(flow, index=pd.Index(years, name="year"), name="volume")

    def demo_plan(self) -> DemoPlan:
        # ADVI from PyMC's start (the priors' mode, var(y) / 200) crawls up the log-variances and its
        # default stopping rule fires on the crawl, far from the optimum; from EM's point it converges
        # in about 2000 steps (tests/test_local_level.py::test_advi_reaches_the_mean_field_optimum).
        # Measured with a warm cache: 21 s at load 14 on two cores (35 s cold), every demo back-end kept
        return DemoPlan(options={"advi": {"start": "em"}}, cost_seconds=21.0)

    def param_dims(self) -> dict[str, tuple[str, ...]]:
        return {"sigma2_eps": (), "sigma2_eta": ()}

    def latent_dims(self) -> dict[str, tuple[str, ...]]:
        return {"level": ("time",), "level_sd": ("time",)}

    def coords(self, data) -> dict[str, list]:
        return {"time": list(self.check_data(data).time)}

    def observed_data(self, data) -> dict:
        return {"y": (self.check_data(data).y, ("time",))}

    def n_observations(self, data) -> int:
        return len(self.check_data(data))

    def check_params(self, params, name: str = "params") -> dict[str, np.ndarray]:
        """``{"sigma2_eps": positive, "sigma2_eta": positive}`` (scalars or batches of equal shape)."""
        check_param_keys(params, NAMES, name)
        checked = {}
        for key in NAMES:
            value = numeric_array(params[key], f"{name}[{key!r}]", "a positive variance")
            if not np.all(np.isfinite(value)) or np.any(value <= 0):
                raise ValueError(f"{name}[{key!r}] must be a positive finite variance, got {params[key]!r}")
            checked[key] = value
        return checked

    # -- the prior -----------------------------------------------------------------------------
    def _explicit(self, name: str) -> tuple[float, float]:
        value = getattr(self, name)
        if value is None:
            raise ValueError(
                f"{name} is None (data-driven), so it depends on the data; use model.with_data_prior(data) "
                "(fit does so) or give it explicitly"
            )
        return value

    def with_data_prior(self, data) -> "LocalLevel":
        """This model with every data-driven prior fixed from ``data``: Inverse-Gamma
        ``(1, var(y) / 100)`` for both variances, Normal ``(mean(y), 10 var(y))`` for the first
        level (``y``: the observed values)."""
        y = self.check_data(data).y
        observed = y[~np.isnan(y)]
        variance = float(np.var(observed))
        if variance <= 0:
            raise ValueError("the data-driven priors need the observed values to vary; give the priors explicitly")
        scale = (DEFAULT_SHAPE, DEFAULT_SCALE_FRACTION * variance)
        return LocalLevel(
            sigma2_eps_prior=self.sigma2_eps_prior or scale,
            sigma2_eta_prior=self.sigma2_eta_prior or scale,
            level_prior=self.level_prior or (float(np.mean(observed)), DEFAULT_LEVEL_WIDTH * variance),
        )

    def prior(self) -> dict:
        """``{"sigma2_eps": InverseGamma, "sigma2_eta": InverseGamma}`` (explicit priors only)."""
        return {name: InverseGamma(*self._explicit(f"{name}_prior")) for name in NAMES}

    def log_prior(self, params) -> np.ndarray:
        prior = self.prior()
        return sum(prior[name].log_pdf(np.asarray(params[name], float)) for name in NAMES)

    # -- likelihood and latents ----------------------------------------------------------------
    def log_likelihood(self, data, params) -> np.ndarray:
        """Pointwise ``log p(y_t | y_1..t-1, params)`` (0 at a missing step), the levels integrated
        out by the Kalman filter; shape ``batch + (T,)``. The sum is ``log p(y | params)``."""
        y = self.check_data(data).y
        mean, var = self._explicit("level_prior")
        return local_level_log_likelihood(y, params["sigma2_eps"], params["sigma2_eta"], mean, var)

    def smooth(self, data, params) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The RTS smoother at scalar ``params``: ``E[level_t | y]`` (T,), ``Var[level_t | y]`` (T,),
        ``Cov[level_t+1, level_t | y]`` (T-1,) and ``log p(y | params)``."""
        y = self.check_data(data).y
        system = self.system(params)
        a1, P1 = self._start()
        means, covs, lags, loglik = rts_smoother(y, system["Z"], system["T"], system["H"], system["G"], a1, P1)
        return means[:, 0], covs[:, 0, 0], lags[:, 0, 0], float(loglik.sum())

    def latent_posterior(self, data, params) -> dict[str, np.ndarray]:
        """``level`` and ``level_sd``: the smoothed mean and standard deviation of every level given
        the parameters, shape ``batch + (T,)``."""
        series = self.check_data(data)
        y = series.y
        eps, eta = np.broadcast_arrays(np.asarray(params["sigma2_eps"], float), np.asarray(params["sigma2_eta"], float))
        means = np.empty(eps.shape + y.shape)
        sds = np.empty(eps.shape + y.shape)
        for index in np.ndindex(eps.shape):
            mean, var, _, _ = self.smooth(series, {"sigma2_eps": eps[index], "sigma2_eta": eta[index]})
            means[index], sds[index] = mean, np.sqrt(var)
        return {"level": means, "level_sd": sds}

    def sample_level(self, data, params, rng) -> np.ndarray:
        """One draw of the levels (T,) from ``p(level | y, params)`` (the simulation smoother)."""
        y = self.check_data(data).y
        system = self.system(params)
        a1, P1 = self._start()
        return simulation_smoother(y, system["Z"], system["T"], system["H"], system["G"], a1, P1, check_rng(rng))[:, 0]

    def simulate(self, params, size, rng=None):
        """``(y, level)``, two arrays of shape (size,): a series of ``size`` steps and its levels."""
        params = self.check_params(params)
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 2:
            raise ValueError(f"size must be an integer number of steps >= 2, got {size!r}")
        system = self.system(params)
        a1, P1 = self._start()
        states, y = simulate_states(int(size), system["Z"], system["T"], system["H"], system["G"], a1, P1, check_rng(rng))
        return y, states[:, 0]

    # -- EM, Gibbs, VB: statistics and the conjugate update ------------------------------------
    def initial_params(self, data, rng, strategy: str = "random") -> dict:
        """``"random"``: sigma2_eps a random fraction of the observed variance, sigma2_eta a random
        fraction of the variance of the differences; ``"prior"``: a draw from the prior."""
        y = self.check_data(data).y
        if strategy == "prior":
            draws = {name: prior.sample(rng) for name, prior in self.prior().items()}
            return {name: np.asarray(value, float) for name, value in draws.items()}
        if strategy != "random":
            raise ValueError(f"strategy must be 'random' or 'prior', got {strategy!r}")
        observed = y[~np.isnan(y)]
        steps = np.diff(y)
        steps = steps[~np.isnan(steps)]
        diff_var = float(np.mean(steps**2)) if steps.size else float(np.var(observed))
        base = max(float(np.var(observed)), np.finfo(float).tiny)
        return {"sigma2_eps": np.asarray(base * rng.uniform(0.1, 0.9)),
                "sigma2_eta": np.asarray(max(diff_var, 1e-6 * base) * rng.uniform(0.05, 0.5))}

    def _stats(self, y, mean, var, lag) -> dict:
        observed = ~np.isnan(y)
        residual = y[observed] - mean[observed]
        # E[(y_t - mu_t)^2] and E[(mu_t+1 - mu_t)^2] under the smoother (Shumway & Stoffer 1982)
        eps_sq = float(np.sum(residual**2 + var[observed]))
        eta_sq = float(np.sum(np.diff(mean) ** 2 + var[1:] + var[:-1] - 2.0 * lag))
        return {"eps_sq": eps_sq, "eps_count": float(observed.sum()), "eta_sq": eta_sq, "eta_count": float(y.size - 1)}

    def expected_stats(self, data, params) -> tuple[dict, float]:
        """E-step: expected squared residuals and level increments, and ``log p(y | params)``."""
        series = self.check_data(data)
        y = series.y
        mean, var, lag, loglik = self.smooth(series, params)
        return self._stats(y, mean, var, lag), loglik

    def sample_stats(self, data, params, rng) -> dict:
        """The squared residuals and increments of one draw of the levels (simulation smoother)."""
        series = self.check_data(data)
        y = series.y
        level = self.sample_level(series, params, rng)
        observed = ~np.isnan(y)
        return {"eps_sq": float(np.sum((y[observed] - level[observed]) ** 2)), "eps_count": float(observed.sum()),
                "eta_sq": float(np.sum(np.diff(level) ** 2)), "eta_count": float(y.size - 1)}

    def conditional_posterior(self, stats, mle: bool = False) -> dict:
        """``InverseGamma(shape + n / 2, scale + S / 2)`` per variance (the flat limit if ``mle``)."""
        prior = {name: InverseGamma.flat() for name in NAMES} if mle else self.prior()
        return {"sigma2_eps": prior["sigma2_eps"].update(stats["eps_sq"], stats["eps_count"]),
                "sigma2_eta": prior["sigma2_eta"].update(stats["eta_sq"], stats["eta_count"])}

    def initial_factors(self, data, rng) -> dict:
        """q(variances) from the smoother at a random start."""
        return self.conditional_posterior(self.expected_stats(data, self.initial_params(data, rng))[0])

    def vb_expected_stats(self, data, factors) -> tuple[dict, float]:
        """Update q(levels) and return its statistics and ``E_q[log p(y, levels | variances)] + H[q(levels)]``.

        The optimal q(levels) is the smoothing distribution with the variances ``v = 1 / E_q[1 / sigma2]``.
        Its Kalman log-likelihood ``log p_v(y)`` equals ``E_q(levels)[log p_v(y, levels)] + H``, and
        ``E_q[log p(y, levels | sigma2)]`` differs from ``log p_v(y, levels)`` only in the ``log sigma2``
        terms: ``n / 2 (log v - E_q[log sigma2])`` for the n residuals of each kind.
        """
        series = self.check_data(data)
        y = series.y
        plug_in = {name: 1.0 / float(factors[name].expected_inverse()) for name in NAMES}
        mean, var, lag, loglik = self.smooth(series, plug_in)
        stats = self._stats(y, mean, var, lag)
        correction = sum(0.5 * stats[count] * (np.log(plug_in[name]) - float(factors[name].expected_log()))
                         for name, count in (("sigma2_eps", "eps_count"), ("sigma2_eta", "eta_count")))
        return stats, loglik + float(correction)

    # -- exact: quadrature ---------------------------------------------------------------------
    def log_posterior_grid(self, data, log_eps, log_eta) -> np.ndarray:
        """``log p(y | s) + log p(s) + log s_eps + log s_eta`` on the grid ``(log_eps, log_eta)``
        (the density of the log-variances, up to ``log p(y)``), shape (len(log_eps), len(log_eta))."""
        series = self.check_data(data)
        u, v = np.meshgrid(np.asarray(log_eps, float), np.asarray(log_eta, float), indexing="ij")
        params = {"sigma2_eps": np.exp(u), "sigma2_eta": np.exp(v)}
        return self.log_likelihood(series, params).sum(-1) + self.log_prior(params) + u + v

    def exact_posterior(self, data, n_grid: int = 200) -> "QuadraturePosterior":
        """The posterior of the two variances by quadrature, with the levels integrated out exactly.

        A coarse grid over a wide range of log-variances (the observed variance times ``e^-20``
        to ``e^8``) finds where the log posterior lies within 30 of its maximum; an
        ``n_grid`` x ``n_grid`` grid covers that box (padded by one coarse cell). The density is
        taken constant on each cell (midpoint rule), so the log evidence and draws are exact up to
        the quadrature error, which the tests bound.
        """
        series = self.check_data(data)
        y = series.y
        observed = y[~np.isnan(y)]
        centre = np.log(max(float(np.var(observed)), np.finfo(float).tiny))
        coarse = np.linspace(centre - 20.0, centre + 8.0, 113)
        step = coarse[1] - coarse[0]
        log_post = self.log_posterior_grid(series, coarse, coarse)
        keep = log_post > log_post.max() - 30.0
        rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
        eps_edges = np.linspace(coarse[rows[0]] - step, coarse[rows[-1]] + step, n_grid + 1)
        eta_edges = np.linspace(coarse[cols[0]] - step, coarse[cols[-1]] + step, n_grid + 1)
        log_eps = 0.5 * (eps_edges[1:] + eps_edges[:-1])
        log_eta = 0.5 * (eta_edges[1:] + eta_edges[:-1])
        log_post = self.log_posterior_grid(series, log_eps, log_eta)
        log_cell = log_post + np.log(eps_edges[1] - eps_edges[0]) + np.log(eta_edges[1] - eta_edges[0])
        log_evidence = float(logsumexp(log_cell))
        return QuadraturePosterior(eps_edges, eta_edges, log_cell - log_evidence, log_evidence)

    # -- PyMC ------------------------------------------------------------------------------------
    def pymc_model(self, data, marginalized: bool = True):
        """The PyMC model: Inverse-Gamma variances and the series' likelihood.

        ``marginalized=True``: the Kalman log-likelihood as a ``pm.Potential``, the levels
        integrated out by an Op with an analytic gradient (:func:`pymc_log_likelihood`).
        ``marginalized=False`` (``pymc_gibbs``): the levels explicit, ``level`` (time) as the
        cumulative sum of Normal increments, the observed steps Normal around them. With no discrete
        latent, PyMC's compound step is NUTS over levels and variances together, which meets the
        funnel between ``sigma2_eta`` and the increments that the marginalised model avoids.
        """
        import pymc as pm
        import pytensor.tensor as pt

        series = self.check_data(data)
        y = series.y
        mean, var = self._explicit("level_prior")
        with pm.Model(coords=self.coords(series)) as model:
            priors = {name: pm.InverseGamma(name, *self._explicit(f"{name}_prior")) for name in NAMES}
            if marginalized:
                pm.Potential("y_log_likelihood", pymc_log_likelihood(y, priors["sigma2_eps"], priors["sigma2_eta"], mean, var))
                return model
            first = pm.Normal("level_1", mean, np.sqrt(var))
            steps = pm.Normal("level_step", 0.0, pt.sqrt(priors["sigma2_eta"]), shape=y.size - 1)
            level = pm.Deterministic("level", pt.concatenate([first[None], first + pt.cumsum(steps)]), dims="time")
            seen = np.flatnonzero(~np.isnan(y))
            pm.Normal("y", level[seen], pt.sqrt(priors["sigma2_eps"]), observed=y[seen])
        return model

    def picture(self, comparison):
        from .picture import local_level_picture

        return local_level_picture(self, comparison)


def pymc_log_likelihood(y: np.ndarray, sigma2_eps, sigma2_eta, level_mean: float, level_var: float):
    """``log p(y | sigma2_eps, sigma2_eta)`` (a scalar PyTensor variable) for the PyMC model, by the
    Op of :mod:`latentzoo.models.ops.kalman_op`.

    Why the Op and not :func:`pymc_kalman_log_likelihood`'s ``scan``: on the Nile (T = 100) the
    compiled log-density and gradient took 7 us against 578 us, and a NUTS leapfrog step 206
    against 1136 us, the same trajectories (``benchmarks/local_level.py``, load 14).
    """
    from ..ops.kalman_op import local_level_log_likelihood_op

    return local_level_log_likelihood_op(y, sigma2_eps, sigma2_eta, level_mean, level_var)


def pymc_kalman_log_likelihood(y: np.ndarray, sigma2_eps, sigma2_eta, level_mean: float, level_var: float):
    """The local-level filter's pointwise log-likelihood (T,) as a PyTensor ``scan``; missing steps
    (NaN in ``y``) contribute 0 and skip the update. Gradients come from the scan's own. The PyMC
    model uses the faster Op (:func:`pymc_log_likelihood`); this is its reference and the benchmark's
    other form."""
    import pytensor
    import pytensor.tensor as pt

    observed = ~np.isnan(y)
    values = pt.as_tensor_variable(np.where(observed, y, 0.0))
    mask = pt.as_tensor_variable(observed.astype(float))

    def step(y_t, seen, level, var, h, q):
        F = var + h
        v = y_t - level
        gain = seen * var / F
        loglik = -0.5 * seen * (np.log(2.0 * np.pi) + pt.log(F) + v * v / F)
        return level + gain * v, var * (1.0 - gain) + q, loglik

    outputs = pytensor.scan(
        step,
        sequences=[values, mask],
        outputs_info=[pt.as_tensor_variable(np.float64(level_mean)), pt.as_tensor_variable(np.float64(level_var)), None],
        non_sequences=[pt.cast(sigma2_eps, "float64"), pt.cast(sigma2_eta, "float64")],
        return_updates=False,
    )
    return outputs[2]


@dataclass(frozen=True)
class QuadraturePosterior:
    """The posterior of ``(sigma2_eps, sigma2_eta)`` as a density constant on the cells of a grid of
    log-variances.

    Parameters
    ----------
    eps_edges, eta_edges : ndarrays of shapes (n + 1,), (m + 1,)
        Cell edges in ``log sigma2_eps`` and ``log sigma2_eta``.
    log_weights : ndarray of shape (n, m)
        Normalised log probability of every cell.
    log_evidence : float
        ``log p(y)``.
    """

    eps_edges: np.ndarray
    eta_edges: np.ndarray
    log_weights: np.ndarray
    log_evidence: float

    @property
    def weights(self) -> np.ndarray:
        return np.exp(self.log_weights)

    def sample(self, rng, size: int) -> dict[str, np.ndarray]:
        """Independent draws: a cell by its probability, then a uniform point in it (log scale)."""
        cells = rng.choice(self.log_weights.size, size=size, p=self.weights.reshape(-1) / self.weights.sum())
        i, j = np.unravel_index(cells, self.log_weights.shape)
        u = self.eps_edges[i] + rng.uniform(size=size) * (self.eps_edges[i + 1] - self.eps_edges[i])
        v = self.eta_edges[j] + rng.uniform(size=size) * (self.eta_edges[j + 1] - self.eta_edges[j])
        return {"sigma2_eps": np.exp(u), "sigma2_eta": np.exp(v)}

    def mean(self) -> dict[str, float]:
        """Posterior means (the mean of ``exp`` over each cell, exactly, weighted)."""
        def cell_means(edges):
            return (np.exp(edges[1:]) - np.exp(edges[:-1])) / np.diff(edges)

        w = self.weights
        return {"sigma2_eps": float(w.sum(1) @ cell_means(self.eps_edges)),
                "sigma2_eta": float(w.sum(0) @ cell_means(self.eta_edges))}
