"""Generation with capture on tiny random models of every architecture family."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco
from tests import tiny
from tests.conftest import ffn_inputs, hook_count

PROMPTS = ["the quick brown fox", "hello"]


def _lm(arch: str, tokenizer, **flags):
    model = tiny.model(arch)
    flags.setdefault("activations", True)
    flags.setdefault("attention", True)
    return ecco.from_model(model, tokenizer, **flags)


def _reference(lm, arch: str, output, item: int):
    """One teacher-forced forward pass over item's final sequence, with eager attention."""
    seq = output.sequences[item]
    ids = torch.tensor([seq.token_ids])
    model = lm.model
    model.set_attn_implementation("eager")
    try:
        if output.kind == "enc-dec":
            n = seq.n_input_tokens
            return ffn_inputs(model, arch, output.n_layers, input_ids=ids[:, :n], decoder_input_ids=ids[:, n:])
        return ffn_inputs(model, arch, output.n_layers, input_ids=ids)
    finally:
        model.set_attn_implementation("sdpa")


def _assert_matches_reference(lm, arch, output, item):
    ref, ffn = _reference(lm, arch, output, item)
    seq = output.sequences[item]
    stacks = {"decoder": len(seq)} if output.kind == "causal" else {}
    if output.kind == "enc-dec":
        stacks = {"encoder": seq.n_input_tokens, "decoder": len(seq) - seq.n_input_tokens}
    for stack, n in stacks.items():
        hidden = ref.hidden_states if output.kind == "causal" else getattr(ref, f"{stack}_hidden_states")
        expected = torch.stack(hidden, dim=1)[0]
        torch.testing.assert_close(output.hidden_states[stack][item, :, :n], expected, atol=1e-4, rtol=1e-4)
        acts = torch.from_numpy(output.activations[stack][item, :, :, :n])
        torch.testing.assert_close(acts, ffn[stack].permute(0, 2, 1), atol=1e-4, rtol=1e-4)
    attn = {"decoder": ref.attentions} if output.kind == "causal" else {
        "encoder": ref.encoder_attentions, "decoder": ref.decoder_attentions, "cross": ref.cross_attentions
    }
    for name, weights in attn.items():
        expected = torch.stack(weights, dim=1)[0]
        q, k = expected.shape[-2:]
        torch.testing.assert_close(output.attention[name][item, :, :, :q, :k], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", tiny.CAUSAL + tiny.ENC_DEC)
def test_capture_equals_teacher_forced_pass(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    output = lm.generate(PROMPTS[0], generate=5)
    seq = output.sequences[0]
    assert output.kind == ("enc-dec" if arch in tiny.ENC_DEC else "causal")
    assert len(seq) == len(seq.tokens) == len(seq.continues_word)
    _assert_matches_reference(lm, arch, output, 0)


@pytest.mark.parametrize("arch", tiny.CAUSAL + tiny.ENC_DEC)
def test_shapes_follow_ecco_layout(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    output = lm.generate(PROMPTS[0], generate=4)
    config = lm.model.config
    main = "decoder"
    acts = output.activations[main]
    n_layers = output.n_layers[main]
    assert acts.shape[:2] == (1, n_layers)
    assert acts.shape[3] == output.hidden_states[main].shape[2]
    assert output.hidden_states[main].shape[:2] == (1, n_layers + 1)
    heads = getattr(config, "num_attention_heads", None) or config.num_heads
    assert output.attention[main].shape[1:3] == (n_layers, heads)
    assert acts.dtype == np.float32
    seq = output.sequences[0]
    n_generated = len(seq) - seq.n_input_tokens - (1 if output.kind == "enc-dec" else 0)
    assert 1 <= n_generated <= 4
    assert output.token_probs.shape == output.token_entropy.shape == (1, n_generated)  # values: test_references


@pytest.mark.parametrize("arch", tiny.CAUSAL + tiny.ENC_DEC)
def test_batch_equals_single(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    batch = lm.generate(PROMPTS, generate=4)
    for item, prompt in enumerate(PROMPTS):
        alone = lm.generate(prompt, generate=4)
        assert batch.sequences[item].token_ids == alone.sequences[0].token_ids
        n = len(alone.sequences[0])
        for stack, acts in alone.activations.items():
            width = acts.shape[-1]
            np.testing.assert_allclose(batch.activations[stack][item, ..., :width], acts[0], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(
                batch.hidden_states[stack][item, :, :width], alone.hidden_states[stack][0], atol=1e-4, rtol=1e-4
            )
        assert len(batch.sequences[item]) == n
        _assert_matches_reference(lm, arch, batch, item)


def test_prompt_lengths_and_left_padding_moved_right(tokenizer):
    lm = _lm("llama", tokenizer, attention=False)
    output = lm.generate(PROMPTS, generate=3)
    short = output.sequences[1]
    assert output.n_input_tokens == [len(tokenizer(p)["input_ids"]) for p in PROMPTS]
    assert short.token_ids[: short.n_input_tokens] == tokenizer(PROMPTS[1])["input_ids"]
    assert output.token_ids.shape == (2, max(output.lengths))
    assert (output.token_ids[1, len(short) :] == -1).all()


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_beam_search_captures_returned_sequence(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    output = lm.generate(PROMPTS[0], generate=4, beam_size=3)
    _assert_matches_reference(lm, arch, output, 0)


def test_sampling_is_captured_while_generating(tokenizer):
    lm = _lm("llama", tokenizer)
    torch.manual_seed(3)
    output = lm.generate(PROMPTS[0], generate=6, do_sample=True, temperature=1.5, top_k=50)
    _assert_matches_reference(lm, "llama", output, 0)


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_float16_storage(arch, tokenizer):
    """float16 storage rounds the very float32 values a float32 run stores, in every array."""
    out32 = _lm(arch, tokenizer).generate(PROMPTS, generate=3)
    out16 = _lm(arch, tokenizer, store_dtype="float16").generate(PROMPTS, generate=3)
    assert [s.token_ids for s in out16.sequences] == [s.token_ids for s in out32.sequences]
    stacks = ("encoder", "decoder") if arch == "t5" else ("decoder",)
    assert set(out16.activations) == set(out16.hidden_states) == set(stacks)
    assert set(out16.attention) == ({"encoder", "decoder", "cross"} if arch == "t5" else {"decoder"})
    for stack in stacks:
        assert out16.activations[stack].dtype == np.float16
        np.testing.assert_array_equal(out16.activations[stack], out32.activations[stack].astype(np.float16))
        assert out16.hidden_states[stack].dtype == torch.float16
        assert torch.equal(out16.hidden_states[stack], out32.hidden_states[stack].half())
    for name, weights in out16.attention.items():
        assert weights.dtype == torch.float16
        assert torch.equal(weights, out32.attention[name].half())
    assert out16.token_probs.dtype == out32.token_probs.dtype == torch.float32  # computed, not stored captures


def test_activation_layer_selection_is_numeric(tokenizer):
    model = tiny.model("gpt2", n_layer=12)
    lm = ecco.from_model(model, tokenizer, activations=True, activations_layer_nums=[10, 2, 1])
    output = lm.generate(PROMPTS[0], generate=2)
    assert output.activation_layers == {"decoder": [1, 2, 10]}
    _, ffn = ffn_inputs(model, "gpt2", {"decoder": 12}, input_ids=torch.tensor([output.sequences[0].token_ids]))
    for row, layer in enumerate([1, 2, 10]):
        np.testing.assert_allclose(output.activations["decoder"][0, row], ffn["decoder"][layer].T.numpy(), atol=1e-5)


def test_hooks_removed_and_mode_restored_after_error_mid_generation(tokenizer):
    lm = _lm("llama", tokenizer)
    model = lm.model
    with torch.no_grad():  # transformers installs its own permanent output-capturing hooks on first use
        model(torch.tensor([[5, 6, 7]]), output_hidden_states=True, output_attentions=True)
    model.train()
    before = hook_count(model)
    calls = {"n": 0}

    def explode(module, args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("boom in the middle of generation")

    handle = model.model.layers[1].mlp.register_forward_pre_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            lm.generate(PROMPTS[0], generate=6)
    finally:
        handle.remove()
    assert hook_count(model) == before
    assert model.training
    assert model.config._attn_implementation == "sdpa"
    assert calls["n"] == 4


def test_forward_only_captures(tokenizer):
    lm = _lm("bert", tokenizer)
    output = lm("the quick brown fox")
    assert output.kind == "masked"
    n = len(tokenizer("the quick brown fox")["input_ids"])
    assert output.activations["encoder"].shape == (1, 2, 40, n)
    assert output.hidden_states["encoder"].shape == (1, 3, n, 32)
    assert output.n_input_tokens == n and output.token_probs is None
    ref, ffn = ffn_inputs(lm.model, "bert", {"encoder": 2}, **tokenizer("the quick brown fox", return_tensors="pt"))
    np.testing.assert_allclose(output.activations["encoder"][0], ffn["encoder"].permute(0, 2, 1).numpy(), atol=1e-5)
    rows = output.attention["encoder"][0].sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-5, rtol=0)


def test_forward_only_accepts_tokenizer_output(tokenizer):
    lm = _lm("gpt2", tokenizer)
    inputs = tokenizer(["the quick brown fox"], return_tensors="pt")
    output = lm(inputs)
    assert output.sequences[0].token_ids == inputs["input_ids"][0].tolist()
    assert output.activations["decoder"].shape[-1] == inputs["input_ids"].shape[1]


def test_hooks_removed_after_bad_generate_argument(tokenizer):
    lm = _lm("gpt2", tokenizer)
    with torch.no_grad():
        lm.model(torch.tensor([[5, 6]]), output_hidden_states=True, output_attentions=True)
    before = hook_count(lm.model)
    with pytest.raises(ValueError, match="not_an_argument"):
        lm.generate(PROMPTS[0], generate=2, not_an_argument=1)
    assert hook_count(lm.model) == before


def test_forward_only_encoder_decoder(tokenizer):
    lm = _lm("t5", tokenizer)
    output = lm("the quick brown fox")
    n = len(tokenizer("the quick brown fox")["input_ids"])
    assert output.sequences[0].n_input_tokens == n and len(output.sequences[0]) == n + 1
    assert output.activations["encoder"].shape[-1] == n and output.activations["decoder"].shape[-1] == 1
    assert output.attention["cross"].shape[-2:] == (1, n)


def test_sentence_pair_forward(tokenizer):
    lm = _lm("bert", tokenizer)
    output = lm("the quick brown fox", "the lazy dog")
    expected = tokenizer("the quick brown fox", "the lazy dog")["input_ids"]
    assert output.sequences[0].token_ids == expected
    assert output.activations["encoder"].shape[-1] == len(expected)
