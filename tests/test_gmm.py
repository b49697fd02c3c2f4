"""GaussianMixture: EM against scikit-learn from identical starts, VB against scikit-learn's
BayesianGaussianMixture (the same Dirichlet x Gauss-Wishart model), densities against scipy.stats,
K-means against scikit-learn's KMeans and an independent Lloyd loop, k-means++ against
scikit-learn's kmeans_plusplus, numpy vs PyMC log-density, EM's fixed point vs ``map``,
degenerate data and bad inputs (Gibbs, VB and NUTS against the posterior: test_agreement.py).

Reference values never come from the code under test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from latentzoo.inference import choose_n_components, fit
from latentzoo.models import GaussianMixture
from latentzoo.models.mixture.gaussian import DegenerateComponentError
from latentzoo.models.gaussian.kmeans import kmeans_plusplus

sklearn_mixture = pytest.importorskip("sklearn.mixture")
sklearn_cluster = pytest.importorskip("sklearn.cluster")

#: Monte-Carlo tolerance in standard errors (many comparisons per test)
Z = 4.5
NAMES = ("weights", "means", "covs")


def blobs(n_per=100, seed=0, centres=((-6.0, -2.0), (0.0, 6.0), (6.0, -2.0)), scale=1.0):
    """Well-separated blobs with correlated noise, simulated with plain numpy."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, float)
    chol = scale * np.array([[1.0, 0.0], [0.4, 0.8]])
    return np.concatenate([c + rng.standard_normal((n_per, 2)) @ chol.T for c in centres])


