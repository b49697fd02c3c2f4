"""latentzoo models: each a frozen dataclass of structure and priors, declared once in PyMC."""

from .base import LatentModel
from .conjugate import Beta, Dirichlet
from .three_coins import CoinData, ThreeCoins

__all__ = ["Beta", "CoinData", "Dirichlet", "LatentModel", "ThreeCoins", "MODELS"]

#: command-line name -> model class, for ``latentzoo list`` and friends
MODELS = {cls.name: cls for cls in (ThreeCoins,)}
