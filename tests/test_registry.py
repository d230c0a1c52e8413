"""Architecture resolution: registry entries, discovery fallback, Ecco's model_config, errors."""
from __future__ import annotations

import pytest
import transformers as tf
from torch import nn

import ecco
from ecco.models.registry import ArchitectureError, resolve
from tests import tiny
from tests.conftest import FFN_PATHS

EXPECTED_KIND = {"gpt2": "causal", "gpt-neo": "causal", "llama": "causal", "bert": "masked", "t5": "enc-dec", "bart": "enc-dec"}
FINAL_NORM = {"gpt2": "transformer.ln_f", "gpt-neo": "transformer.ln_f", "llama": "model.norm",
              "t5": "decoder.final_layer_norm", "bert": None, "bart": None}


@pytest.mark.parametrize("arch", tiny.ALL)
def test_registry_resolves_every_family(arch):
    model = tiny.model(arch)
    spec = resolve(model)
    modules = dict(model.named_modules())
    assert spec.kind == EXPECTED_KIND[arch]
    assert spec.embeddings is model.get_input_embeddings()
    assert spec.lm_head is model.get_output_embeddings()
    for stack, pattern in FFN_PATHS[arch].items():
        resolved = spec.stacks[stack]
        expected = [modules[pattern.format(i)] for i in range(resolved.n_layers)]
        assert resolved.ffn_out == expected
    names = {id(m): n for n, m in modules.items()}
    norm = spec.main_stack.final_norm
    assert (names[id(norm)] if norm is not None else None) == FINAL_NORM[arch]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_base_models_without_heads_resolve(arch):
    model = tiny.model(arch).base_model
    spec = resolve(model)
    assert spec.lm_head is None and spec.main_stack.n_layers == len(spec.main_stack.ffn_out)


def test_discovery_fallback_for_unregistered_class():
    config = tf.GPTBigCodeConfig(n_layer=2, n_embd=32, n_head=4, vocab_size=100, n_positions=64)
    model = tf.GPTBigCodeForCausalLM(config).eval()
    spec = resolve(model)
    assert spec.arch.startswith("discovered:")
    assert spec.kind == "causal"
    assert spec.main_stack.ffn_out == [block.mlp.c_proj for block in model.transformer.h]
    assert spec.main_stack.final_norm is model.transformer.ln_f


def test_ecco_model_config_override_orders_layers_numerically():
    model = tiny.model("gpt2", n_layer=12)
    spec = resolve(model, {"embedding": "transformer.wte.weight", "type": "causal",
                           "activations": [r"mlp\.c_proj"], "token_prefix": "Ġ", "partial_token_prefix": ""})
    assert spec.main_stack.ffn_out == [block.mlp.c_proj for block in model.transformer.h]
    assert spec.embeddings is model.transformer.wte


class _Opaque(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = tf.PretrainedConfig()
        self.net = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.emb = nn.Embedding(10, 4)

    @property
    def base_model(self):
        return self

    def get_input_embeddings(self):
        return self.emb

    def get_output_embeddings(self):
        return None


def test_unresolvable_architecture_says_what_is_missing():
    with pytest.raises(ArchitectureError, match="model_config=.*activations"):
        resolve(_Opaque())


def test_bad_model_config_entries():
    model = tiny.model("gpt2")
    with pytest.raises(ArchitectureError, match="matched no module"):
        resolve(model, {"activations": [r"nothing\.here"]})
    with pytest.raises(ArchitectureError, match="type"):
        resolve(model, {"type": "decoder-only", "activations": [r"mlp\.c_proj"]})


def test_from_model_uses_model_config(tokenizer):
    model = tiny.model("gpt2")
    lm = ecco.from_model(model, tokenizer, activations=True, model_config={"activations": [r"mlp\.c_fc"], "type": "causal"})
    output = lm.generate("the quick", generate=2)
    # The regex names the module whose *input* is recorded: c_fc reads the 32-wide hidden state.
    assert output.activations["decoder"].shape[:3] == (1, 3, 32)
