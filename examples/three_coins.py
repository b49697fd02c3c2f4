"""The three-coin problem (seed 003): EM, Gibbs, VB, ADVI, NUTS and the exact posterior.

Run:  .venv/bin/python examples/three_coins.py [--out examples/figures/three_coins]

1. The seed's data ``1111110000`` (one flip per trial): EM from several starts stops at
   different (pi, p, q) with the same likelihood -- only pi*p + (1-pi)*q is identified.
2. Every back-end against the exact posterior on the same data (table + figures).
3. The identifiable variant: the two-coin experiment of Do & Batzoglou (2008), five trials of
   ten flips with coin A fixed at pi = 0.5. Their EM from (0.6, 0.5) reaches p = 0.80,
   q = 0.52; ours must too. Then every back-end on it.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
_rc = Path.home() / ".cache" / "latentzoo" / "pytensorrc"
if "PYTENSORRC" not in os.environ and _rc.exists():
    os.environ["PYTENSORRC"] = str(_rc)

import numpy as np  # noqa: E402

from latentzoo.inference import compare, fit  # noqa: E402
from latentzoo.models import ThreeCoins  # noqa: E402

# Do & Batzoglou (2008), Nature Biotechnology 26:897, figure 1: five sets of ten tosses.
TWO_COIN_EXPERIMENT = ["HTTTHHTHTH", "HHHHTHHHHH", "HTHHHHHTHH", "HTHTTTHHTT", "THHHTHHHTH"]


def two_coin_data() -> np.ndarray:
    """The experiment as a (5, 10) array of 0/1 flips."""
    return np.array([[c == "H" for c in trial] for trial in TWO_COIN_EXPERIMENT], dtype=np.int8)


# Samplers: 2 chains of 600 draws keep the whole example under a minute with a warm cache;
# Monte-Carlo errors are then a few hundredths of a posterior sd (the table shows them).
OPTIONS = {
    "nuts": {"draws": 600, "tune": 600, "chains": 2, "progressbar": False},
    "pymc_gibbs": {"draws": 600, "tune": 600, "chains": 2, "progressbar": False},
    "gibbs": {"draws": 1000, "tune": 300, "chains": 2, "progressbar": False},
}


def em_from_several_starts(model, data, n_starts: int = 8):
    print("EM from different starting points (plain likelihood):")
    print(f"{'start':>5} {'pi':>7} {'p':>7} {'q':>7} {'pi*p+(1-pi)*q':>14} {'log-lik':>9}")
    for seed in range(n_starts):
        idata = fit(model, data, backend="em", random_seed=seed, n_init=1, mle=True, progressbar=False)
        post = idata.posterior
        values = [float(post[name].values.squeeze()) for name in ("pi", "p", "q", "heads_prob")]
        log_lik = float(idata.log_likelihood["flips"].sum())
        print(f"{seed:>5} " + " ".join(f"{v:7.3f}" for v in values[:3]) + f" {values[3]:14.3f} {log_lik:9.4f}")
    print("-> every start has the same likelihood; only heads_prob = 0.6 is learned.\n")


def show(result, title: str, out: Path) -> None:
    columns = ["backend", "parameter", "mean", "sd", "error_in_ref_sd", "runtime_s"]
    print(title)
    print(result.table[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for backend, message in result.failures.items():
        print(f"  {backend} failed: {message}")
    print(result.summary(), "\n")
    report = result.save(out)
    print(f"report and figures: {report}\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("examples/figures/three_coins"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # the comparison records every back-end's warnings and shows them in its summary and report
    warnings.simplefilter("ignore", category=UserWarning)

    model = ThreeCoins()
    seed_data = "1111110000"
    em_from_several_starts(model, seed_data)
    show(compare(model, seed_data, random_seed=args.seed, options=OPTIONS, progressbar=False),
         "Every back-end on the seed data (reference: exact posterior)", args.out / "seed")

    two_coins = ThreeCoins(pi=0.5)
    flips = two_coin_data()
    idata = fit(two_coins, flips, backend="em", mle=True, init={"p": 0.6, "q": 0.5}, max_iter=10, random_seed=0,
                progressbar=False)
    p, q = (float(idata.posterior[name].values.squeeze()) for name in ("p", "q"))
    print(f"Two-coin experiment, 10 EM iterations from (0.6, 0.5): p = {p:.2f}, q = {q:.2f} "
          "(published: 0.80, 0.52)\n")
    show(compare(two_coins, flips, random_seed=args.seed, options=OPTIONS, progressbar=False),
         "Every back-end on the identifiable two-coin experiment", args.out / "two_coins")


if __name__ == "__main__":
    main()
