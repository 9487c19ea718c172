"""Every convsuite console script starts without importing torch, so ``--help`` is fast.

For each module named by a ``console_scripts`` entry point of an installed convsuite distribution
(value ``convsuite.<...>:<function>``), a fresh interpreter imports the module, looks up every
script's object in it, and reports what heavy libraries ended up in ``sys.modules``. torch must not
be among them; the others are listed in the failure message to show where to look.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from importlib.metadata import entry_points

import pytest

HEAVY = ("torch", "lightning", "monai", "healpy", "matplotlib", "scipy", "sklearn")


def _scripts_by_module() -> dict[str, list[tuple[str, str]]]:
    """module -> [(script name, object path)] for every convsuite console script installed."""
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for entry in entry_points(group="console_scripts"):
        if entry.value.startswith("convsuite."):
            module, _, attribute = entry.value.partition(":")
            found[module.strip()].append((entry.name, attribute.strip()))
    return dict(sorted(found.items()))


SCRIPTS = _scripts_by_module()

_PROBE = """
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
for attribute in json.loads(sys.argv[2]):
    target = module
    for part in attribute.split("."):
        target = getattr(target, part)
    assert callable(target), f"{attribute} is not callable"
print(json.dumps(sorted(name for name in json.loads(sys.argv[3]) if name in sys.modules)))
"""


def test_the_console_scripts_are_found() -> None:
    names = {name for scripts in SCRIPTS.values() for name, _ in scripts}
    assert "convsuite-demo" in names, names


@pytest.mark.parametrize("module", list(SCRIPTS), ids=list(SCRIPTS))
def test_console_script_module_imports_no_torch(module: str) -> None:
    scripts = SCRIPTS[module]
    attributes = [attribute for _, attribute in scripts if attribute]
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, module, json.dumps(attributes), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    names = ", ".join(name for name, _ in scripts)
    assert "torch" not in loaded, f"{module} (scripts {names}) imports {', '.join(loaded)}"
