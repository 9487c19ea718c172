"""Hostile and clumsy input to ``medseg cxr segment``: each is refused with exit status 2 and one
``error:`` line, leaving inputs untouched and no partial outputs, or gives a correct result.

Images are made here: phantoms written as PNG with Pillow, and (for the size budget) 1-bit PNGs
whose header claims 12000 x 12000 or 30000 x 30000 pixels, written row by row through zlib so that
the test never holds, nor makes the CLI decode, the pixels.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from convsuite.medseg import PhantomOptions, read_radiograph, simulate_phantoms
from convsuite.medseg.data.images import MAX_IMAGE_BYTES, write_png

if TYPE_CHECKING:
    from conftest import Medseg

MEDSEG = Path(sys.executable).parent / "medseg"
ORGANS = ("RL", "LL", "H")


def _outputs(stem: str) -> set[str]:
    masks = {f"{stem}_mask_{organ}.png" for organ in ORGANS}
    return {f"{stem}.json", f"{stem}_landmarks.npy", f"{stem}_overlay.png", *masks}


def _phantoms(folder: Path, stems: list[str], size: int = 96, seed: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    images = simulate_phantoms(len(stems), seed, PhantomOptions(size=size))
    return [
        write_png(folder / f"{stem}.png", p.image) for stem, p in zip(stems, images, strict=True)
    ]


def _blank_1bit_png(path: Path, width: int, height: int) -> Path:
    """A valid black 1-bit grey PNG of ``width`` x ``height``, compressed row by row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"\x00" * (1 + (width + 7) // 8) * 1000  # filter byte + packed bits, 1000 rows
    compressor = zlib.compressobj(9)
    data = [compressor.compress(rows) for _ in range(height // 1000)]
    data.append(compressor.compress(rows[: len(rows) // 1000 * (height % 1000)]))
    data.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    png = chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(data)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png)
    return path


@pytest.mark.parametrize(
    ("side", "claim"),
    [(12000, "a 12000 x 12000 image"), (30000, "an image of more than 179 M pixels")],
)
def test_a_png_claiming_a_huge_size_is_refused_from_its_header(
    side: int, claim: str, tmp_path: Path
) -> None:
    huge = _blank_1bit_png(tmp_path / "huge.png", side, side)
    assert huge.stat().st_size < 200_000
    out = tmp_path / "out"
    started = time.perf_counter()
    result = subprocess.run(  # a fresh parent whose only child is medseg: its peak memory
        [sys.executable, "-c", _PEAK_OF_CHILD, MEDSEG, "cxr", "segment", huge, "--out", out],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {huge}: {claim}") and "limit is 1.5 GiB" in lines[0]
    assert seconds < 20 and not out.exists()
    peak_gib = int(result.stdout) / 2**20  # ru_maxrss is in KiB
    assert peak_gib < 2.5, peak_gib  # the 12000 x 12000 one once took 9.2 GB and 106 s
    assert MAX_IMAGE_BYTES == 3 * 2**29


_PEAK_OF_CHILD = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
    "sys.stderr.buffer.write(done.stderr); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(done.returncode)"
)


def test_an_input_named_like_an_output_is_refused_and_left_untouched(
    tmp_path: Path, tiny_weights: Path, medseg: Medseg
) -> None:
    folder = tmp_path / "images"
    (a,) = _phantoms(folder, ["a"])
    overlay = folder / "a_overlay.png"
    shutil.copy(a, overlay)  # segmenting a.png into this folder writes a_overlay.png
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    line = medseg.refused("cxr", "segment", a, overlay, "--weights", tiny_weights, "--out", folder)
    assert (
        line
        == f"error: {overlay}: is also an input; refusing to overwrite it (choose another --out)"
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_same_file_names_in_different_folders_keep_both(
    tmp_path: Path, tiny_weights: Path, medseg: Medseg
) -> None:
    (first,) = _phantoms(tmp_path / "ward" / "x", ["chest"], size=96)
    (second,) = _phantoms(tmp_path / "ward" / "y", ["chest"], size=128, seed=5)
    out = tmp_path / "out"
    assert medseg("cxr", "segment", first, second, "--weights", tiny_weights, "--out", out) == 0
    assert {p.name for p in out.iterdir()} == _outputs("x_chest") | _outputs("y_chest")
    shapes = [
        json.loads((out / f"{s}.json").read_text())["image_shape"] for s in ("x_chest", "y_chest")
    ]
    assert shapes == [[96, 96], [128, 128]]
    assert "given twice" in medseg.refused("cxr", "segment", first, first, "--out", out)


def test_a_paletted_png_gives_the_landmarks_of_its_grey_twin(
    tmp_path: Path, medseg: Medseg
) -> None:
    """The palette maps index i to grey 255 - i: read as indices, the image would be inverted."""
    phantom = next(simulate_phantoms(1, 8, PhantomOptions(size=128))).image
    grey = np.round(phantom * 255).astype(np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    paletted = Image.fromarray(255 - grey, mode="P")
    paletted.putpalette([level for i in range(256) for level in (255 - i,) * 3])
    paletted.save(tmp_path / "paletted.png")
    with Image.open(tmp_path / "paletted.png") as check:
        assert check.mode == "P"
    np.testing.assert_array_equal(
        read_radiograph(tmp_path / "paletted.png"), read_radiograph(tmp_path / "grey.png")
    )
    out = tmp_path / "out"
    images = (tmp_path / "grey.png", tmp_path / "paletted.png")
    assert medseg("cxr", "segment", *images, "--out", out) == 0  # the bundled weights
    np.testing.assert_array_equal(
        np.load(out / "paletted_landmarks.npy"), np.load(out / "grey_landmarks.npy")
    )
    colour = Image.fromarray(grey, mode="P")
    colour.putpalette([channel for i in range(256) for channel in (i, 0, 255 - i)])
    colour.save(tmp_path / "colour.png")
    with pytest.warns(UserWarning, match="colour.png: a 3-channel colour image, converted"):
        colour_grey = read_radiograph(tmp_path / "colour.png")
    weights = np.array([0.299, 0.587, 0.114])
    luma = np.round(np.stack([grey, np.zeros_like(grey), 255 - grey], -1) @ weights) / 255
    np.testing.assert_allclose(colour_grey, luma, atol=1e-6)


def test_a_failing_input_leaves_none_of_its_outputs(
    tmp_path: Path, tiny_weights: Path, medseg: Medseg
) -> None:
    """Six inputs, the fourth truncated after a valid header: it passes the checks made before
    any work and fails while being read. Batches of two: the first two keep complete sets."""
    paths = _phantoms(tmp_path / "in", [f"im{i}" for i in range(6)])
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    args = ("--weights", tiny_weights, "--batch-size", 2, "--out", out)
    line = medseg.refused("cxr", "segment", *paths, *args)
    assert line.startswith(f"error: {paths[3]}: pixel data is unreadable")
    assert sorted(p.name for p in out.iterdir()) == sorted(_outputs("im0") | _outputs("im1"))


def test_an_image_whose_outputs_cannot_all_be_written_leaves_none(
    tmp_path: Path, tiny_weights: Path, medseg: Medseg
) -> None:
    paths = _phantoms(tmp_path / "in", ["a", "b", "c"])
    out = tmp_path / "out"
    (out / "c_mask_H.png").mkdir(parents=True)  # c's heart mask cannot replace a folder
    line = medseg.refused("cxr", "segment", *paths, "--weights", tiny_weights, "--out", out)
    assert "c_mask_H.png" in line
    written = {p.name for p in out.iterdir()}
    assert written == _outputs("a") | _outputs("b") | {"c_mask_H.png"}
    assert not any((out / "c_mask_H.png").iterdir())


def _broken_card(card: dict, case: str) -> dict | str:
    if case == "not JSON":
        return "{not json"
    if case == "a config value of the wrong type":
        return {**card, "config": {**card["config"], "image_size": "big"}}
    if case == "an unknown config key":
        return {**card, "config": {**card["config"], "depth": 3}}
    if case == "a config the network refuses":
        return {**card, "config": {**card["config"], "k": 0}}
    if case == "inputs that are not a mapping":
        return {**card, "inputs": []}
    if case == "another architecture":
        return {**card, "architecture": "UNetBaseline"}
    assert case == "a newer card format"
    return {**card, "card_version": 99}


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("not JSON", "model card is not valid JSON"),
        ("a config value of the wrong type", "HybridGNetConfig.image_size must be an integer"),
        ("an unknown config key", "unknown HybridGNetConfig keys 'depth'"),
        ("a config the network refuses", "k must be >= 1"),
        ("inputs that are not a mapping", "model card field 'inputs' must be dict"),
        ("another architecture", "holds a UNetBaseline, not a HybridGNet"),
        ("a newer card format", "model card format 99 is newer"),
    ],
)
def test_a_broken_model_card_is_one_line(
    case: str, said: str, tmp_path: Path, tiny_weights: Path, medseg: Medseg
) -> None:
    weights = Path(shutil.copy(tiny_weights, tmp_path / "broken.safetensors"))
    broken = _broken_card(json.loads(tiny_weights.with_suffix(".json").read_text()), case)
    text = broken if isinstance(broken, str) else json.dumps(broken)
    weights.with_suffix(".json").write_text(text)
    (image,) = _phantoms(tmp_path / "in", ["a"])
    out = tmp_path / "out"
    line = medseg.refused("cxr", "segment", image, "--weights", weights, "--out", out)
    assert "broken." in line and said in line
    assert not out.exists() or not any(out.iterdir())


def test_missing_card_unreadable_inputs_and_unwritable_outputs_are_one_line(
    tmp_path: Path, tiny_weights: Path, medseg: Medseg
) -> None:
    (image,) = _phantoms(tmp_path / "in", ["a"])
    lonely = Path(shutil.copy(tiny_weights, tmp_path / "lonely.safetensors"))
    line = medseg.refused("cxr", "segment", image, "--weights", lonely, "--out", tmp_path / "o")
    assert "lonely.json: model card is missing" in line
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert "notes.png: is not a readable image" in medseg.refused("cxr", "segment", text)
    assert "in: is not a file" in medseg.refused("cxr", "segment", tmp_path / "in")
    file_out = tmp_path / "taken"
    file_out.write_text("")
    line = medseg.refused("cxr", "segment", image, "--weights", tiny_weights, "--out", file_out)
    assert line == f"error: {file_out}: is a file; an output folder is needed here"
    line = medseg.refused(
        "cxr", "segment", image, "--weights", tiny_weights, "--out", file_out / "sub"
    )
    assert "sub" in line and "Not a directory" in line
    assert "Missing argument" in medseg.refused("cxr", "segment")
    assert file_out.read_text() == "" and image.is_file()
