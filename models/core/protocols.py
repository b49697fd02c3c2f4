"""What a model must provide for each back-end: one ``typing.Protocol`` per capability.

A latentzoo model is a frozen dataclass of structure and hyperparameters; it holds no data and no
fitted state. Back-ends, the comparison and the command line talk to it only through the methods of
these protocols (``tests/test_protocols.py`` checks that every ``model.<method>`` that
``latentzoo.inference`` calls is declared here), and the registry
(``latentzoo.inference.registry``) offers a back-end for a model exactly when the model satisfies
every protocol the back-end ``requires``. The protocols are runtime-checkable: ``isinstance(model,
MeanField)`` says whether ``vb`` applies. Inherit :class:`~latentzoo.models.core.base.LatentModel` for
the defaults of the optional parts of :class:`Model` (no derived quantities, no latent posterior).

============================  ==================================================  ===================
protocol                      methods                                             back-ends
============================  ==================================================  ===================
:class:`Model`                ``check_data``, ``param_dims``, ``coords``,         every one; ``nuts``,
                              ``observed_data``, ``n_observations``,              ``advi``,
                              ``log_likelihood``, ``log_prior``, ``prior``,       ``fullrank_advi``,
                              ``simulate``, ``pymc_model``; with defaults in      ``map`` need no more
                              ``LatentModel``: ``param_names``,
                              ``check_params``, ``derived``, ``derived_dims``,
                              ``latent_posterior``, ``latent_dims``,
                              ``objective_scale``, ``objective_round_off``,
                              ``pymc_initial_point``
:class:`ConjugateEStep`       ``initial_params``, ``expected_stats``,             ``em``
                              ``conditional_posterior``
:class:`ConjugateSweep`       ``initial_params``, ``sample_stats``,               ``gibbs``,
                              ``conditional_posterior``                           ``pymc_gibbs``
:class:`BatchedSweep`         ``gibbs_sweep_chains``                              ``gibbs`` (every
                                                                                  chain at once)
:class:`HardAssignments`      ``classification_stats``                            ``em`` with
                                                                                  ``assignment="hard"``
:class:`MeanField`            ``initial_factors``, ``vb_expected_stats``,         ``vb``
                              ``conditional_posterior``
:class:`ExactlySolvable`      ``exact_posterior``                                 ``exact``
:class:`DataDrivenPrior`      ``with_data_prior``                                 ``fit`` resolves it
                                                                                  once, first
:class:`IdentificationRule`   ``relabel_draws``                                   the comparison
:class:`ExampleData`          ``default_data``                                    CLI and demo
:class:`Demo`                 ``default_data``, ``demo_plan``                     ``latentzoo demo``
:class:`DataFileFormat`       ``data_file_format``                                ``--data FILE`` of
                                                                                  the CLI
:class:`Pictured`             ``picture``                                         the report
:class:`Documented`           ``lesson``, ``api_page`` (defaults in               the demo's index and
                              ``LatentModel``: None)                              the report link them
:class:`ChunkedStats`         ``combine_stats``                                   ``em``, ``vb``,
                                                                                  ``gibbs`` on chunked
                                                                                  (Dask) data
:class:`ChunkValidation`      ``check_chunk``                                     chunks smaller than
                                                                                  the data must be
:class:`ChunkedDataPrior`     ``data_prior_stats``, ``with_data_prior_stats``     a data-driven prior
                                                                                  from chunked data
:class:`SelectableSize`       ``with_n_components``, ``n_parameters``, ``aic``,   ``choose_n_components``
                              ``bic``
============================  ==================================================  ===================


Conventions
-----------
- ``data`` is what ``check_data`` returns: the model's validated data object (``CoinData``,
  ``HMMData``, ``GaussianData``). ``fit`` validates once, at the door; every later call receives
  that object, and ``check_data`` given it back returns it at once.
- ``params`` maps parameter names to arrays. Arrays may carry leading batch dims (``(chain,
  draw)`` when evaluating posterior draws); vectorised methods broadcast over them.
- Conjugate families (``Beta``, ``Dirichlet``, ``Gamma``, ``NormalInverseWishart`` in
  ``latentzoo.models.core.conjugate``) are the currency of the hand-written back-ends: EM takes the
  ``mode()`` of ``conditional_posterior(stats)``, Gibbs ``sample``\\ s it, VB keeps it as the
  factor ``q`` and needs its ``expected_log``/``kl``.

A complete tiny model
---------------------
A coin of unknown bias ``theta`` with a Beta prior, flipped ``n`` times. It has no latent
variable, so its "expected" and "sampled" statistics are the counts themselves; it still gets
``em`` (the MAP), ``gibbs`` (exact draws, one sweep each), ``exact`` and every PyMC back-end:

.. code-block:: python

    from dataclasses import dataclass

    import numpy as np
    from scipy.special import betaln

    from latentzoo.inference import fit
    from latentzoo.models.core.base import LatentModel
    from latentzoo.models.core.conjugate import Beta
    from latentzoo.models.core.conjugate_mixture import ConjugateMixture


    @dataclass(frozen=True)
    class Coin(LatentModel):
        a: float = 1.0
        b: float = 1.0
        name = "coin"
        observation_dim = "flip"

        def check_data(self, data):
            flips = np.asarray(data)
            if flips.ndim != 1 or flips.size == 0 or not np.isin(flips, (0, 1)).all():
                raise ValueError(f"data must be a non-empty 1-D array of 0/1 flips, got {data!r}")
            return flips.astype(np.int8)

        def param_dims(self):
            return {"theta": ()}

        def coords(self, data):
            return {"flip": list(range(len(data)))}

        def observed_data(self, data):
            return {"flips": (data, ("flip",))}

        def n_observations(self, data):
            return len(data)

        def prior(self):
            return {"theta": Beta(self.a, self.b)}

        def log_prior(self, params):
            return self.prior()["theta"].log_pdf(params["theta"])

        def log_likelihood(self, data, params):  # (..., n_flips), broadcast over batch dims
            theta = np.asarray(params["theta"])[..., None]
            return np.where(data == 1, np.log(theta), np.log1p(-theta))

        def simulate(self, params, size, rng=None):
            return np.random.default_rng(rng).binomial(1, params["theta"], size)

        def pymc_model(self, data, marginalized=True):
            import pymc as pm

            with pm.Model(coords=self.coords(data)) as model:
                theta = pm.Beta("theta", self.a, self.b)
                pm.Bernoulli("flips", theta, observed=data, dims="flip")
            return model

        # ConjugateEStep and ConjugateSweep: no latent variable, so the statistics are counts
        def initial_params(self, data, rng, strategy="random"):
            return {"theta": np.asarray(rng.uniform(0.1, 0.9))}

        def expected_stats(self, data, params):
            log_lik = float(self.log_likelihood(data, params).sum())
            return {"heads": data.sum(), "tails": (1 - data).sum()}, log_lik

        def sample_stats(self, data, params, rng):
            return {"heads": data.sum(), "tails": (1 - data).sum()}

        def conditional_posterior(self, stats, mle=False):
            prior = Beta(1.0, 1.0) if mle else self.prior()["theta"]
            return {"theta": prior.update(stats["heads"], stats["tails"])}

        # ExactlySolvable: the conjugate posterior (a mixture with a single component) and the
        # log marginal likelihood log B(a + heads, b + tails) - log B(a, b)
        def exact_posterior(self, data):
            posterior = self.conditional_posterior(self.sample_stats(data, None, None))
            theta = posterior["theta"]
            log_evidence = betaln(theta.alpha, theta.beta) - betaln(self.a, self.b)
            return ConjugateMixture.single(posterior, float(log_evidence))


    coin = Coin(a=2.0, b=2.0)
    for backend in ("em", "gibbs", "exact"):
        result = fit(coin, [1, 1, 1, 0], backend=backend, random_seed=1)

``tests/test_protocols.py`` runs this example, checks which back-ends the registry offers for it
and compares every back-end with the closed-form Beta(5, 3) posterior.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Model",
    "ConjugateEStep",
    "ConjugateSweep",
    "BatchedSweep",
    "HardAssignments",
    "MeanField",
    "ExactlySolvable",
    "DataDrivenPrior",
    "IdentificationRule",
    "ExampleData",
    "Demo",
    "DemoPlan",
    "DataFileFormat",
    "FEATURE_ROWS",
    "VALUES",
    "TIME_SERIES",
    "Pictured",
    "Documented",
    "HiddenStates",
    "ChunkedStats",
    "ChunkValidation",
    "ChunkedDataPrior",
    "SelectableSize",
    "ComponentFamily",
    "SequenceEmissions",
    "TableEmissions",
    "ScaledEmissions",
    "capability_names",
]


@runtime_checkable
class Model(Protocol):
    """What every back-end needs: data validation, the density, simulation and the PyMC twin.

    Attributes
    ----------
    name : str
        The command-line name (``"three-coins"``).
    observation_dim : str
        The dim of the pointwise log-likelihood (``"trial"``, ``"sequence"``, ``"observation"``).
    label_dim : str or None
        The dim whose labels are exchangeable (``"component"``, ``"state"``); the comparison
        relabels every result along it. None when labels are identified.
    paired_label_dims : dict of str -> str, or None
        Dims permuted together with another (an HMM's ``state_next`` with ``state``).
    """

    name: str
    observation_dim: str
    label_dim: str | None
    paired_label_dims: dict[str, str] | None

    def check_data(self, data) -> Any:
        """The validated data object (returned unchanged when ``data`` already is one)."""

    def param_dims(self) -> dict[str, tuple[str, ...]]:
        """Parameter name -> its dims (without the sample dims); the order is the reporting order."""

    def coords(self, data) -> dict[str, list]:
        """Coordinate values of every dim the results use."""

    def observed_data(self, data) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
        """Name -> (array, dims) of the observations; the first name labels the log-likelihood."""

    def n_observations(self, data) -> int:
        """Number of entries of the pointwise log-likelihood."""

    def log_likelihood(self, data, params: dict) -> np.ndarray:
        """Pointwise log p(observation | params), shape ``batch + (n_observations,)``."""

    def log_prior(self, params: dict) -> np.ndarray:
        """log p(params) under the model's explicit prior, shape ``batch``."""

    def prior(self) -> dict:
        """Parameter name (or a tuple of names for a joint factor) -> its conjugate prior."""

    def simulate(self, params: dict, size, rng=None):
        """Data drawn from the model at ``params``, in the form ``check_data`` accepts."""

    def pymc_model(self, data, marginalized: bool = True):
        """The model declared once in PyMC, with the same variable names, dims and coords."""

    # -- defaults in LatentModel ------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """The keys of ``param_dims``, in its order."""

    def check_params(self, params: dict, name: str = "params") -> dict:
        """``params`` validated (exactly the parameter names, shapes, support) as float arrays;
        a TypeError/ValueError naming ``name`` (``"init"``, ``"start"``) otherwise."""

    def derived_dims(self) -> dict[str, tuple[str, ...]]:
        """Dims of the quantities :meth:`derived` returns (``{}``: none)."""

    def derived(self, params: dict) -> dict[str, np.ndarray]:
        """Functions of the parameters worth reporting beside them (identified combinations),
        broadcast over batch dims; the comparison and calibration report them too."""

    def latent_dims(self) -> dict[str, tuple[str, ...]]:
        """Dims of the per-observation latent posteriors :meth:`latent_posterior` returns; the
        first dim is the one the posterior is indexed by (``time``, ``observation``)."""

    def latent_posterior(self, data, params: dict) -> dict[str, np.ndarray]:
        """p(latent | data, params) per observation (responsibilities, smoothed state marginals),
        shape ``batch + dims``; stored in the result's posterior group."""

    def objective_scale(self, data) -> int:
        """What a tolerance on EM's, VB's or ADVI's objective is "per": the number of
        observations, or of time steps for an HMM."""

    def objective_round_off(self, data) -> float:
        """How far EM's and VB's objective may drop by float64 round-off of the parameters alone,
        beyond the loop's relative allowance (0 for data near the origin)."""

    def pymc_initial_point(self, params: dict) -> dict[str, np.ndarray]:
        """The free variables of :meth:`pymc_model` at ``params`` (a start for ``pm.find_MAP``,
        ADVI and NUTS)."""


@runtime_checkable
class ConjugateEStep(Protocol):
    """EM: expected complete-data statistics, then the mode of the conjugate posterior."""

    def initial_params(self, data, rng: np.random.Generator, strategy: str = ...) -> dict:
        """Starting parameters from a named strategy (``"random"``, ``"prior"``, ...)."""

    def expected_stats(self, data, params: dict) -> tuple[dict, float]:
        """E-step: statistics under p(latents | data, params), and log p(data | params)."""

    def conditional_posterior(self, stats: dict, mle: bool = False) -> dict:
        """The conjugate posterior of the parameters given statistics (flat prior if ``mle``)."""


@runtime_checkable
class ConjugateSweep(Protocol):
    """Blocked Gibbs: draw the latents given the parameters, then the parameters given them."""

    def initial_params(self, data, rng: np.random.Generator, strategy: str = ...) -> dict:
        """Starting parameters from a named strategy."""

    def sample_stats(self, data, params: dict, rng: np.random.Generator) -> dict:
        """Complete-data statistics of one draw of the latents from p(latents | data, params)."""

    def conditional_posterior(self, stats: dict, mle: bool = False) -> dict:
        """The conjugate posterior of the parameters given statistics."""


@runtime_checkable
class BatchedSweep(Protocol):
    """Gibbs sweeps of every chain at once (optional, beside :class:`ConjugateSweep`): for a model
    whose sweep is a few small array operations, the Python overhead of one sweep per chain is
    most of the sampler's time.

    ``gibbs_sweep_chains(data, params, rngs)`` takes parameters with a leading chain axis and one
    generator per chain and returns the next parameters, the same numbers as ``sample_stats``,
    ``conditional_posterior`` and the posterior's ``sample`` chain by chain would give: each chain
    draws from its own generator, in the same order.
    """

    def gibbs_sweep_chains(self, data, params: dict, rngs: list) -> dict:
        """One sweep of every chain: params (chain, ...) -> params (chain, ...)."""


@runtime_checkable
class HardAssignments(Protocol):
    """Classification EM: each observation goes to its most probable latent value."""

    def classification_stats(self, data, params: dict) -> tuple[dict, float]:
        """Statistics of the hard assignment and the classification log-likelihood."""


@runtime_checkable
class MeanField(Protocol):
    """Mean-field VB (CAVI) with conjugate factors: q(latents) q(params)."""

    def initial_factors(self, data, rng: np.random.Generator) -> dict:
        """Starting factors q(params), as conjugate distributions."""

    def vb_expected_stats(self, data, factors: dict) -> tuple[dict, float]:
        """Update q(latents): statistics under it, and E_q[log p(data, latents | params)] + H[q(latents)]."""

    def conditional_posterior(self, stats: dict, mle: bool = False) -> dict:
        """Update q(params) from the statistics."""


@runtime_checkable
class ExactlySolvable(Protocol):
    """The posterior in closed form (conjugacy, or a sum over the latent variables)."""

    def exact_posterior(self, data):
        """A :class:`~latentzoo.models.core.conjugate_mixture.ConjugateMixture`, with ``log_evidence``."""


@runtime_checkable
class DataDrivenPrior(Protocol):
    """A default prior set from the data (empirical Bayes), resolved once before any back-end."""

    def with_data_prior(self, data):
        """The same model with every data-driven hyperparameter made explicit."""


@runtime_checkable
class IdentificationRule(Protocol):
    """A symmetry that lives on no dim (three coins: swapping coins B and C with pi -> 1 - pi)."""

    def relabel_draws(self, draws: dict) -> tuple[dict, np.ndarray]:
        """Draws mapped to the identified labelling, and a mask of the draws that were mapped."""


@runtime_checkable
class ExampleData(Protocol):
    """The seed documents' example data set for this model."""

    def default_data(self):
        """The example data, in the form ``check_data`` accepts."""


@dataclass(frozen=True)
class DemoPlan:
    """How ``latentzoo demo`` runs a model on its example data (the demo's own choices; ``compare``
    ignores them).

    Attributes
    ----------
    skips : mapping of str -> str
        Back-end name -> why the demo leaves it out (printed in the demo). Leaving out ``exact``
        makes the long NUTS run the reference.
    options : mapping of str -> mapping
        Back-end name -> options that replace the demo's defaults for this model.
    cost_seconds : float or None
        The model's measured demo time (warm cache, two workers); the demo starts the costliest
        first, so that parallel workers finish together. None (not measured) starts it first.
    reference : str or None
        The back-end the others are compared against. None: the exact posterior where the model
        has one (and the demo keeps it), else the long NUTS run.
    """

    skips: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    cost_seconds: float | None = None
    reference: str | None = None


@runtime_checkable
class Demo(Protocol):
    """A model that ``latentzoo demo`` runs: its example data and how the demo treats it
    (:class:`~latentzoo.models.core.base.LatentModel` supplies an empty plan)."""

    def default_data(self):
        """The example data, in the form ``check_data`` accepts."""

    def demo_plan(self) -> DemoPlan:
        """Back-ends the demo leaves out (and why), per-back-end options, the measured cost."""


#: ``data_file_format`` values: a table whose columns are features (a header row names them, a
#: one-column table stays 2-D, one row per observation or time step)
FEATURE_ROWS = "feature_rows"
#: flips or symbols: a table's one column is flattened to 1-D, ragged rows (sequences of
#: different lengths, missing steps) and a one-line file of digits reach ``check_data`` as text
VALUES = "values"
#: one series: a table of one column (the values) or two (times, then values; a header row
#: allowed), handed to ``check_data`` as a 1-D array or a pandas Series indexed by the times
TIME_SERIES = "time_series"


@runtime_checkable
class DataFileFormat(Protocol):
    """How the command line turns a data file (``--data FILE``) into what ``check_data`` takes
    (:class:`~latentzoo.models.core.base.LatentModel` defaults to :data:`VALUES`).

    Attributes
    ----------
    data_file_format : {"feature_rows", "values", "time_series"}
        :data:`FEATURE_ROWS`, :data:`VALUES` or :data:`TIME_SERIES`.
    """

    data_file_format: str


@runtime_checkable
class Pictured(Protocol):
    """A model-specific figure for the report."""

    def picture(self, comparison):
        """A matplotlib Figure drawn from a finished comparison (never fitting anything), or None."""


@runtime_checkable
class Documented(Protocol):
    """Where the documentation teaches and describes this model: the demo's index page and every
    report link both pages (:class:`~latentzoo.models.core.base.LatentModel` says None to both).

    The names are the docs site's, not URLs: where the site lives is the reader's business
    (``latentzoo demo --docs-url``), so a model states only which pages are its own.
    ``tests/test_docs_links.py`` checks that every registered model's pages exist in ``docs/``.

    Attributes
    ----------
    lesson : str or None
        The lesson that teaches the model: the name of a file in ``docs/lessons/`` without its
        ``.md`` (``"three-coins"``), or None when no lesson does.
    api_page : str or None
        The model's public dotted name (``"latentzoo.models.ThreeCoins"``), whose page the API
        reference generates; None for a model outside the public API.
    """

    lesson: str | None
    api_page: str | None


@runtime_checkable
class HiddenStates(Protocol):
    """A discrete hidden state at every time step (the hidden Markov models): decoding.

    The explorer's dice view draws these; the other back-ends need none of them (a fit's
    ``state_probs`` come from ``latent_posterior``).
    """

    @property
    def state_labels(self) -> list:
        """The states' names, in the order of the ``state`` coordinate."""

    def posterior_states(self, data, params) -> np.ndarray:
        """Smoothed p(z_t = k | x) at ``params``: (T, K), forward-backward."""

    def viterbi(self, data, params) -> tuple[np.ndarray, float]:
        """The most probable state path at ``params`` (T,) and its log p(x, z*)."""


@runtime_checkable
class ChunkedStats(Protocol):
    """Statistics that combine over disjoint parts of the data: EM, VB and Gibbs as a map-reduce
    over chunks (``latentzoo.inference.distributed``). Each per-data hook (``expected_stats``,
    ``classification_stats``, ``vb_expected_stats``, ``sample_stats``) runs on every chunk; its
    totals (log-likelihood, ELBO data term) add, and its statistics combine by this hook."""

    def combine_stats(self, parts: list) -> dict:
        """The statistics of all the chunks' data from each chunk's (a sum for counts; centred
        statistics by the pairwise formula, ``latentzoo.models.core.stats_combine``)."""


@runtime_checkable
class ChunkValidation(Protocol):
    """Validation of one chunk, for models whose data as a whole must meet a size condition (at
    least K rows for K mixture components) that a chunk need not."""

    def check_chunk(self, data) -> Any:
        """The validated data object of one chunk (accepted by every hook, whatever its size)."""


@runtime_checkable
class ChunkedDataPrior(Protocol):
    """A data-driven prior computed from statistics that combine over chunks."""

    def data_prior_stats(self, data) -> dict:
        """What the prior needs from ``data``, combinable by ``combine_stats``."""

    def with_data_prior_stats(self, stats: dict):
        """The model with its data-driven prior fixed from the combined statistics."""


@runtime_checkable
class SelectableSize(Protocol):
    """A model whose number of components can be chosen by fitting each candidate and comparing
    information criteria (:func:`latentzoo.inference.choose_n_components`)."""

    n_components: int

    def with_n_components(self, n_components: int):
        """The same kind of model with ``n_components`` components and default priors."""

    def n_parameters(self, data) -> int:
        """The number of free parameters for ``data`` (their dimension may fix it)."""

    def aic(self, data, params: dict) -> float:
        """Akaike's criterion -2 log L + 2 p at ``params``."""

    def bic(self, data, params: dict) -> float:
        """Schwarz's criterion -2 log L + p log N at ``params``."""


@runtime_checkable
class ComponentFamily(Protocol):
    """One kind of component with its conjugate prior: what a finite mixture's components and an
    HMM's state emissions are made of (Gaussian with a Normal-Inverse-Wishart prior, Categorical
    with a Dirichlet, Poisson with a Gamma, Bernoulli with a Beta per feature;
    :mod:`latentzoo.models.families`).

    A family is a frozen dataclass of its hyperparameters; the model that uses it supplies the
    number of components ``K`` and the label dim (``"component"`` or ``"state"``). The same
    object serves a mixture (:class:`~latentzoo.models.mixture.finite.FiniteMixture`: weights
    ``w_k``, responsibilities from ``log_density``) and an HMM
    (:class:`~latentzoo.models.hmm.model.HiddenMarkovModel`: the forward-backward pass reads
    ``log_density`` as its (T, K) emission matrix, and also needs :class:`SequenceEmissions`),
    and every back-end comes with it:

    * ``em``: ``posterior(stats(x, responsibilities), K, mle)``, then each factor's ``mode()``;
    * ``gibbs``: ``posterior(label_stats(x, labels, K), K)``, then each factor's ``sample(rng)``;
    * ``vb``: ``expected_log_density(x, factors)`` for q(z), ``posterior`` for q(theta), and the
      factors' ``kl`` from the prior for the ELBO;
    * ``exact``: ``log_marginal(stats, K)``, the evidence of each group of assignments;
    * ``nuts``, ``advi``, ``map``: ``pymc_priors`` and ``pymc_log_density`` inside the model's
      ``pm.Model``.

    Observations are the rows that ``check_observations`` returns, shape ``(N, *event_shape)``;
    a family that can skip what is missing (``allows_missing``) marks it NaN, and its
    ``log_density`` ignores it (a missing row constrains nothing). Statistics are a dict of
    arrays with the K components on their leading axis; the key ``"component_counts"`` is the
    mixture's own.

    Attributes
    ----------
    param_dims : dict of str -> tuple of str
        Each parameter's dims after the label dim (``{"rates": ()}``, ``{"probs": ("feature",)}``).
    event_dims : tuple of str
        The dims of one observation after the observation dim (``()``, ``("feature",)``).
    prior_key : str or tuple of str
        The key of the conjugate factor in ``prior``/``posterior``: a parameter name, or a tuple
        of names for a joint factor (``("means", "covs")``).
    allows_missing : bool
    start_strategies : tuple of str
        The names ``initial_params`` accepts (the first is the default), besides ``"prior"``.
    """

    param_dims: dict[str, tuple[str, ...]]
    event_dims: tuple[str, ...]
    prior_key: str | tuple[str, ...]
    allows_missing: bool
    start_strategies: tuple[str, ...]

    def check_observations(self, data) -> np.ndarray:
        """The validated rows ``(N, *event_shape)``, or a ValueError/TypeError naming ``data``."""

    def coords(self, observations) -> dict[str, list]:
        """Coordinates of the family's own dims (``feature``, ``symbol``)."""

    def check_params(self, params: dict, n_components: int, name: str = "params") -> dict:
        """The family's parameters as arrays ``(*batch, K, ...)``, validated."""

    def n_parameters(self, observations, n_components: int) -> int:
        """Free parameters of the K components together (for AIC and BIC)."""

    def prior(self, n_components: int) -> dict:
        """``{prior_key: conjugate distribution}`` batched over the K components."""

    def flat_prior(self, n_components: int) -> dict:
        """The prior whose mode given statistics is the maximum-likelihood estimate (``mle``)."""

    def log_prior(self, params: dict, n_components: int) -> np.ndarray:
        """``sum_k log p(theta_k)``, shape ``batch``."""

    def log_density(self, observations, params: dict) -> np.ndarray:
        """``log p(x_n | theta_k)``, shape ``(*batch, N, K)``."""

    def expected_log_density(self, observations, factors: dict) -> np.ndarray:
        """``E_q[log p(x_n | theta_k)]`` under conjugate factors ``q``, shape ``(N, K)``."""

    def stats(self, observations, weights: np.ndarray) -> dict:
        """Sufficient statistics per component given weights ``(N, K)`` (responsibilities,
        smoothed state marginals)."""

    def label_stats(self, observations, labels: np.ndarray, n_components: int) -> dict:
        """:meth:`stats` for hard labels (ints (N,)), as a Gibbs draw gives them."""

    def combine_stats(self, parts: list) -> dict:
        """The statistics of the union of disjoint parts of the data (chunks)."""

    def posterior(self, stats: dict, n_components: int, mle: bool = False) -> dict:
        """``{prior_key: prior (flat_prior if mle) updated by stats}``: EM takes its ``mode()``,
        Gibbs ``sample``\\ s it, VB keeps it as the factor."""

    def log_marginal(self, stats: dict, n_components: int) -> np.ndarray:
        """``log p(x assigned to k)`` with the parameters integrated out under the prior, shape
        ``(*batch, K)``: the evidence of one group of assignments (``exact``)."""

    def simulate(self, params: dict, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One row per entry of ``labels`` (ints in 0..K-1), drawn from that component."""

    def initial_params(self, observations, n_components: int, rng: np.random.Generator, strategy: str = ...):
        """``(params, labels)``: a starting point for EM and the samplers by a strategy named in
        ``start_strategies`` (or ``"prior"``), and a hard assignment of the rows (or None)."""

    def pymc_initial_point(self, params: dict) -> dict:
        """The family's free PyMC variables at ``params`` (a start for ``find_MAP``/ADVI)."""

    def pymc_priors(self, n_components: int, label_dim: str, observations=None) -> dict:
        """The parameters as PyMC random variables (inside a ``pm.Model`` with the coords),
        started apart where the observations allow; returns what ``pymc_log_density`` reads."""

    def pymc_log_density(self, observations, params: dict):
        """``log p(x_n | theta_k)`` as a PyTensor expression of shape ``(N, K)``."""


@runtime_checkable
class SequenceEmissions(Protocol):
    """What a :class:`ComponentFamily` also provides to serve as an HMM's emissions: sequences
    (one or many, ragged, with missing steps) are validated by the family into a container
    with ``lengths``, ``offsets`` and a missing-step mask, and the HMM reads rows from it."""

    observed_name: str

    def check_sequences(self, data):
        """One sequence or a list of them, validated: a sequence container (``HMMData``)."""

    def rows(self, data) -> np.ndarray:
        """The observed rows of a container, in time order (missing steps left out)."""

    def filled_rows(self, data) -> np.ndarray:
        """Every step's row, with a harmless placeholder where missing (a mask zeroes it)."""

    def observed_data(self, data) -> dict:
        """``{name: (array, dims)}`` of the observations over ``time``."""

    def support(self, data, n_components: int) -> np.ndarray:
        """``(T, K)`` bool: which state can emit which step (exact enumeration skips the rest)."""

    def round_off(self, rows) -> float:
        """How much EM's objective may drop by round-off alone for these rows."""

    def full(self, params: dict) -> dict:
        """``params`` with any parameter the family holds fixed added back."""

    def pymc_start_log_density(self, observations, params: dict) -> np.ndarray:
        """Where explicit states start (``pymc_gibbs``): log densities ``(N, K)`` at a start."""

    def pymc_observe(self, rows: np.ndarray, params: dict, labels) -> None:
        """The observed rows given their explicit states (a PyMC tensor of labels)."""


@runtime_checkable
class TableEmissions(Protocol):
    """An optional part of a :class:`ComponentFamily` with a finite alphabet (the categorical one):
    the HMM kernels read ``table[k, x_t]`` from a (K, M) table and count symbols inside their
    compiled loop, so no (T, K) log-density matrix is formed."""

    def emission_table(self, params: dict) -> np.ndarray:
        """The (K, M) probabilities that the kernels index by the coded observations."""

    def expected_table(self, factors: dict) -> np.ndarray:
        """``exp(E_q[log table])`` (K, M), the sub-normalised table of a VB pass."""

    def codes(self, data) -> np.ndarray:
        """The observations coded 0..M-1 (T,), a missing step coded M (a column of ones)."""

    def table_stats(self, counts: np.ndarray) -> dict:
        """The family's statistics from the kernels' (K, M) symbol counts."""


@runtime_checkable
class ScaledEmissions(Protocol):
    """An optional part of a :class:`ComponentFamily` whose likelihoods are cheapest to give up to
    a factor per observation (the Gaussian one): the HMM kernels read them as a (K, N) table, as
    they read :class:`TableEmissions`, instead of shifting and exponentiating a (N, K) matrix of
    log densities. Results equal those from :meth:`ComponentFamily.log_density` to round-off."""

    def scaled_likelihood(self, observations, params: dict, summed: bool = True) -> tuple[np.ndarray, object]:
        """``(lik, log_scale)``: ``lik`` (K, N) C-ordered, ``p(x_n | theta_k) / c_n`` for positive
        ``c_n``; ``log_scale`` the float ``sum_n log c_n`` (``summed``) or ``log c_n`` (N,)."""


def capability_names(model) -> list[str]:
    """Names of the protocols ``model`` satisfies, in the order of this module's table
    (:class:`DataFileFormat` is left out: every model has a file format, by default)."""
    protocols = (Model, ConjugateEStep, ConjugateSweep, BatchedSweep, HardAssignments, MeanField, ExactlySolvable,
                 DataDrivenPrior, IdentificationRule, ExampleData, Demo, Pictured, ChunkedStats,
                 ChunkValidation, ChunkedDataPrior, SelectableSize)
    return [protocol.__name__ for protocol in protocols if isinstance(model, protocol)]
