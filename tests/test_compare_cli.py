"""The comparison, label switching, the report and the command line."""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pytest
import xarray as xr

from latentzoo.inference import compare, fit
from latentzoo.inference.cli import main
from latentzoo.inference.labels import PERMUTATION_VAR, relabel, relabel_by_model
from latentzoo.models import ThreeCoins

from .conftest import SEED_FLIPS

FAST = ("em", "vb", "gibbs", "exact")
FAST_OPTIONS = {
    "em": {"progressbar": False},
    "vb": {"progressbar": False},
    "gibbs": {"draws": 300, "tune": 100, "chains": 2, "progressbar": False},
}


# -- label switching ---------------------------------------------------------------------------
def _mixture_like_idata(permutations: np.ndarray, truth: np.ndarray) -> az.InferenceData:
    """Draws of per-component means, each draw stored under a known permutation of the labels."""
    n_chain, n_draw, n_comp = permutations.shape
    rng = np.random.default_rng(0)
    noisy = truth[None, None, :] + 0.01 * rng.standard_normal((n_chain, n_draw, n_comp))
    stored = np.take_along_axis(noisy, permutations, axis=-1)
    posterior = xr.Dataset(
        {"means": (("chain", "draw", "component"), stored)},
        coords={"chain": np.arange(n_chain), "draw": np.arange(n_draw), "component": np.arange(n_comp)},
    )
    return az.InferenceData(posterior=posterior)


def test_relabel_recovers_known_permutations():
    truth = np.array([-3.0, 0.0, 5.0])
    rng = np.random.default_rng(1)
    permutations = np.stack([[rng.permutation(3) for _ in range(50)] for _ in range(2)])
    idata = _mixture_like_idata(permutations, truth)
    relabelled = relabel(idata, {"means": truth}, "component")
    np.testing.assert_allclose(relabelled.posterior["means"].values, truth + 0 * permutations, atol=0.05)
    # the recorded permutation names, for each new label, the stored label it came from:
    # stored label k holds true component permutations[k], so true j came from argsort()[j]
    np.testing.assert_array_equal(relabelled.posterior[PERMUTATION_VAR].values, np.argsort(permutations, axis=-1))


def test_three_coin_identification_rule_swaps_mirror_draws():
    model = ThreeCoins()  # symmetric priors: (pi, p, q) and (1 - pi, q, p) are equally probable
    data = np.array([[1, 1, 1, 0], [0, 0, 0, 1], [1, 1, 0, 1], [0, 0, 1, 0]])
    idata = fit(model, data, backend="exact", random_seed=3, draws=2000)
    before = idata.posterior
    after = relabel_by_model(model, data, idata).posterior
    swapped = after["label_swapped"].values
    assert 0.3 < swapped.mean() < 0.7  # exact draws visit both mirror modes
    assert np.all(after["p"].values >= after["q"].values)
    np.testing.assert_allclose(after["heads_prob"].values, before["heads_prob"].values)
    np.testing.assert_allclose(
        after["coin_b_prob"].values[swapped], 1.0 - before["coin_b_prob"].values[swapped], atol=1e-12
    )


def test_identification_rule_leaves_asymmetric_priors_alone():
    model = ThreeCoins(p_prior=(5, 1))  # the prior tells coin B from coin C
    idata = fit(model, [[1, 0], [0, 0]], backend="exact", random_seed=0, draws=200)
    after = relabel_by_model(model, [[1, 0], [0, 0]], idata).posterior
    assert not after["label_swapped"].values.any()


# -- compare -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seed_comparison():
    return compare(ThreeCoins(), SEED_FLIPS, backends=FAST, random_seed=0, options=FAST_OPTIONS, progressbar=False)


def test_comparison_table_has_one_row_per_backend_and_parameter(seed_comparison):
    table = seed_comparison.table
    assert set(table["backend"]) == set(FAST)
    assert set(table["parameter"]) == {"pi", "p", "q", "heads_prob"}
    assert len(table) == len(FAST) * 4
    reference = table[table["backend"] == "exact"]
    np.testing.assert_allclose(reference["error_in_ref_sd"], 0.0, atol=1e-12)
    point = table[table["backend"] == "em"]
    assert point["sd"].isna().all()


def test_comparison_reference_matches_closed_form(seed_comparison):
    exact = ThreeCoins().exact_posterior(SEED_FLIPS)
    table = seed_comparison.table.set_index(["backend", "parameter"])
    # heads_prob is not touched by relabelling: its mean is the closed-form exact mean
    draws = ThreeCoins().exact_posterior(SEED_FLIPS).sample(np.random.default_rng(0), 200_000)
    closed_form = float(np.mean(draws["pi"] * draws["p"] + (1 - draws["pi"]) * draws["q"]))
    assert table.loc[("exact", "heads_prob"), "mean"] == pytest.approx(closed_form, abs=4 * 0.09 / np.sqrt(4000))
    assert exact.log_evidence < 0


def test_em_on_the_ridge_reports_the_identified_quantity(seed_comparison):
    table = seed_comparison.table.set_index(["backend", "parameter"])
    assert table.loc[("em", "heads_prob"), "mean"] == pytest.approx(0.6, abs=1e-6)  # 6 heads in 10


def test_failing_backend_is_reported_not_fatal():
    result = compare(
        ThreeCoins(), SEED_FLIPS, backends=("em", "exact"), options={"em": {"tol": -1.0}}, progressbar=False
    )
    assert "em" in result.failures and "tol" in result.failures["em"]
    assert "exact" in result.idatas


def test_save_writes_report_and_readable_netcdf(seed_comparison, tmp_path):
    report = seed_comparison.save(tmp_path / "report")
    assert report.name == "report.html" and report.stat().st_size > 1000
    text = report.read_text()
    assert "<img" in text and "data:image/png;base64" in text
    restored = az.from_netcdf(tmp_path / "report" / "em.nc")
    assert {"posterior", "log_likelihood", "observed_data", "fit_history"} <= set(restored.groups())
    assert restored.posterior.attrs["backend"] == "em"


def test_plot_returns_figures(seed_comparison):
    figures = seed_comparison.plot()
    assert {"forest", "model"} <= set(figures)
    assert all(len(fig.axes) > 0 for fig in figures.values())


def test_unknown_backend_in_compare_lists_valid_ones():
    with pytest.raises(ValueError, match="valid"):
        compare(ThreeCoins(), SEED_FLIPS, backends=("em", "bogus"), progressbar=False)


# -- command line --------------------------------------------------------------------------------
def test_cli_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "three-coins" in out and "gibbs" in out


def test_cli_compare_json(capsys):
    assert main(["compare", "three-coins", "--data", "1111110000", "--backends", "em,exact", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    backends = {record["backend"] for record in records}
    assert backends == {"em", "exact"}


@pytest.mark.parametrize(
    "argv, words",
    [
        (["compare", "three-coins", "--data", "1121", "--backends", "em"], "0 and 1"),
        (["compare", "three-coins", "--backends", "em,bogus"], "bogus"),
        (["fit", "three-coins", "--data", "/no/such/file.csv", "--backend", "em"], "file.csv"),
        (["fit", "no-such-model", "--backend", "em"], "no-such-model"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentzoo: error:") and words in err
    assert "Traceback" not in err


def test_cli_fit_writes_netcdf(tmp_path, capsys):
    out = tmp_path / "vb.nc"
    assert main(["fit", "three-coins", "--param", "pi=0.5", "--data", "1111110000", "--backend", "vb",
                 "--out", str(out)]) == 0
    restored = az.from_netcdf(out)
    assert "pi" not in restored.posterior and "p" in restored.posterior
