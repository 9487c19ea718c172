"""The fixed test battery for layers, and the shared "did the model learn?" check.

After kornia's ``BaseTester``: every layer gets the same checks (smoke, non-contiguous input,
float64 gradcheck, dtype/device moves keep working, state-dict round trip). After e3nn's
``assert_equivariant``: invariants are helpers, not copy-pasted test bodies.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn


def _first_tensor(output: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def check_layer(
    make_layer: Callable[[], nn.Module],
    input_shape: tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float32,
    gradcheck: bool = True,
    gradcheck_shape: tuple[int, ...] | None = None,
) -> None:
    """Run the standard battery on a layer built by ``make_layer``.

    Checks: forward is finite; a non-contiguous input gives the same result; float64 gradcheck on a
    small input; ``.to(float64)`` moves every parameter and buffer; the state dict loads into a fresh
    layer and reproduces the output.
    """
    torch.manual_seed(0)
    layer = make_layer().eval()
    x = torch.randn(*input_shape, dtype=dtype)
    y = _first_tensor(layer(x))
    assert torch.isfinite(y).all(), "forward produced non-finite values"

    # Non-contiguous input: same values, different memory layout.
    x_nc = torch.randn(*input_shape[:-1], input_shape[-1] * 2, dtype=dtype)[..., ::2]
    x_nc.copy_(x)
    assert not x_nc.is_contiguous() or x.dim() == 1
    torch.testing.assert_close(_first_tensor(layer(x_nc)), y, rtol=1e-5, atol=1e-5)

    # State dict round trip into a differently initialized layer.
    torch.manual_seed(1)
    fresh = make_layer().eval()
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(_first_tensor(fresh(x)), y, rtol=1e-6, atol=1e-6)

    # Moving to float64 moves every tensor the layer holds (no stale caches left behind).
    moved = copy.deepcopy(layer).to(torch.float64)
    for name, tensor in [*moved.named_parameters(), *moved.named_buffers()]:
        if tensor.is_floating_point():
            assert tensor.dtype == torch.float64, f"{name} did not follow .to(float64)"
    y64 = _first_tensor(moved(x.to(torch.float64)))
    assert y64.dtype == torch.float64

    if gradcheck:
        small = gradcheck_shape or input_shape
        x_small = torch.randn(*small, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda inp: _first_tensor(moved(inp)), (x_small,), eps=1e-6, atol=1e-4
        ), "gradcheck failed"


def assert_gradients_close(
    ours: torch.Tensor,
    reference: torch.Tensor,
    inputs: tuple[torch.Tensor, ...],
    *,
    rtol: float = 0.0,
    atol: float = 1e-10,
    scaled: bool = False,
    nonzero: bool = True,
) -> None:
    """Gradients of ``ours`` and ``reference`` with respect to ``inputs``, for one random output
    gradient (``torch.randn_like(reference)``: seed before calling), have equal shapes and are
    close: ``torch.testing.assert_close`` with ``rtol`` and ``atol``, ``atol`` multiplied by each
    reference gradient's largest magnitude when ``scaled``. With ``nonzero`` (the default) each
    reference gradient must also have a nonzero entry: two all-zero gradients would otherwise
    pass (a path that blocks the gradient compared with another that does)."""
    grad_out = torch.randn_like(reference)
    got = torch.autograd.grad(ours, inputs, grad_out)
    expected = torch.autograd.grad(reference, inputs, grad_out)
    for index, (g_ours, g_ref) in enumerate(zip(got, expected, strict=True)):
        assert g_ours.shape == g_ref.shape, f"gradient {index}: {g_ours.shape} vs {g_ref.shape}"
        if nonzero:
            assert g_ref.abs().max() > 0, f"gradient {index}: the reference gradient is all zero"
        tol = atol * g_ref.abs().max().item() if scaled else atol
        torch.testing.assert_close(
            g_ours, g_ref, rtol=rtol, atol=tol, msg=lambda m, i=index: f"gradient {i}: {m}"
        )


def assert_learns(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int = 20,
    lr: float = 1e-2,
    min_drop: float = 0.5,
) -> tuple[float, float]:
    """Train ``model`` with Adam on ``batches`` and assert the loss fell to ``min_drop`` of its start.

    Returns (initial loss, final loss), both measured in eval mode over all batches.
    """
    batches = list(batches)

    def mean_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(sum(loss_fn(model(x), y) for x, y in batches) / len(batches))

    before = mean_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        for x, y in batches:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
    after = mean_loss()
    assert after < min_drop * before, f"loss did not drop enough: {before:.4g} -> {after:.4g}"
    return before, after


def execute_notebook(path: Path, workdir: Path, timeout: int = 300):
    """Execute a notebook top to bottom in ``workdir`` with the inline backend, as Jupyter does.

    Returns the executed ``nbformat`` notebook (read it with :func:`notebook_text` and
    :func:`assert_figures_shown`). A failing cell (an assert in the notebook included) raises.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=timeout, resources={"metadata": {"path": str(workdir)}}
    ).execute()
    return notebook


def notebook_text(notebook) -> str:
    """Everything the notebook's cells printed (stream and text/plain outputs)."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def assert_figures_shown(notebook) -> int:
    """Every code cell tagged ``figure`` displayed a PNG; returns how many such cells there are.

    Tag the cells that draw (cell metadata ``"tags": ["figure"]``); a figure that a library call
    built but the notebook never displayed (a backend switched to Agg, ``plt.show()`` on a figure
    pyplot does not manage) fails here.
    """
    tagged = [c for c in notebook.cells if "figure" in c.get("metadata", {}).get("tags", [])]
    assert tagged, "no cell is tagged 'figure'"
    for cell in tagged:
        kinds = [kind for out in cell.get("outputs", []) for kind in out.get("data", {})]
        assert "image/png" in kinds, f"cell drew no inline PNG: {cell.source[:80]!r}"
    return len(tagged)


def run_cli(app, args, capsys) -> tuple[int, str, str]:
    """Run typer ``app`` with ``args`` through core-ops' ``run``, as its console script does.

    Returns (exit status, stdout, stderr) of this call (``capsys`` is read before and after).
    """
    import pytest

    from convsuite.core_ops.cli import run

    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        run(app, [str(a) for a in args])
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err
