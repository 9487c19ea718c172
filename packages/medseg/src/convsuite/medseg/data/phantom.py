"""Seeded chest-radiograph phantoms (PA view) whose ground truth is the exact organ contours.

Model. Every phantom is built in a normalized *chest frame*: x to the image right, y down, unit
length = image size at scale 1, origin at the midline half-way down the lungs. A statistical shape
model draws the anatomy there:

* thorax: half-width of the lung fields, mediastinum width, lung height, a right hemidiaphragm
  higher than the left;
* lungs: apex (the top-most point) -> lateral wall (a superellipse arc) -> sharp costophrenic
  angle -> diaphragm dome -> cardiophrenic angle -> medial border back to the apex. The medial
  border follows the heart silhouette (the cardiac notch, deepest in the left lung, image right),
  with a little overlap as in annotated radiographs. Each border carries random low-order Fourier
  modes that vanish at its ends, so corners stay where the anatomy puts them;
* heart: a tilted ellipse with random Fourier modes of its radius (orders 2-4), its bottom
  flattened by the diaphragm, stretched to a cardiothoracic ratio drawn in [0.38, 0.58] and set
  about a third of its width to the image left of the midline;
* clavicles: thin S-shaped bands, tapered at both ends, from near the midline outward and upward
  over the apices.

A random pose (scale +-10%, shift +-5% of the size, rotation +-5 degrees, then shifted if needed
so that every contour keeps 3% of the size from the border) maps the frame to pixels. Each organ
is a dense closed contour (hundreds of points), counter-clockwise on screen, starting at its
top-most point in the chest frame (the apex of a lung, the top of the heart) or, for a clavicle,
at its lateral tip. Its landmarks are ``ORGAN_SIZES[organ]`` points evenly spaced by arc length
along that same contour, so landmark polygons and rendered organs agree (Dice >= 0.98 for lungs
and heart; about 0.975 or more for the thin clavicles, whose tips the 23 points cut a little).

Image. Attenuation is summed along the beam and shown as ``1 - exp(-attenuation)`` (bright =
attenuating): a torso of soft tissue, thickest in the middle, with a neck and sloping shoulders;
lungs (air, dark; denser towards the hila, mottled); the heart and mediastinum as soft tissue
(bright); the abdomen below the diaphragm; bones (spine, posterior and anterior ribs as curved
bands, clavicles). Organ edges are blurred by about 1.5 px at 1024. Then a smooth multiplicative
field (+-10-15%), gamma (0.8-1.25), additive Gaussian noise. Optional: a strong domain shift
(contrast, brightness, gamma 0.5-2, more noise) and random flat patches over a given fraction of
the lung fields. The anatomy is drawn first from the generator, so the same seed gives the same
anatomy at any size and with or without occlusion or domain shift.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.draw import ellipse

from convsuite.medseg.data.landmarks import ORGAN_SIZES
from convsuite.medseg.data.masks import contour_to_mask, signed_area

__all__ = [
    "ORGAN_SIZES",
    "Phantom",
    "PhantomOptions",
    "organ_masks",
    "simulate_phantom",
    "simulate_phantoms",
]

_MARGIN = 0.03
"""Smallest distance of any contour to the image border, as a fraction of the size."""

_LUNGS = ("RL", "LL")
_SIDES = {"RL": -1, "LL": 1, "RCLA": -1, "LCLA": 1}
"""Image side of each paired organ: -1 image left (patient's right), +1 image right."""


@dataclass(frozen=True)
class PhantomOptions:
    """What to simulate.

    Attributes:
        size: side of the square output image in pixels.
        clavicles: include the RCLA/LCLA landmarks in the output (they are always drawn).
        occlusion: if > 0, the fraction of the lungs' area to cover with random flat patches.
        domain_shift: random strong intensity shift (contrast, brightness, gamma, noise level).
        noise: standard deviation of the additive Gaussian noise, in [0, 1] image units.
    """

    size: int = 1024
    clavicles: bool = False
    occlusion: float = 0.0
    domain_shift: bool = False
    noise: float = 0.02


@dataclass(frozen=True)
class Phantom:
    """One simulated radiograph and its exact organ contours.

    Attributes:
        image: (size, size) float32 in [0, 1], bright = attenuating.
        landmarks: organ -> (N, 2) float64 (x, y) pixel coordinates; pixel (r, c) covers
            [c, c + 1) x [r, r + 1). RL, LL, H, and RCLA, LCLA with ``options.clavicles``.
        occlusion_mask: (size, size) bool, True where an occluding patch was drawn.
    """

    image: np.ndarray
    landmarks: dict[str, np.ndarray]
    occlusion_mask: np.ndarray


@dataclass(frozen=True)
class _Thorax:
    """Chest-frame dimensions shared by the organs."""

    half_width: float
    mediastinum: float
    apex: float
    costophrenic: dict[str, float]

    @property
    def lung_height(self) -> float:
        return self.costophrenic["LL"] - self.apex


@dataclass(frozen=True)
class _Pose:
    """Chest frame -> pixels: ``centre + scale * rotation @ point``."""

    centre: np.ndarray
    scale: float
    angle: float

    @property
    def rotation(self) -> np.ndarray:
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        return np.array([[cos, -sin], [sin, cos]])

    def to_image(self, points: np.ndarray) -> np.ndarray:
        return self.centre + self.scale * points @ self.rotation.T


@dataclass(frozen=True)
class _Anatomy:
    """Dense closed organ contours in the chest frame and the pose that maps them to pixels."""

    thorax: _Thorax
    contours: dict[str, np.ndarray]
    pose: _Pose

    def image_contours(self) -> dict[str, np.ndarray]:
        return {organ: self.pose.to_image(points) for organ, points in self.contours.items()}


def simulate_phantom(
    rng: np.random.Generator, options: PhantomOptions = PhantomOptions()
) -> Phantom:
    """Simulate one chest radiograph with its organ landmarks.

    Args:
        rng: source of all randomness; the anatomy is drawn from it first.
        options: size, clavicle landmarks, occlusion, domain shift and noise level.

    Returns:
        The image, the landmarks of RL, LL, H (and RCLA, LCLA) and the occlusion mask.
    """
    anatomy = _sample_anatomy(rng, options.size)
    contours = anatomy.image_contours()
    masks = {organ: _fill_polygon(points, options.size) for organ, points in contours.items()}
    image = _render(rng, anatomy, masks, options)
    lungs = masks["RL"] | masks["LL"]
    occlusion_mask = _occlude(rng, image, lungs, options.occlusion)
    organs = [*_LUNGS, "H", *(("RCLA", "LCLA") if options.clavicles else ())]
    landmarks = {organ: _resample(contours[organ], ORGAN_SIZES[organ]) for organ in organs}
    return Phantom(image=image, landmarks=landmarks, occlusion_mask=occlusion_mask)


def simulate_phantoms(
    n: int, seed: int, options: PhantomOptions = PhantomOptions()
) -> Iterator[Phantom]:
    """Simulate ``n`` phantoms lazily; same seed, same phantoms.

    Each phantom gets its own child generator from ``np.random.SeedSequence(seed).spawn(n)``.

    Args:
        n: number of phantoms.
        seed: seed of the whole series.
        options: passed to :func:`simulate_phantom`.

    Yields:
        The phantoms in order.
    """
    for child in np.random.SeedSequence(seed).spawn(n):
        yield simulate_phantom(np.random.default_rng(child), options)


def organ_masks(phantom: Phantom) -> dict[str, np.ndarray]:
    """Fill each landmark polygon of ``phantom`` into a bool mask of the image's shape.

    Args:
        phantom: a simulated phantom.

    Returns:
        organ -> (size, size) bool, True at pixel centres inside the landmark polygon.
    """
    shape = phantom.image.shape
    return {organ: contour_to_mask(points, shape) for organ, points in phantom.landmarks.items()}


# --- shape model (chest frame) -------------------------------------------------------------------


def _sample_anatomy(rng: np.random.Generator, size: int) -> _Anatomy:
    thorax = _sample_thorax(rng)
    heart = _heart_contour(rng, thorax)
    contours = {organ: _lung_contour(rng, thorax, heart, organ) for organ in _LUNGS}
    contours["H"] = heart
    for organ in ("RCLA", "LCLA"):
        contours[organ] = _clavicle_contour(rng, thorax, _SIDES[organ])
    pose = _fit_inside(_sample_pose(rng, size), contours, size)
    return _Anatomy(thorax=thorax, contours=contours, pose=pose)


def _sample_thorax(rng: np.random.Generator) -> _Thorax:
    lung_height = 0.52 * rng.uniform(0.9, 1.1)
    apex = -0.5 * lung_height
    left = apex + lung_height
    right = left - lung_height * rng.uniform(0.02, 0.08)
    return _Thorax(
        half_width=0.32 * rng.uniform(0.93, 1.07),
        mediastinum=rng.uniform(0.04, 0.06),
        apex=apex,
        costophrenic={"RL": right, "LL": left},
    )


def _fourier_modes(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """Random sine modes of orders 1-3 on t in [0, 1]; zero at both ends."""
    weights = rng.normal(0.0, amplitude / np.arange(1, 4))
    return np.sin(np.pi * np.outer(t, np.arange(1, 4))) @ weights


def _heart_contour(rng: np.random.Generator, thorax: _Thorax) -> np.ndarray:
    """Tilted, Fourier-perturbed ellipse with a flat bottom, sized by the cardiothoracic ratio."""
    width = rng.uniform(0.38, 0.58) * 2 * thorax.half_width
    height = width * rng.uniform(0.65, 0.8)
    left = -rng.uniform(0.28, 0.38) * width
    bottom = thorax.costophrenic["LL"] - rng.uniform(0.06, 0.11) * thorax.lung_height
    angle = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    orders = np.arange(2, 5)
    phases = rng.uniform(0, 2 * np.pi, 3)
    radius = 1 + np.cos(np.outer(angle, orders) + phases) @ rng.normal(0, 0.02, 3)
    x0, y0 = radius * np.cos(angle), rng.uniform(0.7, 0.85) * radius * np.sin(angle)
    tilt = np.radians(rng.uniform(15, 35))  # long axis from upper image left to lower image right
    x = x0 * np.cos(tilt) - y0 * np.sin(tilt)
    y = _soft_floor(x0 * np.sin(tilt) + y0 * np.cos(tilt), flat=0.12)
    x = left + (x - x.min()) / np.ptp(x) * width
    y = bottom - (y.max() - y) / np.ptp(y) * height
    return _closed_contour(np.stack([x, y], axis=1))


def _soft_floor(y: np.ndarray, flat: float) -> np.ndarray:
    """Smoothly cap y (down) at ``flat`` of its range above its maximum; monotone in y."""
    extent = np.ptp(y)
    floor = y.max() - flat * extent
    softness = 0.03 * extent
    return floor - softness * np.logaddexp(0.0, (floor - y) / softness)


def _lung_contour(
    rng: np.random.Generator, thorax: _Thorax, heart: np.ndarray, organ: str
) -> np.ndarray:
    """Apex -> lateral wall -> costophrenic angle -> diaphragm -> medial border (cardiac notch)."""
    side = _SIDES[organ]
    wall, height = thorax.half_width, thorax.lung_height
    apex_v = thorax.apex + rng.uniform(-0.01, 0.01)
    apex_r = thorax.mediastinum + rng.uniform(0.3, 0.45) * (wall - thorax.mediastinum)
    costophrenic_v = thorax.costophrenic[organ]
    if organ == "LL":
        cardiophrenic_v = heart[:, 1].max() - rng.uniform(0.003, 0.012)
    else:
        cardiophrenic_v = costophrenic_v - rng.uniform(0.08, 0.15) * height

    angle = np.linspace(0, np.pi / 2, 120)
    power = 2 / rng.uniform(2.0, 3.0)
    lateral_u = 1 - np.cos(angle) ** power
    lateral_r = apex_r + (wall - apex_r) * np.sin(angle) ** power
    lateral_r += wall * _fourier_modes(rng, lateral_u, 0.012)
    lateral_v = apex_v + lateral_u * (costophrenic_v - apex_v)

    u = np.linspace(1, 0, 120)
    medial_v = apex_v + u * (cardiophrenic_v - apex_v)
    medial_r = thorax.mediastinum + (apex_r - thorax.mediastinum) * (1 - u) ** rng.uniform(2, 4)
    medial_r += wall * _fourier_modes(rng, u, 0.006)
    heart_border = _silhouette(heart, medial_v, side) - rng.uniform(0.005, 0.015)
    heart_border = np.maximum.accumulate(heart_border[::-1])[
        ::-1
    ]  # down to its widest, then straight
    medial_r = np.maximum(medial_r, np.minimum(heart_border, 0.75 * wall))
    medial_r = np.minimum(medial_r, np.interp(medial_v, lateral_v, lateral_r) - 0.02 * np.sqrt(u))

    s = np.linspace(1, 0, 100)[1:]
    diaphragm_r = medial_r[0] + s * (wall - medial_r[0])
    diaphragm_v = costophrenic_v - (costophrenic_v - cardiophrenic_v) * (1 - s)
    dome = rng.uniform(0.05, 0.1) * height
    diaphragm_v += -4 * dome * s * (1 - s) + height * _fourier_modes(rng, s, 0.01)

    r = np.concatenate([lateral_r, diaphragm_r, medial_r[1:-1]])
    v = np.concatenate([lateral_v, diaphragm_v, medial_v[1:-1]])
    return _closed_contour(np.stack([side * r, v], axis=1))


def _silhouette(contour: np.ndarray, levels: np.ndarray, side: int) -> np.ndarray:
    """How far the closed contour reaches towards ``side`` at each level y; -inf where it is not."""
    x, y = contour[:, 0], contour[:, 1]
    x_next, y_next = np.roll(x, -1), np.roll(y, -1)
    level = levels[:, None]
    crosses = (y <= level) != (y_next <= level)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = x + (level - y) / (y_next - y) * (x_next - x)
    return np.where(crosses, side * crossing, -np.inf).max(axis=1)


def _clavicle_contour(rng: np.random.Generator, thorax: _Thorax, side: int) -> np.ndarray:
    """A thin S-shaped band from near the midline outward and upward, tapered to both tips."""
    s = np.linspace(0, 1, 120)
    medial = np.array([rng.uniform(0.025, 0.045), thorax.apex + rng.uniform(0.05, 0.09)])
    lateral = np.array(
        [thorax.half_width * rng.uniform(0.9, 1.0), thorax.apex - rng.uniform(0, 0.03)]
    )
    centre = medial + np.outer(s, lateral - medial)
    centre[:, 1] += rng.uniform(0.006, 0.014) * np.sin(2 * np.pi * s)
    centre[:, 0] *= side
    taper = np.minimum(np.minimum(s, 1 - s) / 0.15, 1.0)  # straight wedges at the tips
    thickness = rng.uniform(0.009, 0.013) * (1 + 0.35 * (1 - s) ** 4) * taper
    tangent = np.gradient(centre, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    edge = normal / np.linalg.norm(normal, axis=1, keepdims=True) * thickness[:, None]
    outline = np.concatenate([centre + edge, (centre - edge)[-2:0:-1]])
    return _closed_contour(outline, start=len(s) - 1)  # the lateral tip


def _closed_contour(points: np.ndarray, start: int | None = None) -> np.ndarray:
    """Start at ``start`` (default: the top-most point, smallest y), counter-clockwise on screen."""
    start = int(np.argmin(points[:, 1])) if start is None else start
    points = np.roll(points, -start, axis=0)
    if signed_area(points) < 0:
        points = np.concatenate([points[:1], points[:0:-1]])
    return points


def _sample_pose(rng: np.random.Generator, size: int) -> _Pose:
    centre = (np.array([0.5, 0.46]) + rng.uniform(-0.05, 0.05, 2)) * size
    return _Pose(
        centre=centre,
        scale=size * rng.uniform(0.9, 1.1),
        angle=np.radians(rng.uniform(-5, 5)),
    )


def _fit_inside(pose: _Pose, contours: dict[str, np.ndarray], size: int) -> _Pose:
    """Shrink, then shift the pose so that every contour keeps the margin from the border."""
    points = pose.to_image(np.concatenate(list(contours.values())))
    low, high = _MARGIN * size, (1 - _MARGIN) * size
    extent = np.ptp(points, axis=0).max()
    shrink = min(1.0, (high - low) / extent)
    points = pose.centre + shrink * (points - pose.centre)
    shift = np.maximum(low - points.min(axis=0), 0) - np.maximum(points.max(axis=0) - high, 0)
    return _Pose(centre=pose.centre + shift, scale=pose.scale * shrink, angle=pose.angle)


def _resample(contour: np.ndarray, n_points: int) -> np.ndarray:
    """``n_points`` evenly spaced by arc length along the closed contour, from its first point."""
    closed = np.vstack([contour, contour[:1]])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    targets = np.linspace(0.0, arc[-1], n_points, endpoint=False)
    return np.stack([np.interp(targets, arc, closed[:, i]) for i in range(2)], axis=1)


def _fill_polygon(points: np.ndarray, size: int) -> np.ndarray:
    """Even-odd scanline fill of a closed (x, y) polygon: True at pixel centres inside."""
    x, y = points[:, 0], points[:, 1]
    x_next, y_next = np.roll(x, -1), np.roll(y, -1)
    first = max(int(np.floor(y.min() - 0.5)), 0)
    rows = np.arange(first, min(int(np.ceil(y.max())) + 1, size))
    centre_y = rows[:, None] + 0.5
    row, edge = np.nonzero((y <= centre_y) != (y_next <= centre_y))
    t = (centre_y[row, 0] - y[edge]) / (y_next[edge] - y[edge])
    crossing = x[edge] + t * (x_next[edge] - x[edge])
    column = np.clip(np.floor(crossing - 0.5).astype(np.int64) + 1, 0, size)
    counts = np.bincount(row * (size + 1) + column, minlength=len(rows) * (size + 1))
    inside = np.cumsum(counts.reshape(len(rows), size + 1)[:, :size], axis=1) % 2 == 1
    mask = np.zeros((size, size), dtype=bool)
    mask[rows] = inside
    return mask


# --- image formation ----------------------------------------------------------------------------


def _render(
    rng: np.random.Generator,
    anatomy: _Anatomy,
    masks: dict[str, np.ndarray],
    options: PhantomOptions,
) -> np.ndarray:
    """Attenuation of soft tissue, bones and lung air, shown bright-for-dense, then acquired."""
    u, v = _frame_grid(anatomy.pose, options.size)
    soft_tissue, body = _soft_tissue(rng, anatomy.thorax, u, v)
    attenuation = soft_tissue + body * _bones(rng, anatomy.thorax, u, v)
    attenuation -= _lung_air(rng, anatomy.thorax, masks, u, options.size)
    image = -np.expm1(-np.maximum(attenuation, 0.0))
    return _acquire(rng, image, options)


def _frame_grid(pose: _Pose, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Chest-frame coordinates (u across, v down) of every pixel centre, float32."""
    centres = np.arange(size, dtype=np.float32) + 0.5
    dx = (centres - np.float32(pose.centre[0]))[None, :]
    dy = (centres - np.float32(pose.centre[1]))[:, None]
    cos, sin = float(np.cos(pose.angle) / pose.scale), float(np.sin(pose.angle) / pose.scale)
    return cos * dx + sin * dy, cos * dy - sin * dx


def _ramp(distance: np.ndarray, width: float) -> np.ndarray:
    """0 -> 1 over ``width`` around distance 0 (positive inside)."""
    return np.clip(distance * np.float32(1 / width) + np.float32(0.5), 0.0, 1.0)


def _soft_tissue(
    rng: np.random.Generator, thorax: _Thorax, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Torso attenuation (neck, shoulders, abdomen; thickest at the midline) and body mask."""
    wall = thorax.half_width
    levels = thorax.apex + np.array([-0.5, -0.15, -0.09, -0.04, 0.04, 0.15, 1.0])
    widths = np.array([0.08, 0.09, 0.55 * wall, wall + 0.07, wall + 0.12, wall + 0.09, wall + 0.06])
    half_width = np.interp(v, levels, widths * rng.uniform(0.95, 1.05)).astype(np.float32)
    across = np.abs(u)
    depth = np.sqrt(np.maximum(1 - (across / half_width) ** 2, 0.0))
    body = _ramp(half_width - across, 0.01)
    diaphragm = np.mean(list(thorax.costophrenic.values())) - 0.05
    abdomen = 1 + np.float32(0.15) * _ramp(v - np.float32(diaphragm), 0.08)
    density = np.float32(rng.uniform(0.95, 1.15))
    return density * (0.35 + 0.65 * depth) * body * abdomen + np.float32(0.02), body


def _bones(rng: np.random.Generator, thorax: _Thorax, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Spine (vertebrae along v) and posterior and anterior ribs as curved periodic bands."""
    across = np.abs(u) / np.float32(thorax.half_width)
    top = thorax.apex - 0.03
    height = max(thorax.costophrenic.values()) + 0.03 - top
    spine_width = 0.035 / thorax.half_width
    vertebrae = np.cos(v * np.float32(2 * np.pi / 0.045) + np.float32(rng.uniform(0, 2 * np.pi)))
    spine = _ramp(np.float32(spine_width) - across, 0.25 * spine_width) * (0.85 + 0.15 * vertebrae)
    posterior = _rib_bands(
        rng, v + across * (rng.uniform(0.02, 0.05) - rng.uniform(0.12, 0.2) * across), top, height
    )
    anterior = _rib_bands(rng, v + across * rng.uniform(0.06, 0.1), top, height)
    chest = _ramp(np.float32(1.08) - across, 0.08) * _ramp(v - np.float32(top), 0.04)
    chest *= _ramp(np.float32(top + height) - v, 0.04) * _ramp(across - np.float32(0.2), 0.2)
    ribs = (np.float32(rng.uniform(0.2, 0.3)) * posterior + np.float32(0.1) * anterior) * chest
    return np.float32(rng.uniform(0.15, 0.25)) * spine + ribs


def _rib_bands(
    rng: np.random.Generator, level: np.ndarray, top: float, height: float
) -> np.ndarray:
    """Bright bands along iso-lines of ``level``, spaced wider towards the diaphragm."""
    depth = (level - np.float32(top)) * np.float32(1 / height)
    phase = depth * (1.25 - 0.25 * depth) * np.float32(2 * np.pi * rng.uniform(8.5, 10))
    band = 0.5 + 0.5 * np.cos(phase + np.float32(rng.uniform(0, 2 * np.pi)))
    return band * band * band


def _lung_air(
    rng: np.random.Generator,
    thorax: _Thorax,
    masks: dict[str, np.ndarray],
    u: np.ndarray,
    size: int,
) -> np.ndarray:
    """Air of the lung fields (not behind the heart), less near the hila, minus clavicle bone."""
    air = (masks["RL"] | masks["LL"]) & ~masks["H"]
    clavicles = masks["RCLA"] | masks["LCLA"]
    structure = rng.uniform(0.65, 0.8) * air.astype(np.float32)
    structure -= np.float32(rng.uniform(0.4, 0.5)) * clavicles
    blurred = gaussian_filter(structure, sigma=max(1.5 * size / 1024, 0.5), truncate=3.0)
    hilum = np.exp(-(((np.abs(u) - np.float32(thorax.mediastinum)) * np.float32(1 / 0.08)) ** 2))
    mottle = 1 + np.float32(0.1) * _smooth_field(rng, size, 8)
    return blurred * (1 - np.float32(0.3) * hilum) * mottle


def _smooth_field(rng: np.random.Generator, size: int, order: int) -> np.ndarray:
    """Random cosine series up to ``order`` in x and y, zero mean, scaled to [-1, 1]."""
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    basis = np.cos(np.float32(np.pi) * np.outer(centres, np.arange(order + 1, dtype=np.float32)))
    frequency = np.add.outer(np.arange(order + 1), np.arange(order + 1))
    coefficients = rng.normal(size=(order + 1, order + 1)) / (1 + frequency)
    coefficients[0, 0] = 0.0
    field = basis @ coefficients.astype(np.float32) @ basis.T
    return field / np.abs(field).max()


def _acquire(rng: np.random.Generator, image: np.ndarray, options: PhantomOptions) -> np.ndarray:
    """Smooth gain field, gamma, optional domain shift, additive noise; float32 in [0, 1]."""
    image *= 1 + np.float32(rng.uniform(0.1, 0.15)) * _smooth_field(rng, options.size, 3)
    noise = options.noise
    if options.domain_shift:
        contrast, brightness = rng.uniform(0.6, 1.4), rng.uniform(-0.15, 0.15)
        image = (image - np.float32(0.5)) * np.float32(contrast) + np.float32(0.5 + brightness)
        gamma = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        noise *= rng.uniform(1, 3)
    else:
        gamma = rng.uniform(0.8, 1.25)
    image = np.clip(image, 0.0, 1.0) ** np.float32(gamma)
    image += np.float32(noise) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0.0, 1.0)


def _occlude(
    rng: np.random.Generator, image: np.ndarray, lungs: np.ndarray, fraction: float
) -> np.ndarray:
    """Draw flat random-grey rectangles and ellipses over ``fraction`` of the lungs' area."""
    occluded = np.zeros(image.shape, dtype=bool)
    if fraction <= 0:
        return occluded
    area = lungs.sum()
    rows, cols = np.nonzero(lungs)
    covered = 0
    for _ in range(500):
        deficit = fraction * area - covered
        if deficit <= 0.005 * area:
            break
        patch = _random_patch(
            rng, rows, cols, min(rng.uniform(0.03, 0.08) * area, deficit), image.shape
        )
        covered += np.count_nonzero(lungs[patch] & ~occluded[patch])
        occluded[patch] = True
        image[patch] = rng.uniform(0.0, 1.0)
    return occluded


def _random_patch(
    rng: np.random.Generator,
    rows: np.ndarray,
    cols: np.ndarray,
    area: float,
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel indices of a rectangle or ellipse of about ``area`` pixels centred in the lungs."""
    pick = rng.integers(len(rows))
    row, col = rows[pick], cols[pick]
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    if rng.random() < 0.5:
        height = max(np.sqrt(area * aspect), 1.0)
        width = max(area / height, 1.0)
        top, left = int(np.floor(row + 0.5 - height / 2)), int(np.floor(col + 0.5 - width / 2))
        rr, cc = np.meshgrid(
            np.arange(top, top + round(height)), np.arange(left, left + round(width)), indexing="ij"
        )
        keep = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        return rr[keep], cc[keep]
    radius_r = max(np.sqrt(area * aspect / np.pi), 1.0)
    return ellipse(row, col, radius_r, max(area / (np.pi * radius_r), 1.0), shape=shape)
