"""Perturbed inputs for the faithfulness scores (:mod:`.faithfulness`) and their evaluation.

A :class:`Row` is one perturbed copy of a problem's input, made to be read at one target:
per stack, a weight per position (hard removal) or per embedding element (the soft
perturbations) mixing the original embedding ``x`` and the removal embedding ``r``:
``x' = w * x + (1 - w) * r`` (``r`` is 0 for ``removal='zero'``; with ``w`` exactly 1 or 0 the
original or the removal embedding comes out exactly). Positions are never deleted, so every
row has the problem's shape and any rows can share one forward pass.

``evaluate_batched`` sends the rows through ``problem.scores`` ``batch_size`` at a time and
reads each row's own target column; ``evaluate_loop`` is the plain reference, one forward pass
per row. Both see the same inputs, so they agree up to the model's batch-size rounding.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..layout import Layout
from .problem import Problem

REMOVALS = ("zero", "replace")
# An attention-mask removal is not offered: ``Runner.logits_at`` takes input embeddings only,
# and masking a position out of attention would need a per-row attention mask threaded through
# the runner for every architecture (encoder-decoder cross-attention included), while the
# position ids must stay those of the full input. Zero and replacement embeddings keep the
# positions and the batch shape without touching the runner.


@dataclass
class Row:
    """One perturbed input, read at column ``target``. ``weights`` per stack: (positions,) for a
    per-position mix or (positions, hidden) for a per-element mix; 1 keeps the original."""

    target: int
    weights: tuple[np.ndarray, ...]


def check_removal(removal: str) -> None:
    """A clear error for a removal mode that is not one of :data:`REMOVALS`."""
    if removal not in REMOVALS:
        raise ValueError(f"removal must be one of {', '.join(map(repr, REMOVALS))}, got {removal!r}.")


def neutral_id(tokenizer: object) -> int:
    """The token a removed token becomes with ``removal='replace'``: the tokenizer's pad, else eos, else unk."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if token_id is not None:
            return int(token_id)
    raise ValueError("removal='replace' needs a neutral token (pad, eos or unk) and this tokenizer has none; "
                     "use removal='zero'.")


def token_removal(problem: Problem, layout: Layout, token_ids: Sequence[int], tokenizer: object,
                  removal: str) -> tuple[list[np.ndarray], torch.Tensor | None]:
    """How a tokenized item's tokens are removed: per stack, True for its special tokens (never
    removed, not counted as sources), and for ``removal='replace'`` the neutral token's input
    embedding (None for ``'zero'``)."""
    special_ids = set(tokenizer.all_special_ids)
    special = [np.array([t in special_ids for t in token_ids[layout.span(stack).start :][: int(e.shape[1])]])
               for stack, e in zip(layout.stacks, problem.embeds)]
    replacement = problem.runner.embed([neutral_id(tokenizer)])[0, 0] if removal == "replace" else None
    return special, replacement


def removal_embeds(
    problem: Problem, removal: str, replacement: torch.Tensor | Sequence[torch.Tensor] | None
) -> tuple[torch.Tensor, ...]:
    """Per stack, the (1, 1, hidden) embedding a removed token takes."""
    check_removal(removal)
    if removal == "zero":
        if replacement is not None:
            raise ValueError("replacement= is only used with removal='replace' (removal='zero' uses the zero embedding).")
        return tuple(torch.zeros_like(x[:, :1]) for x in problem.embeds)
    if replacement is None:
        raise ValueError(
            "removal='replace' needs replacement=: the input embedding of a neutral token (e.g. the "
            "tokenizer's pad, eos or unk token, runner.embed([token_id]))."
        )
    parts = [replacement] * len(problem.embeds) if isinstance(replacement, torch.Tensor) else list(replacement)
    if len(parts) != len(problem.embeds):
        raise ValueError(f"replacement needs one embedding per input stack ({len(problem.embeds)}), got {len(parts)}.")
    out = []
    for part, x in zip(parts, problem.embeds):
        part = torch.as_tensor(part)
        if part.numel() != x.shape[-1]:
            raise ValueError(
                f"replacement must be one embedding of size {x.shape[-1]} (hidden), got shape {tuple(part.shape)}."
            )
        out.append(part.detach().reshape(1, 1, -1).to(device=x.device, dtype=x.dtype))
    return tuple(out)


def perturbed(problem: Problem, rows: Sequence[Row], removed: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The inputs of ``rows``, per stack (len(rows), positions, hidden)."""
    out = []
    for stack, (x, r) in enumerate(zip(problem.embeds, removed)):
        weights = [row.weights[stack] for row in rows]
        width = x.shape[-1] if any(w.ndim == 2 for w in weights) else 1
        w = np.stack([np.broadcast_to(w.reshape(w.shape[0], -1), (w.shape[0], width)) for w in weights])
        w = torch.from_numpy(w).to(device=x.device, dtype=x.dtype)
        out.append(w * x + (1 - w) * r)
    return tuple(out)


def _read(problem: Problem, rows: Sequence[Row], removed: Sequence[torch.Tensor]) -> np.ndarray:
    scores = problem.scores(*perturbed(problem, rows, removed))
    index = torch.tensor([row.target for row in rows], device=scores.device)
    return scores.gather(1, index[:, None])[:, 0].double().cpu().numpy()


def evaluate_batched(problem: Problem, rows: Sequence[Row], removed: Sequence[torch.Tensor], batch_size: int) -> np.ndarray:
    """Each row's score at its target, ``batch_size`` rows per forward pass."""
    parts = [_read(problem, rows[i : i + batch_size], removed) for i in range(0, len(rows), batch_size)]
    return np.concatenate(parts) if parts else np.zeros(0)


def evaluate_loop(problem: Problem, rows: Sequence[Row], removed: Sequence[torch.Tensor], batch_size: int = 1) -> np.ndarray:
    """The reference: one forward pass per row (``batch_size`` is ignored)."""
    return np.array([_read(problem, [row], removed)[0] for row in rows], dtype=np.float64)
