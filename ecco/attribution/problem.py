"""What is attributed: a sequence's input embeddings and one scalar score per explained token.

In a causal decoder the logit at position t depends only on positions <= t, so a single
forward pass over the whole sequence yields the score of every generated token at once; an
encoder-decoder's decoder is causal too. ``Problem.scores`` returns a (batch, targets) matrix
whose column k is the score of target k, and every attribution method differentiates or
perturbs that one function.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from ..models.spec import ModelSpec

Score = Literal["prob", "logprob", "logit"]


@dataclass
class Problem:
    """One sequence to explain.

    ``embeds`` are the input embeddings, (1, positions, hidden): ``(decoder,)`` for causal
    models, ``(encoder, decoder)`` for encoder-decoder models. Target ``k`` is the token
    ``target_ids[k]`` predicted at decoder position ``positions[k]``; its sources are every
    input position before it (the global position ``sources[k]`` counts encoder then decoder
    tokens). With ``foil_ids`` the score is log p(target) - log p(foil) (contrastive);
    otherwise ``score`` picks the probability (Ecco's choice), the log-probability or the logit.
    """

    model: nn.Module
    spec: ModelSpec
    embeds: tuple[torch.Tensor, ...]
    positions: torch.Tensor
    target_ids: torch.Tensor
    foil_ids: torch.Tensor | None = None
    score: Score = "prob"

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def n_targets(self) -> int:
        return int(self.positions.shape[0])

    @property
    def sources(self) -> list[int]:
        """Number of source tokens of each target (all input positions before it)."""
        offset = self.embeds[0].shape[1] if self.kind == "enc-dec" else 0
        return [offset + int(p) + 1 for p in self.positions]

    def _logits(self, embeds: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Logits at the target positions only: (batch, targets, vocab)."""
        if self.kind == "enc-dec":
            out = self.model(inputs_embeds=embeds[0], decoder_inputs_embeds=embeds[1], use_cache=False)
            return out.logits[:, self.positions]
        if "logits_to_keep" in inspect.signature(self.model.forward).parameters:
            # Only the target positions go through the LM head.
            return self.model(inputs_embeds=embeds[0], use_cache=False, logits_to_keep=self.positions).logits
        return self.model(inputs_embeds=embeds[0], use_cache=False).logits[:, self.positions]

    def scores(self, *embeds: torch.Tensor) -> torch.Tensor:
        """(batch, targets): the attributed score of each target, for a batch of inputs."""
        logits = self._logits(embeds).float()
        index = self.target_ids.view(1, -1, 1).expand(logits.shape[0], -1, 1)
        if self.foil_ids is not None:
            log_probs = torch.log_softmax(logits, dim=-1)
            foil = self.foil_ids.view(1, -1, 1).expand(logits.shape[0], -1, 1)
            return (log_probs.gather(-1, index) - log_probs.gather(-1, foil)).squeeze(-1)
        if self.score == "logit":
            return logits.gather(-1, index).squeeze(-1)
        if self.score == "logprob":
            return torch.log_softmax(logits, dim=-1).gather(-1, index).squeeze(-1)
        return torch.softmax(logits, dim=-1).gather(-1, index).squeeze(-1)

    def stacks(self) -> tuple[str, ...]:
        """Stack names in the order of ``embeds``."""
        return ("encoder", "decoder") if self.kind == "enc-dec" else ("decoder",)

    def with_score(self, score: Score) -> Problem:
        """The same problem with another attributed score (a contrastive one is kept)."""
        return replace(self, score=score)
