"""Input validation errors, atomic file writes and safetensors checkpoints with a model card.

Every convsuite package reads and writes through these helpers so that bad input fails the same way
(:class:`InputError`, one line naming the file) and no output file is ever left half written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "InputError",
    "ModelCard",
    "atomic_path",
    "atomic_write",
    "load_checkpoint",
    "save_checkpoint",
]

# Leading bytes of formats that unpickle code on load: a zip archive (torch.save), raw pickle
# protocols 2-5.
_PICKLE_MAGICS = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


class InputError(ValueError):
    """Bad user input: the message is one line that names the file and what is wrong with it.

    CLIs catch it, print the message and exit with status 2.

    Args:
        source: the file (or argument) the problem was found in.
        problem: what is wrong, in the user's words ("Nside 100 is not a power of 2").
    """

    def __init__(self, source: str | os.PathLike[str], problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


def _current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` atomically.

    For libraries that insist on writing a path themselves (``healpy.write_map``, ``nibabel.save``,
    ``safetensors``). On any exception the temporary file is removed and ``target`` is untouched.
    The result gets the permissions of a plainly created file (``0o666`` less the umask), not the
    owner-only mode of the temporary file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_write(target: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``target`` for writing; rename it onto ``target`` on success."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(target) as tmp:
        encoding = None if "b" in mode else "utf-8"
        with open(tmp, mode, encoding=encoding) as handle:
            yield handle


def _convsuite_version() -> str:
    try:
        return metadata.version("convsuite-core-ops")
    except metadata.PackageNotFoundError:  # running from a source tree without installing
        return "unknown"


@dataclass
class ModelCard:
    """What a checkpoint is: stored as JSON beside the ``.safetensors`` file.

    Args:
        architecture: class name of the network, e.g. ``"ConvNeXt"``.
        config: keyword arguments that rebuild the network (JSON-serializable).
        recipe: the command that trained these weights, reproducible from a clone.
        training_data: what the weights were trained on (simulator and seed, or dataset).
        metrics: figures the weights reached, with the metric names as keys.
        intended_use: what the weights are good for, and what they are not good for.
        convsuite_version: filled in automatically from the installed core-ops.
    """

    architecture: str
    config: dict[str, Any]
    recipe: str
    training_data: str
    metrics: dict[str, float] = field(default_factory=dict)
    intended_use: str = ""
    convsuite_version: str = field(default_factory=_convsuite_version)


def _card_path(weights_path: Path) -> Path:
    return weights_path.with_suffix(".json")


def save_checkpoint(
    state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str], card: ModelCard
) -> Path:
    """Write ``state_dict`` as safetensors at ``path`` and ``card`` as JSON beside it, atomically.

    Returns the weights path. Tensors are made contiguous and detached; shared storage is copied so
    that safetensors accepts tied weights.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: checkpoints are written as .safetensors")
    tensors = {name: t.detach().contiguous().clone() for name, t in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"architecture": card.architecture})
    with atomic_write(_card_path(path)) as handle:
        json.dump(asdict(card), handle, indent=2, sort_keys=True)
        handle.write("\n")
    return path


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """Load a safetensors checkpoint and its model card; refuse pickles and missing cards.

    Raises:
        InputError: the file is missing, is a pickle (``torch.save`` output), is not safetensors,
            or has no JSON model card beside it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file does not exist")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(_PICKLE_MAGICS):
        raise InputError(path, "is a pickle (torch.save); convsuite loads only .safetensors")
    try:
        state_dict = load_file(str(path), device=str(device))
    except Exception as error:  # safetensors raises its own error types
        raise InputError(path, f"is not a readable safetensors file ({error})") from None
    card_file = _card_path(path)
    if not card_file.is_file():
        raise InputError(card_file, "model card is missing beside the checkpoint")
    card = ModelCard(**json.loads(card_file.read_text(encoding="utf-8")))
    return state_dict, card
