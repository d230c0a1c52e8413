"""From per-dimension attributions to per-token and per-word scores."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def per_token(parts: Sequence[torch.Tensor], target: int, n_sources: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(normalised, raw) scores of one target's sources.

    ``parts`` holds (targets, positions, hidden) per input (encoder then decoder); the target
    uses the first ``n_sources[i]`` positions of input i. Normalised is Ecco's: the L2 norm
    over the embedding dimension, divided by its sum; raw is the signed sum over it.
    """
    pieces = [part[target, :n] for part, n in zip(parts, n_sources)]
    stacked = torch.cat(pieces).double().cpu()
    norms = stacked.norm(dim=-1)
    total = norms.sum()
    normalised = (norms / total if total > 0 else norms).numpy()
    return normalised, stacked.sum(dim=-1).numpy()


def word_spans(continues_word: Sequence[bool]) -> list[tuple[int, int]]:
    """[start, end) token spans of the words (a word starts where a token does not continue one)."""
    starts = [i for i, cont in enumerate(continues_word) if i == 0 or not cont]
    return list(zip(starts, starts[1:] + [len(continues_word)]))


def sum_over_words(values: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Sum a per-token vector over word spans (spans past the vector's end are dropped)."""
    return np.array([values[start:end].sum() for start, end in spans if start < len(values)])
