"""The one place ecco calls a model.

Every forward pass, generation, encoder call and embedding lookup that ecco makes goes
through a :class:`Runner`, and only inside :meth:`Runner.session`: the model runs in eval
mode (eager attention when asked, gradients only when asked), and the user's training flag
and attention implementation come back afterwards, whatever happens. A call outside a
session is a bug in ecco and raises.
"""
from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator

import torch
from torch import nn

from .models.spec import ModelSpec
from .session import model_session
from .shapes import Embeddings, Logits


class Runner:
    """A model and its resolved spec, called only inside sessions."""

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        self.model = model
        self.spec = spec
        self._depth = 0
        self._takes_position_ids = "position_ids" in inspect.signature(model.forward).parameters
        self._takes_logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return next(self.model.parameters()).device

    @contextlib.contextmanager
    def session(self, *, eager_attention: bool = False, grad: bool = False) -> Iterator[Runner]:
        """Eval mode (eager attention, gradients as asked) for the block; nested sessions
        keep the outer one's model state and only switch gradients."""
        if self._depth:
            with torch.set_grad_enabled(grad):
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
            return
        with model_session(self.model, eager_attention=eager_attention, grad=grad):
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1

    def _check(self) -> None:
        if not self._depth:
            raise RuntimeError("ecco called the model outside Runner.session(); this is a bug in ecco.")

    def forward(self, **inputs) -> object:
        """One forward pass; ``None`` inputs are dropped, and ``position_ids`` where the model
        does not take them."""
        self._check()
        if not self._takes_position_ids:
            inputs.pop("position_ids", None)
        return self.model(**{k: v for k, v in inputs.items() if v is not None})

    def call(self, module: nn.Module, *args, **kwargs) -> object:
        """One of the model's modules run on its own (e.g. a block on recorded inputs)."""
        self._check()
        return module(*args, **kwargs)

    def generate(self, **inputs) -> object:
        """``model.generate`` with these arguments."""
        self._check()
        return self.model.generate(**inputs)

    def encode(self, **inputs) -> object:
        """The encoder of an encoder-decoder model."""
        self._check()
        return self.model.get_encoder()(**inputs)

    def context_size(self) -> int | None:
        """The model's context window in tokens, if its config says."""
        config = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def embed(self, ids: list[int] | torch.Tensor) -> torch.Tensor:
        """Input embeddings of token ids, (1, positions, hidden) for a list, detached."""
        ids = torch.as_tensor(ids, device=self.device)
        with torch.no_grad():
            return self.spec.embeddings(ids.view(1, -1) if ids.dim() == 1 else ids).detach()

    def logits_at(self, embeds: Embeddings, positions: torch.Tensor) -> Logits:
        """Logits at the main stack's ``positions`` only, (batch, targets, vocab), from input
        embeddings: ``(decoder,)`` for one stack, ``(encoder, decoder)`` for encoder-decoder."""
        self._check()
        if len(embeds) == 2:
            out = self.model(inputs_embeds=embeds[0], decoder_inputs_embeds=embeds[1], use_cache=False)
            return out.logits[:, positions]
        if self._takes_logits_to_keep:  # only the target positions go through the LM head
            return self.model(inputs_embeds=embeds[0], use_cache=False, logits_to_keep=positions).logits
        return self.model(inputs_embeds=embeds[0], use_cache=False).logits[:, positions]
