"""Missing observations in the hidden Markov models.

A missing step keeps its hidden state but drops its emission factor. Every reference here is
brute force written from that definition, never the code under test:

* the likelihood, the filtered and smoothed state probabilities, the Viterbi path and the
  expected counts by enumerating every hidden path, with the missing emission factors left out;
* the same likelihood as the sum, over every symbol a missing step could have shown, of the
  complete-data likelihoods (marginalising the missing symbols);
* the exact posterior by enumerating paths with the Dirichlet closed form per path, and its
  evidence as the sum of the complete-data evidences over the missing symbols.

The back-ends (em, vb, gibbs, exact, map and the explicit-state PyMC model) then run on data
with missing steps and are held to these references.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import special

from latentzoo.inference import fit
from latentzoo.models import CategoricalHMM, DiceHMM
from latentzoo.models.core.sequences import MISSING

from .conftest import Reference, agreement_failures, assert_no_failures
from .test_agreement import MASKED_HMM, MASKED_SYMBOLS, hmm_mask, hmm_priors, quiet_fit

HMM = CategoricalHMM(2, 3)
PARAMS = {
    "init_probs": np.array([0.7, 0.3]),
    "trans_mat": np.array([[0.8, 0.2], [0.35, 0.65]]),
    "emission_probs": np.array([[0.6, 0.3, 0.1], [0.1, 0.25, 0.65]]),
}
#: one sequence with missing steps inside and at both ends (None: missing)
SEQUENCE = [None, 0, 2, None, 1, 2, None]


# ----------------------------------------------------------------------------------------
# brute force
# ----------------------------------------------------------------------------------------
def path_weights(sequence, params) -> tuple[np.ndarray, np.ndarray]:
    """Every hidden path of one sequence and its joint probability p(x_observed, z), the
    emission factor of a missing step (None) left out."""
    K = params["init_probs"].size
    paths = np.array(list(itertools.product(range(K), repeat=len(sequence))))
    weights = np.empty(len(paths))
    for row, path in enumerate(paths):
        p = params["init_probs"][path[0]]
        for t in range(1, len(path)):
            p *= params["trans_mat"][path[t - 1], path[t]]
        for t, symbol in enumerate(sequence):
            if symbol is not None:
                p *= params["emission_probs"][path[t], symbol]
        weights[row] = p
    return paths, weights


def fillings(sequence, n_symbols: int):
    """Every complete sequence that agrees with ``sequence`` on its observed steps."""
    gaps = [t for t, symbol in enumerate(sequence) if symbol is None]
    for values in itertools.product(range(n_symbols), repeat=len(gaps)):
        complete = list(sequence)
        for t, value in zip(gaps, values):
            complete[t] = value
        yield complete


def enumerated_posterior(model, sequence) -> tuple[dict[str, Reference], float]:
    """Exact posterior mean and sd of every parameter entry and the log evidence of one
    sequence with missing steps (None): every path the mask allows, each with its Dirichlet
    closed form B(prior + counts) / B(prior); a missing step adds no emission count."""
    mask = hmm_mask(model)
    K, M = model.n_states, model.n_symbols
    x = [None if s is None else s - model.first_label for s in sequence]
    choices = [range(K) if s is None else np.flatnonzero(mask[:, s]) for s in x]
    paths = np.array(list(itertools.product(*choices)))
    n_paths, rows = len(paths), np.arange(len(paths))
    counts = {"init_probs": np.zeros((n_paths, K)), "trans_mat": np.zeros((n_paths, K, K)),
              "emission_probs": np.zeros((n_paths, K, M))}
    counts["init_probs"][rows, paths[:, 0]] = 1
    for t, symbol in enumerate(x):
        if symbol is not None:
            counts["emission_probs"][rows, paths[:, t], symbol] += 1
        if t:
            counts["trans_mat"][rows, paths[:, t - 1], paths[:, t]] += 1
    allowed = {"init_probs": np.ones(K, bool), "trans_mat": np.ones((K, K), bool), "emission_probs": mask}

    def log_beta(alpha, where):
        return (np.where(where, special.gammaln(np.where(where, alpha, 1.0)), 0.0).sum(-1)
                - special.gammaln(np.where(where, alpha, 0.0).sum(-1)))

    priors = hmm_priors(model)
    posterior = {name: np.where(allowed[name], priors[name] + counts[name], 0.0) for name in counts}
    log_weight = sum(
        (log_beta(posterior[name], allowed[name]) - log_beta(priors[name], allowed[name])).reshape(n_paths, -1).sum(1)
        for name in counts
    )
    log_evidence = float(special.logsumexp(log_weight))
    weight = np.exp(log_weight - log_evidence)
    references = {}
    for name, alpha in posterior.items():
        total = alpha.sum(-1, keepdims=True)
        mean = np.tensordot(weight, alpha / total, axes=1)
        second = np.tensordot(weight, alpha * (alpha + 1) / (total * (total + 1)), axes=1)
        references[name] = Reference(mean, np.where(allowed[name], np.sqrt(np.maximum(second - mean**2, 0)), 0.0))
    return references, log_evidence


def as_nan(sequence) -> list[float]:
    return [np.nan if s is None else float(s) for s in sequence]


# ----------------------------------------------------------------------------------------
# input forms
# ----------------------------------------------------------------------------------------
MISSING_FORMS = {
    "list with None": SEQUENCE,
    "list with NaN": as_nan(SEQUENCE),
    "float array with NaN": np.array(as_nan(SEQUENCE)),
    "masked array": np.ma.masked_array([9 if s is None else s for s in SEQUENCE], mask=[s is None for s in SEQUENCE]),
    "float Series with NaN": pd.Series(as_nan(SEQUENCE)),
    "nullable Int64 Series": pd.Series(SEQUENCE, dtype="Int64"),
    "object Series with pd.NA": pd.Series([pd.NA if s is None else s for s in SEQUENCE], dtype=object),
    "text with NA, NaN and ?": "NA 0 2\tnan , 1 2 ?",
}


@pytest.mark.parametrize("form", MISSING_FORMS)
def test_every_form_of_missing_gives_the_same_data(form):
    data = HMM.check_data(MISSING_FORMS[form])
    expected = [MISSING if s is None else s for s in SEQUENCE]
    assert data.single and data.symbols.tolist() == expected
    assert data.n_missing == 3 and data.missing.tolist() == [s is None for s in SEQUENCE]


def test_dice_labels_keep_the_missing_code():
    data = DiceHMM().check_data([1, None, 8])
    assert data.symbols.tolist() == [0, MISSING, 7] and data.labels.tolist() == [1, MISSING, 8]
    # missing entries of a masked array may hold anything, even values outside the faces
    masked = np.ma.masked_array([1, 99, 8], mask=[False, True, False])
    assert DiceHMM().check_data(masked).labels.tolist() == [1, MISSING, 8]
    # a 2-D masked array: one sequence per row, each with its own mask
    rows = np.ma.masked_array([[1, 2], [3, 4]], mask=[[False, True], [False, False]])
    assert DiceHMM().check_data(rows).labels.tolist() == [1, MISSING, 3, 4]


# ----------------------------------------------------------------------------------------
# inference given parameters, against enumeration
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", MISSING_FORMS)
def test_likelihood_drops_the_missing_emission_factors(form):
    _, weights = path_weights(SEQUENCE, PARAMS)
    np.testing.assert_allclose(HMM.log_likelihood(MISSING_FORMS[form], PARAMS), [np.log(weights.sum())], rtol=1e-12)


def test_likelihood_is_the_sum_over_the_symbols_a_missing_step_could_show():
    marginal = sum(path_weights(complete, PARAMS)[1].sum() for complete in fillings(SEQUENCE, 3))
    assert len(list(fillings(SEQUENCE, 3))) == 27
    np.testing.assert_allclose(HMM.log_likelihood(SEQUENCE, PARAMS), [np.log(marginal)], rtol=1e-12)
    # and the complete sequences through the model itself (its complete-data likelihood is
    # checked against hmmlearn in test_hmm)
    complete = np.array([HMM.log_likelihood(c, PARAMS)[0] for c in fillings(SEQUENCE, 3)])
    np.testing.assert_allclose(HMM.log_likelihood(SEQUENCE, PARAMS), [special.logsumexp(complete)], rtol=1e-12)


def test_a_masked_step_is_not_fitted():
    """Before, a masked array was read unmasked: the hidden value 2 would enter the likelihood."""
    masked = np.ma.masked_array([0, 2, 1], mask=[False, True, False])
    _, weights = path_weights([0, None, 1], PARAMS)
    _, unmasked = path_weights([0, 2, 1], PARAMS)
    assert not np.isclose(weights.sum(), unmasked.sum())
    np.testing.assert_allclose(HMM.log_likelihood(masked, PARAMS), [np.log(weights.sum())], rtol=1e-12)


def test_filter_smoothing_and_viterbi_match_enumeration():
    paths, weights = path_weights(SEQUENCE, PARAMS)
    T = len(SEQUENCE)
    smoothed = np.array([[weights[paths[:, t] == k].sum() for k in range(2)] for t in range(T)]) / weights.sum()
    np.testing.assert_allclose(HMM.posterior_states(SEQUENCE, PARAMS), smoothed, atol=1e-12)
    filtered = []
    for t in range(T):
        prefix_paths, prefix_weights = path_weights(SEQUENCE[: t + 1], PARAMS)
        filtered.append([prefix_weights[prefix_paths[:, t] == k].sum() for k in range(2)] / prefix_weights.sum())
    np.testing.assert_allclose(HMM.filter(SEQUENCE, PARAMS), filtered, atol=1e-12)
    path, log_prob = HMM.viterbi(SEQUENCE, PARAMS)
    best = int(np.argmax(weights))
    assert path.tolist() == paths[best].tolist() and log_prob == pytest.approx(np.log(weights[best]), rel=1e-12)
    # the missing steps matter: dropping them (a shorter chain) changes the smoothed states
    observed_only = [s for s in SEQUENCE if s is not None]
    assert not np.allclose(HMM.posterior_states(observed_only, PARAMS), smoothed[[s is not None for s in SEQUENCE]])


def test_expected_counts_match_enumeration():
    paths, weights = path_weights(SEQUENCE, PARAMS)
    posterior = weights / weights.sum()
    init = np.zeros(2)
    trans = np.zeros((2, 2))
    emission = np.zeros((2, 3))
    for path, w in zip(paths, posterior):
        init[path[0]] += w
        for t in range(1, len(path)):
            trans[path[t - 1], path[t]] += w
        for t, symbol in enumerate(SEQUENCE):
            if symbol is not None:
                emission[path[t], symbol] += w
    stats, log_lik = HMM.expected_stats(HMM.check_data(SEQUENCE), PARAMS)
    np.testing.assert_allclose(stats["init_counts"], init, atol=1e-12)
    np.testing.assert_allclose(stats["trans_counts"], trans, atol=1e-12)
    np.testing.assert_allclose(stats["emission_counts"], emission, atol=1e-12)
    assert stats["emission_counts"].sum() == pytest.approx(4)  # observed steps only
    assert log_lik == pytest.approx(np.log(weights.sum()), rel=1e-12)


def test_ffbs_draws_average_to_the_expected_counts():
    data = HMM.check_data(SEQUENCE)
    expected, _ = HMM.expected_stats(data, PARAMS)
    rng = np.random.default_rng(3)
    n = 4000
    draws = [HMM.sample_stats(data, PARAMS, rng) for _ in range(n)]
    for name in ("init_counts", "trans_counts", "emission_counts"):
        values = np.array([d[name] for d in draws])
        assert np.all(values.sum(axis=tuple(range(1, values.ndim))) == values[0].sum())  # whole counts
        # 5 Monte-Carlo standard errors (counts are bounded by T, so sd <= 7)
        np.testing.assert_allclose(values.mean(0), expected[name], atol=5 * values.std(0).max() / np.sqrt(n) + 1e-9,
                                   err_msg=name)
    assert all(d["emission_counts"].sum() == 4 for d in draws[:50])


def test_an_entirely_missing_sequence_follows_the_chain_alone():
    data = [[0, 2, 1], [None, None, None]]
    log_lik = HMM.log_likelihood(data, PARAMS)
    _, weights = path_weights([0, 2, 1], PARAMS)
    np.testing.assert_allclose(log_lik, [np.log(weights.sum()), 0.0], atol=1e-12)
    marginals = [PARAMS["init_probs"] @ np.linalg.matrix_power(PARAMS["trans_mat"], t) for t in range(3)]
    np.testing.assert_allclose(HMM.posterior_states(data, PARAMS)[1], marginals, atol=1e-12)
    paths, weights = path_weights([None] * 3, PARAMS)
    assert HMM.viterbi(data, PARAMS)[0][1].tolist() == paths[np.argmax(weights)].tolist()
    with pytest.raises(ValueError, match="every one of the 6 steps is missing"):
        HMM.check_data([[None, None, None], [np.nan] * 3])


def test_a_missing_step_cannot_make_the_data_impossible():
    """A die that cannot show a face is ruled out by that face, not by a missing step."""
    dice = DiceHMM()
    params = dice.default_params()
    params["init_probs"] = np.array([0.0, 1.0, 0.0])  # always start with the D4
    np.testing.assert_allclose(dice.posterior_states([None, 5], params)[0], [0, 1, 0], atol=1e-12)
    with pytest.raises(ValueError, match="position 0 of sequence 0"):
        dice.posterior_states([5, None], params)


# ----------------------------------------------------------------------------------------
# the exact posterior and the back-ends
# ----------------------------------------------------------------------------------------
#: MASKED_HMM's 40 symbols with four steps hidden (two ambiguous 1s, a 0 and a 2)
HIDDEN = (3, 17, 26, 33)
MISSING_SYMBOLS = [None if t in HIDDEN else s for t, s in enumerate(MASKED_SYMBOLS)]


def test_exact_posterior_matches_enumeration_and_sums_the_complete_evidences():
    references, log_evidence = enumerated_posterior(MASKED_HMM, MISSING_SYMBOLS)
    exact = MASKED_HMM.exact_posterior(MISSING_SYMBOLS)
    assert exact.log_evidence == pytest.approx(log_evidence, rel=1e-12)
    mean = exact.mean()
    for name, ref in references.items():
        np.testing.assert_allclose(mean[name], ref.mean, atol=1e-12, err_msg=name)
    small = [None, 1, 2, None, 0]
    complete = [MASKED_HMM.exact_posterior(c).log_evidence for c in fillings(small, 3)]
    assert MASKED_HMM.exact_posterior(small).log_evidence == pytest.approx(special.logsumexp(complete), rel=1e-12)


def test_gibbs_and_exact_draws_agree_with_enumeration_on_missing_data():
    references, _ = enumerated_posterior(MASKED_HMM, MISSING_SYMBOLS)
    for backend, options in (("gibbs", {"draws": 2000, "tune": 200, "chains": 2, "progressbar": False}),
                             ("exact", {"draws": 4000})):
        idata = quiet_fit(MASKED_HMM, MISSING_SYMBOLS, backend=backend, random_seed=1, **options)
        draws = {name: idata.posterior[name].values for name in references}
        assert_no_failures([f for name, ref in references.items() for f in agreement_failures(name, draws[name], ref)])


def test_vb_and_em_on_missing_data():
    references, _ = enumerated_posterior(MASKED_HMM, MISSING_SYMBOLS)
    vb = quiet_fit(MASKED_HMM, MISSING_SYMBOLS, backend="vb", draws=2000, random_seed=1, progressbar=False)
    for name, ref in references.items():
        # mean-field VB's bias accepted on the complete data is 0.03 (test_agreement)
        np.testing.assert_allclose(vb.posterior[name].values.mean(axis=(0, 1)), ref.mean, atol=0.04, err_msg=name)
    em = quiet_fit(MASKED_HMM, MISSING_SYMBOLS, backend="em", tol=1e-12, max_iter=5000, random_seed=1,
                   progressbar=False)
    em_params = {name: em.posterior[name].values[0, 0] for name in references}
    exact_mean = {name: ref.mean for name, ref in references.items()}

    # the log posterior density (the likelihood as checked against enumeration above)
    def log_posterior(params):
        return float(MASKED_HMM.log_likelihood(MISSING_SYMBOLS, params)[0] + MASKED_HMM.log_prior(params))

    assert log_posterior(em_params) > log_posterior(exact_mean)
    # its pointwise log-likelihood is the missing-step likelihood of its parameters
    np.testing.assert_allclose(em.log_likelihood["symbols"].values[0, 0],
                               MASKED_HMM.log_likelihood(MISSING_SYMBOLS, em_params), rtol=1e-12)


# ----------------------------------------------------------------------------------------
# PyMC: the forward-backward Op and the explicit-state model
# ----------------------------------------------------------------------------------------
SHORT = [[0, None, 2, 1], [None, 1]]


@pytest.mark.pymc
def test_explicit_state_model_sums_to_the_marginalised_one():
    """Summing the explicit-state model's density over every state path gives the Op's
    marginalised density: both drop the same emission factors."""
    marginal = HMM.pymc_model(SHORT)
    explicit = HMM.pymc_model(SHORT, marginalized=False)
    point = marginal.initial_point()
    logp_marginal = marginal.compile_logp()(point)
    logp_explicit = explicit.compile_logp()
    terms = [logp_explicit({**point, "states": np.array(z)}) for z in itertools.product(range(2), repeat=6)]
    assert special.logsumexp(terms) == pytest.approx(float(logp_marginal), rel=1e-10)
    # the observed steps only enter the explicit model's Categorical
    assert explicit.rvs_to_values[explicit["symbols"]].eval().tolist() == [0, 2, 1, 1]


@pytest.mark.pymc
def test_op_gradient_matches_finite_differences_on_missing_data():
    pm_model = HMM.pymc_model(SHORT)
    logp, dlogp = pm_model.compile_logp(), pm_model.compile_dlogp()
    point = pm_model.initial_point()
    names = [var.name for var in pm_model.value_vars]
    flat = np.concatenate([np.ravel(point[name]) for name in names])
    sizes = np.cumsum([0] + [np.size(point[name]) for name in names])

    def unflatten(vector):
        return {name: vector[sizes[i]:sizes[i + 1]].reshape(np.shape(point[name])) for i, name in enumerate(names)}

    step = 1e-6
    numeric = [(logp(unflatten(flat + step * e)) - logp(unflatten(flat - step * e))) / (2 * step)
               for e in np.eye(flat.size)]
    np.testing.assert_allclose(dlogp(point), numeric, rtol=1e-5, atol=1e-7)


# slow: 45 s warm (find_MAP on 120 rolls); the default suite checks the Op on missing data through
# its gradient, the explicit-state model and the contract test
@pytest.mark.slow
@pytest.mark.pymc
def test_map_finds_the_em_mode_on_missing_data():
    dice = DiceHMM(trans_prior=2.0, emission_prior=2.0)
    rolls, _ = dice.simulate(dice.default_params(), 120, rng=5)
    rolls = np.asarray(rolls, dtype=float)
    rolls[np.random.default_rng(6).choice(120, 30, replace=False)] = np.nan
    start = dice.initial_params(dice.check_data(rolls), np.random.default_rng(0))
    em = quiet_fit(dice, rolls, backend="em", init=start, tol=1e-12, max_iter=5000, random_seed=0, progressbar=False)
    pymc_map = quiet_fit(dice, rolls, backend="map", init=start, random_seed=0, progressbar=False)
    for name in dice.param_names:
        # L-BFGS stops on a flat ridge a little short of the fixed point EM converges to
        np.testing.assert_allclose(pymc_map.posterior[name].values, em.posterior[name].values, atol=2e-3)
    map_objective = float(pymc_map.fit_history["log_posterior"].values.ravel()[-1])
    em_objective = float(em.fit_history["log_posterior"].values.ravel()[-1])
    assert map_objective == pytest.approx(em_objective, abs=1e-4)


# ----------------------------------------------------------------------------------------
# what a result holds
# ----------------------------------------------------------------------------------------
def test_results_keep_the_missing_code_through_netcdf(tmp_path):
    import xarray as xr

    data = [[1, None, 3, 2], pd.Series([np.nan, 1.0]), np.ma.masked_array([5, 6], mask=[True, True])]
    dice = DiceHMM()
    idata = fit(dice, data, backend="em", random_seed=0, progressbar=False)
    rolls = idata.observed_data["rolls"]
    assert rolls.dtype == np.int64 and rolls.values.tolist() == [1, MISSING, 3, 2, MISSING, 1, MISSING, MISSING]
    params = {name: idata.posterior[name].values[0, 0] for name in dice.param_names}
    pointwise = idata.log_likelihood["rolls"].values[0, 0]
    # an entirely missing sequence: no observation, no contribution (log of a probability vector's sum)
    assert pointwise[2] == pytest.approx(0.0, abs=1e-12)
    for s, sequence in enumerate([[1, None, 3, 2], [None, 1]]):
        _, weights = path_weights([None if x is None else x - 1 for x in sequence], params)
        assert pointwise[s] == pytest.approx(np.log(weights.sum()), rel=1e-12)
    path = tmp_path / "missing.nc"
    idata.to_netcdf(path)
    restored = xr.open_datatree(path)
    np.testing.assert_array_equal(restored.observed_data["rolls"].values, rolls.values)
    # the stored observations are data the model reads back as the same missing steps
    again = dice.check_data(np.ma.masked_equal(restored.observed_data["rolls"].values, MISSING))
    assert again.n_missing == 4


def test_simulated_data_with_hidden_steps_round_trip():
    symbols, _ = HMM.simulate(PARAMS, 50, rng=1)
    hidden = np.ma.masked_array(symbols, mask=np.arange(50) % 7 == 0)
    data = HMM.check_data(hidden)
    assert data.n_missing == 8
    np.testing.assert_array_equal(data.symbols[~data.missing], symbols[~hidden.mask])
