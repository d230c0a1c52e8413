"""Causal tracing / activation patching: the target's probability with the clean state restored
at one (component, layer, position) of a corrupted run (being built; the result type is fixed)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Trace:
    """What tracing measured, float64 arrays of (layers, positions) per component.

    ``probs[c][l, p]``: the target's probability, averaged over the noise seeds, with the clean
    state of component ``c`` restored at position ``p`` of layer ``l`` (MLP and attention: of the
    ``window`` layers around ``l``) in the corrupted run."""

    token_ids: list[int]  # the traced stack's clean input ids
    counterfactual: list[int] | None  # the corrupted run's ids (activation patching); None: noise
    corrupted: list[int]  # positions of the traced stack that were corrupted
    target: int
    stack: str  # 'decoder' or 'encoder'
    column: int  # the main stack's column whose prediction is read
    clean_prob: float
    corrupt_prob: float  # mean over seeds
    probs: dict[str, np.ndarray]
    window: int
    noise: float | None  # the noise's standard deviation (absolute); None for a counterfactual
    seeds: int

    def indirect(self, component: str) -> np.ndarray:
        """Indirect effect: restored probability minus the corrupted one."""
        return self.probs[component] - self.corrupt_prob

    def normalised(self, component: str) -> np.ndarray:
        """The indirect effect as a fraction of clean − corrupted (NaN where they are equal)."""
        gap = self.clean_prob - self.corrupt_prob
        return self.indirect(component) / gap if gap != 0 else np.full_like(self.probs[component], np.nan)
