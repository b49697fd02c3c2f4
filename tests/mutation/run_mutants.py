"""Mutation testing: plant known wrong answers in a copy of latentzoo and check the tests fail.

Each :class:`Mutant` is one planted fault: in one file, an exact snippet of the original code is
replaced (it must occur exactly once, so that a fault planted in code that has since moved
fails loudly instead of silently testing nothing).

When a mutant counts as killed
------------------------------
The bar is that the **whole default suite** (``-m "not slow"``) fails with the fault planted and
passes without it. Running the whole suite (about 8 minutes on two cores) for each of 30-odd
mutants is too slow, so every mutant runs in two phases:

1. its *hinted* tests (the files that should notice it, optionally narrowed by ``-k``) with
   ``-x``. Those are a subset of the default suite, so a test failing there is a test failing in
   the default suite: a kill;
2. only if the hinted tests all pass, the whole default suite (``-m "not slow"``; with
   ``-n 2`` when pytest-xdist is installed, else with ``-x``: xdist reports a session stopped
   by ``-x`` as interrupted, exit status 2) before the mutant is declared a survivor. A mutant
   that a test outside its hints catches is still killed (the table says so: ``killed*``; its
   hints deserve updating).

A kill counts only when pytest reports a *failing test* (exit status 1), and only if that test
passes once the fault is taken out again (it is rerun alone): a test failing anyway would
otherwise kill every mutant. A collection or import error, an interrupt, a usage error or an
empty selection (exit status 2, 3, 4, 5) is reported as ``error``, not as a kill: a mutant that
merely breaks an import proves nothing about the tests' power.

``--hints-only`` skips phase 2 (for iterating on new mutants); a mutant that passes its hints
is then reported as ``passed-hints``, which is not a survivor verdict and not a kill.

Everything happens in a temporary copy of the tracked files (``git ls-files``, as they are in
the working tree, uncommitted edits included), imported through a ``.shim/latentzoo`` directory
of symlinks on ``PYTHONPATH``, the way a worktree is; the checkout itself is never edited.
Mutants run one at a time.

Usage (``make mutants`` runs it with the project's interpreter)::

    python tests/mutation/run_mutants.py [--list] [--only NAME ...] [--fail-under SCORE]
                                         [--timeout SECONDS] [--suite-timeout SECONDS]
                                         [--hints-only]

Prints a table (mutant, result, seconds of each phase, the first failing test), the mutation
score killed / total and the survivors. The exit status is 1 when the score is below
``--fail-under`` (default 0.95) or a run errs, 0 otherwise.

This file is a script, not a test module: pytest collects ``test_*.py`` only, so it is never
collected, and nothing here imports pytest.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: options of every pytest run: quiet, no cache written into the copy
PYTEST_OPTIONS = ("-q", "-p", "no:cacheprovider")

#: phase 2: the whole default suite (pyproject's addopts deselect ``slow`` too; said again here
#: so that the bar does not move if addopts does)
SUITE_ARGUMENTS = ("-m", "not slow", "tests")

#: the packages the shim maps into the ``latentzoo`` namespace (pyproject's package-dir)
PACKAGES = ("models", "inference")


@dataclass(frozen=True)
class Mutant:
    """One planted fault.

    Attributes
    ----------
    name : str
    path : str
        File to edit, relative to the repository root.
    original : str
        Exact text that must occur exactly once in ``path``.
    replacement : str
    tests : tuple of str
        pytest arguments naming what to run: files, node ids or glob patterns of files
        (``tests/test_*metric*.py``, so that test modules added later are picked up; a pattern
        matching nothing is dropped, but at least one argument must name something).
    keyword : str, optional
        A ``-k`` expression narrowing ``tests``.
    what : str
        The wrong answer the fault produces, in words.
    """

    name: str
    path: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    keyword: str | None = None
    what: str = ""


#: where the comparison's numbers and report are tested (files added later by name pattern)
COMPARE_TESTS = ("tests/test_compare_cli.py", "tests/test_*metric*.py", "tests/test_*compar*.py")

MUTANTS = (
    Mutant(
        "coins-gibbs-ignores-data",
        "models/coins/three_coins.py",
        "coin_b = np.stack([rng.random(data.n_trials) for rng in rngs]) < coin_b_prob",
        "coin_b = np.stack([rng.random(data.n_trials) for rng in rngs]) < 0.5",
        ("tests/test_three_coins.py", "tests/test_*agree*.py"),
        keyword="gibbs and not pymc_gibbs",
        what="the three-coin Gibbs sampler gives every trial to coin B with probability 0.5",
    ),
    Mutant(
        "gibbs-shifted",
        "inference/backends/gibbs.py",
        "    return {name: np.stack(kept[name], axis=1) for name in names}",
        '    return {name: np.stack(kept[name], axis=1) + (0.05 if name == "p" else 0.0) for name in names}',
        ("tests/test_three_coins.py", "tests/test_*agree*.py"),
        keyword="gibbs and not pymc_gibbs",
        what="the kept Gibbs draws of p are shifted by +0.05",
    ),
    Mutant(
        "gibbs-under-dispersed",
        "inference/backends/gibbs.py",
        "draws_by_name = sweeps(model, data, start_at, chain_rngs, tune, draws, progress)",
        "draws_by_name = {name: 0.3 * value.mean((0, 1)) + 0.7 * value"
        " for name, value in sweeps(model, data, start_at, chain_rngs, tune, draws, progress).items()}",
        ("tests/test_three_coins.py", "tests/test_hmm.py", "tests/test_gmm.py", "tests/test_*agree*.py"),
        keyword="gibbs and not pymc_gibbs",
        what="every Gibbs draw is pulled toward the mean: sd x 0.7, mean kept",
    ),
    Mutant(
        "pymc-sampler-under-dispersed",
        "inference/backends/pymc_backends.py",
        "    draws_by_name = _posterior_arrays(model, idata.posterior)\n",
        "    draws_by_name = {name: 0.3 * value.mean((0, 1)) + 0.7 * value"
        " for name, value in _posterior_arrays(model, idata.posterior).items()}\n",
        ("tests/test_three_coins.py", "tests/test_niw.py", "tests/test_hmm.py", "tests/test_*agree*.py"),
        keyword="nuts or pymc_gibbs",
        what="NUTS and PyMC-Gibbs draws are pulled toward their mean: sd x 0.7, mean kept",
    ),
    Mutant(
        "exact-backend-too-narrow",
        "inference/backends/exact.py",
        "samples = posterior.sample(rng, chains * draws)",
        "samples = {name: 0.3 * value.mean(0) + 0.7 * value"
        " for name, value in posterior.sample(rng, chains * draws).items()}",
        ("tests/test_three_coins.py", "tests/test_hmm.py", "tests/test_niw.py", "tests/test_*agree*.py"),
        keyword="exact",
        what="the exact back-end's draws are pulled toward their mean: sd x 0.7, mean kept",
    ),
    Mutant(
        "exact-mixture-too-narrow",
        "models/core/conjugate_mixture.py",
        'return apply_to_factors(self.component(component), "sample", rng)',
        "return {name: 0.3 * value.mean(0) + 0.7 * value for name, value in"
        ' apply_to_factors(self.component(component), "sample", rng).items()}',
        ("tests/test_conjugate_mixture.py", "tests/test_three_coins.py", "tests/test_hmm.py", "tests/test_*agree*.py"),
        keyword="exact or sample or mixture",
        what="draws from a mixture exact posterior (three coins, HMMs) are too narrow: sd x 0.7",
    ),
    Mutant(
        "vb-elbo-minus-2",
        "inference/backends/vb.py",
        "return model.conditional_posterior(stats), data_term - kl",
        "return model.conditional_posterior(stats), data_term - kl - 2.0",
        ("tests/test_three_coins.py", "tests/test_gmm.py", "tests/test_hmm.py", "tests/test_*elbo*.py"),
        keyword="elbo or vb",
        what="the reported ELBO is 2 nats too low (the updates are unchanged)",
    ),
    Mutant(
        "error-in-ref-sd-over-3",
        "inference/comparison/metrics.py",
        'row["error_in_ref_sd"] = (row["mean"] - row["ref_mean"]) / row["ref_sd"] if positive else math.nan',
        'row["error_in_ref_sd"] = (row["mean"] - row["ref_mean"]) / row["ref_sd"] / 3 if positive else math.nan',
        COMPARE_TESTS,
        what="the comparison's error_in_ref_sd is a third of the truth",
    ),
    Mutant(
        "sd-ratio-inverted",
        "inference/comparison/metrics.py",
        'row["sd_ratio"] = row["sd"] / row["ref_sd"] if positive else math.nan',
        'row["sd_ratio"] = row["ref_sd"] / row["sd"] if positive else math.nan',
        COMPARE_TESTS,
        what="the comparison's sd_ratio is ref_sd / sd",
    ),
    Mutant(
        "wasserstein-halved",
        "inference/comparison/metrics.py",
        "return float(wasserstein_distance(draws, reference))",
        "return float(wasserstein_distance(draws, reference)) / 2",
        COMPARE_TESTS,
        what="the comparison's 1-Wasserstein distance is halved",
    ),
    Mutant(
        "report-drops-failures",
        "inference/templates/report.html.j2",
        "<h2>Failures</h2><ul>\n"
        "{%- for backend, message in failures.items() %}<li><b>{{ backend }}</b>: {{ message }}</li>"
        "{% else %}<li>none</li>{% endfor -%}\n"
        "</ul>\n",
        "",
        ("tests/test_compare_cli.py", "tests/test_report.py"),
        keyword="report or fail or save",
        what="the HTML report has no failures section",
    ),
    Mutant(
        "em-second-best-restart",
        "inference/backends/em.py",
        "    draws = {name: np.asarray(value, float)[None, None] for name, value in best.state.items()}",
        "    finals = [row[np.isfinite(row)][-1] for row in histories]\n"
        "    second = int(np.argsort(finals)[-2]) if len(ends) > 1 else best_index\n"
        "    draws = {name: np.asarray(value, float)[None, None] for name, value in ends[second].items()}",
        ("tests/test_three_coins.py", "tests/test_gmm.py", "tests/test_hmm.py", "tests/test_compare_cli.py"),
        keyword="em",
        what="EM returns where its second-best restart stopped (the record keeps the best objective)",
    ),
    Mutant(
        "relabelling-skipped",
        "inference/labels.py",
        "    if label_dim is None:\n        return idata\n    paired = _check_dims",
        "    if label_dim is None or True:\n        return idata\n    paired = _check_dims",
        ("tests/test_compare_cli.py", "tests/test_*metric*.py", "tests/test_gmm.py", "tests/test_hmm.py"),
        keyword="relabel or label or agree",
        what="relabel() returns every result with the labels the back-end happened to use",
    ),
    # -- PyMC back-ends (ADVI and MAP: expected to survive until their default accuracy tests land) --
    Mutant(
        "advi-ignores-data",
        "inference/backends/pymc_backends.py",
        "                method=method,\n",
        # PyMC's KL operator is -log p(data | theta) + (log q - log p(theta)); without its data term
        # the optimum is q = the prior (the potentials of the marginalised models count as data)
        "                method=pm.variational.inference.Inference(\n"
        "                    type(\"KLWithoutData\", (pm.variational.operators.KL,),\n"
        "                         {\"apply\": lambda self, f: self.logq_norm - self.varlogp_norm}),\n"
        "                    {\"advi\": pm.MeanField, \"fullrank_advi\": pm.FullRank}[method](start=start, random_seed=seed),\n"
        "                    None),\n",
        ("tests/test_*advi*.py", "tests/test_*accuracy*.py", "tests/test_niw.py", "tests/test_three_coins.py",
         "tests/test_*agree*.py"),
        keyword="advi",
        what="ADVI and full-rank ADVI return draws from the prior: the data are ignored",
    ),
    Mutant(
        "advi-drops-entropy",
        "inference/backends/pymc_backends.py",
        "                method=method,\n",
        # PyMC owns the objective, so the fault swaps in an operator whose KL lacks log q: the
        # approximation then maximises E_q[log p] alone and collapses towards the mode
        "                method=pm.variational.inference.Inference(\n"
        "                    type(\"KLWithoutEntropy\", (pm.variational.operators.KL,),\n"
        "                         {\"apply\": lambda self, f: -self.datalogp_norm - self.varlogp_norm}),\n"
        "                    {\"advi\": pm.MeanField, \"fullrank_advi\": pm.FullRank}[method](start=start, random_seed=seed),\n"
        "                    None),\n",
        ("tests/test_*advi*.py", "tests/test_*accuracy*.py", "tests/test_niw.py", "tests/test_three_coins.py",
         "tests/test_*agree*.py"),
        keyword="advi",
        what="ADVI's objective drops the entropy term: the approximation collapses (sd -> 0)",
    ),
    Mutant(
        "map-shifted",
        "inference/backends/pymc_backends.py",
        "    draws = {name: np.asarray(posterior[name].values, float) for name in model.param_names}",
        "    draws = {name: np.asarray(posterior[name].values, float) + 0.02 for name in model.param_names}",
        ("tests/test_*map*.py", "tests/test_*accuracy*.py", "tests/test_three_coins.py", "tests/test_niw.py",
         "tests/test_gmm.py", "tests/test_hmm.py"),
        keyword="map",
        what="MAP reports a point shifted by +0.02 in every parameter",
    ),
    Mutant(
        "nuts-shifted",
        "inference/backends/pymc_backends.py",
        "        draws_by_name = _posterior_arrays(model, idata.posterior)\n        sampling",
        "        draws_by_name = {name: value + (0.02 if backend == \"nuts\" else 0.0)"
        " for name, value in _posterior_arrays(model, idata.posterior).items()}\n        sampling",
        ("tests/test_three_coins.py", "tests/test_niw.py", "tests/test_hmm.py", "tests/test_*agree*.py"),
        keyword="nuts",
        what="PyMC's NUTS draws are shifted by +0.02 when converted (the spread kept)",
    ),
    # -- variational Bayes: wrong expectations --
    Mutant(
        "vb-dirichlet-plug-in-expectation",
        "models/core/conjugate.py",
        "        return _frozen(special.digamma(alpha) - special.digamma(alpha.sum(-1, keepdims=True)))",
        "        return _frozen(np.log(alpha) - np.log(alpha.sum(-1, keepdims=True)))",
        ("tests/test_conjugate.py", "tests/test_elbo.py", "tests/test_hmm.py", "tests/test_gmm.py"),
        keyword="vb or elbo or expected",
        what="E[log x] of a Dirichlet is log E[x]-like (log alpha_k - log sum alpha): VB's mixing weights "
             "and transitions are too confident",
    ),
    Mutant(
        "niw-vb-drops-mean-uncertainty",
        "models/gaussian/kernels.py",
        "    constants = 0.5 * (expected_log_det - dim * _LOG_2PI - dim / kappa)",
        "    constants = 0.5 * (expected_log_det - dim * _LOG_2PI)",
        ("tests/test_gmm_kernels.py", "tests/test_elbo.py", "tests/test_gmm.py", "tests/test_gaussian_hmm.py"),
        what="VB's E[log N(x | mu, Sigma)] under NIW factors drops the D / kappa term (the mean's uncertainty)",
    ),
    Mutant(
        "niw-vb-multidigamma-off-by-one",
        "models/gaussian/kernels.py",
        "    half_degrees = nu[:, None] / 2.0 + (1.0 - np.arange(1, dim + 1)) / 2.0",
        "    half_degrees = nu[:, None] / 2.0 + (1.0 - np.arange(dim)) / 2.0",
        ("tests/test_gmm_kernels.py", "tests/test_elbo.py", "tests/test_gmm.py", "tests/test_gaussian_hmm.py"),
        what="E[log |Lambda|] under a Wishart uses psi((nu + 1 - i) / 2) for i = 0..D-1 (off by one)",
    ),
    Mutant(
        "hmm-vb-plug-in-transitions",
        "models/hmm/model.py",
        '        return self._pass(data, init, np.exp(factors["trans_mat"].expected_log()), factors, expected_log=True)',
        '        return self._pass(data, init, factors["trans_mat"].mean(), factors, expected_log=True)',
        ("tests/test_elbo.py", "tests/test_hmm.py", "tests/test_gaussian_hmm.py", "tests/test_poisson_hmm.py"),
        keyword="vb or elbo",
        what="HMM VB uses the posterior-mean transition matrix instead of exp E[log trans]",
    ),
    Mutant(
        "poisson-vb-plug-in-log-rate",
        "models/families/poisson.py",
        "        values = x[:, None] * gamma.expected_log() - gamma.mean() - special.gammaln(x + 1.0)[:, None]",
        "        values = x[:, None] * np.log(gamma.mean()) - gamma.mean() - special.gammaln(x + 1.0)[:, None]",
        ("tests/test_poisson_hmm.py", "tests/test_poisson_mixture.py", "tests/test_families.py", "tests/test_elbo.py"),
        what="Poisson VB uses log E[rate] instead of E[log rate] = digamma(a) - log(b)",
    ),
    # -- Normal-Inverse-Wishart, GMM, GaussianHMM model code --
    Mutant(
        "niw-update-drops-prior-weight",
        "models/core/conjugate.py",
        "            shrink = np.where(kappa_n > 0, self.kappa * count / kappa_n, 0.0)",
        "            shrink = np.where(kappa_n > 0, count / kappa_n, 0.0)",
        ("tests/test_conjugate.py", "tests/test_niw.py", "tests/test_families.py"),
        what="the NIW posterior scale adds (N / kappa_N) instead of (kappa N / kappa_N) (xbar - m)(xbar - m)^T",
    ),
    Mutant(
        "niw-mode-off-by-one",
        "models/core/conjugate.py",
        "        return self.m.copy(), self.S / (self.nu + self.dim + 2.0)[..., None, None]",
        "        return self.m.copy(), self.S / (self.nu + self.dim + 1.0)[..., None, None]",
        ("tests/test_conjugate.py", "tests/test_niw.py", "tests/test_families.py"),
        what="the NIW joint mode uses the IW marginal's S / (nu + D + 1): MAP-EM covariances too large",
    ),
    Mutant(
        "niw-pymc-nu-off-by-one",
        "models/gaussian/niw.py",
        '            _, chol = inverse_wishart("Sigma", float(prior.nu), np.asarray(prior.S, np.float64), dims=("feature", "feature_bis"))',
        '            _, chol = inverse_wishart("Sigma", float(prior.nu) + 1.0, np.asarray(prior.S, np.float64), dims=("feature", "feature_bis"))',
        ("tests/test_niw.py", "tests/test_model_declarations.py", "tests/test_pymc_parts.py"),
        what="NIWGaussian's PyMC declaration has an inverse-Wishart prior with nu + 1 degrees of freedom",
    ),
    Mutant(
        "gmm-log-det-not-halved",
        "models/gaussian/kernels.py",
        "        constants = np.log(weights) - 0.5 * (x.shape[1] * _LOG_2PI + log_det)",
        "        constants = np.log(weights) - 0.5 * x.shape[1] * _LOG_2PI - log_det",
        ("tests/test_gmm_kernels.py", "tests/test_gmm_pointwise.py", "tests/test_gmm.py"),
        what="the GMM's log N(x | mu_k, Sigma_k) subtracts log|Sigma_k| instead of half of it",
    ),
    Mutant(
        "gaussian-hmm-evidence-wrong-nu",
        "models/families/gaussian.py",
        "- 0.5 * posterior.nu * np.linalg.slogdet(posterior.S)[1]",
        "- 0.5 * prior.nu * np.linalg.slogdet(posterior.S)[1]",
        ("tests/test_gaussian_hmm.py", "tests/test_families.py", "tests/test_conjugate_mixture.py"),
        what="the NIW marginal likelihood behind the GaussianHMM's exact posterior weighs log|S_N| by nu_0, not nu_N",
    ),
    Mutant(
        "hmm-exact-transposed-transitions",
        "models/hmm/exact.py",
        "trans_c[rows, paths[:, t - 1] * K + paths[:, t]] += 1",
        "trans_c[rows, paths[:, t] * K + paths[:, t - 1]] += 1",
        ("tests/test_hmm.py", "tests/test_gaussian_hmm.py", "tests/test_poisson_hmm.py"),
        keyword="exact",
        what="path enumeration counts each transition j -> i as i -> j (the transition counts transposed)",
    ),
    Mutant(
        "hmm-pymc-explicit-chain-transposed",
        "models/hmm/pymc.py",
        "trans[states[previous], states[previous + 1]]",
        "trans[states[previous + 1], states[previous]]",
        ("tests/test_mutant_guards.py", "tests/test_gaussian_hmm_pymc.py", "tests/test_hmm.py"),
        what="the explicit-state PyMC HMM (pymc_gibbs) reads trans_mat[z_t, z_t-1] instead of [z_t-1, z_t]",
    ),
    # -- the Poisson and Bernoulli families --
    Mutant(
        "poisson-posterior-swapped",
        "models/families/poisson.py",
        '        return {"rates": prior["rates"].update(stats["totals"], counts)}',
        '        return {"rates": prior["rates"].update(counts, stats["totals"])}',
        ("tests/test_families.py", "tests/test_poisson_hmm.py", "tests/test_poisson_mixture.py"),
        what="the Gamma posterior of a Poisson rate adds the counts to the shape and the totals to the rate",
    ),
    Mutant(
        "poisson-evidence-counts-for-totals",
        "models/families/poisson.py",
        "                 - (a + totals) * np.log(b + counts)",
        "                 - (a + counts) * np.log(b + counts)",
        ("tests/test_families.py", "tests/test_poisson_hmm.py", "tests/test_poisson_mixture.py"),
        what="the Poisson-Gamma marginal likelihood (exact posterior) raises (b + n) to a + n instead of a + S",
    ),
    Mutant(
        "bernoulli-posterior-swapped",
        "models/families/bernoulli.py",
        '        return {"probs": prior["probs"].update(stats["ones"], stats["zeros"])}',
        '        return {"probs": prior["probs"].update(stats["zeros"], stats["ones"])}',
        ("tests/test_families.py", "tests/test_bernoulli_mixture.py"),
        what="the Beta posterior of a Bernoulli probability counts zeros as successes",
    ),
    Mutant(
        "bernoulli-pymc-log1p-sign",
        "models/families/bernoulli.py",
        "pt.dot(zeros, pt.log1p(-probs).T)",
        "pt.dot(zeros, pt.log1p(probs).T)",
        ("tests/test_bernoulli_mixture.py", "tests/test_model_declarations.py", "tests/test_families.py"),
        what="the Bernoulli family's PyMC log-density uses log(1 + p) for a zero instead of log(1 - p)",
    ),
    # -- calibration --
    Mutant(
        "sbc-rank-counts-ties-below",
        "inference/calibration/sbc_ranks.py",
        "    below = np.sum(thinned < truth, axis=0)",
        "    below = np.sum(thinned <= truth, axis=0)",
        ("tests/test_calibrate.py",),
        what="the SBC rank counts draws equal to the truth as below it, and then again among the ties",
    ),
    Mutant(
        "sbc-pit-off-by-one",
        "inference/calibration/sbc_ranks.py",
        "    return (ranks + rng.random(ranks.shape)) / (n_ranked + 1.0)",
        "    return (ranks + rng.random(ranks.shape)) / n_ranked",
        ("tests/test_calibrate.py", "tests/test_mutant_guards.py"),
        what="PIT values divide by L instead of the L + 1 possible ranks (values above 1)",
    ),
    # -- Dask --
    Mutant(
        "dask-centred-scatters-summed",
        "models/core/stats_combine.py",
        "    scatter = scatter_a + scatter_b + between[:, None, None] * delta[:, :, None] * delta[:, None, :]",
        "    scatter = scatter_a + scatter_b",
        ("tests/test_distributed.py",),
        what="chunks' centred scatter matrices are combined by a plain sum (the between-chunk term dropped)",
    ),
    # -- the JAX Op's gradient --
    Mutant(
        "jax-transition-gradient-transposed",
        "models/ops/jax_ops.py",
        "    d_trans = previous.T @ into",
        "    d_trans = into.T @ previous",
        ("tests/test_jax.py",),
        what="the JAX HMM Op's gradient with respect to trans_mat is transposed",
    ),
    Mutant(
        "jax-log-density-gradient-drops-lik",
        "models/ops/jax_ops.py",
        "    d_table = jnp.zeros(log_table.shape, log_table.dtype).at[rows].add(lik * d_lik)\n",
        "    d_table = jnp.zeros(log_table.shape, log_table.dtype).at[rows].add(d_lik)\n",
        ("tests/test_jax.py",),
        what="the JAX HMM Op's gradient with respect to the log table is d/d lik, not lik d/d lik",
    ),
)


def tracked_files(root: Path) -> list[str]:
    """The repository's tracked files (relative paths), from ``git ls-files``."""
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True, text=True)
    return [name for name in listing.stdout.split("\0") if name]


