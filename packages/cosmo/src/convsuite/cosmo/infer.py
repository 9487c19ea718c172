"""The inpainting pipeline used by the CLI and notebooks: bundled checkpoints, :func:`inpaint`.

The hole pixels within ``rim_depth`` (3) neighbour steps of the data are filled first by the
local Wiener filter (:mod:`convsuite.cosmo.local_wiener`: the exact conditional mean given the
observed pixels around them, under the training prior), and the network fills the rest with that
rim as data: a network started from diffusion leaves kinks at the hole edges that add power at
high ell, the rim removes them. ``rim_depth=0`` runs the network alone.

Two ways to fill the holes:

* ``mode="mean"``: the network's output, an estimate of the sky given the data (trained with MSE
  + SSIM it sits near the posterior mean: lowest error per pixel, too little small-scale power in
  wide holes, like the Wiener filter).
* ``mode="realization"``: a constrained realization in the manner of Hoffman & Ribak (1991),
  with the network in place of the Wiener filter: draw a sky ``s'`` (with noise) from the
  training prior, fill the holes with ``s' + sqrt(2) f((d - s') / sqrt(2))``, ``f`` the network
  (``d - s'`` has twice the prior's variance; the scaling keeps the network's input in its
  training range); the rim gets ``s' + K (d - s')``, K the local Wiener filter. The right power in
  the holes, about twice the mean's error.

Both use a prior for the map (:class:`~convsuite.cosmo.spectrum.MapPrior`): by default measured
from its observed pixels (:func:`~convsuite.cosmo.spectrum.measured_prior`, MASTER), so the rim's
covariance and the realization's draw follow the map's beam, noise and cosmology, not the
training skies'; or given (:func:`~convsuite.cosmo.spectrum.given_prior`: a spectrum file, a beam,
a noise level, or the old fixed LCDM prior).

Up to Nside 512 the filled map is then passed through the prior's harmonic filter
``S_l / (S_l + N_l)`` (holes only; the data stay as they are): the fill's kinks where rim,
interior and data meet are removed where the sky is below the noise (:func:`_signal_band`). In a
realization, the correction's first :data:`_REFILL_STEPS` steps into the holes are then
refilled from both sides, the data's and the deeper fill's
(:meth:`~convsuite.cosmo.local_wiener.LocalWienerFilter.refill`), so the two meet without a kink.

``net=None`` runs the pipeline with the network's diffusive pre-fill in its place (same rim, same
draw): what the network adds is the difference (README, "the network's own share").
"""

from __future__ import annotations

import math
import os

import healpy as hp
import numpy as np
import torch

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import bundled_weights, list_bundled
from convsuite.core_ops.io import read_card
from convsuite.core_ops.precision import check_precision, inference_mode, prepare_for_inference
from convsuite.cosmo.baselines import diffusive_inpaint, relax
from convsuite.cosmo.data import sht
from convsuite.cosmo.data.fits_io import hole_pixels, nside_of
from convsuite.cosmo.data.masks import check_observed
from convsuite.cosmo.data.regrade import degrade_masked_mean
from convsuite.cosmo.data.simulate import simulate_cmb
from convsuite.cosmo.data.units import uk_per_unit
from convsuite.cosmo.local_wiener import LocalWienerFilter, hole_depth
from convsuite.cosmo.model import SkyReconNet
from convsuite.cosmo.spectrum import MapPrior, measured_prior, white_noise_cl

__all__ = [
    "bundled_checkpoints",
    "inpaint",
    "inpaint_nest",
    "network_nside",
    "prefill",
    "pretrained_network",
]

