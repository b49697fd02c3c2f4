"""One PyTensor Op for the log-likelihood of every HMM, with its gradient from forward-backward.

Why an Op and not a ``scan``: a PyTensor ``scan`` of the forward recursion with autodiff costs
about 1.3 ms per log-density and gradient at T = 200 (measured), and in log space its gradient
becomes 0/0 once forward log-messages fall below about -745 (T of a few hundred), so NUTS
breaks on long sequences. The compiled kernels (:mod:`latentzoo.models.hmm.kernels`) already
compute everything the gradient needs, in one scaled forward-backward pass of O(T K^2) time and
O(T K) memory that never underflows.

The Op is ``(init, trans, log_table, rows, offsets) -> (log_lik, grad_init, grad_trans,
grad_log_table)``; its pullback reuses the last three outputs. The kernel reads ``log p(x_t |
z_t = k)`` as ``log_table[rows[t], k]`` (:func:`latentzoo.models.hmm.kernels.log_table_gradient`),
which serves both ways in:

* categorical emissions (:func:`hmm_log_likelihood`): the log of the (K, M) table of
  probabilities, transposed, and the symbols. The gather stays inside the compiled loop and the gradient
  with respect to the table is a (K, M) array: passing ``log(table).T[symbols]`` as a (T, K)
  matrix instead cost 2x per NUTS leapfrog step on the dice HMM at T = 1000 (the gather and the
  scatter of its gradient run as PyTensor nodes; ``benchmarks/hmm_ops.py --forms``). Masked
  zeros get a log of -inf whose gradient is 0, not NaN, and a missing step reads a column of
  ones (log 0) that the caller appends (:mod:`latentzoo.models.hmm.pymc`);
* any other family (:func:`hmm_log_emission_likelihood`): the (T, K) matrix ``log p(x_t | z_t
  = k)`` built in PyTensor (Gaussian, Poisson, ...) and the rows 0..T-1; PyTensor's autodiff
  carries the gradient back to the family's parameters. A missing step is a row of zeros.

``d log p(x) / d log_table[m, k]`` is the smoothed marginal ``p(z_t = k | x)`` summed over the
steps t that read row m: the likelihood is a sum over paths of products in which
``exp(log_table[rows[t], k])`` appears once in the paths through state k at time t. ``init``
and ``trans`` get Fisher's identity, ``d log p(x | theta) / d theta_e = E[n_e(z) | x, theta] /
theta_e`` (the likelihood is a polynomial in which each path uses entry ``theta_e`` ``n_e(z)``
times), 0 at zero entries. Each row of the table is shifted by its maximum before ``exp``,
so no density underflows. An impossible step gives a log-likelihood of -inf and zero gradients.

PyTensor is imported lazily: this module is loaded only when a PyMC model is declared. The
JAX implementation (for NumPyro and BlackJAX) is :mod:`latentzoo.models.ops.jax_ops`.
"""

from __future__ import annotations

import functools

import numpy as np

from ..hmm import kernels

__all__ = ["hmm_log_emission_likelihood", "hmm_log_likelihood", "hmm_op"]

_INPUTS = ("init", "trans", "log_table", "rows", "offsets")


