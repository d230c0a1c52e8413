"""Capturing a model's internals during one call, and stitching them into whole sequences.

FFN neuron activations have no public transformers output, so they are taken with forward
pre-hooks on the FFN output projections (their input is the activation). The hooks live only
inside a :class:`FFNRecorder` context and are removed in ``finally``. Hidden states and
attention weights come from transformers' own ``output_hidden_states`` /
``output_attentions``, a stable public API, one chunk per forward call (the prompt, then one
token per generation step with the KV cache); :func:`stitch_steps` joins the chunks.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .models.spec import ModelSpec


class FFNRecorder:
    """Records the input of the FFN output projection of the selected layers, per call.

    ``layers`` maps a stack name ('encoder' / 'decoder') to the layer indices to record.
    Every forward call appends one chunk of shape (batch, positions, neurons) per layer.
    """

    def __init__(self, spec: ModelSpec, layers: dict[str, list[int]], store_dtype: torch.dtype):
        self._targets = [
            (stack, layer, spec.stacks[stack].blocks[layer], spec.stacks[stack].ffn_out[layer])
            for stack, indices in layers.items()
            for layer in indices
        ]
        self._dtype = store_dtype
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._block_shape: tuple[int, ...] = ()
        self.chunks: dict[str, dict[int, list[torch.Tensor]]] = {
            stack: {layer: [] for layer in indices} for stack, indices in layers.items()
        }

    def _block_input(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Note the (batch, positions) of the block's hidden states: some families (OPT) flatten
        them to (batch * positions, hidden) before the FFN."""
        hidden = args[0] if args and isinstance(args[0], torch.Tensor) else kwargs.get("hidden_states")
        self._block_shape = tuple(hidden.shape[:2]) if isinstance(hidden, torch.Tensor) else ()

    def _hook(self, stack: str, layer: int):
        def record(module: nn.Module, args: tuple) -> None:
            x = args[0].detach()
            if x.dim() == 2 and len(self._block_shape) == 2:
                x = x.view(*self._block_shape, x.shape[-1])
            self.chunks[stack][layer].append(x.to("cpu", self._dtype))

        return record

    def __enter__(self) -> FFNRecorder:
        try:
            for stack, layer, block, module in self._targets:
                self._handles.append(block.register_forward_pre_hook(self._block_input, with_kwargs=True))
                self._handles.append(module.register_forward_pre_hook(self._hook(stack, layer)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this recorder registered (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def collect(self, stack: str) -> torch.Tensor:
        """Activations of ``stack`` as Ecco's (batch, layers, neurons, positions)."""
        per_layer = [torch.cat(chunks, dim=1) for chunks in self.chunks[stack].values()]
        return torch.stack(per_layer, dim=1).permute(0, 1, 3, 2).contiguous()


def stitch_steps(steps: Sequence[Sequence[torch.Tensor]], store_dtype: torch.dtype) -> torch.Tensor:
    """Join per-call hidden states into (batch, layers + 1, positions, hidden) on the CPU.

    ``steps[s][l]`` is the hidden state of layer ``l`` (0 = embeddings) for the positions
    processed by call ``s``, shaped (batch, step_positions, hidden).
    """
    n_layers = len(steps[0])
    return torch.stack(
        [torch.cat([step[layer].to("cpu", store_dtype) for step in steps], dim=1) for layer in range(n_layers)],
        dim=1,
    )


def stitch_attention(
    steps: Sequence[Sequence[torch.Tensor]], n_keys: int, store_dtype: torch.dtype
) -> torch.Tensor:
    """Join per-call attention weights into (batch, layers, heads, queries, keys).

    Call ``s`` gives, per layer, (batch, heads, step_queries, keys_so_far); with a KV cache
    the keys grow by one per step, so each chunk fills the left part of its rows.
    """
    first = steps[0][0]
    n_queries = sum(step[0].shape[2] for step in steps)
    out = torch.zeros(
        (first.shape[0], len(steps[0]), first.shape[1], n_queries, n_keys), dtype=store_dtype
    )
    row = 0
    for step in steps:
        rows, keys = step[0].shape[2], step[0].shape[3]
        out[:, :, :, row : row + rows, :keys] = torch.stack(list(step), dim=1).to("cpu", store_dtype)
        row += rows
    return out


def align_windowed_keys(steps: Sequence[Sequence[torch.Tensor]]) -> list[tuple[torch.Tensor, ...]]:
    """Self-attention chunks of a KV-cached generation, each layer's keys made to cover every
    position seen so far.

    A sliding-window layer's cache holds only the last keys of the window, so its weights in a
    step cover the last keys seen rather than all of them: they are put at the right end of
    the row, with zeros (keys outside the window) before them.
    """
    seen = 0
    out = []
    for step in steps:
        seen += step[0].shape[2]
        out.append(tuple(nn.functional.pad(w, (seen - w.shape[-1], 0)) for w in step))
    return out


def shift_left(tensor: torch.Tensor, shifts: Sequence[int], dims: Sequence[int]) -> torch.Tensor:
    """Move each batch item's left padding to the right end along ``dims``.

    Generation left-pads a batch of prompts; stored arrays put every sequence at position 0
    (right padding) so that a position means the same token index as running it alone.
    """
    if not any(shifts):
        return tensor
    out = tensor.clone()
    for item, shift in enumerate(shifts):
        if shift:
            out[item] = torch.roll(tensor[item], shifts=[-shift] * len(dims), dims=[d - 1 for d in dims])
    return out
