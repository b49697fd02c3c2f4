"""``latentzoo demo``: every model on its default data, one HTML report per model and an index page.

The models run one after the other, or in worker processes (``--jobs``) that report each
back-end's progress to the parent through a queue.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import shutil
import sys
import time
from pathlib import Path

from ..comparison.reference import REFERENCE_NUTS
from .input import UsageError, comparison_options
from .output import StatusLines, make_console, print_comparison
from .run import configure_environment, quiet_pymc, run_comparison

__all__ = ["CALIBRATION_DIR", "DEMO_BACKENDS", "DEMO_OPTIONS", "QUICK_OPTIONS", "QUICK_REFERENCE_OPTIONS",
           "EXPLORE_SCREENSHOT", "THUMBNAIL_FIGURES", "calibration_links", "cmd_demo", "demo_order",
           "explore_section", "model_description", "render_demo_index", "report_thumbnail"]

#: ``demo --quick``: fewer draws everywhere (rough numbers, same pictures)
QUICK_OPTIONS = {
    "nuts": {"draws": 400, "tune": 400, "chains": 2},
    "pymc_gibbs": {"draws": 400, "tune": 400, "chains": 2},
    "gibbs": {"draws": 400, "tune": 200, "chains": 2},
    "exact": {"draws": 2000},
    "vb": {"draws": 500},
    "advi": {"draws": 500},
    "fullrank_advi": {"draws": 500},
}

#: ``demo`` (without --quick): the demo's back-ends on every model, with draws cut to what a first look
#: needs, so that the four models fit in a few minutes on two cores (``compare`` keeps the
#: longer DEFAULT_OPTIONS)
DEMO_OPTIONS = {
    "nuts": {"draws": 500, "tune": 500, "chains": 2},
    "pymc_gibbs": {"draws": 300, "tune": 300, "chains": 2},
    "gibbs": {"draws": 1000, "tune": 300, "chains": 2},
    "exact": {"draws": 2000},
}

#: the demo's back-ends (those that apply to each model): EM, both variational methods and both
#: samplers, plus the exact posterior. Each PyMC fit spends seconds rewriting and compiling its
#: graph even with a warm cache, so full-rank ADVI, find_MAP and PyMC's compound Gibbs (the slowest
#: sampler here) join only with ``demo --all-backends`` or in ``compare``.
DEMO_BACKENDS = ("em", "vb", "advi", "gibbs", "nuts", "exact")

#: ``demo --quick``: a shorter long-NUTS reference for models without an exact posterior
QUICK_REFERENCE_OPTIONS = {"draws": 1000, "tune": 1000, "chains": 2}

INDEX_TEMPLATE = "demo_index.html.j2"


@dataclasses.dataclass
class _DemoOutcome:
    """What one model's demo run hands back to the parent process (picklable)."""

    class_name: str
    report: str  # report.html, relative to the output directory
    summary: str
    printed: str  # the comparison table and summary, rendered for the parent's console
    seconds: float
    picture: str | None = None  # the index's thumbnail (a PNG of the report), relative to the output directory
    description: str = ""  # one line: what the model is (its docstring's first paragraph)


#: the report's figures (by name, saved as ``<name>.png``) the index may show as a model's
#: thumbnail, in order of preference: the model's own picture says what the model is about; the
#: densities and the forest plot are drawn for every model, so one is there whenever a back-end ran
THUMBNAIL_FIGURES = ("model", "densities", "forest")


def report_thumbnail(report: Path, out: Path) -> str | None:
    """The first of :data:`THUMBNAIL_FIGURES` that the save of a report wrote beside it.

    Parameters
    ----------
    report : pathlib.Path
        A saved ``report.html``.
    out : pathlib.Path
        The demo's output directory, which the returned path is relative to.

    Returns
    -------
    str or None
        The PNG's path relative to ``out`` (the index links it as it is, so the page needs
        nothing outside ``out``); None when no figure was written (every back-end failed).
    """
    for name in THUMBNAIL_FIGURES:
        png = report.parent / f"{name}.png"
        if png.is_file():
            return png.relative_to(out).as_posix()
    return None


