"""JAX implementations of latentzoo's PyTensor Ops, for NumPyro and BlackJAX NUTS.

PyMC's JAX samplers (``pm.sample(nuts_sampler="numpyro" | "blackjax")``) translate the model's
log-density graph into one JAX function with PyTensor's ``jax_funcify`` and let JAX
differentiate it. Every Op in the graph therefore needs a JAX implementation, and the gradient
JAX takes of it must be the right one. This module supplies both for

* ``HMMLogLikelihood`` (:mod:`latentzoo.models.ops.hmm_op`): an (M, K) table of log emission
  densities read at ``rows`` (a categorical log table transposed and its symbols, or a (T, K)
  matrix of log densities and the rows 0..T-1),
* ``SPDCholesky`` (:mod:`latentzoo.models.ops.pymc_parts`),
* ``LocalLevelLogLikelihood`` (:mod:`latentzoo.models.ops.kalman_op`): the Kalman filter as a
  ``lax.scan`` that JAX differentiates itself (two scalars, so reverse mode through the scan costs
  about one more pass).

Call :func:`register_jax_ops` before compiling a graph with JAX (``pytensor.function(...,
mode="JAX")``); the ``nuts`` back-end does so for ``sampler="numpyro"`` and ``"blackjax"``.
This module imports JAX at the top, and nothing else in latentzoo imports it, so ``import
latentzoo`` never loads JAX.

The HMM Op, as in its Numba version
-----------------------------------
One scaled forward-backward pass (Rabiner 1989, sec. V.A) returns the log-likelihood and its
whole gradient, the Op's four outputs: the forward messages are normalised at every step,
``log p(x) = sum_t log c_t``, and nothing underflows however long the sequences. With
``pred_t`` the normalised predicted message (``init`` at a sequence's first step, ``alpha_{t-1}
@ trans`` after it), ``beta_t`` the scaled backward message and ``lik[t, k]`` the emission
likelihood,

* ``d log p / d lik[t, k] = pred_t[k] beta_t[k] / c_t`` (the likelihood is linear in each
  ``lik[t, k]``), which gives the smoothed marginals ``gamma = lik * d log p / d lik`` (the
  gradient with respect to log emissions), summed over the steps that read each row of the
  table;
* ``d log p / d trans[i, j] = sum_t alpha_{t-1}[i] lik[t, j] beta_t[j] / c_t`` and
  ``d log p / d init[k] = sum_(first steps t) lik[t, k] beta_t[k] / c_t``: Fisher's identity
  ``E[n_e | x] / theta_e`` with the division by ``theta_e`` done analytically.

Entries that are exactly zero get gradient zero, and an impossible observation (every
reachable state has zero likelihood, or a row of the log table holds NaN or +inf) gives a
log-likelihood of -inf with zero gradients, exactly as the Numba kernels do.

Many sequences keep the Numba kernels' concatenated layout: one ``lax.scan`` runs over all T
steps, and a step that starts a sequence (read from ``offsets``) restarts the forward message
from ``init``, a step that ends one restarts the backward message from ones. Padding sequences
to a common length and ``vmap``-ing would waste work and memory on ragged data (one long
sequence among many short ones) and would need a new trace for every length pattern; the scan
costs O(T K^2) for any mix of lengths.

The gradient JAX takes. The Op's value output is wrapped in a ``jax.custom_vjp`` whose
backward rule multiplies the incoming cotangent by the forward-backward gradients computed in
the same pass (their own derivatives are stopped), so ``jax.grad`` of the log-density costs one
forward-backward pass and never differentiates through the scans. Second derivatives are not
available, as in the PyTensor Op.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

# the Ops compute in float64, as latentzoo's PyTensor graphs do (PyTensor's JAX back-end sets the
# same flag when floatX is float64); without it JAX would truncate to float32
jax.config.update("jax_enable_x64", True)

__all__ = [
    "categorical_hmm_log_likelihood",
    "hmm_log_likelihood",
    "local_level_log_likelihood",
    "log_emission_hmm_log_likelihood",
    "register_jax_ops",
]


def _boundaries(offsets, n_steps: int):
    """(T,) booleans: which steps start a sequence and which end one."""
    offsets = jnp.asarray(offsets)
    starts = jnp.zeros(n_steps, bool).at[offsets[:-1]].set(True, mode="drop")
    ends = jnp.zeros(n_steps, bool).at[offsets[1:] - 1].set(True, mode="drop")
    return starts, ends


def _forward_backward(init, trans, lik, starts, ends):
    """The scaled forward-backward pass over concatenated sequences.

    Parameters
    ----------
    init : (K,)
    trans : (K, K)
    lik : (T, K) non-negative emission likelihoods (any positive scale per row)
    starts, ends : (T,) bool

    Returns
    -------
    log_scale : (T,) log c_t (-inf where c_t = 0)
    impossible : bool, some c_t is not positive
    d_lik : (T, K) d sum_t log c_t / d lik[t, k]
    d_init : (K,)
    d_trans : (K, K)
    """
    n_states = init.shape[0]

    def forward_step(alpha_prev, step):
        lik_t, start_t = step
        predicted = jnp.where(start_t, init, alpha_prev @ trans)
        unnormalised = predicted * lik_t
        scale = unnormalised.sum()
        alpha = unnormalised / jnp.where(scale > 0, scale, 1.0)
        return alpha, (predicted, alpha, scale)

    _, (predicted, alpha, scale) = lax.scan(forward_step, jnp.zeros(n_states, lik.dtype), (lik, starts))
    impossible = jnp.any(~(scale > 0))
    safe_scale = jnp.where(scale > 0, scale, 1.0)

    def backward_step(weighted_next, step):
        lik_t, scale_t, end_t = step
        beta = jnp.where(end_t, jnp.ones_like(weighted_next), trans @ weighted_next)
        weighted = lik_t * beta / scale_t
        return weighted, beta

    _, beta = lax.scan(
        backward_step, jnp.zeros(n_states, lik.dtype), (lik, safe_scale, ends), reverse=True
    )
    d_lik = predicted * beta / safe_scale[:, None]
    # weighted_t = lik_t beta_t / c_t; transitions into step t come from alpha_{t-1}, except at starts
    weighted = lik * beta / safe_scale[:, None]
    into = jnp.where(starts[:, None], 0.0, weighted)
    previous = jnp.concatenate([jnp.zeros((1, n_states), alpha.dtype), alpha[:-1]])
    d_trans = previous.T @ into
    d_init = jnp.where(starts[:, None], weighted, 0.0).sum(axis=0)
    return jnp.log(scale), impossible, d_lik, d_init, d_trans


def _zero_where_zero(grad, param):
    # a zero entry carries no expected count, and PyMC never moves it (the Numba kernels agree)
    return jnp.where(param > 0, grad, 0.0)


@jax.custom_vjp
def _value_with_gradient(params, value, grads):
    """``value``, whose derivative with respect to ``params`` is ``grads`` (computed elsewhere)."""
    return value


def _value_with_gradient_fwd(params, value, grads):
    return value, (grads, jax.tree.map(jnp.zeros_like, (value, grads)))


def _value_with_gradient_bwd(residuals, cotangent):
    grads, zeros = residuals
    return (tuple(cotangent * grad for grad in grads), *zeros)


_value_with_gradient.defvjp(_value_with_gradient_fwd, _value_with_gradient_bwd)


def _hmm_pass(init, trans, log_table, rows, offsets):
    # each row shifted by its maximum before exp, so no density underflows; a row of -inf reads
    # as zeros (impossible where read), one with NaN or +inf makes the whole value -inf
    top = jnp.max(log_table, axis=1)
    unusable = jnp.any(jnp.isnan(log_table), axis=1) | (top == jnp.inf)
    shift = jnp.where(jnp.isfinite(top), top, 0.0)
    lik = jnp.where(unusable[:, None], 0.0, jnp.exp(log_table - shift[:, None]))[rows]
    starts, ends = _boundaries(offsets, lik.shape[0])
    log_scale, impossible, d_lik, d_init, d_trans = _forward_backward(init, trans, lik, starts, ends)
    impossible = impossible | jnp.any(unusable)
    # d log p / d log_table[m, k]: the smoothed marginals lik * d_lik of the steps reading row m
    d_table = jnp.zeros(log_table.shape, log_table.dtype).at[rows].add(lik * d_lik)
    grads = (_zero_where_zero(d_init, init), _zero_where_zero(d_trans, trans), d_table)
    grads = tuple(jnp.where(impossible, 0.0, grad) for grad in grads)
    value = jnp.where(impossible, -jnp.inf, log_scale.sum() + jnp.sum(shift[rows]))
    return value, grads


def hmm_log_likelihood(init, trans, log_table, rows, offsets):
    """Total HMM log-likelihood and its gradient: the ``HMMLogLikelihood`` Op.

    Parameters
    ----------
    init : array of shape (K,)
    trans : array of shape (K, K)
    log_table : array of shape (M, K)
        ``log p(x_t | z_t = k)`` read as ``log_table[rows[t], k]``.
    rows : int array of shape (T,)
    offsets : int array of shape (n_seq + 1,)

    Returns
    -------
    log_lik : scalar, ``sum_s log p(x_s)`` (-inf if some observation is impossible), whose
        JAX derivative with respect to ``init``, ``trans`` and ``log_table`` is the next three
    grad_init, grad_trans, grad_log_table : arrays of the shapes of ``init``, ``trans``, ``log_table``
    """
    rows = jnp.asarray(rows)
    value, grads = lax.stop_gradient(_hmm_pass(init, trans, log_table, rows, offsets))
    return _value_with_gradient((init, trans, log_table), value, grads), *grads


def categorical_hmm_log_likelihood(init, trans, emission, symbols, offsets):
    """:func:`hmm_log_likelihood` of a (K, M) table of probabilities read at ``symbols`` (T,)
    (0..M-1); ``grad_emission`` has the table's shape (0 at its zeros)."""
    positive = emission > 0
    # a log whose derivative is 0, not NaN, at the zeros
    log_table = jnp.where(positive, jnp.log(jnp.where(positive, emission, 1.0)), -jnp.inf)
    value, grad_init, grad_trans, grad_log = hmm_log_likelihood(init, trans, log_table.T, symbols, offsets)
    return value, grad_init, grad_trans, jnp.where(positive, grad_log.T / jnp.where(positive, emission, 1.0), 0.0)


