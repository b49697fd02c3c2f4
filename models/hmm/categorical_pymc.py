"""The PyMC declarations of the hidden Markov models (``CategoricalHMM``, ``DiceHMM``).

:meth:`~latentzoo.models.hmm.categorical.CategoricalHMM.pymc_model` and
:meth:`~latentzoo.models.hmm.categorical.CategoricalHMM.pymc_initial_point` delegate here. This module imports
PyMC at the top, so the model classes import it inside those methods only: ``import
latentzoo.models`` stays free of PyMC and PyTensor.

Two declarations of the same priors and likelihood:

* marginalised (NUTS, ADVI, MAP): the states are summed out by the forward-backward Op of
  :mod:`latentzoo.models.ops.hmm_op`, which returns the log-likelihood and its gradient from one
  compiled pass;
* explicit states (``pymc_gibbs``): a ``states`` variable updated by PyMC's
  ``CategoricalGibbsMetropolis`` one time step at a time.

Missing steps: the Op reads an emission matrix with one more column of ones, which the missing
steps index (:meth:`~latentzoo.models.hmm.data.HMMData.coded`); the column is a constant, so
the gradient the Op returns for it goes nowhere. With explicit states, only the observed steps
enter the ``Categorical`` likelihood; the states of missing steps still follow the chain.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..ops.hmm_op import hmm_log_likelihood
from ..ops.pymc_data import data_container
from . import kernels
from .data import HMMData

__all__ = ["PYMC_GIBBS_MAX_STEPS", "pymc_initial_point", "pymc_model"]

#: explicit-state PyMC models (``pymc_gibbs``) refuse longer data: a Gibbs sweep is O(T^2)
PYMC_GIBBS_MAX_STEPS = 1000


def _emission_row_names(model) -> list[str]:
    return [f"emission_probs_{label}".replace("#", "_") for label in model.state_labels]


def pymc_initial_point(model, params) -> dict[str, np.ndarray]:
    """The free variables of :func:`pymc_model` at ``params`` (rows of masked emissions are
    separate variables over each state's allowed symbols).

    Parameters
    ----------
    model : CategoricalHMM or DiceHMM
    params : dict with ``init_probs`` (K,), ``trans_mat`` (K, K), ``emission_probs`` (K, M)

    Returns
    -------
    dict of ndarrays: ``init_probs`` (K,), ``trans_mat`` (K, K), and ``emission_probs`` (K, M)
    or, with a mask, ``emission_probs_<state>`` (n_allowed,) per state
    """
    point = {name: np.asarray(params[name], float) for name in ("init_probs", "trans_mat")}
    emission = np.asarray(params["emission_probs"], float)
    mask = model._mask
    if mask is None:
        point["emission_probs"] = emission
    else:
        for row, name in enumerate(_emission_row_names(model)):
            point[name] = emission[row, mask[row]]
    return point


def pymc_model(model, data, marginalized: bool = True) -> pm.Model:
    """The PyMC declaration of ``model`` on ``data`` (see
    :meth:`latentzoo.models.hmm.categorical.CategoricalHMM.pymc_model` for the variables).

    Parameters
    ----------
    model : CategoricalHMM or DiceHMM
    data : sequences, or HMMData
    marginalized : bool
        True: the forward-backward Op sums the states out; False: explicit ``states``.

    Returns
    -------
    pymc.Model
    """
    data = model.check_data(data)
    arrays = model._prior_arrays()
    mask = model._mask
    coords = {key: list(value) for key, value in model.coords(data).items()}
    with pm.Model(coords=coords) as declared:
        init = pm.Dirichlet("init_probs", a=arrays["init_prior"], dims="state")
        trans = pm.Dirichlet("trans_mat", a=arrays["trans_prior"], dims=("state", "state_next"))
        if mask is None:
            emission = pm.Dirichlet("emission_probs", a=arrays["emission_prior"], dims=("state", "symbol"))
        else:
            rows = []
            for row, name in enumerate(_emission_row_names(model)):
                allowed = np.flatnonzero(mask[row])
                row_probs = pm.Dirichlet(name, a=arrays["emission_prior"][row, allowed])
                # scatter into the full row by a 0/1 matrix product: exact zeros elsewhere,
                # and compiled BLAS ops (set_subtensor with index arrays runs in Python)
                placement = np.zeros((allowed.size, model.n_symbols))
                placement[np.arange(allowed.size), allowed] = 1.0
                rows.append(pt.dot(row_probs, placement))
            emission = pm.Deterministic("emission_probs", pt.stack(rows), dims=("state", "symbol"))
        if marginalized:
            if data.n_missing:
                emission = pt.concatenate([emission, pt.ones((model.n_states, 1))], axis=1)
            pm.Potential(
                "log_likelihood",
                # containers, not constants: one compiled model serves every data set (models/ops/pymc_data.py)
                hmm_log_likelihood(init, trans, emission, data_container("symbols_data", data.coded(model.n_symbols)),
                                   data_container("offsets_data", data.offsets)),
            )
        else:
            _declare_explicit_states(model, data, init, trans, emission)
    return declared


def _declare_explicit_states(model, data: HMMData, init, trans, emission) -> None:
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
    # a start that can emit the data: the Viterbi path under the prior means
    log_means = [np.log(np.maximum(model._priors[name].mean(), 1e-300)) for name in model.param_names]
    if data.n_missing:
        log_means[2] = np.concatenate([log_means[2], np.zeros((K, 1))], axis=1)  # log 1 at a missing step
    start_path, _ = kernels.viterbi_symbols(*log_means, data.coded(model.n_symbols), data.offsets)
    # the uniform Categorical makes PyMC pick CategoricalGibbsMetropolis; the potential
    # replaces its log(1/K) per step by the Markov chain's log-probability
    states = pm.Categorical("states", p=np.full(K, 1.0 / K), dims="time", initval=start_path)
    chain_logp = pt.sum(pt.log(init[states[starts]])) + pt.sum(pt.log(trans[states[previous], states[previous + 1]]))
    pm.Potential("state_chain", chain_logp + data.n_steps * np.log(K))
    if data.n_missing:
        observed = np.flatnonzero(~data.missing)
        pm.Categorical(model.observed_name, p=emission[states[observed]], observed=data.symbols[observed])
    else:
        pm.Categorical(model.observed_name, p=emission[states], observed=data.symbols, dims="time")
