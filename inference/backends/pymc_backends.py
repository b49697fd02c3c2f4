"""Thin back-ends on the model's PyMC declaration: ``nuts``, ``advi``, ``fullrank_advi``,
``pymc_gibbs`` and ``map``.

Each builds ``model.pymc_model(data, ...)``, runs PyMC, and copies the free parameters back
into plain arrays; ``to_idata`` then builds the same DataTree as for every other back-end.
PyMC is imported lazily so that ``import latentzoo.inference`` stays fast.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from ...models.core.protocols import ConjugateEStep, ConjugateSweep
from ..core import ConvergenceWarning, FitRecord, RawResult, nan_padded
from ..diagnostics import check_mixing
from ..options import check_bool, check_choice, check_float, check_int, check_tolerance
from ..registry import register
from .ascent import restart_spread
from .jax_nuts import JAX_SAMPLERS, require_jax, sample_blackjax

__all__ = ["run_nuts", "run_advi", "run_fullrank_advi", "run_pymc_gibbs", "run_map"]

def _one_blas_thread():
    """One BLAS thread for PyMC's optimisers, as ``pm.sample`` does for its chains: the matrices
    are tiny, and OpenBLAS's thread hand-offs made 2000 ADVI steps 10x slower (40 s against 4 s
    measured on two busy cores)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def _pymc_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def _posterior_arrays(model, posterior) -> dict[str, np.ndarray]:
    return {name: np.asarray(posterior[name].values, float) for name in model.param_names}


def _sample_stats(idata) -> dict[str, np.ndarray]:
    if "sample_stats" not in idata.children:
        return {}
    stats = {}
    for name, variable in idata.sample_stats.data_vars.items():
        if variable.dims == ("chain", "draw") and np.issubdtype(variable.dtype, np.number) | (variable.dtype == bool):
            stats[name] = np.asarray(variable.values)
    return stats


def _cores(chains: int, cores) -> int:
    if cores is None:
        return min(chains, os.cpu_count() or 1)
    return check_int(cores, "cores")


#: the values of the nuts back-end's ``sampler`` option
NUTS_SAMPLERS = ("pymc", "nutpie", *JAX_SAMPLERS)


@register(
    "nuts",
    requires=(),
    kind="sampler",
    library="pymc",
    description="PyMC NUTS on the marginalised PyMC model (sampler='pymc', 'nutpie', 'numpyro' or 'blackjax')",
)
def run_nuts(
    model,
    data,
    *,
    rng,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    sampler: str = "pymc",
    target_accept: float = 0.9,
    progressbar: bool = True,
) -> RawResult:
    """NUTS on the marginalised model.

    Parameters
    ----------
    draws, tune, chains : int
    cores : int, optional
        Parallel chains (default: as many as there are cores, at most ``chains``); ignored by
        the JAX samplers, which vectorise the chains.
    sampler : {"pymc", "nutpie", "numpyro", "blackjax"}
        nutpie compiles the model with numba and is usually several times faster per draw.
        ``"numpyro"`` and ``"blackjax"`` translate the log-density to JAX
        (:mod:`latentzoo.models.ops.jax_ops` supplies latentzoo's own Ops) and run all chains as
        one vectorised computation (``chain_method="vectorized"``) on JAX's default device: the
        CPU here, a GPU where JAX finds one. They need ``pip install 'latentzoo[jax]'``.
    target_accept : float in (0, 1)
    progressbar : bool
    """
    sampler = check_choice(sampler, "sampler", NUTS_SAMPLERS)
    target_accept = check_float(target_accept, "target_accept")
    if not target_accept < 1:
        raise ValueError(f"target_accept must lie in (0, 1), got {target_accept}")
    if sampler == "nutpie":
        try:
            import nutpie  # noqa: F401
        except ImportError:
            raise ImportError("sampler='nutpie' needs nutpie: pip install 'latentzoo[bench]' or pip install nutpie") from None
    if sampler in JAX_SAMPLERS:
        require_jax(sampler)
    if sampler == "numpyro":
        # PyMC lifts these out of nuts={...} for its JAX driver (pm.sample refuses them at the top level)
        sampler_options = {"nuts": {"target_accept": target_accept, "chain_method": "vectorized"}}
    else:
        sampler_options = {"target_accept": target_accept}
    result = _sample(
        model, data, rng, "nuts", marginalized=True, draws=draws, tune=tune, chains=chains, cores=cores,
        progressbar=progressbar, nuts_sampler=sampler, **sampler_options,
    )
    result.attrs.update(sampler=sampler, target_accept=target_accept)
    return result


