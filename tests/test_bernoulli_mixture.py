"""BernoulliMixture (FiniteMixture + BernoulliFamily) against independent references: a direct
NumPy likelihood, an EM written here, brute force over every assignment with Beta/Dirichlet
integrals (scipy.special.betaln), and the PyMC declaration's own log-density."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import special
from scipy.optimize import linear_sum_assignment

from latentzoo.inference import ConvergenceWarning, choose_n_components, fit
from latentzoo.models import MODELS, BernoulliMixture
from latentzoo.models.core.base import DegenerateComponentError
from latentzoo.models.core.protocols import SelectableSize
from latentzoo.models.datasets import digits_binary

TRUE = {"weights": np.array([0.5, 0.3, 0.2]),
        "probs": np.array([[0.9, 0.8, 0.1, 0.1, 0.7, 0.2],
                           [0.1, 0.2, 0.9, 0.8, 0.5, 0.1],
                           [0.5, 0.9, 0.9, 0.1, 0.1, 0.9]])}

#: the tiny set of the exact tests: N = 6 rows, D = 2 features, one missing entry
TINY = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [1, np.nan], [0, 0]], dtype=float)
TINY_MODEL = BernoulliMixture(2, 2, probs_prior=(1.5, 1.0), weights_prior=(2.0, 1.0))


def simulated(n, seed, params=TRUE):
    """Rows drawn with plain NumPy (independently of the model's simulate)."""
    rng = np.random.default_rng(seed)
    z = rng.choice(len(params["weights"]), size=n, p=params["weights"])
    return (rng.random((n, params["probs"].shape[1])) < params["probs"][z]).astype(float), z


def direct_log_likelihood(x, weights, probs):
    """log sum_k w_k prod_d p_kd^x (1 - p_kd)^(1 - x) over the observed features, row by row."""
    out = np.empty(x.shape[0])
    for n, row in enumerate(x):
        seen = ~np.isnan(row)
        per_component = [weights[k] * np.prod(np.where(row[seen] == 1, probs[k, seen], 1 - probs[k, seen]))
                         for k in range(len(weights))]
        out[n] = np.log(sum(per_component))
    return out


def independent_em(x, weights, probs, n_iter, a=1.0, b=1.0, alpha=1.0):
    """EM for a Bernoulli mixture (Bishop 2006, eq. 9.56-9.60), MAP under Beta(a, b) and a symmetric
    Dirichlet(alpha) (a = b = alpha = 1: maximum likelihood); complete rows only. Returns the
    parameters after ``n_iter`` M-steps, and the log-likelihoods and log posteriors before each
    and after the last."""
    log_likelihoods, objectives = [], []
    K = len(weights)
    log_normaliser = special.gammaln(K * alpha) - K * special.gammaln(alpha) - probs.size * special.betaln(a, b)
    for iteration in range(n_iter + 1):
        log_joint = np.log(weights) + x @ np.log(probs).T + (1 - x) @ np.log(1 - probs).T
        log_norm = special.logsumexp(log_joint, axis=1)
        log_prior = ((alpha - 1) * np.log(weights)).sum() + ((a - 1) * np.log(probs) + (b - 1) * np.log(1 - probs)).sum()
        log_likelihoods.append(log_norm.sum())
        objectives.append(log_norm.sum() + log_prior + log_normaliser)
        if iteration == n_iter:
            break
        resp = np.exp(log_joint - log_norm[:, None])
        counts = resp.sum(0)
        weights = (counts + alpha - 1) / (x.shape[0] + len(counts) * (alpha - 1))
        probs = (resp.T @ x + a - 1) / (counts[:, None] + a + b - 2)
    return weights, probs, np.array(log_likelihoods), np.array(objectives)


def matched(reference, estimate):
    """``estimate``'s components permuted to best match ``reference`` (K, D) (Hungarian)."""
    cost = ((reference[:, None, :] - estimate[None, :, :]) ** 2).sum(-1)
    return linear_sum_assignment(cost)[1]


# -- likelihood ----------------------------------------------------------------------------------
def test_log_likelihood_matches_a_direct_computation():
    x, _ = simulated(40, seed=0)
    x[3, 2] = np.nan
    x[7] = np.nan  # a row with nothing observed: log-likelihood 0
    model = BernoulliMixture(3, 6)
    values = model.log_likelihood(x, TRUE)
    np.testing.assert_allclose(values, direct_log_likelihood(x, TRUE["weights"], TRUE["probs"]), rtol=1e-12, atol=1e-14)
    assert abs(values[7]) < 1e-14
    # batched over (chain, draw)
    rng = np.random.default_rng(1)
    weights = rng.dirichlet(np.ones(3), size=(2, 5))
    probs = rng.uniform(0.05, 0.95, size=(2, 5, 3, 6))
    batched = model.log_likelihood(x, {"weights": weights, "probs": probs})
    assert batched.shape == (2, 5, 40)
    np.testing.assert_allclose(batched[1, 3], direct_log_likelihood(x, weights[1, 3], probs[1, 3]), rtol=1e-12, atol=1e-14)
    resp = model.responsibilities(x, {"weights": weights, "probs": probs})
    assert resp.shape == (2, 5, 40, 3)
    np.testing.assert_allclose(resp.sum(-1), 1.0)


def test_log_prior_is_dirichlet_plus_betas():
    from scipy import stats

    model = BernoulliMixture(3, 6, probs_prior=(2.0, 3.0), weights_prior=1.5)
    expected = stats.dirichlet.logpdf(TRUE["weights"], [1.5] * 3) + stats.beta.logpdf(TRUE["probs"], 2.0, 3.0).sum()
    assert model.log_prior(TRUE) == pytest.approx(expected, rel=1e-12)


# -- EM --------------------------------------------------------------------------------------------
def test_maximum_likelihood_em_equals_an_independent_em():
    x, _ = simulated(300, seed=2)
    model = BernoulliMixture(3, 6)
    start = model.initial_params(x, np.random.default_rng(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(model, x, backend="em", mle=True, init=start, n_init=1, tol=0, max_iter=60, progressbar=False)
    weights, probs, log_likelihoods, _ = independent_em(x, start["weights"], start["probs"], 60)
    np.testing.assert_allclose(result.posterior["weights"].values[0, 0], weights, atol=1e-8)
    np.testing.assert_allclose(result.posterior["probs"].values[0, 0], probs, atol=1e-8)
    np.testing.assert_allclose(result.fit_history["log_likelihood"].values[0], log_likelihoods, rtol=1e-10)


def test_map_em_is_monotone_and_matches_an_independent_map_em():
    x, _ = simulated(200, seed=4)
    model = BernoulliMixture(3, 6, probs_prior=(2.0, 2.0), weights_prior=2.0)
    start = model.initial_params(x, np.random.default_rng(5))
    result = fit(model, x, backend="em", init=start, n_init=1, tol=1e-12, progressbar=False)
    history = result.fit_history["log_posterior"].values[0]
    history = history[np.isfinite(history)]
    n_iter = history.size - 1
    weights, probs, _, objectives = independent_em(x, start["weights"], start["probs"], n_iter, a=2.0, b=2.0, alpha=2.0)
    assert np.all(np.diff(objectives) >= -1e-9 * np.abs(objectives[1:]))  # the independent EM is monotone ...
    np.testing.assert_allclose(history, objectives, rtol=1e-10)  # ... and so is the model's, the same values
    np.testing.assert_allclose(result.posterior["probs"].values[0, 0], probs, atol=1e-8)


def test_em_recovers_well_separated_components():
    x, _ = simulated(2000, seed=6)
    result = fit(BernoulliMixture(3, 6), x, backend="em", random_seed=0, progressbar=False)
    probs = result.posterior["probs"].values[0, 0]
    order = matched(TRUE["probs"], probs)
    np.testing.assert_allclose(probs[order], TRUE["probs"], atol=0.06)
    np.testing.assert_allclose(result.posterior["weights"].values[0, 0][order], TRUE["weights"], atol=0.04)


def test_hard_assignment_em_never_decreases_its_objective():
    x, _ = simulated(200, seed=7)
    result = fit(BernoulliMixture(3, 6), x, backend="em", assignment="hard", random_seed=1, progressbar=False)
    history = result.fit_history["classification_log_posterior"].values
    for row in history:
        row = row[np.isfinite(row)]
        assert np.all(np.diff(row) >= -1e-9 * np.abs(row[1:]))


def test_maximum_likelihood_with_an_empty_component_says_so():
    x = np.array([[1, 1], [1, 1], [0, 0]], dtype=float)
    model = BernoulliMixture(2, 2)
    stats = {"component_counts": np.array([3.0, 0.0]), "ones": np.zeros((2, 2)), "zeros": np.zeros((2, 2))}
    with pytest.raises(DegenerateComponentError, match="component 1 is empty"):
        model.conditional_posterior(stats, mle=True)
    assert model.check_data(x).n_observations == 3


# -- exact ---------------------------------------------------------------------------------------------
def brute_force(x, a, b, alpha):
    """log p(x) and posterior means of weights and probs by summing over all K^N assignments,
    each with its Dirichlet and Beta integrals (betaln), K = 2."""
    alpha = np.asarray(alpha, float)
    log_terms, weight_means, probs_means = [], [], []
    for z in itertools.product(range(2), repeat=x.shape[0]):
        z = np.array(z)
        counts = np.bincount(z, minlength=2)
        log_p_z = (special.gammaln(alpha + counts).sum() - special.gammaln((alpha + counts).sum())
                   - special.gammaln(alpha).sum() + special.gammaln(alpha.sum()))
        log_p_x = 0.0
        probs_mean = np.empty((2, x.shape[1]))
        for k in range(2):
            for d in range(x.shape[1]):
                column = x[z == k, d]
                ones, zeros = np.nansum(column == 1), np.nansum(column == 0)
                log_p_x += special.betaln(a + ones, b + zeros) - special.betaln(a, b)
                probs_mean[k, d] = (a + ones) / (a + b + ones + zeros)
        log_terms.append(log_p_z + log_p_x)
        weight_means.append((alpha + counts) / (alpha + counts).sum())
        probs_means.append(probs_mean)
    log_terms = np.array(log_terms)
    w = np.exp(log_terms - special.logsumexp(log_terms))
    return special.logsumexp(log_terms), np.tensordot(w, weight_means, 1), np.tensordot(w, probs_means, 1)


def test_exact_posterior_equals_brute_force():
    log_evidence, weights_mean, probs_mean = brute_force(TINY, 1.5, 1.0, (2.0, 1.0))
    posterior = TINY_MODEL.exact_posterior(TINY)
    assert posterior.n_components < 2 ** TINY.shape[0]  # grouped, not one term per assignment
    assert posterior.log_evidence == pytest.approx(log_evidence, rel=1e-12)
    means = posterior.mean()
    np.testing.assert_allclose(means["weights"], weights_mean, rtol=1e-10)
    np.testing.assert_allclose(means["probs"], probs_mean, rtol=1e-10)
    result = fit(TINY_MODEL, TINY, backend="exact", random_seed=0, draws=200)
    assert result.attrs["log_evidence"] == pytest.approx(log_evidence, rel=1e-12)


def test_exact_posterior_refuses_large_data():
    x = digits_binary()[0][:200]
    with pytest.raises(ValueError, match="use backend='gibbs' or 'nuts'"):
        BernoulliMixture(10).exact_posterior(x)


def mixture_frequency(weights, probs):
    """sum_k w_k p_kd (..., D): the model's marginal frequency of each feature, a quantity that does
    not depend on the labelling (so samplers that switch labels can be compared)."""
    return np.einsum("...k,...kd->...d", weights, probs)


def exact_frequency_moments():
    draws = TINY_MODEL.exact_posterior(TINY).sample(np.random.default_rng(11), 400_000)
    values = mixture_frequency(draws["weights"], draws["probs"])
    return values.mean(0), values.std(0)


def monte_carlo_error(values):
    """Standard error of the mean of ``values`` (chain, draw, ...) by batch means (20 batches per
    chain), which accounts for autocorrelation."""
    chains, draws = values.shape[:2]
    batches = values.reshape(chains, 20, draws // 20, *values.shape[2:]).mean(2).reshape(chains * 20, *values.shape[2:])
    return batches.std(0, ddof=1) / np.sqrt(batches.shape[0])


def test_gibbs_agrees_with_exact():
    exact_mean, _ = exact_frequency_moments()
    result = fit(TINY_MODEL, TINY, backend="gibbs", random_seed=3, draws=4000, tune=200, chains=4, progressbar=False)
    values = mixture_frequency(result.posterior["weights"].values, result.posterior["probs"].values)
    error = monte_carlo_error(values)
    assert np.all(np.abs(values.mean((0, 1)) - exact_mean) < 5 * error + 1e-3), (values.mean((0, 1)), exact_mean, error)
    # every draw is a valid parameter set
    assert np.all((result.posterior["probs"].values > 0) & (result.posterior["probs"].values < 1))


def test_vb_means_agree_with_exact_loosely():
    exact_mean, exact_sd = exact_frequency_moments()
    result = fit(TINY_MODEL, TINY, backend="vb", random_seed=4, draws=4000, progressbar=False)
    values = mixture_frequency(result.posterior["weights"].values, result.posterior["probs"].values)
    # mean-field VB under-disperses and sits in one labelling: means within half a posterior sd
    assert np.all(np.abs(values.mean((0, 1)) - exact_mean) < 0.5 * exact_sd), (values.mean((0, 1)), exact_mean)
    elbo = result.fit_history["elbo"].values
    for row in elbo:
        row = row[np.isfinite(row)]
        assert np.all(np.diff(row) >= -1e-9 * np.abs(row[1:]))
    # the ELBO bounds the log evidence
    assert np.nanmax(elbo) <= TINY_MODEL.exact_posterior(TINY).log_evidence + 1e-9


# -- PyMC ------------------------------------------------------------------------------------------------
@pytest.mark.pymc
def test_pymc_log_density_equals_the_numpy_log_posterior():
    x = TINY
    model = TINY_MODEL
    pm_model = model.pymc_model(x)
    params = {"weights": np.array([0.7, 0.3]), "probs": np.array([[0.8, 0.35], [0.15, 0.6]])}
    point = {}
    for rv in pm_model.free_RVs:
        transform = pm_model.rvs_to_transforms[rv]
        point[pm_model.rvs_to_values[rv].name] = transform.forward(params[rv.name], *rv.owner.inputs).eval()
    logp = pm_model.compile_logp(jacobian=False)(point)
    expected = model.log_prior(params) + model.log_likelihood(x, params).sum()
    assert logp == pytest.approx(expected, rel=1e-10)
    # the explicit-label declaration has the same prior and a label per observation
    explicit = model.pymc_model(x, marginalized=False)
    assert {rv.name for rv in explicit.free_RVs} == {"weights", "probs", "z"}


#: a small well-separated set for the PyMC back-ends
SEPARATED = {"weights": np.array([0.6, 0.4]), "probs": np.array([[0.9, 0.9, 0.1, 0.1], [0.1, 0.2, 0.9, 0.8]])}


@pytest.fixture(scope="module")
def separated():
    x, _ = simulated(60, seed=8, params=SEPARATED)
    model = BernoulliMixture(2, 4, probs_prior=(2.0, 2.0), weights_prior=2.0)
    em = fit(model, x, backend="em", random_seed=0, tol=1e-12, progressbar=False)
    return model, x, {name: em.posterior[name].values[0, 0] for name in ("weights", "probs")}


@pytest.mark.pymc
def test_map_equals_map_em(separated):
    model, x, em = separated
    # from a random start, not the default em-start (near EM's mode), so that it checks the PyMC declaration
    result = fit(model, x, backend="map", init="random", random_seed=0, progressbar=False)
    probs = result.posterior["probs"].values[0, 0]
    order = matched(em["probs"], probs)
    np.testing.assert_allclose(probs[order], em["probs"], atol=1e-4)
    np.testing.assert_allclose(result.posterior["weights"].values[0, 0][order], em["weights"], atol=1e-4)


@pytest.mark.pymc
def test_nuts_agrees_with_exact_on_the_tiny_set():
    exact_mean, _ = exact_frequency_moments()
    result = fit(TINY_MODEL, TINY, backend="nuts", random_seed=5, draws=1000, tune=1000, chains=2, cores=1,
                 progressbar=False)
    values = mixture_frequency(result.posterior["weights"].values, result.posterior["probs"].values)
    error = monte_carlo_error(values)
    assert np.all(np.abs(values.mean((0, 1)) - exact_mean) < 5 * error + 2e-3), (values.mean((0, 1)), exact_mean, error)


@pytest.mark.pymc
def test_advi_is_near_the_map(separated):
    model, x, em = separated
    result = fit(model, x, backend="advi", random_seed=1, start="em", n_steps=5000, draws=500, progressbar=False)
    probs = result.posterior["probs"].values.mean((0, 1))
    order = matched(em["probs"], probs)
    # ADVI's mean is not the mode, and it sees the posterior through a Gaussian: within 0.1
    np.testing.assert_allclose(probs[order], em["probs"], atol=0.1)


# -- model size --------------------------------------------------------------------------------------------
def test_choose_n_components_picks_the_true_number():
    x, _ = simulated(600, seed=9)
    model = BernoulliMixture(1, 6)
    assert isinstance(model, SelectableSize)
    table = choose_n_components(model, x, candidates=[1, 2, 3, 4], random_seed=0, n_init=3)
    assert int(table.loc[table["best"], "n_components"].iloc[0]) == 3
    # p = K - 1 + K D
    assert table["n_parameters"].tolist() == [6, 13, 20, 27]
    row = table.set_index("n_components").loc[2]
    assert row["bic"] == pytest.approx(-2 * row["log_likelihood"] + 13 * np.log(600), rel=1e-12)


# -- chunks ---------------------------------------------------------------------------------------------------
def test_chunked_em_equals_in_memory_em():
    da = pytest.importorskip("dask.array")
    x, _ = simulated(300, seed=10)
    model = BernoulliMixture(3, 6)
    start = model.initial_params(x, np.random.default_rng(0))
    options = {"init": start, "n_init": 1, "tol": 1e-10, "progressbar": False}
    in_memory = fit(model, x, backend="em", **options)
    chunked = fit(model, da.from_array(x, chunks=(70, 6)), backend="em", **options)
    for name in ("weights", "probs"):
        np.testing.assert_allclose(chunked.posterior[name].values, in_memory.posterior[name].values, atol=1e-10)


# -- data and registry -----------------------------------------------------------------------------------------
def test_default_data_are_the_binarised_digits():
    from sklearn.datasets import load_digits

    model = MODELS["bernoulli-mixture"]()
    x = model.default_data()
    assert x.shape == (1797, 64)
    np.testing.assert_array_equal(x, load_digits().data > 7)
    checked = model.check_data(x)
    assert model.check_data(checked) is checked
    assert model.n_observations(checked) == 1797


def test_simulate_returns_data_the_model_accepts():
    x, z = BernoulliMixture(3, 6).simulate(TRUE, 5000, rng=0)
    assert x.shape == (5000, 6) and z.shape == (5000,)
    np.testing.assert_allclose(np.bincount(z) / 5000, TRUE["weights"], atol=0.03)
    np.testing.assert_allclose(x[z == 0].mean(0), TRUE["probs"][0], atol=0.04)


@pytest.mark.parametrize(
    "data, error, match",
    [
        ([[0, 1, 2]], ValueError, r"found 2 at row 0, column 2"),
        ([[0, 1, 0.5]], ValueError, r"found 0.5 at row 0, column 2"),
        (np.zeros((4, 5)), ValueError, "data have 5 features .* n_features = 3"),
        (np.zeros((1, 3)), ValueError, "n_components = 2 exceeds the number of observations N = 1"),
        ([["a", "b", "c"]], TypeError, "array of binary features"),
        (np.zeros(3), ValueError, "2-D array"),
    ],
)
def test_bad_data_are_refused(data, error, match):
    with pytest.raises(error, match=match):
        BernoulliMixture(2, 3).check_data(data)
    with pytest.raises(error, match=match):
        fit(BernoulliMixture(2, 3), data, backend="em", random_seed=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"probs_prior": (0, 1)}, ValueError, "probs_prior must be a pair"),
        ({"probs_prior": (1, 1, 1)}, ValueError, "probs_prior must be a pair"),
        ({"probs_prior": "11"}, TypeError, "probs_prior must be a pair"),
        ({"weights_prior": -1.0}, ValueError, "weights_prior must be finite and > 0"),
        ({"weights_prior": (1.0, 2.0, 3.0)}, ValueError, r"weights_prior must be a number or have shape \(2,\)"),
        ({"n_components": 0}, ValueError, "n_components must be an int >= 1"),
        ({"n_features": 0}, ValueError, "n_features must be an int >= 1"),
        ({"n_features": 1.5}, TypeError, "n_features must be an int"),
        ({"n_components": 10**5, "n_features": 10**3}, ValueError, "the table probs would hold"),
    ],
)
def test_bad_model_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        BernoulliMixture(**{"n_components": 2, "n_features": 3, **kwargs})


@pytest.mark.parametrize(
    "init, error, match",
    [
        ({"weights": [0.5, 0.5], "probs": np.full((2, 3), 1.5)}, ValueError, r"init\['probs'\] must lie in \[0, 1\]"),
        ({"weights": [0.5, 0.6], "probs": np.full((2, 3), 0.5)}, ValueError, r"init\['weights'\] must sum to 1"),
        ({"weights": [0.5, 0.5], "probs": np.full((3, 3), 0.5)}, ValueError, r"init\['probs'\] must have shape \(2, 3\)"),
        ({"weights": [0.5, 0.5]}, ValueError, r"missing \['probs'\]"),
        ("kmeans", ValueError, "init strategy must be 'kmeans\\+\\+', 'random', 'prior' or a dict"),
    ],
)
def test_bad_init_is_refused(init, error, match):
    x = np.array([[0, 1, 1], [1, 0, 0], [1, 1, 0]])
    with pytest.raises(error, match=match):
        fit(BernoulliMixture(2, 3), x, backend="em", init=init, n_init=1, random_seed=0)


def test_map_em_refuses_priors_below_one():
    x = np.array([[0, 1, 1], [1, 0, 0], [1, 1, 0]])
    with pytest.raises(ValueError, match="concentration below 1.*use mle=True"):
        fit(BernoulliMixture(2, 3, probs_prior=(0.5, 0.5)), x, backend="em", random_seed=0)


# -- the three coins are a two-component Bernoulli mixture (one flip per trial) ------------------------
def test_three_coins_with_one_flip_per_trial_is_a_bernoulli_mixture():
    """Seed 003's three coins (one flip per trial, uniform priors) and BernoulliMixture(2, 1) are
    the same model written twice: coin A's bias is the first weight, coins B and C the two
    components. Two independent implementations must then agree on the pointwise likelihood and
    on the exact log evidence (each enumerates the 2^10 assignments its own way)."""
    from latentzoo.models import ThreeCoins

    flips = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    coins, mixture = ThreeCoins(), BernoulliMixture(n_components=2, n_features=1)
    pi, p, q = 0.3, 0.8, 0.35
    coin_params = {"pi": np.float64(pi), "p": np.float64(p), "q": np.float64(q)}
    mixture_params = {"weights": np.array([pi, 1 - pi]), "probs": np.array([[p], [q]])}
    np.testing.assert_allclose(
        mixture.log_likelihood(flips[:, None], mixture_params), coins.log_likelihood("1111110000", coin_params), rtol=1e-12
    )
    # the same prior: Dirichlet(1, 1) on (pi, 1 - pi) is Beta(1, 1) on pi
    np.testing.assert_allclose(
        mixture.exact_posterior(flips[:, None]).log_evidence, coins.exact_posterior("1111110000").log_evidence, rtol=1e-10
    )
