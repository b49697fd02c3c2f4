"""Robustness of the Gaussian models and the three coins (issue 13): numerical range and input forms.

Reference values: the fit of the unshifted data mapped through the affine map (the Gaussian
family is affine-equivariant: a fit of ``a x + b`` is the fit of ``x`` moved by ``a``, ``b``),
scikit-learn's GaussianMixture, and closed forms (the log-likelihood's Jacobian -N D log a).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from latentzoo.inference import fit
from latentzoo.inference.backends.ascent import ascend
from latentzoo.models import GaussianMixture, NIWGaussian, ThreeCoins
from latentzoo.models.datasets import blobs, old_faithful
from latentzoo.models.gaussian.data import GaussianData
from latentzoo.models.gaussian.gda import GaussianDiscriminantAnalysis

FAITHFUL = old_faithful()
#: Unix time in milliseconds, about 2023
EPOCH_MS = 1.7e12


def _fit_point(model, data, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = fit(model, data, backend="em", random_seed=0, progressbar=False, **options)
    post = idata.posterior
    params = {name: post[name].values[0, 0] for name in ("weights", "means", "covs")}
    return params, float(idata.log_likelihood["x"].sum())


def _by_second_feature(params):
    """Components ordered by their mean's last coordinate (labels can differ between fits)."""
    order = np.argsort(params["means"][:, -1])
    return {name: value[order] for name, value in params.items()}


# -- 1. large offsets ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend, options", [("em", {}), ("em", {"mle": True}), ("vb", {"draws": 10})])
def test_timestamp_offset_fits_without_the_guard_firing(backend, options):
    # 1.7e12 + minutes: the means are stored to 2e-4, a drop of the objective of about 1e-6
    # that made the monotonicity guard call it a bug before the round-off allowance
    shifted = EPOCH_MS + FAITHFUL
    model = GaussianMixture(n_components=2)
    idata = fit(model, shifted, backend=backend, random_seed=0, progressbar=False, **options)
    reference = fit(model, FAITHFUL, backend=backend, random_seed=0, progressbar=False, **options)

    def means(result):  # EM's point, or the centre of VB's q(means)
        if backend == "vb":
            return result["variational"]["means_covs_m"].values
        return result.posterior["means"].values[0, 0]

    got = np.sort(means(idata)[:, 1]) - EPOCH_MS
    np.testing.assert_allclose(got, np.sort(means(reference)[:, 1]), atol=1e-3)


def test_round_off_allowance_scales_with_the_offset():
    model = GaussianMixture(n_components=2)
    centred = model.objective_round_off(FAITHFUL - FAITHFUL.mean(0))
    shifted = model.objective_round_off(EPOCH_MS + FAITHFUL)
    assert centred < 1e-20
    # N sum_i (eps 1.7e12)^2 / var_i times the narrowing factor: about 1e-2 for Old Faithful
    eps = np.finfo(float).eps
    expected = 1e4 * FAITHFUL.shape[0] * np.sum((eps * (EPOCH_MS + FAITHFUL.max(0))) ** 2 / FAITHFUL.var(0))
    assert shifted == pytest.approx(expected, rel=1e-3)
    assert ThreeCoins().objective_round_off("1111110000") == 0.0


def test_guard_still_catches_a_real_decrease_beyond_the_allowance():
    # a deliberately broken "EM" whose objective drops by 1 per step
    def falling(state):
        return state + 1, -float(state)

    with pytest.raises(RuntimeError, match="decreased .* this is a bug"):
        ascend(0, falling, tol=1e-8, max_iter=5, n_observations=10, objective_name="objective", round_off=0.5)
    run = ascend(0, falling, tol=0, max_iter=5, n_observations=10, objective_name="objective", round_off=2.0)
    assert run.n_iter == 5


AFFINE = st.tuples(
    st.floats(1e-3, 1e6),  # a
    st.floats(-1e12, 1e12),  # b
).filter(lambda ab: abs(ab[1]) / ab[0] <= 1e9)  # the shifted data keep >= 7 significant digits of their spread


