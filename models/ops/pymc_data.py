"""Observed values enter the PyMC declarations as data containers, not constants.

A constant is part of the compiled graph, so every new data set compiled its own functions: on
this project's 2-core machine the numba JIT alone took 6-15 s per fit of the three coins, which
made calibration (100 fits per back-end), the comparison demo and the tests mostly compilation.
A data container (``pm.Data``, a shared variable) keeps the values out of the graph: the compiled
code depends only on the model's structure and hyperparameters, so later fits, in this process or
(through PyTensor's on-disk cache) in any other, reuse it (the JIT's first call: 0.15 s instead
of 6-15 s, measured with the three coins).

Only the length of the observation axis is left free: feature axes keep their static length,
which the multivariate densities' shapes rely on.

Hyperparameters go the same way (:func:`hyperparameter`), with every axis static: the
data-driven priors (NIW, Gaussian mixtures and HMMs) change with every data set, and a teacher
moving a prior in ``latentzoo explore`` changes it with every edit. As constants, each new value
compiled new code: a NUTS fit of the NIW Gaussian on a new data set took 30 s instead of 3 s
(warm cache, the same process); as containers it takes the time of a repeated fit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["data_container", "hyperparameter"]


def data_container(name: str, values) -> object:
    """``values`` as a PyMC data container named ``name`` in the model on the context stack.

    Parameters
    ----------
    name : str
        Unique within the model (a parameter's name is taken: use e.g. ``"x_data"``).
    values : ndarray of shape (N,) or (N, ...)
        Integer or float values; their dtype is kept.

    Returns
    -------
    pytensor SharedVariable with static shape ``(None, *values.shape[1:])``
    """
    import pymc as pm

    values = np.asarray(values)
    if values.ndim == 0:
        return pm.Data(name, values)
    return pm.Data(name, values, shape=(None, *values.shape[1:]))


def hyperparameter(name: str, values) -> object:
    """A prior's parameter as a float64 PyMC data container of fixed shape.

    Parameters
    ----------
    name : str
        Unique within the model, e.g. ``"p_prior_a"``.
    values : float or array-like
        The hyperparameter's value(s); NaN is not allowed (PyMC refuses it).

    Returns
    -------
    pytensor SharedVariable with static shape ``values.shape``
    """
    import pymc as pm

    values = np.asarray(values, dtype=np.float64)
    return pm.Data(name, values, shape=values.shape)
