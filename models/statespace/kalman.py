"""Kernels of the linear-Gaussian chain: Kalman filter, RTS smoother, simulation smoother.

The state-space form (Durbin & Koopman 2012, *Time Series Analysis by State Space Methods*,
eq. 4.12) for a univariate series ``y_t`` and a state ``a_t`` of dimension m::

    y_t     = Z a_t + eps_t,         eps_t ~ N(0, H)
    a_{t+1} = T a_t + eta_t,         eta_t ~ N(0, Q)   Q = G G' (G: the noise factor, (m, r))
    a_1     ~ N(a1, P1)

A missing ``y_t`` (NaN) skips the update at step t: the prediction carries on unchanged, and the
step adds nothing to the log-likelihood. The kernels take the system matrices, so a model is its
matrices: the local level is ``Z = [1], T = [[1]], G = [[sigma_eta]]``; a local linear trend
``Z = [1, 0], T = [[1, 1], [0, 1]]``; AR(1) plus noise ``Z = [1], T = [[phi]]``.

:func:`local_level_log_likelihood` is the scalar special case, vectorised over many parameter
values at once (the quadrature grid of the exact posterior, the draws of a posterior).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "kalman_filter",
    "rts_smoother",
    "simulate_states",
    "simulation_smoother",
    "local_level_log_likelihood",
]

LOG_2PI = float(np.log(2.0 * np.pi))


@numba.njit(cache=True)
def _filter(y, Z, T, H, Q, a1, P1):
    n, m = y.shape[0], a1.shape[0]
    a_pred = np.empty((n, m))
    P_pred = np.empty((n, m, m))
    a_filt = np.empty((n, m))
    P_filt = np.empty((n, m, m))
    loglik = np.zeros(n)
    a = a1.copy()
    P = P1.copy()
    for t in range(n):
        a_pred[t] = a
        P_pred[t] = P
        if np.isnan(y[t]):
            a_filt[t] = a
            P_filt[t] = P
        else:
            PZ = P @ Z
            F = Z @ PZ + H
            v = y[t] - Z @ a
            K = PZ / F
            a_filt[t] = a + K * v
            P_filt[t] = P - np.outer(K, PZ)
            loglik[t] = -0.5 * (LOG_2PI + np.log(F) + v * v / F)
        a = T @ a_filt[t]
        P = T @ P_filt[t] @ T.T + Q
        P = 0.5 * (P + P.T)  # round-off would otherwise make long runs asymmetric
    return loglik, a_pred, P_pred, a_filt, P_filt


@numba.njit(cache=True)
def _smoother(T, a_pred, P_pred, a_filt, P_filt):
    n, m = a_filt.shape
    a_s = np.empty((n, m))
    P_s = np.empty((n, m, m))
    lag = np.zeros((max(n - 1, 0), m, m))
    a_s[n - 1] = a_filt[n - 1]
    P_s[n - 1] = P_filt[n - 1]
    for t in range(n - 2, -1, -1):
        # J_t = P_t|t T' P_t+1|t^-1 (Rauch, Tung & Striebel 1965; Shumway & Stoffer 2017, eq. 6.47)
        J = np.linalg.solve(P_pred[t + 1], T @ P_filt[t]).T
        a_s[t] = a_filt[t] + J @ (a_s[t + 1] - a_pred[t + 1])
        P = P_filt[t] + J @ (P_s[t + 1] - P_pred[t + 1]) @ J.T
        P_s[t] = 0.5 * (P + P.T)
        # Cov(a_t+1, a_t | y) = P_t+1|n J_t' (de Jong & Mackinnon 1988)
        lag[t] = P_s[t + 1] @ J.T
    return a_s, P_s, lag


def _system(y, Z, T, H, G, a1, P1):
    y = np.ascontiguousarray(y, dtype=float)
    Z = np.ascontiguousarray(Z, dtype=float)
    T = np.ascontiguousarray(T, dtype=float)
    G = np.ascontiguousarray(G, dtype=float)
    a1 = np.ascontiguousarray(a1, dtype=float)
    P1 = np.ascontiguousarray(P1, dtype=float)
    m = a1.shape[0]
    if y.ndim != 1 or Z.shape != (m,) or T.shape != (m, m) or G.ndim != 2 or G.shape[0] != m or P1.shape != (m, m):
        raise ValueError(
            f"the system must be y (n,), Z (m,), T (m, m), G (m, r), a1 (m,), P1 (m, m); got y {y.shape}, "
            f"Z {Z.shape}, T {T.shape}, G {G.shape}, a1 {a1.shape}, P1 {P1.shape}"
        )
    return y, Z, T, float(H), np.ascontiguousarray(G @ G.T), a1, P1


def kalman_filter(y, Z, T, H, G, a1, P1):
    """The Kalman filter, skipping missing observations.

    Parameters
    ----------
    y : array-like of shape (n,)
        The series; NaN marks a missing step.
    Z : array-like of shape (m,)
        Observation vector.
    T : array-like of shape (m, m)
        Transition matrix.
    H : float
        Observation-noise variance (> 0).
    G : array-like of shape (m, r)
        State-noise factor: the state noise has covariance ``G G'`` (which may be singular).
    a1, P1 : array-like of shapes (m,) and (m, m)
        Mean and covariance of the first state (proper).

    Returns
    -------
    loglik : ndarray of shape (n,)
        ``log p(y_t | y_1..t-1)`` (0 at a missing step); their sum is ``log p(y)``.
    a_pred, P_pred : ndarrays of shapes (n, m), (n, m, m)
        ``E[a_t | y_1..t-1]``, ``Var[a_t | y_1..t-1]``.
    a_filt, P_filt : ndarrays of shapes (n, m), (n, m, m)
        ``E[a_t | y_1..t]``, ``Var[a_t | y_1..t]``.
    """
    return _filter(*_system(y, Z, T, H, G, a1, P1))


def rts_smoother(y, Z, T, H, G, a1, P1):
    """The Rauch-Tung-Striebel smoother.

    Parameters are those of :func:`kalman_filter`; the series must have at least one step.

    Returns
    -------
    a_smooth : ndarray of shape (n, m)
        ``E[a_t | y]``.
    P_smooth : ndarray of shape (n, m, m)
        ``Var[a_t | y]``.
    lag_cov : ndarray of shape (n - 1, m, m)
        ``Cov[a_t+1, a_t | y]``, what Shumway-Stoffer EM needs for the transition's statistics.
    loglik : ndarray of shape (n,)
        The filter's pointwise ``log p(y_t | y_1..t-1)``.
    """
    y, Z, T, H, Q, a1, P1 = _system(y, Z, T, H, G, a1, P1)
    loglik, a_pred, P_pred, a_filt, P_filt = _filter(y, Z, T, H, Q, a1, P1)
    a_s, P_s, lag = _smoother(T, a_pred, P_pred, a_filt, P_filt)
    return a_s, P_s, lag, loglik


@numba.njit(cache=True)
def _simulate(n, Z, T, sqrt_H, G, a1, L1, z_state, z_noise, z_obs):
    m = a1.shape[0]
    states = np.empty((n, m))
    y = np.empty(n)
    a = a1 + L1 @ z_state
    for t in range(n):
        states[t] = a
        y[t] = Z @ a + sqrt_H * z_obs[t]
        a = T @ a + G @ z_noise[t]
    return states, y


def simulate_states(n, Z, T, H, G, a1, P1, rng):
    """One draw ``(states (n, m), y (n,))`` of the chain from its prior, using ``rng`` only."""
    Z, T, G = (np.ascontiguousarray(v, dtype=float) for v in (Z, T, G))
    a1 = np.ascontiguousarray(a1, dtype=float)
    L1 = np.linalg.cholesky(np.asarray(P1, float))
    m, r = G.shape
    z_state = rng.standard_normal(m)
    z_noise = rng.standard_normal((n, r))
    z_obs = rng.standard_normal(n)
    return _simulate(n, Z, T, np.sqrt(float(H)), G, a1, L1, z_state, z_noise, z_obs)


def simulation_smoother(y, Z, T, H, G, a1, P1, rng):
    """One exact draw of the states from ``p(a_1..n | y)``, skipping missing observations.

    Durbin & Koopman's (2002) mean-corrected simulation smoother: draw ``(a+, y+)`` from the
    prior, with ``y+`` missing where ``y`` is; then ``a+ + E[a | y] - E[a | y+]`` has the
    smoothing distribution, since the smoothed mean is linear in the observations and the
    smoothed covariance does not depend on them. Only smoothed means are needed, and a singular
    state noise (a local linear trend's level) is no special case.

    Parameters
    ----------
    y, Z, T, H, G, a1, P1 : as for :func:`kalman_filter`
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n, m)
    """
    y, Z, T, H, Q, a1, P1 = _system(y, Z, T, H, G, a1, P1)
    states, y_plus = simulate_states(y.shape[0], Z, T, H, G, a1, P1, rng)
    # E[a | y] - E[a | y+] is the smoother of y - y+ with a zero initial mean
    difference = np.where(np.isnan(y), np.nan, y - y_plus)
    _, a_pred, P_pred, a_filt, P_filt = _filter(difference, Z, T, H, Q, np.zeros_like(a1), P1)
    correction, _, _ = _smoother(T, a_pred, P_pred, a_filt, P_filt)
    return states + correction


@numba.njit(cache=True)
def _local_level_batch(y, sigma2_eps, sigma2_eta, level_mean, level_var):
    n_batch, n = sigma2_eps.shape[0], y.shape[0]
    out = np.zeros((n_batch, n))
    for b in range(n_batch):
        h, q = sigma2_eps[b], sigma2_eta[b]
        a, P = level_mean, level_var
        for t in range(n):
            if not np.isnan(y[t]):
                F = P + h
                v = y[t] - a
                out[b, t] = -0.5 * (LOG_2PI + np.log(F) + v * v / F)
                K = P / F
                a = a + K * v
                P = P * h / F  # = P (1 - K), without the cancellation of P - K P
            P = P + q
    return out


def local_level_log_likelihood(y, sigma2_eps, sigma2_eta, level_mean, level_var):
    """Pointwise ``log p(y_t | y_1..t-1)`` of the local-level model for many parameter values.

    Parameters
    ----------
    y : ndarray of shape (n,)
        NaN marks a missing step (its entry is 0).
    sigma2_eps, sigma2_eta : array-like, broadcast together to a batch shape B
    level_mean, level_var : float
        The normal prior of the first level.

    Returns
    -------
    ndarray of shape (*B, n)
    """
    sigma2_eps, sigma2_eta = np.broadcast_arrays(np.asarray(sigma2_eps, float), np.asarray(sigma2_eta, float))
    batch = sigma2_eps.shape
    out = _local_level_batch(np.ascontiguousarray(y, dtype=float), np.ascontiguousarray(sigma2_eps.reshape(-1)),
                             np.ascontiguousarray(sigma2_eta.reshape(-1)), float(level_mean), float(level_var))
    return out.reshape(batch + (np.asarray(y).shape[0],))


@numba.njit(cache=True)
def local_level_log_likelihood_and_gradient(y, sigma2_eps, sigma2_eta, level_mean, level_var):
    """``log p(y | sigma2_eps, sigma2_eta)`` of the local-level model and its two partial
    derivatives, in one filter pass (scalar parameters; NaN in ``y`` marks a missing step).

    The derivatives run forward beside the filter: each of the level's predicted mean ``a`` and
    variance ``P`` carries its derivative with respect to ``(sigma2_eps, sigma2_eta)``, so the
    cost is that of the filter, about three times over, with no stored pass to go back through.

    Returns
    -------
    (float, float, float)
        The log-likelihood, its derivative with respect to ``sigma2_eps`` and to ``sigma2_eta``.
    """
    h, q = sigma2_eps, sigma2_eta
    a, P = level_mean, level_var
    da_h = da_q = dP_h = dP_q = 0.0  # the first level's prior does not depend on the variances
    total = dh = dq = 0.0
    for t in range(y.shape[0]):
        if not np.isnan(y[t]):
            F = P + h
            v = y[t] - a
            dF_h, dF_q = dP_h + 1.0, dP_q
            total -= 0.5 * (LOG_2PI + np.log(F) + v * v / F)
            # d/dθ of -(log F + v^2 / F) / 2, with dv = -da
            dh -= 0.5 * (dF_h / F - 2.0 * v * da_h / F - v * v * dF_h / (F * F))
            dq -= 0.5 * (dF_q / F - 2.0 * v * da_q / F - v * v * dF_q / (F * F))
            K = P / F
            dK_h, dK_q = (dP_h * F - P * dF_h) / (F * F), (dP_q * F - P * dF_q) / (F * F)
            a = a + K * v
            da_h, da_q = da_h + dK_h * v - K * da_h, da_q + dK_q * v - K * da_q
            # P h / F, and its derivative by the quotient rule
            dP_h = ((dP_h * h + P) * F - P * h * dF_h) / (F * F)
            dP_q = (dP_q * h * F - P * h * dF_q) / (F * F)
            P = P * h / F
        P = P + q
        dP_q += 1.0
    return total, dh, dq
