"""Issue 13, nothing lost: compare's arguments, a comparison in which every back-end failed, saving
over an earlier comparison, the reference cache's checks, lock and writes, and the command line's
paths, data files and errors.

Everything runs with hand-written back-ends (EM, VB, Gibbs, exact) or with exact draws standing in
for NUTS, so nothing here compiles a PyMC model.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import multiprocessing
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from latentzoo.inference import BACKENDS, compare, fit
from latentzoo.inference.comparison import reference as reference_module
from latentzoo.inference.comparison import report as report_module
from latentzoo.inference.cli import main
from latentzoo.inference.comparison.compare import comparison_table
from latentzoo.inference.comparison.reference import ReferenceCacheWarning, reference_nuts
from latentzoo.inference.comparison.report import MANIFEST, check_directory
from latentzoo.models import DiceHMM, GaussianMixture, NIWGaussian, ThreeCoins
from latentzoo.models.gaussian.data import GaussianObservations

from .conftest import SEED_FLIPS


def strict_json(text: str):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _failing(backend: str, error: BaseException):
    """The back-end with a ``run`` that raises ``error`` (same signature, so the same options)."""
    spec = BACKENDS[backend]

    @functools.wraps(spec.run)
    def run(*args, **kwargs):
        raise error

    return dataclasses.replace(spec, run=run)


@pytest.fixture
def runs(monkeypatch):
    """Counts the back-end runs (em, vb, gibbs, exact), which run as usual."""
    calls = []

    def counting(name, spec):
        @functools.wraps(spec.run)  # the same signature, so the same options
        def run(*args, **kwargs):
            calls.append(name)
            return spec.run(*args, **kwargs)

        return dataclasses.replace(spec, run=run)

    for name in ("em", "vb", "gibbs", "exact"):
        monkeypatch.setitem(BACKENDS, name, counting(name, BACKENDS[name]))
    return calls


@pytest.fixture
def no_figures(monkeypatch):
    """Figures cost seconds and are not what these tests are about: one small figure per sampler,
    named as the real ones (``traces-<name>``), so that stale figure files can still be seen."""
    import matplotlib.pyplot as plt

    def figures(comparison, errors=None):
        drawn = {}
        for name in comparison.idatas:
            if BACKENDS.get(name) is not None and BACKENDS[name].kind == "sampler":
                figure, _ = plt.subplots(figsize=(1, 1))
                drawn[f"traces-{name}"] = figure
        return drawn

    monkeypatch.setattr(report_module, "figures", figures)


# -- 1. compare checks its own arguments before anything runs ------------------------------------------
BAD_ARGUMENTS = [
    ({"random_seed": -1}, ValueError, "random_seed"),
    ({"random_seed": 2**63}, ValueError, "random_seed must be below 2\\*\\*63"),
    ({"random_seed": "7"}, TypeError, "random_seed"),
    ({"random_seed": 1.5}, TypeError, "random_seed"),
    ({"random_seed": True}, TypeError, "random_seed"),
    ({"reference_options": {"draws": 0}}, ValueError, r"reference_options\['draws'\]"),
    ({"reference_options": {"drawz": 10}}, ValueError, "unknown reference_options"),
    ({"reference_options": "long"}, TypeError, "reference_options"),
    ({"reference_options": {"target_accept": 1.5}}, ValueError, "target_accept"),
    ({"reference_options": {"sampler": "stan"}}, ValueError, "sampler"),
    ({"cache": 3}, TypeError, "cache"),
    ({"cache": None}, TypeError, "cache"),
    ({"cache": ""}, ValueError, "cache"),
    ({"backends": [1]}, TypeError, "backends"),
    ({"backends": b"em"}, TypeError, "backends"),
    ({"backends": "em,em"}, ValueError, "twice"),
    ({"options": {"em": {"tol": -1.0}}}, ValueError, r"options\['em'\]\['tol'\]"),
    ({"options": {"vb": {"draws": 0}}}, ValueError, r"options\['vb'\]\['draws'\]"),
    ({"options": {"vb": {"max_iter": 2.5}}}, TypeError, r"options\['vb'\]\['max_iter'\]"),
    ({"options": {"em": {"progressbar": "no"}}}, TypeError, r"options\['em'\]\['progressbar'\]"),
    ({"progressbar": "no"}, TypeError, "progressbar"),
    ({"callback": 3}, TypeError, "callback"),
]


@pytest.mark.parametrize("bad, error, words", BAD_ARGUMENTS, ids=[str(b) for b, _, _ in BAD_ARGUMENTS])
def test_compare_refuses_a_bad_argument_before_anything_runs(bad, error, words, runs):
    arguments = {"backends": "em,vb", "progressbar": False, **bad}
    with pytest.raises(error, match=words):
        compare(ThreeCoins(), SEED_FLIPS, **arguments)
    assert runs == []


def test_compare_refuses_a_cache_that_is_a_file_and_a_model_that_is_none(runs, tmp_path):
    a_file = tmp_path / "cache"
    a_file.write_text("not a directory")
    with pytest.raises(ValueError, match="not a directory"):
        compare(ThreeCoins(), SEED_FLIPS, backends="em", cache=a_file, progressbar=False)
    with pytest.raises(TypeError, match="model must be a latentzoo model"):
        compare("three-coins", SEED_FLIPS, backends="em", progressbar=False)
    assert runs == []


def test_the_argument_checks_pass_good_values(runs, tmp_path):
    """The control: the same arguments with good values run every back-end (the None seed and
    the option values a back-end checks itself are left to it)."""
    result = compare(ThreeCoins(), SEED_FLIPS, backends="em,vb", random_seed=2**63 - 1, progressbar=False,
                     options={"em": {"tol": 0.0, "max_iter": 5, "n_init": None}, "vb": {"draws": 10}},
                     reference_options={"draws": 10, "cores": None}, cache=tmp_path / "new")
    assert runs == ["exact", "em", "vb"] and result.failures == {}
    result = compare(ThreeCoins(), SEED_FLIPS, backends=("em",), random_seed=None, progressbar=False)
    assert result.failures == {}


# -- 2. every back-end failed -------------------------------------------------------------------------
@pytest.fixture
def all_failing(monkeypatch):
    monkeypatch.setitem(BACKENDS, "exact", _failing("exact", RuntimeError("no <exact> today")))
    monkeypatch.setitem(BACKENDS, "em", _failing("em", FloatingPointError("overflow in exp")))


def test_a_comparison_in_which_every_backend_failed_says_so(all_failing, tmp_path):
    result = compare(ThreeCoins(), SEED_FLIPS, backends="em", progressbar=False)
    assert result.idatas == {} and set(result.failures) == {"exact", "em"}
    table = result.table
    assert len(table) == 0 and table["mean"].dtype == float and table["converged"].dtype == bool
    summary = result.summary()
    assert summary.startswith("Every back-end failed")
    assert "RuntimeError: no <exact> today" in summary and "FloatingPointError: overflow in exp" in summary
    report = result.save(tmp_path / "out")  # no SaveError: there is simply nothing to draw
    assert {path.name for path in (tmp_path / "out").iterdir()} == {"report.html", "summary.txt", "table.csv",
                                                                     MANIFEST}
    page = report.read_text(encoding="utf-8")
    assert "Every back-end failed" in page and "no &lt;exact&gt; today" in page
    assert (tmp_path / "out" / "summary.txt").read_text().strip() == summary


def test_cli_when_every_backend_failed(all_failing, tmp_path, capsys):
    assert main(["compare", "three-coins", "--backends", "em", "--json"]) == 1
    captured = capsys.readouterr()
    record = strict_json(captured.out)
    assert record["error"]["type"] == "AllBackendsFailed" and "Every back-end failed" in record["error"]["message"]
    assert record["failures"] == {"exact": "RuntimeError: no <exact> today", "em": "FloatingPointError: overflow in exp"}
    assert "every back-end failed" in captured.err
    out = tmp_path / "report"
    assert main(["compare", "three-coins", "--backends", "em", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "em: FloatingPointError: overflow in exp" in captured.out and "report:" in captured.out
    assert "Traceback" not in captured.err and (out / "report.html").is_file()


# -- 3. saving over an earlier comparison ---------------------------------------------------------------
def _quick(backends, **kwargs):
    return compare(ThreeCoins(), SEED_FLIPS, backends=backends, progressbar=False,
                   options={"gibbs": {"draws": 30, "tune": 10, "chains": 2}} if "gibbs" in backends else None,
                   **kwargs)


def test_save_refuses_an_earlier_comparison_and_overwrite_leaves_nothing_stale(no_figures, tmp_path):
    out = tmp_path / "report"
    first = _quick("em,gibbs")
    first.save(out)
    ours = set(json.loads((out / MANIFEST).read_text())["files"])
    assert {"em.nc", "gibbs.nc", "exact.nc", "traces-gibbs.png", "report.html", MANIFEST} <= ours
    assert ours == {path.name for path in out.iterdir()}
    (out / "notes.txt").write_text("the user's own file")
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    second = _quick("vb")
    with pytest.raises(FileExistsError, match="earlier comparison.*overwrite=True"):
        second.save(out)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # nothing touched
    second.save(out, overwrite=True)
    now = {path.name for path in out.iterdir()}
    assert "gibbs.nc" not in now and "traces-gibbs.png" not in now and "em.nc" not in now  # no stale files
    assert {"vb.nc", "exact.nc", "report.html", "notes.txt"} <= now
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == now - {"notes.txt"}
    # what was saved is the second comparison
    assert xr.open_datatree(out / "vb.nc").posterior.attrs["backend"] == "vb"


def test_overwrite_removes_only_what_the_manifest_lists(no_figures, tmp_path):
    out = tmp_path / "report"
    _quick("em").save(out)
    outside = tmp_path / "victim.txt"
    outside.write_text("keep me")
    (out / "sub").mkdir()
    (out / "sub" / "keep.txt").write_text("keep me")
    manifest = json.loads((out / MANIFEST).read_text())
    # a manifest that names files outside the directory, a directory, or nonsense: none is removed
    manifest["files"] += ["../victim.txt", str(outside), "sub", "sub/keep.txt", 7, None]
    (out / MANIFEST).write_text(json.dumps(manifest))
    _quick("vb").save(out, overwrite=True)
    assert outside.read_text() == "keep me" and (out / "sub" / "keep.txt").read_text() == "keep me"
    assert not (out / "em.nc").exists()


def test_save_refuses_to_replace_files_latentzoo_did_not_write(no_figures, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").write_text("my own page")
    (out / "data.csv").write_text("1,2")
    comparison = _quick("em")
    with pytest.raises(FileExistsError, match="report.html"):
        comparison.save(out)
    assert (out / "report.html").read_text() == "my own page"
    comparison.save(out, overwrite=True)  # asked for: replaced; the other file stays
    assert "my own page" not in (out / "report.html").read_text() and (out / "data.csv").read_text() == "1,2"


def test_an_interrupted_save_is_replaced_whole(no_figures, tmp_path, monkeypatch):
    out = tmp_path / "report"
    comparison = _quick("em,vb")
    real = xr.DataTree.to_netcdf

    def interrupted(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        if Path(path).name == "em.nc":
            raise KeyboardInterrupt

    monkeypatch.setattr(xr.DataTree, "to_netcdf", interrupted)
    with pytest.raises(KeyboardInterrupt):
        comparison.save(out)
    monkeypatch.undo()
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] is False and "em.nc" in manifest["files"]
    assert not list(out.glob("*.part")) and not list(out.glob(".*.part"))
    with pytest.raises(FileExistsError):
        _quick("vb").save(out)
    _quick("vb").save(out, overwrite=True)
    assert not (out / "em.nc").exists() and json.loads((out / MANIFEST).read_text())["complete"] is True


def test_check_directory_refuses_paths_it_cannot_write(tmp_path, monkeypatch):
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    with pytest.raises(ValueError, match="not a directory"):
        check_directory(a_file, ["em"])
    with pytest.raises(ValueError, match="lies under"):
        check_directory(a_file / "report", ["em"])
    assert check_directory(tmp_path / "new" / "deeper", ["em"]) == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checked, not created

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(report_module.tempfile, "TemporaryFile", refuse)
    with pytest.raises(PermissionError, match="cannot write into"):
        check_directory(tmp_path / "new", ["em"])


# -- 4. the reference cache -------------------------------------------------------------------------------
OPTIONS = {"draws": 40, "chains": 2, "tune": 5}


def _fake_nuts(record):
    """A stand-in for NUTS with exact draws; each run is appended to ``record`` (a list or a file)."""
    from latentzoo.inference import registry

    real_fit = registry.fit

    def fit_exact(model, data, backend, random_seed=None, progressbar=False, draws=100, tune=0, chains=1, **_):
        assert backend == "nuts"
        if isinstance(record, list):
            record.append(draws)
        else:
            with open(record, "a") as handle:
                handle.write(f"{os.getpid()}\n")
            import time

            time.sleep(1.0)  # long enough for the other process to find the lock taken
        return real_fit(model, data, backend="exact", random_seed=random_seed, draws=draws, chains=chains)

    return registry, fit_exact


@pytest.fixture
def fake_nuts(monkeypatch):
    calls = []
    registry, fit_exact = _fake_nuts(calls)
    monkeypatch.setattr(registry, "fit", fit_exact)
    return calls


def _cached_file(directory: Path) -> Path:
    (path,) = directory.glob("*.nc")
    return path


def _no_leftovers(directory: Path) -> None:
    assert not [path.name for path in directory.iterdir() if path.suffix in (".part", ".lock")]


def test_a_corrupt_cache_file_is_discarded_and_run_again(fake_nuts, tmp_path):
    first, _ = reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    path = _cached_file(tmp_path)
    path.write_bytes(os.urandom(2000))
    with pytest.warns(ReferenceCacheWarning, match="could not be read"):
        again, info = reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    assert info["source"] == "run" and len(fake_nuts) == 2
    np.testing.assert_array_equal(again.posterior["p"].values, first.posterior["p"].values)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReferenceCacheWarning)  # the rewritten file is good
        _, info = reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    assert info["source"] == "cache" and len(fake_nuts) == 2
    _no_leftovers(tmp_path)


def test_a_truncated_cache_file_is_discarded(fake_nuts, tmp_path):
    reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    path = _cached_file(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(ReferenceCacheWarning, match="discarded"):
        _, info = reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    assert info["source"] == "run" and len(fake_nuts) == 2


def test_a_cache_file_of_another_model_or_shape_is_discarded(fake_nuts, tmp_path):
    other = tmp_path / "other"
    reference_nuts(ThreeCoins(p_prior=(2, 2)), SEED_FLIPS, options=OPTIONS, cache=other)
    reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    path = _cached_file(tmp_path)
    foreign = _cached_file(other)
    path.write_bytes(foreign.read_bytes())  # another model's run under this run's name
    with pytest.warns(ReferenceCacheWarning, match="another run"):
        _, info = reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    assert info["source"] == "run" and len(fake_nuts) == 3
    # the right key and model, but fewer draws than asked for (a partial run): refused by its shape
    tree = xr.load_datatree(path)
    short = tree.copy()
    short["posterior"] = tree.posterior.to_dataset().isel(draw=slice(0, 10))
    short.to_netcdf(path)
    with pytest.warns(ReferenceCacheWarning, match="shape"):
        _, info = reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    assert info["source"] == "run" and len(fake_nuts) == 4
    # and a file whose observations are other data
    tree = xr.load_datatree(path)
    tree["observed_data"] = tree.observed_data.to_dataset().map(lambda values: 1 - values)
    tree.to_netcdf(path)
    with pytest.warns(ReferenceCacheWarning, match="not these data"):
        reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    assert len(fake_nuts) == 5


def test_the_cached_run_is_the_run(fake_nuts, tmp_path):
    """What comes out of the cache gives the same table as what went in."""
    model = ThreeCoins()
    fresh, _ = reference_nuts(model, SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    cached, info = reference_nuts(model, SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    assert info["source"] == "cache"
    assert set(cached.attrs) == set(fresh.attrs)  # the cache's own attrs are removed again
    table, again = comparison_table(model, {"nuts": fresh}), comparison_table(model, {"nuts": cached})
    pd.testing.assert_frame_equal(table, again)


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["OSError", "interrupt"])
def test_a_failed_write_leaves_no_part_file(error, fake_nuts, tmp_path, monkeypatch):
    real = xr.DataTree.to_netcdf

    def half_then_fail(self, path, *args, **kwargs):
        Path(path).write_bytes(b"\x89HDF\r\n\x1a\n half a file")
        raise error

    monkeypatch.setattr(xr.DataTree, "to_netcdf", half_then_fail)
    if isinstance(error, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    else:
        with pytest.warns(ReferenceCacheWarning, match="could not cache.*disk full"):
            idata, info = reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
        assert info["path"] is None and "not cached" in info["description"] and "p" in idata.posterior
    assert list(tmp_path.iterdir()) == []  # no .part, no .nc, no .lock
    monkeypatch.setattr(xr.DataTree, "to_netcdf", real)
    _, info = reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    assert info["source"] == "run" and len(fake_nuts) == 2


def _race(cache: str, record: str):
    """One of two processes asking for the same reference run at once."""
    registry, fit_exact = _fake_nuts(record)
    registry.fit = fit_exact
    idata, info = reference_nuts(ThreeCoins(), SEED_FLIPS, options=OPTIONS, cache=cache)
    return info["source"], idata.posterior["p"].values.tolist()


def test_two_processes_make_the_run_once(tmp_path):
    record = tmp_path / "runs.txt"
    cache = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        outcomes = pool.starmap(_race, [(str(cache), str(record))] * 2)
    assert len(record.read_text().splitlines()) == 1  # one process ran it ...
    assert sorted(source for source, _ in outcomes) == ["cache", "run"]  # ... the other waited and read it
    assert outcomes[0][1] == outcomes[1][1]
    _no_leftovers(cache)


def test_a_lock_left_by_a_dead_process_is_taken_over(fake_nuts, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    model = ThreeCoins()
    key = reference_module._cache_key(model, model.check_data(SEED_FLIPS),
                                      {**reference_module.DEFAULT_REFERENCE_OPTIONS, **OPTIONS}, 0)
    import socket

    (tmp_path / f"{key}.lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": 0}))
    _, info = reference_nuts(model, SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    assert info["source"] == "run" and len(fake_nuts) == 1
    _no_leftovers(tmp_path)


def test_a_lock_held_too_long_by_a_live_process_is_waited_for_then_bypassed(fake_nuts, tmp_path, monkeypatch,
                                                                              capsys):
    """A hung holder (alive, never finishing) does not stall the waiter for ever: it says whom it
    waits for, then runs the reference itself without touching the holder's lock or cache."""
    import socket

    model = ThreeCoins()
    key = reference_module._cache_key(model, model.check_data(SEED_FLIPS),
                                      {**reference_module.DEFAULT_REFERENCE_OPTIONS, **OPTIONS}, 0)
    lock = tmp_path / f"{key}.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": 0}))  # alive
    monkeypatch.setattr(reference_module, "LOCK_NOTICE_S", 0.1)
    monkeypatch.setattr(reference_module, "LOCK_TIMEOUT_S", 0.6)
    with pytest.warns(ReferenceCacheWarning, match="gave up waiting"):
        _, info = reference_nuts(model, SEED_FLIPS, options=OPTIONS, cache=tmp_path)
    assert info["source"] == "run" and info["path"] is None and len(fake_nuts) == 1
    err = capsys.readouterr().err
    assert f"waiting for process {os.getpid()}" in err and str(lock) in err and err.count("waiting for") == 1
    assert lock.exists() and not list(tmp_path.glob("*.nc"))  # the holder's lock and cache are left alone


