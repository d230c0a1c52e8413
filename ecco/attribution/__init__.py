"""Input attribution: which earlier tokens made the model produce each token.

``explain`` builds one :class:`Problem` per sequence and runs the requested methods from the
registry (:mod:`.methods`, :mod:`.deeplift`, :mod:`.lrp`, :mod:`.occlusion`, :mod:`.sampling`,
:mod:`.attention_flow`, :mod:`.layer_attribution`); every method explains all targets of a sequence
together. Results are stored per method as an :class:`AttributionResult`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..layout import Layout
from ..models.kinds import Kind
from ..progress import progress_bar
from ..runner import Runner

# Registration order is the order users see: the gradient methods, DeepLift, LRP, occlusion, the
# sampling methods, the attention methods, then the layer methods.
# isort: off
from . import methods  # noqa: F401
from . import deeplift  # noqa: F401
from . import lrp  # noqa: F401
from . import occlusion  # noqa: F401
from . import sampling  # noqa: F401
from . import attention_flow  # noqa: F401
from . import layer_attribution  # noqa: F401
# isort: on
from .aggregate import per_token, sum_over_words, word_spans
from .problem import Problem, Score
from .registry import METHODS, MethodOutput, Options, UnsupportedMethodError, get_method


@dataclass
class AttributionResult:
    """One method's attributions for every sequence of an output.

    Per sequence: ``targets`` are the positions of the explained tokens; ``values[k]`` /
    ``raw[k]`` hold one score per source token of target k (positions ``0 .. targets[k]-1``):
    Ecco's normalised L2 norms and the signed sums over the embedding dimension.
    ``completeness_error[k]`` is IG's |sum(attr) - (f(x) - f(baseline))| / |f(x) - f(baseline)|
    (DeepLift: the same with its zero baseline; LRP: its conservation error against the
    explained logit); None for methods without such a check.
    """

    method: str
    label: str
    score: str
    targets: list[list[int]]
    values: list[list[np.ndarray]]
    raw: list[list[np.ndarray]]
    completeness_error: list[np.ndarray] | None = None
    n_steps: list[int] | None = None
    foil_ids: list[list[int]] | None = None
    foil_text: list[str] | None = None
    asked_score: str | None = None  # the score asked for; ``score`` is the one explained (LRP: the logit)

    def word_values(self, sequence: int, continues_word: Sequence[bool], raw: bool = False) -> list[np.ndarray]:
        """Per target, the scores summed over the sub-word pieces of each source word."""
        spans = word_spans(continues_word)
        source = self.raw if raw else self.values
        return [sum_over_words(v, spans) for v in source[sequence]]


@dataclass
class Target:
    """What to explain in one sequence: logits positions and token ids (decoder indexing)."""

    positions: list[int]
    token_ids: list[int]
    foil_ids: list[int] | None = None


def build_problem(runner: Runner, layout: Layout, token_ids: list[int], target: Target, score: Score) -> Problem:
    """The Problem of one sequence: per stack, the embeddings of its tokens (the main stack's
    only up to the column that predicts the last explained token)."""
    device = runner.device
    last = max(target.positions) + 1
    embeds = []
    for stack in layout.stacks:
        span = layout.span(stack)
        stop = span.start + last if stack == layout.main else span.stop
        embeds.append(runner.embed(token_ids[span.start : stop]))
    return Problem(
        runner=runner,
        embeds=tuple(embeds),
        positions=torch.tensor(target.positions, device=device),
        target_ids=torch.tensor(target.token_ids, device=device),
        foil_ids=None if target.foil_ids is None else torch.tensor(target.foil_ids, device=device),
        score=score,
    )


def generated_targets(kind: Kind | str, token_ids: list[int], n_input: int) -> Target:
    """Every generated token of a sequence as a target."""
    layout = Layout(kind, len(token_ids), n_input)
    return Target(
        [layout.predicting_column(p) for p in layout.generated], [token_ids[p] for p in layout.generated]
    )


def global_positions(kind: Kind | str, n_input: int, target: Target) -> list[int]:
    """Token-list positions of the targets (encoder tokens first for encoder-decoder)."""
    layout = Layout(kind, n_input, n_input)  # the length does not enter predicted_position
    return [layout.predicted_position(column) for column in target.positions]


def explain(
    runner: Runner,
    sequences: Sequence[tuple[list[int], int, Target]],
    method_names: Sequence[str],
    *,
    score: Score = "prob",
    options: Options | None = None,
    progress: bool = True,
) -> dict[str, AttributionResult]:
    """Run each method on each (token_ids, n_input, target) sequence.

    The model runs in eval mode with gradients for the duration (eager attention for the
    methods that need it); its parameters, flags and hooks are as before afterwards.
    """
    options = options or Options()
    results: dict[str, AttributionResult] = {}
    bar = progress_bar(total=len(sequences) * len(method_names), desc="attribution", disable=not progress, leave=False)
    try:
        for name in method_names:
            method = get_method(name)
            targets, values, raws, errors, steps = [], [], [], [], []
            explained = "logprob_diff" if sequences and sequences[0][2].foil_ids else score
            for token_ids, n_input, target in sequences:
                bar.set_postfix_str(name)
                layout = Layout(runner.spec.kind, len(token_ids), n_input)
                problem = build_problem(runner, layout, token_ids, target, score)
                out, item_values, item_raws = run_method(problem, name, options)
                targets.append([layout.predicted_position(column) for column in target.positions])
                values.append(item_values)
                raws.append(item_raws)
                errors.append(out.completeness_error)
                steps.append(out.n_steps)
                explained = out.explained or explained
                bar.update(1)
            results[name] = AttributionResult(
                method=name,
                label=method.label,
                score=explained,
                targets=targets,
                values=values,
                raw=raws,
                completeness_error=None if any(e is None for e in errors) else errors,
                n_steps=None if any(n is None for n in steps) else steps,
                foil_ids=[t.foil_ids for _, _, t in sequences] if sequences and sequences[0][2].foil_ids else None,
                asked_score=score,
            )
    finally:
        bar.close()
    return results


def run_method(problem: Problem, name: str, options: Options) -> tuple[MethodOutput, list[np.ndarray], list[np.ndarray]]:
    """Method ``name`` on ``problem`` (in a gradient session, eager attention if it needs it):
    its output and, per target, Ecco's normalised and signed per-token scores."""
    method = get_method(name)
    with problem.runner.session(eager_attention=method.eager_attention, grad=True):
        out = method.compute(problem, options)
    _check_finite(name, out.attributions, problem.embeds[0].dtype)
    per_target = [per_token(out.attributions, k, problem.source_counts(k)) for k in range(problem.n_targets)]
    return out, [v for v, _ in per_target], [r for _, r in per_target]


def _check_finite(name: str, attributions: Sequence[torch.Tensor], dtype: torch.dtype) -> None:
    """A clear error instead of NaN / inf scores (e.g. overflow in half precision)."""
    if all(bool(torch.isfinite(a).all()) for a in attributions):
        return
    advice = (
        f" The model runs in {dtype}, whose range overflows easily: run it in float32 for attribution "
        "(lm.model.float())." if torch.finfo(dtype).bits < 32 else " Check the model's outputs for NaN or inf."
    )
    raise ValueError(f"{name} gave non-finite attributions (NaN or inf).{advice}")


def check_methods(names: Sequence[str] | str) -> list[str]:
    """Validate method names (a single name is accepted too)."""
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        get_method(name)
    return names


__all__ = [
    "AttributionResult", "Target", "Problem", "Options", "UnsupportedMethodError", "METHODS",
    "explain", "run_method", "build_problem", "generated_targets", "check_methods",
]
