"""The ``latentzoo`` command's contract: exit statuses and machine-readable output.

Exit status (``latentzoo.inference.cli.commands.main``, the console script's entry point):

* 0 -- success; ``compare`` also when some back-ends failed (the failure is part of the answer,
  listed on stderr), as documented;
* 2 -- bad input: argparse's own usage errors, an unknown model, back-end, ``--option`` or
  ``--param``, a bad option value, data the model rejects, a missing data file; one line on
  stderr (argparse: its usage line and the error), no traceback unless ``--debug``;
* 1 -- a failure while running: a back-end that raises during ``fit``, files that cannot be
  written;
* 130 -- interrupted (``KeyboardInterrupt``, i.e. Ctrl-C), with one line on stderr.

With ``--json`` every error (exit status 1, 2 or 130) is also one JSON object on stdout,
``{"error": {"type": ..., "message": ...}}``; when every back-end of ``compare`` fails, the object
also holds the ``failures`` and the exit status is 1.

``fit --json`` and ``compare --json`` print strict JSON (no ``NaN`` tokens: a missing value is
``null``) whose every number is the Python table's (``comparison_table`` / ``compare`` on the
same fit with the same seed), to the last bit: the same seed gives the same draws. Timing
columns differ between two runs and are checked for consistency instead.

Everything runs in-process through ``main(argv)`` with hand-written back-ends (fast).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from latentzoo.inference import BACKENDS, ConvergenceWarning, compare, fit
from latentzoo.inference.cli import main
from latentzoo.inference.comparison.compare import TABLE_COLUMNS, comparison_table
from latentzoo.models import MODELS

from .conftest import SEED_FLIPS

NILE_CSV = Path(__file__).resolve().parents[1] / "models" / "data" / "nile.csv"

#: columns that measure time: different in every run
TIMING = ("compile_s", "run_s", "runtime_s", "ess_bulk_per_s")
TEXT = ("backend", "parameter", "kind", "objective_name", "reference")


# -- helpers ---------------------------------------------------------------------------------------
def strict_json(text: str):
    """Parse ``text`` as standard JSON: NaN and Infinity are not JSON, so they fail here."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def assert_records_equal_table(records: list, table) -> None:
    """JSON records equal the table: every row, every column, NaN as null, timings consistent."""
    assert len(records) == len(table)
    for record, (_, row) in zip(records, table.iterrows()):
        assert list(record) == list(TABLE_COLUMNS)
        where = f"{row['backend']} {row['parameter']}"
        for column in TEXT:
            assert record[column] == row[column], (column, where)
        assert record["converged"] is bool(row["converged"]), where
        assert record["n_iter"] == int(row["n_iter"]) and isinstance(record["n_iter"], int), where
        for column in TABLE_COLUMNS:
            if column in TEXT or column in ("converged", "n_iter"):
                continue
            value, expected = record[column], float(row[column])
            if math.isnan(expected):
                assert value is None, (column, where, value)
                continue
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (column, where, value)
            if column in TIMING:
                assert value >= 0, (column, where)
            else:
                # the same seed gives the same draws: the numbers are the same to the last bit
                assert float(value) == expected, (column, where, value, expected)
        if record["ess_bulk_per_s"] is not None:
            assert record["ess_bulk_per_s"] == pytest.approx(record["ess_bulk"] / record["run_s"], rel=1e-12)


def _failing(backend: str, error: BaseException):
    """The back-end with a ``run`` that raises ``error`` (same signature, so the same options)."""
    spec = BACKENDS[backend]

    @functools.wraps(spec.run)
    def run(*args, **kwargs):
        raise error

    return dataclasses.replace(spec, run=run)


# -- exit status 0 and the JSON output ---------------------------------------------------------------
FIT_CASES = [
    ("three-coins", None, "em", []),
    ("three-coins", None, "vb", ["--option", "draws=300"]),
    ("three-coins", None, "gibbs", ["--option", "draws=150", "--option", "tune=50", "--option", "chains=2"]),
    ("three-coins", None, "exact", ["--option", "draws=400"]),
    # element-indexed parameters, and tiny numbers (EM's transition and emission probabilities on
    # the boundary): the JSON must keep every digit, not a fixed number of decimals
    ("categorical-hmm", "0 1 2 2 1 1 2 0 0", "em", []),
    ("categorical-hmm", "0 1 2 2 1 1 2 0 0", "gibbs", ["--option", "draws=100", "--option", "tune=50"]),
    ("dice-hmm", None, "exact", ["--option", "draws=300"]),
]


