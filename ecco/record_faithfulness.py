"""Faithfulness scores of a record's attributions: the record's explained tokens, its live
model, and :func:`ecco.attribution.faithfulness.faithfulness` on the plain arrays."""
from __future__ import annotations

from collections.abc import Sequence

from .attribution import build_problem
from .attribution.faithfulness import LEVELS, FaithfulnessResult, faithfulness
from .attribution.perturb import check_removal, token_removal
from .record import Record


def record_faithfulness(
    record: Record, method: str = "grad_x_input", sequence: int = 0, removal: str = "zero",
    levels: Sequence[float] = LEVELS, steps: int | None = None, seeds: int = 5, seed: int = 0,
    batch_size: int = 64,
) -> FaithfulnessResult:
    """Faithfulness of ``method``'s attributions of every explained token of ``sequence`` (computed
    now if the record does not hold them): see :meth:`ecco.output.OutputSeq.faithfulness`."""
    runner = record.runner("Faithfulness")
    index = record.sequence_index(sequence)
    check_removal(removal)  # before the attributions, which may take long
    result = record.attribution_result(method)
    plans, score = record._attribution_plan()
    token_ids, _, target = plans[index]
    layout = record.layout(index)
    problem = build_problem(runner, layout, token_ids, target, score)
    special, replacement = token_removal(problem, layout, token_ids, record.link.tokenizer, removal)
    return faithfulness(problem, result.values[index], removal=removal, replacement=replacement, special=special,
                        levels=levels, steps=steps, seeds=seeds, seed=seed, batch_size=batch_size)
