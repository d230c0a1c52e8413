"""save / load round-trips every array bit-exactly, with the metadata views need."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import ecco
from ecco.record import Record
from tests import tiny


def _equal(a, b) -> bool:
    """Same value, type and dtype; NaN equals NaN (padding of ragged arrays)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and bool(
            torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num()))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b


def _assert_round_trip(output, tmp_path) -> None:
    """Every field of the record comes back equal (the live model link is not saved)."""
    loaded = ecco.load(output.save(tmp_path / "out.ecco.safetensors"))
    assert loaded.link is None
    for field in dataclasses.fields(Record):
        if field.name != "link":
            assert _equal(getattr(loaded, field.name), getattr(output, field.name)), field.name
    return loaded


@pytest.mark.parametrize("arch, dtype", [("llama", "float32"), ("t5", "float16")])
def test_round_trip_is_bit_exact(tmp_path, tokenizer, arch, dtype):
    lm = ecco.from_model(tiny.model(arch), tokenizer, activations=True, attention=True, store_dtype=dtype, verbose=False)
    prompts = ["the quick brown fox", "hello"]
    # The second item's second new token becomes the end of sequence (the greedy tokens of the
    # seeded model are fixed), so that it stops early: NaN-padded probabilities and entropies.
    first = lm.generate(prompts, generate=3).sequences
    lm.model.generation_config.eos_token_id = first[1].token_ids[len(first[1]) - 2]
    output = lm.generate(prompts, generate=3, attribution=["ig", "grad_x_input"])
    assert output.token_entropy is not None and output.n_layers and output.attributions["ig"].n_steps
    assert output.token_probs.isnan().any() and output.token_entropy.isnan().any()
    loaded = _assert_round_trip(output, tmp_path)
    assert loaded.tokens_view(1).data == output.tokens_view(1).data


def test_sentence_pair_segments_round_trip(tmp_path):
    pairs = tiny.pair_tokenizer()
    lm = ecco.from_model(tiny.model("bert"), pairs, activations=True, attention=True, verbose=False)
    output = lm(["the quick brown fox", "hello"], ["the lazy dog", "world"])
    segments = [s.token_type_ids for s in output.sequences]
    assert segments == [pairs(a, b)["token_type_ids"] for a, b in [("the quick brown fox", "the lazy dog"),
                                                                   ("hello", "world")]]
    assert output.token_probs is None and output.token_entropy is None
    _assert_round_trip(output, tmp_path)


def test_contrastive_attribution_round_trip(tmp_path, tokenizer):
    lm = ecco.from_model(tiny.model("llama"), tokenizer, verbose=False)
    output = lm.attribute(["the quick brown", "hello"], target=[" fox", " world"], foil=[" dog", " there"],
                          attribution=["grad_x_input", "lrp"])
    result = output.attributions["lrp"]
    assert result.foil_ids and result.foil_text and result.score == "logprob_diff"
    assert result.completeness_error is not None
    _assert_round_trip(output, tmp_path)


def test_load_rejects_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not an ecco output"):
        ecco.load(tmp_path / "x.safetensors")


def test_attributions_round_trip(tmp_path, tokenizer):
    lm = ecco.from_model(tiny.model("gpt2"), tokenizer, verbose=False)
    output = lm.generate(["the quick brown fox", "hello"], generate=3, attribution=["ig", "saliency"], min_new_tokens=3)
    loaded = _assert_round_trip(output, tmp_path)
    assert loaded.attributions["saliency"].completeness_error is None
    assert loaded.primary_attributions("ig", printJson=True) == output.primary_attributions("ig", printJson=True)


def test_a_field_lost_on_the_way_is_caught(tmp_path, tokenizer, monkeypatch):
    """The round-trip check can fail: drop the entropies from the file and it says so."""
    from ecco import io

    output = ecco.from_model(tiny.model("gpt2"), tokenizer, verbose=False).generate("the quick", generate=2)
    monkeypatch.setattr(io, "_TENSOR_FIELDS", ("token_probs",))
    with pytest.raises(AssertionError, match="token_entropy"):
        _assert_round_trip(output, tmp_path)
