"""Per-pixel anomaly scores shared by the VAE and the baselines, and their thresholds.

The score of a pixel is 1 - Pearson correlation between its own (preprocessed) spectrum and a
reference spectrum inside an energy window given in eV on the calibrated axis (default the Fe L2,3
window, 690-730 eV). References (``REFERENCES``):

- ``local``: the reconstruction corrected by the neighbours' residuals. For each of the
  four half-rings of 5 neighbours (the upper, lower, left and right halves of the 3 x 3 ring) the
  reference is ``reconstruction + channel-wise median of those neighbours' (own - reconstruction)``,
  and the pixel's score is the lowest of the four. A model error that the neighbours share (the
  bundled VAE's reconstructions of normal pixels are 10-30 times further from them than Poisson
  noise: 1 - r of 0.02-0.05 against ~0.002) cancels, while the pixel's own departure does not; a
  pixel on a phase boundary has a half-ring in its own phase, so the boundary is not flagged (a
  median over the whole ring flagged 1-2% of anomaly-free cubes, mostly there). The price:
  inside a cluster of anomalies some half-ring is anomalous alike, so clusters are missed (F1
  0.31 on clusters of 9 at 2 eV, against 0.94 with ``network``).
- ``network``: the reconstruction itself, as the reference.
- ``either`` (default): a pixel is suspect under either reference. Each score map is put on a robust
  z scale (``(log score - median) / (1.4826 MAD)`` over the cube, :func:`robust_z`) and the
  pixel's score is the larger of its two z values (:func:`either_score`); the ``null``
  threshold is then the Gaussian's upper ``false_alarm / 2`` quantile for each reference
  (Bonferroni), with no refit. Inside a cluster the local reference fails and the network one
  does not; for single pixels the local one is the sharper (bundled weights: F1 0.91 on
  clusters of 9 against 0.31 with ``local``, 0.81 at 0.5 eV against 0.89; see the README).

Thresholds (``THRESHOLDS``):

- ``null`` (default): a null model of the normal pixels' scores fitted robustly on the cube's own
  score map. ``log(score)`` of normal pixels is taken as Gaussian (the score is a ratio of noise
  to signal variance, which thickness and counts scale multiplicatively); its centre and spread
  are the median and 1.4826 x MAD of all the cube's log-scores, which the (rare) anomalies barely
  move, and pixels beyond the ``1 - false_alarm`` quantile of that Gaussian are flagged. A cube
  without anomalies therefore flags about ``false_alarm`` of its pixels (plus what its heavier
  tail adds) instead of splitting its normal pixels in two.
- ``otsu``: the reference's Otsu threshold. It assumes that two classes exist, so on an
  anomaly-free cube it flags a large share of normal pixels (13-26% on the simulated cubes).
"""

from __future__ import annotations

import numpy as np

from convsuite.core_ops.errors import InputError

__all__ = [
    "DEFAULT_FALSE_ALARM",
    "DEFAULT_WINDOW_EV",
    "REFERENCES",
    "THRESHOLDS",
    "check_reference",
    "check_threshold",
    "either_score",
    "reference_threshold",
    "robust_z",
    "score_label",
    "in_bounds_median",
    "neighbour_median",
    "null_threshold",
    "otsu_threshold",
    "pearson_distance",
    "score_pixels",
    "threshold",
    "window_channels",
]

DEFAULT_WINDOW_EV = (690.0, 730.0)
DEFAULT_FALSE_ALARM = 5e-4
THRESHOLDS = ("null", "otsu")
REFERENCES = ("local", "network", "either")
_MAD_TO_SIGMA = 1.4826  # MAD of a Gaussian in units of its standard deviation
_FLOOR = 1e-9  # scores are clipped here before the logarithm (a perfect match scores 0)


