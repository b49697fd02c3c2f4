"""Figures for a :class:`~latentzoo.inference.comparison.compare.Comparison`.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot``: no global
figure state, no GUI back-end, nothing to close. Save with ``figure.savefig(path)``; in a
notebook the figure displays itself.

* :func:`forest` -- posterior means and 94% HDIs, back-ends side by side, per parameter;
* :func:`densities` -- marginal posterior densities, back-ends overlaid;
* :func:`history` -- convergence of the iterative back-ends (EM, VB, ADVI) on one axis;
* :func:`traces` -- MCMC chains and per-chain densities (arviz-plots), one figure per sampler;
* :func:`model_picture` -- the model's own picture (``model.picture(comparison)``, drawn by
  the model's module in :mod:`latentzoo.models`): the (p, q) plane of the three-coin
  posterior, covariance ellipses (NIW, GMM), HMM state posteriors with the Viterbi path.

The pictures share this look through :func:`new_figure`, :func:`result_styles` and
:func:`result_order`.
"""

from __future__ import annotations

import math

import numpy as np

# the models' pictures share these helpers, so they live on the models' side
from ...models.core.plotting import new_figure, result_order, result_styles

# the table's labels are what the figures look up, so one function reads the names for both
from .metrics import coordinate_names

__all__ = [
    "forest",
    "densities",
    "history",
    "traces",
    "model_picture",
    "new_figure",
    "result_order",
    "result_styles",
    "KIND_COLORS",
]

#: colour per back-end kind, so that families of methods read together
KIND_COLORS = {"exact": "#222222", "sampler": "#1f77b4", "variational": "#2ca02c", "point": "#d62728"}
_FALLBACK_COLOR = "#7f7f7f"


def forest(comparison, parameters=None, max_panels: int = 24):
    """Posterior mean and 94% HDI per back-end, one panel per parameter element.

    Parameters
    ----------
    comparison : Comparison
    parameters : list of str, optional
        Table ``parameter`` labels to show (default: all, up to ``max_panels``).
    max_panels : int, default 24
        Large models (covariance matrices) have many elements; the rest are left out and the
        title says so.

    Returns
    -------
    matplotlib.figure.Figure or None
        None if no back-end produced a result. Point estimates are diamonds without an
        interval; the reference's interval is the shaded band.
    """
    table = comparison.table
    if table is None or not len(table):
        return None
    if parameters is None:
        labels, omitted = _informative(comparison, max_panels)
    else:
        labels = list(parameters)
        omitted = max(0, len(labels) - max_panels)
        labels = labels[:max_panels]
    if not labels:
        return None
    backends = list(dict.fromkeys(table["backend"]))
    n_cols = min(len(labels), 4)
    n_rows = math.ceil(len(labels) / n_cols)
    figure = new_figure(3.2 * n_cols + 0.8, 0.32 * len(backends) * n_rows + 1.2 * n_rows + 0.4)
    axes = figure.subplots(n_rows, n_cols, squeeze=False, sharey=True)
    positions = {name: len(backends) - 1 - i for i, name in enumerate(backends)}
    for ax, label in zip(axes.flat, labels):
        rows = table[table["parameter"] == label]
        reference = rows[rows["backend"] == comparison.reference]
        if len(reference) and np.isfinite(reference["hdi_3%"].iloc[0]):
            ax.axvspan(reference["hdi_3%"].iloc[0], reference["hdi_97%"].iloc[0], color="#cccccc", alpha=0.5, lw=0)
            ax.axvline(reference["mean"].iloc[0], color="#888888", lw=0.8)
        for _, row in rows.iterrows():
            y = positions[row["backend"]]
            color = KIND_COLORS.get(row["kind"], _FALLBACK_COLOR)
            if np.isfinite(row["hdi_3%"]):
                ax.hlines(y, row["hdi_3%"], row["hdi_97%"], color=color, lw=2)
                ax.plot(row["mean"], y, "o", color=color, ms=5)
            else:
                ax.plot(row["mean"], y, "D", color=color, ms=6, mec="white")
            if not row["converged"]:
                ax.plot(row["mean"], y, "x", color="black", ms=9)
        ax.set_title(label)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes.flat[len(labels):]:
        ax.set_visible(False)
    axes[0, 0].set_yticks(list(positions.values()), list(positions))
    for row_axes in axes:
        row_axes[0].tick_params(axis="y", labelleft=True)
    title = "Posterior mean and 94% HDI by back-end"
    if comparison.reference in comparison.idatas:
        title += f" (grey band: {comparison.reference})"
    if omitted:
        title += f"; {omitted} more elements in the table"
    figure.suptitle(title)
    _kind_legend(figure, set(table["kind"]), any(~table["converged"].astype(bool)))
    return figure


