"""The shared command-line layer: every convsuite CLI runs through :func:`run`.

It keeps the promises of every command in one place:

- bad input (:class:`~convsuite.core_ops.io.InputError`, typer/click usage errors, an output that
  cannot be written) prints exactly one ``error:`` line on stderr and exits with status 2; library
  warnings raised on the way are folded into that line;
- ``--help`` is fast: this module imports neither torch nor anything heavy, and CLI modules import
  their pipelines inside the commands;
- the options every domain shares (torch device, Lightning accelerator/devices/strategy/num_nodes,
  seed, batch size, inference precision) are declared once, as ``Annotated`` types;
- outputs never replace inputs, and several inputs with the same file name get distinct outputs.

A domain CLI::

    app = typer.Typer(help="...")

    @app.command(epilog="Example: cosmo-inpaint map.fits")
    def inpaint(maps: list[Path], device: Device = "cpu") -> None: ...

    def main() -> None:          # the console script in pyproject.toml
        run(app)
"""

from __future__ import annotations

import os
import shlex
import sys
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import typer

from convsuite.core_ops.errors import InputError

try:  # recent typer vendors click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older typer depends on click
    from click.exceptions import ClickException, NoArgsIsHelpError

__all__ = [
    "Accelerator",
    "BatchSize",
    "Device",
    "Devices",
    "NumNodes",
    "Precision",
    "Seed",
    "Strategy",
    "error_line",
    "guard_outputs",
    "output_stems",
    "recipe_command",
    "run",
    "torch_device",
    "trainer_settings",
]

Device = Annotated[
    str, typer.Option(help="torch device for inference: cpu, cuda, cuda:1, mps.", metavar="DEVICE")
]
Accelerator = Annotated[
    str,
    typer.Option(help="Lightning accelerator: auto, cpu, gpu, mps.", rich_help_panel="Lightning"),
]
Devices = Annotated[
    str,
    typer.Option(
        help="Lightning devices: auto, a count (4) or ids (0,1).", rich_help_panel="Lightning"
    ),
]
Strategy = Annotated[
    str,
    typer.Option(help="Lightning strategy: auto, ddp, fsdp, ...", rich_help_panel="Lightning"),
]
NumNodes = Annotated[
    int, typer.Option(min=1, help="Machines for multi-node DDP.", rich_help_panel="Lightning")
]
Seed = Annotated[int, typer.Option(help="Random seed (data, initialization, sampling).")]
BatchSize = Annotated[int, typer.Option(min=1, help="Items per batch.")]
# Pass the value to convsuite.core_ops.precision.prepare_for_inference / inference_mode.
Precision = Annotated[
    Literal["fp32", "bf16"],
    typer.Option(
        help="Inference precision: fp32, or bf16 (bfloat16 convolutions and linear layers through "
        "oneDNN: faster on CPUs with AVX512-BF16/AMX, outputs within about 1%).",
    ),
]


def error_line(message: str) -> None:
    """Print ``error: message`` as one line on stderr (no colour codes when not a terminal)."""
    line = " ".join(str(message).split())
    prefix = "\x1b[31merror:\x1b[0m" if sys.stderr.isatty() else "error:"
    print(f"{prefix} {line}", file=sys.stderr, flush=True)


def _with_warnings(message: str, caught: Sequence[warnings.WarningMessage]) -> str:
    notes = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    return f"{message} (warnings: {'; '.join(notes)})" if notes else message


def run(app: typer.Typer, args: Sequence[str] | None = None) -> NoReturn:
    """Run ``app`` as a console script and exit; the one place CLIs turn errors into exit codes.

    Exit status: the command's (0 when it returns), 2 for bad input or an unwritable output (one
    line on stderr), 1 for an abort, 130 for Ctrl-C. Other exceptions are bugs and keep their
    traceback. Warnings raised during a failing command are folded into its error line; after a
    successful one they are shown as usual.
    """
    command = typer.main.get_command(app)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            status = command.main(
                args=list(sys.argv[1:] if args is None else args), standalone_mode=False
            )
        except InputError as error:
            error_line(_with_warnings(str(error), caught))
            sys.exit(2)
        except NoArgsIsHelpError as error:  # `medseg` alone: the help, as --help gives it
            text = error.ctx.get_help()  # typer's rich help prints itself and returns ""
            if text:
                print(text)
            sys.exit(0)
        except ClickException as error:
            error_line(_with_warnings(error.format_message(), caught))
            sys.exit(2 if error.exit_code == 2 else error.exit_code)
        except OSError as error:  # an output that cannot be written, a folder where a file goes
            where = error.filename or "output"
            error_line(_with_warnings(f"{where}: {error.strerror or error}", caught))
            sys.exit(2)
        except typer.Abort:
            error_line("aborted")
            sys.exit(1)
        except KeyboardInterrupt:
            error_line("interrupted")
            sys.exit(130)
    for warning in caught:
        warnings.showwarning(
            warning.message, warning.category, warning.filename, warning.lineno, warning.file
        )
    sys.exit(status if isinstance(status, int) else 0)


