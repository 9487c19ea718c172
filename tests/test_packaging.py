"""The wheels work on their own: built, installed into a fresh venv, imported, scripts run.

The point is to test the wheel, not the source tree. The fresh venv gets the wheel with
``pip install --no-deps``; its third-party dependencies (torch, lightning, ...) come from the
development venv without downloading them again, through a ``.pth`` line pointing at a folder of
symlinks to the development site-packages entries, minus everything convsuite (its packages,
``.dist-info`` folders and editable-install hooks) and minus all ``.pth`` files (a ``.pth`` line
adds a plain path, so ``.pth`` files inside it are never processed). The checks then confirm that
``convsuite.core_ops`` and its metadata resolve inside the new venv, and fail otherwise.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path
from typing import NamedTuple

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]
CORE_OPS = ROOT / "packages" / "core-ops"
MEDSEG = ROOT / "packages" / "medseg"
SEMICON = ROOT / "packages" / "semicon"
COSMO = ROOT / "packages" / "cosmo"
SOURCE = CORE_OPS / "src"

# Runs inside the new venv; prints what it found as JSON for the test to judge.
_PROBE = r"""
import json, sys
from importlib import metadata
import convsuite, convsuite.core_ops
from convsuite.core_ops import InputError
from convsuite.core_ops.layers import DCLSConv2d, FFTConv2d
dist = metadata.distribution("convsuite-core-ops")
demos = {ep.name: ep.value for ep in metadata.entry_points(group="convsuite.demos")}
run = metadata.entry_points(group="convsuite.demos")["core-ops"].load()
print(json.dumps({
    "prefix": sys.prefix,
    "core_ops_file": convsuite.core_ops.__file__,
    "namespace_file": getattr(convsuite, "__file__", None),
    "namespace_path": list(convsuite.__path__),
    "dist_files": str(dist.locate_file("")),
    "dist_count": sum(1 for d in metadata.distributions() if d.name == "convsuite-core-ops"),
    "version": dist.version,
    "demos": demos,
    "demo_run": f"{run.__module__}.{run.__qualname__}",
    "layers": [DCLSConv2d.__name__, FFTConv2d.__name__, InputError.__name__],
}))
"""


def _run(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _host_site_packages() -> list[Path]:
    paths = [
        *site.getsitepackages(),
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    ]
    return list(dict.fromkeys(Path(p) for p in paths if Path(p).is_dir()))


def _is_convsuite(name: str) -> bool:
    lowered = name.lower()
    return "convsuite" in lowered or lowered.startswith("__editable__")


def _dependency_view(target: Path) -> Path:
    """A folder of symlinks to the host's installed packages, without convsuite and .pth files."""
    target.mkdir()
    for folder in _host_site_packages():
        for entry in folder.iterdir():
            if entry.suffix == ".pth" or entry.name == "__pycache__" or _is_convsuite(entry.name):
                continue
            link = target / entry.name
            if not link.exists():
                link.symlink_to(entry)
    return target


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


class _WheelContents(NamedTuple):
    names: set[str]
    dist_info: str
    metadata: Message
    entry_points: str