def overlapping(n=400, dim=3, K=4, seed=1):
    """Overlapping clusters in D = 3 (EM takes many iterations: a harder comparison)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(K, dim))
    labels = rng.integers(K, size=n)
    A = rng.normal(size=(K, dim, dim)) * 0.5 + np.eye(dim)
    return centres[labels] + np.einsum("nij,nj->ni", A[labels], rng.standard_normal((n, dim)))


def point(idata):
    return {name: idata.posterior[name].values[0, 0] for name in NAMES}


def scipy_log_likelihood(x, params):
    density = sum(
        w * stats.multivariate_normal(m, c).pdf(x) for w, m, c in zip(params["weights"], params["means"], params["covs"])
    )
    return np.log(density)


def scipy_log_prior(model, params):
    K = model.n_components
    value = stats.dirichlet(np.full(K, model.weights_prior)).logpdf(params["weights"])
    for m, c in zip(params["means"], params["covs"]):
        value += stats.invwishart(model.nu0, np.asarray(model.S0)).logpdf(c)
        value += stats.multivariate_normal(np.asarray(model.m0), c / model.kappa0).logpdf(m)
    return value


def matched(estimate, reference):
    """The permutation of estimate's components closest to reference's means (brute force)."""
    from itertools import permutations

    K = reference["means"].shape[0]
    best = min(permutations(range(K)), key=lambda p: np.sum((estimate["means"][list(p)] - reference["means"]) ** 2))
    return {name: np.asarray(value)[list(best)] for name, value in estimate.items()}


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(*args, **kwargs)


# ------------------------------------------------------------------------------------------
# densities and priors against scipy
# ------------------------------------------------------------------------------------------
def test_log_likelihood_and_responsibilities_match_scipy_and_batch():
    x = overlapping(50)
    model = GaussianMixture(4)
    rng = np.random.default_rng(3)
    draws = [model.initial_params(x, rng, "random") for _ in range(3)]
    for p in draws:
        p["covs"] = p["covs"] * rng.uniform(0.5, 2.0, size=(4, 1, 1))
    for p in draws:
        np.testing.assert_allclose(model.log_likelihood(x, p), scipy_log_likelihood(x, p), rtol=1e-10)
        joint = np.stack([w * stats.multivariate_normal(m, c).pdf(x) for w, m, c in zip(*(p[n] for n in NAMES))], 1)
        np.testing.assert_allclose(model.responsibilities(x, p), joint / joint.sum(1, keepdims=True), rtol=1e-8, atol=1e-14)
    batched = {name: np.stack([p[name] for p in draws]).reshape((1, 3) + draws[0][name].shape) for name in NAMES}
    out = model.log_likelihood(x, batched)
    assert out.shape == (1, 3, 50)
    for index, p in enumerate(draws):
        np.testing.assert_allclose(out[0, index], scipy_log_likelihood(x, p), rtol=1e-10)


def test_data_driven_prior_and_log_prior_match_scipy():
    x = blobs(30)
    model = GaussianMixture(3).with_data_prior(x)
    assert not model.data_driven
    np.testing.assert_allclose(model.m0, x.mean(0))
    assert model.nu0 == 4.0 and model.kappa0 == 0.01
    np.testing.assert_allclose(model.S0, np.cov(x.T, bias=True) / 3.0)  # cov / K^(2/D), D = 2
    rng = np.random.default_rng(0)
    p = model.initial_params(x, rng)
    assert float(model.log_prior(p)) == pytest.approx(scipy_log_prior(model, p), rel=1e-12)
    with pytest.raises(ValueError, match="with_data_prior"):
        GaussianMixture(3).log_prior(p)


def test_simulate_shapes_and_moments():
    model = GaussianMixture(2)
    p = {"weights": np.array([0.3, 0.7]), "means": np.array([[0.0, 0.0], [5.0, 5.0]]),
         "covs": np.array([np.eye(2), [[2.0, 0.5], [0.5, 1.0]]])}
    x, z = model.simulate(p, 20_000, np.random.default_rng(0))
    assert x.shape == (20_000, 2) and z.shape == (20_000,)
    assert abs(z.mean() - 0.7) < Z * np.sqrt(0.21 / 20_000)
    np.testing.assert_allclose(np.cov(x[z == 1].T), p["covs"][1], atol=0.1)


# ------------------------------------------------------------------------------------------
# EM against scikit-learn
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data, K", [(blobs(), 3), (overlapping(), 4)], ids=["blobs", "overlapping-3d"])
def test_mle_em_matches_sklearn_from_the_same_start(data, K):
    model = GaussianMixture(K)
    start = model.initial_params(data, np.random.default_rng(5))
    idata = fit(model, data, backend="em", mle=True, init=start, tol=1e-13, max_iter=3000, progressbar=False)
    sk = sklearn_mixture.GaussianMixture(
        K, covariance_type="full", reg_covar=1e-6, tol=1e-13, max_iter=3000, weights_init=start["weights"],
        means_init=start["means"], precisions_init=np.linalg.inv(start["covs"]),
    ).fit(data)
    assert sk.converged_ and idata.posterior.attrs["converged"]
    ours = point(idata)
    np.testing.assert_allclose(ours["weights"], sk.weights_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ours["means"], sk.means_, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(ours["covs"], sk.covariances_, rtol=1e-7, atol=1e-8)
    log_lik = float(idata.log_likelihood["x"].sum())
    assert log_lik == pytest.approx(sk.score(data) * len(data), rel=1e-10)
    history = idata.fit_history["log_likelihood"].values[0]
    history = history[np.isfinite(history)]
    assert np.all(np.diff(history) >= -1e-9 * abs(history[-1]))
    # AIC and BIC against scikit-learn's, at scikit-learn's parameters
    sk_params = {"weights": sk.weights_, "means": sk.means_, "covs": sk.covariances_}
    assert model.aic(data, sk_params) == pytest.approx(sk.aic(data), rel=1e-10)
    assert model.bic(data, sk_params) == pytest.approx(sk.bic(data), rel=1e-10)


def test_map_em_objective_is_log_likelihood_plus_scipy_log_prior_and_rises():
    x = blobs(40, seed=2)
    model = GaussianMixture(3).with_data_prior(x)
    idata = fit(model, x, backend="em", random_seed=1, tol=1e-12, progressbar=False)
    p = point(idata)
    expected = scipy_log_likelihood(x, p).sum() + scipy_log_prior(model, p)
    assert idata.posterior.attrs["objective"] == pytest.approx(expected, rel=1e-10)
    history = idata.fit_history["log_posterior"].values
    for row in history:
        row = row[np.isfinite(row)]
        assert np.all(np.diff(row) >= -1e-9 * abs(row[-1]))
    # a fixed point: one more EM step from the result moves nothing
    stats_, _ = model.expected_stats(x, p)
    from latentzoo.models.core.conjugate import apply_to_factors

    again = apply_to_factors(model.conditional_posterior(stats_), "mode")
    for name in NAMES:
        np.testing.assert_allclose(again[name], p[name], rtol=1e-6, atol=1e-8)


def test_default_init_is_kmeans_plus_plus_and_random_works():
    x = blobs(30)
    model = GaussianMixture(3)
    start = model.initial_params(x, np.random.default_rng(0))
    # k-means++ on well-separated blobs: one centre per blob, weights ~ 1/3
    assert sorted(np.round(start["weights"] * 90).astype(int).tolist()) == [30, 30, 30]
    idata = fit(model, x, backend="em", init="random", n_init=2, random_seed=0, progressbar=False)
    assert idata.posterior.attrs["init"] == "random"
    assert fit(model, x, backend="em", random_seed=0, progressbar=False).posterior.attrs["init"] == "default"


def test_kmeans_plusplus_is_scikit_learns_seeded_from_the_generator():
    x = overlapping(200, dim=3, K=4, seed=2)
    for seed in range(3):
        centres = kmeans_plusplus(x, 4, np.random.default_rng(seed))
        # the documented seeding: one integer drawn from the Generator seeds scikit-learn
        expected, indices = sklearn_cluster.kmeans_plusplus(
            x, 4, random_state=int(np.random.default_rng(seed).integers(2**32))
        )
        np.testing.assert_array_equal(centres, expected)
        np.testing.assert_array_equal(centres, x[indices])  # data points
        # validated data (no second finiteness scan) give the same centres
        validated = GaussianMixture(4).check_data(x)
        np.testing.assert_array_equal(kmeans_plusplus(validated, 4, np.random.default_rng(seed)), expected)


def test_kmeans_plusplus_start_is_its_nearest_centre_clusters():
    x = blobs(30, seed=5)
    model = GaussianMixture(3)
    for seed in range(5):
        start = model.initial_params(x, np.random.default_rng(seed))
        centres = kmeans_plusplus(x, 3, np.random.default_rng(seed))
        # one centre per well-separated blob
        assert sorted(np.argmin(((centres[:, None] - np.array([[-6, -2], [0, 6], [6, -2]])) ** 2).sum(-1), 1)) == [0, 1, 2]
        # then Lloyd's assignment, the clusters' fractions and means, the pooled within-cluster covariance
        labels = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        members = [x[labels == k] for k in range(3)]
        np.testing.assert_allclose(start["weights"], [len(m) / len(x) for m in members], rtol=1e-12)
        np.testing.assert_allclose(start["means"], [m.mean(0) for m in members], rtol=1e-12, atol=1e-12)
        pooled = sum((m - m.mean(0)).T @ (m - m.mean(0)) for m in members) / len(x)
        floor = 1e-6 * np.mean(x.var(0)) * np.eye(2)
        for cov in start["covs"]:
            np.testing.assert_allclose(cov, pooled + floor, rtol=1e-10)
    # the same seed, the same start
    again = model.initial_params(x, np.random.default_rng(4))
    for name in NAMES:
        np.testing.assert_array_equal(again[name], start[name])


# ------------------------------------------------------------------------------------------
# hard assignments: classification EM and K-means
# ------------------------------------------------------------------------------------------
def lloyd(x, centres, max_iter=300):
    """Lloyd's algorithm, written independently of the code under test."""
    centres = np.array(centres, float)
    labels = None
    for _ in range(max_iter):
        new = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centres = np.array([x[labels == k].mean(0) for k in range(len(centres))])
    return centres, labels


