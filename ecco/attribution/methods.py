"""The nine attribution methods of Ecco, registered by name.

Every method explains all targets of a :class:`Problem` together and returns, per input,
(targets, positions, hidden) attributions to the input embeddings. Choices (see
docs/attribution.md):

- baselines: all-zero embeddings (IG, DeepLift); DeepLiftShap averages DeepLift over the zero
  embedding and ``shap_baselines - 1`` sequences of random vocabulary embeddings (seeded);
- ``saliency`` is |gradient| (captum's default), ``gb`` / ``deconv`` return the modified
  gradient, as captum does;
- ``gg`` multiplies guided backprop by a Grad-CAM map over positions taken at the output of
  block ``gradcam_layer`` (default the last) of each stack;
- ``dl`` / ``dls`` run captum's DeepLift / DeepLiftShap on a module wrapping the model, with
  the rescale rule extended to GELU/SiLU activation modules;
- ``lrp`` explains the target's logit (for a contrastive target the log-probability
  difference, which is a logit difference) with the transformer rules of Ali et al. (2022):
  normalisation scales and attention probabilities are held constant, activations pass
  relevance through (identity rule), gated products split it evenly, linear layers use the
  0-rule (via gradient x input on that modified graph).
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from .batched import gradients_per_target, integrated_gradients, target_gradients, warn_unconverged
from .problem import Problem
from .registry import MethodOutput, Options, register
from .rules import activation_modules, activation_rule


@register("saliency", "Gradient saliency")
def saliency(problem: Problem, options: Options) -> MethodOutput:
    grads = target_gradients(problem, problem.embeds, options.internal_batch_size)
    return MethodOutput(tuple(g[:, 0].abs() for g in grads))


@register("grad_x_input", "Input × gradient")
def grad_x_input(problem: Problem, options: Options) -> MethodOutput:
    grads = target_gradients(problem, problem.embeds, options.internal_batch_size)
    return MethodOutput(tuple(g[:, 0] * x[0] for g, x in zip(grads, problem.embeds)))


@register("ig", "Integrated gradients")
def ig(problem: Problem, options: Options) -> MethodOutput:
    result = integrated_gradients(
        problem,
        options.n_steps,
        tolerance=options.tolerance,
        max_steps=options.max_steps,
        step_chunk=options.step_chunk,
        target_chunk=options.internal_batch_size,
    )
    if options.n_steps == "auto":
        warn_unconverged(result, options.tolerance)
    return MethodOutput(result.attributions, result.completeness_error, result.n_steps)


def _modified_gradients(problem: Problem, options: Options, rule: str) -> tuple[torch.Tensor, ...]:
    with activation_rule(problem.model, rule):
        grads = target_gradients(problem, problem.embeds, options.internal_batch_size)
    return tuple(g[:, 0] for g in grads)


@register("gb", "Guided backpropagation")
def guided_backprop(problem: Problem, options: Options) -> MethodOutput:
    return MethodOutput(_modified_gradients(problem, options, "guided"))


@register("deconv", "Deconvolution")
def deconvolution(problem: Problem, options: Options) -> MethodOutput:
    return MethodOutput(_modified_gradients(problem, options, "deconv"))


@register("gg", "Guided Grad-CAM")
def guided_gradcam(problem: Problem, options: Options) -> MethodOutput:
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
        if not -len(layers) <= options.gradcam_layer < len(layers):
            raise ValueError(
                f"gradcam_layer={options.gradcam_layer} is out of range for the {stack} with {len(layers)} blocks."
            )
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
        counts = _source_counts(problem, stack_index, act.shape[1])
        weights = grad[:, 0].sum(dim=1) / counts[:, None]
        cam = torch.relu(torch.einsum("kh,th->kt", weights, act[0].detach()))
        cams.append(cam * _source_mask(problem, stack_index, act.shape[1]))
    return tuple(cams)


def _source_mask(problem: Problem, stack_index: int, length: int) -> torch.Tensor:
    """(targets, positions) 1 where a position of this input is a source of the target."""
    positions = torch.arange(length)
    if problem.kind == "enc-dec" and stack_index == 0:
        return torch.ones((problem.n_targets, length))
    return (positions[None, :] <= problem.positions.cpu()[:, None]).float()


def _source_counts(problem: Problem, stack_index: int, length: int) -> torch.Tensor:
    return _source_mask(problem, stack_index, length).sum(dim=1).to(problem.embeds[0].device)


class _ScoreModule(nn.Module):
    """The model as captum's module-based methods need it: embeddings in, scores out."""

    def __init__(self, problem: Problem):
        super().__init__()
        self.model = problem.model
        self._scores = problem.scores

    def forward(self, *embeds: torch.Tensor) -> torch.Tensor:
        return self._scores(*embeds)


