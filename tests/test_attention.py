"""Attention data: rows, packing, queries/keys where the model uses them, bad input."""
from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

import ecco
from tests import tiny
from tests.conftest import softmax_from_neuron_data

ARCHS = ["gpt2", "llama", "t5", "bart", "bert"]


def _output(arch: str, tokenizer, pair: bool = False):
    lm = ecco.from_model(tiny.model(arch), tokenizer, attention=True, verbose=False)
    if arch == "bert":
        return lm("the quick brown fox", "the lazy dog") if pair else lm("the quick brown fox")
    return lm.generate(["the quick brown fox", "hello"], generate=3, min_new_tokens=3)


@pytest.mark.parametrize("arch", ARCHS)
def test_rows_sum_to_one_and_neuron_view_reproduces_weights(arch, tokenizer):
    output = _output(arch, tokenizer)
    for name, weights in output.attention.items():
        for item, seq in enumerate(output.sequences):
            queries, keys = ecco.access.set_tokens(output, name, item)
            rows = weights[item, :, :, : len(queries), : len(keys)].sum(-1)
            torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-5, rtol=0)
        layers, heads = weights.shape[1], weights.shape[2]
        for layer in range(layers):
            data = output.attention_neuron_view(layer=layer, head=heads - 1, attention_set=name, printJson=True)
            assert np.abs(softmax_from_neuron_data(data) - np.array(data["weights"])).max() <= 1e-4


def test_grouped_key_value_heads_are_repeated(tokenizer):
    output = _output("llama", tokenizer)  # 4 query heads, 2 key/value heads
    a = output.attention_neuron_view(layer=0, head=0, printJson=True)
    b = output.attention_neuron_view(layer=0, head=1, printJson=True)
    c = output.attention_neuron_view(layer=0, head=2, printJson=True)
    assert a["key"] == b["key"] and a["key"] != c["key"]
    assert a["query"] != b["query"]


def test_packing_round_trip(tokenizer):
    output = _output("t5", tokenizer)
    data = output.attention_model_view(sequence=1, printJson=True)
    assert [s["name"] for s in data["sets"]] == list(output.attention)
    cross = data["sets"][[s["name"] for s in data["sets"]].index("cross")]
    seq = output.sequences[1]
    assert len(cross["queries"]) == len(seq) - seq.n_input_tokens and len(cross["keys"]) == seq.n_input_tokens
    packed = np.frombuffer(base64.b64decode(cross["weights"]), dtype=np.uint8).reshape(cross["shape"]) / 255
    exact = output.attention["cross"][1, :, :, : cross["shape"][2], : cross["shape"][3]].numpy()
    assert np.abs(packed - exact).max() <= 0.5 / 255 + 1e-7


def test_sentence_pair_head_view(tokenizer):
    output = _output("bert", tokenizer, pair=True)
    data = output.attention_head_view(layer=1, heads=[0, 2], printJson=True)
    assert len(data["sets"][0]["queries"]) == len(tokenizer("the quick brown fox", "the lazy dog")["input_ids"])
    assert data["layer"] == 1 and data["heads"] == [0, 2]


def test_bad_attention_input(tokenizer):
    plain = ecco.from_model(tiny.model("gpt2"), tokenizer, verbose=False).generate("the quick", generate=2)
    with pytest.raises(ValueError, match="attention=True"):
        plain.attention_head_view()
    output = _output("gpt2", tokenizer)
    with pytest.raises(ValueError, match="layer=3 is out of range"):
        output.attention_head_view(layer=3)
    with pytest.raises(ValueError, match="head=4 is out of range"):
        output.attention_neuron_view(layer=0, head=4)
    with pytest.raises(ValueError, match="head=9 is out of range"):
        output.attention_head_view(heads=[9])
    with pytest.raises(ValueError, match="sequence=5"):
        output.attention_model_view(sequence=5)
    with pytest.raises(ValueError, match="No 'cross' attention"):
        output.attention_head_view(attention_set="cross")


def test_neuron_view_on_a_training_model_runs_in_eval_mode_and_leaves_it_training(tokenizer):
    # Heavy dropout everywhere: a rerun with dropout on would give other queries every time.
    model = tiny.model("gpt2", embd_pdrop=0.5, resid_pdrop=0.5, attn_pdrop=0.5)
    model.train()
    lm = ecco.from_model(model, tokenizer, attention=True, verbose=False)
    output = lm("the quick brown fox jumps")
    assert model.training
    first = output.attention_neuron_view(layer=1, head=0, printJson=True)
    second = output.attention_neuron_view(layer=1, head=0, printJson=True)
    assert model.training
    assert first["query"] == second["query"] and first["key"] == second["key"]
    assert np.abs(softmax_from_neuron_data(first) - np.array(first["weights"])).max() <= 1e-4
