"""CategoricalHMM and DiceHMM: compiled kernels against brute-force enumeration of every state
path, long sequences, hmmlearn from identical starts, EM and VB objectives, the PyMC
declaration and its Op, and a catalogue of bad inputs (the back-ends' posteriors against the
exact one: test_agreement.py).

Reference values come from enumeration written here with plain NumPy/SciPy, from hmmlearn, or
from closed forms (13/72) -- never from the code under test.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from latentzoo.inference import ConvergenceWarning, applicable_backends, fit
from latentzoo.models.hmm import kernels
from latentzoo.models.hmm.categorical import EXACT_MAX_PATHS, CategoricalHMM, DiceHMM

from .conftest import EXPECTED_GROUPS

SEED_ROLLS = [1, 6, 3, 5, 2, 7, 3, 5, 2, 4]


# ----------------------------------------------------------------------------------------
# brute force
# ----------------------------------------------------------------------------------------
def random_params(rng, K, M, sparse=False):
    """Random parameters; ``sparse`` puts exact zeros in the transition matrix (not on the
    diagonal, so every sequence stays possible)."""
    init = rng.dirichlet(np.ones(K))
    trans = rng.dirichlet(np.ones(K), size=K)
    emission = rng.dirichlet(np.ones(M), size=K)
    if sparse:
        trans = trans * (rng.random((K, K)) < 0.6) + np.eye(K) * 0.1
        trans /= trans.sum(1, keepdims=True)
    return init, trans, emission


def enumerate_paths(init, trans, emission, x):
    """Every state path of one sequence with its joint probability p(x, z)."""
    K, T = init.size, len(x)
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    joint = init[paths[:, 0]] * emission[paths[:, 0], x[0]]
    for t in range(1, T):
        joint = joint * trans[paths[:, t - 1], paths[:, t]] * emission[paths[:, t], x[t]]
    return paths, joint


def brute_force(init, trans, emission, x):
    """Likelihood, smoothed and filtered marginals, expected counts and the Viterbi path."""
    K, M, T = init.size, emission.shape[1], len(x)
    paths, joint = enumerate_paths(init, trans, emission, x)
    evidence = joint.sum()
    post = joint / evidence
    gamma = np.stack([np.bincount(paths[:, t], weights=post, minlength=K) for t in range(T)])
    trans_counts = np.zeros((K, K))
    emission_counts = np.zeros((K, M))
    for t in range(T):
        np.add.at(emission_counts, (paths[:, t], x[t]), post)
        if t + 1 < T:
            np.add.at(trans_counts, (paths[:, t], paths[:, t + 1]), post)
    filtered = []
    for t in range(T):  # p(z_t | x_1..t): enumerate prefixes
        prefix_paths, prefix_joint = enumerate_paths(init, trans, emission, x[: t + 1])
        filtered.append(np.bincount(prefix_paths[:, t], weights=prefix_joint, minlength=K) / prefix_joint.sum())
    best = int(np.argmax(joint))
    return {
        "log_lik": np.log(evidence),
        "gamma": gamma,
        "filtered": np.array(filtered),
        "init_counts": gamma[0],
        "trans_counts": trans_counts,
        "emission_counts": emission_counts,
        "viterbi_path": paths[best],
        "viterbi_log_prob": np.log(joint[best]),
        "paths": paths,
        "posterior": post,
    }


CASES = [(seed, K, M, lengths, sparse) for seed, (K, M, lengths, sparse) in enumerate([
    (2, 2, [1], False),
    (2, 3, [6], False),
    (3, 4, [5, 3, 1], False),
    (3, 2, [7], True),
    (4, 3, [4, 4], True),
    (2, 5, [8], False),
])]


@pytest.mark.parametrize("seed, K, M, lengths, sparse", CASES)
def test_kernels_against_enumeration(seed, K, M, lengths, sparse):
    rng = np.random.default_rng(100 + seed)
    init, trans, emission = random_params(rng, K, M, sparse)
    check_kernels_against_enumeration(init, trans, emission, [rng.integers(0, M, n) for n in lengths])


@settings(max_examples=40, deadline=None)
@given(
    K=st.integers(2, 3),
    M=st.integers(2, 4),
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    sparse=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_kernels_against_enumeration_hypothesis(K, M, lengths, sparse, seed):
    rng = np.random.default_rng(seed)
    init, trans, emission = random_params(rng, K, M, sparse)
    check_kernels_against_enumeration(init, trans, emission, [rng.integers(0, M, n) for n in lengths])


def check_kernels_against_enumeration(init, trans, emission, sequences):
    K, M = emission.shape
    lengths = [len(seq) for seq in sequences]
    x = np.concatenate(sequences)
    offsets = kernels.as_offsets(lengths)
    lik = np.ascontiguousarray(emission.T[x])
    references = [brute_force(init, trans, emission, seq) for seq in sequences]

    alpha, scale, log_lik, bad = kernels.forward(init, trans, lik, offsets)
    assert bad == -1
    np.testing.assert_allclose(log_lik, [r["log_lik"] for r in references], rtol=1e-12)
    np.testing.assert_allclose(alpha, np.concatenate([r["filtered"] for r in references]), atol=1e-12)

    gamma, log_lik_s, _ = kernels.smooth(init, trans, lik, offsets)
    np.testing.assert_allclose(gamma, np.concatenate([r["gamma"] for r in references]), atol=1e-12)

    log_lik_c, init_c, trans_c, emission_c, bad = kernels.expected_counts(init, trans, lik, x, offsets, M)
    assert bad == -1
    np.testing.assert_allclose(log_lik_c, log_lik, rtol=1e-13)
    np.testing.assert_allclose(init_c, sum(r["init_counts"] for r in references), atol=1e-12)
    np.testing.assert_allclose(trans_c, sum(r["trans_counts"] for r in references), atol=1e-12)
    np.testing.assert_allclose(emission_c, sum(r["emission_counts"] for r in references), atol=1e-12)

    with np.errstate(divide="ignore"):
        path, log_prob = kernels.viterbi(np.log(init), np.log(trans), np.log(lik), offsets)
    np.testing.assert_allclose(log_prob, [r["viterbi_log_prob"] for r in references], rtol=1e-12)
    for s, reference in enumerate(references):  # the path is a most probable one (ties allowed)
        segment = path[offsets[s] : offsets[s + 1]]
        row = np.flatnonzero((reference["paths"] == segment).all(axis=1))[0]
        assert np.log(reference["posterior"][row]) + reference["log_lik"] == pytest.approx(log_prob[s], rel=1e-12)

    batch = kernels.log_likelihood_batch(init[None], trans[None], emission[None], x, offsets)
    np.testing.assert_allclose(batch[0], log_lik, rtol=1e-12)

    # value and gradient for the PyMC Op: grad * entry = expected count (Fisher's identity); the
    # gradient with respect to the log table is the expected symbol count
    with np.errstate(divide="ignore"):
        log_table = np.log(emission)
    value, grad_init, grad_trans, grad_log_table = kernels.log_table_gradient(init, trans, log_table.T, x, offsets)
    assert value == pytest.approx(sum(r["log_lik"] for r in references), rel=1e-12)
    np.testing.assert_allclose(grad_init * init, sum(r["init_counts"] for r in references), atol=1e-12)
    np.testing.assert_allclose(grad_trans * trans, sum(r["trans_counts"] for r in references), atol=1e-12)
    np.testing.assert_allclose(grad_log_table.T, sum(r["emission_counts"] for r in references), atol=1e-12)


def test_ffbs_path_frequencies_match_exact_path_posterior():
    rng = np.random.default_rng(5)
    init, trans, emission = random_params(rng, 2, 3)
    x = np.array([0, 2, 1, 1])
    reference = brute_force(init, trans, emission, x)
    n_draws = 20_000
    lik = np.ascontiguousarray(emission.T[x])
    offsets = kernels.as_offsets([4])
    codes = np.empty(n_draws, dtype=np.int64)
    for draw in range(n_draws):
        path, _, _ = kernels.ffbs(init, trans, lik, offsets, rng.random(4))
        codes[draw] = path @ (2 ** np.arange(3, -1, -1))
    reference_codes = reference["paths"] @ (2 ** np.arange(3, -1, -1))
    expected = np.zeros(16)
    expected[reference_codes] = reference["posterior"]
    frequency = np.bincount(codes, minlength=16) / n_draws
    # every path within 4.5 binomial standard errors (16 comparisons)
    se = np.sqrt(expected * (1 - expected) / n_draws)
    assert np.all(np.abs(frequency - expected) <= 4.5 * se + 1e-12)


def test_path_counts_and_chain_simulation():
    path = np.array([0, 1, 1, 2, 0, 0])
    symbols = np.array([3, 0, 0, 1, 2, 3])
    offsets = kernels.as_offsets([4, 2])
    init_c, trans_c, emission_c = kernels.path_counts(path, symbols, offsets, 3, 4)
    np.testing.assert_array_equal(init_c, [2, 0, 0])
    expected_trans = np.zeros((3, 3))
    expected_trans[0, 1] = expected_trans[1, 1] = expected_trans[1, 2] = expected_trans[0, 0] = 1
    np.testing.assert_array_equal(trans_c, expected_trans)
    assert emission_c.sum() == 6 and emission_c[1, 0] == 2
    # a deterministic cycle 0 -> 1 -> 2 -> 0 from state 1
    states = kernels.sample_chain(np.array([0.0, 1.0, 0.0]), np.roll(np.eye(3), 1, axis=1), kernels.as_offsets([5]),
                                  np.random.default_rng(0).random(5))
    np.testing.assert_array_equal(states, [1, 2, 0, 1, 2])


def log_space_forward(init, trans, emission, x):
    """Independent log-space forward recursion (logsumexp), for the scaled-vs-log check."""
    log_alpha = np.log(init) + np.log(emission[:, x[0]])
    log_trans = np.log(trans)
    for symbol in x[1:]:
        log_alpha = special.logsumexp(log_alpha[:, None] + log_trans, axis=0) + np.log(emission[:, symbol])
    return special.logsumexp(log_alpha)


def test_scaled_forward_agrees_with_log_space_forward_on_a_long_sequence():
    rng = np.random.default_rng(11)
    init, trans, emission = random_params(rng, 3, 5)
    hmm = CategoricalHMM(3, 5)
    x = hmm.simulate({"init_probs": init, "trans_mat": trans, "emission_probs": emission}, 3000, rng)[0]
    log_lik = hmm.log_likelihood(x, {"init_probs": init, "trans_mat": trans, "emission_probs": emission})
    assert log_lik[0] < -1000  # far below exp underflow
    np.testing.assert_allclose(log_lik[0], log_space_forward(init, trans, emission, x), rtol=1e-11)


def test_a_million_steps_do_not_underflow():
    rng = np.random.default_rng(3)
    K, M, T = 3, 8, 1_000_000
    init, trans, emission = random_params(rng, K, M)
    x = rng.integers(0, M, T)
    offsets = kernels.as_offsets([T])
    lik = np.ascontiguousarray(emission.T[x])
    log_lik, init_c, trans_c, emission_c, bad = kernels.expected_counts(init, trans, lik, x, offsets, M)
    assert bad == -1 and np.isfinite(log_lik[0]) and log_lik[0] < -1e6
    np.testing.assert_allclose(emission_c.sum(), T, rtol=1e-9)
    np.testing.assert_allclose(trans_c.sum(), T - 1, rtol=1e-9)
    np.testing.assert_allclose(emission_c.sum(axis=0), np.bincount(x, minlength=M), rtol=1e-9)
    with np.errstate(divide="ignore"):
        path, log_prob = kernels.viterbi(np.log(init), np.log(trans), np.log(lik), offsets)
    assert np.isfinite(log_prob[0]) and log_prob[0] < log_lik[0]
    batch = kernels.log_likelihood_batch(init[None], trans[None], emission[None], x, offsets)
    np.testing.assert_allclose(batch[0], log_lik, rtol=1e-12)


# ----------------------------------------------------------------------------------------
# the dice game
# ----------------------------------------------------------------------------------------
def test_first_roll_distribution_is_the_seeds():
    dice = DiceHMM()
    params = dice.default_params()
    first = np.exp([dice.log_likelihood([face], params)[0] for face in range(1, 9)])
    # 1/3 (1/6 + 1/4 + 1/8) = 13/72 for faces 1-4; 1/3 (1/6 + 1/8) for 5-6; 1/3 (1/8) for 7-8
    np.testing.assert_allclose(first, [13 / 72] * 4 + [7 / 72] * 2 + [1 / 24] * 2, rtol=1e-14)
    assert abs(first.sum() - 1) < 1e-14


def test_seed_rolls_under_the_seeds_game():
    dice = DiceHMM()
    params = dice.default_params()
    # with uniform switching the rolls are independent: p(x_t) = sum_d 1/3 [x_t <= n_d] / n_d
    per_roll = [sum(1 / 3 / n for n in (6, 4, 8) if face <= n) for face in SEED_ROLLS]
    np.testing.assert_allclose(dice.log_likelihood(SEED_ROLLS, params), [np.sum(np.log(per_roll))], rtol=1e-13)
    states = dice.posterior_states(SEED_ROLLS, params)
    weights = np.array([[(face <= n) / n for n in (6, 4, 8)] for face in SEED_ROLLS])
    np.testing.assert_allclose(states, weights / weights.sum(1, keepdims=True), atol=1e-13)
    np.testing.assert_allclose(dice.filter(SEED_ROLLS, params), states, atol=1e-13)
    path, log_prob = dice.viterbi(SEED_ROLLS, params)
    # independent rolls: the best die per roll is the smallest that can show the face
    np.testing.assert_array_equal(path, [1, 0, 1, 0, 1, 2, 1, 0, 1, 1])
    assert log_prob == pytest.approx(np.sum(np.log(weights.max(1) / 3)), rel=1e-13)
    assert dice.coords(SEED_ROLLS)["state"] == ["D6", "D4", "D8"]


def test_impossible_observation_is_a_clear_error_not_nan():
    dice = DiceHMM()
    stuck_on_d4 = {"init_probs": [0, 1, 0], "trans_mat": np.eye(3), "emission_probs": dice.default_params()["emission_probs"]}
    for method in (dice.filter, dice.posterior_states, dice.viterbi):
        with pytest.raises(ValueError, match="probability zero"):
            method([1, 2, 7], stuck_on_d4)
    assert dice.log_likelihood([1, 2, 7], stuck_on_d4)[0] == -np.inf
    with pytest.raises(ValueError, match="position 2 of sequence 1"):
        dice.expected_stats([[1], [3, 4, 7]], stuck_on_d4)


def test_simulate_respects_the_mask_and_shapes():
    dice = DiceHMM()
    rolls, states = dice.simulate(dice.default_params(), 20_000, rng=np.random.default_rng(0))
    assert rolls.shape == states.shape == (20_000,)
    assert rolls.min() >= 1 and rolls.max() <= 8
    limits = np.array(dice.dice)[states]
    assert np.all(rolls <= limits)
    # frequency of face 1 is 13/72 in every roll (uniform switching)
    assert abs(np.mean(rolls == 1) - 13 / 72) < 4 * np.sqrt(13 / 72 * 59 / 72 / 20_000)
    several, paths = dice.simulate(dice.default_params(), [3, 5], rng=1)
    assert [len(s) for s in several] == [3, 5] and [len(p) for p in paths] == [3, 5]


# ----------------------------------------------------------------------------------------
# against hmmlearn
# ----------------------------------------------------------------------------------------
def test_baum_welch_matches_hmmlearn_from_the_same_start():
    hmmlearn = pytest.importorskip("hmmlearn.hmm")
    rng = np.random.default_rng(2024)
    K, M = 3, 8
    truth = dict(zip(("init_probs", "trans_mat", "emission_probs"), random_params(rng, K, M)))
    model = CategoricalHMM(K, M)
    sequences, _ = model.simulate(truth, [400, 250, 350], rng)
    start = dict(zip(("init_probs", "trans_mat", "emission_probs"), random_params(np.random.default_rng(7), K, M)))
    n_iter = 25

    reference = hmmlearn.CategoricalHMM(
        n_components=K, n_iter=n_iter, tol=-np.inf, init_params="", params="ste", implementation="scaling"
    )
    reference.n_features = M
    reference.startprob_, reference.transmat_, reference.emissionprob_ = (
        start["init_probs"], start["trans_mat"], start["emission_probs"]
    )
    reference.fit(np.concatenate(sequences)[:, None], lengths=[len(s) for s in sequences])

    with pytest.warns(ConvergenceWarning):
        idata = fit(model, sequences, backend="em", mle=True, init=start, max_iter=n_iter, tol=1e-300,
                    random_seed=0, progressbar=False)
    posterior = idata.posterior.isel(chain=0, draw=0)
    np.testing.assert_allclose(posterior["init_probs"].values, reference.startprob_, atol=1e-9)
    np.testing.assert_allclose(posterior["trans_mat"].values, reference.transmat_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(posterior["emission_probs"].values, reference.emissionprob_, rtol=1e-8, atol=1e-12)
    history = idata.fit_history["log_likelihood"].values[0]
    # hmmlearn records the log-likelihood of every E-step, i.e. of the parameters before each M-step
    np.testing.assert_allclose(history[:n_iter], list(reference.monitor_.history)[-n_iter:], rtol=1e-12)
    X = np.concatenate(sequences)[:, None]
    lengths = [len(s) for s in sequences]
    np.testing.assert_allclose(
        idata.log_likelihood["symbols"].values.sum(), reference.score(X, lengths), rtol=1e-12
    )
    path, _ = model.viterbi(sequences, {k: posterior[k].values for k in start})
    _, reference_path = reference.decode(X, lengths)
    np.testing.assert_array_equal(np.concatenate(path), reference_path)


# ----------------------------------------------------------------------------------------
# back-ends
# ----------------------------------------------------------------------------------------
def test_every_backend_applies():
    for model in (DiceHMM(), CategoricalHMM(2, 3)):
        assert set(applicable_backends(model)) == set(EXPECTED_GROUPS)


@pytest.mark.parametrize("mle", [True, False])
def test_em_is_monotone_and_reaches_a_fixed_point(mle):
    model = CategoricalHMM(2, 4, trans_prior=2.0, emission_prior=1.5)
    rng = np.random.default_rng(9)
    truth = {"init_probs": [0.6, 0.4], "trans_mat": [[0.9, 0.1], [0.2, 0.8]],
             "emission_probs": [[0.5, 0.3, 0.1, 0.1], [0.05, 0.15, 0.3, 0.5]]}
    data, _ = model.simulate(truth, [200, 300], rng)
    # tol is per time step (500 here); tight enough that one more step moves nothing by 1e-5
    idata = fit(model, data, backend="em", mle=mle, n_init=3, random_seed=1, tol=1e-12, max_iter=5000,
                progressbar=False)
    history = idata.fit_history[list(idata.fit_history.data_vars)[0]].values
    for run in history:
        run = run[np.isfinite(run)]
        assert np.all(np.diff(run) >= -1e-9 * np.abs(run[1:]))
    assert idata.posterior.attrs["converged"] == 1
    # a fixed point: one more E+M step changes nothing
    params = {k: idata.posterior[k].values[0, 0] for k in model.param_names}
    stats, _ = model.expected_stats(data, params)
    from latentzoo.models.core.conjugate import apply_to_factors

    again = apply_to_factors(model.conditional_posterior(stats, mle=mle), "mode")
    for name in params:
        np.testing.assert_allclose(again[name], params[name], atol=1e-5)


def direct_log_evidence(model, x):
    """log p(x) by summing the Dirichlet-multinomial marginal over every path (no grouping)."""
    K, M = model.n_states, model.n_symbols
    mask = model._mask if model._mask is not None else np.ones((K, M), bool)
    terms = []
    for path in itertools.product(range(K), repeat=len(x)):
        if not all(mask[z, s] for z, s in zip(path, x)):
            continue
        counts_i = np.bincount([path[0]], minlength=K)
        counts_t = np.zeros((K, K))
        counts_e = np.zeros((K, M))
        for t in range(len(x)):
            counts_e[path[t], x[t]] += 1
            if t:
                counts_t[path[t - 1], path[t]] += 1

        def log_beta(a):
            return special.gammaln(a).sum(-1) - special.gammaln(a.sum(-1))

        term = log_beta(1.0 + counts_i) - log_beta(np.ones(K))
        term += np.sum(log_beta(1.0 + counts_t) - log_beta(np.ones((K, K))))
        for k in range(K):
            allowed = mask[k]
            term += log_beta(1.0 + counts_e[k, allowed]) - log_beta(np.ones(allowed.sum()))
        terms.append(term)
    return special.logsumexp(terms)


@pytest.mark.parametrize("model, x", [
    (CategoricalHMM(2, 3), [0, 2, 2, 1, 0]),
    (DiceHMM(dice=(2, 3)), [1, 3, 2, 2]),
])
def test_exact_evidence_against_direct_enumeration_and_prior_monte_carlo(model, x):
    posterior = model.exact_posterior(x)
    assert posterior.log_evidence == pytest.approx(direct_log_evidence(model, np.asarray(x) - model.first_label), rel=1e-12)
    rng = np.random.default_rng(0)
    draws = {name: prior.sample(rng, size=200_000) for name, prior in model.prior().items()}
    likelihood = np.exp(model.log_likelihood(x, draws)[:, 0])
    estimate, se = likelihood.mean(), likelihood.std() / np.sqrt(likelihood.size)
    assert abs(np.exp(posterior.log_evidence) - estimate) < 4 * se


def test_exact_refuses_long_sequences():
    with pytest.raises(ValueError, match="more than the limit"):
        CategoricalHMM(3, 4).exact_posterior(np.zeros(30, int))
    assert 3**13 < EXACT_MAX_PATHS < 3**14


@pytest.fixture(scope="module")
def seed_fits():
    dice = DiceHMM()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "exact": fit(dice, SEED_ROLLS, backend="exact", random_seed=1, draws=4000),
            "gibbs": fit(dice, SEED_ROLLS, backend="gibbs", random_seed=1, draws=1000, tune=200, chains=2,
                         progressbar=False),
            "vb": fit(dice, SEED_ROLLS, backend="vb", random_seed=1, progressbar=False),
            "em": fit(dice, SEED_ROLLS, backend="em", random_seed=1, progressbar=False),
        }


def test_vb_elbo_is_monotone_and_below_the_evidence(seed_fits):
    # (VB's means and sds against the exact posterior: test_agreement.py, on data where
    # mean-field VB is closer to the exact means than the prior is, which the seed's ten rolls
    # are not)
    vb = seed_fits["vb"]
    elbo = vb.fit_history["elbo"].values
    for run in elbo:
        run = run[np.isfinite(run)]
        assert np.all(np.diff(run) >= -1e-9 * np.abs(run[1:]))
    evidence = DiceHMM().exact_posterior(SEED_ROLLS).log_evidence
    assert vb.posterior.attrs["objective"] <= evidence + 1e-9 and vb.posterior.attrs["objective_name"] == "ELBO"


def test_vb_data_term_is_the_log_normaliser_of_q_z():
    """log Z = log sum_z prod_t exp(E[log theta]) by enumeration, and the expected counts are
    the q(z) marginals of the same enumeration."""
    model = CategoricalHMM(2, 3)
    x = [0, 2, 1, 1, 0]
    factors = model.conditional_posterior(
        {"init_counts": np.array([0.3, 0.7]), "trans_counts": np.array([[1.0, 2.0], [0.5, 0.2]]),
         "emission_counts": np.array([[1.0, 0.0, 2.0], [0.3, 1.1, 0.4]])}
    )
    tilde = [np.exp(factors[name].expected_log()) for name in model.param_names]
    assert np.all(tilde[1].sum(1) < 1)  # sub-normalised
    reference = brute_force(*tilde, np.array(x))
    stats, data_term = model.vb_expected_stats(x, factors)
    assert data_term == pytest.approx(reference["log_lik"], rel=1e-12)
    np.testing.assert_allclose(stats["trans_counts"], reference["trans_counts"], atol=1e-12)
    np.testing.assert_allclose(stats["emission_counts"], reference["emission_counts"], atol=1e-12)


def test_vb_and_em_agree_on_long_data():
    """With 3,000 rolls the posterior concentrates: VB's means approach the MAP."""
    dice = DiceHMM()
    truth = {"init_probs": [1 / 3] * 3, "trans_mat": [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]],
             "emission_probs": dice.default_params()["emission_probs"]}
    rolls, _ = dice.simulate(truth, 3000, rng=np.random.default_rng(4))
    em = fit(dice, rolls, backend="em", random_seed=0, n_init=2, progressbar=False).posterior
    vb = fit(dice, rolls, backend="vb", random_seed=0, n_init=2, draws=500, progressbar=False).posterior
    for name in ("trans_mat", "emission_probs"):
        np.testing.assert_allclose(vb[name].mean(("chain", "draw")).values, em[name].values[0, 0], atol=0.03)


