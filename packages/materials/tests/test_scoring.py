"""Thresholds and references: the robust null model flags about its false-alarm rate of a cube
without anomalies (Otsu splits it in two), the local reference cancels a model's shared error, the
either reference finds clusters that the local one misses, an edge pixel's neighbourhood holds only
its in-bounds neighbours (a brute-force oracle), and the bundled pipeline holds on anomaly-free
simulated cubes while finding 500 single-pixel shifts and 9-pixel clusters."""

from __future__ import annotations

import numpy as np
import pytest

from convsuite.core_ops.errors import InputError
from convsuite.materials.scoring import (
    check_reference,
    check_threshold,
    either_score,
    in_bounds_median,
    neighbour_median,
    null_threshold,
    otsu_threshold,
    pearson_distance,
    reference_threshold,
    robust_z,
    score_pixels,
    threshold,
)


def _lognormal(size: int, seed: int = 0) -> np.ndarray:
    return np.exp(np.random.default_rng(seed).normal(-5.0, 0.4, size)).astype(np.float32)


def test_null_threshold_flags_its_false_alarm_rate_and_otsu_does_not() -> None:
    normal = _lognormal(50_000)
    cut = null_threshold(normal, false_alarm=1e-3)
    assert 0.5e-3 < (normal > cut).mean() < 2e-3
    assert (normal > otsu_threshold(normal)).mean() > 0.1  # Otsu always finds two classes
    assert null_threshold(np.full(10, 0.3)) == float("inf")


def test_null_threshold_is_robust_to_rare_anomalies() -> None:
    normal = _lognormal(20_000, seed=1)
    anomalous = np.exp(np.random.default_rng(2).normal(-2.5, 0.3, 2_000))  # 9% anomalies
    scores = np.concatenate([normal, anomalous])
    cut = threshold(scores, "null", 1e-4)
    assert (normal > cut).mean() < 1e-3
    assert (anomalous > cut).mean() > 0.9
    # 9% anomalies raise it by about a quarter (the median and MAD move a little)
    assert cut == pytest.approx(null_threshold(normal, 1e-4), rel=0.35)


def test_bad_threshold_options_are_refused() -> None:
    with pytest.raises(InputError, match="null, otsu"):
        check_threshold("mean")
    with pytest.raises(InputError, match="false-alarm"):
        check_threshold("null", 1.5)
    with pytest.raises(InputError, match="local, network, either"):
        check_reference("ring")


def test_local_reference_cancels_a_shared_model_error() -> None:
    """A model that misses a feature of every normal spectrum scores them all as bad; with the
    neighbours' median residual added, only the pixel that really departs stands out, and a
    boundary between two kinds of normal spectra (which the model does not know) is not."""
    energy = np.linspace(0, 1, 60)
    truth = np.exp(-(((energy - 0.5) / 0.05) ** 2))
    rng = np.random.default_rng(0)
    own = truth + 0.01 * rng.standard_normal((9, 9, 60))
    own[4, 4] = np.exp(-(((energy - 0.56) / 0.05) ** 2))  # a shifted peak
    model = np.broadcast_to(truth + 0.2 * np.sin(8 * energy), own.shape)  # shared error
    channels = np.ones(60, bool)
    plain = score_pixels(own, model, channels, "network")
    local = score_pixels(own, model, channels, "local")
    np.testing.assert_allclose(plain, pearson_distance(own, model, channels))
    normal = np.ones((9, 9), bool)
    normal[4, 4] = False
    plain_contrast = plain[4, 4] / np.median(plain[normal])
    local_contrast = local[4, 4] / np.median(local[normal])
    assert plain_contrast < 5 and local_contrast > 10 * plain_contrast
    assert np.median(local[normal]) < 0.1 * np.median(plain[normal])
    # a second phase in one quadrant, the anomaly removed: its corner pixel has 3 of 8 neighbours
    # in its phase (a whole-ring median flags it, 44 x the median score), but a half-ring of 3
    phases = own.copy()
    phases[4, 4] = truth + 0.01 * rng.standard_normal(60)
    phases[4:, 4:] += 0.3 * np.exp(-(((energy - 0.7) / 0.05) ** 2))
    local = score_pixels(phases, model, channels, "local")
    assert local.max() < 3 * np.median(local)


