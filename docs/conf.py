"""Sphinx configuration of the latentzoo docs (``make docs``).

Warnings are errors (``sphinx-build -W``) and cross-references are nitpicky, so a docstring's
``:class:`` that does not resolve fails the build. The lessons are MyST notebooks, executed by
myst-nb at every build; a cell that raises fails it.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

# The lessons' kernels inherit this process's environment. `make` exports MPLBACKEND=Agg for the
# demo and the tests; in a kernel that would hide every figure, so the kernel gets the inline one.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"

project = "latentzoo"
author = "the latentzoo developers"
copyright = "latentzoo developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_nb",
    "latentzoo_xref",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "make_figures.py"]
templates_path = ["_templates"]

# --- API reference -------------------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters section states the types, with shapes
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # autodoc lists the members; numpydoc's table would repeat them
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Every :class:/:func:/:meth: must resolve; without network access there is no intersphinx, so
# references into other projects' docs are plain names and listed here.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|scipy|pandas|pd|xarray|xr|arviz|az|arviz_\w+|pymc|pm|pytensor|dask|da|distributed|"
               r"matplotlib|plt|sklearn|hmmlearn|jax|numpyro|blackjax|joblib|jinja2)(\..*)?"),
]

# --- MyST and the lessons --------------------------------------------------------------------
# No MathJax: it would load from a CDN, and the site must work offline (formulas are written as
# code, as in the docstrings)
myst_enable_extensions = ["colon_fence"]
nb_execution_mode = "cache"          # a lesson reruns when its text changes
nb_execution_timeout = 240           # seconds per cell
nb_execution_raise_on_error = True   # a lesson that raises fails the build
nb_execution_show_tb = True
nb_execution_cache_path = os.path.join(os.path.dirname(__file__), "_build", ".jupyter_cache")
nb_merge_streams = True

# --- HTML -------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "latentzoo"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_show_sourcelink = False
# without a default the theme's script logs "Got invalid theme mode" on every page
html_context = {"default_mode": "auto"}
