"""The comparison, label switching, the report and the command line."""

from __future__ import annotations

import json
import re

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
def _mixture_like_idata(permutations: np.ndarray, truth: np.ndarray) -> xr.DataTree:
    """Draws of per-component means, each draw stored under a known permutation of the labels."""
    n_chain, n_draw, n_comp = permutations.shape
    rng = np.random.default_rng(0)
    noisy = truth[None, None, :] + 0.01 * rng.standard_normal((n_chain, n_draw, n_comp))
    stored = np.take_along_axis(noisy, permutations, axis=-1)
    posterior = xr.Dataset(
        {"means": (("chain", "draw", "component"), stored)},
        coords={"chain": np.arange(n_chain), "draw": np.arange(n_draw), "component": np.arange(n_comp)},
    )
    return xr.DataTree.from_dict({"posterior": posterior})


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
    # an option only the back-end itself checks: its refusal is that back-end's failure
    result = compare(
        ThreeCoins(), SEED_FLIPS, backends=("em", "exact"), options={"em": {"assignment": "bogus"}},
        progressbar=False,
    )
    assert "em" in result.failures and "assignment" in result.failures["em"]
    assert "exact" in result.idatas
    # a value every back-end checks alike is refused before anything runs
    with pytest.raises(ValueError, match=r"options\['em'\]\['tol'\]"):
        compare(ThreeCoins(), SEED_FLIPS, backends=("em", "exact"), options={"em": {"tol": -1.0}}, progressbar=False)


@pytest.fixture(scope="module")
def saved_report(seed_comparison, tmp_path_factory):
    return seed_comparison.save(tmp_path_factory.mktemp("saved") / "report")


def test_save_writes_report_and_readable_netcdf(saved_report):
    tmp_path = saved_report.parent.parent
    report = saved_report
    assert report.name == "report.html" and report.stat().st_size > 1000
    text = report.read_text()
    assert "<img" in text and "data:image/png;base64" in text
    restored = az.from_netcdf(tmp_path / "report" / "em.nc")
    assert {"posterior", "log_likelihood", "observed_data", "fit_history"} <= set(restored.children)
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


def test_cli_fit_writes_netcdf(tmp_path, capsys):
    out = tmp_path / "vb.nc"
    assert main(["fit", "three-coins", "--param", "pi=0.5", "--data", "1111110000", "--backend", "vb",
                 "--out", str(out)]) == 0
    restored = az.from_netcdf(out)
    assert "pi" not in restored.posterior and "p" in restored.posterior


# -- the new table columns ------------------------------------------------------------------------
def test_table_has_every_documented_column(seed_comparison):
    from latentzoo.inference.comparison.compare import COLUMN_DOCS, TABLE_COLUMNS

    assert list(seed_comparison.table.columns) == list(TABLE_COLUMNS)
    assert set(COLUMN_DOCS) == set(TABLE_COLUMNS)
    assert set(seed_comparison.table["reference"]) == {"exact"}
    assert "independent draws" in seed_comparison.reference_info


def test_sampler_columns_ess_per_second_and_objectives(seed_comparison):
    table = seed_comparison.table.set_index(["backend", "parameter"])
    gibbs = table.loc[("gibbs", "p")]
    assert 0 < gibbs["ess_tail"] <= 2 * 600
    assert gibbs["ess_bulk_per_s"] == pytest.approx(gibbs["ess_bulk"] / gibbs["run_s"])
    assert np.isnan(table.loc[("vb", "p"), "ess_bulk"])  # independent draws from q: no ESS to report
    assert table.loc[("em", "p"), "objective_name"] == "log-posterior"
    assert table.loc[("vb", "p"), "objective_name"] == "ELBO"
    assert table.loc[("exact", "p"), "objective_name"] == "log-evidence"
    # the exact log evidence is the ELBO's upper bound
    assert table.loc[("vb", "p"), "objective"] <= table.loc[("exact", "p"), "objective"] + 1e-9
    vb = seed_comparison.idatas["vb"]
    # the table's objective is the best restart's last ELBO in the history
    history = vb["fit_history"]["elbo"].values
    best_final = max(row[np.isfinite(row)][-1] for row in np.atleast_2d(history))
    assert table.loc[("vb", "p"), "objective"] == pytest.approx(best_final, rel=1e-12)


