"""Component families against independent references: scipy.stats densities, hand-written sums,
numerical integration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from latentzoo.models.core.conjugate import Beta, Gamma
from latentzoo.models.core.protocols import ComponentFamily
from latentzoo.models.families import BernoulliFamily, PoissonFamily

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


# ----------------------------------------------------------------------------------------
# Poisson counts with Gamma(shape, rate) priors
# ----------------------------------------------------------------------------------------
COUNTS = np.array([3.0, 0.0, 7.0, np.nan, 2.0, 12.0, 1.0])
RATES = np.array([1.5, 8.0])


def reference_poisson_log_density(x, rates):
    """scipy's Poisson log-pmf, row by row and component by component; 0 for a missing count."""
    out = np.zeros((x.size, rates.size))
    for n in range(x.size):
        for k in range(rates.size):
            if not np.isnan(x[n]):
                out[n, k] = stats.poisson.logpmf(int(x[n]), rates[k])
    return out


def test_poisson_is_a_component_family_and_sequence_emissions():
    from latentzoo.models.core.protocols import SequenceEmissions

    family = PoissonFamily(2.0, 0.5)
    assert isinstance(family, ComponentFamily) and isinstance(family, SequenceEmissions)
    assert family.param_dims == {"rates": ()} and family.event_dims == () and family.n_parameters(COUNTS, 3) == 3


def test_poisson_log_density_matches_scipy_and_broadcasts():
    family = PoissonFamily()
    np.testing.assert_allclose(family.log_density(COUNTS, {"rates": RATES}), reference_poisson_log_density(COUNTS, RATES),
                               rtol=1e-12)
    rates = np.random.default_rng(0).uniform(0.1, 20.0, size=(2, 3, 2))
    values = family.log_density(COUNTS, {"rates": rates})
    assert values.shape == (2, 3, COUNTS.size, 2)
    for index in np.ndindex(2, 3):
        np.testing.assert_allclose(values[index], reference_poisson_log_density(COUNTS, rates[index]), rtol=1e-12)
    # a rate of 0 emits only zeros: log 1 for a zero, -inf otherwise
    at_zero = family.log_density(np.array([0.0, 2.0]), {"rates": np.array([0.0])})
    np.testing.assert_array_equal(at_zero[:, 0], [0.0, -np.inf])


def test_poisson_expected_log_density_by_quadrature_and_monte_carlo():
    family = PoissonFamily()
    shape, rate = np.array([4.0, 30.0]), np.array([2.0, 3.5])
    values = family.expected_log_density(COUNTS, {"rates": Gamma(shape, rate)})
    assert values.shape == (COUNTS.size, 2)
    for n, x in enumerate(COUNTS):
        for k in range(2):
            if np.isnan(x):
                assert values[n, k] == 0.0
                continue
            q = stats.gamma(shape[k], scale=1.0 / rate[k])
            reference = integrate.quad(lambda r: q.pdf(r) * stats.poisson.logpmf(int(x), r), 0, np.inf, limit=400)[0]
            assert values[n, k] == pytest.approx(reference, rel=1e-7, abs=1e-9)
    draws = np.random.default_rng(4).gamma(shape[0], 1.0 / rate[0], size=200_000)
    log_density = stats.poisson.logpmf(7, draws)
    assert values[2, 0] == pytest.approx(log_density.mean(), abs=5 * log_density.std() / np.sqrt(draws.size))


def test_poisson_stats_posterior_and_combine():
    family = PoissonFamily(2.0, 0.5)
    weights = np.random.default_rng(2).dirichlet(np.ones(2), size=COUNTS.size)
    result = family.stats(COUNTS, weights)
    observed = ~np.isnan(COUNTS)
    np.testing.assert_allclose(result["counts"], weights[observed].sum(0), rtol=1e-12)
    np.testing.assert_allclose(result["totals"], (COUNTS[observed, None] * weights[observed]).sum(0), rtol=1e-12)
    halves = family.combine_stats([family.stats(COUNTS[:3], weights[:3]), family.stats(COUNTS[3:], weights[3:])])
    for key in result:
        np.testing.assert_allclose(halves[key], result[key], rtol=1e-12)
    labels = np.array([0, 1, 0, 1, 0, 1, 1])
    hard = family.label_stats(COUNTS, labels, 2)
    one_hot = family.stats(COUNTS, np.eye(2)[labels])
    for key in hard:
        np.testing.assert_allclose(hard[key], one_hot[key], rtol=1e-12)
    posterior = family.posterior(hard, 2)["rates"]
    for k in range(2):
        chosen = COUNTS[(labels == k) & observed]
        assert (posterior.shape[k], posterior.rate[k]) == (2.0 + chosen.sum(), 0.5 + chosen.size)
    # maximum likelihood: the flat prior's mode is the mean count of the component
    mle = family.posterior(hard, 2, mle=True)["rates"].mode()
    np.testing.assert_allclose(mle, [COUNTS[(labels == k) & observed].mean() for k in range(2)], rtol=1e-14)


