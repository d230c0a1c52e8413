"""Attention-based attribution: raw attention, attention rollout and value zeroing.

Each method gives, per target k (predicted at main-stack column t = ``positions[k]``), one
non-negative score per source token, returned as (targets, positions, 1) like occlusion; main-stack
positions after t get 0. All three read the main stack's self-attention, and all run with eager
attention (the weights of every layer are transformers' ``output_attentions``).

- ``attention`` (raw attention): row t of block ``options.layer``'s attention weights (default the
  last block), over heads by ``options.heads``: their mean, their maximum, or one head.
- ``rollout`` (Abnar & Zuidema 2020): per layer the head-averaged weights A, with the residual
  connection as Ã = 0.5 A + 0.5 I, rows renormalised to sum to 1, multiplied from the first
  layer to the last, R = Ã_L ... Ã_1; the score of source j is R[t, j].
- ``value_zeroing`` (Mohebbi et al. 2023, "Quantifying Context Mixing in Transformers"): for
  block l and token j, the block is run with token j's value vectors zeroed in every head, and
  C_l[i, j] is the cosine distance between token i's output representation of the block (its
  output hidden state: after the residual additions, and after the block's own final
  LayerNorm in post-LN models such as BERT, as in the paper; pre-LN models' blocks end with the
  residual addition) with and without zeroing. Each row i is normalised over j to sum to 1,
  and, as the paper does across layers, the per-layer matrices are rolled out,
  R = C_L ... C_1, without the 0.5 I of attention rollout, since C already measures the
  residual path (the authors' toolkit rolls out such residual-aware matrices with ``res=False``);
  the score of j is R[t, j].

Value zeroing runs the model once to record each block's inputs (hooks on the blocks, removed
after), then calls each block with a batch of one row per source token plus one: row j zeroes
token j's values, the last row zeroes nothing and is the reference. ``internal_batch_size``
(default 32) tokens go in one call, so a block is called once per 32 positions (the attention
of such a batch holds rows x heads x positions^2 weights). The values are zeroed where the
attention uses them, after the projection (bias included), rotary embeddings and grouped key/
value heads, so no projection layout (fused ``c_attn``, ``qkv_proj``) is needed: the model's
attention runs through a function registered in transformers' ``AttentionInterface`` that calls
the model's own eager attention with the zeroed values, or, for families whose attention does
not go through the interface, through the attention core method the registry names
(``ArchSpec.attention_core``), wrapped on the model's own modules for the duration of the call.

Encoder-decoder models are refused (``UnsupportedMethodError``): the decoder's self-attention
alone misses the encoder, whose tokens enter through cross-attention, which has no residual
path of its own for rollout to follow; ecco does not define a combination of the stacks.
"""
from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

import torch
from torch import nn

from .problem import Problem
from .registry import MethodOutput, Options, UnsupportedMethodError, register

_ATTENTION = "ecco_value_zeroing"
"""Name of value zeroing's attention function in transformers' AttentionInterface."""

_REGISTERED = threading.Lock()
_ZEROED: ContextVar[tuple[set[int], set[int], torch.Tensor] | None] = ContextVar("ecco_value_zeroing", default=None)
_DEFAULT_BATCH = 32  # value zeroing: zeroed tokens per call of a block
_OTHERS = "Use 'occlusion' or 'ig' for this model."


def _single_stack(problem: Problem, label: str) -> None:
    """Refuse encoder-decoder models (see the module docstring)."""
    if len(problem.embeds) != 1:
        raise UnsupportedMethodError(
            f"{label} is defined on one stack of self-attention; {problem.spec.arch} is an encoder-decoder model, "
            "whose decoder self-attention misses the encoder tokens (they enter through cross-attention). "
            f"{_OTHERS}"
        )


def _attention_weights(problem: Problem) -> list[torch.Tensor]:
    """Every block's self-attention weights for the problem's input, (heads, positions, positions)."""
    out = problem.runner.forward(inputs_embeds=problem.embeds[0], output_attentions=True, use_cache=False)
    weights = getattr(out, "attentions", None)
    if not weights or any(w is None for w in weights):
        raise UnsupportedMethodError(f"{type(problem.model).__name__} does not return its attention weights. {_OTHERS}")
    return [w[0].detach().double() for w in weights]


