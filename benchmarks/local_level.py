"""The local-level model's Kalman log-likelihood in PyMC: a PyTensor ``scan`` against the Op with
an analytic gradient that the model uses; and the maximum-likelihood fit against statsmodels.

Printed per series (the Nile, T = 100, and a simulated series, T = 1000):

* the compiled log-density + gradient (the function NUTS calls), microseconds per call, the best
  of three blocks of ``--evals`` calls, for each form;
* a short NUTS run per form (2 chains one after the other, one core): sampling seconds (PyMC's
  clock), leapfrog steps, microseconds per step, minimum bulk ESS per second, and the seconds
  spent outside sampling (building, rewriting and compiling the graph);
* maximum likelihood: statsmodels' ``UnobservedComponents("local level")`` fit (L-BFGS, its
  default) with the same known initialisation, against EM with ``mle=True``, and the MAP through
  each form; seconds (best of three) and the log-likelihood reached.

The two forms alternate in one process; the machine may be shared, so the minimum over repeats is
printed.

Usage::

    python benchmarks/local_level.py
    python benchmarks/local_level.py --draws 300 --evals 2000 --repeats 3
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
from latentzoo.models import LocalLevel
from latentzoo.models.datasets import nile
from latentzoo.models.statespace import local_level as local_level_module


def cases():
    years, flow = nile()
    model = LocalLevel()
    series, _ = LocalLevel(level_prior=(0.0, 10.0)).simulate({"sigma2_eps": 1.0, "sigma2_eta": 0.05}, 1000, rng=3)
    return {"nile T=100": flow, "simulated T=1000": series}, model


def scan_form(y, sigma2_eps, sigma2_eta, level_mean, level_var):
    """The likelihood through the PyTensor ``scan``, in the place of the model's Op."""
    return local_level_module.pymc_kalman_log_likelihood(y, sigma2_eps, sigma2_eta, level_mean, level_var).sum()


#: form -> what replaces ``pymc_log_likelihood`` in the model's declaration (None: the model's own Op)
FORMS = {"scan": scan_form, "op": None}


def declared(form):
    replacement = FORMS[form]
    return mock.patch.object(local_level_module, "pymc_log_likelihood", replacement) if replacement else nullcontext()


def gradient_time(model, y, evals: int) -> float:
    pm_model = model.pymc_model(y)
    function = pm_model.logp_dlogp_function(ravel_inputs=True)
    function.set_extra_values({})
    initial = pm_model.initial_point()
    point = np.concatenate([np.ravel(initial[var.name]) for var in pm_model.value_vars])
    function(point)
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(evals):
            function(point)
        best = min(best, (time.perf_counter() - start) / evals)
    return best


def nuts(model, y, draws: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = fit(model, y, backend="nuts", draws=draws, tune=draws, chains=2, cores=1, random_seed=0, progressbar=False)
    sampling = float(idata.attrs["run_s"])
    n_steps = int(idata.sample_stats["n_steps"].sum())
    ess = az.ess(idata, var_names=["sigma2_eps", "sigma2_eta"])
    return sampling, n_steps, min(float(ess[name]) for name in ("sigma2_eps", "sigma2_eta")), float(idata.attrs["runtime_s"]) - sampling


def statsmodels_mle(y, level_prior):
    import statsmodels.api as sm

    reference = sm.tsa.UnobservedComponents(y, level="local level")
    reference.ssm.initialize_known(np.array([level_prior[0]]), np.array([[level_prior[1]]]))
    reference.ssm.loglikelihood_burn = 0
    result = reference.fit(disp=False)
    return result.params, result.llf


def best_time(function, repeats: int):
    best, value = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=300, help="draws and tuning steps per chain")
    parser.add_argument("--evals", type=int, default=2000, help="log-density + gradient calls per block")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    series, base = cases()
    for label, y in series.items():
        model = base.with_data_prior(y)
        print(f"== {label}")
        for form in FORMS:
            with declared(form):
                per_call = gradient_time(model, y, args.evals)
                runs = [nuts(model, y, args.draws) for _ in range(args.repeats)]
            sampling = min(run[0] for run in runs)
            n_steps = runs[0][1]
            print(f"{form:5s} logp+grad {per_call * 1e6:8.1f} us   NUTS {sampling:6.2f} s, {n_steps} steps, "
                  f"{min(run[0] / run[1] for run in runs) * 1e6:7.1f} us/step, min ESS/s {max(run[2] / run[0] for run in runs):7.0f}, "
                  f"outside sampling {min(run[3] for run in runs):5.1f} s")
        seconds, (params, llf) = best_time(lambda: statsmodels_mle(y, model.level_prior), args.repeats)
        print(f"statsmodels MLE  {seconds:6.3f} s  loglik {llf:.4f}  params {params[0]:.5g} {params[1]:.5g}")

        def em():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = fit(model, y, backend="em", mle=True, n_init=1, random_seed=0, progressbar=False)
            point = {name: float(result.posterior[name].values.squeeze()) for name in ("sigma2_eps", "sigma2_eta")}
            return point, int(result.attrs["n_iter"])

        seconds, (point, n_iter) = best_time(em, args.repeats)
        loglik = model.log_likelihood(y, point).sum()
        print(f"EM (mle=True)    {seconds:6.3f} s  loglik {loglik:.4f}  params {point['sigma2_eps']:.5g} {point['sigma2_eta']:.5g}"
              f"  ({n_iter} iterations)")
        for form in FORMS:
            def map_fit():
                with warnings.catch_warnings(), declared(form):
                    warnings.simplefilter("ignore")
                    result = fit(model, y, backend="map", random_seed=0, progressbar=False)
                return float(result.attrs["run_s"]), float(result.attrs["runtime_s"])

            _, (run_s, runtime_s) = best_time(map_fit, args.repeats)
            print(f"MAP ({form:4s})       run {run_s:6.3f} s, with compiling {runtime_s:6.2f} s (the log posterior: prior included)")


if __name__ == "__main__":
    main()
