"""The PyMC declaration of :class:`~latentzoo.models.hmm.gaussian.GaussianHMM`.

``GaussianHMM.pymc_model`` delegates here; this module imports PyMC at the top, so the model
imports it inside that method only (``import latentzoo.models`` stays free of PyMC).

The priors are the hand-written back-ends' own: Dirichlet ``init_probs`` and rows of
``trans_mat``, an exact batched Inverse-Wishart for ``covs`` (:func:`~latentzoo.models.ops.pymc_parts.inverse_wishart`)
and ``means[k] | covs[k] ~ N(m0[k], covs[k] / kappa0)``; fixed ``init_probs`` or ``covs`` are
constants. The (T, K) matrix of log emission densities is built in PyTensor (one whitening per
state, no per-observation linear algebra) and handed to the generalised forward-backward Op
(:mod:`latentzoo.models.ops.hmm_log_emission_op`), whose gradient with respect to that matrix is the
smoothed state probabilities; PyTensor carries it back to the means and covariances. Missing rows
are multiplied by zero, so their log emission density is 0.

``marginalized=False`` declares explicit ``states`` for PyMC's ``CategoricalGibbsMetropolis``
(``pymc_gibbs``), limited to ``PYMC_GIBBS_MAX_STEPS`` steps (a sweep costs O(T^2)).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..mixture.gaussian import _spread_initval
from ..ops.hmm_log_emission_op import hmm_log_emission_likelihood
from ..ops.pymc_data import data_container
from ..ops.pymc_parts import inverse_wishart, mvnormal, mvnormal_logp
from .gaussian_data import GaussianSequences

__all__ = ["PYMC_GIBBS_MAX_STEPS", "pymc_model"]

#: explicit-state models (``pymc_gibbs``) refuse longer data: a Gibbs sweep is O(T^2)
PYMC_GIBBS_MAX_STEPS = 1000


def pymc_model(model, data, marginalized: bool = True) -> pm.Model:
    """The PyMC declaration of ``model`` on ``data``.

    Parameters
    ----------
    model : GaussianHMM
        A data-driven prior is resolved from ``data`` first (as ``fit`` does).
    data : sequences, or GaussianSequences
    marginalized : bool
        True: the states are summed out by the forward-backward Op (NUTS, ADVI, MAP). False:
        explicit ``states`` (dims ``time``) for ``pymc_gibbs``.

    Returns
    -------
    pymc.Model
        Free variables ``init_probs`` (unless fixed), ``trans_mat``, ``means``, ``covs`` (unless
        fixed), with the model's dims and coords.
    """
    data = model.check_data(data)
    model = model.with_data_prior(data)
    prior = model.prior()
    K, D = model.n_states, model.n_features
    coords = {key: list(value) for key, value in model.coords(data).items()}
    with pm.Model(coords=coords) as declared:
        if model.init_probs is None:
            init = pm.Dirichlet("init_probs", a=np.asarray(prior["init_probs"].concentration, np.float64), dims="state")
        else:
            init = pt.constant(np.asarray(model.init_probs, np.float64))
        trans = pm.Dirichlet("trans_mat", a=np.asarray(prior["trans_mat"].concentration, np.float64), dims=("state", "state_next"))
        if model.covs is None:
            niw = prior[("means", "covs")]
            _, chol = inverse_wishart("covs", np.float64(niw.nu[0]), np.asarray(niw.S, np.float64), dims=("state", "feature", "feature_bis"))
            m0 = np.asarray(niw.m, np.float64)
        else:
            chol = pt.constant(np.linalg.cholesky(np.asarray(model.covs, np.float64)))
            m0 = np.asarray(prior["means"].m, np.float64)
        spread = _spread_initval(data.x_observed, K) if data.x_observed.shape[0] > 1 else np.zeros((K, D))
        means = mvnormal(
            "means", m0, chol / np.sqrt(np.float64(model.kappa0)), dims=("state", "feature"),
            # apart along the data's first principal axis: at m0 the gradient cannot tell the states apart
            initval=m0 + spread,
        )
        if marginalized:
            # containers, not constants: one compiled model serves every data set (models/ops/pymc_data.py)
            observed = data_container("observed_mask_data", data.observed.astype(np.float64)[:, None])
            filled = data_container("x_data", np.where(np.isnan(data.x), 0.0, data.x))
            log_emission = observed * mvnormal_logp(filled[:, None, :], means, chol)
            offsets = data_container("offsets_data", data.offsets)
            pm.Potential("log_likelihood", hmm_log_emission_likelihood(init, trans, log_emission, offsets))
        else:
            _declare_explicit_states(data, init, trans, means, chol, m0 + spread, K)
    return declared


def _declare_explicit_states(data: GaussianSequences, init, trans, means, chol, start_means, K: int) -> None:
    if data.n_steps > PYMC_GIBBS_MAX_STEPS:
        raise ValueError(
            f"explicit states for PyMC's Gibbs steps cost O(T^2) per sweep; {data.n_steps} time steps is more "
            f"than the limit {PYMC_GIBBS_MAX_STEPS}; use backend='gibbs' (FFBS) for long sequences"
        )
    starts = data.offsets[:-1]
    is_start = np.zeros(data.n_steps, bool)
    is_start[starts] = True
    previous = np.flatnonzero(~is_start) - 1
    # start each step at the nearest of the starting means (missing steps: state 0)
    filled = np.where(np.isnan(data.x), np.inf, data.x)
    start_path = np.argmin(((filled[:, None, :] - start_means[None]) ** 2).sum(-1), axis=1)
    start_path[~data.observed] = 0
    # the uniform Categorical makes PyMC pick CategoricalGibbsMetropolis; the potential
    # replaces its log(1/K) per step by the Markov chain's log-probability
    states = pm.Categorical("states", p=np.full(K, 1.0 / K), dims="time", initval=start_path)
    chain_logp = pt.sum(pt.log(init[states[starts]])) + pt.sum(pt.log(trans[states[previous], states[previous + 1]]))
    pm.Potential("state_chain", chain_logp + data.n_steps * np.log(K))
    rows = np.flatnonzero(data.observed)
    mvnormal("x", means[states[rows]], chol[states[rows]], observed=data.x_observed)
