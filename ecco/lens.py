"""The logit lens: what each layer would predict if it were the last.

A layer's hidden state goes through exactly what the model applies between its last hidden
state and its logits: the final norm (for every layer but the last, whose hidden state
transformers already returns normed), any rescaling (T5 with tied embeddings multiplies by
d_model^-0.5), the LM head, a final logits bias (BART) and logit soft-capping (Gemma 2). For
masked models the whole MLM head (transform + decoder) is applied. So the last layer's lens
is the model's own logits.

All layers and positions go through the head in batched matrix products, chunked so that at
most ``chunk_bytes`` of logits exist at once; ranks are counted (logits above the target's),
never sorted.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .checks import is_int
from .layout import Layout
from .models.kinds import Kind
from .models.spec import ModelSpec
from .shapes import LayerHidden, Logits

DEFAULT_CHUNK_BYTES = 64 * 2**20


def _mlm_head(model: nn.Module, chains: tuple[tuple[str, ...], ...]) -> nn.Module:
    """The MLM head: the first of the registry's chains of modules that the model has."""
    for chain in chains:
        modules = [getattr(model, n, None) for n in chain]
        if all(isinstance(m, nn.Module) for m in modules):
            return modules[0] if len(modules) == 1 else nn.Sequential(*modules)
    raise ValueError(
        f"{type(model).__name__} has no language-model head (e.g. a sentence encoder such as "
        "all-MiniLM), so its layers cannot be read as token predictions. Load it with a masked-LM "
        "head (AutoModelForMaskedLM) to use the logit lens."
    )


@dataclass
class LensHead:
    """Hidden state -> logits, as the model does it."""

    norm: nn.Module | None
    head: nn.Module
    scale: float = 1.0
    bias: torch.Tensor | None = None
    softcap: float | None = None

    @classmethod
    def from_model(cls, model: nn.Module, spec: ModelSpec) -> LensHead:
        """The lens of ``model``; a ValueError says so when it has no LM head."""
        config = getattr(model, "config", None)
        family = spec.family
        if spec.kind is Kind.MASKED:
            return cls(norm=spec.main_stack.final_norm, head=_mlm_head(model, family.mlm_head))
        if spec.lm_head is None:
            raise ValueError(
                f"{type(model).__name__} has no LM head (get_output_embeddings() is None); load the "
                "...ForCausalLM / ...ForConditionalGeneration class to use the logit lens."
            )
        bias = getattr(model, family.logits_bias, None) if family.logits_bias else None
        return cls(
            norm=spec.main_stack.final_norm,
            head=spec.lm_head,
            scale=family.lens_scale(config) if family.lens_scale else 1.0,
            bias=bias if isinstance(bias, torch.Tensor) else None,
            softcap=getattr(config, family.softcap, None) if family.softcap else None,
        )

    @property
    def _last_weight(self) -> torch.Tensor | None:
        """The weight of the head's last linear map (the one onto the vocabulary)."""
        weights = [m.weight for m in self.head.modules() if isinstance(getattr(m, "weight", None), torch.Tensor)
                   and m.weight.dim() == 2]
        return weights[-1] if weights else None

    @property
    def vocab(self) -> int | None:
        """Vocabulary size: rows of the last linear map of the head."""
        weight = self._last_weight
        return None if weight is None else int(weight.shape[0])

    @property
    def device(self) -> torch.device:
        """Where the head's parameters are."""
        return next(self.head.parameters()).device

    def fingerprint(self) -> tuple[float, float]:
        """Sum and sum of squares (float64) of the head's last weight: tells two checkpoints with the
        same shapes apart, so that a trained lens is not used with weights it was not trained for."""
        weight = self._last_weight
        if weight is None:
            return 0.0, 0.0
        total = squares = 0.0
        for rows in weight.detach().split(4096):  # float64 a block at a time, not a copy of the whole head
            block = rows.double()
            total += float(block.sum())
            squares += float((block * block).sum())
        return total, squares

    @torch.no_grad()
    def __call__(self, hidden: torch.Tensor, final: bool) -> Logits:
        """Logits (float32) of hidden states (..., hidden); ``final`` skips the final norm."""
        return self.differentiable(hidden, final)

    def differentiable(self, hidden: torch.Tensor, final: bool) -> Logits:
        """:meth:`__call__` with autograd on (for training lens translators; the head's own
        parameters are not updated by it)."""
        param = next(self.head.parameters())
        x = hidden.to(param.device, param.dtype)
        if self.norm is not None and not final:
            x = self.norm(x)
        if self.scale != 1.0:
            x = x * self.scale
        logits = self.head(x).float()
        if self.bias is not None:
            logits = logits + self.bias.float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


