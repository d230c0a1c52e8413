"""Layer integrated gradients and layer gradient x activation against captum's
LayerIntegratedGradients / LayerGradientXActivation, called on each prefix separately with the
block (written out here, not taken from ecco's registry) as the layer."""
from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch

import ecco
from ecco.attribution import Options, UnsupportedMethodError, build_problem, generated_targets, run_method
from ecco.layout import Layout
from tests import tiny
from tests.attribution_reference import PrefixScore
from tests.conftest import hook_count

# The module captum attributes to, per stack. T5's block returns (hidden, position bias, None)
# and captum's layer hook cannot clone the None; in float32 the block's hidden output is
# exactly the output of its last sub-layer (the feed-forward layer), so captum gets that one.
BLOCKS = {
    "gpt2": {"decoder": "transformer.h.{}"},
    "llama": {"decoder": "model.layers.{}"},
    "t5": {"encoder": "encoder.block.{}.layer.1", "decoder": "decoder.block.{}.layer.2"},
}
N_LAYERS = {"gpt2": 3, "llama": 3, "t5": 2}
PROMPT = "the quick brown fox jumps over"


def _lm(arch: str):
    return ecco.from_model(tiny.model(arch), tiny.tokenizer(), verbose=False)


def _tokens(arch: str) -> tuple[list[int], int]:
    """Token ids and the input length: a causal prompt of 3 tokens explaining the rest; for T5
    4 encoder tokens, the decoder start (id 0) and the rest as the decoder's tokens."""
    ids = tiny.tokenizer()(PROMPT)["input_ids"]
    return (ids[:4] + [0] + ids[4:], 4) if arch == "t5" else (ids, 3)


def _problem(lm, token_ids: list[int], n_input: int):
    layout = Layout(lm.kind, len(token_ids), n_input)
    return build_problem(lm.runner, layout, token_ids, generated_targets(lm.kind, token_ids, n_input), "prob")


def _captum(model, arch: str, token_ids: list[int], n_input: int, method: str, layer: int,
            n_steps: int = 16) -> list[list[torch.Tensor]]:
    """Per explained token, per stack: captum's (positions, hidden) attributions at the layer."""
    modules = dict(model.named_modules())
    layers = [modules[path.format(layer % N_LAYERS[arch])] for path in BLOCKS[arch].values()]
    enc_dec = arch == "t5"
    with torch.no_grad():
        embeds = model.get_input_embeddings()(torch.tensor([token_ids]))
    out = []
    for position in range(n_input + 1 if enc_dec else n_input, len(token_ids)):
        scorer = PrefixScore(model, token_ids[position], None, enc_dec)
        inputs = (embeds[:, :n_input], embeds[:, n_input:position]) if enc_dec else (embeds[:, :position],)
        per_stack = []
        for module in layers:
            if method == "layer_ig":
                result = ca.LayerIntegratedGradients(scorer, module).attribute(
                    inputs, baselines=tuple(torch.zeros_like(x) for x in inputs), n_steps=n_steps, method="gausslegendre"
                )
            else:
                result = ca.LayerGradientXActivation(scorer, module).attribute(inputs)
            per_stack.append(result[0].detach().double())
        out.append(per_stack)
    return out


def _max_difference(ours: tuple[torch.Tensor, ...], theirs: list[list[torch.Tensor]]) -> float:
    """Largest |ours - captum| relative to captum's largest |value|; checks that ours is exactly
    zero past each target's sources (the decoder's columns after the target's)."""
    scale = max(float(t.abs().max()) for per_stack in theirs for t in per_stack)
    worst = 0.0
    for k, per_stack in enumerate(theirs):
        for stack, expected in enumerate(per_stack):
            n = expected.shape[0]
            assert torch.all(ours[stack][k, n:] == 0)
            worst = max(worst, float((ours[stack][k, :n].double() - expected).abs().max()) / scale)
    return worst


@pytest.mark.parametrize("method", ["layer_ig", "layer_grad_x_act"])
@pytest.mark.parametrize("layer", [0, 1, -1])
@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5"])
def test_layer_methods_equal_captum(arch, layer, method):
    lm = _lm(arch)
    token_ids, n_input = _tokens(arch)
    out, _, _ = run_method(_problem(lm, token_ids, n_input), method, Options(layer=layer, n_steps=16))
    assert [a.shape[-1] for a in out.attributions] == [32] * len(BLOCKS[arch])
    expected = _captum(lm.model, arch, token_ids, n_input, method, layer)
    assert _max_difference(out.attributions, expected) < 1e-3  # measured: up to 5e-7


@pytest.mark.parametrize("arch, layer, n_steps, bound", [
    ("gpt2", 0, 64, 1e-4), ("llama", 1, "auto", 0.01), ("llama", -1, 64, 1e-4), ("llama", 0, 8, None),
])
def test_layer_ig_completeness(arch, layer, n_steps, bound):
    """Reported error = |sum(attr) - (f(x) - f(0))| / |f(x) - f(0)|, f from plain forward passes
    on the prefix and on zero embeddings; small with enough steps (8 steps from llama's first
    block, where RMSNorm makes the integrand steep near the zero baseline, are not enough)."""
    lm = _lm(arch)
    token_ids, n_input = _tokens(arch)
    out, _, _ = run_method(_problem(lm, token_ids, n_input), "layer_ig", Options(layer=layer, n_steps=n_steps))
    with torch.no_grad():
        embeds = lm.model.get_input_embeddings()(torch.tensor([token_ids]))
    for k, position in enumerate(range(n_input, len(token_ids))):
        probs = []
        for x in (embeds[:, :position], torch.zeros_like(embeds[:, :position])):
            with torch.no_grad():
                probs.append(float(torch.softmax(lm.model(inputs_embeds=x).logits[0, -1], -1)[token_ids[position]]))
        delta = probs[0] - probs[1]
        total = float(out.attributions[0][k].double().sum())
        assert out.completeness_error[k] == pytest.approx(abs(total - delta) / abs(delta), rel=1e-3, abs=2e-5)
    if bound is None:
        assert out.completeness_error.max() > 0.1
    else:
        assert out.completeness_error.max() < bound


