"""Direct logit attribution: a prediction's logit as the sum of what each part of the model
wrote into the residual stream.

In a pre-norm transformer the last residual state at the predicting column is the plain sum
``r = e + sum_l (attn_l + cross_l + mlp_l)``: the embeddings (with positions) and every
sub-layer's output as added (``residual`` in the registry: sequential, parallel and Gemma 2's
sandwich blocks all add; post-norm families renorm the sum after each sub-layer and are refused).
The logit of token ``t`` is ``head_t(norm(r))``. The final norm is not linear, so its scale is
**frozen at the clean run** (:mod:`.norms`): RMSNorm divides every part by the clean ``r``'s rms;
LayerNorm subtracts each part's own mean and divides by the clean ``r``'s standard deviation; the
gain multiplies every part, the norm's bias goes to the constant term. Then

    logit_t = sum over parts p of  u . frozen_norm(p)  +  u . norm_bias + head_bias_t + logits_bias_t

with ``u`` the head's row of ``t`` (times the lens scale: T5 with tied embeddings), exactly, at
this input; with a foil ``f``, ``u = row_t - row_f`` and the logit difference is explained. A
part's share says how the logit would move were that part's vector removed *with the norm's
scale held fixed*; the real model would also rescale.

Drill-down, on the same forward pass: an attention output is ``sum_h z_h W_O[h] + b_O`` (``z_h``
the head's slice of the output projection's input), so the heads' shares sum to the attention's
share less ``b_O``'s; an MLP output is ``sum_i a_i W_out[i] + b_out`` (``a`` the neuron
activations, the FFN output projection's input), so the neurons' shares sum to the MLP's share
less ``b_out``'s. Gemma 2 norms each sub-layer's output before adding it; that norm is frozen
at its clean input too, so the heads and neurons still sum exactly. Its final logit soft-capping
``c * tanh(z / c)`` is not additive: the pre-cap logit ``z`` is decomposed and ``model_logit`` is
the capped one.

One forward pass; the hooks exist only during it. All arithmetic after the pass is in float64.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..layout import Layout
from ..lens import LensHead
from ..models.spec import Stack
from ..runner import Runner
from . import sites
from .norms import FrozenNorm, freeze


@dataclass
class LogitAttribution:
    """The shares of one logit (or logit difference), float64; ``layers`` rows per array."""

    target: int
    foil: int | None
    column: int  # the main stack's column that predicts the target
    embeddings: float
    attention: np.ndarray  # (layers,) each self-attention output, as added
    mlp: np.ndarray  # (layers,)
    heads: np.ndarray  # (layers, heads): z_h W_O[h] read out; they sum to attention - attention_bias
    attention_bias: np.ndarray  # (layers,) the output projection's bias read out
    neurons: np.ndarray  # (layers, neurons) each neuron's share a_i * (W_out[i] read out)
    activations: np.ndarray  # (layers, neurons) the neuron activations themselves
    mlp_bias: np.ndarray  # (layers,) the FFN output projection's bias read out; neurons sum to mlp - mlp_bias
    bias: float  # final norm bias through the head + head bias + logits bias
    model_logit: float  # the model's own logit (difference) in this pass, after any soft-capping
    norm_scale: float  # the frozen divisor of the final norm (clean std or rms)
    cross_attention: np.ndarray | None = None  # (layers,) encoder-decoder decoders
    cross_heads: np.ndarray | None = None
    cross_attention_bias: np.ndarray | None = None
    softcap: float | None = None  # the logit decomposed is the pre-cap one

    @property
    def logit(self) -> float:
        """The sum of every share and the bias: the (pre-cap) logit or logit difference."""
        cross = 0.0 if self.cross_attention is None else float(self.cross_attention.sum())
        return self.embeddings + float(self.attention.sum() + self.mlp.sum()) + cross + self.bias


def _output(out: object) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


class _Taps:
    """Forward hooks that keep the predicting column of what passes; removed on exit."""

    def __init__(self, column: int) -> None:
        self.column = column
        self.seen: dict[tuple[str, int], torch.Tensor] = {}
        self._handles: list = []

    def _row(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach()
        return (x[0, self.column] if x.dim() == 3 else x[self.column]).double()  # OPT flattens (batch * positions)

    def output(self, module: nn.Module, key: tuple[str, int]) -> None:
        self._handles.append(module.register_forward_hook(lambda m, a, out: self.seen.__setitem__(key, self._row(_output(out)))))

    def input(self, module: nn.Module, key: tuple[str, int]) -> None:
        def keep(m: nn.Module, args: tuple, kwargs: dict) -> None:
            x = args[0] if args and isinstance(args[0], torch.Tensor) else kwargs.get("hidden_states")
            self.seen[key] = self._row(x)

        self._handles.append(module.register_forward_pre_hook(keep, with_kwargs=True))

    @contextlib.contextmanager
    def active(self) -> Iterator[_Taps]:
        try:
            yield self
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()


def _weight_io(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(in, out) weight with ``y = x @ W + b`` (``nn.Linear`` or GPT-2's ``Conv1D``), and the bias."""
    weight = module.weight.detach()
    weight = weight.T if isinstance(module, nn.Linear) else weight
    bias = getattr(module, "bias", None)
    return weight, (bias.detach().double() if isinstance(bias, torch.Tensor) else None)


