"""The comparison table recomputed from the raw draws, independently of the code under test.

Every column of :func:`~latentzoo.inference.comparison.metrics.comparison_table` is recomputed here from
the draws in the result DataTrees with plain NumPy (SciPy only for ranks, the normal quantile
function and log-gamma), never by calling latentzoo's or ArviZ's summaries:

* ``mean``; ``sd`` (ddof=1, NaN for a point estimate);
* ``hdi_3%``/``hdi_97%``: the shortest interval between two sorted draws that holds
  ``floor(0.94 n) + 1`` of them;
* ``ref_mean``, ``ref_sd``, ``error_in_ref_sd`` = (mean - ref_mean) / ref_sd, ``sd_ratio`` = sd / ref_sd;
* ``wasserstein``: W1 between the two empirical distributions, the integral over u of
  ``|F^-1(u) - G^-1(u)|``. Both quantile functions are step functions, so the integral is
  computed exactly on the union of their steps (equal sizes: ``mean |sort(a) - sort(b)|``);
  the code under test calls ``scipy.stats.wasserstein_distance`` instead;
* ``ess_bulk``, ``ess_tail`` (5% and 95% quantiles, as documented) and ``r_hat``: Vehtari et al.
  (2021), rank-normalised split chains, with Geyer's initial monotone sequence as in Stan;
* ``ess_bulk_per_s`` = ess_bulk / run_s, and the record columns (``objective``, ``run_s``,
  ``n_iter``, ...) from ``FitRecord.from_attrs(idata.posterior.attrs)``; the objectives
  themselves against brute-force enumeration (the exact log-evidence) and SciPy (EM's
  log-posterior at its estimate).

Scalar parameters (three coins) and element-indexed ones (HMM ``trans_mat[i, j]``, GMM
``means[k, d]``) are covered, with hand-written back-ends only (fast). The recomputation is
deterministic, so the tolerance is round-off (``RTOL``), not Monte Carlo error: a fault of any
size in a metric fails. Every family of checks is shown to fail on a planted fault (the
``test_power_*`` tests): a wrong metric, a shifted result, a record read wrongly, labels left
permuted.

The relabelling the metrics depend on is checked by permuting a result's labels on purpose
(swapping mixture components or HMM states in its draws, mirroring the three coins): the
comparison relabels them to the reference, so its table is unchanged. Whether the relabelled
draws are right is checked against a closed form: the GMM's blobs do not overlap, so each
component mean's posterior sd is the Normal-inverse-Wishart update of its blob. (It caught the
relabelling scaling each variable by its spread over labels, which let the weights of
equal-sized clusters outvote the means and swapped a few draws.)
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from latentzoo.inference import compare

from latentzoo.inference.comparison import metrics
from latentzoo.inference.core import FitRecord
from latentzoo.models import CategoricalHMM, GaussianMixture, ThreeCoins

from .conftest import SEED_FLIPS, reference_log_likelihood
from .test_gmm import blobs

# `latentzoo.inference.comparison.compare` is the function; its module holds the names compare() calls
compare_module = importlib.import_module("latentzoo.inference.comparison.compare")

#: the recomputation repeats the arithmetic, so only round-off separates it from an honest table
RTOL, ATOL = 1e-9, 1e-12
HDI_PROB = 0.94
TAIL_PROBS = (0.05, 0.95)

#: the back-ends' kinds, as the registry documents them (written out: not read from the registry)
KINDS = {"em": "point", "vb": "variational", "gibbs": "sampler", "exact": "exact"}

#: exact draws 1000 = gibbs 2 x 500 (W1 of equal sizes); vb 500 (unequal sizes); em one point
OPTIONS = {
    "em": {"progressbar": False},
    "vb": {"draws": 500, "progressbar": False},
    "gibbs": {"draws": 500, "tune": 100, "chains": 2, "progressbar": False},
    "exact": {"draws": 1000},
}

HMM_DATA = [[0, 1, 2, 2], [1, 1], [2, 0, 0]]
GMM_DATA = blobs(20, seed=5)


# -- the comparisons (one per model, with the back-ends' raw results kept) ----------------------------
def recorded_compare(model, data, backends, reference="auto", random_seed=0, options=OPTIONS):
    """``compare`` with every back-end's result also kept as it left ``fit`` (before relabelling).

    Returns
    -------
    comparison : Comparison
    raw : dict of str -> xarray.DataTree
    """
    raw = {}
    real_fit = compare_module.fit

    def recording_fit(model, data, backend, random_seed, **options):
        raw[backend] = real_fit(model, data, backend=backend, random_seed=random_seed, **options)
        return raw[backend]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compare_module, "fit", recording_fit)
        comparison = compare(model, data, backends=backends, reference=reference, random_seed=random_seed,
                             options={name: options[name] for name in backends}, progressbar=False)
    return comparison, raw


def replayed_compare(comparison, raw, transform=lambda backend, idata: idata):
    """``compare`` again with the same arguments, every back-end answering with its recorded raw
    result passed through ``transform(backend, idata)``: the comparison's own steps (relabelling,
    table, LOO) run again in milliseconds, and nothing is fitted."""
    def replay(model, data, backend, random_seed, **options):
        return transform(backend, raw[backend])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compare_module, "fit", replay)
        return compare(comparison.model, comparison.data, backends=comparison.backends, reference=comparison.reference,
                       random_seed=comparison.random_seed, options=comparison.options, progressbar=False)


@pytest.fixture(scope="module")
def coins():
    return recorded_compare(ThreeCoins(), SEED_FLIPS, ["em", "vb", "gibbs", "exact"])


@pytest.fixture(scope="module")
def hmm():
    # two states, exchangeable (no emission mask): relabelled to the exact posterior
    return recorded_compare(CategoricalHMM(2, 3), HMM_DATA, ["em", "vb", "gibbs", "exact"])


@pytest.fixture(scope="module")
def gmm():
    # no exact posterior: the Gibbs run is the yardstick (and the anchor of the labels); a
    # sweep costs more than the other models' (60 points x 3 components), so fewer of them
    options = {**OPTIONS, "gibbs": {**OPTIONS["gibbs"], "draws": 250, "tune": 50}}
    return recorded_compare(GaussianMixture(3), GMM_DATA, ["em", "vb", "gibbs"], reference="gibbs", options=options)


# -- the metrics, written out ----------------------------------------------------------------------
def element_labels(name: str, shape: tuple):
    """``("p", ())`` for a scalar, ``("means[1, 0]", (1, 0))`` ... for the elements of an array."""
    if not shape:
        return [(name, ())]
    return [(f"{name}[{', '.join(map(str, index))}]", index) for index in np.ndindex(*shape)]


def wasserstein_1(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between the empirical distributions of ``a`` and ``b``: the integral over u in (0, 1)
    of |Q_a(u) - Q_b(u)|, where Q_a(u) = sort(a)[ceil(n u) - 1] is constant on ((i-1)/n, i/n].
    Summed exactly over the union of both functions' steps."""
    a, b = np.sort(a), np.sort(b)
    if a.size == b.size:
        return float(np.mean(np.abs(a - b)))
    ends = np.union1d(np.arange(1, a.size + 1) / a.size, np.arange(1, b.size + 1) / b.size)
    widths = np.diff(ends, prepend=0.0)
    middles = ends - widths / 2  # strictly inside a step of both functions
    quantile_a = a[np.minimum((middles * a.size).astype(int), a.size - 1)]
    quantile_b = b[np.minimum((middles * b.size).astype(int), b.size - 1)]
    return float(np.sum(widths * np.abs(quantile_a - quantile_b)))


