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

Deviation (the monitors' default since issue 19 part 2): :class:`FusedNoveltyDetector`. With a few
hundred training maps, one full covariance per EM component on 86 features (learned features,
shape profile, clump statistics) is estimated from ~30 maps each: known maps of broad classes
(centre) scored as unlikely as a held-out pattern (held-out random: AUROC 0.88 over 3 seeds).
Instead the components are the known classes with one shared covariance (Lee et al., NeurIPS
2018), fitted apart on the learned features and on the map statistics, and the two negative
log-likelihoods are standardised on validation maps and summed; the same Gaussians give the
class (their posterior), which classified better than the network's head after a short training.
:func:`load_detector` reads either kind of file.

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

__all__ = [
    "FusedNoveltyDetector",
    "NoveltyDetector",
    "component_log_densities",
    "load_detector",
    "mixture_log_likelihood",
    "msp_score",
]

_FORMAT = "convsuite.semicon.NoveltyDetector/1"
_FUSED_FORMAT = "convsuite.semicon.FusedNoveltyDetector/1"
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


def component_log_densities(
    x: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
) -> np.ndarray:
    """``log w_k + log N(x; mu_k, Sigma_k)`` of each row of ``x`` and each mixture component.

    The mixture's log-density is their log-sum-exp (:func:`mixture_log_likelihood`), with
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
        (N, K) float64 (natural log).
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
    return log_gauss + np.log(np.asarray(weights, dtype=np.float64))[None]


def mixture_log_likelihood(
    x: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
) -> np.ndarray:
    """Log-density of each row of ``x`` under a Gaussian mixture, from its arrays: the
    log-sum-exp over components of :func:`component_log_densities` (same arguments).

    Returns:
        (N,) float64 log-likelihoods (natural log), what
        ``GaussianMixture.score_samples`` returns for the same parameters.
    """
    log_joint = component_log_densities(x, weights, means, precisions_cholesky, covariance_type)
    return logsumexp(log_joint, axis=1)


class _Thresholded:
    """The threshold shared by the detectors: a quantile of known-class validation scores."""

    false_alarm_rate: float
    threshold: float | None

    def score(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def calibrate(
        self, val_features: np.ndarray | torch.Tensor, false_alarm_rate: float | None = None
    ) -> float:
        """Set (and return) the threshold: the ``1 - rate`` quantile of known-class scores."""
        rate = _checked_rate(
            self.false_alarm_rate if false_alarm_rate is None else false_alarm_rate
        )
        self.false_alarm_rate = rate
        self.threshold = float(np.quantile(self.score(val_features), 1.0 - rate))
        return self.threshold


def _checked_rate(rate: float) -> float:
    if not 0.0 < rate < 1.0:
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {rate}")
    return rate


class NoveltyDetector(_Thresholded):
    """A Gaussian mixture on penultimate features; score = negative log-likelihood.

    With ``n_components="classes"`` the components are the known classes themselves (Lee et al.,
    NeurIPS 2018: class-conditional Gaussians with one shared covariance, as in linear
    discriminant analysis): each mean is its class's mean, each weight its share of the training
    maps, the covariance the pooled within-class one (``covariance_type="tied"``); no EM. With
    few maps per class this estimates one covariance from all of them instead of one per
    component, and :meth:`posterior` gives the class probabilities (a generative classifier).

    Args:
        n_components: mixture components; ``"bic"``: the BIC-best of ``1..max_components``;
            ``"classes"``: one per class of the labels given to :meth:`fit`.
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
        if isinstance(n_components, str) and n_components not in ("bic", "classes"):
            raise ValueError(
                f"n_components must be an int, 'bic' or 'classes', got {n_components!r}"
            )
        if n_components == "classes" and covariance_type != "tied":
            raise ValueError("n_components='classes' needs covariance_type='tied'")
        if isinstance(n_components, int) and n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if covariance_type not in _COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {_COVARIANCE_TYPES}")
        self.n_components = n_components
        self.max_components = max_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.false_alarm_rate = _checked_rate(false_alarm_rate)
        self.seed = seed
        self.threshold: float | None = None
        self._arrays: dict[str, np.ndarray] | None = None

    @property
    def classifies(self) -> bool:
        """Whether the components are the classes (component k is class k): :meth:`posterior`."""
        return self.n_components == "classes"

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
    def weights(self) -> np.ndarray:
        """(K,) mixture weights (with class components: the classes' shares of the training maps)."""
        return self._fitted()["weights"].copy()

    @property
    def n_fitted_components(self) -> int:
        """Components of the fitted mixture (the BIC's choice when ``n_components="bic"``)."""
        return int(self._fitted()["means"].shape[0])

    def fit(
        self,
        train_features: np.ndarray | torch.Tensor,
        val_features: np.ndarray | None = None,
        labels: np.ndarray | Sequence[int] | None = None,
    ) -> NoveltyDetector:
        """Fit the mixture on (N, D) training features; set the threshold from validation ones.

        Args:
            train_features: (N, D) penultimate features of the known-class training maps.
            val_features: (M, D) features of held-out known-class maps for :meth:`calibrate`;
                None: calibrate on the training features (optimistic: fewer false alarms are
                then flagged on new data than ``false_alarm_rate`` promises).
            labels: (N,) class indices ``0..K-1`` of the training maps, every class present;
                needed (only) with ``n_components="classes"``.
        """
        from sklearn.mixture import GaussianMixture

        features = _as_matrix(train_features, "train_features")
        if len(features) < 2:
            raise ValueError("need at least 2 training feature vectors")
        center = features.mean(0)
        spread = features.std(0)
        scale = np.where(spread > 1e-6 * max(float(spread.max()), 1e-12), spread, 1.0)
        standard = (features - center) / scale
        if self.classifies:
            self._arrays = {**self._class_gaussians(standard, labels), "center": center}
            self._arrays["scale"] = scale
            self.calibrate(features if val_features is None else val_features)
            return self

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

    def _class_gaussians(
        self, standard: np.ndarray, labels: np.ndarray | Sequence[int] | None
    ) -> dict[str, np.ndarray]:
        """Class means, class shares and the pooled within-class covariance (+ ``reg_covar``)."""
        if labels is None:
            raise ValueError("n_components='classes' needs the training labels")
        labels = np.asarray(labels)
        if labels.shape != (len(standard),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be ({len(standard)},) class indices")
        counts = np.bincount(labels, minlength=1) if labels.min() >= 0 else np.zeros(0)
        if len(counts) < 1 or (counts == 0).any():
            raise ValueError("labels must be 0..K-1 with every class present")
        means = np.stack([standard[labels == k].mean(0) for k in range(len(counts))])
        residuals = standard - means[labels]
        covariance = residuals.T @ residuals / len(standard)
        covariance[np.diag_indices_from(covariance)] += self.reg_covar
        # scikit-learn's precisions_cholesky_ for "tied": inverse of the covariance's factor, .T
        factor = np.linalg.cholesky(covariance)
        precision_cholesky = np.linalg.solve(factor, np.eye(len(covariance))).T
        return {
            "weights": counts / counts.sum(),
            "means": means,
            "covariances": covariance,
            "precisions_cholesky": precision_cholesky,
        }

    # -- scoring ----------------------------------------------------------------------------------

    def log_densities(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, K) ``log w_k + log N_k`` of the standardised features, per component."""
        arrays = self._fitted()
        features = _as_matrix(features, "features")
        if features.shape[1] != self.n_features:
            raise ValueError(
                f"features have {features.shape[1]} dimensions, the detector {self.n_features}"
            )
        standard = (features - arrays["center"]) / arrays["scale"]
        return component_log_densities(
            standard,
            arrays["weights"],
            arrays["means"],
            arrays["precisions_cholesky"],
            self.covariance_type,
        )

    def score(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N,) novelty scores: the negative log-likelihood of the standardised features."""
        return -logsumexp(self.log_densities(features), axis=1)

    def posterior(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, K) class probabilities (Bayes' rule over the components; needs
        ``n_components="classes"``, where component k is class k)."""
        if not self.classifies:
            raise RuntimeError("posterior() needs a detector fitted with n_components='classes'")
        return _softmax(self.log_densities(features))

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
            "components": "classes" if self.classifies else "mixture",
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
            components = state.get("components", "mixture")  # absent in older files
            if components not in ("classes", "mixture"):
                raise ValueError(f"components {components!r}")
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(
                source, f"detector state is incomplete or malformed ({error})"
            ) from None
        _check_arrays(arrays, detector, source)
        if components == "classes":
            if detector.covariance_type != "tied":
                raise InputError(source, "class components need covariance_type 'tied'")
            detector.n_components = "classes"
        detector._arrays = arrays
        return detector

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON (atomically); floats round-trip exactly."""
        return _save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NoveltyDetector:
        """Read a detector written by :meth:`save`.

        Raises:
            InputError: missing or unreadable file, not JSON, or not a detector.
        """
        path = Path(path)
        return cls.from_dict(_read_json(path), path)

    def __repr__(self) -> str:
        if self._arrays is None or self.classifies:
            fitted = "not fitted" if self._arrays is None else f"{self.n_fitted_components} classes"
            return f"NoveltyDetector(n_components={self.n_components!r}, {fitted})"
        return (
            f"NoveltyDetector(n_components={self.n_fitted_components}, "
            f"covariance_type={self.covariance_type!r}, threshold={self.threshold}, "
            f"false_alarm_rate={self.false_alarm_rate})"
        )


class FusedNoveltyDetector(_Thresholded):
    """Class-conditional Gaussians on blocks of the features, their scores fused: the novelty
    detector of :func:`~convsuite.semicon.train.fit_monitor`.

    One :class:`NoveltyDetector` with ``n_components="classes"`` (shared covariance) per block of
    columns, e.g. the network's learned features and the parameter-free map statistics (shape
    profile, clump statistics). Each block's negative log-likelihood is standardised by its
    median and standard deviation on the validation maps and the standardised scores are summed:
    a block of 64 learned features no longer drowns one of 22 statistics, and no covariance
    between the blocks is estimated from a few hundred maps. The class probabilities
    (:meth:`posterior`) take the blocks as independent given the class: the monitor's class.

    Args:
        blocks: (start, stop) column ranges, covering the features in order without gaps.
        reg_covar: added to each block's covariance diagonal (standardised units).
        false_alarm_rate: share of known-class validation maps flagged by the threshold.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> labels = np.repeat([0, 1], 200)
        >>> known = rng.normal(size=(400, 5)) + 4.0 * labels[:, None]
        >>> detector = FusedNoveltyDetector([(0, 3), (3, 5)]).fit(known, labels=labels)
        >>> bool(detector.predict(np.full((1, 5), -8.0))[0]), detector.posterior(known[:1]).shape
        (True, (1, 2))
    """

    covariance_type = "tied"
    classifies = True

    def __init__(
        self,
        blocks: Sequence[tuple[int, int]],
        reg_covar: float = 1e-3,
        false_alarm_rate: float = 0.05,
    ) -> None:
        self.blocks = [(int(start), int(stop)) for start, stop in blocks]
        edges = [edge for block in self.blocks for edge in block]
        if not self.blocks or edges[0] != 0 or any(b <= a for a, b in self.blocks):
            raise ValueError(f"blocks must be non-empty (start, stop) ranges from 0, got {blocks}")
        if any(edges[i] != edges[i + 1] for i in range(1, len(edges) - 1, 2)):
            raise ValueError(f"blocks must follow each other without gaps, got {blocks}")
        self.reg_covar = reg_covar
        self.false_alarm_rate = _checked_rate(false_alarm_rate)
        self.threshold: float | None = None
        self.parts: list[NoveltyDetector] = []
        self.offsets = np.zeros(len(self.blocks))
        self.spreads = np.ones(len(self.blocks))

    @property
    def is_fitted(self) -> bool:
        return bool(self.parts)

    def _fitted(self) -> list[NoveltyDetector]:
        if not self.parts:
            raise RuntimeError("FusedNoveltyDetector is not fitted: call fit() first")
        return self.parts

    @property
    def n_features(self) -> int:
        """Dimension D of the features scored (the last block's end)."""
        return self.blocks[-1][1]

    @property
    def n_fitted_components(self) -> int:
        """Number of classes (components of every block)."""
        return self._fitted()[0].n_fitted_components

    def fit(
        self,
        train_features: np.ndarray | torch.Tensor,
        val_features: np.ndarray | torch.Tensor | None = None,
        labels: np.ndarray | Sequence[int] | None = None,
    ) -> FusedNoveltyDetector:
        """Fit each block's class Gaussians on (N, D) training features and their (N,) class
        indices ``labels``; standardise and threshold on (M, D) validation features (None: the
        training ones, optimistic)."""
        train = self._check(train_features, "train_features")
        val = train if val_features is None else self._check(val_features, "val_features")
        self.parts = [
            NoveltyDetector("classes", covariance_type="tied", reg_covar=self.reg_covar).fit(
                train[:, start:stop], val[:, start:stop], labels
            )
            for start, stop in self.blocks
        ]
        part_scores = [
            part.score(val[:, a:b]) for part, (a, b) in zip(self.parts, self.blocks, strict=True)
        ]
        self.offsets = np.array([np.median(s) for s in part_scores])
        self.spreads = np.array([max(float(s.std()), 1e-12) for s in part_scores])
        self.calibrate(val)
        return self

    def _check(self, features: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
        features = _as_matrix(features, name)
        if features.shape[1] != self.n_features:
            raise ValueError(
                f"{name} have {features.shape[1]} dimensions, the detector {self.n_features}"
            )
        return features

    def score(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N,) novelty scores: the sum over blocks of ``(nll - median) / std`` (validation)."""
        features = self._check(features, "features")
        total = np.zeros(len(features))
        for part, (start, stop), offset, spread in zip(
            self._fitted(), self.blocks, self.offsets, self.spreads, strict=True
        ):
            total += (part.score(features[:, start:stop]) - offset) / spread
        return total

    def posterior(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, K) class probabilities, the blocks independent given the class."""
        features = self._check(features, "features")
        parts = self._fitted()
        log_prior = np.log(parts[0].weights)
        log_joint = sum(
            part.log_densities(features[:, start:stop]) - log_prior
            for part, (start, stop) in zip(parts, self.blocks, strict=True)
        )
        return _softmax(log_joint + log_prior)

    def predict(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N,) bool: score above the threshold (novel)."""
        if self.threshold is None:
            raise RuntimeError("FusedNoveltyDetector has no threshold: call fit() or calibrate()")
        return self.score(features) > self.threshold

    def to_dict(self) -> dict[str, Any]:
        """The fitted state: the blocks, each block's :meth:`NoveltyDetector.to_dict`, the
        standardisation and the threshold; no pickle."""
        return {
            "format": _FUSED_FORMAT,
            "blocks": [list(block) for block in self.blocks],
            "parts": [part.to_dict() for part in self._fitted()],
            "offsets": self.offsets.copy(),
            "spreads": self.spreads.copy(),
            "reg_covar": float(self.reg_covar),
            "false_alarm_rate": float(self.false_alarm_rate),
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(
        cls, state: Mapping[str, Any], source: str | os.PathLike[str] = "detector"
    ) -> FusedNoveltyDetector:
        """Rebuild from :meth:`to_dict` output (arrays or nested lists, as read from JSON).

        Raises:
            InputError: not a fused detector's state, or parts that do not fit the blocks.
        """
        if state.get("format") != _FUSED_FORMAT:
            raise InputError(source, f"is not a {_FUSED_FORMAT} state")
        try:
            detector = cls(
                [tuple(block) for block in state["blocks"]],
                reg_covar=float(state["reg_covar"]),
                false_alarm_rate=float(state["false_alarm_rate"]),
            )
            threshold = state["threshold"]
            detector.threshold = None if threshold is None else float(threshold)
            detector.offsets = np.asarray(state["offsets"], dtype=np.float64)
            detector.spreads = np.asarray(state["spreads"], dtype=np.float64)
            parts = [NoveltyDetector.from_dict(part, source) for part in state["parts"]]
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(
                source, f"detector state is incomplete or malformed ({error})"
            ) from None
        shape = (len(detector.blocks),)
        if (
            len(parts) != len(detector.blocks)
            or detector.offsets.shape != shape
            or detector.spreads.shape != shape
            or not np.isfinite(np.r_[detector.offsets, detector.spreads]).all()
            or (detector.spreads <= 0).any()
            or any(not part.classifies for part in parts)
            or len({part.n_fitted_components for part in parts}) != 1
            or [part.n_features for part in parts] != [b - a for a, b in detector.blocks]
        ):
            raise InputError(source, "fused detector parts do not fit its blocks")
        detector.parts = parts
        return detector

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON (atomically)."""
        return _save_json(self.to_dict(), path)

    def __repr__(self) -> str:
        return (
            f"FusedNoveltyDetector(blocks={self.blocks}, threshold={self.threshold}, "
            f"false_alarm_rate={self.false_alarm_rate})"
        )


Detector = NoveltyDetector | FusedNoveltyDetector
"""Either novelty detector a monitor runs."""


def load_detector(path: str | os.PathLike[str]) -> Detector:
    """Read a detector written by :meth:`NoveltyDetector.save` or
    :meth:`FusedNoveltyDetector.save` (the file's ``format`` says which).

    Raises:
        InputError: missing or unreadable file, not JSON, or not a detector.
    """
    path = Path(path)
    state = _read_json(path)
    if state.get("format") == _FUSED_FORMAT:
        return FusedNoveltyDetector.from_dict(state, path)
    return NoveltyDetector.from_dict(state, path)


def _save_json(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    path = Path(path)
    with atomic_write(path) as handle:
        json.dump(plain(state), handle)
        handle.write("\n")
    return path


def _read_json(path: Path) -> dict[str, Any]:
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
    return state


def _check_arrays(
    arrays: dict[str, np.ndarray], detector: NoveltyDetector, source: str | os.PathLike[str]
) -> None:
    """Refuse detector arrays that do not make a mixture (one line naming ``source``)."""
    means = arrays["means"]
    k = detector.n_components
    assert isinstance(k, int)
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


def _softmax(log_joint: np.ndarray) -> np.ndarray:
    return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))


def _as_matrix(values: np.ndarray | torch.Tensor | Sequence, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) matrix, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array
