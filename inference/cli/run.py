"""How the ``latentzoo`` command runs the library: the process environment, PyMC's log level, and a
comparison with a live status line per back-end.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .output import StatusLines, make_console

__all__ = ["configure_environment", "quiet_pymc", "run_comparison"]


def configure_environment() -> None:
    """Point PyTensor at the persistent compile cache and matplotlib at a screenless back-end.

    Must run before pymc/pytensor are imported: PyTensor reads PYTENSORRC once, at import.
    """
    if "PYTENSORRC" not in os.environ:
        rc = Path.home() / ".cache" / "latentzoo" / "pytensorrc"
        if rc.is_file():
            os.environ["PYTENSORRC"] = str(rc)
    os.environ.setdefault("MPLBACKEND", "Agg")


def quiet_pymc(backends, debug: bool) -> None:
    """Silence PyMC's INFO messages ("Initializing NUTS...") unless --debug.

    PyMC sets its logger to INFO when it is imported, so the level is set after importing it,
    and only when a PyMC back-end will run (importing PyMC costs seconds).
    """
    from latentzoo.inference import BACKENDS

    uses_pymc = any(BACKENDS[name].library == "pymc" for name in backends if name in BACKENDS)
    if debug or not uses_pymc:
        return
    import pymc  # noqa: F401

    logging.getLogger("pymc").setLevel(logging.WARNING)


def run_comparison(model, data, names, reference, options, seed, show_status: bool, cache=True, callback=None,
                   per_observation: str = "auto"):
    """:func:`latentzoo.inference.comparison.compare` with the options of
    :func:`latentzoo.inference.cli.input.comparison_options`; ``show_status`` draws a status line
    per back-end on stderr (else ``callback``, if any, hears the back-ends' events)."""
    from latentzoo.inference import compare
    from latentzoo.inference.comparison.reference import REFERENCE_NUTS

    options = dict(options)
    reference_options = options.pop(REFERENCE_NUTS, None)
    names = [name for name in names if name != REFERENCE_NUTS or name == reference]
    settings = dict(backends=names, reference=reference, random_seed=seed, options=options, progressbar=False,
                    reference_options=reference_options, cache=cache,
                    per_observation=per_observation)
    if not show_status:
        return compare(model, data, callback=callback, **settings)
    with StatusLines(make_console(stderr=True)) as status:
        return compare(model, data, callback=status, **settings)
