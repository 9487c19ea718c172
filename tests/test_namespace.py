"""Every package under packages/ shares the `convsuite` PEP 420 namespace and publishes cleanly.

Checked on the source tree, for each packages/<folder>/pyproject.toml:
- the distribution is named ``convsuite-<folder>`` and its code is ``src/convsuite/<folder with
  underscores>/`` with an ``__init__.py``, the only package under ``src/convsuite/``;
- there is no ``src/convsuite/__init__.py`` (it would hide every other convsuite package);
- the build backend is poetry-core with a PEP 621 ``[project]`` table, and no dependency is a direct
  reference (``file://``, a path or any URL), which PyPI refuses and other machines cannot resolve.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # `build` (a test extra) brings tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = sorted(p.parent for p in (ROOT / "packages").glob("*/pyproject.toml"))


def _pyproject(package_dir: Path) -> dict:
    with open(package_dir / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def _import_name(distribution: str) -> str:
    return "convsuite." + distribution.removeprefix("convsuite-").replace("-", "_")


def test_there_are_packages() -> None:
    assert any(p.name == "core-ops" for p in PACKAGE_DIRS), (
        "packages/core-ops/pyproject.toml missing"
    )


def test_no_package_defines_the_namespace_itself() -> None:
    offenders = sorted(
        str(p.relative_to(ROOT)) for p in ROOT.glob("packages/*/src/convsuite/__init__.py")
    )
    assert offenders == [], f"PEP 420 namespace broken by {offenders}"


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_folder_and_distribution_names_match(package_dir: Path) -> None:
    project = _pyproject(package_dir).get("project")
    assert isinstance(project, dict), "no PEP 621 [project] table"
    name = project.get("name", "")
    assert name == f"convsuite-{package_dir.name}", f"folder {package_dir.name} holds {name!r}"

    module = _import_name(name).split(".")[1]
    namespace = package_dir / "src" / "convsuite"
    assert (namespace / module / "__init__.py").is_file(), (
        f"missing src/convsuite/{module}/__init__.py"
    )
    subpackages = sorted(p.name for p in namespace.iterdir() if p.name != "__pycache__")
    assert subpackages == [module], (
        f"src/convsuite/ holds {subpackages}, expected only [{module!r}]"
    )


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_poetry_core_backend_and_pep621_metadata(package_dir: Path) -> None:
    config = _pyproject(package_dir)
    build = config.get("build-system", {})
    assert build.get("build-backend") == "poetry.core.masonry.api"
    assert any(Requirement(r).name == "poetry-core" for r in build.get("requires", []))
    project = config["project"]
    for key in ("name", "description", "requires-python", "dependencies"):
        assert key in project, f"[project] lacks {key}"
    assert "version" in project or "version" in project.get("dynamic", [])
    module = _import_name(project["name"]).replace(".", "/")
    includes = config.get("tool", {}).get("poetry", {}).get("packages", [])
    assert {"include": module, "from": "src"} in includes, f"[tool.poetry] packages lacks {module}"


@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda p: p.name)
def test_no_path_or_url_dependencies(package_dir: Path) -> None:
    config = _pyproject(package_dir)
    project = config["project"]
    requirements = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        requirements += group
    for text in requirements:
        assert "file:" not in text, f"{text!r} is a file:// dependency"
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:  # e.g. a bare path "../core-ops"
            pytest.fail(f"{text!r} is not a PEP 508 requirement: {error}")
        assert requirement.url is None, f"{text!r} is a direct reference"
    # [tool.poetry.dependencies] enriches the wheel's metadata: no path, URL or git sources there.
    poetry_dependencies = config.get("tool", {}).get("poetry", {}).get("dependencies", {})
    for name, spec in poetry_dependencies.items():
        if isinstance(spec, dict):
            assert not {"path", "url", "git"} & set(spec), f"{name} = {spec} is not from an index"
