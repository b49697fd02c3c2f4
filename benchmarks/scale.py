"""EM at scale: in-memory latentzoo, latentzoo on Dask (a LocalCluster of 2 workers) and scikit-learn.

For each N (default 1e6, 1e7, 1e8; D = 2, K = 3, blob data), every configuration runs in its own
Python process, so that the peak memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) of the
*client* process is measured per configuration:

* ``memory``: ``fit(GaussianMixture(3), x, "em", mle=True, init=start, tol=0, max_iter=I)`` on an
  in-memory (N, 2) array (latentzoo's kernels are single-threaded);
* ``dask``: the same ``fit`` on a ``dask.array`` of 1e6-row chunks generated *on the workers* of
  a ``LocalCluster(n_workers=2, threads_per_worker=1)``: the client never holds the data;
* ``sklearn``: ``sklearn.mixture.GaussianMixture(max_iter=I, tol=0)`` from the same start
  (weights, means, precisions).

The same starting parameters and I iterations without early stop everywhere. Reported: the EM
loop's wall time (latentzoo: the back-end's ``run_s``, i.e. the iterations after validation;
scikit-learn: ``fit``), the throughput N x I / seconds, the whole call's wall time, and the
client's peak resident memory. Then the ratios Dask / in-memory and latentzoo / scikit-learn.

Cost model of the Dask run: per iteration O(N K D^2 / workers) on the workers, plus a reduction
O(chunks K D^2) on the client and Dask's scheduling of one task per chunk (tens of milliseconds
per iteration on a loaded 2-core machine), so the overhead fades as N / workers grows.

Run:  .venv/bin/python benchmarks/scale.py [--sizes 1e6 1e7 1e8] [--iterations 10]
                                            [--configs memory dask sklearn] [--chunk 1e6]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

CENTRES = np.array([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
START = {
    "weights": np.array([0.3, 0.3, 0.4]),
    "means": np.array([[-4.0, 1.0], [1.0, 4.0], [4.0, -1.0]]),
    "covs": np.tile(np.eye(2) * 2.0, (3, 1, 1)),
}
CONFIGS = ("memory", "dask", "sklearn")


def blob_block(n_rows: int, seed: int) -> np.ndarray:
    """``n_rows`` points of three unit blobs, from their own seed (one chunk)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n_rows)
    return CENTRES[labels] + rng.standard_normal((n_rows, 2))


def in_memory_data(n: int, chunk: int) -> np.ndarray:
    """The same points as the Dask array holds: chunk by chunk, from the same seeds."""
    return np.concatenate([blob_block(min(chunk, n - start), seed) for seed, start in enumerate(range(0, n, chunk))])


def dask_data(n: int, chunk: int):
    """A Dask array of the same points, each chunk generated where it is computed."""
    import dask
    import dask.array as da

    blocks = [
        da.from_delayed(dask.delayed(blob_block)(min(chunk, n - start), seed), shape=(min(chunk, n - start), 2), dtype=float)
        for seed, start in enumerate(range(0, n, chunk))
    ]
    return da.concatenate(blocks)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def run_latentzoo(x, iterations: int) -> dict:
    from latentzoo.inference import fit
    from latentzoo.inference.core import FitRecord
    from latentzoo.models import GaussianMixture

    begin = time.perf_counter()
    result = fit(GaussianMixture(3), x, "em", random_seed=0, mle=True, init=START, n_init=1, tol=0.0,
                 max_iter=iterations, progressbar=False, per_observation="lazy")
    total = time.perf_counter() - begin
    record = FitRecord.from_attrs(result.attrs)
    return {"loop_s": record.run_s, "total_s": total, "n_iter": record.n_iter,
            "log_likelihood": record.objective, "means": result.posterior["means"].values.ravel().tolist()}


def run_sklearn(x, iterations: int) -> dict:
    import warnings

    from sklearn.mixture import GaussianMixture

    precisions = np.linalg.inv(START["covs"])
    model = GaussianMixture(3, covariance_type="full", max_iter=iterations, tol=0.0, n_init=1,
                            init_params="random_from_data", weights_init=START["weights"],
                            means_init=START["means"], precisions_init=precisions, random_state=0)
    begin = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 never "converges"
        model.fit(x)
    total = time.perf_counter() - begin
    return {"loop_s": total, "total_s": total, "n_iter": int(model.n_iter_), "log_likelihood": float("nan"),
            "means": model.means_.ravel().tolist()}


def child(config: str, n: int, iterations: int, chunk: int) -> dict:
    """One configuration in this process; returns its measurements (after a warm-up fit of 1,000
    points that loads the compiled kernels, on the workers too)."""
    if config == "dask":
        import distributed

        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster):
            run_latentzoo(dask_data(2000, 1000), 1)
            measured = run_latentzoo(dask_data(n, chunk), iterations)
    else:
        if config == "memory":
            run_latentzoo(in_memory_data(1000, chunk), 1)
        x = in_memory_data(n, chunk)
        measured = run_latentzoo(x, iterations) if config == "memory" else run_sklearn(x, iterations)
    measured["peak_mb"] = peak_mb()
    return measured


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 1e8])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--chunk", type=float, default=1e6)
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    chunk = int(args.chunk)
    if args.child:
        print(json.dumps(child(args.child[0], int(float(args.child[1])), args.iterations, chunk)))
        return
    print(f"EM, D = 2, K = 3, {args.iterations} iterations; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'N':>8} {'config':>8} {'loop s':>8} {'pts*it/s':>10} {'total s':>8} {'client MB':>10}")
    for size in args.sizes:
        n = int(size)
        rows = {}
        for config in args.configs:
            command = [sys.executable, __file__, "--child", config, str(n), "--iterations", str(args.iterations),
                       "--chunk", str(chunk)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{n:>8.0e} {config:>8} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows[config] = row
            throughput = n * row["n_iter"] / row["loop_s"]
            print(f"{n:>8.0e} {config:>8} {row['loop_s']:>8.2f} {throughput:>10.3g} {row['total_s']:>8.2f} "
                  f"{row['peak_mb']:>10.0f}", flush=True)
        if "memory" in rows and "dask" in rows:
            same = np.allclose(rows["memory"]["means"], rows["dask"]["means"], rtol=1e-8)
            print(f"{'':>8} dask / in-memory: loop {rows['dask']['loop_s'] / rows['memory']['loop_s']:.2f}x, "
                  f"total {rows['dask']['total_s'] / rows['memory']['total_s']:.2f}x; same means to 1e-8: {same}")
        if "memory" in rows and "sklearn" in rows:
            print(f"{'':>8} in-memory / scikit-learn: loop {rows['memory']['loop_s'] / rows['sklearn']['loop_s']:.2f}x, "
                  f"total {rows['memory']['total_s'] / rows['sklearn']['total_s']:.2f}x")
        if "dask" in rows and "sklearn" in rows:
            print(f"{'':>8} dask / scikit-learn: loop {rows['dask']['loop_s'] / rows['sklearn']['loop_s']:.2f}x")


if __name__ == "__main__":
    main()
