"""Speed with and without the process setting (``runtime.keep_freed_memory``), per issue 18.

The same rows run in three fresh processes:

* ``call``: the script calls ``keep_freed_memory()`` first, as our CLIs and other benchmarks do;
* ``library``: nobody calls it; the accelerated layers apply it on their first call
  (``keep_freed_memory_on_first_use``): what a user's training script or notebook gets;
* ``off``: ``CONVSUITE_KEEP_FREED_MEMORY=0``, glibc's default throughout (what such a user got
  before issue 18; report only).

Targets are judged in the ``library`` column. Rows: the dispatcher's forward at k = 13 (2-D
depthwise, channels-last input) against torch's direct convolution (>= 1.0); 2-D depthwise k = 13
forward+backward against direct (>= 5); 1-D depthwise k = 31 forward+backward against ``conv1d``
(>= 8; its figure moved 2-6x between runs with and without the setting: torch's ``conv1d``
backward allocates large im2col buffers); a ConvNeXt-atto training step with DCLS mixers against
7x7 mixers (within 1.5x: ratio >= 0.67).

The OpenMP wait policy is left as the caller has it and printed ("default" when unset). These
benchmarks used to set ``OMP_WAIT_POLICY=PASSIVE``: that slows torch's own baseline (about 3x on
1-D depthwise k = 31 forward+backward: 134 ms against 42-47 ms under libgomp's default, idle
machine) and so inflated our ratios; our side is as fast or faster under the default, which is
what users get.

    PYTHONPATH=shared python packages/core-ops/benchmarks/bench_allocator.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

MODES = ("call", "library", "off")
ROWS = {  # name -> target ratio (baseline / ours)
    "dispatcher 2d dw k=13 fwd": 1.0,
    "2d dw k=13 fwd+bwd": 5.0,
    "1d dw k=31 fwd+bwd": 8.0,
    "convnext_atto step dcls vs 7x7": 1 / 1.5,
}


def measure() -> dict[str, tuple[float, float]]:
    """In the child process: (ours, baseline) median seconds per row."""
    import torch
    import torch.nn.functional as F
    from convsuite_dev.bench import median_seconds

    from convsuite.core_ops.backbones import create_backbone
    from convsuite.core_ops.layers import large_kernel_conv
    from convsuite.core_ops.runtime import keep_freed_memory

    torch.set_num_threads(2)
    if os.environ["BENCH_ALLOCATOR_MODE"] == "call":
        keep_freed_memory()
    torch.manual_seed(0)
    x = torch.randn(8, 96, 56, 56).contiguous(memory_format=torch.channels_last)
    w = torch.randn(96, 1, 13, 13) / 13
    grad = torch.randn(8, 96, 56, 56).contiguous(memory_format=torch.channels_last)
    kw = dict(stride=1, padding=6, dilation=1, groups=96)

    def forward(conv):
        with torch.no_grad():
            conv(x, w, None, **kw)

    def train(conv):
        xg, wg = x.detach().requires_grad_(), w.detach().requires_grad_()
        conv(xg, wg, None, **kw).backward(grad)

    x1 = torch.randn(8, 96, 4096)
    w1 = torch.randn(96, 1, 31) / 31
    grad1 = torch.randn(8, 96, 4096)

    def train_1d(conv):
        xg, wg = x1.detach().requires_grad_(), w1.detach().requires_grad_()
        conv(xg, wg, None, 1, 15, 1, 96).backward(grad1)

    results = {
        "dispatcher 2d dw k=13 fwd": (
            median_seconds(lambda: forward(large_kernel_conv), 7),
            median_seconds(lambda: forward(F.conv2d), 7),
        ),
        "2d dw k=13 fwd+bwd": (
            median_seconds(lambda: train(large_kernel_conv), 3),
            median_seconds(lambda: train(F.conv2d), 3),
        ),
        "1d dw k=31 fwd+bwd": (
            median_seconds(lambda: train_1d(large_kernel_conv), 3),
            median_seconds(lambda: train_1d(F.conv1d), 3),
        ),
    }
    images, labels = torch.randn(8, 3, 128, 128), torch.randint(0, 10, (8,))
    steps = {}
    for mixer in ("dcls", "dense"):
        torch.manual_seed(0)
        model = create_backbone("convnext_atto", mixer=mixer, num_classes=10)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

        def step(model=model, optimizer=optimizer):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()

        steps[mixer] = median_seconds(step, 3)
    results["convnext_atto step dcls vs 7x7"] = (steps["dcls"], steps["dense"])
    return results


def main() -> None:
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}")
    ratios: dict[str, dict[str, float]] = {row: {} for row in ROWS}
    for mode in MODES:
        env = {**os.environ, "BENCH_ALLOCATOR_MODE": mode}
        if mode == "off":
            env["CONVSUITE_KEEP_FREED_MEMORY"] = "0"
        else:
            env.pop("CONVSUITE_KEEP_FREED_MEMORY", None)
        done = subprocess.run(
            [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"{mode} run failed:\n{done.stderr}")
        for row, (ours, base) in json.loads(done.stdout.splitlines()[-1]).items():
            ratios[row][mode] = base / ours
    print("\nSpeed with and without the process setting (ratio = baseline / ours; 2 threads)")
    header = f"{'case':<34}" + "".join(f"{m:>10}" for m in MODES) + f"{'target':>8}  ok"
    print(header)
    print("-" * len(header))
    for row, target in ROWS.items():
        ok = "yes" if ratios[row]["library"] >= target else "NO"
        cells = "".join(f"{ratios[row][m]:>10.2f}" for m in MODES)
        print(f"{row:<34}{cells}{'>=' + format(target, '.2g'):>8}  {ok}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(measure()))
    else:
        main()
