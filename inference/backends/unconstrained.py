"""The marginalised PyMC model's log-density over one flat vector of unconstrained values.

``laplace`` and ``pathfinder`` work in the space where every parameter is a free real vector:
PyMC's value variables (log-odds, log-Cholesky, stick-breaking coordinates, ...) joined into one
vector ``x`` of shape (d,). :class:`FlatPosterior` compiles, from the model's own PyTensor graph,

* ``log p(x)`` and its gradient: the log-density of the *unconstrained* variable, Jacobian terms
  included (the density a Gaussian in that space approximates);
* its Hessian (``laplace`` only), by central differences of the symbolic gradient (2 d gradient
  calls and no further compilation; PyTensor's symbolic Hessian took minutes to compile);
* the map back from ``x`` to the model's parameters (the inverse transforms and the
  deterministics, e.g. covariances from Cholesky factors).

Compiling these functions takes seconds per model (graph rewriting, even when PyTensor's C cache
is warm), which made every ``laplace``, ``pathfinder`` and ``svgd`` fit mostly compilation.
:func:`flat_posterior` therefore keeps one :class:`FlatPosterior` per model structure and data
shape: the observed values are PyMC data containers (shared variables,
:mod:`latentzoo.models.ops.pymc_data`), so a new data set of the same shape only sets their
values. A back-end may keep its own compiled pieces in :attr:`FlatPosterior.memo` (``svgd`` keeps
its particle step there), which live and die with the cached object.

PyMC is imported lazily, as in :mod:`.pymc_backends`.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict

import numpy as np

__all__ = ["FlatPosterior", "flat_posterior", "clear_compiled_cache", "COMPILATIONS", "CACHE_SIZE"]

#: how many times each compiled piece was built in this process, by name ("flat_posterior",
#: "svgd_step", ...): a cached fit adds nothing (the tests read it)
COMPILATIONS: Counter = Counter()
#: model structures kept per thread (least recently used dropped first)
CACHE_SIZE = 4
# per thread: a cached FlatPosterior's shared variables hold one data set at a time, so two
# threads fitting different data must not share it
_LOCAL = threading.local()


def _cache() -> OrderedDict:
    if not hasattr(_LOCAL, "entries"):
        _LOCAL.entries = OrderedDict()
    return _LOCAL.entries


def clear_compiled_cache() -> None:
    """Forget this thread's cached :class:`FlatPosterior` objects (and what back-ends keep in
    their ``memo``)."""
    _cache().clear()


def _graph(pm_model, param_names):
    """The graphs a FlatPosterior compiles, as functions of the value variables and the model's
    shared variables: ([logp, *parameters], value_vars, {name: shared variable})."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import graph_inputs

    named = {rv.name: rv for rv in pm_model.free_RVs}
    named.update({det.name: det for det in pm_model.deterministics})
    missing = [name for name in param_names if name not in named]
    if missing:
        raise ValueError(f"the PyMC model declares no variable named {missing}")
    outputs = [pm_model.logp(jacobian=True), *pm_model.replace_rvs_by_values([named[name] for name in param_names])]
    shared = [var for var in graph_inputs(outputs) if isinstance(var, SharedVariable)]
    by_name = {var.name: var for var in shared}
    # unnamed or twice-named shared variables cannot be matched between two builds
    return outputs, list(pm_model.value_vars), (by_name if None not in by_name and len(by_name) == len(shared) else None)


def _model_shared(pm_model) -> dict:
    """The PyMC model's data containers and mutable dimension lengths, by name."""
    from pytensor.compile.sharedvalue import SharedVariable

    variables = [*pm_model.data_vars, *pm_model.dim_lengths.values()]
    return {var.name: var for var in variables if isinstance(var, SharedVariable) and var.name is not None}