@register(
    "pymc_gibbs",
    requires=(ConjugateSweep,),
    kind="sampler",
    library="pymc",
    description="PyMC compound step: explicit discrete latents by Gibbs-Metropolis, the rest by NUTS",
)
def run_pymc_gibbs(
    model,
    data,
    *,
    rng,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    progressbar: bool = True,
) -> RawResult:
    """PyMC's compound sampler on the explicit-latent model (``marginalized=False``).

    PyMC assigns ``BinaryGibbsMetropolis`` (binary latents) or ``CategoricalGibbsMetropolis``
    to the discrete latent variables and NUTS to the continuous parameters; they alternate.
    """
    return _sample(
        model, data, rng, "pymc_gibbs", marginalized=False, draws=draws, tune=tune, chains=chains, cores=cores,
        progressbar=progressbar,
    )


def _sample(model, data, rng, backend, *, marginalized, draws, tune, chains, cores, progressbar, **sample_options):
    """``pm.sample`` on the model's PyMC declaration, shared by ``nuts`` and ``pymc_gibbs``."""
    import pymc as pm

    draws = check_int(draws, "draws")
    tune = check_int(tune, "tune", minimum=0)
    chains = check_int(chains, "chains")
    cores = _cores(chains, cores)
    progressbar = check_bool(progressbar, "progressbar")
    pm_model = model.pymc_model(data, marginalized=marginalized)
    if sample_options.get("nuts_sampler") == "blackjax":
        posterior, sample_stats, sampling = sample_blackjax(
            pm_model, draws=draws, tune=tune, chains=chains, target_accept=sample_options["target_accept"],
            seed=_pymc_seed(rng),
        )
        draws_by_name = {name: np.asarray(posterior[name], float) for name in model.param_names}
    else:
        with pm_model:
            idata = pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                random_seed=_pymc_seed(rng),
                progressbar=progressbar,
                compute_convergence_checks=False,
                **sample_options,
            )
        sample_stats = _sample_stats(idata)
        draws_by_name = _posterior_arrays(model, idata.posterior)
        sampling = idata.posterior.attrs.get("sampling_time")
    divergences = int(sample_stats["diverging"].sum()) if "diverging" in sample_stats else 0
    converged, diagnostics = check_mixing(draws_by_name, backend, divergences=divergences, model=model)
    return RawResult(
        draws=draws_by_name,
        record=FitRecord(
            converged=converged,
            n_iter=tune + draws,
            point_estimate=False,
            # PyMC's own clock for the sampling; fit() counts the rest of the wall time as compiling
            run_s=float(sampling) if sampling is not None else float("nan"),
        ),
        sample_stats=sample_stats,
        attrs={
            "draws": draws,
            "tune": tune,
            "chains": chains,
            **diagnostics,
        },
    )


# ADVI's ELBO estimate is noisy step to step; compare means over windows of this many steps.
ELBO_WINDOW = 500
#: full-rank ADVI's default tol (advi's is 1e-2): see run_fullrank_advi
FULLRANK_TOL = 1e-3


class _ElboPlateau:
    """PyMC callback: stop when the mean ELBO of the last window differs from the window
    before by less than ``tolerance`` nats (the parameter-change test in PyMC rarely fires under
    stochastic gradients, so runs would otherwise always use every step)."""

    def __init__(self, window: int, tolerance: float):
        self.window = window
        self.tolerance = tolerance
        self.stopped = False
        self._calm_windows = 0
        self.first_step_at = None  # perf_counter() after the first step: compilation is over by then

    def __call__(self, approx, losses, step):
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()
        if step % self.window or len(losses) < 2 * self.window:
            return
        recent = np.mean(losses[-self.window :])
        before = np.mean(losses[-2 * self.window : -self.window])
        # two calm windows in a row, so that one lucky window does not end the run
        self._calm_windows = self._calm_windows + 1 if abs(recent - before) < self.tolerance else 0
        if self._calm_windows >= 2:
            self.stopped = True
            raise StopIteration(f"ELBO changed by {abs(recent - before):.3g} over {self.window} steps")


#: a restart whose final ELBO is below the best by more than this many nats per observation (per
#: time step for an HMM), and at least ELBO_GAP_MIN nats (the final ELBO is a noisy average),
#: ended in another local optimum
ELBO_GAP_PER_OBSERVATION = 0.01
ELBO_GAP_MIN = 5.0


