"""The picture of :class:`~latentzoo.models.ThreeCoins`: the posterior in the (p, q) plane.

With one flip per trial only ``pi p + (1 - pi) q`` is identified: the posterior is a ridge, and
EM stops wherever it meets it. The picture shows the reference's draws, the ridge lines, where
the ``em`` result's restarts stopped and every other back-end's estimate.

Imported only when a picture is drawn (``model.picture(comparison)``), so that importing the
models does not import matplotlib.
"""

from __future__ import annotations

import numpy as np

from ..core.plotting import new_figure
from ..core.protocols import IdentificationRule

__all__ = ["three_coins_picture"]


def _em_end_points(comparison) -> dict[str, np.ndarray] | None:
    """Where each restart of the comparison's ``em`` result stopped.

    Read from the ``final_<param>`` variables (dims ``("restart",)``) of the result's
    ``fit_history``, with the coins named as the compared draws are named (the model's
    identification rule) and ``heads_prob`` derived.

    Returns
    -------
    dict of str -> ndarray of shape (n_restart,), or None
        None when the comparison has no ``em`` result or the result records no end points.
    """
    idata = comparison.idatas.get("em")
    if idata is None or "fit_history" not in idata.children:
        return None
    model, history = comparison.model, idata.fit_history
    if not all(f"final_{name}" in history.data_vars for name in model.param_names):
        return None
    points = {name: np.asarray(history[f"final_{name}"].values, float) for name in model.param_names}
    if isinstance(model, IdentificationRule):
        # name the coins as the compared draws are named (the comparison identified them)
        points, _ = model.relabel_draws(points)
    return {**points, **model.derived(points)}


def three_coins_picture(comparison):
    """(p, q) plane of the three-coin posterior, with the ridge, EM fixed points and estimates.

    The EM fixed points are where the restarts of the comparison's ``em`` result stopped
    (``final_*`` in its ``fit_history``); without an ``em`` result they are left out. Nothing
    is fitted here.

    Returns
    -------
    matplotlib.figure.Figure
    """
    model, data = comparison.model, comparison.data
    data = model.check_data(data)
    heads_fraction = float(data.heads.sum() / (data.n_trials * data.n_flips))
    reference = comparison.reference if comparison.reference in comparison.idatas else None
    if reference is None:
        samplers = [name for name, idata in comparison.idatas.items() if idata.posterior.sizes["draw"] > 1]
        reference = samplers[0] if samplers else None

    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    figure = new_figure(13.5, 6.6)
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

    end_points = _em_end_points(comparison)
    if end_points is not None:
        n_points = end_points["p"].size
        plane.scatter(end_points["p"], end_points["q"], marker="*", s=160,
                      color="C3", edgecolor="black", lw=0.5, zorder=5,
                      label=f"EM fixed points ({n_points} restarts)")
        identified.plot(end_points["heads_prob"], np.zeros(n_points), "*", color="C3",
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
