"""Novelty detection on the classifier's penultimate features: a Gaussian mixture and its threshold.

After Frittoli et al. (arXiv:2208.14071): a Gaussian Mixture Model is fitted on the latent
representation of the classifier's training maps (known classes only); a map whose features are
unlikely under it is flagged as a novel pattern. Ours: features are standardised with the training
mean and standard deviation first; the number of components is either given or chosen by BIC over
a small range; the score is the negative log-likelihood; the threshold is set on validation maps of
the known classes at a chosen false-alarm rate (default 5%: the 95th percentile of their scores).

The fitted detector is a handful of arrays (weights, means, covariances, Cholesky factors of the
precisions, the standardisation) and two numbers: :meth:`NoveltyDetector.to_dict` gives them as
numpy arrays, :meth:`NoveltyDetector.save` writes them as JSON beside the network's safetensors.
Nothing is pickled.

:func:`msp_score` is the usual baseline: one minus the maximum softmax probability.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from convsuite.core_ops.io import InputError, atomic_write

__all__ = ["NoveltyDetector", "msp_score"]

_FORMAT = "convsuite.semicon.NoveltyDetector/1"
_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky", "center", "scale")
_COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")


def msp_score(logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Maximum-softmax-probability novelty score, ``1 - max softmax``: (B, K) logits -> (B,).

    Higher means more novel (Hendrycks & Gimpel 2017), like :meth:`NoveltyDetector.score`.
    """
    logits = torch.as_tensor(logits, dtype=torch.float64)
    return (1.0 - torch.softmax(logits, -1).max(-1).values).numpy()


