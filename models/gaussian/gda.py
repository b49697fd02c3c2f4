"""Gaussian discriminant analysis: a generative classifier built on :class:`NIWGaussian`.

Each class c has a Gaussian class-conditional density N(x | mu_c, Sigma_c) and a prior
probability pi_c (the class frequency); the classifier is Bayes' rule (seed 001):

    p(y = c | x) proportional to pi_c N(x | mu_c, Sigma_c).

* ``kind="quadratic"`` (QDA): one covariance per class, quadratic decision boundaries.
* ``kind="linear"`` (LDA): one covariance shared by all classes, linear boundaries.
* ``estimator="mle"``: maximum-likelihood means and covariances (singular when a class has
  no more points than dimensions: QDA's MLE breaks).
* ``estimator="map"``: the joint posterior mode under a Normal-Inverse-Wishart prior
  (regularised discriminant analysis); by default the seed's data-driven prior resolved on the
  *whole* training set, so every class covariance is shrunk towards the diagonal of the overall
  covariance. A class with a single point still gets a positive-definite covariance.

All the Gaussian algebra comes from :mod:`latentzoo.models.core.conjugate` and
:class:`~latentzoo.models.gaussian.niw.NIWGaussian`; nothing is re-derived here except the
shared-covariance mode (see :meth:`GaussianDiscriminantAnalysis._shared_covariance`).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..core.base import unmasked
from ..core.conjugate import NormalInverseWishart
from ..families.gaussian import GaussianFamily
from .data import GaussianData
from .niw import NIWGaussian

__all__ = ["GaussianDiscriminantAnalysis", "NotFittedError"]

_MAP_ADVICE = "use estimator='map' (regularised discriminant analysis) or kind='linear'"


class NotFittedError(ValueError, AttributeError):
    """The classifier was used before :meth:`GaussianDiscriminantAnalysis.fit`."""


class GaussianDiscriminantAnalysis:
    """Quadratic or linear Gaussian discriminant analysis, by MLE or NIW MAP.

    Parameters
    ----------
    kind : {"quadratic", "linear"}, default "quadratic"
    estimator : {"mle", "map"}, default "mle"
    prior : NIWGaussian, optional
        The NIW prior for ``estimator="map"`` (default ``NIWGaussian()``: data-driven, resolved
        on the whole training set X). The same prior is used for every class.

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
        Set by :meth:`fit`, as are the others.
    priors_ : ndarray of shape (K,)
        Class frequencies.
    means_ : ndarray of shape (K, D)
    covariances_ : ndarray of shape (K, D, D)
        One matrix per class (the same matrix K times for ``kind="linear"``).
    class_counts_ : ndarray of shape (K,)

    Examples
    --------
    >>> clf = GaussianDiscriminantAnalysis(kind="linear").fit(X, y)   # doctest: +SKIP
    >>> clf.predict_proba(X[:3])                                     # doctest: +SKIP
    """

    def __init__(self, kind: str = "quadratic", estimator: str = "mle", prior: NIWGaussian | None = None):
        self.kind = kind
        self.estimator = estimator
        self.prior = prior

    def __repr__(self) -> str:
        return f"GaussianDiscriminantAnalysis(kind={self.kind!r}, estimator={self.estimator!r}, prior={self.prior!r})"

    # -- validation -----------------------------------------------------------------------
    def _check_settings(self) -> NIWGaussian:
        if self.kind not in ("quadratic", "linear"):
            raise ValueError(f"kind must be 'quadratic' or 'linear', got {self.kind!r}")
        if self.estimator not in ("mle", "map"):
            raise ValueError(f"estimator must be 'mle' or 'map', got {self.estimator!r}")
        prior = NIWGaussian() if self.prior is None else self.prior
        if not isinstance(prior, NIWGaussian):
            raise TypeError(f"prior must be a NIWGaussian, got {type(prior).__name__}")
        return prior

    @staticmethod
    def _check_X(X, dim: int | None = None) -> GaussianData:
        """``X`` validated once (a GaussianData passes as it is), with D = ``dim`` when given."""
        try:
            X = NIWGaussian().check_data(X)
        except (TypeError, ValueError) as error:
            raise type(error)(str(error).replace("data", "X", 1)) from None
        if dim is not None and X.n_features != dim:
            raise ValueError(f"X has D = {X.n_features} features but the classifier was fitted with D = {dim}")
        return X

    def _check_fitted(self):
        if not hasattr(self, "means_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")

    # -- fitting --------------------------------------------------------------------------
    def fit(self, X, y) -> "GaussianDiscriminantAnalysis":
        """Estimate class priors, means and covariances.

        Parameters
        ----------
        X : array-like of shape (n_samples, D), or GaussianData
        y : array-like of shape (n_samples,)
            Class labels (any sortable values; a pandas Series, or a masked array with nothing
            masked); at least two distinct classes.

        Returns
        -------
        self
        """
        prior_model = self._check_settings()
        X = self._check_X(X)
        y = _labels(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D of shape (n_samples,), got shape {y.shape}")
        if y.shape[0] != X.n_observations:
            raise ValueError(f"X and y must have the same number of samples, got {X.n_observations} and {y.shape[0]}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite labels")
        classes, labels = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"y must contain at least two classes, got only {classes.tolist()}")
        stats = GaussianFamily(X.n_features).label_stats(X.x, labels, classes.size)
        count, mean, scatter = stats["counts"], stats["means"], stats["scatters"]  # (K,), (K, D), (K, D, D)

        if self.estimator == "mle":
            means, covariances = self._mle(count, mean, scatter, classes)
        else:
            prior = prior_model.resolved_prior(X)  # one prior for every class, from all of X
            posterior = prior.update(count, mean, scatter)  # batched over the K classes
            if self.kind == "quadratic":
                means, covariances = posterior.mode()
            else:
                means, covariances = posterior.m, self._shared_covariance(prior, posterior)
        if covariances.ndim == 2:
            covariances = np.broadcast_to(covariances, (classes.size,) + covariances.shape).copy()
        self.classes_ = classes
        self.class_counts_ = count
        self.priors_ = count / count.sum()
        self.means_ = means
        self.covariances_ = covariances
        return self

    def _mle(self, count, mean, scatter, classes):
        if self.kind == "quadratic":
            covariances = []
            for index, label in enumerate(classes):
                try:
                    covariances.append(
                        NIWGaussian._mle_from_stats(count[index], mean[index], scatter[index], advice=_MAP_ADVICE)[1]
                    )
                except ValueError as error:
                    label = label.item() if isinstance(label, np.generic) else label
                    raise ValueError(f"class {label!r}: {error}") from None
            return mean, np.stack(covariances)
        # pooled within-class scatter / N: the MLE of a shared covariance
        return mean, NIWGaussian._mle_from_stats(count.sum(), mean[0], scatter.sum(0), advice=_MAP_ADVICE)[1]

    @staticmethod
    def _shared_covariance(prior: NormalInverseWishart, posterior: NormalInverseWishart) -> np.ndarray:
        """Joint mode of Sigma when K classes share it (regularised LDA).

        With mu_c | Sigma ~ N(m0, Sigma/kappa0) for every class and one Sigma ~ IW(nu0, S0), the
        posterior is proportional to |Sigma|^{-(nu0 + N + D + 1 + K)/2} times
        exp(-tr(Sigma^{-1} [S_shared + sum_c kappa_c (mu_c - m_c)(mu_c - m_c)^T]) / 2), where
        S_shared = S0 + sum_c (S_c - S0) adds each class's posterior update of the scale once.
        The mode is mu_c = m_c, Sigma = S_shared / (nu0 + N + D + 1 + K); for K = 1 this is
        NIW's S_N / (nu_N + D + 2).
        """
        n_classes, dim = posterior.m.shape
        n_total = float(np.sum(posterior.nu - prior.nu))
        S_shared = prior.S + np.sum(posterior.S - prior.S, axis=0)
        return S_shared / (float(prior.nu) + n_total + dim + 1.0 + n_classes)

    # -- prediction -----------------------------------------------------------------------
    def _log_joint(self, X) -> np.ndarray:
        """log pi_c + log N(x | mu_c, Sigma_c), shape (n_samples, K)."""
        self._check_fitted()
        X = self._check_X(X, dim=self.means_.shape[1])
        # the Gaussian family's compiled densities, (n_samples, K)
        log_density = GaussianFamily(X.n_features).log_density(X.x, {"means": self.means_, "covs": self.covariances_})
        return log_density + np.log(self.priors_)

    def predict_log_proba(self, X) -> np.ndarray:
        """log p(y = c | x), shape (n_samples, K), columns in the order of ``classes_``."""
        log_joint = self._log_joint(X)
        return log_joint - special.logsumexp(log_joint, axis=1, keepdims=True)

    def predict_proba(self, X) -> np.ndarray:
        """p(y = c | x), shape (n_samples, K)."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class per sample, shape (n_samples,)."""
        log_joint = self._log_joint(X)
        return self.classes_[np.argmax(log_joint, axis=1)]

    def score(self, X, y) -> float:
        """Accuracy on (X, y)."""
        y = _labels(y)
        predicted = self.predict(X)
        if y.shape != predicted.shape:
            raise ValueError(f"y must have shape {predicted.shape} to match X, got {y.shape}")
        return float(np.mean(predicted == y))


def _labels(y) -> np.ndarray:
    """Class labels as an array; a masked array must have nothing masked (a missing label is not
    a class, and NumPy would silently use the hidden value)."""
    if isinstance(y, np.ma.MaskedArray):
        y = unmasked(y, "y", "label(s)", "GaussianDiscriminantAnalysis needs every label: drop those samples from X "
                     "and y (keep = ~np.ma.getmaskarray(y)) or fill them")
    return np.asarray(y)
