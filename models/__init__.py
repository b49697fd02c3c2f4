"""latentzoo models: each a frozen dataclass of structure and priors, declared once in PyMC."""

from .base import LatentModel
from .conjugate import Beta, Dirichlet
from .hmm import CategoricalHMM, DiceHMM, HMMData
from .three_coins import CoinData, ThreeCoins

__all__ = [
    "Beta",
    "CategoricalHMM",
    "CoinData",
    "DiceHMM",
    "Dirichlet",
    "HMMData",
    "LatentModel",
    "MODELS",
    "ThreeCoins",
]

#: command-line name -> model class, for ``latentzoo list`` and friends
MODELS = {cls.name: cls for cls in (ThreeCoins, DiceHMM, CategoricalHMM)}
