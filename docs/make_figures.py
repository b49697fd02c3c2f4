"""Draw the pictures the README and the docs' home page show, into docs/_static/.

Run it after a change that alters them, and commit the PNG:

    PYTENSORRC=~/.cache/latentzoo/pytensorrc .venv/bin/python docs/make_figures.py

Only the hand-written back-ends run (no PyMC compilation), so it takes seconds; the same seed
gives the same picture.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from latentzoo.inference import compare  # noqa: E402
from latentzoo.models import ThreeCoins  # noqa: E402

STATIC = Path(__file__).resolve().parent / "_static"


def three_coins(path: Path) -> None:
    """The three coins on the seed flips 1111110000: the exact posterior's ridge in the (p, q)
    plane, where EM's restarts stopped on it, and the estimates of VB and Gibbs."""
    model = ThreeCoins()
    result = compare(model, "1111110000", backends=("exact", "em", "vb", "gibbs"), random_seed=0,
                     progressbar=False, cache=False)
    figure = model.picture(result)
    figure.savefig(path, dpi=72, bbox_inches="tight")


if __name__ == "__main__":
    STATIC.mkdir(exist_ok=True)
    three_coins(STATIC / "three_coins.png")
    print(f"wrote {STATIC / 'three_coins.png'}")
