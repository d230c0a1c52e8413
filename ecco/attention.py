"""Attention data: packed weights, and queries/keys as the model uses them.

Weights come from the capture (``attention[set]`` of a record). The neuron view also needs each head's
query and key vectors *where the model uses them* (after rotary embeddings; grouped key/value
heads repeated to match the query heads): one extra forward pass runs with an attention
function registered in transformers' ``AttentionInterface`` that records its inputs and then
calls the model's own eager attention, so nothing about the computation changes.
"""
from __future__ import annotations

import base64
import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .checks import as_int
from .layout import Layout
from .models.spec import ModelSpec
from .runner import Runner

SET_LABELS = {"decoder": "decoder self-attention", "encoder": "encoder self-attention", "cross": "cross-attention"}
_CAPTURE = "ecco_qk_capture"


def set_tokens(layout: Layout, tokens: Sequence[str], name: str) -> tuple[list[dict], list[dict]]:
    """(query tokens, key tokens) of an attention set, as view entries with token-list positions."""
    queries, keys = layout.attention_spans(name)
    return [{"text": tokens[p], "position": p} for p in queries], [{"text": tokens[p], "position": p} for p in keys]


def packed_set(weights: torch.Tensor, name: str, queries: list[dict], keys: list[dict]) -> dict:
    """One attention set for the views, from its weights (layers, heads, >=queries, >=keys):
    weights as base64 uint8 (value / 255), C order."""
    weights = weights[:, :, : len(queries), : len(keys)].float()
    packed = torch.round(weights.clamp(0, 1) * 255).to(torch.uint8).numpy()
    return {
        "name": name,
        "label": SET_LABELS[name],
        "queries": queries,
        "keys": keys,
        "layers": list(range(weights.shape[0])),
        "heads": int(weights.shape[1]),
        "shape": list(packed.shape),
        "weights": base64.b64encode(packed.tobytes()).decode("ascii"),
    }


def check_layer_head(
    weights: torch.Tensor, name: str, layer: int | None, head: int | None
) -> tuple[int | None, int | None]:
    """``layer`` / ``head`` (None: not given) checked against an attention set's weights (batch,
    layers, heads, ...), as Python ints."""
    checked = []
    for label, value, count in (("layer", layer, weights.shape[1]), ("head", head, weights.shape[2])):
        wrong = f"{label}={value} is out of range: the {name} attention has {label}s 0..{count - 1}."
        checked.append(None if value is None else as_int(value, label, 0, count - 1, wrong))
    return checked[0], checked[1]


# --------------------------------------------------------- queries and keys
@dataclass
class QueryKey:
    """What one attention call used, for the first batch item: queries (heads, Q, d), keys
    (heads, K, d) with grouped key/value heads repeated, the scale, and the additive term (mask
    plus any position bias) (heads, Q, K)."""

    query: torch.Tensor
    key: torch.Tensor
    scale: float
    bias: torch.Tensor | None


def _attention_sites(spec: ModelSpec) -> dict[int, tuple[str, int]]:
    """id(attention module) -> (set name, layer), from the blocks' module names."""
    sites = {}
    for stack_name, stack in spec.stacks.items():
        for layer, block in enumerate(stack.blocks):
            for name, module in block.named_modules():
                cross = any(part in name for part in spec.family.cross_attention)
                sites[id(module)] = ("cross" if cross else stack_name, layer)
    return sites


@contextlib.contextmanager
def recording_attention(model: nn.Module, spec: ModelSpec, want: tuple[str, int]) -> Iterator[list[QueryKey]]:
    """Within the block, the model's attention records the queries and keys of ``want``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    sites = _attention_sites(spec)
    records: list[QueryKey] = []

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if eager is None:
            raise ValueError(f"{type(module).__name__} has no eager attention function ecco can record.")
        if sites.get(id(module)) == want:
            repeat = query.shape[1] // key.shape[1]
            scale = scaling if scaling is not None else query.shape[-1] ** -0.5
            bias = None
            for term in (attention_mask, kwargs.get("position_bias")):
                if term is not None:
                    term = term[..., : key.shape[-2]].float()
                    bias = term if bias is None else bias + term
            records.append(QueryKey(
                query=query[0].detach().float().cpu(),
                key=key[0].detach().float().repeat_interleave(repeat, dim=0).cpu(),
                scale=float(scale),
                bias=None if bias is None else bias[0].expand(query.shape[1], -1, -1).detach().cpu(),
            ))
        return eager(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)

    AttentionInterface.register(_CAPTURE, attention)
    AttentionMaskInterface.register(_CAPTURE, eager_mask)
    before = model.config._attn_implementation
    model.set_attn_implementation(_CAPTURE)
    try:
        yield records
    finally:
        model.set_attn_implementation(before)


def queries_keys(runner: Runner, inputs: dict[str, torch.Tensor], want: tuple[str, int]) -> QueryKey:
    """Rerun the model on ``inputs`` (in an eval-mode session) and return what the attention of
    ``want`` = (set name, layer) used."""
    with runner.session(eager_attention=True), recording_attention(runner.model, runner.spec, want) as records:
        runner.forward(**inputs, use_cache=False)
    if not records:
        raise ValueError(f"Layer {want[1]} of the {want[0]} attention was not called; cannot show its queries and keys.")
    return records[0]
