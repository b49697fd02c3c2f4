"""The forward-backward Op inside NUTS, for a categorical (dice) and a Gaussian HMM.

Uses the public API only (``model.pymc_model``, ``fit``), so the same script measures two
versions of the code side by side: run it with each checkout's interpreter, one after the
other, in one session. Printed per model: the compiled log-density + gradient (the function
NUTS calls) in microseconds per call over ``--evals`` calls, then a short PyMC NUTS run (2
chains one after the other, one core): sampling seconds (PyMC's own clock, without building
and compiling), the number of gradient evaluations (leapfrog steps), microseconds per
leapfrog step, and minimum bulk ESS per second of sampling.

Usage::

    python benchmarks/hmm_ops.py                 # dice T = 1000, Gaussian T = 500
    python benchmarks/hmm_ops.py --draws 300 --evals 3000 --label main
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=300, help="draws and tuning steps per chain")
    parser.add_argument("--evals", type=int, default=3000, help="log-density + gradient calls per block")
    parser.add_argument("--label", default="", help="printed in front of every line")
    args = parser.parse_args()
    for name, (model, data) in cases().items():
        per_call = gradient_time(model, data, args.evals)
        sampling, n_steps, min_ess = nuts(model, data, args.draws)
        print(f"{args.label:8s} {name:15s} logp+grad {per_call * 1e6:8.1f} us   NUTS sampling {sampling:6.2f} s, "
              f"{n_steps:6d} steps, {sampling / n_steps * 1e6:7.1f} us/step, min ESS {min_ess:6.0f}, "
              f"ESS/s {min_ess / sampling:7.1f}", flush=True)


if __name__ == "__main__":
    main()
