"""Figures for a :class:`~latentzoo.inference.compare.Comparison`.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot``: no global
figure state, no GUI back-end, nothing to close. Save with ``figure.savefig(path)``; in a
notebook the figure displays itself.

* :func:`forest` -- posterior means and 94% HDIs, back-ends side by side, per parameter;
* :func:`densities` -- marginal posterior densities, back-ends overlaid;
* :func:`history` -- convergence of the iterative back-ends (EM, VB, ADVI) on one axis;
* :func:`traces` -- MCMC chains and per-chain densities (arviz-plots), one figure per sampler;
* :func:`model_picture` -- a picture specific to the model type (registered with
  :func:`register_picture`): the (p, q) plane of the three-coin posterior, covariance
  ellipses (NIW, GMM), HMM state posteriors with the Viterbi path.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["forest", "densities", "history", "traces", "model_picture", "register_picture", "KIND_COLORS"]

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


def _order(comparison) -> list[str]:
    """Result names with the reference first, then in the comparison's order."""
    names = list(comparison.idatas)
    if comparison.reference in comparison.idatas:
        names.remove(comparison.reference)
        names.insert(0, comparison.reference)
    return names


def _styles(comparison) -> dict[str, dict]:
    """A fixed colour (and dashed line for point estimates) per result, shared by every figure."""
    styles = {}
    for i, name in enumerate(comparison.idatas):
        if name == comparison.reference:
            styles[name] = {"color": "#222222", "lw": 2.2, "ls": "-"}
        else:
            styles[name] = {"color": f"C{i % 10}", "lw": 1.4, "ls": "-"}
    return styles


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
    styles = _styles(comparison)
    n_cols = min(len(labels), 4)
    n_rows = math.ceil(len(labels) / n_cols)
    figure = _figure(3.3 * n_cols + 0.4, 2.5 * n_rows + 0.9)
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    for ax, label in zip(axes.flat, labels):
        for name in _order(comparison):
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
    styles = _styles(comparison)
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
    figure = _figure(8.5, 4.6)
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
    unit = getattr(comparison.model, "observation_dim", "observation") if same else "time step"
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

    samplers = [name for name in _order(comparison) if _kind(comparison, name) == "sampler"
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
    """Draws of a table label such as ``p`` or ``means[1, 0]`` as (chain, draw)."""
    base, _, rest = label.partition("[")
    values = np.asarray(posterior[base].values, float)
    if rest:
        index = tuple(int(part) for part in rest.rstrip("]").split(","))
        values = values[(slice(None), slice(None)) + index]
    return values


def _kind(comparison, name: str) -> str:
    rows = comparison.table[comparison.table["backend"] == name]
    return str(rows["kind"].iloc[0]) if len(rows) else "unknown"


# -- model-specific pictures ------------------------------------------------------------------
_PICTURES: list[tuple[type | str, Callable]] = []


def register_picture(model_type: type | str):
    """Decorator registering ``function(comparison) -> Figure`` as the picture of ``model_type``.

    ``model_type`` is a model class or a model's command-line ``name`` (so that a picture can
    be registered without importing the model). :func:`model_picture` prefers a name match,
    then the most specific registered class.
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
    name = getattr(comparison.model, "name", None)
    for registered, function in reversed(_PICTURES):  # the latest registration wins
        if isinstance(registered, str) and registered == name:
            return function(comparison)
    for model_type in type(comparison.model).__mro__:
        for registered, function in reversed(_PICTURES):
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


def _ellipse(mean: np.ndarray, cov: np.ndarray, mass: float = 0.95, n: int = 100) -> np.ndarray:
    """Points (n, 2) of the ``mass`` contour of a 2-D normal distribution."""
    from scipy.stats import chi2

    values, vectors = np.linalg.eigh(np.asarray(cov, float))
    radius = np.sqrt(chi2.ppf(mass, 2) * np.clip(values, 0, None))
    angle = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return mean + (circle * radius) @ vectors.T


def _feature_names(comparison, data) -> tuple[str, str]:
    names = getattr(comparison.model, "feature_names", None)
    if isinstance(names, list | tuple) and len(names) >= 2:
        return str(names[0]), str(names[1])
    return "feature 0", "feature 1"


def _niw_picture(comparison):
    """Data scatter with 95% contours of N(mu, Sigma): each back-end's posterior mean, and a
    few reference draws (grey) showing how uncertain the covariance is."""
    x = np.asarray(comparison.model.check_data(comparison.data), float)
    if x.shape[1] < 2:
        return None
    styles = _styles(comparison)
    figure = _figure(7.5, 6.2)
    ax = figure.subplots()
    ax.scatter(x[:, 0], x[:, 1], s=8, color="#999999", alpha=0.6, lw=0, label=f"data ({x.shape[0]} points)")
    reference = comparison.reference if comparison.reference in comparison.idatas else None
    if reference is not None:
        posterior = comparison.idatas[reference].posterior
        mu = posterior["mu"].values.reshape(-1, x.shape[1])[:, :2]
        sigma = posterior["Sigma"].values.reshape(-1, x.shape[1], x.shape[1])[:, :2, :2]
        if mu.shape[0] > 1:
            for i in np.random.default_rng(0).choice(mu.shape[0], size=min(40, mu.shape[0]), replace=False):
                curve = _ellipse(mu[i], sigma[i])
                ax.plot(curve[:, 0], curve[:, 1], color="#bbbbbb", lw=0.5, alpha=0.6, zorder=1)
            ax.plot([], [], color="#bbbbbb", lw=0.8, label=f"{reference}: 40 posterior draws")
    for name in _order(comparison):
        posterior = comparison.idatas[name].posterior
        mu = posterior["mu"].mean(("chain", "draw")).values[:2]
        sigma = posterior["Sigma"].mean(("chain", "draw")).values[:2, :2]
        curve = _ellipse(mu, sigma)
        style = styles[name]
        ax.plot(curve[:, 0], curve[:, 1], color=style["color"], lw=style["lw"], label=f"{name}: posterior mean")
        ax.plot(*mu, "+", color=style["color"], ms=10, mew=2)
    first, second = _feature_names(comparison, x)
    ax.set_xlabel(first)
    ax.set_ylabel(second)
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    figure.suptitle("95% contour of N(μ, Σ) at each back-end's posterior mean, over the data")
    return figure


def _gmm_picture(comparison):
    """Data coloured by their most probable component (under the reference's posterior mean),
    with each back-end's 95% component contours at its posterior mean (line width ∝ weight)."""
    model = comparison.model
    x = np.asarray(model.check_data(comparison.data), float)
    if x.ndim != 2 or x.shape[1] < 2 or not comparison.idatas:
        return None
    styles = _styles(comparison)
    order = _order(comparison)
    means_at = {}
    for name in order:
        posterior = comparison.idatas[name].posterior
        means_at[name] = {var: posterior[var].mean(("chain", "draw")).values for var in ("weights", "means", "covs")}
    figure = _figure(8.0, 6.4)
    ax = figure.subplots()
    colours = "#999999"
    try:
        responsibilities = np.asarray(model.responsibilities(x, means_at[order[0]]))
        colours = [f"C{k % 10}" for k in np.argmax(responsibilities, axis=1)]
    except Exception:  # the picture still helps without colours (e.g. an ill-conditioned mean covariance)
        pass
    ax.scatter(x[:, 0], x[:, 1], s=8, c=colours, alpha=0.35, lw=0)
    for name in order:
        params = means_at[name]
        style = styles[name]
        for k in range(params["weights"].shape[0]):
            curve = _ellipse(params["means"][k, :2], params["covs"][k, :2, :2])
            ax.plot(curve[:, 0], curve[:, 1], color=style["color"], lw=0.8 + 4 * float(params["weights"][k]),
                    ls="-" if name == order[0] else "--", label=name if k == 0 else None)
            ax.plot(*params["means"][k, :2], "+", color=style["color"], ms=9, mew=1.5)
    first, second = _feature_names(comparison, x)
    ax.set_xlabel(first)
    ax.set_ylabel(second)
    ax.legend(fontsize="small", loc="best", title="95% contours (width ∝ weight)")
    ax.grid(alpha=0.3)
    figure.suptitle("Mixture components at each back-end's posterior mean; points coloured by component "
                    f"({order[0]})", fontsize=10)
    return figure


def _hmm_picture(comparison, max_rows: int = 6):
    """Smoothed state probabilities p(z_t | x) at each back-end's posterior mean (stacked
    areas), with the Viterbi path as a strip above each panel."""
    from matplotlib.colors import to_rgba

    model = comparison.model
    data = model.check_data(comparison.data)
    names = _order(comparison)[:max_rows]
    if not names:
        return None
    figure = _figure(11.0, 1.7 * len(names) + 1.2)
    axes = figure.subplots(len(names), 1, squeeze=False, sharex=True)[:, 0]
    state_names = None
    symbols = np.asarray(data.labels)
    steps = np.arange(symbols.size)
    for ax, name in zip(axes, names):
        posterior = comparison.idatas[name].posterior
        params = {var: posterior[var].mean(("chain", "draw")).values for var in model.param_names}
        # averaging draws keeps rows on the simplex up to round-off; renormalise that away
        params = {var: value / value.sum(axis=-1, keepdims=True) for var, value in params.items()}
        state_names = [str(s) for s in posterior["state"].values]
        try:
            states = model.posterior_states(data, params)
            path, _ = model.viterbi(data, params)
        except ValueError as error:
            ax.text(0.5, 0.5, f"{name}: {error}", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            continue
        states = np.concatenate(states) if isinstance(states, list) else np.asarray(states)
        path = np.concatenate(path) if isinstance(path, list) else np.asarray(path)
        colours = [f"C{k % 10}" for k in range(states.shape[1])]
        ax.stackplot(steps, states.T, colors=[to_rgba(c, 0.75) for c in colours], step="mid",
                     labels=state_names)
        ax.scatter(steps, np.full(steps.size, 1.06), c=[colours[k] for k in path], marker="s", s=18,
                   clip_on=False, edgecolors="black", linewidths=0.3)
        for boundary in data.offsets[1:-1]:
            ax.axvline(boundary - 0.5, color="black", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.5, symbols.size - 0.5)
        ax.set_ylabel(name, fontsize=9)
        ax.set_yticks([0, 0.5, 1])
        ax.tick_params(labelsize=8)
    if symbols.size <= 60:
        axes[-1].set_xticks(steps, [str(s) for s in symbols], fontsize=8)
        axes[-1].set_xlabel("observed symbol at each time step")
    else:
        axes[-1].set_xlabel("time step")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False,
                  title="state", fontsize="small")
    figure.suptitle("Posterior state probabilities p(z_t | x) at each back-end's posterior mean "
                    "(squares: Viterbi path)", fontsize=10)
    return figure


def _register_builtin_pictures():
    register_picture("three-coins")(_three_coins_picture)
    register_picture("niw-gaussian")(_niw_picture)
    register_picture("categorical-hmm")(_hmm_picture)
    register_picture("dice-hmm")(_hmm_picture)
    register_picture("gmm")(_gmm_picture)


_register_builtin_pictures()
