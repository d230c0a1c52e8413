"""Attention data for the views: packed weights, and queries/keys as the model uses them.

Weights come from the capture (``output.attention``). The neuron view also needs each head's
query and key vectors *where the model uses them* (after rotary embeddings; grouped key/value
heads repeated to match the query heads): one extra forward pass runs with an attention
function registered in transformers' ``AttentionInterface`` that records its inputs and then
calls the model's own eager attention, so nothing about the computation changes.
"""
from __future__ import annotations

import base64
import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .models.spec import ModelSpec

if TYPE_CHECKING:
    from .output import OutputSeq

SET_LABELS = {"decoder": "decoder self-attention", "encoder": "encoder self-attention", "cross": "cross-attention"}
_CAPTURE = "ecco_qk_capture"


def check_attention(output: OutputSeq, name: str | None = None) -> str:
    """The attention set to show (the main one by default), checked."""
    if not output.attention:
        raise ValueError(
            "This output has no attention weights: create the LM with attention=True, e.g. "
            "ecco.from_pretrained(name, attention=True)."
        )
    name = name or ("decoder" if "decoder" in output.attention else "encoder")
    if name not in output.attention:
        raise ValueError(f"No {name!r} attention in this output; available: {', '.join(output.attention)}.")
    return name


def set_tokens(output: OutputSeq, name: str, sequence: int) -> tuple[list[dict], list[dict]]:
    """(query tokens, key tokens) of an attention set, as view entries with global positions."""
    seq = output.check_sequence(sequence)
    entries = [{"text": t, "position": i} for i, t in enumerate(seq.tokens)]
    if output.kind != "enc-dec":
        return entries, entries
    encoder, decoder = entries[: seq.n_input_tokens], entries[seq.n_input_tokens :]
    return {"encoder": (encoder, encoder), "decoder": (decoder, decoder), "cross": (decoder, encoder)}[name]


def packed_set(output: OutputSeq, name: str, sequence: int) -> dict:
    """One attention set for the views: weights as base64 uint8 (value / 255), C order."""
    queries, keys = set_tokens(output, name, sequence)
    weights = output.attention[name][sequence, :, :, : len(queries), : len(keys)].float()
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


def check_layer_head(output: OutputSeq, name: str, layer: int | None, head: int | None) -> None:
    weights = output.attention[name]
    for label, value, count in (("layer", layer, weights.shape[1]), ("head", head, weights.shape[2])):
        if value is not None and (not isinstance(value, int) or not 0 <= value < count):
            raise ValueError(f"{label}={value!r} is out of range: the {name} attention has {label}s 0..{count - 1}.")


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


def neuron_data(output: OutputSeq, name: str, layer: int, head: int, sequence: int, selected: int) -> dict:
    """The neuron view's data: queries, keys, scale, bias and weights of one head."""
    link = output.link
    if link is None or link.model is None:
        raise ValueError("The neuron view reruns the model: use an output of this session's LM or ecco.load(path, lm=lm).")
    seq = output.check_sequence(sequence)
    stack = "decoder" if name in ("decoder", "cross") else "encoder"
    if output.kind == "causal":
        stack = "decoder"
    ids = torch.tensor([seq.token_ids], device=next(link.model.parameters()).device)
    inputs = {"input_ids": ids}
    if seq.token_type_ids is not None:
        inputs["token_type_ids"] = torch.tensor([seq.token_type_ids], device=ids.device)
    if output.kind == "enc-dec":
        inputs = {"input_ids": ids[:, : seq.n_input_tokens], "decoder_input_ids": ids[:, seq.n_input_tokens :]}
    with recording_attention(link.model, link.spec, (name, layer)) as records, torch.no_grad():
        link.model(**inputs, use_cache=False)
    if not records:
        raise ValueError(f"Layer {layer} of the {name} attention was not called; cannot show its queries and keys.")
    record = records[0]
    queries, keys = set_tokens(output, name, sequence)
    if not 0 <= selected < len(queries):
        raise ValueError(f"selected={selected} is out of range: 0..{len(queries) - 1}.")
    bias = None if record.bias is None else record.bias[head]
    weights = output.attention[name][sequence, layer, head, : len(queries), : len(keys)].float()
    return {
        "queries": queries,
        "keys": keys,
        "layer": layer,
        "head": head,
        "set": name,
        "stack": stack,
        "query": record.query[head].tolist(),
        "key": record.key[head].tolist(),
        "scale": record.scale,
        "bias": None if bias is None else [[None if not np.isfinite(v) or v < -1e30 else v for v in row]
                                           for row in bias.tolist()],
        "weights": weights.tolist(),
        "selected": selected,
        "title": output.model_name,
    }
