"""Hidden Markov model with Poisson emissions: ``PoissonHMM``.

Generative model (one sequence; many sequences share the parameters)::

    init_probs ~ Dirichlet(init_prior)                    (state,)
    trans_mat[i] ~ Dirichlet(trans_prior[i])              (state, state_next)
    rates[k] ~ Gamma(shape, rate)   (shape, rate) = rates_prior                  (state,)
    z_1 ~ Categorical(init_probs),  z_t | z_t-1 ~ Categorical(trans_mat[z_t-1])
    x_t | z_t ~ Poisson(rates[z_t])                       x_t in {0, 1, 2, ...}

Everything is the one hidden Markov model (:class:`~latentzoo.models.hmm.model.HiddenMarkovModel`)
with the Poisson family (:class:`~latentzoo.models.families.poisson.PoissonFamily`): a (T, K)
matrix of log densities for the kernels, Gamma posteriors for the M-step, Gibbs and VB, and the
Gamma-Poisson evidence for exact enumeration. Missing counts (NaN, None) drop their emission.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..core.base import freeze_prior
from ..core.protocols import VALUES, DemoPlan
from ..families.poisson import DEFAULT_RATES_PRIOR, PoissonFamily, check_gamma_pair
from .model import HiddenMarkovModel

__all__ = ["PoissonHMM", "DEFAULT_RATES_PRIOR"]


@dataclass(frozen=True)
class PoissonHMM(HiddenMarkovModel):
    """Hidden Markov model of counts: Poisson emissions with Gamma priors on the rates.

    Parameters
    ----------
    n_states : int >= 2
        K.
    rates_prior : pair of float, default (1, 0.01)
        ``(shape, rate)`` of the Gamma prior of every ``rates[k]`` (mean shape / rate). The
        default is weakly informative: an exponential of mean 100 counts per step, nearly flat
        over the rates most count series have (its density falls by 10% at 10, by 40% at 50),
        yet proper, so that Gibbs, NUTS and the exact evidence are defined. Its shape 1 keeps
        MAP-EM's mode defined and adds no pseudo-count: the MAP rate is ``S_k / (n_k + 0.01)``,
        the maximum-likelihood ``S_k / n_k`` to within 0.01 of an observation. Give a larger
        rate for counts in the thousands, or an informative pair where the scale is known.
    init_prior : float or array-like of shape (K,), default 1
        Dirichlet concentration of ``init_probs``.
    trans_prior : float, array-like of shape (K,) or (K, K), default 1
        Dirichlet concentration of each row of ``trans_mat`` (a larger diagonal: a sticky prior).

    Notes
    -----
    Parameters ``init_probs`` (state), ``trans_mat`` (state, state_next), ``rates`` (state); the
    states are exchangeable (``label_dim = "state"``) when the chain's priors are scalars.
    ``n_parameters`` counts ``K^2 - 1 + K`` free ones: K - 1 initial, K (K - 1) transition
    probabilities and K rates.

    Examples
    --------
    >>> from latentzoo.models import PoissonHMM
    >>> hmm = PoissonHMM(n_states=2)
    >>> params = {"init_probs": [0.5, 0.5], "trans_mat": [[0.9, 0.1], [0.1, 0.9]], "rates": [3.0, 20.0]}
    >>> counts, states = hmm.simulate(params, 50, rng=0)
    >>> counts.shape
    (50,)
    """

    n_states: int = 2
    rates_prior: tuple[float, float] = DEFAULT_RATES_PRIOR
    init_prior: object = 1.0
    trans_prior: object = 1.0

    name = "poisson-hmm"
    lesson = None  # no lesson teaches it yet
    api_page = "latentzoo.models.PoissonHMM"
    data_file_format = VALUES  # one column of counts, or ragged rows of them (one per sequence)

    def __post_init__(self):
        self._check_sizes(n_states=(self.n_states, 2))
        self._check_chain_size()
        object.__setattr__(self, "rates_prior", check_gamma_pair(self.rates_prior, "rates_prior"))
        for name in ("init_prior", "trans_prior"):
            object.__setattr__(self, name, freeze_prior(getattr(self, name)))
        self._chain_arrays()  # validates the Dirichlet priors now, naming them

    @property
    def label_dim(self) -> str | None:
        return "state" if isinstance(self.init_prior, float) and isinstance(self.trans_prior, float) else None

    @cached_property
    def family(self) -> PoissonFamily:
        return PoissonFamily(*self.rates_prior, owner="PoissonHMM")

    def n_parameters(self, data) -> int:
        """``K^2 - 1 + K``: K - 1 initial and K (K - 1) transition probabilities, K rates."""
        K = self.n_states
        return K - 1 + K * (K - 1) + self.family.n_parameters(None, K)

    def demo_plan(self) -> DemoPlan:
        return DemoPlan(skips={"exact": "the exact posterior would enumerate 2^107 state paths of the 107 years; "
                                        "the long NUTS run is the reference instead"},
                        cost_seconds=15.0)

    def default_data(self):
        """Annual counts of major earthquakes, 1900-2006, as one sequence of 107 counts
        (:func:`latentzoo.models.datasets.earthquakes`)."""
        from ..datasets import earthquakes

        return earthquakes()[1]
