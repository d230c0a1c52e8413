"""Causal tracing on the bundled SmolLM2 (30 layers): ecco's batched restorations against a naive
loop of one hooked forward pass per (component, layer, position, seed). Target (issue 15): >= 5x.

The trace: a 10-token prompt, the subject's tokens corrupted with noise (3 embedding standard
deviations), 5 seeds, every (layer, position) restored for the residual stream, the MLP and the
attention: 5 x (1 + 3 x 30 x 10) = 4505 corrupted runs. The batched trace runs whole at each
``--batch-sizes``; the naive loop runs on ``--naive-layers`` only (every component, position and
seed there), timed per forward pass and extrapolated to the 4505 runs; both are checked to give the
same probabilities on that subset. Times are wall-clock and the process's CPU time (both threads):
on a shared machine the CPU time is the steadier measure. While each batched trace runs, the
process's resident memory is sampled every 10 ms: its peak above the memory before it is printed
(the first trace, a warm-up, also pays one-time allocations). The subject starts the prompt, so no
restoration is skipped as lying before the corruption.

Run: ``.venv/bin/python benchmarks/tracing.py [--batch-sizes 16,32,64,128] [--naive-layers 0,15,29]``
"""
from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import torch
from peak_memory import PeakMemory, status_mib

import ecco
from ecco.causal import sites
from ecco.lm.tracing import trace_result

PROMPT = "The Eiffel Tower is located in the city of"
SUBJECT = "The Eiffel Tower"
TARGET = " Paris"
COMPONENTS = ("residual", "mlp", "attention")
NOISE, SEEDS = 3.0, 5


def naive(lm, ids: list[int], target: int, positions: list[int], layers: list[int]) -> tuple[dict, tuple, int]:
    """One forward pass per (component, layer, position, seed) on ``layers``, a hook replacing the
    site's value at the position by the clean one: the mean probability per site, (wall, CPU)
    seconds, passes."""
    runner, stack = lm.runner, lm.spec.main_stack
    table = lm.model.get_input_embeddings().weight
    std = NOISE * float(table.detach().float().std())
    column = torch.tensor([len(ids) - 1])
    modules = {(c, layer): sites.modules(stack, c, lm.spec.family.name)[layer] for c in COMPONENTS for layer in layers}
    found: dict[tuple[str, int, int], float] = {}
    passes, started, cpu = 0, time.perf_counter(), time.process_time()
    with runner.session():
        clean_embeds = runner.embed(ids)
        clean = {}
        for key, module in modules.items():  # the clean value of each site, one pass each
            kept: list[torch.Tensor] = []
            with sites.Hooks() as hooks:
                hooks.add(sites.keep_site(module, key[0], kept))
                runner.logits_at((clean_embeds,), column)
            clean[key] = kept[0]
        noisy = []
        for seed in range(SEEDS):
            z = torch.randn((len(positions), clean_embeds.shape[-1]), generator=torch.Generator().manual_seed(seed))
            embeds = clean_embeds.clone()
            embeds[0, positions] += z * std
            noisy.append(embeds)
        for (c, layer), module in modules.items():
            for p in range(len(ids)):
                probs = []
                for embeds in noisy:
                    def restore(x: torch.Tensor, key=(c, layer), p=p) -> torch.Tensor:
                        x = x.clone()
                        x[:, p] = clean[key][:, p]
                        return x

                    with sites.Hooks() as hooks:
                        hooks.add(sites.edit_site(module, c, restore))
                        logits = runner.logits_at((embeds,), column)
                    probs.append(float(torch.softmax(logits[0, 0].float(), -1)[target]))
                    passes += 1
                found[(c, layer, p)] = float(np.mean(probs))
    return found, (time.perf_counter() - started, time.process_time() - cpu), passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="16,32,64,128")
    parser.add_argument("--naive-layers", default="0,15,29")
    args = parser.parse_args()
    torch.manual_seed(0)
    lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    ids = lm.tokenizer(PROMPT)["input_ids"]
    target = lm.tokenizer(TARGET, add_special_tokens=False)["input_ids"][0]
    n_layers = lm.spec.main_stack.n_layers
    runs = SEEDS * (1 + len(COMPONENTS) * n_layers * len(ids))
    print(f"SmolLM2-135M, {torch.get_num_threads()} threads; prompt {len(ids)} tokens, target {TARGET!r}, "
          f"{n_layers} layers x {len(COMPONENTS)} components x {len(ids)} positions x {SEEDS} seeds + {SEEDS} corrupted "
          f"runs = {runs} runs")

    def full(batch_size: int):
        return trace_result(lm, PROMPT, TARGET, SUBJECT, None, COMPONENTS, 1, SEEDS, NOISE, None, batch_size)

    loaded = status_mib()
    with PeakMemory() as memory:  # also the warm-up
        full(64)
    print(f"first full trace (batch_size 64, one-time allocations included): peak RSS +{memory.growth:.0f} MiB "
          f"over the {loaded:.0f} MiB after loading the model", flush=True)
    timings, traces = {}, {}
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        with PeakMemory() as memory:
            started, cpu = time.perf_counter(), time.process_time()
            traces[batch_size] = full(batch_size)
            timings[batch_size] = (time.perf_counter() - started, time.process_time() - cpu)
        wall, cpu = timings[batch_size]
        print(f"batched, batch_size {batch_size:4d}: {wall:6.1f} s wall, {cpu:6.1f} s CPU; {1000 * wall / runs:5.1f} / "
              f"{1000 * cpu / runs:5.1f} ms per run; peak RSS +{memory.growth:.0f} MiB (before: {memory.base:.0f} MiB)",
              flush=True)

    trace = next(iter(traces.values()))
    layers = [int(x) for x in args.naive_layers.split(",")]
    found, (wall, cpu), passes = naive(lm, ids, target, trace.corrupted, layers)
    per_pass = (wall / passes, cpu / passes)
    print(f"naive loop on layers {layers}: {passes} hooked passes in {wall:.1f} s wall, {cpu:.1f} s CPU; "
          f"{1000 * per_pass[0]:.1f} / {1000 * per_pass[1]:.1f} ms per pass; extrapolated to the {runs} runs of the "
          f"full trace: {per_pass[0] * runs:.0f} s wall, {per_pass[1] * runs:.0f} s CPU")
    for batch_size, (wall, cpu) in timings.items():
        print(f"speed-up at batch_size {batch_size:4d}: {per_pass[0] * runs / wall:5.1f}x wall, "
              f"{per_pass[1] * runs / cpu:5.1f}x CPU")
    diff = max(abs(found[(c, layer, p)] - trace.probs[c][layer, p]) for c, layer, p in found)
    spread = max(abs(traces[b].probs[c] - trace.probs[c]).max() for b in traces for c in COMPONENTS)
    print(f"naive vs batched on the subset: max |difference| {diff:.2e} (probabilities up to "
          f"{max(found.values()):.3f}); between batch sizes: {spread:.2e}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS (ru_maxrss, model and naive loop included): {peak:.0f} MiB")
    print(f"clean p({TARGET!r}) {trace.clean_prob:.4f}, corrupted {trace.corrupt_prob:.4f}; strongest restorations: "
          + ", ".join(f"{c} layer {np.unravel_index(trace.probs[c].argmax(), trace.probs[c].shape)[0]} position "
                      f"{np.unravel_index(trace.probs[c].argmax(), trace.probs[c].shape)[1]} ({trace.probs[c].max():.3f})"
                      for c in COMPONENTS))


if __name__ == "__main__":
    sys.exit(main())