def test_kmeans_is_classification_em_with_fixed_equal_weights_and_identity_covariances():
    x = overlapping(300, dim=2, K=4, seed=4)  # overlapping, so Lloyd needs several iterations
    init = x[[0, 1, 2, 3]]
    centres, labels, inertia = GaussianMixture(4).kmeans(x, init)
    sk = sklearn_cluster.KMeans(4, init=init, n_init=1, algorithm="lloyd", tol=0, max_iter=300).fit(x)
    np.testing.assert_allclose(centres, sk.cluster_centers_, rtol=1e-10)
    np.testing.assert_array_equal(labels, sk.labels_)
    assert inertia == pytest.approx(sk.inertia_, rel=1e-10)
    ref_centres, ref_labels = lloyd(x, init)
    np.testing.assert_allclose(centres, ref_centres, rtol=1e-12)
    np.testing.assert_array_equal(labels, ref_labels)


def test_classification_em_objective_never_decreases_and_assignments_are_hard():
    x = overlapping(300, dim=2, K=3, seed=6)
    model = GaussianMixture(3).with_data_prior(x)
    idata = fit(model, x, backend="em", assignment="hard", n_init=3, random_seed=2, progressbar=False)
    history = idata.fit_history["classification_log_posterior"].values
    for row in history:
        row = row[np.isfinite(row)]
        assert np.all(np.diff(row) >= -1e-9 * abs(row[-1]))
    assert idata.posterior.attrs["assignment"] == "hard"
    # its M-step uses hard counts: the weights are (count + alpha - 1) / (N + K alpha - K) with integer counts
    counts = idata.posterior["weights"].values[0, 0] * len(x)
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-8)
    with pytest.raises(ValueError, match="assignment must be one of"):
        fit(model, x, backend="em", assignment="kmeans")


