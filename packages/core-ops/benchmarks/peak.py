"""The machine's measured GEMM peak, and benchmark tables that show each row's distance to it.

``make bench`` runs this file first: a 2048 x 2048 float32 and bfloat16 matrix product (oneDNN /
MKL, the fastest kernels torch has) on the benchmarks' thread count. Every core-ops benchmark
imports :func:`print_table_with_peak`, which measures the same probe once per process and prints
the shared table with one more column: our achieved GFLOP/s as a percentage of the float32 peak
(the direct-convolution FLOP count of the case, so it is an effective rate; above 100% means the
algorithm does fewer operations than the direct count, as FFT and sparse paths do).

    PYTHONPATH=shared python packages/core-ops/benchmarks/peak.py
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import torch
from convsuite_dev.bench import Comparison, median_seconds

GEMM_SIZE = 2048


@functools.cache
def gemm_peak(
    threads: int | None = None, clock: Callable[[], float] = time.perf_counter
) -> dict[str, float]:
    """Median GFLOP/s of a 2048^2 GEMM per dtype ("fp32", "bf16") on ``threads`` (default: current),
    timed by ``clock`` (seconds; wall time by default, ``time.thread_time`` for CPU time on one
    thread, where the GEMM runs in the calling thread)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        peaks = {}
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            a = torch.randn(GEMM_SIZE, GEMM_SIZE).to(dtype)
            b = torch.randn(GEMM_SIZE, GEMM_SIZE).to(dtype)
            seconds = median_seconds(lambda a=a, b=b: a @ b, 7, clock=clock)
            peaks[name] = 2 * GEMM_SIZE**3 / seconds / 1e9
        return peaks
    finally:
        torch.set_num_threads(previous)


def peak_line() -> str:
    peaks = gemm_peak()
    return (
        f"machine peak ({GEMM_SIZE}^2 GEMM, {torch.get_num_threads()} threads): "
        f"fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s"
    )


def print_table_with_peak(title: str, rows: list[Comparison], baseline_name: str) -> None:
    """Rows as ``convsuite_dev.bench.print_table`` prints them, plus '% fp32 peak' of ours."""
    peak = gemm_peak()["fp32"]
    print(f"\n{title}  (threads={torch.get_num_threads()}, torch {torch.__version__})")
    print(peak_line())
    header = (
        f"{'case':<34}{'ours ms':>10}{baseline_name + ' ms':>16}{'ratio':>8}"
        f"{'ours GF/s':>11}{'base GF/s':>11}{'%peak':>7}{'target':>8}{'rel err':>10}  ok"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        gf_ours = row.flops / row.ours_s / 1e9 if row.flops else float("nan")
        gf_base = row.flops / row.baseline_s / 1e9 if row.flops else float("nan")
        share = f"{100 * gf_ours / peak:.0f}%" if row.flops else "-"
        target = f">={row.target:g}" if row.target is not None else "report"
        error = f"{row.error:.1e}" if row.error is not None else "-"
        ok = {None: "", True: "yes", False: "NO"}[row.met]
        print(
            f"{row.case:<34}{row.ours_s * 1e3:>10.2f}{row.baseline_s * 1e3:>16.2f}"
            f"{row.ratio:>8.2f}{gf_ours:>11.1f}{gf_base:>11.1f}{share:>7}{target:>8}{error:>10}"
            f"  {ok}"
        )


if __name__ == "__main__":
    torch.set_num_threads(2)
    print(peak_line())
