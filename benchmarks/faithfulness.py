"""Faithfulness scores, batched vs one forward pass per perturbation, on SmolLM2 (bundled).

10 greedy tokens after a short prompt, attributed with input x gradient; for every generated
token: comprehensiveness / sufficiency at the 5 default removal levels, Soft-NC / Soft-NS and the
deletion / insertion curves (``--steps``: every token by default), for the method and
``--seeds`` (default 5) random attributions. Both runs use the same perturbations (identical
ones listed once) in the same process; the batched one sends ``--batch-size`` rows per forward
pass through ``Problem.scores``. Prints both times, the ratio (target >= 3x) and the largest
difference between the two results.

Run: ``.venv/bin/python benchmarks/faithfulness.py``
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

PROMPT = "Heathrow airport is located in the city of"
N_NEW = 10


def _flat(d) -> list[float]:
    if isinstance(d, dict):
        return [x for v in d.values() for x in _flat(v)]
    if isinstance(d, list):
        return [x for v in d for x in _flat(v)]
    return [float(d)] if isinstance(d, (int, float)) and not isinstance(d, bool) else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="curve steps (default: every token)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import ecco
    from ecco.attribution import build_problem, generated_targets
    from ecco.attribution.faithfulness import _faithfulness_loop, faithfulness
    from ecco.attribution.perturb import Row
    from ecco.layout import Layout

    lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    output = lm.generate(PROMPT, generate=N_NEW, min_new_tokens=N_NEW, attribution=["grad_x_input"])
    seq = output.sequences[0]
    target = generated_targets(lm.kind, seq.token_ids, seq.n_input_tokens)
    layout = Layout(lm.kind, len(seq.token_ids), seq.n_input_tokens)
    problem = build_problem(lm.runner, layout, seq.token_ids, target, "prob")
    attributions = output.attributions["grad_x_input"].values[0]
    options = dict(steps=args.steps, seeds=args.seeds, batch_size=args.batch_size)

    counted: list[int] = []
    original = Row.__init__

    def count(self, *a, **k):  # how many distinct perturbed inputs the plan holds
        counted.append(1)
        original(self, *a, **k)

    Row.__init__ = count
    try:
        faithfulness(problem, attributions, **dict(options, seeds=0))  # warm-up (and the row count without random)
        n_method = len(counted)
        counted.clear()
        start = time.perf_counter()
        batched = faithfulness(problem, attributions, **options)
        t_batched = time.perf_counter() - start
        n_rows = len(counted)
    finally:
        Row.__init__ = original
    start = time.perf_counter()
    loop = _faithfulness_loop(problem, attributions, **options)
    t_loop = time.perf_counter() - start

    diff = np.max(np.abs(np.array(_flat(batched.to_dict())) - np.array(_flat(loop.to_dict()))))
    print(f"SmolLM2-135M, {torch.get_num_threads()} threads, {problem.n_targets} targets, "
          f"{sum(problem.source_counts(problem.n_targets - 1))} positions, 5 levels, {args.seeds} random seeds, "
          f"curve steps: {args.steps or 'every token'}")
    print(f"perturbed inputs: {n_rows} ({n_method} for the method alone) + 1 full forward")
    print(f"batched (batch {args.batch_size}): {t_batched:.2f} s")
    print(f"loop (one forward each):  {t_loop:.2f} s")
    print(f"speed-up: {t_loop / t_batched:.1f}x (target >= 3x); largest difference: {diff:.2e}")
    mean = batched.targets[0]
    print(f"target 0: AOPC comp {mean.method.aopc_comprehensiveness:.4f} (random {mean.random_mean.aopc_comprehensiveness:.4f}), "
          f"deletion AUC {mean.method.deletion_auc:.4f} (random {mean.random_mean.deletion_auc:.4f})")


if __name__ == "__main__":
    main()
