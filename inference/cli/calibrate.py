"""``latentzoo calibrate``: simulation-based calibration of several back-ends of one model.

::

    latentzoo calibrate three-coins --backends exact,gibbs,vb --out sbc-report
    latentzoo calibrate dice-hmm --backends gibbs,nuts --simulations 200 --jobs 2

Simulations run in worker processes (``--jobs``, default every available core) with a progress
bar per back-end; finished simulations are cached, so an interrupted run (Ctrl-C) resumes when
the same command is run again. ``--out DIR`` writes ``report.html``, one table and one
simulations CSV per back-end, the rank figures, and ``summary.csv``.
"""

from __future__ import annotations

from .input import UsageError, apply_backend_options, make_model, parse_pairs

__all__ = ["CALIBRATION_OPTIONS", "add_calibrate_parser", "cmd_calibrate"]

#: back-end options of ``latentzoo calibrate`` unless told otherwise. Ranks are taken from draws
#: thinned to their ESS, and a few hundred of them per simulation are plenty for 100-200
#: simulations (Talts et al. use 100), so Gibbs runs 2 chains x 500 draws after 200 tuning sweeps,
#: a fifth of the back-end's default 4 x (500 + 1000) sweeps; PyMC back-ends run their chains one
#: after the other in each worker process
CALIBRATION_OPTIONS = {
    "gibbs": {"chains": 2, "draws": 500, "tune": 200},
    "nuts": {"chains": 2, "draws": 1000, "tune": 1000},
    "pymc_gibbs": {"chains": 2, "draws": 1000, "tune": 1000},
}

EPILOG = """\
examples:
  latentzoo calibrate three-coins                                   exact, em, vb and gibbs, 100 simulations
  latentzoo calibrate three-coins --backends exact,gibbs,vb --out sbc/
  latentzoo calibrate dice-hmm --backends gibbs,nuts --simulations 200 --jobs 2
  latentzoo calibrate three-coins --backends gibbs --option gibbs.draws=2000 --json

Each simulation draws the parameters from the prior, simulates a data set of the model's example size
(--size), fits it and ranks the true values among the posterior draws. An interrupted run resumes from
its cache when run again with the same arguments (--no-cache: run everything again).
"""


def add_calibrate_parser(commands, common, formatter) -> None:
    """Register the ``calibrate`` subcommand on ``commands`` (argparse sub-parsers)."""
    sub = commands.add_parser(
        "calibrate", parents=[common], help="simulation-based calibration of back-ends (is the posterior right?)",
        description="Simulation-based calibration: draw parameters from the prior, simulate data, fit each "
        "back-end, and test whether the true values' ranks among the posterior draws are uniform.",
        epilog=EPILOG, formatter_class=formatter,
    )
    sub.add_argument("model", metavar="MODEL", help="model name, e.g. three-coins (see `latentzoo list`)")
    sub.add_argument("--backends", metavar="A,B,C",
                     help="comma-separated back-ends (default: every applicable hand-written one)")
    sub.add_argument("--simulations", type=int, default=100, metavar="N", help="simulations per back-end (default 100)")
    sub.add_argument("--size", metavar="SIZE",
                     help="data size per simulation, as model.simulate takes it (10, '(20, 5)', '[50, 50]'); "
                     "default: the size of the model's example data")
    sub.add_argument("--param", metavar="KEY=VALUE", action="append", help="model constructor argument (repeatable)")
    sub.add_argument("--option", metavar="BACKEND.KEY=VALUE", action="append",
                     help="option for one back-end, e.g. --option gibbs.draws=2000 (repeatable)")
    sub.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    sub.add_argument("--jobs", type=int, default=None, metavar="N", help="worker processes (default: every core)")
    sub.add_argument("--out", metavar="DIR", help="write report.html, tables, figures and summary.csv to DIR")
    sub.add_argument("--no-cache", action="store_true", help="run every simulation again instead of resuming")
    sub.add_argument("--json", action="store_true", help="print the per-back-end verdicts as JSON on stdout")
    sub.set_defaults(handler=cmd_calibrate)


def _backends(model, text) -> list[str]:
    from latentzoo.inference import BACKENDS, applicable_backends

    valid = applicable_backends(model)
    if text is None:
        return [name for name in valid if BACKENDS[name].library == "latentzoo"]
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError(f"--backends names no back-end; valid for {type(model).__name__}: {', '.join(valid)}")
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise UsageError(f"--backends {', '.join(unknown)} do not apply to {type(model).__name__}; valid: "
                         f"{', '.join(valid)}")
    return list(dict.fromkeys(names))


def _options(names, extra) -> dict:
    options = {name: dict(CALIBRATION_OPTIONS.get(name, {})) for name in names}
    apply_backend_options(options, extra, "calibrate", "gibbs.draws=2000")
    return options


def verdict_table(results):
    """One row per back-end: kind, calibrated (yes/no/n/a), worst p-value, failing quantities,
    failed simulations, median k-hat and time."""
    import pandas as pd

    from ..calibration.report import verdict

    rows = []
    for result in results:
        failing = result.table.index[~result.table["calibrated"].fillna(True)]
        rows.append({
            "backend": result.backend, "kind": result.kind, "calibrated": verdict(result),
            "worst_p_value": result.worst_p_value, "failing": ", ".join(failing),
            "simulations": len(result.simulations), "failed": result.n_failed,
            "median_khat": result.median_khat, "runtime_s": result.runtime_s,
        })
    return pd.DataFrame(rows)


def _rich_verdicts(table, title: str):
    from rich import box
    from rich.table import Table

    from .output import format_value

    view = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = ("backend", "kind", "calibrated", "worst_p_value", "failing", "failed", "median_khat", "runtime_s")
    for column in columns:
        view.add_column(column, justify="left" if column in ("backend", "kind", "failing") else "right")
    colour = {"yes": "green", "no": "red"}
    for _, row in table.iterrows():
        cells = [format_value(row[column]) for column in columns]
        verdict = row["calibrated"]
        cells[2] = f"[{colour[verdict]}]{verdict}[/]" if verdict in colour else verdict
        view.add_row(*cells)
    return view


def cmd_calibrate(args) -> int:
    import time

    from ..calibration.calibrate import calibrate
    from ..calibration.report import save
    from .output import make_console, print_json
    from .run import quiet_pymc

    model = make_model(args.model, parse_pairs(args.param, "--param"))
    names = _backends(model, args.backends)
    options = _options(names, parse_pairs(args.option, "--option"))
    size = None if args.size is None else parse_pairs([f"size={args.size}"], "--size")["size"]
    if args.simulations < 2:
        raise UsageError(f"--simulations must be at least 2, got {args.simulations}")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be a positive integer, got {args.jobs}")
    quiet_pymc(names, getattr(args, "debug", False))
    console = make_console(stderr=True)
    start = time.perf_counter()
    results = []
    for name in names:
        results.append(calibrate(model, name, n_simulations=args.simulations, data_size=size, random_seed=args.seed,
                                 n_jobs=args.jobs, cache=False if args.no_cache else None, progress=not args.json,
                                 **options[name]))
        if not args.json:
            console.print(results[-1].summary())
    table = verdict_table(results)
    report = None
    if args.out:
        report = save(results, args.out)
        table.to_csv(report.parent / "summary.csv", index=False)
    if args.json:
        print_json(table)
        return 0
    out = make_console()
    out.print(_rich_verdicts(table, f"calibration of {args.model}: {args.simulations} simulations per back-end"))
    out.print(f"[dim]total time {time.perf_counter() - start:.1f} s[/]")
    if report:
        out.print(f"report: [bold]{report}[/]")
    return 0
