"""The picture of :class:`~latentzoo.models.hmm.gaussian.GaussianHMM`: the series with each
back-end's decoding. Imported only when a picture is drawn, so that importing the models does not
import matplotlib.
"""

from __future__ import annotations

import numpy as np

from ..core.plotting import new_figure, result_order

__all__ = ["gaussian_hmm_picture", "posterior_mean_params"]


def posterior_mean_params(model, posterior) -> dict[str, np.ndarray]:
    """One parameter set from a posterior group: the means over draws, with probability rows
    renormalised (averaging keeps them on the simplex only up to round-off)."""
    params = {name: posterior[name].mean(("chain", "draw")).values for name in model.param_names}
    for name in ("init_probs", "trans_mat"):
        if name in params:
            params[name] = params[name] / params[name].sum(-1, keepdims=True)
    if "covs" in params:
        params["covs"] = 0.5 * (params["covs"] + np.swapaxes(params["covs"], -1, -2))
    return params


def draw_decoding(ax, model, data, params, title: str | None = None, feature: int = 0, times=None):
    """On ``ax``: the first feature over time, points coloured by the Viterbi state, and the
    smoothed state probabilities as shaded bands on a second axis (0-1, right)."""
    from matplotlib.colors import to_rgba

    steps = np.arange(data.n_steps) if times is None else np.asarray(times)
    states = model.posterior_states(data, params)
    path, _ = model.viterbi(data, params)
    states = np.concatenate(states) if isinstance(states, list) else np.asarray(states)
    path = np.concatenate(path) if isinstance(path, list) else np.asarray(path)
    colours = [f"C{k % 10}" for k in range(states.shape[1])]
    twin = ax.twinx()
    twin.stackplot(steps, states.T, colors=[to_rgba(c, 0.18) for c in colours], step="mid")
    twin.set_ylim(0, 1)
    twin.set_ylabel("p(state | x)", fontsize=8)
    twin.tick_params(labelsize=7)
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    values = data.x[:, feature]
    ax.plot(steps, values, color="0.55", lw=0.8)
    ax.scatter(steps, values, c=[colours[k] for k in path], s=12, zorder=3)
    for k, colour in enumerate(colours):
        ax.axhline(params["means"][k, feature], color=colour, lw=1.0, ls="--")
    for boundary in data.offsets[1:-1]:
        ax.axvline(steps[boundary] - 0.5, color="black", lw=0.8)
    if title:
        ax.set_ylabel(title, fontsize=9)
    ax.tick_params(labelsize=8)


def gaussian_hmm_picture(comparison, max_rows: int = 6):
    """The series (first feature) coloured by the Viterbi states at each back-end's posterior
    mean, dashed lines at the state means, and the smoothed state probabilities behind it."""
    model = comparison.model
    data = model.check_data(comparison.data)
    names = result_order(comparison)[:max_rows]
    if not names:
        return None
    figure = new_figure(11.0, 1.9 * len(names) + 1.0)
    axes = figure.subplots(len(names), 1, squeeze=False, sharex=True)[:, 0]
    for ax, name in zip(axes, names):
        try:
            draw_decoding(ax, model, data, posterior_mean_params(model, comparison.idatas[name].posterior), name)
        except ValueError as error:
            ax.text(0.5, 0.5, f"{name}: {error}", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    axes[-1].set_xlabel("time step")
    figure.suptitle("Observations coloured by the Viterbi state at each back-end's posterior mean "
                    "(dashed: state means; shading: p(z_t | x))", fontsize=10)
    return figure