Translate = Callable[[torch.Tensor], torch.Tensor]
"""Maps the hidden states of layers 0..L-2, (L-1, ..., hidden), into the basis the head reads
(a trained lens's translators); ``None`` reads them as they are (the logit lens)."""


def layer_logits(head: LensHead, hidden: LayerHidden, translate: Translate | None = None) -> Logits:
    """Logits of every layer, (layers, ..., vocab), for ``hidden`` (layers, ..., hidden) whose last
    row is the final (normed) layer: that row goes straight to the head, the others through
    ``translate`` (if given) and the final norm."""
    inner = hidden[:-1] if translate is None else translate(hidden[:-1])
    return torch.cat([head(inner, final=False), head(hidden[-1:], final=True)])


@dataclass
class LensStats:
    """Per layer (rows: outputs of blocks 0..L-1) and position (columns)."""

    ranks: torch.Tensor  # rank of the target token, 1 = top
    probs: torch.Tensor  # probability of the target token
    entropy: torch.Tensor  # entropy (nats) of the layer's distribution
    kl: torch.Tensor  # KL(final || layer) in nats
    js: torch.Tensor  # Jensen-Shannon divergence between the layer's and the final distribution, nats (<= ln 2)
    tv: torch.Tensor  # total variation distance between them (0..1)
    final_top1: torch.Tensor  # the layer's probability of the final distribution's top-1 token


