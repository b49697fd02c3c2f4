"""Bernoulli components over D binary features, with an independent Beta prior per feature.

Component ``k`` gives observation ``x_n`` (a vector of D zeros and ones) the probability

    p(x_n | probs_k) = prod_d probs_kd^x_nd (1 - probs_kd)^(1 - x_nd),
    probs_kd ~ Beta(a, b)                     independently for every component and feature,

so the sufficient statistics of a component are, per feature, the (weighted) numbers of ones and
zeros it was given, and the posterior is ``Beta(a + ones, b + zeros)`` feature by feature.

Missing features
----------------
A NaN entry is a feature that was not observed: it is skipped in the density (its factor is 1)
and in the statistics (it counts as neither a one nor a zero). A row of NaNs therefore has log
density 0 under every component and constrains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from ..core.base import PYMC_START_FLOOR, check_param_keys, check_positive, numeric_array
from ..core.conjugate import Beta
from ..core.sizes import check_count, check_parameter_size
from ..core.stats_combine import sum_stats
from .checks import split_missing

__all__ = ["BernoulliFamily"]

#: the k-means++ candidates' cluster frequencies are smoothed by this many pseudo-counts of each
#: value, so that no starting probability is 0 or 1 (where the log-density is -inf)
START_PSEUDO_COUNT = 1.0


@dataclass(frozen=True)
class BernoulliFamily:
    """Bernoulli components over ``n_features`` binary features with Beta(a, b) priors.

    Parameters
    ----------
    n_features : int
        D >= 1, the length of every observation.
    a, b : float, default 1.0
        The Beta prior of every ``probs[k, d]`` (``a`` counts ones, ``b`` zeros); > 0.

    Notes
    -----
    Parameters: ``probs`` of shape (K, D) (dims ``(label_dim, "feature")``). Observations: an
    (N, D) array of 0/1 (bool, int or float), or a pandas DataFrame of such columns; NaN marks a
    missing feature (see the module docstring).
    """

    n_features: int
    a: float = 1.0
    b: float = 1.0

    param_dims = {"probs": ("feature",)}
    prior_key = "probs"
    allows_missing = True
    event_dims = ("feature",)
    start_strategies = ("kmeans++",)

    def __post_init__(self):
        object.__setattr__(self, "n_features", check_count(self.n_features, "n_features", 1))
        for name in ("a", "b"):
            object.__setattr__(self, name, check_positive(getattr(self, name), f"the Beta prior's {name}"))

    # -- observations ---------------------------------------------------------------------
    def check_observations(self, data) -> np.ndarray:
        """Validate binary rows.

        Parameters
        ----------
        data : array-like of shape (N, D) or pandas.DataFrame
            Zeros and ones (bool, int or float); NaN marks a missing feature.

        Returns
        -------
        ndarray of shape (N, D), float64, read-only

        Raises
        ------
        TypeError
            For text, objects or complex numbers.
        ValueError
            For another shape than (N, D) with N >= 1 and D = ``n_features``, or a value other
            than 0, 1 or NaN (the message names its row and column).
        """
        if hasattr(data, "to_numpy") and hasattr(data, "columns"):  # a pandas DataFrame
            data = data.to_numpy()
        array = np.asarray(data) if not isinstance(data, str | bytes) else None
        if array is None or array.dtype.kind not in "biuf":
            raise TypeError(
                "data must be an (N, D) array of binary features (0/1 as bool, int or float; NaN for missing), "
                f"got {type(data).__name__}" + (f" of dtype {array.dtype}" if array is not None else "")
            )
        if array.ndim != 2:
            raise ValueError(f"data must be a 2-D array (n_observations, n_features), got shape {array.shape}")
        if array.shape[0] == 0:
            raise ValueError("data must contain at least one observation (row), got none")
        if array.shape[1] != self.n_features:
            raise ValueError(f"data have {array.shape[1]} features (columns), but n_features = {self.n_features}")
        x = array.astype(np.float64)  # a copy: the caller's array is never shared
        bad = ~((x == 0.0) | (x == 1.0) | np.isnan(x))
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"data must hold binary features (0 or 1; NaN for a missing feature), found {array[row, column].item()!r} "
                f"at row {row}, column {column} ({int(bad.sum())} such value(s))"
            )
        x.flags.writeable = False
        return x

    def coords(self, observations) -> dict[str, list]:
        return {"feature": list(range(self.n_features))}

    # -- parameters and priors ------------------------------------------------------------
    def check_params(self, params: dict, n_components: int, name: str = "params") -> dict:
        """``{"probs": (*batch, K, D)}`` with every entry in [0, 1], or an error naming ``name``."""
        check_param_keys(params, ["probs"], name)
        K, D = n_components, self.n_features
        probs = numeric_array(params["probs"], f"{name}['probs']", f"a ({K}, {D}) array of probabilities")
        if probs.ndim < 2 or probs.shape[-2:] != (K, D):
            raise ValueError(f"{name}['probs'] must have shape ({K}, {D}), got {probs.shape}")
        if not np.all((probs >= 0) & (probs <= 1)):
            raise ValueError(f"{name}['probs'] must lie in [0, 1], got values from {np.nanmin(probs):.3g} to {np.nanmax(probs):.3g}")
        return {"probs": probs}

    def prior(self, n_components: int) -> dict:
        """``{"probs": Beta}`` of batch shape (K, D)."""
        check_parameter_size({"n_components": n_components, "n_features": self.n_features}, "the table probs")
        shape = (n_components, self.n_features)
        return {"probs": Beta(np.full(shape, self.a), np.full(shape, self.b))}

    def flat_prior(self, n_components: int) -> dict:
        """Beta(1, 1) everywhere: its mode given counts is the maximum-likelihood frequency."""
        shape = (n_components, self.n_features)
        return {"probs": Beta(np.ones(shape), np.ones(shape))}

    def n_parameters(self, observations, n_components: int) -> int:
        """Free parameters: D probabilities per component."""
        return n_components * self.n_features

    def log_prior(self, params: dict, n_components: int) -> np.ndarray:
        """``sum_kd log Beta(probs_kd | a, b)``, shape of the parameters' batch dims."""
        return self.prior(n_components)["probs"].log_pdf(np.asarray(params["probs"], float)).sum(axis=(-2, -1))

    # -- densities --------------------------------------------------------------------------
    def log_density(self, observations, params: dict) -> np.ndarray:
        """``log p(x_n | probs_k)``, shape (*batch, N, K), skipping missing features.

        A probability of exactly 0 (1) gives -inf to the rows with a one (zero) there and
        nothing to the others (0 log 0 = 0).
        """
        ones, observed = split_missing(observations)
        probs = np.asarray(params["probs"], float)
        with np.errstate(divide="ignore"):
            log_p, log_q = np.log(probs), np.log1p(-probs)
        return _product(ones, log_p) + _product(observed - ones, log_q)

    def expected_log_density(self, observations, factors: dict) -> np.ndarray:
        """``E_q[log p(x_n | probs_k)]`` under Beta factors ``q(probs)`` (batch (K, D)), shape (N, K):
        ``sum_d x_nd E[log p_kd] + (1 - x_nd) E[log(1 - p_kd)]`` over the observed features."""
        ones, observed = split_missing(observations)
        e_log_p, e_log_q = factors["probs"].expected_log()
        return ones @ e_log_p.T + (observed - ones) @ e_log_q.T

    # -- statistics and posteriors ----------------------------------------------------------
    def stats(self, observations, weights: np.ndarray) -> dict:
        """``{"ones", "zeros"}`` of shape (K, D): the weighted numbers of observed ones and zeros
        of every feature, per column of ``weights`` (N, K)."""
        ones, observed = split_missing(observations)
        weights = np.asarray(weights, float)
        return {"ones": weights.T @ ones, "zeros": weights.T @ (observed - ones)}

    def label_stats(self, observations, labels: np.ndarray, n_components: int) -> dict:
        """:meth:`stats` of hard labels (ints (N,))."""
        return self.stats(observations, np.eye(n_components)[np.asarray(labels)])

    def combine_stats(self, parts: list) -> dict:
        """Counts of disjoint parts of the data add."""
        return sum_stats(parts)

    def posterior(self, stats: dict, n_components: int, mle: bool = False) -> dict:
        """``{"probs": Beta(a + ones, b + zeros)}`` (Beta(1 + ones, 1 + zeros) if ``mle``; the
        statistics may carry leading batch dims)."""
        prior = self.flat_prior(n_components) if mle else self.prior(n_components)
        return {"probs": prior["probs"].update(stats["ones"], stats["zeros"])}

    def log_marginal(self, stats: dict, n_components: int) -> np.ndarray:
        """``log int prod_n p(x_n | probs) p(probs) dprobs`` of the observations behind complete
        (one-hot) ``stats``: ``sum_d log B(a + ones, b + zeros) - log B(a, b)``, shape
        ``(*batch, K)`` for statistics with leading batch dims."""
        beta = self.prior(n_components)["probs"]
        terms = special.betaln(beta.alpha + stats["ones"], beta.beta + stats["zeros"]) - special.betaln(beta.alpha, beta.beta)
        return terms.sum(axis=-1)

    # -- simulation and starting points -------------------------------------------------------
    def simulate(self, params: dict, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One row of D zeros and ones per label, shape (len(labels), D), int8."""
        probs = np.asarray(params["probs"], float)[np.asarray(labels)]
        return (rng.random(probs.shape) < probs).astype(np.int8)

    def initial_params(self, observations, n_components: int, rng: np.random.Generator, strategy: str = "kmeans++"):
        """``(params, labels)``: a start spread over the data: K rows chosen by k-means++ seeding (each next row drawn
        with probability proportional to its squared distance, the number of differing features,
        to the nearest row chosen so far; missing features filled with the column frequency),
        every row given to its nearest chosen row, and ``probs`` the clusters' frequencies
        smoothed by one pseudo-count of each value (so strictly inside (0, 1)). ``"prior"``: a
        draw from the Beta priors, kept off 0 and 1 (no labels)."""
        if strategy == "prior":
            probs = self.prior(n_components)["probs"].sample(rng)
            return {"probs": np.clip(probs, PYMC_START_FLOOR, 1.0 - PYMC_START_FLOOR)}, None
        if strategy not in self.start_strategies:
            raise ValueError(f"init strategy must be one of {[*self.start_strategies, 'prior']}, got {strategy!r}")
        ones, observed = split_missing(observations)
        n_rows = ones.shape[0]
        frequency = ones.sum(0) / np.maximum(observed.sum(0), 1.0)
        filled = np.where(observed > 0, ones, frequency)
        centres = [filled[rng.integers(n_rows)]]
        distances = ((filled - centres[0]) ** 2).sum(1)
        for _ in range(1, n_components):
            total = distances.sum()
            index = rng.choice(n_rows, p=distances / total) if total > 0 else rng.integers(n_rows)
            centres.append(filled[index])
            distances = np.minimum(distances, ((filled - filled[index]) ** 2).sum(1))
        centres = np.stack(centres)
        squared = (filled**2).sum(1)[:, None] - 2.0 * filled @ centres.T + (centres**2).sum(1)[None, :]
        labels = np.argmin(squared, axis=1)
        assignment = np.eye(n_components)[labels]
        counts = self.stats(observations, assignment)
        # an empty cluster (two equal centres) keeps its centre as its single member
        empty = assignment.sum(0) == 0
        counts["ones"][empty] = centres[empty]
        counts["zeros"][empty] = 1.0 - centres[empty]
        c = START_PSEUDO_COUNT
        return {"probs": (counts["ones"] + c) / (counts["ones"] + counts["zeros"] + 2.0 * c)}, labels

    # -- PyMC ------------------------------------------------------------------------------------
    def pymc_initial_point(self, params: dict) -> dict:
        # off 0 and 1, where the logit transform is infinite (an EM mode can sit there)
        return {"probs": np.clip(np.asarray(params["probs"], float), PYMC_START_FLOOR, 1 - PYMC_START_FLOOR)}

    def pymc_priors(self, n_components: int, label_dim: str, observations=None) -> dict:
        """``{"probs": pm.Beta(a, b)}`` of shape (K, D) with dims ``(label_dim, "feature")``, inside
        a ``pm.Model``, started at a deterministic spread start on ``observations`` (seeded here,
        not by the fit): the components' prior means coincide, a saddle where gradients cannot
        tell the components apart."""
        import pymc as pm

        from ..ops.pymc_data import hyperparameter

        shape = (n_components, self.n_features)
        start = None
        if observations is not None:
            start = np.asarray(self.initial_params(observations, n_components, np.random.default_rng(0))[0]["probs"], np.float64)
        probs = pm.Beta(
            "probs", alpha=hyperparameter("probs_prior_a", np.full(shape, self.a)),
            beta=hyperparameter("probs_prior_b", np.full(shape, self.b)),
            dims=(label_dim, "feature"), initval=start,
        )
        return {"probs": probs}

    def pymc_log_density(self, observations, params: dict):
        """``log p(x_n | probs_k)`` as a PyTensor expression of shape (N, K), missing features
        skipped; ``observations`` may be an array or a tensor (a data container)."""
        import pytensor.tensor as pt

        x = pt.as_tensor_variable(observations)
        missing = pt.isnan(x)
        ones = pt.switch(missing, 0.0, x)
        zeros = pt.switch(missing, 0.0, 1.0 - x)
        probs = params["probs"]
        return pt.dot(ones, pt.log(probs).T) + pt.dot(zeros, pt.log1p(-probs).T)


def _product(weights: np.ndarray, log_values: np.ndarray) -> np.ndarray:
    """``weights @ log_values^T`` over the features, (N, D) x (*batch, K, D) -> (*batch, N, K),
    with 0 x (-inf) = 0: a feature a row does not have never counts against it."""
    finite = np.isfinite(log_values)
    product = weights @ np.swapaxes(np.where(finite, log_values, 0.0), -1, -2)
    if not finite.all():
        impossible = (weights @ np.swapaxes((~finite).astype(float), -1, -2)) > 0
        product = np.where(impossible, -np.inf, product)
    return product