def _variational_start(model, data, rng, start):
    """``start`` of ``pm.fit``: None, the EM solution (``"em"``), or a dict of parameters."""
    if start is None:
        return None, "pymc"
    if isinstance(start, str):
        check_choice(start, "start", ("em",))
        from .em import run as run_em

        with warnings.catch_warnings():
            # a start only needs to be near a good optimum; EM's own convergence is not the point
            warnings.simplefilter("ignore", ConvergenceWarning)
            raw = run_em(model, data, rng=rng, progressbar=False)
        params = {name: np.asarray(value)[0, 0] for name, value in raw.draws.items()}
        origin = "em"
    elif isinstance(start, dict):
        params = model.check_params(start, name="start")
        origin = "dict"
    else:
        raise TypeError(f"start must be None, 'em' or a dict of parameters, got {type(start).__name__}")
    return model.pymc_initial_point(params), origin


def _fit_variational_once(pm_model, method, *, seed, n_steps, learning_rate, tol_nats, progressbar, start):
    import pymc as pm

    convergence = _ElboPlateau(window=ELBO_WINDOW, tolerance=tol_nats)
    started = time.perf_counter()
    with pm_model, _one_blas_thread():
        try:
            approx = pm.fit(
                n=n_steps,
                method=method,
                random_seed=seed,
                progressbar=progressbar,
                callbacks=[convergence],
                obj_optimizer=pm.adam(learning_rate=learning_rate),
                start=start,
            )
        except FloatingPointError as error:
            raise FloatingPointError(
                f"{method} stopped: {error}. Try a smaller learning_rate (now {learning_rate}) or "
                "another random_seed; for mixtures, start from the EM solution (start='em')"
            ) from None
    # pm.fit compiles its step function before the first step, so the time to the first callback
    # is compilation
    compiling = (convergence.first_step_at or time.perf_counter()) - started
    return approx, convergence.stopped, compiling


def _run_variational(model, data, rng, method, *, n_steps, draws, learning_rate, tol, progressbar, start=None, n_init=1):
    n_steps = check_int(n_steps, "n_steps")
    draws = check_int(draws, "draws")
    learning_rate = check_float(learning_rate, "learning_rate")
    tol = check_tolerance(tol, "tol")
    progressbar = check_bool(progressbar, "progressbar")
    n_init = check_int(n_init, "n_init")
    start_point, origin = _variational_start(model, data, rng, start)
    pm_model = model.pymc_model(data, marginalized=True)
    # tolerances scale with the model's objective_scale (time steps for an HMM: one sequence of
    # ten rolls asked for 0.01 nats and ran all 20,000 steps)
    scale = model.objective_scale(data)
    seeds = [_pymc_seed(rng) for _ in range(n_init)]
    starts = [start_point] * n_init
    if start is None and n_init > 1 and isinstance(model, ConjugateEStep):
        # restarts differing only in the seed share ADVI's deterministic initial mean and land in
        # the same optimum; the later ones start from the model's own random initial points (a
        # model without them restarts from PyMC's start with other seeds)
        from .em import resolve_init

        draw_start = resolve_init(model, data, None, rng, 1)
        starts[1:] = [model.pymc_initial_point(draw_start(rng)) for _ in range(n_init - 1)]
    timer = time.perf_counter()
    runs = [
        _fit_variational_once(
            pm_model, method, seed=seed, n_steps=n_steps, learning_rate=learning_rate,
            tol_nats=tol * scale, progressbar=progressbar, start=restart_point,
        )
        for seed, restart_point in zip(seeds, starts)
    ]
    fitting = time.perf_counter() - timer
    elbos = [-np.asarray(approx.hist, float) for approx, _, _ in runs]
    finals = np.array([float(np.mean(elbo[-100:])) for elbo in elbos])
    best = int(np.nanargmax(finals))
    approx, converged, _ = runs[best]
    with pm_model:
        posterior = approx.sample(draws, random_seed=seeds[best]).posterior
    if not converged:
        warnings.warn(
            f"{method} did not converge in {n_steps} steps; raise n_steps or loosen tol",
            ConvergenceWarning,
            stacklevel=3,
        )
    gap = max(ELBO_GAP_MIN, ELBO_GAP_PER_OBSERVATION * scale)
    behind = [index for index, value in enumerate(finals) if finals[best] - value > gap]
    if behind:
        warnings.warn(
            f"{method}: {len(behind)} of {n_init} restarts ended in a worse local optimum (final ELBOs "
            f"{np.round(finals, 1).tolist()}, best {finals[best]:.1f}); the best was kept. The approximation "
            "has several optima: keep n_init > 1, or start from the EM solution (start='em')",
            ConvergenceWarning,
            stacklevel=3,
        )
    history = nan_padded(elbos)
    return RawResult(
        draws=_posterior_arrays(model, posterior),
        record=FitRecord(
            converged=converged,
            n_iter=int(elbos[best].size),
            point_estimate=False,
            objective=float(finals[best]),
            objective_name="ELBO",
            objective_spread=restart_spread(finals),
            # pm.fit compiles before its first step: that part of the fitting time is not the run
            run_s=fitting - float(sum(compiling for _, _, compiling in runs)),
        ),
        history={"elbo": history if n_init > 1 else history[0]},
        attrs={
            "learning_rate": learning_rate,
            "n_steps": n_steps,
            "tol": tol,
            "start": origin,
            "n_init": n_init,
            "best_restart": best,
            "restart_elbos": repr(np.round(finals, 3).tolist()),
            "restarts_behind": len(behind),
        },
    )


