"""The dice hidden Markov model (seeds 001 and 000): evaluation, decoding, learning, and the
occasionally dishonest casino.

Run:  .venv/bin/python examples/dice_hmm.py [--out examples/figures/dice_hmm]

1. The seed's game (hidden die D6/D4/D8, uniform choices, fair dice): the first-roll
   distribution from the forward algorithm against the closed form (P(1) = 13/72).
2. The rolls 1 6 3 5 2 7 3 5 2 4: filtered and smoothed die probabilities and the Viterbi path
   (figure), and every back-end side by side (EM, VB, Gibbs with FFBS, exact enumeration).
3. Learning from longer simulated play of a "sticky" game: Baum-Welch recovers the switching.
4. The occasionally dishonest casino (Durbin et al. 1998, fig. 3.5): 300 rolls with the die
   actually used; decoding accuracy with the true parameters and with parameters learned by EM.
5. How Gibbs samplers mix: FFBS (``gibbs``) redraws the whole state path at once, PyMC's
   ``CategoricalGibbsMetropolis`` (``pymc_gibbs``) one time step at a time. On a sticky game the
   neighbouring states are strongly coupled, so single-site updates crawl: effective sample
   size per draw and per second for both.
"""

from __future__ import annotations

import argparse
import os
import warnings
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
_rc = Path.home() / ".cache" / "latentzoo" / "pytensorrc"
if "PYTENSORRC" not in os.environ and _rc.exists():
    os.environ["PYTENSORRC"] = str(_rc)

import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from latentzoo.inference import compare, fit  # noqa: E402
from latentzoo.models import CategoricalHMM, DiceHMM  # noqa: E402
from latentzoo.models.datasets import casino as casino_data  # noqa: E402

SEED_ROLLS = [1, 6, 3, 5, 2, 7, 3, 5, 2, 4]


def first_roll_distribution(dice: DiceHMM) -> None:
    game = dice.default_params()
    print("First roll under the seed's game: forward algorithm vs closed form")
    for face in range(1, 9):
        forward = float(np.exp(dice.log_likelihood([face], game))[0])
        closed = sum(Fraction(1, 3) * Fraction(1, sides) for sides in dice.dice if face <= sides)
        print(f"  P(first roll = {face}) = {forward:.6f}   closed form {closed} = {float(closed):.6f}")
    print()