def log_emission_hmm_log_likelihood(init, trans, log_emission, offsets):
    """:func:`hmm_log_likelihood` of a (T, K) matrix ``log p(x_t | z_t = k)`` (rows of zeros:
    missing steps); ``grad_emission`` is the smoothed marginals ``p(z_t = k | x)`` (T, K)."""
    return hmm_log_likelihood(init, trans, log_emission, jnp.arange(log_emission.shape[0]), offsets)


def _spd_cholesky(matrices):
    # the lower triangle only, as the Numba version reads it; all NaN when not positive definite
    # (JAX leaves zeros above the diagonal of a failed factor; the Numba and Python versions do not)
    chol = lax.linalg.cholesky(matrices, symmetrize_input=False)
    failed = jnp.any(jnp.isnan(chol), axis=(-2, -1), keepdims=True)
    return jnp.where(failed, jnp.nan, chol)


def _local_level_log_likelihood(sigma2_eps, sigma2_eta, y, level_mean, level_var):
    seen = ~jnp.isnan(y)
    values = jnp.where(seen, y, 0.0)

    def step(carry, inputs):
        level, var = carry
        y_t, seen_t = inputs
        F = var + sigma2_eps
        v = y_t - level
        gain = jnp.where(seen_t, var / F, 0.0)
        log_lik = jnp.where(seen_t, -0.5 * (jnp.log(2.0 * jnp.pi) + jnp.log(F) + v * v / F), 0.0)
        return (level + gain * v, var * (1.0 - gain) + sigma2_eta), log_lik

    start = (jnp.asarray(level_mean, jnp.float64), jnp.asarray(level_var, jnp.float64))
    return lax.scan(step, start, (values, seen))[1].sum()