@settings(max_examples=25, deadline=None, derandomize=True)
@given(AFFINE, st.booleans())
def test_em_is_affine_equivariant(affine, mle):
    a, b = affine
    x, _ = blobs(80, centers=((-4.0, 0.0), (3.0, 2.0)), random_seed=7)
    y = a * x + b
    # reg_covar is a variance in the data's units: it scales with a^2 as the covariances do
    base, shifted = GaussianMixture(2, reg_covar=1e-6), GaussianMixture(2, reg_covar=1e-6 * a**2)
    params_x, log_lik_x = _fit_point(base, x, mle=mle, n_init=1)
    params_y, log_lik_y = _fit_point(shifted, y, mle=mle, n_init=1)
    params_x, params_y = _by_second_feature(params_x), _by_second_feature(params_y)
    np.testing.assert_allclose(params_y["weights"], params_x["weights"], atol=1e-6)
    np.testing.assert_allclose((params_y["means"] - b) / a, params_x["means"], atol=1e-5)
    np.testing.assert_allclose(params_y["covs"] / a**2, params_x["covs"], rtol=1e-5, atol=1e-6)
    n, dim = x.shape
    assert log_lik_y == pytest.approx(log_lik_x - n * dim * np.log(a), abs=1e-3)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(AFFINE)
def test_niw_posterior_and_map_are_affine_equivariant(affine):
    a, b = affine
    x = np.random.default_rng(3).normal(size=(30, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 2.0, 0.5], [0.0, 0.0, 0.7]])
    y = a * x + b
    model = NIWGaussian()
    post_x, post_y = model.posterior(x), model.posterior(y)
    np.testing.assert_allclose((post_y.m - b) / a, post_x.m, atol=1e-6)
    assert float(post_y.kappa) == pytest.approx(float(post_x.kappa)) and float(post_y.nu) == pytest.approx(float(post_x.nu))
    np.testing.assert_allclose(post_y.S / a**2, post_x.S, rtol=1e-6, atol=1e-8)
    (mu_x, sigma_x), (mu_y, sigma_y) = model.map(x), model.map(y)
    np.testing.assert_allclose((mu_y - b) / a, mu_x, atol=1e-6)
    np.testing.assert_allclose(sigma_y / a**2, sigma_x, rtol=1e-6, atol=1e-8)
    n, dim = x.shape
    assert model.log_evidence(y) == pytest.approx(model.log_evidence(x) - n * dim * np.log(a), abs=1e-4)


def test_offset_data_agree_with_scikit_learn():
    from sklearn.mixture import GaussianMixture as SklearnMixture

    t = EPOCH_MS + 1e3 * FAITHFUL  # timestamps in ms, durations and waits in seconds
    reg_covar = 1e-6 * 1e6
    start = {
        "weights": np.array([0.5, 0.5]),
        "means": EPOCH_MS + 1e3 * np.array([[2.0, 55.0], [4.5, 80.0]]),
        "covs": np.tile(np.diag([1e5, 4e7]), (2, 1, 1)),
    }
    params, log_lik = _fit_point(GaussianMixture(2, reg_covar=reg_covar), t, mle=True, init=start, tol=1e-12)
    sklearn = SklearnMixture(
        2, reg_covar=reg_covar, tol=1e-9, max_iter=5000, weights_init=start["weights"], means_init=start["means"],
        precisions_init=np.linalg.inv(start["covs"]),
    ).fit(t)
    assert sklearn.converged_
    np.testing.assert_allclose(params["weights"], sklearn.weights_, atol=1e-6)
    np.testing.assert_allclose(params["means"] - EPOCH_MS, sklearn.means_ - EPOCH_MS, atol=1e-2)
    np.testing.assert_allclose(params["covs"], sklearn.covariances_, rtol=1e-5)
    # scikit-learn's log-densities cancel digits at this offset (x @ prec_chol - mu @ prec_chol)
    assert log_lik == pytest.approx(sklearn.score(t) * t.shape[0], abs=1e-2)


def test_kmeans_plusplus_start_is_the_same_for_shifted_data():
    model = GaussianMixture(3)
    x = model.default_data()
    start_x = model.initial_params(x, np.random.default_rng(5))
    start_y = model.initial_params(EPOCH_MS + x, np.random.default_rng(5))
    np.testing.assert_allclose(start_y["means"] - EPOCH_MS, start_x["means"], atol=1e-3)


# -- 2. and 3. values too large or too small to square ----------------------------------------
HUGE = {
    "gmm": lambda x: GaussianMixture(2).with_data_prior(x),
    "niw": lambda x: NIWGaussian().map(x),
    "gda": lambda x: GaussianDiscriminantAnalysis().fit(x, np.arange(len(x)) % 2),
}


@pytest.mark.parametrize("name", HUGE)
@pytest.mark.parametrize("scale", [1e150, 1e300])
def test_values_whose_squares_overflow_are_refused_with_advice(name, scale):
    x = scale * np.random.default_rng(0).normal(size=(40, 2))
    argument = "X" if name == "gda" else "data"
    with pytest.raises(ValueError, match=rf"^{argument} hold values up to .* rescale the data, e.g. divide by 1e"):
        HUGE[name](x)


