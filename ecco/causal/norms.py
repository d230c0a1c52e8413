"""A LayerNorm or RMSNorm with its scale frozen at one clean input: a linear map.

A norm maps ``x`` to ``gain * c(x) / s(x) + bias``, where ``c`` centres ``x`` (LayerNorm: minus
its mean; RMSNorm: nothing) and ``s(x) = sqrt(mean(c(x)**2) + eps)``. Freezing ``s`` at the
clean residual ``r`` makes the map linear in ``x`` (plus the bias), so a sum of parts goes
through it as the sum of the parts' images: that is how direct logit attribution reads every
part of the residual stream. The frozen map is exact at ``r`` itself and only there.

The gain is read from the module's behaviour (an RMSNorm maps a vector of ones to
``gain / sqrt(1 + eps)``, whatever its parameterisation, e.g. Gemma's ``1 + weight``); a norm
that maps constant vectors to its bias centres (LayerNorm, with ``weight`` / ``bias`` when it has
them). The reconstruction is checked against the module's own output on ``r``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..runner import Runner


@dataclass
class FrozenNorm:
    """``x -> gain * c(x) / scale + bias`` with ``scale`` fixed (float64 tensors of (hidden,))."""

    gain: torch.Tensor
    bias: torch.Tensor
    scale: float
    centred: bool

    def centre(self, x: torch.Tensor) -> torch.Tensor:
        """``c(x)`` over the last dimension."""
        return x - x.mean(-1, keepdim=True) if self.centred else x

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen map without its bias (the image of one part of a sum)."""
        return self.gain * self.centre(x.double()) / self.scale

    def read(self, direction: torch.Tensor) -> torch.Tensor:
        """The ``d'`` with ``d' . x == direction . apply(x)`` for every ``x`` (centring is a
        symmetric projection, so it moves onto the direction)."""
        return self.centre(direction.double() * self.gain / self.scale)


def _eps(module: nn.Module) -> float:
    for name in ("eps", "variance_epsilon", "epsilon"):
        value = getattr(module, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    raise ValueError(
        f"{type(module).__name__} has no eps / variance_epsilon attribute: ecco cannot freeze this norm's scale, so "
        "direct logit attribution cannot read the residual stream through it."
    )


def _parameter(module: nn.Module, name: str, like: torch.Tensor, fill: float) -> torch.Tensor:
    value = getattr(module, name, None)
    return value.detach().double() if isinstance(value, torch.Tensor) else torch.full_like(like, fill)


@torch.no_grad()
def freeze(runner: Runner, module: nn.Module, clean: torch.Tensor) -> FrozenNorm:
    """``module`` (a LayerNorm or RMSNorm) frozen at the clean input ``clean`` (hidden,); a
    ValueError when the module does not behave as either."""
    eps = _eps(module)
    param = next(module.parameters(), clean)
    probe = torch.stack([torch.zeros_like(clean), torch.ones_like(clean), clean]).to(param.dtype)
    zero, ones, out = runner.call(module, probe.unsqueeze(0))[0].double()
    x = clean.double()
    centred = bool(torch.allclose(ones, zero, atol=1e-6 * (1 + float(zero.abs().max()))))
    if centred:
        gain, bias = _parameter(module, "weight", x, 1.0), _parameter(module, "bias", x, 0.0)
    else:
        gain, bias = ones * (1 + eps) ** 0.5, zero
    norm = FrozenNorm(gain, bias, 0.0, centred)
    norm.scale = float((norm.centre(x).pow(2).mean() + eps).sqrt())
    rebuilt = norm.apply(x) + bias
    if not torch.allclose(rebuilt, out, rtol=1e-3, atol=1e-4 * (1 + float(out.abs().max()))):
        raise ValueError(
            f"{type(module).__name__} does not act as a LayerNorm or an RMSNorm (gain * centred(x) / scale + bias): "
            "ecco cannot freeze its scale, so direct logit attribution does not apply to this model."
        )
    return norm
