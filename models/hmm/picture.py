"""The pictures of the hidden Markov models: state posteriors over time with the Viterbi path,
for symbols (:class:`~latentzoo.models.CategoricalHMM`, :class:`~latentzoo.models.DiceHMM`) and
for real series (:class:`~latentzoo.models.hmm.gaussian.GaussianHMM`).

Imported only when a picture is drawn (``model.picture(comparison)``), so that importing the
models does not import matplotlib.
"""

from __future__ import annotations

import numpy as np

from ..core.plotting import new_figure, result_order

__all__ = ["draw_decoding", "gaussian_hmm_picture", "hmm_picture", "posterior_mean_params"]


def posterior_mean_params(model, posterior) -> dict[str, np.ndarray]:
    """One parameter set from a posterior group: the means over draws, with probability rows
    renormalised (averaging keeps them on the simplex only up to round-off)."""
    params = {name: posterior[name].mean(("chain", "draw")).values for name in model.param_names}
    for name in ("init_probs", "trans_mat", "emission_probs"):
        if name in params:
            params[name] = params[name] / params[name].sum(-1, keepdims=True)
    if "covs" in params:
        params["covs"] = 0.5 * (params["covs"] + np.swapaxes(params["covs"], -1, -2))
    return params


def _decode(model, data, params) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Smoothed state probabilities (T, K), the Viterbi path (T,) over all sequences, and a
    colour per state."""
    states = model.posterior_states(data, params)
    path, _ = model.viterbi(data, params)
    states = np.concatenate(states) if isinstance(states, list) else np.asarray(states)
    path = np.concatenate(path) if isinstance(path, list) else np.asarray(path)
    return states, path, [f"C{k % 10}" for k in range(states.shape[1])]


def _panels(comparison, max_rows: int, row_height: float, extra_height: float):
    """The model, its validated data, the back-ends shown and one axis per back-end (None when
    there is nothing to show)."""
    model = comparison.model
    data = model.check_data(comparison.data)
    names = result_order(comparison)[:max_rows]
    if not names:
        return None
    figure = new_figure(11.0, row_height * len(names) + extra_height)
    axes = figure.subplots(len(names), 1, squeeze=False, sharex=True)[:, 0]
    return model, data, names, figure, axes


def _say_error(ax, name: str, error: Exception) -> None:
    ax.text(0.5, 0.5, f"{name}: {error}", ha="center", va="center", transform=ax.transAxes, fontsize=8)


def _boundaries(ax, data, steps) -> None:
    """A vertical line between sequences."""
    for boundary in data.offsets[1:-1]:
        ax.axvline(steps[boundary] - 0.5, color="black", lw=0.8)


def hmm_picture(comparison, max_rows: int = 6):
    """Smoothed state probabilities p(z_t | x) at each back-end's posterior mean (stacked
    areas), with the Viterbi path as a strip above each panel."""
    from matplotlib.colors import to_rgba

    panels = _panels(comparison, max_rows, 1.7, 1.2)
    if panels is None:
        return None
    model, data, names, figure, axes = panels
    symbols = np.asarray(data.labels)
    steps = np.arange(symbols.size)
    for ax, name in zip(axes, names):
        posterior = comparison.idatas[name].posterior
        state_names = [str(s) for s in posterior["state"].values]
        try:
            states, path, colours = _decode(model, data, posterior_mean_params(model, posterior))
        except ValueError as error:
            _say_error(ax, name, error)
            continue
        ax.stackplot(steps, states.T, colors=[to_rgba(c, 0.75) for c in colours], step="mid",
                     labels=state_names)
        ax.scatter(steps, np.full(steps.size, 1.06), c=[colours[k] for k in path], marker="s", s=18,
                   clip_on=False, edgecolors="black", linewidths=0.3)
        _boundaries(ax, data, steps)
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.5, symbols.size - 0.5)
        ax.set_ylabel(name, fontsize=9)
        ax.set_yticks([0, 0.5, 1])
        ax.tick_params(labelsize=8)
    if symbols.size <= 60:
        axes[-1].set_xticks(steps, ["?" if missing else str(s) for s, missing in zip(symbols, data.missing)],
                            fontsize=8)
        axes[-1].set_xlabel("observed symbol at each time step (?: missing)" if data.n_missing
                            else "observed symbol at each time step")
    else:
        axes[-1].set_xlabel("time step")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False,
                  title="state", fontsize="small")
    figure.suptitle("Posterior state probabilities p(z_t | x) at each back-end's posterior mean "
                    "(squares: Viterbi path)", fontsize=10)
    return figure


def draw_decoding(ax, model, data, params, title: str | None = None, feature: int = 0, times=None):
    """On ``ax``: one feature of a real series over time, points coloured by the Viterbi state,
    and the smoothed state probabilities as shaded bands on a second axis (0-1, right)."""
    from matplotlib.colors import to_rgba

    steps = np.arange(data.n_steps) if times is None else np.asarray(times)
    states, path, colours = _decode(model, data, params)
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
    _boundaries(ax, data, steps)
    if title:
        ax.set_ylabel(title, fontsize=9)
    ax.tick_params(labelsize=8)


def gaussian_hmm_picture(comparison, max_rows: int = 6):
    """The series (first feature) coloured by the Viterbi states at each back-end's posterior
    mean, dashed lines at the state means, and the smoothed state probabilities behind it."""
    panels = _panels(comparison, max_rows, 1.9, 1.0)
    if panels is None:
        return None
    model, data, names, figure, axes = panels
    for ax, name in zip(axes, names):
        try:
            draw_decoding(ax, model, data, posterior_mean_params(model, comparison.idatas[name].posterior), name)
        except ValueError as error:
            _say_error(ax, name, error)
    axes[-1].set_xlabel("time step")
    figure.suptitle("Observations coloured by the Viterbi state at each back-end's posterior mean "
                    "(dashed: state means; shading: p(z_t | x))", fontsize=10)
    return figure
