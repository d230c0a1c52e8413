"""Numbers checked against a computation that does not go through ecco: the model's own forward
pass, captum, or a known identity worked out by hand here.

- token probabilities and entropies against a teacher-forced pass's softmax;
- the masked-model lens against BertForMaskedLM's own MLM head and logits;
- DeepLift / DeepLiftShap summation-to-delta, and LRP = gradient x input, on transformers made
  piecewise linear (no norms, constant attention), where these identities are exact;
- LRP conservation against the model's own logit;
- Guided Grad-CAM against captum's GuidedGradCam;
- adaptive IG against a 1,000-node Gauss-Legendre reference.
"""
from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch
from torch import nn

import ecco
from ecco.attribution.deeplift import shap_baselines
from tests import tiny
from tests.attribution_reference import PrefixScore, normalised, per_token_attributions

PROMPTS = ["the quick brown fox", "hello"]


def _lm(model: nn.Module, tokenizer, **flags):
    return ecco.from_model(model, tokenizer, verbose=False, **flags)


def _teacher_forced_logits(model: nn.Module, kind: str, seq) -> torch.Tensor:
    """The model's logits over one final sequence (decoder positions for encoder-decoders)."""
    ids = torch.tensor([seq.token_ids])
    n = seq.n_input_tokens
    with torch.no_grad():
        if kind == "enc-dec":
            return model(input_ids=ids[:, :n], decoder_input_ids=ids[:, n:]).logits[0]
        return model(input_ids=ids).logits[0]


# ------------------------------------------------------------ token probabilities ---------------

