"""Faithfulness scores of input attributions: does removing what a method calls important
change the model's score of the explained token?

For each target k of a :class:`Problem` (one score per source token given by an attribution
method, in the order of ``problem.source_counts(k)``: the encoder's positions, then the
decoder's), with ``p`` the problem's score of the target (its probability by default), ``x``
the full input, ``n`` the number of source tokens (special tokens left out when a mask of them
is given) and ``top_c`` the ``c`` sources of highest attribution (ties: the earlier position
first):

- **Removal.** A removed token keeps its position; its input embedding becomes the zero vector
  (``removal='zero'``) or the embedding of a neutral token the caller passes
  (``removal='replace'``, e.g. pad / eos / unk). Deleting positions would shift every later
  token's position (a different input, not the same one without a token) and give each
  perturbation its own length; with positions kept, every perturbed input has the problem's
  shape, so the perturbations of an item share forward passes. (Masking attention is not
  offered: see :mod:`.perturb`.)
- **Comprehensiveness / sufficiency** (DeYoung et al. 2020, ERASER) at each level q (default
  0.1 ... 0.5) with ``c = max(1, ceil(q n))``: ``comp_q = p(x) - p(x without top_c)``,
  ``suff_q = p(x) - p(only top_c kept)``; AOPC is their mean over the levels.
- **Soft-NC / Soft-NS** (Zhao & Aletras 2023, "Incorporating Attribution Importance for
  Improving Faithfulness Metrics"): instead of removing tokens, each embedding element of
  source i is kept with a probability given by its importance
  ``a_i = (s_i - min s) / (max s - min s)`` (min-max over the target's sources; all equal: 0.5),
  ``x'_i = e_i * x_i + (1 - e_i) * r`` with ``e_i ~ Bernoulli(a_i)`` per element for
  sufficiency and ``Bernoulli(1 - a_i)`` for comprehensiveness (seeded).
  With ``S(x') = 1 - max(0, p(x) - p(x'))`` and ``S0 = S(all sources removed)``:
  ``Soft-NC = max(0, p(x) - p(x'_{1-a})) / (1 - S0)``,
  ``Soft-NS = (S(x'_a) - S0) / (1 - S0)``,
  averaged over ``soft_samples`` draws (the paper: one). Where ``1 - S0 = max(0, p(x) - p(empty))``
  is ~0 (removing every source does not lower the score) both are 0: there is no evidence to
  be faithful to. The paper's authors' code also clamps Soft-NS at 0; the paper's formula,
  followed here, does not.
- **Deletion / insertion curves**: ``p`` with the top c sources removed (deletion) or with only
  them restored into the all-removed input (insertion), for c = 0 ... n (``steps=m``: m + 1
  evenly spaced fractions); x is c / n and the AUC is the trapezoid area over [0, 1].
- **Random baseline**: the same scores for ``seeds`` random attributions (uniform, seeded),
  i.e. uniformly random orders; their mean and standard deviation are kept beside the method's.

All perturbations of an item (every target, level, kind and random seed) are listed first,
identical ones once, and go through ``problem.scores`` ``batch_size`` rows per forward pass.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from ..checks import as_int
from .perturb import Row, evaluate_batched, evaluate_loop, removal_embeds
from .problem import Problem

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass
class Scores:
    """One attribution's (the method's, one random seed's, or their mean / std) scores for a target."""

    comprehensiveness: np.ndarray  # per level
    sufficiency: np.ndarray  # per level
    aopc_comprehensiveness: float
    aopc_sufficiency: float
    soft_nc: float
    soft_ns: float
    deletion: np.ndarray  # the score at each curve fraction
    insertion: np.ndarray
    deletion_auc: float
    insertion_auc: float

    def to_dict(self) -> dict:
        """Plain lists and floats."""
        return {k: v.tolist() if isinstance(v, np.ndarray) else float(v) for k, v in asdict(self).items()}


