"""NUTS on the dice HMM: the forward-backward Op against a PyTensor ``scan`` with autodiff.

Both declarations carry the same priors (the model's own ``pymc_model``); only the marginal
likelihood differs: the project's Op (value and gradient from one compiled forward-backward
pass) or a scaled forward recursion written as a ``scan`` and differentiated by PyTensor (the
usual way to write an HMM in PyMC). Printed: time per log-density + gradient, and NUTS (PyMC's
sampler, 2 chains run one after the other) wall time, sampling time (PyMC's own clock, without
model building and compilation), minimum bulk ESS over the parameters, and ESS per second of
sampling, all measured in this run; then the Op's ratios against the scan at each T.

Usage::

    python benchmarks/hmm_nuts.py            # T = 200 and T = 1000, both likelihoods
    python benchmarks/hmm_nuts.py --quick    # fewer draws
"""

from __future__ import annotations

import argparse
import time
import warnings
from contextlib import nullcontext
from unittest import mock

import arviz as az
import numpy as np

from latentzoo.inference import fit
from latentzoo.models import DiceHMM
from latentzoo.models.hmm import pymc as hmm_pymc


def scan_log_likelihood(init, trans, emission, symbols, offsets):
    """Scaled forward recursion as a PyTensor scan (autodiff gives the gradient)."""
    import pytensor
    import pytensor.tensor as pt

    # the declaration passes the offsets as a data container; the scan unrolls over sequences
    offsets = offsets.get_value() if hasattr(offsets, "get_value") else offsets
    lik = emission.T[symbols]  # (T, K)
    total = 0.0
    for start, stop in zip(offsets[:-1], offsets[1:]):
        first = init * lik[start]

        def step(lik_t, alpha_prev, trans_mat):
            alpha = pt.dot(alpha_prev, trans_mat) * lik_t
            c = pt.sum(alpha)
            return alpha / c, pt.log(c)

        (_, log_c), _ = pytensor.scan(
            step, sequences=lik[start + 1 : stop], outputs_info=[first / pt.sum(first), None], non_sequences=[trans]
        )
        total = total + pt.log(pt.sum(first)) + pt.sum(log_c)
    return total


def gradient_time(pm_model, repeats: int) -> float:
    """Seconds per call of the function NUTS calls: log-density and gradient together."""
    function = pm_model.logp_dlogp_function(ravel_inputs=True)
    function.set_extra_values({})
    initial = pm_model.initial_point()
    point = np.concatenate([np.ravel(initial[var.name]) for var in pm_model.value_vars])
    function(point)
    start = time.perf_counter()
    for _ in range(repeats):
        function(point)
    return (time.perf_counter() - start) / repeats


def nuts(dice, rolls, draws: int, sampler: str = "pymc"):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = fit(
            dice, rolls, backend="nuts", sampler=sampler, draws=draws, tune=draws, chains=2, cores=1,
            random_seed=0, progressbar=False,
        )
    wall = time.perf_counter() - start
    ess = az.ess(idata, var_names=list(dice.param_names))
    values = np.concatenate([ess[name].values.ravel() for name in dice.param_names])
    values = values[np.isfinite(values)]
    return wall, float(idata.posterior.attrs["run_s"]), float(values.min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 draws instead of 1000")
    args = parser.parse_args()
    draws = 500 if args.quick else 1000
    dice = DiceHMM()
    rows = []
    lengths = (200, 1000)
    for n_steps in lengths:
        rolls, _ = dice.simulate(dice.default_params(), n_steps, rng=1)
        for label, replacement in (("forward-backward Op", None), ("scan + autodiff", scan_log_likelihood)):
            # the name the declaration calls (models/hmm/pymc.py imports it from the Op's module)
            patch = mock.patch.object(hmm_pymc, "hmm_log_likelihood", replacement) if replacement else nullcontext()
            with patch:
                per_gradient = gradient_time(dice.pymc_model(rolls), repeats=200)
                wall, sampling, min_ess = nuts(dice, rolls, draws)
            rows.append((n_steps, label, per_gradient * 1e3, wall, min_ess, min_ess / sampling))
            print(f"T={n_steps:5d} {label:22s} {per_gradient * 1e3:7.3f} ms/grad  NUTS {wall:6.1f} s "
                  f"(sampling {sampling:6.1f} s)  min ESS {min_ess:6.0f}  ESS/s {min_ess / sampling:7.2f}", flush=True)
    by_label = {(row[0], row[1]): row for row in rows}
    print()
    for n_steps in lengths:
        op, scan = by_label[(n_steps, "forward-backward Op")], by_label[(n_steps, "scan + autodiff")]
        print(f"T={n_steps}: gradient {scan[2] / op[2]:.1f}x faster, NUTS ESS per second of sampling "
              f"{op[5] / scan[5]:.1f}x higher with the Op")


if __name__ == "__main__":
    main()
