"""Gaussian discriminant analysis against scikit-learn, the MAP where QDA's MLE breaks, the
shared-covariance mode against numerical optimisation, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis

from latentzoo.models.gaussian.gda import GaussianDiscriminantAnalysis, NotFittedError
from latentzoo.models.gaussian.niw import NIWGaussian


def three_classes(seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([
        rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], 40),
        rng.multivariate_normal([2, 1], [[2.0, -0.6], [-0.6, 1.0]], 30),
        rng.multivariate_normal([0, 3], [[0.4, 0.0], [0.0, 0.4]], 25),
    ])
    y = np.repeat(np.array(["a", "b", "c"]), [40, 30, 25])
    return X, y


def test_quadratic_mle_matches_sklearn_qda():
    X, y = three_classes()
    ours = GaussianDiscriminantAnalysis().fit(X, y)
    theirs = QuadraticDiscriminantAnalysis(store_covariance=True).fit(X, y)
    np.testing.assert_allclose(ours.means_, theirs.means_)
    np.testing.assert_allclose(ours.priors_, theirs.priors_)
    # scikit-learn < 1.6 divided the class scatter by N_c - 1 (reg_param=0); later releases by
    # N_c, the MLE. Accept either denominator, say which, and compare like with like.
    counts = ours.class_counts_[:, None, None]
    theirs_cov = np.asarray(theirs.covariance_)
    unbiased = np.allclose(theirs_cov, ours.covariances_ * counts / (counts - 1), rtol=1e-10)
    assert unbiased or np.allclose(theirs_cov, ours.covariances_, rtol=1e-10)
    if not unbiased:
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    # with scikit-learn's covariances plugged in, the decision rule is the same in either case
    ours.covariances_ = theirs_cov
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    assert np.array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("solver", ["lsqr", "eigen"])
def test_linear_mle_matches_sklearn_lda(solver):
    X, y = three_classes(1)
    ours = GaussianDiscriminantAnalysis(kind="linear").fit(X, y)
    theirs = LinearDiscriminantAnalysis(solver=solver, store_covariance=True).fit(X, y)
    # LDA's covariance_ is sum_c prior_c * (class scatter / N_c) = pooled scatter / N: the MLE
    np.testing.assert_allclose(ours.covariances_[0], theirs.covariance_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y))


def test_map_survives_where_the_mle_breaks():
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(0, 1, (30, 3)), rng.normal(2, 1, (2, 3)), rng.normal(-2, 1, (1, 3))])
    y = np.repeat([0, 1, 2], [30, 2, 1])
    with pytest.raises(ValueError, match="class 1.*singular"):
        GaussianDiscriminantAnalysis().fit(X, y)
    with pytest.raises(np.linalg.LinAlgError):
        QuadraticDiscriminantAnalysis().fit(X[:32], y[:32])  # scikit-learn breaks too
    clf = GaussianDiscriminantAnalysis(estimator="map").fit(X, y)
    assert np.all(np.linalg.eigvalsh(clf.covariances_) > 0)
    proba = clf.predict_proba(X)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1.0)
    # the per-class MAP is NIWGaussian's MAP under the prior resolved on all of X
    prior = NIWGaussian().with_data_prior(X)
    np.testing.assert_allclose(clf.covariances_[1], prior.map(X[30:32])[1])
    np.testing.assert_allclose(clf.means_[2], prior.map(X[32:])[0])


def test_shared_covariance_map_maximises_the_joint_posterior():
    X, y = three_classes(3)
    model = NIWGaussian(m0=[0.5, 1.0], kappa0=0.7, nu0=4.0, S0=[[1.0, 0.2], [0.2, 0.8]])
    clf = GaussianDiscriminantAnalysis(kind="linear", estimator="map", prior=model).fit(X, y)
    labels = np.unique(y)

    def negative(theta):
        means = theta[:6].reshape(3, 2)
        L = np.array([[np.exp(theta[6]), 0.0], [theta[7], np.exp(theta[8])]])
        Sigma = L @ L.T
        value = stats.invwishart(4.0, np.asarray(model.S0)).logpdf(Sigma)
        for k, label in enumerate(labels):
            value += stats.multivariate_normal(model.m0, Sigma / 0.7).logpdf(means[k])
            value += stats.multivariate_normal(means[k], Sigma).logpdf(X[y == label]).sum()
        return -value

    result = optimize.minimize(negative, np.zeros(9), method="BFGS", options={"gtol": 1e-9})
    L = np.array([[np.exp(result.x[6]), 0.0], [result.x[7], np.exp(result.x[8])]])
    np.testing.assert_allclose(clf.means_, result.x[:6].reshape(3, 2), atol=1e-5)
    np.testing.assert_allclose(clf.covariances_[0], L @ L.T, rtol=1e-5)


def test_map_approaches_the_mle_with_plenty_of_data():
    """The prior weighs like a few observations per class, so with hundreds the MAP and MLE
    classifiers agree almost everywhere."""
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(0, 1, (400, 2)), rng.normal(1.5, 0.7, (400, 2))])
    y = np.repeat([0, 1], 400)
    for kind in ("quadratic", "linear"):
        mle = GaussianDiscriminantAnalysis(kind=kind).fit(X, y)
        map_ = GaussianDiscriminantAnalysis(kind=kind, estimator="map").fit(X, y)
        np.testing.assert_allclose(map_.covariances_, mle.covariances_, rtol=0.03, atol=0.01)
        assert np.mean(map_.predict(X) == mle.predict(X)) > 0.99


@pytest.mark.parametrize(
    "X, y, error, match",
    [
        (np.zeros((4, 2)), [0, 0, 1], ValueError, "same number of samples"),
        (np.arange(8.0).reshape(4, 2), [1, 1, 1, 1], ValueError, "at least two classes"),
        (np.array([[0.0, np.nan], [1.0, 1.0], [2.0, 0.0], [0.0, 2.0]]), [0, 0, 1, 1], ValueError, "NaN"),
        (np.arange(4.0), [0, 0, 1, 1], ValueError, "X must be 2-D"),
        (np.arange(8.0).reshape(4, 2), np.zeros((4, 1)), ValueError, "y must be 1-D"),
        (np.arange(8.0).reshape(4, 2), [0.0, np.nan, 1.0, 1.0], ValueError, "NaN"),
    ],
)
def test_bad_inputs(X, y, error, match):
    with pytest.raises(error, match=match):
        GaussianDiscriminantAnalysis(estimator="map").fit(X, y)


def test_bad_settings_and_use_before_fit():
    X, y = three_classes()
    with pytest.raises(ValueError, match="kind must be"):
        GaussianDiscriminantAnalysis(kind="cubic").fit(X, y)
    with pytest.raises(ValueError, match="estimator must be"):
        GaussianDiscriminantAnalysis(estimator="mean").fit(X, y)
    with pytest.raises(TypeError, match="prior must be a NIWGaussian"):
        GaussianDiscriminantAnalysis(estimator="map", prior="flat").fit(X, y)
    with pytest.raises(NotFittedError, match="not fitted"):
        GaussianDiscriminantAnalysis().predict(X)
    clf = GaussianDiscriminantAnalysis().fit(X, y)
    with pytest.raises(ValueError, match="D = 3 features"):
        clf.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="y must have shape"):
        clf.score(X, y[:-1])
