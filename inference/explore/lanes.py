"""The panels of one edit computed side by side, each in a worker process of its own ("lanes").

An edit's panels are independent fits (EM, VB, Gibbs, the exact posterior). Computed one after
another on the server's one interpreter they took 45-60 ms of the 100 ms an edit may take to be
redrawn; threads did not help (the fits are Python loops over small arrays: the GIL serialises
them, and two threads were 4-16% slower). Processes do: each view says how its panels split
into lanes (``LANES``, balanced by measured times), and lane ``i`` always runs in worker process
``i``. A panel's table is asked after its plot is drawn and reads the panel's fit from the cache of
recent fits (:class:`.common.RecentFits`), which is per process; because a method always goes to
the same lane, its table finds the fit there.

Workers start from a fork server (``forkserver``: the server's threads are not copied into them),
import the views and, unless told not to, answer every panel once (each view's ``warm_up``). They
send back JSON (orjson), so that the server's event loop only joins bytes. A worker that dies is
replaced, and the request it was answering is computed in the server's own process, so the page
still gets its answer. With ``count=0`` everything runs in the server's process, as before (for
machines with one core, and for comparison).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import orjson
import threadpoolctl
from starlette.concurrency import run_in_threadpool

from .common import answer_edit, answer_tables, wanted_panels

__all__ = ["Lanes", "default_lane_count", "dumps"]


def default_lane_count() -> int:
    """Two lanes, or one on a one-core machine: the views split their panels in two (``LANES``),
    and more processes than cores would only queue behind each other."""
    return min(2, os.cpu_count() or 1)


def dumps(answer) -> bytes:
    """Compact JSON (UTF-8) of an answer, by orjson: the three coins' exact and VB answers are
    61 x 61 density grids, which the standard library's encoder took 2-2.4 ms each to write
    (orjson 0.07 ms), on the critical path of every edit. Answers are :func:`.common.to_json`'d
    (NaN as null) and their keys are text."""
    return orjson.dumps(answer)


def _start(view_names: tuple[str, ...], warm_up: bool) -> None:
    """A worker's start: import the views (and answer each once, filling the caches)."""
    # Ctrl-C in the terminal reaches the whole process group: the server stops its workers
    # itself, and a worker interrupted mid-answer would only print a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # one BLAS thread per worker: the workers are the parallelism, and a BLAS pool in each (as
    # many threads as cores) oversubscribed the cores. Measured on 2 cores, the three coins' edit
    # at 100 flips: 46 ms with the pools, 31.5 ms without, 48.7 ms in one process.
    threadpoolctl.threadpool_limits(1)
    for name in view_names:
        view = importlib.import_module(name)
        if warm_up:
            view.warm_up()
    # what is alive now (modules, caches) lives as long as the worker: out of the collector's
    # sight, so that a full collection during an edit does not walk it
    gc.freeze()


def _ready() -> int:
    return os.getpid()


def _call(kind: str, view_name: str, *args):
    """What a lane runs: ``kind`` is ``edit`` or ``tables`` (``args``: the body; the answer's
    panels come back as JSON each) or ``panel`` or ``table`` (``args``: method, body; the
    answer as JSON)."""
    view = importlib.import_module(view_name)
    if kind == "edit":
        answer = answer_edit(view, *args)
        answer["panels"] = {method: dumps(panel) for method, panel in answer["panels"].items()}
        return answer
    if kind == "tables":
        answer = answer_tables(view, *args)
        answer["tables"] = {method: dumps(table) for method, table in answer["tables"].items()}
        return answer
    if kind == "panel":
        return dumps(view.run_method(*args))
    if kind == "table":
        return dumps(view.run_table(*args))
    raise ValueError(f"unknown kind of work {kind!r}")


def _joined(tag, parts: dict[str, bytes], field: str, elapsed_ms: float) -> bytes:
    """``{"tag", field: {method: answer}, "elapsed_ms"}`` from answers that are JSON already."""
    inner = b",".join(dumps(method) + b":" + text for method, text in parts.items())
    return b"".join((b'{"tag":', dumps(tag), b',"', field.encode(), b'":{', inner, b'},"elapsed_ms":',
                     dumps(elapsed_ms), b"}"))


