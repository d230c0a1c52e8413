"""Capture happens while generating: the model's forward calls during ``lm.generate``, counted.

Without beam search, ``generate`` calls the model once for the prompt and once per further new
token (the last new token is never fed back), and ecco adds exactly one cached single-token
step for it: n new tokens, n + 1 calls, never a second pass over the sequence. Beam search is
captured by one teacher-forced pass over the returned sequences, after generate's own calls,
which capture nothing.
"""
from __future__ import annotations

import pytest
import torch

import ecco
from tests import tiny

PROMPTS = ["the quick brown fox", "hello"]
N_NEW = 5


def _calls(lm) -> tuple[list[dict], list, list]:
    """(model calls, encoder calls, hook handles); a model call is {positions, cached, hidden_states}:
    its number of (decoder) positions, whether it continues a KV cache, whether it captures."""
    calls: list[dict] = []
    encoder_calls: list = []

    def record(module, args, kwargs):
        ids = kwargs.get("decoder_input_ids", kwargs.get("input_ids"))
        if ids is None:
            ids = args[0]
        cache = kwargs.get("past_key_values")
        calls.append({
            "positions": ids.shape[1],
            "cached": cache is not None and cache.get_seq_length() > 0,
            "hidden_states": bool(kwargs.get("output_hidden_states")),
        })

    handles = [lm.model.register_forward_pre_hook(record, with_kwargs=True)]
    if lm.kind == "enc-dec":
        handles.append(lm.model.get_encoder().register_forward_pre_hook(lambda m, a, k: encoder_calls.append(1),
                                                                        with_kwargs=True))
    return calls, encoder_calls, handles


def _generate_counting(lm, *args, **kwargs):
    calls, encoder_calls, handles = _calls(lm)
    try:
        output = lm.generate(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return output, calls, encoder_calls


@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5", "bart"])
@pytest.mark.parametrize("prompts", [PROMPTS[0], PROMPTS], ids=["one", "batch"])
def test_one_forward_call_per_new_token_plus_one(arch, prompts, tokenizer):
    lm = ecco.from_model(tiny.model(arch), tokenizer, activations=True, attention=True, verbose=False)
    output, calls, encoder_calls = _generate_counting(lm, prompts, generate=N_NEW, min_new_tokens=N_NEW)
    enc_dec = output.kind == "enc-dec"
    n_generated = len(output.sequences[0]) - output.sequences[0].n_input_tokens - (1 if enc_dec else 0)
    assert n_generated == N_NEW
    assert len(calls) == N_NEW + 1
    width = 1 if enc_dec else max(s.n_input_tokens for s in output.sequences)  # the decoder start / the prompt
    assert [c["positions"] for c in calls] == [width] + [1] * N_NEW  # the prompt, then one token a call
    assert [c["cached"] for c in calls] == [False] + [True] * N_NEW  # never a pass over the whole sequence
    assert all(c["hidden_states"] for c in calls)  # every call is captured
    assert len(encoder_calls) == (1 if enc_dec else 0)
    # What was captured covers every token: one hidden state column per position.
    assert output.hidden_states["decoder"].shape[2] == max(output.lengths) - (output.sequences[0].n_input_tokens
                                                                              if enc_dec else 0)


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_sampling_is_captured_during_generation(arch, tokenizer):
    lm = ecco.from_model(tiny.model(arch), tokenizer, activations=True, verbose=False)
    torch.manual_seed(0)
    _, calls, _ = _generate_counting(lm, PROMPTS[0], generate=N_NEW, min_new_tokens=N_NEW, do_sample=True,
                                     temperature=1.3)
    assert len(calls) == N_NEW + 1 and sum(not c["cached"] for c in calls) == 1


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_beam_search_is_captured_by_one_teacher_forced_pass(arch, tokenizer):
    lm = ecco.from_model(tiny.model(arch), tokenizer, activations=True, attention=True, verbose=False)
    output, calls, encoder_calls = _generate_counting(lm, PROMPTS, generate=N_NEW, min_new_tokens=N_NEW, beam_size=3)
    generate_calls, capture = calls[:-1], calls[-1]
    assert len(generate_calls) == N_NEW  # generate's own steps, with the cache
    assert not any(c["hidden_states"] for c in generate_calls)
    assert capture["hidden_states"] and not capture["cached"]
    enc_dec = output.kind == "enc-dec"
    decoder_lengths = [len(s) - (s.n_input_tokens if enc_dec else 0) for s in output.sequences]
    assert capture["positions"] == max(decoder_lengths)
    assert len(encoder_calls) == (1 if enc_dec else 0)
