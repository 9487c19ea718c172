"""Atomic file writes, input budgets and safetensors checkpoints with a typed model card.

Every convsuite package reads and writes through these helpers so that bad input fails the same way
(:class:`InputError`, one line naming the file) and no output file is ever left half written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from convsuite.core_ops.errors import InputError

if TYPE_CHECKING:  # torch and safetensors load inside the checkpoint functions: CLIs import this
    import torch

__all__ = [
    "CARD_VERSION",
    "InputError",
    "ModelCard",
    "atomic_path",
    "atomic_write",
    "check_budget",
    "load_checkpoint",
    "read_card",
    "save_checkpoint",
]

# Leading bytes of formats that unpickle code on load: a zip archive (torch.save), raw pickle
# protocols 2-5.
_PICKLE_MAGICS = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


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


CARD_VERSION = 2
"""Model-card format written now. Version 1 (no ``card_version`` key) kept what the weights expect
(``nside``, ``gmm_components``) among the float ``metrics``; it is still read."""


@dataclass
class ModelCard:
    """What a checkpoint is: stored as JSON beside the ``.safetensors`` file.

    Args:
        architecture: class name of the network, e.g. ``"SkyReconNet"``.
        config: the architecture config (``ModelConfig.to_dict()``) that rebuilds the network.
        recipe: the command that trained these weights, reproducible from a clone.
        training_data: what the weights were trained on (simulator and seed, or dataset).
        inputs: what the weights expect, in the field's words: ``{"nside": 64}``,
            ``{"image_size": 256, "organs": ["RL", "LL", "H"]}``, ``{"sample_rate": 16000}``.
        outputs: what they produce: ``{"classes": [...]}``, ``{"unit": "uK"}``.
        metrics: figures the weights reached (numbers only), with the metric names as keys.
        intended_use: what the weights are good for, and what they are not good for.
        files: side files of the checkpoint by role, names relative to the weights' folder
            (``{"novelty": "wafer_monitor_small.novelty.json"}``).
        convsuite_version: filled in automatically from the installed core-ops.
        card_version: the card format (:data:`CARD_VERSION`).
    """

    architecture: str
    config: dict[str, Any]
    recipe: str
    training_data: str
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    intended_use: str = ""
    files: dict[str, str] = field(default_factory=dict)
    convsuite_version: str = field(default_factory=_convsuite_version)
    card_version: int = CARD_VERSION

    def to_json(self) -> str:
        """The card as indented JSON text (keys sorted), ending in a newline."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike[str] = "model card") -> ModelCard:
        """Parse and validate a card; version-1 cards are read too.

        Raises:
            InputError: not JSON, unknown or missing keys, wrong types, non-numeric metrics, or a
                card format newer than this convsuite reads.
        """
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(source, f"model card is not valid JSON ({error})") from None
        if not isinstance(values, dict):
            raise InputError(source, "model card must be a JSON object")
        version = values.get("card_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InputError(source, f"card_version must be a positive integer, got {version!r}")
        if version > CARD_VERSION:
            raise InputError(
                source,
                f"model card format {version} is newer than this convsuite reads "
                f"({CARD_VERSION}); upgrade convsuite-core-ops",
            )
        values = {**values, "card_version": CARD_VERSION}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(source, f"model card has unknown keys {', '.join(map(repr, unknown))}")
        missing = sorted(
            f.name
            for f in fields(cls)
            if f.default is MISSING and f.default_factory is MISSING and f.name not in values
        )
        if missing:
            raise InputError(source, f"model card lacks {', '.join(map(repr, missing))}")
        for f in fields(cls):
            if f.name in values and not isinstance(values[f.name], _CARD_TYPES[f.name]):
                raise InputError(
                    source,
                    f"model card field {f.name!r} must be {_CARD_TYPES[f.name].__name__}, "
                    f"got {type(values[f.name]).__name__}",
                )
        bad = [k for k, v in values.get("metrics", {}).items() if not _is_number(v)]
        if bad:
            raise InputError(source, f"model card metrics must be numbers: {', '.join(bad)}")
        bad = [k for k, v in values.get("files", {}).items() if not _is_side_file(v)]
        if bad:
            raise InputError(
                source,
                f"model card files must be names relative to the card's folder: {', '.join(bad)}",
            )
        return cls(**values)


_CARD_TYPES: dict[str, type] = {
    "architecture": str,
    "config": dict,
    "recipe": str,
    "training_data": str,
    "inputs": dict,
    "outputs": dict,
    "metrics": dict,
    "intended_use": str,
    "files": dict,
    "convsuite_version": str,
    "card_version": int,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_side_file(value: Any) -> bool:
    """A side file's name: a string, relative, inside the weights' folder (no ``..``)."""
    if not isinstance(value, str) or not value:
        return False
    path = Path(value)
    return not path.is_absolute() and ".." not in path.parts


def check_budget(source: str | os.PathLike[str], nbytes: int, what: str, limit: int) -> None:
    """Refuse input that would expand to more than ``limit`` bytes once decoded.

    Call it with sizes read from headers, before decoding: a 17 KB PNG can claim 12000 x 12000
    pixels, a 9 KB FITS file Nside 4096.

    Args:
        source: the file, for the message.
        nbytes: bytes the decoded ``what`` would take.
        what: the thing, in the field's words ("a 12000 x 12000 image").
        limit: the most this reader accepts, in bytes.

    Raises:
        InputError: ``nbytes`` is over ``limit``.
    """
    if nbytes > limit:
        raise InputError(
            source,
            f"{what} would take {nbytes / 2**30:.1f} GiB in memory (this reader's limit is "
            f"{limit / 2**30:.1f} GiB)",
        )


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
    from safetensors.torch import save_file

    tensors = {name: t.detach().contiguous().clone() for name, t in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"architecture": card.architecture})
    with atomic_write(_card_path(path)) as handle:
        handle.write(card.to_json())
    return path


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """Load a safetensors checkpoint and its model card; refuse pickles and missing cards.

    Raises:
        InputError: the file is missing, is a pickle (``torch.save`` output), is not safetensors,
            or has no valid JSON model card beside it.
    """
    from safetensors.torch import load_file

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
    return state_dict, read_card(path)


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    """The validated model card beside checkpoint ``path`` (``x.safetensors`` -> ``x.json``).

    Raises:
        InputError: the card is missing, unreadable or invalid (see :meth:`ModelCard.from_json`).
    """
    card_file = _card_path(Path(path))
    if not card_file.is_file():
        raise InputError(card_file, "model card is missing beside the checkpoint")
    try:
        text = card_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(card_file, f"model card is unreadable ({error})") from None
    return ModelCard.from_json(text, card_file)
