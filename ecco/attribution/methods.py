"""The gradient-based attribution methods of Ecco, registered by name (DeepLift in
:mod:`.deeplift`, LRP in :mod:`.lrp`).

Every method explains all targets of a :class:`Problem` together and returns, per input,
(targets, positions, hidden) attributions to the input embeddings. Choices (see
docs/attribution.md):

- baselines: all-zero embeddings (IG, DeepLift); DeepLiftShap averages DeepLift over the zero
  embedding and ``shap_baselines - 1`` sequences of random vocabulary embeddings (seeded);
- ``saliency`` is |gradient| (captum's default), ``gb`` / ``deconv`` return the modified
  gradient, as captum does;
- ``gg`` multiplies guided backprop by a Grad-CAM map over positions taken at the output of
  block ``gradcam_layer`` (default the last) of each stack;
- ``dl`` / ``dls``: DeepLift's rescale rule on every elementwise activation module (GELU,
  SiLU, ReLU, ...), batched over all targets (:mod:`.deeplift`);
- ``lrp`` explains the target's logit (for a contrastive target the log-probability
  difference, which is a logit difference) with the transformer rules of Ali et al. (2022):
  normalisation scales and attention probabilities are held constant, activations pass
  relevance through (identity rule), gated products split it evenly, linear layers use the
  0-rule (via gradient x input on that modified graph).
"""
from __future__ import annotations

import torch
from torch import nn

from .batched import IGResult, gradients_per_target, integrated_gradients, target_gradients, warn_unconverged
from .problem import Problem
from .registry import MethodOutput, Options, register
from .rules import activation_rule


@register("saliency", "Gradient saliency")
def saliency(problem: Problem, options: Options) -> MethodOutput:
    """|d score / d embedding| of every target."""
    grads = target_gradients(problem, problem.embeds, options.internal_batch_size)
    return MethodOutput(tuple(g[:, 0].abs() for g in grads))


@register("grad_x_input", "Input × gradient")
def grad_x_input(problem: Problem, options: Options) -> MethodOutput:
    """Gradient x input embedding of every target."""
    grads = target_gradients(problem, problem.embeds, options.internal_batch_size)
    return MethodOutput(tuple(g[:, 0] * x[0] for g, x in zip(grads, problem.embeds)))


@register("ig", "Integrated gradients")
def ig(problem: Problem, options: Options) -> MethodOutput:
    """Integrated gradients from the zero embedding, with completeness errors."""
    result = integrated_gradients_with(problem, options)
    return MethodOutput(result.attributions, result.completeness_error, result.n_steps)


def integrated_gradients_with(problem: Problem, options: Options, baselines: tuple[torch.Tensor, ...] | None = None
                              ) -> IGResult:
    """:func:`.batched.integrated_gradients` with the steps, tolerance and chunks of ``options``
    (a warning when ``n_steps='auto'`` did not converge)."""
    result = integrated_gradients(
        problem,
        options.n_steps,
        baselines,
        tolerance=options.tolerance,
        max_steps=options.max_steps,
        step_chunk=options.step_chunk,
        target_chunk=options.internal_batch_size,
    )
    if options.n_steps == "auto":
        warn_unconverged(result, options.tolerance)
    return result


def _modified_gradients(problem: Problem, options: Options, rule: str) -> tuple[torch.Tensor, ...]:
    with activation_rule(problem.model, rule):
        grads = target_gradients(problem, problem.embeds, options.internal_batch_size)
    return tuple(g[:, 0] for g in grads)


@register("gb", "Guided backpropagation")
def guided_backprop(problem: Problem, options: Options) -> MethodOutput:
    """Gradient with the guided rule at every activation module."""
    return MethodOutput(_modified_gradients(problem, options, "guided"))


@register("deconv", "Deconvolution")
def deconvolution(problem: Problem, options: Options) -> MethodOutput:
    """Gradient with the deconvolution rule at every activation module."""
    return MethodOutput(_modified_gradients(problem, options, "deconv"))


@register("gg", "Guided Grad-CAM")
def guided_gradcam(problem: Problem, options: Options) -> MethodOutput:
    """Guided backpropagation times the Grad-CAM map of each target."""
    cams = gradcam(problem, options)
    guided = _modified_gradients(problem, options, "guided")
    return MethodOutput(tuple(g * cam[:, :, None] for g, cam in zip(guided, cams)))


def gradcam(problem: Problem, options: Options) -> tuple[torch.Tensor, ...]:
    """Grad-CAM over positions (targets, positions) per input.

    With A the output of the chosen block and g = d score_k / d A, the weight of hidden unit
    h is the mean of g over the target's source positions, and the map is
    relu(sum_h weight_h * A[t, h]) at each source position t.
    """
    blocks = []
    for stack in problem.stacks():
        layers = problem.spec.stacks[stack].blocks
        options.check_layers(len(layers))
        blocks.append(layers[options.gradcam_layer])
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple, output) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)

    handles = [block.register_forward_hook(keep) for block in blocks]
    try:
        with torch.enable_grad():
            xs = tuple(x.detach().requires_grad_(True) for x in problem.embeds)
            values = problem.scores(*xs)
    finally:
        for handle in handles:
            handle.remove()
    grads = gradients_per_target(values, tuple(captured), options.internal_batch_size)
    cams = []
    for stack_index, (grad, act) in enumerate(zip(grads, captured)):
        mask = source_mask(problem, stack_index, act.shape[1]).to(act.device)
        weights = grad[:, 0].sum(dim=1) / mask.sum(dim=1)[:, None]
        cam = torch.relu(torch.einsum("kh,th->kt", weights, act[0].detach().to(weights.dtype)))
        cams.append(cam * mask)
    return tuple(cams)


def source_mask(problem: Problem, stack_index: int, length: int) -> torch.Tensor:
    """(targets, positions) 1 where a position of this input is a source of the target."""
    counts = torch.tensor([problem.source_counts(k)[stack_index] for k in range(problem.n_targets)])
    return (torch.arange(length)[None, :] < counts[:, None]).float()
