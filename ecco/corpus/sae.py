"""A small TopK sparse autoencoder (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"),
trained by streaming row blocks of a corpus run.

Encoder: ``z = TopK(ReLU((x - b_dec) @ W_enc.T + b_enc))``, keeping the ``k`` largest
pre-activations of each token (the rest are zero). Decoder: ``x_hat = z @ W_dec + b_dec``, where
``W_dec`` (features, inputs) is the encoder's own matrix when ``tied`` (one parameter, shared),
else a separate matrix whose rows (one direction per feature) are kept at unit norm: after every
Adam step they are renormalised, and the part of their gradient parallel to them is removed
before it. Loss: the mean squared error. ``b_dec`` starts at the data's mean, the encoder at the
decoder's transpose (unit-norm random directions). Everything random comes from one seeded
``torch.Generator``, so the same seed and data give identical weights.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..checks import as_int


class TopKSAE(nn.Module):
    """TopK sparse autoencoder of ``n_inputs``-dimensional rows with ``n_features`` features, ``k``
    of them active per row; ``tied``: the decoder is the encoder's matrix (``W_dec is W_enc``)."""

    def __init__(self, n_inputs: int, n_features: int, k: int, tied: bool = False, seed: int = 0) -> None:
        super().__init__()
        n_inputs, n_features = as_int(n_inputs, "n_inputs", 1), as_int(n_features, "n_features", 1)
        self.k = as_int(k, "k", 1, n_features, f"k must be between 1 and n_features={n_features}, got {k!r}.")
        self.tied = bool(tied)
        generator = torch.Generator().manual_seed(as_int(seed, "seed"))
        directions = torch.randn(n_features, n_inputs, generator=generator)
        directions /= directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.W_enc = nn.Parameter(directions.clone())
        self.b_enc = nn.Parameter(torch.zeros(n_features))
        self.b_dec = nn.Parameter(torch.zeros(n_inputs))
        self.W_dec = None if self.tied else nn.Parameter(directions.clone())

    @property
    def n_features(self) -> int:
        """Number of features (dictionary size)."""
        return self.W_enc.shape[0]

    @property
    def decoder_weight(self) -> torch.Tensor:
        """(features, inputs) decoder directions: the encoder's own parameter when tied."""
        return self.W_enc if self.tied else self.W_dec

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(tokens, features) codes: ReLU of the top-k pre-activations, zero elsewhere."""
        pre = (x - self.b_dec) @ self.W_enc.T + self.b_enc
        top = pre.topk(self.k, dim=1)
        return torch.zeros_like(pre).scatter(1, top.indices, torch.relu(top.values))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(tokens, inputs) reconstruction of (tokens, features) codes."""
        return z @ self.decoder_weight + self.b_dec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, codes) of (tokens, inputs) ``x``."""
        z = self.encode(x)
        return self.decode(z), z

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Unit-norm decoder rows (untied only; a tied decoder is the encoder and left as it is)."""
        if not self.tied:
            self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """Drop the part of each decoder row's gradient along the row (untied only), so that a step
        changes the direction, not the norm, which :meth:`normalize_decoder` fixes to 1."""
        if not self.tied and self.W_dec.grad is not None:
            along = (self.W_dec.grad * self.W_dec).sum(1, keepdim=True)
            self.W_dec.grad -= along * self.W_dec


def train_sae(
    blocks: Callable[[int], Iterable[np.ndarray]],
    n_inputs: int,
    n_features: int,
    k: int = 8,
    tied: bool = False,
    lr: float = 1e-3,
    epochs: int = 5,
    minibatch: int = 256,
    seed: int = 0,
) -> tuple[TopKSAE, list[float]]:
    """Train a :class:`TopKSAE` on the float32 (rows, ``n_inputs``) arrays that ``blocks(epoch)``
    yields (``epoch = -1``: one pass to initialise ``b_dec`` to the mean; then 0..epochs-1, in the
    order it chooses). Each block's rows are shuffled (seeded) and cut into Adam steps of
    ``minibatch`` rows. Returns the model (eval mode) and the seconds each epoch took."""
    epochs, minibatch = as_int(epochs, "epochs", 1), as_int(minibatch, "minibatch", 1)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}.")
    sae = TopKSAE(n_inputs, n_features, k, tied, seed)
    total, count = torch.zeros(n_inputs, dtype=torch.float64), 0
    for block in blocks(-1):
        total += torch.from_numpy(block).double().sum(0)
        count += len(block)
    with torch.no_grad():
        sae.b_dec.copy_((total / max(count, 1)).float())
    generator = torch.Generator().manual_seed(int(seed) + 1)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    seconds: list[float] = []
    threads = torch.get_num_threads()
    if minibatch * max(n_inputs, n_features) < 2**20:  # small steps: threads only wait for each other
        torch.set_num_threads(1)
    try:
        _epochs(sae, optimizer, blocks, epochs, minibatch, generator, seconds)
    finally:
        torch.set_num_threads(threads)
    sae.eval()
    return sae, seconds


def _epochs(sae: TopKSAE, optimizer: torch.optim.Optimizer, blocks: Callable[[int], Iterable[np.ndarray]], epochs: int,
            minibatch: int, generator: torch.Generator, seconds: list[float]) -> None:
    """The training loop of :func:`train_sae` (seconds per epoch appended to ``seconds``)."""
    sae.train()
    for epoch in range(epochs):
        start = time.perf_counter()
        for block in blocks(epoch):
            x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
            order = torch.randperm(len(x), generator=generator)
            for first in range(0, len(x), minibatch):
                batch = x[order[first : first + minibatch]]
                reconstruction, _ = sae(batch)
                loss = (reconstruction - batch).pow(2).sum(1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                sae.remove_parallel_gradient()
                optimizer.step()
                sae.normalize_decoder()
        seconds.append(time.perf_counter() - start)
