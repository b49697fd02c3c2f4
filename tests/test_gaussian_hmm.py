"""GaussianHMM: values against enumeration over state paths with scipy's densities, Baum-Welch
against hmmlearn from the same start, the exact posterior against closed-form predictive
densities, Gibbs against the exact posterior, and the bad-input catalogue."""

from __future__ import annotations

import functools
import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import digamma, gammaln, logsumexp, polygamma

from latentzoo.inference import fit
from latentzoo.models import MODELS, GaussianHMM
from latentzoo.models.core.base import DegenerateComponentError

from .conftest import Reference, agreement_failures, assert_data_move_the_mean, assert_no_failures, variational_failures

PARAMS = {
    "init_probs": np.array([0.6, 0.4]),
    "trans_mat": np.array([[0.85, 0.15], [0.25, 0.75]]),
    "means": np.array([[0.0, 1.0], [3.0, -1.0]]),
    "covs": np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]]]),
}


def simulated(T=120, seed=0):
    """Data from PARAMS, drawn with plain NumPy (not GaussianHMM.simulate)."""
    rng = np.random.default_rng(seed)
    z = np.empty(T, int)
    z[0] = rng.choice(2, p=PARAMS["init_probs"])
    for t in range(1, T):
        z[t] = rng.choice(2, p=PARAMS["trans_mat"][z[t - 1]])
    x = np.array([rng.multivariate_normal(PARAMS["means"][k], PARAMS["covs"][k]) for k in z])
    return x, z


def enumerate_sequence(x, params):
    """log p(x), the smoothed marginals and the best path of one sequence by summing over all
    K^T paths, with scipy's multivariate normal (NaN rows: density 1)."""
    T, K = x.shape[0], params["trans_mat"].shape[0]
    log_e = np.zeros((T, K))
    for k in range(K):
        dens = stats.multivariate_normal(params["means"][k], params["covs"][k]).logpdf(np.nan_to_num(x))
        log_e[:, k] = np.where(np.isnan(x[:, 0]), 0.0, np.atleast_1d(dens))
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    log_joint = np.log(params["init_probs"][paths[:, 0]]) + log_e[np.arange(T), paths].sum(1)
    for t in range(1, T):
        log_joint += np.log(params["trans_mat"][paths[:, t - 1], paths[:, t]])
    total = logsumexp(log_joint)
    gamma = np.zeros((T, K))
    for t in range(T):
        np.add.at(gamma[t], paths[:, t], np.exp(log_joint - total))
    return total, gamma, paths[np.argmax(log_joint)], log_joint.max()


# ------------------------------------------------------------------------------------------
# values given the parameters
# ------------------------------------------------------------------------------------------
def test_likelihood_smoothing_and_viterbi_match_enumeration():
    x, _ = simulated(11, seed=1)
    x[4] = np.nan  # a missing observation
    sequences = [x[:5], x[5:]]
    model = GaussianHMM(2, 2)
    log_lik = model.log_likelihood(sequences, PARAMS)
    gammas = model.posterior_states(sequences, PARAMS)
    paths, log_probs = model.viterbi(sequences, PARAMS)
    filtered = model.filter(sequences, PARAMS)
    for s, sequence in enumerate(sequences):
        total, gamma, path, best = enumerate_sequence(sequence, PARAMS)
        np.testing.assert_allclose(log_lik[s], total, rtol=1e-12)
        np.testing.assert_allclose(gammas[s], gamma, atol=1e-12)
        np.testing.assert_array_equal(paths[s], path)
        np.testing.assert_allclose(log_probs[s], best, rtol=1e-12)
        np.testing.assert_allclose(filtered[s][-1], gamma[-1], atol=1e-12)  # filtering = smoothing at T


