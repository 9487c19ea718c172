"""convsuite-materials: 3D convolutional VAE anomaly detection in EELS spectrum images.

After Sultanov, Buban, Klie, "Robust Spectral Anomaly Detection in EELS Spectral Images via Three
Dimensional Convolutional Variational Autoencoders" (arXiv:2412.16200). The names below load their
module on first use (PEP 562), so ``import convsuite.materials`` (and ``eels-anomaly --help``) costs
no torch or hyperspy import.
"""

from __future__ import annotations

from convsuite.core_ops.lazy import lazy_exports

_EXPORTS = {
    "AnomalySpec": "convsuite.materials.data",
    "EELSVAE": "convsuite.materials.model",
    "EELSVAEConfig": "convsuite.materials.model",
    "detect_anomalies": "convsuite.materials.infer",
    "from_xarray": "convsuite.materials.data",
    "read_spectrum_image": "convsuite.materials.data",
    "simulate_cube": "convsuite.materials.data",
    "to_xarray": "convsuite.materials.data",
    "write_signal": "convsuite.materials.data",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
