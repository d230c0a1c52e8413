"""Cost of the corpus summaries: ``NeuronSummary.update`` on SmolLM2-sized batches, 2 threads.

Per batch, a corpus run on SmolLM2-135M summarises 30 layers of (tokens, 1536) float16 FFN
activations. This times ``update()`` over a shard's batches (3000 tokens each by default;
SwiGLU-like values ``silu(g) * u``, and ReLU-like ones with many exact zeros) next to a float32
cast of the same arrays, and, when the bundled model loads, next to a forward pass of SmolLM2 over
the same number of tokens. Target (issue 12): summaries <= 15 % of the run's time, i.e. about
<= 0.15 x the forward pass.

Run: ``.venv/bin/python benchmarks/corpus_summaries.py [--tokens 3000] [--batches 10] [--threads 2] [--no-model]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import ecco
from ecco.corpus.summaries import NeuronSummary

LAYERS, NEURONS = 30, 1536


def activations(kind: str, tokens: int, seed: int) -> torch.Tensor:
    """(tokens, NEURONS) float16 activations: ``swiglu`` (small, with rare large outliers) or ``relu``."""
    scale = torch.rand(NEURONS, generator=torch.Generator().manual_seed(0))  # each neuron's own, in every batch
    g = torch.Generator().manual_seed(seed)
    gate = torch.randn(tokens, NEURONS, generator=g) * 1.5
    up = torch.randn(tokens, NEURONS, generator=g) * scale
    x = torch.nn.functional.silu(gate) * up if kind == "swiglu" else torch.relu(gate - 1.0) * 0.5
    return x.to(torch.float16)


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def summaries_ms(kind: str, tokens: int, batches: int) -> tuple[float, float, float, float, float]:
    """ms per layer per batch over one shard of ``batches`` batches (summaries start empty in each
    shard, so its first batch costs more): mean, first batch, later batches (median), mean CPU time
    (all threads; less sensitive to other work on the machine), and a float32 cast."""
    data = [activations(kind, tokens, seed) for seed in range(4)]  # cycled over layers and batches
    positions = torch.arange(tokens) % 500
    warm = NeuronSummary.empty(NEURONS)
    warm.update(data[0], torch.zeros(tokens, dtype=torch.int64), positions)  # look-up tables, allocator
    summaries = [NeuronSummary.empty(NEURONS) for _ in range(LAYERS)]
    times = [[] for _ in range(batches)]
    casts = []
    cpu = time.process_time()
    for batch in range(batches):
        doc_ids = torch.arange(tokens) // 500 + batch * tokens
        for layer, summary in enumerate(summaries):
            x = data[(batch + layer) % len(data)]
            start = time.perf_counter()
            summary.update(x, doc_ids, positions)
            times[batch].append((time.perf_counter() - start) * 1e3)
            start = time.perf_counter()
            x.float()
            casts.append((time.perf_counter() - start) * 1e3)
    cpu = (time.process_time() - cpu) * 1e3 - sum(casts)
    later = [t for batch in times[1:] for t in batch]
    mean = statistics.mean(t for batch in times for t in batch)
    first, later = statistics.median(times[0]), statistics.median(later or times[0])
    return mean, first, later, cpu / batches / LAYERS, statistics.median(casts)


def forward_ms(tokens: int, runs: int) -> float | None:
    """ms of one SmolLM2-135M forward pass over ``tokens`` tokens (batches of 500), or None."""
    try:
        lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    except Exception as error:
        print(f"(no forward pass: {error})")
        return None
    ids = torch.randint(100, lm.tokenizer.vocab_size, (max(1, tokens // 500), 500), generator=torch.Generator().manual_seed(0))

    def forward() -> None:
        with torch.no_grad():
            lm.model(ids)

    return median_ms(forward, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=10, help="batches per shard (shard_tokens / batch tokens)")
    parser.add_argument("--runs", type=int, default=3, help="forward passes timed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-model", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}; {LAYERS} layers x ({args.tokens} tokens, {NEURONS}) float16; "
          f"shards of {args.batches} batches")
    per_batch = {}
    for kind in ("swiglu", "relu"):
        mean, first, later, cpu, cast = summaries_ms(kind, args.tokens, args.batches)
        per_batch[kind] = mean * LAYERS
        print(f"{kind:7s} update: {mean:5.1f} ms per layer and batch on average ({mean * LAYERS:5.0f} ms per batch of "
              f"{LAYERS} layers; CPU {cpu:5.1f} ms); first batch of a shard {first:5.1f}, later {later:5.1f}; "
              f"float32 cast {cast:4.1f}")
    forward = None if args.no_model else forward_ms(args.tokens, args.runs)
    if forward is not None:
        print(f"SmolLM2 forward over {args.tokens} tokens: {forward:.0f} ms")
        for kind, ms in per_batch.items():
            print(f"{kind:7s} summaries / forward = {ms / forward:.1%}  (target <= 15 %)")


if __name__ == "__main__":
    main()
