"""Where the documentation lives, and the addresses of a model's lesson and API page in it.

The demo's index page and every comparison report link each model to the lesson that teaches it
and to its API page; the model names both pages
(:class:`~latentzoo.models.core.protocols.Documented`), and this module turns the names into
URLs. The site is chosen, first found first:

1. an explicit base URL (``latentzoo demo --docs-url URL``, ``Comparison.save(..., docs_url=)``);
2. the environment variable :data:`DOCS_URL_ENV` (``LATENTZOO_DOCS_URL``);
3. the site built in this source checkout (``make docs`` writes ``docs/_build/html``), as a
   ``file://`` URL, when latentzoo runs from a checkout that has built it;
4. the ``Documentation`` URL of the installed package's metadata (``[project.urls]`` in
   ``pyproject.toml``; latentzoo declares none while it has no published site, rather than
   guess an address);
5. the ``docs/`` sources of the source checkout (``file://``), read as sources: they exist
   before any build, so a fresh clone's ``make demo`` links to files that are there.

The first three are the root of a built site (HTML pages). The metadata's URL may instead point
at the ``docs/`` folder of the repository (a ``/tree/`` or ``/blob/`` address); then the links
go to the pages' sources, which a repository host renders: a lesson's ``.md`` file and the
reference page (``api/models.rst``) that lists the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCS_URL_ENV", "DocsSite", "docs_site", "local_site", "metadata_docs_url"]

#: the environment variable that names the docs site's base URL
DOCS_URL_ENV = "LATENTZOO_DOCS_URL"

#: the source checkout this module lives in, if it is one (docs/conf.py beside the packages)
_CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DocsSite:
    """A docs site's base URL and its layout.

    Parameters
    ----------
    base : str
        The site's root, with or without a trailing ``/`` (``https://...``, ``file:///...``).
    built : bool, default True
        True: the built HTML site (``lessons/<name>.html``, ``api/generated/<name>.html``).
        False: the ``docs/`` sources in a repository (``lessons/<name>.md``, and the API
        reference's source page for the model's package, ``api/models.rst``).
    """

    base: str
    built: bool = True

    def __post_init__(self):
        if not isinstance(self.base, str) or not self.base.strip():
            raise TypeError(f"base must be a non-empty URL string, got {self.base!r}")
        object.__setattr__(self, "base", self.base.strip().rstrip("/") + "/")

    def lesson_url(self, lesson: str) -> str:
        """The URL of the lesson ``lesson`` (a file name in ``docs/lessons/`` without ``.md``)."""
        return f"{self.base}lessons/{lesson}.{'html' if self.built else 'md'}"

    def api_url(self, api_page: str) -> str:
        """The URL of the API page of the public dotted name ``api_page`` (``latentzoo.models.X``)."""
        if self.built:
            return f"{self.base}api/generated/{api_page}.html"
        # the rst sources are one page per package: api/models.rst documents latentzoo.models
        package = api_page.split(".")[1] if api_page.count(".") >= 2 else api_page
        return f"{self.base}api/{package}.rst"

    def links(self, model) -> dict:
        """``{"lesson": url or None, "api": url or None}`` of ``model`` (a
        :class:`~latentzoo.models.core.protocols.Documented` model; one that is not gets None)."""
        from latentzoo.models.core.protocols import Documented

        if not isinstance(model, Documented):
            return {"lesson": None, "api": None}
        lesson, api_page = model.lesson, model.api_page
        return {"lesson": self.lesson_url(lesson) if lesson else None,
                "api": self.api_url(api_page) if api_page else None}


def local_site(checkout: Path | None = None) -> DocsSite | None:
    """The site ``make docs`` built in the source checkout (``docs/_build/html``), or None when
    latentzoo is not run from a checkout or the site was not built."""
    root = _CHECKOUT if checkout is None else Path(checkout)
    html = root / "docs" / "_build" / "html"
    if (root / "docs" / "conf.py").is_file() and (html / "index.html").is_file():
        return DocsSite(html.as_uri())
    return None


def metadata_docs_url(distribution: str = "latentzoo") -> str | None:
    """The ``Documentation`` entry of the installed package's ``Project-URL`` metadata, or None."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        entries = metadata(distribution).get_all("Project-URL") or []
    except PackageNotFoundError:
        return None
    for entry in entries:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "documentation" and url.strip():
            return url.strip()
    return None


def docs_site(docs_url: str | None = None) -> DocsSite | None:
    """The docs site to link to, chosen as the module's docstring says.

    Parameters
    ----------
    docs_url : str, optional
        An explicit base URL of a built site; wins over every other source.

    Returns
    -------
    DocsSite or None
        None only when no source names a site (no variable, no local build, no metadata, and
        not run from a source checkout).

    Raises
    ------
    TypeError
        ``docs_url`` is given and not a non-empty string.
    """
    if docs_url is not None:
        if not isinstance(docs_url, str) or not docs_url.strip():
            raise TypeError(f"docs_url must be a non-empty URL string, got {docs_url!r}")
        return DocsSite(docs_url)
    from_env = os.environ.get(DOCS_URL_ENV, "").strip()
    if from_env:
        return DocsSite(from_env)
    local = local_site()
    if local is not None:
        return local
    url = metadata_docs_url()
    if url is None:
        sources = _CHECKOUT / "docs"
        return DocsSite(sources.as_uri(), built=False) if (sources / "conf.py").is_file() else None
    # a repository's file view (GitHub, GitLab: .../tree/<branch>/docs) serves sources, not HTML
    return DocsSite(url, built=not any(part in url for part in ("/tree/", "/blob/")))
