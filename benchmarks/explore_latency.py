"""Latency of ``latentzoo explore``'s three-coin panels, measured through the HTTP API.

Each "edit" changes the flips (and the seed), as typing does, so no answer is served from the
cache of recent fits. The time is from sending the request to having the parsed JSON, in-process
through Starlette's TestClient (the page adds its 40 ms debounce and plotly's redraw on top; the
loopback socket adds well under a millisecond). The server's start-up warm-up is skipped, and the
first two repeats of each panel are not counted. Results: docs/user-guide/explore.md. Seed-sized data: 10 flips, and 100 flips.

Usage::

    python benchmarks/explore_latency.py [--repeats 40]

Prints one line per (data size, panel): median and p95 in milliseconds, and the p95 of the
slowest panel (the panels are requested in parallel by the page, so an edit is redrawn when the
slowest has arrived, given a free core per request).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    from starlette.testclient import TestClient

    from latentzoo.inference.explore.server import create_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with TestClient(create_app(allowed_hosts=("testserver",), warm_up=False)) as client:
        for n_trials in (10, 100):
            for method in ("data", "exact", "em", "vb", "gibbs", "table/gibbs"):
                times = []
                for repeat in range(args.repeats + 2):
                    flips = "".join(rng.choice(["0", "1"], size=n_trials))
                    body = {"flips": flips, "seed": repeat, "tag": repeat}
                    if method.startswith("table/"):
                        client.post("/api/three-coins/" + method.split("/")[1], json=body)
                    start = time.perf_counter()
                    answer = client.post("/api/three-coins/" + method, json=body)
                    answer.json()
                    times.append(1000 * (time.perf_counter() - start))
                    assert answer.status_code == 200, answer.text
                times = np.array(times[2:])  # the first two warm the caches of NumPy, SciPy and the code
                print(f"{n_trials:4d} flips  {method:12s} median {np.median(times):7.1f} ms   p95 "
                      f"{np.percentile(times, 95):7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
