"""Batched attribution vs a per-token captum loop, on SmolLM2 (bundled), 10 greedy tokens.

For a short (9-token) and a long (63-token) prompt, and for gradient saliency,
input x gradient and integrated gradients (50 Gauss-Legendre steps), it times ecco's batched
attribution of all generated tokens against captum's classes called once per generated token
on its prefix (what Ecco, inseq and captum's LLM attribution do), same attributed function
(the token's probability), same inputs. Each measurement runs in its own process so that its
peak memory (max RSS) is its own. Then it prints IG's completeness error and time for
16/32/50/100 steps and for n_steps='auto', for the probability and the log-probability.

Targets: saliency and input x gradient >= 3.5x faster (short) and >= 2.5x (long); IG >= 1.4x
with peak memory no higher than the loop's.

``--deeplift`` times, side by side in one process, DeepLift and DeepLiftShap as ecco ran them
before (captum's classes with one input row per target and the rescale rule added to captum's
table for the model's activation classes) and as it runs them now (its own rescale rule, one
forward over inputs and baselines, one batched backward over all targets), on the same
problem, and prints the speed-up and the largest difference between the two.
Run: ``.venv/bin/python benchmarks/attribution.py`` (add ``--deeplift`` for that table only).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings

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


def _problem(lm, seq):
    from ecco.attribution import build_problem, generated_targets
    from ecco.layout import Layout

    layout = Layout(lm.spec.kind, len(seq.token_ids), seq.n_input_tokens)
    return build_problem(lm.runner, layout, seq.token_ids, generated_targets(lm.spec.kind, seq.token_ids,
                                                                             seq.n_input_tokens), "prob")


def _captum_per_target(problem, method: str, options) -> tuple[torch.Tensor, ...]:
    """ecco's former DeepLift / DeepLiftShap: captum on one input row per target."""
    from captum.attr import DeepLift, DeepLiftShap
    from captum.attr._core import deep_lift
    from torch import nn

    from ecco.attribution.deeplift import shap_baselines
    from ecco.attribution.rules import activation_modules

    class Scores(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = problem.model

        def forward(self, *embeds: torch.Tensor) -> torch.Tensor:
            return problem.scores(*embeds)

    n = problem.n_targets
    rows = tuple(e.expand(n, -1, -1).clone() for e in problem.embeds)
    if method == "dl":
        attributor, baselines = DeepLift(Scores()), tuple(torch.zeros_like(r) for r in rows)
    else:
        lengths = [int(e.shape[1]) for e in problem.embeds]
        attributor = DeepLiftShap(Scores())
        baselines = shap_baselines(problem.spec.embeddings, lengths, options.shap_baselines, options.seed)
    table = deep_lift.SUPPORTED_NON_LINEAR
    added = [type(m) for m in activation_modules(problem.model) if type(m) not in table]
    table.update({cls: deep_lift.nonlinear for cls in added})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = attributor.attribute(rows, baselines, target=list(range(n)))
    finally:
        for cls in added:
            table.pop(cls, None)
    return tuple(r.detach() for r in result)


def deeplift_table(repeats: int) -> None:
    """Old (captum, one row per target) vs new (batched) DeepLift / DeepLiftShap, one process."""
    from ecco.attribution import METHODS, Options

    torch.set_num_threads(2)
    options = Options()
    print(f"\nDeepLift, SmolLM2-135M, {N_NEW} greedy tokens, 2 threads, one process, best of {repeats}")
    print(f"{'method':8} {'prompt':6} {'captum s':>9} {'batched s':>10} {'speed-up':>9} {'max |diff| / max |attr|':>24}")
    for prompt in PROMPTS:
        lm, seq = _setup(PROMPTS[prompt])
        problem = _problem(lm, seq)
        for method in ("dl", "dls"):
            times = {"captum": [], "batched": []}
            with lm.runner.session(grad=True):
                for _ in range(repeats):
                    start = time.perf_counter()
                    old = _captum_per_target(problem, method, options)
                    times["captum"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    new = METHODS[method].compute(problem, options).attributions
                    times["batched"].append(time.perf_counter() - start)
            scale = max(float(o.abs().max()) for o in old)
            diff = max(float((o - n).abs().max()) for o, n in zip(old, new)) / scale
            captum_s, batched_s = min(times["captum"]), min(times["batched"])
            print(f"{method:8} {prompt:6} {captum_s:9.2f} {batched_s:10.2f} {captum_s / batched_s:8.2f}x {diff:24.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "PROMPT", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-convergence", action="store_true", help="skip the IG convergence table")
    parser.add_argument("--deeplift", action="store_true", help="only the DeepLift old-vs-new table")
    parser.add_argument("--repeats", type=int, default=2, help="DeepLift table: best of this many runs")
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.deeplift:
        deeplift_table(args.repeats)
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
    deeplift_table(args.repeats)
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
