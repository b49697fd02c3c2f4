"""The HTML report in a real browser (headless Chromium from the system packages).

Chromium is driven without extra Python packages: ``--dump-dom`` prints the page after its load
event, and ``--enable-logging=stderr`` prints every console message. A copy of the report gets
a small script that writes what it measured (images loaded, tables, page height) into the
document title, which ``--dump-dom`` shows, and logs one deliberate probe message to prove that
console messages are captured at all; any other console message is a failure.

Skipped when Chromium is missing, unless ``LATENTZOO_REQUIRE_BROWSER=1`` (then it fails).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from latentzoo.inference import compare
from latentzoo.models import ThreeCoins

from .conftest import SEED_FLIPS

pytestmark = pytest.mark.slow

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


def _check_in_browser(report: Path, tmp_path: Path) -> dict:
    text = report.read_text(encoding="utf-8")
    assert "</body>" in text
    checked = tmp_path / f"checked-{report.parent.name}.html"
    checked.write_text(text.replace("</body>", _CHECK_SCRIPT + "</body>"), encoding="utf-8")
    dom, console = _open(checked, tmp_path / "profile")
    title = re.search(r"<title>(LZCHECK[^<]*)</title>", dom)
    assert title, "the check script did not run: " + dom[:500]
    numbers = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", title.group(1))}
    # the probe shows that console output is captured; anything else from the page is an error
    assert any(PROBE in line for line in console), console
    others = [line for line in console if PROBE not in line]
    assert not others, others
    return numbers


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    result = compare(
        ThreeCoins(), SEED_FLIPS, backends=("em", "vb", "gibbs", "exact"), random_seed=0, progressbar=False,
        options={"gibbs": {"draws": 200, "tune": 100, "chains": 2}, "exact": {"draws": 1000}},
    )
    return result, result.save(tmp_path_factory.mktemp("browser") / "three-coins")


def test_report_renders_with_all_images_and_no_console_errors(quick_report, tmp_path):
    result, report = quick_report
    numbers = _check_in_browser(report, tmp_path)
    assert numbers["images"] == len(result.plot()) == 5
    assert numbers["broken"] == 0
    assert numbers["tables"] >= 3  # comparison table, LOO table, settings
    assert numbers["height"] > 2000  # figures are laid out at their size, not collapsed


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


def test_demo_index_links_to_reports(tmp_path, monkeypatch):
    """``latentzoo demo`` on one model (the others take minutes): the index links to a report
    that exists and renders."""
    import latentzoo.models as models
    from latentzoo.inference import cli, cli_demo

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
    links = re.findall(r"href='([^']+)'", index)
    assert links == ["three-coins/report.html"]
    numbers = _check_in_browser(out / links[0], tmp_path)
    assert numbers["broken"] == 0 and numbers["images"] == 5


@pytest.mark.slow
def test_demo_in_two_worker_processes(tmp_path):
    """The whole quick demo with two worker processes: every model's report exists and its
    images load, and the index links them in the models' order."""
    from latentzoo.inference import cli
    from latentzoo.models import MODELS

    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--quick", "--jobs", "2"]) == 0
    links = re.findall(r"href='([^']+)'", (out / "index.html").read_text(encoding="utf-8"))
    expected = [f"{name}/report.html" for name, cls in MODELS.items() if cls().supports("default_data")]
    assert links == expected
    for link in links:
        numbers = _check_in_browser(out / link, tmp_path)
        assert numbers["broken"] == 0 and numbers["images"] >= 4
