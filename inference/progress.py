"""Progress bars for the hand-written back-ends, in the style of PyMC's (rich)."""

from __future__ import annotations

import contextlib

__all__ = ["progress_bar"]


class _Silent:
    def advance(self, steps: int = 1, **fields) -> None:
        pass

    def update(self, **fields) -> None:
        pass


class _RichTask:
    def __init__(self, progress, task_id):
        self._progress = progress
        self._task_id = task_id

    def advance(self, steps: int = 1, **fields) -> None:
        self._progress.update(self._task_id, advance=steps, **fields)

    def update(self, **fields) -> None:
        self._progress.update(self._task_id, **fields)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True):
    """Yield an object with ``advance()``; a rich bar when ``enabled``, silent otherwise.

    The bar shows ``status`` text (e.g. the current objective) next to the count.
    """
    if not enabled:
        yield _Silent()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, transient=False) as progress:
        task_id = progress.add_task(description, total=total, status="")
        yield _RichTask(progress, task_id)
