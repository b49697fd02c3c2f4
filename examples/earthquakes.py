"""How many regimes of seismic activity? Poisson HMMs with 2 and 3 states on the annual counts of
major earthquakes, 1900-2006 (Zucchini, MacDonald & Langrock 2016), chosen by BIC.

Each model is fitted by maximum-likelihood EM (Baum-Welch, ``mle=True``) from several starts. A
K-state Poisson HMM has K^2 - 1 + K free parameters: K - 1 initial probabilities, K (K - 1)
transition probabilities and K rates. BIC = -2 log L + p log T with T = 107 years; the lower wins.
The script prints the table and checks the choice: two states. (Zucchini et al. fit a stationary
chain, whose initial distribution is not free, so they count K^2 parameters; with that count the
three-state model wins BIC narrowly. Estimating the initial distribution costs K - 1 more.)

Run:  .venv/bin/python examples/earthquakes.py
"""

from __future__ import annotations

import numpy as np

from latentzoo.inference import fit
from latentzoo.models import PoissonHMM
from latentzoo.models.datasets import earthquakes


def main() -> None:
    years, counts = earthquakes()
    T = counts.size
    print(f"{T} years ({years[0]}-{years[-1]}), mean {counts.mean():.2f} earthquakes a year, variance "
          f"{counts.var(ddof=1):.2f} (a single Poisson would have them equal)\n")
    print(f"{'states':>6s} {'log L':>9s} {'params':>6s} {'BIC':>8s}   rates (sorted)")
    table = {}
    for K in (2, 3):
        model = PoissonHMM(K)
        result = fit(model, counts, backend="em", mle=True, n_init=10, tol=1e-12, max_iter=5000, random_seed=0,
                     progressbar=False)
        params = {name: result.posterior[name].values[0, 0] for name in model.param_names}
        log_lik = float(model.log_likelihood(counts, params).sum())
        n_params = model.n_parameters(counts)
        assert n_params == K**2 - 1 + K
        bic = -2.0 * log_lik + n_params * np.log(T)
        table[K] = bic
        print(f"{K:6d} {log_lik:9.2f} {n_params:6d} {bic:8.2f}   {np.sort(params['rates']).round(2)}")
    best = min(table, key=table.get)
    print(f"\nBIC picks {best} states")
    # the published maximum of the 2-state model: rates 15.42 and 26.01, log L = -341.88
    assert best == 2, table


if __name__ == "__main__":
    main()
