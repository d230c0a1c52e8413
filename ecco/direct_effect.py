"""A neuron's direct effect on the output: the tokens its output weight pushes up and down.

An FFN neuron adds ``activation * w`` to the residual stream, ``w`` being its column of the FFN
output projection. Read through the model's final norm and LM head (the logit lens's head), the
direction ``w`` raises some tokens' logits and lowers others'. The effect is
``head(norm(w)) - head(norm(0))``: the norm's per-dimension scale (and, for LayerNorm, its
centring) is applied as the model does, but its division by the size of the whole residual
stream is not — that depends on the other components of the stream, so only the ranking and the
relative sizes of the effects are meaningful. Attention and later layers are ignored (that is
what "direct" means).
"""
from __future__ import annotations

import torch
from torch import nn

from .lens import LensHead
from .models.spec import ModelSpec


def output_direction(spec: ModelSpec, stack: str, layer: int, neuron: int) -> torch.Tensor:
    """The residual-stream direction neuron ``neuron`` of ``layer`` writes: its column of the FFN
    output projection (hidden,), whatever the projection's weight layout (``nn.Linear`` or GPT-2's
    ``Conv1D``)."""
    module = spec.stacks[stack].ffn_out[layer]
    weight = module.weight
    if isinstance(module, nn.Linear):
        n_neurons = module.in_features
        column = weight[:, neuron] if 0 <= neuron < n_neurons else None
    else:  # Conv1D: weight is (in = neurons, out = hidden)
        n_neurons = weight.shape[0]
        column = weight[neuron] if 0 <= neuron < n_neurons else None
    if column is None:
        raise ValueError(f"neuron={neuron} is out of range: layer {layer} has {n_neurons} neurons (0..{n_neurons - 1}).")
    return column.detach()


@torch.no_grad()
def direct_effect(head: LensHead, direction: torch.Tensor) -> torch.Tensor:
    """Logit change per vocabulary token (vocab,) of adding ``direction`` to the final residual
    stream, through the final norm and LM head (see the module docstring for what is approximated)."""
    stacked = torch.stack([direction, torch.zeros_like(direction)])
    logits = head(stacked, final=False)
    return (logits[0] - logits[1]).cpu()


def top_effects(effect: torch.Tensor, k: int) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The ``k`` tokens pushed up most and the ``k`` pushed down most, as (token id, logit change)."""
    up = torch.topk(effect, k)
    down = torch.topk(-effect, k)
    return ([(int(i), float(v)) for v, i in zip(up.values, up.indices)],
            [(int(i), -float(v)) for v, i in zip(down.values, down.indices)])