def test_masked_emissions_stay_exactly_zero_in_every_backend(seed_fits):
    mask = DiceHMM()._mask
    for backend, idata in seed_fits.items():
        emission = idata.posterior["emission_probs"].values
        assert np.all(emission[..., ~mask] == 0), backend
        np.testing.assert_allclose(emission.sum(-1), 1, atol=1e-12)


# ----------------------------------------------------------------------------------------
# the PyMC declaration and its custom Op
# ----------------------------------------------------------------------------------------
def pymc_log_density(model, data, params):
    """The PyMC model's log-density at ``params`` in the original (constrained) space, without
    Jacobians: the value transforms are removed, so the value variables are the probabilities."""
    from pymc.model.transform.conditioning import remove_value_transforms

    pm_model = remove_value_transforms(model.pymc_model(data))
    point = model.pymc_initial_point(params)
    return float(pm_model.compile_logp(jacobian=False)({name: point[name] for name in point}))


def prior_draw(model, rng):
    return {name: dist.sample(rng) for name, dist in model.prior().items()}


@pytest.mark.pymc
@pytest.mark.parametrize("model, data", [
    (DiceHMM(), SEED_ROLLS),
    (DiceHMM(dice=(6, 2), init_prior=[2.0, 0.5], trans_prior=[[3.0, 1.0], [1.0, 2.0]], emission_prior=1.5), [[1, 2, 5], [6, 1]]),
    (CategoricalHMM(3, 4, trans_prior=np.arange(1.0, 10.0).reshape(3, 3)), [[0, 3, 3, 1], [2, 2, 1, 0, 0]]),
    (CategoricalHMM(2, 3, emission_mask=[[True, True, False], [False, True, True]]), [0, 1, 2, 1]),
], ids=["dice-seed", "dice-priors", "categorical", "categorical-mask"])
def test_pymc_log_density_equals_the_numpy_log_posterior(model, data):
    rng = np.random.default_rng(5)
    for _ in range(3):
        params = prior_draw(model, rng)
        expected = float(model.log_prior(params) + model.log_likelihood(data, params).sum())
        assert pymc_log_density(model, data, params) == pytest.approx(expected, rel=1e-10, abs=1e-9)


