"""The ``latentzoo`` command: list models and back-ends, fit one, compare several, run the demo.

Examples
--------
::

    latentzoo list
    latentzoo fit three-coins --data 1111110000 --backend em
    latentzoo compare three-coins --data 1111110000 --out report/
    latentzoo demo --out latentzoo-report --quick

This module holds the argument parser, :func:`main` and the ``list``, ``fit`` and ``compare``
commands; ``demo`` is in :mod:`.cli_demo`, reading the command line in :mod:`.cli_input`, terminal
output in :mod:`.cli_output`, and running the library in :mod:`.cli_run`. The cli* modules are the
only ones that print; everything they show comes from the library's return values.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback

# only the standard library and the cli* modules at import: configure_environment must run
# before anything imports PyTensor
from .calibrate import add_calibrate_parser

# importable from here as before the split (examples/ reads the demo's options from this module;
# tests patch the demo module as ``main.demo``)
from .demo import DEMO_BACKENDS, DEMO_OPTIONS, QUICK_OPTIONS, QUICK_REFERENCE_OPTIONS, cmd_demo  # noqa: F401
from .input import (
    DATA_SUFFIXES,  # noqa: F401
    UsageError,
    check_out_file,
    comparison_options,
    load_data,
    make_model,
    parse_pairs,
)
from .output import (
    TABLE_VIEW,  # noqa: F401
    make_console,
    print_comparison,
    print_json,
    print_json_error,
    rich_table,
    save_netcdf,
)
from .run import configure_environment, quiet_pymc, run_comparison

__all__ = ["main", "build_parser", "DEFAULT_OPTIONS", "QUICK_OPTIONS"]

PROG = "latentzoo"

#: back-end options the command line uses unless told otherwise: the whole three-coin comparison
#: then takes well under a minute on two cores with a warm PyTensor cache
DEFAULT_OPTIONS = {
    "nuts": {"draws": 1000, "tune": 1000, "chains": 2},
    "pymc_gibbs": {"draws": 1000, "tune": 1000, "chains": 2},
    "gibbs": {"draws": 1000, "tune": 500, "chains": 4},
}


# -- commands ---------------------------------------------------------------------------------
def cmd_list(args) -> int:
    from latentzoo.inference import BACKENDS, applicable_backends
    from latentzoo.models import MODELS
    from rich.table import Table

    console = make_console()
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
    from latentzoo.inference.comparison.compare import comparison_table

    check_out_file(args.out)
    model = make_model(args.model, parse_pairs(args.param, "--param"))
    data = load_data(args.data, model)
    options = parse_pairs(args.option, "--option")
    spec = BACKENDS.get(args.backend)
    if spec is not None and "progressbar" in spec.options and "progressbar" not in options:
        options["progressbar"] = not args.json  # progress bars would corrupt JSON on stdout
    quiet_pymc([args.backend], getattr(args, "debug", False))
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = fit(model, data, backend=args.backend, random_seed=args.seed, per_observation=args.per_observation,
                    **options)
    messages = list(dict.fromkeys(str(record.message) for record in caught
                                  if not issubclass(record.category, (DeprecationWarning, FutureWarning))))
    table = comparison_table(model, {args.backend: idata})
    if args.out:
        save_netcdf(idata, args.out)
    if args.json:
        print_json(table)
    else:
        console = make_console()
        attrs = idata.posterior.attrs
        console.print(rich_table(table, f"{args.backend} on {args.model}", ("parameter", "mean", "sd", "hdi")))
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


def cmd_compare(args) -> int:
    from latentzoo.inference.comparison.report import check_directory

    model = make_model(args.model, parse_pairs(args.param, "--param"))
    data = load_data(args.data, model)
    reference = None if args.reference.lower() == "none" else args.reference
    if args.draws is not None and args.draws < 1:
        raise UsageError(f"--draws must be a positive integer, got {args.draws}")
    names, reference, options = comparison_options(
        model, args.backends, reference, DEFAULT_OPTIONS, args.draws, parse_pairs(args.option, "--option")
    )
    if args.out:
        # before the run: minutes of fitting must not end in a directory that cannot take the files
        check_directory(args.out, names, overwrite=args.overwrite)
    quiet_pymc(names, getattr(args, "debug", False))
    start = time.perf_counter()
    result = run_comparison(model, data, names, reference, options, args.seed, show_status=not args.json,
                            cache=not args.no_cache, per_observation=args.per_observation)
    report = result.save(args.out, overwrite=args.overwrite) if args.out else None
    if not result.idatas:  # every back-end failed: the report says so, and the exit status too
        if args.json:
            print_json_error("AllBackendsFailed", result.summary(), failures=result.failures,
                             report=str(report) if report else None)
        else:
            print_comparison(result, f"{args.model}: every back-end failed")
            if report:
                make_console().print(f"report: [bold]{report}[/]")
        print(f"{PROG}: error: every back-end failed ({', '.join(result.failures)})", file=sys.stderr)
        return 1
    if args.json:
        print_json(result.table)
        for backend, message in result.failures.items():
            print(f"{PROG}: warning: {backend} failed: {message}", file=sys.stderr)
    else:
        print_comparison(result, f"{args.model}: {len(result.idatas)} back-ends, reference {result.reference}")
        console = make_console()
        if result.reference_info:
            console.print(f"[dim]reference: {result.reference_info}[/]")
        console.print(f"[dim]total time {time.perf_counter() - start:.1f} s[/]")
        if report:
            console.print(f"report: [bold]{report}[/]")
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

DATA is inline text such as 1111110000 (passed to the model as it is), or a .csv/.tsv/.txt file
(comma-, semicolon- or whitespace-separated, one trial per row, an optional header row naming the
columns, # comments) or a .npy file. Without --data the model's default (seed) data are used.

exit status: 0 success (compare: also when some back-ends failed), 1 a failure while running
(compare: every back-end failed), 2 bad input (arguments, data, paths, permissions), 130
interrupted. With --json, an error is a JSON object {"error": {"type": ..., "message": ...}} on
stdout.
"""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, keeping its error message for ``--json`` (argparse prints it and exits)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        exit_ = SystemExit(2)
        exit_.usage_error = message
        raise exit_


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    formatter = argparse.RawDescriptionHelpFormatter
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks and PyMC's log messages")
    parser = _Parser(
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
        sub.add_argument("--json", action="store_true", help="print the result table as JSON records on stdout "
                         "(an error as a JSON object {\"error\": {\"type\", \"message\"}})")
        sub.add_argument("--per-observation", default="auto", choices=("auto", "full", "lazy", "summary"),
                         help="pointwise log-likelihood and latent posteriors in the result: auto (full up to "
                         "1e7 numbers, else lazy), full, lazy (computed when read) or summary (totals only; "
                         "no LOO)")

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
    comparing.add_argument("--out", metavar="DIR", help="save report.html, table.csv, figures and one .nc per back-end "
                           "(checked before the run; a directory holding an earlier comparison needs --overwrite)")
    comparing.add_argument("--overwrite", action="store_true",
                           help="replace an earlier comparison in --out (only the files it lists in its "
                           "latentzoo-manifest.json are removed)")
    comparing.add_argument("--no-cache", action="store_true",
                           help="run the long NUTS reference again instead of reusing a cached one")
    comparing.set_defaults(handler=cmd_compare)

    demo_parser = commands.add_parser(
        "demo", parents=[common], help="every model on its seed data with EM, VI and MCMC; HTML reports",
        description="Run every model on its default data with EM, VB, ADVI, Gibbs, NUTS and the exact "
        "posterior (where they apply; --all-backends for every one) and write one report per model plus "
        "an index.html.",
        formatter_class=formatter,
    )
    demo_parser.add_argument("--out", default="latentzoo-report", metavar="DIR",
                      help="output directory (default latentzoo-report)")
    demo_parser.add_argument("--overwrite", action="store_true",
                      help="replace the reports of an earlier demo in --out")
    demo_parser.add_argument("--quick", action="store_true", help="fewer draws: faster, rougher numbers")
    demo_parser.add_argument("--all-backends", action="store_true",
                      help="every applicable back-end (adds fullrank_advi, map, pymc_gibbs, smc, laplace, pathfinder and svgd; several minutes "
                      "more); by default em, vb, advi, gibbs, nuts and exact")
    demo_parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    demo_parser.add_argument("--jobs", type=int, default=None, metavar="N",
                      help="models run in N worker processes at once (default: 2, or 1 on a one-core machine)")
    demo_parser.add_argument("--no-cache", action="store_true",
                      help="run the long NUTS references again instead of reusing cached ones")
    demo_parser.add_argument("--docs-url", default=None, metavar="URL",
                      help="the docs site the index and reports link each model's lesson and API page on "
                      "(default: $LATENTZOO_DOCS_URL, else docs/_build/html of a source checkout that built "
                      "it, else the package's Documentation URL)")
    demo_parser.set_defaults(handler=cmd_demo)
    add_calibrate_parser(commands, common, formatter)
    exploring = commands.add_parser(
        "explore", parents=[common], help="a live page on 127.0.0.1: edit the data and priors, watch the methods",
        description="Serve a local teaching page (127.0.0.1 only) on which the data and the priors are edited "
        "and the exact posterior, EM, VB and Gibbs redraw; NUTS and ADVI run in the background. Ctrl-C stops.",
        formatter_class=formatter,
    )
    exploring.add_argument("model", metavar="MODEL", nargs="?", default="three-coins",
                           help="the view to open: three-coins (default), gaussian-mixture (or gmm), dice-hmm")
    exploring.add_argument("--port", type=int, default=None, metavar="N", help="port (default: a free one)")
    exploring.add_argument("--no-browser", action="store_true", help="do not open a browser")
    exploring.set_defaults(handler=cmd_explore)
    return parser


def cmd_explore(args) -> int:
    # imported here: Starlette and uvicorn load only for this command
    from latentzoo.inference.explore.server import serve

    return serve(args.model, port=args.port, open_browser=not args.no_browser)


#: errors in what the user gave (arguments, data, paths, permissions): exit status 2
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
               NotADirectoryError)