@dataclass
class TargetFaithfulness:
    """The scores of one explained token, the method's beside the random baseline's."""

    target: int  # index into the problem's targets
    n_sources: int
    full_score: float  # p(x)
    empty_score: float  # p(every source removed)
    fractions: np.ndarray  # x of the deletion / insertion curves
    method: Scores
    random: list[Scores]

    @property
    def random_mean(self) -> Scores | None:
        """The random baseline's mean over seeds (None without seeds)."""
        return _combine(self.random, np.mean)

    @property
    def random_std(self) -> Scores | None:
        """The random baseline's standard deviation over seeds (None without seeds)."""
        return _combine(self.random, np.std)

    def to_dict(self) -> dict:
        """Plain lists and floats; the random seeds as mean and std."""
        mean, std = self.random_mean, self.random_std
        return {
            "target": self.target, "n_sources": self.n_sources, "full_score": self.full_score,
            "empty_score": self.empty_score, "fractions": self.fractions.tolist(), "method": self.method.to_dict(),
            "random_mean": None if mean is None else mean.to_dict(), "random_std": None if std is None else std.to_dict(),
            "random_seeds": len(self.random),
        }


@dataclass
class FaithfulnessResult:
    """Faithfulness scores of one item's attributions, per target."""

    levels: np.ndarray
    removal: str
    score: str
    targets: list[TargetFaithfulness]

    def to_dict(self) -> dict:
        """Plain lists, floats and strings (JSON-ready)."""
        return {"levels": self.levels.tolist(), "removal": self.removal, "score": self.score,
                "targets": [t.to_dict() for t in self.targets]}


def _combine(items: list[Scores], reduce: Callable) -> Scores | None:
    if not items:
        return None
    values = {}
    for f in fields(Scores):
        stacked = np.stack([np.asarray(getattr(s, f.name), dtype=np.float64) for s in items])
        reduced = reduce(stacked, axis=0)
        values[f.name] = reduced if reduced.ndim else float(reduced)
    return Scores(**values)


def faithfulness(
    problem: Problem,
    attributions: Sequence[np.ndarray],
    *,
    removal: str = "zero",
    replacement: torch.Tensor | Sequence[torch.Tensor] | None = None,
    special: Sequence[np.ndarray] | np.ndarray | None = None,
    levels: Sequence[float] = LEVELS,
    steps: int | None = None,
    seeds: int = 5,
    seed: int = 0,
    soft_samples: int = 1,
    batch_size: int = 64,
) -> FaithfulnessResult:
    """Faithfulness scores of ``attributions`` (per target k, one score per source token, in the
    order of ``problem.source_counts(k)``; higher = more important, e.g. an
    ``AttributionResult``'s ``values[i]``) on ``problem``.

    ``special``: per input stack, a boolean array over its positions, True for tokens to leave
    out (never removed, not counted as sources). ``replacement``: the neutral token's input
    embedding (one tensor, or one per stack) for ``removal='replace'``. ``steps``: None for a
    curve point after every token, or the number of evenly spaced steps. ``seeds``: random
    attributions in the baseline (seeded with ``seed``, as are the soft perturbations).
    """
    return _compute(problem, attributions, evaluate_batched, removal=removal, replacement=replacement,
                    special=special, levels=levels, steps=steps, seeds=seeds, seed=seed,
                    soft_samples=soft_samples, batch_size=batch_size)


def _faithfulness_loop(problem: Problem, attributions: Sequence[np.ndarray], **options) -> FaithfulnessResult:
    """The reference of :func:`faithfulness`: the same perturbations, one forward pass each."""
    return _compute(problem, attributions, evaluate_loop, **options)


@dataclass
class _Plan:
    """Where one (target, attribution) pair's numbers are among the evaluated rows (-1: p(x))."""

    deletion: list[int]
    insertion: list[int]
    soft_nc: list[int]
    soft_ns: list[int]


