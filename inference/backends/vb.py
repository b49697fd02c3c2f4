"""``vb``: closed-form mean-field variational Bayes (CAVI / VBEM).

q(z) q(theta) with q(theta) in the prior's conjugate family. Each iteration updates q(z) from
the factors' expected logarithms (``model.vb_expected_stats``) and then every factor to the
conjugate posterior given the expected statistics (``model.conditional_posterior``, the same
algebra EM and Gibbs use). The ELBO is recorded per iteration and never decreases. The final
q(theta) is returned as data (the ``variational`` group), beside draws from it.

By default the first restart starts from the best of a few short MAP-EM runs (``em.em_start``,
the start the Gibbs sampler uses): q(theta) is the conjugate posterior given the expected
statistics there. The other restarts start from random soft assignments
(``model.initial_factors``); the highest ELBO wins. Random starts alone can all end in a poor
local optimum, or in the mirror-image labelling of states that state-specific priors tell apart.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ...models.core.conjugate import apply_to_factors
from ...models.core.protocols import ConjugateEStep, MeanField
from ..core import FitRecord, RawResult
from ..options import check_bool, check_choice, check_int, check_tolerance
from ..progress import progress_bar
from ..registry import register
from .ascent import ascend, best_of_restarts, restart_spread

__all__ = ["run", "elbo_step", "variational_parameters"]


def elbo_step(model, data):
    """The CAVI step: ``factors -> (next factors, ELBO(factors with optimal q(z)))``."""
    prior = model.prior()

    def step(factors):
        stats, data_term = model.vb_expected_stats(data, factors)
        kl = sum(_total(factors[name].kl(prior[name])) for name in factors)
        return model.conditional_posterior(stats), data_term - kl

    return step


def _total(value) -> float:
    """``float(np.sum(value))``, without ``np.sum``'s Python-level dispatch for a scalar (a
    scalar factor's KL, once per factor and iteration)."""
    return float(value.sum()) if isinstance(value, np.ndarray) else float(value)


def variational_parameters(model, factors: dict) -> dict:
    """q(theta) as data: every parameter of every factor, with the model's dims.

    A parameter is named ``<variable>_<parameter>``; a joint factor joins its variables' names
    (the Normal-Inverse-Wishart over ``("means", "covs")`` gives ``means_covs_m``, ``_kappa``,
    ``_nu`` and ``_S``). The conjugate families are frozen dataclasses whose fields are their
    parameters (Beta: ``alpha``, ``beta``; Gamma: ``shape``, ``rate``; Dirichlet: ``concentration``; MaskedDirichlet:
    ``concentration`` and the ``mask`` of allowed entries; NormalInverseWishart: ``m``,
    ``kappa``, ``nu``, ``S``). A parameter with as many dims as one of the factor's variables
    takes that variable's dims (a concentration, ``m``, ``S``); one with fewer takes the leading
    (batch) dims of the first variable (``kappa`` and ``nu``: one per component).

    Parameters
    ----------
    model : a model with ``param_dims()``
    factors : dict of str or tuple of str -> conjugate distribution
        The factors as ``model.conditional_posterior`` returns them.

    Returns
    -------
    dict of str -> (ndarray, tuple of str)
        What :class:`~latentzoo.inference.core.RawResult` takes as ``variational``: each array
        has the shape of its dims (no sample dims).
    """
    param_dims = model.param_dims()
    parameters = {}
    for key, factor in factors.items():
        names = key if isinstance(key, tuple) else (key,)
        if not dataclasses.is_dataclass(factor):
            raise TypeError(
                f"factor {key!r} is a {type(factor).__name__}, not a conjugate family (a dataclass of its parameters)"
            )
        for field in dataclasses.fields(factor):
            array = np.array(getattr(factor, field.name))
            dims = next(
                (param_dims[name] for name in names if len(param_dims[name]) == array.ndim),
                param_dims[names[0]][: array.ndim],
            )
            parameters[f"{'_'.join(names)}_{field.name}"] = (array, tuple(dims))
    return parameters


@register(
    "vb",
    requires=(MeanField,),
    kind="variational",
    description="hand-written mean-field variational Bayes (CAVI) with the ELBO per iteration",
)
def run(
    model,
    data,
    *,
    rng,
    n_init: int = 5,
    tol: float = 1e-8,
    max_iter: int = 1000,
    draws: int = 1000,
    init=None,
    progressbar: bool = True,
) -> RawResult:
    """Run CAVI from ``n_init`` starts (the EM start and random soft assignments); keep the
    highest ELBO.

    Parameters
    ----------
    n_init : int
        Number of CAVI runs: the first from the EM start (``init=None``), the others from random
        soft assignments.
    tol : float >= 0
        Stop when the ELBO rises by less than ``tol`` per observation; 0 runs exactly
        ``max_iter`` iterations (reported as not converged).
    max_iter : int
    draws : int
        Number of draws taken from the final q(theta) for the posterior group.
    init : {None, "random"}
        None: the first run starts from the EM start (for models with EM's hooks);
        ``"random"``: every run from random soft assignments.
    progressbar : bool

    Returns
    -------
    RawResult with one chain of ``draws`` draws from q(theta); history ``elbo``; the parameters
    of q(theta) in ``variational`` (see :func:`variational_parameters`).
    """
    n_init = check_int(n_init, "n_init")
    tol = check_tolerance(tol, "tol")
    max_iter = check_int(max_iter, "max_iter")
    draws = check_int(draws, "draws")
    progressbar = check_bool(progressbar, "progressbar")
    if init is not None:
        check_choice(init, "init", ("random",))
    step = elbo_step(model, data)
    first = None
    if init is None and isinstance(model, ConjugateEStep):
        from .em import em_start

        # a child generator of its own: the start is a function of the seed alone
        best = em_start(model, data, rng.spawn(1)[0])
        first = model.conditional_posterior(model.expected_stats(data, best)[0])
    restart = iter(range(n_init))
    n_observations = model.objective_scale(data)
    round_off = float(model.objective_round_off(data))
    with progress_bar("VB", n_init * max_iter, progressbar) as progress:

        def run_one(child_rng):
            start = first if next(restart) == 0 and first is not None else model.initial_factors(data, child_rng)
            run = ascend(
                start,
                step,
                tol=tol,
                max_iter=max_iter,
                n_observations=n_observations,
                round_off=round_off,
                objective_name="ELBO",
                progress=progress,
            )
            progress.advance(max_iter - run.n_iter)  # a restart that converged early is done
            return run

        best, histories, best_index = best_of_restarts(
            run_one, n_init, rng, what="VB", advice="raise max_iter, loosen tol or use more restarts (n_init)"
        )
    factors = best.state
    samples = apply_to_factors(factors, "sample", rng, size=(1, draws))
    return RawResult(
        draws=samples,
        record=FitRecord(
            converged=best.converged,
            n_iter=best.n_iter,
            point_estimate=False,
            objective=best.objective,
            objective_name="ELBO",
            objective_spread=restart_spread(histories),
        ),
        history={"elbo": histories},
        variational=variational_parameters(model, factors),
        attrs={
            "best_restart": best_index,
            "n_init": n_init,
            "tol": tol,
            "max_iter": max_iter,
            "init": "em" if first is not None else "random",
        },
    )
