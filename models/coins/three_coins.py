"""The three-coin problem: a two-component Bernoulli (binomial) mixture.

Coin A (bias ``pi``) is tossed out of sight; heads picks coin B (bias ``p``), tails coin C
(bias ``q``); the chosen coin is then tossed ``n_flips`` times and only those flips are seen
(seed 003 uses one flip per trial and the data ``1111110000``; the classic two-coin experiment
uses ten flips per trial and fixes ``pi = 0.5``).

Only the number of heads in a trial matters, so the likelihood of trial ``i`` with ``h_i``
heads out of ``m`` flips is the mixture of binomials

    p(h_i | pi, p, q) = pi Bin(h_i | m, p) + (1 - pi) Bin(h_i | m, q).

With one flip per trial this depends on the parameters only through
``heads_prob = pi p + (1 - pi) q``: the posterior is a ridge and EM stops wherever it meets it.
``heads_prob`` is reported as a derived quantity so that the comparison shows what *is* learned.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import special

from ..core.base import LatentModel, check_param_keys, check_prior_pair, check_probability, check_rng
from ..core.conjugate import Beta
from ..core.conjugate_mixture import ConjugateMixture
from ..core.protocols import DemoPlan
from ..core.stats_combine import sum_stats
from .data import CoinData, check_coin_data

__all__ = ["CoinData", "ThreeCoins"]

FLAT_BETA = Beta(1.0, 1.0)  # its mode given counts is the maximum-likelihood estimate

SEED_FLIPS = "1111110000"  # seed 003's data: ten trials, one flip each
EXACT_MAX_WORK = 3e9  # rough count of array operations the exact enumeration may spend


@dataclass(frozen=True)
class ThreeCoins(LatentModel):
    """Three-coin model with Beta priors on the three biases.

    Parameters
    ----------
    pi_prior, p_prior, q_prior : pair of float, default (1, 1)
        Beta(alpha, beta) priors on ``pi`` (coin A), ``p`` (coin B) and ``q`` (coin C). The
        default uniform priors make MAP-EM coincide with maximum likelihood.
    pi : float in (0, 1), optional
        Fix coin A's bias instead of estimating it (``pi=0.5`` is the classic two-coin
        experiment). Every back-end then estimates only ``p`` and ``q``.

    Examples
    --------
    >>> from latentzoo.models import ThreeCoins
    >>> from latentzoo.inference import fit
    >>> idata = fit(ThreeCoins(), "1111110000", backend="exact", random_seed=0)  # doctest: +SKIP
    """

    pi_prior: tuple[float, float] = (1.0, 1.0)
    p_prior: tuple[float, float] = (1.0, 1.0)
    q_prior: tuple[float, float] = (1.0, 1.0)
    pi: float | None = None

    name = "three-coins"
    lesson = "three-coins"
    api_page = "latentzoo.models.ThreeCoins"
    observation_dim = "trial"
    label_dim = None  # B and C are distinguishable through coin A (pi vs 1 - pi) only by name

    def __post_init__(self):
        object.__setattr__(self, "pi_prior", check_prior_pair(self.pi_prior, "pi_prior"))
        object.__setattr__(self, "p_prior", check_prior_pair(self.p_prior, "p_prior"))
        object.__setattr__(self, "q_prior", check_prior_pair(self.q_prior, "q_prior"))
        if self.pi is not None:
            object.__setattr__(self, "pi", check_probability(self.pi, "pi"))

    # -- structure ----------------------------------------------------------------------
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        names = ("p", "q") if self.pi is not None else ("pi", "p", "q")
        return {name: () for name in names}

    def n_observations(self, data) -> int:
        return self.check_data(data).n_trials

    def derived_dims(self):
        return {"heads_prob": ()}

    def derived(self, params):
        pi = self._pi(params)
        return {"heads_prob": pi * np.asarray(params["p"]) + (1 - pi) * np.asarray(params["q"])}

    def latent_dims(self):
        return {"coin_b_prob": (self.observation_dim,)}

    def coords(self, data):
        data = self.check_data(data)
        coords = {"trial": np.arange(data.n_trials)}
        if data.flips.ndim == 2:
            coords["flip"] = np.arange(data.n_flips)
        return coords

    def observed_data(self, data) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        data = self.check_data(data)
        dims = ("trial",) if data.flips.ndim == 1 else ("trial", "flip")
        return {"flips": (data.flips, dims)}

    def demo_plan(self) -> DemoPlan:
        return DemoPlan(cost_seconds=14.0)

    def default_data(self) -> CoinData:
        return self.check_data(SEED_FLIPS)

    @cached_property
    def _priors(self) -> dict[str, Beta]:
        # built once: Gibbs asks for the prior every sweep
        priors = {"pi": Beta(*self.pi_prior), "p": Beta(*self.p_prior), "q": Beta(*self.q_prior)}
        return {name: priors[name] for name in self.param_names}

    def prior(self) -> dict[str, Beta]:
        """The Beta priors of the free parameters."""
        return dict(self._priors)

    # -- label switching ----------------------------------------------------------------
    @property
    def exchangeable(self) -> bool:
        """True when swapping the names of coins B and C (p <-> q, pi <-> 1 - pi) leaves the
        posterior unchanged: equal priors on p and q and a symmetric prior (or pi = 0.5) for
        coin A. The posterior then has two mirror-image modes, and means of p and q are equal."""
        symmetric_a = self.pi == 0.5 if self.pi is not None else self.pi_prior[0] == self.pi_prior[1]
        return symmetric_a and self.p_prior == self.q_prior

    def relabel_draws(self, draws: dict) -> tuple[dict, np.ndarray]:
        """Identify the coins by ordering: call coin B the more heads-prone one (p >= q).

        Applied only when the model is :attr:`exchangeable`; otherwise the names carry
        information from the priors and draws are returned unchanged.

        Parameters
        ----------
        draws : dict of arrays of a common batch shape B

        Returns
        -------
        relabelled : dict of arrays of batch shape B
        swapped : bool ndarray of shape B
        """
        p, q = np.asarray(draws["p"], float), np.asarray(draws["q"], float)
        if not self.exchangeable:
            return dict(draws), np.zeros(p.shape, bool)
        swapped = p < q
        relabelled = dict(draws, p=np.where(swapped, q, p), q=np.where(swapped, p, q))
        if "pi" in draws:
            pi = np.asarray(draws["pi"], float)
            relabelled["pi"] = np.where(swapped, 1.0 - pi, pi)
        return relabelled, swapped

    # -- validation ---------------------------------------------------------------------
    def check_data(self, data) -> CoinData:
        """Validate coin flips.

        Parameters
        ----------
        data : array-like of 0/1 of shape (n_trials,) or (n_trials, n_flips), text, or a
            :class:`CoinData`. Array-likes include pandas Series and DataFrames, a 0-d array (one
            trial of one flip) and a masked array with nothing masked. Text: whitespace (spaces,
            tabs, newlines) and commas separate tokens, and each 0/1 character of a token is one
            flip. One line (``"1111110000"``, ``"1 1 0"``) holds one flip per trial; several lines
            of one flip each are the same; several lines of m > 1 flips each (``"0110\\n1010"``) are
            trials of m flips, one per line (as ``numpy.loadtxt`` reads whitespace-separated rows).

        Raises
        ------
        TypeError
            For non-numeric values.
        ValueError
            For values other than 0 and 1 (reported as given, however large), masked values,
            empty data, lines of unequal length, or arrays of more than 2 dims.
        """
        return check_coin_data(data)

    def check_params(self, params, name: str = "params") -> dict[str, np.ndarray]:
        """Validate a dict of scalar parameters (``init``, ``simulate``); ``name`` is the
        argument named in error messages."""
        # with pi fixed, a full parameter set (pi included) is still accepted
        check_param_keys(params, self.param_names, name, optional=("pi",) if self.pi is not None else ())
        return {key: np.asarray(check_probability(params[key], f"{name}[{key!r}]")) for key in self.param_names}

    def _require_keys(self, params) -> None:
        missing = [key for key in self.param_names if key not in params]
        if missing:
            raise ValueError(f"params is missing {missing}; expected keys {list(self.param_names)}")

    # -- likelihood and prior -----------------------------------------------------------
    def _pi(self, params):
        return self.pi if self.pi is not None else np.asarray(params["pi"], float)

    def _component_log_terms(self, data: CoinData, log_a, log_not_a, log_b, log_not_b, log_c, log_not_c, heads=None):
        """Log joint weight of each trial under coin B and coin C, shape (..., n_trials, 2).

        The arguments are ``log`` probabilities (EM, likelihood) or their expectations under
        the variational factors (VB); the formula is the same, which is why it is written once.
        ``heads`` (default: every trial's, ``data.heads``) gives the terms of those numbers of
        heads instead, shape (..., len(heads), 2).
        """
        h = data.heads if heads is None else heads
        t = data.n_flips - h
        def times(count, log_value):
            log_value = np.asarray(log_value, float)
            # the inner loop of EM, VB and Gibbs (one set of parameters): with a finite logarithm
            # count * log_value is already the answer (0 * x is +-0, which adds like 0), and the
            # masked product below costs more than the rest of the E-step on seed-sized data
            if log_value.ndim == 0 and math.isfinite(log_value):
                return count * log_value
            log_value = log_value[..., None]
            # 0 * log(0) = 0: a coin with bias 0 explains zero heads perfectly
            with np.errstate(invalid="ignore"):
                return np.where(count == 0, 0.0, count * log_value)

        term_b = np.asarray(log_a, float)[..., None] + times(h, log_b) + times(t, log_not_b)
        term_c = np.asarray(log_not_a, float)[..., None] + times(h, log_c) + times(t, log_not_c)
        # filled in place rather than np.stack-ed: the same numbers, a third of the overhead
        terms = np.empty(np.broadcast_shapes(term_b.shape, term_c.shape) + (2,))
        terms[..., 0] = term_b
        terms[..., 1] = term_c
        return terms

    def _log_terms_from_params(self, data, params, heads=None):
        pi = self._pi(params)
        p = np.asarray(params["p"], float)
        q = np.asarray(params["q"], float)
        with np.errstate(divide="ignore"):
            return self._component_log_terms(
                data, np.log(pi), np.log1p(-pi), np.log(p), np.log1p(-p), np.log(q), np.log1p(-q), heads
            )

    def log_likelihood(self, data, params) -> np.ndarray:
        """Pointwise log-likelihood with the coin choice summed out.

        Parameters
        ----------
        data : coin data (see :meth:`check_data`)
        params : dict of arrays of a common batch shape B

        Returns
        -------
        ndarray of shape B + (n_trials,)
        """
        data = self.check_data(data)
        self._require_keys(params)
        log_terms = self._log_terms_from_params(data, params)
        return np.logaddexp(log_terms[..., 0], log_terms[..., 1]) + data.log_binomial_coefficients

    def log_prior(self, params) -> np.ndarray:
        """Sum of the Beta log-densities of the free parameters, shape B."""
        return sum(self.prior()[name].log_pdf(params[name]) for name in self.param_names)

    def latent_posterior(self, data, params):
        """P(trial used coin B | flips, params), shape B + (n_trials,)."""
        data = self.check_data(data)
        return {"coin_b_prob": _coin_b_posterior(self._log_terms_from_params(data, params))[0]}

    def simulate(self, params, size, rng=None):
        """Simulate trials.

        Parameters
        ----------
        params : dict with ``p``, ``q`` (and ``pi`` unless fixed)
        size : int or (n_trials, n_flips)
            An int gives 1-D data with one flip per trial.
        rng : numpy.random.Generator or int seed

        Returns
        -------
        flips : ndarray of shape (n_trials,) or (n_trials, n_flips)
        coin_b : ndarray of bool, shape (n_trials,)
        """
        rng = check_rng(rng, "rng")
        params = self.check_params(params)
        if isinstance(size, numbers.Integral):
            shape = (int(size),)
        else:
            shape = tuple(int(s) for s in size)
        if len(shape) not in (1, 2) or min(shape) < 1:
            raise ValueError(f"size must be a positive int or (n_trials, n_flips), got {size!r}")
        coin_b = rng.random(shape[0]) < self._pi(params)
        bias = np.where(coin_b, params["p"], params["q"])
        flips = (rng.random(shape) < (bias if len(shape) == 1 else bias[:, None])).astype(np.int8)
        return flips, coin_b

    # -- conjugate hooks (EM, Gibbs, VB) ------------------------------------------------
    def _stats_from_assignments(self, data: CoinData, coin_b_weight) -> dict[str, float]:
        """Sufficient statistics given P(coin B) (EM, VB) or 0/1 assignments (Gibbs)."""
        h, t = data.heads_and_tails
        weight_c = 1.0 - coin_b_weight
        return {
            "n_b": float(coin_b_weight.sum()),
            "n_c": float(weight_c.sum()),
            "heads_b": float(coin_b_weight @ h),
            "tails_b": float(coin_b_weight @ t),
            "heads_c": float(weight_c @ h),
            "tails_c": float(weight_c @ t),
        }

    def conditional_posterior(self, stats, mle: bool = False) -> dict[str, Beta]:
        """Beta posteriors of the free parameters given (expected or complete) statistics.

        With ``mle=True`` the prior is replaced by Beta(1, 1), whose mode is the maximum
        likelihood estimate.
        """
        prior = {name: FLAT_BETA for name in self.param_names} if mle else self._priors
        posterior = {
            "p": prior["p"].update(stats["heads_b"], stats["tails_b"]),
            "q": prior["q"].update(stats["heads_c"], stats["tails_c"]),
        }
        if self.pi is None:
            posterior = {"pi": prior["pi"].update(stats["n_b"], stats["n_c"]), **posterior}
        return posterior

    def initial_params(self, data, rng, strategy: str = "random") -> dict[str, np.ndarray]:
        """Starting point for EM or Gibbs.

        ``"random"`` draws every free bias uniformly from (0.1, 0.9), away from the
        boundaries where the log-likelihood is -inf; ``"prior"`` draws from the prior.
        """
        if strategy == "random":
            draws = {name: rng.uniform(0.1, 0.9) for name in self.param_names}
        elif strategy == "prior":
            draws = {name: float(np.clip(dist.sample(rng), 1e-3, 1 - 1e-3)) for name, dist in self.prior().items()}
        else:
            raise ValueError(f"init strategy must be 'random', 'prior' or a dict of params, got {strategy!r}")
        return {name: np.asarray(value) for name, value in draws.items()}

    def expected_stats(self, data, params):
        """E-step: expected statistics under p(z | flips, params) and the log-likelihood."""
        logs = self._log_biases(params)
        if logs is None:
            return self._expected_stats_of(data, self._log_terms_from_params(data, params))
        return self._stats_and_log_norm(data, *self._grouped_posterior(data, *logs))

    def _expected_stats_of(self, data: CoinData, log_terms):
        """The statistics weighted by P(coin B) and ``sum_i log sum_k exp(log_terms_ik)`` (with the
        binomial constants): EM's log-likelihood, or VB's data term when the terms are expected logs."""
        return self._stats_and_log_norm(data, *_coin_b_posterior(log_terms))

    def _stats_and_log_norm(self, data: CoinData, coin_b_prob, log_norm):
        return self._stats_from_assignments(data, coin_b_prob), float(np.sum(log_norm + data.log_binomial_coefficients))

    def combine_stats(self, parts) -> dict[str, float]:
        """Statistics of chunks of trials combined: every count adds."""
        return sum_stats(parts)

    def sample_stats(self, data, params, rng):
        """Gibbs step for the latents: draw each trial's coin, return complete statistics."""
        data = self.check_data(data)
        self._require_keys(params)
        # the statistics as whole-number counts, which every order of summation gives exactly
        logs = self._log_biases(params)
        if logs is None:
            coin_b_prob = _coin_b_posterior(self._log_terms_from_params(data, params))[0]
        else:
            coin_b_prob = self._grouped_posterior(data, *logs)[0]
        return self._counts(data, rng.random(data.n_trials) < coin_b_prob)

    @staticmethod
    def _counts(data: CoinData, coin_b) -> dict:
        """Complete statistics of 0/1 assignments ``coin_b`` (bool, shape (..., n_trials)), as
        whole-number counts (exact in every order of summation), shape (...) each."""
        n_b = np.count_nonzero(coin_b, axis=-1)
        heads_b = coin_b @ data.heads
        n_c, heads_c = data.n_trials - n_b, data.total_heads - heads_b
        m = data.n_flips
        counts = {"n_b": n_b, "n_c": n_c, "heads_b": heads_b, "tails_b": m * n_b - heads_b,
                  "heads_c": heads_c, "tails_c": m * n_c - heads_c}
        return {name: np.asarray(value, float) if np.ndim(value) else float(value) for name, value in counts.items()}

    def gibbs_sweep_chains(self, data, params, rngs) -> dict[str, np.ndarray]:
        """One Gibbs sweep of every chain (:class:`~latentzoo.models.core.protocols.BatchedSweep`).

        The same numbers as :meth:`sample_stats`, :meth:`conditional_posterior` and the Betas'
        ``sample`` chain by chain: the arithmetic is elementwise (per chain and distinct number of
        heads), the statistics are whole-number counts, and each chain draws its uniforms and then
        its biases (pi, p, q) from its own generator.

        Parameters
        ----------
        data : coin data
        params : dict of arrays of shape (n_chains,)
        rngs : list of n_chains numpy.random.Generator

        Returns
        -------
        dict of float arrays of shape (n_chains,)
        """
        data = self.check_data(data)
        self._require_keys(params)
        n_chains = len(rngs)
        pi = np.full(n_chains, self.pi) if self.pi is not None else params["pi"]
        biases = np.stack([np.asarray(value, float) for value in (pi, params["p"], params["q"])], axis=-1)
        if biases.shape != (n_chains, 3):
            raise ValueError(f"params must hold one value per chain ({n_chains}), got shape {biases.shape[:-1]}")
        with np.errstate(divide="ignore"):
            logs, logs_of_rest = np.log(biases), np.log1p(-biases)
        columns = [part[:, k:k + 1] for k in range(3) for part in (logs, logs_of_rest)]  # (chain, 1) each
        coin_b_prob = self._grouped_posterior(data, *columns)[0]  # (chain, trial)
        for chain in np.flatnonzero(~(np.isfinite(logs).all(1) & np.isfinite(logs_of_rest).all(1))):
            # a bias of exactly 0 or 1 (0 * log 0 counts as 0 there): the general path
            one = {"pi": pi[chain], "p": params["p"][chain], "q": params["q"][chain]}
            coin_b_prob[chain] = _coin_b_posterior(self._log_terms_from_params(data, one))[0]
        coin_b = np.stack([rng.random(data.n_trials) for rng in rngs]) < coin_b_prob
        posterior = self.conditional_posterior(self._counts(data, coin_b))
        draws = {name: np.empty(n_chains) for name in posterior}
        for chain, rng in enumerate(rngs):
            for name, factor in posterior.items():  # the order Beta.sample draws them in, chain by chain
                draws[name][chain] = rng.beta(factor.alpha[chain], factor.beta[chain], size=())
        return draws

    def _log_biases(self, params):
        """``(log pi, log(1 - pi), log p, log(1 - p), log q, log(1 - q))`` of one set of parameters
        (scalars), each bias's pair from one NumPy call; None for batched parameters or a bias of
        exactly 0 or 1 (where ``_component_log_terms`` counts 0 * log 0 as 0)."""
        biases = (self._pi(params), params["p"], params["q"])
        if any(np.ndim(bias) for bias in biases):
            return None
        biases = np.array(biases, float)
        with np.errstate(divide="ignore"):
            logs, logs_of_rest = np.log(biases), np.log1p(-biases)
        if not (np.isfinite(logs).all() and np.isfinite(logs_of_rest).all()):
            return None
        return logs[0], logs_of_rest[0], logs[1], logs_of_rest[1], logs[2], logs_of_rest[2]

    @staticmethod
    def _grouped_posterior(data: CoinData, log_a, log_not_a, log_b, log_not_b, log_c, log_not_c):
        """P(coin B) and the log normaliser per trial, shape (..., n_trials) each, for finite
        (expected) log biases, scalars or of shape (..., 1) (one set per chain):
        ``_component_log_terms`` and ``_coin_b_posterior``'s arithmetic, once per distinct number
        of heads (the same values), then read per trial. The inner loop of EM, VB and Gibbs, in a
        few NumPy calls."""
        values, index = data.heads_values
        tails = data.n_flips - values
        term_b = log_a + values * log_b + tails * log_not_b
        term_c = log_not_a + values * log_c + tails * log_not_c
        log_norm = np.logaddexp(term_b, term_c)
        return np.exp(term_b - log_norm)[..., index], log_norm[..., index]

    def initial_factors(self, data, rng) -> dict[str, Beta]:
        """VB start: the posterior given a random soft assignment of trials to coins."""
        weights = rng.uniform(0.1, 0.9, size=data.n_trials)
        return self.conditional_posterior(self._stats_from_assignments(data, weights))

    def vb_expected_stats(self, data, factors):
        """VB update of q(z): expected statistics and the data part of the ELBO.

        The ELBO is this value minus the KL divergences of the factors from their priors:
        with the optimal q(z), E_q[log p(x, z | theta)] - E_q[log q(z)] = sum_i log sum_k
        exp(rho_ik) (Bishop eq. 10.46-10.49 for the mixture case).
        """
        log_a = factors["pi"].expected_log() if self.pi is None else (np.log(self.pi), np.log1p(-self.pi))
        logs = (*log_a, *factors["p"].expected_log(), *factors["q"].expected_log())
        if not any(np.ndim(value) for value in logs):  # one set of factors: expected logs are finite
            return self._stats_and_log_norm(data, *self._grouped_posterior(data, *logs))
        return self._expected_stats_of(data, self._component_log_terms(data, *logs))

    # -- exact posterior ----------------------------------------------------------------
    def exact_posterior(self, data) -> ConjugateMixture:
        """The exact posterior: a mixture of products of Beta densities.

        Summing over the 2^n coin assignments, each assignment contributes a product of
        Betas that depends only on (n_b, heads_b): how many trials went to coin B and how many
        heads they hold. Trials with the same number of heads are interchangeable, so the
        number of assignments for each (n_b, heads_b) is a product of binomial coefficients,
        accumulated group by group (a polynomial-time dynamic programme instead of 2^n terms).

        Returns
        -------
        ConjugateMixture
            One component per reachable (n_b, heads_b), with Beta factors of batch shape
            (n_components,) for ``pi`` (unless fixed), ``p`` and ``q``.
        """
        data = self.check_data(data)
        n, m = data.n_trials, data.n_flips
        total_heads = int(data.heads.sum())
        work = float(n) * n * (n * m + 1)
        if work > EXACT_MAX_WORK:
            raise ValueError(
                f"the exact posterior needs about n^3 m = {work:.1e} operations for {n} trials of "
                f"{m} flips, more than the limit {EXACT_MAX_WORK:.0e}; use backend='gibbs' or 'nuts'"
            )
        log_count = _log_assignment_counts(data.heads, m)
        n_b, heads_b = np.nonzero(np.isfinite(log_count))
        n_c, heads_c = n - n_b, total_heads - heads_b
        stats = {"n_b": n_b, "n_c": n_c, "heads_b": heads_b, "tails_b": m * n_b - heads_b,
                 "heads_c": heads_c, "tails_c": m * n_c - heads_c}
        factors = self.conditional_posterior(stats)
        # each group's evidence: the Beta normalisers' ratio, posterior over prior, of every free bias
        log_weight = log_count[n_b, heads_b] + sum(
            special.betaln(factor.alpha, factor.beta) - special.betaln(self._priors[name].alpha, self._priors[name].beta)
            for name, factor in factors.items()
        )
        if self.pi is not None:
            log_weight = log_weight + n_b * np.log(self.pi) + n_c * np.log1p(-self.pi)
        log_evidence = special.logsumexp(log_weight) + data.log_binomial_coefficients.sum()
        return ConjugateMixture(
            log_weights=log_weight - special.logsumexp(log_weight),
            factors=factors,
            log_evidence=float(log_evidence),
        )

    # -- PyMC declaration ---------------------------------------------------------------
    def pymc_model(self, data, marginalized: bool = True):
        """The one PyMC declaration of this model's priors and likelihood.

        Parameters
        ----------
        data : coin data
        marginalized : bool
            True sums the coin choice out (a two-component binomial mixture; for NUTS, ADVI,
            MAP). False keeps ``coin_b`` (Bernoulli per trial) explicit for compound Gibbs.
        """
        import pymc as pm
        import pytensor.tensor as pt

        from ..ops.pymc_data import data_container, hyperparameter

        data = self.check_data(data)
        # NumPy float64 scalars, not Python floats: PyTensor turns a Python float that float32
        # represents exactly (1.0, 2.0, 0.5) into a float32 constant, and the Beta log-density
        # would then be computed in single precision
        pi_prior, p_prior, q_prior = (
            np.asarray(prior, dtype=np.float64) for prior in (self.pi_prior, self.p_prior, self.q_prior)
        )
        with pm.Model(coords={"trial": np.arange(data.n_trials)}) as model:
            # containers, not constants: one compiled model serves every data set (models/ops/pymc_data.py)
            heads = data_container("heads_data", data.heads)
            n_flips = data_container("n_flips_data", data.n_flips)
            # the priors as containers too: moving a prior (latentzoo explore) compiles nothing new
            beta = {name: [hyperparameter(f"{name}_prior_{side}", value) for side, value in zip("ab", prior)]
                    for name, prior in (("pi", pi_prior), ("p", p_prior), ("q", q_prior))}
            pi = pm.Beta("pi", *beta["pi"]) if self.pi is None else pt.constant(np.float64(self.pi))
            p = pm.Beta("p", *beta["p"])
            q = pm.Beta("q", *beta["q"])
            if marginalized:
                pm.Mixture(
                    "heads",
                    w=pt.stack([pi, 1.0 - pi]),
                    comp_dists=[pm.Binomial.dist(n_flips, p), pm.Binomial.dist(n_flips, q)],
                    observed=heads,
                    dims="trial",
                )
            else:
                coin_b = pm.Bernoulli("coin_b", p=pi, dims="trial")
                pm.Binomial("heads", n=n_flips, p=pt.switch(coin_b, p, q), observed=heads, dims="trial")
            pm.Deterministic("heads_prob", pi * p + (1.0 - pi) * q)
        return model

    def picture(self, comparison):
        """The posterior in the (p, q) plane, with where EM's restarts stopped: a matplotlib Figure
        (see :func:`~latentzoo.models.coins.picture.three_coins_picture`)."""
        # imported here: importing the models must not import matplotlib
        from .picture import three_coins_picture

        return three_coins_picture(comparison)


def _coin_b_posterior(log_terms) -> tuple[np.ndarray, np.ndarray]:
    """P(coin B) and the log normaliser ``log sum_k exp(log_terms_k)`` per trial, each of shape
    (..., n_trials), from the two log terms of ``ThreeCoins._component_log_terms``."""
    log_norm = np.logaddexp(log_terms[..., 0], log_terms[..., 1])
    return np.exp(log_terms[..., 0] - log_norm), log_norm


def _log_assignment_counts(heads: np.ndarray, n_flips: int) -> np.ndarray:
    """log #{assignments of trials to coin B with n_b trials and heads_b heads}.

    Returns
    -------
    ndarray of shape (n_trials + 1, n_trials * n_flips + 1); -inf where no assignment exists.
    """
    n = heads.size
    width = n * n_flips + 1
    log_count = np.full((n + 1, width), -np.inf)
    log_count[0, 0] = 0.0
    for h, group_size in enumerate(np.bincount(heads, minlength=n_flips + 1)):
        if group_size == 0:
            continue
        k = np.arange(group_size + 1)
        log_choose = special.gammaln(group_size + 1) - special.gammaln(k + 1) - special.gammaln(group_size - k + 1)
        updated = np.full_like(log_count, -np.inf)
        for taken in k:
            shift = h * taken
            np.logaddexp(
                updated[taken:, shift:],
                log_count[: n + 1 - taken, : width - shift] + log_choose[taken],
                out=updated[taken:, shift:],
            )
        log_count = updated
    return log_count
