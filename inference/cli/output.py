"""What the ``latentzoo`` command shows on the terminal: rich tables fitted to its width, status
lines per back-end, and JSON records.

The cli* modules are the only ones that print; everything they show comes from the library's
return values.
"""

from __future__ import annotations

import os
import sys

__all__ = ["TABLE_VIEW", "StatusLines", "make_console", "print_comparison", "print_json", "print_json_error",
           "rich_table"]

TABLE_VIEW = ("backend", "parameter", "mean", "sd", "hdi", "error_in_ref_sd", "sd_ratio", "ess_bulk", "r_hat",
              "runtime_s")

# rough widths of the table's columns, and the order in which a narrow terminal drops them
_COLUMN_WIDTHS = {"backend": 15, "parameter": 14, "mean": 8, "sd": 8, "hdi": 18, "error_in_ref_sd": 12,
                  "sd_ratio": 7, "ess_bulk": 7, "r_hat": 7, "runtime_s": 8}
_DROP_ORDER = ("runtime_s", "r_hat", "ess_bulk", "sd_ratio", "sd")


def save_netcdf(idata, path) -> None:
    """Write ``idata`` to ``path`` through a temporary file in the same directory, moved into
    place when whole: a failed or interrupted write leaves an earlier file at ``path`` as it was
    and no partial file behind."""
    from pathlib import Path

    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        idata.to_netcdf(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def make_console(stderr: bool = False):
    """A rich Console on stdout (or stderr) that keeps table rows whole when piped."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped output is not bound by a terminal's width; rich's default of 80 would truncate tables
    width = None if stream.isatty() or "COLUMNS" in os.environ else 120
    return Console(stderr=stderr, highlight=False, width=width)


def format_value(value, digits: int = 3) -> str:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits + 1}g}"
    return str(value)


def rich_table(table, title: str, columns=TABLE_VIEW):
    """A rich Table of a comparison table (a pandas DataFrame), showing ``columns``."""
    import math

    from rich import box
    from rich.table import Table

    headers = {"error_in_ref_sd": "err/ref_sd", "ess_bulk": "ess", "runtime_s": "time_s", "hdi": "94% hdi",
               "sd_ratio": "sd/ref"}
    view = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        left = column in ("backend", "parameter")
        view.add_column(headers.get(column, column), justify="left" if left else "right", no_wrap=True)
    previous = None
    for _, row in table.iterrows():
        cells = []
        for column in columns:
            if column == "backend":
                text = row["backend"] if row["backend"] != previous else ""
                if text and not row["converged"]:
                    text = f"[yellow]{text}*[/]"
                cells.append(text)
            elif column == "hdi":
                interval = f"[{format_value(row['hdi_3%'])}, {format_value(row['hdi_97%'])}]"
                cells.append("–" if math.isnan(row["hdi_3%"]) else interval)
            elif column == "error_in_ref_sd":
                value = row[column]
                text = "–" if math.isnan(value) else f"{value:+.2f}"
                cells.append(f"[red]{text}[/]" if not math.isnan(value) and abs(value) > 1 else text)
            elif column == "sd_ratio":
                value = row[column]
                text = "–" if math.isnan(value) else f"{value:.2f}"
                cells.append(f"[yellow]{text}[/]" if not math.isnan(value) and value < 0.8 else text)
            elif column == "ess_bulk":
                cells.append("–" if math.isnan(row[column]) else f"{row[column]:.0f}")
            elif column == "runtime_s":
                cells.append(f"{row[column]:.2f}")
            else:
                cells.append(format_value(row[column]))
        if previous is not None and row["backend"] != previous:
            view.add_section()
        view.add_row(*cells)
        previous = row["backend"]
    return view


def _json_value(value):
    """One cell as a JSON value: a number with every digit (the shortest text that reads back as
    the same float), a missing or non-finite number as null (JSON has no NaN)."""
    import math
    import numbers

    import numpy as np
    import pandas as pd

    if isinstance(value, bool | np.bool_):
        return bool(value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    return value


def print_json(table) -> None:
    """Print a comparison table (a pandas DataFrame) on stdout as a JSON list of records.

    Numbers keep every digit (pandas' own writer rounds to a fixed number of decimals, which
    left one significant digit of a probability of 1e-10); NaN is written as null.
    """
    import json

    records = [{column: _json_value(value) for column, value in record.items()}
               for record in table.to_dict(orient="records")]
    sys.stdout.write(json.dumps(records, indent=2, allow_nan=False))
    sys.stdout.write("\n")


def print_json_error(kind: str, message: str, **details) -> None:
    """Print ``{"error": {"type": kind, "message": message}, **details}`` on stdout: what a
    ``--json`` reader gets instead of the table when the command fails."""
    import json

    record = {"error": {"type": kind, "message": message}, **details}
    sys.stdout.write(json.dumps(record, indent=2, default=str))
    sys.stdout.write("\n")
    sys.stdout.flush()


class StatusLines:
    """Callback for :func:`compare`: a spinner line per back-end with its elapsed time."""

    def __init__(self, console):
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(finished_text="[green]✓[/]"), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.tasks = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def __call__(self, backend, event, detail):
        if event == "start":
            self.tasks[backend] = self.progress.add_task(f"running {backend}...", total=1)
        elif event == "done":
            self.progress.update(self.tasks[backend], completed=1, description=f"{backend} ({detail:.1f} s)")
        else:
            self.progress.update(self.tasks[backend], completed=1, description=f"[red]{backend} failed[/]")


def _fitting_columns(width: int, columns=TABLE_VIEW) -> tuple[str, ...]:
    columns = list(columns)
    for column in _DROP_ORDER:
        if sum(_COLUMN_WIDTHS.get(c, 8) for c in columns) <= width:
            break
        columns.remove(column)
    return tuple(columns)


def print_comparison(result, title: str, console=None) -> None:
    """Print a :class:`~latentzoo.inference.Comparison`: its table (as many columns as fit),
    failures, warnings and summary."""
    console = console or make_console()
    columns = _fitting_columns(console.width)
    console.print(rich_table(result.table, title, columns))
    if len(columns) < len(TABLE_VIEW):
        console.print(f"[dim](narrow terminal: left out {', '.join(c for c in TABLE_VIEW if c not in columns)}; "
                      "see --json or the saved table.csv)[/]")
    if any(not ok for ok in result.table["converged"]):
        console.print("[yellow]*[/] did not converge by its own criterion")
    for backend, message in result.failures.items():
        console.print(f"[red]failed[/] {backend}: {message}")
    for backend, messages in result.warnings.items():
        for message in messages:
            # back-ends usually name themselves in their warnings already
            shown = message if message.startswith(f"{backend}:") else f"{backend}: {message}"
            console.print(f"[yellow]warning[/] {shown}")
    console.print()
    console.print(result.summary())