def _compute(problem, attributions, evaluate, *, removal="zero", replacement=None, special=None, levels=LEVELS,
             steps=None, seeds=5, seed=0, soft_samples=1, batch_size=64) -> FaithfulnessResult:
    levels = check_levels(levels)
    seeds = as_int(seeds, "seeds", 0)
    seed = as_int(seed, "seed", 0)
    soft_samples = as_int(soft_samples, "soft_samples", 1)
    batch_size = as_int(batch_size, "batch_size", 1)
    if steps is not None:
        steps = as_int(steps, "steps", 1)
    removed = removal_embeds(problem, removal, replacement)
    sources = _sources(problem, attributions, _special_masks(problem, special))
    order_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    rows: list[Row] = []
    keys: dict[tuple, int] = {}
    plans, counts = [], []
    for k, (slots, values) in enumerate(sources):
        n = len(slots)
        curve = np.arange(n + 1) if steps is None else np.unique(np.rint(np.linspace(0, 1, steps + 1) * n).astype(int))
        level_counts = [max(1, math.ceil(round(q * n, 9))) for q in levels]
        needed = sorted(set(curve.tolist()) | set(level_counts))
        counts.append((curve, level_counts))
        orders = [values] + [order_rng.random(n) for _ in range(seeds)]
        # each (target, order) draws its soft masks from its own stream, so a method's Soft-NC / NS do
        # not depend on how many random orders are drawn beside it
        plans.append([_plan(problem, k, slots, v, needed, soft_samples, np.random.default_rng([seed, k, j]), rows, keys)
                      for j, v in enumerate(orders)])
    with problem.runner.session():
        full = problem.scores(*problem.embeds)[0].double().cpu().numpy()
        scored = evaluate(problem, rows, removed, batch_size)
    targets = []
    for k, ((slots, _), (curve, level_counts), item) in enumerate(zip(sources, counts, plans)):
        p = float(full[k])

        def read(index: int) -> float:
            return p if index < 0 else float(scored[index])

        needed = sorted(set(curve.tolist()) | set(level_counts))
        where = {c: i for i, c in enumerate(needed)}
        empty = read(item[0].deletion[where[len(slots)]])
        all_scores = [_scores(p, empty, plan, read, where, curve, level_counts, len(slots)) for plan in item]
        targets.append(TargetFaithfulness(k, len(slots), p, empty, curve / len(slots), all_scores[0], all_scores[1:]))
    return FaithfulnessResult(np.array(levels), removal, _score_name(problem), targets)


def _score_name(problem: Problem) -> str:
    return "logprob_diff" if problem.foil_ids is not None else problem.score


def _scores(p, empty, plan: _Plan, read, where, curve, level_counts, n) -> Scores:
    deletion = np.array([read(plan.deletion[where[c]]) for c in curve])
    insertion = np.array([read(plan.insertion[where[c]]) for c in curve])
    comp = np.array([p - read(plan.deletion[where[c]]) for c in level_counts])
    suff = np.array([p - read(plan.insertion[where[c]]) for c in level_counts])
    denominator = max(0.0, p - empty)  # 1 - S0
    if denominator <= 1e-6 * max(1.0, abs(p)):
        soft_nc = soft_ns = 0.0
    else:
        soft_nc = float(np.mean([max(0.0, p - read(i)) for i in plan.soft_nc])) / denominator
        # S(x'_a) - S0 = (1 - max(0, p - p(x'_a))) - (1 - denominator)
        soft_ns = float(np.mean([denominator - max(0.0, p - read(i)) for i in plan.soft_ns])) / denominator
    x = curve / n
    return Scores(comp, suff, float(comp.mean()), float(suff.mean()), soft_nc, soft_ns, deletion, insertion,
                  float(np.trapezoid(deletion, x)), float(np.trapezoid(insertion, x)))


