"""The Starlette app behind ``latentzoo explore`` and the command that serves it.

Routes
------
``GET /``                                   the page (static HTML; no build step)
``GET /static/{file}``                      its JS and CSS (package data)
``GET /static/plotly.min.js``               plotly.js as bundled in the installed ``plotly`` package
``GET /api/limits``                         every view's bounds and defaults
``POST /api/{model}/edit``                  every panel of one edit in one answer (what the page asks)
``POST /api/{model}/tables``                every panel's comparison-table rows in one answer
``POST /api/{model}/{method}``              a panel of view ``model`` (one of :data:`MODELS`)
``POST /api/{model}/table/{method}``        that panel's comparison-table rows
``POST /api/{model}/jobs/{method}``         start ``nuts`` or ``advi`` in the background
``GET /api/jobs/{id}``                      a job's state, stage, elapsed time and result

Each view is a module (:mod:`.coins`, :mod:`.gmm`, :mod:`.dice`) with the same small interface:
``parse_request(body)``, ``run_method(method, body)``, ``run_table(method, body)``,
``run_job(method, body, progress)``, ``METHODS`` and ``VIEWS`` (its panels),
``TABLE_METHODS``, ``LANES``, ``JOB_METHODS``, ``LIMITS``, ``DEFAULTS`` and ``warm_up()``;
the routes only dispatch to it. For the three coins, ``{method}`` is ``data``, ``exact``,
``em``, ``vb`` or ``gibbs``.

The page asks for an edit's panels in ONE request (``edit``) and, once they are drawn, for all
its tables in a second one (``tables``). The panels are computed side by side in worker
processes, one per lane (:mod:`.lanes`: each view splits its panels in two, and a method always
goes to the same worker, where its table finds its fit); the server's own process only routes
and joins the workers' JSON. One request per panel queued N requests behind each other on
one interpreter, and threads gained nothing (see benchmarks/explore_latency.py ``--breakdown``);
the per-panel routes stay, for scripts and tests.

At start-up each worker answers every panel of every view once on the seed's data (``warm_up``),
so that the first edit does not pay for importing ArviZ and SciPy's corners; ``started``
(uvicorn) is set only after that. At most :data:`MAX_COMPUTING` panel or table requests compute
at once; a request whose client has gone (the page aborts the requests of an edit superseded by
a newer one) is dropped before it computes, so that a burst of keystrokes leaves no queue of
stale fits in front of the last edit's.

Bad input answers 400 with ``{"error": {"type", "message"}}`` (the library's message); any other
failure answers 500 with the message; the server keeps serving. It listens on 127.0.0.1 only and
accepts only ``Host: 127.0.0.1`` / ``localhost`` (no DNS rebinding from a web page); request
bodies are capped at :data:`MAX_BODY_BYTES`. No request names a file or runs code: the routes
above are all there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import threading
import webbrowser
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import coins, dice, gmm
from .jobs import JobQueue
from .lanes import Lanes, default_lane_count

__all__ = ["create_app", "serve", "plotly_js_path", "MODELS", "MAX_BODY_BYTES", "MAX_COMPUTING"]

MAX_BODY_BYTES = 64 * 1024
#: panel and table requests computing at once (an edit's tables and the next edit's panels; a
#: third waits, and is dropped if the page has aborted it meanwhile)
MAX_COMPUTING = 2
#: the status of an answer to a client that has already gone (nginx's "client closed request")
CLIENT_GONE = 499
#: the views, by the model's registered name -> the module that answers its requests
VIEWS = {"three-coins": coins, "gaussian-mixture": gmm, "dice-hmm": dice}
#: other names of a view (the model's registered name where it differs)
ALIASES = {"gmm": "gaussian-mixture"}
MODELS = tuple(VIEWS)
STATIC = resources.files("latentzoo.inference.explore") / "static"


def plotly_js_path() -> Path:
    """plotly.min.js as bundled in the installed ``plotly`` Python package (its ``package_data``)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js is not where the plotly package keeps it ({path}); reinstall plotly")
    return path


def _error(status: int, error: BaseException) -> JSONResponse:
    return JSONResponse({"error": {"type": type(error).__name__, "message": str(error)}}, status_code=status)


