"""Names for the main arrays, with their shapes, so that signatures say what they hold.

They are plain aliases (no runtime checks); the comment on each is the layout ecco uses.
"""
from __future__ import annotations

from typing import TypeAlias

import numpy as np
import torch

Activations: TypeAlias = np.ndarray
"""FFN neuron activations of one stack: (batch, captured layers, neurons, positions)."""

HiddenStates: TypeAlias = torch.Tensor
"""Hidden states of one stack: (batch, layers + 1, positions, hidden); row 0 the embeddings."""

AttentionWeights: TypeAlias = torch.Tensor
"""One attention set: (batch, layers, heads, queries, keys)."""

LayerHidden: TypeAlias = torch.Tensor
"""Hidden states of one sequence read by the lens: (layers, positions, hidden)."""

Embeddings: TypeAlias = tuple[torch.Tensor, ...]
"""Input embeddings per stack, ``(decoder,)`` or ``(encoder, decoder)``: each (batch, positions, hidden)."""

Logits: TypeAlias = torch.Tensor
"""Logits: (..., vocabulary)."""
