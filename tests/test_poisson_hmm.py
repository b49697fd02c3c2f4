"""PoissonHMM: Baum-Welch against hmmlearn's PoissonHMM from the same start on the earthquake
counts, the likelihood against enumeration over every state path with scipy's Poisson pmf, the
exact evidence against a sum over paths of closed-form Gamma-Poisson integrals, Gibbs and NUTS
against the exact posterior, the PyMC log-density against the NumPy log-posterior, and bad input."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import special, stats
from scipy.special import logsumexp

from latentzoo.inference import fit
from latentzoo.models import MODELS, PoissonHMM
from latentzoo.models.datasets import earthquakes

from .conftest import Reference, agreement_failures, assert_no_failures

COUNTS = earthquakes()[1]

PARAMS = {
    "init_probs": np.array([0.2, 0.5, 0.3]),
    "trans_mat": np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.3, 0.1, 0.6]]),
    "rates": np.array([1.5, 6.0, 14.0]),
}


def enumerate_sequence(x, params):
    """log p(x) of one sequence by summing over all K^T state paths, with scipy's Poisson pmf
    (a NaN step: density 1)."""
    T, K = len(x), params["rates"].size
    log_e = np.zeros((T, K))
    for t in range(T):
        if not np.isnan(x[t]):
            log_e[t] = stats.poisson.logpmf(int(x[t]), params["rates"])
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    log_joint = np.log(params["init_probs"][paths[:, 0]]) + log_e[np.arange(T), paths].sum(1)
    for t in range(1, T):
        log_joint += np.log(params["trans_mat"][paths[:, t - 1], paths[:, t]])
    return logsumexp(log_joint)


# ------------------------------------------------------------------------------------------
# the likelihood
# ------------------------------------------------------------------------------------------
def test_log_likelihood_matches_enumeration_over_paths():
    sequences = [np.array([3.0, 0.0, np.nan, 7.0, 12.0, 2.0]), np.array([9.0, 14.0, 1.0])]
    model = PoissonHMM(3)
    values = model.log_likelihood(sequences, PARAMS)
    assert values.shape == (2,)
    np.testing.assert_allclose(values, [enumerate_sequence(x, PARAMS) for x in sequences], rtol=1e-12)
    # batched parameters: (2,) sets, each the same as alone
    other = {**PARAMS, "rates": np.array([4.0, 0.5, 20.0])}
    batch = {name: np.stack([PARAMS[name], other[name]]) for name in PARAMS}
    np.testing.assert_allclose(model.log_likelihood(sequences, batch)[1], [enumerate_sequence(x, other) for x in sequences],
                               rtol=1e-12)


def test_log_likelihood_matches_hmmlearn_on_the_earthquakes():
    hmmlearn = pytest.importorskip("hmmlearn.hmm")
    peer = hmmlearn.PoissonHMM(3, init_params="")
    peer.startprob_, peer.transmat_, peer.lambdas_ = PARAMS["init_probs"], PARAMS["trans_mat"], PARAMS["rates"][:, None] * 2
    params = {**PARAMS, "rates": PARAMS["rates"] * 2}
    assert PoissonHMM(3).log_likelihood(COUNTS, params)[0] == pytest.approx(peer.score(COUNTS[:, None]), rel=1e-12)


# ------------------------------------------------------------------------------------------
# Baum-Welch against hmmlearn
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("start_rates", [(10.0, 30.0), (10.0, 20.0, 30.0)], ids=["2 states", "3 states"])
def test_maximum_likelihood_baum_welch_matches_hmmlearn(start_rates):
    """From the same start, to convergence: the same maximum (the 2-state one is Zucchini,
    MacDonald & Langrock's, rates 15.42 and 26.01, log L = -341.88)."""
    hmmlearn = pytest.importorskip("hmmlearn.hmm")
    K = len(start_rates)
    start = {"init_probs": np.full(K, 1.0 / K), "trans_mat": np.full((K, K), 0.1 / (K - 1)) + np.eye(K) * (0.9 - 0.1 / (K - 1)),
             "rates": np.array(start_rates)}
    # hmmlearn's priors switched off: Dirichlet(1) rows (no pseudo-count), lambdas_weight = 0
    peer = hmmlearn.PoissonHMM(K, n_iter=5000, tol=1e-12, init_params="", params="stl", random_state=0)
    peer.startprob_, peer.transmat_, peer.lambdas_ = start["init_probs"], start["trans_mat"], start["rates"][:, None]
    peer.fit(COUNTS[:, None])
    assert peer.monitor_.converged
    result = fit(PoissonHMM(K), COUNTS, backend="em", mle=True, init=start, tol=1e-14, max_iter=5000, random_seed=0,
                 progressbar=False)
    assert result.attrs["converged"]
    post = result.posterior
    np.testing.assert_allclose(post["rates"].values[0, 0], peer.lambdas_[:, 0], rtol=1e-5)
    np.testing.assert_allclose(post["trans_mat"].values[0, 0], peer.transmat_, atol=1e-5)
    log_lik = PoissonHMM(K).log_likelihood(COUNTS, {name: post[name].values[0, 0] for name in post.data_vars
                                                    if name != "state_probs"})[0]
    assert log_lik == pytest.approx(peer.score(COUNTS[:, None]), abs=1e-7)
    if K == 2:
        np.testing.assert_allclose(np.sort(post["rates"].values[0, 0]), [15.42, 26.01], atol=0.01)
        assert log_lik == pytest.approx(-341.88, abs=0.005)


def test_map_em_objective_is_the_log_posterior_with_scipy_densities():
    model = PoissonHMM(2, rates_prior=(2.0, 0.1), init_prior=2.0, trans_prior=[[3.0, 1.0], [1.0, 3.0]])
    result = fit(model, COUNTS, backend="em", random_seed=0, n_init=2, progressbar=False)
    params = {name: result.posterior[name].values[0, 0] for name in model.param_names}
    log_prior = stats.dirichlet([2.0, 2.0]).logpdf(params["init_probs"])
    log_prior += stats.dirichlet([3.0, 1.0]).logpdf(params["trans_mat"][0]) + stats.dirichlet([1.0, 3.0]).logpdf(params["trans_mat"][1])
    log_prior += stats.gamma.logpdf(params["rates"], 2.0, scale=1 / 0.1).sum()
    np.testing.assert_allclose(result.attrs["objective"], model.log_likelihood(COUNTS, params).sum() + log_prior, rtol=1e-10)


# ------------------------------------------------------------------------------------------
# the exact posterior, Gibbs and NUTS
# ------------------------------------------------------------------------------------------
TINY = [np.array([2.0, 1.0, 3.0, 0.0]), np.array([9.0, np.nan, 12.0, 10.0])]
#: an informative Gamma keeps a state with few counts from wandering to huge rates
TINY_MODEL = PoissonHMM(2, rates_prior=(2.0, 0.3), trans_prior=2.0)


def test_exact_log_evidence_against_a_sum_over_paths():
    """log p(x) = log sum over paths z of p(z) prod_k int prod_{t: z_t = k} Poisson(x_t | r) Gamma(r) dr,
    with the Dirichlet integrals of the chain and the Gamma-Poisson integral written here."""
    a, b = TINY_MODEL.rates_prior
    x = np.concatenate(TINY)
    starts = {0, 4}
    terms = []
    for path in itertools.product(range(2), repeat=x.size):
        path = np.array(path)
        init_counts = np.bincount(path[[0, 4]], minlength=2)
        trans = np.zeros((2, 2))
        for t in range(1, x.size):
            if t not in starts:
                trans[path[t - 1], path[t]] += 1
        term = special.gammaln(2.0) - special.gammaln(2.0 + 2) + special.gammaln(1 + init_counts).sum()  # Dirichlet(1, 1)
        for row in trans:
            term += special.gammaln(4.0) - special.gammaln(4.0 + row.sum()) + (special.gammaln(2.0 + row) - special.gammaln(2.0)).sum()
        for k in range(2):
            counts = x[(path == k) & ~np.isnan(x)]
            term += (a * np.log(b) - special.gammaln(a) + special.gammaln(a + counts.sum())
                     - (a + counts.sum()) * np.log(b + counts.size) - special.gammaln(counts + 1).sum())
        terms.append(term)
    assert TINY_MODEL.exact_posterior(TINY).log_evidence == pytest.approx(logsumexp(terms), rel=1e-12)


def sorted_by_rate(posterior) -> dict:
    """Every draw relabelled so that the rates increase (a function of the draw that does not
    depend on the labelling, so samplers and the exact draws are compared on the same thing)."""
    rates = posterior["rates"].values
    order = np.argsort(rates, axis=-1)
    trans = posterior["trans_mat"].values
    return {
        "rates": np.take_along_axis(rates, order, -1),
        "init_probs": np.take_along_axis(posterior["init_probs"].values, order, -1),
        "trans_mat": np.take_along_axis(np.take_along_axis(trans, order[..., :, None], -2), order[..., None, :], -1),
    }


def _agrees_with_exact(draws, exact) -> list[str]:
    failures = []
    for name, values in draws.items():
        failures += agreement_failures(name, values, Reference.from_draws(exact[name]))
    return failures


@pytest.fixture(scope="module")
def exact_draws():
    return sorted_by_rate(fit(TINY_MODEL, TINY, backend="exact", random_seed=0, draws=20000).posterior)


def test_gibbs_agrees_with_the_exact_posterior(exact_draws):
    gibbs = fit(TINY_MODEL, TINY, backend="gibbs", random_seed=1, draws=1500, tune=200, chains=2, progressbar=False).posterior
    assert_no_failures(_agrees_with_exact(sorted_by_rate(gibbs), exact_draws))
    # the check fails on draws shifted by one posterior sd
    shifted = {"rates": sorted_by_rate(gibbs)["rates"] + exact_draws["rates"].std(axis=(0, 1))}
    assert _agrees_with_exact(shifted, exact_draws)


def test_exact_posterior_mean_is_the_enumerated_mixture_of_gamma_means():
    mixture = TINY_MODEL.exact_posterior(TINY)
    # a label-free summary: E[rates_0 + rates_1] is the same in every component of the mixture's labelling
    gammas = mixture.factors["rates"]
    total = (mixture.weights[:, None] * gammas.shape / gammas.rate).sum()
    assert mixture.mean()["rates"].sum() == pytest.approx(total, rel=1e-12)
    x = np.concatenate(TINY)
    # the two states share 2 a / b prior pseudo-means plus the counts: a bound the mean obeys
    assert 0 < total < (2 * TINY_MODEL.rates_prior[0] + np.nansum(x)) / TINY_MODEL.rates_prior[1]


@pytest.mark.pymc
def test_nuts_agrees_with_the_exact_posterior(exact_draws):
    nuts = fit(TINY_MODEL, TINY, backend="nuts", random_seed=2, draws=800, tune=600, chains=2, cores=1,
               progressbar=False).posterior
    assert_no_failures(_agrees_with_exact(sorted_by_rate(nuts), exact_draws))


@pytest.mark.pymc
def test_pymc_log_density_equals_the_numpy_log_posterior():
    model = PoissonHMM(3, rates_prior=(2.5, 0.2), init_prior=[1.5, 2.0, 1.0], trans_prior=[[4.0, 1.0, 1.0], [1.0, 4.0, 2.0], [1.0, 1.0, 3.0]])
    data = [COUNTS[:20].astype(float), np.r_[COUNTS[20:35], np.nan, COUNTS[35:40]]]
    pm_model = model.pymc_model(data)
    logp = pm_model.compile_logp(jacobian=False)
    rng = np.random.default_rng(0)
    for _ in range(4):
        params = model.initial_params(model.check_data(data), rng, "prior")
        values = {}
        for var in pm_model.free_RVs:
            transform = pm_model.rvs_to_transforms.get(var)
            value = np.asarray(params[var.name], float)
            values[pm_model.rvs_to_values[var].name] = transform.forward(value, *var.owner.inputs).eval() if transform else value
        expected = float(model.log_prior(params)) + float(model.log_likelihood(data, params).sum())
        np.testing.assert_allclose(logp(values), expected, rtol=1e-9)


def test_vb_elbo_stays_below_the_exact_log_evidence():
    exact = TINY_MODEL.exact_posterior(TINY).log_evidence
    result = fit(TINY_MODEL, TINY, backend="vb", random_seed=0, draws=50, progressbar=False)
    for history in result.fit_history["elbo"].values:
        history = history[np.isfinite(history)]
        assert np.all(np.diff(history) >= -1e-9)
    assert exact - 1.0 < result.attrs["objective"] <= exact + 1e-9


# ------------------------------------------------------------------------------------------
# declarations, simulation and bad input
# ------------------------------------------------------------------------------------------
def test_declarations():
    model = PoissonHMM()
    assert MODELS["poisson-hmm"] is PoissonHMM
    assert model.param_dims() == {"init_probs": ("state",), "trans_mat": ("state", "state_next"), "rates": ("state",)}
    assert model.label_dim == "state" and PoissonHMM(2, trans_prior=[[2.0, 1.0], [1.0, 2.0]]).label_dim is None
    assert "exact" in model.demo_plan().skips
    np.testing.assert_array_equal(model.check_data(model.default_data()).symbols, COUNTS)
    assert PoissonHMM(3).n_parameters(COUNTS) == 3**2 - 1 + 3


def test_simulate_has_the_state_rates():
    model = PoissonHMM(3)
    counts, states = model.simulate(PARAMS, 30_000, rng=0)
    assert counts.dtype == np.int64 and counts.shape == states.shape == (30_000,)
    for k in range(3):
        chosen = counts[states == k]
        assert abs(chosen.mean() - PARAMS["rates"][k]) < 5 * np.sqrt(PARAMS["rates"][k] / chosen.size)
    # the transitions follow trans_mat
    frequencies = np.array([np.bincount(states[1:][states[:-1] == k], minlength=3) for k in range(3)], float)
    frequencies /= frequencies.sum(1, keepdims=True)
    np.testing.assert_allclose(frequencies, PARAMS["trans_mat"], atol=0.02)
    model.check_data(counts)  # in the form the model accepts


@pytest.mark.parametrize(
    "data, error, match",
    [
        ([1, -2, 3], ValueError, r"contains \[-2\] \(first at position 1\)"),
        ([1, 2.5, 3], ValueError, r"non-integer values \[2.5\] \(first at position 1\)"),
        ([1, "7"], TypeError, r"got str '7' at position 1"),
        ([[1, 2], [3, -1]], ValueError, r"sequence 1 contains \[-1\]"),
        ([np.nan, None], ValueError, "every one of the 2 steps is missing"),
        ("3 4 five", ValueError, "'five'"),
    ],
)
def test_bad_data_raise(data, error, match):
    with pytest.raises(error, match=match):
        PoissonHMM().check_data(data)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_states": 1}, ValueError, "n_states"),
        ({"rates_prior": (0.0, 1.0)}, ValueError, r"rates_prior must be a pair \(shape, rate\) of positive finite numbers, got shape"),
        ({"rates_prior": (1.0, -1.0)}, ValueError, "got rate -1.0"),
        ({"rates_prior": 2.0}, TypeError, r"rates_prior must be a pair \(shape, rate\)"),
        ({"rates_prior": "12"}, TypeError, r"rates_prior must be a pair \(shape, rate\)"),
        ({"trans_prior": [[1.0, 0.0], [1.0, 1.0]]}, ValueError, "trans_prior"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        PoissonHMM(**kwargs)


def test_bad_params_raise():
    model = PoissonHMM(2)
    good = {"init_probs": [0.5, 0.5], "trans_mat": [[0.9, 0.1], [0.1, 0.9]], "rates": [1.0, 5.0]}
    with pytest.raises(ValueError, match=r"params\['rates'\] must be finite and >= 0"):
        model.log_likelihood(COUNTS, {**good, "rates": [-1.0, 5.0]})
    with pytest.raises(ValueError, match=r"params\['rates'\] must have shape \(2,\)"):
        model.log_likelihood(COUNTS, {**good, "rates": [1.0, 5.0, 3.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(model.log_likelihood(COUNTS, good)).all()