@pytest.mark.parametrize("arch, beams", [("gpt2", 1), ("llama", 1), ("t5", 1), ("bart", 1), ("gpt2", 3), ("t5", 3)])
def test_token_probs_and_entropy_equal_a_teacher_forced_softmax(arch, beams, tokenizer):
    """Sampled at temperature 1.5 with top-k (so neither the argmax nor the sampling distribution):
    ``token_probs`` / ``token_entropy`` come from the model's raw logits."""
    lm = _lm(tiny.model(arch), tokenizer)
    torch.manual_seed(5)
    sampling = dict(do_sample=True, temperature=1.5, top_k=20) if beams == 1 else {}
    output = lm.generate(PROMPTS, generate=5, beam_size=beams, **sampling)
    assert output.token_probs.shape == output.token_entropy.shape == (2, 5)
    not_argmax = 0
    for item, seq in enumerate(output.sequences):
        logits = _teacher_forced_logits(lm.model, output.kind, seq)
        first = seq.n_input_tokens + (1 if output.kind == "enc-dec" else 0)  # after the decoder start token
        chosen = torch.tensor(seq.token_ids[first:])
        n = len(chosen)
        predicting = logits[-n - 1 : -1]
        log_probs = torch.log_softmax(predicting.double(), -1)
        probs = log_probs.gather(-1, chosen[:, None])[:, 0].exp()
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        torch.testing.assert_close(output.token_probs[item, :n].double(), probs, atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(output.token_entropy[item, :n].double(), entropy, atol=1e-5, rtol=1e-4)
        assert output.token_probs[item, n:].isnan().all() and output.token_entropy[item, n:].isnan().all()
        not_argmax += int((predicting.argmax(-1) != chosen).sum())
    if beams == 1:
        assert not_argmax > 0  # the sampled tokens are not all the greedy ones


# ----------------------------------------------------------------- masked-model lens ------------

def test_masked_lens_equals_bert_mlm_head(tokenizer):
    model = tiny.model("bert")
    assert type(model).__name__ == "BertForMaskedLM"
    lm = _lm(model, tokenizer)
    text = f"the quick {tokenizer.mask_token} fox jumps"
    output = lm(text)
    ids = torch.tensor([output.sequences[0].token_ids])
    with torch.no_grad():
        ref = model(input_ids=ids, output_hidden_states=True)
    hidden = output.hidden_states["encoder"][0]
    assert (lm.link.lens(hidden[-1], final=True) - ref.logits[0]).abs().max() <= 1e-4
    # layer_predictions at the mask: each layer's top-5 through the model's own MLM head (cls).
    mask = output.sequences[0].token_ids.index(tokenizer.mask_token_id)
    rows = output.layer_predictions(position=mask, topk=5, printJson=True)
    assert len(rows) == 2
    for layer, row in enumerate(rows):
        with torch.no_grad():
            probs = torch.softmax(model.cls(ref.hidden_states[layer + 1][0, mask]), -1)
        top = probs.topk(5)
        assert [c["token_id"] for c in row] == top.indices.tolist()
        np.testing.assert_allclose([c["prob"] for c in row], top.values.numpy(), rtol=1e-4, atol=1e-6)
    last = torch.softmax(ref.logits[0, mask], -1).topk(5)
    np.testing.assert_allclose([c["prob"] for c in rows[-1]], last.values.numpy(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------ piecewise-linear models -----------

def _piecewise_linear_gpt2(activation: str, biases: bool, seed: int = 0) -> nn.Module:
    """A tiny GPT-2 whose every nonlinearity is an elementwise activation: its LayerNorms become
    identities and its query and key projections zero (so attention is a fixed average). The
    logit of a token is then a composition of linear maps and the activation, where DeepLift's
    rescale rule sums exactly to the change of the logit; with ReLU and no additive terms
    (biases, position embeddings) the logit is positively homogeneous, so LRP (0-rule,
    identity rule at activations) equals gradient x input and sums to the logit itself."""
    model = tiny.model("gpt2", seed=seed, activation_function=activation)
    width = model.config.n_embd
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.transformer.h:
            block.ln_1, block.ln_2 = nn.Identity(), nn.Identity()
            block.attn.c_attn.weight[:, : 2 * width] = 0
        model.transformer.ln_f = nn.Identity()
        for module in model.modules():
            bias = getattr(module, "bias", None)
            if isinstance(bias, nn.Parameter):
                bias.copy_(0.1 * torch.randn(bias.shape, generator=generator) if biases else torch.zeros_like(bias))
            if hasattr(module, "c_attn"):
                module.c_attn.bias[: 2 * width] = 0
        if not biases:
            model.transformer.wpe.weight.zero_()
    return model


def _logits_at(model: nn.Module, embeds: torch.Tensor, position: int, token: int) -> torch.Tensor:
    """The logit of ``token`` predicted from the first ``position`` embeddings, for a batch."""
    with torch.no_grad():
        return model(inputs_embeds=embeds[:, :position]).logits[:, -1, token].double()


@pytest.mark.parametrize("activation", ["relu", "gelu_new"])
def test_deeplift_sums_to_the_change_of_the_logit(activation, tokenizer):
    model = _piecewise_linear_gpt2(activation, biases=True)
    lm = _lm(model, tokenizer)
    output = lm.attribute(PROMPTS[0], target=" is a", attribution=["dl", "dls"], score="logit")
    seq = output.sequences[0]
    ids = torch.tensor([seq.token_ids])
    embeds = model.get_input_embeddings()(ids).detach()
    # DeepLiftShap's baseline distribution over the explained inputs (all but the last token).
    baselines = shap_baselines(model.get_input_embeddings(), [len(seq) - 1], 4, 0)[0]
    for k, position in enumerate(range(seq.n_input_tokens, len(seq))):
        token = seq.token_ids[position]
        logit = _logits_at(model, embeds, position, token)[0]
        delta = logit - _logits_at(model, torch.zeros_like(embeds), position, token)[0]
        dl = output.attributions["dl"].raw[0][k].sum()
        assert abs(dl - delta) <= 1e-4 * abs(delta) + 1e-6, (k, dl, float(delta))
        shap_delta = logit - _logits_at(model, baselines, position, token).mean()
        dls = output.attributions["dls"].raw[0][k].sum()
        assert abs(dls - shap_delta) <= 1e-4 * abs(shap_delta) + 1e-6, (k, dls, float(shap_delta))
        assert abs(shap_delta - delta) > 1e-3 * abs(delta)  # the baselines differ, so do the two checks


def test_lrp_equals_gradient_times_input_on_a_bias_free_relu_model(tokenizer):
    model = _piecewise_linear_gpt2("relu", biases=False)
    lm = _lm(model, tokenizer)
    output = lm.attribute(PROMPTS[0], target=" is a", attribution=["lrp"])
    result = output.attributions["lrp"]
    assert result.score == "logit"
    seq = output.sequences[0]
    ids = torch.tensor([seq.token_ids])
    for k, position in enumerate(range(seq.n_input_tokens, len(seq))):
        embeds = model.get_input_embeddings()(ids[:, :position]).detach().requires_grad_(True)
        logit = model(inputs_embeds=embeds).logits[0, -1, ids[0, position]]
        (grad,) = torch.autograd.grad(logit, embeds)
        contribution = (grad * embeds)[0].detach().double()
        scale = contribution.sum(-1).abs().max().item()
        np.testing.assert_allclose(result.raw[0][k], contribution.sum(-1).numpy(), atol=1e-5 * scale, rtol=0)
        np.testing.assert_allclose(result.values[0][k], normalised([contribution])[0], atol=1e-5)
        assert result.raw[0][k].sum() == pytest.approx(logit.item(), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_lrp_relevance_sums_to_the_models_own_logit(arch, tokenizer):
    """Bias-free models (RMSNorm, gated or ReLU FFNs, rotary or relative positions)."""
    lm = _lm(tiny.model(arch), tokenizer)
    output = lm.attribute(PROMPTS[0], target=" is a", attribution=["lrp"])
    seq = output.sequences[0]
    logits = _teacher_forced_logits(lm.model, output.kind, seq)
    chosen = seq.token_ids[len(seq) - 2 :]
    expected = logits[-3:-1].gather(-1, torch.tensor(chosen)[:, None])[:, 0]
    sums = [r.sum() for r in output.attributions["lrp"].raw[0]]
    np.testing.assert_allclose(sums, expected.double().numpy(), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- Guided Grad-CAM ---------------

class _Transposed(nn.Module):
    """The model on (batch, hidden, positions) embeddings, with the output of one block passed
    through ``tap`` as (batch, hidden, positions): the layout captum's Grad-CAM reads as
    (batch, channels, length), so it averages gradients over positions and sums over hidden units."""

    def __init__(self, model: nn.Module, block: nn.Module, target: int):
        super().__init__()
        self.score = PrefixScore(model, target)
        self.block = block
        self.tap = nn.Identity()

    def _through_tap(self, module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        tapped = self.tap(hidden.transpose(1, 2)).transpose(1, 2)
        return (tapped, *output[1:]) if isinstance(output, tuple) else tapped

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        handle = self.block.register_forward_hook(self._through_tap)
        try:
            return self.score(embeds.transpose(1, 2))
        finally:
            handle.remove()


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")
@pytest.mark.parametrize("layer", [-1, 0])
def test_guided_gradcam_equals_captum(layer, tokenizer):
    model = tiny.model("gpt2", activation_function="relu")  # captum's guided rule acts on nn.ReLU
    lm = _lm(model, tokenizer)
    output = lm.attribute(PROMPTS[0], target=" is a", attribution=["gg"], gradcam_layer=layer)
    seq = output.sequences[0]
    embeds = model.get_input_embeddings()(torch.tensor([seq.token_ids])).detach()
    expected = []
    for position in range(seq.n_input_tokens, len(seq)):
        wrapped = _Transposed(model, model.transformer.h[layer], seq.token_ids[position])
        inputs = embeds[:, :position].transpose(1, 2).clone().requires_grad_(True)
        attr = ca.GuidedGradCam(wrapped, wrapped.tap).attribute(inputs)
        expected.append(attr[0].T.detach().double())
    assert any(float(e.abs().max()) > 0 for e in expected)
    # Ecco's normalised scores (the signed sums over hidden units of a gradient into a
    # LayerNorm are zero up to rounding, so they are not compared).
    for ours, ref in zip(output.attributions["gg"].values[0], normalised(expected)):
        np.testing.assert_allclose(ours, ref, atol=1e-4)


# ------------------------------------------------------------------------ auto IG ---------------

@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_auto_ig_equals_a_1000_node_reference(arch, tokenizer):
    lm = _lm(tiny.model(arch), tokenizer)
    auto = lm.attribute(PROMPTS[0], target=" is a", attribution=["ig"], n_steps="auto")
    seq = auto.sequences[0]
    reference = per_token_attributions(lm.model, lm.spec.embeddings, "causal", seq.token_ids, seq.n_input_tokens,
                                       "ig", n_steps=1000)
    # The reference itself is converged: its sums equal f(x) - f(0) from the model.
    ids = torch.tensor([seq.token_ids])
    embeds = lm.model.get_input_embeddings()(ids).detach()
    for k, position in enumerate(range(seq.n_input_tokens, len(seq))):
        with torch.no_grad():
            probs = [torch.softmax(lm.model(inputs_embeds=e[:, :position]).logits[0, -1], -1)[ids[0, position]]
                     for e in (embeds, torch.zeros_like(embeds))]
        delta = float(probs[0] - probs[1])
        assert abs(reference[k].sum().item() - delta) <= 1e-4 * abs(delta)
    raw = [r.sum(-1).numpy() for r in reference]
    scale = max(np.abs(r).max() for r in raw)
    coarse = lm.attribute(PROMPTS[0], target=" is a", attribution=["ig"], n_steps=4)
    for result, should_match in ((auto, True), (coarse, False)):
        ig = result.attributions["ig"]
        raw_error = max(np.abs(ours - ref).max() for ours, ref in zip(ig.raw[0], raw)) / scale
        norm_error = max(np.abs(ours - ref).max() for ours, ref in zip(ig.values[0], normalised(reference)))
        if should_match:
            assert raw_error <= 5e-3 and norm_error <= 1e-3, (raw_error, norm_error)
        else:  # the comparison can tell: four nodes are far off
            assert raw_error > 5e-2, raw_error
