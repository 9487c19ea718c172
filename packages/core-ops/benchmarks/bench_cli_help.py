"""``<script> --help`` of every convsuite console script, as whole processes, against a 1 s target.

A user's first contact with a command is its help: it must come back at once, which needs the CLI
module to import no torch, Lightning or other heavy library at module level (tests/
test_cli_imports.py checks the imports; this measures what the user waits). Every console script of
every installed convsuite distribution (entry points whose object lives in ``convsuite.``) is started
from this environment's ``bin/`` folder: one untimed warm-up run (disk cache), then the median and
the maximum wall time of 5 runs. A script whose ``--help`` fails is reported and makes the exit
status 1, after the table.

    PYTHONPATH=shared python packages/core-ops/benchmarks/bench_cli_help.py
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

RUNS = 5
TARGET_S = 1.0


def console_scripts() -> list[str]:
    """Names of the installed convsuite console scripts, sorted."""
    return sorted(
        {e.name for e in entry_points(group="console_scripts") if e.value.startswith("convsuite.")}
    )


def _executable(name: str) -> str:
    beside = Path(sys.executable).parent / name  # the environment this runs in
    return str(beside) if beside.is_file() else (shutil.which(name) or name)


def help_seconds(name: str, runs: int = RUNS) -> tuple[list[float], str | None]:
    """Wall times of ``runs`` runs of ``name --help`` after a warm-up, and the error if one failed."""
    command = [_executable(name), "--help"]
    times = []
    for index in range(runs + 1):
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            return times, f"exit {result.returncode}: {lines[-1]}"
        if index:  # the first run warms the disk cache
            times.append(elapsed)
    return times, None


def main() -> int:
    scripts = console_scripts()
    print(
        f"\n`--help` of every convsuite console script, median and max of {RUNS} runs "
        f"(python {platform.python_version()}, {os.cpu_count()} CPUs)"
    )
    header = f"{'script':<20}{'median s':>10}{'max s':>10}{'target':>9}  ok"
    print(header)
    print("-" * len(header))
    failed = []
    for name in scripts:
        times, error = help_seconds(name)
        if error:
            failed.append(name)
            print(f"{name:<20}{'-':>10}{'-':>10}{f'<{TARGET_S:g}':>9}  FAILED ({error})")
            continue
        median = statistics.median(times)
        ok = "ok" if median < TARGET_S else "NO"
        print(f"{name:<20}{median:>10.2f}{max(times):>10.2f}{f'<{TARGET_S:g}':>9}  {ok}")
    if not scripts:
        print("no convsuite console scripts are installed")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