def test_timing_split_of_the_fit_record():
    from latentzoo.inference.core import FitRecord
    from latentzoo.inference.registry import _completed_record

    sampled = FitRecord(converged=True, n_iter=10, point_estimate=False, run_s=4.0)
    record = _completed_record(sampled, "nuts", 1, 10.0, "pymc", [])
    assert (record.compile_s, record.run_s, record.runtime_s) == (6.0, 4.0, 10.0)
    # a back-end that reports no run time ran for the whole wall time; hand-written ones compile nothing
    record = _completed_record(FitRecord(converged=True, n_iter=1, point_estimate=True), "em", 1, 1.5, "latentzoo", [])
    assert np.isnan(record.compile_s) and record.run_s == 1.5


# -- LOO -------------------------------------------------------------------------------------------
def test_loo_table_ranks_backends_with_draws(seed_comparison):
    import arviz as az

    loo = seed_comparison.loo
    assert set(loo.index) == {"vb", "gibbs", "exact"} and "em" in seed_comparison.loo_note
    assert {"elpd_loo", "p_loo", "se", "warning", "n_bad_k"} <= set(loo.columns)
    assert loo["elpd_loo"].is_monotonic_decreasing
    expected = az.loo(seed_comparison.idatas["exact"]).elpd
    assert loo.loc["exact", "elpd_loo"] == pytest.approx(expected)


def test_loo_failure_is_reported_not_raised(seed_comparison):
    from latentzoo.inference.comparison.compare import loo_table

    broken = seed_comparison.idatas["exact"].copy()
    broken.log_likelihood["flips"] = broken.log_likelihood["flips"] * np.nan
    table, note = loo_table({"exact": broken, "gibbs": seed_comparison.idatas["gibbs"]})
    assert list(table.index) == ["gibbs"] and "non-finite pointwise log-likelihood: exact" in note


def test_loo_error_is_reported_not_raised(seed_comparison, monkeypatch):
    import arviz as az

    from latentzoo.inference.comparison.compare import loo_table

    def refuse(*args, **kwargs):
        raise ValueError("shapes differ")

    monkeypatch.setattr(az, "compare", refuse)
    table, note = loo_table({name: seed_comparison.idatas[name] for name in ("exact", "gibbs")})
    assert table is None and note.startswith("LOO failed: ValueError: shapes differ")


def test_loo_needs_two_observations():
    from latentzoo.models import DiceHMM

    result = compare(DiceHMM(), "1 6 3 5 2 7 3 5 2 4", backends=("exact",), progressbar=False,
                     options={"exact": {"draws": 200}})
    assert result.loo is None and "at least two observations" in result.loo_note
    assert "1 sequence " in result.summary()


# -- the generated summary -------------------------------------------------------------------------
def _crafted(rows):
    """A comparison table from a few (backend, kind, parameter, error, sd_ratio, ...) dicts."""
    import pandas as pd

    from latentzoo.inference.comparison.compare import TABLE_COLUMNS

    defaults = {"mean": 0.0, "sd": 1.0, "ref_mean": 0.0, "ref_sd": 1.0, "r_hat": np.nan, "ess_bulk": np.nan,
                "divergences": np.nan, "objective": np.nan, "objective_name": "", "objective_spread": np.nan,
                "converged": True, "error_in_ref_sd": 0.0, "sd_ratio": 1.0}
    table = pd.DataFrame([{**defaults, **row} for row in rows])
    for column in TABLE_COLUMNS:
        if column not in table:
            table[column] = np.nan
    return table[list(TABLE_COLUMNS)]


