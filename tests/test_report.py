"""The HTML report: its content (default suite) and the page in a real browser (slow).

Content: the page shows the comparison's table with every cell as the table holds it (numbers
in the report's ``.4g`` format, a dash for a missing value), the summary equal to
``Comparison.summary()``, and the failures and warnings in their sections, everything escaped
(a back-end's message with ``<b>&"`` appears as text, never as markup). Each check is shown to
fail on a page that is wrong in that way.

Browser (``slow``): Chromium is driven without extra Python packages: ``--dump-dom`` prints the
page after its load event, and ``--enable-logging=stderr`` prints every console message. A copy
of the report gets a small script that writes what it measured (images loaded, tables, page
height) into the document title, which ``--dump-dom`` shows, and logs one deliberate probe
message to prove that console messages are captured at all; any other console message is a
failure. Skipped when Chromium is missing, unless ``LATENTZOO_REQUIRE_BROWSER=1`` (then it fails).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentzoo.inference import compare
from latentzoo.models import ThreeCoins

from .conftest import SEED_FLIPS

_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
PROBE = "latentzoo-console-probe"

_CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (image) { return !(image.complete && image.naturalWidth > 0); });
  document.title = 'LZCHECK images=' + images.length + ' broken=' + broken.length
    + ' tables=' + document.querySelectorAll('table').length
    + ' height=' + document.body.scrollHeight + ' end';
  console.log('%s');
});
</script>""" % PROBE


def _chromium() -> str:
    found = next((path for path in _CANDIDATES if os.access(path, os.X_OK)), None) or shutil.which("chromium")
    if found is None:
        if os.environ.get("LATENTZOO_REQUIRE_BROWSER") == "1":
            pytest.fail("LATENTZOO_REQUIRE_BROWSER=1 but no Chromium found (apt-get install chromium)")
        pytest.skip("headless Chromium not installed (apt-get install chromium); set LATENTZOO_REQUIRE_BROWSER=1 "
                    "to make this a failure")
    return found