def _plan(problem, k, slots, values, needed, soft_samples, mask_rng, rows, keys) -> _Plan:
    """Add the rows of one (target, attribution) pair, identical hard removals once."""
    n = len(slots)
    rank = np.argsort(-values, kind="stable")  # ties: the earlier source first

    def hard(keep: np.ndarray) -> int:
        if keep.all():
            return -1  # the full input: p(x), one shared forward pass
        key = (k, keep.tobytes())
        if key not in keys:
            keys[key] = len(rows)
            rows.append(Row(k, _weights(problem, slots, keep.astype(np.float32))))
        return keys[key]

    deletion, insertion = [], []
    for c in needed:
        top = np.zeros(n, dtype=bool)
        top[rank[:c]] = True
        deletion.append(hard(~top))
        insertion.append(hard(top))
    low, high = float(values.min()), float(values.max())
    alpha = (values - low) / (high - low) if high > low else np.full(n, 0.5)
    hidden = problem.embeds[0].shape[-1]
    soft = {"nc": [], "ns": []}
    for _ in range(soft_samples):
        for kind, keep_prob in (("nc", 1 - alpha), ("ns", alpha)):
            keep = (mask_rng.random((n, hidden)) < keep_prob[:, None]).astype(np.float32)
            soft[kind].append(len(rows))
            rows.append(Row(k, _weights(problem, slots, keep)))
    return _Plan(deletion, insertion, soft["nc"], soft["ns"])


def _weights(problem: Problem, slots: list[tuple[int, int]], keep: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per stack, 1 everywhere but at the given source slots, which take ``keep`` (per slot,
    a number or a row over the hidden units)."""
    out = [np.ones((x.shape[1],) + keep.shape[1:], dtype=np.float32) for x in problem.embeds]
    for (stack, position), value in zip(slots, keep):
        out[stack][position] = value
    return tuple(out)


def check_levels(levels: Sequence[float]) -> list[float]:
    """The removal levels as floats, each strictly between 0 and 1 (a clear error otherwise)."""
    levels = [levels] if np.ndim(levels) == 0 else list(levels)
    if not levels:
        raise ValueError("levels must name at least one removal level in (0, 1), e.g. (0.1, 0.2, 0.3, 0.4, 0.5).")
    for q in levels:
        if isinstance(q, (bool, np.bool_)) or not isinstance(q, (int, float, np.integer, np.floating)) or not 0 < q < 1:
            raise ValueError(f"A removal level is a fraction of the source tokens strictly between 0 and 1, got {q!r}.")
    return [float(q) for q in levels]


def _special_masks(problem: Problem, special) -> list[np.ndarray]:
    lengths = [int(x.shape[1]) for x in problem.embeds]
    if special is None:
        return [np.zeros(n, dtype=bool) for n in lengths]
    if isinstance(special, (np.ndarray, torch.Tensor)) and np.ndim(special) == 1:
        special = [special]
    masks = [np.asarray(m, dtype=bool) for m in special]
    if len(masks) != len(lengths) or any(m.shape != (n,) for m, n in zip(masks, lengths)):
        raise ValueError(
            f"special must hold one boolean mask per input stack over its positions, of lengths {lengths}; "
            f"got lengths {[m.shape for m in masks]}."
        )
    return masks


def _sources(problem: Problem, attributions, special: list[np.ndarray]) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
    """Per target: its (stack, position) sources without the special tokens, and their attributions."""
    if len(attributions) != problem.n_targets:
        raise ValueError(f"attributions must hold one array per target ({problem.n_targets}), got {len(attributions)}.")
    out = []
    for k, scores in enumerate(attributions):
        counts = problem.source_counts(k)
        scores = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
        if scores.shape != (sum(counts),):
            raise ValueError(
                f"attributions[{k}] must hold one score per source token of target {k}: shape ({sum(counts)},), "
                f"got {scores.shape}."
            )
        if not np.isfinite(scores).all():
            raise ValueError(f"attributions[{k}] holds NaN or inf.")
        slots = [(s, p) for s, count in enumerate(counts) for p in range(count)]
        keep = [i for i, (s, p) in enumerate(slots) if not special[s][p]]
        if not keep:
            raise ValueError(f"Target {k} has no source tokens to remove (all are special or there are none).")
        out.append(([slots[i] for i in keep], scores[keep]))
    return out
