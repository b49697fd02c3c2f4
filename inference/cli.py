"""The ``latentzoo`` command: list models and back-ends, fit one, compare several, run the demo.

Examples
--------
::

    latentzoo list
    latentzoo fit three-coins --data 1111110000 --backend em
    latentzoo compare three-coins --data 1111110000 --out report/
    latentzoo demo --out latentzoo-report --quick

This is the only module that prints; everything it shows comes from the library's return values.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import logging
import os
import sys
import time
import traceback
from pathlib import Path

__all__ = ["main", "build_parser", "DEFAULT_OPTIONS", "QUICK_OPTIONS"]

PROG = "latentzoo"

#: back-end options the command line uses unless told otherwise: the whole three-coin comparison
#: then takes well under a minute on two cores with a warm PyTensor cache
DEFAULT_OPTIONS = {
    "nuts": {"draws": 1000, "tune": 1000, "chains": 2},
    "pymc_gibbs": {"draws": 1000, "tune": 1000, "chains": 2},
    "gibbs": {"draws": 1000, "tune": 500, "chains": 4},
}
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

#: back-ends ``demo --all-backends`` leaves out, with the reason it prints: PyMC's explicit-assignment Gibbs
#: evaluates the whole model for every point's proposal, O(N^2) per sweep (minutes for the
#: 300 blob points); ``latentzoo compare gmm --backends pymc_gibbs`` still runs it
DEMO_SKIPS = {
    "gmm": {"pymc_gibbs": "explicit assignments cost O(N^2) per sweep in PyMC; "
                          "run `latentzoo compare gmm --backends pymc_gibbs` to see it"},
}

#: ``demo --quick``: a shorter long-NUTS reference for models without an exact posterior
QUICK_REFERENCE_OPTIONS = {"draws": 1000, "tune": 1000, "chains": 2}

TABLE_VIEW = ("backend", "parameter", "mean", "sd", "hdi", "error_in_ref_sd", "sd_ratio", "ess_bulk", "r_hat",
              "runtime_s")


class UsageError(ValueError):
    """Bad command-line input (exit status 2)."""


# -- environment ------------------------------------------------------------------------------
def _configure_environment() -> None:
    """Point PyTensor at the persistent compile cache and matplotlib at a screenless back-end.

    Must run before pymc/pytensor are imported: PyTensor reads PYTENSORRC once, at import.
    """
    if "PYTENSORRC" not in os.environ:
        rc = Path.home() / ".cache" / "latentzoo" / "pytensorrc"
        if rc.is_file():
            os.environ["PYTENSORRC"] = str(rc)
    os.environ.setdefault("MPLBACKEND", "Agg")


# -- parsing helpers ----------------------------------------------------------------------------
def _parse_value(text: str):
    """``"4"`` -> 4, ``"(1, 2)"`` -> (1, 2), ``"True"`` -> True; anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_pairs(pairs, flag: str) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``."""
    result = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} expects key=value, got {pair!r}")
        result[key] = _parse_value(value.strip())
    return result


def _make_model(name: str, params: dict):
    from latentzoo.models import MODELS

    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}; models: {', '.join(MODELS)} (see `latentzoo list`)")
    cls = MODELS[name]
    if dataclasses.is_dataclass(cls):
        valid = [field.name for field in dataclasses.fields(cls) if field.init]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise UsageError(f"unknown --param {', '.join(unknown)} for {name}; valid: {', '.join(valid)}")
    return cls(**params)


DATA_SUFFIXES = (".csv", ".txt", ".tsv", ".dat", ".npy")


def load_data(text: str | None, model):
    """Data from ``--data``: None (the model's default data), a file path, or inline text.

    Files: ``.npy`` (numpy.load), otherwise text read with numpy.loadtxt (comma- or
    whitespace-separated). A one-line text file without separators (``1111110000``) is passed
    to the model as text, like inline data.
    """
    import numpy as np

    if text is None:
        return model.default_data()
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix == ".npy":
            return model.check_data(np.load(path, allow_pickle=False))
        content = path.read_text().strip()
        lines = [line.strip() for line in content.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if len(lines) == 1 and not any(sep in lines[0] for sep in (",", " ", "\t", ";")):
            return model.check_data(lines[0])
        delimiter = "," if "," in content else None
        try:
            array = np.loadtxt(path, delimiter=delimiter, ndmin=1)
        except ValueError as error:
            raise UsageError(f"could not read numbers from {str(path)!r}: {error}") from None
        return model.check_data(array)
    if path.is_dir():
        raise UsageError(f"--data {text!r} is a directory, not a data file")
    if path.suffix in DATA_SUFFIXES or os.sep in text:
        raise FileNotFoundError(f"--data file {text!r} does not exist")
    return model.check_data(text)


def _check_out_file(out):
    if out is not None and Path(out).suffix != ".nc":
        raise UsageError(f"--out must name a NetCDF file ending in .nc, got {out!r}")


# -- output helpers ----------------------------------------------------------------------------
def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped output is not bound by a terminal's width; rich's default of 80 would truncate tables
    width = None if stream.isatty() or "COLUMNS" in os.environ else 120
    return Console(stderr=stderr, highlight=False, width=width)


def _fmt(value, digits: int = 3) -> str:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits + 1}g}"
    return str(value)


def _rich_table(table, title: str, columns=TABLE_VIEW):
    """A rich Table of a comparison table (a pandas DataFrame), showing ``columns``."""
    import math

    from rich.table import Table

    from rich import box

    headers = {"error_in_ref_sd": "err/ref_sd", "ess_bulk": "ess", "runtime_s": "time_s", "hdi": "94% hdi",
               "sd_ratio": "sd/ref"}
    view = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        left = column in ("backend", "parameter")
        view.add_column(headers.get(column, column), justify="left" if left else "right", no_wrap=True)
    previous = None
    for _, row in table.iterrows():
        cells = []
        for column in columns:
            if column == "backend":
                text = row["backend"] if row["backend"] != previous else ""
                if text and not row["converged"]:
                    text = f"[yellow]{text}*[/]"
                cells.append(text)
            elif column == "hdi":
                interval = f"[{_fmt(row['hdi_3%'])}, {_fmt(row['hdi_97%'])}]"
                cells.append("–" if math.isnan(row["hdi_3%"]) else interval)
            elif column == "error_in_ref_sd":
                value = row[column]
                text = "–" if math.isnan(value) else f"{value:+.2f}"
                cells.append(f"[red]{text}[/]" if not math.isnan(value) and abs(value) > 1 else text)
            elif column == "sd_ratio":
                value = row[column]
                text = "–" if math.isnan(value) else f"{value:.2f}"
                cells.append(f"[yellow]{text}[/]" if not math.isnan(value) and value < 0.8 else text)
            elif column == "ess_bulk":
                cells.append("–" if math.isnan(row[column]) else f"{row[column]:.0f}")
            elif column == "runtime_s":
                cells.append(f"{row[column]:.2f}")
            else:
                cells.append(_fmt(row[column]))
        if previous is not None and row["backend"] != previous:
            view.add_section()
        view.add_row(*cells)
        previous = row["backend"]
    return view


def _print_json(table) -> None:
    sys.stdout.write(table.to_json(orient="records", indent=2, double_precision=10))
    sys.stdout.write("\n")


class _StatusLines:
    """Callback for :func:`compare`: a spinner line per back-end with its elapsed time."""

    def __init__(self, console):
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(finished_text="[green]✓[/]"), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.tasks = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def __call__(self, backend, event, detail):
        if event == "start":
            self.tasks[backend] = self.progress.add_task(f"running {backend}...", total=1)
        elif event == "done":
            self.progress.update(self.tasks[backend], completed=1, description=f"{backend} ({detail:.1f} s)")
        else:
            self.progress.update(self.tasks[backend], completed=1, description=f"[red]{backend} failed[/]")


# -- commands ---------------------------------------------------------------------------------
def cmd_list(args) -> int:
    from rich.table import Table

    from latentzoo.inference import BACKENDS, applicable_backends
    from latentzoo.models import MODELS

    console = _console()
    for name, cls in MODELS.items():
        model = cls()
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table = Table(title=f"[bold]{name}[/] ({cls.__name__}): {doc}", title_justify="left")
        table.add_column("backend")
        table.add_column("kind")
        table.add_column("description")
        table.add_column("options")
        for backend in applicable_backends(model):
            spec = BACKENDS[backend]
            table.add_row(backend, spec.kind, spec.description, ", ".join(spec.options))
        console.print(table)
        fields = ""
        if dataclasses.is_dataclass(cls):
            fields = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls))
        if fields:
            console.print(f"  model parameters (--param key=value): {fields}\n")
    console.print(f"Example: [bold]latentzoo compare {next(iter(MODELS))}[/] (its default data, every back-end)")
    return 0


def cmd_fit(args) -> int:
    from latentzoo.inference import BACKENDS, fit
    from latentzoo.inference.compare import comparison_table

    _check_out_file(args.out)
    model = _make_model(args.model, _parse_pairs(args.param, "--param"))
    data = load_data(args.data, model)
    options = _parse_pairs(args.option, "--option")
    spec = BACKENDS.get(args.backend)
    if spec is not None and "progressbar" in spec.options and "progressbar" not in options:
        options["progressbar"] = not args.json  # progress bars would corrupt JSON on stdout
    _quiet_pymc([args.backend], getattr(args, "debug", False))
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = fit(model, data, backend=args.backend, random_seed=args.seed, **options)
    messages = list(dict.fromkeys(str(record.message) for record in caught
                                  if not issubclass(record.category, (DeprecationWarning, FutureWarning))))
    table = comparison_table(model, {args.backend: idata})
    if args.out:
        idata.to_netcdf(args.out)
    if args.json:
        _print_json(table)
    else:
        console = _console()
        attrs = idata.posterior.attrs
        console.print(_rich_table(table, f"{args.backend} on {args.model}", ("parameter", "mean", "sd", "hdi")))
        console.print(
            f"converged: {bool(attrs.get('converged'))}   iterations: {attrs.get('n_iter')}   "
            f"time: {float(attrs.get('runtime_s', float('nan'))):.2f} s   seed: {attrs.get('random_seed')}"
        )
        for message in messages:
            console.print(f"[yellow]warning:[/] {message}")
        if args.out:
            console.print(f"saved the result (xarray.DataTree) to {args.out}")
    for message in messages if args.json else ():
        print(f"{PROG}: warning: {message}", file=sys.stderr)
    return 0


def _quiet_pymc(backends, debug: bool) -> None:
    """Silence PyMC's INFO messages ("Initializing NUTS...") unless --debug.

    PyMC sets its logger to INFO when it is imported, so the level is set after importing it,
    and only when a PyMC back-end will run (importing PyMC costs seconds).
    """
    from latentzoo.inference import BACKENDS

    uses_pymc = any(BACKENDS[name].library == "pymc" for name in backends if name in BACKENDS)
    if debug or not uses_pymc:
        return
    import pymc  # noqa: F401

    logging.getLogger("pymc").setLevel(logging.WARNING)


def _comparison_options(model, backends, reference, defaults, draws, extra):
    """Per back-end options for the back-ends that will run: defaults, --draws, then --option.

    Options for the long NUTS reference (``--option nuts_reference.draws=4000``) are returned
    under the key ``nuts_reference``; :func:`_run_comparison` passes them as ``reference_options``.
    """
    from latentzoo.inference import BACKENDS
    from latentzoo.inference.compare import resolve_backends

    names, reference = resolve_backends(model, backends, reference)
    options = {name: dict(defaults.get(name, {})) for name in names}
    if draws is not None:
        # the reference keeps its own (larger) number of draws: it is the yardstick
        for name in names:
            if name in BACKENDS and name != reference and "draws" in BACKENDS[name].options:
                options[name]["draws"] = draws
    for key, value in extra.items():
        backend, dot, option = key.partition(".")
        if not dot or not option:
            raise UsageError(f"--option for compare is backend.key=value (e.g. nuts.chains=4), got {key!r}")
        if backend not in names:
            raise UsageError(f"--option {key}: {backend!r} is not among the compared back-ends {names}")
        options[backend][option] = value
    return names, reference, {name: value for name, value in options.items() if value}


def _run_comparison(model, data, names, reference, options, seed, show_status: bool, cache=True, callback=None):
    from latentzoo.inference import compare
    from latentzoo.inference.reference import REFERENCE_NUTS

    options = dict(options)
    reference_options = options.pop(REFERENCE_NUTS, None)
    names = [name for name in names if name != REFERENCE_NUTS or name == reference]
    settings = dict(backends=names, reference=reference, random_seed=seed, options=options, progressbar=False,
                    reference_options=reference_options, cache=cache)
    if not show_status:
        return compare(model, data, callback=callback, **settings)
    with _StatusLines(_console(stderr=True)) as status:
        return compare(model, data, callback=status, **settings)


# rough widths of the table's columns, and the order in which a narrow terminal drops them
_COLUMN_WIDTHS = {"backend": 15, "parameter": 14, "mean": 8, "sd": 8, "hdi": 18, "error_in_ref_sd": 12,
                  "sd_ratio": 7, "ess_bulk": 7, "r_hat": 7, "runtime_s": 8}
_DROP_ORDER = ("runtime_s", "r_hat", "ess_bulk", "sd_ratio", "sd")


def _fitting_columns(width: int, columns=TABLE_VIEW) -> tuple[str, ...]:
    columns = list(columns)
    for column in _DROP_ORDER:
        if sum(_COLUMN_WIDTHS.get(c, 8) for c in columns) <= width:
            break
        columns.remove(column)
    return tuple(columns)


def _print_comparison(result, title: str, console=None) -> None:
    console = console or _console()
    columns = _fitting_columns(console.width)
    console.print(_rich_table(result.table, title, columns))
    if len(columns) < len(TABLE_VIEW):
        console.print(f"[dim](narrow terminal: left out {', '.join(c for c in TABLE_VIEW if c not in columns)}; "
                      "see --json or the saved table.csv)[/]")
    if any(not ok for ok in result.table["converged"]):
        console.print("[yellow]*[/] did not converge by its own criterion")
    for backend, message in result.failures.items():
        console.print(f"[red]failed[/] {backend}: {message}")
    for backend, messages in result.warnings.items():
        for message in messages:
            # back-ends usually name themselves in their warnings already
            shown = message if message.startswith(f"{backend}:") else f"{backend}: {message}"
            console.print(f"[yellow]warning[/] {shown}")
    console.print()
    console.print(result.summary())


def cmd_compare(args) -> int:
    model = _make_model(args.model, _parse_pairs(args.param, "--param"))
    data = load_data(args.data, model)
    reference = None if args.reference.lower() == "none" else args.reference
    if args.draws is not None and args.draws < 1:
        raise UsageError(f"--draws must be a positive integer, got {args.draws}")
    names, reference, options = _comparison_options(
        model, args.backends, reference, DEFAULT_OPTIONS, args.draws, _parse_pairs(args.option, "--option")
    )
    _quiet_pymc(names, getattr(args, "debug", False))
    start = time.perf_counter()
    result = _run_comparison(model, data, names, reference, options, args.seed, show_status=not args.json,
                             cache=not args.no_cache)
    report = result.save(args.out) if args.out else None
    if args.json:
        _print_json(result.table)
        for backend, message in result.failures.items():
            print(f"{PROG}: warning: {backend} failed: {message}", file=sys.stderr)
    else:
        _print_comparison(result, f"{args.model}: {len(result.idatas)} back-ends, reference {result.reference}")
        if result.reference_info:
            _console().print(f"[dim]reference: {result.reference_info}[/]")
        console = _console()
        console.print(f"[dim]total time {time.perf_counter() - start:.1f} s[/]")
        if report:
            console.print(f"report: [bold]{report}[/]")
    return 0


@dataclasses.dataclass
class _DemoOutcome:
    """What one model's demo run hands back to the parent process (picklable)."""

    class_name: str
    report: str  # report.html, relative to the output directory
    summary: str
    printed: str  # the comparison table and summary, rendered for the parent's console
    seconds: float


def _demo_plan(name: str, quick: bool, all_backends: bool, chains_in_parallel: bool = True):
    """(model, data, back-end names, reference, options, notes) of one model in the demo.

    ``chains_in_parallel=False`` runs PyMC's chains one after the other (``cores=1``): when the
    models already run in parallel worker processes, a process per chain only adds start-up
    time (PyMC's chain processes each import PyMC and load the compiled model: seconds).
    """
    from latentzoo.models import MODELS

    model = MODELS[name]()
    data = model.default_data()
    defaults = QUICK_OPTIONS if quick else DEMO_OPTIONS
    names, reference, options = _comparison_options(model, None, "auto", defaults, None, {})
    if not all_backends:
        names = [backend for backend in names if backend in DEMO_BACKENDS or backend == reference]
    notes = []
    for skipped, reason in DEMO_SKIPS.get(name, {}).items():
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
    _quiet_pymc(names, getattr(args, "debug", False))
    result = _run_comparison(model, data, names, reference, options, args.seed, show_status=callback is None,
                             cache=not args.no_cache, callback=callback)
    report = result.save(out / name)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 120, force_terminal=terminal, highlight=False)
    console.rule(f"{name}: {type(model).__name__} on its default data")
    for note in notes:
        console.print(f"[dim]{note}[/]")
    _print_comparison(result, f"{name}: {len(result.idatas)} back-ends", console)
    return _DemoOutcome(type(model).__name__, str(report.relative_to(out)), result.summary(),
                        buffer.getvalue(), time.perf_counter() - start)


