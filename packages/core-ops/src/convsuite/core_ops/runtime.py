"""Process-level CPU settings that large-tensor PyTorch workloads need to run at full speed.

glibc returns freed blocks of more than a few MB to the operating system and maps them again on
the next allocation, so every training step pays page faults on each large temporary (FFT
spectra, activations): on this project's 2-core machine that made the FFT convolution's
forward+backward 2-3x slower. :func:`keep_freed_memory` tells glibc to keep freed memory for reuse,
which is what jemalloc/tcmalloc (the allocators PyTorch's CPU performance guide recommends) do by
default. Our CLIs, training helpers and benchmarks call it at start; the accelerated layers (FFT
convolution and the dispatcher, DCLS, sparse convolution, bf16 inference) apply it on their first
call through :func:`keep_freed_memory_on_first_use`, with one log line, so a training script or a
notebook that never calls it gets the same speed. A library import alone changes nothing; set
``CONVSUITE_KEEP_FREED_MEMORY=0`` to keep glibc's default behaviour.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

__all__ = ["keep_freed_memory", "keep_freed_memory_on_first_use"]

_LOG = logging.getLogger(__name__)
# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap and are kept after free. Older glibc refuses mmap
# thresholds above 32 MiB, so that is the fallback.
_KEEP_BYTES = (1 << 30, 32 << 20)


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of unmapping it. Returns True if applied.

    A no-op returning False on platforms without glibc (macOS, Windows, musl).
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    applied = False
    for keep in _KEEP_BYTES:
        if mallopt(_M_MMAP_THRESHOLD, keep) and mallopt(_M_TRIM_THRESHOLD, 2 * keep):
            applied = True
            break
    _LOG.debug("glibc mallopt keep-freed-memory applied: %s", applied)
    return applied


@functools.cache
def keep_freed_memory_on_first_use() -> bool:
    """:func:`keep_freed_memory` once per process, logged; a no-op when the environment variable
    ``CONVSUITE_KEEP_FREED_MEMORY`` is ``0``. Returns whether it was applied.

    Called by the accelerated layers on every call (a cached lookup after the first).
    """
    if os.environ.get("CONVSUITE_KEEP_FREED_MEMORY", "1").strip() == "0":
        return False
    applied = keep_freed_memory()
    if applied:
        _LOG.info(
            "convsuite: glibc now keeps freed memory for reuse (large temporaries are not "
            "page-faulted on every call); CONVSUITE_KEEP_FREED_MEMORY=0 turns this off"
        )
    return applied
