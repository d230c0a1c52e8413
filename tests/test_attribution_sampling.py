"""Gradient SHAP, KernelSHAP and LIME against independent computations on each prefix.

- Gradient SHAP against ``captum.attr.GradientShap``. The draws are equal by construction: ecco
  draws each input's baseline indices and then the alphas from ``numpy.random.RandomState(seed)``
  in captum's order, so ``np.random.seed(seed)`` before each captum call makes captum draw the
  same ones. Captum's Gaussian noise comes from torch's global generator with the prefix's
  shape, so with ``stdevs > 0`` the test draws ecco's noise by its documented recipe (one
  ``torch.normal`` per input from ``torch.Generator().manual_seed(seed)``) and gives captum the
  n noisy inputs as a batch with ``n_samples=1, stdevs=0`` (the same numpy draws: n baseline
  indices per input, then n alphas), then averages over the batch. With one zero baseline and
  many draws Gradient SHAP is a Monte Carlo estimate of integrated gradients (captum's IG).
- KernelSHAP: in exhaustive mode, and for a target whose coalitions were all sampled, equal to
  the Shapley values computed by brute force from the Shapley formula on the prefix (and to
  captum's ``ShapleyValues`` on a short one); sampled, close to them.
- LIME against ``captum.attr.Lime`` on each prefix, fed the same coalitions (ecco's documented
  Bernoulli draw restricted to the target's sources), captum's default similarity and
  ``SkLearnLinearRegression``.
"""
from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import captum.attr as ca
import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression

import ecco
from ecco.attribution import METHODS, Options, build_problem, generated_targets, run_method
from ecco.attribution.deeplift import shap_baselines
from ecco.attribution.problem import Problem
from ecco.attribution.sampling import gradient_shap_from, kernel_coalitions
from ecco.layout import Layout
from ecco.models.kinds import Kind
from tests import tiny
from tests.attribution_reference import PrefixScore


def _generate(arch: str, method: str, prompt: str = "the quick brown fox", n: int = 3, **options):
    lm = ecco.from_model(tiny.model(arch), tiny.tokenizer(), verbose=False)
    output = lm.generate(prompt, generate=n, min_new_tokens=n, attribution=[method], attribution_options=options)
    return lm, output, output.sequences[0]


def _prefixes(lm, seq) -> list[tuple[PrefixScore, tuple[torch.Tensor, ...]]]:
    """Per generated token: its scorer and its prefix's input embeddings (encoder first)."""
    enc_dec = lm.kind == "enc-dec"
    with torch.no_grad():
        embeds = lm.model.get_input_embeddings()(torch.tensor([seq.token_ids]))
    n_input = seq.n_input_tokens
    out = []
    for position in range(n_input + 1 if enc_dec else n_input, len(seq.token_ids)):
        inputs = (embeds[:, :n_input], embeds[:, n_input:position]) if enc_dec else (embeds[:, :position],)
        out.append((PrefixScore(lm.model, seq.token_ids[position], None, enc_dec), inputs))
    return out


def _problem_lengths(lm, seq) -> list[int]:
    """Positions of each input of the item's problem (decoder: up to the last target's column)."""
    if lm.kind == "enc-dec":
        return [seq.n_input_tokens, len(seq.token_ids) - seq.n_input_tokens - 1]
    return [len(seq.token_ids) - 1]


def _close(actual: list[np.ndarray], expected: list[np.ndarray], tol: float = 1e-3) -> float:
    """Equal within ``tol`` of the largest |expected| value; returns the largest difference relative to it."""
    assert [len(a) for a in actual] == [len(e) for e in expected]
    scale = max(np.abs(e).max() for e in expected)
    worst = max(np.abs(a - e).max() for a, e in zip(actual, expected)) / scale
    assert worst <= tol, f"largest difference {worst:.2e} of the scale"
    return worst


def _flat(result) -> torch.Tensor:
    """captum's per-input attributions of one example as (sources, hidden), encoder first."""
    result = result if isinstance(result, tuple) else (result,)
    return torch.cat([r[0] for r in result]).detach().double()


