"""latentzoo inference: interchangeable back-ends behind one ``fit`` and one ``compare``."""

from .chunked import sequences
from .core import ConvergenceWarning, RawResult, to_idata
from .registry import BACKENDS, Backend, applicable_backends, fit, register

# importing the back-end modules registers them (PyMC itself is imported only when used)
from .backends import em, exact, gibbs, pymc_backends, vb  # noqa: E402,F401  isort: skip
from .backends import smc, laplace, pathfinder, svgd  # noqa: E402,F401  isort: skip
from .comparison.compare import Comparison, compare  # noqa: E402
from .calibration.calibrate import Calibration, calibrate  # noqa: E402
from .selection import choose_n_components  # noqa: E402

__all__ = [
    "BACKENDS",
    "Backend",
    "Calibration",
    "Comparison",
    "ConvergenceWarning",
    "RawResult",
    "applicable_backends",
    "calibrate",
    "choose_n_components",
    "compare",
    "fit",
    "register",
    "sequences",
    "to_idata",
]
