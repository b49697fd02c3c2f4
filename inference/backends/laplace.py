"""``laplace``: a Gaussian at the posterior mode in the unconstrained space.

The oldest approximation of a posterior: find the mode ``x*`` of the log-density of the
unconstrained parameters (PyMC's value variables, Jacobian terms included), take the Hessian
``H`` there (central differences of PyTensor's symbolic gradient: PyTensor's symbolic Hessian,
a Jacobian of the gradient, compiled for more than five minutes even for the three coins on a
busy two-core machine, while 2 d gradient calls take milliseconds), and approximate the posterior of ``x`` by
``N(x*, (-H)^-1)``. Draws are mapped back through the model's transforms, so they always lie in
the parameters' support (probabilities in (0, 1), covariance matrices positive definite). The
same quantities give Laplace's estimate of the log-evidence,
``log p(y) ~ log p(x*, y) + d/2 log(2 pi) - 1/2 log det(-H)``, reported as the objective.

It is exact for a Gaussian posterior and close for a large-sample one (the Bernstein-von Mises
regime: the NIW on hundreds of points), and wrong where the posterior is far from Gaussian in the
unconstrained space: several modes (it sees one), or a ridge of unidentified parameters (the
one-flip three coins).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..core import ConvergenceWarning, FitRecord, RawResult
from ..options import check_bool, check_int
from ..registry import register
from .pymc_backends import _one_blas_thread
from .unconstrained import flat_posterior

__all__ = ["run_laplace", "HessianWarning", "gaussian_from_hessian"]

#: the mode is accepted when no element of the log-density's gradient exceeds this: at a
#: curvature c the mode is then off by at most GRADIENT_TOL / c, a small fraction of the posterior
#: sd 1 / sqrt(c) for any c below 1e6
GRADIENT_TOL = 1e-3
#: L-BFGS-B runs from the last point at most this many times (see run_laplace)
MAX_RESTARTS = 10


class HessianWarning(ConvergenceWarning):
    """The Hessian at the mode is not negative definite: the Gaussian is not a local fit."""


def gaussian_from_hessian(hessian: np.ndarray) -> tuple[np.ndarray, int]:
    """A covariance ``(-H)^-1`` from the Hessian ``H`` of a log-density, and how many of
    ``-H``'s eigenvalues were not positive.

    Non-positive curvatures (a saddle, or a flat direction) are replaced by their absolute value,
    floored at 1e-8 times the largest, so that draws can still be made; the caller warns.

    Parameters
    ----------
    hessian : ndarray of shape (d, d)

    Returns
    -------
    covariance : ndarray of shape (d, d)
    n_bad : int
    """
    precision = -0.5 * (hessian + hessian.T)
    eigenvalues, vectors = np.linalg.eigh(precision)
    largest = max(float(np.abs(eigenvalues).max()), 1e-300)
    n_bad = int(np.sum(eigenvalues <= 1e-10 * largest))
    fixed = np.maximum(np.abs(eigenvalues), 1e-8 * largest)
    return (vectors / fixed) @ vectors.T, n_bad


def _climb(negative, start: np.ndarray, max_iter: int):
    """L-BFGS-B from ``start`` on ``negative`` (minus the log-density and its gradient).

    Returns the last scipy result, the iterations, the largest gradient element at the end and
    the log-density after each iteration.
    """
    from scipy import optimize

    path = []

    def record(intermediate_result):  # scipy passes the full state only to this parameter name
        path.append(-float(intermediate_result.fun))

    # L-BFGS-B can report success far from the mode: after a line search into a region where
    # the density is not finite it takes a step of almost zero, and its relative-reduction test
    # passes (measured on the NIW from seed 0: "converged" after 5 iterations with a gradient
    # of 201, 107 nats below the mode). A restart drops the stale curvature pairs
    point, n_iter = start, 0
    for _ in range(MAX_RESTARTS):
        result = optimize.minimize(
            negative, point, jac=True, method="L-BFGS-B", options={"maxiter": max_iter - n_iter}, callback=record,
        )
        point, n_iter = result.x, n_iter + int(result.nit)
        steep = float(np.max(np.abs(result.jac))) if np.all(np.isfinite(result.jac)) else np.inf
        if steep <= GRADIENT_TOL or not result.success or n_iter >= max_iter:
            break
    return result, n_iter, steep, path


@register(
    "laplace",
    requires=(),
    kind="variational",
    library="pymc",
    description="Gaussian at the MAP in the unconstrained space (PyTensor Hessian), draws mapped back",
)
def run_laplace(
    model,
    data,
    *,
    rng,
    draws: int = 1000,
    init="random",
    n_init: int | None = None,
    max_iter: int = 5000,
    progressbar: bool = True,
) -> RawResult:
    """The Laplace approximation of the marginalised model's posterior.

    Parameters
    ----------
    draws : int
        Draws from the Gaussian, mapped back to the parameters (one chain).
    init : str, dict or None
        Where the optimiser starts: a strategy name as for ``em`` (default ``"random"``), a dict
        of parameters, or None for PyMC's initial point.
    n_init : int, optional
        Starts (drawn with the ``init`` strategy); the highest mode found is kept. Default 5 for
        a strategy, 1 (the only value allowed) for a dict or None. On the benchmark's
        informative three coins one random start (seeds 0 and 1) ended in the minor mirror
        mode, 13.7 nats below the major one.
    max_iter : int
        Iterations of the optimiser (L-BFGS-B on the unconstrained log-density), per start.
    progressbar : bool
        Accepted for symmetry with the other back-ends; the optimisation takes well under a
        second, so there is nothing to show.

    Warns
    -----
    HessianWarning
        When the Hessian at the optimum is not negative definite (a saddle or a flat ridge): the
        draws then use the absolute curvatures and ``converged`` is False.
    ConvergenceWarning
        When the optimiser stopped before converging.
    """
    from .em import resolve_init

    draws = check_int(draws, "draws")
    max_iter = check_int(max_iter, "max_iter")
    single = init is None or isinstance(init, dict)
    n_init = (1 if single else 5) if n_init is None else check_int(n_init, "n_init")
    if init is None and n_init > 1:
        raise ValueError(f"n_init > 1 from PyMC's initial point (init=None) would repeat one run; got n_init={n_init}")
    check_bool(progressbar, "progressbar")
    target = flat_posterior(model, data)
    if init is None:
        starts = [target.flat_start(None)]
    else:
        draw_start = resolve_init(model, data, init, rng, n_init)
        starts = list(target.flat_starts([draw_start(rng) for _ in range(n_init)]))

    def negative(x):
        value, grad = target.logp_grad(x)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        return -value, -grad

    started = time.perf_counter()
    with _one_blas_thread():
        climbs = [_climb(negative, start, max_iter) for start in starts]
        # the highest mode (a failed climb ends at +inf)
        result, n_iter, steep, path = min(climbs, key=lambda climb: climb[0].fun)
        mode = result.x
        log_density = target.logp(mode)
        curvature = target.hessian(mode)
    covariance, n_bad = gaussian_from_hessian(curvature)
    optimised = bool(result.success) and steep <= GRADIENT_TOL
    if not optimised:
        reason = result.message if not result.success else f"the largest gradient element is still {steep:.3g}"
        warnings.warn(
            f"laplace: the optimiser stopped without converging ({reason}); raise max_iter or give "
            "a starting point (init)",
            ConvergenceWarning,
            stacklevel=3,
        )
    if n_bad:
        warnings.warn(
            f"laplace: the Hessian at the mode is not negative definite ({n_bad} of {target.size} curvatures "
            "are zero or of the wrong sign: a saddle or a flat ridge of the posterior); the Gaussian uses "
            "their absolute values and is not a faithful approximation",
            HessianWarning,
            stacklevel=3,
        )
    # log det(-H) from the (repaired) covariance: -log det(covariance)
    _, log_det_covariance = np.linalg.slogdet(covariance)
    log_evidence = log_density + 0.5 * target.size * np.log(2 * np.pi) + 0.5 * log_det_covariance
    flat = rng.multivariate_normal(mode, covariance, size=draws, method="eigh")
    run_s = time.perf_counter() - started
    return RawResult(
        draws=target.constrained(flat[None]),
        record=FitRecord(
            converged=optimised and n_bad == 0,
            n_iter=n_iter,
            point_estimate=False,
            objective=float(log_evidence),
            objective_name="log-evidence",
            run_s=run_s,
        ),
        history={"log_posterior": np.array(path if path else [log_density])},
        attrs={
            "draws": draws,
            "n_init": n_init,
            "max_iter": max_iter,
            "log_density_at_mode": float(log_density),
            "hessian_bad_directions": n_bad,
            "unconstrained_size": target.size,
        },
    )