_MODES = ("mean", "realization")
_BLEND_PIXELS = 1.0  # coarse pixels over which a fill from another Nside meets the known ones
_BLEND_SWEEPS = 2  # relaxation sweeps per squared band width
_PREFILL_SWEEPS = 30  # diffusive sweeps per level of the network's pre-fill (as trained)
_MAX_BAND_NSIDE = 512  # the fill's signal-band filter (_signal_band) up to here
_MEET_STEPS = 3  # the realization's filtered correction meets the data over this many steps
# ... and is then refilled from both sides this deep (LocalWienerFilter.refill), which replaces
# _meet_the_data's steps (so _REFILL_STEPS >= _MEET_STEPS). The refill shares the rim filter's data
# radius (9 pixels), which must be >= 1.5 x depth: 6 is the deepest it allows.
_REFILL_STEPS = 6


def bundled_checkpoints() -> dict[int, str]:
    """The bundled checkpoints by the Nside they were trained at (their card's ``inputs["nside"]``):
    ``{64: "skyrecon_nside64", 128: ..., 256: ...}``, Nside ascending."""
    package = SkyReconNet.bundled_package
    found = {}
    for name in list_bundled(package):
        found[read_card(bundled_weights(package, name)).inputs["nside"]] = name
    return dict(sorted(found.items()))


def network_nside(nside: int) -> int:
    """The bundled checkpoint's Nside a map of ``nside`` runs through: its own when bundled, else
    the nearest in log2 (the larger on a tie): Nside 2048 runs through 256, 32 through 64."""
    bundled = list(bundled_checkpoints())
    return min(bundled, key=lambda n: (abs(math.log2(n / nside)), -n))


