"""Component families: one kind of component with its conjugate prior, in one file each.

A component family (:class:`~latentzoo.models.core.protocols.ComponentFamily`) is what a finite
mixture's components (:class:`~latentzoo.models.mixture.finite.FiniteMixture`) and a hidden Markov
model's state emissions (:class:`~latentzoo.models.hmm.model.HiddenMarkovModel`) are made of: its
conjugate prior and update, the (N, K) log-density matrix, expected and sampled statistics,
simulation, data validation and its PyMC expression.

==============================================  ============================  ==========================
family                                          observations                  conjugate prior
==============================================  ============================  ==========================
:class:`~.bernoulli.BernoulliFamily`            (N, D) binary vectors; NaN    a Beta(a, b) per component
                                                marks a missing feature       and feature
:class:`~.categorical.CategoricalFamily`        symbols 0..M-1 (an optional   a Dirichlet row per
                                                mask of allowed symbols)      component
:class:`~.gaussian.GaussianFamily`              (N, D) real rows              Normal-Inverse-Wishart
                                                                              (or known covariances)
:class:`~.poisson.PoissonFamily`                counts 0, 1, 2, ... (NaN      a Gamma(shape, rate) per
                                                marks a missing count)        component
==============================================  ============================  ==========================
"""

from .bernoulli import BernoulliFamily
from .categorical import CategoricalFamily
from .gaussian import GaussianFamily
from .poisson import PoissonFamily

__all__ = ["BernoulliFamily", "CategoricalFamily", "GaussianFamily", "PoissonFamily"]
