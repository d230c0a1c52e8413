"""Every registry family that has no test of its own, on a tiny random model built from its config.

For each: capture during generation (or one forward pass for masked models) equals one
teacher-forced pass read with hooks placed here by hand; the lens of the last layer equals the
model's logits; every attribution method runs (checked against captum and against the model's
own numbers) or, where it cannot apply, raises a ValueError that says why.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco
from ecco.attribution import METHODS, UnsupportedMethodError
from tests import tiny
from tests.attribution_reference import normalised, per_token_attributions

PROMPTS = ["the quick brown fox", "hello"]  # 8 and 2 tokens: longer than the 4-token sliding windows
GENERATIVE = [f for f in tiny.FAMILIES if tiny.FAMILY_AUTO[f] is not tiny.tf.AutoModelForMaskedLM]
MASKED = [f for f in tiny.FAMILIES if f not in GENERATIVE]
ENC_DEC = ("mt5", "mbart", "pegasus", "marian")
ATTENTION_METHODS = ("attention", "rollout", "value_zeroing")

# FFN output projections, written out here independently of ecco's registry.
_LLAMA_LIKE = {"decoder": "model.layers.{}.mlp.down_proj"}
_BART_LIKE = {"encoder": "model.encoder.layers.{}.fc2", "decoder": "model.decoder.layers.{}.fc2"}
FFN_PATHS = {
    "gptj": {"decoder": "transformer.h.{}.mlp.fc_out"},
    "gpt-neox": {"decoder": "gpt_neox.layers.{}.mlp.dense_4h_to_h"},
    "opt": {"decoder": "model.decoder.layers.{}.fc2"},
    "mistral": _LLAMA_LIKE, "qwen2": _LLAMA_LIKE, "qwen3": _LLAMA_LIKE, "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE, "phi3": _LLAMA_LIKE,
    "roberta": {"encoder": "roberta.encoder.layer.{}.output.dense"},
    "electra": {"encoder": "electra.encoder.layer.{}.output.dense"},
    "distilbert": {"encoder": "distilbert.transformer.layer.{}.ffn.lin2"},
    "mt5": {"encoder": "encoder.block.{}.layer.1.DenseReluDense.wo", "decoder": "decoder.block.{}.layer.2.DenseReluDense.wo"},
    "mbart": _BART_LIKE, "pegasus": _BART_LIKE, "marian": _BART_LIKE,
}
# LRP's relevance sums to the explained logit unless something outside its rules adds to or bends
# the signal; these families do, and ecco must then report the loss honestly.
LRP_NOT_CONSERVED = {
    "opt": "learned position embeddings are added to the token embeddings",
    "mbart": "learned position embeddings are added to the token embeddings",
    "pegasus": "sinusoidal position embeddings are added to the token embeddings",
    "marian": "sinusoidal position embeddings are added to the token embeddings",
    "gemma2": "the final logits are soft-capped with tanh",
}
RELU_ONLY = ("opt",)  # every activation an nn.ReLU: captum's guided backprop / deconvolution apply


@pytest.fixture(scope="module", params=tiny.FAMILIES)
def captured(request):
    """(family, lm, output) with everything captured; generative families generate 5 tokens."""
    family = request.param
    lm = ecco.from_model(tiny.model(family), tiny.tokenizer(), activations=True, attention=True, verbose=False)
    if family in MASKED:
        mask = lm.tokenizer.mask_token
        return family, lm, lm([f"the quick {mask} fox jumps", f"hello {mask}"])
    return family, lm, lm.generate(PROMPTS, generate=5, min_new_tokens=5)


def _teacher_forced(lm, family: str, output, item: int):
    """One eager pass over item's final sequence, with hooks on the FFN output projections:
    (outputs, {stack: (layers, positions, neurons)})."""
    seq = output.sequences[item]
    ids = torch.tensor([seq.token_ids])
    n = seq.n_input_tokens
    inputs = dict(input_ids=ids[:, :n], decoder_input_ids=ids[:, n:]) if family in ENC_DEC else dict(input_ids=ids)
    modules = dict(lm.model.named_modules())
    seen = {stack: [] for stack in FFN_PATHS[family]}
    handles = []
    for stack, pattern in FFN_PATHS[family].items():
        for layer in range(output.n_layers[stack]):
            def hook(module, args, stack=stack):
                x = args[0].detach()
                seen[stack].append(x.reshape(-1, x.shape[-1]))  # OPT flattens (batch, positions)

            handles.append(modules[pattern.format(layer)].register_forward_pre_hook(hook))
    before = lm.model.config._attn_implementation
    lm.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = lm.model(**inputs, output_hidden_states=True, output_attentions=True)
    finally:
        lm.model.set_attn_implementation(before)
        for handle in handles:
            handle.remove()
    return out, {stack: torch.stack(chunks) for stack, chunks in seen.items()}


def _stacks(family: str, output, item: int) -> dict[str, tuple[int, int]]:
    """Per stack: (first token-list position, number of positions) of item's tokens."""
    seq = output.sequences[item]
    if family in ENC_DEC:
        return {"encoder": (0, seq.n_input_tokens), "decoder": (seq.n_input_tokens, len(seq) - seq.n_input_tokens)}
    return {"encoder" if family in MASKED else "decoder": (0, len(seq))}


