"""``latentzoo explore`` in a real browser: Playwright driving the system's Chromium.

Behaviour, not loading: no console errors or failed requests; the EM fixed points shown after
typing lie on the ridge pi p + (1 - pi) q = head rate; VB's sd of p is below the exact one; a
stronger prior towards heads on p moves the exact mean of p up; ten rapid edits leave the last
one shown. A screenshot goes to docs/_static/explore.png.

Marked ``slow`` and ``browser``. Skipped when Chromium or Playwright is missing, unless
``LATENTZOO_REQUIRE_BROWSER=1`` (then it fails), as tests/test_report.py does. No browser is
downloaded: ``executable_path`` points at the distribution's Chromium.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "_static" / "explore.png"


def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("LATENTZOO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"LATENTZOO_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(f"{why}; set LATENTZOO_REQUIRE_BROWSER=1 to make this a failure")


@pytest.fixture(scope="module")
def server():
    import uvicorn

    from latentzoo.inference.explore.server import create_app, free_port

    port = free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    for _ in range(200):
        if instance.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "the playwright package is not installed (pip install playwright)")
    executable = next((path for path in CHROMIUM if os.access(path, os.X_OK)), None) or shutil.which("chromium")
    _require(executable is not None, "no Chromium found (apt-get install chromium)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield instance
        instance.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    def failed(request):
        # requests the page itself aborts (a newer edit supersedes them) are not failures
        if "ERR_ABORTED" not in (request.failure or ""):
            problems.append(f"failed request {request.url}: {request.failure}")

    page.on("requestfailed", failed)
    page.problems = problems
    page.goto(server)
    _settled(page)
    yield page
    assert problems == [], problems
    page.close()


def _settled(page, timeout=60_000):
    """Wait until every panel shows the latest edit."""
    page.wait_for_function(
        """() => { const s = window.explore; if (!s) return false;
             return ['data', 'exact', 'em', 'vb', 'gibbs'].every(m => s.results[m] && s.results[m].tag === s.tag); }""",
        timeout=timeout,
    )


def _edit(page, selector, text):
    """Type into ``selector`` and wait until the page shows the answers to that edit (the
    request leaves after the debounce, so first wait for its tag)."""
    before = page.evaluate("() => window.explore.tag")
    page.fill(selector, text)
    page.wait_for_function(f"() => window.explore.tag > {before}", timeout=10_000)
    _settled(page)


def _type_flips(page, text):
    _edit(page, "#flips", text)


def _fixed_points(page):
    return [float(value) for value in page.eval_on_selector_all(".em-fixed-row", "rows => rows.map(r => r.dataset.headsProb)")]


def test_em_fixed_points_lie_on_the_ridge(page):
    _type_flips(page, "1111110000")
    values = _fixed_points(page)
    assert len(values) >= 5
    assert all(abs(value - 0.6) <= 1e-3 for value in values), values
    _type_flips(page, "1111111111")
    values = _fixed_points(page)
    assert all(abs(value - 1.0) <= 1e-3 for value in values), values


def test_vb_is_narrower_than_the_exact_posterior(page):
    _type_flips(page, "1111110000")
    vb_sd = float(page.get_attribute("#vb-status", "data-sd-p"))
    exact_sd = float(page.get_attribute("#exact-status", "data-sd-p"))
    assert 0 < vb_sd < exact_sd


def test_a_prior_towards_heads_moves_the_exact_mean_of_p_up(page):
    _type_flips(page, "1111110000")
    before = float(page.get_attribute("#exact-status", "data-mean-p"))
    _edit(page, "#p_a", "20")
    after = float(page.get_attribute("#exact-status", "data-mean-p"))
    assert after > before + 0.05
    _edit(page, "#p_a", "1")
    _edit(page, "#p_b", "20")
    assert float(page.get_attribute("#exact-status", "data-mean-p")) < before - 0.05


def test_ten_rapid_edits_leave_the_last_one_shown(page):
    edits = ["1" * k + "0" * (12 - k) for k in range(1, 11)]
    for text in edits:
        page.fill("#flips", text)
        page.wait_for_timeout(15)
    page.wait_for_function("() => window.explore.tag > 0 && window.explore.results.data.n_trials === 12", timeout=30_000)
    _settled(page)
    page.wait_for_timeout(500)  # any stale answer still on its way would land now
    assert float(page.get_attribute("#stats", "data-head-rate")) == pytest.approx(10 / 12)
    assert all(abs(value - 10 / 12) <= 1e-3 for value in _fixed_points(page))
    shown = page.evaluate("() => ['data','exact','em','vb','gibbs'].map(m => window.explore.results[m].tag)")
    assert len(set(shown)) == 1 and shown[0] == page.evaluate("() => window.explore.tag")


def test_bad_input_shows_the_message_and_the_page_recovers(page):
    page.fill("#flips", "11x0")
    page.wait_for_function("() => document.getElementById('error').textContent.includes('0 and 1')", timeout=30_000)
    _type_flips(page, "1111110000")
    assert page.text_content("#error") == ""
    # the browser logs each refused request (the 400s asked for here); nothing else may appear
    expected = [text for text in page.problems if "status of 400" in text]
    assert expected
    page.problems[:] = [text for text in page.problems if text not in expected]


def test_screenshot_for_the_docs(page):
    _type_flips(page, "0111\n1110\n0000\n1011\n0010\n1111")
    page.wait_for_function("() => document.querySelectorAll('#summary tbody tr').length >= 8", timeout=30_000)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 20_000
