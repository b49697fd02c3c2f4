"""Component families against independent references: scipy.stats densities, hand-written sums,
numerical integration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from latentzoo.models.core.conjugate import Beta
from latentzoo.models.core.protocols import ComponentFamily
from latentzoo.models.families import BernoulliFamily

X = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 1, 0], [1, 0, 0]], dtype=float)
X_MISSING = np.array([[1, np.nan, 1], [0, 0, 1], [np.nan, np.nan, np.nan], [0, 1, 0], [1, 0, np.nan]])
PROBS = np.array([[0.2, 0.7, 0.9], [0.6, 0.3, 0.1]])


def reference_log_density(x, probs):
    """sum over the observed features of scipy's Bernoulli log-pmf, row by row and component by
    component (plain loops)."""
    out = np.zeros((x.shape[0], probs.shape[0]))
    for n in range(x.shape[0]):
        for k in range(probs.shape[0]):
            for d in range(x.shape[1]):
                if not np.isnan(x[n, d]):
                    out[n, k] += stats.bernoulli.logpmf(int(x[n, d]), probs[k, d])
    return out


def test_it_is_a_component_family():
    assert isinstance(BernoulliFamily(3), ComponentFamily)


@pytest.mark.parametrize("x", [X, X_MISSING], ids=["complete", "missing"])
def test_log_density_matches_scipy(x):
    family = BernoulliFamily(3)
    np.testing.assert_allclose(family.log_density(x, {"probs": PROBS}), reference_log_density(x, PROBS), rtol=1e-12)


def test_log_density_broadcasts_over_batch_dims():
    family = BernoulliFamily(3)
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.05, 0.95, size=(2, 4, 2, 3))
    values = family.log_density(X_MISSING, {"probs": probs})
    assert values.shape == (2, 4, 5, 2)
    for index in np.ndindex(2, 4):
        np.testing.assert_allclose(values[index], reference_log_density(X_MISSING, probs[index]), rtol=1e-12)


def test_probabilities_at_the_boundary_follow_zero_log_zero():
    family = BernoulliFamily(2)
    x = np.array([[1.0, 0.0], [0.0, 0.0], [np.nan, 1.0]])
    probs = np.array([[0.0, 0.5], [1.0, 1.0]])
    # by hand: component 0 cannot make a one in feature 0; component 1 cannot make a zero anywhere
    expected = np.array([[-np.inf, -np.inf], [np.log(0.5), -np.inf], [np.log(0.5), 0.0]])
    np.testing.assert_array_equal(family.log_density(x, {"probs": probs}), expected)


def test_expected_log_density_by_digamma():
    family = BernoulliFamily(3)
    alpha = np.array([[2.0, 3.0, 1.5], [4.0, 1.0, 2.5]])
    beta = np.array([[1.0, 2.0, 3.5], [0.5, 2.0, 1.0]])
    values = family.expected_log_density(X_MISSING, {"probs": Beta(alpha, beta)})
    e_log_p = special.digamma(alpha) - special.digamma(alpha + beta)
    e_log_q = special.digamma(beta) - special.digamma(alpha + beta)
    expected = np.zeros((5, 2))
    for n in range(5):
        for k in range(2):
            for d in range(3):
                if X_MISSING[n, d] == 1:
                    expected[n, k] += e_log_p[k, d]
                elif X_MISSING[n, d] == 0:
                    expected[n, k] += e_log_q[k, d]
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    # and by Monte Carlo at one (row, component): E over Beta draws of the log-density
    rng = np.random.default_rng(1)
    draws = rng.beta(alpha[1], beta[1], size=(200_000, 3))
    log_density = np.log(draws[:, 0]) + np.log(draws[:, 2])  # row 0: ones at features 0 and 2
    assert values[0, 1] == pytest.approx(log_density.mean(), abs=5 * log_density.std() / np.sqrt(draws.shape[0]))


def test_stats_are_weighted_counts_of_observed_ones_and_zeros():
    family = BernoulliFamily(3)
    weights = np.random.default_rng(2).dirichlet(np.ones(2), size=5)
    result = family.stats(X_MISSING, weights)
    ones, zeros = np.zeros((2, 3)), np.zeros((2, 3))
    for n in range(5):
        for d in range(3):
            if X_MISSING[n, d] == 1:
                ones[:, d] += weights[n]
            elif X_MISSING[n, d] == 0:
                zeros[:, d] += weights[n]
    np.testing.assert_allclose(result["ones"], ones, rtol=1e-12)
    np.testing.assert_allclose(result["zeros"], zeros, rtol=1e-12)
    halves = [family.stats(X_MISSING[:2], weights[:2]), family.stats(X_MISSING[2:], weights[2:])]
    combined = family.combine_stats(halves)
    np.testing.assert_allclose(combined["ones"], ones, rtol=1e-12)


def test_posterior_is_beta_with_counts_added():
    family = BernoulliFamily(3, a=2.0, b=3.0)
    labels = np.array([0, 1, 0, 0, 1])
    posterior = family.posterior(family.label_stats(X, labels, 2), 2)["probs"]
    for k in range(2):
        rows = X[labels == k]
        np.testing.assert_allclose(posterior.alpha[k], 2.0 + rows.sum(0))
        np.testing.assert_allclose(posterior.beta[k], 3.0 + (1 - rows).sum(0))
    # maximum likelihood: the flat prior's mode is the frequency
    flat = family.posterior(family.stats(X, np.eye(2)[labels]), 2, mle=True)["probs"]
    np.testing.assert_allclose(flat.mode()[0], X[labels == 0].mean(0))


def test_log_marginal_likelihood_by_numerical_integration():
    family = BernoulliFamily(2, a=1.5, b=0.7)
    x = np.array([[1.0, 0.0], [1.0, np.nan], [0.0, 0.0]])
    labels = np.array([0, 0, 1])
    value = family.log_marginal(family.stats(x, np.eye(2)[labels]), 2).sum()
    total = 0.0
    for k in range(2):
        for d in range(2):
            column = x[labels == k, d]
            column = column[~np.isnan(column)]
            h, t = column.sum(), (1 - column).sum()
            integral, _ = integrate.quad(lambda p: p**h * (1 - p) ** t * stats.beta.pdf(p, 1.5, 0.7), 0, 1)
            total += np.log(integral)
    assert value == pytest.approx(total, rel=1e-7)


def test_simulate_has_the_component_frequencies():
    family = BernoulliFamily(3)
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 20_000)
    rows = family.simulate({"probs": PROBS}, labels, rng)
    assert rows.shape == (40_000, 3) and set(np.unique(rows)) <= {0, 1}
    for k in range(2):
        frequency = rows[labels == k].mean(0)
        standard_error = np.sqrt(PROBS[k] * (1 - PROBS[k]) / 20_000)
        assert np.all(np.abs(frequency - PROBS[k]) < 5 * standard_error)
    family.check_observations(rows)  # in the form the family accepts


def test_initial_params_spread_over_distinct_clusters():
    family = BernoulliFamily(6)
    # two clusters that share no feature: every start must put one centre in each
    x = np.vstack([np.tile([1, 1, 1, 0, 0, 0], (10, 1)), np.tile([0, 0, 0, 1, 1, 1], (10, 1))]).astype(float)
    for seed in range(5):
        probs = family.initial_params(x, 2, np.random.default_rng(seed))[0]["probs"]
        assert probs.shape == (2, 6) and np.all((probs > 0) & (probs < 1))
        # (10 + 1) / (10 + 2) on the cluster's features, 1 / 12 elsewhere
        high = np.sort(probs[:, 0])
        np.testing.assert_allclose(high, [1 / 12, 11 / 12])


@pytest.mark.parametrize(
    "data, expected",
    [
        ([[True, False], [False, False]], [[1, 0], [0, 0]]),
        (np.array([[1, 0], [0, 1]], dtype=np.int64), [[1, 0], [0, 1]]),
        (np.array([[1.0, np.nan]]), [[1, np.nan]]),
    ],
)
def test_accepted_forms(data, expected):
    x = BernoulliFamily(2).check_observations(data)
    np.testing.assert_array_equal(x, expected)
    assert x.dtype == np.float64 and not x.flags.writeable


def test_accepts_a_pandas_dataframe():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 0, 1], "b": [0.0, np.nan, 1.0]})
    np.testing.assert_array_equal(BernoulliFamily(2).check_observations(frame), [[1, 0], [0, np.nan], [1, 1]])


@pytest.mark.parametrize(
    "data, error, match",
    [
        ([[0, 1], [2, 0]], ValueError, r"found 2 at row 1, column 0"),
        ([[0, 0.5]], ValueError, r"found 0.5 at row 0, column 1"),
        ([[0, -1.0]], ValueError, r"found -1.0 at row 0, column 1"),
        ([[0, np.inf]], ValueError, r"found inf at row 0, column 1"),
        ([0, 1], ValueError, r"2-D array \(n_observations, n_features\), got shape \(2,\)"),
        (np.zeros((0, 2)), ValueError, "at least one observation"),
        ([[0, 1, 1]], ValueError, "data have 3 features .* n_features = 2"),
        ([["0", "1"]], TypeError, "array of binary features"),
        ("01", TypeError, "array of binary features"),
        (None, TypeError, "array of binary features"),
    ],
)
def test_bad_observations_are_refused(data, error, match):
    with pytest.raises(error, match=match):
        BernoulliFamily(2).check_observations(data)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_features": 0}, ValueError, "n_features must be an int >= 1"),
        ({"n_features": 2.0}, TypeError, "n_features must be an int"),
        ({"n_features": 2, "a": 0.0}, ValueError, "a must be a positive finite number"),
        ({"n_features": 2, "b": float("nan")}, ValueError, "b must be a positive finite number"),
        ({"n_features": 2, "a": "1"}, TypeError, "a must be a positive number"),
    ],
)
def test_bad_hyperparameters_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        BernoulliFamily(**kwargs)


def test_check_params():
    family = BernoulliFamily(3)
    assert family.check_params({"probs": PROBS}, 2)["probs"].shape == (2, 3)
    with pytest.raises(ValueError, match=r"params\['probs'\] must have shape \(2, 3\)"):
        family.check_params({"probs": PROBS.T}, 2)
    with pytest.raises(ValueError, match=r"init\['probs'\] must lie in \[0, 1\]"):
        family.check_params({"probs": PROBS + 0.5}, 2, name="init")
    with pytest.raises(ValueError, match=r"missing \['probs'\]"):
        family.check_params({"p": PROBS}, 2)


@pytest.mark.pymc
def test_pymc_log_density_and_prior_match_numpy():
    import pymc as pm

    family = BernoulliFamily(3, a=2.0, b=1.5)
    with pm.Model(coords={"component": [0, 1], "feature": [0, 1, 2]}) as model:
        params = family.pymc_priors(2, "component")
        log_density = family.pymc_log_density(X_MISSING, params)
    value = log_density.eval({params["probs"]: PROBS})
    np.testing.assert_allclose(value, reference_log_density(X_MISSING, PROBS), rtol=1e-12)
    logp = model.compile_logp(jacobian=False)({"probs_logodds__": special.logit(PROBS)})
    assert logp == pytest.approx(stats.beta.logpdf(PROBS, 2.0, 1.5).sum(), rel=1e-10)