# --- Gradient SHAP -----------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "stdevs"), [("gpt2", 0.0), ("gpt2", 0.1), ("llama", 0.0), ("t5", 0.0), ("t5", 0.1)])
def test_gradient_shap_equals_captum(arch, stdevs):
    n, seed = 8, 3
    lm, output, seq = _generate(arch, "gradient_shap", n_samples=n, stdevs=stdevs, seed=seed)
    lengths = _problem_lengths(lm, seq)
    distribution = shap_baselines(lm.spec.embeddings, lengths, 4, seed)
    generator = torch.Generator().manual_seed(seed)
    hidden = lm.model.get_input_embeddings().embedding_dim
    noise = [torch.normal(0.0, stdevs, (n, length, hidden), generator=generator) for length in lengths]
    raw, values = [], []
    for scorer, inputs in _prefixes(lm, seq):
        baselines = tuple(b[:, : x.shape[1]] for b, x in zip(distribution, inputs))
        np.random.seed(seed)
        if stdevs == 0:
            result = ca.GradientShap(scorer).attribute(tuple(x.clone() for x in inputs), baselines, n_samples=n)
        else:
            noisy = tuple(x + e[:, : x.shape[1]] for x, e in zip(inputs, noise))
            result = ca.GradientShap(scorer).attribute(noisy, baselines, n_samples=1, stdevs=0.0)
            result = tuple(r.mean(dim=0, keepdim=True) for r in (result if isinstance(result, tuple) else (result,)))
        attributions = _flat(result)
        raw.append(attributions.sum(-1).numpy())
        values.append((attributions.norm(dim=-1) / attributions.norm(dim=-1).sum()).numpy())
    _close(output.attributions["gradient_shap"].raw[0], raw)
    _close(output.attributions["gradient_shap"].values[0], values)


def test_gradient_shap_with_one_zero_baseline_approaches_integrated_gradients():
    """E over alpha ~ U(0, 1) of grad(alpha x) * x is the IG integral; 3000 draws: within 3% of the scale."""
    lm, output, seq = _generate("gpt2", "grad_x_input")
    target = generated_targets(lm.kind, seq.token_ids, seq.n_input_tokens)
    problem = build_problem(lm.runner, Layout(lm.kind, len(seq.token_ids), seq.n_input_tokens), seq.token_ids, target, "prob")
    zero = tuple(torch.zeros_like(e) for e in problem.embeds)
    with lm.runner.session(grad=True):
        ours = gradient_shap_from(problem, zero, 3000, 0.0, seed=0)[0]
    expected = []
    for k, (scorer, inputs) in enumerate(_prefixes(lm, seq)):
        ig = ca.IntegratedGradients(scorer).attribute(inputs, baselines=tuple(torch.zeros_like(x) for x in inputs),
                                                      n_steps=64, method="gausslegendre")
        expected.append(_flat(ig).sum(-1).numpy())
    actual = [ours[k, : len(e)].sum(-1).double().numpy() for k, e in enumerate(expected)]
    assert _close(actual, expected, tol=0.02) > 1e-4  # an estimate, not the integral itself


# --- KernelSHAP ---------------------------------------------------------------------------------


def _shapley(value, n: int) -> np.ndarray:
    """Shapley values of an n-player game by the Shapley formula: phi_i = sum over S without i of
    |S|! (n - |S| - 1)! / n! (v(S + i) - v(S)); ``value`` maps (2^n, n) bool coalitions to their values."""
    coalitions = torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.bool)  # row c: bits of c, first = highest
    v = np.asarray(value(coalitions), dtype=np.float64)
    weight = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    phi = np.zeros(n)
    for i in range(n):
        without = np.flatnonzero(~coalitions[:, i].numpy())
        sizes = coalitions[without].sum(1).numpy()
        phi[i] = (weight[sizes] * (v[without + 2 ** (n - 1 - i)] - v[without])).sum()
    return phi


