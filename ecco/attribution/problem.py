"""What is attributed: a sequence's input embeddings and one scalar score per explained token.

In a causal decoder the logit at position t depends only on positions <= t, so a single
forward pass over the whole sequence yields the score of every generated token at once; an
encoder-decoder's decoder is causal too. ``Problem.scores`` returns a (batch, targets) matrix
whose column k is the score of target k, and every attribution method differentiates or
perturbs that one function. The model is called only through the problem's
:class:`~ecco.runner.Runner`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from ..models.kinds import Kind
from ..models.spec import ModelSpec
from ..runner import Runner

Score = Literal["prob", "logprob", "logit"]


@dataclass
class Problem:
    """One sequence to explain.

    ``embeds`` are the input embeddings, (1, positions, hidden), one per stack in token-list
    order: ``(decoder,)`` for causal models, ``(encoder, decoder)`` for encoder-decoder models.
    Target ``k`` is the token ``target_ids[k]`` predicted at main-stack column ``positions[k]``;
    its sources are every input position of the other stacks and the main stack's columns up
    to ``positions[k]``. With ``foil_ids`` the score is log p(target) - log p(foil)
    (contrastive); otherwise ``score`` picks the probability (Ecco's choice), the
    log-probability or the logit.
    """

    runner: Runner
    embeds: tuple[torch.Tensor, ...]
    positions: torch.Tensor
    target_ids: torch.Tensor
    foil_ids: torch.Tensor | None = None
    score: Score = "prob"

    @property
    def model(self) -> nn.Module:
        """The model (hooks of the modified-gradient methods go on its modules)."""
        return self.runner.model

    @property
    def spec(self) -> ModelSpec:
        """The model's resolved spec."""
        return self.runner.spec

    @property
    def kind(self) -> Kind:
        """The model's kind."""
        return self.spec.kind

    @property
    def n_targets(self) -> int:
        """Number of explained tokens."""
        return int(self.positions.shape[0])

    def stacks(self) -> tuple[str, ...]:
        """Stack names in the order of ``embeds``."""
        return self.kind.stacks

    def source_counts(self, k: int) -> list[int]:
        """Per input, how many of its leading positions are sources of target ``k``: the
        whole of the other stacks, the main stack up to the target's column."""
        main = self.kind.main_stack
        last = int(self.positions[k]) + 1
        return [last if stack == main else int(e.shape[1]) for stack, e in zip(self.stacks(), self.embeds)]

    def scores(self, *embeds: torch.Tensor) -> torch.Tensor:
        """(batch, targets): the attributed score of each target, for a batch of inputs."""
        logits = self.runner.logits_at(embeds, self.positions).float()
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

    def with_score(self, score: Score) -> Problem:
        """The same problem with another attributed score (a contrastive one is kept)."""
        return replace(self, score=score)
