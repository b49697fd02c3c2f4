"""The pictures of the Gaussian models (:class:`~latentzoo.models.NIWGaussian` and
:class:`~latentzoo.models.GaussianMixture`): 95% covariance ellipses over the data.

Imported only when a picture is drawn (``model.picture(comparison)``), so that importing the
models does not import matplotlib.
"""

from __future__ import annotations

import numpy as np

from ..core.plotting import new_figure, result_order, result_styles

__all__ = ["gmm_picture", "niw_picture"]


def _ellipse(mean: np.ndarray, cov: np.ndarray, mass: float = 0.95, n: int = 100) -> np.ndarray:
    """Points (n, 2) of the ``mass`` contour of a 2-D normal distribution."""
    from scipy.stats import chi2

    values, vectors = np.linalg.eigh(np.asarray(cov, float))
    radius = np.sqrt(chi2.ppf(mass, 2) * np.clip(values, 0, None))
    angle = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return mean + (circle * radius) @ vectors.T


def _feature_names(comparison) -> tuple[str, str]:
    """The first two features' names (a DataFrame's columns), or "feature 0", "feature 1"."""
    names = comparison.model.check_data(comparison.data).feature_names
    if names is not None and len(names) >= 2:
        return str(names[0]), str(names[1])
    return "feature 0", "feature 1"


def niw_picture(comparison):
    """Data scatter with 95% contours of N(mu, Sigma): each back-end's posterior mean, and a
    few reference draws (grey) showing how uncertain the covariance is."""
    x = np.asarray(comparison.model.check_data(comparison.data), float)
    if x.shape[1] < 2:
        return None
    styles = result_styles(comparison)
    figure = new_figure(7.5, 6.2)
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
    for name in result_order(comparison):
        posterior = comparison.idatas[name].posterior
        mu = posterior["mu"].mean(("chain", "draw")).values[:2]
        sigma = posterior["Sigma"].mean(("chain", "draw")).values[:2, :2]
        curve = _ellipse(mu, sigma)
        style = styles[name]
        ax.plot(curve[:, 0], curve[:, 1], color=style["color"], lw=style["lw"], label=f"{name}: posterior mean")
        ax.plot(*mu, "+", color=style["color"], ms=10, mew=2)
    first, second = _feature_names(comparison)
    ax.set_xlabel(first)
    ax.set_ylabel(second)
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    figure.suptitle("95% contour of N(μ, Σ) at each back-end's posterior mean, over the data")
    return figure


def gmm_picture(comparison):
    """Data coloured by their most probable component (under the reference's posterior mean),
    with each back-end's 95% component contours at its posterior mean (line width ∝ weight)."""
    model = comparison.model
    x = np.asarray(model.check_data(comparison.data), float)
    if x.ndim != 2 or x.shape[1] < 2 or not comparison.idatas:
        return None
    styles = result_styles(comparison)
    order = result_order(comparison)
    means_at = {}
    for name in order:
        posterior = comparison.idatas[name].posterior
        means_at[name] = {var: posterior[var].mean(("chain", "draw")).values for var in ("weights", "means", "covs")}
    figure = new_figure(8.0, 6.4)
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
    first, second = _feature_names(comparison)
    ax.set_xlabel(first)
    ax.set_ylabel(second)
    ax.legend(fontsize="small", loc="best", title="95% contours (width ∝ weight)")
    ax.grid(alpha=0.3)
    figure.suptitle("Mixture components at each back-end's posterior mean; points coloured by component "
                    f"({order[0]})", fontsize=10)
    return figure