@pytest.mark.pymc
@pytest.mark.parametrize("masked", [False, True])
def test_op_gradient_against_finite_differences(masked):
    """The Op's gradient (Fisher's identity) against central differences of the forward-only
    kernel, with respect to every entry, at unnormalised positive parameters (the identity
    holds for any entries, not just stochastic rows)."""
    import pytensor
    import pytensor.tensor as pt

    from latentzoo.models.ops.hmm_op import hmm_log_likelihood

    rng = np.random.default_rng(11)
    K, M = 3, 4
    init, trans, emission = rng.uniform(0.2, 1.0, K), rng.uniform(0.2, 1.0, (K, K)), rng.uniform(0.2, 1.0, (K, M))
    if masked:
        emission[0, 3] = emission[1, 0] = 0.0
    symbols = rng.integers(1, M - 1, 40)  # 1..2: every state can emit them
    offsets = np.array([0, 15, 40])
    variables = [pt.dvector(), pt.dmatrix(), pt.dmatrix()]
    value = hmm_log_likelihood(*variables, symbols, offsets)
    function = pytensor.function(variables, [value, *pytensor.grad(value, variables)])
    value_op, *grads = function(init, trans, emission)

    def reference(i, a, b):
        return float(kernels.log_likelihood_batch(i[None], a[None], b[None], symbols, offsets).sum())

    assert value_op == pytest.approx(reference(init, trans, emission), rel=1e-12)
    arrays = [init, trans, emission]
    for which, grad in enumerate(grads):
        numeric = np.zeros_like(arrays[which])
        for index in np.ndindex(arrays[which].shape):
            if arrays[which][index] == 0:
                continue
            step = 1e-6
            shifted = [a.copy() for a in arrays]
            shifted[which][index] += step
            up = reference(*shifted)
            shifted[which][index] -= 2 * step
            numeric[index] = (up - reference(*shifted)) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)
    if masked:
        assert grads[2][0, 3] == 0 and grads[2][1, 0] == 0