_demo_events = None  # a worker's queue to the parent's progress display


def _demo_worker_init(queue) -> None:
    global _demo_events
    _demo_events = queue
    _configure_environment()


def _demo_worker(name: str, args, out: Path, width: int | None, terminal: bool) -> _DemoOutcome:
    def callback(backend, event, detail):
        _demo_events.put((name, backend, event, detail))

    return _demo_one(name, args, out, callback, width, terminal, chains_in_parallel=False)


#: the demo's models, costliest first, so that two workers finish at about the same time
#: (measured warm with two workers: gmm 52 s, dice-hmm 48 s, niw-gaussian 22 s, three-coins 14 s)
_DEMO_ORDER = ("gmm", "dice-hmm", "niw-gaussian", "three-coins")


def _run_demo_parallel(names: list[str], args, out: Path, jobs: int) -> dict[str, _DemoOutcome]:
    """One worker process per model, ``jobs`` at a time, with a live line per back-end.

    Why processes: most of a model's time is PyTensor rewriting and compiling its graphs, which
    is single-threaded and holds the GIL, so two models in two processes use both cores.
    """
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    console = _console()
    # spawn, not fork: the parent may already hold PyTensor/BLAS state that forked children inherit badly
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    ordered = sorted(names, key=lambda name: _DEMO_ORDER.index(name) if name in _DEMO_ORDER else -1)
    outcomes = {}
    with _StatusLines(_console(stderr=True)) as status, ProcessPoolExecutor(
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


def cmd_demo(args) -> int:
    import html

    from latentzoo.models import MODELS
    from latentzoo.models.protocols import ExampleData

    out = Path(args.out)
    console = _console()
    # a general-purpose model (CategoricalHMM) has no seed data set of its own
    names = [name for name, cls in MODELS.items() if isinstance(cls(), ExampleData)]
    jobs = args.jobs if args.jobs is not None else min(2, os.cpu_count() or 1)
    if jobs < 1:
        raise UsageError(f"--jobs must be a positive integer, got {jobs}")
    jobs = min(jobs, len(names))
    start = time.perf_counter()
    if jobs == 1:
        outcomes = {}
        for name in names:
            outcome = _demo_one(name, args, out, width=console.width, terminal=console.is_terminal)
            sys.stdout.write(outcome.printed)
            outcomes[name] = outcome
    else:
        outcomes = _run_demo_parallel(names, args, out, jobs)
    items = "".join(
        f"<li><a href='{html.escape(outcomes[name].report)}'><b>{html.escape(name)}</b> "
        f"({html.escape(outcomes[name].class_name)})</a><p>{html.escape(outcomes[name].summary)}</p></li>"
        for name in names
    )
    chosen = "every applicable back-end" if args.all_backends else \
        "EM, VB, ADVI, Gibbs, NUTS and the exact posterior where they apply"
    index = out / "index.html"
    index.write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>latentzoo demo</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;}li{margin:1em 0}</style>"
        f"</head><body><h1>latentzoo demo</h1><p>Every model on its default data: {chosen}"
        f"{' (quick settings)' if args.quick else ''}.</p><ul>{items}</ul></body></html>\n",
        encoding="utf-8",
    )
    per_model = ", ".join(f"{name} {outcomes[name].seconds:.0f} s" for name in names)
    console.print(f"\n[dim]{len(names)} models in {time.perf_counter() - start:.0f} s with {jobs} "
                  f"job{'s' if jobs > 1 else ''} ({per_model})[/]")
    console.print(f"report: [bold]{index}[/]  (open it in a browser)")
    return 0


