"""What ecco must know about a model architecture, before and after resolving it on a model."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from .kinds import Kind


@dataclass(frozen=True)
class StackSpec:
    """Where one stack of transformer blocks lives, as dotted paths.

    ``blocks`` and ``final_norm`` are relative to the model's base model
    (``model.base_model``); ``ffn_out`` is relative to one block and names the FFN
    output projection, whose *input* is what ecco calls the neuron activations
    (for gated FFNs that is ``act(gate) * up``).

    The parts a block adds into the residual stream, relative to one block (``None``: not
    known): ``attention``, the self-attention module (its first output is the attention's
    result); ``attention_out``, its output projection (its input holds the heads side by side);
    ``mlp``, the module whose output is the MLP's result; ``cross_attention`` /
    ``cross_attention_out`` the same for an encoder-decoder decoder's attention over the encoder;
    ``post_norms``, for ``residual="sandwich"`` families, the norms applied to the attention's and
    the MLP's outputs before they are added (the added value is their output). For post-norm
    families the modules are named but their outputs are not what is added.
    """

    blocks: str
    ffn_out: str
    final_norm: str | None
    final_norm_required: bool = True
    attention: str | None = None
    attention_out: str | None = None
    mlp: str | None = None
    cross_attention: str | None = None
    cross_attention_out: str | None = None
    post_norms: tuple[str, str] | None = None


@dataclass(frozen=True)
class GateLayout:
    """A gated FFN ``act(gate) * up``: attribute names on the module holding the FFN output
    projection. ``fused``: ``up`` projects to gate and up at once and the up half is second
    (Phi-3's ``gate_up_proj``)."""

    act: str
    up: str
    fused: bool = False


@dataclass(frozen=True)
class ArchSpec:
    """Everything ecco knows about one architecture family, in one entry.

    - ``stacks``: one stack, or (encoder, decoder);
    - ``gates``: gated-FFN layouts the family may use (LRP splits relevance over the product);
    - ``cross_attention``: names of cross-attention modules inside a decoder block;
    - ``mlm_head``: chains of attribute names on the model, each applied in order, that turn a
      masked model's last hidden state into logits (the first chain the model has is used);
    - ``lens_scale``: config -> factor applied to hidden states before the head (T5 with tied
      embeddings multiplies by d_model^-0.5);
    - ``logits_bias``: attribute of the model holding a bias added to the logits (BART);
    - ``softcap``: config attribute holding the final logit soft-capping (Gemma 2);
    - ``attention_core``: for families whose attention does not go through transformers'
      ``AttentionInterface``, the attention module's method that maps (query, key, value, ...)
      to (softmax weights @ value, weights) (GPT-Neo and GPT-J: ``_attn``); LRP holds its
      weights constant there;
    - ``residual``: how a block adds into the residual stream, or config -> that (``RESIDUALS``).
    """

    name: str
    stacks: tuple[StackSpec, ...]
    gates: tuple[GateLayout, ...] = ()
    cross_attention: tuple[str, ...] = ()
    mlm_head: tuple[tuple[str, ...], ...] = ()
    lens_scale: Callable[[object], float] | None = None
    logits_bias: str | None = None
    softcap: str | None = None
    attention_core: str | None = None
    residual: str | Callable[[object], str] = "unknown"

    def residual_of(self, config: object) -> str:
        """How this model's blocks add into the residual stream (one of ``RESIDUALS``)."""
        mode = self.residual(config) if callable(self.residual) else self.residual
        if mode not in RESIDUALS:
            raise ValueError(f"{self.name}: residual mode {mode!r} is not one of {', '.join(RESIDUALS)}.")
        return mode


RESIDUALS = {
    "sequential": "pre-norm blocks: x + attn(norm(x)), then + mlp(norm(.)) (GPT-2, Llama, T5)",
    "parallel": "pre-norm blocks: x + attn(norm(x)) + mlp(norm(x)) from the same input (GPT-J, GPT-NeoX)",
    "sandwich": "pre-norm blocks whose attention and MLP outputs are normed before being added (Gemma 2)",
    "post_norm": "the residual sum is normed after each sub-layer (BERT, BART): no part reaches the output unnormed",
    "unknown": "not known (a model the registry does not list)",
}
"""How a block adds into the residual stream; every mode but ``post_norm`` and ``unknown`` keeps
the final residual the plain sum of the embeddings and every sub-layer's output."""


@dataclass
class Stack:
    """A resolved stack: the actual modules of one model (the part lists are empty where the
    registry does not know them, else one module per block)."""

    name: str
    blocks: list[nn.Module]
    ffn_out: list[nn.Module]
    final_norm: nn.Module | None
    attention: list[nn.Module] = field(default_factory=list)
    attention_out: list[nn.Module] = field(default_factory=list)
    mlp: list[nn.Module] = field(default_factory=list)
    cross_attention: list[nn.Module] = field(default_factory=list)
    cross_attention_out: list[nn.Module] = field(default_factory=list)
    post_norms: list[tuple[nn.Module, nn.Module]] = field(default_factory=list)

    @property
    def n_layers(self) -> int:
        """Number of blocks in the stack."""
        return len(self.blocks)


@dataclass
class ModelSpec:
    """Everything ecco uses of a model, resolved to modules.

    ``stacks`` is keyed ``'decoder'`` for causal models, ``'encoder'`` for masked
    (encoder-only) models and both for encoder-decoder models, like Ecco's
    ``activations`` dict. ``family`` is the registry entry the model resolved to, with the
    family's facts (gates, cross-attention names, lens details).
    """

    arch: str
    kind: Kind
    embeddings: nn.Module
    stacks: dict[str, Stack]
    lm_head: nn.Module | None
    family: ArchSpec

    @property
    def main_stack(self) -> Stack:
        """The stack whose outputs are the model's predictions (decoder if any)."""
        return self.stacks[self.kind.main_stack]
