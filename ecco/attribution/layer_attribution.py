"""Layer attribution: integrated gradients and gradient x activation at the output of a block.

Both explain every target by the hidden states that block ``options.layer`` (default: the
middle block, ``n_layers // 2``; negative counts from the end) writes, so the result says which
positions of that layer carry the evidence. (At the last block of a causal model only the
target's own column can carry any: everything after it is position-wise.) Per input the
attributions are (targets, positions, hidden), and Ecco's
per-token scores (L2 norm / signed sum over hidden) apply unchanged. Definitions (captum's):

- ``layer_grad_x_act``: a(x) * dF/da(x), with a the block's hidden-state output and F the
  target's score (captum's ``LayerGradientXActivation``); one forward and one batched backward
  for all targets.
- ``layer_ig``: captum's ``LayerIntegratedGradients`` with the zero input embedding x0 as
  baseline. The path is the straight line between the block outputs a(x0) and a(x) (not the
  image of the input path): the model runs on x while the block's output is replaced by
  a(x0) + alpha (a(x) - a(x0)), and the attribution is (a(x) - a(x0)) times the
  Gauss-Legendre average of dF/da along it. In a causal model everything downstream of a
  block depends on the input only through the block's output, so the attributions sum to
  f(x) - f(x0) up to quadrature error; that completeness error is reported as for ``ig``.
  The integration is :func:`.batched.integrated_gradients` itself (``n_steps``, ``'auto'``,
  ``step_chunk``, ``internal_batch_size``), run on a :class:`LayerProblem` whose inputs are
  the block outputs.

Encoder-decoder models: block ``layer`` of each stack (checked against each stack's depth),
each attributed on its own, as captum's layer methods with that one block as the layer (the
model's inputs as given, the baseline block output that of the all-zero inputs). The encoder's
block then reaches the score through every cross-attention of the decoder; replacing both
blocks at once (captum with a list of layers) would cut the encoder off whenever the decoder's
block is its last, leaving it nothing. So ``layer_ig`` integrates once per stack (twice the
forward passes), and each stack's attributions sum to f(x) minus the score with that block's
output at its baseline; the reported completeness error is the larger of the two stacks'.
The result is one (targets, positions, hidden) tensor per stack, the encoder's and the
decoder's. Main-stack positions after a target's column are zero (the target's score does not
depend on them; the mask makes that exact).

A block whose output is computed more than once per forward pass (weights shared between
layers) has no single output to attribute to: :class:`UnsupportedMethodError`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

from .batched import gradients_per_target
from .methods import integrated_gradients_with, source_mask
from .problem import Problem
from .registry import MethodOutput, Options, UnsupportedMethodError, register


@dataclass
class LayerProblem(Problem):
    """A problem whose attributed inputs are block outputs, for the batched gradient and IG
    machinery of the input methods.

    ``embeds`` holds the output a(x), (1, positions, hidden), of each block in ``blocks`` (not
    one per stack: only ``embeds`` and ``scores`` are meant to be used); ``scores(*acts)`` runs
    the model on the real input embeddings ``inputs`` with each block's hidden-state output
    replaced by ``acts`` (a batch of them).
    """

    inputs: tuple[torch.Tensor, ...] = ()
    blocks: tuple[nn.Module, ...] = ()

    def scores(self, *acts: torch.Tensor) -> torch.Tensor:
        """(batch, targets): the scores with the blocks' outputs set to ``acts``."""
        batch = acts[0].shape[0]
        inputs = tuple(x.expand(batch, *x.shape[1:]) for x in self.inputs)
        values, _ = block_outputs(super().scores, self.blocks, inputs, acts)
        return values


