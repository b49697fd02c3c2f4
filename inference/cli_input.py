"""What the ``latentzoo`` command reads: ``key=value`` pairs, the model, ``--data`` and per-back-end options.

Everything here turns command-line text into the library's arguments and raises
:class:`UsageError` (exit status 2) for input the command line cannot use.
"""

from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path

__all__ = ["DATA_SUFFIXES", "UsageError", "check_out_file", "comparison_options", "load_data", "make_model",
           "parse_pairs"]

DATA_SUFFIXES = (".csv", ".txt", ".tsv", ".dat", ".npy")


class UsageError(ValueError):
    """Bad command-line input (exit status 2)."""


def _parse_value(text: str):
    """``"4"`` -> 4, ``"(1, 2)"`` -> (1, 2), ``"True"`` -> True; anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_pairs(pairs, flag: str) -> dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``."""
    result = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} expects key=value, got {pair!r}")
        result[key] = _parse_value(value.strip())
    return result


def make_model(name: str, params: dict):
    """The model registered as ``name``, built with the ``--param`` values ``params``."""
    from latentzoo.models import MODELS

    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}; models: {', '.join(MODELS)} (see `latentzoo list`)")
    cls = MODELS[name]
    if dataclasses.is_dataclass(cls):
        valid = [field.name for field in dataclasses.fields(cls) if field.init]
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise UsageError(f"unknown --param {', '.join(unknown)} for {name}; valid: {', '.join(valid)}")
    return cls(**params)


def load_data(text: str | None, model):
    """Data from ``--data``: None (the model's default data), a file path, or inline text.

    Files: ``.npy`` (numpy.load), otherwise text read with numpy.loadtxt (comma- or
    whitespace-separated). A one-line text file without separators (``1111110000``) is passed
    to the model as text, like inline data.
    """
    import numpy as np

    from latentzoo.models.protocols import ExampleData

    if text is None:
        # a general-purpose model (CategoricalHMM) has no example data set of its own
        if not isinstance(model, ExampleData):
            raise UsageError(f"{type(model).__name__} has no default data; give them with --data")
        return model.default_data()
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix == ".npy":
            return model.check_data(np.load(path, allow_pickle=False))
        content = path.read_text().strip()
        lines = [line.strip() for line in content.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if len(lines) == 1 and not any(sep in lines[0] for sep in (",", " ", "\t", ";")):
            return model.check_data(lines[0])
        delimiter = "," if "," in content else None
        try:
            array = np.loadtxt(path, delimiter=delimiter, ndmin=1)
        except ValueError as error:
            raise UsageError(f"could not read numbers from {str(path)!r}: {error}") from None
        return model.check_data(array)
    if path.is_dir():
        raise UsageError(f"--data {text!r} is a directory, not a data file")
    if path.suffix in DATA_SUFFIXES or os.sep in text:
        raise FileNotFoundError(f"--data file {text!r} does not exist")
    return model.check_data(text)


def check_out_file(out) -> None:
    """``fit --out`` must name a NetCDF file (None: nothing is saved)."""
    if out is not None and Path(out).suffix != ".nc":
        raise UsageError(f"--out must name a NetCDF file ending in .nc, got {out!r}")


def comparison_options(model, backends, reference, defaults, draws, extra):
    """Per back-end options for the back-ends that will run: defaults, --draws, then --option.

    Options for the long NUTS reference (``--option nuts_reference.draws=4000``) are returned
    under the key ``nuts_reference``; :func:`latentzoo.inference.cli_run.run_comparison` passes
    them as ``reference_options``.
    """
    from latentzoo.inference import BACKENDS
    from latentzoo.inference.compare import resolve_backends

    names, reference = resolve_backends(model, backends, reference)
    options = {name: dict(defaults.get(name, {})) for name in names}
    if draws is not None:
        # the reference keeps its own (larger) number of draws: it is the yardstick
        for name in names:
            if name in BACKENDS and name != reference and "draws" in BACKENDS[name].options:
                options[name]["draws"] = draws
    for key, value in extra.items():
        backend, dot, option = key.partition(".")
        if not dot or not option:
            raise UsageError(f"--option for compare is backend.key=value (e.g. nuts.chains=4), got {key!r}")
        if backend not in names:
            raise UsageError(f"--option {key}: {backend!r} is not among the compared back-ends {names}")
        options[backend][option] = value
    return names, reference, {name: value for name, value in options.items() if value}
