"""Leaving tokens out of a decomposition (the first token's massive activation, special tokens),
and activations of each stack of an encoder-decoder selected by its own positions."""
from __future__ import annotations

import numpy as np
import pytest

import ecco
from ecco.access import select_activations
from tests import tiny


@pytest.fixture(scope="module")
def output():
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), activations=True, verbose=False)
    return lm.generate(["the quick brown fox", "hello"], generate=3, min_new_tokens=3)


def _columns(output, sequence, positions):
    acts = output.activations["decoder"][sequence]  # (layers, neurons, positions)
    return acts[:, :, positions].reshape(-1, len(positions))


def test_exclude_first_drops_position_zero_of_every_sequence(output):
    selection = select_activations(output, exclude="first")
    kept = [list(range(1, n)) for n in output.lengths]
    expected = np.concatenate([_columns(output, s, p) for s, p in enumerate(kept)], axis=1)
    np.testing.assert_array_equal(selection.matrix, expected)
    assert selection.excluded == [(0, 0), (1, 0)]
    assert selection.positions == [(s, p) for s, ps in enumerate(kept) for p in ps]


def test_exclude_positions_and_the_explorer_marks_them(output):
    nmf = output.run_nmf(n_components=2, exclude=[0, 2])
    assert nmf.components.shape[1] == sum(output.lengths) - 4
    data = nmf.explore(printJson=True)
    assert len(data["tokens"]) == sum(output.lengths)  # every token is still shown
    marked = [(t["sequence"], t["position"]) for t in data["tokens"] if t["excluded"]]
    assert marked == [(0, 0), (0, 2), (1, 0), (1, 2)]
    for k, row in enumerate(data["factors"]):
        values = [v for v, t in zip(row, data["tokens"]) if not t["excluded"]]
        assert all(v is None for v, t in zip(row, data["tokens"]) if t["excluded"])
        np.testing.assert_allclose(values, nmf.components[k], rtol=1e-6)
    assert "4 token(s) left out of the fit" in data["caption"]


def test_exclude_special_and_bad_entries():
    lm = ecco.from_model(tiny.model("bert"), tiny.tokenizer(), activations=True, verbose=False)
    output = lm("the quick <mask> fox")
    special = [p for p, flag in enumerate(output.sequences[0].special) if flag]
    assert special, "the test needs a special token"
    selection = select_activations(output, exclude="special")
    assert [p for _, p in selection.excluded] == special
    with pytest.raises(ValueError, match="exclude entry 'middle'"):
        select_activations(output, exclude="middle")
    with pytest.raises(ValueError, match="Every token is excluded"):
        select_activations(output, exclude=list(range(len(output.sequences[0]))))


def test_encoder_decoder_stacks_use_their_own_positions():
    lm = ecco.from_model(tiny.model("t5"), tiny.tokenizer(), activations=True, verbose=False)
    output = lm.generate("the quick brown fox", generate=3, min_new_tokens=3)
    seq = output.sequences[0]
    n_enc, n_dec = seq.n_input_tokens, len(seq) - seq.n_input_tokens
    for stack, start, count in (("encoder", 0, n_enc), ("decoder", n_enc, n_dec)):
        selection = select_activations(output, stack=stack)
        acts = output.activations[stack][0]
        np.testing.assert_array_equal(selection.matrix, acts[:, :, :count].reshape(-1, count))
        assert selection.positions == [(0, start + i) for i in range(count)]
    assert output.run_nmf(n_components=2, stack="decoder", exclude="first").selection.excluded == [(0, n_enc)]
