"""Prompts given as token ids (a list, a list of lists, a 1-d / 2-d tensor or NumPy array) give
the same outputs as the equivalent text."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco
from tests import tiny
from tests.conftest import hook_count

TEXTS = ["the quick brown fox", "a cat sat on"]


def _lm(arch: str, tokenizer, **flags):
    return ecco.from_model(tiny.model(arch), tokenizer, verbose=False, activations=True, attention=True, **flags)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text)["input_ids"]


def _same(a, b) -> None:
    """Two outputs hold the same tokens and captures."""
    assert [s.token_ids for s in a.sequences] == [s.token_ids for s in b.sequences]
    assert a.tokens == b.tokens and a.n_input_tokens == b.n_input_tokens
    assert [s.token_type_ids for s in a.sequences] == [s.token_type_ids for s in b.sequences]
    for name in ("hidden_states", "attention"):
        assert getattr(a, name).keys() == getattr(b, name).keys()
        for key in getattr(a, name):
            torch.testing.assert_close(getattr(a, name)[key], getattr(b, name)[key], rtol=0, atol=0)
    for key in a.activations:
        np.testing.assert_array_equal(a.activations[key], b.activations[key])
    if a.token_probs is not None:
        torch.testing.assert_close(a.token_probs, b.token_probs, equal_nan=True)


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_generate_from_ids_equals_generate_from_text(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    ids = _ids(tokenizer, TEXTS[0])
    reference = lm.generate(TEXTS[0], generate=3, min_new_tokens=3)
    for given in (ids, torch.tensor(ids), np.array(ids), [np.int64(i) for i in ids]):
        _same(lm.generate(given, generate=3, min_new_tokens=3), reference)


def test_a_batch_of_ids(tokenizer):
    lm = _lm("gpt2", tokenizer)
    reference = lm.generate(TEXTS, generate=2, min_new_tokens=2)
    rows = [_ids(tokenizer, t) for t in TEXTS]
    _same(lm.generate(rows, generate=2, min_new_tokens=2), reference)
    _same(lm.generate([rows[0], TEXTS[1]], generate=2, min_new_tokens=2), reference)  # ids and text mixed
    same_length = [r[:4] for r in rows]  # a 2-d tensor holds prompts of one length
    texts = [tokenizer.decode(r) for r in same_length]
    assert [_ids(tokenizer, t) for t in texts] == same_length
    _same(lm.generate(torch.tensor(same_length), generate=2, min_new_tokens=2), lm.generate(texts, generate=2, min_new_tokens=2))
    _same(lm.generate(np.array(same_length), generate=2, min_new_tokens=2), lm.generate(texts, generate=2, min_new_tokens=2))


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_forward_pass_from_ids(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    rows = [_ids(tokenizer, t) for t in TEXTS]
    _same(lm(rows[0]), lm(TEXTS[0]))
    _same(lm(torch.tensor(rows[0])), lm(TEXTS[0]))
    _same(lm(rows), lm(TEXTS))


def test_attribute_with_ids(tokenizer):
    lm = _lm("gpt2", tokenizer)
    target_ids = tokenizer(" jumps over", add_special_tokens=False)["input_ids"]
    foil_ids = tokenizer(" sleeps", add_special_tokens=False)["input_ids"]
    reference = lm.attribute(TEXTS[0], " jumps over", attribution=["grad_x_input"])
    got = lm.attribute(torch.tensor(_ids(tokenizer, TEXTS[0])), target_ids, attribution=["grad_x_input"])
    _same(got, reference)
    for x, y in zip(got.attributions["grad_x_input"].raw[0], reference.attributions["grad_x_input"].raw[0]):
        np.testing.assert_array_equal(x, y)
    contrastive = lm.attribute(_ids(tokenizer, TEXTS[0]), target_ids, foil=foil_ids, attribution=["saliency"])
    text_foil = lm.attribute(TEXTS[0], " jumps over", foil=" sleeps", attribution=["saliency"])
    assert contrastive.attributions["saliency"].foil_ids == text_foil.attributions["saliency"].foil_ids
    batch = lm.attribute([_ids(tokenizer, t) for t in TEXTS], target_ids, attribution=["saliency"])
    assert batch.batch_size == 2 and all(s.token_ids[-len(target_ids):] == target_ids for s in batch.sequences)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda lm: lm.generate([5, 10**6], generate=2), r"token ids \[1000000\] outside the model's vocabulary 0\.\.319"),
        (lambda lm: lm.generate([[5, 6], [-1]], generate=2), r"Input 1 has token ids \[-1\] outside"),
        (lambda lm: lm.generate([[5, 6], []], generate=2), "Input 1 has no token ids"),
        (lambda lm: lm.generate(torch.zeros(1, 2, 3, dtype=torch.long), generate=2), r"1-d \(one prompt\) or 2-d"),
        (lambda lm: lm.generate(torch.tensor([1.0, 2.0]), generate=2), "must be an integer"),
        (lambda lm: lm.generate([True, False], generate=2), "must be a sequence of integers, got True"),
        (lambda lm: lm.generate(5, generate=2), "Give a text, a list of texts or token ids"),
        (lambda lm: lm([5, 6], text_pair="a cat"), "text_pair pairs texts"),
        (lambda lm: lm.attribute([5, 6], [10**6]), r"The target has token ids \[1000000\] outside"),
        (lambda lm: lm.generate([5] * 200, generate=2), "context window"),
    ],
)
def test_bad_ids_are_clear_errors(tokenizer, call, message):
    lm = _lm("gpt2", tokenizer)
    lm.generate("the", generate=1)  # transformers' own output hooks are installed on first use
    before = (lm.model.training, lm.model.config._attn_implementation, hook_count(lm.model))
    with pytest.raises(ValueError, match=message):
        call(lm)
    assert (lm.model.training, lm.model.config._attn_implementation, hook_count(lm.model)) == before