# ------------------------------------------------------------------------------------------
# choosing K
# ------------------------------------------------------------------------------------------
def test_choose_n_components_picks_three_blobs():
    table = choose_n_components(GaussianMixture(), blobs(40), candidates=[1, 2, 3, 4], random_seed=0, n_init=1)
    assert list(table["n_components"]) == [1, 2, 3, 4]
    assert int(table.loc[table["best"], "n_components"].iloc[0]) == 3
    assert np.all(np.diff(table["log_likelihood"]) > -1e-6)  # nested models: ML never worse with more K
    np.testing.assert_allclose(table["aic"], -2 * table["log_likelihood"] + 2 * table["n_parameters"])
    assert list(table["n_parameters"]) == [5, 11, 17, 23]


# ------------------------------------------------------------------------------------------
# VB against scikit-learn's BayesianGaussianMixture (same Dirichlet x Gauss-Wishart model)
# ------------------------------------------------------------------------------------------
def test_vb_fixed_point_matches_sklearn_bayesian_gaussian_mixture_and_elbo_rises():
    x = blobs(50, seed=8)
    model = GaussianMixture(3).with_data_prior(x)
    # CAVI by the back-end's own step, to the fixed point; the ELBO never decreases on the way
    from latentzoo.inference.backends.vb import elbo_step

    step = elbo_step(model, x)
    factors = model.initial_factors(x, np.random.default_rng(0))
    elbos = []
    for _ in range(400):
        factors, elbo = step(factors)
        elbos.append(elbo)
        if len(elbos) > 1 and elbos[-1] - elbos[-2] < 1e-11 * len(x):
            break
    assert np.all(np.diff(elbos) >= -1e-9 * abs(elbos[-1]))
    sk = sklearn_mixture.BayesianGaussianMixture(
        n_components=3, weight_concentration_prior_type="dirichlet_distribution", weight_concentration_prior=1.0,
        mean_precision_prior=model.kappa0, mean_prior=np.asarray(model.m0), degrees_of_freedom_prior=model.nu0,
        covariance_prior=np.asarray(model.S0), tol=1e-12, max_iter=3000, random_state=0, init_params="k-means++",
        reg_covar=0.0,
    ).fit(x)
    niw = factors[("means", "covs")]
    order = [int(np.argmin(((niw.m - mean) ** 2).sum(1))) for mean in sk.means_]
    np.testing.assert_allclose(niw.m[order], sk.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(niw.kappa[order], sk.mean_precision_, rtol=1e-6)
    np.testing.assert_allclose(niw.nu[order], sk.degrees_of_freedom_, rtol=1e-6)
    np.testing.assert_allclose(niw.S[order] / niw.nu[order][:, None, None], sk.covariances_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(factors["weights"].concentration[order], sk.weight_concentration_, rtol=1e-6)
    # the back-end reaches the same fixed point and samples from it
    idata = fit(model, x, backend="vb", random_seed=0, n_init=1, draws=400, progressbar=False)
    means = idata.posterior["means"].values[0].mean(0)
    for mean in sk.means_:
        assert np.min(np.abs(means - mean).sum(1)) < 0.2


# ------------------------------------------------------------------------------------------
# degenerate data
# ------------------------------------------------------------------------------------------
def test_component_on_a_single_far_point_map_is_finite_mle_is_a_clear_error():
    x = np.concatenate([blobs(30, seed=3), [[40.0, 40.0]]])
    model = GaussianMixture(4)
    start = {"weights": np.array([0.3, 0.3, 0.3, 0.1]), "means": np.array([[-6.0, -2.0], [0.0, 6.0], [6.0, -2.0], [40.0, 40.0]]),
             "covs": np.stack([np.eye(2)] * 4)}
    idata = fit(model, x, backend="em", init=start, progressbar=False)
    p = point(idata)
    assert all(np.all(np.isfinite(v)) for v in p.values())
    # the lone point's component keeps a covariance of the prior's scale, not a spike
    S0 = np.asarray(model.with_data_prior(x).S0)
    assert np.linalg.eigvalsh(p["covs"][3])[0] > 0.05 * np.linalg.eigvalsh(S0)[0]
    with pytest.raises(DegenerateComponentError, match=r"component 3 collapsed.*Use the prior.*fewer components"):
        fit(model, x, backend="em", mle=True, init=start, progressbar=False)


def test_duplicate_points_map_finite_mle_clear_error():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(40, 2)), np.tile([[8.0, 8.0]], (10, 1))])
    model = GaussianMixture(2)
    start = {"weights": np.array([0.8, 0.2]), "means": np.array([[0.0, 0.0], [8.0, 8.0]]), "covs": np.stack([np.eye(2)] * 2)}
    idata = fit(model, x, backend="em", init=start, progressbar=False)
    assert np.all(np.isfinite(idata.log_likelihood["x"].values))
    assert np.all(np.linalg.eigvalsh(point(idata)["covs"]) > 0)
    with pytest.raises(DegenerateComponentError, match="Use the prior"):
        fit(model, x, backend="em", mle=True, init=start, progressbar=False)
    # fewer points than D + 1 in a component (D = 3, two identical-ish points)
    x3 = np.concatenate([rng.normal(size=(30, 3)), [[9.0, 9.0, 9.0], [9.0, 9.0, 9.0]]])
    start3 = {"weights": np.array([0.9, 0.1]), "means": np.array([[0.0, 0.0, 0.0], [9.0, 9.0, 9.0]]), "covs": np.stack([np.eye(3)] * 2)}
    assert np.all(np.isfinite(point(fit(model, x3, backend="em", init=start3, progressbar=False))["covs"]))
    with pytest.raises(DegenerateComponentError):
        fit(model, x3, backend="em", mle=True, init=start3, progressbar=False)


