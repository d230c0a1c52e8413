"""DeepLift and DeepLiftShap with the rescale rule, batched over all targets.

DeepLift (Shrikumar et al. 2017) backpropagates *multipliers* instead of gradients. With the
rescale rule, an elementwise nonlinearity y = f(x) passes ``(f(x) - f(x0)) / (x - x0)``
(x0: the same unit on the baseline), or its gradient f'(x) where ``|x - x0| < 1e-10``; linear
layers pass multipliers like gradients; everything else (the attention softmax, norms,
products) passes plain gradients, which is what captum does for operations it has no rule
for. The attribution is ``(input - baseline) * multiplier``.

ecco applies the rule to every elementwise activation module (:func:`.rules.activation_modules`:
GELU, SiLU, ReLU, ...), as captum would with those classes added to its rescale table, but
without touching captum: one forward pass runs the inputs and the baselines together (the
first half of the batch the inputs, the second the baselines, so each activation sees x and
x0), a forward hook gives each activation the rescale multiplier as its gradient while its
value stays exactly f(x), and one batched backward takes the multipliers of every target.

DeepLiftShap averages DeepLift over a distribution of baselines: the zero embedding and
``shap_baselines - 1`` sequences of random vocabulary embeddings (seeded).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from .batched import completeness_error, gradients_per_target
from .problem import Problem
from .registry import MethodOutput, Options, register
from .rules import activation_modules

Inputs = tuple[torch.Tensor, ...]  # one tensor per stack (encoder, decoder)
EPS = 1e-10  # below this |x - x0| the rescale multiplier is the gradient (captum's default eps)


def _small_step(dtype: torch.dtype) -> float:
    """Captum's ``EPS``, or in half precision (where 1e-10 rounds to 0 and a smaller step is
    rounding noise) the dtype's own rounding step."""
    return EPS if torch.finfo(dtype).bits >= 32 else float(torch.finfo(dtype).eps)


def _rescale(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the same value, with the rescale multiplier of each unit as gradient."""
    x = args[0]
    if output is x or x.shape[0] % 2:
        raise ValueError(
            f"DeepLift: {type(module).__name__} works in place or did not get inputs and baselines together."
        )
    x_in, x_ref = x.detach().chunk(2)
    y_in, y_ref = output.detach().chunk(2)
    delta_in, delta_out = torch.cat(2 * [x_in - x_ref]), torch.cat(2 * [y_in - y_ref])
    small = delta_in.abs() < _small_step(x.dtype)
    multiplier = delta_out / torch.where(small, torch.ones_like(delta_in), delta_in)
    linear = x * multiplier
    return torch.where(small, output, output.detach() + (linear - linear.detach()))


@contextlib.contextmanager
def rescale_rule(model: nn.Module) -> Iterator[None]:
    """Within the block, every activation module of ``model`` backpropagates DeepLift's
    rescale multipliers (the model must run on inputs then baselines in one batch)."""
    handles = [m.register_forward_hook(_rescale) for m in activation_modules(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def shap_baselines(embedding: nn.Module, lengths: Sequence[int], count: int, seed: int) -> Inputs:
    """Per input of ``lengths`` positions: the zero embedding and ``count - 1`` sequences of
    random vocabulary embeddings (seeded), (max(2, count), positions, hidden)."""
    generator = torch.Generator().manual_seed(seed)
    count = max(2, count)
    weight = embedding.weight
    out = []
    for length in lengths:
        ids = torch.randint(0, embedding.num_embeddings, (count - 1, length), generator=generator)
        random = embedding(ids.to(weight.device)).to(weight.dtype)
        out.append(torch.cat([torch.zeros_like(random[:1]), random]))
    return tuple(out)


def deeplift_batched(
    problem: Problem, baselines: Inputs, target_chunk: int | None = None
) -> tuple[Inputs, torch.Tensor]:
    """DeepLift of every target against each of B baselines, averaged over the baselines.

    One forward pass over the B copies of the input then the B baselines, one batched
    backward per chunk of ``target_chunk`` targets. Returns the attributions, per input
    (targets, positions, hidden), and f(x) - f(baseline) as a (B, targets) tensor.
    """
    count = int(baselines[0].shape[0])
    xs = tuple(
        torch.cat([x.expand(count, -1, -1), b.to(x.dtype)]).requires_grad_(True)
        for x, b in zip(problem.embeds, baselines)
    )
    with rescale_rule(problem.model), torch.enable_grad():
        values = problem.scores(*xs)  # (2B, targets)
    grads = gradients_per_target(values, xs, target_chunk)
    attributions = tuple(
        ((x - b)[None] * g[:, :count]).mean(dim=1) for x, b, g in zip(problem.embeds, baselines, grads)
    )
    return attributions, (values[:count] - values[count:]).detach()


@register("dl", "DeepLift")
def deeplift(problem: Problem, options: Options) -> MethodOutput:
    """DeepLift against the all-zero embedding, with its completeness error."""
    zeros = tuple(torch.zeros_like(e) for e in problem.embeds)
    attributions, delta = deeplift_batched(problem, zeros, options.internal_batch_size)
    return MethodOutput(attributions, completeness_error(attributions, delta[0]))


@register("dls", "DeepLiftShap")
def deeplift_shap(problem: Problem, options: Options) -> MethodOutput:
    """DeepLift averaged over :func:`shap_baselines`."""
    lengths = [int(e.shape[1]) for e in problem.embeds]
    baselines = shap_baselines(problem.spec.embeddings, lengths, options.shap_baselines, options.seed)
    attributions, _ = deeplift_batched(problem, baselines, options.internal_batch_size)
    return MethodOutput(attributions)
