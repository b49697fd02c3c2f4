"""The Gaussian with a Normal-Inverse-Wishart prior (seed 001): why MAP, how good each back-end is,
and Gaussian discriminant analysis.

Run:  .venv/bin/python examples/niw_map.py [--out examples/figures/niw]

1. Shrinkage: D = 50, N in {100, 50, 25}. The MLE covariance is ill-conditioned at N = 2D and
   singular for N <= D; the MAP under the seed's data-driven prior is well conditioned. Figure:
   eigenvalue spectra of MLE vs MAP vs the true covariance; table: condition numbers. The joint
   mode divides the posterior scale by N + 2D + 4 (nu_N + D + 2), so at D = 50 it is also
   shrunk in *size* by about N / (N + 104); the posterior mean (divisor N + 1) is shown too.
2. Every back-end against the exact NIW posterior on Old Faithful: mean error in posterior-sd
   units, sd ratio, a distribution distance (1-D Wasserstein of each marginal, in posterior-sd
   units) and runtime.
3. QDA vs LDA decision boundaries on 2-D data (MLE and NIW MAP).

About a minute with a warm PyTensor cache on two cores (NUTS takes about half of it).
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
from scipy import stats  # noqa: E402

from latentzoo.inference import compare  # noqa: E402
from latentzoo.models.datasets import old_faithful  # noqa: E402
from latentzoo.models.gaussian.gda import GaussianDiscriminantAnalysis  # noqa: E402
from latentzoo.models.gaussian.niw import NIWGaussian  # noqa: E402

# cheap enough for the whole example to run in about a minute with a warm compile cache
BACKEND_OPTIONS = {
    "exact": {"draws": 4000},
    "nuts": {"draws": 400, "tune": 250, "chains": 2, "cores": 1},
    "advi": {"draws": 2000, "n_steps": 8000},
    "fullrank_advi": {"draws": 2000, "n_steps": 15000},
}


def true_covariance(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A random rotation of eigenvalues spread over two decades (condition number 100)."""
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    eigenvalues = np.logspace(1, -1, dim)
    return (rotation * eigenvalues) @ rotation.T


def condition_number(matrix: np.ndarray) -> float:
    eigenvalues = np.linalg.eigvalsh(matrix)
    return float("inf") if eigenvalues[0] <= 1e-12 * eigenvalues[-1] else float(eigenvalues[-1] / eigenvalues[0])


def shrinkage(out: Path, rng: np.random.Generator) -> None:
    dim = 50
    Sigma = true_covariance(dim, rng)
    model = NIWGaussian()
    figure = Figure(figsize=(13, 4), layout="constrained")
    axes = figure.subplots(1, 3, sharey=True)
    print(f"\n1. Shrinkage, D = {dim}: condition numbers (true {condition_number(Sigma):.0f})")
    print(f"   {'N':>5} {'MLE':>12} {'MAP':>10} {'post. mean':>11}")
    for ax, n in zip(axes, (100, 50, 25)):
        x = rng.multivariate_normal(np.zeros(dim), Sigma, size=n)
        # the MLE exists as a matrix even when singular; model.mle raises then, so compute it here
        scatter_over_n = np.cov(x.T, bias=True)
        _, Sigma_map = model.map(x)
        _, Sigma_mean = model.posterior_mean(x)
        spectra = {
            "true": np.linalg.eigvalsh(Sigma)[::-1],
            "MLE": np.clip(np.linalg.eigvalsh(scatter_over_n)[::-1], 1e-16, None),
            "MAP": np.linalg.eigvalsh(Sigma_map)[::-1],
            "posterior mean": np.linalg.eigvalsh(Sigma_mean)[::-1],
        }
        for label, style in (("true", "k-"), ("MLE", "r--"), ("MAP", "b-."), ("posterior mean", "g:")):
            ax.plot(np.arange(1, dim + 1), spectra[label], style, label=label)
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 1e2)
        ax.set_title(f"N = {n}, D = {dim}")
        ax.set_xlabel("eigenvalue rank")
        print(
            f"   {n:>5} {condition_number(scatter_over_n):>12.3g} {condition_number(Sigma_map):>10.3g} "
            f"{condition_number(Sigma_mean):>11.3g}"
        )
    axes[0].set_ylabel("eigenvalue")
    axes[0].legend()
    figure.suptitle("Covariance eigenvalues: MLE vs NIW MAP (data-driven prior) vs truth")
    figure.savefig(out / "spectra.png", dpi=110)