@pytest.mark.parametrize("name", HUGE)
def test_denormal_spread_is_too_small_not_constant(name):
    x = 1e-310 * np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match=r"vary by only .* too little to compute with .* rescale") as info:
        HUGE[name](x)
    assert "constant" not in str(info.value)


@pytest.mark.parametrize("scale", [1e90, 1e-90])
def test_extreme_but_computable_scales_give_the_scaled_answer(scale):
    x = np.random.default_rng(1).normal(size=(40, 2)) + [0.0, 3.0]
    mu, sigma = NIWGaussian().map(x)
    mu_s, sigma_s = NIWGaussian().map(scale * x)
    np.testing.assert_allclose(mu_s / scale, mu, rtol=1e-10)
    np.testing.assert_allclose(sigma_s / scale**2, sigma, rtol=1e-10)
    clf = GaussianDiscriminantAnalysis().fit(scale * x, np.arange(40) % 2)
    np.testing.assert_allclose(clf.means_ / scale, GaussianDiscriminantAnalysis().fit(x, np.arange(40) % 2).means_, rtol=1e-10)


# -- 4. input forms ---------------------------------------------------------------------------
def test_dataframe_columns_label_the_fitted_means():
    frame = pd.DataFrame(FAITHFUL, columns=["eruptions", "waiting"])
    idata = fit(GaussianMixture(2), frame, backend="em", random_seed=0, progressbar=False)
    assert list(idata.posterior["means"].coords["feature"].values) == ["eruptions", "waiting"]
    import arviz as az

    summary = az.summary(idata, var_names=["means"])
    assert "means[0, waiting]" in summary.index
    # the values are those of the plain array
    plain = fit(GaussianMixture(2), FAITHFUL, backend="em", random_seed=0, progressbar=False)
    np.testing.assert_array_equal(idata.posterior["means"].values, plain.posterior["means"].values)


def test_series_is_one_named_feature():
    series = pd.Series(FAITHFUL[:, 1], name="waiting")
    data = NIWGaussian().check_data(series)
    assert data.shape == (272, 1) and data.feature_names == ("waiting",)
    np.testing.assert_array_equal(data.x[:, 0], FAITHFUL[:, 1])
    # a plain 1-D array stays ambiguous (N points or one point of D features?) and is refused
    with pytest.raises(ValueError, match=r"data must be 2-D .*data.reshape\(-1, 1\) for one feature"):
        NIWGaussian().check_data(FAITHFUL[:, 1])


def test_gda_takes_pandas_features_and_labels():
    x, labels = blobs(60, centers=2, random_seed=2)
    frame, series = pd.DataFrame(x, columns=["u", "v"]), pd.Series(np.where(labels == 0, "a", "b"))
    clf = GaussianDiscriminantAnalysis().fit(frame, series)
    reference = GaussianDiscriminantAnalysis().fit(x, np.where(labels == 0, "a", "b"))
    np.testing.assert_array_equal(clf.means_, reference.means_)
    assert clf.score(frame, series) == reference.score(x, np.where(labels == 0, "a", "b"))


def test_coins_take_zero_d_and_pandas_data_and_zero_d_init():
    model = ThreeCoins()
    assert model.check_data(np.array(1)).flips.tolist() == [1]
    assert model.check_data(pd.Series([1, 0, 1])).flips.tolist() == [1, 0, 1]
    assert model.check_data(pd.DataFrame([[1, 0], [0, 0]])).flips.tolist() == [[1, 0], [0, 0]]
    posterior_value = xr.DataArray(np.array([[0.4]])).squeeze()  # a squeezed posterior draw
    init = {"pi": posterior_value, "p": np.array(0.3), "q": np.float64(0.7)}
    assert {key: float(value) for key, value in model.check_params(init, "init").items()} == {"pi": 0.4, "p": 0.3, "q": 0.7}
    idata = fit(model, "1111110000", backend="em", init={"pi": posterior_value.values, "p": 0.3, "q": 0.7},
                random_seed=0, progressbar=False)
    assert float(idata.posterior["heads_prob"].values.squeeze()) == pytest.approx(0.6, abs=1e-6)
    with pytest.raises(TypeError, match=r"init\['pi'\] must be a number"):
        model.check_params({"pi": np.array([0.4, 0.5]), "p": 0.3, "q": 0.7}, "init")


def test_gmm_init_takes_xarray_values():
    model = GaussianMixture(2)
    x = model.default_data()[:200]
    params, _ = _fit_point(model, x, n_init=1)
    init = {name: xr.DataArray(value) for name, value in params.items()}
    again, _ = _fit_point(model, x, init=init)
    np.testing.assert_allclose(again["means"], params["means"], atol=1e-6)


