"""Seeded Dixon MRI phantoms of the lower spine with exact intervertebral-disc labels.

Model. Each phantom is drawn in a RAS grid of the IVDM3Seg shape, 36 x 256 x 256 voxels of
2.0 x 1.25 x 1.25 mm (axis 0 left -> right, the sagittal slices; axis 1 posterior -> anterior;
axis 2 inferior -> superior). The spine is a chain of rounded boxes (superellipsoids) along a
curved centre line in the sagittal plane: a lordotic arc of random curvature and tilt, with a
small lateral shift and bend (scoliosis). From the sacrum up: sacral segments S3, S2, S1 with thin,
dehydrated sacral remnant discs between them, vertebral bodies L5 ... L1, T12, T11, T10, and the
discs between them. The 7 labelled discs are T11-T12 to L5-S1 (label 1); the T10-T11 disc above
and the sacral remnants below are drawn but not labelled (so a model must leave them out, as in
IVDM3Seg, whose scans show them too). Thoracic discs are thinner than lumbar ones; a disc may be
degenerated (flattened, dehydrated: dark on water images). Around the spine: cortical rims of the
vertebrae, the spinal canal (CSF) behind them, paraspinal muscle, subcutaneous fat and skin at the
back, mottled abdominal fat and bowel in front, air outside the body.

Contrast. Every tissue has a water and a fat signal (W, F); the four Dixon images are
fat = F, water = W, in-phase = W + F and opposed-phase = |W - F|, so voxels mixing fat and water
tissue cancel on the opposed-phase image (the dark "India ink" rim at fat-water boundaries).
Partial volume comes from soft edges: each structure's occupancy falls from 1 to 0 over about one
voxel. Then a smooth multiplicative bias field, a scale (arbitrary units, as a scanner's) and
Rician noise (the magnitude of signal plus complex Gaussian noise).

Orientation. Apart from the tilt of the spine in the sagittal plane, the stored volume can have
any of the 48 axis orders and flips; the affine describes it, so readers that follow the affine
(``read_subject``) see the same anatomy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter

from convsuite.medseg.data.ivdm3seg import MODALITIES

__all__ = [
    "DISC_NAMES",
    "SHAPE",
    "SPACING_MM",
    "SpineOptions",
    "SpinePhantom",
    "simulate_spine",
    "simulate_spines",
]

SHAPE: tuple[int, int, int] = (36, 256, 256)
SPACING_MM: tuple[float, float, float] = (2.0, 1.25, 1.25)
DISC_NAMES: tuple[str, ...] = ("T11-T12", "T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
"""The 7 labelled discs, head to feet."""

_VERTEBRAE_UP = ("L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10")
_EDGE_MM = 0.6
"""Half-width of the soft edge of every structure (partial volume), mm."""


@dataclass(frozen=True)
class SpineOptions:
    """What to simulate.

    Attributes:
        tilt_deg: standard deviation of the spine's tilt in the sagittal plane, degrees.
        degenerated: probability that a labelled disc is degenerated.
        noise: Rician noise level as a fraction of the fat signal of pure fat.
        bias: amplitude of the multiplicative bias field (0.3: +-30%).
        reorient: store the volume in a random axis order and flips (the affine says which).
        shape: voxels (left-right, posterior-anterior, inferior-superior) before reorienting;
            IVDM3Seg's 36 x 256 x 256 by default.
        spacing: voxel size along the same axes, mm (IVDM3Seg's 2.0 x 1.25 x 1.25); a coarser
            grid draws the same anatomy (small phantoms for tests).
    """

    tilt_deg: float = 6.0
    degenerated: float = 0.15
    noise: float = 0.04
    bias: float = 0.3
    reorient: bool = True
    shape: tuple[int, int, int] = SHAPE
    spacing: tuple[float, float, float] = SPACING_MM


@dataclass(frozen=True)
class SpinePhantom:
    """One simulated subject, as stored (file orientation).

    Attributes:
        image: (4, X, Y, Z) float32 Dixon images in MODALITIES order (fat, inn, opp, wat),
            arbitrary scanner units.
        labels: (X, Y, Z) uint8, 1 inside the 7 labelled discs.
        affine: (4, 4) voxel -> world (RAS, mm).
        degenerated: names of the degenerated labelled discs.
        tilt_deg: the spine's tilt in the sagittal plane, degrees.
    """

    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    degenerated: tuple[str, ...]
    tilt_deg: float


@dataclass(frozen=True)
class _Part:
    """A superellipsoid along the centre line: centre (y, z) mm, axis angle, semi-axes mm."""

    name: str
    centre: tuple[float, float, float]  # (x, y, z) mm
    angle: float  # rotation of the local SI axis from +z towards +y, radians
    semi: tuple[float, float, float]  # (lateral, AP, SI) mm
    power: float
    water: float
    fat: float
    label: bool = False


def simulate_spine(seed: int, options: SpineOptions | None = None) -> SpinePhantom:
    """One phantom; the same seed gives the same phantom.

    Args:
        seed: seeds numpy's generator.
        options: what to simulate (default :class:`SpineOptions`).
    """
    options = options or SpineOptions()
    rng = np.random.default_rng(seed)
    tilt = float(rng.normal(0.0, options.tilt_deg))
    parts, degenerated, back_y = _spine_parts(rng, np.deg2rad(tilt), options.degenerated)
    shape, spacing = options.shape, options.spacing
    x, y, z = _grid(shape, spacing)
    water = np.zeros(shape, np.float32)
    fat = np.zeros(shape, np.float32)
    _body(rng, x, y, z, back_y, water, fat)
    labels = np.zeros(shape, np.float32)
    for part in parts:
        _paint(part, x, y, z, water, fat, labels)
    image = _acquire(rng, water, fat, options)
    label_volume = (labels > 0.5).astype(np.uint8)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -np.array(spacing) * (np.array(shape) - 1) / 2
    if options.reorient:
        image, label_volume, affine = _reorient(rng, image, label_volume, affine)
    return SpinePhantom(image, label_volume, affine, degenerated, tilt)


def simulate_spines(
    n: int, seed: int, options: SpineOptions | None = None
) -> Iterator[SpinePhantom]:
    """``n`` phantoms, the i-th from seed ``(seed, i)``, one at a time."""
    for index in range(n):
        yield simulate_spine(
            int(np.random.SeedSequence([seed, index]).generate_state(1)[0]), options
        )


def _grid(
    shape: tuple[int, int, int], spacing: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World coordinates (mm) of the voxel centres, broadcastable (X,1,1), (1,Y,1), (1,1,Z)."""
    axes = [
        (np.arange(n, dtype=np.float32) - (n - 1) / 2) * s
        for n, s in zip(shape, spacing, strict=True)
    ]
    return axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]


