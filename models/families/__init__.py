"""Component families: one kind of component with its conjugate prior, in one file each.

A component family (:class:`~latentzoo.models.core.protocols.ComponentFamily`) is what a finite
mixture's components (:class:`~latentzoo.models.mixture.finite.FiniteMixture`) and an HMM's state
emissions are made of: its conjugate prior and update, the (N, K) log-density matrix, expected and
sampled statistics, simulation, data validation and its PyMC expression.

=====================================  ==========================  =================================
family                                 observations                conjugate prior
=====================================  ==========================  =================================
:class:`~.bernoulli.BernoulliFamily`   (N, D) binary vectors;      a Beta(a, b) per component and
                                       NaN marks a missing feature feature
=====================================  ==========================  =================================
"""

from .bernoulli import BernoulliFamily

__all__ = ["BernoulliFamily"]
