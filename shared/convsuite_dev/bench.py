"""Benchmark harness: medians over repeats, ratios against a baseline timed in the same process.

Every ``packages/*/benchmarks/bench_*.py`` builds :class:`Comparison` rows and prints them with
:func:`print_table`. Ratios are ``baseline_median / ours_median`` (above 1 means ours is faster).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


def median_seconds(
    fn: Callable[[], object],
    repeats: int = 5,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs, on ``clock``
    (wall time by default; ``time.thread_time`` for the CPU time of work done in this thread)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def interleaved_medians(
    fns: Sequence[Callable[[], object]],
    repeats: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Median seconds of each of ``fns`` on ``clock`` (as :func:`median_seconds`), after one
    warm-up call each, the calls alternating so that load drift and the allocator's or oneDNN's
    state hit all of them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times, strict=True):
            start = clock()
            fn()
            bucket.append(clock() - start)
    return [statistics.median(bucket) for bucket in times]


def paired_medians(
    ours: Callable[[], object], baseline: Callable[[], object], repeats: int = 5
) -> tuple[float, float]:
    """Median seconds of ``ours()`` and ``baseline()`` run alternately, after one warm-up each
    (:func:`interleaved_medians`)."""
    ours_s, baseline_s = interleaved_medians([ours, baseline], repeats)
    return ours_s, baseline_s


@dataclass
class Comparison:
    """One benchmark row: ours against a baseline on the same inputs, in one process.

    Args:
        case: what was measured ("dw k=17 fwd+bwd").
        ours_s / baseline_s: median seconds.
        flops: floating-point operations of the *baseline's* algorithm for the case (direct
            convolution count), so both columns show an effective rate on the same scale.
        target: the required speed-up ratio (baseline / ours), or None for a report-only row.
        error: max abs difference of the outputs relative to the output scale, where measured.
    """

    case: str
    ours_s: float
    baseline_s: float
    flops: float = 0.0
    target: float | None = None
    error: float | None = None

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.ours_s

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| / max |reference|."""
    ours, reference = ours.detach().float(), reference.detach().float()
    return float((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-30))


def print_table(title: str, rows: list[Comparison], baseline_name: str) -> None:
    """Print rows as a fixed-width table with medians, ratio, effective GFLOP/s and the target."""
    print(f"\n{title}  (threads={torch.get_num_threads()}, torch {torch.__version__})")
    header = (
        f"{'case':<34}{'ours ms':>10}{baseline_name + ' ms':>16}{'ratio':>8}"
        f"{'ours GF/s':>11}{'base GF/s':>11}{'target':>8}{'rel err':>10}  ok"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        gf_ours = row.flops / row.ours_s / 1e9 if row.flops else float("nan")
        gf_base = row.flops / row.baseline_s / 1e9 if row.flops else float("nan")
        target = f">={row.target:g}" if row.target is not None else "report"
        error = f"{row.error:.1e}" if row.error is not None else "-"
        ok = {None: "", True: "yes", False: "NO"}[row.met]
        print(
            f"{row.case:<34}{row.ours_s * 1e3:>10.2f}{row.baseline_s * 1e3:>16.2f}"
            f"{row.ratio:>8.2f}{gf_ours:>11.1f}{gf_base:>11.1f}{target:>8}{error:>10}  {ok}"
        )
