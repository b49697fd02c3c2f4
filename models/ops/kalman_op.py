"""The local-level model's Kalman log-likelihood as one PyTensor Op with its analytic gradient.

``(sigma2_eps, sigma2_eta) -> (log_lik, d log_lik / d sigma2_eps, d log_lik / d sigma2_eta)``,
the series and the first level's prior fixed in the Op (they are data, not free variables). The
kernel (:func:`latentzoo.models.statespace.kalman.local_level_log_likelihood_and_gradient`)
carries the derivatives forward beside the filter, so value and gradient cost one pass; the
pullback reuses the last two outputs. ``benchmarks/local_level.py`` measures it against the
``scan`` that :meth:`~latentzoo.models.statespace.local_level.LocalLevel.pymc_model` uses.

PyTensor is imported lazily: this module is loaded only when a PyMC model is declared.
"""

from __future__ import annotations

import functools

import numpy as np

from ..statespace import kalman

__all__ = ["local_level_log_likelihood_op"]


@functools.cache
def _op_class():
    """Build the Op class on first use (keeps PyTensor out of ``import latentzoo.models``)."""
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType, grad_not_implemented
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class LocalLevelLogLikelihood(Op):
        """``(sigma2_eps, sigma2_eta, y) -> (log_lik, grad_eps, grad_eta)``; the first level's
        prior ``(level_mean, level_var)`` is a property of the Op."""

        __props__ = ("level_mean", "level_var")

        def __init__(self, level_mean: float, level_var: float):
            self.level_mean = float(level_mean)
            self.level_var = float(level_var)

        def make_node(self, sigma2_eps, sigma2_eta, y):
            inputs = [pt.as_tensor_variable(value, dtype="float64") for value in (sigma2_eps, sigma2_eta, y)]
            if tuple(value.ndim for value in inputs) != (0, 0, 1):
                raise ValueError("the local-level Op takes scalar sigma2_eps and sigma2_eta and a 1-D series y")
            return Apply(self, inputs, [pt.dscalar(), pt.dscalar(), pt.dscalar()])

        def perform(self, node, inputs, output_storage):
            h, q, y = inputs
            values = kalman.local_level_log_likelihood_and_gradient(y, float(h), float(q), self.level_mean, self.level_var)
            for storage, value in zip(output_storage, values):
                storage[0] = np.asarray(value, dtype=np.float64)

        def infer_shape(self, node, input_shapes):
            return [(), (), ()]

        def connection_pattern(self, node):
            # the series is data: no gradient reaches it
            return [[True] * 3, [True] * 3, [False] * 3]

        def pullback(self, inputs, outputs, cotangents):
            disconnected = [DisconnectedType()()]
            for cotangent in cotangents[1:]:
                if not isinstance(cotangent.type, DisconnectedType):
                    return [grad_not_implemented(self, k, inputs[k], "second derivatives") for k in range(2)] + disconnected
            return [cotangents[0] * outputs[1], cotangents[0] * outputs[2]] + disconnected

    from .numba_dispatch import register_numba_impl

    register_numba_impl(LocalLevelLogLikelihood, _build_numba_impl, kalman.local_level_log_likelihood_and_gradient)
    return LocalLevelLogLikelihood


def _build_numba_impl(op, node):
    from numba import njit

    kernel = kalman.local_level_log_likelihood_and_gradient
    level_mean, level_var = op.level_mean, op.level_var

    @njit
    def log_likelihood_and_gradient(sigma2_eps, sigma2_eta, y):
        value, grad_eps, grad_eta = kernel(y, sigma2_eps[()], sigma2_eta[()], level_mean, level_var)
        out = np.empty(()), np.empty(()), np.empty(())
        out[0][()], out[1][()], out[2][()] = value, grad_eps, grad_eta
        return out

    return log_likelihood_and_gradient


def local_level_log_likelihood_op(y: np.ndarray, sigma2_eps, sigma2_eta, level_mean: float, level_var: float):
    """Symbolic ``log p(y | sigma2_eps, sigma2_eta)`` (a scalar PyTensor variable) through the Op."""
    return _op_class()(level_mean, level_var)(sigma2_eps, sigma2_eta, np.asarray(y, dtype=float))[0]
