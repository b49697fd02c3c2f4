"""Present finished calibrations: a summary sentence, the figure, and the files of a report.

* :func:`summary` -- what was run and what was found, in words;
* :func:`plot_calibration` -- per quantity, the rank histogram (with the 99% range of a bin's count
  under uniformity) and the ECDF difference with its simultaneous band;
* :func:`save` -- ``report.html`` (the jinja2 template ``templates/calibration.html.j2``,
  autoescaped), one ``<backend>-table.csv``, ``<backend>-simulations.csv`` and
  ``<backend>-ranks.png`` per back-end, for one or several calibrations of a model.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from . import sbc_ranks

__all__ = ["plot_calibration", "render_html", "save", "summary", "verdict"]

TEMPLATE = "calibration.html.j2"

#: PSIS k-hat above this: importance sampling from q is unreliable (Vehtari et al. 2024)
KHAT_LIMIT = 0.7

#: at most this many quantities in one figure (a 3-component GMM has 23)
MAX_PLOTTED = 24


def verdict(result) -> str:
    """``"yes"``, ``"no"`` or ``"n/a"`` (point estimates)."""
    calibrated = result.calibrated
    return "n/a" if calibrated is None else ("yes" if calibrated else "no")


def summary(result) -> str:
    """One paragraph: the run, the verdict, the worst rows and their direction, failures, k-hat."""
    table = result.table
    n_ok = len(result.simulations) - result.n_failed
    head = (f"{result.backend} on {type(result.model).__name__}: {len(result.simulations)} simulations "
            f"(data size {result.data_size!r}, seed {result.random_seed}) in {result.runtime_s:.0f} s.")
    sentences = [head]
    if result.kind == "point":
        worst = table["rmse_sd"].idxmax() if table["rmse_sd"].notna().any() else None
        if worst is not None:
            sentences.append(
                "A point estimate: no uncertainty to calibrate. Largest RMSE "
                f"{table.loc[worst, 'rmse_sd']:.2f} prior sd "
                f"({worst}), bias there {table.loc[worst, 'bias_sd']:+.2f}."
            )
    elif n_ok >= 2:
        failing = table[~table["calibrated"].fillna(False)]
        if result.calibrated:
            sentences.append(
                f"Calibrated: every one of {len(table)} quantities passes the rank-histogram test and stays inside the "
                f"ECDF band at level {result.row_alpha:.2g} per test (family-wise {result.alpha:g}); worst p-value "
                f"{result.worst_p_value:.3g}."
            )
        else:
            described = []
            for name, row in failing.head(4).iterrows():
                why = row["diagnosis"] or "non-uniform ranks"
                described.append(f"{name} ({why}, p = {row['p_value']:.2g}, 50% coverage {row['coverage_50']:.2f})")
            more = f" and {len(failing) - 4} more" if len(failing) > 4 else ""
            sentences.append(f"Not calibrated: {len(failing)} of {len(table)} quantities fail: "
                             + "; ".join(described) + more + ".")
        if np.isfinite(result.median_khat):
            khat = result.simulations["khat"].to_numpy(float)
            # NaN: no k-hat (a fit that failed, or too few distinct ratios for the Pareto fit)
            defined = khat[~np.isnan(khat)]
            undefined = khat.size - defined.size
            sentences.append(
                f"PSIS k-hat of q against the posterior: median {np.median(defined):.2f}, above {KHAT_LIMIT} in "
                f"{np.mean(defined > KHAT_LIMIT):.0%} of the {defined.size} simulations where it is defined"
                + (f" (undefined in {undefined})." if undefined else ".")
            )
    sentences.extend(result.notes)
    return " ".join(sentences)


def plot_calibration(result, quantities=None):
    """Rank histograms (top of each panel pair) and ECDF-difference plots (bottom) per quantity.

    Parameters
    ----------
    result : Calibration
    quantities : list of str, optional
        Row names of ``result.table`` to show; default the first :data:`MAX_PLOTTED`.

    Returns
    -------
    matplotlib.figure.Figure, or None for a point estimate (nothing is ranked)
    """
    import matplotlib.pyplot as plt
    from scipy import stats

    if result.pit.size == 0:
        return None
    labels = list(result.table.index)
    if quantities is None:
        quantities = labels[:MAX_PLOTTED]
    else:
        unknown = [name for name in quantities if name not in labels]
        if unknown:
            raise ValueError(f"unknown quantities {unknown}; rows: {labels}")
    n_cols = min(4, len(quantities))
    n_rows = math.ceil(len(quantities) / n_cols)
    figure, axes = plt.subplots(2 * n_rows, n_cols, figsize=(3.2 * n_cols, 4.4 * n_rows), squeeze=False,
                                layout="constrained")
    n = result.pit.shape[0]
    n_bins = sbc_ranks.histogram_bins(n)
    low, high = stats.binom.ppf([0.005, 0.995], n, 1 / n_bins)
    eval_points, lower, upper = result.band
    for position, name in enumerate(quantities):
        column = result.pit[:, labels.index(name)]
        row = result.table.loc[name]
        grid_row, grid_col = 2 * (position // n_cols), position % n_cols
        top, bottom = axes[grid_row, grid_col], axes[grid_row + 1, grid_col]
        top.axhspan(low, high, color="0.88", lw=0)
        top.axhline(n / n_bins, color="0.5", lw=0.8)
        top.hist(column, bins=n_bins, range=(0, 1), color="C0" if row["calibrated"] else "C3", alpha=0.85)
        top.set_title(f"{name}\np = {row['p_value']:.2g}" + (f", {row['diagnosis']}" if row["diagnosis"] else ""),
                      fontsize=8)
        top.set_xticks([])
        ecdf = sbc_ranks.ecdf_values(column[:, None], eval_points)[:, 0]
        bottom.fill_between(eval_points, lower - eval_points, upper - eval_points, color="0.88", step="post", lw=0)
        bottom.step(eval_points, ecdf - eval_points, where="post", color="C0" if row["calibrated"] else "C3")
        bottom.axhline(0, color="0.5", lw=0.8)
        bottom.set_xlabel("fractional rank", fontsize=8)
        bottom.tick_params(labelsize=7)
        top.tick_params(labelsize=7)
    for position in range(len(quantities), n_rows * n_cols):
        axes[2 * (position // n_cols), position % n_cols].set_visible(False)
        axes[2 * (position // n_cols) + 1, position % n_cols].set_visible(False)
    figure.suptitle(
        f"SBC of {result.backend} on {type(result.model).__name__} ({n} simulations): rank histograms (grey: 99% range "
        f"of a bin) and ECDF - uniform CDF (grey: simultaneous {1 - result.row_alpha:.3g} band)", fontsize=9,
    )
    return figure


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def _table_html(table) -> str:
    shown = table.copy()
    shown["calibrated"] = shown["calibrated"].astype(object).where(shown["calibrated"].notna(), "n/a")
    return shown.to_html(float_format=lambda value: f"{value:.3g}", na_rep="–", classes="calibration")


def render_html(results, images: dict, title: str) -> str:
    """The report page for ``results`` (calibrations of one model), with ``images`` (backend ->
    PNG file name, or None)."""
    import jinja2

    from .columns import TABLE_COLUMNS

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates"), autoescape=True,
    )
    sections = []
    for result in results:
        sections.append({
            "backend": result.backend,
            "kind": result.kind,
            "verdict": verdict(result),
            "worst_p": "–" if not np.isfinite(result.worst_p_value) else f"{result.worst_p_value:.3g}",
            "summary": summary(result),
            "image": images.get(result.backend),
            "table_html": _table_html(result.table),
            "options": ", ".join(f"{key}={value!r}" for key, value in result.options.items()) or "defaults",
        })
    return environment.get_template(TEMPLATE).render(title=title, sections=sections, column_docs=TABLE_COLUMNS)


def save(results, directory) -> Path:
    """Write the report of ``results`` (a list of calibrations of one model) to ``directory``.

    Returns
    -------
    pathlib.Path of ``report.html``
    """
    if not results:
        raise ValueError("results must hold at least one calibration")
    directory = Path(directory).expanduser()
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"the output directory {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    images = {}
    for result in results:
        result.table.to_csv(directory / f"{result.backend}-table.csv")
        result.simulations.to_csv(directory / f"{result.backend}-simulations.csv")
        figure = plot_calibration(result)
        if figure is not None:
            name = f"{result.backend}-ranks.png"
            (directory / name).write_bytes(_png(figure))
            images[result.backend] = name
    model = type(results[0].model).__name__
    page = directory / "report.html"
    page.write_text(render_html(results, images, f"Simulation-based calibration: {model}"), encoding="utf-8")
    return page
