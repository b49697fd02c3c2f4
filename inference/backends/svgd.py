"""``svgd``: PyMC's Stein variational gradient descent on the marginalised model.

A set of particles in the unconstrained space moves along the kernelised Stein direction: each is
pulled up the log-density's gradient, averaged over its neighbours with an RBF kernel, and pushed
away from them by the kernel's gradient (Liu and Wang 2016). With one particle it is gradient
ascent to the mode; with many it approximates the posterior by the particles themselves, which
are the draws of the result (one chain, ``n_particles`` draws).

PyMC draws the particles' initial jitter from NumPy's global random state; here the initial
particles are drawn from the back-end's own ``rng`` and placed into PyMC's approximation before
the first step, so that a seed reproduces the fit.

PyMC rewrites and compiles the particle step on every ``fit`` call (5 s warm on the three coins,
1-2 min cold on the NIW). The step is kept instead with the model's cached
:class:`~.unconstrained.FlatPosterior` (one per model structure and data shape, the data in
shared variables), per number of particles, temperature and learning rate; before each fit the
step's state (Adam's moments and counter) is put back to its values before the first step and
the particles are set, so a cached fit runs exactly the steps a fresh one would.
"""

from __future__ import annotations

import time

import numpy as np

from ..core import FitRecord, RawResult
from ..options import check_bool, check_float, check_int
from ..registry import register
from .pymc_backends import _one_blas_thread, _pymc_seed
from .unconstrained import COMPILATIONS, _model_shared, flat_posterior

__all__ = ["run_svgd"]


@register(
    "svgd",
    requires=(),
    kind="variational",
    library="pymc",
    description="PyMC Stein variational gradient descent (particles) on the marginalised model",
)
def run_svgd(
    model,
    data,
    *,
    rng,
    n_particles: int = 100,
    n_steps: int = 2000,
    learning_rate: float = 0.05,
    jitter: float | None = None,
    temperature: float = 1.0,
    init=None,
    progressbar: bool = True,
) -> RawResult:
    """SVGD (``pm.SVGD`` through ``pm.fit``) with Adam.

    Parameters
    ----------
    n_particles : int
        Particles, which are also the draws of the result. The RBF kernel's bandwidth (the
        median heuristic) and the repulsion need tens of particles to represent a spread;
        two at least.
    n_steps : int
        Optimisation steps (SVGD has no objective to monitor, so all of them run).
    learning_rate : float
        Adam's step size.
    jitter : float, optional
        Standard deviation of Gaussian noise added to the initial particles, in the
        unconstrained space. Default 0 with ``init="prior"`` (the draws are spread already), 0.3
        otherwise (particles at one point would give the kernel a bandwidth of zero; wider
        starts slowed the NIW's Sigma: its sds were still 30% too wide after 1000 steps from
        jitter 1).
    temperature : float
        PyMC's tempering of the density term: above 1 the particles spread more.
    init : str, dict or None
        None (default): all particles jittered around PyMC's initial point (the start NUTS
        uses: the priors' central values, or the model's own ``initval``). ``"prior"``: every
        particle starts at its own draw from the prior, so that each mode's share of particles
        is its prior mass (slow when the prior is much wider than the posterior: on the NIW
        most particles were still far out after 2000 steps). Another strategy name as for
        ``em`` (e.g. ``"random"``) or a dict of parameters: one start, jittered.
    progressbar : bool

    Notes
    -----
    SVGD is known to under-estimate the spread in more than a few dimensions (the repulsion
    weakens as the kernel's bandwidth grows with dimension; Ba et al. 2021), and with a finite
    number of particles its estimates of tails are coarse. The fit history has no objective:
    PyMC records the Stein operator's norm per step, kept as ``stein_norm`` when it is finite.
    """
    import pymc as pm

    # two at least: the kernel's bandwidth is the particles' median distance
    n_particles = check_int(n_particles, "n_particles", minimum=2)
    n_steps = check_int(n_steps, "n_steps")
    learning_rate = check_float(learning_rate, "learning_rate")
    from_prior = isinstance(init, str) and init == "prior"
    if jitter is None:
        jitter = 0.0 if from_prior else 0.3
    jitter = check_float(jitter, "jitter", positive=False)
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0, got {jitter}")
    if not from_prior and not jitter > 0:
        raise ValueError(f"jitter must be positive when all particles start at one point (init={init!r}), got {jitter}")
    temperature = check_float(temperature, "temperature")
    progressbar = check_bool(progressbar, "progressbar")
    from .em import resolve_init

    target = flat_posterior(model, data)
    if from_prior:
        # SVGD moves particles along a deterministic flow that does not carry one across a
        # valley of low density, so each mode's share of particles is fixed by where they start
        initial = target.prior_starts(n_particles, rng)
    else:
        start_params = resolve_init(model, data, init, rng, 1)(rng) if init is not None else None
        initial = np.broadcast_to(target.flat_start(start_params), (n_particles, target.size))
    initial = initial + rng.normal(0.0, jitter, size=(n_particles, target.size)) if jitter > 0 else initial
    seed = _pymc_seed(rng)
    inference, group = _cached_inference(target, n_particles, temperature, learning_rate, seed)
    # the approximation's flat layout, variable by variable, in FlatPosterior's order
    slices = [group.ordering[var.name][1] for var in target.pm_model.value_vars]
    histogram = np.empty((n_particles, target.size))
    offset = 0
    for piece in slices:
        width = piece.stop - piece.start
        histogram[:, piece] = initial[:, offset : offset + width]
        offset += width
    group.histogram.set_value(histogram.astype(group.histogram.dtype))
    started = time.perf_counter()
    with target.pm_model, _one_blas_thread():
        approx = inference.fit(n_steps, progressbar=progressbar, obj_optimizer=pm.adam(learning_rate=learning_rate))
    run_s = time.perf_counter() - started
    particles = np.asarray(group.histogram.get_value(), float)
    flat = np.concatenate([particles[:, piece] for piece in slices], axis=1)
    draws = target.constrained(flat[None])
    if not all(np.isfinite(values).all() for values in draws.values()):
        raise FloatingPointError(
            f"svgd: particles left the support after {n_steps} steps; lower learning_rate (now {learning_rate})"
        )
    norms = np.asarray(approx.hist, float)
    history = {"stein_norm": norms} if norms.size and np.isfinite(norms).any() else {}
    return RawResult(
        draws=draws,
        record=FitRecord(converged=True, n_iter=n_steps, point_estimate=False, run_s=run_s),
        history=history,
        attrs={
            "n_particles": n_particles,
            "n_steps": n_steps,
            "learning_rate": learning_rate,
            "jitter": jitter,
            "temperature": temperature,
        },
    )


