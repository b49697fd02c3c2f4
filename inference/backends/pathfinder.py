"""``pathfinder``: multi-path Pathfinder (Zhang, Carpenter, Gelman and Vehtari 2022) with
Pareto-smoothed importance resampling, written on the PyTensor log-density.

One path: run L-BFGS from a random start towards the mode of the unconstrained log-density
(Jacobian included). At every iterate ``x_l`` the optimiser's curvature pairs
``(s_k, y_k) = (x_{k+1} - x_k, grad_{k+1} - grad_k)`` of the last ``history_size`` steps give
an inverse-Hessian estimate ``H_l`` (dense BFGS updates from ``(s'y / y'y) I``), hence a Gaussian
``q_l = N(x_l + H_l grad log p(x_l), H_l)``: one Newton step from the iterate, with the
quasi-Newton curvature. Each ``q_l`` is scored by a Monte-Carlo ELBO; the path keeps the best.
Several paths from different starts give a mixture of Gaussians; draws from all of them are
importance-weighted by ``p / q``, the weights Pareto-smoothed (PSIS, arviz-stats), and the
result resampled from them. The Pareto k-hat of those weights says how far the mixture is from
the posterior (k-hat > 0.7: the draws are not to be trusted), and is in the result's attrs.

Why on the PyTensor log-density rather than BlackJAX: it needs no JAX (BlackJAX's
``multi_pathfinder`` lives in the ``jax`` extra, and translating latentzoo's own Ops to JAX adds
seconds of tracing per model), it reuses the compiled log-density and gradient that the
``laplace`` back-end uses, and for the models here, with at most a few hundred parameters, the
dense d x d algebra costs less than the log-density evaluations. The diagonal-plus-low-rank
factorisation of the paper matters only for thousands of parameters.
"""

from __future__ import annotations

import time
import warnings
from typing import NamedTuple

import numpy as np

from ..core import ConvergenceWarning, FitRecord, RawResult, nan_padded
from ..options import check_bool, check_int
from ..progress import progress_bar
from ..registry import register
from .pymc_backends import _one_blas_thread
from .unconstrained import flat_posterior

__all__ = ["run_pathfinder", "lbfgs_inverse_hessian", "psis_resample", "KHAT_LIMIT"]

#: Pareto k-hat above which importance weights are unreliable (Vehtari et al. 2024)
KHAT_LIMIT = 0.7


def lbfgs_inverse_hessian(steps: list[np.ndarray], changes: list[np.ndarray], size: int) -> np.ndarray:
    """The dense L-BFGS inverse-Hessian estimate of a function being *minimised*.

    Parameters
    ----------
    steps, changes : lists of ndarray of shape (d,)
        ``s_k = x_{k+1} - x_k`` and ``y_k = grad f_{k+1} - grad f_k``, oldest first; pairs
        without positive curvature (``s'y <= 1e-12 y'y``) are skipped.
    size : int
        d.

    Returns
    -------
    ndarray of shape (d, d)
        Symmetric positive definite; the identity when no pair qualifies.
    """
    pairs = [(s, y) for s, y in zip(steps, changes) if s @ y > 1e-12 * (y @ y) and y @ y > 0]
    if not pairs:
        return np.eye(size)
    s_last, y_last = pairs[-1]
    inverse = np.eye(size) * ((s_last @ y_last) / (y_last @ y_last))
    identity = np.eye(size)
    for s, y in pairs:  # BFGS update of the inverse (Nocedal and Wright 2006, eq. 6.17)
        rho = 1.0 / (s @ y)
        left = identity - rho * np.outer(s, y)
        inverse = left @ inverse @ left.T + rho * np.outer(s, s)
    return 0.5 * (inverse + inverse.T)


def _gaussian_draws(mean, covariance, n, rng):
    """n draws of N(mean, covariance) and their log-densities."""
    factor = np.linalg.cholesky(covariance)
    normal = rng.standard_normal((n, mean.size))
    draws = mean + normal @ factor.T
    log_det = 2.0 * np.sum(np.log(np.diag(factor)))
    log_q = -0.5 * (np.sum(normal**2, axis=1) + log_det + mean.size * np.log(2 * np.pi))
    return draws, log_q


