"""The picture of the categorical HMMs (:class:`~latentzoo.models.CategoricalHMM`,
:class:`~latentzoo.models.DiceHMM`): state posteriors over time, with the Viterbi path.

Imported only when a picture is drawn (``model.picture(comparison)``), so that importing the
models does not import matplotlib.
"""

from __future__ import annotations

import numpy as np

from ..core.plotting import new_figure, result_order

__all__ = ["hmm_picture"]


def hmm_picture(comparison, max_rows: int = 6):
    """Smoothed state probabilities p(z_t | x) at each back-end's posterior mean (stacked
    areas), with the Viterbi path as a strip above each panel."""
    from matplotlib.colors import to_rgba

    model = comparison.model
    data = model.check_data(comparison.data)
    names = result_order(comparison)[:max_rows]
    if not names:
        return None
    figure = new_figure(11.0, 1.7 * len(names) + 1.2)
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
