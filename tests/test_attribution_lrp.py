"""LRP without global patching: the attention rule goes through transformers' AttentionInterface,
gated layouts come from the registry (fused gate-up projections included)."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch
import transformers as tf

import ecco
from ecco.attribution import explain, generated_targets
from tests import tiny
from tests.conftest import hook_count

PROMPT = "the quick brown fox"


def _lm(model: torch.nn.Module, tokenizer):
    return ecco.from_model(model, tokenizer, verbose=False)


def _phi3() -> torch.nn.Module:
    torch.manual_seed(0)
    config = tf.Phi3Config(num_hidden_layers=2, hidden_size=32, intermediate_size=40, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=128, **tiny._ids())
    return tf.Phi3ForCausalLM(config).eval()


def _sequences(lm, n: int = 3) -> list:
    output = lm.generate(PROMPT, generate=n, min_new_tokens=n)
    seq = output.sequences[0]
    return [(seq.token_ids, seq.n_input_tokens, generated_targets(lm.spec.kind, seq.token_ids, seq.n_input_tokens))]


def test_softmax_is_not_patched_during_lrp(tokenizer):
    lm = _lm(tiny.model("llama"), tokenizer)
    softmax = torch.nn.functional.softmax
    seen = []
    handle = lm.model.model.layers[0].register_forward_hook(
        lambda module, args, out: seen.append(torch.nn.functional.softmax is softmax)
    )
    try:
        explain(lm.runner, _sequences(lm), ["lrp"], progress=False)
    finally:
        handle.remove()
    assert seen and all(seen)
    assert torch.nn.functional.softmax is softmax


def test_lrp_in_two_threads_equals_serial(tokenizer):
    softmax = torch.nn.functional.softmax
    lms = [_lm(tiny.model("llama"), tokenizer), _lm(tiny.model("gpt2", seed=1), tokenizer)]
    sequences = [_sequences(lm) for lm in lms]
    serial = [explain(lm.runner, seqs, ["lrp"], progress=False)["lrp"] for lm, seqs in zip(lms, sequences)]
    together = threading.Barrier(2, timeout=60)
    results: list = [None, None]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        waited = []

        def meet(module, args, out) -> None:  # both LRP forwards are under way at the same time
            if not waited:
                waited.append(together.wait())

        first_block = lms[i].spec.main_stack.blocks[0]
        handle = first_block.register_forward_hook(meet)
        try:
            results[i] = explain(lms[i].runner, sequences[i], ["lrp"], progress=False)["lrp"]
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            handle.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for parallel, alone in zip(results, serial):
        for a, b in zip(parallel.raw[0] + parallel.values[0], alone.raw[0] + alone.values[0]):
            assert np.array_equal(a, b)
        assert np.array_equal(parallel.completeness_error[0], alone.completeness_error[0])
    assert torch.nn.functional.softmax is softmax


def test_lrp_conserves_on_a_fused_gate_up_model(tokenizer):
    """Phi-3 computes act(gate) * up from one gate_up_proj; the registry's fused layout splits it."""
    lm = _lm(_phi3(), tokenizer)
    assert lm.spec.family.gates[0].fused
    output = lm.generate(PROMPT, generate=3, attribution=["lrp"], min_new_tokens=3)
    assert output.attributions["lrp"].completeness_error[0].max() < 1e-3
    # Without the gate layout the product has no rule: an error, never a silently unconserved result.
    lm.spec.family = dataclasses.replace(lm.spec.family, gates=())
    model = lm.model
    before = (model.config._attn_implementation, hook_count(model), model.training)
    with pytest.raises(ValueError, match="Phi3MLP|down_proj|not the output of an activation.*'ig' or 'grad_x_input'"):
        lm.generate(PROMPT, generate=3, attribution=["lrp"], min_new_tokens=3)
    assert (model.config._attn_implementation, hook_count(model), model.training) == before


def test_lrp_refuses_an_activation_that_is_a_plain_function(tokenizer):
    """GPT-2's GELU module replaced by a function call: no module to hold the identity rule on,
    so no conservation; LRP says so instead of returning gradient x input through it."""
    model = tiny.model("gpt2")
    for block in model.transformer.h:
        del block.mlp.act
        block.mlp.act = torch.nn.functional.gelu
    lm = _lm(model, tokenizer)
    with pytest.raises(ValueError, match="not the output of an activation module"):
        lm.generate(PROMPT, generate=2, attribution=["lrp"], min_new_tokens=2)


def test_lrp_on_grouped_query_attention_conserves(tokenizer):
    model = tiny.model("llama")
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    output = _lm(model, tokenizer).generate(PROMPT, generate=3, attribution=["lrp"], min_new_tokens=3)
    assert output.attributions["lrp"].completeness_error[0].max() < 1e-3


def _bias_free(model: torch.nn.Module) -> torch.nn.Module:
    """Every bias zero, learned position embeddings too (an additive term like a bias)."""
    with torch.no_grad():
        wpe = getattr(getattr(model, "transformer", None), "wpe", None)
        if wpe is not None:
            wpe.weight.zero_()
        for module in model.modules():
            if getattr(module, "bias", None) is not None and isinstance(module.bias, torch.nn.Parameter):
                module.bias.zero_()
    return model


@pytest.mark.parametrize("arch", ["gpt-neo", "gptj"])
def test_lrp_holds_the_attention_core_of_families_outside_the_interface(arch, tokenizer):
    """GPT-Neo / GPT-J compute attention in their own ``_attn``: the registry names it, LRP
    holds its weights there, and a bias-free model conserves relevance; nothing stays on the model."""
    if arch == "gptj":
        torch.manual_seed(0)
        config = tf.GPTJConfig(n_layer=2, n_embd=32, n_head=4, rotary_dim=4, n_positions=128, **tiny._ids())
        model = tf.GPTJForCausalLM(config).eval()
    else:
        model = tiny.model(arch)
    lm = _lm(_bias_free(model), tokenizer)
    assert lm.spec.family.attention_core == "_attn"
    before = (model.config._attn_implementation, hook_count(model), model.training)
    output = lm.generate(PROMPT, generate=3, attribution=["lrp"], min_new_tokens=3)
    assert output.attributions["lrp"].completeness_error[0].max() < 1e-3
    assert (model.config._attn_implementation, hook_count(model), model.training) == before
    assert not any("_attn" in vars(m) for m in model.modules())


def test_lrp_refuses_attention_outside_the_interface(tokenizer):
    lm = _lm(tiny.model("gpt-neo"), tokenizer)
    lm.spec.family = dataclasses.replace(lm.spec.family, attention_core=None)  # as if the registry did not know
    model = lm.model
    before = (model.config._attn_implementation, hook_count(model), model.training)
    with pytest.raises(ValueError, match="AttentionInterface.*'ig' or 'grad_x_input'"):
        lm.generate(PROMPT, generate=2, attribution=["lrp"], min_new_tokens=2)
    assert (model.config._attn_implementation, hook_count(model), model.training) == before


class _ForeignAttention(tf.models.llama.modeling_llama.LlamaAttention):
    """Llama's attention, defined in a module that has no eager attention function."""


def test_lrp_refuses_a_model_without_eager_attention(tokenizer):
    lm = _lm(tiny.model("llama"), tokenizer)
    sequences = _sequences(lm, 2)
    lm.model.model.layers[1].self_attn.__class__ = _ForeignAttention
    with pytest.raises(ValueError, match="no eager attention function.*'ig' or 'grad_x_input'"):
        explain(lm.runner, sequences, ["lrp"], progress=False)
    assert lm.model.config._attn_implementation == "sdpa"