@register(
    "advi",
    requires=(),
    kind="variational",
    library="pymc",
    description="PyMC mean-field ADVI on the marginalised PyMC model",
)
def run_advi(
    model,
    data,
    *,
    rng,
    n_steps: int = 20_000,
    draws: int = 1000,
    learning_rate: float = 0.01,
    tol: float = 1e-2,
    start=None,
    n_init: int = 1,
    progressbar: bool = True,
) -> RawResult:
    """Mean-field Gaussian ADVI (``pm.fit(method="advi")``) with Adam.

    Parameters
    ----------
    n_steps : int
        Maximum optimisation steps; it stops earlier once the parameters settle (``tol``).
    draws : int
        Draws from the fitted approximation.
    learning_rate : float
    tol : float
        Stop when the mean ELBO over 500 steps changes by less than ``tol`` nats per
        observation (per time step for an HMM) from the previous 500.
    start : None, "em" or dict
        Where the approximation's mean starts (``pm.fit(start=...)``): PyMC's initial point
        (None), the EM (MAP) solution (``"em"``: the remedy for mixtures, whose ELBO has poor
        local optima such as two components collapsed onto one cluster), or a dict of parameters.
    n_init : int
        Restarts: with ``start=None`` the first from PyMC's initial point and the others from the
        model's random initial points (as EM's restarts); with a given ``start`` all from it, with
        different seeds. The one with the highest final ELBO (mean of its last 100 steps) is
        kept, and a ConvergenceWarning reports restarts that ended more than max(5, 0.01 N)
        nats below it (N observations, or time steps for an HMM). The history has one row per restart.
    progressbar : bool
    """
    return _run_variational(
        model, data, rng, "advi", n_steps=n_steps, draws=draws, learning_rate=learning_rate, tol=tol,
        progressbar=progressbar, start=start, n_init=n_init,
    )


@register(
    "fullrank_advi",
    requires=(),
    kind="variational",
    library="pymc",
    description="PyMC full-rank ADVI on the marginalised PyMC model",
)
def run_fullrank_advi(
    model,
    data,
    *,
    rng,
    n_steps: int = 20_000,
    draws: int = 1000,
    learning_rate: float = 0.01,
    tol: float = FULLRANK_TOL,
    start=None,
    n_init: int = 1,
    progressbar: bool = True,
) -> RawResult:
    """Full-rank Gaussian ADVI (``pm.fit(method="fullrank_advi")``); options (including the
    mixture remedies ``start="em"`` and ``n_init``) as for ``advi``, except that ``tol``
    defaults to 1e-3 nats per observation (``advi``: 1e-2).

    The full-rank ELBO settles more slowly, and advi's 1e-2 stopped it early: on the NIW
    posterior of Old Faithful (n = 272) it stopped after 14,500-17,000 steps with Sigma's sds
    1.3-1.6 times the exact ones (two seeds). With 1e-3 it ran 17,000-18,000 steps (about the
    same run time) and one seed reached 1.06-1.10 times; the other stayed at 1.12-1.37, so on
    such a posterior raise ``n_steps`` or check the ELBO history before trusting the spread."""
    return _run_variational(
        model,
        data,
        rng,
        "fullrank_advi",
        n_steps=n_steps,
        draws=draws,
        learning_rate=learning_rate,
        tol=tol,
        progressbar=progressbar,
        start=start,
        n_init=n_init,
    )


def _map_run_s(iteration_times: list) -> float:
    """Seconds from the optimiser's first iteration to its last (find_MAP compiles before the
    first and after the last); 0 if it reported none. (A start at the mode, which the default
    em-start often is, stops before the first iteration: then find_MAP's wall time is all
    compilation, and a NaN here would have fit() count it all as the run.)"""
    if not iteration_times:
        return 0.0
    return iteration_times[-1] - iteration_times[0]


#: the values of map's ``init`` that are not a strategy of the model's ``initial_params``
MAP_EM_START = "em-start"