def _check_applies(runner: Runner, stack: Stack) -> None:
    family = runner.spec.family
    mode = family.residual_of(runner.model.config)
    if mode == "post_norm":
        raise ValueError(
            f"{family.name} is a post-norm model: every sub-layer's output is normed together with the residual before "
            "the next one, so no part reaches the output as a summand and direct logit attribution does not apply. "
            "Use attribution (lm.attribute) or the logit lens instead."
        )
    if mode == "unknown" or not (stack.attention and stack.attention_out and stack.mlp) or stack.final_norm is None:
        raise ValueError(
            f"The registry does not say how {family.name} blocks add into the residual stream (attention, its output "
            "projection, MLP, final norm), so direct logit attribution cannot split its logits. Add them to the "
            "family's entry in ecco/models/architectures.py."
        )
    if mode == "sandwich" and not stack.post_norms:
        raise ValueError(f"{family.name}: the registry names no post-norms for its sandwich blocks.")


def _tap_stack(taps: _Taps, stack: Stack) -> None:
    taps.input(stack.blocks[0], ("embeddings", 0))
    taps.input(stack.final_norm, ("final", 0))
    for layer in range(stack.n_layers):
        added = stack.post_norms[layer] if stack.post_norms else (stack.attention[layer], stack.mlp[layer])
        taps.output(added[0], ("attention", layer))
        taps.output(added[1], ("mlp", layer))
        taps.input(stack.attention_out[layer], ("z", layer))
        taps.input(stack.ffn_out[layer], ("neurons", layer))
        if stack.post_norms:
            taps.input(added[0], ("attention_pre", layer))
            taps.input(added[1], ("mlp_pre", layer))
        if stack.cross_attention:
            taps.output(stack.cross_attention[layer], ("cross", layer))
            taps.input(stack.cross_attention_out[layer], ("cross_z", layer))


def _inputs(runner: Runner, token_ids: Sequence[int], layout: Layout) -> dict[str, torch.Tensor]:
    def ids(values: Sequence[int]) -> torch.Tensor:
        return torch.tensor([list(values)], device=runner.device)

    if layout.kind.encoder_decoder:
        return {"input_ids": ids(token_ids[: layout.n_input]), "decoder_input_ids": ids(token_ids[layout.n_input :])}
    return {"input_ids": ids(token_ids)}


def _split(z: torch.Tensor, projection: nn.Module, read: torch.Tensor, head_dim: int) -> tuple[np.ndarray, float]:
    """Per-head shares of an attention output (``z`` the projection's input) and the bias's share."""
    weight, bias = _weight_io(projection)
    per_input = z * (weight.double() @ read)
    shares = per_input.view(-1, head_dim).sum(-1)
    return shares.cpu().numpy(), float(bias @ read) if bias is not None else 0.0


