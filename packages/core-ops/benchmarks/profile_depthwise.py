"""Where the time of issue 18's depthwise training rows goes, and how far each is from the machine.

For each forward+backward row with a target (2-D (8, 96, 56, 56) k = 13 and 17, 1-D (8, 96, 4096)
k = 31; targets as in bench_fft_conv.py): the time of each pass (forward, input gradient, weight
gradient) on every training route of the dispatcher ("kernel", "split", "fft"; the one
:data:`ROUTES` picks is marked) and of torch's direct convolution in its faster layout (the
median of three calls of each picks it), with the achieved GFLOP/s of each (the
direct-convolution count, 2 N C L_out k^D per pass, so FFT passes show an effective rate), and the
GFLOP/s that all three passes would need to meet the target.

Ceilings, measured in this process on the same threads:
- the 2048^2 float32 GEMM (peak.py);
- numba's best-case multiply-add loop: 16 dependent multiply-adds per value loaded and stored
  (no memory bound; the rate of numba's vector code on these cores at the width numba compiles for);
- numba's shifted-tap loop: the 1-D kernels' inner loop (four taps, each an unaligned load of the
  input shifted by one sample, added into an accumulator) on data that stays in L1: the most the
  1-D kernels' formulation can deliver.

Pass times come by difference, in one process, all sides interleaved (medians): the forward alone
(no autograd), forward + input gradient (only the input requires grad) and forward + both
gradients (what training runs); the input gradient is the second minus the first, the weight
gradient what the third adds to the second. The load average is printed at the start and the
end, numba's threading layer after the first row. With ``--threads 1`` every pass and the
ceilings run in the calling thread and are timed by its CPU time (``time.thread_time``), so a
machine shared with other processes inflates them less (their cache traffic still can); with more
threads, by wall time (the numba probes' thread pool is started outside the timed region).

    PYTHONPATH=shared python packages/core-ops/benchmarks/profile_depthwise.py \
        [--repeats N] [--threads T]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch
import torch.nn.functional as F
from convsuite_dev.bench import interleaved_medians, median_seconds
from peak import gemm_peak

from convsuite.core_ops.layers.fft_conv import choose_route, conv_by_route
from convsuite.core_ops.runtime import keep_freed_memory

BATCH, CHANNELS, SIZE, LENGTH = 8, 96, 56, 4096
# (spatial dims, kernel): target ratio (torch's fwd+bwd / ours), as in bench_fft_conv.py.
TARGETS = {(2, 13): 5.0, (2, 17): 12.0, (1, 31): 8.0}
PASSES = ("forward", "input grad", "weight grad")


@numba.njit(nogil=True, fastmath=True)
def _multiply_add_chains(row: np.ndarray, reps: int, a: float, b: float) -> None:
    """row (1024,) rewritten ``reps`` times, 16 dependent multiply-adds per element (2 * 16 FLOP
    per element and rep)."""
    for _ in range(reps):
        for i in range(row.shape[0]):
            v = row[i]
            for _ in range(16):
                v = v * a + b
            row[i] = v


@numba.njit(nogil=True, fastmath=True)
def _shifted_taps(acc: np.ndarray, span: np.ndarray, taps: np.ndarray, reps: int) -> None:
    """acc (512,) += four taps times span (515,) shifted by 0-3 samples, ``reps`` times: the 1-D
    kernels' inner loop (layers/depthwise_kernels.py, ``_forward_ncl``) on an L1-resident tile
    (8 FLOP per element and rep)."""
    t0, t1, t2, t3 = taps[0], taps[1], taps[2], taps[3]
    s0, s1, s2, s3 = span[0:], span[1:], span[2:], span[3:]
    for _ in range(reps):
        for i in range(acc.shape[0]):
            acc[i] += (t0 * s0[i] + t1 * s1[i]) + (t2 * s2[i] + t3 * s3[i])


def _best_rate(run: Callable[[], None], flops: float, repeats: int = 9) -> float:
    """GFLOP/s of the fastest of ``repeats`` runs (after one warm-up)."""
    run()
    best = min(_seconds(run) for _ in range(repeats))
    return flops / best / 1e9


def _clock() -> Callable[[], float]:
    """The calling thread's CPU time on one thread (where every pass runs in this thread, so other
    processes' share of the cores does not count), else wall time."""
    return time.thread_time if torch.get_num_threads() == 1 else time.perf_counter


def _seconds(fn: Callable[[], object]) -> float:
    """Seconds of ``fn()`` by :func:`_clock`."""
    clock = _clock()
    start = clock()
    fn()
    return clock() - start


def _on_threads(
    probe: Callable[[int], None], pool: ThreadPoolExecutor | None, threads: int
) -> Callable[[], None]:
    """A run of ``probe(thread index)`` on ``threads`` Python threads of ``pool`` at once (the
    probes release the GIL), one per core as the kernels' thread pool runs; with no pool (one
    thread) in the calling thread, where :func:`_seconds`' CPU clock sees it. The pool is made
    outside the timed region: starting and joining threads costs as much as a probe's work."""

    def run() -> None:
        if pool is None:
            probe(0)
            return
        list(pool.map(probe, range(threads)))

    return run


def numba_ceilings() -> dict[str, float]:
    """GFLOP/s of the two numba probes on torch's thread count, one copy per thread."""
    threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    reps = 4000
    values = rng.random((threads, 1024), dtype=np.float32)
    a, b = np.float32(0.999), np.float32(0.001)
    acc = np.zeros((threads, 512), dtype=np.float32)
    span = rng.random((threads, 515), dtype=np.float32)
    taps = np.full(4, 0.25, dtype=np.float32)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(threads)) if threads > 1 else None
        chains = _best_rate(
            _on_threads(lambda t: _multiply_add_chains(values[t], reps, a, b), pool, threads),
            2 * 16 * values.size * reps,
        )
        shifted = _best_rate(
            _on_threads(lambda t: _shifted_taps(acc[t], span[t], taps, reps), pool, threads),
            8 * acc.size * reps,
        )
    return {"multiply-add loop": chains, "shifted-tap loop": shifted}