# -- 5. the command line: paths, data files, errors ------------------------------------------------------
def test_cli_checks_out_before_fitting(runs, tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    cases = [
        (["compare", "three-coins", "--backends", "em", "--out", str(a_file / "report")], "not a directory"),
        (["compare", "three-coins", "--backends", "em", "--out", str(a_file)], "not a directory"),
        (["fit", "three-coins", "--backend", "em", "--out", str(tmp_path / "missing" / "em.nc")], "does not exist"),
        (["fit", "three-coins", "--backend", "em", "--out", str(tmp_path)], ".nc"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("latentzoo: error:") and words in err and len(err.splitlines()) == 1
    assert runs == []

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(report_module.tempfile, "TemporaryFile", refuse)
    for argv in (["compare", "three-coins", "--backends", "em", "--out", str(tmp_path / "report")],
                 ["fit", "three-coins", "--backend", "em", "--out", str(tmp_path / "em.nc")]):
        assert main([*argv, "--json"]) == 2
        captured = capsys.readouterr()
        assert strict_json(captured.out)["error"]["type"] == "PermissionError"
        assert "Permission denied" in captured.err
    assert runs == []


def test_fit_out_replaces_a_file_only_when_the_new_one_is_whole(tmp_path, monkeypatch, capsys):
    out = tmp_path / "em.nc"
    assert main(["fit", "three-coins", "--backend", "em", "--out", str(out)]) == 0
    before = out.read_bytes()

    def half_written(self, path, *args, **kwargs):
        Path(path).write_bytes(b"CDF half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", half_written)
    assert main(["fit", "three-coins", "--backend", "em", "--seed", "1", "--out", str(out)]) == 1  # not a usage error
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_bytes() == before  # the earlier result is intact ...
    assert sorted(path.name for path in tmp_path.iterdir()) == ["em.nc"]  # ... and no partial file is left


def test_cli_refuses_an_earlier_comparison_until_overwrite(runs, no_figures, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["compare", "three-coins", "--backends", "em,vb", "--out", str(out)]) == 0
    assert runs == ["exact", "em", "vb"]
    capsys.readouterr()
    assert main(["compare", "three-coins", "--backends", "em", "--out", str(out), "--json"]) == 2
    captured = capsys.readouterr()
    assert strict_json(captured.out)["error"]["type"] == "FileExistsError" and "--overwrite" in captured.err
    assert runs == ["exact", "em", "vb"]  # refused before the run
    assert main(["compare", "three-coins", "--backends", "em", "--out", str(out), "--overwrite"]) == 0
    assert not (out / "vb.nc").exists() and (out / "em.nc").is_file()


BAD_FILES = [
    ("garbage.csv", os.urandom(64) + b"\x00", "not a text file"),
    ("latin1.csv", "größe,1\n".encode("latin-1"), "not UTF-8"),
    ("fake.npy", b"1,0,1\n", "not a .npy file"),
    ("empty.txt", b"# only a comment\n\n", "holds no data"),
    ("ragged.csv", b"1,0\n1\n", "lines of [1, 2] flips"),  # the coins read ragged lines by their own rule
    ("words.csv", b"heads,tails\n1,x\n", "column 'tails' holds 'x'"),
    ("mixed.csv", b"heads,1\n1,0\n", "mixes names and numbers"),
    ("twos.csv", b"1,2\n0,1\n", ""),  # refused by the model (in its words): the file is named all the same
]


@pytest.mark.parametrize("name, content, words", BAD_FILES, ids=[name for name, _, _ in BAD_FILES])
def test_cli_names_the_file_it_cannot_read(name, content, words, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["fit", "three-coins", "--backend", "em", "--data", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("latentzoo: error:") and str(path) in err and words in err, err
    assert main(["compare", "three-coins", "--backends", "em", "--data", str(path), "--json"]) == 2
    message = strict_json(capsys.readouterr().out)["error"]["message"]
    assert str(path) in message and words in message


@pytest.mark.parametrize("error, status", [(PermissionError(13, "Permission denied", "x.csv"), 2),
                                           (FileNotFoundError(2, "No such file", "y.csv"), 2),
                                           (IsADirectoryError(21, "Is a directory", "z"), 2),
                                           (ValueError("bad value"), 2), (RuntimeError("broke"), 1)])
def test_cli_exit_status_and_json_error_for_every_error(error, status, monkeypatch, capsys):
    monkeypatch.setitem(BACKENDS, "em", _failing("em", error))
    assert main(["fit", "three-coins", "--backend", "em"]) == status
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("latentzoo: error:") and "Traceback" not in captured.err
    assert main(["fit", "three-coins", "--backend", "em", "--json"]) == status
    record = strict_json(capsys.readouterr().out)
    assert record == {"error": {"type": type(error).__name__, "message": str(error)}}


def test_cli_json_error_for_argparse_errors(capsys):
    assert main(["compare", "three-coins", "--draws", "many", "--json"]) == 2
    captured = capsys.readouterr()
    record = strict_json(captured.out)
    assert record["error"]["type"] == "UsageError" and "--draws" in record["error"]["message"]
    assert captured.err.startswith("usage: latentzoo")
    assert main(["compare", "three-coins", "--draws", "many"]) == 2
    assert capsys.readouterr().out == ""  # without --json, stdout stays empty


# -- 6. CSV files with a header row; 7. whitespace --------------------------------------------------------
def _table(argv, capsys) -> pd.DataFrame:
    assert main(argv) == 0, capsys.readouterr().err
    return pd.DataFrame(strict_json(capsys.readouterr().out))


def _numbers(table: pd.DataFrame) -> pd.DataFrame:
    """The numbers of a table (JSON's null as NaN), which the same seed makes equal to the last bit."""
    columns = ["mean", "sd", "hdi_3%", "hdi_97%"]
    numbers = table[["backend", *columns]].reset_index(drop=True)
    return numbers.astype({column: float for column in columns})


FAITHFUL = Path(__file__).parents[1] / "models" / "data" / "old_faithful.csv"


def test_cli_reads_a_csv_with_a_header_as_the_python_api_reads_the_frame(tmp_path, capsys):
    frame = pd.read_csv(FAITHFUL)
    assert list(frame.columns) == ["eruptions", "waiting"]
    headerless = tmp_path / "faithful.txt"
    np.savetxt(headerless, frame.to_numpy(), delimiter="\t")
    for model_name, model, argv in (("niw-gaussian", NIWGaussian(), ["--backends", "em"]),
                                    ("gmm", GaussianMixture(), ["--backends", "em", "--reference", "none"])):
        cli = _table(["compare", model_name, "--data", str(FAITHFUL), *argv, "--json"], capsys)
        python = compare(model, frame, backends="em", reference="exact" if model_name == "niw-gaussian" else None,
                         progressbar=False)
        assert list(cli["parameter"]) == list(python.table["parameter"])
        pd.testing.assert_frame_equal(_numbers(cli), _numbers(python.table), check_dtype=False)
        # the same numbers without the header (tab-separated), only the labels may differ
        plain = _table(["compare", model_name, "--data", str(headerless), *argv, "--json"], capsys)
        pd.testing.assert_frame_equal(_numbers(plain), _numbers(cli), check_dtype=False)


def test_a_header_names_the_features_in_the_summary(capsys):
    cli = _table(["compare", "gmm", "--data", str(FAITHFUL), "--backends", "em", "--reference", "none",
                  "--param", "n_components=2", "--json"], capsys)
    assert {"means[0, eruptions]", "means[0, waiting]", "covs[1, waiting, eruptions]"} <= set(cli["parameter"])


def test_named_features_label_the_table_and_the_figures(monkeypatch):
    """The table's labels use a dimension's names where its coordinate holds them, and the
    figures find the draws by those labels."""
    from latentzoo.inference.comparison.plots import _element_by_chain

    original = GaussianObservations.coords

    def named(self, data):
        coords = original(self, data)
        names = self.check_data(data).feature_names
        if names is not None:
            coords["feature"] = coords["feature_bis"] = list(names)
        return coords

    monkeypatch.setattr(GaussianObservations, "coords", named)
    frame = pd.read_csv(FAITHFUL)
    model = NIWGaussian()
    idata = fit(model, frame, backend="exact", random_seed=1, draws=50)
    table = comparison_table(model, {"exact": idata})
    labels = list(table["parameter"])
    assert labels[:2] == ["mu[eruptions]", "mu[waiting]"] and "Sigma[waiting, eruptions]" in labels
    row = table[table["parameter"] == "Sigma[waiting, eruptions]"].iloc[0]
    draws = _element_by_chain(idata.posterior, "Sigma[waiting, eruptions]")
    np.testing.assert_array_equal(draws, idata.posterior["Sigma"].values[:, :, 1, 0])
    assert row["mean"] == pytest.approx(draws.mean(), rel=1e-12)
    # numbers are labelled by position, as before, where a dimension has no names
    plain = comparison_table(model, {"exact": fit(model, frame.to_numpy(), backend="exact", random_seed=1, draws=50)})
    assert list(plain["parameter"])[:2] == ["mu[0]", "mu[1]"]
    np.testing.assert_array_equal(plain["mean"], table["mean"])


def test_one_column_files_keep_working_for_sequences_and_flips(tmp_path, capsys):
    rolls = [1, 6, 3, 2, 6, 6, 5, 1, 4, 6]
    with_header, without = tmp_path / "rolls.csv", tmp_path / "rolls.txt"
    with_header.write_text("roll\n" + "\n".join(map(str, rolls)) + "\n")
    without.write_text("# rolls of the dice\n" + "\n".join(map(str, rolls)) + "\n\n")
    python = comparison_table(DiceHMM(), {"em": fit(DiceHMM(), np.array(rolls), backend="em", random_seed=0, progressbar=False)})
    for path in (with_header, without):
        cli = _table(["fit", "dice-hmm", "--backend", "em", "--data", str(path), "--json"], capsys)
        pd.testing.assert_frame_equal(_numbers(cli), _numbers(python), check_dtype=False)
    flips = tmp_path / "flips.csv"
    flips.write_text("flip\n1\n1\n0\n1\n0\n")
    cli = _table(["fit", "three-coins", "--backend", "em", "--data", str(flips), "--json"], capsys)
    python = comparison_table(ThreeCoins(), {"em": fit(ThreeCoins(), [1, 1, 0, 1, 0], backend="em", random_seed=0, progressbar=False)})
    pd.testing.assert_frame_equal(_numbers(cli), _numbers(python), check_dtype=False)


TEXTS = ["1 6 3 2 6 6", "1\t6\t3\n2 6 6\n", "  1, 6, 3,2 6 6  \n\n", "1 6 3\r\n2 6 6\r\n"]


@pytest.mark.parametrize("text", TEXTS, ids=[repr(text) for text in TEXTS])
def test_inline_text_is_passed_on_as_the_python_api_takes_it(text, capsys):
    """Whatever the model makes of text with tabs, newlines and trailing whitespace, the command
    line makes the same of it: the same table, or the same refusal."""
    argv = ["fit", "dice-hmm", "--backend", "em", "--data", text, "--json"]
    try:
        python = comparison_table(DiceHMM(), {"em": fit(DiceHMM(), text, backend="em", random_seed=0, progressbar=False)})
    except (TypeError, ValueError) as error:
        assert main(argv) == 2
        assert str(error) in capsys.readouterr().err
        return
    cli = _table(argv, capsys)
    pd.testing.assert_frame_equal(_numbers(cli), _numbers(python), check_dtype=False)


def test_a_data_file_with_tabs_and_trailing_whitespace_reads_as_numpy_does(tmp_path, capsys):
    path = tmp_path / "flips.tsv"
    path.write_text("1\t1\t0  \n0\t0\t1\n\n1 1 1\t\n# the end\n")
    expected = np.loadtxt(path)
    python = comparison_table(ThreeCoins(), {"em": fit(ThreeCoins(), expected, backend="em", random_seed=0, progressbar=False)})
    cli = _table(["fit", "three-coins", "--backend", "em", "--data", str(path), "--json"], capsys)
    pd.testing.assert_frame_equal(_numbers(cli), _numbers(python), check_dtype=False)


def test_long_inline_data_is_not_taken_for_a_file_name(capsys):
    flips = "10" * 3000  # longer than any file name may be
    assert main(["fit", "three-coins", "--backend", "em", "--data", flips, "--json"]) == 0
    assert strict_json(capsys.readouterr().out)[0]["backend"] == "em"


# -- the table reader, property-based --------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from latentzoo.inference.cli.input import UsageError, read_table  # noqa: E402

_NUMBER = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False))


@st.composite
def _tables(draw):
    """A table of numbers and the text of a file holding it, written in one of the ways people do."""
    n_rows, n_columns = draw(st.integers(1, 12)), draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(_NUMBER, min_size=n_columns, max_size=n_columns), min_size=n_rows, max_size=n_rows))
    values = np.array(rows, dtype=float)
    separator = draw(st.sampled_from([",", ";", "\t", " ", ", ", " \t "]))
    header = draw(st.one_of(st.none(), st.lists(st.from_regex(r"x[a-z0-9_]{0,6}", fullmatch=True), min_size=n_columns,
                                                max_size=n_columns, unique=True)))
    trailing = draw(st.sampled_from(["", " ", "\t", "  \t"]))
    lines = [separator.join(header)] if header else []
    lines += [separator.join(repr(float(v)) if draw(st.booleans()) else repr(v) for v in row) for row in rows]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), "# a comment")
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), "")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return values, header, newline.join(line + trailing for line in lines) + draw(st.sampled_from(["", newline]))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(_tables())
def test_read_table_gives_back_the_numbers_written(table):
    values, header, text = table
    for feature_rows in (False, True):
        result = read_table(text, "a file", feature_rows)
        if isinstance(result, str):  # one number on one line: passed on as text, like inline data
            assert values.size == 1 and header is None and float(result) == values[0, 0]
            continue
        if feature_rows and header is not None:
            assert isinstance(result, pd.DataFrame) and list(result.columns) == header
        array = np.asarray(result, dtype=float)
        expected = values if feature_rows or values.shape[1] > 1 else values[:, 0]
        np.testing.assert_array_equal(array, expected)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(_tables(), st.sampled_from(["abc", "1..2", "--", "0x1g"]), st.data())
