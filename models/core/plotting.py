"""The look the models' pictures share with the comparison's figures.

A model draws its own picture (:class:`~latentzoo.models.core.protocols.Pictured`) from a finished
comparison. These helpers give it the same figure style, result order and colours as the
comparison's figures in :mod:`latentzoo.inference.comparison.plots`, which imports them from here:
``models`` never imports ``inference``. Only matplotlib is used, and only when a figure is drawn.

The ``comparison`` argument is read through two attributes, ``idatas`` (result name -> DataTree,
in the comparison's order) and ``reference`` (the name of the reference result, or None).
"""

from __future__ import annotations

__all__ = ["new_figure", "result_order", "result_styles"]


def new_figure(width: float, height: float):
    """An empty figure of ``width`` x ``height`` inches with constrained layout, without pyplot."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def result_order(comparison) -> list[str]:
    """Result names with the reference first, then in the comparison's order."""
    names = list(comparison.idatas)
    if comparison.reference in comparison.idatas:
        names.remove(comparison.reference)
        names.insert(0, comparison.reference)
    return names


def result_styles(comparison) -> dict[str, dict]:
    """A fixed colour (and dashed line for point estimates) per result, shared by every figure."""
    styles = {}
    for i, name in enumerate(comparison.idatas):
        if name == comparison.reference:
            styles[name] = {"color": "#222222", "lw": 2.2, "ls": "-"}
        else:
            styles[name] = {"color": f"C{i % 10}", "lw": 1.4, "ls": "-"}
    return styles