def model_description(model) -> str:
    """The first paragraph of the model class's docstring, on one line (the index's summary of
    what the model is; the model says it, the demo does not)."""
    doc = inspect.getdoc(type(model)) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _demo_plan(name: str, quick: bool, all_backends: bool, chains_in_parallel: bool = True):
    """(model, data, back-end names, reference, options, notes) of one model in the demo.

    The model declares its part (:class:`~latentzoo.models.core.protocols.Demo`): its data
    (``default_data``), and in ``demo_plan`` the back-ends the demo leaves out, with the reason
    printed in the notes (even with ``--all-backends``), and options that replace the demo's
    defaults. ``chains_in_parallel=False`` runs PyMC's chains one after the other (``cores=1``): when the
    models already run in parallel worker processes, a process per chain only adds start-up
    time (PyMC's chain processes each import PyMC and load the compiled model: seconds).
    """
    from latentzoo.models import MODELS

    model = MODELS[name]()
    data = model.default_data()
    plan = model.demo_plan()
    defaults = QUICK_OPTIONS if quick else DEMO_OPTIONS
    defaults = {backend: {**defaults.get(backend, {}), **plan.options.get(backend, {})}
                for backend in {*defaults, *plan.options}}
    skips = dict(plan.skips)
    # the model's choice; else "auto" takes the exact posterior as the reference where the model has
    # one, and where the demo leaves it out, the long NUTS run stands in
    reference = plan.reference or (REFERENCE_NUTS if "exact" in skips else "auto")
    names, reference, options = comparison_options(model, None, reference, defaults, None, {})
    if not all_backends:
        names = [backend for backend in names if backend in DEMO_BACKENDS or backend == reference]
    notes = []
    for skipped, reason in skips.items():
        if skipped in names:
            names.remove(skipped)
            notes.append(f"{skipped} left out of the demo: {reason}")
    options = {key: value for key, value in options.items() if key in names}
    # the demo's long-NUTS reference (GMM) is 2 x 1000 draws, cached on disk after the first run
    options.setdefault("nuts_reference", dict(QUICK_REFERENCE_OPTIONS))
    if not chains_in_parallel:
        for backend in ("nuts", "pymc_gibbs", "nuts_reference"):
            if backend in options:
                options[backend]["cores"] = 1
    return model, data, names, reference, options, notes


def _demo_one(name: str, args, out: Path, callback=None, width: int | None = None, terminal: bool = False,
              chains_in_parallel: bool = True):
    """Compare one model on its default data and save its report; the printed part is returned
    as text so that a worker process can hand it to the parent."""
    import io

    from rich.console import Console

    start = time.perf_counter()
    model, data, names, reference, options, notes = _demo_plan(name, args.quick, args.all_backends,
                                                               chains_in_parallel)
    quiet_pymc(names, getattr(args, "debug", False))
    result = run_comparison(model, data, names, reference, options, args.seed, show_status=callback is None,
                            cache=not args.no_cache, callback=callback)
    report = result.save(out / name, overwrite=getattr(args, "overwrite", False),
                         docs_url=getattr(args, "docs_url", None))
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 120, force_terminal=terminal, highlight=False)
    console.rule(f"{name}: {type(model).__name__} on its default data")
    for note in notes:
        console.print(f"[dim]{note}[/]")
    print_comparison(result, f"{name}: {len(result.idatas)} back-ends", console)
    return _DemoOutcome(type(model).__name__, report.relative_to(out).as_posix(), result.summary(),
                        buffer.getvalue(), time.perf_counter() - start, picture=report_thumbnail(report, out),
                        description=model_description(model))


_demo_events = None  # a worker's queue to the parent's progress display


def _demo_worker_init(queue) -> None:
    global _demo_events
    _demo_events = queue
    configure_environment()


def _demo_worker(name: str, args, out: Path, width: int | None, terminal: bool) -> _DemoOutcome:
    def callback(backend, event, detail):
        _demo_events.put((name, backend, event, detail))

    return _demo_one(name, args, out, callback, width, terminal, chains_in_parallel=False)


