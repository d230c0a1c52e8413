"""Attributions computed when a view asks for them (Ecco's tutorials: ``lm.generate`` then
``output.saliency()``): the same numbers as ``attribution=[...]`` when the output was made, checked
against hand-written references; kept; a clear error where the model is gone or nothing was
generated."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco
from tests import tiny
from tests.attribution_reference import normalised, per_token_attributions
from tests.conftest import hook_count

PROMPT = "the quick brown fox"


def _lm(arch: str, tokenizer, **flags):
    return ecco.from_model(tiny.model(arch), tokenizer, verbose=False, **flags)


def _state(model):
    return (model.training, model.config._attn_implementation, hook_count(model),
            [p.requires_grad for p in model.parameters()])


def _same(a, b) -> None:
    """Two AttributionResults hold the same targets and numbers."""
    assert a.targets == b.targets
    for x, y in zip(a.raw, b.raw):
        for u, v in zip(x, y):
            np.testing.assert_allclose(u, v, rtol=0, atol=1e-7)
    for x, y in zip(a.values, b.values):
        for u, v in zip(x, y):
            np.testing.assert_allclose(u, v, rtol=0, atol=1e-7)


def test_saliency_after_plain_generate_is_input_x_gradient(tokenizer):
    """The tutorial's flow; the numbers are checked against autograd written out here."""
    lm = _lm("llama", tokenizer)
    output = lm.generate(PROMPT, generate=3, min_new_tokens=3)
    assert not output.attributions and "grad_x_input" not in output.attribution
    before = _state(lm.model)
    view = output.saliency()
    assert _state(lm.model) == before
    assert list(output.attributions) == ["grad_x_input"] and list(output.attribution) == ["grad_x_input"]
    seq, ids, model = output.sequences[0], torch.tensor([output.sequences[0].token_ids]), lm.model
    for k, position in enumerate(range(seq.n_input_tokens, len(seq))):
        emb = model.get_input_embeddings()(ids[:, :position]).detach().requires_grad_(True)
        prob = torch.softmax(model(inputs_embeds=emb).logits[0, -1], -1)[ids[0, position]]
        (grad,) = torch.autograd.grad(prob, emb)
        norms = (grad * emb)[0].detach().norm(dim=-1)
        np.testing.assert_allclose(output.attribution["grad_x_input"][k], (norms / norms.sum()).numpy(), atol=1e-5)
        assert view.data["attributions"][k] == pytest.approx(output.attribution["grad_x_input"][k].tolist())


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_on_demand_equals_asked_at_generate_time(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    prompts = [PROMPT, "a cat"]
    asked = lm.generate(prompts, generate=3, min_new_tokens=3, attribution=["ig", "saliency"])
    later = lm.generate(prompts, generate=3, min_new_tokens=3)
    assert [s.token_ids for s in asked.sequences] == [s.token_ids for s in later.sequences]
    values = later.attribution["ig"]  # computed here
    assert len(values) == 2 and len(values[1]) == 3
    _same(later.attributions["ig"], asked.attributions["ig"])
    later.word_attributions("saliency", sequence=1)
    _same(later.attributions["saliency"], asked.attributions["saliency"])
    assert list(later.attributions) == ["ig", "saliency"]


def test_integrated_gradients_on_demand_match_captum(tokenizer):
    lm = _lm("gpt2", tokenizer)
    output = lm.generate(PROMPT, generate=2, min_new_tokens=2)
    seq = output.sequences[0]
    reference = per_token_attributions(lm.model, lm.spec.embeddings, "causal", seq.token_ids, seq.n_input_tokens, "ig")
    for got, want in zip(output.attribution["ig"], normalised(reference)):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_attribute_outputs_keep_their_targets_foils_and_score(tokenizer):
    lm = _lm("gpt2", tokenizer)
    kwargs = dict(target=" fox jumps", foil=" fox sleeps")
    contrastive = lm.attribute(PROMPT, **kwargs, attribution=["saliency"])
    reference = lm.attribute(PROMPT, **kwargs, attribution=["grad_x_input"]).attributions["grad_x_input"]
    _same(contrastive.attribution_result("grad_x_input"), reference)
    assert contrastive.attributions["grad_x_input"].foil_text == contrastive.attributions["saliency"].foil_text
    # LRP reports the logit it explains; a method computed later explains the score that was asked.
    lrp = lm.attribute(PROMPT, " fox jumps", attribution=["lrp"], score="logprob")
    lrp.primary_attributions("saliency")
    reference = lm.attribute(PROMPT, " fox jumps", attribution=["saliency"], score="logprob").attributions["saliency"]
    _same(lrp.attributions["saliency"], reference)
    assert lrp.attributions["saliency"].score == "logprob"


def test_progress_bar_follows_verbose(tokenizer, capsys):
    lm = _lm("gpt2", tokenizer)
    lm.generate(PROMPT, generate=2).saliency()
    assert "attribution" not in capsys.readouterr().err
    lm.verbose = True
    lm.generate(PROMPT, generate=2, attribution=[]).saliency()
    assert "attribution" in capsys.readouterr().err


def test_saved_output_computes_only_with_its_model(tokenizer, tmp_path):
    lm = _lm("gpt2", tokenizer)
    output = lm.generate(PROMPT, generate=3, min_new_tokens=3, attribution=["saliency"])
    path = output.save(tmp_path / "out.ecco.safetensors")
    alone = ecco.load(path)
    with pytest.raises(ValueError, match=r"No 'ig' attributions.*available: saliency.*ecco\.load\(path, lm=lm\)"):
        alone.saliency("ig")
    with pytest.raises(KeyError):
        alone.attribution["ig"]
    assert alone.attribution.get("ig") is None and list(alone.attribution) == ["saliency"]
    attached = ecco.load(path, lm=lm)
    attached.attribution["ig"]
    _same(attached.attributions["ig"], lm.generate(PROMPT, generate=3, min_new_tokens=3, attribution=["ig"]).attributions["ig"])


def test_nothing_generated_nothing_to_attribute(tokenizer):
    bert = _lm("bert", tokenizer)
    with pytest.raises(ValueError, match="masked model.*nothing to attribute"):
        bert("the quick [MASK] fox").saliency()
    gpt2 = _lm("gpt2", tokenizer)
    read, generated = gpt2(PROMPT), gpt2.generate(PROMPT, generate=2)
    before = _state(gpt2.model)  # after transformers' own output hooks are in place
    with pytest.raises(ValueError, match="no generated tokens.*lm.attribute"):
        read.primary_attributions()
    with pytest.raises(ValueError, match="Unknown attribution method 'nope'"):
        generated.saliency("nope")
    assert _state(gpt2.model) == before and not read.attributions and not generated.attributions
