"""Per-token reference attributions: captum's classes applied to each prefix separately.

This is what Ecco, inseq and captum's LLM attribution do (one call per generated token); the
batched implementation must give the same numbers.
"""
from __future__ import annotations

import captum.attr as ca
import numpy as np
import torch
from torch import nn


class PrefixScore(nn.Module):
    """Probability (or log-prob difference with a foil) of one target after a prefix."""

    def __init__(self, model: nn.Module, target: int, foil: int | None = None, enc_dec: bool = False):
        super().__init__()
        self.model, self.target, self.foil, self.enc_dec = model, target, foil, enc_dec

    def forward(self, *embeds: torch.Tensor) -> torch.Tensor:
        if self.enc_dec:
            logits = self.model(inputs_embeds=embeds[0], decoder_inputs_embeds=embeds[1], use_cache=False).logits
        else:
            logits = self.model(inputs_embeds=embeds[0], use_cache=False).logits
        last = logits[:, -1].float()
        if self.foil is not None:
            logp = torch.log_softmax(last, -1)
            return logp[:, self.target] - logp[:, self.foil]
        return torch.softmax(last, -1)[:, self.target]


CAPTUM = {
    "saliency": lambda f: (ca.Saliency(f), {}),
    "grad_x_input": lambda f: (ca.InputXGradient(f), {}),
    "ig": lambda f: (ca.IntegratedGradients(f), {"n_steps": 50, "method": "gausslegendre"}),
    "gb": lambda f: (ca.GuidedBackprop(f), {}),
    "deconv": lambda f: (ca.Deconvolution(f), {}),
    "dl": lambda f: (ca.DeepLift(f), {}),
    "dls": lambda f: (ca.DeepLiftShap(f), {}),
}


def per_token_reference(model, embedding, kind: str, token_ids: list[int], n_input: int, method: str,
                        foil: int | None = None, baselines: tuple[torch.Tensor, ...] | None = None,
                        n_steps: int = 50) -> list[np.ndarray]:
    """Signed per-source sums (raw scores) for every generated token, one captum call each.

    ``baselines`` (DeepLiftShap): per input, (count, positions, hidden) over the whole input,
    cut to each prefix like the input; IG and DeepLift use zeros. ``n_steps``: IG's
    Gauss-Legendre nodes."""
    return [a.sum(-1).numpy() for a in per_token_attributions(model, embedding, kind, token_ids, n_input, method,
                                                               foil, baselines, n_steps)]


def normalised(attributions: list[torch.Tensor]) -> list[np.ndarray]:
    """Ecco's scores of (sources, hidden) attributions: the L2 norm over the embedding divided
    by its sum (the signed sum says little where every path to the logits goes through a
    LayerNorm, whose gradient sums to zero over the hidden units)."""
    return [(a.norm(dim=-1) / a.norm(dim=-1).sum()).numpy() for a in attributions]


def per_token_attributions(model, embedding, kind: str, token_ids: list[int], n_input: int, method: str,
                           foil: int | None = None, baselines: tuple[torch.Tensor, ...] | None = None,
                           n_steps: int = 50) -> list[torch.Tensor]:
    """Per generated token, captum's (sources, hidden) float64 attributions on its prefix
    (encoder sources first); arguments as :func:`per_token_reference`."""
    ids = torch.tensor([token_ids])
    with torch.no_grad():
        embeds = embedding(ids).detach()
    out = []
    enc_dec = kind == "enc-dec"
    first = n_input + 1 if enc_dec else n_input
    for position in range(first, len(token_ids)):
        scorer = PrefixScore(model, token_ids[position], foil, enc_dec)
        inputs = (embeds[:, :n_input], embeds[:, n_input:position]) if enc_dec else (embeds[:, :position],)
        inputs = tuple(x.clone().requires_grad_(True) for x in inputs)
        attributor, kwargs = CAPTUM[method](scorer)
        if method == "ig":
            kwargs["n_steps"] = n_steps
        if method in ("ig", "dl"):
            kwargs["baselines"] = tuple(torch.zeros_like(x) for x in inputs)
        if baselines is not None:
            kwargs["baselines"] = tuple(b[:, : x.shape[1]] for b, x in zip(baselines, inputs))
        result = attributor.attribute(inputs, **kwargs)
        result = result if isinstance(result, tuple) else (result,)
        out.append(torch.cat([r[0] for r in result]).detach().double())
    return out
