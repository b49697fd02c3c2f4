"""A PyTensor Op for the HMM log-likelihood of any emission family, with its gradient.

:mod:`latentzoo.models.ops.hmm_op` sums the states out of a *categorical* HMM from its emission
probabilities. This Op takes the (T, K) matrix of log emission densities instead,
``log_emission[t, k] = log p(x_t | z_t = k)``, built by the caller in PyTensor from any family
(Gaussian means and covariances, Poisson rates, categorical probabilities), so one Op and one
compiled kernel serve every HMM of the zoo; PyTensor's autodiff carries the gradient from the
matrix back to the emission parameters.

The gradient, from one scaled forward-backward pass
(:func:`latentzoo.models.hmm.kernels.log_emission_gradient`):

* ``d log p(x) / d log_emission[t, k] = p(z_t = k | x)``, the smoothed marginal gamma: the
  likelihood is a sum over paths of products in which ``exp(log_emission[t, k])`` appears once
  in the paths through state k at time t, so its log-derivative is their posterior mass;
* ``d log p(x) / d init[k] = E[#(z_1 = k) | x] / init[k]`` and
  ``d log p(x) / d trans[i, j] = E[#(i -> j) | x] / trans[i, j]`` (Fisher's identity, as in
  :mod:`latentzoo.models.ops.hmm_op`).

Each row of the matrix is shifted by its maximum before ``exp``, so no density underflows, and
a missing observation is a row of zeros. Steps that no reachable state can emit give a
log-likelihood of -inf and a zero gradient.

PyTensor is imported lazily: this module is loaded only when a PyMC model is declared.
"""

from __future__ import annotations

import functools

import numpy as np

from ..hmm import kernels

__all__ = ["hmm_log_emission_likelihood"]


@functools.lru_cache(maxsize=None)
def _op_class():
    """Build the Op class on first use (keeps PyTensor out of ``import latentzoo.models``)."""
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType, grad_not_implemented
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class HMMLogEmissionLikelihood(Op):
        """``(init, trans, log_emission, offsets) -> (log_lik, grad_init, grad_trans, gamma)``;
        the pullback reuses the last three outputs, so value and gradient come from one pass."""

        __props__ = ()

        def make_node(self, init, trans, log_emission, offsets):
            inputs = [
                pt.as_tensor_variable(init, dtype="float64"),
                pt.as_tensor_variable(trans, dtype="float64"),
                pt.as_tensor_variable(log_emission, dtype="float64"),
                pt.as_tensor_variable(offsets, dtype="int64"),
            ]
            if (inputs[0].ndim, inputs[1].ndim, inputs[2].ndim, inputs[3].ndim) != (1, 2, 2, 1):
                raise ValueError(
                    "init must be 1-D (K,), trans and log_emission 2-D ((K, K) and (T, K)) and offsets 1-D; "
                    f"got ndim {inputs[0].ndim}, {inputs[1].ndim}, {inputs[2].ndim} and {inputs[3].ndim}"
                )
            outputs = [pt.dscalar(), inputs[0].type(), inputs[1].type(), inputs[2].type()]
            return Apply(self, inputs, outputs)

        def perform(self, node, inputs, output_storage):
            value, *grads = kernels.log_emission_gradient(*inputs)
            output_storage[0][0] = np.asarray(value, dtype=np.float64)
            for storage, grad in zip(output_storage[1:], grads):
                storage[0] = grad

        def infer_shape(self, node, input_shapes):
            return [(), input_shapes[0], input_shapes[1], input_shapes[2]]

        def connection_pattern(self, node):
            return [[True] * 4] * 3 + [[False] * 4]

        def pullback(self, inputs, outputs, cotangents):
            _, grad_init, grad_trans, gamma = outputs
            for cotangent in cotangents[1:]:
                if not isinstance(cotangent.type, DisconnectedType):
                    # second derivatives would need the smoothed marginals' own derivatives
                    return [grad_not_implemented(self, k, inputs[k], "second derivatives") for k in range(3)] + [
                        DisconnectedType()()
                    ]
            upstream = cotangents[0]
            return [upstream * grad_init, upstream * grad_trans, upstream * gamma, DisconnectedType()()]

    _register_numba(HMMLogEmissionLikelihood)
    return HMMLogEmissionLikelihood


def _register_numba(op_class) -> None:
    """The Op's Numba implementation, with a cache key (see :mod:`latentzoo.models.ops.numba_dispatch`)."""
    from .numba_dispatch import register_numba_impl

    register_numba_impl(op_class, _build_numba_impl, kernels)


def _build_numba_impl(op, node):
    from numba import njit

    kernel = kernels._log_emission_gradient

    @njit
    def log_likelihood_and_gradient(init, trans, log_emission, offsets):
        value, grad_init, grad_trans, gamma = kernel(init, trans, log_emission, offsets)
        out = np.empty(())
        out[()] = value
        return out, grad_init, grad_trans, gamma

    return log_likelihood_and_gradient


def hmm_log_emission_likelihood(init, trans, log_emission, offsets):
    """Symbolic total log-likelihood ``sum_s log p(x_s | theta)`` (a scalar PyTensor variable).

    Parameters
    ----------
    init : tensor of shape (K,)
    trans : tensor of shape (K, K)
    log_emission : tensor of shape (T, K)
        ``log p(x_t | z_t = k)`` of the concatenated sequences (rows of zeros: missing steps).
    offsets : int array of shape (n_seq + 1,)
        Sequence ``s`` is rows ``offsets[s]:offsets[s + 1]``.
    """
    return _op_class()()(init, trans, log_emission, offsets)[0]
