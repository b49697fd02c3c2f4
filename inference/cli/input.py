"""What the ``latentzoo`` command reads: ``key=value`` pairs, the model, ``--data`` and per-back-end options.

Everything here turns command-line text into the library's arguments and raises
:class:`UsageError` (exit status 2) for input the command line cannot use.
"""

from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path

__all__ = ["DATA_SUFFIXES", "NotATableError", "UsageError", "check_out_file", "comparison_options", "load_data", "make_model",
           "apply_backend_options", "parse_pairs", "read_data_file", "read_table", "sequence_text", "time_series"]

DATA_SUFFIXES = (".csv", ".txt", ".tsv", ".dat", ".npy")


class UsageError(ValueError):
    """Bad command-line input (exit status 2)."""


#: cells that mean a missing value (the HMMs' text tokens: NA, NaN, ? in any case)
MISSING_CELLS = frozenset({"NA", "na", "Na", "NaN", "nan", "NAN", "?"})


class NotATableError(UsageError):
    """A text file whose rows are not a rectangular table: ragged rows, which sequences may be."""


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


def _is_file(path: Path) -> bool:
    """Whether ``path`` names a file; inline data too long for a file name is not one."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def load_data(text: str | None, model):
    """Data from ``--data``: None (the model's default data), a file path, or inline text.

    Inline text is passed to ``model.check_data`` as it is (tabs, newlines and trailing
    whitespace included), exactly as the Python API receives a string. Files: ``.npy``
    (numpy.load, no pickles), otherwise text read by :func:`read_table` (a header row is
    recognised, ``#`` comments are skipped). A one-line text file without separators
    (``1111110000``) is passed to the model as text, like inline data. A file's data that the
    model refuses are reported with the file's name.
    """
    from latentzoo.models.core.protocols import TIME_SERIES, ExampleData

    if text is None:
        # a general-purpose model (CategoricalHMM) has no example data set of its own
        if not isinstance(model, ExampleData):
            raise UsageError(f"{type(model).__name__} has no default data; give them with --data")
        return model.default_data()
    if not text.strip():
        raise UsageError("--data is empty; give inline data (e.g. 1111110000) or a data file")
    path = Path(text).expanduser()
    if _is_file(path):
        if _file_format(model) == TIME_SERIES:
            return _check_file_data(model, path, time_series(read_data_file(path), repr(str(path))))
        feature_rows = _takes_feature_rows(model)
        try:
            data = read_data_file(path, feature_rows)
        except NotATableError:
            if feature_rows:
                raise
            # sequences may be ragged and may hold missing steps (NA, ?): the model's own text
            # reader knows its rules, so it gets the file's lines
            data = sequence_text(path.read_text(encoding="utf-8-sig"))
        return _check_file_data(model, path, data)
    if _is_dir(path):
        raise UsageError(f"--data {text!r} is a directory, not a data file")
    if len(text) < 4096 and "\n" not in text and (path.suffix in DATA_SUFFIXES or os.sep in text):
        raise FileNotFoundError(f"--data file {text!r} does not exist")
    return model.check_data(text)


def _check_file_data(model, path: Path, data):
    """``model.check_data(data)``; what the model refuses is reported with the file's name."""
    try:
        return model.check_data(data)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--data {str(path)!r}: {error}") from None


def _file_format(model) -> str | None:
    from latentzoo.models.core.protocols import DataFileFormat

    return model.data_file_format if isinstance(model, DataFileFormat) else None


def time_series(values, where: str = "the data"):
    """A time-series file's contents (:data:`~latentzoo.models.core.protocols.TIME_SERIES`): one
    column of values as a 1-D array, or two columns as a pandas Series of the second indexed by
    the first (the times; a year column stays whole numbers)."""
    import numpy as np
    import pandas as pd

    if isinstance(values, str):  # a one-line file of digits: the model's own text reader
        return values
    values = np.asarray(values)
    if values.ndim == 1:
        return values
    if values.ndim != 2 or values.shape[1] != 2:
        raise UsageError(f"--data {where}: a time series is one column of values, or two columns (time, value); "
                         f"got {values.shape[1] if values.ndim == 2 else values.ndim} columns")
    return pd.Series(values[:, 1], index=values[:, 0])


def _takes_feature_rows(model) -> bool:
    """Whether the model declares its observations to be rows of named features (a table's
    columns are features, a one-column table stays 2-D) rather than flips or sequences of symbols
    (a column is the sequence); see :class:`~latentzoo.models.core.protocols.DataFileFormat`."""
    from latentzoo.models.core.protocols import FEATURE_ROWS, DataFileFormat

    return isinstance(model, DataFileFormat) and model.data_file_format == FEATURE_ROWS


def read_data_file(path: Path, feature_rows: bool = False):
    """The contents of a data file, as the model should receive them.

    Parameters
    ----------
    path : pathlib.Path
        ``.npy`` (read without pickles) or a text file: UTF-8, comma-, semicolon- or
        whitespace-separated (tabs included), ``#`` comments and blank lines skipped.
    feature_rows : bool
        True for models of rows of features (``data_file_format == "feature_rows"``: the
        Gaussian models): a table with a header
        becomes a pandas DataFrame (its columns name the features) and a one-column table stays
        2-D; False: a NumPy array, one column flattened to 1-D.

    Returns
    -------
    str, ndarray or pandas.DataFrame
        A one-line text file without separators (``1111110000``) is returned as its text.

    Raises
    ------
    UsageError
        Naming the file: not a .npy file, binary or non-UTF-8 content, no data, cells that are not
        numbers, rows of unequal length.
    """
    import numpy as np

    where = repr(str(path))
    if path.suffix == ".npy":
        with path.open("rb") as handle:
            magic = handle.read(6)
        if magic != b"\x93NUMPY":
            raise UsageError(f"--data {where} is not a .npy file (it does not start with NumPy's header); "
                             "save arrays with numpy.save, or give numbers as text (.csv, .txt)")
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise UsageError(f"--data {where} is not a readable .npy file ({error})") from None
    raw = path.read_bytes()
    if b"\0" in raw:
        raise UsageError(f"--data {where} is not a text file (it holds binary data); give numbers as text "
                         "(.csv, .txt, .tsv) or a .npy file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(f"--data {where} is not UTF-8 text (byte {error.start} cannot be decoded: "
                         f"{error.reason})") from None
    return read_table(text, where, feature_rows)


def read_table(text: str, where: str = "the data", feature_rows: bool = False):
    """Numbers from the text of a data file (see :func:`read_data_file`); a first row in which
    no cell is a number is the header (one mixing names and numbers is refused)."""
    import io

    import pandas as pd

    numbered = [(number, line.split("#", 1)[0].strip()) for number, line in enumerate(text.splitlines(), 1)]
    numbered = [(number, line) for number, line in numbered if line]
    if not numbered:
        raise UsageError(f"--data {where} holds no data (only blank lines or # comments)")
    lines = [line for _, line in numbered]
    if len(lines) == 1 and not any(separator in lines[0] for separator in (",", " ", "\t", ";")):
        return lines[0]
    content = "\n".join(lines)
    separator = "," if "," in content else ";" if ";" in content else r"\s+"
    if separator != r"\s+":
        # a trailing separator ("1,2,3,") ends the row rather than adding an empty column
        content = "\n".join(line.rstrip(separator + " \t") for line in lines)
    try:
        # keep_default_na=False: only absent cells (ragged rows) are NaN; NA and NaN tokens are read below
        cells = pd.read_csv(io.StringIO(content), sep=separator, header=None, dtype=str, skipinitialspace=True,
                            engine="python", skip_blank_lines=False, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as error:
        raise UsageError(f"--data {where}: could not read it as a table ({error})") from None
    cells = cells.apply(lambda column: column.str.strip())
    first = cells.iloc[0]
    words = pd.to_numeric(first, errors="coerce").isna() & first.notna()
    if words.any() and not words.all():
        raise UsageError(f"--data {where}: line {numbered[0][0]} mixes names and numbers ({', '.join(first.astype(str))}); "
                         "a header row names every column, and the other rows hold only numbers")
    has_header = bool(words.all())
    names = None
    if has_header:
        names = [str(name) for name in first]
        cells, numbered = cells.iloc[1:].reset_index(drop=True), numbered[1:]
        if cells.empty:
            raise UsageError(f"--data {where} holds a header ({', '.join(names)}) but no rows of numbers")
    values = cells.apply(pd.to_numeric, errors="coerce")
    missing = cells.isna()
    if missing.any().any():
        row = int(missing.any(axis=1).to_numpy().argmax())
        count = int((~missing.iloc[row]).sum())
        raise NotATableError(f"--data {where}: line {numbered[row][0]} has {count} value(s) where others have "
                         f"{cells.shape[1]}; every row needs one value per column")
    # NA, NaN and ? are read as NaN: models that marginalise missing values (the HMMs) take them,
    # the others refuse them in their own words
    bad = values.isna() & ~missing & ~cells.isin(MISSING_CELLS)
    if bad.any().any():
        row = int(bad.any(axis=1).to_numpy().argmax())
        column = int(bad.iloc[row].to_numpy().argmax())
        label = f"column {names[column]!r}" if names else f"column {column + 1}"
        raise UsageError(f"--data {where}: line {numbered[row][0]}, {label} holds {cells.iat[row, column]!r}, "
                         "not a number")
    if names is not None and feature_rows:
        values.columns = names
        return values
    array = values.to_numpy()
    return array if feature_rows or array.shape[1] > 1 else array[:, 0]


def sequence_text(text: str) -> str:
    """A data file's text as text data for a model of flips or sequences.

    ``#`` comments, blank lines and a header row of words go; semicolons separate like commas. A
    file of one value per line is one sequence (one line of text); otherwise each line stays a
    line (a sequence of an HMM, a trial of the coins), ragged or not.
    """
    lines = [line.split("#", 1)[0].replace(";", ",").strip() for line in text.splitlines()]
    rows = [line.replace(",", " ").split() for line in lines if line]
    if rows and not any(_is_number_or_missing(token) for token in rows[0]):
        rows = rows[1:]
    if all(len(row) <= 1 for row in rows):
        return " ".join(token for row in rows for token in row)
    return "\n".join(" ".join(row) for row in rows)


def _is_number_or_missing(token: str) -> bool:
    if token in MISSING_CELLS:
        return True
    try:
        float(token)
    except ValueError:
        return False
    return True


def check_out_file(out) -> None:
    """``fit --out`` must name a NetCDF file in a directory one can write into (None: nothing is
    saved); checked before the fit, so that no run is lost to a bad path. An existing file of that
    name is replaced."""
    import tempfile

    if out is None:
        return
    path = Path(out).expanduser()
    if path.suffix != ".nc":
        raise UsageError(f"--out must name a NetCDF file ending in .nc, got {out!r}")
    if _is_dir(path):
        raise UsageError(f"--out {out!r} is a directory; name a file ending in .nc")
    parent = path.parent
    if not _is_dir(parent):
        raise UsageError(f"--out {out!r}: the directory {str(parent)!r} does not exist")
    try:
        # os.access says yes to root even on a read-only file system; creating a file tells the truth
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        raise PermissionError(f"--out {out!r}: cannot write into {str(parent)!r} ({error.strerror or error})") from None


def comparison_options(model, backends, reference, defaults, draws, extra):
    """Per back-end options for the back-ends that will run: defaults, --draws, then --option.

    Options for the long NUTS reference (``--option nuts_reference.draws=4000``) are returned
    under the key ``nuts_reference``; :func:`latentzoo.inference.cli.run.run_comparison` passes
    them as ``reference_options``.
    """
    from latentzoo.inference import BACKENDS
    from latentzoo.inference.comparison.compare import resolve_backends

    names, reference = resolve_backends(model, backends, reference)
    options = {name: dict(defaults.get(name, {})) for name in names}
    if draws is not None:
        # the reference keeps its own (larger) number of draws: it is the yardstick
        for name in names:
            if name in BACKENDS and name != reference and "draws" in BACKENDS[name].options:
                options[name]["draws"] = draws
    apply_backend_options(options, extra, "compare", "nuts.chains=4")
    return names, reference, {name: value for name, value in options.items() if value}


def apply_backend_options(options: dict, extra: dict, command: str, example: str) -> None:
    """Put ``--option backend.key=value`` pairs (``extra``, from :func:`parse_pairs`) into the
    per-back-end ``options`` (back-end name -> dict, changed in place); a UsageError for a pair
    that is not ``backend.key`` or names a back-end that does not run."""
    for key, value in extra.items():
        backend, dot, option = key.partition(".")
        if not dot or not option:
            raise UsageError(f"--option for {command} is backend.key=value (e.g. {example}), got {key!r}")
        if backend not in options:
            raise UsageError(f"--option {key}: {backend!r} is not among the {command}d back-ends {list(options)}")
        options[backend][option] = value