def test_summary_on_crafted_tables():
    from latentzoo.inference.comparison.compare import summarize

    table = _crafted([
        {"backend": "nuts", "kind": "sampler", "parameter": "a", "r_hat": 1.0, "ess_bulk": 900, "divergences": 0},
        {"backend": "nuts", "kind": "sampler", "parameter": "b", "r_hat": 1.0, "ess_bulk": 800, "divergences": 0},
        {"backend": "vb", "kind": "variational", "parameter": "a", "error_in_ref_sd": 0.1, "sd_ratio": 0.45},
        {"backend": "vb", "kind": "variational", "parameter": "b", "error_in_ref_sd": -0.2, "sd_ratio": 0.9},
        {"backend": "em", "kind": "point", "parameter": "a", "error_in_ref_sd": 3.2, "sd": np.nan,
         "sd_ratio": np.nan, "objective": -120.0, "objective_name": "log-posterior", "objective_spread": 4.0},
        {"backend": "map", "kind": "point", "parameter": "a", "error_in_ref_sd": 0.3, "sd": np.nan,
         "sd_ratio": np.nan, "objective": -100.0, "objective_name": "log-posterior"},
        {"backend": "advi", "kind": "variational", "parameter": "a", "error_in_ref_sd": -5.0, "sd_ratio": 1.0},
        {"backend": "gibbs", "kind": "sampler", "parameter": "a", "r_hat": 1.08, "ess_bulk": 40,
         "error_in_ref_sd": 0.2, "converged": False, "divergences": np.nan},
        {"backend": "bad_nuts", "kind": "sampler", "parameter": "a", "r_hat": 1.0, "ess_bulk": 500, "divergences": 12,
         "error_in_ref_sd": 0.1},
    ])
    text = summarize(table, reference="nuts", failures={"fullrank_advi": "FloatingPointError: NaN ELBO"})
    assert text.startswith("Agree with the reference (nuts) within 0.5 reference sd on every parameter: "
                           "vb, map, gibbs and bad_nuts.")
    assert "Under-dispersed" in text and "vb (0.45 on a)" in text
    assert "em's estimate of a lies 3.2 reference sd" in text
    assert "em's restarts ended at log-posterior values up to 4 apart" in text
    assert "em stopped at a stationary point with log-posterior -120, below map's -100." in text
    assert "advi is 5.0 reference sd off on a (a local optimum of the ELBO)." in text
    assert "gibbs mixes poorly: R-hat up to 1.080 on a; bulk ESS as low as 40 (a)." in text
    assert "bad_nuts mixes poorly: 12 divergent transitions." in text
    assert " nuts mixes poorly" not in text and not text.startswith("nuts mixes")
    assert "Not converged by their own criteria: gibbs." in text
    assert "fullrank_advi failed (FloatingPointError)." in text
    assert summarize(table, reference="nuts", failures={}) == summarize(table, reference="nuts")  # deterministic


def test_summary_without_agreement_or_reference():
    from latentzoo.inference.comparison.compare import summarize

    table = _crafted([
        {"backend": "exact", "kind": "exact", "parameter": "a"},
        {"backend": "em", "kind": "point", "parameter": "a", "error_in_ref_sd": 0.9, "sd": np.nan, "sd_ratio": np.nan},
    ])
    assert summarize(table, reference="exact").startswith("No back-end agrees with the reference (exact)")
    assert "reference" not in summarize(table, reference=None)
    assert summarize(table, reference="exact", failures={"exact": "ValueError: x"}).startswith(
        "The reference (exact) failed")


# -- the cached NUTS reference ---------------------------------------------------------------------
@pytest.fixture
def fake_nuts(monkeypatch):
    """Stand in for NUTS with exact draws (fast), counting the runs."""
    from latentzoo.inference import registry

    calls = []
    real_fit = registry.fit

    def fit_exact(model, data, backend, random_seed=None, progressbar=False, draws=100, tune=0, chains=1, **_):
        assert backend == "nuts"
        calls.append((draws, chains))
        return real_fit(model, data, backend="exact", random_seed=random_seed, draws=draws, chains=chains)

    monkeypatch.setattr(registry, "fit", fit_exact)
    return calls


