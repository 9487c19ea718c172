"""WaferMonitor: the notebook API. Classify wafer maps into known patterns and flag novel ones.

A monitor is a classifier (:class:`~convsuite.semicon.model.SparseWaferNet`, or the binned
baseline :class:`~convsuite.semicon.dense_baseline.DenseWaferNet`) and a
:class:`~convsuite.semicon.openset.NoveltyDetector` fitted on its penultimate features. On disk it
is three files side by side::

    monitor.safetensors       the network's weights
    monitor.json              its model card (architecture, config with the class names, recipe,
                              training data, metrics)
    monitor.novelty.json      the Gaussian mixture and threshold (plain JSON arrays, no pickle)

Example::

    monitor = WaferMonitor.load()                      # bundled weights
    results = monitor.classify(maps, batch_size=32)    # one Classification per map
    [r.class_name for r in results if not r.is_novel]
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from convsuite.core_ops.io import InputError, ModelCard, load_checkpoint, save_checkpoint
from convsuite.core_ops.layers import SparseTensor
from convsuite.semicon.data import WaferMap
from convsuite.semicon.dense_baseline import DenseWaferConfig, DenseWaferNet, batch_binned
from convsuite.semicon.metrics import open_set_report
from convsuite.semicon.model import SparseWaferNet, WaferNetConfig, batch_wafer_maps
from convsuite.semicon.openset import NoveltyDetector, msp_score

__all__ = [
    "BUNDLED_MONITOR",
    "Classification",
    "WaferMonitor",
    "bundled_monitor_path",
    "build_network",
    "network_input",
    "predict_batches",
]

BUNDLED_MONITOR = "wafer_monitor_small.safetensors"
"""File name of the bundled monitor's weights in ``convsuite/semicon/weights/``."""

_WEIGHTS, _NOVELTY = "monitor.safetensors", ".novelty.json"
_ARCHITECTURES = {"SparseWaferNet": (SparseWaferNet, WaferNetConfig)}
_ARCHITECTURES["DenseWaferNet"] = (DenseWaferNet, DenseWaferConfig)  # type: ignore[assignment]


def bundled_monitor_path() -> Path:
    """Where the bundled monitor's weights live (they may not be installed)."""
    return Path(str(resources.files("convsuite.semicon") / "weights" / BUNDLED_MONITOR))


def build_network(architecture: str, config: dict[str, Any]) -> nn.Module:
    """A fresh network from a model card's ``architecture`` and ``config``."""
    if architecture not in _ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(_ARCHITECTURES)}")
    net_cls, config_cls = _ARCHITECTURES[architecture]
    return net_cls(config_cls.from_dict(config))  # type: ignore[arg-type]


