"""The yardstick of a comparison where no exact posterior exists: a long NUTS run, cached on disk.

A comparison measures every back-end against a reference posterior. Where the model has one,
that is ``exact`` (independent draws from the exact posterior). Otherwise it is a long run of
NUTS (by default 4 chains of 2000 draws after 1000 tuning steps), which costs minutes on a
mixture model, so it is kept on disk and reused when the same model, data and settings come again.

Cache location: ``$LATENTZOO_CACHE/reference/`` if ``LATENTZOO_CACHE`` is set, otherwise the
platform's user cache directory (``platformdirs``; ``~/.cache/latentzoo/reference/`` on Linux).
Each run is one NetCDF file, ``<key>.nc``, named by a hash (``joblib.hash``) of the model (a
frozen dataclass of structure and priors), the observations, the NUTS settings, the seed, the
PyMC version and the cache format. Delete the directory to start afresh; pass ``cache=False`` to
bypass it.

What is read is checked before it is used: the key, the model's spec, every parameter's dims and
shape, and the observations stored with the run. A file that fails a check (foreign, from another
model, truncated, corrupt) is discarded with a :class:`ReferenceCacheWarning` and the run is made
again. A run is written to a temporary ``.part`` file in the same directory and moved into place
with ``os.replace``, so a reader never sees half a file and a failed or interrupted write leaves
nothing behind. A lock file (``<key>.lock``, created with ``O_EXCL``) stops two processes from
making the same run at once: the second waits, then reads the first one's result. A lock left by
a process that died is recognised (its process id no longer exists) and taken over; a waiter
says on stderr whom it waits for, and after ``LOCK_TIMEOUT_S`` (an hour) of a live but hung
holder runs the reference itself without the cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ..options import check_choice, check_float, check_int

__all__ = ["REFERENCE_NUTS", "DEFAULT_REFERENCE_OPTIONS", "ReferenceCacheWarning", "cache_directory",
           "check_cache", "check_reference_options", "reference_nuts"]

#: the name under which the long NUTS run appears in a comparison (table rows, ``idatas``, files)
REFERENCE_NUTS = "nuts_reference"

#: settings of the long NUTS run
DEFAULT_REFERENCE_OPTIONS = {"draws": 2000, "tune": 1000, "chains": 4, "target_accept": 0.9}

# part of every cache key and written into every cached file: bump when what a cached run holds
# changes meaning (2: the fit record; 3: NetCDF files checked on reading instead of joblib pickles)
_FORMAT = "latentzoo-reference-3"

# root attrs of a cached file that say what it holds; removed again when it is read
_KEY_ATTRS = ("latentzoo_cache_format", "latentzoo_cache_key", "latentzoo_cache_model")

#: how often a process waiting for another one's run looks at the lock again, in seconds
LOCK_POLL_S = 0.2
# a lock file without readable contents is being written, or was left half-written by a crash;
# after this many seconds it is taken to be the latter
_UNREADABLE_LOCK_S = 30.0
#: after waiting this long for another live process's run (a long NUTS run takes minutes; a
#: hung process holds its lock for ever), the waiter runs the reference itself, without the cache
LOCK_TIMEOUT_S = 3600.0
#: a waiter says once on stderr whom it waits for, after this many seconds
LOCK_NOTICE_S = 5.0


class ReferenceCacheWarning(UserWarning):
    """A cached reference run was unusable (and is run again), or a run could not be cached."""


def cache_directory() -> Path:
    """Where cached reference runs live (see the module docstring)."""
    import platformdirs

    root = os.environ.get("LATENTZOO_CACHE")
    base = Path(root).expanduser() if root else platformdirs.user_cache_path("latentzoo")
    return base / "reference"


# -- arguments -----------------------------------------------------------------------------------
_OPTION_CHECKS = {
    "draws": check_int,
    "tune": lambda value, name: check_int(value, name, minimum=0),
    "chains": check_int,
    "target_accept": check_float,
    "sampler": lambda value, name: check_choice(value, name, ("pymc", "nutpie")),
    "cores": lambda value, name: None if value is None else check_int(value, name),
}


def check_reference_options(options) -> dict:
    """The long run's settings: ``options`` over :data:`DEFAULT_REFERENCE_OPTIONS`, every value
    checked as the NUTS back-end checks it.

    Parameters
    ----------
    options : dict or None
        Any of ``draws``, ``tune``, ``chains``, ``target_accept``, ``sampler``, ``cores``.

    Returns
    -------
    dict

    Raises
    ------
    TypeError, ValueError
        Naming ``reference_options`` and the setting.
    """
    if options is None:
        return dict(DEFAULT_REFERENCE_OPTIONS)
    if not isinstance(options, dict):
        raise TypeError(f"reference_options must be a dict of NUTS options, got {type(options).__name__}")
    unknown = set(options) - set(_OPTION_CHECKS)
    if unknown:
        raise ValueError(f"unknown reference_options {sorted(map(str, unknown))}; valid: {', '.join(_OPTION_CHECKS)}")
    for key, value in options.items():
        _OPTION_CHECKS[key](value, f"reference_options[{key!r}]")
    target_accept = options.get("target_accept", DEFAULT_REFERENCE_OPTIONS["target_accept"])
    if not target_accept < 1:
        raise ValueError(f"reference_options['target_accept'] must lie in (0, 1), got {target_accept}")
    return {**DEFAULT_REFERENCE_OPTIONS, **options}


def check_cache(cache) -> Path | bool:
    """The cache directory ``cache`` names: True the default one, a path that one, False none.

    Returns
    -------
    pathlib.Path or False

    Raises
    ------
    TypeError
        ``cache`` is not a bool or a path.
    ValueError
        ``cache`` is an empty path, or names something that exists and is not a directory.
    """
    if isinstance(cache, bool):
        return cache_directory() if cache else False
    if not isinstance(cache, str | os.PathLike):
        raise TypeError(f"cache must be True, False or a directory path, got {type(cache).__name__}")
    if not os.fspath(cache):
        raise ValueError("cache must be True, False or a directory path, got an empty path")
    directory = Path(cache).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"cache {str(directory)!r} exists and is not a directory")
    return directory


# -- the cache's files -----------------------------------------------------------------------------
def _cache_key(model, data, nuts_options: dict, random_seed: int) -> str:
    """The hash of everything that decides the draws. The observations (``model.observed_data``)
    stand for the data object, and the model's settings (its dataclass fields) for the model:
    the pickles of both change when a cached property is first computed. ``cores`` and
    ``progressbar`` do not change the draws and are left out."""
    import dataclasses
    from importlib.metadata import version

    import joblib

    observed = {name: np.asarray(array) for name, (array, _) in model.observed_data(data).items()}
    settings = dataclasses.astuple(model) if dataclasses.is_dataclass(model) else model
    return joblib.hash((_FORMAT, type(model).__qualname__, settings, observed, nuts_options, random_seed,
                        version("pymc")))


def _problem(idata, key: str, model, data, options: dict) -> str | None:
    """Why a file read from the cache is not the run asked for (None if it is)."""
    from ..core import FitRecord

    attrs = idata.attrs
    if attrs.get("latentzoo_cache_format") != _FORMAT:
        return f"it is not a latentzoo reference run of format {_FORMAT!r}"
    if attrs.get("latentzoo_cache_key") != key:
        return "it holds another run (its key differs from its file name)"
    if attrs.get("latentzoo_cache_model") != repr(model):
        return f"it was made for another model ({attrs.get('latentzoo_cache_model')})"
    if "posterior" not in idata.children:
        return "it has no posterior group"
    posterior = idata.posterior
    sizes = {dim: len(values) for dim, values in model.coords(data).items()}
    for name, dims in model.param_dims().items():
        if name not in posterior.data_vars:
            return f"the posterior lacks the variable {name!r}"
        expected = (options["chains"], options["draws"]) + tuple(sizes.get(dim, -1) for dim in dims)
        variable = posterior[name]
        if variable.dims != ("chain", "draw", *dims) or variable.shape != expected:
            return f"{name!r} has dims {variable.dims} and shape {variable.shape}, not {('chain', 'draw', *dims)} {expected}"
        if not np.issubdtype(variable.dtype, np.number):
            return f"{name!r} is not numeric"
    if "observed_data" not in idata.children:
        return "it has no observed_data group"
    for name, (array, _) in model.observed_data(data).items():
        stored = idata.observed_data.get(name)
        if stored is None or not np.array_equal(np.asarray(stored.values), np.asarray(array)):
            return f"its observed {name!r} are not these data"
    try:
        FitRecord.from_attrs(posterior.attrs)
    except (TypeError, ValueError) as error:
        return f"its fit record is unreadable ({error})"
    return None


def _read(path: Path, key: str, model, data, options: dict, discard: bool = True):
    """The cached run at ``path`` if it is the one asked for; else None. With ``discard`` (only
    while holding the lock, so that no other process's fresh file is removed) a bad file is
    removed with a warning."""
    import xarray as xr

    if not path.is_file():
        return None
    try:
        idata = xr.load_datatree(path)
        problem = _problem(idata, key, model, data, options)
    except Exception as error:  # truncated, corrupt or foreign files raise all sorts of errors
        idata, problem = None, f"it could not be read ({type(error).__name__}: {error})"
    if problem is None:
        for name in _KEY_ATTRS:
            idata.attrs.pop(name, None)
        return idata
    if not discard:
        return None
    warnings.warn(f"discarded the cached reference run {path}: {problem}; running it again",
                  ReferenceCacheWarning, stacklevel=3)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return None


def _write(path: Path, idata, key: str, model) -> bool:
    """Write ``idata`` to ``path`` through a temporary file in the same directory (never half a
    file at ``path``, no temporary file left behind); False, with a warning, if it failed."""
    tagged = idata.copy()
    tagged.attrs.update({"latentzoo_cache_format": _FORMAT, "latentzoo_cache_key": key,
                         "latentzoo_cache_model": repr(model)})
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part")
        os.close(descriptor)
        tagged.to_netcdf(temporary)
        os.replace(temporary, path)
        temporary = None
        return True
    except Exception as error:  # the run itself is fine; it is only not kept
        warnings.warn(f"could not cache the reference run in {path.parent} ({type(error).__name__}: {error}); "
                      "it will be run again next time", ReferenceCacheWarning, stacklevel=3)
        return False
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _holder_is_gone(lock: Path) -> bool:
    """Whether the process named in ``lock`` has died (a lock on another host is never stale)."""
    try:
        holder = json.loads(lock.read_text())
        pid, host = int(holder["pid"]), str(holder["host"])
    except FileNotFoundError:
        return False  # released meanwhile: the next attempt takes it
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return time.time() - lock.stat().st_mtime > _UNREADABLE_LOCK_S
        except FileNotFoundError:
            return False
    if host != socket.gethostname() or os.name == "nt":
        # another machine's processes cannot be asked; on Windows os.kill(pid, 0) would end the process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def _holder(lock: Path) -> str:
    try:
        holder = json.loads(lock.read_text())
        return f"process {int(holder['pid'])} on {holder['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def _exclusive(lock: Path):
    """Hold ``lock`` (created with O_EXCL) for the duration; wait while another live process does.

    Raises
    ------
    TimeoutError
        The lock stayed held by a live process for :data:`LOCK_TIMEOUT_S` seconds.
    """
    start = time.monotonic()
    told = False
    while True:
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _holder_is_gone(lock):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            waited = time.monotonic() - start
            if waited > LOCK_TIMEOUT_S:
                raise TimeoutError(f"{_holder(lock)} has held {lock} for over {LOCK_TIMEOUT_S:.0f} s") from None
            if not told and waited > LOCK_NOTICE_S:
                # a silent wait of minutes looks like a hang
                print(f"latentzoo: waiting for {_holder(lock)}, which is making the same reference NUTS run "
                      f"(lock {lock}; delete it if that process hangs)", file=sys.stderr, flush=True)
                told = True
            time.sleep(LOCK_POLL_S)
            continue
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}, handle)
        break
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


# -- the run ---------------------------------------------------------------------------------------
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
        cached), ``settings``, and ``description`` (one line for the report).

    Warns
    -----
    ReferenceCacheWarning
        A cached file was unusable and the run was made again, or the run could not be cached.
    """
    from ..registry import fit

    options = check_reference_options(options)
    directory = check_cache(cache) or None
    data = model.check_data(data)
    settings = {**options, "random_seed": random_seed}
    nuts_options = {key: value for key, value in options.items() if key != "cores"}
    shape = f"{options['chains']} chains × {options['draws']} draws after {options['tune']} tuning steps"

    def run():
        return fit(model, data, backend="nuts", random_seed=random_seed, progressbar=progressbar,
                   cores=options.get("cores"), **nuts_options)

    def answer(idata, source, path):
        where = {"cache": f", loaded from the cache in {path}", "run": f", cached in {path}"}[source] if path else \
            " (not cached)"
        return idata, {"source": source, "path": str(path) if path else None, "settings": settings,
                       "description": f"long NUTS run ({shape}){where}"}

    if directory is None:
        return answer(run(), "run", None)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        warnings.warn(f"cannot use the reference cache {directory} ({type(error).__name__}: {error}); "
                      "running without it", ReferenceCacheWarning, stacklevel=2)
        return answer(run(), "run", None)
    key = _cache_key(model, data, nuts_options, random_seed)
    path = directory / f"{key}.nc"
    cached = _read(path, key, model, data, options, discard=False)
    if cached is not None:
        return answer(cached, "cache", directory)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(_exclusive(directory / f"{key}.lock"))
        except TimeoutError as error:  # a hung holder: run here, and leave its file to it
            warnings.warn(f"gave up waiting for the reference cache's lock ({error}); running the reference "
                          "here without caching it", ReferenceCacheWarning, stacklevel=2)
            return answer(run(), "run", None)
        except OSError as error:  # a read-only cache: run without the lock, and do not write
            warnings.warn(f"cannot lock the reference cache {directory} ({type(error).__name__}: {error}); "
                          "running without it", ReferenceCacheWarning, stacklevel=2)
            return answer(run(), "run", None)
        # another process may have made the run while this one waited for the lock
        cached = _read(path, key, model, data, options)
        if cached is not None:
            return answer(cached, "cache", directory)
        idata = run()
        return answer(idata, "run", directory if _write(path, idata, key, model) else None)
