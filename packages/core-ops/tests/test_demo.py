"""Tests of the ``convsuite-demo`` runner (demo.py) and of core-ops' own demo (demo_core.py)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from convsuite.core_ops import demo
from convsuite.core_ops.demo import DemoResult

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


def test_a_failing_demo_is_reported_and_the_others_still_run(tmp_path, monkeypatch) -> None:
    _fake_demos(monkeypatch)
    result = CliRunner().invoke(demo.app, ["--out", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert (tmp_path / "fake" / "summary.json").is_file()
    assert not (tmp_path / "broken" / "summary.json").exists()
    index = (tmp_path / "index.html").read_text()
    assert "broken: failed" in index and "RuntimeError: simulator exploded" in index
    assert "fake/curve.png" in index
    assert "1 failed" in index


def test_cli_help_list_and_unknown_names(tmp_path, monkeypatch) -> None:
    _fake_demos(monkeypatch)
    runner = CliRunner()
    help_result = runner.invoke(demo.app, ["--help"])
    assert help_result.exit_code == 0
    assert "Example" in help_result.output and "--only" in help_result.output
    listed = runner.invoke(demo.app, ["--list"])
    assert listed.exit_code == 0 and listed.output.split() == ["broken", "fake"]
    unknown = runner.invoke(demo.app, ["--out", str(tmp_path), "--only", "nope"])
    assert unknown.exit_code == 2
    assert "--only: no demo named 'nope' (installed: broken, fake)" in unknown.output
    only = runner.invoke(demo.app, ["--out", str(tmp_path), "--only", "fake"])
    assert only.exit_code == 0, only.output
    assert not (tmp_path / "broken").exists()


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
    from convsuite.core_ops.demo_core import run

    result = run(tmp_path)
    assert isinstance(result, DemoResult)
    assert {p.name for p in result.figures} >= {"loss.png", "accuracy.png", "reparam.png"}
    for figure in result.figures:
        assert figure.parent == tmp_path and figure.read_bytes().startswith(PNG_MAGIC)
    summary = result.summary
    assert summary["chance"] == pytest.approx(1 / 3)
    assert summary["held_out_accuracy"] >= summary["chance"] + 0.25, summary
    assert summary["train_steps"] >= 50
    assert summary["reparam"]["max_abs_diff"] <= 1e-5
    assert summary["reparam"]["speedup"] > 0
    assert (tmp_path / summary["checkpoint"]).is_file()
    json.dumps(summary)  # the runner writes it as JSON
