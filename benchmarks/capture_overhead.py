"""Cost of capture: plain ``model.generate`` vs ``lm.generate`` with activations + hidden states.

SmolLM2-135M (bundled), a ~60-token prompt, 40 new greedy tokens; medians of several runs in
one process. Target: ratio <= 1.15. Run: ``.venv/bin/python benchmarks/capture_overhead.py``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import ecco

PROMPT = (
    "The history of the city begins with a small settlement on the banks of the river, where "
    "traders stopped to rest on their way to the coast. Over the centuries the settlement grew "
    "into a market town, and later into a busy port whose ships carried wool, grain and salt to "
    "distant harbours, and whose merchants built"
)


def _interleaved_medians(fns, runs: int) -> list[float]:
    """Median seconds of each function, runs alternating so drifts in machine load hit both."""
    for fn in fns:
        fn()  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=40)
    args = parser.parse_args()
    lm = ecco.from_pretrained("smollm2-135m", activations=True, hidden_states=True, verbose=False)
    model, tokenizer = lm.model, lm.tokenizer
    inputs = tokenizer(PROMPT, return_tensors="pt")
    n_prompt = inputs["input_ids"].shape[1]
    print(f"torch threads: {torch.get_num_threads()}, prompt tokens: {n_prompt}, new tokens: {args.new_tokens}")

    def plain() -> None:
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=args.new_tokens, do_sample=False,
                           min_new_tokens=args.new_tokens, pad_token_id=tokenizer.eos_token_id)

    outputs = []

    def captured() -> None:
        outputs.append(lm.generate(PROMPT, generate=args.new_tokens, min_new_tokens=args.new_tokens))

    t_plain, t_ecco = _interleaved_medians([plain, captured], args.runs)
    out = outputs[-1]
    stored = sum(a.nbytes for a in out.activations.values()) + sum(
        h.numel() * h.element_size() for h in out.hidden_states.values()
    )
    n_positions = len(out.sequences[0])
    print(f"plain model.generate      : {t_plain:.3f} s")
    print(f"lm.generate (acts+hidden) : {t_ecco:.3f} s")
    print(f"ratio                     : {t_ecco / t_plain:.3f}  (target <= 1.15)")
    print(f"stored captures           : {stored / 2**20:.1f} MiB for {n_positions} positions "
          f"= {stored / n_positions / 2**20:.2f} MiB per token (float32)")


if __name__ == "__main__":
    main()