def _read_wheel(wheel: Path) -> _WheelContents:
    """The file names, .dist-info folder, METADATA and entry_points.txt of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    return _WheelContents(names, dist_info, metadata, entry_points)


def _build_wheel(package: Path, out: Path) -> Path:
    # No isolation: the dev venv already has poetry-core, and an isolated build would download it.
    _run(
        sys.executable,
        "-m",
        "build",
        "--wheel",
        "--no-isolation",
        "--outdir",
        out,
        package,
        cwd=out,
    )
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _fresh_venv(tmp_path: Path, *wheels: Path) -> Path:
    """A new venv holding ``wheels`` and, through a .pth line, the host's third-party packages."""
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = _bin(venv, "python")
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    ).stdout.strip()
    deps = _dependency_view(tmp_path / "deps")
    (Path(purelib) / "_host_dependencies.pth").write_text(f"{deps}\n")
    # The dev venv's pip installs into the new interpreter (--python); --no-deps: nothing fetched.
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "--no-index", "--disable-pip-version-check", *wheels, cwd=tmp_path,
    )  # fmt: skip
    return venv


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(CORE_OPS, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def medseg_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(MEDSEG, tmp_path_factory.mktemp("dist-medseg"))


def test_wheel_contents_and_metadata(wheel: Path) -> None:
    names, dist_info, metadata, entry_points = _read_wheel(wheel)

    assert "convsuite/__init__.py" not in names, "the wheel would shadow the PEP 420 namespace"
    sources = {p.relative_to(SOURCE).as_posix() for p in (SOURCE / "convsuite").rglob("*.py")}
    assert sources - names == set(), f"source files missing from the wheel: {sources - names}"
    stray = {n for n in names if not n.startswith(("convsuite/core_ops/", dist_info))}
    assert stray == set(), f"the wheel holds files outside convsuite/core_ops: {stray}"

    assert metadata["Name"] == "convsuite-core-ops"
    requires = metadata.get_all("Requires-Dist") or []
    assert any(Requirement(r).name == "torch" for r in requires)
    for text in requires:
        assert "file:" not in text and Requirement(text).url is None, f"direct reference {text!r}"

    assert "[convsuite.demos]" in entry_points
    assert "convsuite-demo" in entry_points


def test_wheel_installs_and_runs_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = _fresh_venv(tmp_path, wheel)
    python = _bin(venv, "python")

    found = json.loads(_run(python, "-c", _PROBE, cwd=tmp_path).stdout)
    inside = str(venv.resolve())
    assert found["prefix"] == str(venv) or Path(found["prefix"]).resolve() == venv.resolve()
    assert str(Path(found["core_ops_file"]).resolve()).startswith(inside), found["core_ops_file"]
    assert found["namespace_file"] is None, "convsuite must be a namespace package"
    assert all(str(Path(p).resolve()).startswith(inside) for p in found["namespace_path"])
    assert str(Path(found["dist_files"]).resolve()).startswith(inside), found["dist_files"]
    assert found["dist_count"] == 1
    assert found["demos"]["core-ops"] == "convsuite.core_ops.demo_core:run"
    assert found["demo_run"] == "convsuite.core_ops.demo_core.run"

    script = _bin(venv, "convsuite-demo")
    assert script.is_file(), "console script convsuite-demo not installed"
    help_text = _run(script, "--help", cwd=tmp_path).stdout
    assert "--only" in help_text and "Example" in help_text
    assert "core-ops" in _run(script, "--list", cwd=tmp_path).stdout.split()


def test_medseg_wheel_ships_its_weights_and_depends_on_core_ops_by_name(medseg_wheel: Path) -> None:
    names, _, metadata, entry_points = _read_wheel(medseg_wheel)
    assert "convsuite/__init__.py" not in names
    for name in ("hybridgnet_small", "unet_small"):
        for suffix in (".safetensors", ".json"):
            assert f"convsuite/medseg/weights/{name}{suffix}" in names
    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
    core = [r for r in requires if r.name == "convsuite-core-ops"]
    assert len(core) == 1 and core[0].url is None
    assert "medseg=convsuite.medseg.cli:main" in entry_points.replace(" ", "")
    assert "medseg=convsuite.medseg.demo:run" in entry_points.replace(" ", "")


def test_medseg_wheel_segments_a_radiograph_in_a_fresh_venv(
    wheel: Path, medseg_wheel: Path, tmp_path: Path
) -> None:
    venv = _fresh_venv(tmp_path, wheel, medseg_wheel)
    medseg = _bin(venv, "medseg")
    _run(medseg, "cxr", "simulate", "--n", "1", "--size", "256", "--out", "data", cwd=tmp_path)
    image = next((tmp_path / "data" / "images").glob("*.png"))
    _run(medseg, "cxr", "segment", image, "--out", "seg", cwd=tmp_path)  # bundled weights
    record = json.loads((tmp_path / "seg" / f"{image.stem}.json").read_text())
    assert len(record["landmarks"]["H"]) == 26 and 0.3 < record["cardiothoracic_ratio"] < 0.7


def test_semicon_wheel_ships_its_monitor(tmp_path: Path) -> None:
    semicon_wheel = _build_wheel(SEMICON, tmp_path)
    names, _, _, entry_points = _read_wheel(semicon_wheel)
    entry_points = entry_points.replace(" ", "")
    assert "convsuite/__init__.py" not in names
    for suffix in (".safetensors", ".json", ".novelty.json"):
        assert f"convsuite/semicon/weights/wafer_monitor_small{suffix}" in names
    assert "wafer-monitor=convsuite.semicon.cli:main" in entry_points
    assert "semicon=convsuite.semicon.demo:run" in entry_points


def test_cosmo_wheel_ships_its_checkpoint_spectrum_and_commands(tmp_path: Path) -> None:
    cosmo_wheel = _build_wheel(COSMO, tmp_path)
    names, _, _, entry_points = _read_wheel(cosmo_wheel)
    entry_points = entry_points.replace(" ", "")
    assert "convsuite/__init__.py" not in names
    assert "convsuite/cosmo/data/lcdm_tt.txt" in names
    assert any(n.startswith("convsuite/cosmo/weights/skyrecon_nside") for n in names)
    for command in ("inpaint", "simulate", "train", "evaluate"):
        assert f"cosmo-{command}=convsuite.cosmo.cli:{command}_main" in entry_points
    assert "cosmo=convsuite.cosmo.demo:run" in entry_points
