"""GaussianData: (N, D) observations validated once, then passed through every hook without a
second pass over the values (GaussianMixture, NIWGaussian, GaussianDiscriminantAnalysis).

The scan is counted by wrapping ``gaussian_data._require_finite``; the values a hook returns for
validated data are compared with those it returns for the raw array.
"""

from __future__ import annotations

import numpy as np
import pytest

from latentzoo.inference import fit
from latentzoo.models import GaussianDiscriminantAnalysis, GaussianMixture, NIWGaussian
from latentzoo.models.gaussian import data as gaussian_data_module
from latentzoo.models.gaussian.data import GaussianData

pd = pytest.importorskip("pandas")


def blobs(n_per=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[-6.0, -2.0], [0.0, 6.0], [6.0, -2.0]])
    return np.concatenate([c + rng.standard_normal((n_per, 2)) for c in centres])


@pytest.fixture
def scans(monkeypatch):
    """The number of finiteness scans so far (a one-element list, updated in place)."""
    count = [0]
    original = gaussian_data_module._require_finite

    def counting(x):
        count[0] += 1
        return original(x)

    monkeypatch.setattr(gaussian_data_module, "_require_finite", counting)
    return count


MODELS = [GaussianMixture(3), GaussianMixture(3, m0=(0.0, 0.0)), NIWGaussian(), NIWGaussian(m0=(0.0, 0.0))]


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_validated_data_pass_through_unchanged(model):
    x = blobs()
    data = model.check_data(x)
    assert isinstance(data, GaussianData)
    assert model.check_data(data) is data
    assert data.x.dtype == np.float64 and not data.x.flags.writeable
    np.testing.assert_array_equal(data.x, x)
    assert data.shape == x.shape and data.n_observations == 60 and data.n_features == 2
    # a NumPy view of the same read-only array, not a copy
    assert np.asarray(data) is data.x
    with pytest.raises(ValueError, match="read-only"):
        data.x[0, 0] = 1.0


def test_validation_copies_and_later_edits_of_the_input_do_not_leak():
    x = blobs()
    data = GaussianData(x)
    x[0, 0] = 1e9
    assert data.x[0, 0] != 1e9


@pytest.mark.parametrize("model", [GaussianMixture(2, m0=(0.0, 0.0)), NIWGaussian(S0=np.eye(2))], ids=repr)
def test_validated_data_of_the_wrong_dimension_are_refused(model):
    three_features = GaussianData(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="data have D = 3 features but the prior \\(m0/S0\\) has D = 2"):
        model.check_data(three_features)
    with pytest.raises(ValueError, match="D = 3 features"):
        model.log_likelihood(three_features, {})


def test_validated_data_with_too_few_rows_for_the_mixture_are_refused():
    data = NIWGaussian().check_data(blobs(1))  # 3 rows: fine for NIWGaussian
    assert GaussianMixture(3).check_data(data) is data
    with pytest.raises(ValueError, match="n_components = 4 exceeds the number of observations N = 3"):
        GaussianMixture(4).check_data(data)


@pytest.mark.parametrize("bad, error, match", [
    ([[0.0, np.nan], [1.0, 2.0]], ValueError, "NaN or infinite"),
    ([0.0, 1.0], ValueError, "reshape\\(-1, 1\\)"),
    ("0 1", TypeError, "2-D numeric array"),
    (np.zeros((0, 2)), ValueError, "at least one observation"),
])
def test_gaussian_data_refuses_what_check_data_refuses(bad, error, match):
    with pytest.raises(error, match=match):
        GaussianData(bad)


def test_feature_names_from_pandas_or_given():
    x = blobs()
    frame = pd.DataFrame(x, columns=["duration", "waiting"])
    data = NIWGaussian().check_data(frame)
    assert data.feature_names == ("duration", "waiting")
    np.testing.assert_array_equal(data.x, x)
    assert GaussianData(x).feature_names is None
    assert GaussianData(x, feature_names=["a", "b"]).feature_names == ("a", "b")
    # re-wrapping keeps the array (no copy, no scan) and the names
    again = GaussianData(data)
    assert again.x is data.x and again.feature_names == ("duration", "waiting")
    with pytest.raises(ValueError, match="feature_names must name the D = 2 features, got 3"):
        GaussianData(x, feature_names=["a", "b", "c"])
    with pytest.raises(TypeError, match="feature_names must be a sequence"):
        GaussianData(x, feature_names="ab")


def test_public_methods_still_take_arrays_lists_and_pandas():
    x = blobs()
    model = GaussianMixture(3)
    params = model.initial_params(x, np.random.default_rng(0))
    expected = model.log_likelihood(x, params)
    for form in (x.tolist(), pd.DataFrame(x), model.check_data(x)):
        np.testing.assert_array_equal(model.log_likelihood(form, params), expected)
    niw = NIWGaussian()
    np.testing.assert_array_equal(niw.map(pd.DataFrame(x))[1], niw.map(x)[1])


def call_shared_hooks(model, data, rng):
    """Every data-taking hook GaussianMixture and NIWGaussian both have; returns the params."""
    params = model.initial_params(data, rng)
    model.expected_stats(data, params)
    model.log_likelihood(data, params)
    model.latent_posterior(data, params)
    for hook in (model.coords, model.observed_data, model.n_observations, model.resolved_prior, model.with_data_prior):
        hook(data)
    return params


def test_gmm_hooks_on_validated_data_never_scan_again(scans):
    x = blobs()
    model = GaussianMixture(3).with_data_prior(x)
    assert scans[0] == 1  # raw data: validated in full
    model.expected_stats(x, model.initial_params(x, np.random.default_rng(0)))
    assert scans[0] == 3  # raw data again: every call scans

    data = model.check_data(x)
    assert scans[0] == 4
    rng = np.random.default_rng(1)
    params = call_shared_hooks(model, data, rng)
    model.classification_stats(data, params)
    model.sample_stats(data, params, rng)
    model.vb_expected_stats(data, model.initial_factors(data, rng))
    model.aic(data, params)
    model.kmeans(data, params["means"])
    for backend, options in (("em", {}), ("vb", {"draws": 20}), ("gibbs", {"draws": 10, "tune": 5, "chains": 1})):
        fit(model, data, backend=backend, random_seed=0, progressbar=False, **options)
    assert scans[0] == 4
    # the E-step gives the same numbers on either form
    stats, log_lik = model.expected_stats(data, params)
    raw_stats, raw_log_lik = model.expected_stats(x, params)
    assert log_lik == raw_log_lik
    np.testing.assert_array_equal(stats["scatters"], raw_stats["scatters"])


def test_niw_and_gda_hooks_on_validated_data_never_scan_again(scans):
    x = blobs()
    model = NIWGaussian().with_data_prior(x)
    data = model.check_data(x)
    assert scans[0] == 2
    call_shared_hooks(model, data, np.random.default_rng(0))
    model.exact_posterior(data)
    fit(model, data, backend="em", random_seed=0, progressbar=False)
    fit(model, data, backend="exact", random_seed=0, draws=50)
    labels = np.repeat([0, 1, 2], 20)
    classifier = GaussianDiscriminantAnalysis(estimator="map").fit(data, labels)
    classifier.predict_proba(data)
    assert scans[0] == 2
    assert classifier.score(x, labels) == 1.0
