"""``lm.logit_attribution``: direct logit attribution of a target token after a prompt."""
from __future__ import annotations

from ..causal import logit_attribution as decompose
from ..checks import as_int
from ..layout import Layout
from ..render import View
from ..tokens import token_pieces
from ..views.causal import logit_attribution_data, logit_attribution_view
from . import core
from .core import Core


def _first(lm: Core, text: str | list[int], what: str) -> int:
    """The first token of a target / foil (text without special tokens, or token ids)."""
    return lm.inputs.continuations(text, 1, what)[0][0]


def logit_attribution(lm: Core, prompt: str | list[int], target: str | list[int], foil: str | list[int] | None,
                      top_neurons: int, printJson: bool) -> View | dict:
    """The view (or its data) of the direct logit attribution of ``target``'s first token after
    ``prompt`` (minus ``foil``'s first token), at the column that predicts it."""
    core.require_next_token(lm, "direct logit attribution")
    top_neurons = as_int(top_neurons, "top_neurons", 0)
    ids = core.one_prompt(lm, prompt, "logit_attribution")
    target_id = _first(lm, target, "target")
    foil_id = None if foil is None else _first(lm, foil, "foil")
    if foil_id == target_id:
        raise ValueError("The foil's first token equals the target's first token: the logit difference would be 0. "
                         "Give a foil that starts with another token.")
    start = [core.decoder_start_id(lm)] if lm.kind.encoder_decoder else []
    tokens = ids + start + [target_id]  # the target is teacher-forced after the prompt
    layout = Layout(lm.kind, len(tokens), len(ids))
    lm.inputs.check_context(len(tokens), "Prompt and target")
    result = decompose(lm.runner, tokens, layout, layout.first_generated, target_id, foil_id)
    text = token_pieces(lm.tokenizer, [i for i in (target_id, foil_id) if i is not None])
    data = logit_attribution_data(result, token_pieces(lm.tokenizer, ids), text[0], text[1] if foil_id is not None else None,
                                  lm.model_name, top_neurons)
    return logit_attribution_view(data, printJson)