def test_reference_run_is_cached_and_keyed_on_data_and_settings(fake_nuts, tmp_path):
    from latentzoo.inference.comparison.reference import reference_nuts

    model, options = ThreeCoins(), {"draws": 50, "chains": 2, "tune": 10}
    first, info = reference_nuts(model, SEED_FLIPS, options=options, cache=tmp_path)
    assert info["source"] == "run" and len(fake_nuts) == 1 and len(list(tmp_path.glob("*.nc"))) == 1
    # the number of processes does not change the draws, so it is not part of the key
    again, info = reference_nuts(model, SEED_FLIPS, options={**options, "cores": 1}, cache=tmp_path)
    assert info["source"] == "cache" and len(fake_nuts) == 1 and "cache" in info["description"]
    np.testing.assert_array_equal(again.posterior["p"].values, first.posterior["p"].values)
    reference_nuts(model, "1111100000", options=options, cache=tmp_path)  # other data
    reference_nuts(model, SEED_FLIPS, options={**options, "draws": 60}, cache=tmp_path)  # other settings
    reference_nuts(ThreeCoins(p_prior=(2, 2)), SEED_FLIPS, options=options, cache=tmp_path)  # other model
    # the same observations in a fresh data object (its cached properties unset) hit the cache
    reference_nuts(model, ThreeCoins().check_data(SEED_FLIPS), options=options, cache=tmp_path)
    assert len(fake_nuts) == 4 and len(list(tmp_path.glob("*.nc"))) == 4
    _, info = reference_nuts(model, SEED_FLIPS, options=options, cache=False)
    assert info["source"] == "run" and info["path"] is None and len(fake_nuts) == 5


def test_reference_cache_directory_follows_environment(monkeypatch, tmp_path):
    from latentzoo.inference.comparison.reference import cache_directory, reference_nuts

    monkeypatch.setenv("LATENTZOO_CACHE", str(tmp_path))
    assert cache_directory() == tmp_path / "reference"
    with pytest.raises(ValueError, match="reference_options"):
        reference_nuts(ThreeCoins(), SEED_FLIPS, options={"drawz": 3}, cache=False)


def test_compare_with_the_long_nuts_reference(fake_nuts, tmp_path):
    result = compare(ThreeCoins(), SEED_FLIPS, backends=("em",), reference="nuts_reference", progressbar=False,
                     reference_options={"draws": 80, "chains": 2}, cache=tmp_path)
    assert result.reference == "nuts_reference" and list(result.idatas) == ["nuts_reference", "em"]
    assert set(result.table["reference"]) == {"nuts_reference"}
    assert (result.table.loc[result.table["backend"] == "nuts_reference", "kind"] == "sampler").all()
    assert "long NUTS run (2 chains × 80 draws" in result.reference_info
    assert fake_nuts == [(80, 2)]


# -- figures -----------------------------------------------------------------------------------------
def test_every_figure_is_drawn(seed_comparison):
    figures = seed_comparison.plot()
    assert set(figures) == {"forest", "densities", "history", "traces-gibbs", "model"}
    history_axes = figures["history"].axes[0]
    assert {line.get_label().split(":")[0] for line in history_axes.get_lines()} >= {"em", "vb"}
    # four parameters (pi, p, q, heads_prob) x (density, trace), for the one sampler (gibbs)
    trace_axes = figures["traces-gibbs"].axes
    assert len(trace_axes) == 8
    assert sum(len(ax.get_lines()) >= 2 for ax in trace_axes) == 8  # a line per chain (2 chains) in every panel


def test_model_pictures_for_niw_and_hmm():
    from latentzoo.inference.comparison import plots
    from latentzoo.models import DiceHMM, NIWGaussian

    rng = np.random.default_rng(0)
    x = rng.multivariate_normal([0, 1], [[1, 0.8], [0.8, 1]], size=40)
    niw = compare(NIWGaussian(), x, backends=("em", "exact"), progressbar=False, options={"exact": {"draws": 100}})
    figure = plots.model_picture(niw)
    assert figure is not None and "contour" in figure.get_suptitle()
    dice = compare(DiceHMM(), "1 6 3 5 2 7 3 5 2 4", backends=("em", "exact"), progressbar=False,
                   options={"exact": {"draws": 100}})
    figure = plots.model_picture(dice)
    assert len(figure.axes) == 2 and "Viterbi" in figure.get_suptitle()


