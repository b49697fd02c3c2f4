"""A two-state Gaussian HMM on the Nile's annual flow at Aswan, 1871-1970, through every back-end.

The series drops around 1898 (Cobb 1978): a regime change that a two-state HMM with a sticky
transition prior decodes as a switch from a "high" to a "low" state. Every back-end fits the same
model; the figure shows the series coloured by the Viterbi path at each back-end's posterior mean,
with the smoothed state probabilities behind it, and the script prints each back-end's state means
and the most probable change year. With ``--posteriordb`` it also fits posteriordb's
``hmm_example`` data (100 draws from a two-state Gaussian HMM) with em, gibbs and nuts.

Run:  .venv/bin/python examples/nile_hmm.py [--quick] [--out examples/figures] [--posteriordb PATH]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np


def fits(model, x, quick: bool) -> dict:
    from latentzoo.inference import fit

    draws = 300 if quick else 1000
    settings = {
        "em": {"n_init": 5},
        "vb": {"draws": draws},
        "gibbs": {"draws": draws, "tune": 200, "chains": 2},
        "nuts": {"draws": draws, "tune": draws, "chains": 2, "cores": 1},
        "advi": {"draws": draws, "start": "em"},
        "map": {"init": "kmeans++"},
    }
    results = {}
    for backend, options in settings.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[backend] = fit(model, x, backend=backend, random_seed=0, progressbar=False, **options)
    return results


def ordered(model, params):
    """States ordered by their mean (state 0: the lower flow), so back-ends read alike."""
    order = np.argsort(params["means"][:, 0])
    out = dict(params)
    out["means"], out["covs"] = params["means"][order], params["covs"][order]
    out["trans_mat"] = params["trans_mat"][np.ix_(order, order)]
    if "init_probs" in params:
        out["init_probs"] = params["init_probs"][order]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "figures"))
    parser.add_argument("--posteriordb", default=None, help="path of posteriordb's hmm_example.json")
    args = parser.parse_args(argv)

    from latentzoo.inference.comparison.plots import new_figure
    from latentzoo.models import GaussianHMM
    from latentzoo.models.datasets import nile
    from latentzoo.models.hmm.picture import draw_decoding, posterior_mean_params

    years, volume = nile()
    x = volume[:, None]
    # a sticky prior: a regime lasts about 20 years a priori (diagonal 19, off-diagonal 1)
    model = GaussianHMM(2, 1, trans_prior=[[19.0, 1.0], [1.0, 19.0]])
    data = model.check_data(x)
    explicit = model.with_data_prior(data)
    results = fits(model, x, args.quick)

    figure = new_figure(11.0, 1.9 * len(results) + 1.0)
    axes = figure.subplots(len(results), 1, sharex=True)
    print(f"{'back-end':10s} {'low mean':>9s} {'high mean':>10s} {'sd low':>7s} {'sd high':>8s} {'change year':>12s}")
    for ax, (backend, idata) in zip(axes, results.items()):
        params = ordered(explicit, posterior_mean_params(explicit, idata.posterior))
        path, _ = explicit.viterbi(data, params)
        change = years[np.flatnonzero(np.diff(path))[0] + 1] if np.any(np.diff(path)) else None
        sds = np.sqrt(params["covs"][:, 0, 0])
        print(f"{backend:10s} {params['means'][0, 0]:9.0f} {params['means'][1, 0]:10.0f} {sds[0]:7.0f} {sds[1]:8.0f} {change!s:>12s}")
        draw_decoding(ax, explicit, data, params, backend, times=years)
    axes[-1].set_xlabel("year")
    figure.suptitle("Nile flow at Aswan (10^8 m^3): Viterbi states at each back-end's posterior mean; "
                    "shading: p(state | all years)", fontsize=10)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figure.savefig(out / "nile_hmm.png", dpi=110)
    print(f"wrote {out / 'nile_hmm.png'}")

    if args.posteriordb:
        record = json.loads(Path(args.posteriordb).read_text())
        y = np.asarray(record["y"], float)[:, None]
        pdb_model = GaussianHMM(int(record["K"]), 1)
        from latentzoo.inference import fit

        for backend, options in (("em", {}), ("gibbs", {"draws": 1000, "tune": 200, "chains": 2}),
                                 ("nuts", {"draws": 1000, "tune": 1000, "chains": 2, "cores": 1})):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                idata = fit(pdb_model, y, backend=backend, random_seed=0, progressbar=False, **options)
            params = ordered(pdb_model, posterior_mean_params(pdb_model, idata.posterior))
            print(f"hmm_example {backend:6s} means {params['means'][:, 0].round(2)} "
                  f"sds {np.sqrt(params['covs'][:, 0, 0]).round(2)} stay probs {np.diag(params['trans_mat']).round(2)}")


if __name__ == "__main__":
    main()
