"""Bad input gives a clear ValueError, and the model is left exactly as it was."""
from __future__ import annotations

import pytest
import torch

import ecco
from tests import tiny
from tests.conftest import hook_count


@pytest.fixture
def lm(tokenizer):
    return ecco.from_model(tiny.model("gpt2"), tokenizer, activations=True, attention=True)


def _state(model):
    return (model.training, model.config._attn_implementation, hook_count(model),
            [p.requires_grad for p in model.parameters()])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda lm: lm.generate("", generate=3), "empty"),
        (lambda lm: lm.generate("   ", generate=3), "empty"),
        (lambda lm: lm.generate([], generate=3), "No input"),
        (lambda lm: lm.generate("the " * 200, generate=3), "context window of 128"),
        (lambda lm: lm.generate("the quick " * 30, generate=100), "context window"),
        (lambda lm: lm.generate("the quick", generate=0), "positive"),
        (lambda lm: lm.generate("the quick", generate=2, max_length=9), "not both"),
        (lambda lm: lm.generate("the quick", max_length=2), "max_length"),
        (lambda lm: lm.generate("the quick", beam_size=0), "beam_size"),
        (lambda lm: lm(""), "empty"),
        (lambda lm: lm("the " * 200), "context window"),
    ],
)
def test_bad_input_is_a_clear_value_error(lm, call, message):
    before = _state(lm.model)
    with pytest.raises(ValueError, match=message):
        call(lm)
    assert _state(lm.model) == before


def test_layer_nums_out_of_range(tokenizer):
    with pytest.raises(ValueError, match=r"activations_layer_nums \[3\] out of range.*0\.\.2"):
        ecco.from_model(tiny.model("gpt2"), tokenizer, activations=True, activations_layer_nums=[0, 3])


def test_generate_on_encoder_is_refused(tokenizer):
    lm = ecco.from_model(tiny.model("bert"), tokenizer)
    with pytest.raises(ValueError, match="encoder.*lm\\(text\\)"):
        lm.generate("the quick", generate=2)


def test_unknown_alias_offline():
    with pytest.raises(ValueError, match="smollm2-135m, minilm-l6"):
        ecco.from_pretrained("smollm-9000")


def test_bad_store_dtype(tokenizer):
    with pytest.raises(ValueError, match="float32' or 'float16"):
        ecco.from_model(tiny.model("gpt2"), tokenizer, store_dtype="int8")


def test_bad_sequence_index(lm):
    output = lm.generate("the quick", generate=2)
    with pytest.raises(ValueError, match="sequence=3 is out of range"):
        output.tokens_view(sequence=3)


def test_model_state_restored_after_success(lm):
    model = lm.model
    model.train()
    with torch.no_grad():
        model(torch.tensor([[5, 6]]), output_hidden_states=True, output_attentions=True)
    before = _state(model)
    lm.generate("the quick", generate=2)
    assert _state(model) == before