@pytest.mark.parametrize("model_name, data, backend, extra", FIT_CASES,
                         ids=[f"{m}-{b}" for m, _, b, _ in FIT_CASES])
def test_fit_json_equals_the_python_table(model_name, data, backend, extra, capsys):
    argv = ["fit", model_name, "--backend", backend, "--seed", "11", "--json", *extra]
    if data is not None:
        argv += ["--data", data]
    assert main(argv) == 0
    out = capsys.readouterr().out
    records = strict_json(out)

    model = MODELS[model_name]()
    options = {extra[i + 1].split("=")[0]: int(extra[i + 1].split("=")[1]) for i in range(0, len(extra), 2)}
    if "progressbar" in BACKENDS[backend].options:
        options["progressbar"] = False  # as the command does with --json
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short runs; the command warns on stderr too
        idata = fit(model, model.default_data() if data is None else data, backend=backend, random_seed=11,
                    **options)
    table = comparison_table(model, {backend: idata})
    assert_records_equal_table(records, table)
    if model_name == "categorical-hmm" and backend == "em":
        tiny = table[(table["mean"] > 0) & (table["mean"] < 1e-6)]
        assert len(tiny), "the case is meant to hold numbers below 1e-6"


def test_fit_reads_a_time_series_file_and_keeps_its_times(tmp_path, capsys):
    # LocalLevel declares TIME_SERIES: a (year, volume) table is the values indexed by the years,
    # which become the results' time coordinate; a missing volume is a missing step
    import pandas as pd
    import xarray as xr

    rows = [line.split(",") for line in NILE_CSV.read_text().splitlines()[1:]]
    years, flow = np.array([int(r[0]) for r in rows]), np.array([float(r[1]) for r in rows])
    flow[3] = np.nan
    path = tmp_path / "nile.csv"
    path.write_text("year,volume\n" + "".join(f"{y},{'NA' if np.isnan(v) else v}\n" for y, v in zip(years, flow)))
    assert main(["fit", "local-level", "--data", str(path), "--backend", "em", "--seed", "11", "--json",
                 "--out", str(tmp_path / "em.nc")]) == 0
    records = strict_json(capsys.readouterr().out)
    model = MODELS["local-level"]()
    idata = fit(model, pd.Series(flow, index=years), backend="em", random_seed=11, progressbar=False)
    assert_records_equal_table(records, comparison_table(model, {"em": idata}))
    with xr.open_datatree(tmp_path / "em.nc") as saved:
        np.testing.assert_array_equal(saved.posterior["time"].values, years)
        np.testing.assert_array_equal(saved.observed_data["y"].values, flow)

    # one column: the steps are counted from 0, and the numbers are the same
    values = tmp_path / "volume.txt"
    values.write_text("\n".join("NA" if np.isnan(v) else str(v) for v in flow))
    assert main(["fit", "local-level", "--data", str(values), "--backend", "em", "--seed", "11", "--json"]) == 0
    untimed = [{key: value for key, value in record.items() if key not in TIMING} for record in records]
    assert [{key: value for key, value in record.items() if key not in TIMING}
            for record in strict_json(capsys.readouterr().out)] == untimed

    # neither one column nor two, and times out of order: exit 2, naming the file
    for content, words in (("1,2,3\n4,5,6\n", "two columns (time, value)"), ("1871,1120\n1870,1160\n1872,963\n",
                                                                              "strictly increasing")):
        path.write_text(content)
        assert main(["fit", "local-level", "--data", str(path), "--backend", "em"]) == 2
        err = capsys.readouterr().err
        assert words in err and "nile.csv" in err, err


