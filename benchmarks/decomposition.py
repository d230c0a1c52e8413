"""NMF over every layer of SmolLM2 vs the time it took to generate the tokens.

10 factors over all 30 layers (30 x 1536 = 46,080 neuron rows) for 100 tokens; target: the
NMF takes less time than generating those tokens. Run: ``.venv/bin/python benchmarks/decomposition.py``.
"""
from __future__ import annotations

import time

import torch

import ecco

PROMPT = "The history of the city begins with a small settlement on the banks of the river, where"


def main() -> None:
    torch.set_num_threads(2)
    lm = ecco.from_pretrained("smollm2-135m", activations=True, verbose=False)
    n_prompt = len(lm.tokenizer(PROMPT)["input_ids"])
    start = time.perf_counter()
    output = lm.generate(PROMPT, generate=100 - n_prompt, min_new_tokens=100 - n_prompt)
    generation = time.perf_counter() - start
    start = time.perf_counter()
    nmf = output.run_nmf(n_components=10)
    factorisation = time.perf_counter() - start
    rows = nmf.selection.matrix.shape[0]
    print(f"{len(output.sequences[0])} tokens, {rows} neuron rows ({len(nmf.selection.layers)} layers)")
    print(f"generation (with capture): {generation:.2f} s")
    print(f"NMF, 10 factors          : {factorisation:.2f} s  (ratio {factorisation / generation:.2f}, target < 1)")
    print(f"relative reconstruction error: {nmf.reconstruction_error:.3f}")


if __name__ == "__main__":
    main()
