"""``lm.attribute``: explain a given continuation, teacher-forced (no sampling), optionally
against a foil (contrastive)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..attribution import Target, check_methods, explain, generated_targets
from ..capture import shift_left
from ..layout import Layout
from ..output import OutputSeq
from . import core
from .core import Core
from .forward import forward_pass
from .inputs import attribution_options

SCORES = ("prob", "logprob", "logit")


@dataclass
class _Plan:
    """The teacher-forced tokens of one attribute() item and the foil token, if contrastive."""

    tokens: list[int]
    foil: int | None


def attribute(
    lm: Core,
    prompt: str | Sequence[str],
    target: str | Sequence[str],
    foil: str | Sequence[str] | None,
    attribution: Sequence[str] | str,
    score: str,
    options: Mapping,
) -> OutputSeq:
    """``lm.attribute``: the captures of prompt + target, and the attributions of each target
    token (of the first token where target and foil differ, with a foil)."""
    if not lm.kind.generates:
        raise ValueError(
            f"{lm.model_name} is an encoder without a generative head; attributing a continuation "
            "needs a causal or encoder-decoder model."
        )
    if score not in SCORES:
        raise ValueError(f"score must be 'prob', 'logprob' or 'logit', got {score!r}.")
    methods = check_methods(attribution)
    settings = attribution_options(options, lm.spec)
    prompts = lm.inputs.encode(prompt)
    targets = lm.inputs.continuations(target, len(prompts), "target")
    foils = None if foil is None else lm.inputs.continuations(foil, len(prompts), "foil")
    plans = [_plan(t, None if foils is None else foils[i]) for i, t in enumerate(targets)]
    if lm.kind.encoder_decoder:
        encoder = lm.inputs.pad(prompts, left=False)
        decoder = lm.inputs.pad([[core.decoder_start_id(lm)] + p.tokens for p in plans], left=False)
        encoding = {
            "input_ids": encoder.ids.cpu(),
            "attention_mask": encoder.mask.cpu(),
            "decoder_input_ids": decoder.ids.cpu(),
        }
    else:
        batch = lm.inputs.pad([p + plan.tokens for p, plan in zip(prompts, plans)], left=False)
        encoding = {"input_ids": batch.ids.cpu(), "attention_mask": batch.mask.cpu()}
    lm.inputs.check_context(encoding["input_ids"].shape[1], "Prompt and target")
    output = _teacher_forced(lm, encoding, [len(p) for p in prompts])
    sequences = []
    for seq, plan in zip(output.sequences, plans):
        every = generated_targets(lm.kind, seq.token_ids, seq.n_input_tokens)
        chosen = Target(every.positions, every.token_ids)
        if plan.foil is not None:
            chosen = Target(every.positions[-1:], every.token_ids[-1:], [plan.foil])
        sequences.append((seq.token_ids, seq.n_input_tokens, chosen))
    results = explain(lm.runner, sequences, methods, score=score, options=settings, progress=lm.flags.verbose)
    for result in results.values():
        if result.foil_ids:
            result.foil_text = [lm.tokenizer.decode(ids) for ids in result.foil_ids]
    output.attributions.update(results)
    return output


def _teacher_forced(lm: Core, encoding: dict[str, torch.Tensor], n_input: list[int]) -> OutputSeq:
    """One captured forward pass in which the tokens after each item's first ``n_input`` are
    its continuation: their probabilities and entropies are kept as for generated tokens."""
    run = forward_pass(lm, encoding)
    logits = run.logits.detach().cpu()
    if not lm.kind.encoder_decoder:
        logits = shift_left(logits, run.pads, [1])
    layouts = [Layout(lm.kind, len(ids), n) for ids, n in zip(run.token_ids, n_input)]
    n_new = [len(layout.generated) for layout in layouts]
    width = max(n_new)
    generated = torch.full((len(layouts), width), lm.inputs.pad_id(), dtype=torch.long)
    step_logits = torch.zeros((len(layouts), width, logits.shape[-1]))
    for i, (ids, layout, n) in enumerate(zip(run.token_ids, layouts, n_new)):
        first = layout.predicting_column(layout.first_generated)
        generated[i, :n] = torch.tensor(ids[layout.first_generated :])
        step_logits[i, :n] = logits[i, first : first + n]
    return core.output(lm, run.token_ids, n_input, generated, step_logits, n_new, run.captures)


def _plan(target: list[int], foil: list[int] | None) -> _Plan:
    """Contrastive: teacher-force the common prefix, explain the first differing token."""
    if foil is None:
        return _Plan(target, None)
    differ = next((i for i, (t, f) in enumerate(zip(target, foil)) if t != f), None)
    if differ is None:
        raise ValueError(
            "The foil equals the target (or one is a prefix of the other): a contrastive explanation "
            "needs a foil that differs from the target in some token."
        )
    return _Plan(target[: differ + 1], foil[differ])
