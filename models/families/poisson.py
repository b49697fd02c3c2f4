"""The Poisson component family: counts with a Gamma(shape, rate) prior on each component's rate.

Component ``k`` gives a count ``x`` (a non-negative integer) the probability

    p(x | rates_k) = rates_k^x exp(-rates_k) / x!,     rates_k ~ Gamma(shape, rate),

so a component's sufficient statistics are its (weighted) number of observations ``n_k`` and the
(weighted) sum of their counts ``S_k``, and its posterior is ``Gamma(shape + S_k, rate + n_k)``.
With the rate integrated out, the counts given to a component have the negative-binomial-like
evidence ``rate^shape / Gamma(shape) Gamma(shape + S_k) / (rate + n_k)^(shape + S_k) / prod x!``.

Counts are validated by the symbol HMMs' reader (:func:`latentzoo.models.core.sequences.read_sequences`)
with an alphabet of every integer 0..2^53 (what a float64 holds exactly): ints, whole floats,
pandas Series (nullable ones too), text of integers; a negative, fractional, infinite or
non-numeric value is refused with its position. NaN, None or ``pandas.NA`` marks a missing step
(an HMM) or observation (a mixture): it has log density 0 under every component.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import special

from ..core.base import DegenerateComponentError, check_param_keys, check_positive, numeric_array
from ..core.conjugate import Gamma
from ..core.sizes import check_parameter_size
from ..core.stats_combine import sum_stats
from ..core.sequences import Alphabet, Sequences, read_sequences
from .checks import split_missing

__all__ = ["PoissonFamily", "DEFAULT_RATES_PRIOR", "MAX_COUNT", "check_gamma_pair"]

#: the models' default Gamma(shape 1, rate 0.01): an exponential of mean 100 counts per observation
#: (weakly informative; see PoissonHMM's docstring)
DEFAULT_RATES_PRIOR = (1.0, 0.01)
#: the largest count accepted: every integer up to 2^53 is exact in float64
MAX_COUNT = 2**53


def check_gamma_pair(value, name: str) -> tuple[float, float]:
    """A Gamma prior given as ``(shape, rate)``: two positive finite numbers, or an error naming ``name``."""
    if isinstance(value, str | bytes | dict) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"{name} must be a pair (shape, rate) of positive numbers, got {value!r}")
    pair = []
    for part, item in zip(("shape", "rate"), value):
        if isinstance(item, np.ndarray) and item.ndim == 0:
            item = item[()]
        if isinstance(item, bool | np.bool_) or not isinstance(item, numbers.Real):
            raise TypeError(f"{name} must be a pair (shape, rate) of positive numbers, got {part} {item!r}")
        if not np.isfinite(item) or item <= 0:
            raise ValueError(f"{name} must be a pair (shape, rate) of positive finite numbers, got {part} {item!r}")
        pair.append(float(item))
    return pair[0], pair[1]


@dataclass(frozen=True)
class PoissonFamily:
    """Poisson components ``x | k ~ Poisson(rates[k])`` with a Gamma(shape, rate) prior per rate.

    Parameters
    ----------
    shape, rate : float, default 1.0
        The Gamma prior of every ``rates[k]`` (``E = shape / rate``); > 0. ``shape`` acts as a
        prior total count, ``rate`` as a prior number of observations. A shape below 1 makes the
        density unbounded at rate 0, so MAP-EM refuses it (use ``mle=True`` or the samplers).
    observed_name : str, default "counts"
        Name of the observations in results.
    owner : str
        The model's class name, in data errors.

    Notes
    -----
    Parameters: ``rates`` of shape (K,) (dims ``(label_dim,)``). Observations: counts of shape
    (N,), float64 with NaN where one is missing (:meth:`check_observations`), or sequences of
    them (:meth:`check_sequences`, an :class:`~latentzoo.models.core.sequences.Sequences`).
    """

    shape: float = 1.0
    rate: float = 1.0
    observed_name: str = "counts"
    owner: str = "Poisson"

    param_dims = {"rates": ()}
    event_dims = ()
    prior_key = "rates"
    allows_missing = True
    start_strategies = ("kmeans++", "random")

    def __post_init__(self):
        for name in ("shape", "rate"):
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value[()]
            object.__setattr__(self, name, check_positive(value, f"the Gamma prior's {name}"))

    # -- data ---------------------------------------------------------------------------
    @cached_property
    def _alphabet(self) -> Alphabet:
        return Alphabet(n_symbols=MAX_COUNT + 1, first_label=0, description="0, 1, 2, ... (non-negative integers)",
                                 emittable=None, model_name=self.owner, noun="counts")

    def check_sequences(self, data) -> Sequences:
        """Sequences of counts (one or many; see :func:`latentzoo.models.core.sequences.read_sequences`),
        missing steps marked; a container validated before is returned after an O(1) check."""
        return read_sequences(data, self._alphabet)

    def check_observations(self, data) -> np.ndarray:
        """Validated counts for a mixture, float64 of shape (N,), NaN where one is missing.

        Parameters
        ----------
        data : array-like of shape (N,) or (N, 1), pandas Series, text of integers, or a list of
            sequences (their counts are concatenated: the observations are i.i.d.)

        Raises
        ------
        TypeError, ValueError
            For non-numeric values, negative, fractional or infinite counts (naming the value and
            its position), more than one column, or no observed count.
        """
        if isinstance(data, np.ndarray) and data.ndim == 2:
            if data.shape[1] != 1:
                raise ValueError(f"data must be counts of shape (N,) or (N, 1), got shape {data.shape}")
            data = data[:, 0]
        return self.filled_rows(self.check_sequences(data), missing=np.nan)

    def rows(self, data: Sequences) -> np.ndarray:
        """The observed counts (n_observed,), float64, in time order."""
        return data.x_observed.astype(np.float64)

    def filled_rows(self, data: Sequences, missing: float = 0.0) -> np.ndarray:
        """Every step's count (T,), float64, ``missing`` where a step is missing."""
        rows = data.symbols.astype(np.float64)
        if data.n_missing:
            rows[data.missing] = missing
        rows.setflags(write=False)
        return rows

    def observed_data(self, data: Sequences) -> dict:
        """``{observed_name: (counts (T,) float64 with NaN where missing, ("time",))}``."""
        return {self.observed_name: (self.filled_rows(data, missing=np.nan), ("time",))}

    def support(self, data: Sequences, n_components: int) -> np.ndarray:
        """(T, K) bool: every component can emit every count."""
        return np.ones((data.n_steps, n_components), bool)

    def round_off(self, rows) -> float:
        # at EM's fixed point the log-likelihood is flat in each rate, so storing the rates in
        # float64 costs O(N rate eps^2): nothing measurable
        return 0.0

    def coords(self, observations) -> dict[str, list]:
        return {}

    def full(self, params: dict) -> dict:
        return params

    # -- parameters and priors ------------------------------------------------------------
    def check_params(self, params: dict, n_components: int, name: str = "params") -> dict:
        """``{"rates": (*batch, K)}``, finite and >= 0, or an error naming ``name``."""
        # the model checks the full set of keys (the HMM's chain, the mixture's weights)
        check_param_keys(params, ["rates"], name, optional=[key for key in params if key != "rates"])
        K = n_components
        rates = numeric_array(params["rates"], f"{name}['rates']", f"an array of {K} rates")
        if rates.ndim < 1 or rates.shape[-1] != K:
            raise ValueError(f"{name}['rates'] must have shape ({K},) (after batch dims), got {rates.shape}")
        if not np.all(np.isfinite(rates)) or np.any(rates < 0):
            raise ValueError(f"{name}['rates'] must be finite and >= 0, got {rates}")
        return {"rates": rates}

    def n_parameters(self, observations, n_components: int) -> int:
        """Free parameters: one rate per component."""
        return n_components

    def prior(self, n_components: int) -> dict:
        """``{"rates": Gamma(shape, rate)}`` of batch shape (K,)."""
        check_parameter_size({"n_components": n_components}, "the rates")
        return {"rates": Gamma(np.full(n_components, self.shape), np.full(n_components, self.rate))}

    def flat_prior(self, n_components: int) -> dict:
        """Gamma(1, 0), flat on (0, inf): its mode given counts is the maximum-likelihood rate S / n."""
        return {"rates": Gamma.flat((n_components,))}

    def log_prior(self, params: dict, n_components: int) -> np.ndarray:
        return self.prior(n_components)["rates"].log_pdf(np.asarray(params["rates"], float)).sum(-1)

    def posterior(self, stats: dict, n_components: int, mle: bool = False) -> dict:
        """``{"rates": Gamma(shape + S_k, rate + n_k)}`` (the flat Gamma(1, 0) if ``mle``); the
        statistics may carry leading batch dims.

        Raises
        ------
        DegenerateComponentError
            With ``mle=True``, for a component with no weight (its rate is undefined).
        """
        counts = np.asarray(stats["counts"], float)
        if mle:
            empty = counts <= 1e-10 * counts.sum(-1, keepdims=True)
            if np.any(empty):
                k = int(np.argwhere(empty)[0][-1])
                raise DegenerateComponentError(
                    f"maximum-likelihood EM: component {k} has no expected observation, so its rate is undefined; "
                    "use the prior (em without mle=True), fewer components, or other starting points (init, n_init)"
                )
        prior = self.flat_prior(n_components) if mle else self.prior(n_components)
        return {"rates": prior["rates"].update(stats["totals"], counts)}

    def log_marginal(self, stats: dict, n_components: int) -> np.ndarray:
        """``log p(x assigned to k)`` with the rate integrated out, shape ``(*batch, K)`` for
        statistics with leading batch dims:
        ``a log b - log Gamma(a) + log Gamma(a + S_k) - (a + S_k) log(b + n_k) - sum log x!``."""
        a, b = self.shape, self.rate
        counts, totals = np.asarray(stats["counts"], float), np.asarray(stats["totals"], float)
        terms = (a * np.log(b) - special.gammaln(a) + special.gammaln(a + totals)
                 - (a + totals) * np.log(b + counts) - np.asarray(stats["log_factorials"], float))
        return terms

    # -- densities and statistics -----------------------------------------------------------
    def log_density(self, observations, params: dict) -> np.ndarray:
        """``x log rates_k - rates_k - log x!``, shape (*batch, N, K); 0 for a missing count, and
        for a rate of 0 the limit (0 for x = 0, -inf otherwise)."""
        x, observed = split_missing(observations)
        rates = np.asarray(params["rates"], float)[..., None, :]
        with np.errstate(divide="ignore"):
            values = special.xlogy(x[:, None], rates) - rates - special.gammaln(x + 1.0)[:, None]
        return values * observed[:, None] if observed.min() < 1 else values

    def expected_log_density(self, observations, factors: dict) -> np.ndarray:
        """``x E[log rates_k] - E[rates_k] - log x!`` under Gamma factors (batch (K,)), (N, K)."""
        x, observed = split_missing(observations)
        gamma = factors["rates"]
        values = x[:, None] * gamma.expected_log() - gamma.mean() - special.gammaln(x + 1.0)[:, None]
        return values * observed[:, None]

    def stats(self, observations, weights: np.ndarray) -> dict:
        """``{"counts", "totals", "log_factorials"}`` of shape (K,): the weighted number of observed
        counts, their weighted sum and the weighted sum of ``log x!`` (for :meth:`log_marginal`)."""
        x, observed = split_missing(observations)
        weights = np.asarray(weights, float)
        return {"counts": observed @ weights, "totals": x @ weights, "log_factorials": special.gammaln(x + 1.0) @ weights}

    def label_stats(self, observations, labels: np.ndarray, n_components: int) -> dict:
        x, observed = split_missing(observations)
        labels = np.asarray(labels)
        return {"counts": np.bincount(labels, observed, n_components), "totals": np.bincount(labels, x, n_components),
                "log_factorials": np.bincount(labels, special.gammaln(x + 1.0), n_components)}

    def combine_stats(self, parts: list) -> dict:
        """Counts and sums of disjoint parts of the data add."""
        return sum_stats(parts)

    def simulate(self, params: dict, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One count per label, int64 of shape (len(labels),)."""
        return rng.poisson(np.asarray(params["rates"], float)[np.asarray(labels)]).astype(np.int64)

    def initial_params(self, observations, n_components: int, rng: np.random.Generator, strategy: str = "kmeans++"):
        """``(params, labels)``: rates at the means of k-means++ clusters of the counts, with each
        count's nearest centre (``"kmeans++"``); at K distinct random counts plus a uniform jitter
        (``"random"``); or a draw from the prior (``"prior"``, no labels). Rates are kept at least
        1e-3 (a rate of 0 makes every positive count impossible)."""
        K = n_components
        if strategy == "prior":
            return {"rates": self.prior(K)["rates"].sample(rng)}, None
        if observations is None:
            raise TypeError(f"init={strategy!r} needs the observed counts, got None")
        x = np.asarray(observations, float)
        x = x[~np.isnan(x)]
        if x.size < K:
            raise ValueError(f"init={strategy!r} needs at least {K} observed counts, got {x.size}; use init='prior' or a dict")
        if strategy == "random":
            rates = x[rng.choice(x.size, size=K, replace=False)] + rng.random(K)
            return {"rates": rates}, None
        from ..gaussian.kmeans import kmeans_plusplus, nearest_centres

        centres = kmeans_plusplus(x[:, None], K, rng)
        labels = nearest_centres(x[:, None], centres)
        stats = self.label_stats(x, labels, K)
        # an empty cluster (two equal centres) keeps its centre
        rates = np.where(stats["counts"] > 0, stats["totals"] / np.maximum(stats["counts"], 1.0), centres[:, 0])
        return {"rates": np.maximum(rates, 1e-3)}, labels

    # -- PyMC ---------------------------------------------------------------------------------
    def pymc_initial_point(self, params: dict) -> dict:
        # kept off 0, where the log transform is infinite (an EM rate can be exactly 0)
        return {"rates": np.maximum(np.asarray(params["rates"], float), 1e-8)}

    def pymc_priors(self, n_components: int, label_dim: str, observations=None) -> dict:
        """``rates ~ Gamma(shape, rate)`` (dims ``(label_dim,)``), started apart at the K quantiles
        of the observed counts (at the prior mean the gradient cannot tell them apart)."""
        import pymc as pm

        from ..ops.pymc_data import hyperparameter

        K = n_components
        start = np.full(K, self.shape / self.rate)
        if observations is not None:
            x = np.asarray(observations, float)
            x = x[~np.isnan(x)]
            if x.size:
                start = np.quantile(x, (np.arange(K) + 0.5) / K) + 0.5 * (np.arange(K) + 1) / K
        # priors as containers (models/ops/pymc_data.py): a new prior compiles nothing new
        rates = pm.Gamma("rates", alpha=hyperparameter("rates_prior_shape", np.full(K, self.shape)),
                         beta=hyperparameter("rates_prior_rate", np.full(K, self.rate)), dims=label_dim, initval=start)
        return {"rates": rates, "n_components": K, "start_rates": start}

    def pymc_log_density(self, observations, params: dict):
        """``x log rates_k - rates_k - log x!`` as a PyTensor expression of shape (N, K)
        (``observations`` an array or tensor of counts); 0 for a missing (NaN) count."""
        import pytensor.tensor as pt

        x = pt.as_tensor_variable(observations)[:, None]
        rates = params["rates"][None, :]
        if isinstance(observations, np.ndarray) and not np.isnan(observations).any():
            return x * pt.log(rates) - rates - pt.gammaln(x + 1.0)
        missing = pt.isnan(x)
        filled = pt.switch(missing, 0.0, x)
        return pt.switch(missing, 0.0, filled * pt.log(rates) - rates - pt.gammaln(filled + 1.0))

    def pymc_start_log_density(self, observations, params: dict) -> np.ndarray:
        """Where explicit states start: log densities (N, K) at the starting rates."""
        return self.log_density(observations, {"rates": params["start_rates"]})

    def pymc_observe(self, rows: np.ndarray, params: dict, labels) -> None:
        """The observed counts ``rows`` (N,) given their components ``labels`` (a tensor)."""
        import pymc as pm

        pm.Poisson(self.observed_name, mu=params["rates"][labels], observed=rows)
