"""Readers, the xarray adapter and the simulator: calibration, laziness, refusals, ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convsuite.core_ops.errors import InputError
from convsuite.materials.data import (
    AnomalySpec,
    EnergyAxis,
    check_window,
    energy_axis,
    from_xarray,
    read_spectrum_image,
    simulate_cube,
    to_xarray,
    write_signal,
)


def test_simulator_is_seeded_and_carries_ground_truth(small_cube) -> None:
    again = simulate_cube(
        (24, 24),
        seed=1,
        anomalies=[AnomalySpec("shift", 3.0, 30)],
        energy=EnergyAxis(640.0, 0.25, 480),
    )
    np.testing.assert_array_equal(small_cube.data, again.data)
    other = simulate_cube(
        (24, 24),
        seed=2,
        anomalies=[AnomalySpec("shift", 3.0, 30)],
        energy=EnergyAxis(640.0, 0.25, 480),
    )
    assert not np.array_equal(small_cube.data, other.data)
    mask = small_cube.metadata.Anomalies.mask
    assert mask.dtype == bool and mask.sum() == 30
    assert set(np.unique(small_cube.metadata.Anomalies.magnitude[mask])) == {3.0}
    # single pixels stay single: no anomalous 8-neighbour
    ys, xs = np.nonzero(mask)
    for y, x in zip(ys, xs, strict=True):
        assert mask[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].sum() == 1


def test_shift_moves_the_fe_l3_peak(small_cube) -> None:
    """An anomalous pixel's L3 maximum sits ~3 eV away from the normal pixels' one."""
    e = energy_axis(small_cube).values
    window = (e > 700) & (e < 716)
    mask = small_cube.metadata.Anomalies.mask
    normal_peak = e[window][np.argmax(small_cube.data[~mask][:, window].mean(0))]
    peaks = e[window][np.argmax(small_cube.data[mask][:, window], axis=1)]
    assert np.median(np.abs(peaks - normal_peak)) > 2.0


def test_clusters_and_kinds() -> None:
    cube = simulate_cube(
        (32, 32),
        seed=3,
        anomalies=[
            AnomalySpec("broadening", 2.0, 24, cluster=6),
            AnomalySpec("intensity", 0.5, 10),
        ],
        energy=EnergyAxis(650.0, 0.5, 200),
    )
    kind = cube.metadata.Anomalies.kind
    kinds = list(cube.metadata.Anomalies.kinds)
    assert (kind == kinds.index("broadening")).sum() == 24
    assert (kind == kinds.index("intensity")).sum() == 10
    from scipy.ndimage import label

    _, n_blobs = label(kind == kinds.index("broadening"))
    assert n_blobs <= 6  # 4 clusters of 6 (touching ones merge)


def test_hspy_round_trip_keeps_calibration_and_mask(small_cube, small_cube_file: Path) -> None:
    loaded = read_spectrum_image(small_cube_file)
    assert energy_axis(loaded) == EnergyAxis(640.0, 0.25, 480)
    np.testing.assert_array_equal(loaded.data, small_cube.data)
    np.testing.assert_array_equal(
        loaded.metadata.Anomalies.mask, small_cube.metadata.Anomalies.mask
    )
    lazy = read_spectrum_image(small_cube_file, lazy=True)
    assert lazy._lazy and energy_axis(lazy).offset == 640.0


def test_kev_axis_is_read_in_ev(small_cube) -> None:
    cube = small_cube.deepcopy()
    axis = cube.axes_manager.signal_axes[0]
    axis.units, axis.offset, axis.scale = "keV", 0.64, 0.00025
    got = energy_axis(cube)
    assert got.offset == pytest.approx(640.0) and got.scale == pytest.approx(0.25)


def test_xarray_round_trip(small_cube) -> None:
    array = to_xarray(small_cube)
    assert array.dims == ("y", "x", "energy_loss")
    assert array["energy_loss"].attrs["units"] == "eV" and array["x"].attrs["units"] == "nm"
    assert float(array["energy_loss"][1] - array["energy_loss"][0]) == pytest.approx(0.25)
    back = from_xarray(array)
    np.testing.assert_array_equal(back.data, small_cube.data)
    assert energy_axis(back) == energy_axis(small_cube)
    assert back.axes_manager.navigation_axes[0].scale == pytest.approx(0.5)
    lazy = to_xarray(small_cube.as_lazy())
    assert not isinstance(lazy.data, np.ndarray)
    assert from_xarray(lazy)._lazy


def _refusal(path: Path) -> str:
    with pytest.raises(InputError) as error:
        read_spectrum_image(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


def test_bad_files_are_one_line(small_cube, small_cube_file: Path, tmp_path: Path) -> None:
    assert "does not exist" in _refusal(tmp_path / "missing.hspy")
    cut = tmp_path / "cut.hspy"
    cut.write_bytes(small_cube_file.read_bytes()[:4000])
    assert "not a readable" in _refusal(cut)
    junk = tmp_path / "junk.hspy"
    junk.write_text("not hdf5")
    assert "not a readable" in _refusal(junk)
    uncalibrated = small_cube.deepcopy()
    uncalibrated.axes_manager.signal_axes[0].units = "<undefined>"
    assert "no energy axis" in _refusal(write_signal(uncalibrated, tmp_path / "nounits.hspy"))
    nan = small_cube.deepcopy()
    nan.data[:] = np.nan
    assert "NaN" in _refusal(write_signal(nan, tmp_path / "nan.hspy"))


def test_window_outside_axis_is_refused() -> None:
    axis = EnergyAxis(640.0, 0.25, 480)
    check_window(axis, (690, 730))
    with pytest.raises(InputError, match="outside the energy axis"):
        check_window(axis, (600, 700))
    with pytest.raises(InputError, match="empty"):
        check_window(axis, (730, 690))