@pytest.mark.pymc
@pytest.mark.parametrize("n_steps", [1000, 5000])
def test_pymc_gradient_is_finite_on_long_sequences(n_steps):
    """A log-space scan's gradient turns 0/0 once forward log-messages pass -745 (T ~ 350);
    the scaled forward-backward Op stays finite."""
    dice = DiceHMM()
    rolls, _ = dice.simulate(dice.default_params(), n_steps, rng=2)
    pm_model = dice.pymc_model(rolls)
    point = pm_model.initial_point()
    assert pm_model.compile_logp()(point) < -1.5 * n_steps  # log(1/8) per roll at most... and finite
    gradient = pm_model.compile_dlogp()(point)
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)


@pytest.mark.pymc
def test_map_finds_the_em_fixed_point():
    dice = DiceHMM(trans_prior=2.0, emission_prior=2.0)
    truth = {"init_probs": [0.6, 0.2, 0.2], "trans_mat": [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]],
             "emission_probs": dice.default_params()["emission_probs"]}
    rolls, _ = dice.simulate(truth, 300, rng=4)
    start = dice.initial_params(dice.check_data(rolls), np.random.default_rng(0))
    em = fit(dice, rolls, backend="em", init=start, tol=1e-12, max_iter=5000, random_seed=0, progressbar=False)
    pymc_map = fit(dice, rolls, backend="map", init=start, random_seed=0, progressbar=False)
    for name in dice.param_names:
        # L-BFGS stops on a flat ridge a little short of the fixed point EM converges to
        np.testing.assert_allclose(pymc_map.posterior[name].values, em.posterior[name].values, atol=1e-3)
    map_objective = float(pymc_map.fit_history["log_posterior"].values.ravel()[-1])
    em_objective = float(em.fit_history["log_posterior"].values.ravel()[-1])
    assert map_objective == pytest.approx(em_objective, abs=1e-4) and map_objective <= em_objective + 1e-9


