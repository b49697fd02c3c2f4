"""ConjugateMixture (models/core/conjugate_mixture.py): moments against Monte Carlo and closed forms,
and the three models' exact posteriors against references written here: enumeration of every
coin assignment (three coins), of every state path (the HMMs), and scipy's closed forms and
predictive densities (NIW). Draws of ``sample`` are checked by their moments, not pinned.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import special, stats

from latentzoo.models import CategoricalHMM, DiceHMM, NIWGaussian, ThreeCoins
from latentzoo.models.core.conjugate import Beta, Dirichlet, Gamma, MaskedDirichlet, NormalInverseWishart
from latentzoo.models.core.conjugate_mixture import ConjugateMixture

from .conftest import Reference, agreement_failures, assert_no_failures, heads_and_flips
from .test_agreement import hmm_mask, hmm_priors, niw_references, niw_update


def _spd(rng, shape, dim):
    factor = rng.normal(size=shape + (dim, dim))
    return factor @ np.swapaxes(factor, -1, -2) + dim * np.eye(dim)


def _mixtures():
    rng = np.random.default_rng(5)
    mask = np.array([[True, True, False], [True, True, True]])
    return {
        "beta": ConjugateMixture(np.log([0.2, 0.5, 0.3]), {"p": Beta([1.0, 4.0, 10.0], [3.0, 2.0, 1.0])}, -1.0),
        "gamma and dirichlet": ConjugateMixture(
            np.log([0.1, 0.6, 0.3]),
            {"rates": Gamma(rng.uniform(1.0, 9.0, size=(3, 2)), rng.uniform(0.5, 3.0, size=(3, 2))),
             "weights": Dirichlet(rng.gamma(2.0, size=(3, 2)) + 0.5)},
            -1.5,
        ),
        "dirichlet rows": ConjugateMixture(
            np.log([0.6, 0.4]), {"trans": Dirichlet(rng.gamma(2.0, size=(2, 3, 4)) + 0.5)}, -2.0
        ),
        "masked dirichlet": ConjugateMixture(
            np.log([0.3, 0.7]), {"emission": MaskedDirichlet(rng.gamma(2.0, size=(2, 2, 3)) + 0.5, mask)}, -3.0
        ),
        "niw components": ConjugateMixture(
            np.log([0.25, 0.75]),
            {
                ("means", "covs"): NormalInverseWishart(
                    rng.normal(size=(2, 2, 2)), np.full((2, 2), 3.0), np.array([[6.0, 7.0], [8.0, 9.0]]),
                    _spd(rng, (2, 2), 2),
                ),
                "weights": Dirichlet(np.array([[2.0, 3.0], [5.0, 1.0]])),
            },
            -4.0,
        ),
        "niw single": ConjugateMixture.single(
            {("mu", "Sigma"): NormalInverseWishart(np.array([1.0, -1.0]), 2.0, 7.0, _spd(rng, (), 2))}, -5.0
        ),
    }


MIXTURES = _mixtures()


@pytest.mark.parametrize("label", list(MIXTURES))
def test_mean_is_the_monte_carlo_mean_of_sample(label):
    mixture = MIXTURES[label]
    n = 40_000
    draws = mixture.sample(np.random.default_rng(11), n)
    means = mixture.mean()
    assert set(draws) == set(means)
    for name, mean in means.items():
        assert draws[name].shape == (n,) + np.shape(mean), name
        standard_error = draws[name].std(axis=0) / np.sqrt(n)
        # masked entries are exactly 0 in every draw and in the mean
        assert np.all(np.abs(draws[name].mean(axis=0) - mean) <= 5 * standard_error + 1e-12), name


def test_two_component_beta_mean_and_sd_in_closed_form():
    w, (a1, b1), (a2, b2) = 0.3, (2.0, 5.0), (6.0, 2.0)
    mixture = ConjugateMixture(np.log([w, 1 - w]), {"p": Beta([a1, a2], [b1, b2])}, 0.0)
    first = w * a1 / (a1 + b1) + (1 - w) * a2 / (a2 + b2)
    second = w * a1 * (a1 + 1) / ((a1 + b1) * (a1 + b1 + 1)) + (1 - w) * a2 * (a2 + 1) / ((a2 + b2) * (a2 + b2 + 1))
    assert mixture.mean()["p"] == pytest.approx(first, rel=1e-14)
    assert mixture.sd()["p"] == pytest.approx(np.sqrt(second - first**2), rel=1e-13)
    assert isinstance(mixture.mean()["p"], float)


def test_two_component_gamma_mean_and_sd_in_closed_form():
    w, (a1, b1), (a2, b2) = 0.3, (2.0, 0.5), (9.0, 3.0)
    mixture = ConjugateMixture(np.log([w, 1 - w]), {"rate": Gamma([a1, a2], [b1, b2])}, 0.0)
    first = w * a1 / b1 + (1 - w) * a2 / b2
    # E[x^2] = shape (shape + 1) / rate^2
    second = w * a1 * (a1 + 1) / b1**2 + (1 - w) * a2 * (a2 + 1) / b2**2
    assert mixture.mean()["rate"] == pytest.approx(first, rel=1e-14)
    assert mixture.sd()["rate"] == pytest.approx(np.sqrt(second - first**2), rel=1e-13)
    # one component, picked by index, is the Gamma at that index
    component = mixture.component(1)["rate"]
    assert isinstance(component, Gamma) and (component.shape, component.rate) == (a2, b2)


def test_sd_covers_the_factors_with_a_variance_only():
    mixture = ConjugateMixture(
        np.log([0.5, 0.5]), {"p": Beta([1.0, 2.0], [1.0, 2.0]), "rows": Dirichlet(np.ones((2, 3)))}, 0.0
    )
    assert set(mixture.sd()) == {"p"}


def test_mode_needs_a_single_component():
    niw = NormalInverseWishart(np.array([1.0, -1.0]), 2.0, 7.0, np.array([[2.0, 0.3], [0.3, 1.0]]))
    single = ConjugateMixture.single({("mu", "Sigma"): niw}, 0.0)
    mu, Sigma = niw.mode()
    np.testing.assert_array_equal(single.mode()["mu"], mu)
    np.testing.assert_array_equal(single.mode()["Sigma"], Sigma)
    with pytest.raises(ValueError, match="single component; this mixture has 3"):
        MIXTURES["beta"].mode()


@pytest.mark.parametrize("log_weights, factors, error, match", [
    (np.zeros((1, 2)), {"p": Beta([1.0, 1.0], [1.0, 1.0])}, ValueError, "log_weights must be a non-empty 1-D"),
    (np.log([0.5, 0.5]), {"p": Beta([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])}, ValueError, r"factors\['p'\] must have the 2 components"),
    (np.log([0.5, 0.5]), {"p": (1.0, 1.0)}, TypeError, "got tuple"),
    (np.log([0.5, 0.5]), {}, TypeError, "non-empty dict"),
])
def test_bad_arguments(log_weights, factors, error, match):
    with pytest.raises(error, match=match):
        ConjugateMixture(log_weights, factors, 0.0)


# ----------------------------------------------------------------------------------------
# the models' exact posteriors against independent references
# ----------------------------------------------------------------------------------------
_rng = np.random.default_rng(123)
FLIPS_2D = (_rng.random((6, 4)) < 0.6).astype(int)
X_NIW = _rng.normal(size=(20, 2)) @ np.array([[1.0, 0.3], [0.0, 0.7]]) + [1.0, -2.0]

CASES = {
    "coins_seed": (ThreeCoins(), "1111110000"),
    "coins_informative_2d": (ThreeCoins(pi_prior=(2, 3), p_prior=(2, 1), q_prior=(1, 2)), FLIPS_2D),
    "coins_pi_fixed_2d": (ThreeCoins(pi=0.5), FLIPS_2D),
    "dice_seed": (DiceHMM(), [1, 6, 3, 5, 2, 7, 3, 5, 2, 4]),
    "dice_small": (DiceHMM(dice=(2, 3)), [1, 3, 2, 2]),
    "cat_many": (CategoricalHMM(2, 3, init_prior=[1.0, 2.0], emission_prior=0.5), [[0, 1], [2, 2, 1], [1]]),
    "niw_data_driven": (NIWGaussian(), X_NIW),
    "niw_explicit": (NIWGaussian(m0=[0.0, 0.0], kappa0=1.0, nu0=5.0, S0=[[1.0, 0.2], [0.2, 2.0]]), X_NIW),
}
#: draws of ``sample`` checked on their moments (independent draws: the mean within 5 sd/sqrt(n))
N_SAMPLE = 4000


def _log_beta(alpha, allowed):
    """log multivariate Beta over the last axis, allowed entries only."""
    return (np.where(allowed, special.gammaln(np.where(allowed, alpha, 1.0)), 0.0).sum(-1)
            - special.gammaln(np.where(allowed, alpha, 0.0).sum(-1)))


def _mixture_moments(log_weight, alphas, allowed):
    """log evidence, and mean and sd of each Dirichlet-mixture parameter (alphas: name -> array
    (paths, ..., categories)), from its definition: E[p] = a / a0, E[p^2] = a (a + 1) / (a0 (a0 + 1))."""
    log_evidence = float(special.logsumexp(log_weight))
    weight = np.exp(log_weight - log_evidence)
    mean, sd = {}, {}
    for name, alpha in alphas.items():
        total = alpha.sum(-1, keepdims=True)
        first = np.tensordot(weight, alpha / total, axes=1)
        second = np.tensordot(weight, alpha * (alpha + 1) / (total * (total + 1)), axes=1)
        mean[name] = first
        sd[name] = np.where(allowed[name], np.sqrt(np.maximum(second - first**2, 0.0)), 0.0)
    return log_evidence, mean, sd


def coins_enumeration(model, data) -> dict:
    """Every assignment of the trials to coin B or C: given one, pi, p and q are Betas (prior +
    counts); its weight is the ratio of Beta functions times the binomial coefficients of the
    heads counts (the model's likelihood is that of the counts). pi fixed: pi^#B (1 - pi)^#C."""
    heads, m = heads_and_flips(data)
    to_b = np.array(list(itertools.product((True, False), repeat=heads.size)))  # (paths, trials)
    n_b = to_b.sum(1)
    alphas = {"p": np.stack([model.p_prior[0] + (to_b * heads).sum(1), model.p_prior[1] + (to_b * (m - heads)).sum(1)], -1),
              "q": np.stack([model.q_prior[0] + (~to_b * heads).sum(1), model.q_prior[1] + (~to_b * (m - heads)).sum(1)], -1)}
    priors = {"p": np.array(model.p_prior, float), "q": np.array(model.q_prior, float)}
    if model.pi is None:
        alphas["pi"] = np.stack([model.pi_prior[0] + n_b, model.pi_prior[1] + heads.size - n_b], -1)
        priors["pi"] = np.array(model.pi_prior, float)
        log_weight = 0.0
    else:
        log_weight = n_b * np.log(model.pi) + (heads.size - n_b) * np.log1p(-model.pi)
    ones = np.ones(2, bool)
    log_weight = log_weight + sum(_log_beta(alphas[n], ones) - _log_beta(priors[n], ones) for n in alphas)
    log_weight = log_weight + np.sum(np.log(special.comb(m, heads)))
    log_evidence, mean, sd = _mixture_moments(log_weight, alphas, {n: ones for n in alphas})
    # the probability of heads of each coin: the first Beta entry
    return {"log_evidence": log_evidence, "mean": {n: v[0] for n, v in mean.items()}, "sd": {n: v[0] for n, v in sd.items()}}


def hmm_enumeration(model, sequences) -> dict:
    """Every state path of every sequence that can emit it: given the paths the rows of
    init_probs, trans_mat and emission_probs are Dirichlets (prior + counts), and the paths'
    weight is prod_rows B(prior + counts) / B(prior), which sums to p(x)."""
    sequences = [np.asarray(s) - model.first_label for s in (sequences if np.ndim(sequences[0]) else [sequences])]
    mask, priors = hmm_mask(model), hmm_priors(model)
    K, M = mask.shape
    symbols = np.concatenate(sequences)
    paths = np.array(list(itertools.product(*[np.flatnonzero(mask[:, s]) for s in symbols])))
    rows = np.arange(len(paths))
    counts = {"init_probs": np.zeros((len(paths), K)), "trans_mat": np.zeros((len(paths), K, K)),
              "emission_probs": np.zeros((len(paths), K, M))}
    offset = 0
    for sequence in sequences:
        counts["init_probs"][rows, paths[:, offset]] += 1
        for t, symbol in enumerate(sequence):
            counts["emission_probs"][rows, paths[:, offset + t], symbol] += 1
            if t:
                counts["trans_mat"][rows, paths[:, offset + t - 1], paths[:, offset + t]] += 1
        offset += len(sequence)
    allowed = {"init_probs": np.ones(K, bool), "trans_mat": np.ones((K, K), bool), "emission_probs": mask}
    alphas = {name: np.where(allowed[name], priors[name] + counts[name], 0.0) for name in counts}
    log_weight = sum((_log_beta(alphas[n], allowed[n]) - _log_beta(priors[n], allowed[n])).reshape(len(paths), -1).sum(1)
                     for n in counts)
    log_evidence, mean, sd = _mixture_moments(log_weight, alphas, allowed)
    return {"log_evidence": log_evidence, "mean": mean, "sd": sd}


def niw_closed_form(model, x) -> dict:
    """scipy's moments of the NIW posterior (test_agreement.niw_references), its joint mode
    (m_n, S_n / (nu_n + D + 2)), and log p(x) as the product of multivariate-t predictive
    densities (scipy.stats.multivariate_t), one observation at a time."""
    prior = model.with_data_prior(x) if model.data_driven else model
    m, kappa, nu, S = np.asarray(prior.m0, float), float(prior.kappa0), float(prior.nu0), np.asarray(prior.S0, float)
    D = x.shape[1]
    mu, sigma = niw_references(*niw_update(m, kappa, nu, S, x))
    m_n, _, nu_n, S_n = niw_update(m, kappa, nu, S, x)
    log_evidence = 0.0
    for row in x:
        df = nu - D + 1
        log_evidence += stats.multivariate_t(loc=m, shape=S * (kappa + 1) / (kappa * df), df=df).logpdf(row)
        m, kappa, nu, S = niw_update(m, kappa, nu, S, row[None])
    return {"log_evidence": log_evidence, "mean": {"mu": mu.mean, "Sigma": sigma.mean}, "sd": {"mu": mu.sd, "Sigma": sigma.sd},
            "mode": {"mu": m_n, "Sigma": S_n / (nu_n + D + 2)}}


def reference(case: str, data=None) -> dict:
    model, default = CASES[case]
    data = default if data is None else data
    if isinstance(model, ThreeCoins):
        return coins_enumeration(model, data)
    if isinstance(model, NIWGaussian):
        return niw_closed_form(model, np.asarray(data, float))
    return hmm_enumeration(model, data)


def exact_posterior_failures(case: str, expected: dict, rtol: float = 1e-9) -> list[str]:
    """How the model's exact posterior misses a reference: log evidence, mean, sd and (where
    given) mode within rtol, and N_SAMPLE draws of ``sample`` within 5 Monte-Carlo errors in
    mean and sd (conftest.agreement_failures; entries with sd 0 must be exact)."""
    model, data = CASES[case]
    posterior = model.exact_posterior(data)
    failures = []
    if abs(posterior.log_evidence - expected["log_evidence"]) > rtol * abs(expected["log_evidence"]):
        failures.append(f"log evidence {posterior.log_evidence:.12g} vs {expected['log_evidence']:.12g}")
    for what in ("mean", "sd", "mode"):
        values = getattr(posterior, what)() if what in expected else {}
        for name, value in expected.get(what, {}).items():
            if what == "sd" and name not in values:
                continue  # sd() covers the factors with a variance (coins' Betas); the draws check the rest
            if np.any(np.abs(np.asarray(values[name]) - value) > rtol * np.abs(value) + 1e-12):
                failures.append(f"{what} of {name}: {np.round(values[name], 6).tolist()} vs {np.round(value, 6).tolist()}")
    draws = posterior.sample(np.random.default_rng(7), N_SAMPLE)
    for name, mean in expected["mean"].items():
        ref = Reference(np.asarray(mean), np.asarray(expected["sd"][name]))
        failures += agreement_failures(name, np.asarray(draws[name])[None], ref)
    return failures


@pytest.mark.parametrize("case", list(CASES))
def test_exact_posteriors_match_independent_references(case):
    """Coins: enumeration of every coin assignment; HMMs: of every state path; NIW: scipy's
    closed forms and predictive densities."""
    model, _ = CASES[case]
    assert isinstance(model.exact_posterior(CASES[case][1]), ConjugateMixture)
    assert_no_failures(exact_posterior_failures(case, reference(case)))


@pytest.mark.parametrize("case", ["coins_informative_2d", "cat_many", "niw_explicit"])
def test_exact_posterior_check_fails_on_other_data_and_moved_draws(case):
    """Power: the reference of the data with the first observation changed (a flip, a symbol)
    or dropped (a NIW row) fails on log evidence and means; and the sample check fails when
    the reference's means move by one sd."""
    _, data = CASES[case]
    if case == "coins_informative_2d":
        other = data.copy()
        other[0, 0] = 1 - other[0, 0]
    elif case == "cat_many":
        other = [[1, 1], *data[1:]]
    else:
        other = data[1:]
    failures = exact_posterior_failures(case, reference(case, other))
    assert any(f.startswith("log evidence") for f in failures) and any(f.startswith("mean of") for f in failures)
    moved = reference(case)
    moved["mean"] = {name: value + moved["sd"][name] for name, value in moved["mean"].items()}
    assert any(": mean " in f for f in exact_posterior_failures(case, moved, rtol=np.inf))


def test_enumeration_matches_the_model_likelihood_on_one_coin_trial():
    """The coins enumeration's convention (binomial counts) in closed form: one trial of m flips
    with h heads under uniform priors has p(x) = C(m, h) [B(h + 1, m - h + 1)] (both coins give
    the same marginal, so pi drops out)."""
    flips = np.array([[1, 1, 0, 1]])
    expected = np.log(special.comb(4, 3)) + special.betaln(4, 2)
    assert coins_enumeration(ThreeCoins(), flips)["log_evidence"] == pytest.approx(expected, rel=1e-12)