def main(argv=None) -> int:
    """Entry point of the ``latentzoo`` console script; returns the exit status.

    0 success, 1 a failure while running, 2 bad input (also for argparse usage errors, missing
    files, paths one cannot write, and bad values the library refuses), 130 interrupted. With
    ``--json``, every error is also printed on stdout as ``{"error": {"type": ..., "message": ...}}``.
    """
    configure_environment()
    tokens = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in tokens
    parser = build_parser()
    try:
        args = parser.parse_args(tokens)
    except SystemExit as exit_:  # --help, or a usage error argparse already reported
        status = int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
        if status and as_json:
            print_json_error("UsageError", getattr(exit_, "usage_error", "invalid arguments (see stderr)"))
        return status
    debug = getattr(args, "debug", False)

    def report(error, status: int, shown: str) -> int:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: {shown}", file=sys.stderr)
        if as_json:
            print_json_error(type(error).__name__, str(error) or shown)
        return status

    try:
        return args.handler(args)
    except KeyboardInterrupt as error:
        return report(error, 130, "interrupted")
    except BrokenPipeError:
        # the reader went away (`latentzoo compare ... --json | head`); as the Python docs advise,
        # point stdout at devnull so that the interpreter's final flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except USER_ERRORS as error:
        return report(error, 2, f"error: {error}")
    except Exception as error:  # the command line reports; --debug shows where
        return report(error, 1, f"error: {type(error).__name__}: {error}")


if __name__ == "__main__":
    sys.exit(main())