def test_pymc_gibbs_refuses_long_sequences():
    from latentzoo.models.hmm.pymc import PYMC_GIBBS_MAX_STEPS

    with pytest.raises(ValueError, match="O\\(T\\^2\\).*backend='gibbs'"):
        DiceHMM().pymc_model([1] * (PYMC_GIBBS_MAX_STEPS + 1), marginalized=False)


def test_relabelling_recovers_permuted_states_of_an_exchangeable_hmm():
    """CategoricalHMM without a mask has exchangeable states: a chain reporting the states in
    the other order is mapped back (rows and columns of trans_mat, the state probabilities)."""
    from latentzoo.inference.labels import reference_from, relabel

    hmm = CategoricalHMM(2, 3)
    truth = {"init_probs": [0.5, 0.5], "trans_mat": [[0.9, 0.1], [0.2, 0.8]],
             "emission_probs": [[0.8, 0.15, 0.05], [0.05, 0.15, 0.8]]}
    symbols, _ = hmm.simulate(truth, 200, rng=3)
    idata = fit(hmm, symbols, backend="gibbs", draws=50, tune=50, chains=2, init=truth, random_seed=0, progressbar=False)
    swapped_posterior = idata.posterior.to_dataset()
    order = [1, 0]
    for name in ("init_probs", "trans_mat", "emission_probs", "state_probs"):
        variable = swapped_posterior[name]
        values = variable.values.copy()
        axis = variable.dims.index("state")
        values[1] = np.take(values[1], order, axis=axis - 1)
        if "state_next" in variable.dims:
            values[1] = np.take(values[1], order, axis=variable.dims.index("state_next") - 1)
        swapped_posterior[name] = (variable.dims, values)
    swapped = idata.copy()
    swapped["posterior"] = swapped_posterior
    assert not np.allclose(swapped.posterior["emission_probs"].values, idata.posterior["emission_probs"].values)
    restored = relabel(swapped, reference_from(idata, "state", paired_dims=hmm.paired_label_dims), "state",
                       paired_dims=hmm.paired_label_dims)
    for name in ("init_probs", "trans_mat", "emission_probs", "state_probs"):
        np.testing.assert_allclose(restored.posterior[name].values, idata.posterior[name].values)