# ------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------
GOOD = {"weights": [0.5, 0.5], "means": [[0.0, 0.0], [1.0, 1.0]], "covs": [np.eye(2), np.eye(2)]}
BAD_DATA = [
    ("nan", [[0.0, 1.0], [np.nan, 1.0], [2.0, 2.0]], ValueError, "NaN or infinite"),
    ("inf", [[0.0, 1.0], [np.inf, 1.0], [2.0, 2.0]], ValueError, "NaN or infinite"),
    ("1-D", [0.0, 1.0, 2.0], ValueError, r"2-D of shape .*reshape\(-1, 1\)"),
    ("3-D", np.zeros((3, 2, 2)), ValueError, "2-D of shape"),
    ("K > N", [[0.0, 1.0]], ValueError, "n_components = 2 exceeds the number of observations N = 1"),
    ("text", "0 1 2", TypeError, "data must be a 2-D numeric array"),
    ("strings", [["a", "b"], ["c", "d"]], TypeError, "real numbers"),
    ("None", None, TypeError, "data must be a 2-D numeric array"),
    ("ragged", [[0.0, 1.0], [1.0]], TypeError, "could not read"),
]


@pytest.mark.parametrize("label, data, error, message", BAD_DATA, ids=[row[0] for row in BAD_DATA])
def test_bad_data(label, data, error, message):
    with pytest.raises(error, match=message):
        GaussianMixture(2).check_data(data)
    with pytest.raises(error, match=message):
        fit(GaussianMixture(2), data, backend="em", progressbar=False)


