"""What every convsuite command line does with bad input: one line on stderr, exit status 2."""

from __future__ import annotations

import typer
from rich.console import Console

from convsuite.core_ops.io import InputError

_stderr = Console(stderr=True)


def input_error_exit(error: InputError) -> typer.Exit:
    """Print ``error`` as one red ``error:`` line on stderr; return the exit to raise (status 2).

    Usage: ``except InputError as error: raise input_error_exit(error) from None``.
    """
    _stderr.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)