def test_baum_welch_statistics_match_enumeration():
    # the E-step reads the Gaussian likelihoods scaled per step (a (K, T) table); the counts,
    # weighted moments and log-likelihood must be those of the exact posterior over paths
    x, _ = simulated(10, seed=2)
    x[3] = np.nan  # a missing observation: it emits nothing, the chain still moves through it
    sequences = [x[:4], x[4:]]
    model = GaussianHMM(2, 2)
    stats_, log_lik = model.expected_stats(sequences, PARAMS)
    init_c, trans_c = np.zeros(2), np.zeros((2, 2))
    weights, rows, total = [], [], 0.0
    for sequence in sequences:
        T = sequence.shape[0]
        log_total, gamma, _, _ = enumerate_sequence(sequence, PARAMS)
        total += log_total
        init_c += gamma[0]
        paths = np.array(list(itertools.product(range(2), repeat=T)))
        log_joint = np.log(PARAMS["init_probs"][paths[:, 0]])
        for t in range(T):
            if not np.isnan(sequence[t, 0]):
                log_joint += np.array([stats.multivariate_normal(PARAMS["means"][k], PARAMS["covs"][k]).logpdf(sequence[t])
                                       for k in paths[:, t]])
            if t:
                log_joint += np.log(PARAMS["trans_mat"][paths[:, t - 1], paths[:, t]])
        probs = np.exp(log_joint - logsumexp(log_joint))
        for t in range(1, T):
            np.add.at(trans_c, (paths[:, t - 1], paths[:, t]), probs)
        observed = ~np.isnan(sequence[:, 0])
        weights.append(gamma[observed])
        rows.append(sequence[observed])
    weights, rows = np.concatenate(weights), np.concatenate(rows)
    counts = weights.sum(0)
    means = weights.T @ rows / counts[:, None]
    scatters = np.array([(weights[:, k, None] * (rows - means[k])).T @ (rows - means[k]) for k in range(2)])
    np.testing.assert_allclose(log_lik, total, rtol=1e-12)
    np.testing.assert_allclose(stats_["init_counts"], init_c, atol=1e-12)
    np.testing.assert_allclose(stats_["trans_counts"], trans_c, atol=1e-12)
    np.testing.assert_allclose(stats_["counts"], counts, rtol=1e-12)
    np.testing.assert_allclose(stats_["means"], means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats_["scatters"], scatters, rtol=1e-11, atol=1e-12)


def test_batched_log_likelihood_and_latent_posterior_equal_one_set_at_a_time():
    x, _ = simulated(30)
    model = GaussianHMM(2, 2)
    other = {**PARAMS, "means": PARAMS["means"] + 0.5}
    batch = {name: np.stack([PARAMS[name], other[name]])[None] for name in PARAMS}
    values = model.log_likelihood(x, batch)
    assert values.shape == (1, 2, 1)
    np.testing.assert_allclose(values[0, 1], model.log_likelihood(x, other), rtol=1e-13)
    np.testing.assert_allclose(model.latent_posterior(x, batch)["state_probs"][0, 0], model.posterior_states(x, PARAMS), atol=1e-13)


def test_simulate_draws_the_model():
    model = GaussianHMM(2, 2)
    x, z = model.simulate(PARAMS, 20000, rng=3)
    assert x.shape == (20000, 2) and z.shape == (20000,)
    switches = np.mean(z[1:][z[:-1] == 0] == 1)
    assert abs(switches - 0.15) < 0.02
    np.testing.assert_allclose(np.cov(x[z == 1].T), PARAMS["covs"][1], atol=0.06)
    xs, zs = model.simulate(PARAMS, [3, 4], rng=3)
    assert [len(a) for a in xs] == [3, 4] and [len(a) for a in zs] == [3, 4]


