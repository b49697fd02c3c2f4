"""The base class of latentzoo models and shared validation helpers.

What a model must provide for each back-end is declared in :mod:`latentzoo.models.core.protocols`
(one ``typing.Protocol`` per capability, with a complete tiny model as an example).
:class:`LatentModel` supplies the defaults of the optional parts of the core protocol: no
derived quantities, no latent posterior, ``tol`` per observation, PyMC variables named after
the parameters.
"""

from __future__ import annotations

import numbers

import numpy as np

from .protocols import VALUES, DemoPlan

__all__ = ["DegenerateComponentError", "LatentModel", "check_rng", "numeric_array", "check_positive", "check_spd", "as_tuple",
           "freeze_prior", "PYMC_START_FLOOR", "inside_simplex", "unmasked"]


class DegenerateComponentError(ValueError):
    """Maximum-likelihood EM met a collapsing component or state (the likelihood is unbounded
    there). The message names the component and the remedy (a prior, or fewer components)."""


class LatentModel:
    """Base class: default implementations and the shared parts of the protocol.

    Subclasses set ``name`` (the command-line name), ``observation_dim`` (the dim of the
    pointwise log-likelihood), ``label_dim`` (the dim whose labels are exchangeable, or None) and
    ``paired_label_dims`` (dims that carry the same labels as another: an HMM's ``state_next``
    is permuted with ``state``).
    """

    name: str = ""
    observation_dim: str = "observation"
    label_dim: str | None = None
    paired_label_dims: dict[str, str] | None = None
    #: how the command line reads a data file (:class:`~latentzoo.models.core.protocols.DataFileFormat`)
    data_file_format: str = VALUES
    #: the lesson that teaches the model and its API page (:class:`~latentzoo.models.core.protocols.Documented`)
    lesson: str | None = None
    api_page: str | None = None

    # -- parameters ---------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.param_dims())

    def param_dims(self) -> dict[str, tuple[str, ...]]:
        raise NotImplementedError

    def derived_dims(self) -> dict[str, tuple[str, ...]]:
        """Dims of the derived quantities returned by :meth:`derived` (none by default)."""
        return {}

    def derived(self, params: dict) -> dict[str, np.ndarray]:
        """Functions of the parameters worth reporting (for example identified combinations)."""
        return {}

    def latent_dims(self) -> dict[str, tuple[str, ...]]:
        """Dims of the per-observation latent posteriors returned by :meth:`latent_posterior`."""
        return {}

    def latent_posterior(self, data, params: dict) -> dict[str, np.ndarray]:
        """Posterior probabilities of the latent variables given parameters (none by default)."""
        return {}

    def n_observations(self, data) -> int:
        """Number of entries of the pointwise log-likelihood (trials, points, sequences)."""
        raise NotImplementedError

    def objective_scale(self, data) -> int:
        """What EM's and VB's ``tol`` is "per": the number of observations by default; models whose
        pointwise log-likelihood covers many steps (an HMM sequence) return the number of steps,
        so that a tolerance means the same for one long sequence as for many short ones."""
        return self.n_observations(data)

    def objective_round_off(self, data) -> float:
        """How much EM's and VB's objective may drop by round-off alone, beyond the loop's own
        relative allowance (none by default). Models whose parameters cannot be stored precisely
        for these data (Gaussian means at timestamps of 1e12) say how much that costs."""
        return 0.0

    def coords(self, data) -> dict[str, list]:
        return {}

    def demo_plan(self) -> DemoPlan:
        """How ``latentzoo demo`` runs the model (:class:`~latentzoo.models.core.protocols.Demo`):
        every back-end, the demo's default options, cost not measured."""
        return DemoPlan()

    def check_params(self, params: dict, name: str = "params") -> dict[str, np.ndarray]:
        """Exactly the parameter names, each a finite float array (models check shapes and
        support in their own override)."""
        check_param_keys(params, self.param_names, name)
        checked = {}
        for key in self.param_names:
            value = numeric_array(params[key], f"{name}[{key!r}]", "an array of numbers")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name}[{key!r}] must be finite, got {params[key]!r}")
            checked[key] = value
        return checked

    def pymc_initial_point(self, params: dict) -> dict[str, np.ndarray]:
        """The free variables of :meth:`~latentzoo.models.core.protocols.Model.pymc_model` at ``params`` (a start for ``pm.find_MAP`` or
        ADVI). By default the PyMC variables carry the parameter names; models whose PyMC
        declaration splits a parameter into several variables override this."""
        return {name: np.asarray(params[name], float) for name in self.param_names}


#: how far a PyMC start is kept from the boundary of a probability's support: an EM mode can have
#: probabilities exactly 0 (a symbol never emitted) or 1, where the simplex and logit transforms are
#: infinite and find_MAP or ADVI refuse the start
PYMC_START_FLOOR = 1e-8


def inside_simplex(probs) -> np.ndarray:
    """Probability vectors (along the last axis) moved off the simplex's boundary for a PyMC
    start: every entry at least :data:`PYMC_START_FLOOR`, renormalised."""
    inside = np.maximum(np.asarray(probs, float), PYMC_START_FLOOR)
    return inside / inside.sum(-1, keepdims=True)


