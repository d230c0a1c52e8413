"""Modified backward rules, applied with forward hooks for the duration of one attribution.

Guided backpropagation and deconvolution (Springenberg et al. 2015; Zeiler & Fergus 2014)
change how gradients pass the activation functions. captum implements them for ``nn.ReLU``
modules only; transformers use GELU and SiLU as well, so ecco applies the same rules to every
elementwise activation module: guided = act'(x) * max(grad, 0), deconvolution =
max(grad, 0) (the forward mask is ignored). On ReLU models both equal captum's (tested).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

_TORCH_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.LeakyReLU, nn.Mish, nn.Softplus)


class _PositiveGrad(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through (vmap-able)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0)


def activation_modules(model: nn.Module) -> list[nn.Module]:
    """Elementwise activation modules: torch's, and transformers' own activation classes."""
    return [
        m for m in model.modules()
        if isinstance(m, _TORCH_ACTIVATIONS) or type(m).__module__ == "transformers.activations"
    ]


@contextlib.contextmanager
def activation_rule(model: nn.Module, rule: str) -> Iterator[None]:
    """Within the block, activations backpropagate with ``rule``: 'guided' or 'deconv'."""
    modules = activation_modules(model)
    if not modules:
        raise ValueError(
            f"{rule} backpropagation modifies activation functions, but {type(model).__name__} has no "
            "activation modules (its activations are plain function calls), so the result would be a "
            "plain gradient. Use 'saliency' instead."
        )

    def guided(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return _PositiveGrad.apply(output)

    def deconv(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        through = _PositiveGrad.apply(x)
        return output.detach() + through - through.detach()

    hook = guided if rule == "guided" else deconv
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