# ------------------------------------------------------------------------------------------
# Baum-Welch against hmmlearn
# ------------------------------------------------------------------------------------------
def test_maximum_likelihood_baum_welch_matches_hmmlearn():
    hmmlearn = pytest.importorskip("hmmlearn.hmm")
    x, _ = simulated(400, seed=2)
    lengths = [150, 250]
    rng = np.random.default_rng(4)
    start = {
        "init_probs": np.array([0.5, 0.5]),
        "trans_mat": np.array([[0.7, 0.3], [0.4, 0.6]]),
        "means": x[rng.choice(400, 2, replace=False)],
        "covs": np.stack([np.cov(x.T)] * 2),
    }
    n_iter = 12
    # hmmlearn with its priors switched off: covars_prior = 0, covars_weight = 0, means_weight = 0
    peer = hmmlearn.GaussianHMM(2, covariance_type="full", n_iter=n_iter, tol=-np.inf, init_params="", params="stmc",
                                covars_prior=0.0, covars_weight=0.0, means_weight=0.0, implementation="scaling")
    peer.startprob_, peer.transmat_, peer.means_, peer.covars_ = (start[k].copy() for k in ("init_probs", "trans_mat", "means", "covs"))
    peer.fit(x, lengths)
    assert len(peer.monitor_.history) == n_iter
    model = GaussianHMM(2, 2, reg_covar=1e-13)  # reg_covar adds 1e-13 to the diagonals: negligible here
    sequences = [x[:150], x[150:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: "not converged" by design
        result = fit(model, sequences, backend="em", mle=True, init=start, tol=0, max_iter=n_iter, random_seed=0, progressbar=False)
    post = result.posterior
    np.testing.assert_allclose(post["init_probs"].values[0, 0], peer.startprob_, atol=1e-8)
    np.testing.assert_allclose(post["trans_mat"].values[0, 0], peer.transmat_, atol=1e-8)
    np.testing.assert_allclose(post["means"].values[0, 0], peer.means_, atol=1e-8)
    np.testing.assert_allclose(post["covs"].values[0, 0], peer.covars_, atol=1e-8)
    # the log-likelihood before the last M-step is hmmlearn's last recorded one
    history = result.fit_history["log_likelihood"].values[0]
    np.testing.assert_allclose(history[n_iter - 1], peer.monitor_.history[-1], rtol=1e-10)


def test_map_em_objective_is_the_log_posterior_with_scipy_densities():
    x, _ = simulated(80)
    model = GaussianHMM(2, 2, init_prior=2.0, trans_prior=[[3.0, 1.0], [1.0, 3.0]], m0=[0.0, 0.0], kappa0=0.5, nu0=5.0, S0=np.eye(2))
    result = fit(model, x, backend="em", random_seed=0, n_init=2, progressbar=False)
    params = {name: result.posterior[name].values[0, 0] for name in model.param_names}
    log_prior = stats.dirichlet([2.0, 2.0]).logpdf(params["init_probs"])
    log_prior += stats.dirichlet([3.0, 1.0]).logpdf(params["trans_mat"][0]) + stats.dirichlet([1.0, 3.0]).logpdf(params["trans_mat"][1])
    for k in range(2):
        log_prior += stats.invwishart(5.0, np.eye(2)).logpdf(params["covs"][k])
        log_prior += stats.multivariate_normal(np.zeros(2), params["covs"][k] / 0.5).logpdf(params["means"][k])
    np.testing.assert_allclose(result.attrs["objective"], model.log_likelihood(x, params).sum() + log_prior, rtol=1e-10)
    assert model.label_dim == "state"  # a sticky prior of equal diagonals keeps the states exchangeable


def test_affine_change_of_the_data_moves_the_mle_with_it():
    x, _ = simulated(200, seed=5)
    scale, shift = np.array([10.0, 0.01]), np.array([1e4, -3.0])
    model = GaussianHMM(2, 2, reg_covar=1e-300)
    start = {**PARAMS}
    moved = {**PARAMS, "means": PARAMS["means"] * scale + shift, "covs": PARAMS["covs"] * np.outer(scale, scale)}
    kwargs = dict(backend="em", mle=True, tol=0, max_iter=15, random_seed=0, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = fit(model, x, init=start, **kwargs).posterior
        b = fit(model, pd.DataFrame(x * scale + shift, columns=["u", "v"]), init=moved, **kwargs).posterior
    np.testing.assert_allclose(b["trans_mat"].values, a["trans_mat"].values, atol=1e-9)
    np.testing.assert_allclose(b["means"].values, a["means"].values * scale + shift, rtol=1e-9)
    np.testing.assert_allclose(b["covs"].values, a["covs"].values * np.outer(scale, scale), rtol=1e-7)
    assert list(b.coords["feature"].values) == ["u", "v"]


# ------------------------------------------------------------------------------------------
# exact posterior, Gibbs, VB
# ------------------------------------------------------------------------------------------
PRIOR = dict(m0=[0.5], kappa0=0.8, nu0=3.0, S0=[[1.5]])


def test_exact_log_evidence_of_one_and_two_observations_in_closed_form():
    model = GaussianHMM(2, 1, **PRIOR)
    df = 3.0 - 1 + 1
    predictive = stats.multivariate_t([0.5], [[1.5 * 1.8 / (0.8 * df)]], df=df)
    x1, x2 = 1.7, -0.4
    assert np.isclose(model.exact_posterior([[x1]]).log_evidence, predictive.logpdf(x1), rtol=1e-12)
    # two steps: same state with probability 1/2 (uniform priors), then x2 | x1 is the
    # posterior predictive after one observation; otherwise two independent predictives
    kappa1, nu1 = 1.8, 4.0
    m1 = (0.8 * 0.5 + x1) / kappa1
    S1 = 1.5 + 0.8 * (x1 - 0.5) ** 2 / kappa1
    df1 = nu1 - 1 + 1
    after = stats.multivariate_t([m1], [[S1 * (kappa1 + 1) / (kappa1 * df1)]], df=df1)
    expected = np.log(0.5 * np.exp(predictive.logpdf(x1) + after.logpdf(x2)) + 0.5 * np.exp(predictive.logpdf(x1) + predictive.logpdf(x2)))
    assert np.isclose(model.exact_posterior([[x1], [x2]]).log_evidence, expected, rtol=1e-12)
    # a missing last step adds nothing to the evidence (its density integrates to one)
    assert np.isclose(model.exact_posterior([[x1], [x2], [np.nan]]).log_evidence, expected, rtol=1e-12)


TINY = np.array([[-1.9], [-2.4], [-1.5], [2.2], [1.6], [2.5], [np.nan], [1.8]])
#: distinct prior means make the states distinguishable, so samplers need no relabelling
TINY_MODEL = GaussianHMM(2, 1, m0=[[-2.0], [2.0]], kappa0=1.0, nu0=3.0, S0=[[1.0]], trans_prior=2.0)


def test_gibbs_agrees_with_the_exact_posterior():
    assert TINY_MODEL.label_dim is None
    exact = fit(TINY_MODEL, TINY, backend="exact", random_seed=0, draws=20000).posterior
    gibbs = fit(TINY_MODEL, TINY, backend="gibbs", random_seed=1, draws=1000, tune=100, chains=2, progressbar=False).posterior
    failures = []
    for name in TINY_MODEL.param_names:
        reference = Reference.from_draws(exact[name].values)
        failures += agreement_failures(name, gibbs[name].values, reference)
    assert_no_failures(failures)
    # the check fails on draws shifted by one posterior sd
    shifted = gibbs["means"].values + exact["means"].values.std(axis=(0, 1))
    assert agreement_failures("means", shifted, Reference.from_draws(exact["means"].values))


def test_vb_elbo_rises_and_stays_below_the_exact_log_evidence():
    exact = TINY_MODEL.exact_posterior(TINY).log_evidence
    result = fit(TINY_MODEL, TINY, backend="vb", random_seed=0, draws=50, progressbar=False)
    for history in result.fit_history["elbo"].values:  # one row per restart
        history = history[np.isfinite(history)]
        assert np.all(np.diff(history) >= -1e-9)  # (also guarded by the ascent loop)
    assert result.attrs["objective"] <= exact + 1e-9
    assert result.attrs["objective"] > exact - 1.0  # the mean-field gap on these data is small


#: eleven points (2^11 = 2048 state paths: exact enumeration) from two states near -2
#: and +2, under a prior whose state means (-0.5, 0.5) are 3 posterior sds from the exact
#: posterior means, so that a VB that ignores the data fails
OFF_PRIOR_DATA = np.array([[-1.9], [-2.4], [-1.5], [2.2], [1.6], [2.5], [np.nan], [1.8], [-2.1], [-1.7], [2.0]])
OFF_PRIOR_MODEL = GaussianHMM(2, 1, m0=[[-0.5], [0.5]], kappa0=1.0, nu0=3.0, S0=[[1.0]], trans_prior=2.0)
#: draws of q: the Monte-Carlo term of the allowance, 5 sd / sqrt(n), is 0.11 sd
OFF_PRIOR_VB_DRAWS = 2000
#: the bias accepted of VB's means (log(covs) for covs), against exact moments: measured 0.022
#: (means), 0.031 (log covs), 0.015 (trans_mat), 0.007 (init_probs)
OFF_PRIOR_VB_TOL = 0.06
#: the mean-field gap log p(x) - ELBO on these data: measured 0.16 nats
OFF_PRIOR_ELBO_GAP = 0.5


def _log_dirichlet_multinomial(alpha, counts):
    """log probability of one ordered sequence with these counts (last axis: categories) under
    a Dirichlet(alpha) prior on the category probabilities."""
    return (gammaln(alpha.sum(-1)) - gammaln(alpha.sum(-1) + counts.sum(-1))
            + np.sum(gammaln(alpha + counts) - gammaln(alpha), axis=-1))


def _dirichlet_moments(alpha):
    """E[p] and E[p^2] of a Dirichlet (last axis), from its definition."""
    total = alpha.sum(-1, keepdims=True)
    mean = alpha / total
    return mean, mean * (alpha + 1) / (total + 1)


def one_feature_hmm_enumeration(model: GaussianHMM, x: np.ndarray) -> tuple[dict[str, Reference], float]:
    """Exact posterior moments of a one-feature GaussianHMM (free init_probs, trans_mat, means,
    covs) and its log evidence, by summing over all K^T state paths.

    Given a path the parameters have independent conjugate posteriors: Dirichlet rows, and per
    state a Normal-Inverse-Wishart, in one dimension a normal-inverse-gamma, updated one value
    at a time. A path's weight is its Dirichlet-multinomial probability times each state's
    marginal likelihood, a product of Student-t predictive densities (scipy). The moments: the
    Dirichlet's, the mean's marginal Student t (scipy), and for covs those of log(covs), since
    paths that leave a state with at most one observation give covs an inverse gamma of shape
    <= 2, whose variance is infinite (log(-Gamma) moments: digamma and trigamma). Written from
    the priors' definitions, independently of the model's exact back-end.

    Returns
    -------
    references : dict of name -> Reference (``covs``: moments of log(covs))
    log_evidence : float
    """
    prior = model.prior()
    init_alpha, trans_alpha = prior["init_probs"].concentrations, prior["trans_mat"].concentrations
    niw = prior[("means", "covs")]
    K, values = init_alpha.size, x[:, 0]
    paths = np.array(list(itertools.product(range(K), repeat=values.size)))  # (P, T)
    P = paths.shape[0]
    states = np.arange(K)
    init_counts = (paths[:, :1] == states).astype(float)  # (P, K)
    trans_counts = np.zeros((P, K, K))
    np.add.at(trans_counts, (np.arange(P)[:, None], paths[:, :-1], paths[:, 1:]), 1.0)
    log_weight = _log_dirichlet_multinomial(init_alpha, init_counts)
    log_weight += _log_dirichlet_multinomial(trans_alpha, trans_counts).sum(-1)
    # one normal-inverse-gamma per path and state, updated by the values the path assigns it
    m, kappa = np.tile(niw.m[:, 0], (P, 1)), np.tile(niw.kappa, (P, 1))
    nu, s = np.tile(niw.nu, (P, 1)), np.tile(niw.S[:, 0, 0], (P, 1))
    rows = np.arange(P)
    for t, value in enumerate(values):
        if np.isnan(value):
            continue
        k = paths[:, t]
        mk, kk, nk, sk = m[rows, k], kappa[rows, k], nu[rows, k], s[rows, k]
        log_weight += stats.t.logpdf(value, df=nk, loc=mk, scale=np.sqrt(sk * (kk + 1) / (kk * nk)))
        s[rows, k] = sk + kk / (kk + 1) * (value - mk) ** 2
        m[rows, k] = (kk * mk + value) / (kk + 1)
        kappa[rows, k], nu[rows, k] = kk + 1, nk + 1
    log_evidence = float(logsumexp(log_weight))
    weights = np.exp(log_weight - log_evidence)
    mu = stats.t(df=nu, loc=m, scale=np.sqrt(s / (kappa * nu)))  # D = 1: nu - D + 1 = nu
    # covs ~ InvGamma(nu / 2, s / 2): log(covs) = log(s / 2) - log(Gamma(nu / 2, 1))
    log_cov_mean = np.log(s / 2) - digamma(nu / 2)
    moments = {
        "init_probs": _dirichlet_moments(init_alpha + init_counts),
        "trans_mat": _dirichlet_moments(trans_alpha + trans_counts),
        "means": (mu.mean()[..., None], (mu.var() + mu.mean() ** 2)[..., None]),
        "covs": (log_cov_mean[..., None, None], (polygamma(1, nu / 2) + log_cov_mean**2)[..., None, None]),
    }
    references = {}
    for name, (first, second) in moments.items():
        mean = np.tensordot(weights, first, axes=1)
        references[name] = Reference(mean, np.sqrt(np.tensordot(weights, second, axes=1) - mean**2))
    return references, log_evidence


def off_prior_vb(data=OFF_PRIOR_DATA, draws=OFF_PRIOR_VB_DRAWS):
    return fit(OFF_PRIOR_MODEL, data, backend="vb", random_seed=0, draws=draws, progressbar=False)


@functools.cache
def off_prior_exact() -> tuple[dict[str, Reference], float]:
    return one_feature_hmm_enumeration(OFF_PRIOR_MODEL, OFF_PRIOR_DATA)


def off_prior_vb_failures(vb) -> list[str]:
    """How VB's draws miss the exact moments (covs compared on the log scale, as enumerated)."""
    failures = []
    for name, ref in off_prior_exact()[0].items():
        draws = vb.posterior[name].values
        failures += variational_failures(name, np.log(draws) if name == "covs" else draws, ref, tol=OFF_PRIOR_VB_TOL)
    return failures


def elbo_failures(elbo: float) -> list[str]:
    log_evidence = off_prior_exact()[1]
    if elbo > log_evidence + 1e-9:
        return [f"ELBO {elbo:.6g} above the exact log evidence {log_evidence:.6g}"]
    if elbo < log_evidence - OFF_PRIOR_ELBO_GAP:
        return [f"ELBO {elbo:.6g} more than {OFF_PRIOR_ELBO_GAP} below the exact log evidence {log_evidence:.6g}"]
    return []


def test_path_enumeration_reproduces_the_exact_backend_log_evidence():
    """The test's own enumeration and the model's exact back-end agree on log p(x) to round-off
    (a check of the reference the VB test uses); with one value moved by 0.01 they do not."""
    exact = OFF_PRIOR_MODEL.exact_posterior(OFF_PRIOR_DATA).log_evidence
    assert off_prior_exact()[1] == pytest.approx(exact, abs=1e-9)
    moved = OFF_PRIOR_DATA.copy()
    moved[0] += 0.01
    assert abs(one_feature_hmm_enumeration(OFF_PRIOR_MODEL, moved)[1] - exact) > 1e-6


def test_vb_with_a_prior_mean_off_the_truth_matches_the_exact_posterior():
    """Means within OFF_PRIOR_VB_TOL of the exact posterior's (enumeration of every state path),
    sds narrower (mean field) but not below half; the ELBO below the exact log evidence and
    within 0.5 nats of it. Power: VB fitted to the first five points only, the draws shifted by 3
    exact sds, and an ELBO 2 nats too high or too low fail."""
    vb = off_prior_vb()
    exact_means = off_prior_exact()[0]["means"]
    assert_data_move_the_mean("means", exact_means, [[-0.5], [0.5]], OFF_PRIOR_VB_DRAWS, tol=OFF_PRIOR_VB_TOL)
    assert_no_failures(off_prior_vb_failures(vb))
    elbo = float(vb.attrs["objective"])
    assert_no_failures(elbo_failures(elbo))
    # power; 500 draws suffice for a q that misses by several allowances
    assert any("means" in f for f in off_prior_vb_failures(off_prior_vb(OFF_PRIOR_DATA[:5], draws=500)))
    shifted = vb.posterior["means"].values + 3 * exact_means.sd
    assert variational_failures("means", shifted, exact_means, tol=OFF_PRIOR_VB_TOL)
    assert elbo_failures(elbo + 2.0) and elbo_failures(elbo - 2.0)


def test_fixed_covariances_and_initial_distribution():
    x, _ = simulated(150, seed=6)
    # the prior means are 1-2 off the true ones (PARAMS["means"]), so the data must move them
    model = GaussianHMM(2, 2, covs=PARAMS["covs"], init_probs=[1.0, 0.0], m0=[[1, 0], [2, 0]])
    assert model.param_names == ("trans_mat", "means") and model.label_dim is None
    for backend, options in (("em", {}), ("vb", {"draws": 50}), ("gibbs", {"draws": 50, "tune": 20, "chains": 1})):
        result = fit(model, x, backend=backend, random_seed=0, progressbar=False, **options)
        means = result.posterior["means"].mean(("chain", "draw")).values
        np.testing.assert_allclose(means, PARAMS["means"], atol=0.35)
        assert "covs" not in result.posterior and "init_probs" not in result.posterior
    with pytest.raises(ValueError, match="not available with fixed covs"):
        model.exact_posterior(x[:3])


# ------------------------------------------------------------------------------------------
# data forms and bad input
# ------------------------------------------------------------------------------------------
def test_data_forms_give_the_same_sequences():
    x, _ = simulated(10)
    model = GaussianHMM(2, 2)
    one = model.check_data(x)
    for same in (pd.DataFrame(x), x.tolist(), [list(row) for row in x]):
        np.testing.assert_array_equal(model.check_data(same).x, one.x)
    many = model.check_data([x[:4], pd.DataFrame(x[4:])])
    assert many.n_sequences == 2 and not many.single
    assert model.check_data(np.stack([x[:5], x[5:]])).n_sequences == 2
    flat = GaussianHMM(2, 1).check_data(pd.Series(x[:, 0]))
    assert flat.x.shape == (10, 1)
    assert GaussianHMM(2, 1).check_data([x[:3, 0], x[3:, 0]]).n_sequences == 2
    assert model.check_data(one) is one
    assert "gaussian-hmm" in MODELS


@pytest.mark.parametrize("data, error, match", [
    (np.zeros((5, 3)), ValueError, "D = 3 features per row but the model has n_features = 2"),
    (np.zeros(5), ValueError, "read as one feature"),
    ([[0.0, 1.0], [np.nan, 1.0]], ValueError, "partly missing row at time step 1"),
    ([[0.0, np.inf]], ValueError, "infinite value at time step 0"),
    ([[np.nan, np.nan]], ValueError, "every observation is missing"),
    ([np.zeros((3, 2)), np.zeros((0, 2))], ValueError, "sequence 1 is empty"),
    ([[0.0, 1.0], [2.0]], TypeError, "ragged"),
    ("1 2 3", TypeError, "got str"),
    ([["a", "b"]], TypeError, "real numbers"),
    ([1.0, [2.0, 3.0]], TypeError, "mixing numbers and sequences"),
])
def test_bad_data_are_refused_with_a_clear_message(data, error, match):
    with pytest.raises(error, match=match):
        GaussianHMM(2, 2).check_data(data)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_states": 1}, ValueError, "n_states must be an int >= 2"),
    ({"n_features": 2.5}, TypeError, "n_features must be an int"),
    ({"n_states": 10**4}, ValueError, "the transition matrix would hold"),
    ({"m0": [0.0, 1.0, 2.0]}, ValueError, r"m0 must have shape \(D,\)"),
    ({"S0": [[1.0, 2.0], [2.0, 1.0]]}, ValueError, "S0 must be positive definite"),
    ({"nu0": 0.5}, ValueError, "nu0 must be > D - 1"),
    ({"trans_prior": [[1.0, 1.0, 1.0]]}, ValueError, "trans_prior must be a number or broadcast"),
    ({"init_prior": -1.0}, ValueError, "init_prior must be finite and > 0"),
    ({"init_probs": [0.5, 0.6]}, ValueError, "init_probs must be 2 probabilities"),
    ({"covs": np.eye(2)}, ValueError, r"covs must be a finite array of shape \(K, D, D\)"),
    ({"kappa0": 0.0}, ValueError, "kappa0 must be a positive finite number"),
])
def test_bad_model_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        GaussianHMM(**{"n_states": 2, "n_features": 2, **kwargs})


@pytest.mark.parametrize("change, match", [
    ({"trans_mat": [[0.5, 0.6], [0.5, 0.5]]}, "rows must sum to 1"),
    ({"means": np.zeros((2, 3))}, r"must have shape \(2, 2\)"),
    ({"covs": -np.stack([np.eye(2)] * 2)}, "positive definite"),
    ({"means": [[np.nan, 0.0], [0.0, 0.0]]}, "must be finite"),
])
def test_bad_parameters_are_refused(change, match):
    with pytest.raises(ValueError, match=match):
        GaussianHMM(2, 2).posterior_states(np.zeros((3, 2)), {**PARAMS, **change})
    with pytest.raises(ValueError, match="missing"):
        GaussianHMM(2, 2).viterbi(np.zeros((3, 2)), {"means": PARAMS["means"]})


def test_data_driven_prior_needs_the_data_and_mle_reports_collapse():
    model = GaussianHMM(2, 2)
    with pytest.raises(ValueError, match="data-driven"):
        model.prior()
    explicit = model.with_data_prior(np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(explicit.m0, [1.0, 2.0 / 3.0])
    assert explicit.nu0 == 4.0 and not explicit.data_driven
    # a state left with a single point makes the likelihood unbounded
    x = np.array([[0.0, 0.0], [5.0, 5.0], [0.1, 0.3], [-0.2, 0.1], [0.3, -0.1]])
    start = {**PARAMS, "means": np.array([[0.0, 0.0], [5.0, 5.0]]), "covs": np.stack([np.eye(2), 0.01 * np.eye(2)])}
    with pytest.raises(DegenerateComponentError, match="state 1 collapsed"):
        fit(model, x, backend="em", mle=True, init=start, random_seed=0, progressbar=False)


# ------------------------------------------------------------------------------------------
# issue 13's classes, for this model too
# ------------------------------------------------------------------------------------------
def test_masked_rows_are_missing_observations_as_nan_rows_are():
    x, _ = simulated(6, seed=3)
    mask = np.zeros(x.shape, bool)
    mask[[1, 4]] = True
    model = GaussianHMM(2, 2)
    with_nan = x.copy()
    with_nan[mask] = np.nan
    expected, _, _, _ = enumerate_sequence(with_nan, PARAMS)
    masked = model.check_data(np.ma.MaskedArray(x, mask))
    assert masked.n_steps == 6 and list(np.flatnonzero(~masked.observed)) == [1, 4]
    np.testing.assert_allclose(model.log_likelihood(masked, PARAMS).sum(), expected, rtol=1e-12)
    partly = mask.copy()
    partly[2, 0] = True
    with pytest.raises(ValueError, match="partly missing row at time step 2"):
        model.check_data(np.ma.MaskedArray(x, partly))


@pytest.mark.parametrize("factor, match", [(1e150, "values up to"), (1e-110, "vary by only")])
def test_values_out_of_float64_range_are_refused_naming_data(factor, match):
    x, _ = simulated(20, seed=1)
    with pytest.raises(ValueError, match=f"data.*{match}.*rescale"):
        GaussianHMM(2, 2).check_data(x * factor)


def test_timestamps_far_from_the_origin_fit_like_the_centred_data():
    """1.7e12 (Unix milliseconds) + data: EM and VB must not mistake float64's storage of the
    means for a decrease of the objective, and the fit moves with the shift."""
    x, _ = simulated(300, seed=4)
    model = GaussianHMM(2, 2)
    shift = 1.7e12
    kwargs = dict(random_seed=0, progressbar=False, max_iter=60)
    for backend in ("em", "vb"):
        centred = fit(model, x, backend=backend, **kwargs).posterior["means"].values
        shifted = fit(model, x + shift, backend=backend, **kwargs).posterior["means"].values
        # float64 holds 1.7e12 + x to about 2e-4
        np.testing.assert_allclose(np.sort((shifted - shift).ravel()), np.sort(centred.ravel()), atol=0.05)


def test_python_integers_beyond_int64_are_read_as_numbers():
    x = [[2**70, 1], [2**70 + 2**20, 3], [2**70 - 2**20, 2]]
    data = GaussianHMM(2, 2).check_data(x)
    assert data.x[0, 0] == float(2**70)