def copy_repository(root: Path, target: Path) -> None:
    """Copy the tracked files (as they are in the working tree) and build the import shim."""
    for name in tracked_files(root):
        source = root / name
        if not source.is_file():  # deleted in the working tree but not yet in git
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    shim = target / ".shim" / "latentzoo"
    shim.mkdir(parents=True)
    for package in PACKAGES:
        (shim / package).symlink_to(target / package, target_is_directory=True)


def check_snippets(root: Path, mutants) -> None:
    """Every original snippet occurs exactly once in its file; raise listing all that do not."""
    problems = []
    for mutant in mutants:
        path = root / mutant.path
        if not path.is_file():
            problems.append(f"{mutant.name}: {mutant.path} does not exist")
            continue
        text = path.read_text()
        count = text.count(mutant.original)
        if count != 1:
            problems.append(f"{mutant.name}: the snippet occurs {count} times in {mutant.path} (expected once): "
                            f"{mutant.original!r}")
        elif path.suffix == ".py":
            # a fault that does not even parse would be 'killed' by any import, proving nothing
            try:
                compile(text.replace(mutant.original, mutant.replacement), str(path), "exec")
            except SyntaxError as error:
                problems.append(f"{mutant.name}: the mutated {mutant.path} does not parse: {error}")
    if problems:
        raise SystemExit("the code moved; update tests/mutation/run_mutants.py:\n  " + "\n  ".join(problems))


