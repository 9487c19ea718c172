"""``--precision bf16`` (core-ops' precision API): the bundled monitor's outputs stay near fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.precision import bf16_layers
from convsuite.semicon.cli import app
from convsuite.semicon.data import SimulationOptions, simulate_wafer_maps, write_simulated
from convsuite.semicon.monitor import WaferMonitor


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bf16_monitor_stays_close_to_fp32() -> None:
    maps = simulate_wafer_maps(9, seed=41, options=SimulationOptions(defects_scale=0.3))
    fp32 = WaferMonitor.from_pretrained()
    bf16 = WaferMonitor.from_pretrained(precision="bf16")
    assert bf16_layers(bf16.net) and not bf16_layers(fp32.net)  # the linear layers convert
    features32, features16 = fp32.features(maps), bf16.features(maps)
    error = np.abs(features16 - features32).max() / np.abs(features32).max()
    assert error < 2e-2, error
    results32, results16 = fp32.classify(maps), bf16.classify(maps)
    assert [r.class_name for r in results16] == [r.class_name for r in results32]
    for r16, r32 in zip(results16, results32, strict=True):
        # The class Gaussians' posterior is sharper than a softmax: on the one ambiguous map here
        # (an edge-loc at p 0.56, flagged novel anyway) bf16 moves it by 0.03.
        assert r16.probability == pytest.approx(r32.probability, abs=0.05)
        assert r16.msp_score == pytest.approx(r32.msp_score, abs=0.02)  # the head's softmax
        assert r16.novelty_score == pytest.approx(r32.novelty_score, abs=0.05)  # in std units
        assert r16.is_novel == r32.is_novel
    with pytest.raises(InputError, match="precision must be one of fp32, bf16"):
        WaferMonitor.from_pretrained(precision="fp16")
    with pytest.raises(ValueError, match="inference only"):
        bf16.save(Path("unused"))


def test_cli_precision_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from convsuite.core_ops.cli import run

    maps = simulate_wafer_maps(2, seed=42, options=SimulationOptions(defects_scale=0.2))
    write_simulated(tmp_path / "maps", maps)
    for precision in ("fp32", "bf16"):
        with pytest.raises(SystemExit) as stop:
            run(
                app,
                [
                    "classify",
                    str(tmp_path / "maps"),
                    "--out",
                    str(tmp_path / f"{precision}.csv"),
                    "--precision",
                    precision,
                ],
            )
        assert stop.value.code == 0
    rows = [(tmp_path / f"{p}.csv").read_text().splitlines() for p in ("fp32", "bf16")]
    assert [r.split(",")[1] for r in rows[0]] == [r.split(",")[1] for r in rows[1]]  # classes
    with pytest.raises(SystemExit) as stop:
        run(app, ["classify", str(tmp_path / "maps"), "--precision", "fp8"])
    assert stop.value.code == 2
    capsys.readouterr()
