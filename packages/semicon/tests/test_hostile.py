"""Hostile and clumsy input to ``wafer-monitor``: each case exits 2 with one stderr line and leaves
the inputs untouched and no partial output, or gives the right result within a small memory."""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from convsuite.core_ops.cli import run
from convsuite.core_ops.hub import bundled_weights
from convsuite.semicon.cli import app
from convsuite.semicon.data import SimulationOptions, simulate_wafer_maps, write_wafer_csv

WAFER_MONITOR = Path(sys.executable).parent / "wafer-monitor"


def invoke(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """Run ``wafer-monitor ARGS`` in-process; (exit status, stderr)."""
    with pytest.raises(SystemExit) as stop:
        run(app, [str(a) for a in args])
    return stop.value.code, capsys.readouterr().err


def assert_one_error_line(status: int, err: str, *fragments: str) -> None:
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three labelled maps (256 grid) as CSV files."""
    out = tmp_path_factory.mktemp("maps")
    for wafer in simulate_wafer_maps(3, 9, SimulationOptions(grid=256, defects_scale=0.05)):
        write_wafer_csv(out / f"{wafer.name}.csv", wafer)
    return out


def _npy_member(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(f"{name}.npy", "w") as handle:
        np.lib.format.write_array(handle, np.asarray(array), allow_pickle=False)


def _map_npz(path: Path, extra: int = 0, x_claims: int | None = None) -> Path:
    """A valid 3-defect map ``.npz`` plus an unused float64 array of ``extra`` zeros (streamed,
    deflated: 2**28 zeros are 2 GiB decoded, ~9 MB on disk); with ``x_claims``, ``x``'s header
    claims that many values but holds none."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        if x_claims is None:
            _npy_member(archive, "x", np.array([1.0, 20.0, -50.0]))
        else:
            with archive.open("x.npy", "w") as handle:
                header = {"descr": "<f8", "fortran_order": False, "shape": (x_claims,)}
                np.lib.format.write_array_header_1_0(handle, header)
        _npy_member(archive, "y", np.array([2.0, 2.0, 0.0]))
        _npy_member(archive, "diameter_mm", np.float64(300.0))
        _npy_member(archive, "pitch_mm", np.float64(300.0 / 4096))
        if extra:
            with archive.open("unused.npy", "w", force_zip64=True) as handle:
                header = {"descr": "<f8", "fortran_order": False, "shape": (extra,)}
                np.lib.format.write_array_header_2_0(handle, header)
                chunk = bytes(1 << 24)
                for _ in range(extra * 8 // len(chunk)):
                    handle.write(chunk)
    return path


def _classify_peak_kib(npz: Path, out: Path) -> int:
    """Peak RSS (KiB) of a fresh process classifying ``npz`` through the CLI; it must succeed."""
    code = (
        "import resource, sys\n"
        "from convsuite.core_ops.cli import run\n"
        "from convsuite.semicon.cli import app\n"
        "try:\n"
        f"    run(app, ['classify', {str(npz)!r}, '--out', {str(out)!r}])\n"
        "except SystemExit as stop:\n"
        "    print(stop.code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    status, peak_kib = map(int, done.stdout.split())
    assert status == 0, done.stderr
    return peak_kib


def test_npz_with_a_huge_unused_array_is_classified_in_little_memory(tmp_path: Path) -> None:
    """The issue's case: a 2 GiB unused array took 2.3 GB; only x, y and the scalars are read.

    Measured against the same map without the unused array, in the same conditions: the peak of
    a process holding torch and the bundled monitor varies with the machine, the difference not.
    """
    plain = _map_npz(tmp_path / "plain.npz")
    npz = _map_npz(tmp_path / "wafer.npz", extra=1 << 28)
    assert npz.stat().st_size < 20 << 20
    out = tmp_path / "results.csv"
    baseline_kib = _classify_peak_kib(plain, tmp_path / "plain.csv")
    peak_kib = _classify_peak_kib(npz, out)
    extra_mib = (peak_kib - baseline_kib) / 1024
    assert extra_mib < 256, f"the unused 2 GiB array cost {extra_mib:.0f} MiB"
    table = pd.read_csv(out)
    assert list(table["map_name"]) == ["wafer"] and table["class_name"].notna().all()


def test_npz_whose_header_claims_too_much_is_refused_before_reading(tmp_path: Path, capsys) -> None:
    npz = _map_npz(tmp_path / "bomb.npz", x_claims=1 << 30)  # 8 GiB claimed, nothing stored
    out = tmp_path / "results.csv"
    status, err = invoke(capsys, "classify", npz, "--out", out)
    assert_one_error_line(status, err, "bomb.npz", "would take 8.0 GiB")
    assert not out.exists()


def test_out_equal_to_an_input_is_refused_and_the_input_kept(
    folder: Path, tmp_path: Path, capsys
) -> None:
    source = sorted(folder.glob("*.csv"))[0]
    victim = shutil.copy(source, tmp_path / "wafer.csv")
    before = Path(victim).read_bytes()
    status, err = invoke(capsys, "classify", victim, "--out", victim)
    assert_one_error_line(status, err, "is also an input")
    assert Path(victim).read_bytes() == before
    # Spelled another way, and as the JSON sidecar a CSV input may have.
    spelled = tmp_path / "." / "wafer.csv"
    assert_one_error_line(*invoke(capsys, "classify", victim, "--out", spelled), "is also")
    sidecar = tmp_path / "wafer.json"
    assert_one_error_line(*invoke(capsys, "classify", victim, "--out", sidecar), "is also")
    assert not sidecar.exists()


def test_train_output_named_like_an_input_is_refused(folder: Path, tmp_path: Path, capsys) -> None:
    maps = shutil.copytree(folder, tmp_path / "maps")
    shutil.copy(sorted(folder.glob("*.csv"))[0], maps / "monitor.csv")
    sidecar = maps / "monitor.json"  # the sidecar of monitor.csv, and train's card name
    sidecar.write_text('{"diameter_mm": 300}')
    status, err = invoke(capsys, "train", maps, "--out", maps, "--epochs", 1)
    assert_one_error_line(status, err, "monitor.json", "is also an input")
    assert sidecar.read_text() == '{"diameter_mm": 300}'
    assert not (maps / "monitor.safetensors").exists()


def test_overflowing_pitch_is_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "tiny_pitch.csv"
    bad.write_text("# diameter_mm: 300\n# pitch_mm: 1e-320\nx,y\n1,2\n")
    out = tmp_path / "results.csv"
    status, err = invoke(capsys, "classify", bad, "--out", out)
    assert_one_error_line(status, err, "tiny_pitch.csv", "grid side")
    assert not out.exists()


def test_errors_are_one_line_when_stderr_is_not_a_terminal(folder: Path, tmp_path: Path) -> None:
    """The console script, stderr piped: no progress-bar line before the error."""
    bad = tmp_path / "zz_bad.csv"  # sorted after the good maps: the bar has started
    bad.write_text("# diameter_mm: 300\n# pitch_mm: 0.5\nx,y\n1,abc\n")
    out = tmp_path / "results.csv"
    done = subprocess.run(
        [str(WAFER_MONITOR), "classify", folder, bad, "--out", out],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "zz_bad.csv: column y has non-numeric" in done.stderr
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_unreadable_input_is_one_line(
    folder: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = Path(shutil.copy(sorted(folder.glob("*.csv"))[0], tmp_path / "locked.csv"))
    locked.chmod(0)
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):  # root reads mode-000 files: refuse as the OS would
        if Path(os.fsdecode(file)) == locked if isinstance(file, (str, os.PathLike)) else False:
            raise PermissionError(13, "Permission denied", os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    out = tmp_path / "results.csv"
    status, err = invoke(capsys, "classify", locked, "--out", out)
    assert_one_error_line(status, err, "locked.csv", "Permission denied")
    assert not out.exists()


def test_usage_errors_are_one_line_without_typers_box(tmp_path: Path, capsys) -> None:
    assert_one_error_line(*invoke(capsys, "classify"), "Missing argument")
    assert_one_error_line(*invoke(capsys, "classify", tmp_path / "none.csv"), "does not exist")
    assert_one_error_line(*invoke(capsys, "simulate", "--out", tmp_path, "--n", 0), "--n")
    assert_one_error_line(*invoke(capsys, "clasify"), "No such command")


def test_same_file_names_in_two_folders_get_distinct_rows(
    folder: Path, tmp_path: Path, capsys
) -> None:
    source = sorted(folder.glob("*.csv"))[0]
    for side in ("line1", "line2"):
        (tmp_path / side).mkdir()
        shutil.copy(source, tmp_path / side / "wafer.csv")
    out = tmp_path / "results.csv"
    files = [tmp_path / "line1" / "wafer.csv", tmp_path / "line2" / "wafer.csv"]
    status, err = invoke(capsys, "classify", *files, "--out", out)
    assert status == 0, err
    assert list(pd.read_csv(out)["map_name"]) == ["line1_wafer", "line2_wafer"]
    status, err = invoke(capsys, "classify", files[0], files[0], "--out", tmp_path / "twice.csv")
    assert_one_error_line(status, err, "is given twice")


def test_outputs_that_cannot_be_written_are_one_line(folder: Path, tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    status, err = invoke(capsys, "classify", folder, "--out", a_file / "results.csv")
    assert_one_error_line(status, err, "a_file")
    assert_one_error_line(*invoke(capsys, "classify", folder, "--out", folder), "is a folder")
    status, err = invoke(capsys, "evaluate", folder, "--figures", a_file)
    assert_one_error_line(status, err, "is a file; --figures names a folder")
    assert_one_error_line(*invoke(capsys, "train", folder, "--out", a_file), "is a file")
    assert_one_error_line(*invoke(capsys, "simulate", "--out", a_file, "--n", 1), "is a file")
    assert a_file.read_text() == "not a folder"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda text: text[:-20], "not valid JSON"),
        (lambda text: text.replace('"grid": 4096', '"grid": "big"', 1), "grid must be"),
        (lambda text: text.replace('"card_version": 2', '"card_version": 9'), "newer"),
        (lambda text: text.replace('"metrics": {', '"metrics": {"x": "y",'), "numbers"),
    ],
    ids=["bad-json", "wrong-type", "newer-format", "text-metric"],
)
def test_broken_model_card_is_one_line(folder: Path, tmp_path: Path, capsys, edit, problem) -> None:
    model = tmp_path / "model"
    model.mkdir()
    bundled = bundled_weights("convsuite.semicon", "wafer_monitor_small")
    card = json.loads(bundled.with_suffix(".json").read_text())
    card["files"] = {"novelty": "monitor.novelty.json"}
    (model / "monitor.json").write_text(edit(json.dumps(card, indent=2, sort_keys=True)))
    shutil.copy(bundled, model / "monitor.safetensors")
    shutil.copy(bundled.with_suffix(".novelty.json"), model / "monitor.novelty.json")
    out = tmp_path / "results.csv"
    status, err = invoke(capsys, "classify", folder, "--model", model, "--out", out)
    assert_one_error_line(status, err, "monitor.json", problem)
    assert not out.exists()