def _map_start(model, data, init, rng) -> tuple[dict | None, str]:
    """map's starting parameters (None: PyMC's initial point) and where they came from."""
    from .em import em_start, resolve_init

    if init is None:
        return None, "pymc"
    if isinstance(init, str) and init == MAP_EM_START:
        if not isinstance(model, ConjugateEStep):
            raise ValueError(
                f"init={MAP_EM_START!r} runs short EM fits, and {type(model).__name__} has no EM hooks; "
                "use init='random', another strategy of the model, or a dict of parameters"
            )
        with warnings.catch_warnings():
            # the start's short EM runs stop after START_MAX_ITER by design; find_MAP finishes the climb
            warnings.simplefilter("ignore", ConvergenceWarning)
            return em_start(model, data, rng), MAP_EM_START
    params = resolve_init(model, data, init, rng, 1)(rng)
    return params, "dict" if isinstance(init, dict) else init


@register(
    "map",
    requires=(),
    kind="point",
    library="pymc",
    description="pm.find_MAP on the marginalised PyMC model (cross-checks em)",
)
def run_map(model, data, *, rng, init=MAP_EM_START, max_iter: int = 5000, progressbar: bool = True) -> RawResult:
    """Maximise the PyMC model's log-density (without Jacobian terms: the mode in the
    original parameter space, the quantity MAP-EM maximises).

    Parameters
    ----------
    init : str, dict or None
        Starting point. ``"em-start"`` (the default, for models with EM hooks): the start the
        Gibbs sampler and VB use (:func:`~latentzoo.inference.backends.em.em_start`), the best
        log-posterior of several short MAP-EM runs from the model's own initial points (k-means++
        for the Gaussian models) and from prior draws, so that map looks for the same mode as
        ``em``'s restarts. A strategy name as for ``em`` (``"random"``, ``"prior"``, ...): one
        start from the model's ``initial_params``. ``"random"`` was the default before
        ``"em-start"``: a single random start stopped in a worse local optimum than ``em`` on the
        Gaussian mixture, the categorical HMMs and the Gaussian HMM (the GMM of
        tests/test_contract_models.py: log-posterior -299.0 against EM's -231.8); it remains the
        choice for a model without EM hooks, and for checking the PyMC declaration independently
        of EM. A dict of parameters, or None for PyMC's initial point, which can sit on a saddle
        of a symmetric posterior (three coins: p = q), where the optimiser stops at once.
    max_iter : int
        Iterations of the optimiser (L-BFGS-B).
    progressbar : bool

    Returns
    -------
    RawResult with one draw: the mode; attrs ``init`` records where the optimiser started
    (``"em-start"``, the strategy name, ``"dict"`` or ``"pymc"``).
    """
    import pymc as pm

    max_iter = check_int(max_iter, "max_iter")
    progressbar = check_bool(progressbar, "progressbar")
    start_params, origin = _map_start(model, data, init, rng)
    start = None if start_params is None else model.pymc_initial_point(start_params)
    pm_model = model.pymc_model(data, marginalized=True)
    # find_MAP compiles before the optimiser's first iteration and after its last (the
    # output function): the optimiser's callbacks mark where the optimisation itself ran
    iteration_times = []
    with pm_model, _one_blas_thread():
        result = pm.find_MAP(
            initvals=start, maxiter=max_iter, progressbar=progressbar, random_seed=_pymc_seed(rng),
            # the starting point is chosen above (init); PyMC's jitter would move it
            jitter=False, return_inferencedata=True, idata_kwargs={"include_transformed": True},
            callback=lambda *_: iteration_times.append(time.perf_counter()),
        )
        posterior = result["posterior"]
        value_point = {var.name: posterior[var.name].values[0, 0] for var in pm_model.value_vars}
        log_density = float(pm_model.compile_logp(jacobian=False)(value_point))
    optimizer = result["optimizer_result"]
    converged = bool(optimizer["success"].values) if "success" in optimizer else True
    if not converged:
        message = str(optimizer["message"].values) if "message" in optimizer else ""
        warnings.warn(
            f"map: the optimiser stopped without converging ({message}); "
            "raise max_iter or give a starting point (init)",
            ConvergenceWarning,
            stacklevel=3,
        )
    draws = {name: np.asarray(posterior[name].values, float) for name in model.param_names}
    return RawResult(
        draws=draws,
        record=FitRecord(
            converged=converged,
            n_iter=int(optimizer["nit"].values) if "nit" in optimizer else 0,
            point_estimate=True,
            objective=log_density,
            objective_name="log-posterior",
            run_s=_map_run_s(iteration_times),
        ),
        history={"log_posterior": np.array([log_density])},
        attrs={"init": origin},
    )
