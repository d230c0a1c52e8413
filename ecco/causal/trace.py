"""Causal tracing (Meng et al. 2022) / activation patching: the target's probability with the
clean state restored at one (component, layer, position) of a corrupted run, for every one.

The corrupted run (noise on some prompt tokens, or a counterfactual prompt) and the batched
restoring are :mod:`.patching`'s; here every restoration of a trace is listed and the results are
averaged over the noise seeds into a :class:`Trace`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..checks import as_int
from ..models.kinds import Kind
from ..runner import Runner
from . import sites
from .patching import TRACED, Corruption, Row, check_corruption, patched_probs


@dataclass
class Trace:
    """What tracing measured, float64 arrays of (layers, positions) per component.

    ``probs[c][l, p]``: the target's probability, averaged over the noise seeds, with the clean
    state of component ``c`` restored at position ``p`` of layer ``l`` (MLP and attention: of the
    ``window`` layers around ``l``) in the corrupted run."""

    token_ids: list[int]  # the traced stack's clean input ids
    counterfactual: list[int] | None  # the corrupted run's prompt ids (activation patching); None: noise
    corrupted: list[int]  # positions of the corrupted stack's input (the prompt's) that were corrupted
    target: int
    stack: str  # 'decoder' or 'encoder'
    column: int  # the main stack's column whose prediction is read
    clean_prob: float
    corrupt_prob: float  # mean over seeds
    probs: dict[str, np.ndarray]
    window: int
    noise: float | None  # the noise's standard deviation (absolute); None for a counterfactual
    seeds: int
    corrupted_stack: str = "decoder"  # the stack whose input ids were corrupted: the encoder of an encoder-decoder model

    def indirect(self, component: str) -> np.ndarray:
        """Indirect effect: restored probability minus the corrupted one."""
        return self.probs[component] - self.corrupt_prob

    def normalised(self, component: str) -> np.ndarray:
        """The indirect effect as a fraction of clean − corrupted (NaN where they are equal)."""
        gap = self.clean_prob - self.corrupt_prob
        return self.indirect(component) / gap if gap != 0 else np.full_like(self.probs[component], np.nan)


def layers_restored(component: str, layer: int, n_layers: int, window: int) -> range:
    """The layers restored for ``layer``: itself for the residual stream; for MLP and attention
    the ``window`` layers centred on it (ROME), ``max(0, l - window // 2)`` up to
    ``min(n_layers, l - window // 2 + window)`` (exclusive), cut at the stack's ends."""
    if component == "residual":
        return range(layer, layer + 1)
    start = layer - window // 2
    return range(max(0, start), min(n_layers, start + window))


def trace(runner: Runner, inputs: Sequence[Sequence[int]], corruption: Corruption, target: int, column: int,
          components: Sequence[str] = TRACED, stack: str | None = None, window: int = 1, seeds: int = 5,
          batch_size: int = 64) -> Trace:
    """Causal tracing of ``target``'s probability at the main stack's ``column``: every
    (layer, position) of ``stack`` (default: the prompt's stack, i.e. the encoder of an
    encoder-decoder model) restored for each of ``components``, in the corrupted run of each
    noise seed ``0 .. seeds - 1`` (one run for a counterfactual). ``inputs`` as in
    :func:`~.patching.patched_probs`. In a causal model, restorations only before the first
    corrupted position are not run: their states are the clean ones, the corrupted run is read."""
    kind = runner.spec.kind
    if not kind.generates:
        raise ValueError(f"A {kind} model has no next-token prediction to trace: causal tracing needs a causal or "
                         "encoder-decoder model.")
    stack = kind.stacks[0] if stack is None else stack
    if stack not in kind.stacks:
        raise ValueError(f"Unknown stack {stack!r}: a {kind} model's stacks are {', '.join(map(repr, kind.stacks))}.")
    check_corruption(corruption, inputs[0])
    components = [components] if isinstance(components, str) else components
    components = list(dict.fromkeys(sites.check_component(c, TRACED) for c in components))
    if not components:
        raise ValueError(f"No component to trace: give some of {', '.join(TRACED)}.")
    window = as_int(window, "window", 1, None, f"window must be a number of layers >= 1, got {window!r}.")
    seeds = as_int(seeds, "seeds", 1) if corruption.counterfactual is None else 1  # a counterfactual is one run
    vocab = runner.model.get_input_embeddings().weight.shape[0]
    target = as_int(target, "target", 0, vocab - 1, f"The target token id {target!r} is outside the vocabulary 0..{vocab - 1}.")
    column = as_int(column, "column", 0, len(inputs[-1]) - 1)
    n_layers = runner.spec.stacks[stack].n_layers
    token_ids = list(inputs[kind.stacks.index(stack)])
    wanted = [tuple((c, k, p) for k in layers_restored(c, layer, n_layers, window))
              for c in components for layer in range(n_layers) for p in range(len(token_ids))]
    # In a causal model the states before the first corrupted position are the clean ones: restoring
    # them changes nothing, so those restorations read the corrupted run (row 0) instead of running.
    first = min(corruption.positions) if kind is Kind.CAUSAL else 0
    restores = [()] + [r for r in wanted if any(p >= first for _, _, p in r)]
    row_of = {restore: i for i, restore in enumerate(restores)}
    rows = [Row(restore, seed) for seed in range(seeds) for restore in restores]
    clean, probs = patched_probs(runner, inputs, corruption, target, column, rows, stack, batch_size)
    mean = probs.reshape(seeds, len(restores)).mean(0)
    grid = mean[[row_of.get(r, 0) for r in wanted]].reshape(len(components), n_layers, len(token_ids))
    return Trace(
        token_ids=token_ids, counterfactual=None if corruption.counterfactual is None else list(corruption.counterfactual),
        corrupted=list(corruption.positions), target=target, stack=stack, column=column, clean_prob=clean,
        corrupt_prob=float(mean[0]), probs={c: grid[i] for i, c in enumerate(components)}, window=window,
        noise=corruption.std, seeds=seeds, corrupted_stack=kind.stacks[0],
    )
