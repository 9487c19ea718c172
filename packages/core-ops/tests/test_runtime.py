"""runtime.py: the accelerated layers keep freed memory from their first call, once, opt-out."""

from __future__ import annotations

import logging

import pytest
import torch

from convsuite.core_ops import runtime
from convsuite.core_ops.layers import SparseTensor, SubmanifoldConv2d, fft_conv, large_kernel_conv


@pytest.fixture
def calls(monkeypatch) -> list[int]:
    """Record calls of keep_freed_memory (not applied for real) with a fresh once-per-process cache."""
    seen: list[int] = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: seen.append(1) or True)
    monkeypatch.delenv("CONVSUITE_KEEP_FREED_MEMORY", raising=False)
    runtime.keep_freed_memory_on_first_use.cache_clear()
    yield seen
    runtime.keep_freed_memory_on_first_use.cache_clear()


@pytest.mark.parametrize(
    "first_use",
    [
        lambda: fft_conv(torch.randn(1, 2, 8, 8), torch.randn(2, 1, 3, 3), groups=2),
        lambda: large_kernel_conv(torch.randn(1, 2, 8, 8), torch.randn(2, 1, 3, 3), groups=2),
        lambda: SubmanifoldConv2d(1, 2)(SparseTensor.from_dense(torch.ones(1, 1, 3, 3))),
    ],
)
def test_applied_once_on_first_use_with_one_log_line(calls, first_use, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="convsuite.core_ops.runtime"):
        first_use()
        first_use()
    assert calls == [1]
    assert len([r for r in caplog.records if "keeps freed memory" in r.getMessage()]) == 1


def test_opt_out_by_environment(calls, monkeypatch) -> None:
    monkeypatch.setenv("CONVSUITE_KEEP_FREED_MEMORY", "0")
    assert runtime.keep_freed_memory_on_first_use() is False
    assert calls == []