def pretrained_network(
    nside: int,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> SkyReconNet:
    """The network (eval mode) for maps run at ``nside``.

    Args:
        nside: the Nside the network will run at.
        weights: a bundled name or a ``.safetensors`` checkpoint from ``cosmo-train``; None: the
            bundled checkpoint trained at ``nside``.
        device: torch device.
        precision: "fp32" or "bf16": core-ops' ``prepare_for_inference`` (bf16 weights for the
            dense convolutions; inference only); run it with the same ``precision`` in
            :func:`inpaint_nest`.

    Raises:
        InputError: no bundled checkpoint for ``nside``, the weights cannot be loaded, or an
            unknown precision.
    """
    check_precision(precision)
    if weights is None:
        bundled = bundled_checkpoints()
        if nside not in bundled:
            raise InputError(
                f"Nside {nside}",
                f"no bundled SkyReconNet checkpoint (bundled: Nside "
                f"{', '.join(map(str, bundled))}); run at one of them (--nside, or nside= in "
                "Python) or train one with cosmo-train",
            )
        weights = bundled[nside]
    return prepare_for_inference(SkyReconNet.from_pretrained(weights, device), precision)


def prefill(masked: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """The network's third input: the map with its holes filled by diffusive inpainting.

    The values are taken as float32 (the network's input precision) with NaN as 0, so the fill is
    the one the bundled networks were trained with.

    Args:
        masked: (12 nside^2,) muK NESTED (hole values ignored).
        observed: (12 nside^2,) bool NESTED.

    Returns:
        (12 nside^2,) float64 muK NESTED: ``masked`` where observed, the diffusive fill elsewhere.
    """
    observed = np.asarray(observed, dtype=bool)
    values = np.nan_to_num(np.asarray(masked, dtype=np.float32)) * observed
    return diffusive_inpaint(values.astype(np.float64), observed, _PREFILL_SWEEPS)


def _predict(
    net: SkyReconNet | None, data: np.ndarray, observed: np.ndarray, precision: str = "fp32"
) -> np.ndarray:
    fill = prefill(data, observed)
    if net is None:
        return fill
    device = next(net.parameters()).device
    with inference_mode(precision):
        masked = torch.from_numpy(np.asarray(data, dtype=np.float32))[None].to(device)
        mask = torch.from_numpy(np.asarray(observed, dtype=bool))[None].to(device)
        return net(masked, mask, torch.from_numpy(fill)[None].to(device))[0].cpu().numpy()


def inpaint_nest(
    net: SkyReconNet | None,
    data: np.ndarray,
    observed: np.ndarray,
    mode: str = "mean",
    seed: int = 0,
    prior: MapPrior | None = None,
    rim_depth: int = 3,
    nside: int | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Fill the holes of a NESTED map: the rim by the local Wiener filter, the rest by the network.

    The rim is always filled at the map's own resolution. With ``nside`` another Nside than the
    map's, the network runs there: the map (rim included) is ``ud_grade``d to ``nside`` (a pixel
    is data when more than half of it is), the network fills the holes there, and the fill comes
    back to the map's resolution through its spherical harmonics up to ``3 nside - 1`` (smooth:
    ``ud_grade``'s blocks would put steps into the holes). Observed pixels keep their values.

    Args:
        net: a trained network; None: its diffusive pre-fill in its place.
        data: (12 N^2,) muK NESTED (hole values ignored).
        observed: (12 N^2,) bool NESTED.
        mode: "mean" or "realization" (module docstring).
        seed: the prior draw of ``mode="realization"``.
        prior: the map's prior (rim covariance, realization draw); None: measured from ``data``
            (:func:`~convsuite.cosmo.spectrum.measured_prior`).
        rim_depth: hole pixels this many neighbour steps from the data are filled by the local
            Wiener filter; 0: the network fills every hole pixel.
        nside: the resolution the network runs at; None: the map's.
        precision: what ``net`` was prepared for (:func:`pretrained_network`): "fp32" or "bf16".

    Returns:
        (12 N^2,) float32 NESTED: ``data`` where observed, the fill elsewhere.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    observed = np.asarray(observed, dtype=bool)
    data = np.where(observed, data, 0.0)
    native = hp.npix2nside(data.size)
    prior = prior or measured_prior(data, observed)
    rim = LocalWienerFilter(observed, prior.signal_cl, prior.noise_sigma, rim_depth)
    known = observed.copy()
    known[rim.rim] = True

    def estimate(values: np.ndarray) -> np.ndarray:  # the rim already filled
        if nside is None or nside == native:
            return _predict(net, values, known, precision)
        return _fill_at(net, nside, values, known, precision)

    if mode == "mean":
        filled = _signal_band(estimate(rim.fill(data)), prior)
        return np.where(observed, data, filled).astype(np.float32)
    noise = prior.noise_sigma * hp.nside2resol(native, arcmin=True)  # muK arcmin
    draw = simulate_cmb(native, seed, 0.0, noise, prior.signal_cl).astype(np.float64)
    # in place where a full-resolution float64 map would be a temporary (0.4 GB at Nside 2048)
    residual = data - draw
    residual[~observed] = 0.0
    residual /= math.sqrt(2.0)
    residual = rim.fill(residual)  # the unfilled one freed before the fill's copies
    raw = estimate(residual)
    del residual
    raw *= math.sqrt(2.0)  # in the network's float32 when it ran at the map's Nside
    raw = raw.astype(np.float64, copy=False)
    np.subtract(data, draw, out=raw, where=observed)  # d - s' on the data, the fill elsewhere
    if rim.rim.size and native <= _MAX_BAND_NSIDE:  # LocalWienerFilter.refill: both sides
        # the refill recomputes every pixel _meet_the_data would change: d - s' on the data
        correction = _signal_band(raw, prior)
        np.copyto(correction, raw, where=observed)
        correction = rim.widened(_REFILL_STEPS).refill(correction)
    else:
        correction = _meet_the_data(raw, _signal_band(raw, prior), observed)
    del raw
    draw += correction
    del correction
    np.copyto(draw, data, where=observed)
    return draw.astype(np.float32)


def _meet_the_data(raw: np.ndarray, banded: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """The realization's band-filtered correction with its mismatch to the data side relaxed
    into the holes over :data:`_MEET_STEPS` neighbour steps (hole values; data unchanged).

    :func:`_signal_band` smooths across the hole edges, so next to the data the filtered
    correction no longer equals ``d - s'`` there: a step along every edge. Where the beam has
    taken the sky far below its peak (60' at Nside 256, ell 350-770), that step's power is
    above the sky's: the holes themselves had the right power (1.00-1.01 of the truth's per
    64 ells) but the whole map's spectrum was 1.2-2.4x the truth's there. Relaxing the
    mismatch (noise included: it averages out over the neighbours) into the first steps of
    the holes took the bins in band from 39% to 63% on that sky, 71% with the measured
    prior's median noise floor (hole MSE unchanged). The rest was the fill's own structure
    near the data (the rim extrapolated from the data side, the deeper fill meeting it with a
    kink), which :meth:`~convsuite.cosmo.local_wiener.LocalWienerFilter.refill` removes
    afterwards.
    """
    if banded is raw:  # above Nside _MAX_BAND_NSIDE: nothing was filtered
        return raw
    return _blend_into(banded, raw, observed, _MEET_STEPS)


def _blend_into(fill: np.ndarray, values: np.ndarray, known: np.ndarray, width: int) -> np.ndarray:
    """``fill`` (float64 NESTED, changed in place and returned) in the holes, with its mismatch to
    ``values`` on the known pixels relaxed into the holes over ``width`` neighbour steps
    (:data:`_BLEND_SWEEPS` sweeps per squared width); ``values`` on the known pixels."""
    depth = hole_depth(known, width)
    band = np.flatnonzero((depth >= 1) & (depth <= width))
    del depth
    mismatch = values - fill  # in place from here: 0.4 GB a map at Nside 2048
    mismatch[~known] = 0.0
    fill += relax(mismatch, band, _BLEND_SWEEPS * width**2, in_place=True)
    del mismatch
    np.copyto(fill, values, where=known)
    return fill


def _signal_band(values: np.ndarray, prior: MapPrior) -> np.ndarray:
    """``values`` (a full NESTED map: data and fill) through the harmonic filter
    ``S_l / (S_l + N_l)`` of the prior, up to Nside :data:`_MAX_BAND_NSIDE` (unchanged above: two
    more transforms at Nside 2048 take 80 s here).

    The fill (rim and network or diffusion) is an estimate of the signal: smooth at the beam's
    scale inside each region, but with kinks where the rim meets the interior and the interior
    meets the data. Where the beam has taken the sky below the noise (60' at Nside 256: ell >
    400, 1e-5 of the peak), those kinks showed as 4x the truth's power; keeping only the signal
    band of the map (the holes are taken from it, the data stay as they are) removes most of it
    and lowers the hole MSE by 1-2% (one sky each, Nside 128, 30' and 256, 60').

    The ``map2alm`` runs without healpy's iteration (one transform instead of three): with it
    and the measured prior's first whitened pass also uniterated, the 256 realizations' bins in
    band stayed 98.7 / 96.1 / 100% (60', seeds 0-2) and 100% (30'), hole MSE within 0.5 muK^2.
    """
    nside = hp.npix2nside(values.size)
    if nside > _MAX_BAND_NSIDE:
        return values
    lmax = 3 * nside - 1
    signal = prior.signal_cl[: lmax + 1]
    noise = white_noise_cl(prior.noise_sigma**2, nside)
    weight = signal / np.maximum(signal + noise, 1e-300)
    alm = sht.map2alm(hp.reorder(values, n2r=True), lmax)
    return hp.reorder(sht.alm2map(hp.almxfl(alm, weight), nside, lmax), r2n=True)


def _fill_at(
    net: SkyReconNet | None, nside: int, values: np.ndarray, known: np.ndarray, precision: str
) -> np.ndarray:
    """The network's fill at ``nside``, brought to the map's Nside N harmonically, and blended
    into the known pixels (hole values; the known ones are returned unchanged).

    The harmonic fill lacks the scales below ``nside``'s pixel, so it does not meet the known
    pixels: their mismatch is relaxed (neighbour means) into the holes over a band of
    ``_BLEND_PIXELS x N / nside`` pixels, and the harmonic fill is used beyond.
    """
    mean, coverage = degrade_masked_mean(values, known, nside)
    coarse_known = coverage > 0.5
    coarse = np.where(coarse_known, mean, 0.0)
    filled = _predict(net, coarse, coarse_known, precision).astype(np.float64)
    lmax, native = 3 * nside - 1, hp.npix2nside(values.size)
    alm = sht.map2alm(hp.reorder(filled, n2r=True), lmax, iterations=3)
    smooth = hp.reorder(sht.alm2map(alm, native, lmax), r2n=True)
    return _blend_into(smooth, values, known, max(1, round(_BLEND_PIXELS * native / nside)))


def inpaint(
    sky_map: np.ndarray,
    mask: np.ndarray | None = None,
    nside: int | None = None,
    nest: bool = False,
    mode: str = "mean",
    seed: int = 0,
    weights: str | os.PathLike[str] | None = None,
    rim_depth: int = 3,
    prior: MapPrior | None = None,
    unit: str = "uK_CMB",
    precision: str = "fp32",
) -> np.ndarray:
    """Inpaint a HEALPix map (a numpy array, as from ``healpy.read_map``).

    Args:
        sky_map: (12 N^2,) map in ``unit``, RING unless ``nest``; UNSEEN and NaN pixels are
            holes.
        mask: (12 N^2,) 1 = observed, same ordering; None: only UNSEEN/NaN are holes.
        nside: the resolution to run the network at; None: the map's own when a bundled
            checkpoint serves it (or ``weights`` is given), else the nearest bundled one
            (:func:`network_nside`; see :func:`inpaint_nest` for another Nside).
        nest: the ordering of ``sky_map`` and ``mask`` (and of the result).
        mode: "mean" or "realization" (module docstring).
        seed: the prior draw of ``mode="realization"``.
        weights: a bundled name or a checkpoint from ``cosmo-train``; None: the bundled one
            trained at ``nside``.
        rim_depth: the local Wiener filter's rim (module docstring); 0: the network alone.
        prior: the map's prior (muK); None: measured from its observed pixels.
        unit: the map's unit ("K_CMB", "mK_CMB", "uK_CMB", ...: :func:`~convsuite.cosmo.data.
            units.uk_per_unit`); the work is done in muK, the result is in ``unit``.
        precision: "fp32" or "bf16" (:func:`pretrained_network`).

    Returns:
        (12 N^2,) float32 in ``unit``, same ordering as the input: observed pixels unchanged,
        holes filled.

    Raises:
        InputError: not a HEALPix map, a mask of another size or with +-inf values, or a map
            :func:`~convsuite.cosmo.data.check_observed` refuses (+-inf outside the mask,
            nothing observed, all zeros, |T| above 100 mK).
    """
    factor = uk_per_unit(unit, "unit")
    values = np.asarray(sky_map, dtype=np.float64)
    native = nside_of(values.size, "map")
    holes = hole_pixels(values)
    infinite = np.isinf(values)
    if mask is not None:
        mask_values = np.asarray(mask, dtype=np.float64)
        if mask_values.shape != values.shape:
            raise InputError("mask", f"{mask_values.size} pixels, the map has {values.size}")
        if np.isinf(mask_values).any():  # before the threshold: +inf is no "observed"
            raise InputError("mask", "+-inf values: a mask holds 1 (observed) to 0 (masked)")
        by_mask = mask_values > 0.5  # NaN and UNSEEN: masked
        infinite &= by_mask
        holes |= ~by_mask
    if not nest:
        values, holes = hp.reorder(values, r2n=True), hp.reorder(holes, r2n=True)
        infinite = hp.reorder(infinite, r2n=True)
    observed = ~holes
    observed_values = np.where(observed, values, 0.0)
    values = values * factor
    check_observed("map", values, observed, infinite)
    target = nside or (native if weights is not None else network_nside(native))
    net = pretrained_network(target, weights, precision=precision)
    filled = inpaint_nest(net, values, observed, mode, seed, prior, rim_depth, target, precision)
    filled = np.where(observed, observed_values, filled / factor).astype(np.float32)
    return filled if nest else hp.reorder(filled, n2r=True).astype(np.float32)