def test_model_picture_is_the_models_own():
    from latentzoo.inference.comparison import plots

    class Drawn:
        def picture(self, comparison):
            calls.append(comparison)
            return "figure"

    calls = []
    holder = type("C", (), {"model": Drawn()})()
    assert plots.model_picture(holder) == "figure" and calls == [holder]
    assert plots.model_picture(type("C", (), {"model": object()})()) is None  # a model without a picture


def test_pictures_and_report_fit_nothing(seed_comparison, monkeypatch, tmp_path):
    """The figures and the saved report are drawn from the finished results: no back-end runs."""
    import dataclasses
    import importlib

    import latentzoo.inference as inference
    from latentzoo.inference import BACKENDS
    from latentzoo.inference import registry

    compare_module = importlib.import_module("latentzoo.inference.comparison.compare")  # the package's compare is the function

    def refuse(*args, **kwargs):
        raise AssertionError("a figure or the report fitted a model")

    for module in (registry, compare_module, inference):
        monkeypatch.setattr(module, "fit", refuse)
    for name, backend in list(BACKENDS.items()):
        monkeypatch.setitem(BACKENDS, name, dataclasses.replace(backend, run=refuse))
    figures = seed_comparison.plot()
    plane = figures["model"].axes[0]
    labels = [handle.get_label() for handle in plane.collections]
    assert "EM fixed points (5 restarts)" in labels  # em's default n_init, read from its fit_history
    assert seed_comparison.save(tmp_path / "report").is_file()
    # without an em result the picture shows the rest
    without_em = dataclasses.replace(seed_comparison,
                                     idatas={k: v for k, v in seed_comparison.idatas.items() if k != "em"})
    plane = without_em.plot()["model"].axes[0]
    assert not any("EM fixed points" in handle.get_label() for handle in plane.collections)


def test_em_records_where_every_restart_stopped():
    """``final_<param>`` in fit_history: one entry per restart, each an EM fixed point, the best
    one the estimate."""
    from latentzoo.models import GaussianMixture
    from latentzoo.models.core.conjugate import apply_to_factors

    from .test_gmm import blobs

    model, data = ThreeCoins(), [[1, 1, 0, 1], [0, 0, 1, 0], [1, 1, 1, 1], [0, 1, 0, 0], [1, 0, 1, 1]]
    idata = fit(model, data, backend="em", random_seed=2, n_init=6, progressbar=False)
    history = idata.fit_history
    assert list(history.data_vars)[0] == "log_posterior"  # the objective's trace stays first
    checked = model.check_data(data)
    ends = {name: history[f"final_{name}"] for name in model.param_names}
    for name, end in ends.items():
        assert end.dims == ("restart",) and end.size == 6
        best = end.values[idata.posterior.attrs["best_restart"]]
        assert best == idata.posterior[name].values.item()
    for restart in range(6):
        params = {name: end.values[restart] for name, end in ends.items()}
        stats, _ = model.expected_stats(checked, params)
        stepped = apply_to_factors(model.conditional_posterior(stats), "mode")
        for name in model.param_names:
            assert abs(float(stepped[name]) - params[name]) < 1e-4, (restart, name)

    gmm = GaussianMixture(3)
    idata = fit(gmm, blobs(15, seed=1), backend="em", random_seed=0, n_init=3, progressbar=False)
    for name, dims in gmm.param_dims().items():
        end = idata.fit_history[f"final_{name}"]
        assert end.dims == ("restart", *dims) and end.sizes["restart"] == 3
    np.testing.assert_array_equal(idata.fit_history["final_means"].coords["component"].values,
                                  idata.posterior.coords["component"].values)


def _with_hostile_names(comparison):
    """The comparison with a back-end, a parameter and a failure named like markup."""
    import dataclasses

    hostile = "<script>alert('backend')</script>"
    table = comparison.table.copy()
    table["backend"] = table["backend"].replace({"vb": hostile})
    table["parameter"] = table["parameter"].replace({"pi": "<script>alert('parameter')</script>"})
    idatas = {hostile if name == "vb" else name: idata for name, idata in comparison.idatas.items()}
    return dataclasses.replace(comparison, table=table, idatas=idatas, backends=list(idatas),
                               failures={"<script>failed</script>": "ValueError: <img src=x onerror=alert(1)>"},
                               warnings={hostile: [f"{hostile}: <b>warned</b>"]})