def test_layer_ig_reports_steps_of_both_stacks():
    """An encoder-decoder integrates once per stack: twice the nodes."""
    lm = _lm("t5")
    out, _, _ = run_method(_problem(lm, *_tokens("t5")), "layer_ig", Options(n_steps=8))
    assert out.n_steps == 16
    assert out.completeness_error.shape == (len(_tokens("t5")[0]) - 5,)


@pytest.mark.parametrize("layer", [3, -4])
def test_layer_out_of_range_is_a_clear_error(layer):
    lm = _lm("gpt2")
    problem = _problem(lm, *_tokens("gpt2"))
    before = hook_count(lm.model)
    for method in ("layer_ig", "layer_grad_x_act"):
        with pytest.raises(ValueError, match=rf"layer={layer} is out of range: the model has 3 blocks"):
            run_method(problem, method, Options(layer=layer))
    with pytest.raises(ValueError, match="out of range"):
        lm.attribute("the quick brown", target=" fox", attribution=["layer_ig"], layer=layer)
    assert hook_count(lm.model) == before


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_hooks_are_removed_after_a_call_and_after_an_error(arch):
    lm = _lm(arch)
    token_ids, n_input = _tokens(arch)
    problem = _problem(lm, token_ids, n_input)
    before = hook_count(lm.model)
    with torch.no_grad():
        logits = lm.model(inputs_embeds=problem.embeds[0]).logits if arch == "gpt2" else None
    for method in ("layer_ig", "layer_grad_x_act"):
        run_method(problem, method, Options(n_steps=4))
        assert hook_count(lm.model) == before
    bad = _problem(lm, token_ids, n_input)
    bad.target_ids = bad.target_ids + 10_000  # out of the vocabulary: fails inside the hooked forward pass
    for method in ("layer_ig", "layer_grad_x_act"):
        with pytest.raises((RuntimeError, IndexError)):
            run_method(bad, method, Options(n_steps=4))
        assert hook_count(lm.model) == before
    if logits is not None:  # the model computes what it did before
        with torch.no_grad():
            assert torch.equal(lm.model(inputs_embeds=problem.embeds[0]).logits, logits)


def test_a_block_shared_between_layers_is_unsupported():
    model = tiny.model("gpt2")
    model.transformer.h[1] = model.transformer.h[0]  # one module run twice per forward pass
    lm = ecco.from_model(model, tiny.tokenizer(), verbose=False)
    problem = _problem(lm, *_tokens("gpt2"))
    before = hook_count(model)
    for method in ("layer_ig", "layer_grad_x_act"):
        with pytest.raises(UnsupportedMethodError, match="more than once per forward pass"):
            run_method(problem, method, Options(layer=0, n_steps=4))
    assert hook_count(model) == before


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_lm_attribute_layer_ig_end_to_end(arch):
    """lm.attribute with layer=1 (targets and IG steps chunked): Ecco's per-token scores of
    captum's layer attributions (signed sums and normalised L2 norms over hidden)."""
    lm = _lm(arch)
    output = lm.attribute("the quick brown fox", target=" jumps over", attribution=["layer_ig"], layer=1,
                          n_steps=12, step_chunk=5, internal_batch_size=2)
    result = output.attributions["layer_ig"]
    assert result.label == "Layer integrated gradients"
    seq = output.sequences[0]
    expected = _captum(lm.model, arch, seq.token_ids, seq.n_input_tokens, "layer_ig", 1, n_steps=12)
    assert len(result.raw[0]) == len(expected) == len(result.completeness_error[0])
    for raw, values, per_stack in zip(result.raw[0], result.values[0], expected):
        attributions = torch.cat(per_stack)
        scale = float(attributions.sum(-1).abs().max())
        np.testing.assert_allclose(raw, attributions.sum(-1).numpy(), atol=1e-3 * scale)
        norms = attributions.norm(dim=-1)
        np.testing.assert_allclose(values, (norms / norms.sum()).numpy(), atol=1e-4)


def test_default_layer_is_the_middle_block_and_the_last_block_sees_only_the_target_column():
    lm = _lm("gpt2")  # 3 blocks: the default is block 1
    by_default = lm.attribute("a b c d", target=" e f", attribution=["layer_grad_x_act"])
    middle = lm.attribute("a b c d", target=" e f", attribution=["layer_grad_x_act"], layer=1)
    for got, expected in zip(by_default.attributions["layer_grad_x_act"].raw[0], middle.attributions["layer_grad_x_act"].raw[0]):
        np.testing.assert_array_equal(got, expected)
    last = lm.attribute("a b c d", target=" e f", attribution=["layer_grad_x_act"], layer=-1).attributions["layer_grad_x_act"]
    for target, raw in zip(last.targets[0], last.raw[0]):
        assert np.count_nonzero(raw) == 1 and raw[target - 1] != 0  # only the column that predicts the target