def _open(page: Path, profile: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium; return the DOM after load and the console lines."""
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def measure_page(text: str, checked: Path, profile: Path) -> tuple[dict, list[str]]:
    """Load the page ``text`` (written to ``checked`` with the check script added) in headless
    Chromium: what the script measured, and the console lines other than its probe."""
    assert "</body>" in text
    checked.write_text(text.replace("</body>", _CHECK_SCRIPT + "</body>"), encoding="utf-8")
    dom, console = _open(checked, profile)
    title = re.search(r"<title>(LZCHECK[^<]*)</title>", dom)
    assert title, "the check script did not run: " + dom[:500]
    numbers = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", title.group(1))}
    # the probe shows that console output is captured
    assert any(PROBE in line for line in console), console
    return numbers, [line for line in console if PROBE not in line]


def _check_in_browser(report: Path, tmp_path: Path) -> dict:
    checked = tmp_path / f"checked-{report.parent.name}.html"
    numbers, others = measure_page(report.read_text(encoding="utf-8"), checked, tmp_path / "profile")
    assert not others, others  # anything the page itself logs is an error
    return numbers


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    result = compare(
        ThreeCoins(), SEED_FLIPS, backends=("em", "vb", "gibbs", "exact"), random_seed=0, progressbar=False,
        options={"gibbs": {"draws": 200, "tune": 100, "chains": 2}, "exact": {"draws": 1000}},
    )
    return result, result.save(tmp_path_factory.mktemp("browser") / "three-coins")


@pytest.mark.slow
def test_report_renders_with_all_images_and_no_console_errors(quick_report, tmp_path):
    result, report = quick_report
    numbers = _check_in_browser(report, tmp_path)
    assert numbers["images"] == len(result.plot()) == 5
    assert numbers["broken"] == 0
    assert numbers["tables"] >= 3  # comparison table, LOO table, settings
    assert numbers["height"] > 2000  # figures are laid out at their size, not collapsed


@pytest.mark.slow
def test_browser_check_catches_a_broken_image(quick_report, tmp_path):
    # the check must be able to fail: a truncated base64 image is counted as broken
    _, report = quick_report
    text = report.read_text(encoding="utf-8")
    start = text.index("data:image/png;base64,") + len("data:image/png;base64,")
    damaged = tmp_path / "damaged" / "report.html"
    damaged.parent.mkdir()
    damaged.write_text(text[:start] + "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB" + text[start + 5000:], encoding="utf-8")
    numbers = _check_in_browser(damaged, tmp_path)
    assert numbers["broken"] == 1


@pytest.mark.slow
def test_demo_index_links_to_reports(tmp_path, monkeypatch):
    """``latentzoo demo`` on one model (the others take minutes): the index links to a report
    that exists and renders."""
    import latentzoo.models as models
    from latentzoo.inference.cli import commands as cli
    from latentzoo.inference.cli import demo as cli_demo

    monkeypatch.setattr(models, "MODELS", {"three-coins": ThreeCoins})
    fast = {"em": {}, "vb": {"draws": 300}, "gibbs": {"draws": 200, "tune": 100, "chains": 2},
            "exact": {"draws": 1000}}
    monkeypatch.setattr(cli_demo, "QUICK_OPTIONS", fast)
    monkeypatch.setattr(cli_demo, "comparison_options",
                        lambda model, backends, reference, defaults, draws, extra: (list(fast), "exact", fast))
    out = tmp_path / "demo"
    # one model runs in this process even with --jobs 2 (no worker to lose the patches in)
    assert cli.main(["demo", "--out", str(out), "--quick", "--jobs", "2"]) == 0
    index = (out / "index.html").read_text(encoding="utf-8")
    links = re.findall(r"class='report' href='([^']+)'", index)
    assert links == ["three-coins/report.html"]
    # the thumbnail is the model's own picture, a file the save wrote beside the report; the
    # explorer's screenshot is copied beside the index; both load in the browser
    assert re.findall(r"<img src='([^']+)'", index) == ["three-coins/model.png", "explore.png"]
    # (the checked copy sits beside index.html, so that its relative links resolve as the index's do)
    index_numbers, others = measure_page((out / "index.html").read_text(encoding="utf-8"), out / "checked-index.html",
                                         tmp_path / "profile")
    assert not others, others
    assert index_numbers["images"] == 2 and index_numbers["broken"] == 0
    numbers = _check_in_browser(out / links[0], tmp_path)
    assert numbers["broken"] == 0 and numbers["images"] == 5


@pytest.mark.slow
def test_demo_in_two_worker_processes(tmp_path):
    """The whole quick demo with two worker processes: every model's report exists and its
    images load, and the index links them in the models' order."""
    from latentzoo.inference.cli import commands as cli
    from latentzoo.models import MODELS

    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--quick", "--jobs", "2"]) == 0
    links = re.findall(r"class='report' href='([^']+)'", (out / "index.html").read_text(encoding="utf-8"))
    from latentzoo.models.core.protocols import ExampleData

    expected = [f"{name}/report.html" for name, cls in MODELS.items() if isinstance(cls(), ExampleData)]
    assert links == expected
    for link in links:
        numbers = _check_in_browser(out / link, tmp_path)
        assert numbers["broken"] == 0 and numbers["images"] >= 4


# -- the page's content (default suite) ---------------------------------------------------------------
HOSTILE = '<b>&"'


class _PageParser(HTMLParser):
    """Every table of a page as rows of cell texts (entities decoded), and the text of the
    summary paragraph and of the list items under each <h2>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.summary, self.items = [], None, {}
        self._cell = self._summary = self._heading = self._item = None
        self._section = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []
        elif tag == "p" and attrs.get("class") == "summary":
            self._summary = []
        elif tag == "h2":
            self._heading = []
        elif tag == "li" and self._section is not None:
            self._item = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "p" and self._summary is not None:
            self.summary, self._summary = "".join(self._summary), None
        elif tag == "h2" and self._heading is not None:
            self._section, self._heading = "".join(self._heading), None
            self.items[self._section] = []
        elif tag == "li" and self._item is not None:
            self.items[self._section].append("".join(self._item))
            self._item = None

    def handle_data(self, data):
        for collecting in (self._cell, self._summary, self._heading, self._item):
            if collecting is not None:
                collecting.append(data)


def parse_page(page: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(page)
    parser.close()
    return parser


def shown(value) -> str:
    """A table cell as the report shows it: numbers to 4 significant digits, a dash if missing."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def check_table_shown(page: str, table) -> None:
    rows = parse_page(page).tables[0]  # the comparison table comes first
    assert rows[0] == list(table.columns)
    assert len(rows) - 1 == len(table)
    for cells, (_, row) in zip(rows[1:], table.iterrows()):
        assert cells == [shown(row[column]) for column in table.columns], row["backend"] + " " + row["parameter"]


def check_messages_escaped(page: str, failures: dict, warnings_: dict) -> None:
    """Failures and warnings in their sections, as text; the markup in them never raw."""
    parsed = parse_page(page)
    assert parsed.items["Failures"] == [f"{backend}: {message}" for backend, message in failures.items()]
    expected = [f"{backend}: {message.removeprefix(backend + ': ')}"
                for backend, messages in warnings_.items() for message in messages]
    assert parsed.items["Warnings"] == expected
    assert HOSTILE not in page and "<b>&" not in page


@pytest.fixture(scope="module")
def troubled():
    """A comparison with a back-end that fails and one that warns, both with markup and an
    ampersand and a quote in their messages."""
    import dataclasses
    import functools
    import warnings

    from latentzoo.inference import BACKENDS

    em, vb = BACKENDS["em"], BACKENDS["vb"]

    @functools.wraps(em.run)  # the same signature, so the same options
    def failing_run(*args, **kwargs):
        raise RuntimeError(f"em broke: {HOSTILE}")

    @functools.wraps(vb.run)
    def warning_run(*args, **kwargs):
        warnings.warn(f"vb warned: {HOSTILE}", UserWarning, stacklevel=2)
        return vb.run(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(BACKENDS, "em", dataclasses.replace(em, run=failing_run))
        patch.setitem(BACKENDS, "vb", dataclasses.replace(vb, run=warning_run))
        return compare(ThreeCoins(), SEED_FLIPS, backends=("em", "vb", "gibbs", "exact"), random_seed=0,
                       progressbar=False, options={"vb": {"draws": 300}, "gibbs": {"draws": 200, "tune": 100},
                                                   "exact": {"draws": 500}})


@pytest.fixture(scope="module")
def troubled_page(troubled):
    from latentzoo.inference.comparison.report import render_html

    return render_html(troubled, images={})


def test_the_fixture_has_a_failure_and_a_warning(troubled):
    assert troubled.failures == {"em": f"RuntimeError: em broke: {HOSTILE}"}
    assert f"UserWarning: vb warned: {HOSTILE}" in troubled.warnings["vb"]


def test_page_shows_every_cell_of_the_table(troubled, troubled_page):
    check_table_shown(troubled_page, troubled.table)
    # a few numbers written out, as a reader sees them
    table = troubled.table.set_index(["backend", "parameter"])
    cells = {(r[0], r[1]): r for r in parse_page(troubled_page).tables[0][1:]}
    column = list(troubled.table.columns).index("mean")
    for key in [("exact", "p"), ("gibbs", "heads_prob"), ("vb", "q")]:
        assert cells[key][column] == f"{table.loc[key, 'mean']:.4g}"
    assert cells[("exact", "pi")][list(troubled.table.columns).index("r_hat")] == "–"  # no R-hat for exact draws


def test_page_summary_is_the_comparisons(troubled, troubled_page):
    summary = troubled.summary()
    assert parse_page(troubled_page).summary == summary
    assert "em failed (RuntimeError)." in summary and "raised warnings (see the report)" in summary


def test_page_failures_and_warnings_are_escaped_in_their_sections(troubled, troubled_page):
    check_messages_escaped(troubled_page, troubled.failures, troubled.warnings)
    escaped = "&lt;b&gt;&amp;&#34;"
    assert troubled_page.count(escaped) == 2  # once in each section, escaped once (not &amp;lt;)


def test_power_the_page_checks_fail_on_a_wrong_page(troubled, troubled_page, monkeypatch):
    import dataclasses

    import jinja2

    from latentzoo.inference.comparison import report

    # stale or rounded numbers
    table = troubled.table.copy()
    table.loc[table.index[3], "mean"] += 1e-3
    with pytest.raises(AssertionError):
        check_table_shown(report.render_html(dataclasses.replace(troubled, table=table), images={}), troubled.table)
    # another summary
    assert parse_page(report.render_html(troubled, images={}, summary_text="All fine.")).summary != troubled.summary()
    # a template rendered without autoescaping
    raw = jinja2.Environment(loader=jinja2.FileSystemLoader(report.TEMPLATE_DIRECTORY), autoescape=False)
    monkeypatch.setattr(report, "_environment", lambda: raw)
    with pytest.raises(AssertionError):
        check_messages_escaped(report.render_html(troubled, images={}), troubled.failures, troubled.warnings)
    # a failure left out of its section
    with pytest.raises(AssertionError):
        check_messages_escaped(troubled_page, {**troubled.failures, "gibbs": "ValueError: x"}, troubled.warnings)


def test_demo_index_links_a_calibration_report_where_one_was_made(tmp_path):
    """The index links ``OUT/calibration/<model>/report.html`` when ``latentzoo calibrate`` wrote
    it, and otherwise shows the command that makes it."""
    from types import SimpleNamespace

    from latentzoo.inference.cli.demo import calibration_links, render_demo_index

    (tmp_path / "calibration" / "three-coins").mkdir(parents=True)
    (tmp_path / "calibration" / "three-coins" / "report.html").write_text("<html></html>")
    outcomes = {name: SimpleNamespace(report=f"{name}/report.html", class_name="X", summary="s")
                for name in ("three-coins", "dice-hmm")}
    page = render_demo_index(outcomes, False, True, calibration=calibration_links(tmp_path, list(outcomes)))
    assert re.findall(r"class='(?:report|calibration)' href='([^']+)'", page) == [
        "three-coins/report.html", "calibration/three-coins/report.html", "dice-hmm/report.html"]
    assert f"latentzoo calibrate dice-hmm --out {tmp_path / 'calibration' / 'dice-hmm'}" in page


def test_demo_index_shows_a_thumbnail_per_model_that_links_to_its_report(tmp_path):
    """Each model's row shows one PNG its report's save wrote (the model's own picture first, else
    a figure every comparison draws), linked to the report by a relative path; a report without
    figures gets a link without a picture."""
    from types import SimpleNamespace
    from urllib.parse import urlparse

    from latentzoo.inference.cli.demo import model_description, render_demo_index, report_thumbnail

    written = {"three-coins": ("model.png", "densities.png", "forest.png"), "gmm": ("forest.png",), "dice-hmm": ()}
    outcomes = {}
    for name, figures in written.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.html").write_text("<html></html>")
        for figure in figures:
            (tmp_path / name / figure).write_bytes(b"\x89PNG")
        report = tmp_path / name / "report.html"
        outcomes[name] = SimpleNamespace(report=f"{name}/report.html", class_name="X", summary="s",
                                         picture=report_thumbnail(report, tmp_path), description=f"about {name}")
    assert [outcome.picture for outcome in outcomes.values()] == ["three-coins/model.png", "gmm/forest.png", None]
    page = render_demo_index(outcomes, False, True)
    pairs = re.findall(r"<a class='thumbnail' href='([^']+)'><img src='([^']+)'", page)
    assert pairs == [("three-coins/report.html", "three-coins/model.png"), ("gmm/report.html", "gmm/forest.png")]
    assert re.findall(r"<a class='thumbnail no-picture' href='([^']+)'", page) == ["dice-hmm/report.html"]
    for link in re.findall(r"(?:href|src)='([^']+)'", page):
        assert not urlparse(link).scheme and not link.startswith("/"), link
        assert (tmp_path / link).is_file(), link
    assert all(f"<p class='description'>about {name}</p>" in page for name in written)
    # the model's one line comes from its own docstring
    description = model_description(ThreeCoins())
    assert "\n" not in description and description.startswith("Three-coin model")


def test_demo_index_points_to_the_explorer_with_its_screenshot_copied(tmp_path):
    """The index's explorer section names ``latentzoo explore`` and the models it has a view
    for (the server's list), shows the screenshot from a copy inside the demo's directory, and
    marks those models' rows; without a screenshot the section has no picture."""
    from types import SimpleNamespace

    from latentzoo.inference.cli.demo import EXPLORE_SCREENSHOT, explore_section, render_demo_index
    from latentzoo.inference.explore.server import MODELS as EXPLORABLE

    assert EXPLORE_SCREENSHOT.is_file()  # the checkout's docs/_static/explore.png
    explore = explore_section(tmp_path)
    assert explore == {"models": list(EXPLORABLE), "picture": "explore.png"}
    assert (tmp_path / "explore.png").read_bytes() == EXPLORE_SCREENSHOT.read_bytes()
    outcomes = {name: SimpleNamespace(report=f"{name}/report.html", class_name="X", summary="s")
                for name in ("three-coins", "gmm")}
    page = render_demo_index(outcomes, False, True, explore=explore)
    assert "<code>latentzoo explore</code> opens a live page" in page
    assert "href='#explore'" in page and "id='explore'" in page
    assert re.findall(r"<img src='([^']+)'", page) == ["explore.png"]
    live = re.findall(r"<code>latentzoo explore ([^<]+)</code> edits", page)
    assert live == [name for name in outcomes if name in EXPLORABLE] and live
    # no screenshot (an installed package without docs/): the section stays, without a picture
    (tmp_path / "elsewhere").mkdir()
    bare = explore_section(tmp_path / "elsewhere", screenshot=tmp_path / "missing.png")
    assert bare["picture"] is None and not (tmp_path / "elsewhere" / "explore.png").exists()
    assert "<img" not in render_demo_index(outcomes, False, True, explore=bare)
    # no section at all when the caller gives none
    assert "latentzoo explore" not in render_demo_index(outcomes, False, True)