async def _body(request: Request):
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise ValueError(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ValueError(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw or b"{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"the request body is not JSON: {error}") from None


async def _answer(compute, request: Request, gate: asyncio.Semaphore):
    """Await ``compute()`` (the JSON of an answer, computed in the worker processes: never on
    the event loop, so that one slow fit blocks no other request) and turn its errors into
    answers. Wait for a place among the computing requests first, and drop the request if its
    client has gone meanwhile."""
    try:
        async with gate:
            if await request.is_disconnected():
                return JSONResponse({"error": {"type": "Gone", "message": "the client went away"}}, status_code=CLIENT_GONE)
            return Response(await compute(), media_type="application/json")
    except (ValueError, TypeError) as error:
        return _error(400, error)
    except Exception as error:  # reported to the page; the server goes on
        return _error(500, error)


def create_app(allowed_hosts=("127.0.0.1", "localhost"), warm_up: bool = True, lanes: int | None = None) -> Starlette:
    """The app.

    Parameters
    ----------
    allowed_hosts : sequence of str
        The Host headers accepted (tests add ``"testserver"``).
    warm_up : bool
        Answer every panel of every view once at start-up (each view's ``warm_up``, in each
        worker process), before the server reports that it has started.
    lanes : int, optional
        Worker processes that compute the panels (:class:`.lanes.Lanes`); default: two, or one on
        a one-core machine. 0 computes them in the server's own process.
    """
    jobs = JobQueue()
    workers = Lanes(default_lane_count() if lanes is None else lanes, VIEWS.values(), warm_up=warm_up)
    gate = asyncio.Semaphore(MAX_COMPUTING)

    async def index(request: Request):
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    async def plotly_js(request: Request):
        return FileResponse(plotly_js_path(), media_type="text/javascript")

    def view_of(request: Request):
        model = request.path_params["model"]
        if model not in VIEWS:
            raise LookupError(f"no view {model!r}; available: {list(MODELS)}")
        return VIEWS[model]

    async def computed(request: Request, answer):
        """Answer with ``await answer(view, body)`` (JSON), ``view`` the path's view module."""
        try:
            view = view_of(request)
        except LookupError as error:
            return _error(404, error)
        try:
            body = await _body(request)
        except ValueError as error:
            return _error(400 if "JSON" in str(error) else 413, error)
        return await _answer(lambda: answer(view, body), request, gate)

    async def panel(request: Request):
        return await computed(request, lambda view, body: workers.panel(view, request.path_params["method"], body))

    async def edit(request: Request):
        return await computed(request, workers.edit)

    async def tables(request: Request):
        return await computed(request, workers.tables)

    async def table(request: Request):
        return await computed(request, lambda view, body: workers.table(view, request.path_params["method"], body))

    async def start_job(request: Request):
        method = request.path_params["method"]
        try:
            view = view_of(request)
        except LookupError as error:
            return _error(404, error)
        try:
            body = await _body(request)
            if method not in view.JOB_METHODS:
                raise ValueError(f"unknown job {method!r}; valid: {list(view.JOB_METHODS)}")
            view.parse_request(body)  # refuse bad input now, not minutes later in the job
        except (ValueError, TypeError) as error:
            return _error(400, error)
        try:
            job_id = jobs.submit(method, lambda b, progress: view.run_job(method, b, progress), body)
        except RuntimeError as error:
            return _error(429, error)
        return JSONResponse({"id": job_id, "state": "queued"}, status_code=202)

    async def job_status(request: Request):
        status = jobs.status(request.path_params["job_id"])
        if status is None:
            return _error(404, LookupError(f"no job {request.path_params['job_id']!r}"))
        return JSONResponse(coins._json(status))

    async def limits(request: Request):
        # the coins' own at the top level, as before the other views came
        return JSONResponse({"limits": coins.LIMITS, "defaults": coins.DEFAULTS, "models": list(MODELS),
                             "views": {name: {"limits": view.LIMITS, "defaults": view.DEFAULTS}
                                       for name, view in VIEWS.items()}})

    routes = [
        Route("/", index),
        Route("/static/plotly.min.js", plotly_js),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
        Route("/api/limits", limits),
        Route("/api/jobs/{job_id}", job_status),
        Route("/api/{model}/edit", edit, methods=["POST"]),
        Route("/api/{model}/tables", tables, methods=["POST"]),
        Route("/api/{model}/table/{method}", table, methods=["POST"]),
        Route("/api/{model}/jobs/{method}", start_job, methods=["POST"]),
        Route("/api/{model}/{method}", panel, methods=["POST"]),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        if warm_up and workers.count == 0:
            for view in VIEWS.values():
                await run_in_threadpool(view.warm_up)
        await workers.ready()  # the workers start (and warm up) before the server says it has
        yield
        jobs.shutdown()
        workers.shutdown()

    app = Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))],
                    lifespan=lifespan)
    app.state.jobs = jobs
    app.state.lanes = workers
    return app


def free_port() -> int:
    """A port nobody listens on at 127.0.0.1 now (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(model: str = "three-coins", port: int | None = None, open_browser: bool = True) -> int:
    """Serve the page on 127.0.0.1 until Ctrl-C; return the exit status.

    Parameters
    ----------
    model : str
        The view to open first (one of :data:`MODELS`).
    port : int, optional
        Default: a free port.
    open_browser : bool
        Open the page in the default browser (``webbrowser``) once the server listens.
    """
    import uvicorn

    model = ALIASES.get(model, model)
    if model not in MODELS:
        raise ValueError(f"explore has no view for {model!r}; available: {list(MODELS)}")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"--port must lie in 1..65535, got {port}")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/#{model}"
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    print(f"latentzoo explore: serving {url} (Ctrl-C stops)", file=sys.stderr, flush=True)

    def open_when_ready():
        for _ in range(200):
            if server.started:
                webbrowser.open(url)
                return
            threading.Event().wait(0.05)

    if open_browser:
        threading.Thread(target=open_when_ready, daemon=True).start()
    server.run()  # uvicorn handles SIGINT/SIGTERM: it stops accepting, finishes requests, returns
    return 0