def demo_order(models: dict) -> list[str]:
    """The demo's model names (``models``: name -> model), costliest first by each model's
    ``demo_plan().cost_seconds``, so that two workers finish at about the same time; models
    whose cost is not measured go first (their cost is unknown), in the given order."""
    def key(name):
        cost = models[name].demo_plan().cost_seconds
        return -math.inf if cost is None else -float(cost)

    return sorted(models, key=key)



def _run_demo_parallel(ordered: list[str], args, out: Path, jobs: int) -> dict[str, _DemoOutcome]:
    """One worker process per model (``ordered``: costliest first, :func:`demo_order`), ``jobs``
    at a time, with a live line per back-end.

    Why processes: most of a model's time is PyTensor rewriting and compiling its graphs, which
    is single-threaded and holds the GIL, so two models in two processes use both cores.
    """
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    console = make_console()
    # spawn, not fork: the parent may already hold PyTensor/BLAS state that forked children inherit badly
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    outcomes = {}
    with StatusLines(make_console(stderr=True)) as status, ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_demo_worker_init, initargs=(events,)
    ) as pool:
        pending = {pool.submit(_demo_worker, name, args, out, console.width, console.is_terminal): name
                   for name in ordered}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            while True:
                try:
                    model_name, backend, event, detail = events.get_nowait()
                except queue_module.Empty:
                    break
                status(f"{model_name}: {backend}", event, detail)
            for future in done:
                name = pending.pop(future)
                outcome = future.result()  # a worker's exception surfaces here, with its message
                outcomes[name] = outcome
                status.progress.console.print(outcome.printed, end="", markup=False, highlight=False)
    return outcomes


def _index_template():
    """The index page's jinja2 template, autoescaped: model names and summaries are text, not HTML."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("latentzoo.inference", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(INDEX_TEMPLATE)


#: where the index looks for each model's calibration report, relative to the demo's --out
CALIBRATION_DIR = "calibration"


def calibration_links(out: Path, names: list[str]) -> dict[str, dict]:
    """Per model: its calibration report under ``out/calibration/<model>/`` when one was made
    (``latentzoo calibrate MODEL --out OUT/calibration/MODEL``), else the command that makes it.

    Calibration (simulation-based, :func:`latentzoo.inference.calibration.calibrate`) costs minutes per model,
    so the demo links its reports rather than running it.

    Returns
    -------
    dict
        Model name -> ``{"report": relative path or None, "command": str}``.
    """
    links = {}
    for name in names:
        report = out / CALIBRATION_DIR / name / "report.html"
        command = f"latentzoo calibrate {name} --out {out / CALIBRATION_DIR / name}"
        links[name] = {"report": str(report.relative_to(out)) if report.is_file() else None, "command": command}
    return links


#: the explorer's screenshot in a source checkout (tests/test_explore_browser.py takes it); an
#: installed package without docs/ shows the index's explorer section without it
EXPLORE_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "_static" / "explore.png"


def explore_section(out: Path, screenshot: Path | None = None) -> dict:
    """What the index says about ``latentzoo explore``: the models it has a live view for
    (:data:`latentzoo.inference.explore.server.MODELS`), and its screenshot, copied into ``out``
    so that the page shows it offline and from any copy of the directory.

    Parameters
    ----------
    out : pathlib.Path
        The demo's output directory (exists).
    screenshot : pathlib.Path, optional
        The PNG to copy (default :data:`EXPLORE_SCREENSHOT`); when it is missing, no picture.

    Returns
    -------
    dict
        ``{"models": [model names], "picture": "explore.png" or None}`` (the picture relative to ``out``).
    """
    # lazy: the server module imports Starlette, which nothing else in the demo needs
    from latentzoo.inference.explore.server import MODELS as EXPLORABLE

    source = EXPLORE_SCREENSHOT if screenshot is None else Path(screenshot)
    picture = None
    if source.is_file():
        shutil.copyfile(source, out / "explore.png")
        picture = "explore.png"
    return {"models": list(EXPLORABLE), "picture": picture}


def render_demo_index(outcomes: dict, all_backends: bool, quick: bool, template=None, calibration=None,
                      docs=None, explore=None) -> str:
    """The demo's index page: per model, a thumbnail of its report's main figure linking to the
    report, its name, a one-line description and the comparison's summary.

    Parameters
    ----------
    outcomes : dict
        Model name -> its demo outcome, in the page's order; each outcome has the attributes
        ``report`` (report.html's path relative to the index), ``class_name`` and ``summary``,
        and optionally ``picture`` (a PNG's path relative to the index, or None) and
        ``description`` (one line).
    all_backends, quick : bool
        The ``demo`` flags, which the page's introduction names.
    template : jinja2.Template, optional
        The loaded ``demo_index.html.j2`` (loaded here when None).
    calibration : dict, optional
        :func:`calibration_links`: each model's calibration report, or the command to make it.
    docs : dict, optional
        Model name -> ``{"lesson": url or None, "api": url or None}``
        (:meth:`latentzoo.inference.docs_links.DocsSite.links`): the model's lesson and API page.
    explore : dict, optional
        :func:`explore_section`: the models ``latentzoo explore`` has a view for, and its
        screenshot; without it the page has no explorer section.

    Returns
    -------
    str
        The HTML page, every model-supplied text escaped.
    """
    template = template or _index_template()
    rows = {name: {"report": outcome.report, "class_name": outcome.class_name, "summary": outcome.summary,
                   "picture": getattr(outcome, "picture", None), "description": getattr(outcome, "description", "")}
            for name, outcome in outcomes.items()}
    return template.render(outcomes=rows, all_backends=all_backends, quick=quick, calibration=calibration or {},
                           docs=docs or {}, explore=explore)


def _check_out(out: Path, names: list[str], args) -> None:
    """Before anything runs: every model's report directory can take its files, and the index
    page is not an earlier demo's unless --overwrite (see :func:`latentzoo.inference.comparison.report.save`)."""
    from latentzoo.inference.comparison.report import check_directory

    overwrite = getattr(args, "overwrite", False)
    for name in names:
        _, _, backends, _, _, _ = _demo_plan(name, args.quick, args.all_backends)
        check_directory(out / name, backends, overwrite=overwrite)
    if (out / "index.html").exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} already holds a demo (index.html); pass --overwrite to replace it, "
                              "or choose another --out")