def _spine_parts(
    rng: np.random.Generator, tilt: float, p_degenerated: float
) -> tuple[list[_Part], tuple[str, ...], float]:
    """Vertebrae and discs from S3 to T10 along a curved centre line; the back's y position."""
    scale = rng.uniform(0.82, 0.97)
    lordosis = np.deg2rad(rng.uniform(15, 40))  # total change of angle over the lumbar spine
    lumbar_length = 190.0 * scale
    origin = np.array([rng.normal(0, 2.5), rng.uniform(-45, -20), rng.uniform(-100, -75)])
    lateral_bend = rng.normal(0, 0.02)
    marrow_fat = rng.uniform(0.45, 0.65)
    depth = rng.uniform(30, 36) * scale  # AP depth of the vertebral bodies

    def angle_at(s: float) -> float:
        # s: arc length (mm) from the L5-S1 disc upwards; the sacrum (s < 0) bends further back
        if s >= 0:
            return tilt + lordosis / 2 - lordosis * min(s, lumbar_length) / lumbar_length
        return tilt + lordosis / 2 + np.deg2rad(0.45) * (-s)

    def centre_at(s: float) -> np.ndarray:
        steps = np.linspace(0.0, s, max(2, int(abs(s) / 0.5) + 1))
        angles = np.array([angle_at(t) for t in steps])
        ds = steps[1] - steps[0]
        y = np.sum(np.sin(angles[:-1])) * ds
        z = np.sum(np.cos(angles[:-1])) * ds
        return origin + np.array([lateral_bend * s**2 / 100, y, z])

    parts: list[_Part] = []
    degenerated: list[str] = []

    def add(name: str, s: float, semi: tuple[float, float, float], **tissue) -> None:
        c = centre_at(s)
        parts.append(_Part(name, (c[0], c[1], c[2]), angle_at(s), semi, **tissue))

    def vertebra(name: str, s_bottom: float, height: float, ap: float) -> None:
        semi = (rng.uniform(19, 23) * scale, ap / 2, height / 2)
        add(
            name,
            s_bottom + height / 2,
            (semi[0] + 1.2, semi[1] + 1.2, semi[2] + 0.9),
            power=4.0,
            water=0.08,
            fat=0.06,
        )  # cortical rim / endplates
        add(name, s_bottom + height / 2, semi, power=4.0, water=0.35, fat=marrow_fat)

    # upwards from the L5-S1 disc
    s = 0.0
    lumbar_disc = rng.uniform(8.0, 10.5) * scale
    disc_heights = [lumbar_disc * f for f in (1.0, 1.0, 0.97, 0.93, 0.88, 0.8, 0.7, 0.55)]
    disc_names = ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1", "T11-T12", "T10-T11")
    for index, (disc, height) in enumerate(zip(disc_names, disc_heights, strict=True)):
        labelled = disc in DISC_NAMES
        water, h = rng.uniform(0.85, 1.0), height
        if labelled and rng.random() < p_degenerated:
            degenerated.append(disc)
            water, h = rng.uniform(0.3, 0.5), height * rng.uniform(0.55, 0.75)
        semi = (rng.uniform(18, 21) * scale, depth / 2 - 1.0, h / 2)
        annulus = (semi[0] + 1, semi[1] + 1.2, semi[2] + 0.4)
        add(disc, s, annulus, power=2.5, water=0.6 * water, fat=0.03, label=labelled)
        add(disc, s, semi, power=2.5, water=water, fat=0.02, label=labelled)
        vertebra_height = rng.uniform(22, 26) * scale * (0.9 if index >= 6 else 1.0)
        vertebra(_VERTEBRAE_UP[index], s + h / 2 + 0.4, vertebra_height, depth)
        s += h / 2 + 0.8 + vertebra_height + disc_heights[min(index + 1, 7)] / 2
    # the sacrum: S1, S2, S3 with thin dehydrated remnant discs, narrowing downwards
    s = -disc_heights[0] / 2 - 0.4
    for name, height, ap in (
        ("S1", 24.0, depth),
        ("S2", 20.0, depth * 0.8),
        ("S3", 16.0, depth * 0.65),
    ):
        height *= scale
        vertebra(name, s - height, height, ap)
        s -= height + 0.5
        remnant = rng.uniform(1.8, 2.8) * scale
        add(
            f"{name}-remnant",
            s - remnant / 2,
            (15 * scale, ap / 2 - 3, remnant / 2),
            power=2.5,
            water=rng.uniform(0.35, 0.55),
            fat=0.08,
        )
        s -= remnant + 0.5
    canal = []  # the spinal canal (CSF) behind the bodies, as overlapping short cylinders
    for s in np.arange(-40.0, 300.0, 6.0):
        c, a = centre_at(float(s)), angle_at(float(s))
        offset = depth / 2 + 9.0
        centre = (c[0], c[1] - offset * np.cos(a), c[2] + offset * np.sin(a))
        canal.append(_Part("canal", centre, a, (9.0, 7.0, 4.5), 2.0, water=1.0, fat=0.0))
    back_y = origin[1] - depth / 2 - rng.uniform(55, 75)
    return [*canal, *parts], tuple(degenerated), back_y


