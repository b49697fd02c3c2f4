"""The links from the demo's index and the reports to the docs: each registered model names its
lesson and API page (``Documented``), both pages exist in ``docs/``, and the site the links point
at is chosen in the documented order (explicit URL, ``LATENTZOO_DOCS_URL``, a local build, the
package's metadata). No docs build is needed: the pages are checked in the sources; a site built
by ``make docs`` is checked too when one is there."""

from __future__ import annotations

import os

import re
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlparse

import pytest

from latentzoo.inference import docs_links
from latentzoo.inference.docs_links import DOCS_URL_ENV, DocsSite, docs_site
from latentzoo.models import MODELS, ThreeCoins
from latentzoo.models.core.protocols import Documented

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _lessons_in_toctree() -> set[str]:
    text = (DOCS / "lessons" / "index.md").read_text(encoding="utf-8")
    toctree = text.split("```{toctree}", 1)[1].split("```", 1)[0]
    return {line.strip() for line in toctree.splitlines() if line.strip() and not line.strip().startswith(":")}


def _api_listed() -> set[str]:
    """Dotted names that an autosummary in docs/api/*.rst lists (and so gets a generated page)."""
    listed = set()
    for path in (DOCS / "api").glob("*.rst"):
        current = None
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"\.\. currentmodule:: (\S+)", line.strip())
            if match:
                current = match.group(1)
            elif current and re.fullmatch(r"\s+[A-Za-z_]\w*", line):
                listed.add(f"{current}.{line.strip()}")
    return listed


def check_declared_pages(models: dict) -> None:
    lessons, api = _lessons_in_toctree(), _api_listed()
    for name, cls in models.items():
        model = cls()
        assert isinstance(model, Documented), name
        if model.lesson is not None:
            assert (DOCS / "lessons" / f"{model.lesson}.md").is_file(), f"{name}: no docs/lessons/{model.lesson}.md"
            assert model.lesson in lessons, f"{name}: lesson {model.lesson!r} is not in the lessons' toctree"
        assert model.api_page is not None, f"{name} is public and has no API page"
        assert model.api_page in api, f"{name}: {model.api_page} is not listed in docs/api/*.rst"
        # the public path works, so the page documents the class users import
        module, _, attribute = model.api_page.rpartition(".")
        assert getattr(__import__(module, fromlist=[attribute]), attribute) is cls


def test_every_registered_model_names_pages_that_exist():
    check_declared_pages(MODELS)


def test_models_with_lessons_name_them():
    # the lessons that teach a registered model say so (a model that lost its lesson would be missed)
    taught = {name: cls.lesson for name, cls in MODELS.items() if cls.lesson}
    assert {"three-coins", "gmm", "dice-hmm", "gaussian-hmm", "local-level"} <= set(taught)


@pytest.mark.parametrize("broken", [{"lesson": "no-such-lesson"}, {"api_page": "latentzoo.models.NoSuchModel"},
                                    {"api_page": None}])
def test_the_page_check_fails_on_a_missing_page(broken):
    Broken = type("Broken", (ThreeCoins,), broken)
    with pytest.raises(AssertionError):
        check_declared_pages({"broken": Broken})


def test_built_and_source_layouts():
    built = DocsSite("https://example.org/latentzoo")
    assert built.links(ThreeCoins()) == {
        "lesson": "https://example.org/latentzoo/lessons/three-coins.html",
        "api": "https://example.org/latentzoo/api/generated/latentzoo.models.ThreeCoins.html"}
    source = DocsSite("https://example.org/repo/tree/main/docs/", built=False)
    assert source.links(ThreeCoins()) == {"lesson": "https://example.org/repo/tree/main/docs/lessons/three-coins.md",
                                          "api": "https://example.org/repo/tree/main/docs/api/models.rst"}
    # in the sources, the page that lists the model is a file
    assert (DOCS / "api" / "models.rst").is_file()
    assert DocsSite("x").links(SimpleNamespace()) == {"lesson": None, "api": None}
    with pytest.raises(TypeError, match="base"):
        DocsSite("  ")


def test_the_site_is_chosen_in_the_documented_order(monkeypatch, tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "docs" / "_build" / "html").mkdir(parents=True)
    (checkout / "docs" / "conf.py").write_text("")
    monkeypatch.setattr(docs_links, "_CHECKOUT", checkout)
    monkeypatch.setattr(docs_links, "metadata_docs_url", lambda: "https://example.org/repo/blob/main/docs")
    monkeypatch.delenv(DOCS_URL_ENV, raising=False)
    # nothing built: the metadata's repository address, read as sources
    assert docs_site() == DocsSite("https://example.org/repo/blob/main/docs", built=False)
    # a local build wins over the metadata
    (checkout / "docs" / "_build" / "html" / "index.html").write_text("<html></html>")
    local = docs_site()
    assert local.built and local.base.startswith("file://")
    assert Path(unquote(urlparse(local.base).path)) == checkout / "docs" / "_build" / "html"
    # the variable wins over the build, the explicit URL over everything
    monkeypatch.setenv(DOCS_URL_ENV, "https://env.example/")
    assert docs_site() == DocsSite("https://env.example")
    assert docs_site("https://flag.example") == DocsSite("https://flag.example")
    with pytest.raises(TypeError, match="docs_url"):
        docs_site("")
    # a hosted site named in the metadata is a built one; no source at all: no links
    monkeypatch.delenv(DOCS_URL_ENV)
    (checkout / "docs" / "_build" / "html" / "index.html").unlink()
    monkeypatch.setattr(docs_links, "metadata_docs_url", lambda: "https://latentzoo.example/")
    assert docs_site() == DocsSite("https://latentzoo.example/")
    monkeypatch.setattr(docs_links, "metadata_docs_url", lambda: None)
    # nothing named: the checkout's docs sources, which exist before any build
    sources = docs_site()
    assert not sources.built
    assert Path(unquote(urlparse(sources.base).path)) == checkout / "docs"
    assert Path(unquote(urlparse(sources.lesson_url("casino")).path)) == checkout / "docs" / "lessons" / "casino.md"
    # not a checkout either: no links
    (checkout / "docs" / "conf.py").unlink()
    assert docs_site() is None


