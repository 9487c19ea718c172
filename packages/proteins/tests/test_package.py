"""The package exports lazily; importing the CLI imports no torch, gemmi or biotite."""

from __future__ import annotations

import subprocess
import sys

import convsuite.proteins as proteins


def test_lazy_exports_resolve() -> None:
    for name in proteins.__all__:
        assert getattr(proteins, name) is not None, name


def test_cli_import_is_light() -> None:
    code = (
        "import sys, convsuite.proteins.cli, convsuite.proteins; "
        "print(sorted(m for m in ('torch', 'gemmi', 'biotite', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
