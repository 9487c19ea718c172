"""Novelty detection on the classifier's penultimate features: a Gaussian mixture and its threshold.

After Frittoli et al. (arXiv:2208.14071): a Gaussian Mixture Model is fitted on the latent
representation of the classifier's training maps (known classes only); a map whose features are
unlikely under it is flagged as a novel pattern. Ours: features are standardised with the training
mean and standard deviation first; the number of components is either given or chosen by BIC over
a small range; the score is the negative log-likelihood; the threshold is set on validation maps of
the known classes at a chosen false-alarm rate (default 5%: the 95th percentile of their scores).

scikit-learn's :class:`~sklearn.mixture.GaussianMixture` fits the mixture; the detector then keeps
only its arrays (weights, means, covariances, Cholesky factors of the precisions, the
standardisation) and two numbers, and scores from them itself (:func:`mixture_log_likelihood`,
the log-sum-exp of the components' Gaussian log-densities, in numpy), so a detector read back from
JSON needs no scikit-learn object rebuilt by hand. :meth:`NoveltyDetector.to_dict` gives the state
as numpy arrays, :meth:`NoveltyDetector.save` writes it as JSON beside the network's safetensors.
Nothing is pickled.

:func:`msp_score` is the usual baseline: one minus the maximum softmax probability.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_write

__all__ = ["NoveltyDetector", "mixture_log_likelihood", "msp_score"]

_FORMAT = "convsuite.semicon.NoveltyDetector/1"
_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky", "center", "scale")
_COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")


def msp_score(logits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Maximum-softmax-probability novelty score, ``1 - max softmax``: (B, K) logits -> (B,).

    Higher means more novel (Hendrycks & Gimpel 2017), like :meth:`NoveltyDetector.score`.
    """
    logits = torch.as_tensor(logits, dtype=torch.float64)
    return (1.0 - torch.softmax(logits, -1).max(-1).values).numpy()


def _covariance_shapes(covariance_type: str, k: int, d: int) -> tuple[int, ...]:
    """Shape of ``covariances`` and ``precisions_cholesky`` (scikit-learn's layout)."""
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[covariance_type]


