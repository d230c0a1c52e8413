"""The clean and the intervened continuation of one prompt, and what changed between them."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np


@dataclass
class InterventionDiff:
    """One sequence's two continuations; probabilities are float64 arrays, one per generated token."""

    descriptions: list[str]  # one line per intervention, e.g. "zero-ablate layer 3 neurons 5, 7"
    prompt_ids: list[int]
    clean_ids: list[int]  # what the model generates without the interventions
    clean_probs: np.ndarray  # the clean model's probability of each clean token at its step
    intervened_ids: list[int]  # what it generates with them
    intervened_probs: np.ndarray  # the intervened model's probability of each intervened token
    intervened_clean_probs: np.ndarray  # the clean model's probability of the same token after the same prefix

    def ops(self) -> list[tuple[str, int, int, int, int]]:
        """``difflib`` opcodes turning the clean tokens into the intervened ones:
        (tag, clean start, clean end, intervened start, intervened end), tag one of equal /
        replace / delete / insert."""
        matcher = difflib.SequenceMatcher(a=self.clean_ids, b=self.intervened_ids, autojunk=False)
        return [tuple(op) for op in matcher.get_opcodes()]

    @property
    def changes(self) -> np.ndarray:
        """Each intervened token's probability change: intervened − clean, after the same prefix."""
        return self.intervened_probs - self.intervened_clean_probs