def _rows(problem: Problem, matrix: torch.Tensor) -> MethodOutput:
    """Row t of a (positions, positions) matrix for each target, zero after t: (targets, positions, 1)."""
    rows = matrix[problem.positions]
    columns = torch.arange(matrix.shape[1], device=matrix.device)
    rows = rows * (columns[None, :] <= problem.positions[:, None])
    return MethodOutput((rows.unsqueeze(-1).to(problem.embeds[0].dtype),))


def rollout(matrices: Sequence[torch.Tensor], residual: bool) -> torch.Tensor:
    """R = M_L ... M_1 of per-layer (positions, positions) mixing matrices; with ``residual``,
    each is first 0.5 M + 0.5 I; rows are renormalised to sum to 1."""
    eye = torch.eye(matrices[0].shape[-1], dtype=matrices[0].dtype, device=matrices[0].device)
    joint = eye
    for matrix in matrices:
        mixed = 0.5 * matrix + 0.5 * eye if residual else matrix
        joint = (mixed / mixed.sum(-1, keepdim=True).clamp_min(1e-30)) @ joint
    return joint


@register("attention", "Raw attention", eager_attention=True)
@torch.no_grad()
def raw_attention(problem: Problem, options: Options) -> MethodOutput:
    """Block ``options.layer``'s attention weights from each target's column, over heads by
    ``options.heads`` ('mean', 'max' or one head)."""
    _single_stack(problem, "Raw attention")
    layer = options.block(problem.spec.main_stack.n_layers, -1)
    weights = _attention_weights(problem)
    heads = weights[layer]
    if options.heads == "mean":
        matrix = heads.mean(0)
    elif options.heads == "max":
        matrix = heads.amax(0)
    elif options.heads < heads.shape[0]:
        matrix = heads[options.heads]
    else:
        raise ValueError(
            f"heads={options.heads} is out of range: block {layer} has {heads.shape[0]} attention heads, so give "
            f"'mean', 'max' or a head from 0 to {heads.shape[0] - 1}."
        )
    return _rows(problem, matrix)


@register("rollout", "Attention rollout", eager_attention=True)
@torch.no_grad()
def attention_rollout(problem: Problem, options: Options) -> MethodOutput:
    """Attention rollout (Abnar & Zuidema 2020) of the head-averaged weights, read at each target's column."""
    _single_stack(problem, "Attention rollout")
    weights = _attention_weights(problem)
    return _rows(problem, rollout([w.mean(0) for w in weights], residual=True))