def torch_device(text: str) -> str:
    """``text`` if torch knows the device and this machine has it, for a ``--device`` option.

    Imports torch: call it inside a command.

    Raises:
        InputError: not a torch device (``gpu``), or not present here (``cuda:3`` on a 1-GPU box).
    """
    import torch

    try:
        device = torch.device(text)
    except RuntimeError as error:
        raise InputError("--device", f"{text!r} is not a torch device ({error})") from None
    present = {
        "cuda": lambda: (
            torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
        ),
        "mps": torch.backends.mps.is_available,
    }
    if device.type in present and not present[device.type]():
        raise InputError("--device", f"{text} is not available on this machine")
    return text


def recipe_command() -> str:
    """The command line that is running, for a model card's ``recipe`` (``medseg cxr train ...``)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def trainer_settings(
    accelerator: str, devices: str, strategy: str, num_nodes: int
) -> dict[str, Any]:
    """Lightning ``Trainer`` arguments from the shared CLI options (``devices`` parsed).

    ``"auto"`` stays a string; ``"4"`` becomes 4 devices; ``"0,1"`` the device ids [0, 1].

    Raises:
        InputError: ``devices`` is none of these.
    """
    text = devices.strip()
    try:
        if text == "auto":
            parsed: int | str | list[int] = "auto"
        elif "," in text:
            parsed = [int(part) for part in text.split(",") if part.strip()]
            if not parsed:
                raise ValueError(text)
        else:
            parsed = int(text)
    except ValueError:
        raise InputError(
            "--devices", f"must be auto, a count or ids like 0,1; got {devices!r}"
        ) from None
    return {
        "accelerator": accelerator,
        "devices": parsed,
        "strategy": strategy,
        "num_nodes": num_nodes,
    }


def guard_outputs(
    outputs: Iterable[str | os.PathLike[str]], inputs: Iterable[str | os.PathLike[str]]
) -> None:
    """Refuse an output path that is one of the inputs (same file, whatever the spelling).

    Raises:
        InputError: naming the output that would replace an input.
    """
    sources = [Path(p) for p in inputs]
    resolved = {p.resolve() for p in sources}
    for output in map(Path, outputs):
        clash = output.resolve() in resolved or any(
            output.exists() and source.exists() and os.path.samefile(output, source)
            for source in sources
        )
        if clash:
            raise InputError(
                output, "is also an input; refusing to overwrite it (choose another --out)"
            )


def output_stems(inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """One distinct name stem per input, for naming its outputs.

    The file's stem where that is unique; inputs sharing a stem in different folders get their
    parent folders prefixed (``a/map.fits``, ``b/map.fits`` -> ``a_map``, ``b_map``), going up
    until the names differ; files sharing a stem in one folder keep their suffix (``map.fits``,
    ``map.npy`` -> ``map_fits``, ``map_npy``). The same file given twice is refused.

    Raises:
        InputError: the same file appears twice among ``inputs``.
    """
    paths = [Path(p) for p in inputs]
    seen: dict[Path, Path] = {}
    for path in paths:
        key = path.resolve()
        if key in seen:
            raise InputError(path, f"is given twice (also as {seen[key]})")
        seen[key] = path
    # Folders as the user spelled them, made absolute (".." folded, symlinks kept).
    folders = [Path(os.path.abspath(p)).parent for p in paths]
    bases = [p.stem.removesuffix(".nii") for p in paths]  # map.nii.gz -> map
    in_one_folder = Counter(zip(folders, bases, strict=True))
    bases = [
        p.name.replace(".", "_") if in_one_folder[(folder, base)] > 1 else base
        for p, folder, base in zip(paths, folders, bases, strict=True)
    ]
    stems = list(bases)
    for depth in range(1, max((len(f.parts) for f in folders), default=0)):
        counts = Counter(stems)
        if all(count == 1 for count in counts.values()):
            return stems
        for i, folder in enumerate(folders):
            if counts[stems[i]] > 1:
                stems[i] = "_".join([*folder.parts[1:][-depth:], bases[i]])
    # Left alike only by folder names that join alike ("a_b/map" and "a/b_map"): number them.
    taken: Counter[str] = Counter()
    for i, stem in enumerate(stems):
        taken[stem] += 1
        if taken[stem] > 1:
            stems[i] = f"{stem}_{taken[stem]}"
    return stems
