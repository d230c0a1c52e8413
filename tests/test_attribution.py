"""Batched attribution of every generated token, checked against per-token references."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco
from ecco.attribution import METHODS
from tests import tiny
from tests.attribution_reference import normalised, per_token_attributions, per_token_reference
from tests.conftest import hook_count

ALL_METHODS = ["grad_x_input", "saliency", "ig", "dl", "dls", "gb", "gg", "deconv", "lrp"]


def _lm(arch: str, tokenizer, **overrides):
    return ecco.from_model(tiny.model(arch, **overrides), tokenizer, verbose=False)


def _close(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert [len(a) for a in actual] == [len(e) for e in expected]
    scale = max(np.abs(e).max() for e in expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=1e-3 * scale + 1e-7, rtol=0)


def test_registry_has_eccos_nine_methods():
    assert set(ALL_METHODS) <= set(METHODS)


@pytest.mark.parametrize(
    "arch, method",
    [(arch, method) for arch in ("gpt2", "llama", "t5") for method in ("saliency", "grad_x_input", "ig")]
    # DeepLift on ReLU models, where captum's rescale rule and ecco's agree by construction.
    + [("gpt2", "dl"), ("t5", "dl")],
)
def test_batched_equals_per_token_captum(arch, method, tokenizer):
    overrides = {"activation_function": "relu"} if (arch == "gpt2" and method == "dl") else {}
    lm = _lm(arch, tokenizer, **overrides)
    output = lm.generate("the quick brown fox", generate=4, attribution=[method], min_new_tokens=4)
    seq = output.sequences[0]
    reference = per_token_reference(lm.model, lm.spec.embeddings, output.kind, seq.token_ids, seq.n_input_tokens,
                                    method)
    _close(output.attributions[method].raw[0], reference)
    if method == "saliency":  # captum's Saliency is |grad|: compare the positive sums too
        assert all((v >= 0).all() for v in output.attributions[method].raw[0])


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
@pytest.mark.parametrize("method", ["gb", "deconv"])
def test_guided_rules_equal_captum_on_relu_models(arch, method, tokenizer):
    overrides = {"activation_function": "relu"} if arch == "gpt2" else {}
    lm = _lm(arch, tokenizer, **overrides)
    output = lm.generate("the quick brown fox", generate=3, attribution=[method], min_new_tokens=3)
    seq = output.sequences[0]
    reference = per_token_attributions(lm.model, lm.spec.embeddings, output.kind, seq.token_ids, seq.n_input_tokens,
                                       method)
    # Ecco's normalised scores: the signed sums of a gradient into a LayerNorm (GPT-2) are zero
    # up to rounding over the hidden units, so they would compare rounding noise.
    _close(output.attributions[method].values[0], normalised(reference))
    if arch == "t5":  # RMSNorm does not centre: the signed sums carry signal
        _close(output.attributions[method].raw[0], [r.sum(-1).numpy() for r in reference])


def test_guided_backprop_changes_smooth_activations(tokenizer):
    lm = _lm("llama", tokenizer)
    output = lm.generate("the quick brown fox", generate=3, attribution=["gb", "deconv", "saliency"], min_new_tokens=3)
    gb, plain = output.attributions["gb"].raw[0], output.attributions["saliency"].raw[0]
    assert not np.allclose(gb[0], plain[0])


def test_grad_x_input_equals_hand_written_autograd(tokenizer):
    lm = _lm("llama", tokenizer)
    output = lm.generate("the quick brown fox", generate=3, attribution=["grad_x_input"], min_new_tokens=3)
    seq = output.sequences[0]
    model, ids = lm.model, torch.tensor([seq.token_ids])
    for k, position in enumerate(range(seq.n_input_tokens, len(seq))):
        emb = model.get_input_embeddings()(ids[:, :position]).detach().requires_grad_(True)
        prob = torch.softmax(model(inputs_embeds=emb).logits[0, -1], -1)[ids[0, position]]
        (grad,) = torch.autograd.grad(prob, emb)
        contribution = (grad * emb)[0].detach()
        np.testing.assert_allclose(output.attributions["grad_x_input"].raw[0][k], contribution.sum(-1).numpy(), atol=1e-6)
        norms = contribution.norm(dim=-1)
        np.testing.assert_allclose(output.attribution["grad_x_input"][k], (norms / norms.sum()).numpy(), atol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5", "bart"])
def test_every_method_runs_on_every_generative_family(arch, tokenizer):
    """Every method on a batch: each item's numbers are those of the item run alone."""
    lm = _lm(arch, tokenizer)
    output = lm.generate(["the quick brown fox", "hello"], generate=3, attribution=ALL_METHODS, min_new_tokens=3)
    alone = lm.generate("hello", generate=3, attribution=ALL_METHODS, min_new_tokens=3)
    assert alone.sequences[0].token_ids == output.sequences[1].token_ids
    for method in ALL_METHODS:
        result = output.attributions[method]
        for item, seq in enumerate(output.sequences):
            assert len(result.values[item]) == 3
            for target, values, raw in zip(result.targets[item], result.values[item], result.raw[item]):
                assert len(values) == len(raw) == target and np.isfinite(raw).all()
        for mine, single in zip(result.values[1] + result.raw[1], alone.attributions[method].values[0]
                                + alone.attributions[method].raw[0]):
            np.testing.assert_allclose(mine, single, rtol=1e-4, atol=1e-9 + 1e-4 * np.abs(single).max())


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_lrp_conserves_relevance_on_bias_free_models(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    output = lm.generate("the quick brown fox", generate=3, attribution=["lrp"], min_new_tokens=3)
    result = output.attributions["lrp"]
    assert result.score == "logit"
    assert result.completeness_error[0].max() < 1e-3


def test_ig_completeness_and_auto_steps(tokenizer):
    lm = _lm("llama", tokenizer)
    coarse = lm.generate("the quick brown fox", generate=3, attribution=["ig"], min_new_tokens=3,
                         attribution_options={"n_steps": 1})
    auto = lm.generate("the quick brown fox", generate=3, attribution=["ig"], min_new_tokens=3,
                       attribution_options={"n_steps": "auto", "tolerance": 1e-3})
    assert auto.attributions["ig"].completeness_error[0].max() <= 1e-3
    assert coarse.attributions["ig"].completeness_error[0].max() > auto.attributions["ig"].completeness_error[0].max()
    # The reported error is the real one: recompute f(x) - f(0) by hand for the first target.
    seq = auto.sequences[0]
    ids = torch.tensor([seq.token_ids[: seq.n_input_tokens]])
    emb = lm.model.get_input_embeddings()(ids).detach()
    with torch.no_grad():
        def f(e):
            return torch.softmax(lm.model(inputs_embeds=e).logits[0, -1], -1)[seq.token_ids[seq.n_input_tokens]]

        delta = float(f(emb) - f(torch.zeros_like(emb)))
    total = auto.attributions["ig"].raw[0][0].sum()
    assert abs(total - delta) / abs(delta) <= 1e-3 + 1e-6


def test_teacher_forced_and_contrastive(tokenizer):
    lm = _lm("llama", tokenizer)
    forced = lm.attribute("the quick brown", target=" fox jumps", attribution=["grad_x_input"])
    seq = forced.sequences[0]
    target_ids = tokenizer(" fox jumps", add_special_tokens=False)["input_ids"]
    assert seq.token_ids[seq.n_input_tokens :] == target_ids
    assert forced.attributions["grad_x_input"].targets[0] == list(range(seq.n_input_tokens, len(seq)))
    contrast = lm.attribute("the quick brown", target=" fox", foil=" dog", attribution=["grad_x_input"])
    result = contrast.attributions["grad_x_input"]
    assert result.score == "logprob_diff" and len(result.targets[0]) == 1
    seq = contrast.sequences[0]
    foil = tokenizer(" dog", add_special_tokens=False)["input_ids"][0]
    reference = per_token_reference(lm.model, lm.spec.embeddings, "causal", seq.token_ids, len(seq) - 1,
                                    "grad_x_input", foil=foil)
    _close(result.raw[0], reference)
    assert result.foil_text == [tokenizer.decode([foil])]


def test_word_level_aggregation(tokenizer):
    lm = _lm("gpt2", tokenizer)
    output = lm.attribute("the quick brownish", target=" fox", attribution=["grad_x_input"])
    words = output.word_attributions("grad_x_input")
    seq = output.sequences[0]
    assert "".join(words["words"]) == "".join(seq.tokens)
    values = output.attributions["grad_x_input"].values[0][0]
    assert abs(words["values"][0].sum() - values.sum()) < 1e-9
    assert len(words["values"][0]) < len(values)  # "brownish" is several pieces


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda lm: lm.generate("the quick", generate=2, attribution=["magic"]),
         "valid methods: saliency, grad_x_input, ig, .*lrp"),
        (lambda lm: lm.attribute("the quick", target=""), "tokenizes to nothing"),
        (lambda lm: lm.attribute("the quick", target=" fox", foil=" fox"), "foil equals the target"),
        (lambda lm: lm.attribute("the quick", target=" fox", attribution=["ig"], n_step=3), "Unknown attribution option"),
        (lambda lm: lm.attribute(["a", "b"], target=[" x"]), "one target per prompt"),
        (lambda lm: lm.attribute("the quick", target=" fox", score="odds"), "score must be"),
    ],
)
def test_bad_attribution_input(call, message, tokenizer):
    lm = _lm("gpt2", tokenizer)
    model = lm.model
    with torch.no_grad():
        model(torch.tensor([[5, 6]]), output_hidden_states=True, output_attentions=True)
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    hooks = hook_count(model)
    with pytest.raises(ValueError, match=message):
        call(lm)
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert hook_count(model) == hooks and model.config._attn_implementation == "sdpa"


