"""The registry of back-ends and the one entry point :func:`fit`."""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..models.core.protocols import DataDrivenPrior, Model
from .chunked import is_chunked_input
from .core import to_idata
from .distributed import ChunkedModel, chunked_model
from .lean import check_per_observation

__all__ = ["Backend", "BACKENDS", "BackendRun", "register", "applicable_backends", "get_backend", "fit", "run_backend"]


@dataclass(frozen=True)
class Backend:
    """A registered inference back-end.

    Attributes
    ----------
    name : str
    run : callable ``run(model, data, *, rng, **options) -> RawResult``
    requires : tuple of Protocol classes
        The capabilities a model needs for this back-end (``latentzoo.models.core.protocols``);
        :class:`~latentzoo.models.core.protocols.Model` is always required.
    kind : {"point", "variational", "sampler", "exact"}
    description : str
    library : str
        Who does the work: ``"latentzoo"`` (hand-written NumPy/Numba) or ``"pymc"`` (compiles the
        model's PyMC declaration, so it needs PyMC's logging and compile cache set up).
    """

    name: str
    run: Callable
    requires: tuple[type, ...]
    kind: str
    description: str
    library: str = "latentzoo"

    @property
    def options(self) -> tuple[str, ...]:
        parameters = inspect.signature(self.run).parameters
        return tuple(name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY and name != "rng")

    def applies_to(self, model) -> bool:
        return all(isinstance(model, protocol) for protocol in (Model, *self.requires))

    def missing_capabilities(self, model) -> list[str]:
        """Names of the protocols ``model`` lacks for this back-end."""
        return [protocol.__name__ for protocol in (Model, *self.requires) if not isinstance(model, protocol)]


BACKENDS: dict[str, Backend] = {}


def register(name: str, *, requires: tuple[type, ...], kind: str, description: str, library: str = "latentzoo"):
    """Decorator adding a ``run`` function to the registry under ``name``.

    ``run(model, data, *, rng, **options)`` receives validated data and returns a
    :class:`~latentzoo.inference.core.RawResult` whose ``record`` it fills; its keyword-only
    arguments are the back-end's options.
    """
    if isinstance(requires, str) or not all(isinstance(p, type) for p in requires):
        raise TypeError(f"requires must be a tuple of protocol classes from latentzoo.models.core.protocols, got {requires!r}")

    def decorate(run):
        BACKENDS[name] = Backend(name, run, tuple(requires), kind, description, library)
        return run

    return decorate


def applicable_backends(model) -> list[str]:
    """Names of the back-ends that apply to ``model``, in registry order."""
    return [name for name, backend in BACKENDS.items() if backend.applies_to(model)]


def get_backend(model, backend: str) -> Backend:
    """Look up ``backend`` for ``model``; a ValueError lists the valid names otherwise."""
    if isinstance(backend, str) and backend in BACKENDS and BACKENDS[backend].applies_to(model):
        # the usual case: one back-end's protocols checked (a runtime Protocol check is slow),
        # not every back-end's, which only the error messages need
        return BACKENDS[backend]
    valid = applicable_backends(model)
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends for {type(model).__name__}: {valid}")
    if backend not in valid:
        missing = BACKENDS[backend].missing_capabilities(model)
        raise ValueError(
            f"backend {backend!r} does not apply to {type(model).__name__} (it lacks {', '.join(missing)}); "
            f"valid backends: {valid}"
        )
    return BACKENDS[backend]


def seed_from(random_seed) -> int:
    """An int seed recorded in the result, so that every run can be repeated exactly."""
    if random_seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_seed, bool) or not isinstance(random_seed, int | np.integer):
        raise TypeError(f"random_seed must be a non-negative int or None, got {type(random_seed).__name__}")
    if random_seed < 0:
        raise ValueError(f"random_seed must be a non-negative int, got {random_seed}")
    if random_seed >= 2**63:
        # the seed is stored in the result's attrs, and NetCDF holds integers as int64
        raise ValueError(f"random_seed must be below 2**63 (it is saved with the result), got {random_seed}")
    return int(random_seed)