class Lanes:
    """Worker processes that answer the views' panels, one lane per process.

    Parameters
    ----------
    count : int
        Worker processes; 0 answers everything in this process (in its thread pool).
    views : iterable of module
        The view modules (:mod:`.coins`, :mod:`.gmm`, :mod:`.dice`): each has ``LANES``, a tuple of
        tuples of its panels; panel ``m`` of lane ``i`` runs in worker ``i % count``.
    warm_up : bool
        Each worker answers every panel of every view once when it starts.
    """

    def __init__(self, count: int, views, warm_up: bool = True):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer (0: no worker processes), got {count!r}")
        self.count = count
        self._view_names = tuple(view.__name__ for view in views)
        self._warm_up = warm_up
        self._lock = threading.Lock()
        self._executors = [self._new_executor() for _ in range(count)]

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"), initializer=_start,
                                   initargs=(self._view_names, self._warm_up))

    def lane_of(self, view, method: str) -> int:
        """The worker that answers ``method`` of ``view`` (0 for a name the view does not have:
        the view then says so)."""
        for index, methods in enumerate(view.LANES):
            if method in methods:
                return index % max(self.count, 1)
        return 0

    async def ready(self) -> list[int]:
        """Start every worker (and its warm-up) and wait for it; the workers' process ids."""
        return list(await asyncio.gather(*(asyncio.wrap_future(executor.submit(_ready)) for executor in self._executors)))

    def pids(self) -> list[int]:
        """Each worker's process id (starting the workers that have not started); blocking."""
        return [executor.submit(_ready).result(timeout=120) for executor in self._executors]

    async def run(self, lane: int, kind: str, view, *args):
        """``_call(kind, view, *args)`` in worker ``lane`` (in this process with no workers)."""
        if self.count == 0:
            return await run_in_threadpool(_call, kind, view.__name__, *args)
        executor = self._executors[lane]
        try:
            return await asyncio.wrap_future(executor.submit(_call, kind, view.__name__, *args))
        except BrokenProcessPool:
            # the worker died (killed, out of memory): a new one takes its lane, and this request
            # is answered here rather than lost
            with self._lock:
                if self._executors[lane] is executor:
                    self._executors[lane] = self._new_executor()
            return await run_in_threadpool(_call, kind, view.__name__, *args)

    def _split(self, view, methods) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for method in methods:
            groups.setdefault(self.lane_of(view, method), []).append(method)
        return groups

    async def _fan_out(self, kind: str, field: str, view, body, methods) -> bytes:
        start = time.perf_counter()
        groups = self._split(view, methods)
        answers = await asyncio.gather(*(self.run(lane, kind, view, {**body, "panels": group})
                                         for lane, group in groups.items()))
        parts = {}
        for answer in answers:
            parts.update(answer[field])
        ordered = {method: parts[method] for method in methods if method in parts}
        return _joined(body.get("tag"), ordered, field, 1000 * (time.perf_counter() - start))

    async def edit(self, view, body) -> bytes:
        """:func:`.common.answer_edit`, its panels computed in their lanes; JSON (bytes)."""
        return await self._fan_out("edit", "panels", view, body, wanted_panels(view, body))

    async def tables(self, view, body) -> bytes:
        """:func:`.common.answer_tables`, each table in its panel's lane; JSON (bytes)."""
        wanted = set(wanted_panels(view, body))
        return await self._fan_out("tables", "tables", view, body, [m for m in view.TABLE_METHODS if m in wanted])

    async def panel(self, view, method: str, body) -> bytes:
        """One panel's own route (``view.run_method``) in its lane; JSON (bytes)."""
        return await self.run(self.lane_of(view, method), "panel", view, method, body)

    async def table(self, view, method: str, body) -> bytes:
        """One table's own route (``view.run_table``) in its panel's lane; JSON (bytes)."""
        return await self.run(self.lane_of(view, method), "table", view, method, body)

    def shutdown(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)
