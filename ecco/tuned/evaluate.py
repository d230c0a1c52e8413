"""How well a lens reads each layer, on held-out text: per layer, the mean KL from the model's
final distribution to the layer's, and the mean cross-entropy of the layer's distribution
against the token that actually comes next; logit lens and trained lens side by side.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from ..lens import LensHead
from ..progress import progress_bar
from .data import HiddenBatch
from .lens import TunedLens
from .train import Final


@dataclass
class LensEvaluation:
    """Per layer (0..L-1; the last is the model's own output): mean KL(final || layer) over
    ``n_tokens`` tokens and mean cross-entropy against the next token over the ``n_next`` of
    them whose next token is known, in nats, for the logit lens and the trained lens."""

    layers: list[int]
    logit_kl: np.ndarray
    tuned_kl: np.ndarray
    logit_ce: np.ndarray
    tuned_ce: np.ndarray
    n_tokens: int
    n_next: int
    model_name: str | None = None
    part: str = "all"  # which documents of the source: 'held_out' (the lens's own split) or 'all'


@torch.no_grad()
def evaluate(head: LensHead, lens: TunedLens, batches: Iterable[HiddenBatch], total: int | None = None,
             progress: bool = True, part: str = "all") -> LensEvaluation:
    """Per-layer KL and cross-entropy of the logit lens and of ``lens`` over ``batches``."""
    n_layers = lens.n_layers
    sums = np.zeros((4, n_layers))  # logit KL, tuned KL, logit CE, tuned CE
    n_tokens = n_next = 0
    bar = progress_bar(total=total, unit="tok", desc="ecco lens evaluation", disable=not progress)
    try:
        for batch in batches:
            hidden = batch.hidden.to(head.device)
            known = batch.next_ids >= 0
            targets = batch.next_ids[known].to(head.device)
            final_logits = head(hidden[-1], final=True)
            final = Final.of(final_logits)

            def cross_entropy(logits: torch.Tensor, lse: torch.Tensor) -> float:
                chosen = logits[known].gather(-1, targets[:, None])[:, 0]
                return float((lse[known] - chosen).double().sum())

            sums[2:, -1] += cross_entropy(final_logits, torch.logsumexp(final_logits, dim=-1))  # the model's own: both
            for which, states in enumerate((hidden[:-1], lens.translate(hidden[:-1]))):
                for layer in range(n_layers - 1):  # the last layer's KL to the final distribution is 0
                    logits = head(states[layer], final=False)
                    lse = torch.logsumexp(logits, dim=-1)
                    sums[which, layer] += float(final.kl(logits, lse).double().sum())
                    sums[2 + which, layer] += cross_entropy(logits, lse)
            n_tokens += batch.n_tokens
            n_next += int(known.sum())
            bar.update(batch.n_tokens)
    finally:
        bar.close()
    if not n_tokens:
        raise ValueError("There is no text to evaluate on: the source is empty, or it is the lens's training source "
                         "and holds no held-out documents (train with held_out > 0).")
    means = sums[:2] / n_tokens
    ce = sums[2:] / n_next if n_next else np.full((2, n_layers), np.nan)
    return LensEvaluation(list(range(n_layers)), means[0], means[1], ce[0], ce[1], n_tokens, n_next,
                          lens.info.model_name, part)