def test_report_escapes_names_and_messages(seed_comparison):
    from latentzoo.inference.comparison.report import render_html

    page = render_html(_with_hostile_names(seed_comparison), images={})
    assert "<script" not in page and "<img" not in page and "<b>warned" not in page
    assert "&lt;script&gt;alert(" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;b&gt;warned&lt;/b&gt;" in page


def test_save_writes_everything_it_can_then_lists_the_failures(seed_comparison, monkeypatch, tmp_path):
    from latentzoo.inference.comparison import plots
    from latentzoo.inference.comparison.report import SaveError

    real_to_netcdf = xr.DataTree.to_netcdf

    def failing_for_vb(self, path, *args, **kwargs):
        if path.name == "vb.nc":
            raise OSError("disk full")
        return real_to_netcdf(self, path, *args, **kwargs)

    def broken_forest(comparison):
        raise ValueError("no forest today")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", failing_for_vb)
    monkeypatch.setattr(plots, "forest", broken_forest)
    out = tmp_path / "report"
    with pytest.raises(SaveError) as raised:
        seed_comparison.save(out)
    error = raised.value
    assert error.failed == {"vb.nc": "OSError: disk full", "forest figure": "ValueError: no forest today"}
    assert "vb.nc" in str(error) and "forest" in str(error)
    # every write after the failing ones still happened
    written = {path.name for path in out.iterdir()}
    assert written == {"em.nc", "gibbs.nc", "exact.nc", "table.csv", "loo.csv", "summary.txt", "densities.png",
                       "history.png", "traces-gibbs.png", "model.png", "report.html", "latentzoo-manifest.json"}
    assert error.report == out / "report.html"
    assert error.report.read_text(encoding="utf-8").count("data:image/png;base64") == 4
    assert isinstance(error.__cause__, OSError)


# -- report and command line -------------------------------------------------------------------------
def test_report_has_summary_loo_and_column_docs(seed_comparison, saved_report):
    report = saved_report
    tmp_path = saved_report.parent.parent
    text = report.read_text()
    assert text.count("data:image/png;base64") == 5
    assert "PSIS-LOO" in text and "sd_ratio" in text and "What the columns mean" in text
    # readable offline: the links to the model's lesson and API page are the only addresses outside
    outside = re.sub(r'<p class="docs">.*?</p>', "", text, flags=re.S)
    assert "http://" not in outside and "https://" not in outside
    assert not re.search(r'src="(?!data:)', text)
    assert (tmp_path / "report" / "loo.csv").is_file() and (tmp_path / "report" / "densities.png").is_file()
    assert (tmp_path / "report" / "summary.txt").read_text().strip() == seed_comparison.summary()


def test_cli_compare_reads_csv_and_npy_and_writes_report(tmp_path, capsys):
    csv = tmp_path / "flips.csv"
    csv.write_text("1,1,0\n0,0,1\n1,1,1\n0,1,0\n")
    npy = tmp_path / "flips.npy"
    np.save(npy, np.array([[1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 1, 0]]))
    records = {}
    for path in (csv, npy):
        assert main(["compare", "three-coins", "--data", str(path), "--backends", "em,vb", "--draws", "50",
                     "--seed", "3", "--json"]) == 0
        records[path.suffix] = [{key: value for key, value in record.items() if not key.endswith("_s")}
                                for record in json.loads(capsys.readouterr().out)]
    assert records[".csv"] == records[".npy"]  # same data and seed: the same numbers, timings aside
    vb = [r for r in records[".csv"] if r["backend"] == "vb"]
    assert {r["parameter"] for r in vb} == {"pi", "p", "q", "heads_prob"}
    exact = [r for r in records[".csv"] if r["backend"] == "exact"]
    assert 3000 < exact[0]["ess_bulk"]  # --draws leaves the reference's 4000 draws alone
    out = tmp_path / "report"
    assert main(["compare", "three-coins", "--backends", "em", "--out", str(out)]) == 0
    assert "report:" in capsys.readouterr().out
    assert (out / "report.html").is_file() and (out / "em.nc").is_file() and (out / "exact.nc").is_file()


