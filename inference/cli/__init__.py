"""The ``latentzoo`` command line: parsing, reading data files, running, printing, and the demo."""

from .commands import main

__all__ = ["main"]