def logit_attribution(
    runner: Runner, token_ids: Sequence[int], layout: Layout, position: int, target: int, foil: int | None = None
) -> LogitAttribution:
    """Direct logit attribution of ``target`` (minus ``foil``) at the main-stack column that
    predicts ``position`` of ``token_ids`` (see the module docstring); one forward pass."""
    stack = runner.spec.main_stack
    _check_applies(runner, stack)
    vocab = runner.model.get_output_embeddings().weight.shape[0]
    for name, token in (("target", target), ("foil", foil)):
        if token is not None and not 0 <= token < vocab:
            raise ValueError(f"The {name} token id {token} is outside the model's vocabulary 0..{vocab - 1}.")
    if foil == target:
        raise ValueError("The foil is the target: a logit difference needs a foil token other than the target.")
    lens = LensHead.from_model(runner.model, runner.spec)
    column = layout.predicting_column(position)
    taps = _Taps(column)
    with runner.session():
        with taps.active():
            _tap_stack(taps, stack)
            logits = runner.forward(**_inputs(runner, token_ids, layout), use_cache=False).logits[0, column].double()
        final = freeze(runner, stack.final_norm, taps.seen[("final", 0)])
        post = {(name, layer): freeze(runner, stack.post_norms[layer][i], taps.seen[(f"{name}_pre", layer)])
                for layer in range(len(stack.post_norms)) for i, name in enumerate(("attention", "mlp"))}
    seen = taps.seen
    return _shares(runner, stack, lens, final, post, seen, logits, column, target, foil)


def _shares(runner: Runner, stack: Stack, lens: LensHead, final: FrozenNorm, post: dict, seen: dict,
            logits: torch.Tensor, column: int, target: int, foil: int | None) -> LogitAttribution:
    weight, head_bias = _weight_io(lens.head)  # (hidden, vocab)
    if weight.shape[0] != final.gain.shape[0]:
        raise ValueError(
            "The LM head does not read the final norm's output directly (a projection sits between them, e.g. OPT's "
            "project_out): direct logit attribution does not apply to this model."
        )
    def unit(token: int) -> torch.Tensor:
        return weight[:, token].double() * lens.scale

    def const(token: int) -> float:
        extra = sum(float(b.reshape(-1)[token]) for b in (head_bias, lens.bias) if b is not None)
        return float(unit(token) @ final.bias) + extra

    u = unit(target) - (unit(foil) if foil is not None else 0)
    bias = const(target) - (const(foil) if foil is not None else 0.0)
    read = final.read(u)
    model_logit = float(logits[target] - (logits[foil] if foil is not None else 0))
    residual = seen[("embeddings", 0)] + sum(v for k, v in seen.items() if k[0] in ("attention", "mlp", "cross"))
    if not torch.allclose(residual, seen[("final", 0)], rtol=1e-4, atol=1e-4 * (1 + float(residual.abs().max()))):
        raise ValueError(
            f"{runner.spec.family.name}: the final residual is not the sum of the embeddings and the sub-layer outputs "
            "the registry names, so direct logit attribution cannot split it. Check the family's entry."
        )
    n = stack.n_layers
    parts = {name: np.array([float(seen[(name, layer)] @ read) for layer in range(n)]) for name in ("attention", "mlp")}
    head_dim = sites.head_dim(stack.attention[0])
    heads, neurons, attn_bias, mlp_bias = [], [], [], []
    for layer in range(n):
        norms = (post[("attention", layer)], post[("mlp", layer)]) if post else (None, None)
        attention_read, mlp_read = (norm.read(read) if norm else read for norm in norms)
        after = [float(norm.bias @ read) if norm else 0.0 for norm in norms]  # a post-norm's own bias
        shares, b = _split(seen[("z", layer)], stack.attention_out[layer], attention_read, head_dim)
        heads.append(shares)
        attn_bias.append(b + after[0])
        neuron_w, neuron_b = _weight_io(stack.ffn_out[layer])
        neurons.append((seen[("neurons", layer)] * (neuron_w.double() @ mlp_read)).cpu().numpy())
        mlp_bias.append((float(neuron_b @ mlp_read) if neuron_b is not None else 0.0) + after[1])
    result = LogitAttribution(
        target=target, foil=foil, column=column, embeddings=float(seen[("embeddings", 0)] @ read),
        attention=parts["attention"], mlp=parts["mlp"], heads=np.stack(heads), attention_bias=np.array(attn_bias),
        neurons=np.stack(neurons), activations=np.stack([seen[("neurons", i)].cpu().numpy() for i in range(n)]),
        mlp_bias=np.array(mlp_bias), bias=bias, model_logit=model_logit, norm_scale=final.scale, softcap=lens.softcap,
    )
    if stack.cross_attention:
        cross = [_split(seen[("cross_z", i)], stack.cross_attention_out[i], read, head_dim) for i in range(n)]
        result.cross_attention = np.array([float(seen[("cross", i)] @ read) for i in range(n)])
        result.cross_heads = np.stack([c[0] for c in cross])
        result.cross_attention_bias = np.array([c[1] for c in cross])
    return result