def test_cli_progress_lines_per_backend(capsys):
    assert main(["compare", "three-coins", "--backends", "em,vb"]) == 0
    captured = capsys.readouterr()
    for backend in ("exact", "em", "vb"):
        assert backend in captured.err
    assert "reference: exact posterior" in captured.out


def test_point_estimate_with_equal_weights_is_relabelled_by_its_means():
    # EM on equal-sized clusters returns weights equal up to round-off; the matching must follow
    # the means, not the round-off in the weights
    coords = {"chain": [0], "draw": [0], "component": [0, 1, 2], "feature": [0, 1]}
    weights = np.array([1 / 3 + 1.2e-12, 1 / 3 - 1.7e-12, 1 / 3 + 0.4e-12])[None, None]
    means = np.array([[0.0, 6.0], [-6.0, -2.0], [6.0, -2.0]])[None, None]
    posterior = xr.Dataset({"weights": (("chain", "draw", "component"), weights),
                            "means": (("chain", "draw", "component", "feature"), means)}, coords=coords)
    target = {"weights": np.array([0.3338, 0.3325, 0.3337]),
              "means": np.array([[-6.0, -2.0], [0.0, 6.0], [6.0, -2.0]])}
    relabelled = relabel(xr.DataTree.from_dict({"posterior": posterior}), target, "component")
    np.testing.assert_allclose(relabelled.posterior["means"].values[0, 0], target["means"])


def test_backend_names_with_the_nuts_reference_can_be_passed_back_in():
    """The CLI resolves names (adding the long-NUTS reference for a model without an exact
    posterior) and passes them to compare, which resolves them again: that must not fail."""
    from latentzoo.inference.comparison.compare import resolve_backends
    from latentzoo.models import GaussianMixture

    names, reference = resolve_backends(GaussianMixture(), ["em"], "auto")
    assert (names, reference) == (["nuts_reference", "em"], "nuts_reference")
    assert resolve_backends(GaussianMixture(), names, reference) == (names, reference)
    with pytest.raises(ValueError, match="unknown backend 'nut'"):
        resolve_backends(GaussianMixture(), ["nut"], "auto")


@pytest.mark.pymc
def test_map_reports_its_compile_and_run_split():
    """find_MAP's timing comes from the optimiser's iterations: compilation before the first,
    so 0 < run_s < runtime_s and compile_s + run_s = runtime_s. (From a random start: the default
    em-start can be the mode itself, where the optimiser stops before its first iteration.)"""
    result = compare(ThreeCoins(), "1111110000", backends=["map"], reference=None, random_seed=0, progressbar=False,
                     options={"map": {"init": "random"}})
    row = result.table.iloc[0]
    assert 0 < row["run_s"] < row["runtime_s"]
    assert row["compile_s"] > 0
    assert row["compile_s"] + row["run_s"] == pytest.approx(row["runtime_s"])


def test_cli_demo_index_escapes_model_names(tmp_path, monkeypatch, capsys):
    """The demo's index.html shows model names and summaries as text: ``<`` and quotes are escaped
    (the models' runs are replaced by a stand-in: only the page is under test)."""
    from types import SimpleNamespace

    import latentzoo.models as models
    from latentzoo.inference.cli import demo as cli_demo

    name = "<script>coins'"
    monkeypatch.setattr(models, "MODELS", {name: ThreeCoins})

    def one_model(model_name, args, out, **display):
        return SimpleNamespace(class_name="ThreeCoins", report=f"{model_name}/report.html",
                               summary="p < q & q > 0", printed="", seconds=0.0)

    monkeypatch.setattr(cli_demo, "_demo_one", one_model)
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 0
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in index
    # the thumbnail's and the name's links, the name, and the model's name and directory in the
    # calibrate command
    assert index.count("&lt;script&gt;coins&#39;") == 5
    assert "<p class='summary'>p &lt; q &amp; q &gt; 0</p>" in index
    assert "EM, VB, ADVI, Gibbs, NUTS and the exact posterior where they apply (quick settings)." in index
    assert "report:" in capsys.readouterr().out