def test_capture_equals_teacher_forced_pass(captured):
    family, lm, output = captured
    assert lm.spec.kind == ("masked" if family in MASKED else "enc-dec" if family in ENC_DEC else "causal")
    for item in range(output.batch_size):
        ref, ffn = _teacher_forced(lm, family, output, item)
        for stack, (_, n) in _stacks(family, output, item).items():
            field = "hidden_states" if family not in ENC_DEC else f"{stack}_hidden_states"
            expected = torch.stack(getattr(ref, field), dim=1)[0]
            assert output.hidden_states[stack][item, :, :n].shape == expected.shape
            torch.testing.assert_close(output.hidden_states[stack][item, :, :n], expected, atol=1e-4, rtol=1e-4)
            acts = torch.from_numpy(output.activations[stack][item, :, :, :n])
            torch.testing.assert_close(acts, ffn[stack].permute(0, 2, 1), atol=1e-4, rtol=1e-4)
        sets = ({"encoder": "encoder_attentions", "decoder": "decoder_attentions", "cross": "cross_attentions"}
                if family in ENC_DEC else {next(iter(output.attention)): "attentions"})
        for name, field in sets.items():
            expected = torch.stack(getattr(ref, field), dim=1)[0]
            q, k = expected.shape[-2:]
            torch.testing.assert_close(output.attention[name][item, :, :, :q, :k], expected, atol=1e-4, rtol=1e-4)
            assert not output.attention[name][item, :, :, :q, k:].any()  # no weight on padding


def test_last_layer_lens_equals_model_logits(captured):
    family, lm, output = captured
    for item in range(output.batch_size):
        seq = output.sequences[item]
        ids = torch.tensor([seq.token_ids])
        n = seq.n_input_tokens
        with torch.no_grad():
            if family in ENC_DEC:
                logits = lm.model(input_ids=ids[:, :n], decoder_input_ids=ids[:, n:]).logits[0]
            else:
                logits = lm.model(input_ids=ids).logits[0]
        stack = lm.spec.kind.main_stack
        hidden = output.hidden_states[stack][item, -1, : logits.shape[0]]
        assert (lm.link.lens(hidden, final=True) - logits).abs().max() <= 1e-4
        if family in MASKED:
            continue
        # The lens ranks of the generated tokens at the last layer, counted from the model's logits.
        predicting = logits[-(len(seq) - n - (1 if family in ENC_DEC else 0)) - 1 : -1]
        chosen = torch.tensor(seq.token_ids[len(seq) - len(predicting) :])
        ranks = 1 + (predicting > predicting.gather(-1, chosen[:, None])).sum(-1)
        assert output.rankings(printJson=True, sequence=item)["rankings"][-1].tolist() == ranks.tolist()


@pytest.mark.parametrize("scaled", [True, False])
def test_t5_lens_follows_the_output_scaling(scaled, tokenizer):
    """Original T5 rescales its last hidden state before the head, T5 v1.1 (tie_word_embeddings=False
    in its config) does not; the lens must do what the model does."""
    torch.manual_seed(0)
    config = tiny.tf.T5Config(num_layers=2, d_model=32, d_ff=40, num_heads=4, d_kv=8, decoder_start_token_id=0,
                              **({} if scaled else {"tie_word_embeddings": False}), **tiny._ids())
    lm = ecco.from_model(tiny.tf.T5ForConditionalGeneration(config).eval(), tokenizer, verbose=False)
    output = lm.generate(PROMPTS[0], generate=3, min_new_tokens=3)
    seq = output.sequences[0]
    ids = torch.tensor([seq.token_ids])
    with torch.no_grad():
        logits = lm.model(input_ids=ids[:, : seq.n_input_tokens], decoder_input_ids=ids[:, seq.n_input_tokens :]).logits
    assert (lm.link.lens(output.hidden_states["decoder"][0, -1], final=True) - logits[0]).abs().max() <= 1e-4


