"""Figures for a :class:`~latentzoo.inference.compare.Comparison`.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot``: no global
figure state, no GUI back-end, nothing to close. Save with ``figure.savefig(path)``; in a
notebook the figure displays itself.

* :func:`forest` -- posterior means and 94% HDIs, back-ends side by side, per parameter;
* :func:`history` -- convergence of the iterative back-ends (EM, VB, ADVI);
* :func:`model_picture` -- a picture specific to the model type (registered with
  :func:`register_picture`), e.g. the (p, q) plane of the three-coin posterior.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["forest", "history", "model_picture", "register_picture", "KIND_COLORS"]

#: colour per back-end kind, so that families of methods read together
KIND_COLORS = {"exact": "#222222", "sampler": "#1f77b4", "variational": "#2ca02c", "point": "#d62728"}
_FALLBACK_COLOR = "#7f7f7f"


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


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
    labels = list(dict.fromkeys(table["parameter"])) if parameters is None else list(parameters)
    omitted = max(0, len(labels) - max_panels)
    labels = labels[:max_panels]
    backends = list(dict.fromkeys(table["backend"]))
    n_cols = min(len(labels), 4)
    n_rows = math.ceil(len(labels) / n_cols)
    figure = _figure(3.2 * n_cols + 0.8, 0.32 * len(backends) * n_rows + 1.2 * n_rows + 0.4)
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


def history(comparison):
    """Convergence histories from each result's ``fit_history`` group.

    One panel per back-end with at least two iterations of history: every restart as a thin
    line, the one kept (attr ``best_restart``) bold. Stochastic objectives (ADVI's ELBO) also
    get a running mean, and the y range is clipped to the last 95% of the run, since the first
    steps are orders of magnitude below the plateau.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when no back-end recorded a history.
    """
    panels = []
    for name, idata in comparison.idatas.items():
        if "fit_history" not in idata.groups():
            continue
        for variable, values in idata.fit_history.data_vars.items():
            array = np.atleast_2d(np.asarray(values.values, float))
            if np.sum(np.isfinite(array), axis=1).max(initial=0) >= 2:
                panels.append((name, variable, array, idata.posterior.attrs))
    if not panels:
        return None
    n_cols = 2 if len(panels) == 4 else min(len(panels), 3)
    n_rows = math.ceil(len(panels) / n_cols)
    figure = _figure(4.2 * n_cols, 3.0 * n_rows + 0.5)
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    for ax, (name, variable, array, attrs) in zip(axes.flat, panels):
        best = int(attrs.get("best_restart", 0)) if array.shape[0] > 1 else 0
        iterations = np.arange(1, array.shape[1] + 1)
        stochastic = array.shape[0] == 1 and array.shape[1] > 200
        for restart, line in enumerate(array):
            kept = restart == best
            ax.plot(iterations, line, lw=0.6 if stochastic else (1.8 if kept else 0.8),
                    alpha=0.35 if stochastic else (1.0 if kept else 0.5), color="C0" if kept else "C7",
                    label="kept restart" if kept and array.shape[0] > 1 else None)
        if stochastic:
            window = max(array.shape[1] // 50, 10)
            smooth = np.convolve(array[0], np.ones(window) / window, mode="valid")
            ax.plot(iterations[window - 1:], smooth, color="C3", lw=1.5, label=f"running mean ({window})")
            tail = array[0, array.shape[1] // 20:]
            low, high = np.nanpercentile(tail, [1, 100])
            ax.set_ylim(low - 0.1 * (high - low), high + 0.1 * (high - low))
        if array.shape[1] < 30 and not stochastic:
            ax.set_xticks(iterations if array.shape[1] <= 10 else iterations[:: max(1, array.shape[1] // 8)])
        ax.set_title(f"{name}: {variable.replace('_', '-')}")
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    figure.suptitle("Convergence of the iterative back-ends (objective per iteration)")
    return figure


# -- model-specific pictures ------------------------------------------------------------------
_PICTURES: list[tuple[type, Callable]] = []


def register_picture(model_type: type):
    """Decorator registering ``function(comparison) -> Figure`` as the picture of ``model_type``.

    A model module (GMM, HMM) registers its own picture here; :func:`model_picture` picks the
    most specific registered type.
    """

    def decorate(function):
        _PICTURES.append((model_type, function))
        return function

    return decorate


def model_picture(comparison):
    """The picture registered for the comparison's model type (see :func:`register_picture`).

    Returns
    -------
    matplotlib.figure.Figure or None
        None for model types without a picture.
    """
    for model_type in type(comparison.model).__mro__:
        for registered, function in _PICTURES:
            if registered is model_type:
                return function(comparison)
    return None


def _em_fixed_points(comparison, n_starts: int = 8) -> list[dict]:
    """EM from several seeds, one start each: where EM stops depends on where it starts."""
    import warnings

    from .registry import fit

    em_options = comparison.options.get("em", {})
    mle = em_options.get("mle", False)
    points = []
    for seed in range(n_starts):
        with warnings.catch_warnings():
            # a start that does not converge still shows where EM went; the warning adds nothing here
            warnings.simplefilter("ignore")
            try:
                idata = fit(comparison.model, comparison.data, backend="em", n_init=1, random_seed=seed, mle=mle,
                            progressbar=False)
            except (ValueError, FloatingPointError, RuntimeError):
                continue
        point = {name: float(idata.posterior[name].values.ravel()[0]) for name in idata.posterior.data_vars
                 if idata.posterior[name].ndim == 2}
        if comparison.model.supports("relabel_draws"):
            # name the coins as the compared draws are named (the comparison identified them)
            point, _ = comparison.model.relabel_draws(point)
            point = {name: float(value) for name, value in point.items()}
        points.append(point)
    return points


def _three_coins_picture(comparison):
    """(p, q) plane of the three-coin posterior, with the ridge, EM fixed points and estimates."""
    model, data = comparison.model, comparison.data
    data = model.check_data(data)
    heads_fraction = float(data.heads.sum() / (data.n_trials * data.n_flips))
    reference = comparison.reference if comparison.reference in comparison.idatas else None
    if reference is None:
        samplers = [name for name, idata in comparison.idatas.items() if idata.posterior.sizes["draw"] > 1]
        reference = samplers[0] if samplers else None

    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    figure = _figure(13.5, 6.6)
    plane, identified = figure.subplots(1, 2, width_ratios=(1.35, 1))
    if reference is not None:
        posterior = comparison.idatas[reference].posterior
        p = posterior["p"].values.ravel()
        q = posterior["q"].values.ravel()
        keep = np.random.default_rng(0).permutation(p.size)[:3000]  # enough to see the shape
        if model.pi is None:
            # colour by pi: each draw sits on the ridge line of its own pi
            cloud = plane.scatter(p[keep], q[keep], c=posterior["pi"].values.ravel()[keep], cmap=cmap, vmin=0, vmax=1,
                                  s=4, alpha=0.5, lw=0)
            figure.colorbar(cloud, ax=plane, label="π of the draw", shrink=0.8, pad=0.02)
        else:
            plane.scatter(p[keep], q[keep], color="#888888", s=4, alpha=0.4, lw=0)
        identified.hist(posterior["heads_prob"].values.ravel(), bins=40, range=(0, 1), density=True,
                        color="#bbbbbb", label=f"{reference}: heads_prob")
        for values, name, color in ((p, "p", "C0"), (q, "q", "C1")):
            identified.hist(values, bins=40, range=(0, 1), density=True, histtype="step", color=color, lw=1.5,
                            label=f"{reference}: {name}")

    grid = np.linspace(0, 1, 201)
    pis = [model.pi] if model.pi is not None else [0.2, 0.35, 0.5, 0.65, 0.8]
    for pi in pis:
        # pi p + (1 - pi) q = heads fraction, solved for q
        q_line = (heads_fraction - pi * grid) / (1 - pi)
        inside = (q_line >= 0) & (q_line <= 1)
        color = cmap(pi) if model.pi is None else "C2"
        plane.plot(grid[inside], q_line[inside], color="white", lw=3, alpha=0.7)
        plane.plot(grid[inside], q_line[inside], color=color, lw=1.5, ls="--")
        if inside.any():
            at = np.flatnonzero(inside)[int(0.85 * (inside.sum() - 1))]
            plane.annotate(f"π={pi:g}", (grid[at], q_line[at]), color="black", fontsize=8,
                           xytext=(3, 3), textcoords="offset points")

    fixed_points = _em_fixed_points(comparison)
    if fixed_points:
        plane.scatter([f["p"] for f in fixed_points], [f["q"] for f in fixed_points], marker="*", s=160,
                      color="C3", edgecolor="black", lw=0.5, zorder=5,
                      label=f"EM fixed points ({len(fixed_points)} seeds)")
        identified.plot([f["heads_prob"] for f in fixed_points], np.zeros(len(fixed_points)), "*", color="C3",
                        ms=12, mec="black", mew=0.5, clip_on=False, zorder=5, label="EM fixed points: heads_prob")

    markers = iter("osD^vP<>hX")
    for name, idata in comparison.idatas.items():
        if name == reference:
            continue
        posterior = idata.posterior
        plane.plot(float(posterior["p"].mean()), float(posterior["q"].mean()), next(markers, "o"), ms=8,
                   mec="black", mew=0.6, label=f"{name} mean" if posterior.sizes["draw"] > 1 else f"{name} estimate",
                   zorder=6)

    plane.set_xlim(0, 1)
    plane.set_ylim(0, 1)
    plane.set_aspect("equal")
    plane.set_xlabel("p  (heads probability of coin B)")
    plane.set_ylabel("q  (heads probability of coin C)")
    ridge_label = f"π p + (1−π) q = {heads_fraction:.2g}\n(heads fraction) for fixed π"
    plane.plot([], [], color="#555555", ls="--", label=ridge_label)
    plane.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=3, frameon=False)
    where = f"dots: {reference} draws" if reference else "no posterior draws"
    plane.set_title(f"Posterior in the (p, q) plane ({where})", fontsize=10)
    identified.set_xlim(0, 1)
    identified.set_xlabel("probability")
    identified.set_yticks([])
    identified.set_title("What the data pin down: heads_prob vs p and q", fontsize=10)
    identified.legend(fontsize="x-small", loc="upper left")
    if data.n_flips == 1:
        headline = ("Three coins, one flip per trial: only π·p + (1−π)·q is identified — "
                    "the posterior is a ridge and EM stops wherever it meets it")
    else:
        headline = (f"Three coins, {data.n_flips} flips per trial: the flips within a trial tell the coins apart, "
                    "so p and q are identified (up to swapping B and C)")
    figure.suptitle(headline, fontsize=11)
    return figure


def _register_builtin_pictures():
    from latentzoo.models import ThreeCoins

    register_picture(ThreeCoins)(_three_coins_picture)


_register_builtin_pictures()
