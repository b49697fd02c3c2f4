"""A finite mixture of any component family: Dirichlet weights plus a :class:`ComponentFamily`.

Generative model (K components, a family with parameters ``theta_k`` and a conjugate prior)::

    weights ~ Dirichlet(weights_prior * 1_K)                               (component,)
    theta_k ~ the family's prior                                           k = 1..K
    z_n ~ Categorical(weights),   x_n | z_n ~ family(theta_{z_n})          n = 1..N

:class:`FiniteMixture` is the template (in the spirit of scikit-learn's ``BaseMixture``, with
conjugate priors): it owns the weights, validation, the pointwise log-likelihood, the
responsibilities and every back-end's hooks; the family supplies the (N, K) log-density matrix,
its statistics and its conjugate update
(:class:`~latentzoo.models.core.protocols.ComponentFamily`). A concrete mixture is a frozen
dataclass that adds its hyperparameters and builds its family in :meth:`make_family`
(``PoissonMixture`` is 24 lines of code, ``BernoulliMixture`` 56 with its picture). A mixture
whose family has compiled kernels plugs them in as hooks: ``_log_norm_block`` (log-normalisers
and responsibilities of a block of parameter sets) and the E-step hooks below;
``GaussianMixture`` does so with its fused passes, which never store an (N, K) matrix.

Back-ends
---------
* ``em``: responsibilities, then the mode of the conjugate posteriors (Dirichlet for the weights,
  the family's for the components) given the expected statistics; ``mle=True`` uses flat priors.
  ``assignment="hard"`` is classification EM.
* ``gibbs``: labels drawn from the responsibilities, then weights and components from their
  conjugate posteriors given the one-hot statistics.
* ``vb``: mean-field q(z) q(weights) q(theta) with the prior's families as factors; the ELBO's
  data term is ``sum_n log sum_k exp(E[log w_k] + E[log p(x_n | theta_k)])`` (Bishop 2006,
  eq. 10.46-10.49).
* ``exact``: for tiny data, the posterior as a mixture over groups of assignments with equal
  statistics (a :class:`~latentzoo.models.core.conjugate_mixture.ConjugateMixture`).
* ``nuts``, ``advi``, ``fullrank_advi``, ``map``: the PyMC declaration, with the labels summed out
  (``logsumexp`` in a ``pm.Potential``); ``pymc_gibbs``: explicit labels.
* chunked data (Dask): statistics of chunks combine (``combine_stats``).

Components are exchangeable under a common prior (``label_dim = "component"``): the comparison
relabels results before comparing them.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import special

from ..core.base import DegenerateComponentError, LatentModel, as_tuple, check_param_keys, check_rng, inside_simplex, numeric_array
from ..core.conjugate import Dirichlet
from ..core.conjugate_mixture import ConjugateMixture
from ..core.sizes import check_count, check_parameter_size
from ..gaussian.priors import weights_distribution

__all__ = ["FiniteMixture", "MixtureData", "EXACT_MAX_ELEMENTS"]

#: the key of the components' (weighted) counts in the statistics; a family's own keys differ
COUNTS = "component_counts"
#: a weights init must sum to one within this tolerance
SUM_ATOL = 1e-6
#: the exact enumeration keeps one row of statistics per group of assignments; it refuses data
#: whose groups would need more numbers than this (about 400 MB)
EXACT_MAX_ELEMENTS = 50_000_000
#: k-means++-style candidates the default start chooses from, by log posterior
N_START_CANDIDATES = 5
#: the pointwise hooks evaluate parameter sets in blocks of at most this many (set, row, component)
#: numbers, so that thousands of posterior draws never need one huge (draws, N, K) array
_BLOCK_ELEMENTS = 4_000_000


def check_mixture_size(n_components, weights_prior) -> tuple[int, float | tuple]:
    """``(K, weights_prior)`` validated: K >= 1 within the size limits, and the Dirichlet
    concentration a positive number or K of them (a tuple, so that the frozen model hashes)."""
    K = check_count(n_components, "n_components", 1)
    check_parameter_size({"n_components": K}, "the weights")
    prior = numeric_array(weights_prior, "weights_prior", "a positive number or an array of K positive numbers")
    if prior.ndim > 1 or (prior.ndim == 1 and prior.size != K):
        raise ValueError(f"weights_prior must be a number or have shape ({K},), got shape {prior.shape}")
    if not np.all(np.isfinite(prior)) or np.any(prior <= 0):
        raise ValueError(f"weights_prior must be finite and > 0, got {weights_prior!r}")
    return K, float(prior) if prior.ndim == 0 else as_tuple(prior)


@dataclass(frozen=True, eq=False)
class MixtureData:
    """Observations validated once by a mixture's family (what :meth:`FiniteMixture.check_data`
    returns and accepts back without another pass over the values).

    Attributes
    ----------
    x : ndarray of shape (N, *event_shape), read-only
        The family's validated rows (NaN marks what is missing, where the family allows it).
    family : the family that validated them
    """

    x: np.ndarray
    family: object

    @property
    def n_observations(self) -> int:
        return self.x.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.x.shape


@dataclass(frozen=True, kw_only=True)
class FiniteMixture(LatentModel):
    """Base class of the finite mixtures: Dirichlet weights over a component family's K components.

    Parameters
    ----------
    n_components : int, default 2
        K >= 1.
    weights_prior : float or array-like of shape (K,), default 1.0
        Dirichlet concentration of the weights (a number: symmetric). Values >= 1 are needed for
        MAP-EM (below 1 the posterior density is unbounded at the simplex's boundary).

    Notes
    -----
    Subclasses are frozen dataclasses that add their hyperparameters and implement
    :meth:`make_family`. Parameters: ``weights`` (component,) and the family's, each with the
    ``component`` dim first; latent posterior ``responsibilities`` (observation, component).
    """

    n_components: int = 2
    weights_prior: float | tuple = 1.0

    observation_dim = "observation"
    label_dim = "component"

    def __post_init__(self):
        K, weights_prior = check_mixture_size(self.n_components, self.weights_prior)
        object.__setattr__(self, "n_components", K)
        object.__setattr__(self, "weights_prior", weights_prior)
        if not self.data_driven:  # the family's table sizes are checked now, before any data
            self.family.prior(K)

    #: True while some hyperparameter waits to be filled from the data (``with_data_prior``)
    data_driven = False
    #: the statistics' key of the counts that update the weights: the mixture's own, or a key of
    #: the family's statistics when they hold the same counts (``GaussianMixture``: ``"counts"``)
    counts_key = COUNTS

    # -- the family -------------------------------------------------------------------------
    def make_family(self):
        """The component family (a :class:`~latentzoo.models.core.protocols.ComponentFamily`)
        built from this model's hyperparameters."""
        raise NotImplementedError

    @cached_property
    def family(self):
        """The component family, built once."""
        return self.make_family()

    def _family_names(self) -> tuple[str, ...]:
        return tuple(self.family.param_dims)

    # -- structure ----------------------------------------------------------------------------
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        return {"weights": ("component",), **{name: ("component", *dims) for name, dims in self.family.param_dims.items()}}

    def latent_dims(self) -> dict[str, tuple[str, ...]]:
        return {"responsibilities": ("observation", "component")}

    def coords(self, data) -> dict[str, list]:
        data = self.check_data(data)
        return {"observation": np.arange(data.n_observations), "component": np.arange(self.n_components),
                **self.family.coords(data.x)}

    def observed_data(self, data) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        data = self.check_data(data)
        return {"x": (data.x, ("observation", *self.family.event_dims))}

    def n_observations(self, data) -> int:
        return self.check_data(data).n_observations

    # -- validation ---------------------------------------------------------------------------
    def check_data(self, data) -> MixtureData:
        """Validate observations through the family (see its ``check_observations``).

        Parameters
        ----------
        data : what the family accepts, or a MixtureData (returned at once when this model's
            family validated it)

        Returns
        -------
        MixtureData

        Raises
        ------
        ValueError
            From the family, or if there are fewer observations than components.
        """
        data = self._validated(data)
        if data.n_observations < self.n_components:
            raise ValueError(
                f"n_components = {self.n_components} exceeds the number of observations N = {data.n_observations}; "
                "use fewer components or more data"
            )
        return data

    def check_chunk(self, data) -> MixtureData:
        """:meth:`check_data` for one chunk of a chunked fit: any number of rows (the whole data
        set's N >= K is checked on all the chunks together)."""
        return self._validated(data)

    def _validated(self, data) -> MixtureData:
        if isinstance(data, MixtureData) and data.family == self.family:
            return data
        if isinstance(data, MixtureData):
            data = data.x
        return MixtureData(self.family.check_observations(data), self.family)

    def check_params(self, params, name: str = "params") -> dict[str, np.ndarray]:
        """Validate one parameter set: ``weights`` (K,) positive and summing to one, the family's
        parameters by the family. ``name`` is used in messages."""
        check_param_keys(params, self.param_names, name)
        K = self.n_components
        weights = numeric_array(params["weights"], f"{name}['weights']", f"an array of {K} numbers")
        if weights.shape != (K,):
            raise ValueError(f"{name}['weights'] must have shape ({K},), got {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise ValueError(f"{name}['weights'] must be finite and > 0, got {weights}")
        if abs(weights.sum() - 1.0) > SUM_ATOL:
            raise ValueError(f"{name}['weights'] must sum to 1, got sum {weights.sum():.6g}")
        family = self.family.check_params({key: params[key] for key in self._family_names()}, K, name)
        for key, value in family.items():
            if value.ndim != 1 + len(self.family.param_dims[key]):
                raise ValueError(f"{name}[{key!r}] must be one parameter set, got shape {value.shape}")
        return {"weights": weights / weights.sum(), **family}

    # -- priors -------------------------------------------------------------------------------
    def _weights_prior(self):
        return weights_distribution(np.broadcast_to(np.asarray(self.weights_prior, float), (self.n_components,)))

    def prior(self) -> dict:
        """``{"weights": Dirichlet, **the family's prior}`` (a point mass on (1,) for K = 1)."""
        return {"weights": self._weights_prior(), **self.family.prior(self.n_components)}

    def log_prior(self, params) -> np.ndarray:
        """log Dirichlet(weights) + the family's log prior summed over components, shape B for
        parameters of batch shape B."""
        weights = self._weights_prior().log_pdf(np.asarray(params["weights"], float))
        return weights + self.family.log_prior({key: params[key] for key in self._family_names()}, self.n_components)

    # -- likelihood -----------------------------------------------------------------------------
    def _log_joint(self, x, params) -> np.ndarray:
        """``log w_k + log p(x_n | theta_k)`` of one parameter set, shape (N, K)."""
        with np.errstate(divide="ignore"):
            log_weights = np.log(np.asarray(params["weights"], float))
        return log_weights + self.family.log_density(x, {key: params[key] for key in self._family_names()})

    def _batched(self, x, params, want_resp: bool):
        """``(log_norm (*B, N), resp (*B, N, K) or None)`` for parameters of batch shape B, in
        blocks of parameter sets."""
        missing = [key for key in self.param_names if key not in params]
        if missing:
            raise ValueError(f"params is missing {missing}; expected keys {list(self.param_names)}")
        K = self.n_components
        arrays = {key: np.asarray(params[key], float) for key in self.param_names}
        event_ndim = {"weights": 1, **{key: 1 + len(dims) for key, dims in self.family.param_dims.items()}}
        for key, array in arrays.items():
            if array.ndim < event_ndim[key] or array.shape[array.ndim - event_ndim[key]] != K:
                raise ValueError(f"params[{key!r}] must have {K} components on the axis before its last "
                                 f"{event_ndim[key] - 1} axes, got shape {array.shape}")
        batch = np.broadcast_shapes(*(array.shape[: array.ndim - event_ndim[key]] for key, array in arrays.items()))
        size = int(np.prod(batch, dtype=np.int64))
        if batch == ():  # one set of parameters (every EM step and Gibbs sweep): a view each
            flat = {key: array[None] for key, array in arrays.items()}
        else:
            flat = {key: np.broadcast_to(array, batch + array.shape[array.ndim - event_ndim[key]:]).reshape(
                (size,) + array.shape[array.ndim - event_ndim[key]:]) for key, array in arrays.items()}
        n_rows = x.shape[0]
        step = max(1, _BLOCK_ELEMENTS // max(1, n_rows * K))
        if size <= step:  # one block: its arrays are reshaped, not copied
            log_norm, resp = self._log_norm_block(x, flat, want_resp, batch == ())
        else:
            log_norm = np.empty((size, n_rows))
            resp = np.empty((size, n_rows, K)) if want_resp else None
            for start in range(0, size, step):
                block = {key: array[start : start + step] for key, array in flat.items()}
                block_norm, block_resp = self._log_norm_block(x, block, want_resp, False)
                log_norm[start : start + step] = block_norm
                if want_resp:
                    resp[start : start + step] = block_resp
        return log_norm.reshape(batch + (n_rows,)), (None if resp is None else resp.reshape(batch + (n_rows, K)))

    def _log_norm_block(self, x, block: dict, want_resp: bool, unbatched: bool):
        """``(log_norm (S, N), resp (S, N, K) or None)`` of a block of S parameter sets (arrays
        with S leading); ``unbatched``: the one set of a call without batch dims. The hook where a
        family's compiled kernels take over (``GaussianMixture``)."""
        with np.errstate(divide="ignore"):
            log_joint = np.log(block["weights"])[:, None, :] + self.family.log_density(
                x, {key: block[key] for key in self._family_names()})
        log_norm = special.logsumexp(log_joint, axis=-1)
        return log_norm, (np.exp(log_joint - log_norm[..., None]) if want_resp else None)

    def log_likelihood(self, data, params) -> np.ndarray:
        """Pointwise ``log sum_k weights_k p(x_n | theta_k)``.

        Parameters
        ----------
        data : observations or MixtureData
        params : dict with ``weights`` (*B, K) and the family's parameters (*B, K, ...)

        Returns
        -------
        ndarray of shape (*B, N)
        """
        return self._batched(self.check_data(data).x, params, want_resp=False)[0]

    def responsibilities(self, data, params) -> np.ndarray:
        """``p(z_n = k | x_n, params)``, shape (*B, N, K); rows sum to one."""
        return self._batched(self.check_data(data).x, params, want_resp=True)[1]

    def latent_posterior(self, data, params) -> dict[str, np.ndarray]:
        """``{"responsibilities": (*B, N, K)}``."""
        return {"responsibilities": self.responsibilities(data, params)}

    # -- model size -----------------------------------------------------------------------------
    def with_n_components(self, n_components: int) -> "FiniteMixture":
        """The same mixture with ``n_components`` components (a per-component weights prior
        becomes the default symmetric one): a candidate for
        :func:`latentzoo.inference.choose_n_components`."""
        weights_prior = self.weights_prior if isinstance(self.weights_prior, float) else 1.0
        return dataclasses.replace(self, n_components=n_components, weights_prior=weights_prior)

    def n_parameters(self, data) -> int:
        """Free parameters: K - 1 weights and K times the family's per component."""
        data = self.check_data(data)
        return self.n_components - 1 + self.family.n_parameters(data.x, self.n_components)

    def _deviance(self, data, params) -> tuple[float, int, int]:
        data = self.check_data(data)
        params = self.check_params(params)
        return -2.0 * float(self.log_likelihood(data, params).sum()), self.n_parameters(data), data.n_observations

    def aic(self, data, params) -> float:
        """Akaike's criterion -2 log L + 2 p (p = :meth:`n_parameters`); lower is better."""
        deviance, p, _ = self._deviance(data, params)
        return float(deviance + 2.0 * p)

    def bic(self, data, params) -> float:
        """Schwarz's criterion -2 log L + p log N; lower is better."""
        deviance, p, n = self._deviance(data, params)
        return float(deviance + p * np.log(n))

    # -- simulation -------------------------------------------------------------------------------
    def simulate(self, params, size, rng=None):
        """Draw ``size`` observations.

        Returns
        -------
        x : ndarray of shape (size, *event_shape), in the form :meth:`check_data` accepts
        z : int ndarray of shape (size,), the component of each observation
        """
        rng = check_rng(rng, "rng")
        params = self.check_params(params)
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        z = rng.choice(self.n_components, size=int(size), p=params["weights"])
        return self.family.simulate({key: params[key] for key in self._family_names()}, z, rng), z

    # -- hooks: em ----------------------------------------------------------------------------------
    def initial_params(self, data, rng, strategy: str = "kmeans++") -> dict[str, np.ndarray]:
        """EM, Gibbs and MAP start.

        ``"kmeans++"`` (default): :data:`N_START_CANDIDATES` candidates from the family's spread
        start (k-means++-style seeding), each with the weights its responsibilities give (plus
        one pseudo-count per component); the one with the highest log posterior wins, so that
        components with their own priors start where their prior puts them, not in a mirrored
        labelling. ``"random"``: one such candidate with equal weights. ``"prior"``: a draw from
        the prior (weights kept inside the simplex, where PyMC's transforms are finite).
        """
        if strategy not in ("kmeans++", "random", "prior"):
            raise ValueError(f"init strategy must be 'kmeans++', 'random', 'prior' or a dict of params, got {strategy!r}")
        x = self.check_data(data).x
        K = self.n_components
        if strategy == "prior":
            return self.prior_draw(x, rng)
        spread = self.family.start_strategies[0]  # the family's own spread-out start
        if strategy == "random":
            return {"weights": np.full(K, 1.0 / K), **self.family.initial_params(x, K, rng, spread)[0]}
        best, best_score = None, -np.inf
        for _ in range(N_START_CANDIDATES):
            candidate = {"weights": np.full(K, 1.0 / K), **self.family.initial_params(x, K, rng, spread)[0]}
            _, resp = self._batched(x, candidate, want_resp=True)
            candidate["weights"] = (resp.sum(0) + 1.0) / (x.shape[0] + K)
            score = float(self.log_likelihood(data, candidate).sum() + self.log_prior(candidate))
            if best is None or score > best_score:
                best, best_score = candidate, score
        return best

    def prior_draw(self, x, rng) -> dict[str, np.ndarray]:
        """One draw of the parameters from the prior (x: the data, for a family's data-driven
        prior), the weights kept inside the simplex."""
        weights = self._weights_prior().sample(rng) if self.n_components > 1 else np.ones(1)
        return {"weights": inside_simplex(np.asarray(weights, float)), **self.family.initial_params(x, self.n_components, rng, "prior")[0]}

    def _stats(self, x, weights) -> dict:
        family = self.family.stats(x, weights)
        return family if self.counts_key in family else {COUNTS: weights.sum(0), **family}

    def expected_stats(self, data, params):
        """E-step: the counts and family statistics weighted by the responsibilities, and the
        log-likelihood at ``params``."""
        x = self.check_data(data).x
        log_joint = self._log_joint(x, params)
        log_norm = special.logsumexp(log_joint, axis=1)
        return self._stats(x, np.exp(log_joint - log_norm[:, None])), float(log_norm.sum())

    def classification_stats(self, data, params):
        """Classification EM's E + C step: each observation goes to its most probable component.

        Returns
        -------
        stats : dict of complete statistics of the hard assignment
        objective : float
            ``sum_n max_k log(weights_k p(x_n | theta_k))``, which classification EM never decreases.
        """
        x = self.check_data(data).x
        log_joint = self._log_joint(x, params)
        labels = np.argmax(log_joint, axis=1)
        return self._stats(x, np.eye(self.n_components)[labels]), float(log_joint.max(1).sum())

    def combine_stats(self, parts) -> dict:
        """Statistics of chunks combined: counts add, the family combines its own."""
        names = [key for key in parts[0] if key != COUNTS]
        combined = self.family.combine_stats([{key: part[key] for key in names} for part in parts])
        if COUNTS in parts[0]:
            combined[COUNTS] = np.sum([np.asarray(part[COUNTS], float) for part in parts], axis=0)
        return combined

    def conditional_posterior(self, stats, mle: bool = False) -> dict:
        """``{"weights": Dirichlet, **the family's posterior}`` given (expected or complete)
        statistics; ``mle=True`` uses flat priors (Dirichlet(1) and the family's flat prior),
        whose modes are the maximum-likelihood estimates.

        Raises
        ------
        DegenerateComponentError
            With ``mle=True``, when a component is empty (its maximum-likelihood parameters are
            undefined and its weight would be 0).
        """
        K = self.n_components
        counts = np.asarray(stats[self.counts_key], float)
        family_stats = {key: value for key, value in stats.items() if key != COUNTS}
        if not mle:
            return {"weights": self._weights_prior().update(counts), **self.family.posterior(family_stats, K)}
        for k in range(K):
            if counts[k] <= 1e-10 * counts.sum():
                raise DegenerateComponentError(
                    f"maximum-likelihood EM: component {k} is empty (no observation has weight on it), so its "
                    "parameters are undefined; use the prior (em without mle=True), fewer components, or other "
                    "starting points (init, n_init)"
                )
        return {"weights": weights_distribution(np.ones(K)).update(counts),
                **self.family.posterior(family_stats, K, mle=True)}

    # -- hooks: gibbs ---------------------------------------------------------------------------------
    def sample_stats(self, data, params, rng):
        """Draw every label z_n from its responsibilities; the one-hot (complete) statistics."""
        x = self.check_data(data).x
        cumulative = np.cumsum(self._batched(x, params, want_resp=True)[1], axis=1)
        labels = np.minimum((rng.random((x.shape[0], 1)) > cumulative).sum(1), self.n_components - 1)
        return self._stats(x, np.eye(self.n_components)[labels])

    # -- hooks: vb --------------------------------------------------------------------------------------
    def initial_factors(self, data, rng) -> dict:
        """VB start: the conjugate posterior given the responsibilities at a :meth:`initial_params` start."""
        data = self.check_data(data)
        start = self.initial_params(data, rng)
        _, resp = self._batched(data.x, start, want_resp=True)
        return self.conditional_posterior(self._stats(data.x, resp))

    def vb_expected_stats(self, data, factors):
        """Update q(z): expected statistics, and the ELBO's data term
        ``sum_n log sum_k exp(E[log w_k] + E[log p(x_n | theta_k)])``."""
        x = self.check_data(data).x
        family_factors = {key: value for key, value in factors.items() if key != "weights"}
        rho = factors["weights"].expected_log() + self.family.expected_log_density(x, family_factors)
        log_norm = special.logsumexp(rho, axis=1)
        return self._stats(x, np.exp(rho - log_norm[:, None])), float(log_norm.sum())

    # -- hooks: exact -------------------------------------------------------------------------------------
    def exact_posterior(self, data) -> ConjugateMixture:
        """The exact posterior of tiny data sets, by enumerating the K^N assignments grouped by
        their complete statistics.

        Each assignment contributes ``p(z) p(x | z)``, which depends on it only through its counts
        and family statistics: ``log B(alpha + counts) - log B(alpha)`` for the weights and the
        family's log marginal likelihood. The groups are built row by row (each row joins each
        component; equal statistics merge, their multiplicities add), so rows with equal values
        cost far less than K^N.

        Returns
        -------
        ConjugateMixture
            One component per group: a Dirichlet for the weights, the family's posterior for the
            components.

        Raises
        ------
        ValueError
            For one component (no Dirichlet), or when the groups would hold more than
            :data:`EXACT_MAX_ELEMENTS` numbers (use ``gibbs`` or ``nuts``).
        """
        data = self.check_data(data)
        x, K = data.x, self.n_components
        if K < 2:
            raise ValueError("the exact posterior needs n_components >= 2; with one component use backend='gibbs' or 'nuts'")
        # one row's statistics for each component it may join: weights eye(K) flattened give the
        # statistics of K candidate assignments at once, the assignment on the leading axis
        def row_stats(n):
            family = self.family.stats(x[n : n + 1], np.eye(K).reshape(1, K * K))
            family = {key: np.asarray(value, float).reshape((K, K) + np.shape(value)[1:]) for key, value in family.items()}
            return {COUNTS: np.eye(K), **family}

        first = row_stats(0)
        layout = [(key, value.shape[1:]) for key, value in first.items()]
        width = sum(int(np.prod(shape)) for _, shape in layout)
        groups, log_multiplicity = np.zeros((1, width)), np.zeros(1)
        for n in range(data.n_observations):
            rows = first if n == 0 else row_stats(n)
            joined = np.concatenate([rows[key].reshape(K, -1) for key, _ in layout], axis=1)
            if groups.shape[0] * K * width > EXACT_MAX_ELEMENTS:
                raise ValueError(
                    f"the exact posterior of {data.n_observations} observations and {K} components has more than "
                    f"{groups.shape[0] * K:,} groups of assignments by row {n} (more than {EXACT_MAX_ELEMENTS:,} "
                    "numbers); use backend='gibbs' or 'nuts'"
                )
            candidates = (groups[:, None, :] + joined[None, :, :]).reshape(-1, width)
            groups, inverse = np.unique(candidates, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            order = np.argsort(inverse, kind="stable")
            starts = np.concatenate([[0], np.cumsum(np.bincount(inverse))[:-1]])
            log_multiplicity = np.logaddexp.reduceat(np.repeat(log_multiplicity, K)[order], starts)
        stats, offset = {}, 0
        for key, shape in layout:
            size = int(np.prod(shape))
            stats[key] = groups[:, offset : offset + size].reshape((-1,) + shape)
            offset += size
        alpha = np.broadcast_to(np.asarray(self.weights_prior, float), (K,))
        counts = stats.pop(COUNTS)
        log_beta = lambda concentration: special.gammaln(concentration).sum(-1) - special.gammaln(concentration.sum(-1))  # noqa: E731
        log_weight = (log_multiplicity + log_beta(alpha + counts) - log_beta(alpha)
                      + self.family.log_marginal(stats, K).sum(-1))
        log_evidence = special.logsumexp(log_weight)
        factors = {"weights": Dirichlet(alpha + counts), **self.family.posterior(stats, K)}
        return ConjugateMixture(log_weight - log_evidence, factors, float(log_evidence))

    # -- PyMC declaration ----------------------------------------------------------------------------------
    def pymc_model(self, data, marginalized: bool = True):
        """The PyMC declaration of the same priors and likelihood.

        ``weights ~ Dirichlet(weights_prior)`` and the family's priors; the data enter through
        ``pm.Potential("x_log_likelihood", ...)``: ``sum_n logsumexp_k(log w_k + log p(x_n |
        theta_k))`` with the labels summed out (``marginalized=True``: NUTS, ADVI, MAP), or
        explicit ``z ~ Categorical(weights)`` per observation and ``sum_n log p(x_n | theta_{z_n})``
        (``marginalized=False``: PyMC's compound Gibbs). A potential, not an observed variable,
        because missing entries (NaN) are skipped by the family, not imputed by PyMC; the
        pointwise log-likelihood of every result comes from :meth:`log_likelihood`.
        """
        import pymc as pm
        import pytensor.tensor as pt

        from ..ops.pymc_data import data_container, hyperparameter

        data = self.check_data(data)
        K = self.n_components
        coords = {key: list(value) for key, value in self.coords(data).items()}
        with pm.Model(coords=coords) as model:
            if K == 1:
                weights = pm.Deterministic("weights", pt.ones(1, dtype="float64"), dims="component")
            else:
                concentration = np.broadcast_to(np.asarray(self.weights_prior, np.float64), (K,)).copy()
                weights = pm.Dirichlet("weights", a=hyperparameter("weights_prior", concentration), dims="component")
            params = self.family.pymc_priors(K, "component", data.x)
            # a container, not a constant: one compiled model serves every data set (models/ops/pymc_data.py);
            # pm.Data refuses NaN, so data with missing entries are compiled in as a constant
            x = data.x if np.isnan(data.x).any() else data_container("x_data", data.x)
            log_density = self.family.pymc_log_density(x, params)
            if marginalized:
                pointwise = pm.math.logsumexp(pt.log(weights) + log_density, axis=-1)
            else:
                z = pm.Categorical("z", p=weights, dims="observation")
                pointwise = log_density[pt.arange(x.shape[0]), z]
            pm.Potential("x_log_likelihood", pointwise.sum())
        return model

    def pymc_initial_point(self, params: dict) -> dict[str, np.ndarray]:
        """The free variables of :meth:`pymc_model` at ``params`` (with K = 1 the weights are the
        constant (1,), not a free variable)."""
        weights = {"weights": inside_simplex(params["weights"])} if self.n_components > 1 else {}
        return {**weights, **self.family.pymc_initial_point({name: params[name] for name in self._family_names()})}