def cmd_demo(args) -> int:
    """``latentzoo demo``: compare every model that ships default data and write the reports."""
    from latentzoo.models import MODELS
    from latentzoo.models.core.protocols import Demo

    from ..docs_links import docs_site

    out = Path(args.out)
    try:
        site = docs_site(getattr(args, "docs_url", None))
    except TypeError as error:
        raise UsageError(f"--docs-url: {error}") from None
    console = make_console()
    # a general-purpose model (CategoricalHMM) has no seed data set of its own
    models = {name: model for name, model in ((name, cls()) for name, cls in MODELS.items()) if isinstance(model, Demo)}
    names = list(models)
    jobs = args.jobs if args.jobs is not None else min(2, os.cpu_count() or 1)
    if jobs < 1:
        raise UsageError(f"--jobs must be a positive integer, got {jobs}")
    jobs = min(jobs, len(names))
    _check_out(out, names, args)
    # loaded before the models run, so that a missing jinja2 or template fails in a second, not after minutes
    template = _index_template()
    start = time.perf_counter()
    if jobs == 1:
        outcomes = {}
        for name in names:
            outcome = _demo_one(name, args, out, width=console.width, terminal=console.is_terminal)
            sys.stdout.write(outcome.printed)
            outcomes[name] = outcome
    else:
        outcomes = _run_demo_parallel(demo_order(models), args, out, jobs)
    index = out / "index.html"
    docs = {name: site.links(models[name]) for name in names} if site is not None else {}
    page = render_demo_index({name: outcomes[name] for name in names}, args.all_backends, args.quick, template,
                             calibration_links(out, names), docs, explore_section(out))
    index.write_text(page, encoding="utf-8")
    per_model = ", ".join(f"{name} {outcomes[name].seconds:.0f} s" for name in names)
    console.print(f"\n[dim]{len(names)} models in {time.perf_counter() - start:.0f} s with {jobs} "
                  f"job{'s' if jobs > 1 else ''} ({per_model})[/]")
    console.print(f"report: [bold]{index}[/]  (open it in a browser)")
    return 0
