"""``em``: expectation-maximisation, MAP under the model's priors or (``mle=True``) plain ML.

The M-step is the mode of the conjugate posterior given the E-step's *expected* sufficient
statistics (``model.conditional_posterior(stats).mode()``), so MAP-EM and the Gibbs sampler
share the same algebra. The objective is log p(x | theta) + log p(theta) (MAP) or
log p(x | theta) (MLE); it never decreases, and the loop raises if it does.
"""

from __future__ import annotations

import numpy as np

from ...models.core.conjugate import apply_to_factors
from ...models.core.protocols import ConjugateEStep, HardAssignments
from ..core import FINAL_PREFIX, FitRecord, RawResult
from ..options import check_bool, check_choice, check_int, check_tolerance
from ..progress import progress_bar
from ..registry import register
from .ascent import ascend, best_of_restarts, restart_spread

__all__ = ["run", "check_map_exists", "em_start", "jittered_start", "START_RESTARTS", "START_MAX_ITER"]

#: the samplers' and VB's start (:func:`em_start`): this many short EM runs ...
START_RESTARTS = 6
#: ... of at most this many iterations each (a start needs the right mode, not the last digit)
START_MAX_ITER = 100
#: ... stopped when the log posterior rises by less than this per observation
START_TOL = 1e-6


def check_map_exists(model) -> None:
    """MAP-EM needs a bounded posterior density: every Beta/Dirichlet concentration >= 1
    (families without concentrations, such as the Normal-Inverse-Wishart, always have a mode)."""
    for name, prior in model.prior().items():
        concentrations = getattr(prior, "concentrations", None)
        if concentrations is not None and np.any(concentrations < 1):
            raise ValueError(
                f"the prior on {name!r} has a concentration below 1, so the posterior density is "
                "unbounded at the boundary and the MAP does not exist; use mle=True or priors >= 1"
            )


def _map_exists(model) -> bool:
    try:
        check_map_exists(model)
    except ValueError:
        return False
    return True


#: objectives within this relative distance of the best so far count as equal in em_start
START_TIE_RTOL = 1e-9


def em_start(model, data, rng, *, n_init: int = START_RESTARTS, max_iter: int = START_MAX_ITER) -> dict:
    """A good starting point for Gibbs and VB: the best of ``n_init`` short MAP-EM runs.

    The restarts alternate between the model's default ``initial_params`` strategy (k-means++
    for the Gaussian models) and draws from the prior (``"prior"``, where the model offers it;
    such starts lie in the prior's labelling when the priors are state-specific). The end point
    with the highest log posterior, log p(x | theta) + log p(theta), is kept: with
    state-specific priors that also picks the prior's labelling of the states. Where the MAP does
    not exist (a Beta/Dirichlet concentration below 1), the runs maximise the likelihood and the
    best likelihood wins. A run that fails (a collapsing component) is left out.

    Parameters
    ----------
    model : a model with the :class:`~latentzoo.models.core.protocols.ConjugateEStep` hooks
    data : the validated data
    rng : numpy.random.Generator
        Every restart gets a child generator, so the start is a function of ``rng``'s seed.
    n_init, max_iter : int

    Returns
    -------
    dict of str -> ndarray
        The parameters where the best run stopped.
    """
    mle = not _map_exists(model)
    strategies = [None]
    try:
        model.initial_params(data, np.random.default_rng(0), "prior")
        strategies.append("prior")
    except ValueError:  # no prior strategy, or a prior it cannot draw from (data-driven)
        pass

    def step(params):
        stats, log_lik = model.expected_stats(data, params)
        objective = log_lik if mle else log_lik + float(model.log_prior(params))
        return apply_to_factors(model.conditional_posterior(stats, mle=mle), "mode"), objective

    best, best_objective = None, -np.inf
    scale = model.objective_scale(data)
    round_off = float(model.objective_round_off(data))
    for index, child in enumerate(rng.spawn(n_init)):
        strategy = strategies[index % len(strategies)]
        try:
            params = model.initial_params(data, child) if strategy is None else model.initial_params(data, child, strategy)
            run = ascend(params, step, tol=START_TOL, max_iter=max_iter, n_observations=scale, round_off=round_off,
                         objective_name="log-posterior")
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            continue  # a collapsing component or a start at the boundary: the other restarts remain
        # a later run must be better by more than round-off: equal optima (the same mode with its
        # labels permuted, or points of a flat ridge) then keep the first, whatever the order in
        # which the sums were added (chunked data must start where the data in memory do)
        if best is None or run.objective > best_objective + START_TIE_RTOL * max(1.0, abs(best_objective)):
            best, best_objective = run.state, run.objective
    if best is None:
        return model.initial_params(data, rng)
    return best


def jittered_start(model, data, params: dict, rng) -> dict:
    """One chain's start near ``params``: a draw from the conjugate posterior of the parameters
    given the expected statistics at ``params`` (``conditional_posterior(expected_stats).sample``),
    so the chains differ by about the posterior's own spread and stay in the mode (and labelling)
    of ``params``."""
    stats, _ = model.expected_stats(data, params)
    return apply_to_factors(model.conditional_posterior(stats), "sample", rng)


