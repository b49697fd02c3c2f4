"""The forward-backward Op inside NUTS, for a categorical (dice) and a Gaussian HMM.

Uses the public API only (``model.pymc_model``, ``fit``), so the same script measures two
versions of the code side by side: run it with each checkout's interpreter, one after the
other, in one session. Printed per model: the compiled log-density + gradient (the function
NUTS calls) in microseconds per call over ``--evals`` calls, then a short PyMC NUTS run (2
chains one after the other, one core): sampling seconds (PyMC's own clock, without building
and compiling), the number of gradient evaluations (leapfrog steps), microseconds per
leapfrog step, and minimum bulk ESS per second of sampling.

``--forms`` instead compares, in one process and alternating, the dice HMM's two possible
declarations: the log table read by symbol inside the Op, and ``log(table).T[symbols]`` gathered
in PyTensor and handed to the Op as a (T, K) matrix (why categorical HMMs hand over the table;
see :mod:`latentzoo.models.ops.hmm_op`).

Usage::

    python benchmarks/hmm_ops.py                 # dice T = 1000, Gaussian T = 500
    python benchmarks/hmm_ops.py --draws 300 --evals 3000 --label main
    python benchmarks/hmm_ops.py --forms
"""

from __future__ import annotations

import argparse
import time
import warnings

import arviz as az
import numpy as np

from latentzoo.inference import fit
from latentzoo.models import DiceHMM, GaussianHMM


def cases():
    dice = DiceHMM()
    rolls, _ = dice.simulate(dice.default_params(), 1000, rng=1)
    gaussian = GaussianHMM(n_states=2, n_features=1)
    params = {"init_probs": [0.5, 0.5], "trans_mat": [[0.95, 0.05], [0.1, 0.9]],
              "means": [[0.0], [2.5]], "covs": [[[1.0]], [[0.5]]]}
    series, _ = gaussian.simulate(params, 500, rng=2)
    return {"dice T=1000": (dice, rolls), "gaussian T=500": (gaussian, series)}


def gradient_time(model, data, evals: int) -> float:
    """Seconds per call of the log-density + gradient function NUTS calls."""
    data = model.check_data(data)
    if hasattr(model, "with_data_prior"):
        model = model.with_data_prior(data)
    pm_model = model.pymc_model(data)
    function = pm_model.logp_dlogp_function(ravel_inputs=True)
    function.set_extra_values({})
    initial = pm_model.initial_point()
    point = np.concatenate([np.ravel(initial[var.name]) for var in pm_model.value_vars])
    function(point)
    best = np.inf
    for _ in range(3):  # the best of three blocks: the machine is shared
        start = time.perf_counter()
        for _ in range(evals):
            function(point)
        best = min(best, (time.perf_counter() - start) / evals)
    return best


def nuts(model, data, draws: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = fit(model, data, backend="nuts", draws=draws, tune=draws, chains=2, cores=1,
                    random_seed=0, progressbar=False)
    sampling = float(idata.posterior.attrs["run_s"])
    n_steps = int(idata.sample_stats["n_steps"].sum())
    names = list(idata.posterior.data_vars)
    ess = az.ess(idata, var_names=names)
    values = np.concatenate([ess[name].values.ravel() for name in names])
    return sampling, n_steps, float(values[np.isfinite(values)].min())


def table_as_log_density(init, trans, table, codes, offsets):
    """The categorical likelihood through the Op's log-density form."""
    import pytensor.tensor as pt

    from latentzoo.models.ops.hmm_op import hmm_log_emission_likelihood

    positive = pt.gt(table, 0)
    # a log whose gradient is 0, not NaN, at the masked zeros
    log_table = pt.switch(positive, pt.log(pt.switch(positive, table, 1.0)), -np.inf)
    return hmm_log_emission_likelihood(init, trans, log_table.T[codes], offsets)


def compare_forms(draws: int, evals: int, repeats: int = 3) -> None:
    """The dice HMM's table form against its log-density form, alternating in one process; the
    minimum over repeats (the machine is shared)."""
    from contextlib import nullcontext
    from unittest import mock

    from latentzoo.models.hmm import pymc as hmm_pymc

    dice, rolls = cases()["dice T=1000"]
    forms = {"table": None, "log_density": table_as_log_density}

    def declared(form):
        replacement = forms[form]
        return mock.patch.object(hmm_pymc, "hmm_log_likelihood", replacement) if replacement else nullcontext()

    per_call, per_step = {form: [] for form in forms}, {form: [] for form in forms}
    for _ in range(repeats):
        for form in forms:
            with declared(form):
                per_call[form].append(gradient_time(dice, rolls, evals))
                sampling, n_steps, _ = nuts(dice, rolls, draws)
            per_step[form].append(sampling / n_steps)
    for form in forms:
        print(f"{form:12s} logp+grad {min(per_call[form]) * 1e6:7.1f} us   NUTS {min(per_step[form]) * 1e6:7.1f} us/step")
    print(f"log-density form / table form: logp+grad {min(per_call['log_density']) / min(per_call['table']):.2f}x, "
          f"NUTS per step {min(per_step['log_density']) / min(per_step['table']):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=300, help="draws and tuning steps per chain")
    parser.add_argument("--evals", type=int, default=3000, help="log-density + gradient calls per block")
    parser.add_argument("--label", default="", help="printed in front of every line")
    parser.add_argument("--forms", action="store_true", help="the dice HMM's two ways into the Op instead")
    args = parser.parse_args()
    if args.forms:
        compare_forms(args.draws, args.evals)
        return
    for name, (model, data) in cases().items():
        per_call = gradient_time(model, data, args.evals)
        sampling, n_steps, min_ess = nuts(model, data, args.draws)
        print(f"{args.label:8s} {name:15s} logp+grad {per_call * 1e6:8.1f} us   NUTS sampling {sampling:6.2f} s, "
              f"{n_steps:6d} steps, {sampling / n_steps * 1e6:7.1f} us/step, min ESS {min_ess:6.0f}, "
              f"ESS/s {min_ess / sampling:7.1f}", flush=True)


if __name__ == "__main__":
    main()
