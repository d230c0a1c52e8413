"""Faithfulness scores of attributions: by-hand recomputation, batched vs the loop, known cases."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import ecco
from ecco.attribution import build_problem, generated_targets
from ecco.attribution.faithfulness import LEVELS, _faithfulness_loop, faithfulness
from ecco.attribution.problem import Problem
from ecco.layout import Layout
from tests import tiny


def _lm(arch: str, tokenizer):
    return ecco.from_model(tiny.model(arch), tokenizer, verbose=False)


def _item(lm, prompt="the quick brown fox jumps", n=3, method="grad_x_input"):
    output = lm.generate(prompt, generate=n, min_new_tokens=n, attribution=[method])
    seq = output.sequences[0]
    target = generated_targets(lm.kind, seq.token_ids, seq.n_input_tokens)
    layout = Layout(lm.kind, len(seq.token_ids), seq.n_input_tokens)
    problem = build_problem(lm.runner, layout, seq.token_ids, target, "prob")
    return problem, output.attributions[method].values[0], seq


def _hand_prob(model, embeds: torch.Tensor, token: int) -> float:
    """p(token) after the last position of ``embeds`` (1, n, hidden), one plain forward pass."""
    with torch.no_grad():
        return float(torch.softmax(model(inputs_embeds=embeds).logits[0, -1].double(), -1)[token])


@pytest.mark.parametrize("removal", ["zero", "replace"])
def test_comprehensiveness_and_sufficiency_by_hand(removal, tokenizer):
    lm = _lm("llama", tokenizer)
    problem, attributions, seq = _item(lm)
    model = lm.model
    pad = model.get_input_embeddings()(torch.tensor([tokenizer.pad_token_id]))[0].detach()
    kwargs = {"replacement": pad} if removal == "replace" else {}
    result = faithfulness(problem, attributions, removal=removal, seeds=0, **kwargs)
    ids = torch.tensor(seq.token_ids)
    for k, column in enumerate(problem.positions.tolist()):
        n, token = column + 1, seq.token_ids[column + 1]
        order = np.argsort(-np.asarray(attributions[k]), kind="stable")
        full = model.get_input_embeddings()(ids[:n])[None].detach()
        gone = torch.zeros_like(full[0, 0]) if removal == "zero" else pad
        p = _hand_prob(model, full, token)
        comp, suff = [], []
        for q in LEVELS:
            c = max(1, math.ceil(q * n - 1e-9))
            without = full.clone()
            without[0, order[:c]] = gone
            only = full.clone()
            only[0, order[c:]] = gone
            comp.append(p - _hand_prob(model, without, token))
            suff.append(p - _hand_prob(model, only, token))
        scores = result.targets[k].method
        np.testing.assert_allclose(result.targets[k].full_score, p, atol=1e-7)
        np.testing.assert_allclose(scores.comprehensiveness, comp, atol=1e-7)
        np.testing.assert_allclose(scores.sufficiency, suff, atol=1e-7)
        np.testing.assert_allclose(scores.aopc_comprehensiveness, np.mean(comp), atol=1e-7)
        np.testing.assert_allclose(scores.aopc_sufficiency, np.mean(suff), atol=1e-7)
        everything = full.clone()
        everything[0, :] = gone
        np.testing.assert_allclose(result.targets[k].empty_score, _hand_prob(model, everything, token), atol=1e-7)
        assert scores.deletion[0] == scores.insertion[-1] == result.targets[k].full_score
        assert scores.deletion[-1] == scores.insertion[0] == result.targets[k].empty_score
    assert any(abs(c) > 1e-5 for t in result.targets for c in t.method.comprehensiveness)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "t5"])
def test_batched_equals_the_loop(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    problem, attributions, _ = _item(lm, "hello world, this is", n=3)
    options = dict(seeds=3, seed=7, batch_size=16)
    batched = faithfulness(problem, attributions, **options).to_dict()
    loop = _faithfulness_loop(problem, attributions, **options).to_dict()
    _assert_close(batched, loop, 1e-5)
    # another chunking gives the same numbers, and the same seed the same random baseline
    _assert_close(faithfulness(problem, attributions, seeds=3, seed=7, batch_size=5).to_dict(), batched, 1e-5)


def _assert_close(a, b, atol):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_close(a[key], b[key], atol)
    elif isinstance(a, list) and a and isinstance(a[0], dict):
        for x, y in zip(a, b, strict=True):
            _assert_close(x, y, atol)
    elif isinstance(a, (list, float, int)) and not isinstance(a, bool):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)
    else:
        assert a == b


@dataclass
class ConstantProblem(Problem):
    """The real model, always run on the unperturbed input: its output ignores the input it is given."""

    def scores(self, *embeds: torch.Tensor) -> torch.Tensor:
        return super().scores(*self.embeds).expand(embeds[0].shape[0], -1)


def test_output_that_ignores_the_input_scores_zero(tokenizer):
    lm = _lm("llama", tokenizer)
    problem, attributions, _ = _item(lm)
    constant = ConstantProblem(**{f: getattr(problem, f) for f in problem.__dataclass_fields__})
    result = faithfulness(constant, attributions, seeds=4)
    for target in result.targets:
        std = target.random_std
        for scores in [target.method, target.random_mean, std, *target.random]:
            for name in ("comprehensiveness", "sufficiency", "aopc_comprehensiveness", "aopc_sufficiency",
                         "soft_nc", "soft_ns"):
                np.testing.assert_array_equal(getattr(scores, name), 0.0 * np.asarray(getattr(scores, name)))
            if scores is std:
                continue
            # the curves are flat at p(x): their areas equal p(x), the method's equal random's
            np.testing.assert_allclose(scores.deletion, target.full_score, rtol=1e-12)
            np.testing.assert_allclose(scores.insertion, target.full_score, rtol=1e-12)
            assert scores.deletion_auc == pytest.approx(target.full_score)
            assert scores.insertion_auc == pytest.approx(target.full_score)


@dataclass
class LinearProblem(Problem):
    """A score with a known answer: per target, the weighted share of its sources still intact,
    sum_i w_i <x'_i, x_i> / <x_i, x_i> / sum_i w_i (1 for the full input, 0 with every source
    zeroed; a source soft-kept with probability a counts a in expectation)."""

    weights: torch.Tensor | None = None

    def scores(self, *embeds: torch.Tensor) -> torch.Tensor:
        x, ref = embeds[0].double(), self.embeds[0].double()
        intact = (x * ref).sum(-1) / (ref * ref).sum(-1)
        cols = []
        for k in range(self.n_targets):
            n = int(self.positions[k]) + 1
            w = self.weights[:n].double()
            cols.append((intact[:, :n] * w).sum(-1) / w.sum())
        return torch.stack(cols, 1)


def _linear(lm, weights, positions=(3, 5, 7), hidden=64):
    torch.manual_seed(0)
    embeds = (torch.randn(1, len(weights), hidden),)
    return LinearProblem(lm.runner, embeds, torch.tensor(positions), torch.zeros(len(positions), dtype=torch.long),
                         weights=torch.tensor(weights, dtype=torch.float64))


def test_random_baseline_expectation_where_known(tokenizer):
    lm = _lm("llama", tokenizer)
    # Every source counts the same: each order removes c/n of the score, exactly.
    even = _linear(lm, [1.0] * 8)
    attributions = [np.arange(p + 1, dtype=float) for p in even.positions.tolist()]
    result = faithfulness(even, attributions, seeds=6, steps=None)
    for target in result.targets:
        n = target.n_sources
        c = np.array([max(1, math.ceil(q * n - 1e-9)) for q in LEVELS])
        for scores in (target.method, target.random_mean):
            np.testing.assert_allclose(scores.comprehensiveness, c / n, atol=1e-9)
            np.testing.assert_allclose(scores.sufficiency, 1 - c / n, atol=1e-9)
            np.testing.assert_allclose(scores.deletion, 1 - target.fractions, atol=1e-9)
            np.testing.assert_allclose(scores.insertion, target.fractions, atol=1e-9)
            assert scores.deletion_auc == pytest.approx(0.5) and scores.insertion_auc == pytest.approx(0.5)
        np.testing.assert_allclose(target.random_std.comprehensiveness, 0, atol=1e-9)
    # Unequal weights: a random order removes c/n of the weight in expectation, and the true
    # weights as attributions beat it.
    weights = [8.0, 1.0, 0.5, 4.0, 0.1, 2.0, 0.2, 1.0]
    uneven = _linear(lm, weights, positions=(7,))
    result = faithfulness(uneven, [np.array(weights)], seeds=400)
    target = result.targets[0]
    c = np.array([max(1, math.ceil(q * 8 - 1e-9)) for q in LEVELS])
    np.testing.assert_allclose(target.random_mean.comprehensiveness, c / 8, atol=0.05)
    top = np.cumsum(sorted(weights, reverse=True)) / sum(weights)
    np.testing.assert_allclose(target.method.comprehensiveness, top[c - 1], atol=1e-9)
    assert target.method.deletion_auc < target.random_mean.deletion_auc
    assert target.method.insertion_auc > target.random_mean.insertion_auc


def test_soft_scores_by_hand_with_binary_importance(tokenizer):
    """Importance 0 / 1 makes the Bernoulli masks certain: Soft-NS keeps the important tokens
    whole and removes the rest, Soft-NC removes them; the paper's formula by hand."""
    lm = _lm("llama", tokenizer)
    problem, _, seq = _item(lm)
    model, ids = lm.model, torch.tensor(seq.token_ids)
    attributions = []
    for column in problem.positions.tolist():
        a = np.zeros(column + 1)
        a[[0, column // 2, column]] = 1.0
        attributions.append(a)
    result = faithfulness(problem, attributions, seeds=0)
    checked = 0
    for k, column in enumerate(problem.positions.tolist()):
        token, important = seq.token_ids[column + 1], attributions[k] == 1
        full = model.get_input_embeddings()(ids[: column + 1])[None].detach()
        p = _hand_prob(model, full, token)
        empty, kept, removed = full * 0, full.clone(), full.clone()
        kept[0, ~important] = 0
        removed[0, important] = 0
        suff_0 = 1 - max(0, p - _hand_prob(model, empty, token))
        if 1 - suff_0 < 1e-5:
            continue
        soft_nc = max(0, p - _hand_prob(model, removed, token)) / (1 - suff_0)
        soft_ns = ((1 - max(0, p - _hand_prob(model, kept, token))) - suff_0) / (1 - suff_0)
        assert result.targets[k].method.soft_nc == pytest.approx(soft_nc, abs=1e-4)
        assert result.targets[k].method.soft_ns == pytest.approx(soft_ns, abs=1e-4)
        checked += 1
    assert checked


def test_soft_scores_expectation_with_fractional_importance(tokenizer):
    """On the linear score, E p(x'_a) = sum_i w_i a_i / sum_i w_i with a the min-max-normalised
    importance, so Soft-NS and Soft-NC both tend to it; the draws are seeded."""
    lm = _lm("llama", tokenizer)
    weights = [3.0, 1.0, 2.0, 0.5, 1.5, 1.0]
    problem = _linear(lm, weights, positions=(5,), hidden=256)
    importance = np.array([0.9, 0.2, 0.5, 0.0, 0.7, 1.0])
    result = faithfulness(problem, [importance], seeds=0, soft_samples=200)
    a = (importance - importance.min()) / (importance.max() - importance.min())
    expected = float(np.dot(weights, a) / sum(weights))
    scores = result.targets[0].method
    assert scores.soft_ns == pytest.approx(expected, abs=0.01)
    assert scores.soft_nc == pytest.approx(expected, abs=0.01)
    again = faithfulness(problem, [importance], seeds=0, soft_samples=200)
    assert again.targets[0].method.soft_ns == scores.soft_ns
    other = faithfulness(problem, [importance], seeds=0, soft_samples=200, seed=1)
    assert other.targets[0].method.soft_ns != scores.soft_ns


def test_ties_special_tokens_steps_and_dict(tokenizer):
    lm = _lm("llama", tokenizer)
    weights = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
    problem = _linear(lm, weights, positions=(7,))
    total = sum(weights)
    # equal attributions: the earlier position goes first
    result = faithfulness(problem, [np.ones(8)], seeds=0)
    np.testing.assert_allclose(result.targets[0].method.deletion, 1 - np.cumsum([0.0] + weights) / total)
    # special tokens are never removed and not counted
    special = np.zeros(8, dtype=bool)
    special[[0, 7]] = True
    result = faithfulness(problem, [np.arange(8.0)], special=special, seeds=0)
    target = result.targets[0]
    assert target.n_sources == 6
    assert target.empty_score == pytest.approx((weights[0] + weights[7]) / total)
    # steps: evenly spaced fractions of the sources
    result = faithfulness(problem, [np.arange(8.0)], steps=4, seeds=2)
    np.testing.assert_allclose(result.targets[0].fractions, [0, 0.25, 0.5, 0.75, 1])
    assert len(result.targets[0].method.deletion) == 5
    json.dumps(result.to_dict())
    assert result.to_dict()["targets"][0]["random_seeds"] == 2


def test_bad_inputs(tokenizer):
    lm = _lm("llama", tokenizer)
    problem, attributions, _ = _item(lm)
    for levels in ([0.0], [1.0], [0.5, 1.2], [-0.1], []):
        with pytest.raises(ValueError, match="level"):
            faithfulness(problem, attributions, levels=levels)
    with pytest.raises(ValueError, match="removal must be one of"):
        faithfulness(problem, attributions, removal="mask")
    with pytest.raises(ValueError, match="replacement="):
        faithfulness(problem, attributions, removal="replace")
    with pytest.raises(ValueError, match="size"):
        faithfulness(problem, attributions, removal="replace", replacement=torch.zeros(3))
    with pytest.raises(ValueError, match="one array per target"):
        faithfulness(problem, attributions[:-1])
    with pytest.raises(ValueError, match="one score per source token"):
        faithfulness(problem, [a[:-1] for a in attributions])
    with pytest.raises(ValueError, match="one score per source token"):
        faithfulness(problem, [np.stack([a, a]) for a in attributions])
    with pytest.raises(ValueError, match="NaN"):
        faithfulness(problem, [a * np.nan for a in attributions])
    every = np.ones(problem.embeds[0].shape[1], dtype=bool)
    with pytest.raises(ValueError, match="no source tokens"):
        faithfulness(problem, attributions, special=every)
    with pytest.raises(ValueError, match="special"):
        faithfulness(problem, attributions, special=every[:-1])
    with pytest.raises(ValueError, match="batch_size"):
        faithfulness(problem, attributions, batch_size=0)