def backends_against_exact(out: Path) -> float:
    x = old_faithful()
    # the data-driven prior made explicit, so that MAP-EM can evaluate its objective
    model = NIWGaussian().with_data_prior(x)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare(model, x, options=BACKEND_OPTIONS, progressbar=False, random_seed=0)
    elapsed = time.perf_counter() - start
    exact = result.idatas["exact"].posterior
    print(f"\n2. Every back-end against the exact posterior on Old Faithful (N = {x.shape[0]}), {elapsed:.0f} s")
    print(f"   {'backend':<14} {'max|err|/sd':>11} {'sd ratio':>15} {'max W1/sd':>10} {'runtime s':>10}")
    for backend, idata in result.idatas.items():
        posterior = idata.posterior
        errors, ratios, distances = [], [], []
        for name in ("mu", "Sigma"):
            ref = exact[name].values.reshape(-1, *exact[name].shape[2:])
            draws = posterior[name].values.reshape(-1, *posterior[name].shape[2:])
            ref_sd = ref.std(0)
            flat_ref, flat_draws = ref.reshape(ref.shape[0], -1), draws.reshape(draws.shape[0], -1)
            flat_sd = ref_sd.ravel()
            errors.extend(np.abs(flat_draws.mean(0) - flat_ref.mean(0)) / flat_sd)
            if draws.shape[0] > 1:
                ratios.extend(flat_draws.std(0) / flat_sd)
                distances.extend(
                    stats.wasserstein_distance(flat_draws[:, j], flat_ref[:, j]) / flat_sd[j] for j in range(flat_sd.size)
                )
        ratio_text = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "point"
        distance_text = f"{max(distances):.3f}" if distances else "-"
        runtime = float(posterior.attrs["runtime_s"])
        print(f"   {backend:<14} {max(errors):>11.3f} {ratio_text:>15} {distance_text:>10} {runtime:>10.2f}")
    if result.failures:
        print("   failed:", result.failures)
    figures = result.plot()
    for name, figure in figures.items():
        figure.savefig(out / f"old_faithful_{name}.png", dpi=100)
    return elapsed


def discriminant_boundaries(out: Path, rng: np.random.Generator) -> None:
    X = np.vstack([
        rng.multivariate_normal([0, 0], [[1.0, 0.6], [0.6, 1.0]], 60),
        rng.multivariate_normal([2.5, 0.5], [[0.3, 0.0], [0.0, 1.5]], 60),
        rng.multivariate_normal([0.5, 3.0], [[2.0, -0.5], [-0.5, 0.4]], 60),
    ])
    y = np.repeat([0, 1, 2], 60)
    grid_x, grid_y = np.meshgrid(np.linspace(-3.5, 5.5, 300), np.linspace(-3, 5.5, 300))
    grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    figure = Figure(figsize=(11, 9), layout="constrained")
    axes = figure.subplots(2, 2, sharex=True, sharey=True)
    print("\n3. Discriminant analysis, training accuracy")
    for row, estimator in enumerate(("mle", "map")):
        for col, kind in enumerate(("quadratic", "linear")):
            clf = GaussianDiscriminantAnalysis(kind=kind, estimator=estimator).fit(X, y)
            labels = clf.predict(grid).reshape(grid_x.shape)
            ax = axes[row, col]
            ax.contourf(grid_x, grid_y, labels, levels=[-0.5, 0.5, 1.5, 2.5], colors=["#fde0dd", "#deebf7", "#e5f5e0"])
            ax.contour(grid_x, grid_y, labels, levels=[0.5, 1.5], colors="k", linewidths=1)
            for label, color in zip(range(3), ("#d62728", "#1f77b4", "#2ca02c")):
                ax.plot(*X[y == label].T, ".", color=color, ms=4)
            name = "QDA" if kind == "quadratic" else "LDA"
            ax.set_title(f"{name} ({estimator.upper()}): accuracy {clf.score(X, y):.2f}")
            print(f"   {name} {estimator.upper()}: {clf.score(X, y):.3f}")
    figure.suptitle("Gaussian discriminant analysis: quadratic vs linear boundaries")
    figure.savefig(out / "discriminant_boundaries.png", dpi=100)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples/figures/niw"), help="folder for the figures")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pymc").setLevel(logging.ERROR)
    rng = np.random.default_rng(2024)
    start = time.perf_counter()
    shrinkage(args.out, rng)
    backends_against_exact(args.out)
    discriminant_boundaries(args.out, rng)
    print(f"\nFigures in {args.out}/ ({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
