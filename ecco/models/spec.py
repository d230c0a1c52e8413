"""What ecco must know about a model architecture, before and after resolving it on a model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

Kind = Literal["causal", "masked", "enc-dec"]
KINDS: tuple[str, ...] = ("causal", "masked", "enc-dec")


@dataclass(frozen=True)
class StackSpec:
    """Where one stack of transformer blocks lives, as dotted paths.

    ``blocks`` and ``final_norm`` are relative to the model's base model
    (``model.base_model``); ``ffn_out`` is relative to one block and names the FFN
    output projection, whose *input* is what ecco calls the neuron activations
    (for gated FFNs that is ``act(gate) * up``).
    """

    blocks: str
    ffn_out: str
    final_norm: str | None
    final_norm_required: bool = True


@dataclass(frozen=True)
class ArchSpec:
    """Paths for one architecture family: one stack, or (encoder, decoder)."""

    name: str
    stacks: tuple[StackSpec, ...]


@dataclass
class Stack:
    """A resolved stack: the actual modules of one model."""

    name: str
    blocks: list[nn.Module]
    ffn_out: list[nn.Module]
    final_norm: nn.Module | None

    @property
    def n_layers(self) -> int:
        return len(self.blocks)


@dataclass
class ModelSpec:
    """Everything ecco uses of a model, resolved to modules.

    ``stacks`` is keyed ``'decoder'`` for causal models, ``'encoder'`` for masked
    (encoder-only) models and both for encoder-decoder models, like Ecco's
    ``activations`` dict.
    """

    arch: str
    kind: Kind
    embeddings: nn.Module
    stacks: dict[str, Stack]
    lm_head: nn.Module | None
    token_prefix: str | None = None
    partial_token_prefix: str | None = None

    @property
    def main_stack(self) -> Stack:
        """The stack whose outputs are the model's predictions (decoder if any)."""
        return self.stacks["decoder"] if "decoder" in self.stacks else self.stacks["encoder"]
