"""--precision bf16 through core-ops' precision API: close to fp32 on our network and pipeline."""

from __future__ import annotations

import copy

import numpy as np
import torch

from convsuite.core_ops.hub import create_model
from convsuite.core_ops.precision import bf16_layers, inference_mode, prepare_for_inference
from convsuite.cosmo.data import simulate_sky
from convsuite.cosmo.evaluation import score
from convsuite.cosmo.infer import inpaint_nest, prefill, pretrained_network


def test_bf16_network_output_stays_close_to_fp32() -> None:
    """The small preset with random (non-zero) output layers at Nside 32, fp32 vs bf16."""
    torch.manual_seed(0)
    net = create_model("skyrecon", preset="small").eval()
    for conv in net.exit:
        torch.nn.init.normal_(conv.weight, std=0.1)
    sky = simulate_sky(32, 4)
    inputs = [torch.from_numpy(a)[None] for a in (sky.masked, sky.observed)]
    inputs.append(torch.from_numpy(prefill(sky.masked, sky.observed)).float()[None])
    outputs = {}
    for precision in ("fp32", "bf16"):
        model = prepare_for_inference(copy.deepcopy(net), precision)
        with inference_mode(precision):
            outputs[precision] = model(*inputs)[0]
        if precision == "bf16":
            assert bf16_layers(model)  # something was converted
    correction = outputs["fp32"] - inputs[2][0]
    error = (outputs["bf16"] - outputs["fp32"]).abs().max() / correction.abs().max()
    assert 0 < error < 5e-2


def test_bf16_pipeline_scores_within_one_percent() -> None:
    sky = simulate_sky(64, 6)
    mse = {}
    for precision in ("fp32", "bf16"):
        net = pretrained_network(64, precision=precision)
        filled = inpaint_nest(net, sky.masked, sky.observed, precision=precision)
        np.testing.assert_array_equal(filled[sky.observed], sky.masked[sky.observed])
        mse[precision] = score(filled, sky)["mse"]
    assert abs(mse["bf16"] / mse["fp32"] - 1) < 0.01