def test_compare_json_equals_compare(capsys):
    """``compare --json`` with --draws and per-back-end options: the same table as ``compare``
    with those options and seed (the reference keeps its own draws)."""
    argv = ["compare", "three-coins", "--data", SEED_FLIPS, "--backends", "em,vb,gibbs", "--seed", "5",
            "--draws", "200", "--option", "gibbs.tune=100", "--option", "gibbs.chains=2", "--json"]
    assert main(argv) == 0
    records = strict_json(capsys.readouterr().out)
    options = {"vb": {"draws": 200}, "gibbs": {"draws": 200, "tune": 100, "chains": 2}}
    result = compare(MODELS["three-coins"](), SEED_FLIPS, backends=["em", "vb", "gibbs"], random_seed=5,
                     progressbar=False, options=options)
    assert [r["backend"] for r in records][::4] == ["exact", "em", "vb", "gibbs"]
    assert_records_equal_table(records, result.table)


def test_the_json_check_catches_a_wrong_or_rounded_number(capsys):
    """Power of the comparison above: a number rounded to 10 decimals, or off in the 12th digit,
    or a NaN printed as a number, fails it; a NaN token fails the strict parse."""
    assert main(["fit", "categorical-hmm", "--data", "0 1 2 2 1 1 2 0 0", "--backend", "em", "--seed", "11",
                 "--json"]) == 0
    records = strict_json(capsys.readouterr().out)
    model = MODELS["categorical-hmm"]()
    idata = fit(model, "0 1 2 2 1 1 2 0 0", backend="em", random_seed=11, progressbar=False)
    table = comparison_table(model, {"em": idata})
    tiny = int(np.flatnonzero((table["mean"] > 0) & (table["mean"] < 1e-6))[0])
    rounded = [dict(record) for record in records]
    rounded[tiny]["mean"] = round(rounded[tiny]["mean"], 10)
    off = [dict(record) for record in records]
    off[2]["mean"] *= 1 + 1e-12  # trans_mat[0, 0], about 0.83
    filled = [dict(record) for record in records]
    filled[0]["sd"] = 0.0
    for wrong in (rounded, off, filled):
        with pytest.raises(AssertionError):
            assert_records_equal_table(wrong, table)
    with pytest.raises(ValueError, match="NaN"):
        strict_json('[{"sd": NaN}]')


def test_fit_text_output_and_list(capsys):
    assert main(["fit", "three-coins", "--backend", "em"]) == 0
    out = capsys.readouterr().out
    assert "em on three-coins" in out and "heads_prob" in out and "converged: True" in out
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in MODELS)


# -- exit status 2: bad input ------------------------------------------------------------------------
ARGPARSE_ERRORS = [
    (["fit", "three-coins", "--backend", "em", "--bogus"], "unrecognized arguments: --bogus"),
    (["fit", "three-coins"], "required: --backend"),
    (["fit", "three-coins", "--backend", "em", "--seed", "x"], "--seed"),
    (["no-such-command"], "invalid choice"),
    ([], "required: COMMAND"),
]


