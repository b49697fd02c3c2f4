"""A Gaussian mixture fitted on Dask: data read from chunked storage, EM and VB on a cluster.

Run:  .venv/bin/python examples/distributed_gmm.py [--n 2000000] [--out /tmp/latentzoo-dask]

1. Writes N points of three 2-D blobs to chunked storage, chunk by chunk (never all in memory):
   a Zarr array when ``zarr`` is installed, else a NumPy ``.npy`` file written through a memmap.
2. Opens it lazily as a ``dask.array`` (``da.from_zarr``, or ``da.from_array`` on
   ``np.load(..., mmap_mode="r")``) with 250,000-row chunks.
3. Starts a ``LocalCluster`` of two worker processes and a ``Client``. On a real cluster, connect
   instead to its scheduler (the workers must be able to read the storage path, e.g. a shared
   file system or an object store URL for Zarr)::

       from distributed import Client
       client = Client("tcp://scheduler:8786")

4. ``fit(GaussianMixture(3), x, "em")`` and ``"vb"``: each iteration computes the chunks'
   sufficient statistics on the workers and combines them on the client; the data never reach
   the client (the k-means++ start uses a fixed subsample of at most 100,000 rows). The
   per-observation results (pointwise log-likelihood, responsibilities) are lazy: reading them
   computes them on the workers; ``per_observation="summary"`` keeps only their totals.

About half a minute for N = 2e6 on two cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

CENTRES = np.array([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
CHUNK = 250_000


def write_storage(path: Path, n: int) -> Path:
    """N blob points written chunk by chunk to Zarr (or .npy); returns the store's path."""
    rng = np.random.default_rng(0)
    try:
        import zarr

        store = path / "points.zarr"
        array = zarr.create_array(store, shape=(n, 2), chunks=(CHUNK, 2), dtype="float64", overwrite=True)
    except ImportError:
        store = path / "points.npy"
        array = np.lib.format.open_memmap(store, mode="w+", dtype="float64", shape=(n, 2))
    for start in range(0, n, CHUNK):
        rows = min(CHUNK, n - start)
        array[start:start + rows] = CENTRES[rng.integers(0, 3, rows)] + rng.standard_normal((rows, 2))
    if isinstance(array, np.memmap):
        array.flush()
    return store


def open_lazily(store: Path):
    import dask.array as da

    if store.suffix == ".zarr":
        return da.from_zarr(str(store))
    return da.from_array(np.load(store, mmap_mode="r"), chunks=(CHUNK, 2))


def main(argv=None):
    import distributed

    from latentzoo.inference import fit
    from latentzoo.models import GaussianMixture

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/latentzoo-dask"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    store = write_storage(args.out, args.n)
    x = open_lazily(store)
    print(f"{store}: {x.shape[0]:,} rows in {x.numblocks[0]} chunks of {CHUNK:,}")

    # a real cluster: client = distributed.Client("tcp://scheduler:8786")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        print(f"cluster: {len(client.scheduler_info()['workers'])} workers")
        for backend, options in (("em", {"n_init": 1}), ("vb", {"n_init": 1, "draws": 200})):
            begin = time.perf_counter()
            result = fit(GaussianMixture(3), x, backend, random_seed=1, progressbar=False, **options)
            elapsed = time.perf_counter() - begin
            means = result.posterior["means"].mean(("chain", "draw")).values
            order = np.argsort(means[:, 0] + 0.1 * means[:, 1])
            print(f"{backend}: {result.attrs['n_iter']} iterations in {elapsed:.1f} s; "
                  f"means {np.round(means[order], 3).tolist()} (true {CENTRES.tolist()})")
            assert np.allclose(means[order], CENTRES, atol=0.05)
        # lazy per-observation results: computed on the workers when read
        log_lik = result.log_likelihood["x"]
        print(f"pointwise log-likelihood: {log_lik.shape}, lazy: {log_lik.chunks is not None}; "
              f"first chunk's mean {float(log_lik[0, 0, :CHUNK].mean()):.3f}")


if __name__ == "__main__":
    main()
