"""Component families: one kind of component with its conjugate prior (Categorical with a
Dirichlet, Gaussian with a Normal-Inverse-Wishart, Poisson with a Gamma), the parts a finite
mixture's components and a hidden Markov model's emissions are made of (the
:class:`~latentzoo.models.core.protocols.ComponentFamily` protocol)."""