def resolve_init(model, data, init, rng, n_init: int):
    """Return a function giving the starting parameters of one restart (``init=None``: the
    model's default strategy, e.g. k-means++ for the Gaussian mixture).

    One start is drawn from ``rng`` now, so that a bad strategy name (or data the strategy cannot
    start from) raises before any work. That draw also moves ``rng`` on, and callers that use
    ``rng`` afterwards (ADVI started at EM's point draws from it) depend on where it is: drawing
    it no more changed ADVI's seeded result on the Nile (tests/test_local_level.py).
    """
    if init is None:
        model.initial_params(data, rng)
        return lambda child_rng: model.initial_params(data, child_rng)
    if isinstance(init, dict):
        params = model.check_params(init, name="init")
        if n_init > 1:
            raise ValueError("n_init > 1 restarts from the same init dict would repeat one run; use n_init=1")
        return lambda child_rng: params
    if not isinstance(init, str):
        raise TypeError(f"init must be a strategy name or a dict of parameters, got {type(init).__name__}")
    model.initial_params(data, rng, init)  # validates the strategy name before any work
    return lambda child_rng: model.initial_params(data, child_rng, init)


@register(
    "em",
    requires=(ConjugateEStep,),
    kind="point",
    description="hand-written EM: MAP under the priors (mle=True: maximum likelihood)",
)
def run(
    model,
    data,
    *,
    rng,
    init=None,
    n_init: int | None = None,
    tol: float = 1e-8,
    max_iter: int = 1000,
    mle: bool = False,
    assignment: str = "soft",
    progressbar: bool = True,
) -> RawResult:
    """Run EM from ``n_init`` starting points and keep the one with the highest objective.

    Parameters
    ----------
    init : str, dict or None
        A strategy (``"random"``, ``"prior"``; models may add more, e.g. the Gaussian mixture's
        ``"kmeans++"``), a dict of parameters, or None for the model's default strategy.
    n_init : int, optional
        Number of restarts; default 5 from random starts, 1 from an init dict (which allows
        no more).
    tol : float >= 0
        Stop when the objective rises by less than ``tol`` per observation; 0 runs exactly
        ``max_iter`` iterations (reported as not converged).
    max_iter : int
    mle : bool
        Maximise the likelihood instead of the posterior density.
    assignment : {"soft", "hard"}
        ``"soft"``: EM. ``"hard"``: classification EM (Celeux & Govaert 1992), for models with a
        ``classification_stats`` hook: each point is assigned to its most probable latent value
        between the E- and M-steps, and the objective is the classification log-likelihood
        sum_n max_z log p(x_n, z | theta) (plus the log prior), which it never decreases. With
        equal fixed weights and identity covariances a Gaussian mixture's version is K-means
        (``GaussianMixture.kmeans``).
    progressbar : bool

    Returns
    -------
    RawResult with one chain and one draw; history ``log_likelihood`` (MLE) or
    ``log_posterior`` (MAP) per restart and iteration, and ``final_<param>`` of shape
    (n_init, *param_shape): where each restart stopped.
    """
    # restarts only make sense from random starting points
    n_init = check_int(n_init, "n_init") if n_init is not None else (1 if isinstance(init, dict) else 5)
    tol = check_tolerance(tol, "tol")
    max_iter = check_int(max_iter, "max_iter")
    mle = check_bool(mle, "mle")
    assignment = check_choice(assignment, "assignment", ("soft", "hard"))
    if assignment == "hard" and not isinstance(model, HardAssignments):
        raise ValueError(f"assignment='hard' needs a model with hard assignments; {type(model).__name__} has none")
    progressbar = check_bool(progressbar, "progressbar")
    if not mle:
        check_map_exists(model)
    start_at = resolve_init(model, data, init, rng, n_init)
    objective_name = "log-likelihood" if mle else "log-posterior"
    if assignment == "hard":
        objective_name = "classification " + objective_name
    expected_stats = model.classification_stats if assignment == "hard" else model.expected_stats
    n_observations = model.objective_scale(data)
    round_off = float(model.objective_round_off(data))

    def step(params):
        stats, log_lik = expected_stats(data, params)
        objective = log_lik if mle else log_lik + float(model.log_prior(params))
        posterior = model.conditional_posterior(stats, mle=mle)
        return apply_to_factors(posterior, "mode"), objective

    ends = []  # each restart's final parameters, in restart order (the picture's fixed points)
    with progress_bar("EM", n_init * max_iter, progressbar) as progress:

        def run_one(child_rng):
            run = ascend(
                start_at(child_rng),
                step,
                tol=tol,
                max_iter=max_iter,
                n_observations=n_observations,
                round_off=round_off,
                objective_name=objective_name,
                progress=progress,
            )
            progress.advance(max_iter - run.n_iter)  # a restart that converged early is done
            ends.append(run.state)
            return run

        best, histories, best_index = best_of_restarts(
            run_one,
            n_init,
            rng,
            what="EM",
            advice="raise max_iter, loosen tol, or try other starting points (init, n_init)",
        )
    draws = {name: np.asarray(value, float)[None, None] for name, value in best.state.items()}
    finals = {
        FINAL_PREFIX + name: np.stack([np.asarray(end[name], float) for end in ends]) for name in model.param_names
    }
    return RawResult(
        draws=draws,
        record=FitRecord(
            converged=best.converged,
            n_iter=best.n_iter,
            point_estimate=True,
            objective=best.objective,
            objective_name=objective_name,
            objective_spread=restart_spread(histories),
        ),
        # the objective first: readers take the first entry as the objective's trace
        history={objective_name.replace("-", "_").replace(" ", "_"): histories, **finals},
        attrs={
            "best_restart": best_index,
            "mle": mle,
            "n_init": n_init,
            "tol": tol,
            "max_iter": max_iter,
            "init": init if isinstance(init, str) else ("default" if init is None else "dict"),
            "assignment": assignment,
        },
    )