BAD_INIT = [
    ("weights do not sum to one", {**GOOD, "weights": [0.5, 0.6]}, ValueError, r"init\['weights'\] must sum to 1"),
    ("negative weight", {**GOOD, "weights": [1.5, -0.5]}, ValueError, r"init\['weights'\] must be finite and > 0"),
    ("wrong weights shape", {**GOOD, "weights": [1.0]}, ValueError, r"init\['weights'\] must have shape \(2,\)"),
    ("wrong means shape", {**GOOD, "means": [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]}, ValueError, r"init\['means'\] must have shape \(2, 2\)"),
    ("wrong covs shape", {**GOOD, "covs": [np.eye(2)]}, ValueError, r"init\['covs'\] must have shape \(2, 2, 2\)"),
    ("covariance not PD", {**GOOD, "covs": [np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]}, ValueError, r"init\['covs'\]\[1\] must be positive definite"),
    ("covariance not symmetric", {**GOOD, "covs": [np.eye(2), [[1.0, 0.5], [0.0, 1.0]]]}, ValueError, r"init\['covs'\]\[1\] must be symmetric"),
    ("nan mean", {**GOOD, "means": [[np.nan, 0.0], [1.0, 1.0]]}, ValueError, r"init\['means'\] must be finite"),
    ("missing key", {"weights": [0.5, 0.5], "means": [[0.0, 0.0], [1.0, 1.0]]}, ValueError, r"missing \['covs'\]"),
    ("not a dict", [0.5, 0.5], TypeError, "init must be a strategy name or a dict"),
    ("unknown strategy", "kmeans", ValueError, "init strategy must be 'kmeans\\+\\+', 'random'"),
]


@pytest.mark.parametrize("label, init, error, message", BAD_INIT, ids=[row[0] for row in BAD_INIT])
def test_bad_init(label, init, error, message):
    x = blobs(10)
    with pytest.raises(error, match=message):
        fit(GaussianMixture(2), x, backend="em", init=init, progressbar=False)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n_components": 0}, ValueError, "n_components must be an int >= 1"),
    ({"n_components": 2.5}, TypeError, "n_components must be an int"),
    ({"n_components": True}, TypeError, "n_components must be an int"),
    ({"weights_prior": -1.0}, ValueError, "weights_prior must be finite and > 0"),
    ({"weights_prior": [1.0, 1.0]}, ValueError, r"weights_prior must be a number or have shape \(3,\)"),
    ({"weights_prior": "1"}, TypeError, "weights_prior must be"),
    ({"kappa0": 0.0}, ValueError, "kappa0 must be a positive"),
    ({"nu0": 0.5, "m0": [0.0, 0.0]}, ValueError, "nu0 must be > D - 1"),
    ({"S0": [[1.0, 2.0], [2.0, 1.0]]}, ValueError, "S0 must be positive definite"),
    ({"m0": [0.0, 0.0], "S0": np.eye(3)}, ValueError, r"S0 must have shape \(2, 2\)"),
    ({"reg_covar": -1e-6}, ValueError, "reg_covar must be a positive"),
])
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        GaussianMixture(**kwargs)