_HALF_RINGS = {
    "upper": [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1)],
    "lower": [(1, -1), (1, 0), (1, 1), (0, -1), (0, 1)],
    "left": [(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0)],
    "right": [(-1, 1), (0, 1), (1, 1), (-1, 0), (1, 0)],
}
_RING = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _plain_median(values: np.ndarray, y: int, x: int, offsets: list) -> np.ndarray:
    """Channel-wise median (rank n // 2 of n, the upper middle one for an even n) of the members
    of (y, x) + ``offsets`` that lie inside ``values`` (y, x, E)."""
    height, width = values.shape[:2]
    members = [
        values[y + dy, x + dx] for dy, dx in offsets if 0 <= y + dy < height and 0 <= x + dx < width
    ]
    return np.sort(members, axis=0)[len(members) // 2]


def test_local_score_and_ring_median_equal_a_brute_force_oracle_on_every_edge() -> None:
    """Per pixel and half-ring, the reference is the reconstruction plus the median residual of
    the half-ring's members inside the map (the pixel never among them); the score the lowest
    over half-rings. Corners, edges and the interior of a small random cube, one 2 rows high."""
    rng = np.random.default_rng(3)
    for shape in ((6, 7, 12), (2, 5, 12)):
        own = rng.random(shape).astype(np.float32)
        reconstruction = (own + 0.3 * rng.random(shape)).astype(np.float32)
        channels = np.ones(shape[-1], bool)
        channels[:2] = False
        residual = own - reconstruction
        local = score_pixels(own, reconstruction, channels, "local")
        ring = neighbour_median(own)
        for y in range(shape[0]):
            for x in range(shape[1]):
                scores = [
                    pearson_distance(
                        own[y, x],
                        reconstruction[y, x] + _plain_median(residual, y, x, offsets),
                        channels,
                    )
                    for offsets in _HALF_RINGS.values()
                ]
                assert local[y, x] == pytest.approx(min(scores), abs=1e-5), (shape, y, x)
                np.testing.assert_array_equal(ring[y, x], _plain_median(own, y, x, _RING))


@pytest.mark.parametrize("name", [*_HALF_RINGS, "ring"])
def test_in_bounds_median_of_each_footprint_equals_the_oracle(name: str) -> None:
    """Each footprint on its own (the local score's minimum over half-rings would not tell an
    upper half-ring from a lower one), on every pixel of a small random cube."""
    offsets = _RING if name == "ring" else _HALF_RINGS[name]
    footprint = np.zeros((3, 3), bool)
    for dy, dx in offsets:
        footprint[dy + 1, dx + 1] = True
    values = np.random.default_rng(4).random((5, 6, 3)).astype(np.float32)
    median = in_bounds_median(values, footprint)
    for y in range(values.shape[0]):
        for x in range(values.shape[1]):
            np.testing.assert_array_equal(median[y, x], _plain_median(values, y, x, offsets))


def test_an_anomalous_corner_pixel_gets_a_high_local_score() -> None:
    """A shifted peak at each corner of a smooth cube stands out under the local reference as a
    pixel inside does (an edge mode that repeats the edge made a corner its own reference)."""
    energy = np.linspace(0, 1, 60)
    truth = np.exp(-(((energy - 0.5) / 0.05) ** 2))
    own = truth + 0.01 * np.random.default_rng(1).standard_normal((9, 9, 60))
    anomalous = np.zeros((9, 9), bool)
    anomalous[[0, 0, -1, -1, 4], [0, -1, 0, -1, 4]] = True
    own[anomalous] = np.exp(-(((energy - 0.56) / 0.05) ** 2))
    model = np.broadcast_to(truth + 0.2 * np.sin(8 * energy), own.shape)  # shared error
    local = score_pixels(own, model, np.ones(60, bool), "local")
    typical = np.median(local[~anomalous])
    assert local[anomalous].min() > 20 * typical
    assert local[anomalous].min() > 0.5 * local[4, 4]
    assert local[~anomalous].max() < 5 * typical


@pytest.fixture(scope="module")
def bundled():
    from convsuite.materials.infer import load_network

    return load_network()


def test_bundled_pipeline_flags_at_most_1_percent_of_an_anomaly_free_cube(bundled) -> None:
    """Second phase, mixed valence, thickness wedge and drift are normal: the default threshold
    flags <= 1% of such a cube (Otsu on the reference's score flagged 26%)."""
    from convsuite.materials.data import simulate_cube
    from convsuite.materials.infer import detect

    cube = simulate_cube((64, 64), seed=200_001, anomalies=())
    assert detect(cube, bundled, fit=False).mask.mean() <= 0.01


def test_bundled_pipeline_finds_500_single_pixel_shifts(bundled) -> None:
    from convsuite.materials.data import AnomalySpec, simulate_cube
    from convsuite.materials.evaluate import classification
    from convsuite.materials.infer import detect

    cube = simulate_cube((64, 64), seed=100_002, anomalies=[AnomalySpec("shift", 1.5, 500)])
    found = detect(cube, bundled, fit=False)
    assert classification(found.scores, found.mask, cube.metadata.Anomalies.mask)["f1"] >= 0.9


def test_either_reference_finds_a_cluster_that_the_local_one_misses() -> None:
    """A 3 x 3 cluster of shifted peaks: every pixel inside has anomalous neighbours, so the local
    reference (neighbours' median residual) absorbs the shift; the network reference does not,
    and ``either`` (the larger robust z, Bonferroni cut) flags the cluster and no normal pixel."""
    energy = np.linspace(0, 1, 60)
    truth = np.exp(-(((energy - 0.5) / 0.05) ** 2))
    rng = np.random.default_rng(0)
    own = truth + 0.01 * rng.standard_normal((24, 24, 60))
    own[10:13, 10:13] = np.exp(-(((energy - 0.56) / 0.05) ** 2))
    model = np.broadcast_to(truth, own.shape)  # a model that knows the normal spectrum
    channels = np.ones(60, bool)
    cluster = np.zeros((24, 24), bool)
    cluster[10:13, 10:13] = True
    local = score_pixels(own, model, channels, "local")
    network = score_pixels(own, model, channels, "network")
    assert (local > threshold(local))[cluster].sum() <= 8  # the centre pixel at least is missed
    either = either_score(local, network)
    np.testing.assert_allclose(either, score_pixels(own, model, channels, "either"))
    np.testing.assert_allclose(either, np.maximum(robust_z(local), robust_z(network)))
    cut = reference_threshold(either, "either", "null", 1e-3)
    assert cut == pytest.approx(3.29, abs=0.01)  # the Gaussian's upper 5e-4 quantile
    np.testing.assert_array_equal(either > cut, cluster)
    assert np.median(robust_z(network)) == pytest.approx(0, abs=1e-6)


def test_bundled_pipeline_finds_9_pixel_clusters_by_default(bundled) -> None:
    """2 eV shifts in 9-pixel clusters (500 pixels): the default (``either``) reference finds
    them; the local reference alone does not (measured 0.91 against 0.31)."""
    from convsuite.materials.data import AnomalySpec, simulate_cube
    from convsuite.materials.evaluate import classification
    from convsuite.materials.infer import detect

    cube = simulate_cube(
        (64, 64), seed=300_000, anomalies=[AnomalySpec("shift", 2.0, 500, cluster=9)]
    )
    truth = cube.metadata.Anomalies.mask
    found = detect(cube, bundled, fit=False)
    assert found.reference == "either"
    assert classification(found.scores, found.mask, truth)["f1"] >= 0.85
    local = detect(cube, bundled, fit=False, reference="local")
    assert classification(local.scores, local.mask, truth)["f1"] < 0.5


def test_oracle_f1_is_the_best_f1_over_every_threshold() -> None:
    """Against a brute-force sweep of every threshold, on overlapping scores (best F1 < 1)."""
    from convsuite.materials.evaluate import classification, oracle_f1

    rng = np.random.default_rng(3)
    truth = rng.random((20, 20)) < 0.1
    scores = rng.normal(size=(20, 20)) + 1.5 * truth
    swept = max(classification(scores, scores >= t, truth)["f1"] for t in np.unique(scores))
    assert oracle_f1(scores, truth) == pytest.approx(swept, abs=1e-12)
    assert 0.3 < swept < 1.0