def _positions_per_chunk(n_layers: int, vocab: int, chunk_bytes: int) -> int:
    return max(1, chunk_bytes // (4 * n_layers * vocab * 5))  # logits, log-probs, probs, two temporaries


def lens_stats(
    head: LensHead, hidden: LayerHidden, target_ids: torch.Tensor, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    translate: Translate | None = None,
) -> LensStats:
    """Ranks and probabilities of ``target_ids``, and each layer's entropy and distances to the
    final distribution (see :class:`LensStats`).

    ``hidden`` is (layers, positions, hidden) with the last row the final (normed) layer;
    ``target_ids`` is (positions,) or (positions, watched) for several tokens per position;
    ``translate``: a trained lens's translators (None: the logit lens).
    """
    n_layers, n_positions, _ = hidden.shape
    step = _positions_per_chunk(n_layers, head.vocab or 50000, chunk_bytes)
    targets = target_ids.view(n_positions, -1)
    parts = []
    for start in range(0, n_positions, step):
        stop = min(n_positions, start + step)
        logits = layer_logits(head, hidden[:, start:stop], translate)  # (layers, chunk, vocab)
        ids = targets[start:stop].to(logits.device)
        chosen = logits.gather(-1, ids.unsqueeze(0).expand(n_layers, -1, -1))  # (layers, chunk, watched)
        ranks = (logits.unsqueeze(-2) > chosen.unsqueeze(-1)).sum(-1) + 1
        log_probs = torch.log_softmax(logits, dim=-1)
        del logits
        probs = log_probs.gather(-1, ids.unsqueeze(0).expand(n_layers, -1, -1)).exp()
        entropy, kl = _entropy_kl(log_probs)
        js, tv, top1 = _distances(log_probs)
        parts.append(tuple(t.cpu() for t in (ranks, probs, entropy, kl, js, tv, top1)))
    ranks, probs, entropy, kl, js, tv, top1 = (torch.cat([p[i] for p in parts], dim=1) for i in range(7))
    squeeze = target_ids.dim() == 1
    return LensStats(
        ranks=ranks.squeeze(-1) if squeeze else ranks,
        probs=probs.squeeze(-1) if squeeze else probs,
        entropy=entropy,
        kl=kl,
        js=js,
        tv=tv,
        final_top1=top1,
    )


def _distances(log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Jensen-Shannon divergence (nats) and total variation between each layer's distribution and
    the final one, and each layer's probability of the final top-1, from (layers, ..., vocab)
    log-probabilities whose last layer is the final one."""
    probs = log_probs.exp()
    final, final_log = probs[-1:], log_probs[-1:]
    tv = 0.5 * (probs - final).abs().sum(-1)
    log_mid = torch.logaddexp(log_probs, final_log) - math.log(2.0)
    js = 0.5 * ((probs * (log_probs - log_mid)).sum(-1) + (final * (final_log - log_mid)).sum(-1))
    top1 = probs.gather(-1, final.argmax(-1, keepdim=True).expand(*probs.shape[:-1], 1)).squeeze(-1)
    return js.clamp_min(0.0), tv, top1


def _entropy_kl(log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy of each layer's distribution and KL(final || layer), from (layers, ..., vocab)
    log-probabilities whose last layer is the final one."""
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    final = log_probs[-1:]
    return entropy, (final.exp() * (final - log_probs)).sum(-1)


def lens_entropy_kl(
    head: LensHead, hidden: LayerHidden, chunk_bytes: int = DEFAULT_CHUNK_BYTES, translate: Translate | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy (nats) of every layer's distribution and KL(final || layer), (layers, positions)
    each, for ``hidden`` (layers, positions, hidden) whose last row is the final (normed) layer."""
    n_layers, n_positions, _ = hidden.shape
    step = _positions_per_chunk(n_layers, head.vocab or 50000, chunk_bytes)
    parts = []
    for start in range(0, n_positions, step):
        logits = layer_logits(head, hidden[:, start : start + step], translate)
        parts.append(tuple(t.cpu() for t in _entropy_kl(torch.log_softmax(logits, dim=-1))))
    return torch.cat([p[0] for p in parts], dim=1), torch.cat([p[1] for p in parts], dim=1)


def lens_topk(
    head: LensHead, hidden: LayerHidden, k: int, translate: Translate | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k probabilities and token ids at every layer for one position: (layers, k) each."""
    logits = layer_logits(head, hidden, translate)
    probs = torch.softmax(logits, dim=-1)
    top = probs.topk(k, dim=-1)
    return top.values.cpu(), top.indices.cpu()


# --------------------------------------------------------------- positions
@dataclass
class LensSite:
    """Where the lens reads for a token-list position: the hidden-state column and the token."""

    position: int  # position in the sequence's token list
    column: int  # column of the main stack's hidden states
    token_id: int | None  # the token that came there (None: masked models predict, no truth)


def lens_site(layout: Layout, token_ids: Sequence[int], position: int) -> LensSite:
    """The hidden-state column that predicts the token at ``position`` (Ecco's: from 0).

    Causal and encoder-decoder models: the token at ``position`` is predicted from the hidden
    state one before it, so the first token (and the decoder start) has no prediction.
    Masked models: the prediction at ``position`` itself (e.g. a [MASK]).
    """
    if layout.kind is Kind.MASKED:
        return LensSite(position, position, None)
    first = layout.first_predicted
    if position < first:
        where = "the decoder start token or an encoder token" if layout.kind.encoder_decoder else "the first token"
        raise ValueError(
            f"position={position} is {where}: no hidden state predicts it. Use a position from {first} to "
            f"{layout.length - 1}."
        )
    return LensSite(position, layout.predicting_column(position), token_ids[position])


def default_positions(layout: Layout, token_ids: Sequence[int], special: Sequence[bool], mask_id: int | None) -> list[int]:
    """The positions ``rankings`` shows: generated tokens, else every predictable token
    (masked models: the [MASK] tokens, else every non-special token)."""
    if layout.kind is Kind.MASKED:
        masked = [p for p, i in enumerate(token_ids) if mask_id is not None and i == mask_id]
        return masked or [p for p in range(layout.length) if not special[p]]
    first = layout.first_generated
    start = first if first < layout.length else layout.first_predicted
    return list(range(max(start, 1), layout.length))


def chosen_ids(head: LensHead, final: torch.Tensor, sites: Sequence[LensSite]) -> torch.Tensor:
    """The token each site is about: the actual token, or (masked models) the model's final
    top-1 read from ``final``, the last layer's hidden states at the sites (sites, hidden)."""
    ids = [s.token_id for s in sites]
    if all(i is not None for i in ids):
        return torch.tensor(ids)
    return head(final, final=True).argmax(-1).cpu()


def watch_ids(split: Callable[[str], list[int]], watch: Sequence, vocab: int) -> list[int]:
    """Token ids to watch: ids as given; strings by their first piece (warned when longer).

    ``split(text)`` tokenises a string without special tokens."""
    if not watch:
        raise ValueError("watch is empty: give token ids or strings to follow across layers.")
    ids = []
    for item in watch:
        if isinstance(item, str):
            pieces = split(item)
            if not pieces:
                raise ValueError(f"watch entry {item!r} tokenizes to nothing.")
            if len(pieces) > 1:
                warnings.warn(
                    f"watch entry {item!r} is {len(pieces)} tokens; ranking its first piece (id {pieces[0]}).",
                    stacklevel=4,
                )
            ids.append(pieces[0])
        elif is_int(item) and 0 <= int(item) < vocab:
            ids.append(int(item))
        else:
            raise ValueError(f"watch entry {item!r} is not a string or a token id in 0..{vocab - 1}.")
    return ids