def test_bad_params_to_model_level_methods():
    x = blobs(5)
    model = GaussianMixture(2)
    bad_cov = {**GOOD, "covs": [np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]}
    with pytest.raises(ValueError, match="covs"):
        model.log_likelihood(x, bad_cov)
    with pytest.raises(ValueError, match=r"params must have weights"):
        model.log_likelihood(x, {**GOOD, "means": [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]})
    with pytest.raises(ValueError, match=r"params\['weights'\] must sum to 1"):
        model.aic(x, {**GOOD, "weights": [0.2, 0.2]})
    with pytest.raises(ValueError, match="size must be a positive int"):
        model.simulate(GOOD, 0, 0)
    with pytest.raises(ValueError, match=r"init_centres must be a finite array of shape \(2, 2\)"):
        model.kmeans(x, [[0.0, 0.0]])
    with pytest.raises(ValueError, match="constant feature"):
        GaussianMixture(2).with_data_prior(np.column_stack([np.arange(5.0), np.ones(5)]))


# ------------------------------------------------------------------------------------------
# the result layout is tested for every model in test_contract_models.py
# ------------------------------------------------------------------------------------------
# PyMC: the same model
# ------------------------------------------------------------------------------------------
def pymc_value_point(pm_model, params):
    """The free value variables at constrained params, through PyMC's own transforms."""
    values = {}
    for rv in pm_model.free_RVs:
        value_var = pm_model.rvs_to_values[rv]
        transform = pm_model.rvs_to_transforms[rv]
        v = np.asarray(params[rv.name], float)
        values[value_var.name] = transform.forward(v, *rv.owner.inputs).eval() if transform is not None else v
    return values


@pytest.mark.pymc
def test_pymc_log_density_equals_numpy_prior_plus_likelihood():
    x = blobs(15, seed=4)
    model = GaussianMixture(3).with_data_prior(x)
    rng = np.random.default_rng(2)
    pm_model = model.pymc_model(x)
    logp = pm_model.compile_logp(jacobian=False)
    for _ in range(2):
        p = model.initial_params(x, rng, "random")
        p["means"] = p["means"] + rng.normal(size=p["means"].shape)
        p["weights"] = rng.dirichlet(np.ones(3))
        expected = scipy_log_prior(model, p) + scipy_log_likelihood(x, p).sum()
        assert float(logp(pymc_value_point(pm_model, p))) == pytest.approx(expected, rel=1e-10)
    # the explicit-assignment model: log p(theta) + sum_n log(w_z N(x_n | theta_z))
    explicit = model.pymc_model(x, marginalized=False)
    z = rng.integers(3, size=len(x))
    value = pymc_value_point(explicit, {**p, "z": z})
    value["z"] = z
    expected = scipy_log_prior(model, p) + sum(
        np.log(p["weights"][k]) + stats.multivariate_normal(p["means"][k], p["covs"][k]).logpdf(row) for row, k in zip(x, z)
    )
    assert float(explicit.compile_logp(jacobian=False)(value)) == pytest.approx(expected, rel=1e-10)
    assert [rv.name for rv in explicit.free_RVs if rv.name == "z"] == ["z"]


