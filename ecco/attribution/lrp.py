"""Layer-wise relevance propagation for transformers, as gradient x input on a modified graph.

Following Ali et al. (2022, "XAI for Transformers: better explanations through conservative
propagation") and the AttnLRP rules of Achtibat et al. (2024), the forward pass is changed so
that its gradient implements LRP's rules while its values stay exactly the same:

- normalisation (LayerNorm, RMSNorm): the scale 1/std is held constant (LN-rule);
- attention: the softmax probabilities are held constant (AH-rule), so relevance flows through
  the values only. The model's attention runs through an attention function registered in
  transformers' ``AttentionInterface``: it calls the model's own eager attention and gives
  its output the gradient of ``probabilities.detach() @ values`` (nothing global is patched);
- elementwise activations (GELU, SiLU, ReLU, ...): relevance passes through (identity rule);
- gated FFN products act(gate) * up (layouts from the registry entry's ``gates``, fused
  gate-up projections included): relevance is split evenly between the two (uniform rule);
  an FFN output projection with no known layout must read an activation's output;
- linear layers: the 0-rule, which gradient x input realises once the above hold.

For a bias-free model (Llama-style) relevance is then conserved: it sums to the explained
logit. Families whose attention does not go through the interface (GPT-Neo, GPT-J) name
their attention core method in the registry (``attention_core``); it is held the same way, on
the model's own modules for the duration of the call. A normalisation whose formula is not a
LayerNorm or RMSNorm, a gated FFN of an unknown layout, or an attention that goes through
neither raises an error instead of giving non-conservative relevance.
"""
from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn

from ..models.spec import ModelSpec
from .batched import completeness_error, target_gradients
from .problem import Problem
from .registry import MethodOutput, Options, register
from .rules import activation_modules

ATTENTION = "ecco_lrp"
"""Name of LRP's attention function in transformers' AttentionInterface."""

_REGISTERED = threading.Lock()
_CALLERS: ContextVar[set[int] | None] = ContextVar("ecco_lrp_attention_callers", default=None)
_UNSUPPORTED = "Use 'ig' or 'grad_x_input' for this model."