def test_demo_index_links_each_models_lesson_and_api_page(tmp_path):
    from latentzoo.inference.cli.demo import render_demo_index

    site = DocsSite("https://docs.example")
    names = ("three-coins", "poisson-mixture")
    outcomes = {name: SimpleNamespace(report=f"{name}/report.html", class_name=MODELS[name].__name__, summary="s")
                for name in names}
    page = render_demo_index(outcomes, False, True, docs={name: site.links(MODELS[name]()) for name in names})
    assert re.findall(r"class='lesson' href='([^']+)'", page) == ["https://docs.example/lessons/three-coins.html"]
    assert re.findall(r"class='api' href='([^']+)'", page) == [
        "https://docs.example/api/generated/latentzoo.models.ThreeCoins.html",
        "https://docs.example/api/generated/latentzoo.models.PoissonMixture.html"]


def test_report_links_the_models_lesson_and_api_page(tmp_path, monkeypatch):
    from latentzoo.inference import compare
    from latentzoo.inference.comparison.report import render_html

    from .conftest import SEED_FLIPS

    result = compare(ThreeCoins(), SEED_FLIPS, backends=("em", "exact"), random_seed=0, progressbar=False,
                     options={"exact": {"draws": 200}})
    page = render_html(result, images={}, docs_url="https://docs.example/")
    assert re.findall(r'class="lesson" href="([^"]+)"', page) == ["https://docs.example/lessons/three-coins.html"]
    assert re.findall(r'class="api" href="([^"]+)"', page) == [
        "https://docs.example/api/generated/latentzoo.models.ThreeCoins.html"]
    # by default the variable names the site, and the saved report carries the links
    monkeypatch.setenv(DOCS_URL_ENV, "file:///somewhere/html")
    report = result.save(tmp_path / "report").read_text(encoding="utf-8")
    assert 'href="file:///somewhere/html/lessons/three-coins.html"' in report
    with pytest.raises(TypeError, match="docs_url"):
        result.save(tmp_path / "other", docs_url=3)
    assert not (tmp_path / "other").exists()


def _assert_every_link_is_a_file(site):
    for name, cls in MODELS.items():
        for url in site.links(cls()).values():
            if url is not None:
                assert Path(unquote(urlparse(url).path)).is_file(), f"{name}: {url}"


def test_every_linked_page_exists_in_the_docs_sources():
    """The links a fresh clone gets (no build yet): every model's lesson and API page is a file."""
    _assert_every_link_is_a_file(DocsSite((ROOT / "docs").as_uri(), built=False))


@pytest.mark.slow
def test_every_linked_page_exists_in_the_built_site():
    """In the site ``make docs`` built (CI's slow part names it in LATENTZOO_DOCS_HTML, and then it
    must exist), every model's links resolve to files."""
    prebuilt = os.environ.get("LATENTZOO_DOCS_HTML")
    html = Path(prebuilt) if prebuilt else ROOT / "docs" / "_build" / "html"
    html = html if html.is_absolute() else ROOT / html
    if not (html / "index.html").is_file():
        if prebuilt:
            pytest.fail(f"LATENTZOO_DOCS_HTML={prebuilt} has no index.html: run `make docs` first")
        pytest.skip("no docs/_build/html (run make docs)")
    _assert_every_link_is_a_file(DocsSite(html.as_uri()))


def test_demo_docs_url_flag_reaches_the_index(tmp_path, monkeypatch):
    """``latentzoo demo --docs-url`` (the models' runs replaced by a stand-in: only the page is
    under test)."""
    import latentzoo.models as models
    from latentzoo.inference.cli import demo as cli_demo
    from latentzoo.inference.cli.commands import main

    monkeypatch.setattr(models, "MODELS", {"three-coins": ThreeCoins})
    seen = {}

    def one_model(model_name, args, out, **display):
        seen["docs_url"] = args.docs_url  # what the real run hands to Comparison.save
        return SimpleNamespace(class_name="ThreeCoins", report=f"{model_name}/report.html", summary="s",
                               printed="", seconds=0.0)

    monkeypatch.setattr(cli_demo, "_demo_one", one_model)
    assert main(["demo", "--out", str(tmp_path), "--quick", "--docs-url", "https://flag.example/site"]) == 0
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "href='https://flag.example/site/lessons/three-coins.html'" in index
    assert "href='https://flag.example/site/api/generated/latentzoo.models.ThreeCoins.html'" in index
    assert seen["docs_url"] == "https://flag.example/site"