def _body(
    rng: np.random.Generator,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    back_y: float,
    water: np.ndarray,
    fat: np.ndarray,
) -> None:
    """Air, skin and subcutaneous fat at the back, paraspinal muscle, a mottled abdomen in front."""
    wave = 4.0 * np.sin(z / 60.0 + rng.uniform(0, 6.3))
    skin = back_y + wave
    subcut = _ramp(y - skin) * (1 - _ramp(y - skin - rng.uniform(8, 20)))
    muscle = _ramp(y - skin - 15) * (1 - _ramp(y - skin - 70))
    shape = water.shape
    field = gaussian_filter(rng.random(shape), (2, 5, 5))
    field = np.clip((field - field.mean()) / (field.std() + 1e-6) * 0.35 + 0.5, 0, 1)
    abdomen = _ramp(y - skin - 70)
    water += subcut * 0.1 + muscle * 0.55 + abdomen * (0.6 * (1 - field) + 0.1 * field)
    fat += subcut * 1.0 + muscle * 0.08 + abdomen * (0.05 * (1 - field) + 0.85 * field)
    np.clip(water, 0, 1.2, out=water)
    np.clip(fat, 0, 1.2, out=fat)


def _ramp(distance: np.ndarray) -> np.ndarray:
    """Soft step from 0 (distance < -edge) to 1 (distance > edge), float32."""
    return np.clip(0.5 + distance / (2 * _EDGE_MM), 0, 1).astype(np.float32)


