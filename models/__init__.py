"""latentzoo models: each a frozen dataclass of structure and priors, declared once in PyMC."""

from .core.base import LatentModel
from .core.conjugate import Beta, Dirichlet, Gamma, NormalInverseWishart
from .mixture.gaussian import GaussianMixture
from .mixture.bernoulli import BernoulliMixture
from .mixture.poisson import PoissonMixture
from .mixture.finite import FiniteMixture
from .hmm.gaussian import GaussianHMM
from .hmm.poisson import PoissonHMM
from .statespace.local_level import LocalLevel
from .gaussian.gda import GaussianDiscriminantAnalysis
from .hmm.categorical import CategoricalHMM, DiceHMM, HMMData
from .gaussian.niw import NIWGaussian
from .coins.data import CoinData
from .coins.three_coins import ThreeCoins

__all__ = [
    "BernoulliMixture",
    "Beta",
    "CategoricalHMM",
    "CoinData",
    "DiceHMM",
    "Dirichlet",
    "FiniteMixture",
    "Gamma",
    "GaussianDiscriminantAnalysis",
    "GaussianHMM",
    "GaussianMixture",
    "HMMData",
    "LatentModel",
    "MODELS",
    "NIWGaussian",
    "NormalInverseWishart",
    "PoissonHMM",
    "LocalLevel",
    "PoissonMixture",
    "ThreeCoins",
]

#: command-line name -> model class, for ``latentzoo list`` and friends
MODELS = {cls.name: cls for cls in (ThreeCoins, DiceHMM, NIWGaussian, CategoricalHMM, GaussianMixture, GaussianHMM, BernoulliMixture, PoissonHMM, PoissonMixture, LocalLevel)}