@pytest.mark.parametrize("argv, words", ARGPARSE_ERRORS, ids=[" ".join(a) or "nothing" for a, _ in ARGPARSE_ERRORS])
def test_usage_errors_from_argparse_exit_2(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: latentzoo") and words in err.strip().splitlines()[-1]
    assert "Traceback" not in err


BAD_INPUT = [
    (["fit", "no-such-model", "--backend", "em"], "unknown model 'no-such-model'"),
    (["fit", "three-coins", "--backend", "bogus"], "unknown backend 'bogus'"),
    (["fit", "three-coins", "--backend", "em", "--option", "bogus=1"], "unknown option(s) ['bogus']"),
    (["fit", "three-coins", "--backend", "em", "--option", "tol=-1"], "tol"),
    (["fit", "three-coins", "--backend", "em", "--option", "tol"], "key=value"),
    (["fit", "three-coins", "--backend", "em", "--param", "bogus=1"], "unknown --param bogus"),
    (["fit", "three-coins", "--backend", "em", "--out", "result.csv"], ".nc"),
    (["fit", "three-coins", "--data", "1121", "--backend", "em"], "0 and 1"),
    (["compare", "three-coins", "--data", "1121", "--backends", "em"], "0 and 1"),
    (["fit", "three-coins", "--data", "/no/such/file.csv", "--backend", "em"], "file.csv"),
    (["fit", "categorical-hmm", "--backend", "em"], "--data"),  # a model without example data
    # data the exact back-end cannot enumerate: rejected when it starts, with the way out
    (["fit", "dice-hmm", "--backend", "exact", "--data", " ".join(["1", "2", "3", "4", "5", "6"] * 6)], "gibbs"),
    (["compare", "three-coins", "--backends", "em,bogus"], "bogus"),
    (["compare", "three-coins", "--draws", "0"], "--draws"),
    (["compare", "three-coins", "--data", "/no/such/flips.npy"], "flips.npy"),
    (["compare", "three-coins", "--option", "nuts.chains"], "key=value"),
    (["compare", "three-coins", "--option", "chains=2"], "backend.key=value"),
    (["compare", "three-coins", "--backends", "em", "--option", "vb.draws=5"], "'vb' is not among"),
    (["compare", "three-coins", "--backends", "em", "--reference", "bogus"], "bogus"),
    (["compare", "three-coins", "--backends", "em", "--option", "em.bogus=1"], "bogus"),
    (["demo", "--jobs", "0"], "--jobs"),
]


@pytest.mark.parametrize("argv, words", BAD_INPUT, ids=[" ".join(a[:4]) + f" ({w})" for a, w in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("latentzoo: error:") and words in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys):
    assert main(["--debug", "compare", "three-coins", "--draws", "0"]) == 2
    assert "Traceback" in capsys.readouterr().err


# -- exit status 1: a failure while running ----------------------------------------------------------
@pytest.mark.parametrize("error", [RuntimeError("sampler <b>&\" broke"), FloatingPointError("overflow in exp")])
def test_a_failing_backend_in_fit_exits_1(error, monkeypatch, capsys):
    monkeypatch.setitem(BACKENDS, "em", _failing("em", error))
    assert main(["fit", "three-coins", "--backend", "em"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"latentzoo: error: {type(error).__name__}: {error}"
    assert main(["--debug", "fit", "three-coins", "--backend", "em"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_a_failing_backend_in_compare_is_reported_and_exits_0(monkeypatch, capsys):
    """compare keeps going: the failure is on stderr, the other back-ends' rows are printed."""
    monkeypatch.setitem(BACKENDS, "vb", _failing("vb", RuntimeError("no convergence today")))
    assert main(["compare", "three-coins", "--backends", "em,vb", "--json"]) == 0
    captured = capsys.readouterr()
    assert {record["backend"] for record in strict_json(captured.out)} == {"exact", "em"}
    assert "vb failed: RuntimeError: no convergence today" in captured.err


def test_files_that_cannot_be_written_exit_1(monkeypatch, tmp_path, capsys):
    import xarray as xr

    from latentzoo.inference.comparison import report

    def full_disk(self, path, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", full_disk)
    # the figures cost seconds and are not what is under test
    monkeypatch.setattr(report, "figures", lambda comparison, errors=None: {})
    out = tmp_path / "report"
    assert main(["compare", "three-coins", "--backends", "em", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("latentzoo: error: SaveError:") and "disk full" in err
    assert (out / "report.html").is_file()  # everything else was written
    assert main(["fit", "three-coins", "--backend", "em", "--out", str(tmp_path / "em.nc")]) == 1
    assert "disk full" in capsys.readouterr().err


# -- interrupted ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["fit", "three-coins", "--backend", "em"],
                                  ["compare", "three-coins", "--backends", "em,vb"],
                                  ["compare", "three-coins", "--backends", "em,vb", "--json"]])
def test_interrupt_exits_130(argv, monkeypatch, capsys):
    """Ctrl-C inside a back-end stops the whole command (compare does not record it as that
    back-end's failure and go on)."""
    monkeypatch.setitem(BACKENDS, "em", _failing("em", KeyboardInterrupt()))
    ran = []
    real_vb = BACKENDS["vb"]

    @functools.wraps(real_vb.run)
    def vb_run(*args, **kwargs):
        ran.append("vb")
        return real_vb.run(*args, **kwargs)

    monkeypatch.setitem(BACKENDS, "vb", dataclasses.replace(real_vb, run=vb_run))
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == "latentzoo: interrupted"
    assert ran == [] and "Traceback" not in captured.err
    if "--json" in argv:
        # no half-written table: the one JSON object on stdout is the error
        assert strict_json(captured.out) == {"error": {"type": "KeyboardInterrupt", "message": "interrupted"}}