def fit(model, data, backend: str = "em", random_seed: int | None = None, per_observation: str = "auto", **options):
    """Fit ``model`` to ``data`` with one back-end.

    Parameters
    ----------
    model : a latentzoo model (``ThreeCoins``, ...)
    data : array-like
        Validated by ``model.check_data``. Chunked data (a ``dask.array.Array`` of rows, many
        sequences marked with :func:`latentzoo.inference.chunked.sequences`, a list of Dask
        arrays, a ``dask.bag``) run ``em``, ``vb`` and ``gibbs`` as a map-reduce over the chunks
        (on the workers of a ``distributed.Client`` when one is active), never gathering the
        data (:mod:`latentzoo.inference.distributed`).
    backend : str
        One of :func:`applicable_backends` (``"em"``, ``"vb"``, ``"gibbs"``, ``"exact"``,
        ``"advi"``, ``"fullrank_advi"``, ``"nuts"``, ``"pymc_gibbs"``, ``"map"``, ``"smc"``,
        ``"laplace"``, ``"pathfinder"``, ``"svgd"``).
    random_seed : int, optional
        Seeds every random choice; the same seed gives the same result. None draws a fresh
        seed, which is recorded in ``idata.posterior.attrs["random_seed"]``.
    per_observation : {"auto", "full", "lazy", "summary"}
        How the per-observation quantities (pointwise log-likelihood, latent posteriors,
        observed data) enter the result: NumPy arrays, Dask-backed variables computed on
        access, or left out with their totals per draw kept (see
        :mod:`latentzoo.inference.lean`). ``"auto"``: full up to 1e7 numbers, lazy above and
        for chunked data.
    **options
        Back-end options (``init``, ``n_init``, ``tol``, ``max_iter``, ``mle``, ``draws``,
        ``tune``, ``chains``, ``progressbar``, ...); unknown names raise ValueError.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``log_likelihood``, ``observed_data``, ``sample_stats`` (where
        the back-end has them), ``fit_history`` and, for ``vb``, ``variational`` (the parameters
        of the final q(theta), such as ``p_alpha``, ``p_beta``); attrs: the fields of
        :class:`~latentzoo.inference.core.FitRecord` (``converged``, ``n_iter``,
        ``objective``, ``run_s``, ``runtime_s``, ``random_seed``, ...; read them back with
        ``FitRecord.from_attrs(result.attrs)``) and the back-end's options.
    """
    check_per_observation(per_observation)
    return run_backend(model, data, backend, random_seed, **options).to_idata(per_observation)


@dataclass
class BackendRun:
    """What :func:`run_backend` returns: the back-end's raw result before it becomes a DataTree.

    Attributes
    ----------
    model : the model the back-end ran (with its data-driven prior fixed, where it has one)
    data : the validated data
    raw : :class:`~latentzoo.inference.core.RawResult` with its record completed (back-end,
        seed, times, warnings)
    """

    model: object
    data: object
    raw: object

    def to_idata(self, per_observation: str = "auto"):
        """The DataTree :func:`fit` returns for the same arguments."""
        check_per_observation(per_observation)
        model = self.model.model if isinstance(self.model, ChunkedModel) else self.model
        return to_idata(model, self.data, self.raw, per_observation)


def run_backend(model, data, backend: str = "em", random_seed: int | None = None, **options) -> BackendRun:
    """Run one back-end as :func:`fit` does, without building the DataTree.

    ``fit(...)`` is ``run_backend(...).to_idata(per_observation)``: the same validation, seed and
    draws. Building the DataTree (per-observation latents and log-likelihoods for every draw) can
    cost more than a hand-written back-end's run on small data, so an interactive caller that
    draws the raw result first (``latentzoo explore``) builds it only when a table asks for it.

    Parameters
    ----------
    model, data, backend, random_seed, **options
        As for :func:`fit`.

    Returns
    -------
    BackendRun
    """
    spec = get_backend(model, backend)
    unknown = set(options) - set(spec.options)
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for backend {backend!r}; valid options: {list(spec.options)}"
        )
    if is_chunked_input(data):
        model = chunked_model(model, backend)
    # validated once, here: back-ends, the results builder and the comparison trust this object
    data = model.check_data(data)
    if isinstance(model, DataDrivenPrior):
        # empirical-Bayes defaults (NIWGaussian's data-driven prior) are fixed from the data once,
        # here, so every back-end sees one explicit prior and attrs["model_spec"] records it
        model = model.with_data_prior(data)
    seed = seed_from(random_seed)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = spec.run(model, data, rng=np.random.default_rng(seed), **options)
    runtime = time.perf_counter() - start
    for warning in caught:  # shown as usual, after being recorded
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno, source=warning.source)
    raw.record = _completed_record(raw.record, backend, seed, runtime, spec.library, caught)
    return BackendRun(model, data, raw)


def _completed_record(record, backend: str, seed: int, runtime: float, library: str, caught):
    """The back-end's record with what only ``fit`` knows: the name, seed, wall time, the part
    of it that was not the run itself (PyMC's compilation) and the warnings that users see."""
    run_s = record.run_s if math.isfinite(record.run_s) else runtime
    # hand-written back-ends compile nothing (their kernels are cached Numba functions)
    compile_s = max(runtime - run_s, 0.0) if library == "pymc" else math.nan
    shown = tuple(
        f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, UserWarning | RuntimeWarning)
    )
    return dataclasses.replace(
        record, backend=backend, random_seed=seed, runtime_s=runtime, run_s=run_s, compile_s=compile_s,
        warnings=tuple(dict.fromkeys(shown)),
    )
