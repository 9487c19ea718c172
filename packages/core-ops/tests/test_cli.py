"""cli.py: ``run`` turns bad input into one stderr line and exit 2; the shared option helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Annotated

import pytest
import typer

from convsuite.core_ops.cli import (
    guard_outputs,
    output_stems,
    recipe_command,
    run,
    trainer_settings,
)
from convsuite.core_ops.errors import InputError

BOX = ("╭", "│", "╰", "Usage:", "Try ")

app = typer.Typer(add_completion=False)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option()] = Path("out.txt"),
    reject: bool = False,
    warn: bool = False,
    crash: bool = False,
    abort: bool = False,
    code: int = 0,
) -> None:
    """Copy SOURCE to OUT, upper-cased."""
    if warn:
        warnings.warn("library is unsure", UserWarning, stacklevel=1)
    if reject:
        raise InputError(source, "holds no data")
    if crash:
        raise RuntimeError("a bug")
    if abort:
        raise typer.Abort()
    if code:
        raise typer.Exit(code)
    out.write_text(source.read_text().upper())


group = typer.Typer(add_completion=False)
group.command("convert")(convert)


@group.command("noop")
def noop() -> None:
    """Do nothing."""


def invoke(target: typer.Typer, args: list[str], capsys: pytest.CaptureFixture) -> tuple:
    """``run(target, args)`` in-process: (exit status, stdout, stderr lines)."""
    with pytest.raises(SystemExit) as exit_info:
        run(target, args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err.splitlines()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("data\n")
    return path


def test_success_exits_0_and_still_shows_warnings(source, tmp_path, capsys, recwarn) -> None:
    out = tmp_path / "out.txt"
    code, _, err = invoke(app, [str(source), "--out", str(out), "--warn"], capsys)
    assert code == 0
    assert out.read_text() == "DATA\n"
    # shown through warnings.showwarning, which pytest records (a real process: see below)
    assert [str(w.message) for w in recwarn] == ["library is unsure"]
    assert err == []


def test_input_error_is_one_line_with_exit_2(source, capsys) -> None:
    code, out, err = invoke(app, [str(source), "--reject"], capsys)
    assert code == 2
    assert err == [f"error: {source}: holds no data"]
    assert out == ""


def test_warnings_before_an_input_error_join_its_line(source, capsys) -> None:
    code, _, err = invoke(app, [str(source), "--warn", "--reject"], capsys)
    assert code == 2
    assert err == [f"error: {source}: holds no data (warnings: library is unsure)"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["{missing}"], "does not exist"),
        (["{source}", "--colour", "red"], "No such option: --colour"),
        ([], "Missing argument"),
        (["{source}", "--code", "three"], "Invalid value for '--code'"),
        (["{folder}"], "is a directory"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2_and_no_box(
    args, expected, source, tmp_path, capsys
) -> None:
    names = {"missing": tmp_path / "nope.txt", "source": source, "folder": tmp_path}
    code, out, err = invoke(app, [a.format(**names) for a in args], capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ")
    assert expected in err[0]
    assert not any(mark in err[0] + out for mark in BOX)


def test_unknown_subcommand_of_a_group(capsys) -> None:
    code, _, err = invoke(group, ["convrt"], capsys)
    assert code == 2
    assert len(err) == 1 and "No such command 'convrt'" in err[0]
    assert invoke(group, ["noop"], capsys)[0] == 0


def test_unwritable_output_is_one_line(source, tmp_path, capsys) -> None:
    # Root ignores permission bits, so the output is made unwritable by a file where its folder
    # should be.
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    target = blocker / "out.txt"
    code, _, err = invoke(app, [str(source), "--out", str(target), "--warn"], capsys)
    assert code == 2
    assert len(err) == 1
    assert err[0] == f"error: {target}: Not a directory (warnings: library is unsure)"
    assert blocker.read_text() == "a file, not a folder"
    assert source.read_text() == "data\n"


def test_exit_abort_and_bugs(source, capsys) -> None:
    assert invoke(app, [str(source), "--code", "3"], capsys)[0] == 3
    code, _, err = invoke(app, [str(source), "--abort"], capsys)
    assert (code, err) == (1, ["error: aborted"])
    with pytest.raises(RuntimeError, match="a bug"):  # a bug keeps its traceback
        run(app, [str(source), "--crash"])


def test_help_exits_0(capsys) -> None:
    code, out, _ = invoke(app, ["--help"], capsys)
    assert code == 0 and "Copy SOURCE to OUT" in out


def test_one_line_in_a_real_process(source, tmp_path) -> None:
    """Nothing else reaches stderr of a console script: no traceback, no rich box; warnings of
    a successful run are shown as usual."""
    script = tmp_path / "tool.py"
    script.write_text(
        textwrap.dedent(
            """
            import warnings
            from pathlib import Path
            from typing import Annotated

            import typer

            from convsuite.core_ops.cli import run
            from convsuite.core_ops.errors import InputError

            app = typer.Typer()


            @app.command()
            def check(source: Annotated[Path, typer.Argument(exists=True)], ok: bool = False):
                warnings.warn("library is unsure")
                if not ok:
                    raise InputError(source, "holds no data")


            run(app)
            """
        )
    )
    for args, expected in (
        ([str(tmp_path / "nope.txt")], "does not exist"),
        ([str(source)], "holds no data (warnings: library is unsure)"),
    ):
        result = subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
        assert expected in result.stderr and result.stdout == ""
    result = subprocess.run(
        [sys.executable, str(script), str(source), "--ok"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "UserWarning: library is unsure" in result.stderr and "error" not in result.stderr


@pytest.mark.parametrize(
    ("devices", "parsed"),
    [("auto", "auto"), ("4", 4), (" 2 ", 2), ("0,1", [0, 1]), ("0, 1", [0, 1]), ("3,", [3])],
)
def test_trainer_settings_parses_devices(devices, parsed) -> None:
    assert trainer_settings("gpu", devices, "ddp", 2) == {
        "accelerator": "gpu",
        "devices": parsed,
        "strategy": "ddp",
        "num_nodes": 2,
    }


@pytest.mark.parametrize("devices", ["gpu", "", "1.5", ",", "0;1", "a,b"])
def test_trainer_settings_refuses_other_devices(devices) -> None:
    with pytest.raises(InputError) as caught:
        trainer_settings("auto", devices, "auto", 1)
    assert caught.value.source == "--devices"
    assert repr(devices) in caught.value.problem


def test_recipe_command(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/venv/bin/medseg", "cxr", "train", "--out", "my runs"])
    assert recipe_command() == "medseg cxr train --out 'my runs'"


def test_guard_outputs_sees_through_spellings_and_links(tmp_path, monkeypatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    source = data / "map.fits"
    source.write_text("sky")
    other = data / "other.fits"
    other.write_text("sky")
    (tmp_path / "link.fits").symlink_to(source)
    os.link(source, tmp_path / "hard.fits")
    monkeypatch.chdir(tmp_path)

    clashes = [
        source,
        "data/map.fits",
        "data/../data/./map.fits",
        tmp_path / "link.fits",
        "hard.fits",
    ]
    for output in clashes:
        with pytest.raises(
            InputError, match="is also an input; refusing to overwrite it"
        ) as caught:
            guard_outputs([tmp_path / "fine.png", output], [other, source])
        assert caught.value.source == str(Path(output))
    # the input given relative or through a link, the output absolute
    for spelling in ("data/map.fits", "link.fits"):
        with pytest.raises(InputError):
            guard_outputs([source], [spelling])
    guard_outputs([data / "map.png", tmp_path / "new" / "map.fits", "data/other.png"], [source])
    guard_outputs([], [source])
    assert source.read_text() == "sky"


def test_output_stems_keep_names_distinct(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in ("a/x", "b/x", "c", "d"):
        (tmp_path / folder).mkdir(parents=True)
    assert output_stems(["c/one.fits", "d/two.npy", "c/scan.nii.gz"]) == ["one", "two", "scan"]
    assert output_stems(["a/map.fits", "b/map.fits", "c/other.fits"]) == [
        "a_map",
        "b_map",
        "other",
    ]
    assert output_stems(["a/x/map.fits", "b/x/map.fits"]) == ["a_x_map", "b_x_map"]
    assert output_stems(["a/scan.nii.gz", tmp_path / "b" / "scan.nii"]) == ["a_scan", "b_scan"]
    # same stem in one folder: the suffix tells them apart (this used to loop forever)
    assert output_stems(["c/map.fits", "c/map.npy"]) == ["map_fits", "map_npy"]
    stems = output_stems(["a/map.fits", "b/map.fits", "a_map.fits", "c/map.fits", "c/map.npy"])
    assert len(set(stems)) == 5 and all("/" not in stem for stem in stems)
    assert output_stems([]) == []


@pytest.mark.parametrize(
    "twice", [["c/map.fits", "c/map.fits"], ["c/map.fits", "d/../c/map.fits", "d/x.fits"]]
)
def test_output_stems_refuse_the_same_file_twice(tmp_path, monkeypatch, twice) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c").mkdir()
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match=r"is given twice \(also as c/map.fits\)") as caught:
        output_stems(twice)
    assert caught.value.source == twice[1]
