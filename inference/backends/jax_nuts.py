"""NUTS on JAX for the ``nuts`` back-end: ``sampler="numpyro"`` and ``sampler="blackjax"``.

Both translate the model's PyMC log-density into one JAX function (PyTensor's ``jax_funcify``,
with :mod:`latentzoo.models.ops.jax_ops` for latentzoo's own Ops), which JAX differentiates and
compiles for its default device: the CPU here, a GPU or TPU where JAX finds one. The chains run
as one vectorised computation (``jax.vmap``), not as processes.

* NumPyro runs through PyMC (``pm.sample(nuts_sampler="numpyro")`` with
  ``chain_method="vectorized"``).
* BlackJAX runs through this module's driver, on PyMC's JAX log-density and initial points:
  PyMC 6.4's own BlackJAX path fails with BlackJAX 1.7 (it passes ``progress_bar`` into the
  NUTS kernel and calls ``blackjax.progress_bar.gen_scan_fn``, which BlackJAX 1.7 no longer
  has). The driver is BlackJAX's documented recipe: Stan-style window adaptation of the step
  size and a diagonal mass matrix during ``tune`` steps, then ``draws`` NUTS steps.

JAX is imported inside the functions, so ``import latentzoo`` never loads it.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["JAX_SAMPLERS", "require_jax", "sample_blackjax"]

#: the values of the nuts back-end's ``sampler`` option that run on JAX
JAX_SAMPLERS = ("numpyro", "blackjax")

#: attempts at a jittered initial point with a finite log-density, as PyMC makes
JITTER_ATTEMPTS = 10


def require_jax(sampler: str) -> None:
    """Register latentzoo's JAX Ops, or raise an ImportError naming the extra to install.

    Parameters
    ----------
    sampler : {"numpyro", "blackjax"}
    """
    for module in ("jax", sampler):
        try:
            __import__(module)
        except ImportError:
            raise ImportError(
                f"sampler={sampler!r} needs jax, numpyro and blackjax ({module} is missing): "
                "pip install 'latentzoo[jax]'"
            ) from None
    from ...models.ops.jax_ops import register_jax_ops

    register_jax_ops()


def _initial_positions(pm_model, logp_fn, chains: int, seed: int) -> list[np.ndarray]:
    """One jittered initial point per chain (PyMC's default: U(-1, 1) jitter in the
    unconstrained space), stacked per value variable: a list of (chains, *shape) arrays."""
    from pymc.initial_point import make_initial_point_fn

    point_fn = make_initial_point_fn(model=pm_model, jitter_rvs=set(pm_model.free_RVs), return_transformed=True)
    names = [var.name for var in pm_model.value_vars]
    seeds = np.random.SeedSequence(seed).generate_state(chains * JITTER_ATTEMPTS)
    points = []
    for chain in range(chains):
        for attempt in range(JITTER_ATTEMPTS):
            point = point_fn(int(seeds[chain * JITTER_ATTEMPTS + attempt]))
            position = [np.asarray(point[name]) for name in names]
            if np.isfinite(float(logp_fn(position))):
                break
        else:
            raise FloatingPointError(
                f"blackjax: no jittered initial point with a finite log-density in {JITTER_ATTEMPTS} attempts"
            )
        points.append(position)
    return [np.stack(values) for values in zip(*points)]


def sample_blackjax(pm_model, *, draws: int, tune: int, chains: int, target_accept: float, seed: int):
    """BlackJAX NUTS with window adaptation, chains vectorised with ``jax.vmap``.

    Parameters
    ----------
    pm_model : pymc.Model
    draws, tune, chains : int
    target_accept : float in (0, 1)
    seed : int

    Returns
    -------
    posterior : dict of name -> ndarray (chains, draws, ...)
        Every unobserved variable and deterministic of ``pm_model``, constrained.
    sample_stats : dict of name -> ndarray (chains, draws)
        ``diverging``, ``energy``, ``tree_depth``, ``n_steps``, ``acceptance_rate``, ``lp``.
    sampling_s : float
        Wall time of the adaptation and sampling (JAX's compilation included, as PyMC's
        ``sampling_time`` includes it for NumPyro).
    """
    import blackjax
    import jax
    import jax.numpy as jnp
    from pymc.sampling.jax import get_jaxified_graph, get_jaxified_logp

    logp_fn = get_jaxified_logp(pm_model)  # the log-density itself (PyMC's naming notwithstanding)
    positions = _initial_positions(pm_model, logp_fn, chains, seed)

    def one_chain(key, position):
        warmup_key, sample_key = jax.random.split(key)
        adaptation = blackjax.window_adaptation(blackjax.nuts, logp_fn, target_acceptance_rate=target_accept)
        (state, parameters), _ = adaptation.run(warmup_key, position, num_steps=tune)
        step = blackjax.nuts(logp_fn, **parameters).step

        def one_draw(state, key):
            state, info = step(key, state)
            stats = {
                "diverging": info.is_divergent,
                "energy": info.energy,
                "tree_depth": info.num_trajectory_expansions,
                "n_steps": info.num_integration_steps,
                "acceptance_rate": info.acceptance_rate,
                "lp": state.logdensity,
            }
            return state, (state.position, stats)

        _, (samples, stats) = jax.lax.scan(one_draw, state, jax.random.split(sample_key, draws))
        return samples, stats

    keys = jax.random.split(jax.random.key(seed), chains)
    started = time.perf_counter()
    samples, stats = jax.jit(jax.vmap(one_chain))(keys, [jnp.asarray(values) for values in positions])
    samples = jax.block_until_ready(samples)
    sampling_s = time.perf_counter() - started

    outputs = pm_model.unobserved_value_vars
    constrain = get_jaxified_graph(inputs=pm_model.value_vars, outputs=outputs)
    constrained = jax.jit(jax.vmap(jax.vmap(constrain)))(*samples)
    posterior = {var.name: np.asarray(values) for var, values in zip(outputs, constrained)}
    return posterior, {name: np.asarray(value) for name, value in stats.items()}, sampling_s