def pytest_arguments(copy: Path, mutant: Mutant) -> list[str]:
    """pytest's arguments for ``mutant``: its tests with glob patterns expanded in the copy."""
    arguments = []
    for pattern in mutant.tests:
        file_part = pattern.split("::")[0]
        if glob.has_magic(file_part):
            arguments += sorted(str(Path(match).relative_to(copy)) for match in glob.glob(str(copy / file_part)))
        elif (copy / file_part).exists():
            arguments.append(pattern)
        else:
            raise SystemExit(f"{mutant.name}: {file_part} does not exist; update tests/mutation/run_mutants.py")
    if not arguments:
        raise SystemExit(f"{mutant.name}: no test file matches {mutant.tests}")
    arguments = list(dict.fromkeys(arguments))
    return ["-x", *arguments, *(["-k", mutant.keyword] if mutant.keyword else [])]


def environment(copy: Path) -> dict[str, str]:
    """The environment of every pytest run: the copy's shim first on PYTHONPATH, the PyTensor
    configuration inherited (its compile cache is keyed by graph, so it is shared), a Numba
    cache inside the copy (it is keyed by source path) and one BLAS thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy / ".shim"), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["NUMBA_CACHE_DIR"] = str(copy / ".numba-cache")
    env.setdefault("MPLBACKEND", "Agg")
    env["COLUMNS"] = "240"  # pytest's short summary is cut at the terminal width
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    pytensorrc = Path.home() / ".cache" / "latentzoo" / "pytensorrc"
    if "PYTENSORRC" not in env and pytensorrc.is_file():
        env["PYTENSORRC"] = str(pytensorrc)
    return env


def check_shim(python: str, copy: Path, env: dict) -> None:
    """``latentzoo.*`` must import from the copy, or every mutant would survive."""
    probe = "import latentzoo.inference as i, latentzoo.models as m; print(i.__file__); print(m.__file__)"
    found = subprocess.run([python, "-c", probe], cwd=copy, env=env, capture_output=True, text=True)
    files = found.stdout.split()
    if found.returncode != 0 or len(files) != 2 or not all(f.startswith(str(copy)) for f in files):
        raise SystemExit(f"latentzoo does not import from the copy {copy}: {found.stdout}{found.stderr}")


@dataclass
class Outcome:
    name: str
    status: str  # "killed", "survived", "error", "timeout", "passed-hints" (phase 2 skipped)
    seconds: float  # phase 1, the hinted tests
    detail: str
    check_seconds: float = 0.0  # rerunning the failed test without the fault
    suite_seconds: float = 0.0  # phase 2, the whole default suite (0 when not run)
    caught_by_suite: bool = False  # killed in phase 2, by a test outside the hints


#: pytest's exit codes: 0 all passed, 1 some tests failed, 2 interrupted (a collection or import
#: error among them), 3 internal error, 4 usage error, 5 no tests collected. Only 1 is a kill: a
#: mutant that breaks an import shows nothing about what the tests check.
KILLED_CODES = (1,)


def xdist_available(python: str, env: dict) -> bool:
    """Whether ``python`` has pytest-xdist, so that phase 2 can use both cores."""
    probe = subprocess.run([python, "-c", "import xdist"], env=env, capture_output=True)
    return probe.returncode == 0


def suite_arguments(parallel: bool) -> list[str]:
    """pytest's arguments for phase 2, the whole default suite: on two workers without ``-x``
    (pytest-xdist ends a session stopped by ``-x`` as *interrupted*, exit status 2, which would
    read as an error), or on one process with ``-x``."""
    return [*SUITE_ARGUMENTS, *(["-n", "2"] if parallel else ["-x"])]


def run_pytest(python: str, copy: Path, env: dict, arguments: list[str], timeout: float) -> tuple[str, float, str]:
    command = [python, "-m", "pytest", *PYTEST_OPTIONS, *arguments]
    start = time.perf_counter()
    try:
        finished = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, f"no result after {timeout:.0f} s"
    seconds = time.perf_counter() - start
    output = finished.stdout + finished.stderr
    if finished.returncode == 0:
        return "passed", seconds, _last_line(output)
    if finished.returncode in KILLED_CODES:
        return "failed", seconds, _first_failure(output)
    return "error", seconds, f"pytest exit {finished.returncode}: {_last_line(output)}"


def _first_failure(output: str) -> str:
    """The first ``FAILED``/``ERROR`` line of pytest's short summary."""
    for line in output.splitlines():
        if re.match(r"(FAILED|ERROR) ", line):
            return line
    return _last_line(output)