def check_param_keys(params, names, name: str = "params", optional=()) -> None:
    """A TypeError unless ``params`` is a dict, a ValueError naming what is missing or unexpected
    unless its keys are exactly ``names`` (``optional`` keys may also appear)."""
    names = list(names)
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict with keys {names}, got {type(params).__name__}")
    missing = set(names) - set(params)
    unknown = set(params) - set(names) - set(optional)
    if missing or unknown:
        raise ValueError(f"{name} must have exactly the keys {names}; missing {sorted(missing)}, "
                         f"unexpected {sorted(unknown)}")


def check_rng(rng, name: str = "rng") -> np.random.Generator:
    """Accept a Generator, an int seed or None; anything else is a TypeError naming ``name``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        if rng is not None and rng < 0:
            raise ValueError(f"{name} must be a non-negative integer seed, got {rng}")
        return np.random.default_rng(rng)
    raise TypeError(f"{name} must be an int seed, None or a numpy.random.Generator, got {type(rng).__name__}")


def check_prior_pair(value, name: str) -> tuple[float, float]:
    """Validate a Beta prior given as (alpha, beta)."""
    if isinstance(value, str | bytes):  # "12" would otherwise iterate into (1.0, 2.0)
        raise TypeError(f"{name} must be a pair (alpha, beta) of positive numbers, got {value!r}")
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (alpha, beta) of positive numbers, got {value!r}") from None
    if len(pair) != 2 or not all(np.isfinite(pair)) or min(pair) <= 0:
        raise ValueError(f"{name} must be a pair (alpha, beta) of positive finite numbers, got {value!r}")
    return pair


def check_probability(value, name: str, *, open_interval: bool = True) -> float:
    """Validate a scalar probability (strictly inside (0, 1) by default); a 0-d array (NumPy,
    xarray, a squeezed posterior value) counts as the number it holds."""
    if getattr(value, "ndim", None) == 0 and not isinstance(value, str | bytes):
        try:
            value = np.asarray(value).item()
        except (TypeError, ValueError):
            pass  # judged as given below
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.floating | np.integer):
        raise TypeError(f"{name} must be a number in (0, 1), got {type(value).__name__} {value!r}")
    value = float(value)
    inside = 0.0 < value < 1.0 if open_interval else 0.0 <= value <= 1.0
    if not inside:
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


def unmasked(array, name: str, what: str, remedy: str):
    """A masked array's data (same shape) when nothing is masked; otherwise a ValueError
    ``"{name} is a masked array with {n} masked {what}; {remedy}"`` (a model that cannot
    marginalise missing values must not let NumPy silently use the hidden ones)."""
    masked = int(np.ma.count_masked(array))
    if masked:
        raise ValueError(f"{name} is a masked array with {masked} masked {what}; {remedy}")
    return np.ma.getdata(array)


def numeric_array(value, name: str, expected: str) -> np.ndarray:
    """``value`` as a float array, or a TypeError naming ``name`` and what was ``expected``
    (text is refused: NumPy would read "12" as a number)."""
    if isinstance(value, str | bytes):
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {expected}, got {value!r}") from None


def check_positive(value, name: str) -> float:
    """A positive finite real number, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


def check_spd(array: np.ndarray, name: str) -> np.ndarray:
    """Symmetric positive-definite (..., D, D) matrices (symmetrised), or a ValueError naming the
    first bad one (``name[k]`` for a batch)."""
    scale = max(float(np.max(np.abs(array))), np.finfo(float).tiny) if array.size else 1.0
    asymmetry = np.abs(array - np.swapaxes(array, -1, -2))
    if np.any(asymmetry > 1e-10 * scale):
        bad = np.unravel_index(int(np.argmax(asymmetry.reshape(asymmetry.shape[:-2] + (-1,)).max(-1))), array.shape[:-2])
        where = f"[{', '.join(map(str, bad))}]" if bad else ""
        raise ValueError(f"{name}{where} must be symmetric; largest asymmetry {asymmetry.max():.3g}")
    for index in np.ndindex(array.shape[:-2]):
        try:
            np.linalg.cholesky(array[index])
        except np.linalg.LinAlgError:
            smallest = float(np.linalg.eigvalsh(array[index])[0])
            where = f"[{', '.join(map(str, index))}]" if index else ""
            raise ValueError(f"{name}{where} must be positive definite; its smallest eigenvalue is {smallest:.3g}") from None
    return 0.5 * (array + np.swapaxes(array, -1, -2))


def as_tuple(array: np.ndarray):
    """Nested tuples of floats: array-valued hyperparameters of a frozen dataclass then compare and
    hash by value."""
    return tuple(as_tuple(row) for row in array) if array.ndim > 1 else tuple(float(v) for v in array)


def freeze_prior(value):
    """A hyperparameter as a frozen dataclass field: scalars (0-d arrays too) become floats,
    arrays nested tuples (hashable, readable in repr); pandas objects are read as arrays. Anything
    else is returned as it is, for the model's own check to reject with its message."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return float(value)
    if hasattr(value, "to_numpy"):  # a pandas Series or DataFrame
        value = value.to_numpy()
    if isinstance(value, np.ndarray):
        return tuple(map(freeze_prior, value)) if value.ndim else float(value)
    if isinstance(value, list | tuple):
        return tuple(freeze_prior(item) for item in value)
    return value
