"""WaferMonitor: the notebook API. Classify wafer maps into known patterns and flag novel ones.

A monitor is a classifier (:class:`~convsuite.semicon.model.SparseWaferNet`, or the binned
baseline :class:`~convsuite.semicon.dense_baseline.DenseWaferNet`) and a
:class:`~convsuite.semicon.openset.NoveltyDetector` fitted on its penultimate features. On disk it
is three files side by side::

    monitor.safetensors       the network's weights
    monitor.json              its model card: architecture, config, what the weights expect
                              (``inputs``: grid or bins, pitch, die-level maps or not), what they
                              give (``outputs``: classes, the novelty score's mixture), recipe,
                              training data, metrics; ``files["novelty"]`` names the third file
    monitor.novelty.json      the Gaussian mixture and threshold (plain JSON arrays, no pickle)

Train one with :func:`convsuite.semicon.train.fit_monitor` (or ``wafer-monitor train``).

Example::

    monitor = WaferMonitor.from_pretrained()           # bundled: "wafer_monitor_small"
    results = monitor.classify(maps, batch_size=32)    # one Classification per map
    [r.class_name for r in results if not r.is_novel]
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import resolve_weights
from convsuite.core_ops.io import ModelCard, read_card, save_checkpoint
from convsuite.core_ops.layers import SparseTensor
from convsuite.core_ops.precision import check_precision, inference_mode, prepare_for_inference
from convsuite.semicon.data import WaferMap
from convsuite.semicon.dense_baseline import DenseWaferNet, batch_binned
from convsuite.semicon.metrics import open_set_report
from convsuite.semicon.model import SparseWaferNet, batch_wafer_maps
from convsuite.semicon.openset import Detector, load_detector, msp_score

__all__ = [
    "Classification",
    "WaferMonitor",
    "WaferNet",
    "card_outputs",
    "network_input",
    "predict_batches",
]

WaferNet = SparseWaferNet | DenseWaferNet
"""Either classifier a monitor runs on."""

_NETWORKS: dict[str, type[SparseWaferNet] | type[DenseWaferNet]] = {
    SparseWaferNet.__name__: SparseWaferNet,
    DenseWaferNet.__name__: DenseWaferNet,
}
_DEFAULT_NAME = "monitor"
_NOVELTY = "novelty"
"""Role of the detector's side file in the card's ``files``."""


def card_outputs(net: WaferNet, detector: Detector) -> dict[str, Any]:
    """The card's ``outputs`` of a monitor: the classes in logit order, what gives the class, and
    the novelty score's settings (components, covariance type, false-alarm rate of the threshold)."""
    statistics = len(net.novelty_blocks) > 1
    if detector.classifies:
        score = (
            "sum of the validation-standardised negative log-likelihoods of class-conditional "
            "Gaussians (shared covariance) on the learned features"
            + (" and on the shape profile and clump statistics" if statistics else "")
        )
    else:
        score = "negative log-likelihood of a Gaussian mixture on the penultimate features" + (
            " and the clump statistics" if net.n_novelty_features > net.n_features else ""
        )
    return {
        "classes": list(net.config.classes),
        "class_from": "class Gaussians' posterior" if detector.classifies else "network head",
        "novelty": {
            "score": score,
            "gmm_components": detector.n_fitted_components,
            "covariance_type": detector.covariance_type,
            "false_alarm_rate": detector.false_alarm_rate,
        },
    }


def network_input(
    net: WaferNet, maps: Sequence[WaferMap], transforms: Sequence[int] | None = None
) -> SparseTensor | torch.Tensor:
    """The batch ``net`` takes: a SparseTensor (sparse net) or binned images (dense baseline)."""
    if isinstance(net, DenseWaferNet):
        return batch_binned(maps, net.config.bins, transforms)
    return batch_wafer_maps(maps, net.config.grid, transforms)


def _device(net: WaferNet) -> torch.device:
    return next(net.parameters()).device


