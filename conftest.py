"""Root pytest configuration: development helpers on the path, torch's thread count restored."""

import sys
from pathlib import Path

import pytest
import torch

_SHARED = str(Path(__file__).parent / "shared")
if _SHARED not in sys.path:
    sys.path.insert(0, _SHARED)

_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A test that calls ``torch.set_num_threads`` does not slow down (or speed up) the rest."""
    yield
    if torch.get_num_threads() != _THREADS:
        torch.set_num_threads(_THREADS)