def flat_posterior(model, data) -> FlatPosterior:
    """A :class:`FlatPosterior` of ``model`` on ``data``, compiled once per model structure.

    The cache key is the model (its settings: a frozen dataclass) and the names, shapes and
    dtypes of the PyMC model's shared variables (the data containers). A cached object is reused
    only when the new PyMC model's log-density and parameter graphs equal its own, shared
    variables matched by name (constants, such as priors fixed from the data or data compiled in
    as constants, must agree); its shared variables then take the new values. Otherwise a new
    object is built and replaces it.

    Parameters
    ----------
    model : a latentzoo model
    data : validated data

    Returns
    -------
    FlatPosterior
        Bound to ``data`` until the next call with the same structure in this thread: use it
        before fitting another data set.
    """
    from pytensor.graph.basic import equal_computations

    pm_model = model.pymc_model(data, marginalized=True)
    outputs, value_vars, shared = _graph(pm_model, model.param_names)
    key = None
    if shared is not None:
        signature = tuple(
            sorted((name, np.shape(var.get_value(borrow=True)), str(var.type.dtype)) for name, var in shared.items())
        )
        try:
            key = (type(model), model, signature)
            hash(key)
        except (TypeError, ValueError):  # a model holding arrays: no caching
            key = None
    cache = _cache()
    cached = cache.get(key) if key is not None else None
    if cached is not None and set(shared) == set(cached._shared):
        names = sorted(shared)
        same = equal_computations(
            outputs, cached._outputs,
            in_xs=[*value_vars, *(shared[name] for name in names)],
            in_ys=[*cached._value_vars, *(cached._shared[name] for name in names)],
        )
        if same:
            cached._rebind(model, data, pm_model, shared)
            cache.move_to_end(key)
            return cached
    target = FlatPosterior(model, data, pm_model=pm_model, graph=(outputs, value_vars, shared))
    if key is not None:
        cache[key] = target
        cache.move_to_end(key)
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
    return target