def _cached_inference(target, n_particles: int, temperature: float, learning_rate: float, seed: int):
    """PyMC's SVGD object on ``target``'s model, its step compiled at most once per settings.

    Returns the ``pm.SVGD`` object, ready for ``fit`` (its step's state reset, its history
    empty), and its one approximation group. The step has no random variables (SVGD moves the
    particles deterministically; checked when it is compiled, else it is not kept), so PyMC's
    seed matters only for the approximation's construction, which the particles set afterwards
    override.
    """
    import pymc as pm
    from pytensor.tensor.random.type import RandomType

    key = ("svgd", n_particles, temperature, learning_rate)
    entry = target.memo.get(key)
    if entry is None:
        with target.pm_model:
            # jitter=0: PyMC's own jitter uses NumPy's global random state; the particles are set by the caller
            inference = pm.SVGD(n_particles=n_particles, jitter=0.0, random_seed=seed, temperature=temperature)
        entry = {"inference": inference, "step": None, "state": None}
        build = inference.objective.step_function

        def step_function(**kwargs):
            # Inference.fit asks for the step on every call: compile it on the first only
            if entry["step"] is None:
                step = build(**kwargs)
                COMPILATIONS["svgd_step"] += 1
                model_shared = {*(target._shared or {}).values(), *_model_shared(target.pm_model).values()}
                state = [var for var in step.get_shared() if var not in model_shared]
                if any(isinstance(var.type, RandomType) for var in state):
                    return step  # random: a reused step would not repeat a fresh one's draws
                entry["step"] = step
                # Adam's moments and counter before any step (the particles are set by the caller)
                entry["state"] = [(var, var.get_value()) for var in state]
            return entry["step"]

        inference.objective.step_function = step_function
        target.memo[key] = entry
    elif entry["state"] is not None:
        for var, value in entry["state"]:
            var.set_value(value.copy())
    inference = entry["inference"]
    inference.hist = np.asarray(())
    (group,) = inference.approx.groups
    return inference, group
