"""EM vs variational inference vs MCMC on every latentzoo model: the slides of a lecture.

For each model on its seed data, every applicable back-end is compared with the reference
posterior (exact where the model has one, otherwise a long NUTS run cached on disk). The script
writes one HTML report per model and, in ``OUT/slides/``, the figures a lecturer would show:

* ``tradeoffs.png`` -- per model, wall time against the worst error of the posterior mean
  (in reference standard deviations) and the sd ratio: cheap point estimates, fast but
  over-confident mean-field VI, slow but faithful MCMC;
* ``<model>-forest.png``, ``<model>-densities.png``, ``<model>-history.png``,
  ``<model>-model.png`` -- means and intervals, marginal densities, convergence, and the
  model's own picture (three-coin ridge, dice-HMM state posteriors, NIW ellipses, GMM).

It also prints a Markdown table (one row per model and back-end) ready for a README.

Run::

    python examples/em_vs_vi_vs_mcmc.py --out em-vs-vi-vs-mcmc --quick

``--quick`` uses fewer draws (rough numbers, same pictures, a few minutes on two cores).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

from latentzoo.inference import BACKENDS, applicable_backends, compare  # noqa: E402
from latentzoo.inference.cli.commands import DEFAULT_OPTIONS, QUICK_OPTIONS, QUICK_REFERENCE_OPTIONS  # noqa: E402
from latentzoo.inference.comparison.plots import KIND_COLORS  # noqa: E402
from latentzoo.models import MODELS  # noqa: E402

#: the four models of the lecture, by command-line name
LECTURE_MODELS = ("three-coins", "dice-hmm", "niw-gaussian", "gmm")
SLIDE_FIGURES = ("forest", "densities", "history", "model")


def run_model(name: str, quick: bool, seed: int, progressbar: bool, only=None):
    model = MODELS[name]()
    defaults = QUICK_OPTIONS if quick else DEFAULT_OPTIONS
    backends = [backend for backend in applicable_backends(model) if only is None or backend in only]
    options = {}
    for backend in backends:
        options[backend] = dict(defaults.get(backend, {}))
        if "progressbar" in BACKENDS[backend].options:
            options[backend]["progressbar"] = progressbar
    return compare(model, model.default_data(), backends=backends, random_seed=seed, options=options,
                   progressbar=progressbar, reference_options=QUICK_REFERENCE_OPTIONS if quick else None)


def digest(result) -> list[dict]:
    """One row per back-end: time, worst |error| in reference sd, median sd ratio, median W1/ref sd."""
    rows = []
    table = result.table[result.table["ref_sd"] > 0]  # entries fixed by the model say nothing
    for backend, group in table.groupby("backend", sort=False):
        ratio = group["sd_ratio"].dropna()
        rows.append({
            "model": result.model.name,
            "backend": backend,
            "kind": group["kind"].iloc[0],
            "runtime_s": float(group["runtime_s"].iloc[0]),
            "max_abs_error_sd": float(group["error_in_ref_sd"].abs().max()),
            "median_sd_ratio": float(ratio.median()) if len(ratio) else math.nan,
            "median_w1_sd": float((group["wasserstein"] / group["ref_sd"]).median()),
            "converged": bool(group["converged"].all()),
        })
    for backend, message in result.failures.items():
        rows.append({"model": result.model.name, "backend": backend, "kind": "failed", "runtime_s": math.nan,
                     "max_abs_error_sd": math.nan, "median_sd_ratio": math.nan, "median_w1_sd": math.nan,
                     "converged": False})
    return rows


def tradeoff_figure(rows: list[dict]):
    """Per model: wall time (log) against the worst mean error; marker size shows the sd ratio."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    models = list(dict.fromkeys(row["model"] for row in rows))
    figure = Figure(figsize=(4.2 * len(models), 4.4), layout="constrained")
    axes = figure.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models):
        for row in (r for r in rows if r["model"] == model and math.isfinite(r["runtime_s"])):
            error = row["max_abs_error_sd"] if math.isfinite(row["max_abs_error_sd"]) else 0.0
            ratio = row["median_sd_ratio"]
            size = 40 if not math.isfinite(ratio) else 40 + 120 * min(ratio, 1.5)
            ax.scatter(row["runtime_s"], error, s=size, color=KIND_COLORS.get(row["kind"], "#7f7f7f"),
                       marker="D" if row["kind"] == "point" else "o", edgecolor="black", lw=0.5, zorder=3)
            label = row["backend"] + ("" if row["converged"] else "*")
            ax.annotate(label, (row["runtime_s"], error), xytext=(4, 4), textcoords="offset points", fontsize=8)
        ax.axhline(0.5, color="#888888", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        times = [r["runtime_s"] for r in rows if r["model"] == model and math.isfinite(r["runtime_s"])]
        errors = [r["max_abs_error_sd"] for r in rows if r["model"] == model and math.isfinite(r["max_abs_error_sd"])]
        ax.set_xlim(min(times) / 2, max(times) * 3)
        ax.set_ylim(-0.05, max(1.0, max(errors, default=1.0)) * 1.15)
        ax.set_xlabel("wall time (s, log)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("worst |mean error| (reference sd)")
    figure.suptitle("Cost vs accuracy per back-end (dashed: 0.5 reference sd; bigger marker: larger sd ratio; "
                    "* not converged)", fontsize=10)
    return figure


def markdown(rows: list[dict]) -> str:
    header = "| model | back-end | kind | time (s) | worst err (ref sd) | median sd ratio | median W1 (ref sd) |"
    lines = [header, "|---|---|---|---:|---:|---:|---:|"]

    def cell(value, spec):
        return "–" if not math.isfinite(value) else format(value, spec)

    for row in rows:
        lines.append(
            f"| {row['model']} | {row['backend']}{'' if row['converged'] else '*'} | {row['kind']} | "
            f"{cell(row['runtime_s'], '.2f')} | {cell(row['max_abs_error_sd'], '.2f')} | "
            f"{cell(row['median_sd_ratio'], '.2f')} | {cell(row['median_w1_sd'], '.2f')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="em-vs-vi-vs-mcmc", help="output directory")
    parser.add_argument("--quick", action="store_true", help="fewer draws: faster, rougher numbers")
    parser.add_argument("--models", default=",".join(LECTURE_MODELS),
                        help=f"comma-separated model names (default {','.join(LECTURE_MODELS)})")
    parser.add_argument("--backends", help="comma-separated back-ends to keep (default: every applicable one; "
                        "the reference is always run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show the back-ends' progress bars")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; models: {list(MODELS)}")
    out = Path(args.out)
    slides = out / "slides"
    slides.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        start = time.perf_counter()
        only = None if not args.backends else {part.strip() for part in args.backends.split(",")}
        result = run_model(name, args.quick, args.seed, args.progress, only)
        report = result.save(out / name)
        figures = result.plot()
        for figure_name in SLIDE_FIGURES:
            if figure_name in figures:
                figures[figure_name].savefig(slides / f"{name}-{figure_name}.png", dpi=130)
        rows.extend(digest(result))
        print(f"{name}: {time.perf_counter() - start:.1f} s, report {report}")
        print("  " + result.summary() + "\n")
    tradeoff_figure(rows).savefig(slides / "tradeoffs.png", dpi=130)
    table = markdown(rows)
    (out / "summary.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    print(f"\nslides in {slides}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
