"""save / load round-trips every array bit-exactly, with the metadata views need."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco
from tests import tiny


@pytest.mark.parametrize("arch, dtype", [("llama", "float32"), ("t5", "float16")])
def test_round_trip_is_bit_exact(tmp_path, tokenizer, arch, dtype):
    lm = ecco.from_model(tiny.model(arch), tokenizer, activations=True, attention=True, store_dtype=dtype)
    output = lm.generate(["the quick brown fox", "hello"], generate=3)
    path = output.save(tmp_path / "out.ecco.safetensors")
    loaded = ecco.load(path)
    assert loaded.model_name == output.model_name and loaded.kind == output.kind
    assert loaded.sequences == output.sequences
    assert loaded.activation_layers == output.activation_layers
    for stack, acts in output.activations.items():
        assert loaded.activations[stack].dtype == acts.dtype
        assert np.array_equal(loaded.activations[stack], acts)
    for field in ("hidden_states", "attention"):
        for key, tensor in getattr(output, field).items():
            assert torch.equal(getattr(loaded, field)[key], tensor)
    assert torch.equal(loaded.token_probs.isnan(), output.token_probs.isnan())
    assert torch.equal(loaded.token_probs.nan_to_num(), output.token_probs.nan_to_num())
    assert loaded.tokens_view(1).data == output.tokens_view(1).data


def test_load_rejects_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not an ecco output"):
        ecco.load(tmp_path / "x.safetensors")


def test_attributions_round_trip(tmp_path, tokenizer):
    lm = ecco.from_model(tiny.model("gpt2"), tokenizer, verbose=False)
    output = lm.generate(["the quick brown fox", "hello"], generate=3, attribution=["ig", "saliency"], min_new_tokens=3)
    loaded = ecco.load(output.save(tmp_path / "a.ecco.safetensors"))
    for name, result in output.attributions.items():
        other = loaded.attributions[name]
        assert (other.targets, other.label, other.score, other.n_steps) == (
            result.targets, result.label, result.score, result.n_steps)
        for mine, theirs in zip(result.values + result.raw, other.values + other.raw):
            assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))
    assert all(np.array_equal(a, b) for a, b in
               zip(output.attributions["ig"].completeness_error, loaded.attributions["ig"].completeness_error))
    assert loaded.attributions["saliency"].completeness_error is None
    assert loaded.primary_attributions("ig", printJson=True) == output.primary_attributions("ig", printJson=True)