def shortest_interval(x: np.ndarray, prob: float) -> tuple[float, float]:
    """The narrowest [x_(i), x_(i+k)] of the sorted draws with k = floor(prob n)."""
    x = np.sort(x)
    k = int(math.floor(prob * x.size))
    widths = x[k:] - x[: x.size - k]
    start = int(np.argmin(widths))
    return float(x[start]), float(x[start + k])


def split_chains(x: np.ndarray) -> np.ndarray:
    """(chain, draw) -> (2 chain, draw // 2): first and last halves (the middle draw of an odd
    number is left out)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def rank_normalised(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks, Phi^-1((r - 3/8) / (S + 1/4)) (Blom)."""
    ranks = stats.rankdata(x, method="average").reshape(x.shape)
    return special.ndtri((ranks - 3 / 8) / (x.size + 1 / 4))


def geyer_ess(x: np.ndarray) -> float:
    """ESS of (chain, draw) draws: multi-chain autocorrelations (Vehtari et al. 2021, eq. 10),
    summed in pairs while positive (Geyer's initial positive sequence), made monotone, with
    Stan's improved truncation and the bound ESS <= S log10 S."""
    n_chain, n_draw = x.shape
    centred = x - x.mean(axis=1, keepdims=True)
    padded = np.fft.rfft(centred, n=2 * n_draw, axis=1)
    autocov = np.fft.irfft(padded * np.conj(padded), axis=1)[:, :n_draw] / n_draw
    within = np.mean(np.sum(centred**2, axis=1) / (n_draw - 1))
    var_plus = within * (n_draw - 1) / n_draw + (np.var(x.mean(axis=1), ddof=1) if n_chain > 1 else 0.0)
    rho = 1.0 - (within - autocov.mean(axis=0)) / var_plus
    kept = np.zeros(n_draw)
    kept[0], kept[1] = 1.0, rho[1]
    t, even, odd = 0, 1.0, rho[1]
    while t < n_draw - 5 and even + odd > 0:
        t += 2
        even, odd = rho[t], rho[t + 1]
        if even + odd >= 0:
            kept[t], kept[t + 1] = even, odd
    last = t
    if even > 0:
        kept[last] = even
    for t in range(0, last - 3, 2):
        if kept[t + 2] + kept[t + 3] > kept[t] + kept[t + 1]:
            kept[t + 2] = kept[t + 3] = (kept[t] + kept[t + 1]) / 2
    tau = -1.0 + 2.0 * kept[:last].sum() + kept[last]
    size = n_chain * n_draw
    return size / max(tau, 1.0 / np.log10(size))


