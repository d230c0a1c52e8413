"""Occlusion for every generated token of one item on the bundled SmolLM2, 2 threads: ecco's
batched occlusion (one perturbed input per source position, serving all targets) against
captum's ``FeatureAblation`` called once per generated token on its prefix, as inseq and
captum's LLM attribution do. Target (issue 14): >= 3x faster. The two results are compared.

Run: ``.venv/bin/python benchmarks/occlusion.py [--generate 10]``.
"""
from __future__ import annotations

import argparse
import time

import captum.attr as ca
import numpy as np
import torch

import ecco

PROMPT = "Heathrow airport is located in the city of London, the capital of the United Kingdom, and"


class PrefixScore(torch.nn.Module):
    """The probability of one token after a prefix of input embeddings."""

    def __init__(self, model: torch.nn.Module, target: int) -> None:
        super().__init__()
        self.model, self.target = model, target

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        logits = self.model(inputs_embeds=embeds, use_cache=False).logits[:, -1].float()
        return torch.softmax(logits, -1)[:, self.target]


def captum_per_token(model: torch.nn.Module, ids: list[int], n_input: int) -> list[np.ndarray]:
    with torch.no_grad():
        embeds = model.get_input_embeddings()(torch.tensor([ids]))
    out = []
    for position in range(n_input, len(ids)):
        prefix = embeds[:, :position]
        mask = torch.arange(position).view(1, -1, 1).expand_as(prefix)
        result = ca.FeatureAblation(PrefixScore(model, ids[position])).attribute(
            prefix, baselines=0.0, feature_mask=mask, perturbations_per_eval=32)
        out.append(result[0, :, 0].double().numpy())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(2)
    lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    output = lm.generate(PROMPT, generate=args.generate, min_new_tokens=args.generate)
    seq = output.sequences[0]
    output.attribution["occlusion"]  # warm-up: computed once, then timed again below
    del output.attributions["occlusion"]
    start = time.perf_counter()
    ours = output.attribution_result("occlusion").raw[0]
    batched = time.perf_counter() - start
    with torch.no_grad():
        start = time.perf_counter()
        theirs = captum_per_token(lm.model, seq.token_ids, seq.n_input_tokens)
        looped = time.perf_counter() - start
    worst = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(ours, theirs))
    print(f"{len(theirs)} generated tokens after {seq.n_input_tokens} prompt tokens")
    print(f"ecco occlusion, batched: {batched:.2f} s; captum FeatureAblation per token: {looped:.2f} s; "
          f"{looped / batched:.1f}x faster; largest difference {worst:.1e} of the largest value")


if __name__ == "__main__":
    main()
