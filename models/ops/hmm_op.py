"""A PyTensor Op for the HMM log-likelihood with its gradient from forward-backward.

Why an Op and not a ``scan``: a PyTensor ``scan`` of the forward recursion with autodiff costs
about 1.3 ms per log-density and gradient at T = 200 (measured), and in log space its gradient
becomes 0/0 once forward log-messages fall below about -745 (T of a few hundred), so NUTS
breaks on long sequences. The compiled kernels already compute everything the gradient needs.

Fisher's identity. The likelihood ``p(x | theta) = sum_z prod_t (factors)`` is a polynomial in
the entries of ``init_probs``, ``trans_mat`` and ``emission_probs`` in which each path uses an
entry ``theta_e`` exactly ``n_e(z)`` times, so

    d log p(x | theta) / d theta_e = E[n_e(z) | x, theta] / theta_e,

the forward-backward expected counts divided by the entry. One scaled forward-backward pass
(:func:`latentzoo.models.hmm.kernels.log_likelihood_gradient`) therefore returns the value and the whole
gradient in O(T K^2) time and O(T K) memory, and never underflows. The gradient is with respect
to the unconstrained entries; PyMC's simplex transforms supply the chain rule to their free
coordinates. Entries that are exactly zero (masked emissions) get gradient zero: they carry no
expected count either, and PyMC never moves them.

Missing observations need nothing here: the caller appends a constant column of ones to the
emission matrix and codes missing steps as its index (:mod:`latentzoo.models.hmm.pymc`), so the
Op sees ordinary symbols, and the gradient it returns for that column reaches no free variable.

PyTensor is imported lazily: this module is loaded only when a PyMC model is declared.
"""

from __future__ import annotations

import functools

import numpy as np

from ..hmm import kernels

__all__ = ["hmm_log_likelihood"]


@functools.lru_cache(maxsize=None)
def _op_class():
    """Build the Op class on first use (keeps PyTensor out of ``import latentzoo.models``)."""
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType, grad_not_implemented
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class HMMLogLikelihood(Op):
        """``(init, trans, emission, symbols, offsets) -> (log_lik, grad_init, grad_trans,
        grad_emission)``; the pullback reuses the last three outputs, so value and gradient come
        from one forward-backward pass."""

        __props__ = ()

        def make_node(self, init, trans, emission, symbols, offsets):
            inputs = [
                pt.as_tensor_variable(init, dtype="float64"),
                pt.as_tensor_variable(trans, dtype="float64"),
                pt.as_tensor_variable(emission, dtype="float64"),
                pt.as_tensor_variable(symbols, dtype="int64"),
                pt.as_tensor_variable(offsets, dtype="int64"),
            ]
            outputs = [pt.dscalar(), inputs[0].type(), inputs[1].type(), inputs[2].type()]
            return Apply(self, inputs, outputs)

        def perform(self, node, inputs, output_storage):
            value, *grads = kernels.log_likelihood_gradient(*inputs)
            output_storage[0][0] = np.asarray(value, dtype=np.float64)
            for storage, grad in zip(output_storage[1:], grads):
                storage[0] = grad

        def infer_shape(self, node, input_shapes):
            return [(), input_shapes[0], input_shapes[1], input_shapes[2]]

        def connection_pattern(self, node):
            # the probabilities reach every output; the integer data reach none
            return [[True] * 4] * 3 + [[False] * 4] * 2

        def pullback(self, inputs, outputs, cotangents):
            _, grad_init, grad_trans, grad_emission = outputs
            for cotangent in cotangents[1:]:
                if not isinstance(cotangent.type, DisconnectedType):
                    # second derivatives would need the expected counts' own derivatives
                    return [grad_not_implemented(self, k, inputs[k], "second derivatives") for k in range(3)] + [
                        DisconnectedType()(),
                        DisconnectedType()(),
                    ]
            upstream = cotangents[0]
            return [
                upstream * grad_init,
                upstream * grad_trans,
                upstream * grad_emission,
                DisconnectedType()(),
                DisconnectedType()(),
            ]

    _register_numba(HMMLogLikelihood)
    return HMMLogLikelihood


def _register_numba(op_class) -> None:
    """The Op's Numba implementation: PyTensor's default linker (and nutpie, which compiles the
    whole log-density with Numba) then call the kernel without Python, and the compiled model
    is cached on disk (see :mod:`latentzoo.models.ops.numba_dispatch`)."""
    from .numba_dispatch import register_numba_impl

    register_numba_impl(op_class, _build_numba_impl, kernels)


def _build_numba_impl(op, node):
    from numba import njit

    kernel = kernels._log_likelihood_gradient

    @njit
    def log_likelihood_and_gradient(init, trans, emission, symbols, offsets):
        value, grad_init, grad_trans, grad_emission = kernel(init, trans, emission, symbols, offsets)
        out = np.empty(())
        out[()] = value
        return out, grad_init, grad_trans, grad_emission

    return log_likelihood_and_gradient


def hmm_log_likelihood(init, trans, emission, symbols, offsets):
    """Symbolic total log-likelihood ``sum_s log p(x_s | theta)`` (a scalar PyTensor variable).

    Parameters
    ----------
    init : tensor of shape (K,)
    trans : tensor of shape (K, K)
    emission : tensor of shape (K, M)
    symbols : int array of shape (T,)
        Column indices into ``emission`` (0..M-1).
    offsets : int array of shape (n_seq + 1,)
    """
    return _op_class()()(init, trans, emission, symbols, offsets)[0]
