"""latentzoo models: each a frozen dataclass of structure and priors, declared once in PyMC."""

from .base import LatentModel
from .conjugate import Beta, Dirichlet, NormalInverseWishart
from .gaussian_mixture import GaussianMixture
from .gaussian_hmm import GaussianHMM
from .gda import GaussianDiscriminantAnalysis
from .hmm import CategoricalHMM, DiceHMM, HMMData
from .niw_gaussian import NIWGaussian
from .coin_data import CoinData
from .three_coins import ThreeCoins

__all__ = [
    "Beta",
    "CategoricalHMM",
    "CoinData",
    "DiceHMM",
    "Dirichlet",
    "GaussianDiscriminantAnalysis",
    "GaussianHMM",
    "GaussianMixture",
    "HMMData",
    "LatentModel",
    "MODELS",
    "NIWGaussian",
    "NormalInverseWishart",
    "ThreeCoins",
]

#: command-line name -> model class, for ``latentzoo list`` and friends
MODELS = {cls.name: cls for cls in (ThreeCoins, DiceHMM, NIWGaussian, CategoricalHMM, GaussianMixture, GaussianHMM)}
