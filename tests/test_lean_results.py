"""Lean per-observation results: ``fit(..., per_observation="full" | "lazy" | "summary" | "auto")``.

Lazy results must equal the full ones once computed, and be Dask-backed until then; summaries
must equal the sums of the full arrays; LOO works on lazy results and says why it cannot on
summaries.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("dask")

from latentzoo.inference import fit, lean  # noqa: E402
from latentzoo.inference.comparison.metrics import loo_table  # noqa: E402
from latentzoo.models import GaussianMixture, ThreeCoins  # noqa: E402
from latentzoo.models.datasets import blobs  # noqa: E402

from .conftest import simulate_flips  # noqa: E402

GIBBS = {"draws": 40, "tune": 20, "chains": 2, "progressbar": False}


@pytest.fixture(scope="module")
def gmm_results():
    x, _ = blobs(200, centers=((-4.0, 0.0), (4.0, 0.0)), cluster_std=1.0, random_seed=3)
    model = GaussianMixture(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 40 draws need not mix
        results = {mode: fit(model, x, "gibbs", random_seed=4, per_observation=mode, **GIBBS)
                   for mode in ("full", "lazy", "summary")}
    return x, results


def test_lazy_results_are_dask_backed_and_equal_the_full_ones(gmm_results):
    _, results = gmm_results
    full, lazy = results["full"], results["lazy"]
    assert full.attrs["per_observation"] == "full" and lazy.attrs["per_observation"] == "lazy"
    for group, name in (("log_likelihood", "x"), ("posterior", "responsibilities")):
        variable = lazy[group][name]
        assert variable.chunks is not None  # nothing computed yet
        assert full[group][name].chunks is None
        np.testing.assert_allclose(variable.values, full[group][name].values, rtol=1e-12, atol=1e-300)
        assert variable.dims == full[group][name].dims
    for name in ("weights", "means", "covs"):
        np.testing.assert_array_equal(lazy.posterior[name].values, full.posterior[name].values)


def test_summary_keeps_totals_per_draw(gmm_results):
    x, results = gmm_results
    full, summary = results["full"], results["summary"]
    assert "log_likelihood" not in summary.children
    assert "responsibilities" not in summary.posterior
    totals = summary[lean.SUMMARY_GROUP]
    np.testing.assert_allclose(totals["log_likelihood_sum"].values, full.log_likelihood["x"].values.sum(-1), rtol=1e-12)
    expected_counts = totals["responsibilities_sum"]
    assert expected_counts.dims == ("chain", "draw", "component")
    np.testing.assert_allclose(expected_counts.values, full.posterior["responsibilities"].values.sum(2), rtol=1e-12)
    np.testing.assert_allclose(expected_counts.values.sum(-1), len(x))  # every point is shared out in full


def test_loo_on_lazy_equals_loo_on_full_and_summary_says_why_not(gmm_results):
    _, results = gmm_results
    table, _ = loo_table({"full": results["full"], "lazy": results["lazy"]})
    assert table.loc["full", "elpd_loo"] == pytest.approx(table.loc["lazy", "elpd_loo"], rel=1e-10)
    table, note = loo_table({"summary": results["summary"]})
    assert table is None
    assert "per_observation='summary'" in note and "summary" in note


def test_lazy_result_writes_to_netcdf(gmm_results, tmp_path):
    import xarray as xr

    _, results = gmm_results
    path = tmp_path / "lazy.nc"
    results["lazy"].to_netcdf(path)
    back = xr.open_datatree(path)
    np.testing.assert_allclose(back.log_likelihood["x"].values, results["full"].log_likelihood["x"].values)
    back.close()


def test_auto_is_full_for_small_and_lazy_above_the_limit(monkeypatch):
    flips = simulate_flips(50, 5, 0.4, 0.8, 0.3, seed=1)
    model = ThreeCoins()
    small = fit(model, flips, "em", random_seed=1, progressbar=False)
    assert small.attrs["per_observation"] == "full"
    # em: one draw of 50 trials, log-likelihood and coin_b_prob: 100 numbers
    monkeypatch.setattr(lean, "AUTO_LIMIT", 99)
    big = fit(model, flips, "em", random_seed=1, progressbar=False)
    assert big.attrs["per_observation"] == "lazy"
    assert big.log_likelihood["flips"].chunks is not None
    np.testing.assert_allclose(big.log_likelihood["flips"].values, small.log_likelihood["flips"].values)
    np.testing.assert_allclose(big.posterior["coin_b_prob"].values, small.posterior["coin_b_prob"].values)


def test_per_observation_is_checked():
    with pytest.raises(ValueError, match=r"per_observation must be one of \['auto', 'full', 'lazy', 'summary'\]"):
        fit(ThreeCoins(), [1, 0, 1], "em", per_observation="lean")
    with pytest.raises(ValueError, match="per_observation must be one of"):
        fit(ThreeCoins(), [1, 0, 1], "em", per_observation=None)


def test_lazy_tasks_split_the_draws_so_one_draw_is_read_alone(gmm_results, monkeypatch):
    x, results = gmm_results
    monkeypatch.setattr(lean, "BLOCK_NUMBERS", 3 * len(x))  # responsibilities: one draw per task
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = fit(GaussianMixture(2), x, "gibbs", random_seed=4, per_observation="lazy", **GIBBS)
    assert lazy.posterior["responsibilities"].chunks[1] == (1,) * GIBBS["draws"]
    assert lazy.log_likelihood["x"].chunks[1] == (3,) * 13 + (1,)
    np.testing.assert_allclose(lazy.posterior["responsibilities"][1, 7].values,
                               results["full"].posterior["responsibilities"][1, 7].values, rtol=1e-12)
    np.testing.assert_allclose(lazy.log_likelihood["x"].values, results["full"].log_likelihood["x"].values, rtol=1e-12)


def test_compare_passes_per_observation_to_every_back_end():
    from latentzoo.inference import compare

    flips = simulate_flips(40, 5, 0.4, 0.8, 0.3, seed=2)
    with pytest.raises(ValueError, match="per_observation must be one of"):
        compare(ThreeCoins(), flips, backends=["em"], per_observation="some", progressbar=False)
    lazy = compare(ThreeCoins(), flips, backends=["em", "vb"], progressbar=False, per_observation="lazy")
    assert {idata.attrs["per_observation"] for idata in lazy.idatas.values()} == {"lazy"}
    full = compare(ThreeCoins(), flips, backends=["em", "vb"], progressbar=False, per_observation="full")
    np.testing.assert_allclose(lazy.loo.loc["vb", "elpd_loo"], full.loo.loc["vb", "elpd_loo"], rtol=1e-10)
    summary = compare(ThreeCoins(), flips, backends=["em", "vb"], progressbar=False, per_observation="summary")
    assert {idata.attrs["per_observation"] for idata in summary.idatas.values()} == {"summary"}
    assert not set(summary.idatas["vb"].children) & {"log_likelihood"}