class FlatPosterior:
    """Log-density, gradient, Hessian and constrained parameters of ``model.pymc_model(data)``
    as functions of one flat unconstrained vector.

    Parameters
    ----------
    model : a latentzoo model
    data : validated data
    pm_model : pymc.Model, optional
        ``model.pymc_model(data, marginalized=True)``, when the caller has built it.
    graph : tuple, optional
        What :func:`_graph` returns for ``pm_model`` (internal: :func:`flat_posterior`).

    Attributes
    ----------
    pm_model : pymc.Model
        The model the functions are compiled from (for a cached object, the first data set's,
        its data containers holding the current data).
    size : int
        d, the length of the flat vector.
    memo : dict
        Compiled pieces a back-end keeps with this object (e.g. ``svgd``'s step function).
    """

    def __init__(self, model, data, pm_model=None, graph=None):
        from pymc.pytensorf import compile as compile_pymc
        from pymc.pytensorf import join_nonshared_inputs

        self.model = model
        self.data = data
        self.pm_model = pm_model = model.pymc_model(data, marginalized=True) if pm_model is None else pm_model
        try:
            outputs, self._value_vars, self._shared = _graph(pm_model, model.param_names) if graph is None else graph
        except ValueError as error:
            raise ValueError(f"{type(model).__name__}: {error}") from None
        self._outputs = outputs
        self._point = pm_model.initial_point(0)
        # the model the starts come from: the current data's (initial values may depend on data)
        self._start_model, self._start_point = pm_model, self._point
        self.size = int(sum(np.size(self._point[var.name]) for var in self._value_vars))
        self._logp_grad = None  # compiled on first use (svgd needs none)
        self.memo = {}
        # each parameter as the model names it: a free variable through its inverse transform, or
        # a deterministic of the value variables
        constrained, flat_in = join_nonshared_inputs(self._point, outputs[1:], self._value_vars)
        self._constrained = compile_pymc([flat_in], constrained)
        COMPILATIONS["flat_posterior"] += 1

    def _rebind(self, model, data, pm_model, shared: dict) -> None:
        """Point the compiled functions at ``data`` (whose PyMC model ``pm_model`` has the same
        graphs, with the shared variables ``shared``, by name)."""
        for name, var in shared.items():
            self._shared[name].set_value(var.get_value())
        # the containers and dimension lengths outside these graphs (a compiled SVGD step reads
        # the dimension lengths): same names, same structure, so the values carry over
        own = _model_shared(self.pm_model)
        for name, var in _model_shared(pm_model).items():
            if name not in shared and name in own:
                own[name].set_value(var.get_value())
        self.model, self.data = model, data
        self._start_model, self._start_point = pm_model, None

    def logp(self, x: np.ndarray) -> float:
        """log p(x), Jacobian included; -inf where the graph gives NaN."""
        value = self.logp_grad(x)[0]
        return value if np.isfinite(value) else -np.inf

    def _compile_density(self) -> None:
        import pytensor
        from pymc.pytensorf import compile as compile_pymc
        from pymc.pytensorf import join_nonshared_inputs

        [logp], flat = join_nonshared_inputs(self._point, [self._outputs[0]], self._value_vars)
        grad = pytensor.grad(logp, flat)
        self._logp_grad = compile_pymc([flat], [logp, grad])
        COMPILATIONS["logp_grad"] += 1

    def logp_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self._logp_grad is None:
            self._compile_density()
        value, grad = self._logp_grad(np.asarray(x, float))
        return float(value), np.asarray(grad, float)

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """The (d, d) Hessian of log p at ``x``: central differences of the exact gradient with
        steps scaled to each coordinate (relative error about 1e-7 for smooth log-densities),
        symmetrised."""
        x = np.asarray(x, float)
        steps = 1e-5 * np.maximum(np.abs(x), 1.0)
        columns = []
        for index, step in enumerate(steps):
            shift = np.zeros_like(x)
            shift[index] = step
            columns.append((self.logp_grad(x + shift)[1] - self.logp_grad(x - shift)[1]) / (2 * step))
        hessian = np.stack(columns, axis=1)
        return 0.5 * (hessian + hessian.T)

    def flat_start(self, params: dict | None) -> np.ndarray:
        """The flat unconstrained vector at ``params`` (a dict of the model's parameters), or at
        PyMC's default initial point when ``params`` is None."""
        if params is None:
            if self._start_point is None:
                self._start_point = self._start_model.initial_point(0)
            point = self._start_point
        else:
            from pymc.initial_point import make_initial_point_fn

            overrides = self.model.pymc_initial_point(params)
            point = make_initial_point_fn(model=self._start_model, overrides=overrides, return_transformed=True)(0)
        return np.concatenate([np.ravel(point[var.name]) for var in self._value_vars]).astype(float)

    def flat_starts(self, params_list: list[dict]) -> np.ndarray:
        """The flat unconstrained vectors at several parameter dicts, shape (len(params_list), d).

        Unlike :meth:`flat_start` (PyMC's initial-point machinery, compiled on every call), the
        forward transforms are compiled once for all dicts. A dict from which the model's
        ``pymc_initial_point`` leaves a free variable out goes through :meth:`flat_start`.
        """
        from pymc.pytensorf import compile as compile_pymc
        from pytensor.graph.replace import graph_replace

        pm_model = self._start_model
        free = pm_model.free_RVs
        values = [rv.type() for rv in free]
        forward = []
        for rv, value in zip(free, values):
            transform = pm_model.rvs_to_transforms.get(rv)
            forward.append(value if transform is None else transform.forward(value, *rv.owner.inputs))
        # a transform's parameters may be other free variables: read them from the inputs too
        forward = graph_replace(forward, dict(zip(free, values)), strict=False)
        function = compile_pymc(values, forward)
        value_names = [pm_model.rvs_to_values[rv].name for rv in free]
        rows = []
        for params in params_list:
            point = self.model.pymc_initial_point(params)
            if not all(rv.name in point for rv in free):
                rows.append(self.flat_start(params))
                continue
            unconstrained = dict(zip(value_names, function(*(np.asarray(point[rv.name], rv.dtype) for rv in free))))
            rows.append(np.concatenate([np.ravel(unconstrained[var.name]) for var in self._value_vars]))
        return np.stack(rows).astype(float)

    def prior_starts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` independent draws from the prior (the model's ``"prior"`` start strategy) as flat
        unconstrained vectors, shape (n, d)."""
        return self.flat_starts([self.model.initial_params(self.data, rng, "prior") for _ in range(n)])

    def split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Flat vectors of shape (n, d) as PyMC's value variables: name -> array (n, *shape)."""
        flat = np.asarray(flat, float)
        out, offset = {}, 0
        for var in self._value_vars:
            shape = np.shape(self._point[var.name])
            width = int(np.prod(shape, dtype=int))
            out[var.name] = flat[:, offset : offset + width].reshape(len(flat), *shape)
            offset += width
        return out

    def constrained(self, flat_draws: np.ndarray) -> dict[str, np.ndarray]:
        """The model's parameters at flat draws.

        Parameters
        ----------
        flat_draws : ndarray of shape (chain, draw, d)

        Returns
        -------
        dict of str -> ndarray of shape (chain, draw, *param_shape)
        """
        flat_draws = np.asarray(flat_draws, float)
        chains, draws = flat_draws.shape[:2]
        rows = [self._constrained(x) for x in flat_draws.reshape(chains * draws, self.size)]
        return {
            name: np.stack([np.asarray(row[index], float) for row in rows]).reshape(chains, draws, *np.shape(rows[0][index]))
            for index, name in enumerate(self.model.param_names)
        }
