"""Error against the exact posterior and time of smc, laplace, pathfinder and svgd, side by side
with nuts and advi, on the three coins (informative priors, 40 x 10 flips) and the NIW (old
faithful, n = 272).

Run: ``python benchmarks/more_backends.py`` (minutes: each back-end compiles its PyMC graph once
per model). Prints one row per (model, back-end): the largest |mean error| and |sd ratio - 1| over
the parameters' elements (in exact posterior sds), the fit's wall time (compilation included),
draws per second of it, and the smallest bulk ESS over the parameters' elements per second.
For svgd (particles) and laplace (independent draws) the ESS of the draws says how many
independent draws they are worth, not how close the approximation is: the error columns say that.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from latentzoo.inference import fit
from latentzoo.models import NIWGaussian, ThreeCoins

BACKENDS = {
    "nuts": {"draws": 1000, "tune": 1000, "chains": 2, "cores": 1},
    "advi": {"draws": 2000},
    "smc": {"draws": 1000, "chains": 2, "cores": 1},
    "laplace": {"draws": 2000},
    "pathfinder": {"draws": 2000},
    "svgd": {"n_particles": 100},
}


def cases():
    coins = ThreeCoins(p_prior=(8.0, 2.0), q_prior=(2.0, 8.0))
    rng = np.random.default_rng(7)
    heavy = rng.random(40) < 0.3
    flips = (rng.random((40, 10)) < np.where(heavy, 0.85, 0.35)[:, None]).astype(int)
    niw = NIWGaussian()
    data = niw.check_data(niw.default_data())
    yield "three-coins", coins, coins.check_data(flips), ("pi", "p", "q")
    yield "niw", niw.with_data_prior(data), data, ("mu", "Sigma")


def errors(result, exact: dict, names) -> tuple[float, float]:
    shifts, ratios = [], []
    for name in names:
        got = result.posterior[name].values.reshape(-1, exact[name][0].size)
        ref = exact[name].reshape(len(exact[name]), -1)
        sd = ref.std(0)
        keep = sd > 0
        shifts.append(np.max(np.abs(got.mean(0) - ref.mean(0))[keep] / sd[keep]))
        ratios.append(np.max(np.abs(got.std(0)[keep] / sd[keep] - 1)))
    return float(max(shifts)), float(max(ratios))


def min_ess(result, names) -> float:
    """The smallest bulk ESS over the parameters' varying elements (arviz-stats, rank-normalised)."""
    from arviz_stats.base import array_stats

    posterior = result.posterior
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    columns = np.concatenate([posterior[name].values.reshape(chains, draws, -1) for name in names], axis=-1)
    varying = np.ptp(columns.reshape(chains * draws, -1), axis=0) > 0
    ess = np.asarray(array_stats.ess(np.moveaxis(columns[..., varying], -1, 0), method="bulk"), float)
    return float(np.nanmin(ess))


def main() -> None:
    print(f"{'model':12} {'backend':11} {'mean err (sd)':>14} {'sd err':>8} {'seconds':>8} {'draws/s':>9} {'min ESS':>8} {'ESS/s':>7}")
    for label, model, data, names in cases():
        exact = model.exact_posterior(data).sample(np.random.default_rng(0), 100_000)
        for backend, options in BACKENDS.items():
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = fit(model, data, backend=backend, random_seed=0, progressbar=False, **options)
            seconds = time.perf_counter() - start
            shift, ratio = errors(result, exact, names)
            n_draws = result.posterior.sizes["chain"] * result.posterior.sizes["draw"]
            ess = min_ess(result, names)
            print(f"{label:12} {backend:11} {shift:14.3f} {ratio:8.3f} {seconds:8.1f} {n_draws / seconds:9.0f} "
                  f"{ess:8.0f} {ess / seconds:7.1f}", flush=True)


if __name__ == "__main__":
    main()
