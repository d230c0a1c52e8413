"""``lm.trace``: causal tracing / activation patching of a target token's probability after a prompt."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..causal.patching import Corruption, counterfactual_corruption, noise_corruption
from ..causal.trace import Trace
from ..causal.trace import trace as trace_core
from ..checks import as_ints
from ..render import View
from ..tokens import token_pieces
from . import core
from .core import Core


def substring_positions(lm: Core, prompt: str, ids: list[int], piece: str) -> list[int]:
    """Positions of the prompt's tokens whose text overlaps the first occurrence of ``piece`` in
    ``prompt`` (from the tokenizer's character offsets)."""
    if not piece.strip():
        raise ValueError("corrupt is an empty text: give a piece of the prompt's text (e.g. the subject) or positions.")
    start = prompt.find(piece)
    if start < 0:
        raise ValueError(f"corrupt {piece!r} is not in the prompt {prompt!r}: give a piece of the prompt's text or a "
                         "list of token positions.")
    if not getattr(lm.tokenizer, "is_fast", False):
        raise ValueError("Finding the tokens of a piece of text needs a fast tokenizer (character offsets): give the "
                         "corrupted token positions as a list instead.")
    encoding = lm.tokenizer(prompt, add_special_tokens=True, return_offsets_mapping=True)
    if list(encoding["input_ids"]) != ids:
        raise ValueError("The tokenizer's offsets do not match the prompt's tokens: give the corrupted positions as a list.")
    end = start + len(piece)
    found = [i for i, (a, b) in enumerate(encoding["offset_mapping"]) if b > a and a < end and b > start]
    if not found:
        raise ValueError(f"No token of the prompt covers {piece!r}: give the corrupted positions as a list.")
    return found


def _corruption(lm: Core, prompt: str | Sequence[int], ids: list[int], corrupt: str | Sequence[int] | None,
                counterfactual: str | Sequence[int] | None, noise: float) -> Corruption:
    """The corrupted run the user asked for: noise on ``corrupt``'s tokens, or the counterfactual."""
    if counterfactual is not None:
        if corrupt is not None:
            raise ValueError("Give either corrupt (noise on these tokens) or counterfactual (a corrupted prompt), not both.")
        return counterfactual_corruption(ids, core.one_prompt(lm, counterfactual, "trace", "counterfactual"))
    if corrupt is None:
        special = set(lm.tokenizer.all_special_ids)
        positions = [i for i, t in enumerate(ids) if t not in special]
        if not positions:
            raise ValueError("The prompt has only special tokens: there is nothing to corrupt.")
    elif isinstance(corrupt, str):
        if not isinstance(prompt, str):
            raise ValueError("corrupt as text needs the prompt as text: with token ids, give the corrupted positions.")
        positions = substring_positions(lm, prompt, ids, corrupt)
    else:
        positions = as_ints(corrupt, "corrupt")
    return noise_corruption(lm.runner, positions, len(ids), noise)


def trace_result(lm: Core, prompt: str | Sequence[int], target: str | Sequence[int], corrupt: str | Sequence[int] | None,
                 counterfactual: str | Sequence[int] | None, components: Sequence[str], window: int, seeds: int,
                 noise: float, stack: str | None, batch_size: int) -> Trace:
    """The :class:`~ecco.causal.trace.Trace` of ``lm.trace`` (see its docstring): the prompt is the
    encoder's input for an encoder-decoder model, whose decoder reads the target after its start token."""
    core.require_next_token(lm, "causal tracing")
    ids = core.one_prompt(lm, prompt, "trace")
    lm.inputs.check_context(len(ids), "The prompt's tokens")
    target_id = lm.inputs.continuations(target, 1, "target")[0][0]
    corruption = _corruption(lm, prompt, ids, corrupt, counterfactual, noise)
    inputs = (ids, [core.decoder_start_id(lm)]) if lm.kind.encoder_decoder else (ids,)
    return trace_core(lm.runner, inputs, corruption, target_id, len(inputs[-1]) - 1, components, stack, window, seeds,
                      batch_size)


def _as_shown(result: Trace) -> Trace:
    """The trace as the view draws it, by the traced stack's own tokens: a decoder traced behind a
    corrupted encoder has no corrupted position, and its tokens are the same in the corrupted run."""
    if result.stack == result.corrupted_stack:
        return result
    return replace(result, corrupted=[], counterfactual=None if result.counterfactual is None else list(result.token_ids))


def trace(lm: Core, prompt: str | Sequence[int], target: str | Sequence[int], corrupt: str | Sequence[int] | None,
          counterfactual: str | Sequence[int] | None, components: Sequence[str], window: int, seeds: int, noise: float,
          stack: str | None, batch_size: int, printJson: bool) -> View | dict:
    """The view (or its data) of :func:`trace_result`."""
    from ..views.tracing import trace_data, trace_view  # written beside this module; loaded when a trace is shown

    result = _as_shown(trace_result(lm, prompt, target, corrupt, counterfactual, components, window, seeds, noise, stack,
                                    batch_size))
    tokens = token_pieces(lm.tokenizer, result.token_ids)
    alternative = None if result.counterfactual is None else token_pieces(lm.tokenizer, result.counterfactual)
    data = trace_data(result, tokens, token_pieces(lm.tokenizer, [result.target])[0], lm.model_name, alternative)
    return trace_view(data, printJson)
