"""Mixture of Poisson distributions over counts.

Generative model (K components)::

    weights ~ Dirichlet(weights_prior * 1_K)                           (component,)
    rates[k] ~ Gamma(shape, rate)       (shape, rate) = rates_prior      (component,)
    z_n ~ Categorical(weights),   x_n | z_n ~ Poisson(rates[z_n])        x_n in {0, 1, 2, ...}

Everything but the constructor and the example data comes from
:class:`~latentzoo.models.mixture.finite.FiniteMixture` and the component family the Poisson HMM
uses too, :class:`~latentzoo.models.families.poisson.PoissonFamily` (NaN marks a missing count).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.protocols import VALUES, DemoPlan
from ..families.poisson import DEFAULT_RATES_PRIOR, PoissonFamily, check_gamma_pair
from .finite import FiniteMixture

__all__ = ["PoissonMixture"]


@dataclass(frozen=True)
class PoissonMixture(FiniteMixture):
    """Mixture of K Poisson distributions, with Gamma priors on the rates.

    Parameters
    ----------
    n_components : int, default 2
        K >= 1.
    rates_prior : pair of float, default (1, 0.01)
        ``(shape, rate)`` of the Gamma prior of every ``rates[k]``: the Poisson HMM's weakly
        informative default (an exponential of mean 100 counts; see
        :class:`~latentzoo.models.hmm.poisson.PoissonHMM`).
    weights_prior : float or array-like of shape (K,), default 1.0 (keyword only)
        Dirichlet concentration of the weights.

    Notes
    -----
    Parameters: ``weights`` (component,), ``rates`` (component,); data: counts of shape (N,) (or
    (N, 1)), NaN or None for a missing one.

    Examples
    --------
    >>> from latentzoo.models import PoissonMixture
    >>> model = PoissonMixture()
    >>> counts, labels = model.simulate({"weights": [0.3, 0.7], "rates": [2.0, 15.0]}, 100, rng=0)
    >>> counts.shape
    (100,)
    """

    n_components: int = 2
    rates_prior: tuple[float, float] = DEFAULT_RATES_PRIOR

    name = "poisson-mixture"
    lesson = None  # no lesson teaches it yet
    api_page = "latentzoo.models.PoissonMixture"
    data_file_format = VALUES  # one column of counts

    def __post_init__(self):
        object.__setattr__(self, "rates_prior", check_gamma_pair(self.rates_prior, "rates_prior"))
        super().__post_init__()

    def make_family(self) -> PoissonFamily:
        return PoissonFamily(*self.rates_prior, observed_name="x", owner="PoissonMixture")

    def demo_plan(self) -> DemoPlan:
        return DemoPlan(skips={"exact": "the exact posterior would enumerate 2^107 assignments of the 107 years "
                                        "(their counts hardly ever group); the long NUTS run is the reference instead"},
                        cost_seconds=10.0)

    def default_data(self) -> np.ndarray:
        """The annual counts of major earthquakes, 1900-2006 (:func:`latentzoo.models.datasets.earthquakes`),
        read as 107 independent counts: the mixture ignores the years' order, which the Poisson
        HMM models."""
        from ..datasets import earthquakes

        return earthquakes()[1]
