"""The PyMC declaration of every :class:`~latentzoo.models.hmm.model.HiddenMarkovModel`.

``HiddenMarkovModel.pymc_model`` delegates here; this module imports PyMC at the top, so the
model imports it inside that method only (``import latentzoo.models`` stays free of PyMC).

The priors are the hand-written back-ends' own: Dirichlet ``init_probs`` (or a constant when
fixed) and rows of ``trans_mat``, and the family's (``pymc_priors``). Two declarations:

* marginalised (NUTS, ADVI, MAP): the states are summed out by the forward-backward Op, which
  returns the log-likelihood and its gradient from one compiled pass. A table family hands it
  its (K, M) table and the coded symbols (missing steps index a column of ones); any other
  family a (T, K) matrix of log densities built in PyTensor, multiplied by zero on missing steps;
* explicit states (``pymc_gibbs``): a ``states`` variable updated by PyMC's
  ``CategoricalGibbsMetropolis`` one time step at a time, limited to ``PYMC_GIBBS_MAX_STEPS``
  steps (each update evaluates the whole model, so a sweep costs O(T^2)).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..core.protocols import DataDrivenPrior
from ..ops.hmm_op import hmm_log_emission_likelihood, hmm_log_likelihood
from ..ops.pymc_data import data_container, hyperparameter
from . import kernels

__all__ = ["PYMC_GIBBS_MAX_STEPS", "pymc_model"]

#: explicit-state PyMC models (``pymc_gibbs``) refuse longer data: a Gibbs sweep is O(T^2)
PYMC_GIBBS_MAX_STEPS = 1000


def pymc_model(model, data, marginalized: bool = True) -> pm.Model:
    """The PyMC declaration of ``model`` on ``data``.

    Parameters
    ----------
    model : HiddenMarkovModel
        A data-driven prior is resolved from ``data`` first (as ``fit`` does).
    data : sequences, or their validated container
    marginalized : bool
        True: the forward-backward Op sums the states out; False: explicit ``states`` (dims ``time``).

    Returns
    -------
    pymc.Model
        Free variables named as the model's parameters, with its dims and coords.
    """
    data = model.check_data(data)
    if isinstance(model, DataDrivenPrior):
        model = model.with_data_prior(data)
    family, K = model.family, model.n_states
    arrays = model._chain_arrays()
    coords = {key: list(value) for key, value in model.coords(data).items()}
    rows = family.rows(data)
    with pm.Model(coords=coords) as declared:
        if model.fixed_init_probs is None:
            init = pm.Dirichlet("init_probs", a=hyperparameter("init_probs_prior", arrays["init_prior"]), dims="state")
        else:
            init = pt.constant(np.asarray(model.fixed_init_probs, np.float64))
        # priors as containers (models/ops/pymc_data.py): a new prior compiles nothing new
        trans = pm.Dirichlet("trans_mat", a=hyperparameter("trans_mat_prior", arrays["trans_prior"]), dims=("state", "state_next"))
        params = family.pymc_priors(K, "state", rows)
        if not marginalized:
            _declare_explicit_states(model, data, rows, init, trans, params)
        elif model.table:
            table = family.pymc_table(params)
            if data.n_missing:
                table = pt.concatenate([table, pt.ones((K, 1))], axis=1)
            # containers, not constants: one compiled model serves every data set (models/ops/pymc_data.py)
            codes = data_container("symbols_data", family.codes(data))
            pm.Potential("log_likelihood", hmm_log_likelihood(init, trans, table, codes, data_container("offsets_data", data.offsets)))
        else:
            observed = data_container("observed_mask_data", data.observed.astype(np.float64)[:, None])
            filled = data_container("x_data", family.filled_rows(data))
            log_emission = observed * family.pymc_log_density(filled, params)
            offsets = data_container("offsets_data", data.offsets)
            pm.Potential("log_likelihood", hmm_log_emission_likelihood(init, trans, log_emission, offsets))
    return declared


def _declare_explicit_states(model, data, rows, init, trans, params) -> None:
    if data.n_steps > PYMC_GIBBS_MAX_STEPS:
        raise ValueError(
            f"explicit states for PyMC's Gibbs steps cost O(T^2) per sweep; {data.n_steps} time steps is "
            f"more than the limit {PYMC_GIBBS_MAX_STEPS}; use backend='gibbs' (FFBS) for long sequences"
        )
    K = model.n_states
    starts = data.offsets[:-1]
    is_start = np.zeros(data.n_steps, bool)
    is_start[starts] = True
    previous = np.flatnonzero(~is_start) - 1
    # a start that can emit the data: the Viterbi path under the prior means (uniform chain)
    start_rows = model._place(data, model.family.pymc_start_log_density(rows, params))
    uniform = np.full(K, -np.log(K))
    start_path, _ = kernels.viterbi(uniform, np.broadcast_to(uniform, (K, K)).copy(), start_rows, data.offsets)
    # the uniform Categorical makes PyMC pick CategoricalGibbsMetropolis; the potential
    # replaces its log(1/K) per step by the Markov chain's log-probability
    states = pm.Categorical("states", p=np.full(K, 1.0 / K), dims="time", initval=start_path)
    chain_logp = pt.sum(pt.log(init[states[starts]])) + pt.sum(pt.log(trans[states[previous], states[previous + 1]]))
    pm.Potential("state_chain", chain_logp + data.n_steps * np.log(K))
    model.family.pymc_observe(rows, params, states[np.flatnonzero(data.observed)] if data.n_missing else states)
