"""Occlusion (feature ablation): each source token removed in turn, the drop in every target's score.

A token is removed by setting its input embedding to zero (captum's ``FeatureAblation`` with a
zero baseline and one feature per position); its position stays. The input with token ``p``
removed serves every target at once (``Problem.scores`` gives all targets' scores of one input),
so an item costs one perturbed input per source position, ``internal_batch_size`` (default 32)
of them per forward pass, instead of one forward per (target, position). A target's score does
not depend on main-stack positions after its own column, so those get zero.

The attribution of token ``p`` to target ``k`` is ``score_k(x) - score_k(x without p)``: one
number per token, returned as (targets, positions, 1) so that Ecco's per-token scores are its
absolute value (normalised) and its signed value (raw).
"""
from __future__ import annotations

import torch

from .problem import Problem
from .registry import MethodOutput, Options, register

_DEFAULT_BATCH = 32


@register("occlusion", "Occlusion (token ablation)")
@torch.no_grad()
def occlusion(problem: Problem, options: Options) -> MethodOutput:
    """Score drop of every target when each source token's embedding is zeroed, all removals of
    the item batched."""
    full = problem.scores(*problem.embeds)[0]  # (targets,)
    slots = [(i, p) for i, e in enumerate(problem.embeds) for p in range(e.shape[1])]
    chunk = options.internal_batch_size or _DEFAULT_BATCH
    drops = []
    for start in range(0, len(slots), chunk):
        part = slots[start : start + chunk]
        batch = [e.expand(len(part), -1, -1).clone() for e in problem.embeds]
        for row, (i, p) in enumerate(part):
            batch[i][row, p] = 0
        drops.append(full - problem.scores(*batch))  # (rows, targets)
    drop = torch.cat(drops)  # (slots, targets)
    out, row = [], 0
    for e in problem.embeds:
        n = e.shape[1]
        out.append(drop[row : row + n].T.unsqueeze(-1).to(e.dtype))  # (targets, positions, 1)
        row += n
    main = problem.stacks().index(problem.kind.main_stack)
    columns = torch.arange(problem.embeds[main].shape[1], device=full.device)
    out[main] = out[main] * (columns[None, :] <= problem.positions[:, None]).unsqueeze(-1)
    return MethodOutput(tuple(out))
