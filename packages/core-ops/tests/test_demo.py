"""Tests of the ``convsuite-demo`` runner (demo.py) and of core-ops' own demo (demo_core.py)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from convsuite.core_ops import demo
from convsuite.core_ops.cli import run
from convsuite.core_ops.demo import DemoResult
from convsuite.core_ops.io import load_checkpoint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values["src"] or "")
        elif tag == "a":
            self.links.append(values["href"] or "")
        self._in_cell = tag == "td"

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells.append(data)
            self._in_cell = False


def _parse(index: Path) -> _Links:
    parser = _Links()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


def _good_demo(out_dir: Path) -> DemoResult:
    figures = []
    for name in ("curve.png", "maps/panel.png"):
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PNG_MAGIC + name.encode())
        figures.append(path)
    return DemoResult(
        title="fake <domain>",
        summary={
            "accuracy": np.float32(0.91234567),
            "epochs": 3,
            "nested": {"dice": torch.tensor(0.5)},
            "curve": np.arange(3),
            "long": list(range(100)),
        },
        figures=figures,
        description="writes two figures",
    )


def _broken_demo(out_dir: Path) -> DemoResult:
    raise RuntimeError("simulator exploded")


def _fake_demos(monkeypatch: pytest.MonkeyPatch) -> None:
    demos = {"broken": lambda: _broken_demo, "fake": lambda: _good_demo}
    monkeypatch.setattr(demo, "discover_demos", lambda: demos)


def _cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, list[str]]:
    """``convsuite-demo ARGS`` in-process: exit status, stdout and stderr lines."""
    with pytest.raises(SystemExit) as exit_info:
        run(demo.app, args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err.splitlines()


def test_index_links_figures_and_summary(tmp_path, monkeypatch) -> None:
    _fake_demos(monkeypatch)
    outcomes = demo.run_demos(tmp_path, only=["fake"])
    assert [(o.name, o.ok) for o in outcomes] == [("fake", True)]

    page = _parse(tmp_path / "index.html")
    assert sorted(page.images) == ["fake/curve.png", "fake/maps/panel.png"]
    for src in page.images:  # relative links that resolve from the index's folder
        assert (tmp_path / src).read_bytes().startswith(PNG_MAGIC)
    assert "fake/summary.json" in page.links
    summary = json.loads((tmp_path / "fake" / "summary.json").read_text())
    assert summary["summary"]["accuracy"] == pytest.approx(0.91234567)
    assert summary["figures"] == ["curve.png", "maps/panel.png"]
    assert summary["title"] == "fake <domain>"
    # Key figures in the table: scalars, nested dicts flattened one level, short lists.
    cells = page.cells
    assert summary["summary"]["curve"] == [0, 1, 2]
    shown = [("accuracy", "0.9123"), ("epochs", "3"), ("nested.dice", "0.5"), ("curve", "0, 1, 2")]
    for key, value in shown:
        assert cells[cells.index(key) + 1] == value
    assert "long" not in cells  # long lists stay in summary.json only
    assert "fake &lt;domain&gt;" in (tmp_path / "index.html").read_text()
    assert list(tmp_path.glob("**/*.part")) == []  # atomic writes left no temporary files


def test_a_failing_demo_is_reported_and_the_others_still_run(tmp_path, monkeypatch, capsys) -> None:
    _fake_demos(monkeypatch)
    code, out, _ = _cli(["--out", str(tmp_path)], capsys)
    assert code == 1, out
    assert (tmp_path / "fake" / "summary.json").is_file()
    assert not (tmp_path / "broken" / "summary.json").exists()
    index = (tmp_path / "index.html").read_text()
    assert "broken: failed" in index and "RuntimeError: simulator exploded" in index
    assert "fake/curve.png" in index
    assert "1 failed" in index


def test_cli_help_list_and_unknown_names(tmp_path, monkeypatch, capsys) -> None:
    _fake_demos(monkeypatch)
    code, out, _ = _cli(["--help"], capsys)
    assert code == 0
    assert "Example" in out and "--only" in out
    code, out, _ = _cli(["--list"], capsys)
    assert code == 0 and out.split() == ["broken", "fake"]
    code, out, err = _cli(["--out", str(tmp_path / "run"), "--only", "nope"], capsys)
    assert code == 2
    assert err == ["error: --only: no demo named 'nope' (installed: broken, fake)"]
    assert not (tmp_path / "run").exists()  # refused before anything was written
    code, out, err = _cli(["--out", str(tmp_path), "--only", "fake"], capsys)
    assert code == 0, out
    assert not (tmp_path / "broken").exists()
    code, _, err = _cli(["--out", str(tmp_path), "--colour"], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: No such option: --colour")


def test_output_folder_that_cannot_be_made_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    _fake_demos(monkeypatch)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should go")
    code, _, err = _cli(["--out", str(blocker / "demo-output"), "--only", "fake"], capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"error: {blocker}")


def test_console_script_is_main_through_the_shared_runner() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "convsuite-demo"]
    assert script.value == "convsuite.core_ops.demo:main"
    assert script.load() is demo.main


def test_demo_returning_the_wrong_thing_fails_cleanly(tmp_path, monkeypatch) -> None:
    def missing_figure(out_dir: Path) -> DemoResult:
        return DemoResult("t", {}, [out_dir / "never-written.png"], "d")

    demos = {
        "dict": lambda: lambda out_dir: {"not": "a DemoResult"},
        "missing": lambda: missing_figure,
    }
    monkeypatch.setattr(demo, "discover_demos", lambda: demos)
    outcomes = demo.run_demos(tmp_path)
    assert [o.ok for o in outcomes] == [False, False]
    assert "expected DemoResult" in outcomes[0].error
    assert "never-written.png" in outcomes[1].error


def test_core_ops_demo_is_registered() -> None:
    assert "core-ops" in demo.discover_demos()


def test_core_ops_demo_learns_and_folds_exactly(tmp_path) -> None:
    from convsuite.core_ops.demo_core import (
        _MAX_STEPS,
        CLASSES,
        _TinyDCLSConvNeXt,
        make_shapes,
        run,
    )

    # The full step budget, not the demo's wall-time cap: the same training on a busy machine.
    # One thread keeps a step's cost steady when other processes share the cores.
    torch.set_num_threads(1)
    result = run(tmp_path, max_train_seconds=None)
    assert isinstance(result, DemoResult)
    assert {p.name for p in result.figures} >= {"loss.png", "accuracy.png", "reparam.png"}
    for figure in result.figures:
        assert figure.parent == tmp_path and figure.read_bytes().startswith(PNG_MAGIC)
        assert imread(figure)[..., :3].std() > 0.02, f"{figure.name} is blank"
    assert sorted(p.name for p in tmp_path.glob("*.part")) == []
    summary = result.summary
    json.dumps(summary)  # the runner writes it as JSON
    assert summary["train_steps"] == _MAX_STEPS

    # The exported checkpoint, reloaded into a fresh network, beats chance by a margin on shapes
    # it never saw (another seed than the demo's training, validation and test sets).
    state, card = load_checkpoint(tmp_path / summary["checkpoint"])
    assert card.architecture == "_TinyDCLSConvNeXt"
    net = _TinyDCLSConvNeXt(in_chans=1, num_classes=len(CLASSES), **card.config).eval()
    net.load_state_dict(state)
    images, labels = make_shapes(600, seed=1234)
    with torch.no_grad():
        accuracy = float((net(images).argmax(1) == labels).float().mean())
    chance = max(np.bincount(labels.numpy(), minlength=3)) / len(labels)  # the majority class
    assert accuracy >= chance + 0.25, (accuracy, chance)
    # The demo's own held-out figure is what the exported weights score on its test set.
    test_images, test_labels = make_shapes(512, seed=1)
    with torch.no_grad():
        recount = float((net(test_images).argmax(1) == test_labels).float().mean())
    assert summary["held_out_accuracy"] == pytest.approx(recount, abs=1e-6)

    # The folded Dilated Reparam Block computes what the multi-branch one did (eval mode).
    assert summary["reparam"]["max_abs_diff"] <= 1e-5
