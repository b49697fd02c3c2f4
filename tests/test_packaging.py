"""pyproject.toml lists its packages by hand (a package-dir mapping: ``models`` installs as
``latentzoo.models``), so a new sub-package that is not listed installs nowhere in a normal
(non-editable) install while every test, run from the checkout, still passes. This catches that."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def listed_packages() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def python_packages() -> set[str]:
    found = set()
    for top in ("models", "inference"):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            found.add(".".join(("latentzoo", *parts)))
    return found


def test_every_python_package_is_listed_in_pyproject():
    missing = python_packages() - listed_packages()
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_the_check_sees_a_package_left_out():
    assert "latentzoo.models.families" in python_packages()
    assert python_packages() - (listed_packages() - {"latentzoo.models.families"})
