"""One batched forward pass over corpus windows, with the captures a corpus run stores.

The model is called through its :class:`~ecco.runner.Runner` (eval mode, no gradients, the
user's settings restored afterwards). Windows are right-padded, so every token keeps its
position and causal models see exactly the tokens before it. Only the stored positions of each
window (not the special tokens, not the overlap kept as context) come back, as rows.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..capture import FFNRecorder
from ..lens import LensHead, lens_entropy_kl
from ..models.kinds import Kind
from ..runner import Runner
from .windows import Window

DTYPES = {"float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class CaptureSpec:
    """What a corpus run captures from one stack: FFN activations and/or hidden states of
    ``layers`` (block indices; a hidden state is the output of that block, as transformers
    returns it), stored in ``dtype``; ``lens``: per-layer entropy and KL of the logit lens."""

    stack: str
    layers: tuple[int, ...]
    activations: bool
    hidden_states: bool
    dtype: str
    lens: bool

    def columns(self, ffn_width: int, hidden_width: int) -> dict[str, tuple[int, str]]:
        """Stored column name -> (width, dtype)."""
        out = {}
        for layer in self.layers:
            if self.activations:
                out[f"ffn.{self.stack}.{layer}"] = (ffn_width, self.dtype)
            if self.hidden_states:
                out[f"hidden.{self.stack}.{layer}"] = (hidden_width, self.dtype)
        return out


@dataclass
class BatchRows:
    """The stored rows of one batch: token fields, captured arrays and lens statistics."""

    doc_ids: np.ndarray  # (rows,) int64
    positions: np.ndarray  # (rows,) int64, position in the document's tokens
    token_ids: np.ndarray  # (rows,) int64
    tokens: list[str]
    arrays: dict[str, torch.Tensor]  # column -> (rows, width) in the stored dtype
    entropy: torch.Tensor | None  # (layers, rows)
    kl: torch.Tensor | None

    @property
    def n_rows(self) -> int:
        """Number of stored tokens."""
        return len(self.doc_ids)


class Engine:
    """Runs batches of windows through the model and returns their stored rows."""

    def __init__(self, runner: Runner, tokenizer: PreTrainedTokenizerBase, capture: CaptureSpec) -> None:
        self.runner = runner
        self.capture = capture
        self.kind = runner.spec.kind
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (tokenizer.eos_token_id or 0))
        self.lens_head = LensHead.from_model(runner.model, runner.spec) if capture.lens else None

    def widths(self) -> tuple[int, int]:
        """(FFN neurons, hidden size) of the captured stack."""
        stack = self.runner.spec.stacks[self.capture.stack]
        ffn = stack.ffn_out[0]
        neurons = getattr(ffn, "in_features", None) or ffn.weight.shape[0]
        config = self.runner.model.config
        hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
        return int(neurons), int(hidden)

    def inputs(self, windows: Sequence[Window]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded input ids and attention mask of a batch."""
        width = max(len(w.ids) for w in windows)
        ids = torch.full((len(windows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(windows), width), dtype=torch.long)
        for row, window in enumerate(windows):
            ids[row, : len(window.ids)] = torch.tensor(window.ids)
            mask[row, : len(window.ids)] = 1
        return ids, mask

    def _call(self, ids: torch.Tensor, mask: torch.Tensor, hidden: bool) -> object:
        device = self.runner.device
        inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "output_hidden_states": hidden}
        if self.kind.encoder_decoder:
            return self.runner.encode(**inputs)
        if self.kind is Kind.CAUSAL and self.runner._takes_logits_to_keep:
            inputs["logits_to_keep"] = 1  # nothing reads the logits: skip the LM head
        return self.runner.forward(**inputs)

    def plain(self, windows: Sequence[Window]) -> None:
        """The same forward pass with nothing captured (the benchmarks' reference)."""
        ids, mask = self.inputs(windows)
        with self.runner.session():
            self._call(ids, mask, hidden=False)

    def run(self, windows: Sequence[Window]) -> BatchRows:
        """Forward pass over ``windows``; the rows of their stored positions."""
        capture = self.capture
        ids, mask = self.inputs(windows)
        dtype = DTYPES[capture.dtype]
        recorder = (
            FFNRecorder(self.runner.spec, {capture.stack: list(capture.layers)}, dtype)
            if capture.activations
            else contextlib.nullcontext()
        )
        need_hidden = capture.hidden_states or capture.lens
        with self.runner.session(), recorder:
            out = self._call(ids, mask, hidden=need_hidden)
        flat, doc_ids, positions, tokens = self._rows(windows, ids.shape[1])
        arrays: dict[str, torch.Tensor] = {}
        hidden_states = out.hidden_states if need_hidden else None
        for layer in capture.layers:
            if capture.activations:
                chunk = recorder.chunks[capture.stack][layer][0]
                arrays[f"ffn.{capture.stack}.{layer}"] = chunk.reshape(-1, chunk.shape[-1])[flat]
            if capture.hidden_states:
                state = hidden_states[layer + 1]
                arrays[f"hidden.{capture.stack}.{layer}"] = state.reshape(-1, state.shape[-1])[flat].to("cpu", dtype)
        entropy = kl = None
        if capture.lens:
            blocks = torch.stack([h.reshape(-1, h.shape[-1])[flat.to(h.device)] for h in hidden_states[1:]])
            entropy, kl = lens_entropy_kl(self.lens_head, blocks)
        return BatchRows(
            doc_ids=doc_ids,
            positions=positions,
            token_ids=ids.reshape(-1)[flat].numpy(),
            tokens=tokens,
            arrays=arrays,
            entropy=entropy,
            kl=kl,
        )

    @staticmethod
    def _rows(windows: Sequence[Window], width: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray, list[str]]:
        """Flat (row * width + column) indices of the stored tokens, their documents, document
        positions and texts, window by window."""
        flat, doc_ids, positions, tokens = [], [], [], []
        for row, window in enumerate(windows):
            first, stop = window.stored_span
            flat.append(torch.arange(row * width + first, row * width + stop))
            doc_ids.append(np.full(stop - first, window.doc_id, dtype=np.int64))
            positions.append(np.asarray(window.stored_positions, dtype=np.int64))
            tokens.extend(window.stored_pieces)
        return torch.cat(flat), np.concatenate(doc_ids), np.concatenate(positions), tokens
