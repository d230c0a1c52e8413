"""Training a tuned lens for SmolLM2 on the Python standard library: time and memory.

Targets (issue 16), measured side by side in this process:
- training time per layer per 10,000 tokens, from a corpus run's stored hidden states and
  streamed straight from the source (which adds the model's forward passes);
- the memory training needs (the process's anonymous memory above what it held with the model
  loaded; the run's shards are memory-mapped files, not counted), next to the size the run's
  hidden states would take in memory as float32, which streaming never holds: the ratio must
  stay well below 1, and it shrinks as the run grows.

The corpus run is made first in a separate process, so that its own memory does not hide what
training needs. Run: ``.venv/bin/python benchmarks/lens_training.py [--tokens 4096] [--files 15]``
(about 10 minutes on 2 cores with the defaults).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import PeakMemory, status_mib

import ecco


def make_run(out: str, files: int) -> None:
    """The corpus run the benchmark trains on: every layer's hidden states, nothing else."""
    lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    started = time.perf_counter()
    run = lm.run_corpus(_source(files), out, hidden_states=True, activations=False, lens=False, progress=False)
    print(f"corpus run: {run.manifest.totals()['tokens']:,} tokens, every layer's hidden states (float16 on disk), "
          f"in {time.perf_counter() - started:.0f} s", flush=True)


def _source(files: int) -> ecco.corpus.Source:
    return ecco.corpus.python_stdlib(max_files=files, max_bytes=20_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096, help="training tokens (one epoch)")
    parser.add_argument("--files", type=int, default=15, help="standard-library files in the run (up to 20 kB each)")
    parser.add_argument("--make-run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_run:
        make_run(args.make_run, args.files)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "run")
        subprocess.run([sys.executable, __file__, "--make-run", out, "--files", str(args.files)], check=True)
        lm = ecco.from_pretrained("smollm2-135m", verbose=False)
        run = ecco.load_corpus(out)
        n_layers = lm.spec.stacks["decoder"].n_layers
        tokens = run.manifest.totals()["tokens"]
        hidden_mib = tokens * n_layers * run.table.column(f"hidden.decoder.{n_layers - 1}").type.list_size * 4 / 2**20
        print(f"the run's hidden states as float32 in memory: {hidden_mib:,.0f} MiB")
        loaded = status_mib("RssAnon")
        results = {}
        for name, data in (("corpus run", run), ("streamed source", _source(args.files))):
            with PeakMemory("RssAnon") as memory:
                started = time.perf_counter()
                lens = ecco.train_lens(lm, data, tokens=args.tokens, progress=False)
                seconds = time.perf_counter() - started
            trained = n_layers - 1
            results[name] = seconds / trained / args.tokens * 10_000
            used = memory.peak - loaded
            print(f"{name:>16}: {seconds:6.0f} s for {args.tokens:,} tokens x {trained} layers = {results[name]:5.1f} s per "
                  f"layer per 10k tokens; memory {used:,.0f} MiB = {used / hidden_mib:.2f} x the run's hidden states; "
                  f"final training KL (mean over layers) {sum(lens.info.training['train_kl'][-1]) / trained:.2f} nats",
                  flush=True)
        print(f"streaming / stored: {results['streamed source'] / results['corpus run']:.2f} x the time")


if __name__ == "__main__":
    main()
