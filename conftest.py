"""Root pytest configuration: makes the development helpers in shared/ importable in every test."""

import sys
from pathlib import Path

_SHARED = str(Path(__file__).parent / "shared")
if _SHARED not in sys.path:
    sys.path.insert(0, _SHARED)
