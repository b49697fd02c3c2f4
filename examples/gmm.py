"""Gaussian mixtures (seeds 001 and 002): soft vs hard clustering, EM's lower bound, choosing K,
Bishop's Old Faithful figure and every back-end side by side.

Run:  .venv/bin/python examples/gmm.py [--out examples/figures/gmm]

1. Three blobs (``datasets.blobs``): maximum-likelihood EM's soft clustering, each point drawn
   with a size proportional to its certainty max_k p(z = k | x), next to K-means' hard clustering
   (K-means is classification EM with equal weights and identity covariances,
   ``GaussianMixture.kmeans``). Printed: accuracy of both against the true blobs, and how many
   points the mixture is unsure about.
2. EM's objective (the log-likelihood, equal to the lower bound after each E-step) per iteration:
   it never decreases (asserted).
3. AIC and BIC over K = 1..6 (``choose_n_components``); BIC picks the true K = 3 (asserted).
4. Old Faithful, standardised, K = 2, from a start like Bishop's (PRML fig. 9.8): covariance
   ellipses and responsibilities after L = 0, 1, 2, 5, 10 iterations and at convergence.
5. Every back-end on Old Faithful (K = 2) against a blocked-Gibbs reference: table of errors in
   reference posterior sd, forest plot, and the full comparison report.

About a minute and a half with a warm PyTensor cache on two cores (the PyMC back-ends take most).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
_rc = Path.home() / ".cache" / "latentzoo" / "pytensorrc"
if "PYTENSORRC" not in os.environ and _rc.exists():
    os.environ["PYTENSORRC"] = str(_rc)

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from latentzoo.inference import choose_n_components, compare, fit  # noqa: E402
from latentzoo.models.datasets import blobs, old_faithful  # noqa: E402
from latentzoo.models.mixture.gaussian import GaussianMixture, kmeans_plusplus  # noqa: E402

NAMES = ("weights", "means", "covs")

# cheap enough for the whole example to run in about a minute and a half with a warm cache
BACKEND_OPTIONS = {
    "gibbs": {"draws": 1000, "tune": 200, "chains": 2},
    "vb": {"draws": 2000},
    "nuts": {"draws": 300, "tune": 300, "chains": 2, "cores": 1},
    "pymc_gibbs": {"draws": 150, "tune": 150, "chains": 1, "cores": 1},
    "advi": {"draws": 1000, "n_steps": 10000},
    "fullrank_advi": {"draws": 1000, "n_steps": 10000},
}


def point_estimate(idata) -> dict:
    return {name: idata.posterior[name].values[0, 0] for name in NAMES}


def matched_accuracy(labels, truth) -> float:
    """Accuracy after the best one-to-one relabelling (Hungarian matching on the confusion matrix)."""
    K = max(labels.max(), truth.max()) + 1
    confusion = np.zeros((K, K))
    np.add.at(confusion, (labels, truth), 1)
    rows, cols = linear_sum_assignment(-confusion)
    return float(confusion[rows, cols].sum() / labels.size)


def ellipse(ax, mean, cov, color, n_sd=2.0, **kwargs):
    """The n_sd-standard-deviation contour of N(mean, cov)."""
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    width, height = 2 * n_sd * np.sqrt(values[::-1])
    ax.add_patch(Ellipse(mean, width, height, angle=angle, fill=False, color=color, lw=2, **kwargs))


# -- 1 and 2: soft vs hard clustering, the monotone objective ----------------------------------
def three_blobs(out: Path) -> np.ndarray:
    x, truth = blobs(500, centers=np.array([[0.0, 0.0], [4.0, 1.0], [1.5, 4.5]]), cluster_std=[1.0, 1.2, 0.8], random_seed=2)
    model = GaussianMixture(3)
    idata = fit(model, x, backend="em", mle=True, n_init=5, random_seed=0, progressbar=False)
    params = point_estimate(idata)
    resp = model.responsibilities(x, params)
    soft_labels, certainty = resp.argmax(1), resp.max(1)
    centres, hard_labels, inertia = model.kmeans(x, kmeans_plusplus(x, 3, np.random.default_rng(0)))
    # same colour for the same cluster in both panels: relabel K-means to the mixture's labels
    confusion = np.zeros((3, 3))
    np.add.at(confusion, (hard_labels, soft_labels), 1)
    _, to_soft = linear_sum_assignment(-confusion)
    hard_labels, centres = to_soft[hard_labels], centres[np.argsort(to_soft)]

    soft_accuracy, hard_accuracy = matched_accuracy(soft_labels, truth), matched_accuracy(hard_labels, truth)
    unsure = int(np.sum(certainty < 0.9))
    print("\n1. Three blobs (N = 500): soft (GMM by EM) vs hard (K-means) clustering")
    print(f"   accuracy against the true blobs: GMM {soft_accuracy:.3f}, K-means {hard_accuracy:.3f}")
    print(f"   points the GMM gives less than 90% to any one component: {unsure} ({unsure / len(x):.1%});"
          f" K-means is certain of all of them (inertia {inertia:.1f})")
    assert soft_accuracy > 0.9 and hard_accuracy > 0.85
    assert 0 < unsure < 0.3 * len(x)

    figure = Figure(figsize=(11, 4.8))
    left, right = figure.subplots(1, 2, sharex=True, sharey=True)
    colors = np.array(["tab:blue", "tab:orange", "tab:green"])
    left.scatter(*x.T, s=3 + 40 * (certainty - certainty.min()) / np.ptp(certainty), c=colors[soft_labels], alpha=0.7)
    left.set_title("GMM (EM): size = certainty max_k p(z = k | x)")
    right.scatter(*x.T, s=12, c=colors[hard_labels], alpha=0.7)
    right.plot(*centres.T, "k*", ms=14)
    right.set_title("K-means: hard assignments")
    for k in range(3):
        ellipse(left, params["means"][k], params["covs"][k], colors[k])
    figure.tight_layout()
    figure.savefig(out / "soft_vs_hard.png", dpi=100)

    # 2. the objective per iteration, from one k-means++ start without early stopping
    history_idata = fit(model, x, backend="em", mle=True, n_init=1, tol=1e-12, max_iter=200, random_seed=3, progressbar=False)
    history = history_idata.fit_history["log_likelihood"].values[0]
    history = history[np.isfinite(history)]
    steps = np.diff(history)
    print(f"\n2. EM's log-likelihood over {len(history)} evaluations: {history[0]:.2f} -> {history[-1]:.2f};"
          f" smallest step {steps.min():.2e} (never negative)")
    assert np.all(steps >= -1e-9 * abs(history[-1]))
    figure = Figure(figsize=(6, 3.5))
    ax = figure.subplots()
    ax.plot(np.arange(len(history)), history, "o-", ms=3)
    ax.set(xlabel="iteration", ylabel="log-likelihood (= lower bound after the E-step)", title="EM never goes down")
    figure.tight_layout()
    figure.savefig(out / "lower_bound.png", dpi=100)
    return x


# -- 3: choosing K ----------------------------------------------------------------------------
def choose_k(x: np.ndarray, out: Path) -> None:
    table = choose_n_components(GaussianMixture(3), x, candidates=range(1, 7), criterion="bic", random_seed=0, n_init=5)
    print("\n3. AIC and BIC over K (maximum likelihood, 5 restarts each)")
    print(table[["n_components", "log_likelihood", "n_parameters", "aic", "bic", "best"]].to_string(index=False, float_format="%.1f"))
    best = int(table.loc[table["bic"].idxmin(), "n_components"])
    assert best == 3, f"BIC chose K = {best}"
    figure = Figure(figsize=(6, 3.5))
    ax = figure.subplots()
    ax.plot(table["n_components"], table["aic"], "o-", label="AIC")
    ax.plot(table["n_components"], table["bic"], "s-", label="BIC")
    ax.axvline(best, color="grey", ls=":")
    ax.set(xlabel="K", ylabel="criterion (lower is better)", title="Choosing the number of components")
    ax.legend()
    figure.tight_layout()
    figure.savefig(out / "aic_bic.png", dpi=100)


# -- 4: Bishop's figure 9.8 ---------------------------------------------------------------------
def old_faithful_iterations(out: Path) -> None:
    raw = old_faithful()
    x = (raw - raw.mean(0)) / raw.std(0)
    model = GaussianMixture(2)
    # in the spirit of Bishop's start (one mean upper left, one lower right); a start symmetric
    # about the data's diagonal would sit near a saddle for some 40 iterations instead
    start = {"weights": np.array([0.5, 0.5]), "means": np.array([[-1.5, 1.0], [1.5, -1.0]]), "covs": np.stack([0.5 * np.eye(2)] * 2)}
    stages = [0, 1, 2, 5, 10]
    snapshots = []
    for L in stages:
        params = start if L == 0 else point_estimate(
            fit(model, x, backend="em", mle=True, init=start, max_iter=L, tol=1e-300, progressbar=False))
        snapshots.append((f"L = {L}", params))
    converged = fit(model, x, backend="em", mle=True, init=start, tol=1e-10, progressbar=False)
    snapshots.append((f"converged (L = {converged.posterior.attrs['n_iter']})", point_estimate(converged)))
    log_liks = [float(model.log_likelihood(x, p).sum()) for _, p in snapshots]
    print("\n4. Old Faithful (standardised), K = 2, a start like Bishop's: log-likelihood after L iterations")
    print("   " + ", ".join(f"{label}: {ll:.1f}" for (label, _), ll in zip(snapshots, log_liks)))
    assert all(b >= a - 1e-9 for a, b in zip(log_liks, log_liks[1:]))

    figure = Figure(figsize=(12, 7.5))
    axes = figure.subplots(2, 3, sharex=True, sharey=True).ravel()
    for ax, (label, params) in zip(axes, snapshots):
        resp = model.responsibilities(x, params) if label != "L = 0" else np.full((len(x), 2), 0.5)
        colors = np.column_stack([resp[:, 0], np.zeros(len(x)), resp[:, 1]])  # red ... blue
        ax.scatter(*x.T, s=10, c=colors if label != "L = 0" else "tab:green")
        for k, color in enumerate(("red", "blue")):
            ellipse(ax, params["means"][k], params["covs"][k], color, n_sd=1.0)
        ax.set_title(label)
        ax.set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), aspect="equal")
    figure.suptitle("EM on Old Faithful (after Bishop, PRML fig. 9.8): one-sd ellipses, colour = responsibility")
    figure.tight_layout()
    figure.savefig(out / "old_faithful_em.png", dpi=100)


# -- 5: every back-end --------------------------------------------------------------------------
def every_backend(out: Path) -> None:
    x = old_faithful()
    model = GaussianMixture(2)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare(model, x, reference="gibbs", options=BACKEND_OPTIONS, progressbar=False, random_seed=0)
    elapsed = time.perf_counter() - started
    table = result.table
    print(f"\n5. Every back-end on Old Faithful (K = 2) against blocked Gibbs, {elapsed:.0f} s")
    print(f"   {'backend':<14} {'max |err|/sd (means)':>21} {'max |err|/sd (all)':>19} {'runtime s':>10}")
    for backend in result.idatas:
        rows = table[table["backend"] == backend]
        errors = rows["error_in_ref_sd"].abs()
        means = rows[rows["parameter"].str.startswith("means")]["error_in_ref_sd"].abs()
        runtime = float(result.idatas[backend].posterior.attrs.get("runtime_s", np.nan))
        print(f"   {backend:<14} {means.max():>21.2f} {errors.max():>19.2f} {runtime:>10.2f}")
    if result.failures:
        print("   failed:", result.failures)
    for backend in ("em", "vb"):
        rows = table[(table["backend"] == backend) & table["parameter"].str.startswith("means")]
        assert rows["error_in_ref_sd"].abs().max() < 4.0, f"{backend} disagrees with Gibbs on the means"
    print("   " + result.summary().replace("\n", "\n   "))
    for name, figure in result.plot().items():
        figure.savefig(out / f"backends_{name}.png", dpi=90)
    result.save(out / "report")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples/figures/gmm"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pymc").setLevel(logging.ERROR)
    start = time.perf_counter()
    x = three_blobs(args.out)
    choose_k(x, args.out)
    old_faithful_iterations(args.out)
    every_backend(args.out)
    print(f"\nFigures in {args.out}/ ({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