# -- parser -----------------------------------------------------------------------------------
EPILOG = """\
examples:
  latentzoo list                                          models and their back-ends
  latentzoo fit three-coins --backend em                  EM on the seed data 1111110000
  latentzoo fit three-coins --data 1111110000 --backend nuts --option chains=2
  latentzoo fit three-coins --param pi=0.5 --data flips.csv --backend vb --out vb.nc
  latentzoo compare three-coins                           every back-end, exact posterior as reference
  latentzoo compare three-coins --backends em,vb,nuts --out report/
  latentzoo compare three-coins --json > table.json
  latentzoo demo --out latentzoo-report --quick

DATA is inline text such as 1111110000, or a .csv/.txt file (comma- or whitespace-separated,
one trial per row) or a .npy file. Without --data the model's default (seed) data are used.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    formatter = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks and PyMC's log messages")
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Compare EM, variational inference and MCMC on the same latent-variable model.",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show full tracebacks and PyMC's log messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    listing = commands.add_parser("list", parents=[common], help="list models and their applicable back-ends",
                                  description="List every model and the back-ends that apply to it.")
    listing.set_defaults(handler=cmd_list)

    def model_arguments(sub):
        sub.add_argument("model", metavar="MODEL", help="model name, e.g. three-coins (see `latentzoo list`)")
        sub.add_argument("--data", metavar="DATA", help="inline data (1111110000) or a .csv/.txt/.npy file; "
                         "default: the model's seed data")
        sub.add_argument("--param", metavar="KEY=VALUE", action="append",
                         help="model constructor argument, e.g. --param pi=0.5 or --param 'p_prior=(2, 2)' "
                         "(repeatable)")
        sub.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
        sub.add_argument("--json", action="store_true", help="print the result table as JSON records on stdout")

    fitting = commands.add_parser(
        "fit", parents=[common], help="fit one back-end and print a posterior summary",
        description="Fit MODEL with one back-end and print the posterior mean, sd and 94% HDI of every "
        "parameter and derived quantity.",
        epilog="examples:\n  latentzoo fit three-coins --backend em --option n_init=20\n"
        "  latentzoo fit three-coins --data 1111110000 --backend nuts --option chains=2 --out nuts.nc\n",
        formatter_class=formatter,
    )
    model_arguments(fitting)
    fitting.add_argument("--backend", required=True, metavar="B",
                         help="back-end name (em, vb, gibbs, exact, nuts, ...; see `latentzoo list`)")
    fitting.add_argument("--option", metavar="KEY=VALUE", action="append",
                         help="back-end option, e.g. --option draws=2000 --option mle=True (repeatable)")
    fitting.add_argument("--out", metavar="FILE.nc", help="save the result (an xarray.DataTree) as NetCDF")
    fitting.set_defaults(handler=cmd_fit)

    comparing = commands.add_parser(
        "compare", parents=[common], help="run several back-ends and compare them to a reference",
        description="Fit MODEL with several back-ends, relabel exchangeable labels, and compare every "
        "back-end's posterior with the reference's (exact where tractable, else NUTS). A back-end that "
        "fails is reported, not fatal.",
        epilog="examples:\n  latentzoo compare three-coins --data 1111110000 --out report/\n"
        "  latentzoo compare three-coins --backends em,vb,gibbs --reference exact\n"
        "  latentzoo compare three-coins --option nuts.chains=4 --draws 2000 --json\n\n"
        "defaults: " + "; ".join(f"{b} {o}" for b, o in DEFAULT_OPTIONS.items()) + "\n",
        formatter_class=formatter,
    )
    model_arguments(comparing)
    comparing.add_argument("--backends", metavar="A,B,C", help="comma-separated back-ends (default: all applicable)")
    comparing.add_argument("--reference", default="auto", metavar="R",
                           help="reference: auto (exact if tractable, else nuts_reference, a long NUTS run "
                           "cached on disk), a back-end name, or none")
    comparing.add_argument("--draws", type=int, metavar="N",
                           help="draws for every back-end with a draws option, except the reference")
    comparing.add_argument("--option", metavar="BACKEND.KEY=VALUE", action="append",
                           help="option for one back-end, e.g. --option nuts.chains=4 (repeatable)")
    comparing.add_argument("--out", metavar="DIR", help="save report.html, table.csv, figures and one .nc per back-end")
    comparing.add_argument("--no-cache", action="store_true",
                           help="run the long NUTS reference again instead of reusing a cached one")
    comparing.set_defaults(handler=cmd_compare)

    demo = commands.add_parser(
        "demo", parents=[common], help="every model on its seed data with EM, VI and MCMC; HTML reports",
        description="Run every model on its default data with EM, VB, ADVI, Gibbs, NUTS and the exact "
        "posterior (where they apply; --all-backends for every one) and write one report per model plus "
        "an index.html.",
        formatter_class=formatter,
    )
    demo.add_argument("--out", default="latentzoo-report", metavar="DIR",
                      help="output directory (default latentzoo-report)")
    demo.add_argument("--quick", action="store_true", help="fewer draws: faster, rougher numbers")
    demo.add_argument("--all-backends", action="store_true",
                      help="every applicable back-end (adds fullrank_advi, map and pymc_gibbs; several minutes "
                      "more); by default em, vb, advi, gibbs, nuts and exact")
    demo.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    demo.add_argument("--jobs", type=int, default=None, metavar="N",
                      help="models run in N worker processes at once (default: 2, or 1 on a one-core machine)")
    demo.add_argument("--no-cache", action="store_true",
                      help="run the long NUTS references again instead of reusing cached ones")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``latentzoo`` console script; returns the exit status.

    0 success, 1 a failure while running, 2 bad input (also for argparse usage errors).
    """
    _configure_environment()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse already reported
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    debug = getattr(args, "debug", False)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`latentzoo compare ... --json | head`); as the Python docs advise,
        # point stdout at devnull so that the interpreter's final flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the command line reports; --debug shows where
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
