"""``lm(inputs)``: one captured forward pass, no generation (encoders such as BERT, or any
model over a given text)."""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..capture import shift_left
from ..models.kinds import Kind
from ..output import OutputSeq
from . import core
from .core import Captures, Core


@dataclass
class Pass:
    """One captured forward pass over a batch.

    ``token_ids`` hold each item's tokens (the encoder's, then the decoder's for
    encoder-decoder models), ``lengths`` each item's number of (encoder) input tokens, ``pads``
    its left padding in the input; ``logits`` are the model's as it gave them (None without
    an LM head).
    """

    token_ids: list[list[int]]
    lengths: list[int]
    pads: list[int]
    captures: Captures
    logits: torch.Tensor | None
    segments: list[list[int]] | None


def call(lm: Core, inputs: str | Sequence[str] | Mapping, text_pair: str | Sequence[str] | None) -> OutputSeq:
    """``lm(inputs, text_pair)``: the captures of one forward pass, nothing generated."""
    run = forward_pass(lm, lm.inputs.forward_inputs(inputs, text_pair))
    n = len(run.lengths)
    return core.output(lm, run.token_ids, run.lengths, None, None, [0] * n, run.captures, run.segments)


def forward_pass(lm: Core, encoding: dict[str, torch.Tensor]) -> Pass:
    """Run the model once on ``encoding`` (``input_ids``, ``attention_mask`` and any other model
    inputs; an encoder-decoder model's decoder gets its start token unless given
    ``decoder_input_ids``) and capture what the flags ask for."""
    ids, mask = encoding["input_ids"], encoding["attention_mask"]
    pads = (mask.cumsum(-1) == 0).sum(-1).tolist()
    lengths = mask.sum(-1).tolist()
    device = lm.runner.device
    extra = {k: v.to(device) for k, v in encoding.items() if k not in ("input_ids", "attention_mask")}
    if lm.kind.encoder_decoder and "decoder_input_ids" not in extra:
        extra["decoder_input_ids"] = torch.full((ids.shape[0], 1), core.decoder_start_id(lm), device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0).to(device) if lm.kind is Kind.CAUSAL else None
    with lm.runner.session(eager_attention=lm.flags.attention):
        recorders = [core.recorder(lm, stack) for stack in lm.spec.stacks]
        with contextlib.ExitStack() as stack:
            for recorder in recorders:
                stack.enter_context(recorder)
            out = core.forward(
                lm, input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions, **extra
            )
    hidden_fields, attention_fields = core.output_fields(lm.kind)
    captures = core.captures(
        lm,
        {name: [getattr(out, field)] for name, field in hidden_fields.items()},
        {name: [getattr(out, field)] for name, field in attention_fields.items()},
        recorders,
        pads,
    )
    token_ids = [row[:n].tolist() for row, n in zip(shift_left(ids, pads, [1]), lengths)]
    decoder = extra.get("decoder_input_ids")
    if decoder is not None:
        token_ids = [s + d.tolist() for s, d in zip(token_ids, decoder.cpu())]
    types = extra.get("token_type_ids")
    segments = None if types is None else [row[:n].tolist() for row, n in zip(shift_left(types.cpu(), pads, [1]), lengths)]
    return Pass(token_ids, lengths, pads, captures, getattr(out, "logits", None), segments)