def _brute_shapley(scorer: PrefixScore, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    """Shapley values of the prefix's tokens, an absent token having the zero embedding."""
    lengths = [x.shape[1] for x in inputs]

    def value(coalitions: torch.Tensor) -> np.ndarray:
        parts = coalitions.split(lengths, dim=1)
        with torch.no_grad():
            return scorer(*(torch.where(p[:, :, None], x, torch.zeros_like(x)) for x, p in zip(inputs, parts))).double().numpy()

    return _shapley(value, sum(lengths))


@pytest.mark.parametrize(("arch", "n_samples"), [("gpt2", None), ("llama", None), ("t5", 256)])
def test_exhaustive_kernel_shap_equals_exact_shapley_values(arch, n_samples):
    """2^n coalitions <= n_samples: every coalition is evaluated and the values are exact."""
    lm, output, seq = _generate(arch, "kernel_shap", "hello world", n_samples=n_samples)
    assert 2 ** sum(_problem_lengths(lm, seq)) <= (n_samples or 200)
    exact = [_brute_shapley(scorer, inputs) for scorer, inputs in _prefixes(lm, seq)]
    _close(output.attributions["kernel_shap"].raw[0], exact)


def test_brute_force_shapley_equals_captum_shapley_values():
    """The reference itself against captum's ShapleyValues (all permutations) on a 5-token prefix."""
    lm, _, seq = _generate("gpt2", "grad_x_input", "hello world")
    scorer, inputs = _prefixes(lm, seq)[0]
    mask = torch.arange(inputs[0].shape[1]).view(1, -1, 1).expand_as(inputs[0]).contiguous()
    captum = ca.ShapleyValues(scorer).attribute(inputs[0], baselines=0.0, feature_mask=mask, perturbations_per_eval=24)
    _close([_brute_shapley(scorer, inputs)], [captum[0, :, 0].double().numpy()], tol=1e-5)


def test_sampled_kernel_shap_per_target_sources():
    """Sampled (2^10 coalitions > 400): target 0 (5 sources, all 32 of its coalitions sampled)
    is exact, the others close; every target's values sum to f(x) - f(zeros) (the efficiency
    constraint)."""
    lm, output, seq = _generate("gpt2", "kernel_shap", "hello world", n=6, n_samples=400)
    result = output.attributions["kernel_shap"].raw[0]
    prefixes = _prefixes(lm, seq)
    exact = [_brute_shapley(scorer, inputs) for scorer, inputs in prefixes]
    _close(result[:1], exact[:1])
    error = _close(result, exact, tol=0.02)
    assert error > 1e-5  # sampled: not exact for the long prefixes
    for (scorer, inputs), values in zip(prefixes, result):
        with torch.no_grad():
            delta = float(scorer(*inputs) - scorer(*(torch.zeros_like(x) for x in inputs)))
        assert values.sum() == pytest.approx(delta, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("method", ["kernel_shap", "lime"])
def test_positions_after_a_target_get_zero(method):
    """The method's own (targets, positions, 1) output: 0 after each target's column, not 0 before."""
    lm, _, seq = _generate("gpt2", "grad_x_input", "hello world", n=4)
    target = generated_targets(lm.kind, seq.token_ids, seq.n_input_tokens)
    problem = build_problem(lm.runner, Layout(lm.kind, len(seq.token_ids), seq.n_input_tokens), seq.token_ids, target, "prob")
    out, _, _ = run_method(problem, method, Options(n_samples=100))
    attributions = out.attributions[0][:, :, 0]
    assert attributions.shape == (4, 8)
    for k, column in enumerate(target.positions):
        assert (attributions[k, column + 1 :] == 0).all() and (attributions[k, : column + 1] != 0).all()


def test_sampled_kernel_shap_converges_to_shapley_values():
    """More samples, smaller error against the exact values (the same 10-token item)."""
    errors = []
    for n_samples in (100, 1000):
        lm, output, seq = _generate("gpt2", "kernel_shap", "hello world", n=6, n_samples=n_samples)
        exact = [_brute_shapley(scorer, inputs) for scorer, inputs in _prefixes(lm, seq)]
        errors.append(_close(output.attributions["kernel_shap"].raw[0][-1:], exact[-1:], tol=1.0))
    assert errors[1] < errors[0] and errors[1] < 0.005


class _Game(Problem):
    """A stand-in for the model: target k's score is a non-additive function of which of the
    tokens up to its column are kept (nonzero), v(S) = (w . S)^2 + 3 (S_0 S_1 S_2 - S_3 S_4 S_5)."""

    def scores(self, *embeds: torch.Tensor) -> torch.Tensor:
        kept = (embeds[0] != 0).all(-1).double()
        return torch.stack([self.value(kept[:, : int(c) + 1]) for c in self.positions], dim=1)

    def value(self, kept: torch.Tensor) -> torch.Tensor:
        w = torch.linspace(-1.0, 1.3, 16, dtype=torch.float64)[: kept.shape[1]]
        return (kept @ w) ** 2 + 3 * (kept[:, :3].prod(1) - kept[:, 3:6].prod(1))


def test_sampled_kernel_shap_on_a_non_additive_game_converges_for_every_target():
    """16 tokens, targets seeing 12 and 16 of them: each target's regression on its own sources,
    with the samples drawn once over all 16, approaches its own game's Shapley values (weighting
    the samples by the kernel again instead leaves an error of about 0.2 at any sample count)."""
    runner = SimpleNamespace(spec=SimpleNamespace(kind=Kind.CAUSAL))
    game = _Game(runner, (torch.ones(1, 16, 2),), torch.tensor([11, 15]), torch.tensor([0, 0]))
    exact = [_shapley(lambda z: game.value(z.double()).numpy(), n) for n in (12, 16)]
    errors = []
    for n_samples, tol in ((2000, 0.1), (20000, 0.04)):  # measured: 0.076, 0.025
        out = METHODS["kernel_shap"].compute(game, Options(n_samples=n_samples))
        assert (out.attributions[0][0, 12:] == 0).all()
        errors.append(_close([out.attributions[0][k, :n, 0].numpy() for k, n in enumerate((12, 16))], exact, tol=tol))
    assert errors[1] < errors[0]


def test_kernel_coalitions_follow_the_shapley_kernel_also_restricted():
    """Sizes drawn with p(s) proportional to 1 / (s (n - s)); restricted to the first 5 of 16
    tokens (rows neither empty nor full there), the sizes follow the 5-token kernel."""
    keep = kernel_coalitions(16, 40000, seed=0)
    assert keep[0].all() and not keep[1].any()
    for n, rows in ((16, keep[2:]), (5, keep[2:, :5])):
        sizes = rows.sum(1)
        sizes = sizes[(sizes > 0) & (sizes < n)].numpy()
        s = np.arange(1, n)
        expected = 1 / (s * (n - s))
        np.testing.assert_allclose(np.bincount(sizes, minlength=n)[1:] / len(sizes), expected / expected.sum(), atol=0.01)
    assert len(kernel_coalitions(5, 32, seed=0)) == 32  # 2^5 <= n_samples: every coalition once
    assert len({tuple(r.tolist()) for r in kernel_coalitions(5, 32, seed=0)}) == 32


# --- LIME ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_lime_equals_captum_lime_on_the_same_samples(arch):
    n_samples, seed = 60, 5
    lm, output, seq = _generate(arch, "lime", n_samples=n_samples, seed=seed)
    n = sum(_problem_lengths(lm, seq))
    keep = torch.rand(n_samples, n, generator=torch.Generator().manual_seed(seed)) < 0.5  # ecco's documented draw
    expected = []
    for scorer, inputs in _prefixes(lm, seq):
        lengths = [x.shape[1] for x in inputs]
        # the target's sources: all encoder tokens, the decoder's first ones (feature order: encoder, decoder)
        sources = torch.cat([torch.arange(size) < length for size, length in zip(_problem_lengths(lm, seq), lengths)])
        rows = keep[:, sources].long()

        def perturb(original, rows=rows, **kwargs):
            for row in rows:
                yield row[None]

        first = np.cumsum([0] + lengths[:-1])
        masks = tuple((torch.arange(x.shape[1]) + f).view(1, -1, 1).expand_as(x) for x, f in zip(inputs, first))
        lime = ca.Lime(scorer, interpretable_model=SkLearnLinearRegression(), perturb_func=perturb)
        result = lime.attribute(inputs, baselines=tuple(0.0 for _ in inputs), feature_mask=masks, n_samples=n_samples)
        expected.append(_flat(result)[:, 0].numpy())
    _close(output.attributions["lime"].raw[0], expected)


# --- all three ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["gradient_shap", "kernel_shap", "lime"])
def test_seed_decides_the_draws(method):
    def raw(seed: int) -> np.ndarray:
        _, output, _ = _generate("gpt2", method, n_samples=50, seed=seed)
        return np.concatenate(output.attributions[method].raw[0])

    np.testing.assert_array_equal(raw(1), raw(1))
    assert not np.allclose(raw(1), raw(2), rtol=0, atol=1e-9)


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_attribute_and_generate_end_to_end(arch):
    lm = ecco.from_model(tiny.model(arch), tiny.tokenizer(), verbose=False)
    methods = ["gradient_shap", "kernel_shap", "lime"]
    output = lm.attribute("the quick brown fox", target=" jumps over", attribution=methods)
    generated = lm.generate("hello world", generate=2, min_new_tokens=2, attribution=methods)
    labels = {"gradient_shap": "Gradient SHAP", "kernel_shap": "KernelSHAP", "lime": "LIME"}
    for out in (output, generated):
        seq = out.sequences[0]
        n_targets = len(seq.token_ids) - seq.n_input_tokens - (1 if arch == "t5" else 0)
        for method in methods:
            result = out.attributions[method]
            assert result.label == labels[method]
            assert len(result.values[0]) == n_targets
            for k, (values, raw) in enumerate(zip(result.values[0], result.raw[0])):
                sources = seq.n_input_tokens + k + (1 if arch == "t5" else 0)
                assert values.shape == raw.shape == (sources,)
                assert np.isfinite(raw).all() and np.abs(raw).max() > 0
                assert values.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_a_target_with_one_source(arch):
    """One prompt token (causal: the first target has one source): KernelSHAP gives it f(x) - f(0)."""
    lm = ecco.from_model(tiny.model(arch), tiny.tokenizer(), verbose=False)
    output = lm.attribute([263], target=" world", attribution=["gradient_shap", "kernel_shap", "lime"])
    seq = output.sequences[0]
    scorer, inputs = _prefixes(lm, seq)[0]
    with torch.no_grad():
        delta = float(scorer(*inputs) - scorer(*(torch.zeros_like(x) for x in inputs)))
    values = output.attributions["kernel_shap"].raw[0][0]
    assert values.sum() == pytest.approx(delta, rel=1e-6)
    if arch == "gpt2":
        assert values.shape == (1,)


def test_bad_sample_count_is_refused():
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    with pytest.raises(ValueError, match="n_samples"):
        lm.attribute("hello", target=" world", attribution=["kernel_shap"], n_samples=0)