@functools.cache
def _op_class():
    """Build the Op class on first use (keeps PyTensor out of ``import latentzoo.models``)."""
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType, grad_not_implemented
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class HMMLogLikelihood(Op):
        """``(init, trans, log_table, rows, offsets) -> (log_lik, grad_init, grad_trans,
        grad_log_table)``."""

        __props__ = ()

        def make_node(self, init, trans, log_table, rows, offsets):
            inputs = [pt.as_tensor_variable(value, dtype="float64") for value in (init, trans, log_table)]
            inputs += [pt.as_tensor_variable(value, dtype="int64") for value in (rows, offsets)]
            expected = (1, 2, 2, 1, 1)
            if tuple(value.ndim for value in inputs) != expected:
                got = ", ".join(f"{name} {value.ndim}" for name, value in zip(_INPUTS, inputs))
                raise ValueError(f"the HMM Op needs ndim {expected} for ({', '.join(_INPUTS)}); got {got}")
            outputs = [pt.dscalar(), inputs[0].type(), inputs[1].type(), inputs[2].type()]
            return Apply(self, inputs, outputs)

        def perform(self, node, inputs, output_storage):
            value, *grads = kernels.log_table_gradient(*inputs)
            output_storage[0][0] = np.asarray(value, dtype=np.float64)
            for storage, grad in zip(output_storage[1:], grads):
                storage[0] = grad

        def infer_shape(self, node, input_shapes):
            return [(), *input_shapes[:3]]

        def connection_pattern(self, node):
            # the float inputs reach every output; the integer rows and offsets reach none
            return [[True] * 4] * 3 + [[False] * 4] * 2

        def pullback(self, inputs, outputs, cotangents):
            disconnected = [DisconnectedType()() for _ in range(2)]
            for cotangent in cotangents[1:]:
                if not isinstance(cotangent.type, DisconnectedType):
                    # second derivatives would need the expected counts' own derivatives
                    return [grad_not_implemented(self, k, inputs[k], "second derivatives") for k in range(3)] + disconnected
            upstream = cotangents[0]
            return [upstream * grad for grad in outputs[1:]] + disconnected

    _register_numba(HMMLogLikelihood)
    return HMMLogLikelihood


@functools.cache
def hmm_op():
    """The Op instance."""
    return _op_class()()


def _register_numba(op_class) -> None:
    """The Op's Numba implementation: PyTensor's default linker (and nutpie, which compiles the
    whole log-density with Numba) then call the kernel without Python, and the compiled model
    is cached on disk (see :mod:`latentzoo.models.ops.numba_dispatch`)."""
    from .numba_dispatch import register_numba_impl

    register_numba_impl(op_class, _build_numba_impl, kernels)


def _build_numba_impl(op, node):
    from numba import njit

    kernel = kernels._log_table_gradient

    @njit
    def log_likelihood_and_gradient(init, trans, log_table, rows, offsets):
        value, grad_init, grad_trans, grad_log_table = kernel(init, trans, log_table, rows, offsets)
        out = np.empty(())
        out[()] = value
        return out, grad_init, grad_trans, grad_log_table

    return log_likelihood_and_gradient


def hmm_log_likelihood(init, trans, emission, symbols, offsets):
    """Symbolic total log-likelihood ``sum_s log p(x_s | theta)`` of a categorical HMM (a scalar
    PyTensor variable).

    Parameters
    ----------
    init : tensor of shape (K,)
    trans : tensor of shape (K, K)
    emission : tensor of shape (K, M)
        Probabilities; exact zeros (masked emissions) get gradient zero.
    symbols : int array of shape (T,)
        Column indices into ``emission`` (0..M-1) of the concatenated sequences.
    offsets : int array of shape (n_seq + 1,)
        Sequence ``s`` is ``symbols[offsets[s]:offsets[s + 1]]``.
    """
    import pytensor.tensor as pt

    positive = pt.gt(emission, 0.0)
    # a log whose gradient is 0, not NaN, at the zeros
    log_table = pt.switch(positive, pt.log(pt.switch(positive, emission, 1.0)), -np.inf)
    return hmm_op()(init, trans, log_table.T, symbols, offsets)[0]


def hmm_log_emission_likelihood(init, trans, log_emission, offsets):
    """Symbolic total log-likelihood ``sum_s log p(x_s | theta)`` from log emission densities
    (a scalar PyTensor variable).

    Parameters
    ----------
    init : tensor of shape (K,)
    trans : tensor of shape (K, K)
    log_emission : tensor of shape (T, K)
        ``log p(x_t | z_t = k)`` of the concatenated sequences (rows of zeros: missing steps).
    offsets : int array of shape (n_seq + 1,)
        Sequence ``s`` is rows ``offsets[s]:offsets[s + 1]``.
    """
    import pytensor.tensor as pt

    log_emission = pt.as_tensor_variable(log_emission)
    return hmm_op()(init, trans, log_emission, pt.arange(log_emission.shape[0], dtype="int64"), offsets)[0]