class NoveltyDetector:
    """A Gaussian mixture on penultimate features; score = negative log-likelihood.

    Args:
        n_components: mixture components, or ``"bic"``: the BIC-best of ``1..max_components``.
        max_components: upper end of the BIC search.
        covariance_type: ``"full"``, ``"diag"``, ``"tied"`` or ``"spherical"`` (scikit-learn's).
        reg_covar: added to the covariance diagonals, in units of the standardised features.
        false_alarm_rate: share of known-class validation maps flagged by the threshold.
        seed: seeds the mixture's initialisation.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> known = rng.normal(size=(400, 4))
        >>> detector = NoveltyDetector(n_components=2).fit(known, rng.normal(size=(200, 4)))
        >>> bool(detector.predict(np.full((1, 4), 8.0))[0])
        True
    """

    def __init__(
        self,
        n_components: int | str = "bic",
        max_components: int = 8,
        covariance_type: str = "full",
        reg_covar: float = 1e-3,
        false_alarm_rate: float = 0.05,
        seed: int = 0,
    ) -> None:
        if isinstance(n_components, str) and n_components != "bic":
            raise ValueError(f"n_components must be an int or 'bic', got {n_components!r}")
        if isinstance(n_components, int) and n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if covariance_type not in _COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {_COVARIANCE_TYPES}")
        if not 0.0 < false_alarm_rate < 1.0:
            raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
        self.n_components = n_components
        self.max_components = max_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.false_alarm_rate = false_alarm_rate
        self.seed = seed
        self.threshold: float | None = None
        self._gmm: GaussianMixture | None = None
        self._center: np.ndarray | None = None
        self._scale: np.ndarray | None = None

    # -- fitting ----------------------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        return self._gmm is not None

    @property
    def n_features(self) -> int:
        """Dimension D of the features the fitted mixture scores."""
        return int(self.gmm.means_.shape[1])

    @property
    def n_fitted_components(self) -> int:
        """Components of the fitted mixture (the BIC's choice when ``n_components="bic"``)."""
        return int(self.gmm.n_components)

    @property
    def gmm(self) -> GaussianMixture:
        """The fitted scikit-learn mixture (on standardised features)."""
        if self._gmm is None:
            raise RuntimeError("NoveltyDetector is not fitted: call fit() first")
        return self._gmm

    def _mixture(self, components: int) -> GaussianMixture:
        return GaussianMixture(
            components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            n_init=1,
            max_iter=200,
            random_state=self.seed,
        )

    def fit(
        self, train_features: np.ndarray | torch.Tensor, val_features: np.ndarray | None = None
    ) -> NoveltyDetector:
        """Fit the mixture on (N, D) training features; set the threshold from validation ones.

        Args:
            train_features: (N, D) penultimate features of the known-class training maps.
            val_features: (M, D) features of held-out known-class maps for :meth:`calibrate`;
                None: calibrate on the training features (optimistic: fewer false alarms are
                then flagged on new data than ``false_alarm_rate`` promises).
        """
        features = _as_matrix(train_features, "train_features")
        if len(features) < 2:
            raise ValueError("need at least 2 training feature vectors")
        self._center = features.mean(0)
        spread = features.std(0)
        self._scale = np.where(spread > 1e-6 * max(float(spread.max()), 1e-12), spread, 1.0)
        standard = self._standardise(features)
        if self.n_components == "bic":
            upper = max(1, min(self.max_components, len(features) // 2))
            candidates = [self._mixture(k).fit(standard) for k in range(1, upper + 1)]
            self._gmm = min(candidates, key=lambda gmm: gmm.bic(standard))
        else:
            self._gmm = self._mixture(min(int(self.n_components), len(features))).fit(standard)
        self.calibrate(features if val_features is None else val_features)
        return self

    def calibrate(
        self, val_features: np.ndarray | torch.Tensor, false_alarm_rate: float | None = None
    ) -> float:
        """Set (and return) the threshold: the ``1 - rate`` quantile of known-class scores."""
        rate = self.false_alarm_rate if false_alarm_rate is None else false_alarm_rate
        if not 0.0 < rate < 1.0:
            raise ValueError(f"false_alarm_rate must be in (0, 1), got {rate}")
        self.false_alarm_rate = rate
        scores = self.score(val_features)
        self.threshold = float(np.quantile(scores, 1.0 - rate))
        return self.threshold

    # -- scoring ----------------------------------------------------------------------------------

    def _standardise(self, features: np.ndarray) -> np.ndarray:
        assert self._center is not None and self._scale is not None
        return (features - self._center) / self._scale

    def score(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N,) novelty scores: the negative log-likelihood of the standardised features."""
        features = _as_matrix(features, "features")
        gmm = self.gmm
        if features.shape[1] != gmm.means_.shape[1]:
            raise ValueError(
                f"features have {features.shape[1]} dimensions, the detector {gmm.means_.shape[1]}"
            )
        return -gmm.score_samples(self._standardise(features))

    def predict(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N,) bool: score above the threshold (novel)."""
        if self.threshold is None:
            raise RuntimeError("NoveltyDetector has no threshold: call fit() or calibrate()")
        return self.score(features) > self.threshold

    # -- serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted state: numpy arrays (``weights``, ``means``, ``covariances``,
        ``precisions_cholesky``, ``center``, ``scale``) and plain settings; no pickle."""
        gmm = self.gmm
        return {
            "format": _FORMAT,
            "covariance_type": self.covariance_type,
            "n_components": int(gmm.n_components),
            "reg_covar": float(self.reg_covar),
            "false_alarm_rate": float(self.false_alarm_rate),
            "threshold": self.threshold,
            "seed": int(self.seed),
            "weights": gmm.weights_.copy(),
            "means": gmm.means_.copy(),
            "covariances": gmm.covariances_.copy(),
            "precisions_cholesky": gmm.precisions_cholesky_.copy(),
            "center": self._center.copy(),
            "scale": self._scale.copy(),
        }

    @classmethod
    def from_dict(
        cls, state: dict[str, Any], source: str | os.PathLike[str] = "detector"
    ) -> NoveltyDetector:
        """Rebuild from :meth:`to_dict` output (arrays or nested lists, as read from JSON).

        Raises:
            InputError: the state is not a NoveltyDetector's or its arrays do not fit together.
        """
        if state.get("format") != _FORMAT:
            raise InputError(source, f"is not a {_FORMAT} state (format {state.get('format')!r})")
        try:
            arrays = {name: np.asarray(state[name], dtype=np.float64) for name in _ARRAYS}
            detector = cls(
                n_components=int(state["n_components"]),
                covariance_type=str(state["covariance_type"]),
                reg_covar=float(state["reg_covar"]),
                false_alarm_rate=float(state["false_alarm_rate"]),
                seed=int(state["seed"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(
                source, f"detector state is incomplete or malformed ({error})"
            ) from None
        k, dims = arrays["means"].shape if arrays["means"].ndim == 2 else (0, 0)
        if k != detector.n_components or arrays["weights"].shape != (k,) or dims == 0:
            raise InputError(source, "detector arrays do not match n_components")
        gmm = detector._mixture(k)
        gmm.weights_ = arrays["weights"]
        gmm.means_ = arrays["means"]
        gmm.covariances_ = arrays["covariances"]
        gmm.precisions_cholesky_ = arrays["precisions_cholesky"]
        gmm.precisions_ = _precisions(arrays["precisions_cholesky"], detector.covariance_type)
        gmm.converged_, gmm.n_iter_, gmm.lower_bound_ = True, 0, -np.inf
        gmm.n_features_in_ = dims
        detector._gmm = gmm
        detector._center, detector._scale = arrays["center"], arrays["scale"]
        threshold = state.get("threshold")
        detector.threshold = None if threshold is None else float(threshold)
        return detector

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON (atomically); floats round-trip exactly."""
        state = {
            k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self.to_dict().items()
        }
        path = Path(path)
        with atomic_write(path) as handle:
            json.dump(state, handle)
            handle.write("\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NoveltyDetector:
        """Read a detector written by :meth:`save`.

        Raises:
            InputError: missing file, not JSON, or not a detector.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "novelty detector file does not exist")
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(path, f"is not a JSON novelty detector ({error})") from None
        if not isinstance(state, dict):
            raise InputError(path, "is not a JSON novelty detector")
        return cls.from_dict(state, path)

    def __repr__(self) -> str:
        if self._gmm is None:
            return f"NoveltyDetector(n_components={self.n_components!r}, not fitted)"
        return (
            f"NoveltyDetector(n_components={self._gmm.n_components}, "
            f"covariance_type={self.covariance_type!r}, threshold={self.threshold}, "
            f"false_alarm_rate={self.false_alarm_rate})"
        )


def _as_matrix(values: np.ndarray | torch.Tensor | Sequence, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) matrix, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _precisions(cholesky: np.ndarray, covariance_type: str) -> np.ndarray:
    """Precision matrices from their Cholesky factors (as scikit-learn stores them)."""
    if covariance_type == "full":
        return np.einsum("kij,klj->kil", cholesky, cholesky)
    if covariance_type == "tied":
        return cholesky @ cholesky.T
    return cholesky**2
