"""Baum-Welch and Viterbi speed: latentzoo's compiled kernels against hmmlearn.

For T = 1e5 and 1e6 rolls (K = 3 states, M = 8 symbols) both libraries run the same number of
Baum-Welch iterations (maximum likelihood) from the same starting parameters; the script checks
that they reach the same parameters and prints the time per iteration and the ratio side by
side, then does the same for Viterbi decoding (hmmlearn's fastest implementation,
``implementation="scaling"``). Each timing is the best of ``--repeat`` runs; the first, untimed
call warms numba's on-disk cache.

Gaussian emissions (``GaussianHMM``, K = 3, D = 2, full covariances; T = 2e5 and 1e6): the
whole ``fit`` as users call it (maximum-likelihood Baum-Welch, the same start, the same number of
iterations, hmmlearn's priors switched off), against hmmlearn's ``GaussianHMM`` with its default
``implementation="log"`` and with ``"scaling"``; the parameters reached are compared.

Run:  .venv/bin/python benchmarks/hmm.py [--sizes 100000 1000000] [--gaussian-sizes 200000 1000000]
      [--iterations 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def best_time(function, repeat: int) -> tuple[float, object]:
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gaussian-sizes", type=int, nargs="*", default=[200_000, 1_000_000])
    args = parser.parse_args(argv)
    gaussian = gaussian_rows(args.gaussian_sizes, args.iterations, args.repeat)

    from hmmlearn import hmm as hmmlearn

    from latentzoo.inference import ConvergenceWarning, fit
    from latentzoo.models.hmm import CategoricalHMM

    K, M = 3, 8
    model = CategoricalHMM(K, M)
    truth = {
        "init_probs": np.array([0.5, 0.3, 0.2]),
        "trans_mat": np.array([[0.90, 0.05, 0.05], [0.10, 0.80, 0.10], [0.05, 0.15, 0.80]]),
        "emission_probs": np.random.default_rng(0).dirichlet(np.full(M, 0.7), size=K),
    }
    start_rng = np.random.default_rng(1)
    start = {
        "init_probs": start_rng.dirichlet(np.ones(K)),
        "trans_mat": start_rng.dirichlet(np.ones(K), size=K),
        "emission_probs": start_rng.dirichlet(np.ones(M), size=K),
    }
    n_iter = args.iterations
    warnings.simplefilter("ignore", ConvergenceWarning)
    fit(model, [0, 1, 2], backend="em", mle=True, init=start, max_iter=2, progressbar=False)  # warm the cache

    rows = []
    for T in args.sizes:
        symbols, _ = model.simulate(truth, T, np.random.default_rng(T))
        X = symbols[:, None]

        def ours():
            return fit(model, symbols, backend="em", mle=True, init=start, max_iter=n_iter, tol=1e-300,
                       random_seed=0, progressbar=False)

        def theirs():
            reference = hmmlearn.CategoricalHMM(
                n_components=K, n_iter=n_iter, tol=-np.inf, init_params="", params="ste", implementation="scaling"
            )
            reference.n_features = M
            reference.startprob_, reference.transmat_, reference.emissionprob_ = (
                start["init_probs"].copy(), start["trans_mat"].copy(), start["emission_probs"].copy()
            )
            return reference.fit(X)

        our_time, idata = best_time(ours, args.repeat)
        their_time, reference = best_time(theirs, args.repeat)
        posterior = idata.posterior.isel(chain=0, draw=0)
        difference = max(
            np.abs(posterior["init_probs"].values - reference.startprob_).max(),
            np.abs(posterior["trans_mat"].values - reference.transmat_).max(),
            np.abs(posterior["emission_probs"].values - reference.emissionprob_).max(),
        )
        rows.append((f"Baum-Welch, T={T:.0e}", our_time / n_iter, their_time / n_iter, f"max |param diff| {difference:.1e}"))

        params = {name: posterior[name].values for name in model.param_names}
        our_time, (path, log_prob) = best_time(lambda: model.viterbi(symbols, params), args.repeat)
        reference.startprob_, reference.transmat_, reference.emissionprob_ = (
            params["init_probs"], params["trans_mat"], params["emission_probs"]
        )
        their_time, (their_log_prob, their_path) = best_time(lambda: reference.decode(X, algorithm="viterbi"), args.repeat)
        # paths may differ where two paths are exactly tied (e.g. a cycle of states over repeated
        # symbols visited in another order); their log-probabilities must be equal
        check = f"log p(x, path) differs by {abs(log_prob - their_log_prob):.1e}; paths equal on {np.mean(path == their_path):.2%}"
        rows.append((f"Viterbi,    T={T:.0e}", our_time, their_time, check))

    print(f"K = {K} states, M = {M} symbols; Baum-Welch: per iteration ({n_iter} iterations, ours includes the")
    print("final E-step and the pointwise log-likelihood of the result); best of", args.repeat, "runs\n")
    print(f"{'':24s} {'latentzoo':>12s} {'hmmlearn':>12s} {'speed-up':>9s}   check")
    for label, our_time, their_time, check in rows:
        print(f"{label:24s} {our_time * 1e3:10.1f} ms {their_time * 1e3:10.1f} ms {their_time / our_time:8.1f}x   {check}")
    if gaussian:
        print(f"\nGaussianHMM, K = 3, D = 2, full covariances: the whole fit ({n_iter} iterations), best of {args.repeat}\n")
        print(f"{'':40s} {'latentzoo':>10s} {'hmmlearn':>10s} {'speed-up':>9s}   check")
        for label, our_time, their_time, check in gaussian:
            print(f"{label:40s} {our_time:8.2f} s {their_time:8.2f} s {their_time / our_time:8.1f}x   {check}")


def gaussian_rows(sizes, n_iter: int, repeat: int) -> list:
    """Whole-fit times of maximum-likelihood Baum-Welch with Gaussian emissions, ours and hmmlearn's."""
    from hmmlearn import hmm as hmmlearn

    from latentzoo.inference import ConvergenceWarning, fit
    from latentzoo.models import GaussianHMM

    K, D = 3, 2
    # reg_covar (added to the covariances by maximum-likelihood EM) made negligible: hmmlearn adds none
    model = GaussianHMM(K, D, reg_covar=1e-12)
    truth = {
        "init_probs": np.array([0.5, 0.3, 0.2]),
        "trans_mat": np.array([[0.90, 0.05, 0.05], [0.10, 0.80, 0.10], [0.05, 0.15, 0.80]]),
        "means": np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 3.0]]),
        "covs": np.array([[[1.0, 0.3], [0.3, 0.8]], [[0.6, -0.2], [-0.2, 1.1]], [[1.5, 0.0], [0.0, 0.4]]]),
    }
    start = {
        "init_probs": np.full(K, 1.0 / K),
        "trans_mat": np.full((K, K), 0.1) + 0.7 * np.eye(K),
        "means": truth["means"] + 0.8,
        "covs": np.stack([np.eye(D) * 2.0] * K),
    }
    warnings.simplefilter("ignore", ConvergenceWarning)
    rows = []
    for T in sizes:
        x, _ = model.simulate(truth, T, np.random.default_rng(T))
        fit(model, x[:50], backend="em", mle=True, init=start, max_iter=2, progressbar=False)  # warm the cache

        def ours():
            return fit(model, x, backend="em", mle=True, init=start, max_iter=n_iter, tol=0, random_seed=0, progressbar=False)

        our_time, idata = best_time(ours, repeat)
        posterior = idata.posterior.isel(chain=0, draw=0)
        for implementation in ("log", "scaling"):
            def theirs():
                peer = hmmlearn.GaussianHMM(K, covariance_type="full", n_iter=n_iter, tol=-np.inf, init_params="",
                                            params="stmc", covars_prior=0.0, covars_weight=0.0, means_weight=0.0,
                                            implementation=implementation)
                peer.startprob_, peer.transmat_ = start["init_probs"].copy(), start["trans_mat"].copy()
                peer.means_, peer.covars_ = start["means"].copy(), start["covs"].copy()
                return peer.fit(x)

            their_time, peer = best_time(theirs, repeat)
            difference = max(
                np.abs(posterior["trans_mat"].values - peer.transmat_).max(),
                np.abs(posterior["means"].values - peer.means_).max(),
                np.abs(posterior["covs"].values - peer.covars_).max(),
            )
            rows.append((f"Baum-Welch fit, T={T:.0e}, hmmlearn {implementation!r}", our_time, their_time,
                         f"max |param diff| {difference:.1e}"))
    return rows


if __name__ == "__main__":
    main()