def test_model_unchanged_after_every_method(tokenizer):
    lm = _lm("llama", tokenizer)
    model = lm.model
    with torch.no_grad():
        model(torch.tensor([[5, 6]]), output_hidden_states=True, output_attentions=True)
    before = (model.training, [p.requires_grad for p in model.parameters()], hook_count(model),
              model.config._attn_implementation, torch.nn.functional.softmax)
    lm.generate("the quick", generate=2, attribution=ALL_METHODS)
    after = (model.training, [p.requires_grad for p in model.parameters()], hook_count(model),
             model.config._attn_implementation, torch.nn.functional.softmax)
    assert before == after
    assert all(p.grad is None for p in model.parameters())


def test_attribution_on_masked_model_is_refused(tokenizer):
    lm = _lm("bert", tokenizer)
    with pytest.raises(ValueError, match="encoder"):
        lm.generate("the quick", generate=2, attribution=["ig"])
    with pytest.raises(ValueError, match="causal or encoder-decoder"):
        lm.attribute("the quick", target=" fox")


def test_primary_attributions_data(tokenizer):
    lm = _lm("gpt2", tokenizer)
    output = lm.generate("the quick brown fox", generate=3, attribution=["ig"], min_new_tokens=3)
    data = output.primary_attributions(attr_method="ig", style="detailed", ignore_tokens=[0], printJson=True)
    seq = output.sequences[0]
    assert data["targets"] == list(range(seq.n_input_tokens, len(seq)))
    assert [len(a) for a in data["attributions"]] == data["targets"]
    assert data["tokens"][0]["hidden"] and not data["tokens"][1]["hidden"]
    assert data["probs"] == pytest.approx(output.token_probs[0].tolist())
    assert len(data["completeness"]) == 3
    # Hiding a token does not change the data (the view hides it).
    assert all(np.array_equal(shown, kept) for shown, kept in zip(data["attributions"], output.attributions["ig"].values[0]))
    assert output.saliency(attr_method="ig", printJson=True)["method"] == "ig"
