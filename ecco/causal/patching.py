"""Activation patching on many restorations at once: the target's probability in a corrupted run
with chosen sites set back to their clean values.

The *prompt* is the first input stack (the decoder of a causal model, the encoder of an
encoder-decoder one); a :class:`Corruption` changes its input embeddings, either

- by Gaussian noise: for seed ``s``, ``z = torch.randn((len(positions), hidden),
  generator=torch.Generator().manual_seed(s))`` (float32, on the CPU), times ``std``, cast to the
  model's dtype and added to the token embeddings (``runner.embed``) at ``positions`` in ascending
  order (row ``i`` of ``z`` at the ``i``-th corrupted position); or
- by a counterfactual prompt of the same length, whose embeddings replace the prompt's.

A :class:`Row` restores a set of sites ``(component, layer, position)`` of the traced stack
together: the site's value at that position becomes the clean run's (captured in one clean pass).
``batch_size`` rows go through the model per forward pass: each row's corrupted embeddings are
one batch item, and each hooked module sets ``x[rows, positions] = clean[positions]`` with index
tensors, so a pass costs the same whatever the rows restore.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..checks import as_int, as_ints
from ..runner import Runner
from . import sites

Site = tuple[str, int, int]  # (component, layer, position of the traced stack)
TRACED = ("residual", "mlp", "attention")


@dataclass(frozen=True)
class Corruption:
    """How the corrupted run's prompt differs from the clean one: ``positions`` (ascending) get
    noise of standard deviation ``std`` (absolute), or ``counterfactual`` ids replace the prompt."""

    positions: tuple[int, ...]
    std: float | None = None
    counterfactual: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Row:
    """One batch item: the sites restored together, and the noise seed of its corrupted run."""

    restore: tuple[Site, ...]
    seed: int = 0


def noise_std(runner: Runner, noise: float) -> float:
    """``noise`` times the standard deviation (unbiased, as ``torch.std``) of all entries of the
    model's input embedding matrix; a ValueError unless ``noise`` is a positive finite number."""
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise <= 0:
        raise ValueError(f"noise must be a positive number (a multiple of the embeddings' standard deviation), got {noise!r}.")
    return float(noise) * _std(runner.model.get_input_embeddings().weight.detach().reshape(-1))


def _std(values: torch.Tensor, chunk: int = 1 << 22) -> float:
    """The (unbiased) standard deviation of a large 1-d tensor, in float64, a chunk at a time."""
    parts = values.split(chunk)
    mean = sum(float(part.double().sum()) for part in parts) / values.numel()
    return math.sqrt(sum(float((part.double() - mean).square().sum()) for part in parts) / (values.numel() - 1))


def noise_corruption(runner: Runner, positions: Sequence[int], n_tokens: int, noise: float) -> Corruption:
    """Noise of ``noise`` embedding standard deviations on ``positions`` of an ``n_tokens`` prompt."""
    found = sorted(set(as_ints(positions, "corrupted positions")))
    if not found:
        raise ValueError("No position to corrupt: give at least one prompt position (or a piece of the prompt's text).")
    bad = [p for p in found if not 0 <= p < n_tokens]
    if bad:
        raise ValueError(f"Corrupted positions {bad} are outside the prompt's {n_tokens} tokens (0..{n_tokens - 1}).")
    return Corruption(tuple(found), std=noise_std(runner, noise))


def counterfactual_corruption(prompt: Sequence[int], counterfactual: Sequence[int]) -> Corruption:
    """The counterfactual prompt as the corrupted run; its corrupted positions are those whose token differs."""
    if len(counterfactual) != len(prompt):
        raise ValueError(
            f"The counterfactual has {len(counterfactual)} tokens and the prompt {len(prompt)}: activation patching "
            "restores states position by position, so give a counterfactual of the same token length."
        )
    differ = tuple(i for i, (a, b) in enumerate(zip(prompt, counterfactual)) if a != b)
    if not differ:
        raise ValueError("The counterfactual is the prompt itself: nothing would be corrupted. Change some of its tokens.")
    return Corruption(differ, counterfactual=tuple(counterfactual))


def check_corruption(corruption: Corruption, prompt: Sequence[int]) -> None:
    """A ValueError unless ``corruption`` fits the prompt (as the two functions above build it)."""
    if corruption.counterfactual is not None:
        counterfactual_corruption(prompt, corruption.counterfactual)
    elif corruption.std is None or not corruption.positions or not all(0 <= p < len(prompt) for p in corruption.positions):
        raise ValueError(f"A noise corruption needs its std and positions in the prompt's {len(prompt)} tokens, got "
                         f"{corruption}: build it with noise_corruption().")


def draw(seed: int, n_positions: int, hidden: int) -> torch.Tensor:
    """The standard-normal noise of ``seed``, (n_positions, hidden), float32 on the CPU."""
    return torch.randn((n_positions, hidden), generator=torch.Generator().manual_seed(seed))


def corrupted_embeds(runner: Runner, clean: torch.Tensor, corruption: Corruption, seed: int) -> torch.Tensor:
    """The corrupted run's prompt embeddings, (1, positions, hidden), from the clean ones."""
    if corruption.counterfactual is not None:
        return runner.embed(list(corruption.counterfactual))
    noise = draw(seed, len(corruption.positions), clean.shape[-1]) * corruption.std
    out = clean.clone()
    out[0, list(corruption.positions)] += noise.to(device=out.device, dtype=out.dtype)
    return out


