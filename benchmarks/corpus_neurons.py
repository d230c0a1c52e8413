"""Neuron search and corpus factors on a SmolLM2 corpus run over the Python standard library.

Targets (issue 13), measured in this process:
- ``run.search`` over every captured neuron (30 layers x 1536 = 46,080) x >= 50,000 tokens:
  seconds per query, and memory bounded: the process's anonymous memory (the shards are
  memory-mapped files, whose pages the kernel can drop) next to the size of the tokens x neurons
  float32 matrix that streaming avoids. The counted float16 AUROC is timed side by side with
  the ranked one (average ranks, as for float32 runs) on two layers.
- ``run.fit_factors('nmf', 10)`` over the same data: seconds per pass over the shards.
- A TopK sparse autoencoder and NMF with the same number of components on one layer: fraction
  of variance unexplained and dead features.

Run: ``.venv/bin/python benchmarks/corpus_neurons.py [--run DIR] [--files 17] [--skip-search] [--skip-factors]``;
without ``--run`` (or when it is missing) the run is made first (about 4 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch
from peak_memory import PeakMemory, status_mib

import ecco
from ecco.corpus.predicates import code_queries
from ecco.corpus.search import auroc, half_auroc, layer_values, token_labels


def make_run(out: Path, files: int) -> ecco.Corpus:
    lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    source = ecco.corpus.python_stdlib(max_files=files, max_bytes=40_000)
    return lm.run_corpus(source, out, max_tokens=512, overlap=64, batch_tokens=4096, shard_tokens=16384)


def search(run: ecco.Corpus) -> None:
    totals = run.manifest.totals()
    n_neurons = sum(run.table.schema.field(c).type.list_size for c in run.columns if c.startswith("ffn."))
    dense = totals["tokens"] * n_neurons * 4 / 2**20
    print(f"search: {n_neurons} neurons x {totals['tokens']} tokens (a dense float32 matrix: {dense:,.0f} MiB)")
    for name, predicate in code_queries().items():
        before = status_mib("RssAnon")
        with PeakMemory("RssAnon") as peak:
            start = time.perf_counter()
            found = run.search(predicate, top=3)
            seconds = time.perf_counter() - start
        best = ", ".join(f"L{s.layer} N{s.neuron} AUROC {s.auroc:.4f} P@k {s.precision_at_k:.2f}" for s in found)
        print(f"  {name}: {seconds:.1f} s, anonymous memory +{peak.peak - before:.0f} MiB "
              f"({(peak.peak - before) / dense:.3f} of the dense matrix); best: {best}")
    tokens = run.table.column("token").to_pylist()
    labels = token_labels(tokens, run.table.column("doc_id").to_numpy(), run.table.column("position").to_numpy(),
                          code_queries()["opening bracket"])
    counted = ranked = 0.0
    for column in run.columns[:2]:
        for start in range(0, 1536, 256):
            values = layer_values(run.table, column, start, start + 256, None)
            t0 = time.perf_counter()
            a = half_auroc(values, labels)
            t1 = time.perf_counter()
            b = auroc(values.astype(np.float32), labels)
            t2 = time.perf_counter()
            counted, ranked = counted + t1 - t0, ranked + t2 - t1
            assert np.allclose(a, b, rtol=0, atol=1e-12)
    print(f"  AUROC of 2 layers, one thread: counted {counted:.2f} s, ranked {ranked:.2f} s: {ranked / counted:.1f}x faster")


def factors(run: ecco.Corpus, layer: int, sizes: list[int]) -> None:
    start = time.perf_counter()
    nmf = run.fit_factors("nmf", 10, batch_size=2048)
    print(f"nmf, 10 factors over all {len(nmf.layers)} layers ({nmf.n_features} features): "
          f"{', '.join(f'{t:.1f}' for t in nmf.stats['seconds_per_pass'])} s per pass over the shards, summary pass "
          f"{nmf.stats['summary_seconds']:.1f} s, total {time.perf_counter() - start:.1f} s, "
          f"relative error {nmf.stats['reconstruction_error']:.3f}")
    for components in sizes:
        for method, options in (("nmf", {"nonneg": "split"}), ("sae", {"k": 16, "epochs": 5}), ("pca", {})):
            start = time.perf_counter()
            fitted = run.fit_factors(method, components, layers=[layer], **options)
            stats = fitted.stats
            dead = stats.get("dead_fraction")
            print(f"layer {layer}, {components} components, {method} {options}: FVU {stats['fvu']:.3f}, "
                  f"dead {'-' if dead is None else f'{dead:.3f}'}, {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("/tmp/ecco-bench-stdlib"))
    parser.add_argument("--files", type=int, default=17)
    parser.add_argument("--layer", type=int, default=15, help="the layer of the SAE / NMF comparison")
    parser.add_argument("--components", default="64", help="comma-separated sizes of the SAE / NMF / PCA comparison")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-factors", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    run = ecco.load_corpus(args.run) if (args.run / "manifest.json").exists() else make_run(args.run, args.files)
    print(run)
    if not args.skip_search:
        search(run)
    if not args.skip_factors:
        factors(run, args.layer, [int(n) for n in args.components.split(",")])
    print(f"peak RSS (mapped shards included) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