def _last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_mutant(python: str, copy: Path, env: dict, mutant: Mutant, timeout: float,
               suite: list[str] | None, suite_timeout: float) -> Outcome:
    """Plant the fault, run its hinted tests and, if they pass and ``suite`` is given, the whole
    default suite (``suite`` holds its arguments); restore the file (contents and modification
    time). For a kill, rerun the failing test without the fault, which must pass."""
    path = copy / mutant.path
    original = path.read_text()
    stat = path.stat()
    path.write_text(original.replace(mutant.original, mutant.replacement, 1))
    suite_result, suite_seconds, suite_detail = None, 0.0, ""
    try:
        result, seconds, detail = run_pytest(python, copy, env, pytest_arguments(copy, mutant), timeout)
        if result == "passed" and suite is not None:
            suite_result, suite_seconds, suite_detail = run_pytest(python, copy, env, suite, suite_timeout)
    finally:
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    caught_by_suite = suite_result is not None and result == "passed"
    if caught_by_suite:
        result, detail = suite_result, suite_detail
    if result == "failed":
        node = _node_id(detail)
        again, check_seconds, again_detail = (
            run_pytest(python, copy, env, [node], timeout) if node else ("error", 0.0, detail)
        )
        if again != "passed":
            return Outcome(mutant.name, "error", seconds, f"fails without the fault too: {again_detail}",
                           check_seconds, suite_seconds, caught_by_suite)
        return Outcome(mutant.name, "killed", seconds, detail, check_seconds, suite_seconds, caught_by_suite)
    if result == "passed":
        status = "survived" if suite is not None else "passed-hints"
        return Outcome(mutant.name, status, seconds, detail, 0.0, suite_seconds, caught_by_suite)
    return Outcome(mutant.name, result, seconds, detail, 0.0, suite_seconds, caught_by_suite)


