"""The registry of back-ends and the one entry point :func:`fit`."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .core import to_idata

__all__ = ["Backend", "BACKENDS", "register", "applicable_backends", "get_backend", "fit"]


@dataclass(frozen=True)
class Backend:
    """A registered inference back-end.

    Attributes
    ----------
    name : str
    run : callable ``run(model, data, *, rng, **options) -> RawResult``
    requires : tuple of str
        Model hooks the back-end needs (see ``latentzoo.models.base``).
    kind : {"point", "variational", "sampler", "exact"}
    description : str
    library : str
        Who does the work: ``"latentzoo"`` (hand-written NumPy/Numba) or ``"pymc"`` (compiles the
        model's PyMC declaration, so it needs PyMC's logging and compile cache set up).
    """

    name: str
    run: Callable
    requires: tuple[str, ...]
    kind: str
    description: str
    library: str = "latentzoo"

    @property
    def options(self) -> tuple[str, ...]:
        parameters = inspect.signature(self.run).parameters
        return tuple(name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY and name != "rng")

    def applies_to(self, model) -> bool:
        return all(model.supports(hook) for hook in self.requires)


BACKENDS: dict[str, Backend] = {}


def register(name: str, *, requires: tuple[str, ...], kind: str, description: str, library: str = "latentzoo"):
    """Decorator adding a ``run`` function to the registry under ``name``."""

    def decorate(run):
        BACKENDS[name] = Backend(name, run, tuple(requires), kind, description, library)
        return run

    return decorate


def applicable_backends(model) -> list[str]:
    """Names of the back-ends that apply to ``model``, in registry order."""
    return [name for name, backend in BACKENDS.items() if backend.applies_to(model)]


def get_backend(model, backend: str) -> Backend:
    """Look up ``backend`` for ``model``; a ValueError lists the valid names otherwise."""
    valid = applicable_backends(model)
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends for {type(model).__name__}: {valid}")
    if backend not in valid:
        raise ValueError(
            f"backend {backend!r} does not apply to {type(model).__name__}; valid backends: {valid}"
        )
    return BACKENDS[backend]


def _seed_from(random_seed) -> int:
    """An int seed recorded in the result, so that every run can be repeated exactly."""
    if random_seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_seed, bool) or not isinstance(random_seed, int | np.integer):
        raise TypeError(f"random_seed must be a non-negative int or None, got {type(random_seed).__name__}")
    if random_seed < 0:
        raise ValueError(f"random_seed must be a non-negative int, got {random_seed}")
    return int(random_seed)


def fit(model, data, backend: str = "em", random_seed: int | None = None, **options):
    """Fit ``model`` to ``data`` with one back-end.

    Parameters
    ----------
    model : a latentzoo model (``ThreeCoins``, ...)
    data : array-like
        Validated by ``model.check_data``.
    backend : str
        One of :func:`applicable_backends` (``"em"``, ``"vb"``, ``"gibbs"``, ``"exact"``,
        ``"advi"``, ``"fullrank_advi"``, ``"nuts"``, ``"pymc_gibbs"``, ``"map"``).
    random_seed : int, optional
        Seeds every random choice; the same seed gives the same result. None draws a fresh
        seed, which is recorded in ``idata.posterior.attrs["random_seed"]``.
    **options
        Back-end options (``init``, ``n_init``, ``tol``, ``max_iter``, ``mle``, ``draws``,
        ``tune``, ``chains``, ``progressbar``, ...); unknown names raise ValueError.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``log_likelihood``, ``observed_data``, ``sample_stats`` (where
        the back-end has them) and ``fit_history``; attrs ``backend``, ``converged``,
        ``n_iter``, ``runtime_s``, ``point_estimate``, ``random_seed``.
    """
    spec = get_backend(model, backend)
    unknown = set(options) - set(spec.options)
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for backend {backend!r}; valid options: {list(spec.options)}"
        )
    data = model.check_data(data)
    if model.supports("with_data_prior"):
        # empirical-Bayes defaults (NIWGaussian's data-driven prior) are fixed from the data once,
        # here, so every back-end sees one explicit prior and attrs["model_spec"] records it
        model = model.with_data_prior(data)
    seed = _seed_from(random_seed)
    start = time.perf_counter()
    raw = spec.run(model, data, rng=np.random.default_rng(seed), **options)
    runtime = time.perf_counter() - start
    raw.attrs = {**raw.attrs, "backend": backend, "random_seed": seed, "runtime_s": runtime}
    return to_idata(model, data, raw)
