"""Simulation-based calibration: the rank statistics against independent computations, the power of
the check on deliberately wrong back-ends, and the API, cache, report and command line.

The wrong back-ends are registered only here (and removed after each test): they return the exact
three-coin posterior's draws moved away from the posterior, so SBC must flag them.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from latentzoo.inference import BACKENDS, calibrate, register
from latentzoo.inference.calibration.calibrate import _log_q, _posterior_draws, prior_draw, quantity_spec
from latentzoo.inference.core import FitRecord, RawResult
from latentzoo.inference.calibration import sbc_ranks
from latentzoo.models import DiceHMM, GaussianMixture, ThreeCoins
from latentzoo.models.core.protocols import ExactlySolvable

FAST = dict(n_jobs=1, progress=False)


# -- the rank statistics --------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=30), st.floats(-5, 5), st.integers(0, 2**32 - 1))
def test_rank_counts_the_draws_below_and_breaks_ties_inside_them(draws, truth, seed):
    thinned = np.asarray(draws)[:, None]
    rank = int(rank_one(thinned, truth, seed))
    below = sum(value < truth for value in draws)
    equal = sum(value == truth for value in draws)
    assert below <= rank <= below + equal


def rank_one(thinned, truth, seed):
    return sbc_ranks.rank_with_ties(thinned, np.array([truth]), np.random.default_rng(seed))[0]


def test_ties_give_uniform_ranks():
    # a point estimate equal to the truth (L = 3 copies) must not pile up at one rank
    rng = np.random.default_rng(0)
    ranks = [sbc_ranks.rank_with_ties(np.zeros((3, 1)), np.zeros(1), rng)[0] for _ in range(4000)]
    counts = np.bincount(ranks, minlength=4)
    assert stats.chisquare(counts).pvalue > 0.001
    assert counts.sum() == 4000 and len(counts) == 4


def test_pit_of_uniform_ranks_is_uniform_whatever_the_number_of_draws():
    rng = np.random.default_rng(1)
    n_ranked = rng.integers(5, 400, size=3000)
    ranks = rng.integers(0, n_ranked + 1)[:, None]
    pit = sbc_ranks.pit_from_ranks(ranks, n_ranked, rng)[:, 0]
    assert stats.kstest(pit, "uniform").pvalue > 0.01
    # broken input: ranks measured against L but declared as 2L are squeezed towards 0
    squeezed = sbc_ranks.pit_from_ranks(ranks, 2 * n_ranked, rng)[:, 0]
    assert stats.kstest(squeezed, "uniform").pvalue < 1e-6


def test_histogram_pvalue_is_pearsons_test_of_the_binned_values():
    rng = np.random.default_rng(2)
    pit = rng.beta(1.3, 1.0, size=(120, 2))
    n_bins = sbc_ranks.histogram_bins(120)
    assert n_bins == 20
    for column, p_value in zip(pit.T, sbc_ranks.histogram_pvalue(pit)):
        counts, _ = np.histogram(column, bins=n_bins, range=(0, 1))
        expected = 120 / n_bins
        statistic = np.sum((counts - expected) ** 2 / expected)
        assert p_value == pytest.approx(stats.chi2.sf(statistic, n_bins - 1), rel=1e-10)


def test_the_ecdf_band_holds_uniform_samples_at_its_level_and_rejects_a_bump():
    rng = np.random.default_rng(3)
    band = sbc_ranks.ecdf_band(100, 0.9, rng)
    held = sbc_ranks.inside_band(rng.random((100, 600)), band)
    # simultaneous level 0.9: 540 of 600 expected; 5 binomial sd is 37
    assert abs(held.mean() - 0.9) < 5 * np.sqrt(0.9 * 0.1 / 600)
    # a posterior twice too wide puts the PIT values in the middle: the ECDF leaves the band
    bumped = sbc_ranks.inside_band(rng.beta(3, 3, size=(100, 50)), band)
    assert bumped.mean() < 0.1


def test_ecdf_values_are_the_empirical_cdf():
    pit = np.array([[0.1], [0.4], [0.4], [0.9]])
    assert sbc_ranks.ecdf_values(pit, np.array([0.0, 0.1, 0.4, 0.5, 1.0]))[:, 0].tolist() == [0, 0.25, 0.75, 0.75, 1]


def test_vsbc_flags_asymmetric_pit_values_only():
    rng = np.random.default_rng(4)
    symmetric = rng.beta(0.5, 0.5, size=(200, 1))  # under-dispersed but unbiased: symmetric
    shifted = rng.beta(2.0, 1.0, size=(200, 1))
    assert sbc_ranks.vsbc_pvalue(symmetric)[0] > 0.01
    assert sbc_ranks.vsbc_pvalue(shifted)[0] < 1e-6


def test_dispersion_verdict_names_the_direction():
    rng = np.random.default_rng(5)
    pit = np.column_stack([rng.beta(0.4, 0.4, 300), rng.beta(4, 4, 300), rng.beta(3, 1, 300), rng.beta(1, 3, 300),
                           rng.random(300)])
    assert sbc_ranks.dispersion_verdict(pit, 0.001) == [
        "under-dispersed", "over-dispersed", "posterior too low", "posterior too high", ""]


def test_thinning_stride_follows_the_autocorrelation():
    rng = np.random.default_rng(6)
    independent = rng.normal(size=(2, 2000, 1))
    assert sbc_ranks.thinning_stride(independent)[0] == 1
    # AR(1) with phi = 0.9: ESS = n (1 - phi) / (1 + phi), a stride of about 19
    phi, chains = 0.9, np.zeros((2, 4000))
    for t in range(1, 4000):
        chains[:, t] = phi * chains[:, t - 1] + rng.normal(size=2)
    stride, ess = sbc_ranks.thinning_stride(np.stack([chains, rng.normal(size=(2, 4000))], axis=-1))
    assert 12 <= stride <= 30
    assert ess == pytest.approx(8000 * (1 - phi) / (1 + phi), rel=0.4)
    # a constant quantity (a masked probability) does not decide the stride
    constant = np.concatenate([independent, np.zeros((2, 2000, 1))], axis=-1)
    assert sbc_ranks.thinning_stride(constant)[0] == 1
    with pytest.raises(ValueError, match="chain, draw, n_quantities"):
        sbc_ranks.thinning_stride(np.zeros((10, 2)))


# -- the quantities ------------------------------------------------------------------------------
def test_prior_draws_follow_the_prior():
    draws = prior_draw(ThreeCoins(pi_prior=(2.0, 5.0)), np.random.default_rng(7), size=(20000,))
    assert stats.kstest(draws["pi"], stats.beta(2, 5).cdf).pvalue > 0.001
    assert set(draws) == {"pi", "p", "q"}


def test_rows_drop_masked_and_duplicated_elements():
    dice = DiceHMM()
    coords = dice.coords(dice.default_data())
    spec = quantity_spec(dice, coords, np.random.default_rng(0))
    faces = {"D6": 6, "D4": 4, "D8": 8}
    # init (3) + transitions (9) + the faces each die can show
    assert len(spec.labels) == 3 + 9 + sum(faces.values())
    assert "emission_probs[D4, 5]" not in spec.labels and "emission_probs[D4, 4]" in spec.labels
    assert np.all(spec.prior_sd > 0)
    gmm = GaussianMixture(n_components=2, m0=(0.0, 0.0), S0=((1.0, 0.0), (0.0, 1.0)), nu0=4.0, kappa0=0.1)
    labels = quantity_spec(gmm, {"component": [0, 1], "feature": ["a", "b"], "feature_bis": ["a", "b"]},
                           np.random.default_rng(0)).labels
    assert "covs[0, a, b]" in labels and "covs[0, b, a]" not in labels
    assert len(labels) == 2 + 4 + 2 * 3


def test_identified_three_coins_and_prior_sd():
    spec = quantity_spec(ThreeCoins(), {}, np.random.default_rng(8))
    assert spec.labels == ("pi", "p", "q", "heads_prob")
    # identified coins (p >= q): p is the larger of two uniforms, Beta(2, 1), sd sqrt(1/18)
    assert spec.prior_sd[1] == pytest.approx(np.sqrt(1 / 18), rel=0.05)
    assert spec.prior_sd[0] == pytest.approx(np.sqrt(1 / 12), rel=0.05)


def test_fits_are_relabelled_against_the_truth():
    from latentzoo.inference import fit

    model = GaussianMixture(n_components=2, m0=(0.0, 0.0), S0=((1.0, 0.0), (0.0, 1.0)), nu0=4.0, kappa0=0.01)
    truth = {"weights": np.array([0.3, 0.7]), "means": np.array([[-8.0, 0.0], [8.0, 0.0]]),
             "covs": np.stack([np.eye(2), np.eye(2)])}
    x, _ = model.simulate(truth, 200, np.random.default_rng(0))
    idata = fit(model, x, backend="em", random_seed=0, progressbar=False)
    swapped = {name: value[::-1] for name, value in truth.items()}
    for reference in (truth, swapped):
        draws, same = _posterior_draws(model, idata, reference, "point")
        assert same is reference
        assert np.allclose(draws["means"][0, 0], reference["means"], atol=0.5)
        assert np.allclose(draws["weights"][0, 0], reference["weights"], atol=0.1)


def test_draws_and_truth_are_relabelled_to_the_pivot_draw():
    """Samplers: the truth and the draws follow the first draw's labelling, whichever labelling
    the truth came in (so the truth gets no say in how the draws are labelled)."""
    from latentzoo.inference import fit

    model = GaussianMixture(n_components=2, m0=(0.0, 0.0), S0=((1.0, 0.0), (0.0, 1.0)), nu0=4.0, kappa0=0.01)
    truth = {"weights": np.array([0.3, 0.7]), "means": np.array([[-8.0, 0.0], [8.0, 0.0]]),
             "covs": np.stack([np.eye(2), np.eye(2)])}
    x, _ = model.simulate(truth, 200, np.random.default_rng(0))
    idata = fit(model, x, backend="gibbs", random_seed=0, draws=30, tune=20, chains=2, progressbar=False)
    pivot_means = idata.posterior["means"].values[0, 0]
    swapped = {name: value[::-1] for name, value in truth.items()}
    results = [_posterior_draws(model, idata, reference, "sampler") for reference in (truth, swapped)]
    for draws, pivoted in results:
        assert np.allclose(draws["means"][0, 0], pivot_means)  # the pivot keeps its labels
        # every draw and the truth sit on the pivot's side of each label
        assert np.all(np.sign(draws["means"][..., 0]) == np.sign(pivot_means[:, 0]))
        assert np.array_equal(np.sign(pivoted["means"][:, 0]), np.sign(pivot_means[:, 0]))
    assert np.array_equal(results[0][1]["means"], results[1][1]["means"])


def test_log_q_is_the_product_of_the_variational_betas():
    from latentzoo.inference import fit

    model = ThreeCoins()
    idata = fit(model, "1111110000", backend="vb", random_seed=0, draws=50, progressbar=False)
    draws = {name: idata.posterior[name].values for name in model.param_names}
    group = idata["variational"].to_dataset()
    expected = sum(stats.beta(group[f"{name}_alpha"].values, group[f"{name}_beta"].values).logpdf(draws[name])
                   for name in model.param_names)
    assert np.allclose(_log_q(model, idata, draws), expected)
    assert _log_q(model, fit(model, "1111110000", backend="exact", random_seed=0, draws=5), draws) is None


# -- power: deliberately wrong back-ends ------------------------------------------------------------
def _exact_draws(model, data, rng, draws):
    samples = model.exact_posterior(data).sample(rng, draws)
    return {name: value.reshape((1, draws) + value.shape[1:]) for name, value in samples.items()}


@pytest.fixture
def wrong_backends():
    """``widened``: exact draws spread twice as far from their mean (on the logit scale);
    ``shifted``: exact draws moved up by one posterior sd (logit scale)."""
    from scipy.special import expit, logit

    def moved(model, data, rng, stretch, shift):
        draws = _exact_draws(model, data, rng, 1000)
        out = {}
        for name, value in draws.items():
            z = logit(np.clip(value, 1e-9, 1 - 1e-9))
            out[name] = expit(z.mean() + stretch * (z - z.mean()) + shift * z.std())
        return RawResult(draws=out, record=FitRecord(converged=True, n_iter=0, point_estimate=False))

    @register("test_widened", requires=(ExactlySolvable,), kind="exact", description="wrong: too wide")
    def widened(model, data, *, rng):
        return moved(model, data, rng, 2.0, 0.0)

    @register("test_shifted", requires=(ExactlySolvable,), kind="exact", description="wrong: shifted")
    def shifted(model, data, *, rng):
        return moved(model, data, rng, 1.0, 1.0)

    yield
    del BACKENDS["test_widened"], BACKENDS["test_shifted"]


def test_wrong_backends_are_flagged_and_exact_passes(wrong_backends, tmp_path):
    # a model without the mirror symmetry, so that every parameter has a direction to be wrong in
    model = ThreeCoins(p_prior=(4.0, 2.0), q_prior=(2.0, 4.0))
    settings_ = dict(n_simulations=100, random_seed=3, cache=tmp_path, **FAST)
    exact = calibrate(model, "exact", **settings_)
    assert exact.calibrated is True
    assert exact.table["calibrated"].all() and (exact.table["ecdf_band"] == "inside").all()
    assert np.allclose(exact.table["coverage_50"], 0.5, atol=0.15)
    widened = calibrate(model, "test_widened", **settings_)
    assert widened.calibrated is False
    assert (widened.table["diagnosis"] == "over-dispersed").sum() >= 2
    assert (widened.table["coverage_50"] > exact.table["coverage_50"]).all()
    shifted = calibrate(model, "test_shifted", **settings_)
    assert shifted.calibrated is False
    assert (shifted.table["bias_sd"] > 0).sum() >= 2
    assert "posterior too high" in set(shifted.table["diagnosis"])
    assert "Not calibrated" in shifted.summary()


def test_gibbs_passes_and_mean_field_vb_is_under_dispersed(tmp_path):
    model = ThreeCoins()
    gibbs = calibrate(model, "gibbs", n_simulations=60, random_seed=0, cache=tmp_path, chains=2, draws=300,
                      tune=100, **FAST)
    assert gibbs.calibrated is True
    assert (gibbs.simulations["stride"] >= 1).all() and (gibbs.simulations["n_ranked"] <= 600).all()
    vb = calibrate(model, "vb", n_simulations=100, random_seed=0, cache=tmp_path, n_init=1, draws=500, **FAST)
    assert vb.calibrated is False
    assert vb.table.loc["pi", "diagnosis"] == "under-dispersed"
    assert vb.table.loc["pi", "coverage_50"] < 0.4
    # the identified quantity is learned well, even by mean-field VB
    assert vb.table.loc["heads_prob", "calibrated"]
    assert np.isfinite(vb.simulations["khat"]).all()


def test_point_estimates_get_bias_and_rmse_and_no_verdict(tmp_path):
    em = calibrate(ThreeCoins(), "em", n_simulations=12, random_seed=0, cache=False, **FAST)
    assert em.calibrated is None and em.table["calibrated"].isna().all()
    assert em.table["p_value"].isna().all() and em.pit.size == 0
    assert (em.table["rmse_sd"] >= em.table["bias_sd"].abs()).all()
    assert em.plot() is None
    page = em.save(tmp_path / "em")
    assert "n/a" in page.read_text()


# -- cache, plot, report, arguments ----------------------------------------------------------------
def test_a_longer_run_resumes_from_the_cache(tmp_path):
    model = ThreeCoins()
    first = calibrate(model, "exact", n_simulations=6, random_seed=5, cache=tmp_path, draws=200, **FAST)
    assert not first.simulations["cached"].any()
    # a file cut short by an interruption is run again, not trusted
    cache = sorted(p for p in tmp_path.rglob("simulation-*.pkl"))
    assert len(cache) == 6
    cache[2].write_bytes(b"\x80")
    resumed = calibrate(model, "exact", n_simulations=8, random_seed=5, cache=tmp_path, draws=200, **FAST)
    assert resumed.simulations["cached"].tolist() == [True, True, False, True, True, True, False, False]
    fresh = calibrate(model, "exact", n_simulations=8, random_seed=5, cache=False, draws=200, **FAST)
    pd.testing.assert_frame_equal(resumed.table, fresh.table)
    other_options = calibrate(model, "exact", n_simulations=2, random_seed=5, cache=tmp_path, draws=300, **FAST)
    assert not other_options.simulations["cached"].any()


def test_parallel_workers_give_the_same_result(tmp_path):
    serial = calibrate(ThreeCoins(), "exact", n_simulations=6, random_seed=9, cache=False, draws=100, **FAST)
    parallel = calibrate(ThreeCoins(), "exact", n_simulations=6, random_seed=9, cache=False, draws=100, n_jobs=2,
                         progress=False)
    pd.testing.assert_frame_equal(serial.table, parallel.table)


def test_plot_save_and_ranks(tmp_path):
    result = calibrate(ThreeCoins(), "exact", n_simulations=30, random_seed=1, cache=False, draws=200, **FAST)
    figure = result.plot(["pi", "heads_prob"])
    assert len([ax for ax in figure.axes if ax.get_visible()]) == 4
    with pytest.raises(ValueError, match="unknown quantities"):
        result.plot(["nope"])
    page = result.save(tmp_path / "report")
    html = page.read_text()
    assert "exact-ranks.png" in html and (tmp_path / "report" / "exact-ranks.png").stat().st_size > 1000
    table = pd.read_csv(tmp_path / "report" / "exact-table.csv", index_col="quantity")
    assert list(table.index) == ["pi", "p", "q", "heads_prob"]
    ranks = result.ranks()["prior_sbc"]
    assert ranks["q0"].shape == (1, 30) and ranks["q0"].attrs["quantity"] == "pi"
    assert np.array_equal(ranks["q3"].values[0], result.pit[:, 3])
    # the layout of simuk's results, which arviz-plots draws
    import arviz_plots

    arviz_plots.plot_ecdf_pit(result.ranks())


@pytest.mark.parametrize("arguments, error, match", [
    (dict(n_simulations=1), ValueError, "n_simulations"),
    (dict(n_simulations=2.5), ValueError, "n_simulations"),
    (dict(random_seed=-1), ValueError, "random_seed"),
    (dict(n_jobs=0), ValueError, "n_jobs"),
    (dict(alpha=1.5), ValueError, "alpha"),
    (dict(draws_typo=3), ValueError, "unknown option"),
    (dict(cache=3.5), TypeError, "cache"),
    (dict(data_size=0), ValueError, "data_size=0"),
    (dict(data_size="ten"), ValueError, "data_size='ten'"),
])
def test_bad_arguments_are_refused(arguments, error, match):
    settings_ = dict(n_simulations=4, random_seed=0, progress=False, n_jobs=1, cache=False) | arguments
    with pytest.raises(error, match=match):
        calibrate(ThreeCoins(), "exact", **settings_)


def test_unknown_backend_and_a_model_without_size():
    from latentzoo.models import CategoricalHMM

    with pytest.raises(ValueError, match="unknown backend"):
        calibrate(ThreeCoins(), "nope", n_simulations=4, **FAST)
    with pytest.raises(ValueError, match="data_size is required"):
        calibrate(CategoricalHMM(n_states=2, n_symbols=3), "em", n_simulations=4, **FAST)


# -- the command line ---------------------------------------------------------------------------
def test_cli_calibrate_writes_the_report_and_json(tmp_path, monkeypatch, capsys):
    from latentzoo.inference.cli import main

    monkeypatch.setenv("LATENTZOO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sbc"
    status = main(["calibrate", "three-coins", "--backends", "exact,em", "--simulations", "10", "--jobs", "1",
                   "--option", "exact.draws=200", "--out", str(out), "--json"])
    assert status == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["backend"] for r in records] == ["exact", "em"]
    assert records[1]["calibrated"] == "n/a" and records[0]["calibrated"] in ("yes", "no")
    assert {"report.html", "summary.csv", "exact-table.csv", "em-table.csv"} <= {p.name for p in out.iterdir()}
    assert list((tmp_path / "cache" / "calibration").rglob("simulation-*.pkl"))


@pytest.mark.parametrize("arguments, match", [
    (["--backends", "exact,nope"], "do not apply"),
    (["--simulations", "1"], "at least 2"),
    (["--option", "gibbs.draws=5"], "not among"),
])
def test_cli_calibrate_refuses_bad_input(arguments, match, capsys):
    from latentzoo.inference.cli import main

    backends = [] if "--backends" in arguments else ["--backends", "exact"]
    status = main(["calibrate", "three-coins", *backends, *arguments])
    assert status == 2
    assert match in capsys.readouterr().err