def decode_seed_rolls(dice: DiceHMM, out: Path) -> None:
    game = dice.default_params()
    filtered = dice.filter(SEED_ROLLS, game)
    smoothed = dice.posterior_states(SEED_ROLLS, game)
    path, log_prob = dice.viterbi(SEED_ROLLS, game)
    names = dice.state_labels
    print("Rolls:        ", " ".join(f"{r:>3}" for r in SEED_ROLLS))
    print("Viterbi dice: ", " ".join(f"{names[s]:>3}" for s in path), f"  (log-probability {log_prob:.3f})")
    print()
    figure = Figure(figsize=(10, 5), layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    steps = np.arange(len(SEED_ROLLS))
    colours = matplotlib.colormaps["tab10"].colors
    for ax, probabilities, title in zip(axes, (filtered, smoothed), ("filtered p(die_t | rolls_1..t)",
                                                                     "smoothed p(die_t | all rolls)")):
        bottom = np.zeros(len(steps))
        for state, name in enumerate(names):
            ax.bar(steps, probabilities[:, state], bottom=bottom, color=colours[state], label=name)
            bottom += probabilities[:, state]
        ax.set_ylabel("probability")
        ax.set_title(title)
    axes[1].plot(steps, [1.04] * len(steps), alpha=0)
    for t, state in enumerate(path):
        axes[1].annotate(names[state], (t, 1.02), ha="center", va="bottom", fontsize=9, annotation_clip=False)
    axes[1].set_xticks(steps, [f"{r}\n(t={t})" for t, r in enumerate(SEED_ROLLS)])
    axes[0].legend(loc="upper right", ncols=len(names))
    figure.suptitle("The seed's rolls: which die? (letters above: the Viterbi path)")
    out.mkdir(parents=True, exist_ok=True)
    figure.savefig(out / "seed_rolls_states.png", dpi=110)


def learn_sticky_game(dice: DiceHMM, seed: int) -> None:
    sticky = dice.default_params()
    sticky["trans_mat"] = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    rolls, _ = dice.simulate(sticky, 5000, np.random.default_rng(seed))
    idata = fit(dice, rolls, backend="em", mle=True, random_seed=seed, progressbar=False)
    learned = idata.posterior["trans_mat"].values[0, 0]
    print("Baum-Welch on 5000 rolls of a sticky game: learned transition matrix (truth 0.9 on the diagonal)")
    print(np.array2string(learned, precision=3, suppress_small=True), "\n")


def casino(seed: int) -> None:
    faces, loaded = casino_data()
    rolls = faces - 1  # faces 1..6 -> symbols 0..5
    model = CategoricalHMM(n_states=2, n_symbols=6)
    truth = {  # Durbin et al.: fair die uniform; loaded 1/10 for 1-5 and 1/2 for six
        "init_probs": np.array([0.5, 0.5]),
        "trans_mat": np.array([[0.95, 0.05], [0.10, 0.90]]),
        "emission_probs": np.array([[1 / 6] * 6, [0.1] * 5 + [0.5]]),
    }
    path, _ = model.viterbi(rolls, truth)
    print(f"Casino, Viterbi with the true parameters: {np.mean((path == 1) == loaded):.1%} of rolls "
          "assigned to the right die")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = fit(model, rolls, backend="em", mle=True, n_init=10, random_seed=seed, progressbar=False)
    learned = {name: idata.posterior[name].values[0, 0] for name in model.param_names}
    loaded_state = int(np.argmax(learned["emission_probs"][:, 5]))  # the state that favours six
    path, _ = model.viterbi(rolls, learned)
    print(f"Casino, Viterbi with parameters learned by EM from the rolls alone: "
          f"{np.mean((path == loaded_state) == loaded):.1%} right; learned P(six | loaded) = "
          f"{learned['emission_probs'][loaded_state, 5]:.2f} (truth 0.50)\n")


def gibbs_mixing(dice: DiceHMM, seed: int, n_rolls: int = 60, draws: int = 300) -> None:
    import arviz as az

    sticky = dice.default_params()
    sticky["trans_mat"] = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    rolls, _ = dice.simulate(sticky, n_rolls, np.random.default_rng(seed + 1))
    print(f"Gibbs mixing on {n_rolls} rolls of the sticky game ({draws} draws x 2 chains each):")
    print(f"  {'sampler':32s} {'ESS of P(D6 -> D6)':>18s} {'ESS per draw':>13s} {'ESS per s':>10s} {'time':>7s}")
    for backend, label in (("gibbs", "FFBS: whole path at once"), ("pymc_gibbs", "PyMC: one state at a time")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = fit(dice, rolls, backend=backend, draws=draws, tune=draws, chains=2, random_seed=seed,
                        progressbar=False)
        ess = float(az.ess(idata.posterior["trans_mat"].sel(state="D6", state_next="D6").values))
        seconds = float(idata.posterior.attrs["runtime_s"])
        print(f"  {label:32s} {ess:18.0f} {ess / (2 * draws):13.2f} {ess / seconds:10.1f} {seconds:6.1f}s")
    print("  (single-site updates must move a run of equal dice one step at a time, through "
          "improbable switches)\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("examples/figures/dice_hmm"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    dice = DiceHMM()
    first_roll_distribution(dice)
    decode_seed_rolls(dice, args.out)
    quick_mcmc = {"draws": 1000, "tune": 1000, "chains": 2, "progressbar": False}
    result = compare(dice, SEED_ROLLS, random_seed=args.seed, progressbar=False,
                     options={"gibbs": {"progressbar": False}, "em": {"progressbar": False},
                              "nuts": quick_mcmc, "pymc_gibbs": quick_mcmc})
    print(result.summary())
    print(f"report: {result.save(args.out / 'backends')}\n")
    learn_sticky_game(dice, args.seed)
    casino(args.seed)
    gibbs_mixing(dice, args.seed)
    print(f"figures: {args.out}")


if __name__ == "__main__":
    main()
