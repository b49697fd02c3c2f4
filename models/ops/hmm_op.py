"""One PyTensor Op for the log-likelihood of every HMM, with its gradient from forward-backward.

Why an Op and not a ``scan``: a PyTensor ``scan`` of the forward recursion with autodiff costs
about 1.3 ms per log-density and gradient at T = 200 (measured), and in log space its gradient
becomes 0/0 once forward log-messages fall below about -745 (T of a few hundred), so NUTS
breaks on long sequences. The compiled kernels (:mod:`latentzoo.models.hmm.kernels`) already
compute everything the gradient needs, in one scaled forward-backward pass of O(T K^2) time and
O(T K) memory that never underflows.

The Op is ``(init, trans, emission, *data) -> (log_lik, grad_init, grad_trans, grad_emission)``;
its pullback reuses the last three outputs. How the emission enters is the Op's one parameter:

``"table"`` (categorical emissions; :func:`hmm_log_likelihood`)
    ``emission`` is the (K, M) table of probabilities, ``data`` the (T,) symbols and the
    offsets; the kernel reads ``emission[k, symbols[t]]`` inside its loop. The likelihood is a
    polynomial in the entries of ``init``, ``trans`` and ``emission`` in which each path uses
    entry ``theta_e`` exactly ``n_e(z)`` times, so (Fisher's identity)
    ``d log p(x | theta) / d theta_e = E[n_e(z) | x, theta] / theta_e``: the forward-backward
    expected counts divided by the entry. Entries that are exactly zero (masked emissions) get
    gradient zero: they carry no expected count, and PyMC never moves them. Missing steps need
    nothing here: the caller appends a column of ones to the table and codes them as its index
    (:mod:`latentzoo.models.hmm.pymc`), and that column's gradient reaches no free variable.
``"log_density"`` (any family; :func:`hmm_log_emission_likelihood`)
    ``emission`` is the (T, K) matrix ``log p(x_t | z_t = k)``, built by the caller in PyTensor
    from any family (Gaussian, Poisson, ...), and ``data`` the offsets; PyTensor's autodiff
    carries the gradient from the matrix back to the family's parameters.
    ``d log p(x) / d log_emission[t, k] = p(z_t = k | x)``, the smoothed marginal: the
    likelihood is a sum over paths of products in which ``exp(log_emission[t, k])`` appears once
    in the paths through state k at time t. ``init`` and ``trans`` get Fisher's identity as
    above. Each row is shifted by its maximum before ``exp``, so no density underflows; a
    missing step is a row of zeros.

Both give a log-likelihood of -inf and zero gradients when some step is impossible.

Why categorical HMMs keep their own form rather than passing ``log(table).T[symbols]`` to the
second: on the dice HMM at T = 1000 that cost 1.4x per log-density and gradient (about 100
against 70 us) and 1.3x per NUTS leapfrog step (``benchmarks/hmm_ops.py --forms``, the same
values and gradients): the gather and the scatter of its gradient run as PyTensor nodes instead
of reads inside the compiled loop, and the masked zeros need a log whose gradient is not NaN.

PyTensor is imported lazily: this module is loaded only when a PyMC model is declared. The
JAX implementation (for NumPyro and BlackJAX) is :mod:`latentzoo.models.ops.jax_ops`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..hmm import kernels

__all__ = ["EMISSION_FORMS", "EmissionForm", "hmm_log_emission_likelihood", "hmm_log_likelihood", "hmm_op"]


@dataclass(frozen=True)
class EmissionForm:
    """How the emission enters the Op: its kernels and the integer inputs after it.

    Attributes
    ----------
    gradient : callable
        ``(init, trans, emission, *data) -> (log_lik, grad_init, grad_trans, grad_emission)``
        on NumPy arrays (the Op's Python ``perform``).
    compiled : callable
        The same as a numba ``njit`` kernel, for the Op's Numba implementation.
    data : tuple of str
        Names of the 1-D integer inputs that follow ``emission`` (``offsets`` last).
    """

    gradient: Callable
    compiled: Callable
    data: tuple[str, ...]


#: the Op's parameter: how the emission enters
EMISSION_FORMS = {
    "table": EmissionForm(kernels.log_likelihood_gradient, kernels._log_likelihood_gradient, ("symbols", "offsets")),
    "log_density": EmissionForm(kernels.log_emission_gradient, kernels._log_emission_gradient, ("offsets",)),
}


@functools.cache
def _op_class():
    """Build the Op class on first use (keeps PyTensor out of ``import latentzoo.models``)."""
    import pytensor.tensor as pt
    from pytensor.gradient import DisconnectedType, grad_not_implemented
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class HMMLogLikelihood(Op):
        """``(init, trans, emission, *data) -> (log_lik, grad_init, grad_trans, grad_emission)``;
        ``emission`` names the form (a key of ``EMISSION_FORMS``)."""

        __props__ = ("emission",)

        def __init__(self, emission: str):
            if emission not in EMISSION_FORMS:
                raise ValueError(f"emission must be one of {sorted(EMISSION_FORMS)}, got {emission!r}")
            self.emission = emission
            self.n_data = len(EMISSION_FORMS[emission].data)

        def make_node(self, init, trans, emission, *data):
            names = ("init", "trans", "emission", *EMISSION_FORMS[self.emission].data)
            if len(data) != self.n_data:
                raise TypeError(f"the {self.emission!r} HMM Op takes {', '.join(names)}; got {3 + len(data)} inputs")
            inputs = [pt.as_tensor_variable(value, dtype="float64") for value in (init, trans, emission)]
            inputs += [pt.as_tensor_variable(value, dtype="int64") for value in data]
            expected = (1, 2, 2) + (1,) * self.n_data
            if tuple(value.ndim for value in inputs) != expected:
                got = ", ".join(f"{name} {value.ndim}" for name, value in zip(names, inputs))
                raise ValueError(f"the {self.emission!r} HMM Op needs ndim {expected} for ({', '.join(names)}); got {got}")
            outputs = [pt.dscalar(), inputs[0].type(), inputs[1].type(), inputs[2].type()]
            return Apply(self, inputs, outputs)

        def perform(self, node, inputs, output_storage):
            value, *grads = EMISSION_FORMS[self.emission].gradient(*inputs)
            output_storage[0][0] = np.asarray(value, dtype=np.float64)
            for storage, grad in zip(output_storage[1:], grads):
                storage[0] = grad

        def infer_shape(self, node, input_shapes):
            return [(), *input_shapes[:3]]

        def connection_pattern(self, node):
            # the float inputs reach every output; the integer data reach none
            return [[True] * 4] * 3 + [[False] * 4] * self.n_data

        def pullback(self, inputs, outputs, cotangents):
            disconnected = [DisconnectedType()() for _ in range(self.n_data)]
            for cotangent in cotangents[1:]:
                if not isinstance(cotangent.type, DisconnectedType):
                    # second derivatives would need the expected counts' own derivatives
                    return [grad_not_implemented(self, k, inputs[k], "second derivatives") for k in range(3)] + disconnected
            upstream = cotangents[0]
            return [upstream * grad for grad in outputs[1:]] + disconnected

    _register_numba(HMMLogLikelihood)
    return HMMLogLikelihood


@functools.cache
def hmm_op(emission: str):
    """The Op instance for one emission form (a key of ``EMISSION_FORMS``)."""
    return _op_class()(emission)


def _register_numba(op_class) -> None:
    """The Op's Numba implementation: PyTensor's default linker (and nutpie, which compiles the
    whole log-density with Numba) then call the kernel without Python, and the compiled model
    is cached on disk (see :mod:`latentzoo.models.ops.numba_dispatch`)."""
    from .numba_dispatch import register_numba_impl

    register_numba_impl(op_class, _build_numba_impl, kernels)


def _build_numba_impl(op, node):
    from numba import njit

    kernel = EMISSION_FORMS[op.emission].compiled

    @njit
    def log_likelihood_and_gradient(*inputs):
        value, grad_init, grad_trans, grad_emission = kernel(*inputs)
        out = np.empty(())
        out[()] = value
        return out, grad_init, grad_trans, grad_emission

    return log_likelihood_and_gradient


def hmm_log_likelihood(init, trans, emission, symbols, offsets):
    """Symbolic total log-likelihood ``sum_s log p(x_s | theta)`` of a categorical HMM (a scalar
    PyTensor variable).

    Parameters
    ----------
    init : tensor of shape (K,)
    trans : tensor of shape (K, K)
    emission : tensor of shape (K, M)
    symbols : int array of shape (T,)
        Column indices into ``emission`` (0..M-1) of the concatenated sequences.
    offsets : int array of shape (n_seq + 1,)
        Sequence ``s`` is ``symbols[offsets[s]:offsets[s + 1]]``.
    """
    return hmm_op("table")(init, trans, emission, symbols, offsets)[0]


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
    return hmm_op("log_density")(init, trans, log_emission, offsets)[0]