def network_input(
    net: nn.Module, maps: Sequence[WaferMap], transforms: Sequence[int] | None = None
) -> SparseTensor | torch.Tensor:
    """The batch ``net`` takes: a SparseTensor (sparse net) or binned images (dense baseline)."""
    if isinstance(net, DenseWaferNet):
        return batch_binned(maps, net.config.bins, transforms)
    return batch_wafer_maps(maps, net.config.grid, transforms)


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def predict_batches(
    net: nn.Module, maps: Iterable[WaferMap], batch_size: int = 16
) -> Iterator[tuple[list[WaferMap], np.ndarray, np.ndarray]]:
    """Stream ``(maps, features (B, D), logits (B, K))`` in batches, in eval mode, no gradients.

    ``maps`` may be any iterable (a generator reading files): only one batch is held at a time.
    The network's train/eval mode is restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = net.training
    net.eval()
    device = _device(net)
    iterator = iter(maps)
    try:
        while batch := list(itertools.islice(iterator, batch_size)):
            with torch.inference_mode():
                x = network_input(net, batch).to(device)
                features = net.features(x)
                logits = net.forward_head(features)
            yield batch, features.float().cpu().numpy(), logits.float().cpu().numpy()
    finally:
        net.train(was_training)


@dataclass(frozen=True)
class Classification:
    """The monitor's verdict on one map.

    Attributes:
        map_name: the map's ``name``.
        class_name: the most probable known pattern.
        probability: its softmax probability.
        novelty_score: negative log-likelihood under the novelty detector (higher: more novel).
        is_novel: ``novelty_score`` above the detector's threshold: the map shows a pattern the
            monitor was not trained on (or an unusual instance of a known one); treat
            ``class_name`` as unreliable then.
        msp_score: ``1 - probability``, the max-softmax baseline novelty score.
    """

    map_name: str
    class_name: str
    probability: float
    novelty_score: float
    is_novel: bool
    msp_score: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class WaferMonitor:
    """A wafer-map classifier and its novelty detector (see the module docstring).

    Args:
        net: a :class:`SparseWaferNet` or :class:`DenseWaferNet` (its config holds the classes).
        detector: a fitted :class:`NoveltyDetector` with a threshold, on ``net``'s features.
        card: the network's model card (kept and written by :meth:`save`).
    """

    def __init__(
        self, net: nn.Module, detector: NoveltyDetector, card: ModelCard | None = None
    ) -> None:
        if not isinstance(net, (SparseWaferNet, DenseWaferNet)):
            raise ValueError(f"net must be a SparseWaferNet or DenseWaferNet, got {type(net)}")
        if detector.threshold is None:
            raise ValueError("the novelty detector has no threshold: fit or calibrate it first")
        self.net = net.eval()
        self.detector = detector
        self.card = card or ModelCard(
            architecture=type(net).__name__,
            config=net.config.to_dict(),
            recipe="",
            training_data="",
        )

    @property
    def classes(self) -> tuple[str, ...]:
        """The known pattern names, in logit order."""
        return tuple(self.net.config.classes)

    @property
    def threshold(self) -> float:
        """The novelty threshold on :attr:`Classification.novelty_score`."""
        assert self.detector.threshold is not None
        return self.detector.threshold

    def to(self, device: str | torch.device) -> WaferMonitor:
        """Move the network (``"cpu"``, ``"cuda"``); returns self."""
        self.net.to(device)
        return self

    # -- loading and saving -----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, device: str = "cpu") -> WaferMonitor:
        """Load a saved monitor: a folder holding ``monitor.safetensors``, or the weights file.

        Args:
            path: folder or ``.safetensors`` file (its model card ``.json`` and ``.novelty.json``
                beside it); None: the bundled monitor.
            device: where to put the network.

        Raises:
            InputError: files missing or malformed, or the bundled weights are not installed.
        """
        if path is None:
            weights = bundled_monitor_path()
            if not weights.is_file():
                raise InputError(
                    weights,
                    "the bundled wafer monitor is not installed in this build; train one with "
                    "WaferMonitor.fit(train_maps, val_maps, out_dir=...) and load it with "
                    "WaferMonitor.load(out_dir)",
                )
        else:
            weights = Path(path)
            if weights.is_dir():
                weights = weights / _WEIGHTS
        state_dict, card = load_checkpoint(weights, device)
        try:
            net = build_network(card.architecture, card.config)
        except (TypeError, ValueError) as error:
            raise InputError(weights.with_suffix(".json"), f"bad model card ({error})") from None
        try:
            net.load_state_dict(state_dict)
        except RuntimeError as error:
            raise InputError(weights, f"weights do not fit the card's network ({error})") from None
        detector = NoveltyDetector.load(_novelty_path(weights))
        return cls(net.to(device), detector, card)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``monitor.safetensors``, ``monitor.json`` and ``monitor.novelty.json``.

        Returns:
            The folder.
        """
        directory = Path(directory)
        weights = directory / _WEIGHTS
        card = dataclasses.replace(
            self.card,
            architecture=type(self.net).__name__,
            config=self.net.config.to_dict(),
        )
        save_checkpoint(self.net.state_dict(), weights, card)
        self.detector.save(_novelty_path(weights))
        return directory

    @classmethod
    def fit(
        cls,
        train_maps: Sequence[WaferMap],
        val_maps: Sequence[WaferMap],
        config: WaferNetConfig | DenseWaferConfig | None = None,
        epochs: int = 20,
        out_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> WaferMonitor:
        """Train a monitor on labelled maps: see :func:`convsuite.semicon.train.fit_monitor`.

        ``out_dir`` None trains in a temporary folder and keeps nothing on disk.
        """
        from convsuite.semicon.train import fit_monitor  # Lightning only when training

        return fit_monitor(train_maps, val_maps, config, epochs=epochs, out_dir=out_dir, **kwargs)

    # -- inference --------------------------------------------------------------------------------

    def features(self, maps: Iterable[WaferMap], batch_size: int = 16) -> np.ndarray:
        """(N, feature_dim) penultimate features of the maps."""
        parts = [f for _, f, _ in predict_batches(self.net, maps, batch_size)]
        if not parts:
            return np.zeros((0, self.net.config.feature_dim), dtype=np.float32)
        return np.concatenate(parts)

    def iter_classify(
        self, maps: Iterable[WaferMap], batch_size: int = 16
    ) -> Iterator[Classification]:
        """Classify a stream of maps lazily, ``batch_size`` at a time."""
        classes = self.classes
        for batch, features, logits in predict_batches(self.net, maps, batch_size):
            novelty = self.detector.score(features)
            probabilities = torch.softmax(torch.from_numpy(logits).double(), -1).numpy()
            best = probabilities.argmax(1)
            msp = msp_score(logits)
            for i, wafer in enumerate(batch):
                yield Classification(
                    map_name=wafer.name,
                    class_name=classes[int(best[i])],
                    probability=float(probabilities[i, best[i]]),
                    novelty_score=float(novelty[i]),
                    is_novel=bool(novelty[i] > self.threshold),
                    msp_score=float(msp[i]),
                )

    def classify(
        self, maps: WaferMap | Iterable[WaferMap], batch_size: int = 16
    ) -> list[Classification]:
        """One :class:`Classification` per map (a single map gives a list of one)."""
        if isinstance(maps, WaferMap):
            maps = [maps]
        return list(self.iter_classify(maps, batch_size))

    def evaluate(self, maps: Sequence[WaferMap], batch_size: int = 16) -> dict[str, float]:
        """Open-set figures on labelled maps; labels outside :attr:`classes` count as novel.

        Returns:
            ``accuracy``, ``macro_f1`` (known maps), ``auroc``, ``oscr`` (with novel maps present),
            ``false_alarm_rate``, ``detection_rate`` (see
            :func:`convsuite.semicon.metrics.open_set_report`), and ``msp_auroc``, ``msp_oscr``
            of the max-softmax baseline.
        """
        if any(wafer.label is None for wafer in maps):
            raise InputError("maps", "evaluate needs labelled maps")
        results = self.classify(maps, batch_size)
        truth = [wafer.label for wafer in maps]
        predicted = [r.class_name for r in results]
        report = open_set_report(
            truth, predicted, [r.novelty_score for r in results], self.classes, self.threshold
        )
        msp = open_set_report(truth, predicted, [r.msp_score for r in results], self.classes)
        report.update({f"msp_{k}": v for k, v in msp.items() if k in ("auroc", "oscr")})
        return report

    def __repr__(self) -> str:
        return (
            f"WaferMonitor({type(self.net).__name__}, classes={list(self.classes)}, "
            f"threshold={self.threshold:.4g})"
        )


def _novelty_path(weights: Path) -> Path:
    return weights.with_suffix(_NOVELTY)