def predict_batches(
    net: WaferNet, maps: Iterable[WaferMap], batch_size: int = 16, precision: str = "fp32"
) -> Iterator[tuple[list[WaferMap], np.ndarray, np.ndarray]]:
    """Stream ``(maps, novelty features (B, D), logits (B, K))`` in batches, in eval mode, no
    gradients. The novelty features are what the detector reads (``net.novelty_features``).

    ``maps`` may be any iterable (a generator reading files): only one batch is held at a time.
    The network's train/eval mode is restored afterwards. ``precision``: the precision ``net``
    was prepared for (:func:`convsuite.core_ops.precision.prepare_for_inference`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = net.training
    net.eval()
    device = _device(net)
    iterator = iter(maps)
    try:
        while batch := list(itertools.islice(iterator, batch_size)):
            with inference_mode(precision):
                x = network_input(net, batch).to(device)
                features = net.features(x)
                logits = net.forward_head(features)
                features = net.novelty_features(x, features)
            yield batch, features.float().cpu().numpy(), logits.float().cpu().numpy()
    finally:
        net.train(was_training)


@dataclass(frozen=True)
class Classification:
    """The monitor's verdict on one map.

    Attributes:
        map_name: the map's ``name``.
        class_name: the most probable known pattern: under the detector's class Gaussians
            when its components are the classes (``detector.classifies``, the default of
            ``fit_monitor``), else by the network's head.
        probability: its probability (the class Gaussians' posterior, or the head's softmax).
        novelty_score: negative log-likelihood under the novelty detector (higher: more novel).
        is_novel: ``novelty_score`` above the detector's threshold: the map shows a pattern the
            monitor was not trained on (or an unusual instance of a known one); treat
            ``class_name`` as unreliable then.
        msp_score: one minus the network head's maximum softmax probability, the max-softmax
            baseline novelty score.
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
        detector: a fitted :class:`~convsuite.semicon.openset.FusedNoveltyDetector` or
            :class:`~convsuite.semicon.openset.NoveltyDetector` with a threshold, on ``net``'s
            novelty features; when its components are the classes it also gives the class.
        card: the network's model card (kept and written by :meth:`save`); default: the card
            ``net`` was loaded with, or a blank one.
        precision: ``"fp32"`` or ``"bf16"`` (core-ops' precision API: the network's dense
            convolutions and linear layers in bfloat16, the sparse layers in float32); a bf16
            monitor is for inference only (:meth:`save` writes float32 weights of a fp32 one).

    Raises:
        InputError: unknown precision.
    """

    def __init__(
        self,
        net: WaferNet,
        detector: Detector,
        card: ModelCard | None = None,
        precision: str = "fp32",
    ) -> None:
        if not isinstance(net, (SparseWaferNet, DenseWaferNet)):
            raise ValueError(f"net must be a SparseWaferNet or DenseWaferNet, got {type(net)}")
        if detector.threshold is None:
            raise ValueError("the novelty detector has no threshold: fit or calibrate it first")
        self.precision = check_precision(precision)
        self.net = prepare_for_inference(net, precision)
        self.detector = detector
        self.card = card or net.card or net.model_card(recipe="", training_data="", intended_use="")

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
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        precision: str = "fp32",
    ) -> WaferMonitor:
        """A saved monitor: the bundled one by name, a ``.safetensors`` file or a folder.

        The network loads through its own ``from_pretrained`` (the card says which network); the
        novelty detector is the card's ``files["novelty"]``, beside the weights.

        Args:
            name_or_path: a bundled name (``"wafer_monitor_small"``), a monitor's
                ``.safetensors`` file (its ``.json`` card beside it), a folder holding
                ``monitor.safetensors`` (what :func:`~convsuite.semicon.train.fit_monitor`
                writes), or None for the bundled monitor.
            device: where to put the network (``"cpu"``, ``"cuda"``).
            precision: ``"fp32"`` or ``"bf16"`` (see the class).

        Raises:
            InputError: files missing or malformed, a card for another network, a card naming no
                novelty file, or a detector that does not fit the network's features.
        """
        if name_or_path is not None and Path(name_or_path).is_dir():
            name_or_path = Path(name_or_path) / f"{_DEFAULT_NAME}.safetensors"
        weights = resolve_weights(SparseWaferNet, name_or_path)
        card_path = weights.with_suffix(".json")
        net = _network_class(weights).from_pretrained(weights, device)
        assert net.card is not None
        name = net.card.files.get(_NOVELTY)
        if name is None:
            raise InputError(card_path, "model card names no novelty detector file (files.novelty)")
        novelty = weights.parent / name
        detector = load_detector(novelty)
        if detector.n_features != net.n_novelty_features:
            raise InputError(
                novelty,
                f"detector is for {detector.n_features} features, the network gives "
                f"{net.n_novelty_features}",
            )
        return cls(net, detector, net.card, precision)

    def save(self, directory: str | os.PathLike[str], name: str = _DEFAULT_NAME) -> Path:
        """Write ``<name>.safetensors``, its card ``<name>.json`` and ``<name>.novelty.json``.

        The card is written once, with this monitor's architecture, config, outputs and the
        detector's file name; the detector is written first, so a card never names a missing
        file.

        Returns:
            The weights file (load it, or the folder when ``name`` is ``"monitor"``, with
            :meth:`from_pretrained`).
        """
        if self.precision != "fp32":
            raise ValueError("a bf16 monitor is for inference only: save the fp32 monitor")
        directory = Path(directory)
        weights = directory / f"{name}.safetensors"
        novelty = directory / f"{name}.novelty.json"
        card = dataclasses.replace(
            self.card,
            architecture=type(self.net).__name__,
            config=self.net.config.to_dict(),
            outputs=card_outputs(self.net, self.detector),
            files={**self.card.files, _NOVELTY: novelty.name},
        )
        self.detector.save(novelty)
        save_checkpoint(self.net.state_dict(), weights, card)
        self.card = card
        return weights

    # -- inference --------------------------------------------------------------------------------

    def features(self, maps: Iterable[WaferMap], batch_size: int = 16) -> np.ndarray:
        """(N, n_novelty_features) features of the maps that the novelty detector reads."""
        parts = [f for _, f, _ in predict_batches(self.net, maps, batch_size, self.precision)]
        if not parts:
            return np.zeros((0, self.net.n_novelty_features), dtype=np.float32)
        return np.concatenate(parts)

    def iter_classify(
        self, maps: Iterable[WaferMap], batch_size: int = 16
    ) -> Iterator[Classification]:
        """Classify a stream of maps lazily, ``batch_size`` at a time."""
        classes = self.classes
        for batch, features, logits in predict_batches(self.net, maps, batch_size, self.precision):
            novelty = self.detector.score(features)
            if self.detector.classifies:
                probabilities = self.detector.posterior(features)
            else:
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

    def evaluate(
        self,
        maps: Sequence[WaferMap],
        batch_size: int = 16,
        results: Sequence[Classification] | None = None,
    ) -> dict[str, float]:
        """Open-set figures on labelled maps; labels outside :attr:`classes` count as novel.

        Args:
            maps: the labelled maps.
            batch_size: maps per forward pass.
            results: :meth:`classify`'s results for ``maps`` when already computed.

        Returns:
            ``accuracy``, ``macro_f1`` (known maps), ``auroc``, ``oscr`` (with novel maps present),
            ``false_alarm_rate``, ``detection_rate`` (see
            :func:`convsuite.semicon.metrics.open_set_report`), and ``msp_auroc``, ``msp_oscr``
            of the max-softmax baseline.
        """
        unlabelled = next((wafer for wafer in maps if wafer.label is None), None)
        if unlabelled is not None:
            raise InputError(unlabelled.name or "maps", "evaluate needs labelled maps")
        results = self.classify(maps, batch_size) if results is None else results
        if len(results) != len(maps):
            raise ValueError(f"{len(results)} results for {len(maps)} maps")
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


def _network_class(weights: Path) -> type[SparseWaferNet] | type[DenseWaferNet]:
    """The network class a monitor's card names (the card is validated again when loading)."""
    architecture = read_card(weights).architecture
    if architecture not in _NETWORKS:
        known = " or ".join(_NETWORKS)
        raise InputError(
            weights.with_suffix(".json"), f"holds a {architecture}, not a {known} monitor"
        )
    return _NETWORKS[architecture]
