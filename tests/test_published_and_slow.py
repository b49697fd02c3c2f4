"""Published numbers (default run) and long statistical runs (``-m slow``)."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from latentzoo.inference import compare, fit
from latentzoo.models import ThreeCoins

# Do & Batzoglou (2008), "What is the expectation maximization algorithm?", Nature
# Biotechnology 26:897, figure 1b: five trials of ten flips, coin chosen with probability 1/2.
TWO_COIN_EXPERIMENT = ["HTTTHHTHTH", "HHHHTHHHHH", "HTHHHHHTHH", "HTHTTTHHTT", "THHHTHHHTH"]
TWO_COIN_FLIPS = np.array([[c == "H" for c in trial] for trial in TWO_COIN_EXPERIMENT], dtype=int)


def test_two_coin_experiment_reproduces_published_em_estimates():
    # the paper starts at theta_A = 0.6, theta_B = 0.5 and reports 0.80 and 0.52 after 10 iterations
    idata = fit(ThreeCoins(pi=0.5), TWO_COIN_FLIPS, backend="em", mle=True, init={"p": 0.6, "q": 0.5},
                max_iter=10, tol=1e-12, random_seed=0, progressbar=False)
    assert float(idata.posterior["p"].values.squeeze()) == pytest.approx(0.80, abs=0.005)
    assert float(idata.posterior["q"].values.squeeze()) == pytest.approx(0.52, abs=0.005)


def test_two_coin_experiment_first_em_iteration_matches_published_counts():
    # figure 1b's first E-step gives expected heads/tails of 21.3/8.6 for coin A and 11.7/8.4
    # for coin B, so the first M-step gives 0.71 and 0.58
    idata = fit(ThreeCoins(pi=0.5), TWO_COIN_FLIPS, backend="em", mle=True, init={"p": 0.6, "q": 0.5},
                max_iter=1, tol=1e-12, random_seed=0, progressbar=False)
    assert float(idata.posterior["p"].values.squeeze()) == pytest.approx(0.71, abs=0.005)
    assert float(idata.posterior["q"].values.squeeze()) == pytest.approx(0.58, abs=0.005)


@pytest.mark.slow
def test_nutpie_agrees_with_exact():
    import nutpie  # noqa: F401  (the `bench` extra, which `make test-slow` installs)

    model = ThreeCoins(p_prior=(8, 2), q_prior=(2, 8))  # asymmetric: one posterior mode
    exact = model.exact_posterior(TWO_COIN_FLIPS)
    idata = fit(model, TWO_COIN_FLIPS, backend="nuts", sampler="nutpie", draws=2000, tune=1000, chains=2,
                random_seed=0, progressbar=False)
    ess = az.ess(idata, var_names=["pi", "p", "q"])
    for name, mean in exact.mean().items():
        standard_error = exact.sd()[name] / np.sqrt(float(ess[name]))
        assert abs(float(idata.posterior[name].mean()) - mean) < 4 * standard_error


@pytest.mark.slow
def test_identified_comparison_on_the_two_coin_experiment():
    # symmetric priors: the posterior has two mirror modes; after the identification rule (p >= q)
    # every sampler must agree with the identically relabelled exact draws
    result = compare(
        ThreeCoins(pi=0.5), TWO_COIN_FLIPS, backends=("gibbs", "nuts", "exact"), random_seed=1,
        options={"gibbs": {"draws": 4000, "chains": 4, "progressbar": False},
                 "nuts": {"draws": 3000, "tune": 1000, "chains": 2, "cores": 1, "progressbar": False},
                 "exact": {"draws": 40_000}},
        progressbar=False,
    )
    assert not result.failures
    table = result.table.set_index(["backend", "parameter"])
    for backend in ("gibbs", "nuts"):
        for name in ("p", "q"):
            row = table.loc[(backend, name)]
            # 4 Monte-Carlo standard errors (reference sd / sqrt(ESS)), plus the reference's own
            standard_error = row["ref_sd"] * np.sqrt(1 / row["ess_bulk"] + 1 / 40_000)
            assert abs(row["mean"] - row["ref_mean"]) < 4 * standard_error, (backend, name)
