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

PyMC is imported lazily, as in :mod:`.pymc_backends`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FlatPosterior"]


class FlatPosterior:
    """Log-density, gradient, Hessian and constrained parameters of ``model.pymc_model(data)``
    as functions of one flat unconstrained vector.

    Parameters
    ----------
    model : a latentzoo model
    data : validated data

    Attributes
    ----------
    pm_model : pymc.Model
    size : int
        d, the length of the flat vector.
    """

    def __init__(self, model, data):
        from pymc.pytensorf import compile as compile_pymc
        from pymc.pytensorf import join_nonshared_inputs

        self.model = model
        self.data = data
        self.pm_model = pm_model = model.pymc_model(data, marginalized=True)
        self._point = pm_model.initial_point(0)
        self._value_vars = pm_model.value_vars
        self.size = int(sum(np.size(self._point[var.name]) for var in self._value_vars))
        self._logp_grad = None  # compiled on first use (svgd needs none)
        # each parameter as the model names it: a free variable through its inverse transform, or
        # a deterministic of the value variables
        named = {rv.name: rv for rv in pm_model.free_RVs}
        named.update({det.name: det for det in pm_model.deterministics})
        missing = [name for name in model.param_names if name not in named]
        if missing:
            raise ValueError(f"the PyMC model of {type(model).__name__} declares no variable named {missing}")
        outputs = pm_model.replace_rvs_by_values([named[name] for name in model.param_names])
        constrained, flat_in = join_nonshared_inputs(self._point, outputs, self._value_vars)
        self._constrained = compile_pymc([flat_in], constrained)

    def logp(self, x: np.ndarray) -> float:
        """log p(x), Jacobian included; -inf where the graph gives NaN."""
        value = self.logp_grad(x)[0]
        return value if np.isfinite(value) else -np.inf

    def _compile_density(self) -> None:
        import pytensor
        from pymc.pytensorf import compile as compile_pymc
        from pymc.pytensorf import join_nonshared_inputs

        logp = self.pm_model.logp(jacobian=True)
        [logp], flat = join_nonshared_inputs(self._point, [logp], self._value_vars)
        grad = pytensor.grad(logp, flat)
        self._logp_grad = compile_pymc([flat], [logp, grad])

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
            point = self._point
        else:
            from pymc.initial_point import make_initial_point_fn

            overrides = self.model.pymc_initial_point(params)
            point = make_initial_point_fn(model=self.pm_model, overrides=overrides, return_transformed=True)(0)
        return np.concatenate([np.ravel(point[var.name]) for var in self._value_vars]).astype(float)

    def flat_starts(self, params_list: list[dict]) -> np.ndarray:
        """The flat unconstrained vectors at several parameter dicts, shape (len(params_list), d).

        Unlike :meth:`flat_start` (PyMC's initial-point machinery, compiled on every call), the
        forward transforms are compiled once for all dicts. A dict from which the model's
        ``pymc_initial_point`` leaves a free variable out goes through :meth:`flat_start`.
        """
        from pymc.pytensorf import compile as compile_pymc
        from pytensor.graph.replace import graph_replace

        pm_model = self.pm_model
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
