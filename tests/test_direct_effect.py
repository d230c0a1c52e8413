"""A neuron's direct effect on the logits, against the explicit computation through the model's
own modules (GPT-2's Conv1D and a Llama's nn.Linear output projections)."""
from __future__ import annotations

import pytest
import torch

import ecco
from ecco.direct_effect import direct_effect, output_direction, top_effects
from ecco.lens import LensHead
from tests import tiny


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_direct_effect_is_the_output_weight_through_norm_and_head(arch):
    lm = ecco.from_model(tiny.model(arch), tiny.tokenizer(), verbose=False)
    model = lm.model
    head = LensHead.from_model(model, lm.spec)
    layer, neuron = 1, 17
    if arch == "gpt2":
        w = model.transformer.h[layer].mlp.c_proj.weight[neuron]  # Conv1D: (neurons, hidden)
        norm = model.transformer.ln_f
    else:
        w = model.model.layers[layer].mlp.down_proj.weight[:, neuron]  # Linear: (hidden, neurons)
        norm = model.model.norm
    with torch.no_grad():
        expected = model.lm_head(norm(w[None]))[0] - model.lm_head(norm(torch.zeros_like(w)[None]))[0]
    direction = output_direction(lm.spec, "decoder", layer, neuron)
    assert torch.equal(direction, w.detach())
    effect = direct_effect(head, direction)
    torch.testing.assert_close(effect, expected, rtol=1e-5, atol=1e-6)
    up, down = top_effects(effect, 5)
    assert [i for i, _ in up] == torch.argsort(expected, descending=True)[:5].tolist()
    assert [i for i, _ in down] == torch.argsort(expected)[:5].tolist()
    with pytest.raises(ValueError, match="out of range"):
        output_direction(lm.spec, "decoder", layer, 10_000)