# -- 5. masked arrays ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gmm", "niw", "gda"])
def test_masked_gaussian_data_are_refused(name):
    x = np.ma.masked_array(FAITHFUL.copy(), mask=np.zeros(FAITHFUL.shape, bool))
    x.mask[[3, 5, 9], 1] = True
    argument = "X" if name == "gda" else "data"
    with pytest.raises(ValueError, match=rf"{argument} is a masked array with 3 masked value\(s\).* cannot marginalise"):
        HUGE[name](x)


def test_masked_arrays_without_masked_values_are_their_data():
    x = np.ma.masked_array(FAITHFUL, mask=False)
    np.testing.assert_array_equal(GaussianData(x).x, FAITHFUL)
    assert ThreeCoins().check_data(np.ma.masked_array([1, 0, 1])).flips.tolist() == [1, 0, 1]
    clf = GaussianDiscriminantAnalysis().fit(FAITHFUL, np.ma.masked_array(FAITHFUL[:, 1] > 70))
    assert clf.classes_.tolist() == [False, True]


def test_masked_coins_and_labels_are_refused():
    with pytest.raises(ValueError, match=r"data is a masked array with 2 masked value\(s\); ThreeCoins cannot"):
        ThreeCoins().check_data(np.ma.masked_array([1, 0, 1, 1], mask=[0, 1, 1, 0]))
    with pytest.raises(ValueError, match=r"y is a masked array with 1 masked label"):
        GaussianDiscriminantAnalysis().fit(FAITHFUL[:4], np.ma.masked_array([0, 1, 0, 1], mask=[0, 0, 0, 1]))


# -- 6. whitespace in coin text ---------------------------------------------------------------
@pytest.mark.parametrize("text", ["1111110000", "1111110000\n", " 1 1 1 1 1 1 0 0 0 0 ", "111\t111,0000",
                                  "1\n1\n1\n1\n1\n1\n0\n0\n0\n0\n", "1,1,1,1,1,1,0,0,0,0\r\n"])
def test_coin_text_whitespace_is_a_separator(text):
    assert ThreeCoins().check_data(text).flips.tolist() == [1] * 6 + [0] * 4


def test_coin_text_lines_of_several_flips_are_trials():
    flips = ThreeCoins().check_data("0110\n1010\n\n1111\n").flips
    assert flips.tolist() == [[0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 1]]
    # the same as the numbers numpy.loadtxt reads from a whitespace-separated file (the CLI's reader)
    import io

    np.testing.assert_array_equal(ThreeCoins().check_data("0 1 1\n1 0 1").flips, np.loadtxt(io.StringIO("0 1 1\n1 0 1")))
    with pytest.raises(ValueError, match=r"lines of \[2, 3\] flips"):
        ThreeCoins().check_data("011\n10")


# -- 7. huge integers -------------------------------------------------------------------------
def test_huge_integer_flip_is_reported_as_given():
    with pytest.raises(ValueError, match=r"data must hold 0/1 flips: .* found \[1180591620717411303424\]"):
        ThreeCoins().check_data([1, 0, 2**70])
    with pytest.raises(ValueError, match=r"found \[18446744073709551615\]"):
        ThreeCoins().check_data(np.array([1, 2**64 - 1], dtype=np.uint64))


def test_gaussian_data_beyond_int64_are_read_as_floats():
    data = GaussianData([[1, 2**70], [3, 4], [5, 2**65]])
    np.testing.assert_array_equal(data.x, [[1.0, 2.0**70], [3.0, 4.0], [5.0, 2.0**65]])
    with pytest.raises(ValueError, match="data hold values up to"):
        GaussianData([[1, 2**400], [3, 4]])
    with pytest.raises(ValueError, match="beyond float64's range"):
        GaussianData([[1, 2**1100], [3, 4]])
    with pytest.raises(TypeError, match="data must be a 2-D array of real numbers, got str"):
        GaussianData(np.array([[1, "2"], [3, 4]], dtype=object))


# -- 8. sizes ---------------------------------------------------------------------------------
def test_absurd_mixture_sizes_are_refused_before_allocating():
    with pytest.raises(ValueError, match=r"covs would hold 10,000,000,000,000 numbers .*n_components=100000"):
        GaussianMixture(n_components=10**5, m0=np.zeros(10**4))
    model = GaussianMixture(n_components=10**4)  # D unknown until the data come
    with pytest.raises(ValueError, match=r"covs would hold 900,000,000 numbers"):
        model.check_data(np.zeros((10**4, 300)))
    with pytest.raises(TypeError, match="n_components must be an int >= 1, got float"):
        GaussianMixture(n_components=2.0)
    with pytest.raises(ValueError, match=r"the blobs data would hold"):
        blobs(10**9)
