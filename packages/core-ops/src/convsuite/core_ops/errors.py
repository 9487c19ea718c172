"""The one error type for bad user input. Importing it costs nothing (no torch), so command-line
front ends can catch it before any heavy import."""

from __future__ import annotations

import os

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad user input: the message is one line that names the file and what is wrong with it.

    CLIs catch it, print the message and exit with status 2 (:func:`convsuite.core_ops.cli.run`).

    Args:
        source: the file (or argument) the problem was found in.
        problem: what is wrong, in the user's words ("Nside 100 is not a power of 2").
    """

    def __init__(self, source: str | os.PathLike[str], problem: str) -> None:
        self.source = str(source)
        self.problem = " ".join(str(problem).split())  # one line, whatever the library said
        super().__init__(f"{self.source}: {self.problem}")