def chosen_blocks(problem: Problem, options: Options) -> tuple[nn.Module, ...]:
    """Block ``options.layer`` of each stack of the problem (a clear error when out of range)."""
    blocks = []
    for stack in problem.stacks():
        layers = problem.spec.stacks[stack].blocks
        blocks.append(layers[options.block(len(layers), len(layers) // 2)])
    return tuple(blocks)


def block_outputs(
    scores: Callable[..., torch.Tensor],
    blocks: Sequence[nn.Module],
    inputs: tuple[torch.Tensor, ...],
    replace: Sequence[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``scores(*inputs)`` and each block's hidden-state output in that forward pass; with
    ``replace``, block i outputs ``replace[i]`` instead. The hooks exist only for the call."""
    seen: list[list[torch.Tensor]] = [[] for _ in blocks]

    def hook(index: int) -> Callable:
        def run(module: nn.Module, args: tuple, output: object) -> object:
            hidden = output[0] if isinstance(output, tuple) else output
            if not isinstance(hidden, torch.Tensor):
                raise UnsupportedMethodError(
                    f"{type(module).__name__} returns {type(hidden).__name__}, not a hidden-state tensor; "
                    "the layer methods need a block that outputs its hidden states. Use an input method (ig, grad_x_input)."
                )
            if seen[index]:
                raise UnsupportedMethodError(
                    f"{type(module).__name__} runs more than once per forward pass (weights shared between layers), "
                    "so its output is not one activation to attribute to. Use an input method (ig, grad_x_input)."
                )
            if replace is None:
                seen[index].append(hidden)
                return None
            new = replace[index].to(hidden.dtype)
            if new.shape != hidden.shape:
                raise UnsupportedMethodError(
                    f"{type(module).__name__} outputs {tuple(hidden.shape)} but the layer method gives it "
                    f"{tuple(new.shape)}; its output does not follow the input's positions."
                )
            seen[index].append(new)
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return run

    handles = [block.register_forward_hook(hook(i)) for i, block in enumerate(blocks)]
    try:
        values = scores(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    if any(not outs for outs in seen):
        raise UnsupportedMethodError("A chosen block did not run in the forward pass; the layer methods cannot read its output.")
    return values, [outs[0] for outs in seen]


def _masked(problem: Problem, attributions: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Zero at the positions that are not sources of a target (main stack after its column)."""
    return tuple(
        a * source_mask(problem, i, a.shape[1]).to(a.device, a.dtype)[:, :, None] for i, a in enumerate(attributions)
    )


@register("layer_grad_x_act", "Layer gradient × activation")
def layer_grad_x_act(problem: Problem, options: Options) -> MethodOutput:
    """a(x) * dF/da(x) at block ``options.layer`` of each stack, every target at once."""
    blocks = chosen_blocks(problem, options)
    xs = tuple(x.detach().requires_grad_(True) for x in problem.embeds)  # keeps the graph with frozen weights
    with torch.enable_grad():
        values, acts = block_outputs(problem.scores, blocks, xs)
    grads = gradients_per_target(values, tuple(acts), options.internal_batch_size)
    return MethodOutput(_masked(problem, [g[:, 0] * a[0].detach() for g, a in zip(grads, acts)]))


@register("layer_ig", "Layer integrated gradients")
def layer_ig(problem: Problem, options: Options) -> MethodOutput:
    """Integrated gradients at block ``options.layer`` of each stack, from the block outputs of
    the zero embedding to those of the input, with completeness errors."""
    blocks = chosen_blocks(problem, options)
    with torch.no_grad():
        ends = tuple(torch.cat([x, torch.zeros_like(x)]) for x in problem.embeds)
        _, outs = block_outputs(problem.scores, blocks, ends)
    values = {f.name: getattr(problem, f.name) for f in fields(Problem)}
    attributions, errors, steps = [], [], 0
    for block, out in zip(blocks, outs):
        layered = LayerProblem(**{**values, "embeds": (out[:1].detach(),)}, inputs=problem.embeds, blocks=(block,))
        result = integrated_gradients_with(layered, options, (out[1:].detach(),))
        attributions.append(result.attributions[0])
        errors.append(result.completeness_error)
        steps += result.n_steps
    return MethodOutput(_masked(problem, attributions), np.max(errors, axis=0), steps)
