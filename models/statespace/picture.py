"""The local-level model's picture: the series with each back-end's smoothed level and band, and the
two-variance posterior with EM's point."""

from __future__ import annotations

import numpy as np

from ..core.plotting import new_figure, result_order, result_styles

__all__ = ["local_level_picture"]


def local_level_picture(model, comparison):
    """A Figure: left, the data and every result's posterior mean of the level with a 95% band
    (the mixture over draws of the smoothed normals); right, the draws of (sigma2_eps, sigma2_eta)
    per result on log axes, a point estimate as a marker. None when no result holds the level."""
    names = [name for name in result_order(comparison) if "level" in comparison.idatas[name].posterior]
    if not names:
        return None
    styles = result_styles(comparison)
    figure = new_figure(11.0, 4.0)
    series, variances = figure.subplots(1, 2, width_ratios=(2, 1))
    first = comparison.idatas[names[0]]
    y = np.asarray(first.observed_data["y"].values, float)
    # the series' own times (years on the Nile), else the step numbers
    time = first.observed_data["y"].coords["time"].values if "time" in first.observed_data["y"].coords else np.arange(y.size)
    series.plot(time, y, "o", ms=3, color="0.5", label="data")
    for name in names:
        posterior = comparison.idatas[name].posterior
        level = posterior["level"].values.reshape(-1, y.size)
        sd = posterior["level_sd"].values.reshape(-1, y.size)
        mean = level.mean(0)
        # law of total variance over the draws of the variances
        spread = np.sqrt((sd**2).mean(0) + level.var(0))
        style = styles[name]
        series.plot(time, mean, color=style["color"], lw=style["lw"], ls=style["ls"], label=name)
        series.fill_between(time, mean - 1.96 * spread, mean + 1.96 * spread, color=style["color"], alpha=0.12)
        eps = posterior["sigma2_eps"].values.reshape(-1)
        eta = posterior["sigma2_eta"].values.reshape(-1)
        if eps.size == 1:
            variances.plot(eps, eta, marker="*", ms=14, ls="none", color=style["color"], label=name)
        else:
            variances.plot(eps[:2000], eta[:2000], ".", ms=2, alpha=0.3, color=style["color"], label=name)
    series.set(xlabel="time", ylabel="y", title="data and smoothed level (95% band)")
    series.legend(fontsize="small")
    variances.set(xscale="log", yscale="log", xlabel="sigma2_eps", ylabel="sigma2_eta", title="the two variances")
    return figure