def _with_gradient_of(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """Exactly ``value``, with the gradient of ``surrogate`` (the added term is exactly zero)."""
    return value.detach() + (surrogate - surrogate.detach())


# ------------------------------------------------------------------ attention
def ah_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                 **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """The module's own eager attention; the output's gradient holds the attention
    probabilities constant (AH-rule). Registered as ``ecco_lrp``; it keeps no state: it only
    notes the calling module in the set of the LRP call running in this context."""
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:
        raise ValueError(f"LRP: {type(module).__name__} has no eager attention function ecco can modify. {_UNSUPPORTED}")
    callers = _CALLERS.get()
    if callers is not None:
        callers.add(id(module))
    with torch.no_grad():
        out, weights = eager(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    values = value.repeat_interleave(weights.shape[1] // value.shape[1], dim=1)
    return _held(module, out, (weights.detach().to(values.dtype) @ values).transpose(1, 2)), weights


def _held(module: nn.Module, out: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
    """``out`` with the gradient of ``constant`` (weights held @ values), checked to be equal."""
    tolerance = torch.finfo(out.dtype).eps ** 0.5 * float(out.abs().max().clamp_min(1.0))
    if constant.shape != out.shape or float((constant.detach() - out).abs().max()) > tolerance:
        raise ValueError(
            f"LRP: the attention of {type(module).__name__} is not softmax(...) @ values, so holding its "
            f"probabilities constant would not conserve relevance. {_UNSUPPORTED}"
        )
    return _with_gradient_of(out, constant.to(out.dtype))


def _held_core(module: nn.Module, core, callers: set[int]):
    """The family's attention core method of one module (see ``ArchSpec.attention_core``),
    with its output's gradient holding the weights constant."""

    def held(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args, **kwargs):
        callers.add(id(module))
        with torch.no_grad():
            out, weights = core(query, key, value, *args, **kwargs)
        return _held(module, out, weights.detach().to(value.dtype) @ value), weights

    return held


def _register_attention() -> None:
    """Register :func:`ah_attention` (and the eager mask for it) once; idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    with _REGISTERED:
        AttentionInterface.register(ATTENTION, ah_attention)
        AttentionMaskInterface.register(ATTENTION, eager_mask)


@contextlib.contextmanager
def _core_rule(model: nn.Module, name: str, callers: set[int]) -> Iterator[None]:
    """Within the block, every attention module with the method ``name`` runs it held (the
    module's own instance attribute, removed after; the class is not touched)."""
    modules = [m for m in model.modules() if callable(getattr(type(m), name, None))]
    try:
        for module in modules:
            setattr(module, name, _held_core(module, getattr(module, name), callers))
        yield
    finally:
        for module in modules:
            module.__dict__.pop(name, None)


@contextlib.contextmanager
def _ah_rule(model: nn.Module, spec: ModelSpec) -> Iterator[None]:
    """The model's attention runs through :func:`ah_attention` (or the family's attention
    core method, held) within the block; every block of every stack must have called it."""
    callers: set[int] = set()
    if spec.family.attention_core:
        with _core_rule(model, spec.family.attention_core, callers):
            yield
        _check_called(spec, callers)
        return
    _register_attention()
    before = model.config._attn_implementation
    model.set_attn_implementation(ATTENTION)
    token = _CALLERS.set(callers)
    try:
        if model.config._attn_implementation != ATTENTION:
            raise ValueError(
                f"LRP: {type(model).__name__} cannot switch its attention to an AttentionInterface function, so "
                f"ecco cannot hold its attention probabilities constant. {_UNSUPPORTED}"
            )
        yield
        _check_called(spec, callers)
    finally:
        _CALLERS.reset(token)
        model.set_attn_implementation(before)


def _check_called(spec: ModelSpec, callers: set[int]) -> None:
    """Every block of every stack ran its attention through the held rule."""
    for name, stack in spec.stacks.items():
        for layer, block in enumerate(stack.blocks):
            if not any(id(m) in callers for m in block.modules()):
                raise ValueError(
                    f"LRP: the attention of {name} block {layer} does not go through transformers' "
                    f"AttentionInterface, so ecco cannot hold its probabilities constant. {_UNSUPPORTED}"
                )


# ---------------------------------------------------------------------- norms
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
            return _with_gradient_of(output, candidate)
    raise ValueError(
        f"LRP: {type(module).__name__} is not a LayerNorm or RMSNorm ecco can hold constant, so relevance "
        f"through it would not be conserved. {_UNSUPPORTED}"
    )


def _identity_rule(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    x = args[0]
    ratio = torch.where(x.abs() > 1e-12, output / torch.where(x == 0, torch.ones_like(x), x), torch.zeros_like(x))
    return _with_gradient_of(output, x * ratio.detach())


# ---------------------------------------------------------------- gated FFNs
@dataclass(frozen=True)
class _Gate:
    """One gated FFN: its activation, its up projection (``fused``: gate and up in one, up
    second) and the FFN output projection whose input is act(gate) * up."""

    act: nn.Module
    up: nn.Module
    fused: bool
    ffn_out: nn.Module


def _gates(problem: Problem) -> list[_Gate]:
    """The gated FFNs of the model, by the gate layouts of its registry entry."""
    parents = {id(child): parent for parent in problem.model.modules() for child in parent.children()}
    found = []
    for stack in problem.spec.stacks.values():
        for ffn_out in stack.ffn_out:
            parent = parents.get(id(ffn_out))
            for layout in problem.spec.family.gates:
                if parent is not None and hasattr(parent, layout.act) and hasattr(parent, layout.up):
                    found.append(_Gate(getattr(parent, layout.act), getattr(parent, layout.up), layout.fused, ffn_out))
                    break
    return found


def _uniform_rule(gate: _Gate) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks splitting the relevance of act(gate) * up evenly between its two factors."""
    seen: dict[str, torch.Tensor] = {}

    def keep_act(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen["act"] = out

    def keep_up(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen["up"] = out.chunk(2, dim=-1)[1] if gate.fused else out

    def split(module: nn.Module, args: tuple) -> tuple[torch.Tensor]:
        a, u = seen.pop("act", None), seen.pop("up", None)
        product = args[0]
        if a is None or u is None or a.shape != product.shape or not torch.allclose(a * u, product, atol=1e-5, rtol=1e-4):
            raise ValueError(f"LRP: the gated FFN feeding {type(module).__name__} has an unknown layout. {_UNSUPPORTED}")
        return (_with_gradient_of(product, 0.5 * (a * u.detach() + a.detach() * u)),)

    return [
        gate.act.register_forward_hook(keep_act),
        gate.up.register_forward_hook(keep_up),
        gate.ffn_out.register_forward_pre_hook(split),
    ]


def _plain_ffn_check(problem: Problem, gated: set[int]) -> list[torch.utils.hooks.RemovableHandle]:
    """Hooks checking that every FFN output projection without a gate layout reads an activation
    module's output: anything else (a gated product of an unknown layout, an activation that is
    a plain function call) would not conserve relevance, so it raises instead."""
    seen: dict[str, torch.Tensor] = {}

    def keep(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen["act"] = out

    def check(module: nn.Module, args: tuple) -> None:
        act, x = seen.pop("act", None), args[0]
        if act is None or act.shape != x.shape or not torch.allclose(act, x, atol=1e-6, rtol=1e-5):
            raise ValueError(
                f"LRP: the input of {type(module).__name__} is not the output of an activation module, and "
                f"the registry knows no gated-FFN layout for it, so ecco has no rule for it. {_UNSUPPORTED}"
            )

    ffn_outs = [m for stack in problem.spec.stacks.values() for m in stack.ffn_out if id(m) not in gated]
    return [m.register_forward_hook(keep) for m in activation_modules(problem.model)] + [
        m.register_forward_pre_hook(check) for m in ffn_outs
    ]


@contextlib.contextmanager
def lrp_rules(problem: Problem) -> Iterator[None]:
    """Apply the rules above to ``problem.model`` inside the block (hooks removed and the
    attention implementation restored after)."""
    model = problem.model
    handles = [m.register_forward_hook(_norm_rule) for m in model.modules() if _is_norm(m)]
    handles += [m.register_forward_hook(_identity_rule) for m in activation_modules(model)]
    gates = _gates(problem)
    for gate in gates:
        handles += _uniform_rule(gate)
    handles += _plain_ffn_check(problem, {id(gate.ffn_out) for gate in gates})
    try:
        with _ah_rule(model, problem.spec):
            yield
    finally:
        for handle in handles:
            handle.remove()


@register("lrp", "Layer-wise relevance propagation", eager_attention=True)
def lrp(problem: Problem, options: Options) -> MethodOutput:
    """Relevance of every input dimension for the target's logit (or contrastive score),
    with its conservation error."""
    explained = problem if problem.foil_ids is not None else problem.with_score("logit")
    with lrp_rules(explained):
        grads = target_gradients(explained, explained.embeds, options.internal_batch_size)
    relevance = tuple(g[:, 0] * x[0] for g, x in zip(grads, explained.embeds))
    with torch.no_grad():
        value = explained.scores(*explained.embeds)[0]
    conservation = completeness_error(relevance, value)
    return MethodOutput(relevance, conservation, explained=None if problem.foil_ids is not None else "logit")