def psis_resample(log_ratio: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Indices of ``n`` draws resampled with replacement by Pareto-smoothed importance weights.

    Parameters
    ----------
    log_ratio : ndarray of shape (m,)
        ``log p - log q`` of each proposal draw (up to a constant); -inf for draws outside the
        support.
    n : int
    rng : numpy.random.Generator

    Returns
    -------
    indices : ndarray of shape (n,)
    khat : float
        The Pareto shape of the weights' upper tail (inf when fewer than two draws are finite).
    """
    from arviz_stats.base import array_stats

    finite = np.isfinite(log_ratio)
    if finite.sum() < 2:
        raise FloatingPointError("pathfinder: fewer than two proposal draws have a finite log-density")
    shifted = log_ratio[finite] - log_ratio[finite].max()
    # psislw smooths the ratios exp(-input) (its LOO convention), hence the minus sign
    smoothed, khat = array_stats.psislw(-shifted, r_eff=1.0)
    weights = np.exp(smoothed - np.logaddexp.reduce(smoothed))
    indices = np.flatnonzero(finite)[rng.choice(finite.sum(), size=n, replace=True, p=weights / weights.sum())]
    return indices, float(khat)


class _Path(NamedTuple):
    """One path's outcome: its best Gaussian, the proposal draws from it, and its ELBOs."""

    draws: np.ndarray  # (draws_per_path, d)
    log_p: np.ndarray  # (draws_per_path,)
    log_q: np.ndarray  # (draws_per_path,)
    elbos: np.ndarray  # (n_iterates,), NaN where no Gaussian was formed
    converged: bool
    n_iter: int
    mean: np.ndarray  # (d,)
    covariance: np.ndarray  # (d, d)


def _log_gaussian(x: np.ndarray, path: _Path) -> np.ndarray:
    """log N(x | path.mean, path.covariance) for x of shape (n, d)."""
    factor = np.linalg.cholesky(path.covariance)
    from scipy.linalg import solve_triangular

    whitened = solve_triangular(factor, (x - path.mean).T, lower=True)
    log_det = 2.0 * np.sum(np.log(np.diag(factor)))
    return -0.5 * (np.sum(whitened**2, axis=0) + log_det + x.shape[1] * np.log(2 * np.pi))


def _one_path(target, start, rng, *, max_iter, history_size, elbo_draws, draws_per_path):
    """L-BFGS from ``start``; the best Gaussian along the path, its ELBOs, and its draws."""
    from scipy import optimize

    positions, gradients = [start.copy()], [target.logp_grad(start)[1]]

    def negative(x):
        value, grad = target.logp_grad(x)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        return -value, -grad

    def record(intermediate_result):  # scipy passes the full state only to this parameter name
        positions.append(np.array(intermediate_result.x))
        gradients.append(target.logp_grad(intermediate_result.x)[1])

    result = optimize.minimize(negative, start, jac=True, method="L-BFGS-B", callback=record,
                               options={"maxiter": max_iter, "maxcor": history_size})
    elbos = np.full(len(positions), np.nan)
    best = (-np.inf, None, None)
    for index in range(1, len(positions)):
        first = max(0, index - history_size)
        # minimising -log p: its gradient changes are minus those of log p
        steps = [positions[k + 1] - positions[k] for k in range(first, index)]
        changes = [gradients[k] - gradients[k + 1] for k in range(first, index)]
        covariance = lbfgs_inverse_hessian(steps, changes, target.size)
        mean = positions[index] + covariance @ gradients[index]
        try:
            draws, log_q = _gaussian_draws(mean, covariance, elbo_draws, rng)
        except np.linalg.LinAlgError:
            continue
        log_p = np.array([target.logp(x) for x in draws])
        elbos[index] = float(np.mean(log_p - log_q)) if np.all(np.isfinite(log_p)) else -np.inf
        if elbos[index] > best[0]:
            best = (elbos[index], mean, covariance)
    if best[1] is None:  # no step was taken: the start is the optimum, or every Gaussian failed
        covariance = np.eye(target.size)
        best = (np.nan, positions[-1] + gradients[-1], covariance)
    _, mean, covariance = best
    draws, log_q = _gaussian_draws(mean, covariance, draws_per_path, rng)
    log_p = np.array([target.logp(x) for x in draws])
    return _Path(draws, log_p, log_q, elbos, bool(result.success), int(result.nit), mean, covariance)


@register(
    "pathfinder",
    requires=(),
    kind="variational",
    library="pymc",
    description="multi-path Pathfinder (L-BFGS Gaussians, PSIS resampling) on the PyTensor log-density",
)
def run_pathfinder(
    model,
    data,
    *,
    rng,
    n_paths: int = 4,
    draws: int = 1000,
    draws_per_path: int = 1000,
    elbo_draws: int = 10,
    history_size: int = 6,
    max_iter: int = 1000,
    init="random",
    progressbar: bool = True,
) -> RawResult:
    """Multi-path Pathfinder with PSIS importance resampling.

    Parameters
    ----------
    n_paths : int
        Independent L-BFGS paths, each from its own start.
    draws : int
        Draws of the result (one chain), resampled with replacement from the pooled proposals.
    draws_per_path : int
        Proposal draws from each path's best Gaussian.
    elbo_draws : int
        Monte-Carlo draws scoring each iterate's Gaussian (the paper's K; it uses 5).
    history_size : int
        Curvature pairs kept (the paper's J and L-BFGS's memory).
    max_iter : int
        L-BFGS iterations per path.
    init : str, dict or None
        Starts of the paths: a strategy name as for ``em`` (default ``"random"``: a fresh random
        start per path), a dict of parameters (every path from it), or None (PyMC's initial
        point).
    progressbar : bool

    Warns
    -----
    ConvergenceWarning
        When the Pareto k-hat of the pooled importance weights exceeds 0.7 (``converged`` is
        then False): the Gaussians do not cover the posterior.

    Notes
    -----
    The objective is the best path's ELBO; ``objective_spread`` is the spread of the paths'
    best ELBOs (large when paths end in different modes). The fit history holds every
    iterate's ELBO estimate, one row per path. The attrs hold ``pareto_k``.
    """
    from .em import resolve_init

    n_paths = check_int(n_paths, "n_paths")
    draws = check_int(draws, "draws")
    draws_per_path = check_int(draws_per_path, "draws_per_path", minimum=2)
    elbo_draws = check_int(elbo_draws, "elbo_draws")
    history_size = check_int(history_size, "history_size")
    max_iter = check_int(max_iter, "max_iter")
    progressbar = check_bool(progressbar, "progressbar")
    draw_start = resolve_init(model, data, init, rng, 1) if init is not None else None
    target = flat_posterior(model, data)
    starts = [target.flat_start(draw_start(rng) if draw_start is not None else None) for _ in range(n_paths)]
    target.logp_grad(starts[0])  # compile before the clock starts
    started = time.perf_counter()
    paths = []
    with _one_blas_thread(), progress_bar("pathfinder", n_paths, progressbar) as bar:
        for start in starts:
            paths.append(_one_path(target, start, rng, max_iter=max_iter, history_size=history_size,
                                   elbo_draws=elbo_draws, draws_per_path=draws_per_path))
            bar.advance(status=f"ELBO {np.nanmax(paths[-1].elbos, initial=-np.inf):.4g}")
    proposals = np.concatenate([path.draws for path in paths])
    log_ratio = np.concatenate([path.log_p - path.log_q for path in paths])
    if n_paths > 1:
        # the pooled draws come from the equal-weight mixture of the paths' Gaussians
        log_q = np.logaddexp.reduce([_log_gaussian(proposals, path) for path in paths], axis=0) - np.log(n_paths)
        log_ratio = np.concatenate([path.log_p for path in paths]) - log_q
    indices, khat = psis_resample(log_ratio, draws, rng)
    run_s = time.perf_counter() - started
    best_elbos = np.array([np.nanmax(path.elbos, initial=-np.inf) for path in paths])
    converged = bool(khat <= KHAT_LIMIT)
    if not converged:
        warnings.warn(
            f"pathfinder: Pareto k-hat {khat:.2f} > {KHAT_LIMIT}: the paths' Gaussians do not cover the posterior "
            "(several modes, heavy tails or a ridge); the resampled draws are not reliable. Try more paths "
            "(n_paths) or a sampler",
            ConvergenceWarning,
            stacklevel=3,
        )
    history = nan_padded([path.elbos for path in paths])
    return RawResult(
        draws=target.constrained(proposals[indices][None]),
        record=FitRecord(
            converged=converged,
            n_iter=int(max(path.n_iter for path in paths)),
            point_estimate=False,
            objective=float(best_elbos.max()),
            objective_name="ELBO",
            objective_spread=float(np.ptp(best_elbos)) if n_paths > 1 else float("nan"),
            run_s=run_s,
        ),
        history={"elbo": history if n_paths > 1 else history[0]},
        attrs={
            "pareto_k": khat,
            "n_paths": n_paths,
            "draws": draws,
            "draws_per_path": draws_per_path,
            "elbo_draws": elbo_draws,
            "history_size": history_size,
            "max_iter": max_iter,
            "paths_converged": int(sum(path.converged for path in paths)),
            "path_elbos": repr(np.round(best_elbos, 3).tolist()),
        },
    )