def local_level_log_likelihood(level_mean, level_var, sigma2_eps, sigma2_eta, y):
    """The local-level Op's outputs: ``log p(y)`` and its derivatives in the two variances. The
    value is differentiated by JAX through the scan; the gradient outputs, which PyMC's JAX
    samplers do not read (they differentiate the value), are constants to JAX."""
    value = _local_level_log_likelihood(sigma2_eps, sigma2_eta, y, level_mean, level_var)
    fixed = lax.stop_gradient(jnp.stack([sigma2_eps, sigma2_eta]))
    grads = jax.grad(lambda s: _local_level_log_likelihood(s[0], s[1], y, level_mean, level_var))(fixed)
    return value, grads[0], grads[1]


@functools.cache
def register_jax_ops() -> None:
    """Register the JAX implementations with PyTensor's ``jax_funcify`` (idempotent).

    Builds latentzoo's Op classes if they are not built yet; afterwards PyMC's JAX samplers and
    ``pytensor.function(..., mode="JAX")`` can compile every latentzoo model.
    """
    from pytensor.link.jax.dispatch import jax_funcify

    from .hmm_op import _op_class as hmm_op_class
    from .kalman_op import _op_class as kalman_op_class
    from .pymc_parts import _spd_cholesky_op

    @jax_funcify.register(hmm_op_class())
    def _funcify_hmm(op, node=None, **kwargs):
        return hmm_log_likelihood

    @jax_funcify.register(kalman_op_class())
    def _funcify_local_level(op, node=None, **kwargs):
        return functools.partial(local_level_log_likelihood, op.level_mean, op.level_var)

    @jax_funcify.register(type(_spd_cholesky_op()))
    def _funcify_spd_cholesky(op, node=None, **kwargs):
        return _spd_cholesky