# ----------------------------------------------------------------------------------------
# labels (the result layout is tested for every model in test_contract_models.py)
# ----------------------------------------------------------------------------------------
def test_label_dims():
    assert CategoricalHMM(3, 4).label_dim == "state"
    assert CategoricalHMM(2, 2, emission_mask=[[True, False], [True, True]]).label_dim is None
    assert DiceHMM().label_dim is None
    assert DiceHMM().paired_label_dims == {"state_next": "state"}
    assert (CategoricalHMM.name, DiceHMM.name) == ("categorical-hmm", "dice-hmm")


# ----------------------------------------------------------------------------------------
# bad inputs
# ----------------------------------------------------------------------------------------
BAD_DATA = [
    ("symbol out of range", CategoricalHMM(2, 3), [0, 3], ValueError, r"contains \[3\].*integers 0..2"),
    ("negative", CategoricalHMM(2, 3), [0, -1], ValueError, r"contains \[-1\]"),
    ("fraction", CategoricalHMM(2, 3), [0.0, 1.5], ValueError, r"non-integer values \[1.5\]"),
    ("inf", CategoricalHMM(2, 3), [0.0, np.inf], ValueError, "infinite"),
    ("every step missing", CategoricalHMM(2, 3), [[np.nan], [None, None]], ValueError, "every one of the 3 steps is missing"),
    ("DataFrame", CategoricalHMM(2, 3), pd.DataFrame({"rolls": [0, 1, 2]}), TypeError, r"pass one column \(df\['rolls'\]\)"),
    ("0-d array", CategoricalHMM(2, 3), np.array(1), ValueError, "got a 0-d array"),
    ("text token", DiceHMM(), "1 2 x", ValueError, "got 'x' in '1 2 x'"),
    ("huge integer", DiceHMM(), [1, 2, 2**70], ValueError, r"contains \[1180591620717411303424\].*faces 1..8"),
    ("int64 wrap-around", DiceHMM(), np.array([1, 2**63 + 1], dtype=np.uint64), ValueError, r"\[9223372036854775809\]"),
    ("face 0", DiceHMM(), [1, 0, 3], ValueError, r"contains \[0\].*faces 1..8"),
    ("face beyond the largest die", DiceHMM(), [1, 9], ValueError, r"contains \[9\].*faces 1..8"),
    ("empty sequence", CategoricalHMM(2, 3), [[0, 1], []], ValueError, "sequence 1 is empty"),
    ("empty list", CategoricalHMM(2, 3), [], ValueError, "at least one sequence"),
    ("empty text", DiceHMM(), "", ValueError, "empty string"),
    ("mixed numbers and sequences", CategoricalHMM(2, 3), [0, [1, 2]], TypeError, "mixing numbers and sequences"),
    ("list of dicts", CategoricalHMM(2, 3), [{"a": 1}], TypeError, "must hold sequences"),
    ("strings in a sequence", CategoricalHMM(2, 3), [["a", "b"]], TypeError, "dtype"),
    ("2-D sequence", CategoricalHMM(2, 3), [np.zeros((2, 2), int)], ValueError, "must be 1-D"),
    ("dict", CategoricalHMM(2, 3), {"x": [0]}, TypeError, "got dict"),
    ("None", CategoricalHMM(2, 3), None, TypeError, "got NoneType"),
    ("symbol no state emits", CategoricalHMM(2, 3, emission_mask=[[True, False, False], [True, True, False]]), [0, 2],
     ValueError, "no state can emit"),
]