@contextlib.contextmanager
def _deeplift_rules(model: nn.Module) -> Iterator[None]:
    """Give captum's rescale rule to the activation classes transformers use (GELU, SiLU, ...)."""
    from captum.attr._core import deep_lift

    table = deep_lift.SUPPORTED_NON_LINEAR
    added = [type(m) for m in activation_modules(model) if type(m) not in table]
    for cls in added:
        table[cls] = deep_lift.nonlinear
    try:
        yield
    finally:
        for cls in added:
            table.pop(cls, None)


def _captum_rows(problem: Problem, options: Options, attribute) -> tuple[torch.Tensor, ...]:
    """Run a captum method with one input row per target (chunks of ``internal_batch_size``)."""
    n = problem.n_targets
    chunk = options.internal_batch_size or n
    parts = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        rows = tuple(e.expand(stop - start, -1, -1).clone() for e in problem.embeds)
        with warnings.catch_warnings():  # captum's notices about hooks and requires_grad
            warnings.simplefilter("ignore", UserWarning)
            parts.append(attribute(rows, list(range(start, stop))))
    return tuple(torch.cat([p[i] for p in parts]).detach() for i in range(len(problem.embeds)))


def _completeness(problem: Problem, attributions, baselines) -> np.ndarray:
    with torch.no_grad():
        ends = problem.scores(*(torch.cat([x, b]) for x, b in zip(problem.embeds, baselines)))
    delta = (ends[0] - ends[1]).double().cpu()
    total = sum(a.sum(dim=(1, 2)) for a in attributions).double().cpu()
    return ((total - delta).abs() / delta.abs().clamp_min(1e-12)).numpy()


@register("dl", "DeepLift")
def deeplift(problem: Problem, options: Options) -> MethodOutput:
    from captum.attr import DeepLift

    method = DeepLift(_ScoreModule(problem))
    zeros = tuple(torch.zeros_like(e) for e in problem.embeds)

    def attribute(rows, targets):
        base = tuple(torch.zeros_like(r) for r in rows)
        result = method.attribute(rows if len(rows) > 1 else rows[0], base if len(base) > 1 else base[0], target=targets)
        return result if isinstance(result, tuple) else (result,)

    with _deeplift_rules(problem.model), torch.enable_grad():
        attributions = _captum_rows(problem, options, attribute)
    return MethodOutput(attributions, _completeness(problem, attributions, zeros))


def shap_baselines(problem: Problem, options: Options) -> tuple[torch.Tensor, ...]:
    """The zero embedding and ``shap_baselines - 1`` random-vocabulary sequences (seeded)."""
    embedding = problem.spec.embeddings
    generator = torch.Generator().manual_seed(options.seed)
    count = max(2, options.shap_baselines)
    out = []
    for e in problem.embeds:
        ids = torch.randint(0, embedding.num_embeddings, (count - 1, e.shape[1]), generator=generator)
        with torch.no_grad():
            random = embedding(ids.to(e.device)).to(e.dtype)
        out.append(torch.cat([torch.zeros_like(e), random]))
    return tuple(out)


@register("dls", "DeepLiftShap")
def deeplift_shap(problem: Problem, options: Options) -> MethodOutput:
    from captum.attr import DeepLiftShap

    method = DeepLiftShap(_ScoreModule(problem))
    baselines = shap_baselines(problem, options)

    def attribute(rows, targets):
        result = method.attribute(
            rows if len(rows) > 1 else rows[0], baselines if len(baselines) > 1 else baselines[0], target=targets
        )
        return result if isinstance(result, tuple) else (result,)

    with _deeplift_rules(problem.model), torch.enable_grad():
        attributions = _captum_rows(problem, options, attribute)
    return MethodOutput(attributions)
