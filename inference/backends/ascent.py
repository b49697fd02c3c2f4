"""One coordinate-ascent loop shared by EM and variational Bayes.

EM and CAVI differ only in what a step does (E-step + posterior *mode*, or q(z)-update +
posterior *factor*); restarts, the tolerance test, the monotonicity guard, the history, the
progress bar and the convergence warning are the same and live here once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core import ConvergenceWarning, nan_padded

__all__ = ["AscentRun", "ascend", "best_of_restarts"]

# The objective may drop by round-off only: relative 1e-9 of its size plus 1e-9 per observation.
ROUND_OFF_RELATIVE = 1e-9


@dataclass
class AscentRun:
    """One run of the loop.

    Attributes
    ----------
    state : the final state (parameters for EM, variational factors for VB), the one whose
        objective is ``history[-1]``
    history : ndarray of shape (n_iter + 1,)
        The objective at the start and after every update.
    converged : bool
    n_iter : int
        Number of updates (M-steps, or factor updates) made.
    """

    state: object
    history: np.ndarray
    converged: bool
    n_iter: int

    @property
    def objective(self) -> float:
        return float(self.history[-1])


def ascend(
    state,
    step: Callable,
    *,
    tol: float,
    max_iter: int,
    n_observations: int,
    objective_name: str,
    progress=None,
    round_off: float = 0.0,
) -> AscentRun:
    """Iterate ``state, objective = step(state)`` until the objective stops rising.

    ``step(state)`` returns ``(next_state, objective(state))``: the objective of the state it
    was given, computed as a by-product of the E-step (so the objective of the final state
    costs one more E-step, as scikit-learn's final E-step). Convergence: the last update raised
    the objective by less than ``tol`` per observation. ``round_off`` (the model's
    ``objective_round_off``) is added to the drop the guard tolerates: the objective at
    parameters that are rounded to float64 may fall by that much without any mistake.

    Raises
    ------
    FloatingPointError
        The objective became NaN (the message names the objective).
    RuntimeError
        The objective decreased beyond round-off, which EM and CAVI never do: a bug.
    """
    next_state, objective = step(state)
    _check_finite(objective, objective_name)
    history = [objective]
    for iteration in range(1, max_iter + 1):
        state = next_state
        next_state, objective = step(state)
        _check_finite(objective, objective_name)
        change = objective - history[-1]
        if change < -(ROUND_OFF_RELATIVE * (abs(objective) + n_observations) + round_off):
            raise RuntimeError(
                f"the {objective_name} decreased from {history[-1]!r} to {objective!r} at iteration "
                f"{iteration}; EM and CAVI never decrease it, so this is a bug in latentzoo"
            )
        history.append(objective)
        if progress is not None:
            progress.advance(status=f"{objective_name} {objective:.6g}")
        # tol = 0 asks for exactly max_iter iterations: never converged early
        if tol > 0 and change <= tol * n_observations:
            return AscentRun(state, np.asarray(history), True, iteration)
    return AscentRun(state, np.asarray(history), False, max_iter)


def _check_finite(objective: float, objective_name: str) -> None:
    if np.isnan(objective):
        raise FloatingPointError(f"the {objective_name} became NaN; check the data and the starting point (init)")


def best_of_restarts(run_one: Callable, n_init: int, rng: np.random.Generator, *, what: str, advice: str):
    """Run ``run_one(rng_r)`` for ``n_init`` independent child generators; keep the best.

    Returns
    -------
    best : AscentRun
    histories : ndarray of shape (n_init, max_len), NaN-padded
    best_index : int
    """
    runs = [run_one(child) for child in rng.spawn(n_init)]
    best_index = int(np.argmax([run.objective for run in runs]))
    best = runs[best_index]
    if not best.converged:
        warnings.warn(
            f"{what} did not converge in {best.n_iter} iterations (best of {n_init} restarts); "
            f"{advice}",
            ConvergenceWarning,
            stacklevel=4,
        )
    return best, nan_padded([run.history for run in runs]), best_index


def restart_spread(histories) -> float:
    """Largest minus smallest final objective over restarts: 0 when they differ by round-off
    only, NaN for a single restart (nothing to compare).

    Parameters
    ----------
    histories : array-like of shape (n_init, n_iter) or (n_init,)
        Objectives per restart and iteration, NaN-padded (or the final ones only).
    """
    histories = np.asarray(histories, float)
    rows = histories.reshape(histories.shape[0], -1) if histories.ndim else histories.reshape(1, 1)
    finals = np.array([row[np.isfinite(row)][-1] for row in rows if np.isfinite(row).any()])
    if finals.size < 2:
        return float("nan")
    spread = float(finals.max() - finals.min())
    return 0.0 if spread < 1e-6 * max(1.0, float(np.max(np.abs(finals)))) else spread
