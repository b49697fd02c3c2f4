"""latentzoo inference: interchangeable back-ends behind one ``fit`` and one ``compare``."""

from .chunked import sequences
from .core import ConvergenceWarning, RawResult, to_idata
from .registry import BACKENDS, Backend, applicable_backends, fit, register

# importing the back-end modules registers them (PyMC itself is imported only when used)
from . import em, vb, gibbs, exact, pymc_backends  # noqa: E402,F401  isort: skip
from .compare import Comparison, compare  # noqa: E402
from .calibrate import Calibration, calibrate  # noqa: E402

__all__ = [
    "BACKENDS",
    "Backend",
    "Calibration",
    "Comparison",
    "ConvergenceWarning",
    "RawResult",
    "applicable_backends",
    "calibrate",
    "compare",
    "fit",
    "register",
    "sequences",
    "to_idata",
]