@pytest.mark.pymc
def test_em_fixed_point_equals_pymc_map():
    x = blobs(20, seed=5)
    model = GaussianMixture(3)
    em = fit(model, x, backend="em", random_seed=0, tol=1e-13, progressbar=False)
    # a k-means++ start, not EM's answer: the optimiser has to find the same mode by itself
    mp = quiet_fit(model, x, backend="map", init="kmeans++", random_seed=0, progressbar=False)
    ours, theirs = point(em), matched(point(mp), point(em))
    for name in NAMES:
        np.testing.assert_allclose(theirs[name], ours[name], rtol=1e-4, atol=1e-5)
    assert mp.posterior.attrs["objective"] == pytest.approx(em.posterior.attrs["objective"], rel=1e-8)


@pytest.mark.pymc
@pytest.mark.slow
def test_advi_started_at_em_finds_the_em_clusters():
    x = blobs(20, seed=9)
    model = GaussianMixture(3)
    em = point(fit(model, x, backend="em", random_seed=0, progressbar=False))
    advi = quiet_fit(model, x, backend="advi", start="em", n_steps=1500, random_seed=0, draws=200, progressbar=False)
    assert advi.posterior.attrs["start"] == "em"
    means = matched({name: advi.posterior[name].values[0].mean(0) for name in NAMES}, em)["means"]
    np.testing.assert_allclose(means, em["means"], atol=0.5)


def test_advi_start_and_n_init_are_validated_before_any_pymc_work():
    x = blobs(10)
    with pytest.raises(ValueError, match="start must be one of"):
        fit(GaussianMixture(3), x, backend="advi", start="kmeans", progressbar=False)
    with pytest.raises(TypeError, match="start must be None, 'em' or a dict"):
        fit(GaussianMixture(3), x, backend="fullrank_advi", start=3, progressbar=False)
    with pytest.raises(ValueError, match=r"start\['weights'\] must sum to 1"):
        fit(GaussianMixture(2), x, backend="advi", start={**GOOD, "weights": [0.2, 0.2]}, progressbar=False)
    with pytest.raises(ValueError, match="n_init must be an int >= 1"):
        fit(GaussianMixture(2), x, backend="advi", n_init=0, progressbar=False)


def test_vb_with_one_component_is_the_closed_form_niw_posterior():
    # K = 1 has no latent labels, so VB is exact: its factor is the NIW posterior (Murphy 2012,
    # eq. 4.209-4.214), computed here from the prior's hyperparameters and the data alone
    x = np.random.default_rng(3).normal(size=(40, 2)) @ np.array([[1.0, 0.0], [0.6, 0.5]]) + [2.0, -1.0]
    family = GaussianMixture(1).with_data_prior(x).family
    m0, kappa0, nu0, S0 = np.array(family.m0), family.kappa0, family.nu0, np.array(family.S0)
    n, xbar = len(x), x.mean(0)
    scatter = (x - xbar).T @ (x - xbar)
    kappa_n, nu_n = kappa0 + n, nu0 + n
    m_n = (kappa0 * m0 + n * xbar) / kappa_n
    S_n = S0 + scatter + kappa0 * n / kappa_n * np.outer(xbar - m0, xbar - m0)
    result = fit(GaussianMixture(1), x, backend="vb", random_seed=0, progressbar=False)
    variational = result["variational"]
    np.testing.assert_allclose(variational["means_covs_m"].values.reshape(2), m_n, rtol=1e-10)
    np.testing.assert_allclose(variational["means_covs_S"].values.reshape(2, 2), S_n, rtol=1e-10)
    np.testing.assert_allclose(float(variational["means_covs_nu"].values.ravel()[0]), nu_n)
    np.testing.assert_allclose(result.posterior["weights"].values, 1.0)
    # the draws agree with the closed-form means: E[mu] = m_N, E[Sigma] = S_N / (nu_N - D - 1)
    draws = result.posterior
    np.testing.assert_allclose(draws["means"].mean(("chain", "draw")).values.reshape(2), m_n, atol=0.05)
    np.testing.assert_allclose(draws["covs"].mean(("chain", "draw")).values.reshape(2, 2), S_n / (nu_n - 3), atol=0.05)