def _modules(runner: Runner, stack: str, keys: set[tuple[str, int]]) -> dict[tuple[str, int], nn.Module]:
    blocks = runner.spec.stacks[stack]
    family = runner.spec.family.name
    return {(c, layer): sites.modules(blocks, c, family)[layer] for c, layer in keys}


def _check_rows(runner: Runner, stack: str, n_positions: int, rows: Sequence[Row]) -> None:
    if stack not in runner.spec.stacks:
        raise ValueError(f"Unknown stack {stack!r}: this model's stacks are {', '.join(runner.spec.stacks)}.")
    n_layers = runner.spec.stacks[stack].n_layers
    for row in rows:
        for component, layer, position in row.restore:
            sites.check_component(component, TRACED)
            if not (0 <= layer < n_layers and 0 <= position < n_positions):
                raise ValueError(
                    f"Cannot restore ({component!r}, layer {layer}, position {position}): the {stack} has layers "
                    f"0..{n_layers - 1} and positions 0..{n_positions - 1}."
                )


def _probs(logits: torch.Tensor, target: int) -> np.ndarray:
    return torch.softmax(logits[:, 0].float(), dim=-1)[:, target].double().cpu().numpy()


def _restore(clean: torch.Tensor, rows: list[int], positions: list[int]) -> sites.Edit:
    """The edit that sets ``x[rows[i], positions[i]]`` to the clean value at ``positions[i]``."""
    r = torch.tensor(rows, device=clean.device)
    p = torch.tensor(positions, device=clean.device)
    values = clean[p]

    def edit(x: torch.Tensor) -> torch.Tensor:
        return x.index_put((r, p), values.to(x.dtype))

    return edit


def patched_probs(runner: Runner, inputs: Sequence[Sequence[int]], corruption: Corruption, target: int, column: int,
                  rows: Sequence[Row], stack: str, batch_size: int) -> tuple[float, np.ndarray]:
    """The target's clean probability at the main stack's ``column``, and its probability in each
    row's corrupted run with the row's sites of ``stack`` restored (float64, one per row).

    ``inputs``: the token ids of each input stack (``(decoder,)``, or ``(encoder, decoder)``); the
    corruption acts on the first. One clean pass captures every site a row names; then
    ``batch_size`` rows per forward pass. Hooks exist only during the passes."""
    batch_size = as_int(batch_size, "batch_size", 1)
    stacks = runner.spec.kind.stacks
    if len(inputs) != len(stacks):
        raise ValueError(f"Give the token ids of each input stack ({', '.join(stacks)}), got {len(inputs)} lists.")
    check_corruption(corruption, inputs[0])
    _check_rows(runner, stack, len(inputs[stacks.index(stack)]) if stack in stacks else 0, rows)
    keys = {(c, layer) for row in rows for c, layer, _ in row.restore}
    modules = _modules(runner, stack, keys)
    column_index = torch.tensor([column], device=runner.device)
    with runner.session():
        clean_embeds = tuple(runner.embed(list(ids)) for ids in inputs)
        kept: dict[tuple[str, int], list[torch.Tensor]] = {key: [] for key in keys}
        with sites.Hooks() as hooks:
            for key, module in modules.items():
                hooks.add(sites.keep_site(module, key[0], kept[key], 1))
            clean = float(_probs(runner.logits_at(clean_embeds, column_index), target)[0])
        for key, found in kept.items():
            if len(found) != 1:
                raise ValueError(f"The {key[0]} module of layer {key[1]} ran {len(found)} times in one pass: "
                                 "ecco cannot tell which call to restore.")
        values = {key: found[0][0] for key, found in kept.items()}  # (positions, features)
        corrupted = {s: corrupted_embeds(runner, clean_embeds[0], corruption, s) for s in {row.seed for row in rows}}
        out = np.zeros(len(rows))  # filled in place: nothing is kept per pass
        for i in range(0, len(rows), batch_size):
            out[i : i + batch_size] = _batch(runner, rows[i : i + batch_size], corrupted, clean_embeds[1:], modules, values,
                                             column_index, target)
    return clean, out


def _batch(runner: Runner, rows: Sequence[Row], corrupted: dict[int, torch.Tensor], others: tuple[torch.Tensor, ...],
           modules: dict, values: dict, column: torch.Tensor, target: int) -> np.ndarray:
    """One forward pass over ``rows``: each row's corrupted prompt, its sites restored."""
    n = len(rows)
    embeds = (torch.cat([corrupted[row.seed] for row in rows]), *(e.expand(n, -1, -1).contiguous() for e in others))
    index: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
    for i, row in enumerate(rows):
        for component, layer, position in row.restore:
            found = index.setdefault((component, layer), ([], []))
            found[0].append(i)
            found[1].append(position)
    with sites.Hooks() as hooks:
        for key, (batch_rows, positions) in index.items():
            hooks.add(sites.edit_site(modules[key], key[0], _restore(values[key], batch_rows, positions), n))
        return _probs(runner.logits_at(embeds, column), target)