def mixture_log_likelihood(
    x: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
) -> np.ndarray:
    """Log-density of each row of ``x`` under a Gaussian mixture, from its arrays.

    ``log p(x) = logsumexp_k [log w_k + log N(x; mu_k, Sigma_k)]`` with
    ``log N = -(D log 2 pi + |(x - mu_k) L_k|^2) / 2 + log det L_k``, ``L_k`` the Cholesky factor
    of the precision ``Sigma_k^-1`` (``L_k L_k^T = Sigma_k^-1``), as scikit-learn stores it.

    Args:
        x: (N, D) points.
        weights: (K,) mixture weights, positive, summing to 1.
        means: (K, D) component means.
        precisions_cholesky: (K, D, D) for ``"full"``, (D, D) for ``"tied"``, (K, D) for
            ``"diag"`` (per-dimension inverse standard deviations), (K,) for ``"spherical"``.
        covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.

    Returns:
        (N,) float64 log-likelihoods (natural log), what
        ``GaussianMixture.score_samples`` returns for the same parameters.
    """
    x = np.asarray(x, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    chol = np.asarray(precisions_cholesky, dtype=np.float64)
    k, d = means.shape
    if covariance_type == "full":
        # (N, K, D): (x - mu_k) L_k for every point and component.
        y = np.einsum("nd,kde->nke", x, chol) - np.einsum("kd,kde->ke", means, chol)[None]
        log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)
    elif covariance_type == "tied":
        y = (x @ chol)[:, None, :] - (means @ chol)[None]
        log_det = np.full(k, np.log(np.diagonal(chol)).sum())
    elif covariance_type == "diag":
        y = (x[:, None, :] - means[None]) * chol[None]
        log_det = np.log(chol).sum(1)
    elif covariance_type == "spherical":
        y = (x[:, None, :] - means[None]) * chol[None, :, None]
        log_det = d * np.log(chol)
    else:
        raise ValueError(f"covariance_type must be one of {_COVARIANCE_TYPES}")
    log_gauss = -0.5 * (d * math.log(2.0 * math.pi) + np.square(y).sum(-1)) + log_det[None]
    return logsumexp(log_gauss + np.log(np.asarray(weights, dtype=np.float64))[None], axis=1)


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
        self._arrays: dict[str, np.ndarray] | None = None

    # -- fitting ----------------------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        return self._arrays is not None

    def _fitted(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            raise RuntimeError("NoveltyDetector is not fitted: call fit() first")
        return self._arrays

    @property
    def n_features(self) -> int:
        """Dimension D of the features the fitted mixture scores."""
        return int(self._fitted()["means"].shape[1])

    @property
    def n_fitted_components(self) -> int:
        """Components of the fitted mixture (the BIC's choice when ``n_components="bic"``)."""
        return int(self._fitted()["means"].shape[0])

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
        from sklearn.mixture import GaussianMixture

        features = _as_matrix(train_features, "train_features")
        if len(features) < 2:
            raise ValueError("need at least 2 training feature vectors")
        center = features.mean(0)
        spread = features.std(0)
        scale = np.where(spread > 1e-6 * max(float(spread.max()), 1e-12), spread, 1.0)
        standard = (features - center) / scale

        def mixture(components: int) -> GaussianMixture:
            return GaussianMixture(
                components,
                covariance_type=self.covariance_type,
                reg_covar=self.reg_covar,
                n_init=1,
                max_iter=200,
                random_state=self.seed,
            ).fit(standard)

        if self.n_components == "bic":
            upper = max(1, min(self.max_components, len(features) // 2))
            candidates = [mixture(k) for k in range(1, upper + 1)]
            gmm = min(candidates, key=lambda candidate: candidate.bic(standard))
        else:
            gmm = mixture(min(int(self.n_components), len(features)))
        self._arrays = {
            "weights": gmm.weights_.copy(),
            "means": gmm.means_.copy(),
            "covariances": gmm.covariances_.copy(),
            "precisions_cholesky": gmm.precisions_cholesky_.copy(),
            "center": center,
            "scale": scale,
        }
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

    def score(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N,) novelty scores: the negative log-likelihood of the standardised features."""
        arrays = self._fitted()
        features = _as_matrix(features, "features")
        if features.shape[1] != self.n_features:
            raise ValueError(
                f"features have {features.shape[1]} dimensions, the detector {self.n_features}"
            )
        standard = (features - arrays["center"]) / arrays["scale"]
        return -mixture_log_likelihood(
            standard,
            arrays["weights"],
            arrays["means"],
            arrays["precisions_cholesky"],
            self.covariance_type,
        )

    def predict(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N,) bool: score above the threshold (novel)."""
        if self.threshold is None:
            raise RuntimeError("NoveltyDetector has no threshold: call fit() or calibrate()")
        return self.score(features) > self.threshold

    # -- serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted state: numpy arrays (``weights``, ``means``, ``covariances``,
        ``precisions_cholesky``, ``center``, ``scale``) and plain settings; no pickle."""
        arrays = self._fitted()
        return {
            "format": _FORMAT,
            "covariance_type": self.covariance_type,
            "n_components": self.n_fitted_components,
            "reg_covar": float(self.reg_covar),
            "false_alarm_rate": float(self.false_alarm_rate),
            "threshold": self.threshold,
            "seed": int(self.seed),
            **{name: arrays[name].copy() for name in _ARRAYS},
        }

    @classmethod
    def from_dict(
        cls, state: Mapping[str, Any], source: str | os.PathLike[str] = "detector"
    ) -> NoveltyDetector:
        """Rebuild from :meth:`to_dict` output (arrays or nested lists, as read from JSON).

        Raises:
            InputError: the state is not a NoveltyDetector's, or its arrays do not fit together
                (shapes, finite values, weights summing to 1, positive Cholesky diagonals).
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
            threshold = state.get("threshold")
            detector.threshold = None if threshold is None else float(threshold)
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(
                source, f"detector state is incomplete or malformed ({error})"
            ) from None
        _check_arrays(arrays, detector, source)
        detector._arrays = arrays
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
            InputError: missing or unreadable file, not JSON, or not a detector.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "novelty detector file does not exist")
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(path, f"is not a JSON novelty detector ({error})") from None
        except OSError as error:
            raise InputError(path, f"cannot be read ({error.strerror or error})") from None
        if not isinstance(state, dict):
            raise InputError(path, "is not a JSON novelty detector")
        return cls.from_dict(state, path)

    def __repr__(self) -> str:
        if self._arrays is None:
            return f"NoveltyDetector(n_components={self.n_components!r}, not fitted)"
        return (
            f"NoveltyDetector(n_components={self.n_fitted_components}, "
            f"covariance_type={self.covariance_type!r}, threshold={self.threshold}, "
            f"false_alarm_rate={self.false_alarm_rate})"
        )


def _check_arrays(
    arrays: dict[str, np.ndarray], detector: NoveltyDetector, source: str | os.PathLike[str]
) -> None:
    """Refuse detector arrays that do not make a mixture (one line naming ``source``)."""
    means = arrays["means"]
    k = detector.n_components
    if means.ndim != 2 or 0 in means.shape or means.shape[0] != k:
        raise InputError(source, f"means must be ({k}, D) for n_components {k}, got {means.shape}")
    d = means.shape[1]
    shape = _covariance_shapes(detector.covariance_type, k, d)
    expected = {
        "weights": (k,),
        "covariances": shape,
        "precisions_cholesky": shape,
        "center": (d,),
        "scale": (d,),
    }
    for name, want in expected.items():
        if arrays[name].shape != want:
            raise InputError(source, f"{name} must have shape {want}, got {arrays[name].shape}")
    bad = [name for name, array in arrays.items() if not np.isfinite(array).all()]
    if bad or (detector.threshold is not None and not math.isfinite(detector.threshold)):
        raise InputError(source, f"non-finite values in {', '.join(bad) or 'threshold'}")
    weights = arrays["weights"]
    if (weights <= 0).any() or not math.isclose(float(weights.sum()), 1.0, abs_tol=1e-6):
        raise InputError(source, "mixture weights must be positive and sum to 1")
    chol = arrays["precisions_cholesky"]
    if detector.covariance_type in ("full", "tied"):
        chol = np.diagonal(chol, axis1=-2, axis2=-1)
    if (chol <= 0).any() or (arrays["scale"] <= 0).any():
        raise InputError(source, "precision Cholesky diagonals and scales must be positive")


def _as_matrix(values: np.ndarray | torch.Tensor | Sequence, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) matrix, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array