def _kind_legend(figure, kinds, not_converged: bool):
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=KIND_COLORS.get(kind, _FALLBACK_COLOR), marker="D" if kind == "point" else "o",
               lw=0 if kind == "point" else 2, label=kind)
        for kind in KIND_COLORS
        if kind in kinds
    ]
    if not_converged:
        handles.append(Line2D([], [], color="black", marker="x", lw=0, label="not converged"))
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)


def _informative(comparison, max_panels: int) -> tuple[list[str], int]:
    """Parameter labels worth a panel: not fixed by the model (reference sd > 0 where known)."""
    table = comparison.table
    labels = []
    for label in dict.fromkeys(table["parameter"]):
        rows = table[table["parameter"] == label]
        sd = rows["sd"].dropna()
        if len(sd) and float(sd.max()) == 0.0:
            continue  # an entry fixed by the model's structure (masked emission): nothing to see
        labels.append(label)
    return labels[:max_panels], max(0, len(labels) - max_panels)


def _element(idata, label: str) -> np.ndarray:
    """Flat draws of a table label such as ``p`` or ``means[1, 0]``."""
    return _element_by_chain(idata.posterior, label).reshape(-1)


def densities(comparison, max_panels: int = 12):
    """Marginal posterior densities per back-end, overlaid; point estimates as vertical lines.

    Parameters
    ----------
    comparison : Comparison
    max_panels : int, default 12

    Returns
    -------
    matplotlib.figure.Figure or None
        None if no back-end produced a result. Densities are kernel density estimates
        (ArviZ's ``kde``) of each back-end's draws.
    """
    import arviz as az
    import xarray as xr

    if comparison.table is None or not len(comparison.table):
        return None
    labels, omitted = _informative(comparison, max_panels)
    if not labels:
        return None
    styles = result_styles(comparison)
    n_cols = min(len(labels), 4)
    n_rows = math.ceil(len(labels) / n_cols)
    figure = new_figure(3.3 * n_cols + 0.4, 2.5 * n_rows + 0.9)
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    for ax, label in zip(axes.flat, labels):
        for name in result_order(comparison):
            values = _element(comparison.idatas[name], label)
            values = values[np.isfinite(values)]
            style = styles[name]
            if values.size == 1 or (values.size and np.ptp(values) == 0):
                ax.axvline(values[0], color=style["color"], lw=1.6, ls="--", label=f"{name} (point)")
            elif values.size > 1:
                curve = az.kde(xr.DataArray(values, dims=["sample"]), dim="sample")
                grid, density = curve.sel(plot_axis="x").values, curve.sel(plot_axis="y").values
                ax.plot(grid, density, color=style["color"], lw=style["lw"], ls=style["ls"], label=name)
        ax.set_title(label, fontsize=10)
        ax.set_yticks([])
        ax.grid(axis="x", alpha=0.3)
    for ax in axes.flat[len(labels):]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="outside lower center", ncols=min(len(names), 6), frameon=False,
                  fontsize="small")
    title = "Marginal posterior densities by back-end"
    if comparison.reference in comparison.idatas:
        title += f" (black: reference, {comparison.reference})"
    if omitted:
        title += f"; {omitted} more elements in the table"
    figure.suptitle(title)
    return figure


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def history(comparison):
    """Convergence of every iterative back-end on one axis.

    Each back-end's objective (EM: log-posterior or log-likelihood, VB and ADVI: ELBO) of the
    restart it kept, divided by the model's ``objective_scale`` (observations; time steps for
    HMMs) so that all share the y axis, against the iteration on a log axis (EM and VB take
    tens of updates, ADVI thousands of noisy steps: ADVI is shown as a running mean over the
    raw trace). Values of different objectives are not equal at the optimum (an ELBO is a
    lower bound of the log evidence, the log-posterior is a density at a point); what the
    figure shows is how fast and how smoothly each one settles.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when no back-end recorded a history of at least two iterations.
    """
    scale = max(int(comparison.model.objective_scale(comparison.data)), 1)
    styles = result_styles(comparison)
    curves = []
    for name, idata in comparison.idatas.items():
        if "fit_history" not in idata.children:
            continue
        for variable, values in idata.fit_history.data_vars.items():
            if "iteration" not in values.dims:
                continue  # where each restart ended (final_<param>), not an objective trace
            array = np.atleast_2d(np.asarray(values.values, float))
            best = int(idata.posterior.attrs.get("best_restart", 0)) if array.shape[0] > 1 else 0
            line = array[min(best, array.shape[0] - 1)]
            line = line[np.isfinite(line)]
            if line.size >= 2:
                curves.append((name, variable, line / scale, array.shape[0]))
    if not curves:
        return None
    figure = new_figure(8.5, 4.6)
    ax = figure.subplots()
    tails = []
    for name, variable, line, n_restarts in curves:
        iterations = np.arange(1, line.size + 1)
        color = styles[name]["color"]
        what = variable.replace("_", "-")
        label = f"{name}: {what}" + (f" (best of {n_restarts} restarts)" if n_restarts > 1 else "")
        if line.size > 200:
            # stochastic objective (ADVI): raw steps faint, running mean bold
            window = max(line.size // 50, 10)
            ax.plot(iterations, line, color=color, lw=0.4, alpha=0.25)
            ax.plot(iterations[window - 1:], _running_mean(line, window), color=color, lw=1.8,
                    label=label + f", running mean of {window}")
            tails.append(line[line.size // 10:])
        else:
            ax.plot(iterations, line, color=color, lw=1.8, marker="o" if line.size < 40 else None, ms=3, label=label)
            tails.append(line[min(2, line.size - 1):])
    tail = np.concatenate(tails)
    low, high = np.nanpercentile(tail, 2), np.nanmax(tail)
    if high > low:
        ax.set_ylim(low - 0.15 * (high - low), high + 0.1 * (high - low))
    ax.set_xscale("log")
    ax.set_xlabel("iteration (log scale)")
    same = scale == comparison.model.n_observations(comparison.data)
    unit = comparison.model.observation_dim if same else "time step"
    ax.set_ylabel(f"objective per {unit}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    figure.suptitle("Convergence of the iterative back-ends (objective per iteration, per " + unit + ")")
    return figure


def traces(comparison, max_parameters: int = 6) -> dict:
    """MCMC traces and per-chain densities (arviz-plots' ``plot_trace_dist``), one figure per sampler.

    One row per parameter element; with more than ``max_parameters`` elements, those with the
    largest R-hat over the samplers are shown (the chains worth looking at are those that
    disagree most).

    Returns
    -------
    dict of str -> matplotlib.figure.Figure
        ``"traces-<sampler>"`` per sampler (NUTS, Gibbs) with more than one draw; empty when none ran.
    """
    import arviz_plots as azp
    import xarray as xr

    samplers = [name for name in result_order(comparison) if _kind(comparison, name) == "sampler"
                and comparison.idatas[name].posterior.sizes["draw"] > 1]
    if not samplers:
        return {}
    labels, _ = _informative(comparison, 10**6)
    if not labels:
        return {}
    table = comparison.table[comparison.table["backend"].isin(samplers)]
    worst = table.groupby("parameter", sort=False)["r_hat"].max()
    if len(labels) > max_parameters and worst.notna().any():
        labels = sorted(labels, key=lambda label: -np.nan_to_num(worst.get(label, np.nan), nan=0.0))
    omitted = max(0, len(labels) - max_parameters)
    labels = labels[:max_parameters]
    figures = {}
    for name in samplers:
        posterior = comparison.idatas[name].posterior
        # one scalar variable per table label, so that rows are named as in the table
        selected = xr.Dataset(
            {label: (("chain", "draw"), _element_by_chain(posterior, label)) for label in labels},
            coords={"chain": posterior.coords["chain"].values, "draw": posterior.coords["draw"].values},
        )
        collection = azp.plot_trace_dist(
            xr.DataTree.from_dict({"posterior": selected}), compact=False, backend="matplotlib",
            figure_kwargs={"figsize": (9.0, 1.6 * len(labels) + 1.0)},
        )
        figure = collection.viz["figure"].item()
        title = f"{name}: MCMC traces and densities, one colour per chain"
        if omitted:
            title += f" (the {len(labels)} parameters with the largest R-hat of {len(labels) + omitted})"
        figure.suptitle(title)
        figures[f"traces-{name}"] = figure
    return figures


def _element_by_chain(posterior, label: str) -> np.ndarray:
    """Draws of a table label such as ``p``, ``means[1, 0]`` or ``means[1, waiting]`` (a named
    position, :func:`~latentzoo.inference.comparison.metrics.coordinate_names`) as (chain, draw)."""
    base, _, rest = label.partition("[")
    variable = posterior[base]
    values = np.asarray(variable.values, float)
    if rest:
        names = coordinate_names(variable)
        parts = [part.strip() for part in rest.rstrip("]").split(",")]
        index = tuple(int(part) if labels is None else labels.index(part) for part, labels in zip(parts, names))
        values = values[(slice(None), slice(None)) + index]
    return values


def _kind(comparison, name: str) -> str:
    rows = comparison.table[comparison.table["backend"] == name]
    return str(rows["kind"].iloc[0]) if len(rows) else "unknown"


# -- the model's own picture -----------------------------------------------------------------
def model_picture(comparison):
    """The model's own picture: ``comparison.model.picture(comparison)``.

    Each model family draws its picture in its own module of :mod:`latentzoo.models`, from the
    results the comparison holds (nothing is fitted).

    Returns
    -------
    matplotlib.figure.Figure or None
        None for models without a ``picture`` method, or when the model has nothing to show.
    """
    from ...models.core.protocols import Pictured

    return comparison.model.picture(comparison) if isinstance(comparison.model, Pictured) else None