def test_read_table_names_the_cell_that_is_not_a_number(table, word, data):
    values, header, text = table
    lines = text.splitlines()
    # after the first row of the table: a first row of words is a header
    rows = [i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")][1:]
    if not rows:
        return
    row = data.draw(st.sampled_from(rows))
    separator = "," if "," in text else ";" if ";" in text else None
    cells = lines[row].split(separator) if separator else lines[row].split()
    column = data.draw(st.integers(0, len(cells) - 1))
    cells[column] = word
    lines[row] = (separator or " ").join(cells)
    broken = "\n".join(lines)
    with pytest.raises(UsageError, match=f"a file: line {row + 1}, column .* holds '{re.escape(word)}'"):
        read_table(broken, "a file")


# -- sequence files: ragged lines and missing steps reach the model's own text rules ----------
@pytest.mark.parametrize(
    "content, python_data",
    [
        ("1\n6\nNA\n3\n", "1 6 NA 3"),  # one roll per line: one sequence, with a missing step
        ("roll\n1\n?\n6\n", "1 ? 6"),  # a header row of words is dropped
        ("1,6,3\n5,2\n# a comment\n4;NA;2;1\n", "1 6 3\n5 2\n4 NA 2 1"),  # ragged: a sequence per line
    ],
)
def test_a_sequence_file_reads_as_the_same_text_given_to_the_python_api(tmp_path, content, python_data):
    from latentzoo.inference.cli.input import load_data
    from latentzoo.models import DiceHMM

    path = tmp_path / "rolls.csv"
    path.write_text(content)
    model = DiceHMM()
    from_file, from_python = load_data(str(path), model), model.check_data(python_data)
    np.testing.assert_array_equal(from_file.symbols, from_python.symbols)
    np.testing.assert_array_equal(from_file.lengths, from_python.lengths)
    assert from_file.n_missing == content.count("NA") + content.count("?")


def test_a_ragged_file_for_a_feature_model_is_still_refused_naming_the_line(tmp_path):
    from latentzoo.inference.cli.input import UsageError, load_data
    from latentzoo.models import GaussianMixture

    path = tmp_path / "points.csv"
    path.write_text("1.0,2.0\n3.0\n")
    with pytest.raises(UsageError, match="line 2 has 1 value"):
        load_data(str(path), GaussianMixture(n_components=1))


def test_ragged_coin_rows_get_the_coin_models_own_message_with_the_file_name(tmp_path):
    from latentzoo.inference.cli.input import UsageError, load_data
    from latentzoo.models import ThreeCoins

    path = tmp_path / "flips.txt"
    path.write_text("0 1 1\n1 0\n")
    with pytest.raises(UsageError, match=r"flips\.txt.*same number of flips"):
        load_data(str(path), ThreeCoins())


def test_a_gaussian_hmm_file_with_a_header_is_one_sequence_with_named_features(tmp_path):
    from latentzoo.inference.cli.input import UsageError, load_data
    from latentzoo.models import GaussianHMM

    path = tmp_path / "flow.csv"
    path.write_text("volume,rain\n1120,3.5\nNA,NaN\n1160,2.0\n")
    data = load_data(str(path), GaussianHMM(2, 2))
    assert data.n_sequences == 1 and data.feature_names == ("volume", "rain")
    np.testing.assert_array_equal(data.x[[0, 2]], [[1120, 3.5], [1160, 2.0]])
    assert list(np.flatnonzero(~data.observed)) == [1]
    path.write_text("volume,rain\n1120,3.5\n963,?\n")
    with pytest.raises(UsageError, match=r"flow\.csv.*partly missing row at time step 1"):
        load_data(str(path), GaussianHMM(2, 2))


def test_the_demo_leaves_out_an_exact_posterior_it_cannot_enumerate_and_says_why():
    from latentzoo.inference.cli.demo import _demo_plan

    _, _, names, reference, _, notes = _demo_plan("gaussian-hmm", quick=True, all_backends=False)
    assert "exact" not in names and reference == "nuts_reference" and "2^100" in notes[0]