@pytest.mark.parametrize("label, model, data, error, message", BAD_DATA, ids=[row[0] for row in BAD_DATA])
def test_bad_data(label, model, data, error, message):
    with pytest.raises(error, match=message):
        model.check_data(data)


def test_good_data_forms():
    dice = DiceHMM()
    assert dice.check_data("1 6 3 5 2 7 3 5 2 4").n_steps == 10
    assert dice.check_data(np.array(SEED_ROLLS, dtype=float)).single
    many = CategoricalHMM(2, 3).check_data([[0, 1], (2,), np.array([1, 1, 1])])
    assert many.n_sequences == 3 and list(many.lengths) == [2, 1, 3]
    assert CategoricalHMM(2, 3).check_data(np.zeros((4, 5), int)).n_sequences == 4


def test_validated_data_passes_through_unchanged(monkeypatch):
    from latentzoo.models.core.sequences import Alphabet

    dice = DiceHMM()
    data = dice.check_data(SEED_ROLLS)
    np.testing.assert_array_equal(data.present_symbols, [0, 1, 2, 3, 4, 5, 6])  # faces 1..7
    low = CategoricalHMM(2, 8).check_data([0, 3, 1])
    # a second check, by this or any model that accepts the symbols, scans nothing
    monkeypatch.setattr(Alphabet, "read", lambda *args: pytest.fail("validated data were scanned again"))
    assert dice.check_data(data) is data
    assert DiceHMM(trans_prior=2.0).check_data(data) is data
    params = dice.default_params()
    dice.log_likelihood(data, params)
    dice.expected_stats(data, params)
    dice.sample_stats(data, params, np.random.default_rng(0))
    dice.vb_expected_stats(data, dice.conditional_posterior(dice.expected_stats(data, params)[0]))
    dice.latent_posterior(data, params)
    dice.exact_posterior(data), dice.filter(data, params), dice.viterbi(data, params)
    dice.coords(data), dice.observed_data(data), dice.n_observations(data), dice.objective_scale(data)
    # a narrower alphabet that holds the symbols present is compatible too
    assert CategoricalHMM(3, 4).check_data(low) is low