@pytest.mark.parametrize("family", MASKED)
def test_attribution_refused_on_masked_models(family, tokenizer):
    lm = ecco.from_model(tiny.model(family), tokenizer, verbose=False)
    for method in METHODS:
        with pytest.raises(ValueError, match="causal or encoder-decoder"):
            lm.attribute("the quick brown", target=" fox", attribution=[method])


def _model_score(lm, family: str, seq, position: int, zero: bool = False, logit: bool = False) -> float:
    """The model's own probability (or logit) of token ``position`` after its prefix, from
    the prefix's embeddings (or zeros in their place)."""
    ids = torch.tensor([seq.token_ids])
    with torch.no_grad():
        embeds = lm.spec.embeddings(ids)
        if zero:
            embeds = torch.zeros_like(embeds)
        n = seq.n_input_tokens
        if family in ENC_DEC:
            logits = lm.model(inputs_embeds=embeds[:, :n], decoder_inputs_embeds=embeds[:, n:position]).logits[0, -1]
        else:
            logits = lm.model(inputs_embeds=embeds[:, :position]).logits[0, -1]
    target = seq.token_ids[position]
    return float(logits[target] if logit else torch.softmax(logits, -1)[target])


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")  # captum's note, for OPT
@pytest.mark.parametrize("family", GENERATIVE)
def test_every_attribution_method_on_the_family(family, tokenizer):
    lm = ecco.from_model(tiny.model(family), tokenizer, verbose=False)
    # The attention methods read decoder self-attention only, which leaves out an encoder-decoder's
    # encoder: they refuse such models with that reason.
    refused = ATTENTION_METHODS if family in ENC_DEC else ()
    for method in refused:
        with pytest.raises(UnsupportedMethodError, match="encoder-decoder"):
            lm.attribute(PROMPTS[0], target=" is a", attribution=[method])
    # Teacher-forced targets: a random model's own greedy tokens can be so likely that every
    # gradient of their probability vanishes.
    output = lm.attribute(PROMPTS[0], target=" is a", attribution=[m for m in METHODS if m not in refused])
    seq = output.sequences[0]
    assert len(seq) - seq.n_input_tokens - (1 if family in ENC_DEC else 0) == 2
    generated = list(range(len(seq) - 2, len(seq)))
    for method, result in output.attributions.items():
        assert result.targets[0] == generated, method
        for target, values, raw in zip(generated, result.values[0], result.raw[0]):
            assert len(values) == len(raw) == target and np.isfinite(raw).all(), method
            assert np.abs(raw).max() > 0, method
    # The gradient methods equal captum's classes run once per token on its prefix: Ecco's
    # normalised scores, and the signed sums where they carry signal (not for modified
    # gradients, whose sum over a LayerNorm's input is zero up to rounding).
    captum_methods = ["saliency", "grad_x_input", "ig"] + (["gb", "deconv"] if family in RELU_ONLY else [])
    for method in captum_methods:
        reference = per_token_attributions(lm.model, lm.spec.embeddings, output.kind, seq.token_ids,
                                           seq.n_input_tokens, method)
        pairs = [(output.attributions[method].values[0], normalised(reference))]
        if method in ("saliency", "grad_x_input", "ig"):
            pairs.append((output.attributions[method].raw[0], [a.sum(-1).numpy() for a in reference]))
        for ours, expected in pairs:
            scale = max(np.abs(e).max() for e in expected)
            for mine, ref in zip(ours, expected):
                np.testing.assert_allclose(mine, ref, atol=1e-3 * scale, rtol=0, err_msg=method)
    # DeepLift's and LRP's reported errors are the real ones, recomputed from the model.
    for k, position in enumerate(generated):
        score = _model_score(lm, family, seq, position)
        delta = score - _model_score(lm, family, seq, position, zero=True)
        total = output.attributions["dl"].raw[0][k].sum()
        rounding = float(50 * np.finfo(np.float32).eps * score / abs(delta))  # delta can be tiny next to the score
        assert output.attributions["dl"].completeness_error[0][k] == pytest.approx(
            abs(total - delta) / abs(delta), rel=1e-3, abs=1e-5 + rounding)
        logit = _model_score(lm, family, seq, position, logit=True)
        relevance = output.attributions["lrp"].raw[0][k].sum()
        error = abs(relevance - logit) / abs(logit)
        assert output.attributions["lrp"].completeness_error[0][k] == pytest.approx(error, rel=1e-3, abs=1e-5)
        if family in LRP_NOT_CONSERVED:
            assert error > 1e-3, f"{family}: {LRP_NOT_CONSERVED[family]}, yet relevance was conserved"
        else:
            assert error < 1e-3, f"{family}: LRP relevance {relevance} vs the model's logit {logit}"
