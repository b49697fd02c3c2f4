"""The yardstick of a comparison where no exact posterior exists: a long NUTS run, cached on disk.

A comparison measures every back-end against a reference posterior. Where the model has one,
that is ``exact`` (independent draws from the exact posterior). Otherwise it is a long run of
NUTS (by default 4 chains of 2000 draws after 1000 tuning steps), which costs minutes on a
mixture model, so it is saved as NetCDF and reused when the same model, data and settings come
again.

Cache location: ``$LATENTZOO_CACHE/reference/`` if ``LATENTZOO_CACHE`` is set, otherwise
``~/.cache/latentzoo/reference/``. The file name is a hash of the model's ``repr`` (its frozen
dataclass fields: structure and priors), the data's bytes, the NUTS settings, the seed and the
PyMC version. Delete the directory to start afresh; pass ``cache=False`` to bypass it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["REFERENCE_NUTS", "DEFAULT_REFERENCE_OPTIONS", "cache_directory", "cache_key", "reference_nuts"]

#: the name under which the long NUTS run appears in a comparison (table rows, ``idatas``, files)
REFERENCE_NUTS = "nuts_reference"

#: settings of the long NUTS run
DEFAULT_REFERENCE_OPTIONS = {"draws": 2000, "tune": 1000, "chains": 4, "target_accept": 0.9}

# bump when the content of a cached file changes meaning, so that old files are not reused
_FORMAT = "latentzoo-reference-1"


def cache_directory() -> Path:
    """Where cached reference runs live (see the module docstring)."""
    root = os.environ.get("LATENTZOO_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "latentzoo"
    return base / "reference"


def _feed(digest, value) -> None:
    """Hash ``value`` by content: arrays by dtype, shape and bytes, dataclasses field by field."""
    if isinstance(value, np.ndarray):
        digest.update(f"ndarray{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(type(value).__name__.encode())
        for field in dataclasses.fields(value):
            digest.update(field.name.encode())
            _feed(digest, getattr(value, field.name))
    elif isinstance(value, list | tuple):
        digest.update(f"seq{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(repr(value).encode())


def cache_key(model, data, settings: dict) -> str:
    """A hex digest identifying (model, data, settings).

    Parameters
    ----------
    model : latentzoo model (frozen dataclass; its ``repr`` lists structure and priors)
    data : validated data (``model.check_data(data)``)
    settings : dict of JSON-serialisable values (NUTS options, seed)

    Returns
    -------
    str of 24 hex digits
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        pymc_version = version("pymc")
    except PackageNotFoundError:  # pragma: no cover - pymc is a dependency
        pymc_version = "?"
    digest = hashlib.sha256()
    digest.update(_FORMAT.encode())
    digest.update(repr(model).encode())
    _feed(digest, data)
    digest.update(json.dumps(settings, sort_keys=True, default=repr).encode())
    digest.update(pymc_version.encode())
    return digest.hexdigest()[:24]


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
        ``source`` ("cache" or "run"), ``path`` (the cache file or None), ``settings``, and
        ``description`` (one line for the report).
    """
    import arviz as az

    from .registry import fit

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
    # how many processes ran the chains does not change the draws, so it is not part of the key
    keyed = {key: value for key, value in settings.items() if key != "cores"}
    path = directory / f"{cache_key(model, data, keyed)}.nc" if directory is not None else None
    shape = f"{options['chains']} chains × {options['draws']} draws after {options['tune']} tuning steps"
    if path is not None and path.is_file():
        try:
            idata = az.from_netcdf(path)
            idata.load()  # read everything now, so that the file is not held open
            idata.close()
            return idata, {"source": "cache", "path": str(path), "settings": settings,
                           "description": f"long NUTS run ({shape}), loaded from the cache {path}"}
        except (OSError, ValueError, KeyError) as error:
            # a truncated or foreign file: run again and overwrite it
            warnings.warn(f"ignoring unreadable cached reference {path} ({error}); running NUTS again", stacklevel=2)
    idata = fit(model, data, backend="nuts", random_seed=random_seed, progressbar=progressbar, **options)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.part")
            idata.to_netcdf(partial)
            partial.replace(path)  # atomic: a concurrent reader never sees half a file
        except OSError as error:
            warnings.warn(f"could not cache the reference run in {path.parent} ({error})", stacklevel=2)
            path = None
    where = f", cached at {path}" if path is not None else " (not cached)"
    return idata, {"source": "run", "path": str(path) if path else None, "settings": settings,
                   "description": f"long NUTS run ({shape}){where}"}