@pytest.mark.parametrize("checked_by, model, message", [
    (CategoricalHMM(2, 8), CategoricalHMM(2, 4),
     r"validated for another model and contain the symbol 7, but CategoricalHMM takes integers 0..3"),
    (DiceHMM(), CategoricalHMM(2, 8), r"validated for another model, whose symbols start at 1, but CategoricalHMM"),
    (CategoricalHMM(2, 8), DiceHMM(), r"validated for another model, whose symbols start at 0, but DiceHMM takes faces"),
    (CategoricalHMM(2, 8), CategoricalHMM(2, 8, emission_mask=np.arange(8) < np.array([[7], [5]])),
     "the symbol 7, which no state can emit"),
])
def test_validated_data_for_an_incompatible_model_is_rejected(checked_by, model, message):
    data = checked_by.check_data([1, 7, 2])
    with pytest.raises(ValueError, match=message):
        model.check_data(data)


def test_hand_built_hmm_data_is_validated():
    from latentzoo.models import HMMData

    model = CategoricalHMM(2, 3)
    built = HMMData(np.array([0, 2, 1, 1]), np.array([0, 1, 4]), single=False)
    checked = model.check_data(built)
    assert checked is not built and checked.present_symbols.tolist() == [0, 1, 2]
    assert [list(s) for s in checked.split(checked.symbols)] == [[0], [2, 1, 1]]
    with pytest.raises(ValueError, match=r"sequence 0 contains \[3\]"):
        model.check_data(HMMData(np.array([3, 0]), np.array([0, 2]), single=True))
    with pytest.raises(ValueError, match="offsets rising from 0 to len"):
        model.check_data(HMMData(np.array([0, 1]), np.array([0, 3]), single=True))


GOOD = {"init_probs": [0.5, 0.5], "trans_mat": [[0.9, 0.1], [0.2, 0.8]], "emission_probs": [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]}
BAD_PARAMS = [
    ("row does not sum to one", {**GOOD, "trans_mat": [[0.9, 0.2], [0.2, 0.8]]}, ValueError, r"'trans_mat'\] row 0 must sum to 1"),
    ("init does not sum to one", {**GOOD, "init_probs": [0.5, 0.6]}, ValueError, r"'init_probs'\] must sum to 1"),
    ("negative entry", {**GOOD, "emission_probs": [[1.2, -0.2, 0.0], [0.2, 0.3, 0.5]]}, ValueError, ">= 0"),
    ("wrong shape", {**GOOD, "trans_mat": [[1.0]]}, ValueError, r"shape \(2, 2\)"),
    ("missing key", {"init_probs": [0.5, 0.5]}, ValueError, "missing"),
    ("not a dict", [0.5, 0.5], TypeError, "must be a dict"),
    ("nan", {**GOOD, "init_probs": [np.nan, 0.5]}, ValueError, "finite"),
]


@pytest.mark.parametrize("label, params, error, message", BAD_PARAMS, ids=[row[0] for row in BAD_PARAMS])
@pytest.mark.parametrize("method", ["log_likelihood", "filter", "posterior_states", "viterbi"])
def test_bad_params_to_model_level_methods(label, params, error, message, method):
    with pytest.raises(error, match=message):
        getattr(CategoricalHMM(2, 3), method)([0, 1, 2], params)


def test_masked_entry_must_be_zero():
    dice = DiceHMM()
    params = dice.default_params()
    params["emission_probs"] = np.full((3, 8), 1 / 8)
    with pytest.raises(ValueError, match=r"state D6 cannot emit symbol 7"):
        dice.viterbi(SEED_ROLLS, params)
    with pytest.raises(ValueError, match="init"):
        fit(dice, SEED_ROLLS, backend="em", init=params, progressbar=False)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n_states": 1}, ValueError, "n_states must be an int >= 2"),
    ({"n_symbols": 2.5}, TypeError, "n_symbols must be an int"),
    ({"trans_prior": -1.0}, ValueError, "trans_prior must be finite and > 0"),
    ({"emission_prior": np.ones((3, 3))}, ValueError, "emission_prior must be a number or broadcast"),
    ({"emission_prior": "1"}, TypeError, "emission_prior must be a positive number"),
    ({"emission_mask": [[True, False], [False, False]], "n_states": 2, "n_symbols": 2}, ValueError, "state 1 can emit no symbol"),
    ({"emission_mask": [[1, 0], [1, 1]], "n_states": 2, "n_symbols": 2}, TypeError, "boolean"),
])
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        CategoricalHMM(**{"n_states": 2, "n_symbols": 4, **kwargs})


@pytest.mark.parametrize("dice, error", [((6,), ValueError), ((6, 1), ValueError), ("648", TypeError), ((6, 4.5), TypeError)])
def test_bad_dice(dice, error):
    with pytest.raises(error, match="dice"):
        DiceHMM(dice=dice)
