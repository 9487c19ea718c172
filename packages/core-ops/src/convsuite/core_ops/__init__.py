"""convsuite.core_ops: accelerated convolution layers, backbones and the plumbing every domain shares.

Subpackages: :mod:`~convsuite.core_ops.layers`, :mod:`~convsuite.core_ops.backbones`. Modules, in
import order: :mod:`~convsuite.core_ops.errors` (:class:`InputError`),
:mod:`~convsuite.core_ops.config` (:class:`ModelConfig`), :mod:`~convsuite.core_ops.io` (atomic
writes, checkpoints, :class:`ModelCard`), :mod:`~convsuite.core_ops.hub` (presets, bundled weights,
``from_pretrained``), :mod:`~convsuite.core_ops.training` (Lightning pieces),
:mod:`~convsuite.core_ops.figures` (``save_figure``), :mod:`~convsuite.core_ops.cli` (the CLI layer),
:mod:`~convsuite.core_ops.explain` (Grad-CAM).

Importing this package is cheap (no torch): the names below load on first use.
"""

from __future__ import annotations

from convsuite.core_ops.lazy import lazy_exports

_LAZY = {
    "InputError": "convsuite.core_ops.errors",
    "ModelConfig": "convsuite.core_ops.config",
    "ModelCard": "convsuite.core_ops.io",
    "load_checkpoint": "convsuite.core_ops.io",
    "save_checkpoint": "convsuite.core_ops.io",
    "Pretrained": "convsuite.core_ops.hub",
    "create_model": "convsuite.core_ops.hub",
    "list_models": "convsuite.core_ops.hub",
    "register_model": "convsuite.core_ops.hub",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
