"""Corpus runs on the bundled SmolLM2 over the Python standard library, 2 threads.

Targets (issue 12), printed as ratios measured side by side in this process:
- ``run_corpus`` (all 30 layers' FFN activations in float16, summaries, writing) keeps >= 0.80
  of the throughput of a plain batched forward pass over the same batches; padding fraction shown;
- the summaries take <= 15 % of the run's time (run with and without them);
- peak memory does not grow with the corpus: 10x more tokens -> peak RSS <= 1.2x (subprocesses);
- the Ray backend on a local cluster: wall time and equality with the single-process run.

Run: ``.venv/bin/python benchmarks/corpus.py [--tokens 50000] [--skip-ray] [--skip-memory]``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import ecco
from ecco.corpus.engine import CaptureSpec, Engine
from ecco.corpus.run import Settings, plan_shards
from ecco.corpus.sources import as_source, python_stdlib
from ecco.corpus.windows import batches

OPTIONS = {"max_tokens": 512, "overlap": 64, "batch_tokens": 4096, "shard_tokens": 16384, "progress": False}


def stdlib_texts(lm: ecco.LM, tokens: int) -> list[str]:
    """Standard-library files, in order, until they hold ``tokens`` tokens (files of more than a
    fifth of that are passed over, so the total stays close to ``tokens``)."""
    texts, total = [], 0
    for doc in python_stdlib().documents():
        n = len(lm.tokenizer(doc.text, add_special_tokens=False)["input_ids"])
        if 0 < n <= tokens // 5:
            texts.append(doc.text)
            total += n
        if total >= tokens:
            return texts
    return texts


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def throughput(lm: ecco.LM, texts: list[str], work: Path) -> None:
    run = lambda out, **o: lm.run_corpus(texts, work / out, overwrite=True, **OPTIONS, **o)  # noqa: E731
    lm.run_corpus(texts[:2], work / "warm", layers=[0], overwrite=True, **OPTIONS)  # warm-up: threads, allocator
    n_layers = lm.spec.main_stack.n_layers
    capture = CaptureSpec("decoder", tuple(range(n_layers)), True, False, "float16", False)
    settings = Settings(model="smollm2", model_class="", capture=capture, max_tokens=OPTIONS["max_tokens"],
                        overlap=OPTIONS["overlap"], batch_tokens=OPTIONS["batch_tokens"],
                        shard_tokens=OPTIONS["shard_tokens"], top_k=32, hist_edges=(0.0,), summaries=False)
    engine = Engine(lm.runner, lm.tokenizer, capture)
    plans = list(plan_shards(as_source(texts), lm.tokenizer, settings))
    same_batches = [b for p in plans for b in batches(p.windows, OPTIONS["batch_tokens"])]
    plain = timed(lambda: [engine.plain(b) for b in same_batches])
    full = timed(lambda: run("full"))
    bare = timed(lambda: run("bare", summaries=False))
    totals = ecco.load_corpus(work / "full").manifest.totals()
    tokens = totals["tokens"]
    print(f"{tokens} tokens, {len(texts)} documents, {n_layers} layers of FFN activations in float16; padding "
          f"fraction {totals['padding_fraction']:.3f}; {totals['bytes'] / tokens / 1024:.1f} KiB per token on disk")
    print(f"plain forward  {tokens / plain:8.0f} tok/s")
    print(f"run_corpus     {tokens / full:8.0f} tok/s  -> {plain / full:.2f} of plain (target >= 0.80)")
    print(f"no summaries   {tokens / bare:8.0f} tok/s  -> summaries' share {max(0.0, 1 - bare / full):.1%} (target <= 15 %)")
    for name in ("full", "bare", "warm"):
        shutil.rmtree(work / name)


CHILD = """
import json, sys, threading, time, torch
torch.set_num_threads(2)
import ecco
from benchmarks.corpus import stdlib_texts, OPTIONS

def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

lm = ecco.from_pretrained("smollm2-135m", verbose=False)
texts = stdlib_texts(lm, int(sys.argv[1]))
before, peak, running = rss_kb(), [0], True
def watch():
    while running:
        peak[0] = max(peak[0], rss_kb())
        time.sleep(0.05)
watcher = threading.Thread(target=watch)
watcher.start()
run = lm.run_corpus(texts, sys.argv[2], layers=[0, 15, 29], overwrite=True, **OPTIONS)
running = False
watcher.join()
print(json.dumps({"tokens": run.manifest.totals()["tokens"], "loaded_kb": before, "peak_kb": peak[0]}))
"""


def memory(work: Path, small: int) -> None:
    results = []
    for tokens in (small, 10 * small):
        out = subprocess.run([sys.executable, "-c", CHILD, str(tokens), str(work / f"mem{tokens}")], check=True,
                             capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        shutil.rmtree(work / f"mem{tokens}")
    a, b = results
    print(f"peak RSS during the run {a['peak_kb'] / 1024:.0f} MiB for {a['tokens']} tokens, {b['peak_kb'] / 1024:.0f} MiB "
          f"for {b['tokens']} tokens -> {b['peak_kb'] / a['peak_kb']:.2f}x (target <= 1.2x); before the run (model and "
          f"texts loaded) {a['loaded_kb'] / 1024:.0f} / {b['loaded_kb'] / 1024:.0f} MiB")


def on_ray(lm: ecco.LM, texts: list[str], work: Path) -> None:
    layers = [0, 15, 29]
    start = time.perf_counter()
    local = lm.run_corpus(texts, work / "local", layers=layers, overwrite=True, **OPTIONS)
    local_s = time.perf_counter() - start
    start = time.perf_counter()
    ray = lm.run_corpus(texts, work / "ray", layers=layers, overwrite=True, backend="ray", workers=2, **OPTIONS)
    ray_s = time.perf_counter() - start
    same = all(np.array_equal(local.array(c), ray.array(c)) for c in local.columns) and all(
        np.array_equal(local.summary.neurons[n].top_values, ray.summary.neurons[n].top_values) for n in local.summary.neurons
    ) and local.table.column("token_id").equals(ray.table.column("token_id"))
    print(f"ray (2 workers x 1 thread, local cluster) {ray_s:.1f} s vs one process (2 threads) {local_s:.1f} s "
          f"for {local.manifest.totals()['tokens']} tokens; identical shards and summaries: {same}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--memory-tokens", type=int, default=5_000)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    texts = stdlib_texts(lm, args.tokens)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        throughput(lm, texts, work)
        if not args.skip_memory:
            memory(work, args.memory_tokens)
        if not args.skip_ray:
            on_ray(lm, stdlib_texts(lm, 10_000), work)


if __name__ == "__main__":
    main()