# ------------------------------------------------------------------ value zeroing
def _zero_values(value: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Values (rows, heads, positions, dim) with row r's values of token ``tokens[r]`` zeroed;
    the last row (the reference) keeps all of them."""
    rows, positions = value.shape[0], value.shape[-2]
    if rows != len(tokens) + 1:
        raise UnsupportedMethodError(
            f"value zeroing expected {len(tokens) + 1} batch rows, got {rows}: the attention does not see the "
            f"batch ecco built. {_OTHERS}"
        )
    keep = torch.ones(rows, 1, positions, 1, dtype=value.dtype, device=value.device)
    keep[torch.arange(len(tokens), device=value.device), 0, tokens.to(value.device), 0] = 0
    return value * keep


def zeroing_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """The module's own eager attention; inside a value-zeroing call, the modules of the block
    being measured see each row's token's values zeroed. Registered as ``ecco_value_zeroing``."""
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:
        raise UnsupportedMethodError(f"{type(module).__name__} has no eager attention function ecco can call. {_OTHERS}")
    state = _ZEROED.get()
    if state is not None and id(module) in state[0]:
        state[1].add(id(module))
        value = _zero_values(value, state[2])
    return eager(module, query, key, value, *args, **kwargs)


def _register_attention() -> None:
    """Register :func:`zeroing_attention` (and the eager mask for it) once; idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    with _REGISTERED:
        AttentionInterface.register(_ATTENTION, zeroing_attention)
        AttentionMaskInterface.register(_ATTENTION, eager_mask)


@contextlib.contextmanager
def _core_zeroing(modules: list[nn.Module], name: str, called: set[int], tokens: torch.Tensor) -> Iterator[None]:
    """Within the block, the attention core method ``name`` of ``modules`` zeroes each row's
    token's values (an instance attribute on each module, removed after; the class is not touched)."""

    def zeroing(module: nn.Module, core):
        def call(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args, **kwargs):
            called.add(id(module))
            return core(query, key, _zero_values(value, tokens), *args, **kwargs)

        return call

    try:
        for module in modules:
            setattr(module, name, zeroing(module, getattr(module, name)))
        yield
    finally:
        for module in modules:
            module.__dict__.pop(name, None)


@contextlib.contextmanager
def _values_zeroed(problem: Problem, block: nn.Module, layer: int, tokens: torch.Tensor) -> Iterator[None]:
    """Within the block, the attention of ``block`` zeroes the values of token ``tokens[r]`` in
    batch row r; the model's attention implementation comes back after, and the block must have used it."""
    model, core = problem.model, problem.spec.family.attention_core
    called: set[int] = set()
    if core:
        with _core_zeroing([m for m in block.modules() if callable(getattr(type(m), core, None))], core, called, tokens):
            yield
    else:
        _register_attention()
        before = model.config._attn_implementation
        model.set_attn_implementation(_ATTENTION)
        token = _ZEROED.set(({id(m) for m in block.modules()}, called, tokens))
        try:
            if model.config._attn_implementation != _ATTENTION:
                raise UnsupportedMethodError(
                    f"{type(model).__name__} cannot switch its attention to an AttentionInterface function, so ecco "
                    f"cannot zero its value vectors. {_OTHERS}"
                )
            yield
        finally:
            _ZEROED.reset(token)
            model.set_attn_implementation(before)
    if not called:
        raise UnsupportedMethodError(
            f"the attention of block {layer} does not go through transformers' AttentionInterface (or an attention "
            f"core method the registry names), so ecco cannot zero its value vectors. {_OTHERS}"
        )


@contextlib.contextmanager
def _recording_inputs(blocks: Sequence[nn.Module]) -> Iterator[list[tuple[tuple, dict]]]:
    """Within the block, each block's call arguments (args, kwargs) are recorded in order."""
    calls: list[tuple[tuple, dict]] = []
    handles = []
    try:
        for block in blocks:
            handles.append(block.register_forward_pre_hook(lambda _, args, kwargs: calls.append((args, kwargs)),
                                                           with_kwargs=True))
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def _batched(value: object, rows: int) -> object:
    """A recorded block argument for ``rows`` batch rows: tensors with a batch dimension of 1
    (two or more dimensions) repeated, tuples, lists and dicts element by element, the rest as is."""
    if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[0] == 1:
        return value.expand(rows, *value.shape[1:]).contiguous()
    if isinstance(value, (tuple, list)):
        return type(value)(_batched(v, rows) for v in value)
    if isinstance(value, dict):
        return {key: _batched(v, rows) for key, v in value.items()}
    return value


def _mixing(problem: Problem, block: nn.Module, layer: int, call: tuple[tuple, dict], chunk: int) -> torch.Tensor:
    """C_l[i, j]: cosine distance of token i's block output with token j's values zeroed, rows
    normalised; one call of the block per ``chunk`` tokens j (plus the reference row)."""
    positions = problem.embeds[0].shape[1]
    distances = []
    for start in range(0, positions, chunk):
        tokens = torch.arange(start, min(start + chunk, positions))
        args, kwargs = _batched(call, len(tokens) + 1)
        with _values_zeroed(problem, block, layer, tokens):
            out = problem.runner.call(block, *args, **kwargs)
        hidden = (out[0] if isinstance(out, tuple) else out).double()  # (rows j + reference, i, hidden)
        distances.append(1 - torch.cosine_similarity(hidden[:-1], hidden[-1:], dim=-1))
    distance = torch.cat(distances).T.clamp_min(0)  # (i, j)
    return distance / distance.sum(-1, keepdim=True).clamp_min(1e-30)


@register("value_zeroing", "Value zeroing", eager_attention=True)
@torch.no_grad()
def value_zeroing(problem: Problem, options: Options) -> MethodOutput:
    """Value zeroing (Mohebbi et al. 2023): per block, how much each token's output moves when
    each source's values are zeroed, rolled out over the blocks, read at each target's column."""
    _single_stack(problem, "Value zeroing")
    blocks = problem.spec.main_stack.blocks
    with _recording_inputs(blocks) as calls:
        problem.runner.forward(inputs_embeds=problem.embeds[0], use_cache=False)
    if len(calls) != len(blocks):
        raise UnsupportedMethodError(f"{len(calls)} block calls were seen for {len(blocks)} blocks. {_OTHERS}")
    chunk = options.internal_batch_size or _DEFAULT_BATCH
    matrices = [_mixing(problem, block, layer, calls[layer], chunk) for layer, block in enumerate(blocks)]
    return _rows(problem, rollout(matrices, residual=False))
