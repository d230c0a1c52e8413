"""Training a lens's translators: each layer's translated prediction is pulled towards the model's
final distribution by minimising KL(final || layer), averaged over tokens, with Adam.

Layers are independent (each has its own translator and loss), so every step runs the layers
one after another on the same batch of tokens and frees each layer's logits before the next:
memory is one layer's (tokens x vocabulary) logits, not all layers'. Gradients are taken with
``torch.autograd.grad`` for the translators only, so the model's parameters (its head and
norm, which the lens reads through) get no gradient and are never changed.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..checks import as_int
from ..lens import LensHead
from ..progress import progress_bar
from .data import HiddenBatch
from .lens import TunedLens


@dataclass(frozen=True)
class TrainOptions:
    """How to train: Adam's ``lr`` and ``weight_decay``, ``epochs`` over the training tokens,
    ``rows`` tokens per step, at most ``tokens`` training tokens per epoch (None: all), and the
    ``seed`` of the shuffle."""

    lr: float = 2e-3
    epochs: int = 1
    rows: int = 64
    weight_decay: float = 0.0
    tokens: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'lr' else 'non-negative'} number, got {value!r}.")
        as_int(self.epochs, "epochs", 1)
        as_int(self.rows, "rows", 1)
        as_int(self.seed, "seed", 0)
        if self.tokens is not None:
            as_int(self.tokens, "tokens", 1)

    def to_json(self) -> dict:
        """The options as stored with a trained lens."""
        return asdict(self)


@dataclass
class Final:
    """The model's final distribution over a batch of tokens, as the KL to it needs it."""

    probs: torch.Tensor  # (tokens, vocab)
    neg_entropy: torch.Tensor  # (tokens,): sum p log p

    @classmethod
    def of(cls, logits: torch.Tensor) -> Final:
        """From the final layer's logits (tokens, vocab)."""
        log_p = torch.log_softmax(logits, dim=-1)
        probs = log_p.exp()
        return cls(probs, torch.linalg.vecdot(probs, log_p))

    def kl(self, logits: torch.Tensor, lse: torch.Tensor | None = None) -> torch.Tensor:
        """KL(final || softmax(logits)) per token, in nats: sum p log p - p . logits + logsumexp(logits)
        (no (tokens x vocab) log-probabilities are made). ``lse``: logsumexp(logits), if known."""
        lse = torch.logsumexp(logits, dim=-1) if lse is None else lse
        return self.neg_entropy - torch.linalg.vecdot(logits, self.probs) + lse


def _translated(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return x + torch.addmm(bias, x, weight.T)


def fit(head: LensHead, lens: TunedLens, epoch_batches: Callable[[int], Iterable[HiddenBatch]],
        options: TrainOptions, total: int | None = None, progress: bool = True,
        after_epoch: Callable[[list[list[float]]], None] | None = None) -> list[list[float]]:
    """Train ``lens`` in place on the batches ``epoch_batches(epoch)`` gives for each epoch; returns
    each epoch's mean training KL per layer (layers 0..L-2). ``total`` sizes the progress bar;
    ``after_epoch(history)`` runs after each epoch, with ``lens`` holding the weights so far (to
    save them, so that an interrupted run keeps its finished epochs)."""
    device = head.device
    params = [
        (lens.weight[n].clone().to(device).requires_grad_(), lens.bias[n].clone().to(device).requires_grad_())
        for n in range(lens.n_layers - 1)
    ]
    optimiser = torch.optim.Adam([p for pair in params for p in pair], lr=options.lr, weight_decay=options.weight_decay)
    history = []
    bar = progress_bar(total=None if total is None else total * options.epochs, unit="tok", desc="ecco lens",
                       disable=not progress)
    try:
        for epoch in range(options.epochs):
            sums, seen = np.zeros(len(params)), 0
            for batch in epoch_batches(epoch):
                hidden = batch.hidden.to(device)
                final = Final.of(head(hidden[-1], final=True))
                for layer, (weight, bias) in enumerate(params):
                    loss = final.kl(head.differentiable(_translated(hidden[layer], weight, bias), final=False)).mean()
                    weight.grad, bias.grad = torch.autograd.grad(loss, (weight, bias))
                    sums[layer] += float(loss.detach()) * batch.n_tokens
                optimiser.step()
                seen += batch.n_tokens
                bar.update(batch.n_tokens)
                bar.set_postfix(epoch=epoch + 1, kl=f"{sums.mean() / max(seen, 1):.3f}")
            if not seen:
                raise ValueError("There are no training tokens: the source is empty or every document is held out "
                                 "(lower held_out).")
            history.append((sums / seen).tolist())
            lens.weight = torch.stack([w.detach().float().cpu() for w, _ in params])
            lens.bias = torch.stack([b.detach().float().cpu() for _, b in params])
            if after_epoch is not None:
                after_epoch(history)
    finally:
        bar.close()
    return history