def window_channels(energies: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Boolean (E,) selection of the grid channels inside ``window`` (eV, inclusive).

    Raises:
        InputError: the window is empty, outside the grid, or holds fewer than 3 channels.
    """
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise InputError("--window", f"energy window {low:g}-{high:g} eV is empty")
    step = float(energies[1] - energies[0]) if energies.size > 1 else 0.0
    if low < energies[0] - 1e-6 - step / 2 or high > energies[-1] + 1e-6 + step / 2:
        raise InputError(
            "--window",
            f"energy window {low:g}-{high:g} eV is outside the network's energy grid "
            f"({energies[0]:g}-{energies[-1]:g} eV)",
        )
    selected = (energies >= low - 1e-9) & (energies <= high + 1e-9)
    if selected.sum() < 3:
        raise InputError("--window", f"energy window {low:g}-{high:g} eV holds under 3 channels")
    return selected


def pearson_distance(
    own: np.ndarray, reconstruction: np.ndarray, channels: np.ndarray
) -> np.ndarray:
    """1 - Pearson r between spectra over ``channels``: (..., E), (..., E) -> (...,) float32.

    A flat spectrum (zero variance) scores 1 (no correlation).
    """
    a = own[..., channels].astype(np.float64)
    b = reconstruction[..., channels].astype(np.float64)
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    r = np.divide(
        (a * b).sum(-1), denominator, out=np.zeros(denominator.shape), where=denominator > 0
    )
    return (1.0 - r).astype(np.float32)


def otsu_threshold(scores: np.ndarray) -> float:
    """Otsu's threshold of a score map (scikit-image); +inf when all scores are equal."""
    from skimage.filters import threshold_otsu

    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return float("inf")
    return float(threshold_otsu(values, nbins=512))


def null_threshold(scores: np.ndarray, false_alarm: float = DEFAULT_FALSE_ALARM) -> float:
    """Threshold of a robust log-normal null fitted on the score map itself (see the module).

    Args:
        scores: score map, any shape; non-finite values are ignored.
        false_alarm: the null model's probability of a normal pixel above the threshold, (0, 1).

    Returns:
        ``exp(median + z * 1.4826 * MAD)`` of ``log(scores)``, ``z`` the Gaussian's upper
        ``false_alarm`` quantile; +inf when all scores are equal.
    """
    from scipy.stats import norm

    check_threshold("null", false_alarm)
    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return float("inf")
    centre, spread = _log_null(np.log(np.maximum(values, _FLOOR)))
    return float(np.exp(centre + float(norm.isf(false_alarm)) * spread))


def _log_null(logs: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 MAD) of finite log scores: the robust null's centre and sigma."""
    centre = float(np.median(logs))
    return centre, _MAD_TO_SIGMA * float(np.median(np.abs(logs - centre)))


def threshold(
    scores: np.ndarray, method: str = "null", false_alarm: float = DEFAULT_FALSE_ALARM
) -> float:
    """The ``method`` threshold (``null`` or ``otsu``, see the module) of a score map.

    Raises:
        InputError: see :func:`check_threshold`.
    """
    check_threshold(method, false_alarm)
    if method == "null":
        return null_threshold(scores, false_alarm)
    return otsu_threshold(scores)


def check_threshold(method: str, false_alarm: float = DEFAULT_FALSE_ALARM) -> None:
    """Raises InputError: ``method`` is not one of ``THRESHOLDS``, or ``false_alarm`` is not in
    (0, 1)."""
    if method not in THRESHOLDS:
        raise InputError("--threshold", f"must be one of {', '.join(THRESHOLDS)}, got {method!r}")
    if not 0 < false_alarm < 1:
        raise InputError("--false-alarm", f"must lie in (0, 1), got {false_alarm:g}")


def neighbour_median(cube: np.ndarray) -> np.ndarray:
    """Channel-wise median of each pixel's 8 neighbours that lie inside the map, (y, x, E) ->
    (y, x, E) (:func:`in_bounds_median`)."""
    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    return in_bounds_median(cube, ring)


def in_bounds_median(values: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Channel-wise median of each pixel's neighbours in ``footprint`` that lie inside the map:
    (y, x, E), (3, 3) bool centred on the pixel (centre False) -> (y, x, E), ``values``' dtype.

    The median of n members is the one of rank n // 2 from 0 (for an even n the upper of the
    middle two, as scipy's ``median_filter`` takes for the 8-neighbour ring); NaN where no member
    lies inside (a map 1 pixel wide). A pixel on the edge is compared with its fewer in-bounds
    neighbours only: padding the map by repeating its edge (scipy's ``reflect``) made a corner
    pixel 3 of the 5 members of two half-rings, so its local reference was its own spectrum.
    """
    from scipy.ndimage import rank_filter

    # Exact for the interior, whatever the edge mode; the edge is recomputed below.
    out = rank_filter(values, int(footprint.sum()) // 2, footprint=footprint[..., None])
    height, width = values.shape[:2]
    edge = np.ones((height, width), bool)
    edge[1:-1, 1:-1] = False
    ys, xs = np.nonzero(edge)
    offsets = np.argwhere(footprint) - 1  # (members, 2): dy, dx
    rows, cols = ys + offsets[:, :1], xs + offsets[:, 1:]  # (members, edge pixels)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    members = values[rows.clip(0, height - 1), cols.clip(0, width - 1)]  # (members, pixels, E)
    members = np.sort(np.where(inside[..., None], members, np.nan), axis=0)  # NaN last
    out[ys, xs] = np.take_along_axis(members, inside.sum(0)[None, :, None] // 2, 0)[0]
    return out


def _half_rings() -> list[np.ndarray]:
    """(3, 3) footprints of the four half-rings of 5 neighbours (centre excluded)."""
    footprints = []
    for rows, cols in ((slice(0, 2), slice(None)), (slice(1, 3), slice(None))) + (
        (slice(None), slice(0, 2)),
        (slice(None), slice(1, 3)),
    ):
        footprint = np.zeros((3, 3), bool)
        footprint[rows, cols] = True
        footprint[1, 1] = False
        footprints.append(footprint)
    return footprints


def score_pixels(
    own: np.ndarray, reconstruction: np.ndarray, channels: np.ndarray, reference: str = "local"
) -> np.ndarray:
    """Scores (1 - Pearson r over ``channels``) of each pixel against its ``reference`` (see the
    module): (y, x, E), (y, x, E), (E,) bool -> (y, x) float32. An edge pixel's half-rings
    hold only its neighbours inside the map (:func:`in_bounds_median`); NaN for a pixel none of
    whose half-rings holds one (a 1 x 1 map). For ``either`` the robust z of
    :func:`either_score`, over this block (:func:`detect` combines whole maps instead).

    Raises:
        InputError: see :func:`check_reference`.
    """
    check_reference(reference)
    if reference == "either":
        return either_score(
            score_pixels(own, reconstruction, channels, "local"),
            score_pixels(own, reconstruction, channels, "network"),
        )
    own = own[..., channels]
    reconstruction = reconstruction[..., channels]
    everything = np.ones(own.shape[-1], bool)
    if reference == "network":
        return pearson_distance(own, reconstruction, everything)
    residual = own - reconstruction
    scores = []
    for footprint in _half_rings():
        median = in_bounds_median(residual, footprint)
        score = pearson_distance(own, reconstruction + median, everything)
        scores.append(np.where(np.isnan(median[..., 0]), np.nan, score))
    return np.fmin.reduce(scores, axis=0)


def robust_z(scores: np.ndarray) -> np.ndarray:
    """``(log score - median) / (1.4826 MAD)`` of a score map over all its finite pixels (the
    null model of :func:`null_threshold` as a z scale), same shape, float32; zeros when the map
    has no spread."""
    logs = np.log(np.maximum(np.asarray(scores, dtype=np.float64), _FLOOR))
    finite = logs[np.isfinite(logs)]
    if finite.size == 0:
        return np.zeros(logs.shape, np.float32)
    centre, spread = _log_null(finite)
    if spread <= 0:
        return np.zeros(logs.shape, np.float32)
    return ((logs - centre) / spread).astype(np.float32)


def either_score(local: np.ndarray, network: np.ndarray) -> np.ndarray:
    """The ``either`` score of a pixel: the larger of its robust z under the local and under the
    network reference, (y, x), (y, x) -> (y, x) float32 (see the module)."""
    return np.maximum(robust_z(local), robust_z(network))


def reference_threshold(
    scores: np.ndarray,
    reference: str = "local",
    method: str = "null",
    false_alarm: float = DEFAULT_FALSE_ALARM,
) -> float:
    """The threshold of a score map made with ``reference``: :func:`threshold` for ``local`` and
    ``network``; for ``either`` (z scores) the Gaussian's upper ``false_alarm / 2`` quantile
    (``null``) or Otsu's threshold of the z map (``otsu``).

    Raises:
        InputError: see :func:`check_threshold` and :func:`check_reference`.
    """
    from scipy.stats import norm

    check_reference(reference)
    check_threshold(method, false_alarm)
    if reference != "either":
        return threshold(scores, method, false_alarm)
    if method == "null":
        return float(norm.isf(false_alarm / 2))
    return otsu_threshold(scores)


def score_label(reference: str) -> str:
    """What a ``reference``'s score map holds, for figure and signal titles."""
    if reference == "either":
        return "robust z of 1 - Pearson r (larger of local, network)"
    return "1 - Pearson r"


def check_reference(reference: str) -> None:
    """Raises InputError: ``reference`` is not one of ``REFERENCES``."""
    if reference not in REFERENCES:
        raise InputError(
            "--reference", f"must be one of {', '.join(REFERENCES)}, got {reference!r}"
        )
