"""The docs site (``make docs``): coverage of the API reference, the build's failure modes, and
the rendered pages in a real browser.

Default suite: every public name of ``latentzoo.models`` and ``latentzoo.inference`` is listed
in the API reference's sources; the README's images exist in the repository.

Slow (they need the ``docs`` extra, and the full build executes every lesson):
- the site builds into a temporary directory with warnings as errors, and its home page, one
  API page and one lesson load in headless Chromium with every image loaded and no console
  message (Chromium driven as in ``tests/test_report.py``: ``--dump-dom`` after a script that
  writes what it measured into the title, and a deliberate probe message that proves the
  console is captured);
- the failure modes the issue asks for: a lesson that raises, and a cross-reference that does
  not resolve, each fail a build of a one-page site with the real ``docs/conf.py``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import latentzoo.inference
import latentzoo.models

from .test_report import measure_page

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _api_sources() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in (DOCS / "api").glob("*.rst"))


@pytest.mark.parametrize("package", [latentzoo.models, latentzoo.inference], ids=lambda p: p.__name__)
def test_api_reference_lists_every_public_name(package):
    text = _api_sources()
    current = None
    listed = set()
    for line in text.splitlines():
        match = re.match(r"\.\. currentmodule:: (\S+)", line.strip())
        if match:
            current = match.group(1)
        elif current == package.__name__ and re.fullmatch(r"\s+[A-Za-z_]\w*", line):
            listed.add(line.strip())
        data = re.match(r"\.\. py:data:: (\w+)", line.strip())
        if data and current == package.__name__:
            listed.add(data.group(1))
    missing = sorted(set(package.__all__) - listed)
    assert not missing, f"not in docs/api/*.rst under {package.__name__}: {missing}"


def test_api_listing_check_fails_on_a_missing_name(monkeypatch):
    # the check above must be able to fail: a new public name that nobody listed
    monkeypatch.setattr(latentzoo.models, "__all__", [*latentzoo.models.__all__, "BrandNewModel"])
    with pytest.raises(AssertionError, match="BrandNewModel"):
        test_api_reference_lists_every_public_name(latentzoo.models)


def test_readme_images_exist_in_the_repository():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme)
    assert images, "the README shows one picture"
    for image in images:
        assert not image.startswith(("http:", "https:")), image
        assert (ROOT / image).is_file(), image
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", image], cwd=ROOT, capture_output=True)
        if tracked.returncode != 0 and (ROOT / ".git").exists():
            pytest.fail(f"{image} exists but is not tracked by git (ignored?)")
    assert len(readme.splitlines()) <= 260


# --- building -------------------------------------------------------------------------------

def _require_sphinx():
    for module in ("sphinx", "myst_nb", "numpydoc", "pydata_sphinx_theme"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the docs extra is not installed ({module}): pip install -e '.[docs]'")


def _sphinx(source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.setdefault("PYTENSORRC", str(Path.home() / ".cache" / "latentzoo" / "pytensorrc"))
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(out / ".doctrees"), *extra, str(source), str(out)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)


def _small_site(tmp_path: Path, page_name: str, page: str) -> Path:
    """A one-page site with the real conf.py, its extension and templates."""
    source = tmp_path / "site"
    source.mkdir(parents=True)
    shutil.copy(DOCS / "conf.py", source / "conf.py")
    shutil.copytree(DOCS / "_ext", source / "_ext")
    shutil.copytree(DOCS / "_templates", source / "_templates")
    (source / "_static").mkdir()
    (source / "index.md").write_text(f"# Test\n\n```{{toctree}}\n{page_name}\n```\n", encoding="utf-8")
    (source / f"{page_name}.md").write_text(page, encoding="utf-8")
    return source


LESSON_HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


@pytest.mark.slow
def test_a_lesson_that_raises_fails_the_build(tmp_path):
    _require_sphinx()
    good = _small_site(tmp_path / "good", "lesson", LESSON_HEADER + "# A lesson\n\n```{code-cell} ipython3\nx = 1 + 1\n```\n")
    assert _sphinx(good, tmp_path / "good-out").returncode == 0
    bad = _small_site(tmp_path / "bad", "lesson",
                      LESSON_HEADER + "# A lesson\n\n```{code-cell} ipython3\nraise RuntimeError('planted')\n```\n")
    done = _sphinx(bad, tmp_path / "bad-out")
    assert done.returncode != 0
    assert "planted" in done.stdout + done.stderr


@pytest.mark.slow
def test_an_unresolved_cross_reference_fails_the_build(tmp_path):
    _require_sphinx()
    page = "# API\n\n```{eval-rst}\nSee :class:`latentzoo.models.GaussianMixture` and :func:`{target}`.\n```\n"
    # a name that exists in the code resolves (to its public page, or as code); one that does not fails
    good = _small_site(tmp_path / "good", "api", page.replace("{target}", "latentzoo.inference.registry.fit"))
    done = _sphinx(good, tmp_path / "good-out")
    assert done.returncode == 0, done.stderr[-3000:]
    bad = _small_site(tmp_path / "bad", "api", page.replace("{target}", "latentzoo.inference.no_such_function"))
    done = _sphinx(bad, tmp_path / "bad-out")
    assert done.returncode != 0
    assert "no_such_function" in done.stderr


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    # CI has just run `make docs` on this checkout (every lesson executed, warnings as errors) and
    # names its output here, so the lessons are not executed a second time for these checks
    prebuilt = os.environ.get("LATENTZOO_DOCS_HTML")
    if prebuilt:
        if not (Path(prebuilt) / "index.html").is_file():
            pytest.fail(f"LATENTZOO_DOCS_HTML={prebuilt} has no index.html: run `make docs` first")
        return Path(prebuilt).resolve()  # pages are opened by file URI, which must be absolute
    _require_sphinx()
    out = tmp_path_factory.mktemp("docs-html")
    done = _sphinx(DOCS, out)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return out


# the pydata theme's script reports, with console.log, which colour mode it chose and how it
# scrolled the sidebar; Chromium prints console.log and console.error alike, so these two
# informational lines are allowed by their exact text and source, and nothing else
_THEME_NOTICE = re.compile(r'"\[PST\]: (Changed to \w+ mode using the \w+ theme\.|Scrolled sidebar using '
                           r'(last active link|stored browser position)\.\.\.)", source: \S*pydata-sphinx-theme\.js')


def _check_page(page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """What the page measured in the browser, and its console messages other than the probe."""
    text = page.read_text(encoding="utf-8")
    # the site must work offline: nothing loaded from another host
    external = re.findall(r"""<(?:script|link|img)[^>]+(?:src|href)=["'](https?://[^"']+)""", text)
    assert not external, external
    numbers, console = measure_page(text, page.with_name(f"checked-{page.name}"), tmp_path / "profile")
    return numbers, [line for line in console if not _THEME_NOTICE.search(line)]


@pytest.mark.slow
@pytest.mark.parametrize("page, min_images", [
    ("index.html", 1),                                          # the home page's picture
    ("api/generated/latentzoo.inference.fit.html", 0),          # an API page
    ("lessons/three-coins.html", 1),                            # a lesson with its figure
])
def test_rendered_pages_load_images_without_console_errors(built_site, tmp_path, page, min_images):
    numbers, console = _check_page(built_site / page, tmp_path)
    assert not console, console
    assert numbers["images"] >= min_images
    assert numbers["broken"] == 0
    assert numbers["height"] > 600


@pytest.mark.slow
def test_api_page_documents_the_function(built_site):
    text = (built_site / "api/generated/latentzoo.inference.fit.html").read_text(encoding="utf-8")
    assert 'id="latentzoo.inference.fit"' in text
    assert "Parameters" in text and "Returns" in text


@pytest.mark.slow
def test_browser_check_catches_a_missing_image(built_site, tmp_path):
    # the page check must be able to fail: the home page with its picture's file gone
    copy = tmp_path / "site"
    shutil.copytree(built_site, copy, ignore=shutil.ignore_patterns(".doctrees"))
    (copy / "_images").exists() and shutil.rmtree(copy / "_images")
    for png in (copy / "_static").glob("three_coins*.png"):
        png.unlink()
    numbers, _ = _check_page(copy / "index.html", tmp_path)
    assert numbers["broken"] >= 1