def _pass_steps(
    conv: Callable[..., torch.Tensor], x: torch.Tensor, w: torch.Tensor, g: torch.Tensor
) -> dict[str, Callable[[], None]]:
    """forward / forward + input grad / forward + both gradients of conv(x, w)."""

    def run(x_grad: bool, w_grad: bool) -> None:
        if not (x_grad or w_grad):
            with torch.no_grad():
                conv(x, w)
            return
        conv(x.detach().requires_grad_(x_grad), w.detach().requires_grad_(w_grad)).backward(g)

    return {
        "fwd": lambda: run(False, False),
        "fwd+ig": lambda: run(True, False),
        "total": lambda: run(True, True),
    }


def profile_row(dims: int, kernel: int, repeats: int, ceilings: dict[str, float]) -> list[str]:
    """The table lines of one row: every side's passes, and the rate the target needs (also as a
    share of each of ``ceilings``, GFLOP/s by name)."""
    torch.manual_seed(0)
    spatial = (SIZE, SIZE) if dims == 2 else (LENGTH,)
    x = torch.randn(BATCH, CHANNELS, *spatial)
    w = torch.randn(CHANNELS, 1, *(kernel,) * dims) / kernel**dims
    g = torch.randn(BATCH, CHANNELS, *spatial)
    padding = kernel // 2
    direct = F.conv2d if dims == 2 else F.conv1d
    sides: dict[str, dict[str, Callable[[], None]]] = {}
    layouts = {"torch NCHW": (x, g)} if dims == 2 else {"torch": (x, g)}
    if dims == 2:
        cl = torch.channels_last
        layouts["torch CL"] = (x.contiguous(memory_format=cl), g.contiguous(memory_format=cl))
    torch_sides = {
        name: _pass_steps(lambda a, b: direct(a, b, None, 1, padding, 1, CHANNELS), x_in, w, g_in)
        for name, (x_in, g_in) in layouts.items()
    }
    for steps in torch_sides.values():
        steps["total"]()  # warm-up
    # Only torch's faster layout is profiled (its slower one takes seconds per weight gradient).
    torch_side = min(
        torch_sides,
        key=lambda name: median_seconds(torch_sides[name]["total"], 3, warmup=0, clock=_clock()),
    )
    sides[torch_side] = torch_sides[torch_side]
    chosen = choose_route(dims, True, True, kernel)
    for route in ("kernel", "split", "fft"):
        label = f"{route} *" if route == chosen else route
        sides[label] = _pass_steps(
            lambda a, b, route=route: conv_by_route(route, a, b, None, 1, padding, 1, CHANNELS),
            x,
            w,
            g,
        )
    # One warm-up each (numba compiles or loads its cache here), then every step in turn.
    keys = [(side, key) for side, steps in sides.items() for key in steps]
    medians = interleaved_medians([sides[side][key] for side, key in keys], repeats, _clock())
    med = dict(zip(keys, medians, strict=True))
    flops = 2 * BATCH * CHANNELS * int(np.prod(spatial)) * kernel**dims
    target = TARGETS[(dims, kernel)]
    needed = 3 * flops / (med[(torch_side, "total")] / target) / 1e9
    shape = (BATCH, CHANNELS, *spatial)
    lines = [
        f"\n{dims}-D depthwise k={kernel}, input {shape}: {flops / 1e9:.2f} GFLOP per pass; "
        f"target >= {target:g}x of {torch_side} ({med[(torch_side, 'total')] * 1e3:.1f} ms): "
        f"all three passes in {med[(torch_side, 'total')] / target * 1e3:.1f} ms = "
        f"{needed:.0f} GFLOP/s = "
        + ", ".join(f"{100 * needed / rate:.0f}% of {name}" for name, rate in ceilings.items()),
        f"{'side':<12}"
        + "".join(f"{name + ' ms':>16}{'GF/s':>7}" for name in PASSES)
        + f"{'fwd+bwd ms':>12}{'GF/s':>7}{'ratio':>7}",
    ]
    for side in sides:
        fwd = med[(side, "fwd")]
        parts = (fwd, med[(side, "fwd+ig")] - fwd, med[(side, "total")] - med[(side, "fwd+ig")])
        total = med[(side, "total")]
        cells = "".join(
            f"{part * 1e3:>16.2f}{flops / part / 1e9 if part > 0 else float('nan'):>7.1f}"
            for part in parts
        )
        lines.append(
            f"{side:<12}{cells}{total * 1e3:>12.2f}{3 * flops / total / 1e9:>7.1f}"
            f"{med[(torch_side, 'total')] / total:>7.2f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per row")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch's and numba's threads (benchmarks: 2)"
    )
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    print(f"glibc keeps freed memory: {keep_freed_memory()}")
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    peaks = gemm_peak(clock=_clock())
    ceilings = {"GEMM fp32 2048^2": peaks["fp32"], **numba_ceilings()}
    print(f"ceilings ({torch.get_num_threads()} threads, GFLOP/s):")
    for name, rate in ceilings.items():
        print(f"  {name:<20}{rate:>8.0f}")
    for index, (dims, kernel) in enumerate(TARGETS):
        for line in profile_row(dims, kernel, args.repeats, ceilings):
            print(line, flush=True)
        if index == 0:  # numba picks its threading layer at the first parallel kernel call
            print(f"numba threading layer: {numba.threading_layer()}", flush=True)
    print("\n'*': the route ROUTES picks. Passes by difference (see the docstring).")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
