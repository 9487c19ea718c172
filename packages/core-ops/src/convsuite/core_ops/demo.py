"""``convsuite-demo``: run the demo of every installed convsuite package and index the results.

Each package registers a demo in the entry-point group ``convsuite.demos`` (``name =
"module:function"``); the function takes the folder it may write to and returns a
:class:`DemoResult`. The runner gives demo ``name`` the folder ``<out>/<name>/``, writes
``summary.json`` there, and writes ``<out>/index.html`` showing every demo's figures, key figures
and a link to its summary. A demo that fails is reported in the index and makes the exit status 1;
the other demos still run.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from convsuite.core_ops.cli import run
from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_write

__all__ = [
    "ENTRY_POINT_GROUP",
    "DemoOutcome",
    "DemoResult",
    "app",
    "discover_demos",
    "main",
    "run_demos",
    "write_index",
]

ENTRY_POINT_GROUP = "convsuite.demos"
_LOG = logging.getLogger(__name__)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class DemoResult:
    """What a package's demo returns to the runner.

    Args:
        title: one line shown as the demo's heading.
        summary: the key figures (JSON-serializable; NumPy/torch scalars are accepted), e.g.
            ``{"held_out_accuracy": 0.93, "chance": 0.33}``. Scalars and one level of nested dicts
            are shown as a table in the index.
        figures: PNG files the demo wrote, normally inside the folder it was given.
        description: a few sentences on what the demo did and what the figures show.
    """

    title: str
    summary: dict[str, Any]
    figures: list[Path]
    description: str


DemoFunction = Callable[[Path], DemoResult]


@dataclass
class DemoOutcome:
    """How one demo went: its result, or the one-line error and traceback it failed with."""

    name: str
    seconds: float
    result: DemoResult | None = None
    error: str | None = None
    details: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


def discover_demos() -> dict[str, Callable[[], DemoFunction]]:
    """Installed demos, by entry-point name, each as a loader returning its run function.

    Loading is deferred to the run so that a package whose import fails becomes a failed demo
    instead of stopping the runner.
    """
    found = entry_points(group=ENTRY_POINT_GROUP)
    return {ep.name: ep.load for ep in sorted(found, key=lambda ep: ep.name)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # NumPy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _run_one(name: str, load: Callable[[], DemoFunction], out_dir: Path) -> DemoOutcome:
    start = time.perf_counter()
    try:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"demo name {name!r} is not usable as a folder name")
        demo_dir = out_dir / name
        demo_dir.mkdir(parents=True, exist_ok=True)
        (demo_dir / "summary.json").unlink(missing_ok=True)  # never leave a stale one behind
        result = load()(demo_dir)
        if not isinstance(result, DemoResult):
            raise TypeError(f"demo returned {type(result).__name__}, expected DemoResult")
        missing = [str(p) for p in result.figures if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"demo listed figures it did not write: {', '.join(missing)}")
        seconds = time.perf_counter() - start
        record = {
            "demo": name,
            "title": result.title,
            "description": result.description,
            "seconds": round(seconds, 3),
            "figures": [
                os.path.relpath(Path(p).resolve(), demo_dir.resolve()) for p in result.figures
            ],
            "summary": result.summary,
        }
        text = json.dumps(record, indent=2, default=_jsonable)
        with atomic_write(demo_dir / "summary.json") as handle:
            handle.write(text + "\n")
        return DemoOutcome(name, seconds, result=result)
    except Exception as error:  # a failing demo is reported, the others still run
        _LOG.debug("demo %s failed", name, exc_info=True)
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        return DemoOutcome(
            name, time.perf_counter() - start, error=message, details=traceback.format_exc()
        )


def run_demos(
    out_dir: str | os.PathLike[str],
    only: Sequence[str] | None = None,
    console: Console | None = None,
) -> list[DemoOutcome]:
    """Run the installed demos (all, or those named in ``only``) and write ``out_dir/index.html``.

    Args:
        out_dir: the output folder; demo ``name`` writes into ``out_dir/name``.
        only: names of the demos to run, in this order; None runs every installed demo.
        console: where progress goes (a quiet console in tests).

    Returns:
        One outcome per demo run, in run order.

    Raises:
        InputError: a name in ``only`` is not an installed demo.
    """
    out_dir = Path(out_dir)
    console = console or Console()
    demos = discover_demos()
    names = list(demos) if only is None else list(dict.fromkeys(only))
    unknown = [name for name in names if name not in demos]
    if unknown:
        installed = ", ".join(demos) or "none"
        raise InputError("--only", f"no demo named {unknown[0]!r} (installed: {installed})")
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for index, name in enumerate(names, start=1):
        console.rule(f"[bold]{escape(name)}[/] ({index}/{len(names)})")
        outcome = _run_one(name, demos[name], out_dir)
        if outcome.ok:
            title = escape(outcome.result.title)
            console.print(f"[green]✓[/] {escape(name)}: {title} ({outcome.seconds:.1f} s)")
        else:
            error = escape(outcome.error or "")
            console.print(f"[red]✗ {escape(name)} failed[/] after {outcome.seconds:.1f} s: {error}")
        outcomes.append(outcome)
    write_index(out_dir, outcomes)
    return outcomes


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) and value != int(value) else f"{value:g}"
    if isinstance(value, list):
        return ", ".join(_format(v) for v in value)
    return str(value)


def _key_figures(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows for the index table: scalars, short lists, and one level of nested dicts."""
    rows: list[tuple[str, str]] = []
    summary = json.loads(json.dumps(summary, default=_jsonable))  # plain Python values only

    def add(key: str, value: Any) -> None:
        if isinstance(value, list):
            if len(value) <= 8 and all(not isinstance(v, (dict, list)) for v in value):
                rows.append((key, _format(value)))
        elif not isinstance(value, dict):
            rows.append((key, _format(value)))

    for key, value in summary.items():
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                add(f"{key}.{sub_key}", sub_value)
        else:
            add(str(key), value)
    return rows


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; }
section { border-top: 1px solid #ccc; padding-top: 1rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
td { border: 1px solid #ddd; padding: 0.2rem 0.6rem; }
td:first-child { font-family: monospace; }
img { max-width: 32rem; margin: 0.5rem 1rem 0.5rem 0; vertical-align: top; }
.failed { color: #b00; }
pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }
"""


def _section(outcome: DemoOutcome, out_dir: Path) -> str:
    name = html.escape(outcome.name)
    if not outcome.ok:
        return (
            f'<section id="{name}"><h2 class="failed">{name}: failed</h2>\n'
            f"<p>{html.escape(outcome.error or '')}</p>\n"
            f"<pre>{html.escape(outcome.details)}</pre></section>"
        )
    result = outcome.result
    root = out_dir.resolve()
    rows = "\n".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in _key_figures(result.summary)
    )
    images = "\n".join(
        '<a href="{0}"><img src="{0}" alt="{1}"></a>'.format(
            html.escape(Path(os.path.relpath(Path(p).resolve(), root)).as_posix(), quote=True),
            html.escape(Path(p).stem, quote=True),
        )
        for p in result.figures
    )
    return (
        f'<section id="{name}"><h2>{name}: {html.escape(result.title)}</h2>\n'
        f"<p>{html.escape(result.description)}</p>\n"
        f"<table>{rows}</table>\n"
        f'<p><a href="{name}/summary.json">{name}/summary.json</a> '
        f"({outcome.seconds:.1f} s)</p>\n{images}</section>"
    )


def write_index(out_dir: str | os.PathLike[str], outcomes: Sequence[DemoOutcome]) -> Path:
    """Write ``out_dir/index.html`` (atomically) for ``outcomes``; returns its path.

    Figure links are relative to ``out_dir``, so the folder can be moved or served as is.
    """
    out_dir = Path(out_dir)
    failed = sum(not o.ok for o in outcomes)
    ran = f"{len(outcomes)} demo{'' if len(outcomes) == 1 else 's'}"
    status = f"{ran}, {failed} failed" if failed else f"{ran}, none failed"
    contents = "\n".join(
        f'<li><a href="#{html.escape(o.name)}">{html.escape(o.name)}</a>'
        f"{'' if o.ok else ' <span class=failed>(failed)</span>'}</li>"
        for o in outcomes
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>convsuite demos</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>convsuite demos</h1>\n<p>{status}.</p>\n<ul>{contents}</ul>\n"
        + "\n".join(_section(o, out_dir) for o in outcomes)
        + "\n</body></html>\n"
    )
    target = out_dir / "index.html"
    with atomic_write(target) as handle:
        handle.write(page)
    return target


app = typer.Typer(add_completion=False, rich_markup_mode="rich")


@app.command(
    epilog="Example: [bold]convsuite-demo --out demo-output --only core-ops[/], then open "
    "demo-output/index.html in a browser."
)
def demo(
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Output folder.")] = Path(
        "demo-output"
    ),
    only: Annotated[
        list[str] | None,
        typer.Option("--only", metavar="NAME", help="Run only this demo (repeatable). See --list."),
    ] = None,
    list_demos: Annotated[
        bool, typer.Option("--list", help="List the installed demos and exit.")
    ] = False,
) -> None:
    """Run the demo of every installed convsuite package and write OUT/index.html.

    Demos are found in the entry-point group convsuite.demos. Each writes its figures and a
    summary.json into OUT/NAME/; the index shows them all. Exit status 1 if any demo failed.
    """
    console = Console()
    if list_demos:
        for name in discover_demos():
            console.print(name)
        return
    outcomes = run_demos(out, only=only or None, console=console)
    if not outcomes:
        console.print(f"no convsuite demos are installed (entry-point group {ENTRY_POINT_GROUP})")
        raise typer.Exit(1)
    table = Table("demo", "status", "seconds")
    for outcome in outcomes:
        status = "[green]ok[/]" if outcome.ok else f"[red]failed[/]: {escape(outcome.error or '')}"
        table.add_row(outcome.name, status, f"{outcome.seconds:.1f}")
    console.print(table)
    console.print(f"index: {out / 'index.html'}")
    if not all(outcome.ok for outcome in outcomes):
        raise typer.Exit(1)


def main() -> None:
    """The ``convsuite-demo`` console script: bad input exits 2 with one line on stderr."""
    run(app)
