"""Batched attribution vs a per-token captum loop, on SmolLM2 (bundled), 10 greedy tokens.

For a short (9-token) and a long (63-token) prompt, and for gradient saliency,
input x gradient and integrated gradients (50 Gauss-Legendre steps), it times ecco's batched
attribution of all generated tokens against captum's classes called once per generated token
on its prefix (what Ecco, inseq and captum's LLM attribution do), same attributed function
(the token's probability), same inputs. Each measurement runs in its own process so that its
peak memory (max RSS) is its own. Then it prints IG's completeness error and time for
16/32/50/100 steps and for n_steps='auto', for the probability and the log-probability.

Targets: saliency and input x gradient >= 3.5x faster (short) and >= 2.5x (long); IG >= 1.4x
with peak memory no higher than the loop's. Run: ``.venv/bin/python benchmarks/attribution.py``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

PROMPTS = {
    "short": "Heathrow airport is located in the city of",
    "long": (
        "The history of the city begins with a small settlement on the banks of the river, where traders "
        "stopped to rest on their way to the coast. Over the centuries the settlement grew into a market "
        "town, and later into a busy port whose ships carried wool"
    ),
}
METHODS = {"saliency": "Saliency", "grad_x_input": "InputXGradient", "ig": "IntegratedGradients"}
N_NEW = 10


def _setup(prompt: str):
    import ecco

    lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    output = lm.generate(prompt, generate=N_NEW, min_new_tokens=N_NEW)
    return lm, output.sequences[0]


def _ecco(lm, seq, method: str, score: str = "prob", n_steps=50) -> dict:
    from ecco.attribution import Options, explain, generated_targets

    target = generated_targets("causal", seq.token_ids, seq.n_input_tokens)
    start = time.perf_counter()
    result = explain(lm.runner, [(seq.token_ids, seq.n_input_tokens, target)], [method], score=score,
                     options=Options(n_steps=n_steps), progress=False)[method]
    seconds = time.perf_counter() - start
    errors = result.completeness_error[0].tolist() if result.completeness_error is not None else None
    return {"seconds": seconds, "errors": errors, "steps": result.n_steps[0] if result.n_steps else None}


def _loop(lm, seq, method: str) -> dict:
    import captum.attr as ca

    model, ids = lm.model, torch.tensor([seq.token_ids])
    embeds = model.get_input_embeddings()(ids).detach()
    start = time.perf_counter()
    for position in range(seq.n_input_tokens, len(seq)):
        token = seq.token_ids[position]

        def forward(e: torch.Tensor, token: int = token) -> torch.Tensor:
            return torch.softmax(model(inputs_embeds=e, use_cache=False).logits[:, -1].float(), -1)[:, token]

        inputs = embeds[:, :position].clone().requires_grad_(True)
        attributor = getattr(ca, METHODS[method])(forward)
        kwargs = {"n_steps": 50, "method": "gausslegendre"} if method == "ig" else {}
        attributor.attribute(inputs, **kwargs)
    return {"seconds": time.perf_counter() - start}


def worker(kind: str, prompt: str, method: str) -> None:
    torch.set_num_threads(2)
    lm, seq = _setup(PROMPTS[prompt])
    with torch.inference_mode(False):
        result = _ecco(lm, seq, method) if kind == "ecco" else _loop(lm, seq, method)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _run(kind: str, prompt: str, method: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", kind, prompt, method], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "PROMPT", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-convergence", action="store_true", help="only the speed table")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    targets = {"saliency": (3.5, 2.5), "grad_x_input": (3.5, 2.5), "ig": (1.4, 1.4)}
    print(f"SmolLM2-135M, {N_NEW} greedy tokens, 2 threads; each cell its own process")
    print(f"{'method':14} {'prompt':6} {'loop s':>8} {'ecco s':>8} {'speed-up':>9} {'target':>7} "
          f"{'loop MB':>8} {'ecco MB':>8}")
    for method in METHODS:
        for index, prompt in enumerate(PROMPTS):
            loop, ours = _run("loop", prompt, method), _run("ecco", prompt, method)
            ratio = loop["seconds"] / ours["seconds"]
            print(f"{method:14} {prompt:6} {loop['seconds']:8.2f} {ours['seconds']:8.2f} {ratio:8.2f}x "
                  f"{targets[method][index]:6.1f}x {loop['peak_mb']:8.0f} {ours['peak_mb']:8.0f}")
    if args.skip_convergence:
        return
    print("\nIntegrated gradients: completeness error |sum(attr) - (f(x) - f(0))| / |f(x) - f(0)| over the 10 tokens")
    torch.set_num_threads(2)
    lm, seq = _setup(PROMPTS["short"])
    for score in ("prob", "logprob"):
        for steps in (16, 32, 50, 100, "auto"):
            result = _ecco(lm, seq, "ig", score=score, n_steps=steps)
            errors = np.array(result["errors"])
            print(f"{score:8} steps={str(steps):5} used={result['steps']:4d} time={result['seconds']:6.2f} s  "
                  f"error median={np.median(errors):7.2%} max={errors.max():8.2%}")


if __name__ == "__main__":
    main()