def ess_bulk(x: np.ndarray) -> float:
    return geyer_ess(rank_normalised(split_chains(x)))


def ess_tail(x: np.ndarray) -> float:
    """The smaller ESS of the indicators I(x <= q) at the 5% and 95% quantiles."""
    return min(geyer_ess(split_chains((x <= np.quantile(x, prob)).astype(float))) for prob in TAIL_PROBS)


def r_hat(x: np.ndarray) -> float:
    """Rank-normalised split R-hat: the larger of the bulk and the folded (|x - median|) R-hat."""
    def classic(y):
        n = y.shape[1]
        within = y.var(axis=1, ddof=1).mean()
        return math.sqrt(((n - 1) / n * within + y.mean(axis=1).var(ddof=1)) / within)

    halves = split_chains(x)
    return max(classic(rank_normalised(halves)), classic(rank_normalised(np.abs(halves - np.median(halves)))))


# -- the table, recomputed -------------------------------------------------------------------------
NUMERIC = ("mean", "sd", "hdi_3%", "hdi_97%", "ref_mean", "ref_sd", "error_in_ref_sd", "sd_ratio", "wasserstein",
           "ess_bulk", "ess_tail", "ess_bulk_per_s", "r_hat", "divergences", "objective", "objective_spread",
           "compile_s", "run_s", "runtime_s")
EXACT_COLUMNS = ("backend", "parameter", "kind", "objective_name", "n_iter", "converged", "reference")


def recomputed_table(model, idatas: dict, reference: str | None) -> list[dict]:
    """The rows the table must have: one per back-end and element of every parameter and derived
    quantity, in order, computed from the draws and records only."""
    names = list(model.param_names) + list(model.derived_dims())
    rows = []
    for backend, idata in idatas.items():
        kind = KINDS[backend]
        record = FitRecord.from_attrs(idata.posterior.attrs)
        for name in names:
            values = np.asarray(idata.posterior[name].values, float)  # (chain, draw, *shape)
            n_chain, n_draw = values.shape[:2]
            for label, index in element_labels(name, values.shape[2:]):
                chains = values[(slice(None), slice(None)) + index]
                draws = chains.ravel()
                row = {"backend": backend, "parameter": label, "kind": kind, "mean": draws.mean(),
                       "sd": math.nan, "hdi_3%": math.nan, "hdi_97%": math.nan, "ess_bulk": math.nan,
                       "ess_tail": math.nan, "r_hat": math.nan}
                if draws.size > 1:
                    row["sd"] = draws.std(ddof=1)
                    row["hdi_3%"], row["hdi_97%"] = shortest_interval(draws, HDI_PROB)
                if kind in ("sampler", "exact") and n_draw >= 4:  # MCMC and exact draws: ESS
                    row["ess_bulk"], row["ess_tail"] = ess_bulk(chains), ess_tail(chains)
                if kind == "sampler" and n_chain > 1:
                    row["r_hat"] = r_hat(chains)
                row["ref_mean"] = row["ref_sd"] = row["wasserstein"] = math.nan
                if reference in idatas:
                    ref_draws = np.asarray(idatas[reference].posterior[name].values, float)
                    ref_draws = ref_draws[(slice(None), slice(None)) + index].ravel()
                    row["ref_mean"], row["ref_sd"] = ref_draws.mean(), ref_draws.std(ddof=1)
                    row["wasserstein"] = wasserstein_1(draws, ref_draws)
                positive = row["ref_sd"] > 0
                row["error_in_ref_sd"] = (row["mean"] - row["ref_mean"]) / row["ref_sd"] if positive else math.nan
                row["sd_ratio"] = row["sd"] / row["ref_sd"] if positive else math.nan
                row["ess_bulk_per_s"] = (row["ess_bulk"] / record.run_s if kind == "sampler" and record.run_s > 0
                                         else math.nan)
                diverging = idata["sample_stats"]["diverging"] if "sample_stats" in idata.children else None
                row.update(
                    divergences=float(np.sum(diverging.values)) if diverging is not None else math.nan,
                    objective=record.objective, objective_name=record.objective_name,
                    objective_spread=record.objective_spread, n_iter=record.n_iter, converged=record.converged,
                    compile_s=record.compile_s, run_s=record.run_s, runtime_s=record.runtime_s,
                    reference=reference if reference in idatas else "none",
                )
                rows.append(row)
    return rows


def table_mismatches(table, model, idatas: dict, reference: str | None) -> list[str]:
    """Where ``table`` differs from the recomputation (empty: it agrees to round-off)."""
    expected = recomputed_table(model, idatas, reference)
    keys = list(zip(table["backend"], table["parameter"]))
    expected_keys = [(row["backend"], row["parameter"]) for row in expected]
    if keys != expected_keys:
        return [f"rows: {keys} != {expected_keys}"]
    found = []
    for (_, actual), wanted in zip(table.iterrows(), expected):
        where = f"{wanted['backend']} {wanted['parameter']}"
        for column in NUMERIC:
            a, b = float(actual[column]), float(wanted[column])
            if not (np.isnan(a) and np.isnan(b)) and not np.isclose(a, b, rtol=RTOL, atol=ATOL):
                found.append(f"{column} of {where}: table {a!r}, recomputed {b!r}")
        for column in EXACT_COLUMNS:
            if actual[column] != wanted[column]:
                found.append(f"{column} of {where}: table {actual[column]!r}, recomputed {wanted[column]!r}")
    return found


