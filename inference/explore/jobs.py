"""Background jobs for the slow back-ends of ``latentzoo explore`` (NUTS, ADVI).

One worker thread runs them one at a time (two cores are shared with the page's fast requests);
the page polls ``GET /api/jobs/{id}`` for the state, the stage and the elapsed time. The PyMC model
is compiled once per structure and PyTensor's on-disk cache makes a later run cheaper.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

__all__ = ["JobQueue", "MAX_JOBS"]

MAX_JOBS = 32  # finished jobs kept for polling; the oldest are forgotten
MAX_PENDING = 4  # jobs queued or running at once, over every tab


class JobQueue:
    """Run ``work(body, progress)`` callables in one background thread; keep their outcome."""

    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latentzoo-explore-job")
        self._jobs: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def submit(self, method: str, work, body) -> str:
        """Queue a job; return its id.

        Raises
        ------
        RuntimeError
            When :data:`MAX_PENDING` jobs are already queued or running.
        """
        with self._lock:
            pending = sum(job["state"] in ("queued", "running") for job in self._jobs.values())
            if pending >= MAX_PENDING:
                raise RuntimeError(f"{pending} jobs are already queued or running; wait for one to finish")
            job_id = str(next(self._ids))
            self._jobs[job_id] = {"id": job_id, "method": method, "state": "queued", "stage": "queued",
                                  "fraction": 0.0, "submitted": time.time(), "started": None, "finished": None,
                                  "result": None, "error": None}
            while len(self._jobs) > MAX_JOBS:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest]["state"] in ("queued", "running"):
                    break
                self._jobs.pop(oldest)
        self._executor.submit(self._run, job_id, work, body)
        return job_id

    def _update(self, job_id: str, **fields) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._jobs[job_id].update(fields)

    def _run(self, job_id: str, work, body) -> None:
        self._update(job_id, state="running", stage="starting", started=time.time())

        def progress(fraction: float, stage: str) -> None:
            self._update(job_id, fraction=float(fraction), stage=stage)

        try:
            result = work(body, progress)
        except (ValueError, TypeError) as error:
            self._update(job_id, state="error", error={"type": type(error).__name__, "message": str(error)},
                         finished=time.time())
        except Exception as error:  # a job's failure is reported on the page, never kills the server
            traceback.print_exc()
            self._update(job_id, state="error", error={"type": type(error).__name__, "message": str(error)},
                         finished=time.time())
        else:
            self._update(job_id, state="done", stage="done", fraction=1.0, result=result, finished=time.time())

    def status(self, job_id: str) -> dict | None:
        """A copy of the job's record with ``elapsed_s``; None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            job = dict(job)
        if job["started"] is not None:
            job["elapsed_s"] = (job["finished"] or time.time()) - job["started"]
        else:
            job["elapsed_s"] = 0.0
        return job

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