def _paint(
    part: _Part,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    water: np.ndarray,
    fat: np.ndarray,
    labels: np.ndarray,
) -> None:
    """Blend one superellipsoid over the maps (its occupancy replaces what was there)."""
    reach = max(part.semi) + 3
    box = []
    for axis, centre, n in zip((x, y, z), part.centre, water.shape, strict=True):
        coords = axis.ravel()
        lo = int(np.searchsorted(coords, centre - reach))
        hi = int(np.searchsorted(coords, centre + reach))
        if hi <= lo:
            return
        box.append(slice(max(lo, 0), min(hi, n)))
    bx, by, bz = x[box[0]], y[:, box[1]], z[:, :, box[2]]
    dy, dz = by - part.centre[1], bz - part.centre[2]
    cos, sin = np.cos(part.angle), np.sin(part.angle)
    v = dz * cos + dy * sin  # along the spine (local SI)
    u = dy * cos - dz * sin  # local AP
    w = bx - part.centre[0]
    semi = [max(s, 1e-3) for s in part.semi]
    radius = (
        np.abs(w / semi[0]) ** part.power
        + np.abs(u / semi[1]) ** part.power
        + np.abs(v / semi[2]) ** part.power
    ) ** (1 / part.power)
    occupancy = _ramp((1 - radius) * min(semi))
    region = (box[0], box[1], box[2])
    water[region] += occupancy * (part.water - water[region])
    fat[region] += occupancy * (part.fat - fat[region])
    if part.label:
        labels[region] = np.maximum(labels[region], occupancy)
    else:
        labels[region] *= 1 - occupancy


def _acquire(
    rng: np.random.Generator, water: np.ndarray, fat: np.ndarray, options: SpineOptions
) -> np.ndarray:
    """Dixon images with a bias field, a scanner scale and Rician noise: (4, X, Y, Z) float32."""
    coarse = rng.normal(size=(3, 4, 4))
    shape = water.shape
    bias = np.asarray(_upsample(coarse, shape), dtype=np.float32)
    bias = 1 + options.bias * bias / (np.abs(bias).max() + 1e-6)
    scale = rng.uniform(300, 900)
    signals = {"fat": fat, "inn": water + fat, "opp": np.abs(water - fat), "wat": water}
    sigma = options.noise * scale
    image = np.empty((len(MODALITIES), *shape), np.float32)
    for index, name in enumerate(MODALITIES):
        clean = signals[name] * bias * scale
        real = clean + rng.normal(0, sigma, shape).astype(np.float32)
        imag = rng.normal(0, sigma, shape).astype(np.float32)
        image[index] = np.sqrt(real**2 + imag**2)
    return image


def _upsample(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth trilinear upsampling of a small grid to ``shape``."""
    from scipy.ndimage import zoom

    factors = [n / c for n, c in zip(shape, coarse.shape, strict=True)]
    return zoom(coarse, factors, order=3, mode="nearest", grid_mode=True)


def _reorient(
    rng: np.random.Generator, image: np.ndarray, labels: np.ndarray, affine: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Store in a random axis order and flips; the returned affine maps the new voxels to RAS."""
    order = rng.permutation(3)
    flips = rng.random(3) < 0.5
    ornt = np.column_stack([order, np.where(flips, -1, 1)]).astype(float)
    # ornt[i] says where input axis i goes; apply_orientation wants that form
    new_labels = nib.orientations.apply_orientation(labels, ornt)
    new_image = np.stack([nib.orientations.apply_orientation(v, ornt) for v in image])
    new_affine = affine @ nib.orientations.inv_ornt_aff(ornt, labels.shape)
    return (
        np.ascontiguousarray(new_image, dtype=np.float32),
        np.ascontiguousarray(new_labels),
        new_affine,
    )
