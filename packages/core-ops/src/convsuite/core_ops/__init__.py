"""convsuite.core_ops: accelerated convolution layers, backbones and shared plumbing.

Subpackages: :mod:`convsuite.core_ops.layers`, :mod:`convsuite.core_ops.backbones`; modules
:mod:`~convsuite.core_ops.io` (errors, atomic writes, checkpoints), :mod:`~convsuite.core_ops.training`
(Lightning pieces), :mod:`~convsuite.core_ops.explain` (Grad-CAM).
"""

from convsuite.core_ops.io import InputError, ModelCard, load_checkpoint, save_checkpoint

__all__ = ["InputError", "ModelCard", "load_checkpoint", "save_checkpoint"]