def _node_id(summary_line: str) -> str | None:
    """The node id of a short-summary line ``FAILED tests/x.py::test[id] - message``."""
    match = re.match(r"(FAILED|ERROR) (.+?)(?: - .*)?$", summary_line)
    return match.group(2) if match else None


def print_table(outcomes: list[Outcome]) -> None:
    width = max(len("mutant"), *(len(outcome.name) for outcome in outcomes))
    print(f"\n{'mutant':<{width}}  {'result':<12}  {'hints s':>7}  {'suite s':>7}  {'check s':>7}  "
          "detail (the first failure)")
    for outcome in outcomes:
        status = outcome.status + ("*" if outcome.caught_by_suite and outcome.status == "killed" else "")
        suite = f"{outcome.suite_seconds:7.1f}" if outcome.suite_seconds else " " * 7
        check = f"{outcome.check_seconds:7.1f}" if outcome.check_seconds else " " * 7
        print(f"{outcome.name:<{width}}  {status:<12}  {outcome.seconds:7.1f}  {suite}  {check}  {outcome.detail}")
    if any(outcome.caught_by_suite and outcome.status == "killed" for outcome in outcomes):
        print("killed*: caught by the whole default suite, not by the mutant's hinted tests")
    killed = sum(outcome.status == "killed" for outcome in outcomes)
    print(f"\nmutation score: {killed}/{len(outcomes)} killed ({killed / len(outcomes):.0%})")
    survivors = [outcome.name for outcome in outcomes if outcome.status == "survived"]
    print(f"survivors: {', '.join(survivors) if survivors else 'none'}")
    unjudged = [outcome.name for outcome in outcomes if outcome.status == "passed-hints"]
    if unjudged:
        print(f"passed their hinted tests, whole suite not run (--hints-only): {', '.join(unjudged)}")


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--fail-under", type=float, default=0.95, metavar="SCORE",
                        help="exit 1 when killed/total is below this (default 0.95)")
    parser.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                        help="per run of a mutant's hinted tests")
    parser.add_argument("--suite-timeout", type=float, default=3600.0, metavar="SECONDS",
                        help="per run of the whole default suite")
    parser.add_argument("--hints-only", action="store_true",
                        help="run the hinted tests only (no survivor verdicts; for iterating on mutants)")
    parser.add_argument("--python", default=sys.executable, help="interpreter with latentzoo's dependencies")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    options = parse_arguments(argv)
    mutants = MUTANTS
    if options.only:
        unknown = set(options.only) - {mutant.name for mutant in MUTANTS}
        if unknown:
            raise SystemExit(f"unknown mutant(s) {sorted(unknown)}; known: {[mutant.name for mutant in MUTANTS]}")
        mutants = tuple(mutant for mutant in MUTANTS if mutant.name in options.only)
    if options.list:
        for mutant in mutants:
            print(f"{mutant.name}: {mutant.path}: {mutant.what}")
        return 0
    check_snippets(ROOT, mutants)
    with tempfile.TemporaryDirectory(prefix="latentzoo-mutants-") as directory:
        copy = Path(directory)
        copy_repository(ROOT, copy)
        check_snippets(copy, mutants)
        env = environment(copy)
        check_shim(options.python, copy, env)
        suite = None if options.hints_only else suite_arguments(xdist_available(options.python, env))
        print(f"{len(mutants)} mutants, in a copy at {copy}; whole suite for those passing their hints: "
              f"{'skipped' if suite is None else 'pytest ' + ' '.join(suite)}", flush=True)
        outcomes = []
        for mutant in mutants:
            outcome = run_mutant(options.python, copy, env, mutant, options.timeout, suite, options.suite_timeout)
            suite_note = f" + {outcome.suite_seconds:.0f} s whole suite" if outcome.suite_seconds else ""
            print(f"{outcome.name}: {outcome.status} in {outcome.seconds:.0f} s{suite_note}", flush=True)
            outcomes.append(outcome)
    print_table(outcomes)
    killed = sum(outcome.status == "killed" for outcome in outcomes)
    errors = [outcome.name for outcome in outcomes if outcome.status in ("error", "timeout")]
    if errors:
        print(f"erred or timed out (not counted as killed): {', '.join(errors)}")
    return int(bool(errors) or killed / len(outcomes) < options.fail_under)


if __name__ == "__main__":
    sys.exit(main())
