"""Layer-wise relevance propagation for transformers, as gradient x input on a modified graph.

Following Ali et al. (2022, "XAI for Transformers: better explanations through conservative
propagation") and the AttnLRP rules of Achtibat et al. (2024), the forward pass is changed so
that its gradient implements LRP's rules while its values stay exactly the same:

- normalisation (LayerNorm, RMSNorm): the scale 1/std is held constant (LN-rule);
- attention: the softmax probabilities are held constant (AH-rule), so relevance flows through
  the values only (eager attention is used so the softmax is visible);
- elementwise activations (GELU, SiLU, ReLU, ...): relevance passes through (identity rule);
- gated FFN products act(gate) * up: relevance is split evenly between the two (uniform rule);
- linear layers: the 0-rule, which gradient x input realises once the above hold.

For a bias-free model (Llama-style) relevance is then conserved: it sums to the explained
logit. A normalisation whose formula is not a LayerNorm or RMSNorm, or a gated FFN of an
unknown layout, raises an error instead of giving non-conservative relevance.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .batched import target_gradients
from .problem import Problem
from .registry import MethodOutput, Options, register
from .rules import activation_modules

_GATED_LAYOUTS = (("act_fn", "up_proj"), ("act", "wi_1"))


def _is_norm(module: nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, nn.LayerNorm) or name.endswith(("RMSNorm", "LayerNorm"))


def _norm_candidates(module: nn.Module, x: torch.Tensor) -> Iterator[torch.Tensor]:
    """The norm recomputed with its scale detached, under each formula ecco knows."""
    eps = getattr(module, "eps", None) or getattr(module, "variance_epsilon", None) or 1e-6
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    xf = x.float()
    centred = xf - xf.mean(-1, keepdim=True)
    layer = centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps).detach()
    rms = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps).detach()
    for normalised in (layer, rms):
        if weight is None:
            yield normalised
            continue
        for scale in (weight, 1.0 + weight):
            out = normalised * scale.float()
            yield (out + bias.float() if bias is not None else out).to(x.dtype)


def _norm_rule(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    for candidate in _norm_candidates(module, args[0]):
        if candidate.shape == output.shape and torch.allclose(candidate, output, atol=1e-4, rtol=1e-3):
            return candidate
    raise ValueError(
        f"LRP: {type(module).__name__} is not a LayerNorm or RMSNorm ecco can hold constant, so relevance "
        "through it would not be conserved. Use 'ig' or 'grad_x_input' for this model."
    )


def _identity_rule(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    x = args[0]
    ratio = torch.where(x.abs() > 1e-12, output / torch.where(x == 0, torch.ones_like(x), x), torch.zeros_like(x))
    linear = x * ratio.detach()
    return linear + (output - linear).detach()


def _gated_pairs(problem: Problem) -> list[tuple[nn.Module, nn.Module, nn.Module]]:
    """(activation, up projection, FFN output projection) for each gated FFN."""
    parents = {id(child): parent for parent in problem.model.modules() for child in parent.children()}
    pairs = []
    for stack in problem.spec.stacks.values():
        for ffn_out in stack.ffn_out:
            parent = parents.get(id(ffn_out))
            for act_name, up_name in _GATED_LAYOUTS:
                if parent is not None and hasattr(parent, act_name) and hasattr(parent, up_name):
                    pairs.append((getattr(parent, act_name), getattr(parent, up_name), ffn_out))
    return pairs


@contextlib.contextmanager
def lrp_rules(problem: Problem) -> Iterator[None]:
    """Apply the rules above to ``problem.model`` inside the block (hooks removed after)."""
    model = problem.model
    handles = [m.register_forward_hook(_norm_rule) for m in model.modules() if _is_norm(m)]
    handles += [m.register_forward_hook(_identity_rule) for m in activation_modules(model)]
    for act, up, ffn_out in _gated_pairs(problem):
        seen: dict[str, torch.Tensor] = {}
        handles.append(act.register_forward_hook(lambda m, a, out, seen=seen: seen.__setitem__("act", out)))
        handles.append(up.register_forward_hook(lambda m, a, out, seen=seen: seen.__setitem__("up", out)))

        def uniform(module: nn.Module, args: tuple, seen=seen) -> tuple[torch.Tensor]:
            a, u = seen.pop("act"), seen.pop("up")
            product = args[0]
            if a.shape != product.shape or not torch.allclose(a * u, product, atol=1e-5, rtol=1e-4):
                raise ValueError(f"LRP: the gated FFN feeding {type(module).__name__} has an unknown layout.")
            split = 0.5 * (a * u.detach() + a.detach() * u)
            return (split + (product - split).detach(),)

        handles.append(ffn_out.register_forward_pre_hook(uniform))
    softmax = nn.functional.softmax
    nn.functional.softmax = lambda *a, **k: softmax(*a, **k).detach()  # AH-rule inside attention
    try:
        yield
    finally:
        nn.functional.softmax = softmax
        for handle in handles:
            handle.remove()


@register("lrp", "Layer-wise relevance propagation", eager_attention=True)
def lrp(problem: Problem, options: Options) -> MethodOutput:
    explained = problem if problem.foil_ids is not None else problem.with_score("logit")
    with lrp_rules(explained):
        grads = target_gradients(explained, explained.embeds, options.internal_batch_size)
    relevance = tuple(g[:, 0] * x[0] for g, x in zip(grads, explained.embeds))
    with torch.no_grad():
        value = explained.scores(*explained.embeds)[0].double().cpu()
    total = sum(r.sum(dim=(1, 2)) for r in relevance).double().cpu()
    conservation = ((total - value).abs() / value.abs().clamp_min(1e-12)).numpy()
    return MethodOutput(relevance, conservation, explained=None if problem.foil_ids is not None else "logit")