def check_table(table, model, idatas, reference) -> None:
    found = table_mismatches(table, model, idatas, reference)
    assert not found, f"{len(found)} mismatches:\n" + "\n".join(found[:25])


# -- the recomputation against the comparisons ------------------------------------------------------
@pytest.mark.parametrize("case", ["coins", "hmm", "gmm"])
def test_every_column_recomputed_from_the_draws(case, request):
    comparison, _ = request.getfixturevalue(case)
    assert not comparison.failures
    check_table(comparison.table, comparison.model, comparison.idatas, comparison.reference)


def test_the_checks_cover_both_wasserstein_paths_and_every_kind(coins, hmm):
    """The fixtures exercise what the recomputation distinguishes: equal and unequal sample sizes
    for W1, a point estimate, and element-indexed parameters."""
    for comparison, _ in (coins, hmm):
        sizes = {name: idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
                 for name, idata in comparison.idatas.items()}
        assert sizes == {"em": 1, "vb": 500, "gibbs": 1000, "exact": 1000}
    labels = set(hmm[0].table["parameter"])
    assert {"trans_mat[0, 1]", "trans_mat[1, 0]", "emission_probs[1, 2]", "init_probs[0]"} <= labels
    assert len(labels) == 2 + 4 + 6


def test_wasserstein_1_on_hand_made_samples():
    """The recomputation's W1 on cases with a known answer (its own correctness, beside the
    agreement with the table)."""
    assert wasserstein_1(np.array([0.0, 1.0]), np.array([3.0])) == pytest.approx(2.5)  # mean |x - 3|
    # quantile steps (0, 1/3, 1/2, 2/3, 1]: |0 - .5|, |1 - .5|, |1 - 1.5|, |2 - 1.5|, all 0.5
    assert wasserstein_1(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5])) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    a = rng.standard_normal(300)
    assert wasserstein_1(a, a + 0.25) == pytest.approx(0.25)  # a shift moves every quantile
    assert wasserstein_1(a, np.repeat(a, 3)) == pytest.approx(0.0, abs=1e-15)  # same distribution
    # the area between the two empirical CDFs is the same number
    grid = np.sort(np.concatenate([a, a[:100] * 2]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / a.size
    cdf_b = np.searchsorted(np.sort(a[:100] * 2), grid, side="right") / 100
    area = np.sum(np.abs(cdf_a - cdf_b)[:-1] * np.diff(grid))
    assert wasserstein_1(a, a[:100] * 2) == pytest.approx(area, rel=1e-12)


def test_ess_on_chains_with_a_known_autocorrelation():
    """Bulk ESS of long AR(1) chains is close to S (1 - phi) / (1 + phi) (its asymptotic value),
    so the recomputation measures what it claims to."""
    rng = np.random.default_rng(1)
    phi, n_chain, n_draw = 0.6, 4, 5000
    x = np.zeros((n_chain, n_draw))
    noise = rng.standard_normal((n_chain, n_draw))
    for t in range(1, n_draw):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    theory = n_chain * n_draw * (1 - phi) / (1 + phi)
    assert ess_bulk(x) == pytest.approx(theory, rel=0.1)
    assert r_hat(x) < 1.01
    assert r_hat(x + 3 * np.arange(n_chain)[:, None]) > 1.5  # chains at different levels


# -- the objectives: brute force and closed forms -------------------------------------------------
def coins_log_evidence(flips: str) -> float:
    """log p(x) of the three coins with Beta(1, 1) priors, summed over every assignment of the
    trials to coin B or C (2^n terms, each a product of Beta functions)."""
    heads = np.array([int(c) for c in flips])
    terms = []
    for to_b in itertools.product((0, 1), repeat=heads.size):
        to_b = np.array(to_b, bool)
        n_b, h_b, h_c = to_b.sum(), heads[to_b].sum(), heads[~to_b].sum()
        terms.append(special.betaln(1 + n_b, 1 + heads.size - n_b) + special.betaln(1 + h_b, 1 + n_b - h_b)
                     + special.betaln(1 + h_c, 1 + (heads.size - n_b) - h_c))
    return float(special.logsumexp(terms))


def hmm_log_evidence(sequences, n_states: int, n_symbols: int) -> float:
    """log p(x) of a categorical HMM with Dirichlet(1) priors: every joint state path of all
    sequences, each a Dirichlet-multinomial product."""
    def log_multivariate_beta(alpha):
        return np.sum(special.gammaln(alpha), axis=-1) - special.gammaln(np.sum(alpha, axis=-1))

    symbols = np.concatenate([np.asarray(s) for s in sequences])
    starts = np.cumsum([0] + [len(s) for s in sequences])[:-1]
    terms = []
    for path in itertools.product(range(n_states), repeat=symbols.size):
        path = np.asarray(path)
        init, trans, emit = np.ones(n_states), np.ones((n_states, n_states)), np.ones((n_states, n_symbols))
        np.add.at(init, path[starts], 1)
        np.add.at(emit, (path, symbols), 1)
        for start, length in zip(starts, [len(s) for s in sequences]):
            np.add.at(trans, (path[start:start + length - 1], path[start + 1:start + length]), 1)
        term = log_multivariate_beta(init) - log_multivariate_beta(np.ones(n_states))
        term += np.sum(log_multivariate_beta(trans) - log_multivariate_beta(np.ones((n_states, n_states))))
        term += np.sum(log_multivariate_beta(emit) - log_multivariate_beta(np.ones((n_states, n_symbols))))
        terms.append(term)
    return float(special.logsumexp(terms))


def hmm_log_posterior(sequences, init, trans, emission) -> float:
    """log p(x | theta) + log p(theta): the likelihood by enumerating every state path, the
    Dirichlet(1) prior densities (the constant log Gamma(K) per simplex) with scipy."""
    log_lik = 0.0
    for x in sequences:
        total = 0.0
        for path in itertools.product(range(init.size), repeat=len(x)):
            p = init[path[0]] * emission[path[0], x[0]]
            for t in range(1, len(x)):
                p *= trans[path[t - 1], path[t]] * emission[path[t], x[t]]
            total += p
        log_lik += math.log(total)
    log_prior = special.gammaln(init.size) + trans.shape[0] * special.gammaln(trans.shape[1])
    log_prior += emission.shape[0] * special.gammaln(emission.shape[1])
    return log_lik + log_prior


def _objective(comparison, backend) -> float:
    values = comparison.table.loc[comparison.table["backend"] == backend, "objective"]
    assert values.nunique() == 1
    return float(values.iloc[0])


def check_coin_objectives(comparison) -> None:
    """The three coins' objectives: the exact log-evidence by enumeration, EM's log-posterior at
    its estimate with scipy, and the ELBO below the evidence."""
    evidence = coins_log_evidence(SEED_FLIPS)
    assert _objective(comparison, "exact") == pytest.approx(evidence, rel=1e-10)
    em = comparison.idatas["em"].posterior
    pi, p, q = (float(em[name].values.ravel()[0]) for name in ("pi", "p", "q"))
    log_posterior = float(np.sum(reference_log_likelihood(SEED_FLIPS, pi, p, q)))
    log_posterior += float(np.sum(stats.beta.logpdf([pi, p, q], 1, 1)))  # Beta(1, 1) priors
    assert _objective(comparison, "em") == pytest.approx(log_posterior, rel=1e-10)
    assert _objective(comparison, "vb") <= evidence + 1e-9  # the ELBO bounds the log-evidence


def test_objectives_against_enumeration_and_scipy(coins, hmm):
    check_coin_objectives(coins[0])
    comparison, _ = hmm
    evidence = hmm_log_evidence(HMM_DATA, 2, 3)
    assert _objective(comparison, "exact") == pytest.approx(evidence, rel=1e-10)
    em = comparison.idatas["em"].posterior  # relabelling permutes states; the objective does not change
    params = [em[name].values[0, 0] for name in ("init_probs", "trans_mat", "emission_probs")]
    assert _objective(comparison, "em") == pytest.approx(hmm_log_posterior(HMM_DATA, *params), rel=1e-9)
    assert _objective(comparison, "vb") <= evidence + 1e-9


# -- relabelling ---------------------------------------------------------------------------------------
def permute_labels(idata, label_dim: str, paired: tuple = (), per_draw_seed: int | None = None):
    """The result with its labels permuted in every posterior variable that carries them: one
    fixed permutation (reversed labels), or an independent random one per draw."""
    posterior = idata.posterior.to_dataset()
    n_labels = posterior.sizes[label_dim]
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    if per_draw_seed is None:
        orders = np.broadcast_to(np.arange(n_labels)[::-1], (n_chain, n_draw, n_labels))
    else:
        rng = np.random.default_rng(per_draw_seed)
        orders = np.array([[rng.permutation(n_labels) for _ in range(n_draw)] for _ in range(n_chain)])
    permuted = posterior.copy()
    for name, variable in posterior.data_vars.items():
        values = np.asarray(variable.values)
        for axis, dim in enumerate(variable.dims):
            if dim == label_dim or dim in paired:
                shape = [1] * values.ndim
                shape[0], shape[1], shape[axis] = n_chain, n_draw, n_labels
                values = np.take_along_axis(values, orders.reshape(shape), axis=axis)
        permuted[name] = (variable.dims, values)
    result = idata.copy(deep=False)
    result["posterior"] = permuted
    return result


def mirror_coins(idata):
    """The three coins' other labelling of every draw: (pi, p, q) -> (1 - pi, q, p)."""
    posterior = idata.posterior.to_dataset()
    mirrored = posterior.copy()
    mirrored["pi"] = 1.0 - posterior["pi"]
    mirrored["p"], mirrored["q"] = posterior["q"], posterior["p"]
    result = idata.copy(deep=False)
    result["posterior"] = mirrored
    return result


def assert_same_table(table, expected) -> None:
    assert list(table.columns) == list(expected.columns)
    for column in table.columns:
        if column in NUMERIC:
            np.testing.assert_allclose(table[column].astype(float), expected[column].astype(float), rtol=1e-12,
                                       atol=1e-14, equal_nan=True, err_msg=column)
        else:
            assert list(table[column]) == list(expected[column]), column


def _permuted_results(case, comparison):
    """Every non-reference back-end's labels permuted: a fixed permutation for point and VB
    results, a different random one per draw for the sampler."""
    model = comparison.model
    if case == "coins":
        return lambda backend, idata: idata if backend == comparison.reference else mirror_coins(idata)
    paired = tuple(model.paired_label_dims or ())

    def permute(backend, idata):
        if backend == comparison.reference:
            return idata
        return permute_labels(idata, model.label_dim, paired, per_draw_seed=7 if backend == "gibbs" else None)
    return permute


@pytest.mark.parametrize("case", ["coins", "hmm", "gmm"])
def test_permuted_labels_leave_the_table_unchanged(case, request):
    comparison, raw = request.getfixturevalue(case)
    transform = _permuted_results(case, comparison)
    # the permutation does change the raw draws
    some = next(name for name in raw if name != comparison.reference)
    param = comparison.model.param_names[-1]
    assert not np.allclose(transform(some, raw[some]).posterior[param].values, raw[some].posterior[param].values)
    again = replayed_compare(comparison, raw, transform)
    assert_same_table(again.table, comparison.table)
    # and the relabelled draws are the ones the table describes
    check_table(again.table, again.model, again.idatas, again.reference)


def test_relabelled_gmm_components_sit_on_the_reference(gmm):
    """After relabelling, every back-end's component means lie within a few reference sd of the
    reference's (well-separated blobs: the components are unambiguous); before, a permuted result
    is tens of sd away."""
    comparison, raw = gmm
    rows = comparison.table[comparison.table["parameter"].str.startswith("means")]
    assert rows["error_in_ref_sd"].abs().max() < 2
    # permute EM's labels away from the relabelled ones (the raw results may already agree with the
    # reference's labelling: Gibbs chains start from EM-quality points)
    permuted = {name: permute_labels(idata, "component") if name == "em" else idata
                for name, idata in comparison.idatas.items()}
    unrelabelled = metrics.comparison_table(comparison.model, permuted, reference="gibbs")
    rows = unrelabelled[(unrelabelled["backend"] == "em") & unrelabelled["parameter"].str.startswith("means")]
    assert rows["error_in_ref_sd"].abs().max() > 10


def gmm_component_mean_sds() -> dict:
    """Closed-form posterior sd of each blob's mean, keyed by the blob's centre.

    The three blobs of ``GMM_DATA`` lie 10-12 noise sd apart, so every point's component is
    certain and each component's (mean, cov) posterior is the Normal-inverse-Wishart update
    with that blob's points: the mean is multivariate t with covariance
    S_n / (kappa_n (nu_n - D - 1)). The prior's hyperparameters are the model's data-driven
    ones (``with_data_prior``); the update is written out here.
    """
    prior = GaussianMixture(3).with_data_prior(GMM_DATA)
    m0, kappa0, nu0, S0 = np.asarray(prior.m0), prior.kappa0, prior.nu0, np.asarray(prior.S0)
    sds = {}
    for points in np.split(GMM_DATA, 3):  # blobs() stacks its blobs in order
        n, centre = len(points), points.mean(axis=0)
        kappa_n, nu_n = kappa0 + n, nu0 + n
        scatter = (points - centre).T @ (points - centre)
        S_n = S0 + scatter + kappa0 * n / kappa_n * np.outer(centre - m0, centre - m0)
        sds[tuple(centre)] = np.sqrt(np.diag(S_n) / (kappa_n * (nu_n - m0.size - 1)))
    return sds


def check_component_widths(idata, z: float = 5.0, ess_floor: float = 100.0) -> None:
    """Every component mean's posterior sd equals the closed form, within z standard errors of
    an sd estimate (relative SE 1 / sqrt(2 ESS)) with the ESS floored at ``ess_floor`` (a
    well-mixing sampler gets no tighter test than 100 effective draws; z = 5: an honest run
    fails with probability below 1e-6 per element)."""
    draws = np.asarray(idata.posterior["means"].values, float).reshape(-1, 3, 2)
    tolerance = z / math.sqrt(2 * ess_floor)
    for centre, expected in gmm_component_mean_sds().items():
        k = int(np.argmin(np.linalg.norm(draws.mean(axis=0) - np.array(centre), axis=1)))
        ratio = draws[:, k].std(axis=0, ddof=1) / expected
        assert np.all(np.abs(ratio - 1) < tolerance), f"component {k} at {np.round(centre, 1)}: sd ratio {ratio}"


def test_component_widths_check_on_correctly_labelled_draws(gmm):
    """The check above passes on the Gibbs draws labelled by their means alone (the blobs do
    not overlap, so that labelling is right) and fails when 1% of those draws have two labels
    swapped: its power against the mislabelling tested below."""
    from latentzoo.inference.labels import relabel_self

    _, raw = gmm
    by_means = relabel_self(raw["gibbs"], "component", variables=["means"])
    check_component_widths(by_means)
    swapped = permute_labels(by_means, "component")
    posterior = by_means.posterior.to_dataset()
    mixed = posterior["means"].values.copy()
    mixed[0, :5] = swapped.posterior["means"].values[0, :5]  # 5 of 500 draws with labels 0 and 2 exchanged
    posterior["means"] = (posterior["means"].dims, mixed)
    broken = by_means.copy(deep=False)
    broken["posterior"] = posterior
    with pytest.raises(AssertionError, match="sd ratio"):
        check_component_widths(broken)


def test_relabelled_components_keep_their_closed_form_width(gmm):
    comparison, _ = gmm
    for backend in ("gibbs", "vb"):
        check_component_widths(comparison.idatas[backend])


# -- power: every check fails on a planted fault -------------------------------------------------
def _table_fault(column, change):
    def plant(table):
        table = table.copy()
        table[column] = change(table)
        return table
    return plant


#: a wrong table, one per column family: each must be caught, and by the column named
TABLE_FAULTS = {
    "mean shifted by 0.05 sd": ("mean", _table_fault("mean", lambda t: t["mean"] + 0.05 * t["sd"].fillna(0.01))),
    "sd scaled by 0.99": ("sd", _table_fault("sd", lambda t: t["sd"] * 0.99)),
    "error_in_ref_sd divided by 3": ("error_in_ref_sd", _table_fault("error_in_ref_sd",
                                                                      lambda t: t["error_in_ref_sd"] / 3)),
    "sd_ratio inverted": ("sd_ratio", _table_fault("sd_ratio", lambda t: 1 / t["sd_ratio"])),
    "wasserstein 0.1% high": ("wasserstein", _table_fault("wasserstein", lambda t: t["wasserstein"] * 1.001)),
    "ess_bulk_per_s per ms": ("ess_bulk_per_s", _table_fault("ess_bulk_per_s", lambda t: t["ess_bulk_per_s"] / 1e3)),
    "objective lowered by 2 nats": ("objective", _table_fault("objective", lambda t: t["objective"] - 2)),
    "run_s of another back-end": ("run_s", _table_fault("run_s", lambda t: t["run_s"][::-1].to_numpy())),
    "ref_mean of the first row": ("ref_mean", _table_fault("ref_mean", lambda t: t["ref_mean"].iloc[0])),
}


@pytest.mark.parametrize("fault", list(TABLE_FAULTS))
def test_power_a_wrong_column_is_caught(fault, hmm):
    comparison, _ = hmm
    column, plant = TABLE_FAULTS[fault]
    with pytest.raises(AssertionError, match=f"{column} of "):
        check_table(plant(comparison.table), comparison.model, comparison.idatas, comparison.reference)


#: faults planted in the code that computes the table, as a plausible slip would put them
def _ess_with(monkeypatch, override):
    # the table calls ArviZ's array functions (arviz_stats.base.array_stats), the ones az.ess
    # applies to each variable of a Dataset
    from arviz_stats.base import array_stats

    real = array_stats.ess

    def ess(data, *args, **kwargs):
        return real(data, *args, **{**kwargs, **override(kwargs)})

    monkeypatch.setattr(array_stats, "ess", ess)


def _sd_with_ddof_0(monkeypatch):
    real = metrics._variable_stats

    def stats_(idata, names, kind, *args):
        computed = real(idata, names, kind, *args)
        n = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
        for values in computed.values():
            if "sd" in values:
                values["sd"] = values["sd"] * math.sqrt((n - 1) / n)
        return computed

    monkeypatch.setattr(metrics, "_variable_stats", stats_)


def _wasserstein_to_half_the_reference(monkeypatch):
    real = metrics._wasserstein
    monkeypatch.setattr(metrics, "_wasserstein", lambda draws, reference: real(draws, reference[: reference.size // 2]))


def _record_lowered(monkeypatch):
    real = metrics._record
    monkeypatch.setattr(metrics, "_record", lambda idata: dataclasses.replace(real(idata),
                                                                              objective=real(idata).objective - 2.0))


def _hdi_at_90(monkeypatch):
    monkeypatch.setattr(metrics, "HDI_PROB", 0.9)


def _rhat_unranked(monkeypatch):
    from arviz_stats.base import array_stats

    real = array_stats.rhat
    monkeypatch.setattr(array_stats, "rhat", lambda data, *args, **kwargs: real(data, *args, **{**kwargs, "method": "split"}))


CODE_FAULTS = {
    "sd with ddof=0": (_sd_with_ddof_0, "sd"),
    "W1 against half the reference draws": (_wasserstein_to_half_the_reference, "wasserstein"),
    "objective lowered by 2 nats in the record read": (_record_lowered, "objective"),
    "HDI at 90%": (_hdi_at_90, "hdi_3%"),
    "bulk ESS without rank normalisation": (
        lambda mp: _ess_with(mp, lambda kw: {"method": "mean"} if kw.get("method", "bulk") == "bulk" else {}),
        "ess_bulk"),
    "tail ESS at the 10% and 90% quantiles": (
        lambda mp: _ess_with(mp, lambda kw: {"prob": (0.1, 0.9)} if kw.get("method") == "tail" else {}),
        "ess_tail"),
    "R-hat without rank normalisation": (_rhat_unranked, "r_hat"),
}


@pytest.mark.parametrize("fault", list(CODE_FAULTS))
def test_power_a_fault_in_the_code_is_caught(fault, coins, monkeypatch):
    comparison, _ = coins
    plant, column = CODE_FAULTS[fault]
    plant(monkeypatch)
    faulty = metrics.comparison_table(comparison.model, comparison.idatas, comparison.reference)
    with pytest.raises(AssertionError, match=f"{column} of "):
        check_table(faulty, comparison.model, comparison.idatas, comparison.reference)


def test_power_error_in_ref_sd_divided_by_3_in_compare(hmm, monkeypatch):
    """The issue's planted fault, in the comparison itself: the table compare() builds is caught."""
    comparison, raw = hmm
    real = compare_module.comparison_table

    def divided(*args, **kwargs):
        table = real(*args, **kwargs)
        return table.assign(error_in_ref_sd=table["error_in_ref_sd"] / 3)

    monkeypatch.setattr(compare_module, "comparison_table", divided)
    faulty = replayed_compare(comparison, raw)
    with pytest.raises(AssertionError, match="error_in_ref_sd of "):
        check_table(faulty.table, faulty.model, faulty.idatas, faulty.reference)


def test_power_a_shifted_result_is_caught_and_moves_the_error_by_its_size(coins):
    """The table of one result checked against the draws of a result shifted by 1 reference sd
    fails (mean, error, HDI, W1); the table of the shifted result passes and its error moves by
    exactly 1 (a metamorphic check on the code), its sd ratio not at all."""
    comparison, _ = coins
    vb = comparison.idatas["vb"]
    ref_sd = comparison.idatas["exact"].posterior["p"].values.std(ddof=1)
    shifted = vb.copy(deep=False)
    posterior = vb.posterior.to_dataset()
    posterior["p"] = posterior["p"] + ref_sd
    shifted["posterior"] = posterior
    idatas = {**comparison.idatas, "vb": shifted}
    found = table_mismatches(comparison.table, comparison.model, idatas, comparison.reference)
    assert {line.split(" of ")[0] for line in found} == {"mean", "error_in_ref_sd", "hdi_3%", "hdi_97%", "wasserstein"}
    assert all(" vb p:" in line for line in found)
    table = metrics.comparison_table(comparison.model, idatas, comparison.reference)
    check_table(table, comparison.model, idatas, comparison.reference)
    before = comparison.table.set_index(["backend", "parameter"]).loc[("vb", "p")]
    after = table.set_index(["backend", "parameter"]).loc[("vb", "p")]
    assert after["error_in_ref_sd"] - before["error_in_ref_sd"] == pytest.approx(1.0, rel=1e-9)
    assert after["sd_ratio"] == pytest.approx(before["sd_ratio"], rel=1e-12)


@pytest.mark.parametrize("backend", ["exact", "em"])
def test_power_the_objective_checks_catch_a_record_2_nats_off(backend, coins):
    """A back-end whose record states an objective 2 nats low: the table reports it faithfully
    (the recomputation from the record passes), the brute-force and scipy values do not."""
    comparison, raw = coins

    def lowered(name, idata):
        if name != backend:
            return idata
        wrong = idata.copy(deep=False)
        posterior = idata.posterior.to_dataset()
        posterior.attrs = {**posterior.attrs, "objective": posterior.attrs["objective"] - 2.0}
        wrong["posterior"] = posterior
        return wrong

    faulty = replayed_compare(comparison, raw, lowered)
    check_table(faulty.table, faulty.model, faulty.idatas, faulty.reference)
    with pytest.raises(AssertionError):
        check_coin_objectives(faulty)


def test_power_labels_left_permuted_change_the_table(hmm, monkeypatch):
    """Without the relabelling step, a permuted result changes the table: the unchanged-table
    check above has something to catch."""
    comparison, raw = hmm
    monkeypatch.setattr(compare_module, "_relabelled", lambda model, data, idatas, reference: idatas)
    again = replayed_compare(comparison, raw, _permuted_results("hmm", comparison))
    with pytest.raises(AssertionError):
        assert_same_table(again.table, comparison.table)


def test_without_tail_ess_only_that_column_is_left_out(coins):
    comparison, _ = coins
    full = metrics.comparison_table(comparison.model, comparison.idatas, comparison.reference)
    lean = metrics.comparison_table(comparison.model, comparison.idatas, comparison.reference, tail_ess=False)
    assert lean["ess_tail"].isna().all() and full["ess_tail"].notna().any()
    timing = ["compile_s", "run_s", "runtime_s", "ess_bulk_per_s", "ess_tail"]
    pd.testing.assert_frame_equal(lean.drop(columns=timing), full.drop(columns=timing))
