"""Training a tuned lens for SmolLM2 on the Python standard library: time and memory.

Targets (issue 16), measured side by side in this process:
- training time per layer per 10,000 tokens, from a corpus run's stored hidden states and
  streamed straight from the source (which adds the model's forward passes);
- the memory training adds (anonymous memory: the run's shards are memory-mapped files), next
  to the size the run's hidden states would take in memory as float32, which streaming never
  holds: the ratio must stay well below 1 and does not grow with the run.

Run: ``.venv/bin/python benchmarks/lens_training.py [--tokens 4096] [--files 15]`` (about
8 minutes on 2 cores with the defaults).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ecco
from peak_memory import PeakMemory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096, help="training tokens (one epoch)")
    parser.add_argument("--files", type=int, default=15, help="standard-library files in the run (up to 20 kB each)")
    args = parser.parse_args()
    lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    source = ecco.corpus.python_stdlib(max_files=args.files, max_bytes=20_000)
    n_layers = lm.spec.stacks["decoder"].n_layers
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run = lm.run_corpus(source, Path(tmp) / "run", hidden_states=True, activations=False, progress=False)
        tokens = run.manifest.totals()["tokens"]
        hidden_mib = tokens * n_layers * run.table.column(f"hidden.decoder.{n_layers - 1}").type.list_size * 4 / 2**20
        print(f"corpus run: {tokens:,} tokens, {n_layers} layers of hidden states (float16 on disk) in "
              f"{time.perf_counter() - started:.0f} s; as float32 in memory they would take {hidden_mib:,.0f} MiB")
        results = {}
        for name, data in (("corpus run", run), ("streamed source", source)):
            with PeakMemory("RssAnon") as memory:
                started = time.perf_counter()
                lens = ecco.train_lens(lm, data, tokens=args.tokens, progress=False)
                seconds = time.perf_counter() - started
            trained_layers = n_layers - 1
            per = seconds / trained_layers / args.tokens * 10_000
            results[name] = per
            print(f"{name:>16}: {seconds:6.0f} s for {args.tokens:,} tokens x {trained_layers} layers = {per:5.1f} s per "
                  f"layer per 10k tokens; memory added {memory.growth:,.0f} MiB = {memory.growth / hidden_mib:.2f} x "
                  f"the run's hidden states; final training KL (mean over layers) "
                  f"{sum(lens.info.training['train_kl'][-1]) / trained_layers:.2f} nats")
        print(f"streaming / stored: {results['streamed source'] / results['corpus run']:.2f} x the time")


if __name__ == "__main__":
    main()