def test_poisson_mle_posterior_refuses_an_empty_component():
    from latentzoo.models.core.base import DegenerateComponentError

    family = PoissonFamily()
    stats_ = family.label_stats(np.array([1.0, 2.0]), np.array([0, 0]), 2)
    with pytest.raises(DegenerateComponentError, match="component 1 has no expected observation"):
        family.posterior(stats_, 2, mle=True)


def test_poisson_log_marginal_in_closed_form():
    """The Gamma-Poisson evidence, from scipy.special term by term, and by quadrature over the rate."""
    a, b = 2.5, 0.4
    family = PoissonFamily(a, b)
    labels = np.array([1, 0, 1, 0, 0, 1, 1])
    per_component = family.log_marginal(family.label_stats(COUNTS, labels, 2), 2)
    assert per_component.shape == (2,)
    value = per_component.sum()
    expected, by_quadrature = 0.0, 0.0
    for k in range(2):
        x = COUNTS[(labels == k) & ~np.isnan(COUNTS)]
        expected += (a * np.log(b) - special.gammaln(a) + special.gammaln(a + x.sum())
                     - (a + x.sum()) * np.log(b + x.size) - special.gammaln(x + 1).sum())
        integrand = lambda r: np.exp(stats.poisson.logpmf(x, r).sum() + stats.gamma.logpdf(r, a, scale=1 / b))  # noqa: E731
        upper = 10.0 * (a + x.sum()) / (b + x.size) + 50.0  # the integrand is negligible beyond
        by_quadrature += np.log(integrate.quad(integrand, 0, upper, limit=400, points=[x.mean()])[0])
    assert value == pytest.approx(expected, rel=1e-12)
    assert value == pytest.approx(by_quadrature, rel=1e-7)
    # batched statistics (one row per assignment), as the exact enumeration passes them
    batch = {key: np.stack([v, v]) for key, v in family.label_stats(COUNTS, labels, 2).items()}
    np.testing.assert_allclose(family.log_marginal(batch, 2), [per_component, per_component], rtol=1e-14)


def test_poisson_log_prior_is_scipy_gamma():
    family = PoissonFamily(2.5, 0.4)
    assert family.log_prior({"rates": RATES}, 2) == pytest.approx(stats.gamma.logpdf(RATES, 2.5, scale=1 / 0.4).sum(), rel=1e-12)


def test_poisson_simulate_and_initial_params():
    family = PoissonFamily()
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 20_000)
    counts = family.simulate({"rates": RATES}, labels, rng)
    assert counts.dtype == np.int64 and counts.shape == (40_000,)
    for k in range(2):
        assert abs(counts[labels == k].mean() - RATES[k]) < 5 * np.sqrt(RATES[k] / 20_000)
    x = family.check_observations(counts)
    params, start_labels = family.initial_params(x, 2, np.random.default_rng(0))
    # k-means++ on two well separated rates: one centre near each
    np.testing.assert_allclose(np.sort(params["rates"]), RATES, rtol=0.3)
    assert start_labels.shape == (40_000,)
    for strategy in ("random", "prior"):
        params, _ = family.initial_params(x, 2, np.random.default_rng(1), strategy)
        assert params["rates"].shape == (2,) and np.all(params["rates"] > 0)


