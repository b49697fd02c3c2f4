"""The yardstick of a comparison where no exact posterior exists: a long NUTS run, cached on disk.

A comparison measures every back-end against a reference posterior. Where the model has one,
that is ``exact`` (independent draws from the exact posterior). Otherwise it is a long run of
NUTS (by default 4 chains of 2000 draws after 1000 tuning steps), which costs minutes on a
mixture model, so it is memoised on disk with ``joblib.Memory`` and reused when the same model,
data and settings come again.

Cache location: ``$LATENTZOO_CACHE/reference/`` if ``LATENTZOO_CACHE`` is set, otherwise the
platform's user cache directory (``platformdirs``; ``~/.cache/latentzoo/reference/`` on Linux).
joblib keys each run by the hash of its arguments: the model (a frozen dataclass of structure
and priors), the validated data, the NUTS settings, the seed and the PyMC version. Delete the
directory to start afresh; pass ``cache=False`` to bypass it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REFERENCE_NUTS", "DEFAULT_REFERENCE_OPTIONS", "cache_directory", "reference_nuts"]

#: the name under which the long NUTS run appears in a comparison (table rows, ``idatas``, files)
REFERENCE_NUTS = "nuts_reference"

#: settings of the long NUTS run
DEFAULT_REFERENCE_OPTIONS = {"draws": 2000, "tune": 1000, "chains": 4, "target_accept": 0.9}

# part of every cache key: bump when what a cached run holds changes meaning (2: the fit record)
_FORMAT = "latentzoo-reference-2"


def cache_directory() -> Path:
    """Where cached reference runs live (see the module docstring)."""
    import platformdirs

    root = os.environ.get("LATENTZOO_CACHE")
    base = Path(root).expanduser() if root else platformdirs.user_cache_path("latentzoo")
    return base / "reference"


def _long_nuts(model, observed: dict, settings: dict, random_seed: int, pymc_version: str, cache_format: str,
               *, data, cores, progressbar: bool):
    """The run joblib memoises. The key holds the observations (``model.observed_data``) rather
    than the data object, whose cached properties would change its pickle; ``pymc_version`` and
    ``cache_format`` are arguments only to be part of the key; ``data``, ``cores`` and
    ``progressbar`` are left out of it (``cores`` and ``progressbar`` do not change the draws)."""
    from .registry import fit

    return fit(model, data, backend="nuts", random_seed=random_seed, progressbar=progressbar, cores=cores,
               **settings)


def _check_options(options) -> dict:
    if options is None:
        return dict(DEFAULT_REFERENCE_OPTIONS)
    if not isinstance(options, dict):
        raise TypeError(f"reference_options must be a dict of NUTS options, got {type(options).__name__}")
    unknown = set(options) - {"draws", "tune", "chains", "target_accept", "sampler", "cores"}
    if unknown:
        raise ValueError(
            f"unknown reference_options {sorted(unknown)}; valid: draws, tune, chains, target_accept, sampler, cores"
        )
    return {**DEFAULT_REFERENCE_OPTIONS, **options}


def reference_nuts(model, data, *, random_seed: int = 0, options: dict | None = None, cache=True,
                   progressbar: bool = False):
    """A long NUTS run on ``model`` and ``data``, loaded from the cache when it was run before.

    Parameters
    ----------
    model : latentzoo model with a PyMC declaration
    data : array-like (validated by ``model.check_data``)
    random_seed : int, default 0
    options : dict, optional
        NUTS options overriding :data:`DEFAULT_REFERENCE_OPTIONS` (``draws``, ``tune``,
        ``chains``, ``target_accept``, ``sampler``, ``cores``).
    cache : bool or path, default True
        True: the default cache directory (:func:`cache_directory`); a path: that directory;
        False: always run, never write.
    progressbar : bool, default False

    Returns
    -------
    idata : xarray.DataTree
        As returned by ``fit(model, data, backend="nuts", ...)``.
    info : dict
        ``source`` ("cache" or "run"), ``path`` (the cache directory, or None when nothing was
        cached), ``settings``, and
        ``description`` (one line for the report).
    """
    from importlib.metadata import version

    import joblib

    options = _check_options(options)
    if isinstance(cache, bool):
        directory = cache_directory() if cache else None
    else:
        try:
            directory = Path(cache).expanduser()
        except TypeError:
            raise TypeError(f"cache must be True, False or a directory path, got {type(cache).__name__}") from None
    data = model.check_data(data)
    settings = {**options, "random_seed": random_seed}
    nuts_options = {key: value for key, value in options.items() if key != "cores"}
    run = joblib.Memory(directory, verbose=0).cache(_long_nuts, ignore=["data", "cores", "progressbar"])
    observed = {name: array for name, (array, _) in model.observed_data(data).items()}
    arguments = (model, observed, nuts_options, random_seed, version("pymc"), _FORMAT)
    unkeyed = {"data": data, "cores": options.get("cores"), "progressbar": progressbar}
    shape = f"{options['chains']} chains × {options['draws']} draws after {options['tune']} tuning steps"
    if directory is not None and run.check_call_in_cache(*arguments, **unkeyed):
        idata = run(*arguments, **unkeyed)
        return idata, {"source": "cache", "path": str(directory), "settings": settings,
                       "description": f"long NUTS run ({shape}), loaded from the cache in {directory}"}
    idata = run(*arguments, **unkeyed)
    path = directory if directory is not None and run.check_call_in_cache(*arguments, **unkeyed) else None
    where = f", cached in {path}" if path is not None else " (not cached)"
    return idata, {"source": "run", "path": str(path) if path else None, "settings": settings,
                   "description": f"long NUTS run ({shape}){where}"}
