"""The intervention diff view: what interventions (ablations, steering) changed in a generation.

The interventions, the prompt (muted), then the clean continuation (generated without the
interventions) over the intervened one, aligned by ``difflib``'s opcodes: the tokens of replace,
delete and insert ops are highlighted (clean tokens that went are struck through, intervened tokens
that came are marked). Under each intervened token a small signed bar shows its probability change:
the intervened model's probability of it minus the clean model's after the same prefix (blue up,
orange down). A summary line says how many tokens changed and where the first change is.

The numbers come from :class:`ecco.causal.diff.InterventionDiff`; this module lays them out as the
view's data (the schema at the top of ``ecco/js/intervention_diff.js``). The interactive view, its
static rendering and :func:`intervention_diff_figure` show the same numbers.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..causal.diff import InterventionDiff
from ..record import Record
from ..render import View, plots
from ..render.static.html import display_text, finite
from ..render.static.interventions import changed_positions, summary
from ..tokens import token_pieces

__all__ = ["intervention_diff", "intervention_diff_data", "intervention_diff_view", "intervention_diff_figure"]

VIEW = "intervention_diff"


def _check(name: str, texts: Sequence[str], ids: Sequence[int], *probs: np.ndarray) -> None:
    if len(texts) != len(ids):
        raise ValueError(f"{name} has {len(texts)} token texts but the diff has {len(ids)} {name} tokens: give one text "
                         "per token.")
    for p in probs:
        if np.shape(p) != (len(ids),):
            raise ValueError(f"The diff's {name} probabilities have shape {np.shape(p)}, not one per token ({len(ids)},).")


def intervention_diff_data(diff: InterventionDiff, prompt: Sequence[str], clean: Sequence[str],
                           intervened: Sequence[str], model: str) -> dict[str, Any]:
    """The view's data for ``diff``: ``prompt``, ``clean`` and ``intervened`` the token texts of
    the prompt and of the two continuations. Raises ValueError when the texts do not fit the diff."""
    _check("prompt", prompt, diff.prompt_ids)
    _check("clean", clean, diff.clean_ids, diff.clean_probs)
    _check("intervened", intervened, diff.intervened_ids, diff.intervened_probs, diff.intervened_clean_probs)
    ops = [[str(tag), int(i1), int(i2), int(j1), int(j2)] for tag, i1, i2, j1, j2 in diff.ops()]
    changes = diff.changes
    count = len(diff.descriptions)
    return {
        "title": f"Generation with {count} intervention{'' if count == 1 else 's'}: clean and intervened continuations",
        "model": model, "prompt": [str(t) for t in prompt], "interventions": [str(d) for d in diff.descriptions],
        "clean": [{"id": int(i), "text": str(t), "prob": finite(float(p))}
                  for i, t, p in zip(diff.clean_ids, clean, diff.clean_probs)],
        "intervened": [{"id": int(i), "text": str(t), "prob": finite(float(p)), "clean_prob": finite(float(q)),
                        "change": finite(float(c))}
                       for i, t, p, q, c in zip(diff.intervened_ids, intervened, diff.intervened_probs,
                                                diff.intervened_clean_probs, changes)],
        "ops": ops,
        "changed": sum(j2 - j1 for tag, _, _, j1, j2 in ops if tag != "equal"),
    }


def intervention_diff_view(data: dict[str, Any], printJson: bool = False) -> View | dict:
    """The view of ``data`` (from :func:`intervention_diff_data`), or the dict with ``printJson``."""
    return data if printJson else View(VIEW, data)


def intervention_diff_figure(data: dict[str, Any]):
    """A matplotlib figure of each intervened token's probability change (intervened − clean after
    the same prefix), the changed tokens' bars outlined and their labels bold, the summary line
    ('k of n tokens changed; ...') as its title."""
    changed = changed_positions(data["ops"])[1]
    tokens = data["intervened"]
    return plots.intervention_diff_figure([display_text(t["text"]) for t in tokens], [t["change"] for t in tokens],
                                          [j in changed for j in range(len(tokens))], summary(data))


def intervention_diff(record: Record, sequence: int = 0, printJson: bool = False) -> View | dict:
    """See :meth:`ecco.output.OutputSeq.intervention_diff`: the view of one sequence's diff, its
    token texts read with the record's tokenizer."""
    if not record.intervention_diffs:
        raise ValueError("This output has no interventions: make it with lm.generate(prompt, interventions=[...]).")
    if record.link is None:
        raise ValueError("The diff view reads token texts with the tokenizer: load the output with "
                         "ecco.load(path, lm=lm).")
    diff = record.intervention_diffs[record.sequence_index(sequence)]
    tokenizer = record.link.tokenizer
    prompt = token_pieces(tokenizer, diff.prompt_ids)
    clean, intervened = (token_pieces(tokenizer, diff.prompt_ids + ids)[len(prompt) :]
                         for ids in (diff.clean_ids, diff.intervened_ids))
    return intervention_diff_view(intervention_diff_data(diff, prompt, clean, intervened, record.model_name), printJson)