@pytest.mark.parametrize(
    "data, expected",
    [
        ([3, 0, 7], [3, 0, 7]),
        ([3.0, None, 7.0], [3, np.nan, 7]),
        (np.array([[3], [0], [np.nan]]), [3, 0, np.nan]),
        ("3 0 NA 7", [3, 0, np.nan, 7]),
        ([2**40, 1], [2**40, 1]),
    ],
)
def test_poisson_accepted_forms(data, expected):
    x = PoissonFamily().check_observations(data)
    np.testing.assert_array_equal(x, expected)
    assert x.dtype == np.float64 and not x.flags.writeable


def test_poisson_accepts_pandas_series():
    pd = pytest.importorskip("pandas")
    family = PoissonFamily()
    np.testing.assert_array_equal(family.check_observations(pd.Series([1, 4, np.nan])), [1, 4, np.nan])
    np.testing.assert_array_equal(family.check_observations(pd.Series([1, None, 2], dtype="Int64")), [1, np.nan, 2])
    sequences = family.check_sequences([pd.Series([1, 2]), pd.Series([5, np.nan, 0])])
    np.testing.assert_array_equal(sequences.lengths, [2, 3])
    np.testing.assert_array_equal(family.rows(sequences), [1, 2, 5, 0])
    np.testing.assert_array_equal(family.filled_rows(sequences), [1, 2, 5, 0, 0])


@pytest.mark.parametrize(
    "data, error, match",
    [
        ([1, -2, 3], ValueError, r"contains \[-2\] \(first at position 1\).*non-negative integers"),
        ([1, 2.5, 3], ValueError, r"non-integer values \[2.5\] \(first at position 1\)"),
        ([1, np.nan, 0.5], ValueError, r"non-integer values \[0.5\] \(first at position 2\)"),
        ([1, np.inf], ValueError, "infinite values; counts must be"),
        ([1, "a"], TypeError, r"got str 'a' at position 1"),
        ("1 2 x", ValueError, r"got 'x'"),
        ([np.nan, None], ValueError, "every one of the 2 steps is missing"),
        ([1, 2**60], ValueError, r"outside the counts"),
        (np.array([[1, 2], [3, 4]]), ValueError, r"counts of shape \(N,\) or \(N, 1\)"),
        ({"a": 1}, TypeError, "got dict"),
    ],
)
def test_poisson_bad_observations_are_refused(data, error, match):
    with pytest.raises(error, match=match):
        PoissonFamily().check_observations(data)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"shape": 0.0}, ValueError, "shape must be a positive finite number"),
        ({"rate": -1.0}, ValueError, "rate must be a positive finite number"),
        ({"rate": float("inf")}, ValueError, "rate must be a positive finite number"),
        ({"shape": "1"}, TypeError, "shape must be a positive number"),
        ({"shape": True}, TypeError, "shape must be a positive number"),
    ],
)
def test_poisson_bad_hyperparameters_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        PoissonFamily(**kwargs)


def test_poisson_check_params():
    family = PoissonFamily()
    assert family.check_params({"rates": RATES}, 2)["rates"].shape == (2,)
    with pytest.raises(ValueError, match=r"params\['rates'\] must have shape \(3,\)"):
        family.check_params({"rates": RATES}, 3)
    with pytest.raises(ValueError, match=r"init\['rates'\] must be finite and >= 0"):
        family.check_params({"rates": [-1.0, 2.0]}, 2, name="init")
    with pytest.raises(ValueError, match=r"missing \['rates'\]"):
        family.check_params({"lambdas": RATES}, 2)


@pytest.mark.pymc
def test_poisson_pymc_log_density_and_prior_match_numpy():
    import pymc as pm

    family = PoissonFamily(2.5, 0.4)
    x = COUNTS[~np.isnan(COUNTS)]
    with pm.Model(coords={"component": [0, 1]}) as model:
        params = family.pymc_priors(2, "component", x)
        log_density = family.pymc_log_density(x, params)
    np.testing.assert_allclose(log_density.eval({params["rates"]: RATES}), reference_poisson_log_density(x, RATES), rtol=1e-12)
    logp = model.compile_logp(jacobian=False)({"rates_log__": np.log(RATES)})
    assert logp == pytest.approx(stats.gamma.logpdf(RATES, 2.5, scale=1 / 0.4).sum(), rel=1e-10)
    # started apart, increasing with the data's quantiles
    assert np.all(np.diff(params["start_rates"]) > 0)
