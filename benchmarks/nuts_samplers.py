"""NUTS samplers side by side: ``sampler="pymc"``, ``"nutpie"``, ``"numpyro"`` and ``"blackjax"``.

The same ``fit(model, data, "nuts", sampler=...)`` call on the Gaussian mixture and on the dice
HMM, with the same draws, tuning steps and chains, in one run. Printed per sampler: wall time of
the whole fit, the sampling time as the sampler clocks it (for NumPyro and BlackJAX this
includes JAX's compilation of the sampling loop, which is traced for each fit; for PyMC and
nutpie the model's compilation is outside it), draws per second of sampling, the minimum bulk
ESS over the parameters, and ESS per second of sampling and of wall time. nutpie is skipped if
it is not installed (``pip install 'latentzoo[bench]'``), NumPyro and BlackJAX without
``latentzoo[jax]``.

PyMC and nutpie run their chains one after the other here (``cores=1``) and the JAX samplers
vectorise them in one computation, so every sampler uses one core.

Usage::

    python benchmarks/nuts_samplers.py            # 1000 tuning steps and 1000 draws, 2 chains
    python benchmarks/nuts_samplers.py --quick    # 300 and 300
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import warnings

import arviz as az
import numpy as np

from latentzoo.inference import fit
from latentzoo.models import DiceHMM, GaussianMixture

SAMPLERS = ("pymc", "nutpie", "numpyro", "blackjax")


def gmm_case():
    """300 points of three 2-D blobs 6 sds apart."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    return "GMM (N=300, D=2, K=3)", GaussianMixture(3), centres[rng.integers(0, 3, 300)] + rng.normal(size=(300, 2))


def dice_case():
    dice = DiceHMM()
    rolls, _ = dice.simulate(dice.default_params(), 200, rng=1)
    return "dice HMM (T=200)", dice, rolls


def available(sampler: str) -> bool:
    needed = {"nutpie": ("nutpie",), "numpyro": ("jax", "numpyro"), "blackjax": ("jax", "blackjax")}.get(sampler, ())
    return all(importlib.util.find_spec(name) is not None for name in needed)


def run(model, data, sampler: str, draws: int, tune: int, chains: int) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = fit(model, data, backend="nuts", sampler=sampler, draws=draws, tune=tune, chains=chains, cores=1,
                    random_seed=0, progressbar=False)
    wall = time.perf_counter() - start
    ess = az.ess(idata, var_names=list(model.param_names))
    values = np.concatenate([ess[name].values.ravel() for name in model.param_names])
    min_ess = float(values[np.isfinite(values)].min())
    sampling = float(idata.posterior.attrs["run_s"])
    return {"wall": wall, "sampling": sampling, "draws_per_s": chains * (draws + tune) / sampling,
            "min_ess": min_ess, "ess_per_s": min_ess / sampling, "ess_per_wall_s": min_ess / wall,
            "divergences": int(idata.sample_stats["diverging"].sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 tuning steps and 300 draws instead of 1000")
    parser.add_argument("--chains", type=int, default=2)
    args = parser.parse_args()
    draws = tune = 300 if args.quick else 1000
    print(f"{tune} tuning steps + {draws} draws, {args.chains} chains")
    print(f"{'model':24s} {'sampler':9s} {'wall s':>7s} {'sampling s':>10s} {'draws/s':>8s} {'min ESS':>8s} "
          f"{'ESS/s':>7s} {'ESS/wall s':>10s} {'div':>4s}")
    for label, model, data in (gmm_case(), dice_case()):
        for sampler in SAMPLERS:
            if not available(sampler):
                print(f"{label:24s} {sampler:9s} (not installed)")
                continue
            row = run(model, data, sampler, draws, tune, args.chains)
            print(f"{label:24s} {sampler:9s} {row['wall']:7.1f} {row['sampling']:10.1f} {row['draws_per_s']:8.0f} "
                  f"{row['min_ess']:8.0f} {row['ess_per_s']:7.1f} {row['ess_per_wall_s']:10.1f} {row['divergences']:4d}",
                  flush=True)


if __name__ == "__main__":
    main()
